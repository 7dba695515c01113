"""Stage 7, analysis: view frames over the tidy frame (`xner_core.analysis.tidy`): averaged points, heatmap
pivots, one pair's rows and comparison table, source diversity and distillation students beside their teachers, run
counts, and chart selections back to filters.
"""

from __future__ import annotations

import re
from typing import Any, Hashable, Mapping, Sequence, TypeVar

import numpy as np
import pandas as pd

from xner_core.analysis.tidy import (
    _OURS_EXTRA,
    _OVERLAP_COLUMNS,
    _URIEL_COLUMNS,
    CLEAN,
    TIDY_COLUMNS,
    TRAINED_AGAIN,
    row_protocols,
)

# What a chart point carries in Plotly's customdata, in this order (read back by `selection_to_filter`).
CUSTOM_FIELDS: tuple[str, ...] = ("source", "target", "model", "setting", "perturbation", "origin", "pair")
_KEYS = ("origin", "pair", "pair_order", "relation", "source", "sources", "target", "model", "setting",
         "perturbation", "protocol")
_CODE_RE = re.compile(r"^[a-z]{2,3}(?:-[a-z]+)?$")
_MODEL_RE = re.compile(r"^[\w.\-/]{1,200}$")


def view_points(
    tidy: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    settings: Sequence[str] | None = None,
    perturbations: Sequence[str] | None = None,
    origins: Sequence[str] | None = None,
    scope: str = "overall",
    protocol: str | None = None,
) -> pd.DataFrame:
    """Filter the tidy frame and average repeated runs into one point per (pair, model, setting, perturbation,
    origin).

    Args:
        tidy: from `tidy_results`.
        models, settings, perturbations, origins: keep only these values (None keeps all).
        scope: "overall" or an entity type.
        protocol: keep only our rows of this protocol (`protocol_label`; the study's rows stay); None keeps all.
            Points average seeds; rows of different protocols are different experiments.

    Returns:
        One row per point with the key columns, mean f1 / clean_f1 / drop and their CI columns (the means of the
        runs' bootstrap bounds), the features (first value: they are properties of the pair), `runs` (rows
        averaged), `seeds` (distinct training seeds among them) and `f1_sd` / `clean_f1_sd` / `drop_sd`: the
        sample standard deviation across those runs (NaN for a single run), the spread that seeds add to the
        test-set uncertainty the bootstrap CIs describe.
    """
    df = tidy[tidy["scope"] == scope]
    if protocol is not None:
        df = df[(df["origin"] != "ours") | (df["protocol"] == protocol)]
    for col, keep in (("model", models), ("setting", settings), ("perturbation", perturbations),
                      ("origin", origins)):
        if keep is not None:
            df = df[df[col].isin(list(keep))]
    if df.empty:
        return df.assign(runs=pd.Series(dtype=int))
    values = ["f1", "f1_low", "f1_high", "clean_f1", "drop", "drop_low", "drop_high"]
    features = [c for c in TIDY_COLUMNS if c in (*_OVERLAP_COLUMNS, *_URIEL_COLUMNS, *_OURS_EXTRA)]
    agg: dict[str, Any] = {c: "mean" for c in values}
    agg.update({c: "first" for c in features})
    agg["job_id"] = "count"
    grouped = df.groupby(list(_KEYS), sort=False, dropna=False)
    out = grouped.agg(agg).reset_index()
    spread = grouped.agg(f1_sd=("f1", "std"), clean_f1_sd=("clean_f1", "std"), drop_sd=("drop", "std"),
                         seeds=("seed", "nunique")).reset_index(drop=True)
    out = pd.concat([out, spread], axis=1)
    out["seeds"] = out["seeds"].clip(lower=1).astype(int)
    return out.rename(columns={"job_id": "runs"}).assign(runs=lambda d: d["runs"].clip(lower=1))


