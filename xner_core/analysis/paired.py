"""Stage 7, analysis: one model against another on the same test sentences, with a paired bootstrap over sentences.

Where a claim is about two particular models of one pair and seed (a distillation student against its best teacher,
a multi-source model against its best single source, a TAPT model against plain transfer), the unit of variation is
the test sentence: both models scored sentence i (clean, or each its own perturbed version of it), so one resample
of sentence indices serves both sides and sentence difficulty cancels out. The difference is F1(candidate) -
F1(baseline) in points; its interval and two-sided p come from the same resamples (`stats.bootstrap_interval`:
the interval excludes 0 exactly when p < 1 - level). It reads the grid's per-job predictions
(`evaluation.predictions`), so it runs where the jobs ran (or their cache was copied); `scripts/paired_report.py`
writes the table the pages show (`data/results/paired_differences.csv`).

Comparisons across language pairs (does a method help in general?) use the pairs as the unit instead
(`methods.method_tests`, the findings); this module says whether one model beats another on one test set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from xner_core.analysis.stats import bootstrap_interval, holm
from xner_core.analysis.tidy import CLEAN, PLAIN, TRAINED_AGAIN
from xner_core.analysis.views import best_source
from xner_core.errors import DataError

COMPARISONS: dict[str, str] = {
    "student_vs_best_teacher": "distillation student − its best teacher (Wu et al. 2020)",
    "multi_source_vs_best_single": "multi-source model − its best single source",
    "student_vs_multi_source": "distillation student − the multi-source model of its sources at equal steps",
    "similarity_vs_uniform": "student with similarity-weighted teachers − the student of the same teachers weighted "
                             "uniformly (Wu et al. 2020)",
    "tapt_vs_plain": "TAPT − plain transfer of the same pair",
    "robust_vs_plain": "robust training − plain transfer of the same pair",
}
PAIRED_FILE = "paired_differences.csv"  # the committed table, under the committed results directory
# Tests against models trained again by the code that trained the candidate (`scripts/paired_report.py --store`),
# under the committed results directory: where a committed baseline's predictions are another training's.
SAME_CODE_FILE = "retrained/paired_same_code.csv"
PAIR_COLUMNS: tuple[str, ...] = (
    "comparison", "model", "target", "perturbation", "base_protocol", "seed", "method", "candidate", "baseline",
    "candidate_job", "baseline_job", "candidate_f1", "baseline_f1", "candidate_steps", "baseline_steps")
PAIRED_COLUMNS: tuple[str, ...] = (*PAIR_COLUMNS, "diff", "low", "high", "p", "p_holm", "family_size",
                                   "n_sentences", "n_resamples", "same_sentences")
# One family of tests for the Holm correction: every candidate (all targets, source sets) compared the same way (one
# training method), in the same run and seed, on the same kind of test set; e.g. "each student against its best
# teacher, clean, seed 1" or "PGD at ε 0.1 against plain transfer, clean, seed 1".
FAMILY_KEYS: tuple[str, ...] = ("comparison", "method", "model", "base_protocol", "seed", "perturbation")


@dataclass(frozen=True)
class PairedDifference:
    """F1(candidate) - F1(baseline) in points on n_sentences paired test sentences, with its bootstrap interval
    [low, high] and two-sided p from the same n_resamples resamples; same_sentences: both models scored the very
    same token sequences (False under a perturbation that depends on what each model saw, e.g. P1 for models
    trained on other sources: then each was scored on its own perturbed version of each sentence)."""

    diff: float
    low: float
    high: float
    p: float
    n_sentences: int
    n_resamples: int
    same_sentences: bool


def paired_difference(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]], n_resamples: int = 1000,
                      seed: int = 0, level: float = 0.95) -> PairedDifference:
    """The paired bootstrap of F1(candidate) - F1(baseline) from two jobs' predictions.

    Args:
        baseline: the baseline job's predictions (`load_predictions`: dicts with id, gold, pred), one per sentence.
        candidate: the candidate's, the same sentence ids in the same order.
        n_resamples: bootstrap resamples.
        seed: resampling seed.
        level: interval level.

    Returns:
        The difference in F1 points with its interval and p.

    Raises:
        DataError: the two jobs did not score the same sentences in the same order.
    """
    from xner_core.metrics.bootstrap import paired_bootstrap_samples

    ids_b, ids_c = [s.get("id") for s in baseline], [s.get("id") for s in candidate]
    if ids_b != ids_c:
        where = next((i for i, (a, b) in enumerate(zip(ids_b, ids_c)) if a != b), min(len(ids_b), len(ids_c)))
        raise DataError(f"the two jobs scored different test sentences ({len(ids_b)} and {len(ids_c)} sentences; "
                        f"first difference at position {where}); a paired comparison needs the same sentences")
    # paired_bootstrap_samples gives metric(a) - metric(b): a = candidate, b = baseline
    point, diffs = paired_bootstrap_samples([s["gold"] for s in candidate], [s["pred"] for s in candidate],
                                            [s["gold"] for s in baseline], [s["pred"] for s in baseline],
                                            n_resamples=n_resamples, seed=seed, what=("candidate", "baseline"))
    low, high, p = bootstrap_interval(diffs.tolist(), level)
    same = all(list(b.get("tokens") or []) == list(c.get("tokens") or []) for b, c in zip(baseline, candidate))
    return PairedDifference(100.0 * point, 100.0 * low, 100.0 * high, p, len(ids_b), n_resamples, same)


# Two F1s (in points) of one measurement agree to this: rounding, never a model trained again.
F1_TOLERANCE = 0.005


def same_f1(a: Any, b: Any) -> Any:
    """Whether F1s `a` and `b` (in points; floats or Series) are one measurement's, to F1_TOLERANCE; False where
    either is NaN."""
    return abs(a - b) <= F1_TOLERANCE


def reproduces(predictions: list[dict[str, Any]], f1_points: float, tolerance: float = F1_TOLERANCE) -> bool:
    """Whether a job's stored predictions are the measurement its results row reports: their entity F1 (seqeval
    strict) equals the row's F1 (in points) to `tolerance`.

    A job id names a configuration, not a model: the same configuration trained again (another code version, other
    kernels) gives another model and its predictions overwrite the first's in the cache while the committed row
    stays. A paired test must not pair one measurement's predictions with another's row.
    """
    from xner_core.metrics.scores import score

    if f1_points != f1_points:  # NaN: the row has no F1 to check against
        return False
    got = score([s["gold"] for s in predictions], [s["pred"] for s in predictions]).overall.f1
    return abs(100.0 * got - float(f1_points)) <= tolerance


def comparison_of_method(method: str) -> str | None:
    """The comparison that pairs a training method's models with plain transfer: "tapt_vs_plain" for TAPT,
    "robust_vs_plain" for a robust method ("pgd · ε 0.1", "word-smoothing", ...); None for plain fine-tuning and
    LoRA adapters (no paired comparison)."""
    if method in (PLAIN, "lora"):
        return None
    return "tapt_vs_plain" if method == "tapt" else "robust_vs_plain"


EQUAL_STEPS_TOLERANCE = 0.001  # relative: ca's students take 3 x 1,701 = 5,103 steps, the es+fr+it model 5,102


def same_compute(steps: pd.Series, other: Any) -> pd.Series:
    """Which of `steps` are the same number of optimiser steps as `other`, up to EQUAL_STEPS_TOLERANCE of it (one
    epoch over three sources' batches rounds differently from three epochs over one's); False where either is
    unknown."""
    a = pd.to_numeric(steps, errors="coerce")
    b = pd.to_numeric(pd.Series([other]), errors="coerce").iloc[0]
    if pd.isna(b):
        return pd.Series(False, index=steps.index)
    return ((a - b).abs() <= EQUAL_STEPS_TOLERANCE * b).fillna(False).astype(bool)


def comparison_pairs(tidy: pd.DataFrame) -> pd.DataFrame:
    """Which jobs to compare: every candidate model's job beside its baseline's job of the same model, target,
    perturbation, run (`base_protocol`) and seed.

    - student_vs_best_teacher: a distill student against the transfer model of its sources that scores highest on
      the clean test set at that seed, on the clean and on each perturbed test set (a perturbed set depends on the
      sources a model saw, so the best teacher is not re-chosen per perturbation);
    - multi_source_vs_best_single: a multi-source model (no step cap) against the best transfer model among its
      sources, chosen the same way;
    - student_vs_multi_source: a student against the multi-source model of the same sources trained for as many
      optimiser steps (equal compute, `same_compute`: within 0.1 %);
    - similarity_vs_uniform: a student whose teachers were weighted by language similarity against the student of
      the same teachers weighted uniformly (same steps);
    - tapt_vs_plain: a TAPT model against plain transfer of the same sources;
    - robust_vs_plain: a robust-trained transfer model (PGD, smoothing, ...) against plain transfer of the same
      sources (`method` names it, e.g. "pgd · ε 0.1").
    A similarity student is named "distill es+fr · similarity weights"; a uniform one "distill es+fr".

    Args:
        tidy: the tidy frame (`tidy.tidy_results`); our overall-scope rows are used.

    Returns:
        PAIR_COLUMNS; candidate/baseline name the side ("distill es+fr", "transfer es"); F1 in points.
    """
    df = tidy[(tidy["origin"] == "ours") & (tidy["scope"] == "overall") & tidy["job_id"].notna()].copy()
    if df.empty:
        return pd.DataFrame(columns=list(PAIR_COLUMNS))
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce").fillna(-1).astype(int)
    keys = ["model", "target", "perturbation", "base_protocol", "seed"]
    plain = df[df["method"] == PLAIN]
    transfer = plain[plain["setting"] == "transfer"].drop_duplicates([*keys, "sources"], keep="last")
    by_key = {k: g for k, g in transfer.groupby(keys, sort=False)}
    multi = plain[plain["setting"] == "multi_source"]
    multi_by_key = {k: g for k, g in multi.groupby(keys, sort=False)}
    uniform = plain[(plain["setting"] == "distill") & (plain["teacher_weights"] == "uniform")]
    uniform_by_key = {k: g for k, g in uniform.groupby(keys, sort=False)}
    out: list[dict[str, Any]] = []

    def name(row: pd.Series) -> str:
        label = f"{row['setting']} {str(row['sources']).replace(',', '+')}"
        w = row.get("teacher_weights")
        if row["method"] not in (PLAIN, "tapt"):  # tapt is its own setting already
            label = f"{label} · {row['method']}"
        return f"{label} · {w} weights" if isinstance(w, str) and w != "uniform" else label

    def add(kind: str, cand: pd.Series, base: pd.Series) -> None:
        out.append({"comparison": kind, **{k: cand[k] for k in keys}, "method": cand["method"],
                    "candidate": name(cand), "baseline": name(base),
                    "candidate_job": cand["job_id"], "baseline_job": base["job_id"], "candidate_f1": cand["f1"],
                    "baseline_f1": base["f1"], "candidate_steps": cand["train_steps"],
                    "baseline_steps": base["train_steps"]})

    def best_single(key: tuple[Any, ...], langs: set[str]) -> pd.Series | None:
        """The transfer row at `key` of the source (among `langs`) best on the clean test set at that seed."""
        pool = by_key.get(key)
        if pool is None:
            return None
        here = pool[pool["sources"].isin(langs)]
        clean = by_key.get((*key[:2], CLEAN, *key[3:]))
        scores = {} if clean is None else dict(zip(clean["sources"], clean["f1"]))
        # `best_source` among its sources on the clean set; where no clean rows exist, on this perturbation
        best = best_source({s: f for s, f in scores.items() if s in langs}) \
            or best_source(dict(zip(here["sources"], here["f1"])))
        chosen = here[here["sources"] == best]
        return None if chosen.empty else chosen.iloc[-1]

    for _, row in df.iterrows():
        key = tuple(row[k] for k in keys)
        langs = {s for s in str(row["sources"]).split(",") if s}
        pool = by_key.get(key)
        if row["setting"] == "distill" and row["method"] == PLAIN:
            if (best := best_single(key, langs)) is not None:
                add("student_vs_best_teacher", row, best)
            if len(langs) > 1 and (ms := multi_by_key.get(key)) is not None:
                same = ms[(ms["sources"] == row["sources"]) & same_compute(ms["train_steps"], row["train_steps"])]
                if not same.empty:
                    add("student_vs_multi_source", row, same.iloc[-1])
            if row["teacher_weights"] != "uniform" and (us := uniform_by_key.get(key)) is not None:
                same = us[(us["sources"] == row["sources"]) & same_compute(us["train_steps"], row["train_steps"])]
                if not same.empty:
                    add("similarity_vs_uniform", row, same.iloc[-1])
        elif row["setting"] == "multi_source" and row["method"] == PLAIN and pd.isna(row["max_steps"]):
            if (best := best_single(key, langs)) is not None:
                add("multi_source_vs_best_single", row, best)
        elif (pool is not None and row["setting"] in ("transfer", "tapt")
              and (kind := comparison_of_method(row["method"])) is not None):
            same = pool[pool["sources"] == row["sources"]]  # TAPT or a robust method vs plain transfer, same sources
            if not same.empty:
                add(kind, row, same.iloc[-1])
    pairs = pd.DataFrame(out, columns=list(PAIR_COLUMNS))
    return pairs.sort_values(["comparison", "model", "target", "candidate", "perturbation", "seed"],
                             kind="stable").reset_index(drop=True)


def paired_differences(pairs: pd.DataFrame, load: Callable[[str], list[dict[str, Any]] | None],
                       n_resamples: int = 1000, seed: int = 0, level: float = 0.95,
                       previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """`paired_difference` for every row of `comparison_pairs` whose two jobs' predictions `load` finds.

    Args:
        pairs: from `comparison_pairs`.
        load: job id -> its predictions, or None when they are not here (e.g. `evaluation.predictions.
            load_predictions` bound to a cache).
        n_resamples: bootstrap resamples per comparison.
        seed: resampling seed.
        level: interval level.
        previous: an earlier table (`read_paired_differences` of the committed one). A pair whose predictions are
            not here keeps its earlier measurement (diff, interval, p, sentences) when that table has the same two
            jobs at the same n_resamples with the same two F1s (the rows are still the ones it measured): the cache
            is machine-local, the committed table is what was measured. The bootstrap is seeded, so a pair measured
            again gives the same numbers.

    Returns:
        PAIRED_COLUMNS; pairs with neither predictions here nor an earlier measurement are left out. p_holm is p
        after Holm's correction within its family (FAMILY_KEYS: e.g. all students against their best teachers,
        clean, one seed), family_size how many tests that family has here. `attrs["carried"]`: how many rows came
        from `previous`; `attrs["stale"]`: jobs whose predictions here do not reproduce their row's F1
        (`reproduces`), treated as absent.
    """
    usable: dict[str, list[dict[str, Any]] | None] = {}  # a teacher's job serves many students: read it once
    stale: set[str] = set()

    def once(job: str, f1: float) -> list[dict[str, Any]] | None:
        """The job's predictions, or None when absent or another model's (not reproducing the row's F1)."""
        if job not in usable:
            preds = load(job)
            if preds is not None and not reproduces(preds, f1):
                stale.add(job)
                preds = None
            usable[job] = preds
        return usable[job]

    measured = ("diff", "low", "high", "p", "n_sentences", "n_resamples", "same_sentences")
    earlier: dict[tuple[str, str, str], dict[str, Any]] = {}
    if previous is not None and not previous.empty:
        for e in previous.to_dict("records"):
            if int(e["n_resamples"]) == n_resamples:
                earlier[(str(e["comparison"]), str(e["candidate_job"]), str(e["baseline_job"]))] = e
    rows, carried = [], 0
    for _, r in pairs.iterrows():
        base = once(str(r["baseline_job"]), r["baseline_f1"])
        cand = once(str(r["candidate_job"]), r["candidate_f1"])
        if base is None or cand is None:
            e = earlier.get((str(r["comparison"]), str(r["candidate_job"]), str(r["baseline_job"])))
            # carried only while both rows are still the measurements it was made from (the same F1s)
            if e is not None and all(same_f1(float(e[c]), float(r[c])) for c in ("candidate_f1", "baseline_f1")):
                rows.append({**{c: r[c] for c in PAIR_COLUMNS}, **{c: e[c] for c in measured}})
                carried += 1
            continue
        d = paired_difference(base, cand, n_resamples=n_resamples, seed=seed, level=level)
        rows.append({**{c: r[c] for c in PAIR_COLUMNS}, "diff": d.diff, "low": d.low, "high": d.high, "p": d.p,
                     "n_sentences": d.n_sentences, "n_resamples": d.n_resamples,
                     "same_sentences": d.same_sentences})
    table = pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
    table.attrs["carried"] = carried
    table.attrs["stale"] = sorted(stale)
    if table.empty:
        return table
    families = table.groupby(list(FAMILY_KEYS), dropna=False, sort=False)["p"]
    table["p_holm"] = families.transform(lambda p: pd.Series(holm(p.tolist()), index=p.index))
    table["family_size"] = families.transform("size").astype(int)
    return table


def read_paired_differences(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The committed table (`scripts/paired_report.py`), or an empty frame with PAIRED_COLUMNS when absent."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=list(PAIRED_COLUMNS))
    missing = [c for c in PAIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: not a paired-differences table (missing columns {missing}); "
                        "write it with scripts/paired_report.py")
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").fillna(-1).astype(int)
    return frame[list(PAIRED_COLUMNS)]


def retrained_jobs(committed: pd.DataFrame, stored: pd.DataFrame) -> set[str]:
    """The jobs whose `stored` row stands in for a committed row of the same job id with another F1 (beyond
    F1_TOLERANCE): the same configuration trained again. A stored job the committed rows lack is a new
    measurement, and one with the committed F1 (an imported row) the same measurement; neither is a retraining.

    Args:
        committed: results rows (`committed_results`), F1 as a fraction.
        stored: results rows of a store (`ResultsStore.frame`), same schema.
    """
    def overall(frame: pd.DataFrame) -> pd.Series:
        rows = frame[frame["scope"] == "overall"] if "scope" in frame.columns else frame
        return pd.to_numeric(rows.drop_duplicates("job_id", keep="last").set_index("job_id")["f1"], errors="coerce")

    if committed.empty or stored.empty:
        return set()
    old, new = overall(committed), overall(stored)
    both = new.index.intersection(old.index)
    moved = (100 * (new[both] - old[both])).abs() > F1_TOLERANCE  # NaN: no F1 to tell by, not counted
    return {str(j) for j in both[moved.to_numpy()]}


def mark_trained_again(table: pd.DataFrame, jobs: set[str]) -> pd.DataFrame:
    """`table` with TRAINED_AGAIN appended to the candidate / baseline label of each test whose job is in `jobs`
    (the jobs of models trained again, whose rows stand in for the committed rows of the same job ids)."""
    out = table.copy()
    for side in ("candidate", "baseline"):
        hit = out[f"{side}_job"].astype(str).isin(jobs) & ~out[side].astype(str).str.endswith(TRAINED_AGAIN)
        out.loc[hit, side] = out.loc[hit, side].astype(str) + TRAINED_AGAIN
    return out


def with_same_code(committed: pd.DataFrame, same_code: pd.DataFrame) -> pd.DataFrame:
    """The committed tests followed by the same-code tests (SAME_CODE_FILE) that measure something else.

    A same-code test of the same comparison and jobs whose two F1s match a committed test's (within F1_TOLERANCE)
    is that measurement again and is dropped; one whose F1s differ paired another training of the same job (a
    model trained again), and is kept beside the committed one, its labels saying so (`mark_trained_again`).
    Each keeps its own family's Holm correction.
    """
    if same_code.empty:
        return committed
    if committed.empty:
        return same_code.reset_index(drop=True)
    key = ["comparison", "candidate_job", "baseline_job"]
    ours = same_code.reset_index(drop=True)
    joined = ours.merge(committed[[*key, "candidate_f1", "baseline_f1"]], on=key, how="left",
                        suffixes=("", "_committed"))
    repeated = same_f1(joined["candidate_f1"], joined["candidate_f1_committed"]) & \
        same_f1(joined["baseline_f1"], joined["baseline_f1_committed"])
    return pd.concat([committed, ours[~repeated.to_numpy()]], ignore_index=True)


DISPLAY_COLUMNS: tuple[str, ...] = ("comparison", "target", "candidate", "baseline", "perturbation", "seed",
                                    "candidate_f1", "baseline_f1", "diff", "low", "high", "p", "p_holm", "family_size",
                                    "n_sentences", "same_sentences",
                                    "candidate_steps", "baseline_steps")


def paired_rows(table: pd.DataFrame, comparisons: tuple[str, ...], target: str | None = None,
                model: str | None = None, method: str | None = None) -> pd.DataFrame:
    """The rows of a paired-differences table a view shows: some comparisons, one target and model (None: all).

    Args:
        table: `paired_differences` / `read_paired_differences`.
        comparisons: keys of COMPARISONS.
        target: a target language, or None.
        model: a model, or None.
        method: the candidate's training method (e.g. "pgd · ε 0.1"), or None.

    Returns:
        DISPLAY_COLUMNS, in the order of `comparisons`; within each, clean first, then by candidate, perturbation
        and seed.
    """
    rows = table[table["comparison"].isin(comparisons)]
    if target is not None:
        rows = rows[rows["target"] == target]
    if model is not None:
        rows = rows[rows["model"] == model]
    if method is not None:
        rows = rows[rows["method"] == method]
    order = rows.assign(_clean=rows["perturbation"] != "clean")
    rank = {kind: i for i, kind in enumerate(comparisons)}
    order = order.assign(_kind=order["comparison"].map(rank))
    order = order.sort_values(["_kind", "_clean", "candidate", "perturbation", "seed"], kind="stable")
    return order[list(DISPLAY_COLUMNS)].reset_index(drop=True)


def pairs_without_paired_test(comparison: pd.DataFrame, paired: pd.DataFrame) -> list[str]:
    """The pairs of a method comparison (`analysis.methods.method_comparison`: `pair`, `target`, `seed`) that have
    no paired test among `paired` (`paired_rows` of the same comparison, method and model) at the same target and
    seed, in the comparison's order: e.g. the baseline's predictions here are another model's (`reproduces`)."""
    have = set(zip(paired["target"].astype(str), pd.to_numeric(paired["seed"]).astype(int)))
    out: list[str] = []
    for _, r in comparison.iterrows():
        if (str(r["target"]), int(r["seed"])) not in have and str(r["pair"]) not in out:
            out.append(str(r["pair"]))
    return out


def paired_sentence(row: pd.Series) -> str:
    """One paired comparison in words, e.g. "distill es+fr − transfer es: +1.38 [+0.55, +2.22] F1, p = 0.006
    (paired bootstrap over 3,401 test sentences, seed 1; Holm over 19 such tests: p = 0.11)"."""
    from xner_core.analysis.findings import p_is

    holm_part = ""
    if "p_holm" in row and row["p_holm"] == row["p_holm"] and int(row.get("family_size", 1)) > 1:
        holm_part = f"; Holm over {int(row['family_size'])} such tests: {p_is(float(row['p_holm']))}"
    return (f"{row['candidate']} − {row['baseline']}: {row['diff']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}] "
            f"F1, {p_is(float(row['p']))} (paired bootstrap over {int(row['n_sentences']):,} test sentences, seed "
            f"{int(row['seed'])}{holm_part})")


def paired_summary(rows: pd.DataFrame, level: float = 0.95) -> str:
    """What a set of like paired tests says at a glance, e.g. "9 tests: 2 intervals above 0, 1 below, 6 span 0;
    after Holm's correction 0 stay below 0.05".

    Args:
        rows: rows of one comparison and perturbation (`paired_rows`), with low, high, p and p_holm.
        level: the intervals' level (their p threshold is 1 - level).

    Returns:
        The summary; "no tests" for no rows.
    """
    from xner_core.analysis.findings import counted

    if rows.empty:
        return "no tests"
    above = int((rows["low"] > 0).sum())
    below = int((rows["high"] < 0).sum())
    text = (f"{counted(len(rows), 'test')}: {above} interval{'s' if above != 1 else ''} above 0, {below} below, "
            f"{len(rows) - above - below} span{'s' if len(rows) - above - below == 1 else ''} 0")
    holm_p = pd.to_numeric(rows["p_holm"], errors="coerce") if "p_holm" in rows else pd.Series(dtype=float)
    if holm_p.notna().any():
        text += f"; after Holm's correction {int((holm_p < 1 - level).sum())} stay below {1 - level:.2f}"
    return text
