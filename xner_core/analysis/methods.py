"""Stage 7, analysis: training methods against plain transfer: target-adaptive pretraining (TAPT) and robust
training (PGD, word-level randomized smoothing, FGM, sub-token noise), and LoRA adapters.

A method's rows are compared with the plain transfer rows of the same run (`base_protocol`: the recipe without the
robust method; TAPT shares its plain baseline's protocol), model, pair, seed and perturbation: the method's
presets copy paper-faithful's recipe, so their baseline is paper-faithful's transfer models of the same seed. The
outcome is clean F1 for the clean test set (higher is better) and the drop for a perturbation (lower is better).
The unit is the language pair (its seeds averaged first, as the findings do): per perturbation, a paired t over
pairs of method − plain with its t interval (the interval excludes 0 exactly when p < 0.05), Wilcoxon as a second
method, and Holm over the perturbations of one method.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from xner_core.analysis.findings import FindingPlot, counted
from xner_core.analysis.plots import perturbation_short
from xner_core.analysis.stats import holm, paired_t
from xner_core.analysis.tidy import CLEAN, PLAIN

METHOD_TITLES: Mapping[str, str] = {
    "tapt": "TAPT: masked-LM steps on the target's unlabeled text, then transfer (Gururangan et al. 2020)",
    "pgd": "PGD adversarial training on embeddings (Huang et al. 2021)",
    "word-smoothing": "word-level randomized smoothing with neighbour words (Huang et al. 2021, RS-DA)",
    "fgm": "one-step FGM adversarial training on embeddings",
    "subtoken-noise": "random sub-token noise",
    "lora": "LoRA adapters instead of full fine-tuning",
}


def method_title(method: str) -> str:
    """A method's title for text: METHOD_TITLES' for its kind, with its budget when it has one, e.g. "PGD
    adversarial training on embeddings (Huang et al. 2021), ε 0.1"."""
    kind, _, budget = method.partition(" · ")
    title = METHOD_TITLES.get(kind, kind)
    return f"{title}, {budget.replace(' · ', ', ')}" if budget else title


COMPARISON_COLUMNS: tuple[str, ...] = ("pair", "pair_order", "source", "target", "seed", "perturbation",
                                       "plain_f1", "method_f1", "plain_drop", "method_drop")
TEST_COLUMNS: tuple[str, ...] = ("perturbation", "outcome", "n", "seeds", "plain", "method", "diff", "low", "high",
                                 "p", "p_holm", "wilcoxon_p", "better_in")


def _ours(tidy: pd.DataFrame, model: str, base_protocol: str | None) -> pd.DataFrame:
    df = tidy[(tidy["origin"] == "ours") & (tidy["scope"] == "overall") & (tidy["model"] == model)]
    return df if base_protocol is None else df[df["base_protocol"] == base_protocol]


def available_methods(tidy: pd.DataFrame, model: str) -> pd.DataFrame:
    """The methods of our rows for `model` that have a plain transfer baseline in the same run.

    Args:
        tidy: the tidy frame (`tidy.tidy_results`).
        model: the model.

    Returns:
        Columns method, base_protocol, pairs (with both sides), seeds (comma-joined), rows; most pairs first.
    """
    rows = []
    ours = _ours(tidy, model, None)
    for (method, proto), part in ours[ours["method"] != PLAIN].groupby(["method", "base_protocol"], sort=False):
        comp = method_comparison(tidy, str(method), model, str(proto))
        if comp.empty:
            continue
        seeds = sorted({int(s) for s in comp["seed"].dropna()})
        rows.append({"method": method, "base_protocol": proto, "pairs": comp["pair"].nunique(),
                     "seeds": ", ".join(map(str, seeds)), "rows": len(part)})
    out = pd.DataFrame(rows, columns=["method", "base_protocol", "pairs", "seeds", "rows"])
    return out.sort_values("pairs", ascending=False, kind="stable").reset_index(drop=True)


