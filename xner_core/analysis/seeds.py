"""Stage 7, analysis: seeds as the unit of variance, beside the findings' pair-level tests.

A finding's primary test (`xner_core.analysis.findings`) takes the language pair as its unit, each pair's seeds
averaged first: it asks whether the effect generalises over pairs. Seeds answer a second question: does the effect
survive retraining the same pairs? Each seed of a run is one whole replicate (every model trained again with that
seed), so here a finding's statistic is computed on each seed's own rows over exactly the pairs the primary test
used, and those per-seed estimates are tested with a one-sample t over seeds (n = seeds, df = seeds − 1; a
correlation through Fisher's z, back-transformed, so its interval excludes 0 exactly when its p < 1 − level).
A seed counts only when it has every one of those pairs (like with like); incomplete seeds are named, not used.

Per pair, a paired finding's difference (e.g. native − transfer drop) is tested the same way over the pair's
seeds, Holm-corrected within the finding: a descriptive view of which pairs carry the effect, kept out of the
findings table's Holm family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from xner_core.analysis.finding_frames import overlap_frame, paired_frame
from xner_core.analysis.stats import holm, paired_t

PER_PAIR_COLUMNS: tuple[str, ...] = ("id", "model", "pair", "seeds", "a", "b", "diff", "low", "high", "p",
                                     "p_holm")
_R_CLIP = 1 - 1e-9  # |r| = 1 has an infinite Fisher z


@dataclass(frozen=True)
class SeedReplication:
    """A finding's statistic on each complete seed, and a t over them.

    Attributes:
        seeds: the complete seeds (each has every pair of the primary test), ascending.
        estimates: the statistic on each of them, same order.
        pairs: pairs per seed (the primary test's n).
        incomplete: (seed, pairs it has) of the seeds left out.
        mean, low, high, p: the t over seeds (a correlation's through Fisher's z); NaN with fewer than 2 seeds.
        level: the interval level.
    """

    seeds: tuple[int, ...]
    estimates: tuple[float, ...]
    pairs: int
    incomplete: tuple[tuple[int, int], ...]
    mean: float
    low: float
    high: float
    p: float
    level: float

    def agrees(self, direction: int = 1) -> bool:
        """Every complete seed's estimate is in the `direction` (+1 positive, −1 negative); True with no seed."""
        return all(direction * e > 0 for e in self.estimates)

    def text(self) -> str:
        """e.g. "seed 0 +0.75, seed 1 +0.71; t over 2 seeds +0.73 [−0.51, +0.99], p = 0.081" ("" for no seed)."""
        if not self.estimates:
            return ""
        parts = [", ".join(f"seed {s} {e:+.2f}" for s, e in zip(self.seeds, self.estimates))]
        if math.isfinite(self.p):
            parts.append(f"t over {len(self.seeds)} seeds {self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}], "
                         + ("p < 0.001" if self.p < 0.001 else f"p = {self.p:.3f}"))
        if self.incomplete:
            parts.append("left out, pairs missing: " + ", ".join(
                f"seed {s} ({k} of {self.pairs} pairs)" for s, k in self.incomplete))
        return "; ".join(parts)


def seed_t(estimates: Sequence[float], level: float = 0.95, fisher: bool = False) -> tuple[float, float, float, float]:
    """One-sample t over per-seed estimates: (mean, low, high, p); NaNs with fewer than 2.

    Args:
        estimates: one statistic per seed.
        level: interval level.
        fisher: the estimates are correlations: test their Fisher z and back-transform mean and interval.

    Returns:
        (mean, low, high, p); the interval excludes 0 exactly when p < 1 − level.
    """
    v = np.asarray(estimates, dtype=float)
    v = v[np.isfinite(v)]
    if fisher:
        v = np.arctanh(np.clip(v, -_R_CLIP, _R_CLIP))
    t = paired_t(v, None, level)
    back = np.tanh if fisher else (lambda x: x)
    return float(back(t.mean)), float(back(t.low)), float(back(t.high)), t.p


Statistic = Callable[[pd.DataFrame], tuple[float, int]]


def replicate(cells: pd.DataFrame, pairs: Sequence[str], statistic: Statistic,
              level: float = 0.95, fisher: bool = False) -> SeedReplication:
    """A statistic on each seed's own cells over `pairs`, and the t over the complete seeds.

    Args:
        cells: `finding_frames.seed_cells` (one row per pair, setting, perturbation and seed).
        pairs: the pairs the primary test used.
        statistic: cells of one seed, restricted to `pairs` -> (the estimate, how many pairs it had both values
            of); a seed is complete when that is every pair.
        level: interval level.
        fisher: the statistic is a correlation.

    Returns:
        A SeedReplication (no seed when `pairs` is empty or no seed has them all).
    """
    want = list(dict.fromkeys(pairs))
    seeds, estimates, incomplete = [], [], []
    for seed in sorted(int(s) for s in cells["seed"].dropna().unique()) if want else []:
        mine = cells[(cells["seed"] == seed) & cells["pair"].isin(want)]
        est, have = statistic(mine)
        if have < len(want) or not math.isfinite(est):
            incomplete.append((seed, have))
            continue
        seeds.append(seed)
        estimates.append(float(est))
    mean, low, high, p = seed_t(estimates, level, fisher) if len(estimates) >= 2 else (
        float(np.mean(estimates)) if estimates else float("nan"), float("nan"), float("nan"), float("nan"))
    return SeedReplication(tuple(seeds), tuple(estimates), len(want), tuple(incomplete), mean, low, high, p, level)


def correlation_statistic(perturbation: str, value: str) -> Statistic:
    """Pearson r of our overlap against `value` over one seed's transfer cells, and the pairs it had."""
    def r(cells: pd.DataFrame) -> tuple[float, int]:
        f = overlap_frame(cells, perturbation, value)
        f = f[f["x"].notna() & f["y"].notna()]
        if len(f) < 3 or f["x"].nunique() < 2 or f["y"].nunique() < 2:
            return float("nan"), len(f)
        return float(np.corrcoef(f["x"].astype(float), f["y"].astype(float))[0, 1]), len(f)
    return r


def paired_statistic(a: tuple[str, str], b: tuple[str, str], value: str) -> Statistic:
    """Mean over pairs of a − b (each a (setting, perturbation)) over one seed's cells, and the pairs it had."""
    def mean_diff(cells: pd.DataFrame) -> tuple[float, int]:
        f = paired_frame(cells, a, b, value)
        f = f[f["diff"].notna()]
        return (float(f["diff"].mean()) if len(f) else float("nan")), len(f)
    return mean_diff


def per_pair_seed_tests(cells: pd.DataFrame, fid: str, model: str, a: tuple[str, str], b: tuple[str, str],
                        value: str, pairs: Sequence[str], level: float = 0.95) -> pd.DataFrame:
    """Per pair, a − b with a t over the pair's seeds, Holm within the finding.

    Args:
        cells: `finding_frames.seed_cells`.
        fid, model: the finding's id and the model, copied into the rows.
        a, b: (setting, perturbation) of the two sides.
        value: "drop" or "per_pct".
        pairs: the pairs the primary test used, in order.
        level: interval level.

    Returns:
        PER_PAIR_COLUMNS, one row per pair (a, b, diff: means over the seeds having both sides; low, high, p: the
        t over them, NaN with fewer than 2 seeds; p_holm over this finding's pairs with a p).
    """
    rows = []
    frame = paired_frame(cells, a, b, value, by=("pair", "seed"))
    for pair in dict.fromkeys(pairs):
        mine = frame[(frame["pair"] == pair) & frame["diff"].notna()]
        t = paired_t(mine["a"], mine["b"], level)
        rows.append({"id": fid, "model": model, "pair": pair, "seeds": len(mine), "a": float(mine["a"].mean()),
                     "b": float(mine["b"].mean()), "diff": t.mean, "low": t.low, "high": t.high, "p": t.p})
    out = pd.DataFrame(rows, columns=[c for c in PER_PAIR_COLUMNS if c != "p_holm"])
    out["p_holm"] = holm(out["p"].astype(float).tolist()) if len(out) else []
    return out