def pivot_drops(points: pd.DataFrame, value: str = "drop", order: Sequence[str] | None = None) -> pd.DataFrame:
    """Pivot points into the heatmap matrix: pairs (study order) x perturbations.

    Args:
        points: rows of one model/setting/origin (e.g. from `view_points`); repeated cells are averaged.
        value: the column to show ("drop" or "f1").
        order: perturbation column order (default: the order of first appearance).

    Returns:
        A frame indexed by pair label with one column per perturbation (NaN where no value).
    """
    if points.empty:
        return pd.DataFrame()
    cols = list(order) if order is not None else list(dict.fromkeys(points["perturbation"]))
    rows = points.sort_values(["pair_order", "pair"], kind="stable")["pair"].drop_duplicates().tolist()
    table = points.pivot_table(index="pair", columns="perturbation", values=value, aggfunc="mean")
    return table.reindex(index=rows, columns=[c for c in cols if c in table.columns])


def pair_rows(tidy: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    """Rows of one reference pair: transfer from `source` to `target` and the native model of `target`.

    Args:
        tidy: from `tidy_results`.
        source: the pair's source language.
        target: the pair's target language.

    Returns:
        The matching rows of every origin, model, perturbation and scope.
    """
    transfer = (tidy["setting"] == "transfer") & (tidy["sources"] == source) & (tidy["target"] == target)
    native = (tidy["setting"] == "native") & (tidy["target"] == target)
    return tidy[transfer | native].reset_index(drop=True)


def compare_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The published-beside-ours table of a pair: one row per (setting, perturbation), one column per
    model · origin, F1 in points (overall scope).

    Args:
        rows: from `pair_rows`.

    Returns:
        A frame with columns setting, perturbation and one `"<model> · <origin>"` column per series.
    """
    df = rows[rows["scope"] == "overall"]
    if df.empty:
        return pd.DataFrame(columns=["setting", "perturbation"])
    df = df.assign(series=df["model"] + " · " + df["origin"])
    table = df.pivot_table(index=["setting", "perturbation"], columns="series", values="f1", aggfunc="mean")
    return table.reset_index().rename_axis(columns=None)


_K = TypeVar("_K", bound=Hashable)


def best_source(clean_f1: Mapping[_K, float]) -> _K | None:
    """The one rule for "the best single source" (a student's best teacher, a target's best single source): the
    source whose model scores highest on the clean test set, then held to every perturbation (a perturbed test set
    depends on the sources a model saw, so scores under a perturbation are not on one test set). Ties go to the
    first source in sort order, so the choice does not depend on row order.

    Args:
        clean_f1: source (or a sortable key such as (sources, protocol)) -> clean F1; NaN scores are ignored.

    Returns:
        The best key, or None when no score is given.
    """
    scored = {k: float(v) for k, v in clean_f1.items() if v is not None and v == v}
    if not scored:
        return None
    return min(scored, key=lambda k: (-scored[k], k))


# diversity_view's rows: one per these keys, the mean of these values over seeds (then `seeds`, how many)
_DIVERSITY_KEYS: tuple[str, ...] = ("model", "setting", "sources", "n_sources", "diversity", "perturbation", "protocol")
_DIVERSITY_VALUES: tuple[str, ...] = ("f1", "clean_f1", "drop", "f1_low", "f1_high", "train_steps")


def diversity_view(tidy: pd.DataFrame, target: str, diversity: Mapping[str, float | None],
                   protocol: str | None = None) -> pd.DataFrame:
    """Our multi-source / distillation rows of a target, plus its best single-source transfer model.

    Args:
        tidy: from `tidy_results`.
        target: the target language.
        diversity: sources (comma-joined) -> diversity index (e.g. mean pairwise URIEL genetic distance from
            `xner_core.features.distance.source_diversity`); None or missing = unknown.
        protocol: the run to show (e.g. the sidebar's "Our runs") when the target has multi-source or
            distillation rows made that way; otherwise (or None) the protocol most of those rows have.

    Returns:
        Rows (overall scope, origin ours) with columns model, setting ("multi_source", "distill", "best single
        source", or e.g. "multi_source · ≤1,000 steps" for a model trained with a cap on its steps, "distill ·
        similarity weights" for students whose teachers were weighted by language similarity), sources,
        n_sources, diversity, perturbation, f1, clean_f1, drop, f1_low, f1_high, train_steps, protocol, seeds (how
        many seeds the means are over); empty when there are no multi-source or distillation rows for the target.
        One protocol (see `protocol`), and the single-source models made that way, at the seeds of the multi-source
        and distillation rows (the best single source among those measured at all of them, where any is).
    """
    df = tidy[(tidy["origin"] == "ours") & (tidy["target"] == target) & (tidy["scope"] == "overall")]
    multi = df[df["setting"].isin(["multi_source", "distill"])]
    if not multi.empty:  # one experiment: the one asked for, else the protocol most of these rows were made with
        chosen = protocol if protocol is not None and (multi["protocol"] == protocol).any() \
            else multi["protocol"].value_counts().index[0]
        multi = multi[multi["protocol"] == chosen]
    if multi.empty:
        return pd.DataFrame(columns=[*_DIVERSITY_KEYS, *_DIVERSITY_VALUES, "seeds"])
    if "max_steps" in multi.columns:  # a step-capped (equal-compute) model is its own series, never averaged in
        capped = multi["max_steps"].notna()
        multi = multi.assign(setting=[f"{s} · ≤{int(n):,} steps" if c else s
                                      for s, n, c in zip(multi["setting"], multi["max_steps"], capped)])
    if "teacher_weights" in multi.columns:  # students with similarity-weighted teachers: their own series too
        multi = multi.assign(setting=[f"{s} · {w} weights" if w not in (None, "uniform") and w == w else s
                                      for s, w in zip(multi["setting"], multi["teacher_weights"])])
    single = df[df["setting"] == "transfer"]
    best_parts = []
    for model, group in single.groupby("model"):
        # only single-source models made the way the multi-source ones were (same data, caps, epochs), at the seeds
        # they have (a run with more seeds of its transfer models would otherwise average in the other seeds)
        mine = multi[multi["model"] == model]
        group = group[group["protocol"].isin(set(mine["protocol"]))]
        seeds = set(pd.to_numeric(mine["seed"], errors="coerce").dropna())
        if seeds:
            group = group[pd.to_numeric(group["seed"], errors="coerce").isin(seeds)]
        clean_rows = group[group["perturbation"] == CLEAN]
        # like with like: where some sources were measured at every one of those seeds, the best is one of them
        # (a source with fewer seeds is not compared on a mean over other seeds)
        counts = clean_rows.groupby(["sources", "protocol"])["seed"].nunique()
        if seeds and (counts >= len(seeds)).any():
            complete = set(counts[counts >= len(seeds)].index)
            clean_rows = clean_rows[[k in complete for k in zip(clean_rows["sources"], clean_rows["protocol"])]]
        clean = clean_rows.groupby(["sources", "protocol"])["f1"].mean()
        if (chosen_key := best_source(clean.to_dict())) is not None:
            sources, protocol = chosen_key
            best = group[(group["sources"] == sources) & (group["protocol"] == protocol)]
            best_parts.append(best.assign(setting="best single source"))
    out = pd.concat([multi, *best_parts], ignore_index=True)
    out["n_sources"] = [len([s for s in str(x).split(",") if s]) for x in out["sources"]]
    out["diversity"] = [np.nan if (d := diversity.get(s)) is None else float(d) for s in out["sources"]]
    grouped = out.groupby(list(_DIVERSITY_KEYS), dropna=False)
    means = grouped[list(_DIVERSITY_VALUES)].mean()
    means["seeds"] = grouped["seed"].nunique(dropna=False)  # a row without a seed: one unknown seed
    return means.reset_index()


STUDENT_COLUMNS: tuple[str, ...] = (
    "model", "target", "sources", "teacher_weights", "n_sources", "perturbation", "protocol", "student_f1",
    "best_teacher", "best_teacher_f1", "mean_teacher_f1", "gap", "student_steps", "teacher_steps", "seeds",
    "teachers_missing")


def student_teacher_view(tidy: pd.DataFrame, target: str | None = None,
                         trained_again: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each distillation student beside its teachers (Wu et al.: does a student match or beat what taught it?).

    A student's teachers are the transfer models of its sources, made under the same protocol and seed (the grid
    trains them as such); they are scored on the same test set and perturbation. Both sides are averaged over the
    seeds that have the student and all its teachers. Where a teacher's job was trained again (`trained_again`:
    rows of the same jobs from a retraining, kept apart from the committed ones), the training that taught the
    student is the one it met: the latest made no later than the student (`model_time`), else the earliest.

    Args:
        tidy: from `tidy_results`.
        target: one target, or None for all.
        trained_again: tidy rows (`tidy_results`) of models trained again under the job ids of committed rows
            (`data/results/retrained/`); None or empty for none.

    Returns:
        STUDENT_COLUMNS, one row per (model, target, sources, teacher_weights, perturbation, protocol), where
        teacher_weights is "uniform" or "similarity" (Wu et al.'s two ways to weight teachers); F1 in points;
        best_teacher (the source whose model scores highest on the clean test set, over the same seeds: under a
        perturbation that teacher's F1 there, since each model's perturbed set depends on the sources it saw; its
        label ends in TRAINED_AGAIN where that model is a retraining) and its F1; gap = student_f1 -
        best_teacher_f1; student_steps and teacher_steps (all teachers' optimiser steps: the compute behind the
        student; NaN where the rows predate the column); seeds (how many entered); teachers_missing (sources with
        no rows of their own at any of the student's seeds; the row's teacher columns are then NaN).
    """
    def ours(frame: pd.DataFrame | None) -> pd.DataFrame:
        if frame is None or frame.empty:
            return tidy.iloc[0:0]
        out = frame[(frame["origin"] == "ours") & (frame["scope"] == "overall")]
        if target is not None:
            out = out[out["target"] == target]
        # rows without a seed (older stores) pair with rows without one: -1 stands for "unknown" on both sides
        return out.assign(seed=pd.to_numeric(out["seed"], errors="coerce").fillna(-1).astype(int))

    df = ours(tidy)
    if not (df["setting"] == "distill").any():
        return pd.DataFrame(columns=list(STUDENT_COLUMNS))
    students = df[df["setting"] == "distill"]
    # a teacher's versions: the committed training ("") and, where its job was trained again, the retraining
    versions = {"": df[df["setting"] == "transfer"]}
    again = ours(trained_again)
    if not again.empty:
        versions[TRAINED_AGAIN] = again[again["setting"] == "transfer"]
    t_f1 = {v: t.groupby(["model", "target", "sources", "perturbation", "protocol", "seed"])["f1"].mean()
            for v, t in versions.items()}
    t_time = {v: t.groupby(["model", "target", "sources", "protocol", "seed"])["model_time"].max()
              for v, t in versions.items()}
    t_steps = {v: t.groupby(["model", "sources", "protocol", "seed"])["train_steps"].max()
               for v, t in versions.items()}

    def version(key: tuple[Any, ...], when: Any) -> str:
        """Which training of the teacher `key` (model, target, source, protocol, seed) taught a student trained at
        `when`: the latest no later than it, else the earliest ("" when only the committed one is known)."""
        found = [(t_time[v].get(key), v) for v in versions if key in t_time[v].index]
        known = [(t, v) for t, v in found if not pd.isna(t)]
        before = [(t, v) for t, v in known if not pd.isna(when) and t <= when]
        if before:
            return max(before, key=lambda tv: tv[0])[1]
        if known:
            return min(known, key=lambda tv: tv[0])[1]
        return found[0][1] if found else ""

    out = []
    keys = ["model", "target", "sources", "teacher_weights", "perturbation", "protocol"]
    for key, group in students.groupby(keys, dropna=False):
        model, tgt, sources, weights, pert, protocol = key
        langs = [s for s in str(sources).split(",") if s]
        per_seed: list[tuple[float, dict[str, float], float, dict[str, float], dict[str, str]]] = []
        missing: set[str] = set()
        for seed, srow in group.groupby("seed"):
            when = srow["model_time"].max()
            chosen = {lang: version((model, tgt, lang, protocol, seed), when) for lang in langs}
            scores = {lang: t_f1[v].get((model, tgt, lang, pert, protocol, seed)) for lang, v in chosen.items()}
            absent = [lang for lang, v in scores.items() if v is None or v != v]
            missing.update(absent)
            if absent:
                continue
            steps = [t_steps[chosen[lang]].get((model, lang, protocol, seed)) for lang in langs]
            total = float(sum(steps)) if all(x is not None and x == x for x in steps) else np.nan
            clean = {lang: t_f1[v].get((model, tgt, lang, CLEAN, protocol, seed)) for lang, v in chosen.items()}
            per_seed.append((float(srow["f1"].mean()), {k: float(v) for k, v in scores.items()}, total,
                             {k: float(v) for k, v in clean.items() if v is not None and v == v}, chosen))
        row: dict[str, Any] = {"model": model, "target": tgt, "sources": sources, "teacher_weights": weights,
                               "n_sources": len(langs),
                               "perturbation": pert, "protocol": protocol,
                               "student_f1": float(group["f1"].mean()),
                               "student_steps": float(pd.to_numeric(group["train_steps"]).mean()),
                               "seeds": len(per_seed), "teachers_missing": ",".join(sorted(missing))}
        if per_seed:
            mean_by_lang = {lang: float(np.mean([s[1][lang] for s in per_seed])) for lang in langs}
            # `best_source`: best on the clean test set (the perturbation's own scores only where clean rows are
            # missing)
            has_clean = all(set(s[3]) == set(langs) for s in per_seed)
            rank = {lang: float(np.mean([s[3][lang] for s in per_seed])) for lang in langs} if has_clean \
                else mean_by_lang
            best = best_source(rank)
            assert best is not None  # every source of the student has a finite score at each seed in per_seed
            retrained = any(s[4][best] == TRAINED_AGAIN for s in per_seed)
            row.update(student_f1=float(np.mean([s[0] for s in per_seed])),
                       best_teacher=best + (TRAINED_AGAIN if retrained else ""),
                       best_teacher_f1=mean_by_lang[best], mean_teacher_f1=float(np.mean(list(mean_by_lang.values()))),
                       teacher_steps=float(np.mean([s[2] for s in per_seed])))
            row["gap"] = row["student_f1"] - row["best_teacher_f1"]
        out.append(row)
    return pd.DataFrame(out).reindex(columns=list(STUDENT_COLUMNS))


def run_counts(results: pd.DataFrame) -> pd.DataFrame:
    """Rows and evaluation jobs per (protocol, model, target, setting) of a results frame (`ResultsStore().frame()`).

    Args:
        results: rows in the results schema.

    Returns:
        Columns protocol (`protocol_label`: runs made differently are counted apart), model, target, setting,
        rows, jobs, perturbations; sorted by protocol, model, target, setting.
    """
    keys = ["protocol", "model", "target", "setting"]
    cols = [*keys, "rows", "jobs", "perturbations"]
    if results is None or results.empty:
        return pd.DataFrame(columns=cols)
    g = results.assign(protocol=row_protocols(results)).groupby(keys)
    out = pd.DataFrame({
        "rows": g.size(),
        "jobs": g["job_id"].nunique(),
        "perturbations": g["perturbation"].nunique(),
    }).reset_index()
    return out.sort_values(keys).reset_index(drop=True)[cols]


def selection_to_filter(selection: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Turn a Plotly chart selection event (`st.plotly_chart(..., on_select="rerun")`) into a pair filter.

    The overview's points carry CUSTOM_FIELDS in `customdata`; the first selected point that has them decides.

    Args:
        selection: the event's `selection` mapping ({"points": [{"customdata": [...], ...}], ...}) or the whole
            event ({"selection": {...}}); None or no points = no filter.

    Returns:
        {"source": ..., "target": ..., "model": ...} (the pair explorer's query parameters), or None when no
        selected point carries valid values (band and line traces carry none).
    """
    if not selection:
        return None
    if "selection" in selection and "points" not in selection:
        selection = selection["selection"] or {}
    for point in selection.get("points") or ():
        custom = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(custom, Mapping):
            values = {k: custom.get(k) for k in CUSTOM_FIELDS}
        elif isinstance(custom, (list, tuple)) and len(custom) >= 3:
            values = dict(zip(CUSTOM_FIELDS, custom))
        else:
            continue
        source, target, model = (str(values.get(k) or "") for k in ("source", "target", "model"))
        if _CODE_RE.match(source) and _CODE_RE.match(target) and _MODEL_RE.match(model):
            return {"source": source, "target": target, "model": model}
    return None