def method_comparison(tidy: pd.DataFrame, method: str, model: str, base_protocol: str | None) -> pd.DataFrame:
    """The method's rows beside the plain transfer rows of the same pair, seed and perturbation.

    Args:
        tidy: the tidy frame.
        method: a `tidy.training_method` name other than "plain".
        model: the model.
        base_protocol: the run (`base_protocol`); None: every run (only sensible when there is one).

    Returns:
        COMPARISON_COLUMNS (F1 and drops in points), one row per pair, seed and perturbation both sides have.
    """
    ours = _ours(tidy, model, base_protocol)
    keys = ["pair", "seed", "perturbation", "base_protocol"]
    cols = [*keys, "pair_order", "source", "target", "f1", "drop"]
    mine = ours[ours["method"] == method][cols]
    plain = ours[(ours["method"] == PLAIN) & (ours["setting"] == "transfer")][cols]
    if mine.empty or plain.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    mine = mine.groupby(keys, dropna=False, sort=False).agg(
        pair_order=("pair_order", "first"), source=("source", "first"), target=("target", "first"),
        method_f1=("f1", "mean"), method_drop=("drop", "mean")).reset_index()
    plain = plain.groupby(keys, dropna=False, sort=False).agg(plain_f1=("f1", "mean"),
                                                              plain_drop=("drop", "mean")).reset_index()
    both = mine.merge(plain, on=keys, how="inner")
    return both.sort_values(["pair_order", "pair", "perturbation", "seed"], kind="stable")[
        list(COMPARISON_COLUMNS)].reset_index(drop=True)


def _per_pair(comp: pd.DataFrame, perturbation: str) -> pd.DataFrame:
    """Per pair (seeds averaged): plain and method outcome (clean F1 for clean, else the drop) and the seeds."""
    rows = comp[comp["perturbation"] == perturbation]
    value = "f1" if perturbation == CLEAN else "drop"
    g = rows.groupby(["pair_order", "pair"], sort=True)
    out = g.agg(plain=(f"plain_{value}", "mean"), method=(f"method_{value}", "mean"),
                plain_sd=(f"plain_{value}", "std"), method_sd=(f"method_{value}", "std"),
                seeds=("seed", "nunique")).reset_index()
    return out


def method_tests(comp: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per perturbation, method − plain over pairs: paired t (interval and p), Wilcoxon, Holm over perturbations.

    Args:
        comp: `method_comparison`.
        level: interval level.

    Returns:
        TEST_COLUMNS, clean first: outcome "clean F1" or "drop", n pairs, seeds (per pair, "1" or "1–3"), the mean
        plain and method outcome, diff (method − plain) with low/high/p, p_holm, wilcoxon_p, and better_in (e.g.
        "method better in 5 of 6 pairs": higher clean F1, or a smaller drop).
    """
    perts = [CLEAN] + sorted(p for p in comp["perturbation"].unique() if p != CLEAN) if len(comp) else []
    rows: list[dict[str, Any]] = []
    for pert in perts:
        pp = _per_pair(comp, pert)
        pp = pp[pp["plain"].notna() & pp["method"].notna()]
        t = paired_t(pp["method"], pp["plain"], level)
        better = (pp["method"] > pp["plain"]) if pert == CLEAN else (pp["method"] < pp["plain"])
        lo, hi = (int(pp["seeds"].min()), int(pp["seeds"].max())) if len(pp) else (0, 0)
        rows.append({"perturbation": pert, "outcome": "clean F1" if pert == CLEAN else "drop", "n": len(pp),
                     "seeds": f"{lo}" if lo == hi else f"{lo}–{hi}", "plain": float(pp["plain"].mean()),
                     "method": float(pp["method"].mean()), "diff": t.mean, "low": t.low, "high": t.high, "p": t.p,
                     "wilcoxon_p": t.wilcoxon_p,
                     "better_in": f"method better in {int(better.sum())} of {counted(len(pp), 'pair')}"})
    out = pd.DataFrame(rows, columns=[c for c in TEST_COLUMNS if c != "p_holm"])
    out.insert(int(out.columns.get_loc("wilcoxon_p")), "p_holm", holm(out["p"].astype(float).tolist()))
    return out


def method_plot(comp: pd.DataFrame, perturbation: str, method: str) -> FindingPlot:
    """A paired chart (`plots.finding_figure`): per pair, plain transfer vs the method (seeds averaged).

    Args:
        comp: `method_comparison`.
        perturbation: "clean" (clean F1) or a perturbation (its drop).
        method: the method's name (the b side's label).

    Returns:
        A FindingPlot of kind "paired".
    """
    pp = _per_pair(comp, perturbation)
    frame = pd.DataFrame({"pair": pp["pair"], "source": "", "a": pp["plain"], "b": pp["method"],
                          "a_sd": pp["plain_sd"], "b_sd": pp["method_sd"], "diff": pp["method"] - pp["plain"],
                          "seeds": pp["seeds"], "reason": ""})
    what = "clean F1 (points)" if perturbation == CLEAN else f"drop under {perturbation_short(perturbation)} (points)"
    return FindingPlot("paired", frame.reset_index(drop=True), f"{method} vs plain transfer · {what}", "", what,
                       "plain transfer", method)
