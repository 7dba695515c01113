"""Stage 7, analysis for the views: one tidy results frame, correlations, regression lines, pivots, selections.

Pure functions over pandas frames (results and plots are the two places where frames cross module lines,
DESIGN.md). Nothing here imports Streamlit, so the dashboard, benchmarks and notebooks compute the same numbers.

The tidy frame (`tidy_results`) puts the study's published F1 (`data/reference/paper_ner_f1.csv`) and our own
result rows (`xner_core.experiments.store` schema) in one table with the same columns and units:
- F1 and drops in F1 points (0-100); our rows store F1 as 0..1 and are scaled here;
- perturbations under their registry names (the study's P1/P2/P3 are `entity_replace`, `context_replace`,
  `entity_context`), "clean" for the clean test set;
- one pair label per row ("fr→br"): a native row of target `br` carries the label of the reference pair whose
  target is `br`, so native and transfer points of one pair line up and a click on either opens that pair;
- feature columns joined from `data/overlap_reference_pairs.csv` (our overlap measures beside the study's) and
  `data/uriel_distances.csv` (0 for native rows: a language's distance to itself).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xner_core.corpus.languages import LanguagePair

CLEAN = "clean"
# The study's condition names -> our perturbation registry names (paper-spec §4).
PAPER_CONDITIONS: Mapping[str, str] = {
    "clean": CLEAN,
    "P1": "entity_replace",
    "P2": "context_replace",
    "P3": "entity_context",
}
ORIGINS: tuple[str, ...] = ("published", "ours")
# y-axis choices of the overview: column -> label.
OUTCOMES: Mapping[str, str] = {"drop": "F1 drop (clean − perturbed, points)", "f1": "F1 (points)"}
URIEL_KINDS: tuple[str, ...] = ("genetic", "geographic", "syntactic", "phonological", "inventory", "featural")
# x-axis choices of the overview: column -> label. "(ours)" = measured on our data (WikiANN Rahimi splits),
# "(study)" = the study's own measure on its data (paper-spec §5).
FEATURES: Mapping[str, str] = {
    "entity_token_overlap": "Entity-token overlap (ours)",
    "paper_token_overlap": "Entity-token overlap (study)",
    "unique_chunk_overlap": "Unique entity-chunk overlap (ours)",
    "paper_unique_chunk_overlap": "Unique entity-chunk overlap (study)",
    "o_word_overlap": "O-word overlap (ours)",
    "o_word_overlap_p2": "P2 context-word fraction (ours)",
    "subword_token_overlap": "Sub-word token overlap (our result rows)",
    **{f"uriel_{k}": f"URIEL {k} distance" for k in URIEL_KINDS},
}
# Features the overlap table provides, and the study's columns of it.
_OVERLAP_COLUMNS: tuple[str, ...] = ("entity_token_overlap", "unique_chunk_overlap", "o_word_overlap",
                                     "o_word_overlap_p2", "paper_token_overlap", "paper_unique_chunk_overlap",
                                     "paper_p2_o_token_fraction")
_URIEL_COLUMNS: tuple[str, ...] = tuple(f"uriel_{k}" for k in URIEL_KINDS)
_OURS_EXTRA: tuple[str, ...] = ("subword_type_overlap", "subword_token_overlap", "n_sources",
                                "diversity_genetic", "diversity_syntactic")
# Columns of the tidy frame, in order.
TIDY_COLUMNS: tuple[str, ...] = (
    "origin", "pair", "pair_order", "relation", "source", "sources", "target", "model", "setting", "perturbation",
    "scope", "f1", "f1_low", "f1_high", "clean_f1", "drop", "drop_low", "drop_high", "n_sentences", "seed",
    "perturb_seed", "job_id", "protocol", *_OVERLAP_COLUMNS, *_URIEL_COLUMNS, *_OURS_EXTRA,
)
STUDY_PROTOCOL = "study"  # the `protocol` of the published rows
# What a chart point carries in Plotly's customdata, in this order (read back by `selection_to_filter`).
CUSTOM_FIELDS: tuple[str, ...] = ("source", "target", "model", "setting", "perturbation", "origin", "pair")
_KEYS = ("origin", "pair", "pair_order", "relation", "source", "sources", "target", "model", "setting",
         "perturbation", "protocol")
_CODE_RE = re.compile(r"^[a-z]{2,3}(?:-[a-z]+)?$")
_MODEL_RE = re.compile(r"^[\w.\-/]{1,200}$")


# ------------------------------------------------------------------------------------------------- inputs


def read_reference_tables(data_dir: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Read the committed tables the tidy frame joins (I/O; everything else in this module is pure).

    Args:
        data_dir: the repository's `data/` folder (default: `xner_core.paths.repo_data_dir()`).

    Returns:
        {"published": paper_ner_f1.csv, "overlap": overlap_reference_pairs.csv, "uriel": uriel_distances.csv}.
    """
    from xner_core.paths import repo_data_dir

    d = Path(data_dir) if data_dir else repo_data_dir()
    return {
        "published": pd.read_csv(d / "reference" / "paper_ner_f1.csv"),
        "overlap": pd.read_csv(d / "overlap_reference_pairs.csv"),
        "uriel": pd.read_csv(d / "uriel_distances.csv"),
    }


# ------------------------------------------------------------------------------------------------ the tidy frame


def _pair_info(pairs: Sequence[LanguagePair]) -> dict[str, tuple[str, str, int, str]]:
    """target -> (HRL source, label, order, relation) of the reference pair with that target."""
    return {p.target: (p.source, p.label, i + 1, p.relation) for i, p in enumerate(pairs)}


def _label(sources: Sequence[str], target: str) -> str:
    return "+".join(sources) + "→" + target


def _identify(sources_csv: str, target: str, setting: str,
              info: Mapping[str, tuple[str, str, int, str]]) -> tuple[str, str, int, str]:
    """(source, pair label, order, relation) of a row: the reference pair when the row belongs to one."""
    sources = [s for s in str(sources_csv).split(",") if s]
    ref = info.get(target)
    if ref is not None and (setting == "native" or sources == [ref[0]]):
        return ref
    if setting == "native" or not sources:
        return target, _label([target], target), 10_000, "other"
    return sources[0], _label(sources, target), 10_000, "other"


def _published_rows(published: pd.DataFrame, info: Mapping[str, tuple[str, str, int, str]]) -> pd.DataFrame:
    pub = published.copy()
    unknown = sorted(set(pub["condition"]) - set(PAPER_CONDITIONS))
    if unknown:
        raise ValueError(f"unknown study conditions {unknown}; expected {sorted(PAPER_CONDITIONS)}")
    pub["perturbation"] = pub["condition"].map(PAPER_CONDITIONS)
    clean = pub[pub["perturbation"] == CLEAN].set_index(["target", "model", "setting"])["f1"]
    pub["clean_f1"] = [clean.get((t, m, s), np.nan) for t, m, s in zip(pub["target"], pub["model"], pub["setting"])]
    pub["drop"] = pub["clean_f1"] - pub["f1"]
    pub["sources"] = pub["source"]
    ident = [_identify(s, t, st, info) for s, t, st in zip(pub["source"], pub["target"], pub["setting"])]
    pub["source"], pub["pair"], pub["pair_order"], pub["relation"] = map(list, zip(*ident))
    pub["origin"] = "published"
    pub["scope"] = "overall"
    pub["paper_token_overlap"] = pub["token_overlap"]
    pub["n_sources"] = 1.0
    pub["protocol"] = STUDY_PROTOCOL
    return pub.drop(columns=["condition", "token_overlap"])


def _our_rows(ours: pd.DataFrame, info: Mapping[str, tuple[str, str, int, str]]) -> pd.DataFrame:
    if ours is None or ours.empty:
        return pd.DataFrame(columns=list(TIDY_COLUMNS))
    df = ours.copy()
    for col in ("f1", "f1_low", "f1_high", "clean_f1", "drop", "drop_low", "drop_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce") * 100.0  # our rows store F1 as 0..1
    ident = [_identify(s, t, st, info) for s, t, st in zip(df["sources"], df["target"], df["setting"])]
    df["source"], df["pair"], df["pair_order"], df["relation"] = map(list, zip(*ident))
    df["origin"] = "ours"
    df["protocol"] = row_protocols(df)
    return df


def protocol_label(options: Any, data_protocol: Any = None, test_limit: Any = None) -> str:
    """A short name of how a result was produced: data protocol, training cap, epochs, learning rate, test cap.

    Rows of one grid share it; rows made another way (e.g. the diversity grid's 2000-sentence models beside the
    paper grid's 5000) get another, so views never average them into one point.

    Args:
        options: the row's training options (canonical JSON string or mapping).
        data_protocol: e.g. "wikiann-rahimi".
        test_limit: the test cap (None/NaN = whole test set).

    Returns:
        e.g. "wikiann-rahimi · ≤5000 train · 1 epoch · test ≤2000"; other non-default options are appended.
    """
    import json

    opts: dict[str, Any] = {}
    if isinstance(options, str) and options.strip():
        try:
            opts = json.loads(options)
        except ValueError:
            opts = {}
    elif isinstance(options, Mapping):
        opts = dict(options)
    cap = opts.get("max_train_sentences")
    epochs = opts.get("epochs", 1)
    parts = [str(data_protocol) if isinstance(data_protocol, str) and data_protocol else "wikiann-rahimi",
             f"≤{cap} train" if cap else "all train", f"{epochs} epoch" + ("s" if epochs != 1 else "")]
    if opts.get("lr") is not None:
        parts.append(f"lr {opts['lr']:g}")
    if opts.get("robust"):
        parts.append(f"robust {opts['robust']}")
    if opts.get("batch_size", 32) != 32:
        parts.append(f"batch {opts['batch_size']}")
    limit = pd.to_numeric(pd.Series([test_limit]), errors="coerce").iloc[0]
    parts.append(f"test ≤{int(limit)}" if pd.notna(limit) else "full test")
    return " · ".join(parts)


def row_protocols(results: pd.DataFrame) -> list[str]:
    """`protocol_label` of every row of a results frame (its options, data_protocol and test_limit columns)."""
    missing = [None] * len(results)
    return [protocol_label(o, d, t) for o, d, t in zip(results.get("options", missing),
                                                        results.get("data_protocol", missing),
                                                        results.get("test_limit", missing))]


def spec_protocol(spec: Any, model: str) -> str:
    """The protocol label the rows of a grid spec (`grid.load_spec`) get for `model`, e.g. to select its run."""
    from xner_core.experiments.config import canonical_json, config_to_dict, make_config

    # The label depends on the options and data protocol only; any target stands in for the spec's.
    cfg = make_config(model, "ca", "native", options=spec.options, data=spec.data)
    return protocol_label(canonical_json(config_to_dict(cfg)["options"]), spec.data, spec.test_limit)


def protocols(tidy: pd.DataFrame) -> list[str]:
    """Protocols of our rows, the one with the most rows first (the study's rows are not listed)."""
    ours = tidy[tidy["origin"] == "ours"]
    return list(ours["protocol"].value_counts(sort=True).index)


def _join_features(df: pd.DataFrame, overlap: pd.DataFrame, uriel: pd.DataFrame) -> pd.DataFrame:
    """Fill the overlap and URIEL columns from the committed tables where a row has no value of its own."""
    for col in (*_OVERLAP_COLUMNS, *_URIEL_COLUMNS, *_OURS_EXTRA):
        if col not in df.columns:
            df[col] = np.nan
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df = df.reset_index(drop=True)
    source_lists = [[s for s in str(x).split(",") if s] for x in df["sources"]]
    # The overlap table is per (training language, target, setting), as the study measured it.
    keys = pd.DataFrame({"source": [s[0] if len(s) == 1 else "" for s in source_lists],
                         "target": df["target"].astype(str), "setting": df["setting"].astype(str)})
    ov_cols = [c for c in _OVERLAP_COLUMNS if c in overlap.columns]
    table = overlap.drop_duplicates(["source", "target", "setting"])[["source", "target", "setting", *ov_cols]]
    joined = keys.merge(table, on=["source", "target", "setting"], how="left")
    for col in ov_cols:
        df[col] = df[col].fillna(joined[col])

    # URIEL: 0 for native rows (a language's distance to itself, as xner_core.evaluation.runner.pair_features), else the
    # mean over the sources, only when every source has a value.
    long = pd.DataFrame([(i, s, t) for i, (srcs, t) in enumerate(zip(source_lists, df["target"])) for s in srcs],
                        columns=["row", "source", "target"])
    ur_cols = [f"uriel_{k}" for k in URIEL_KINDS]
    ur = uriel.rename(columns={k: f"uriel_{k}" for k in URIEL_KINDS})
    ur = ur.drop_duplicates(["source", "target"])[["source", "target", *ur_cols]]
    long = long.merge(ur, on=["source", "target"], how="left")
    means = long.groupby("row")[ur_cols].agg(lambda v: v.mean() if v.notna().all() else np.nan)
    means = means.reindex(range(len(df)))
    native = (df["setting"] == "native").to_numpy() | np.array([s == [t] for s, t in zip(source_lists, df["target"])])
    for col in ur_cols:
        filled = np.where(native, 0.0, means[col].to_numpy(dtype=float))
        df[col] = df[col].fillna(pd.Series(filled, index=df.index))
    return df


def tidy_results(
    published: pd.DataFrame,
    ours: pd.DataFrame | None,
    overlap: pd.DataFrame,
    uriel: pd.DataFrame,
    pairs: Sequence[LanguagePair],
) -> pd.DataFrame:
    """Build the one tidy frame every view reads: the study's published F1 and ours, with pair features.

    Args:
        published: `data/reference/paper_ner_f1.csv` (source, target, model, setting, condition clean|P1|P2|P3,
            f1 in points, token_overlap).
        ours: our result rows (`xner_core.experiments.store.SCHEMA` columns; F1 as 0..1), e.g.
            `committed_results()` and `ResultsStore().frame()` concatenated; None or empty for none.
        overlap: `data/overlap_reference_pairs.csv` (our overlap measures beside the study's).
        uriel: `data/uriel_distances.csv` (source, target, one column per URIEL distance kind).
        pairs: the reference pairs (`xner_core.corpus.languages.reference_pairs()`), in the study's order.

    Returns:
        A frame with TIDY_COLUMNS: origin ("published" | "ours"), pair ("fr→br"), pair_order (1..13, 10000 for a
        pair outside the study), relation, source (the pair's source language), sources (training languages,
        comma-joined; the target for native), target, model, setting, perturbation ("clean" or a registry
        name), scope ("overall" or an entity type; published rows are overall), f1 / f1_low / f1_high /
        clean_f1 / drop / drop_low / drop_high in F1 points (CIs only for our rows), and the feature columns.
        Sorted by origin, pair order, model, setting, perturbation.
    """
    info = _pair_info(pairs)
    parts = [_published_rows(published, info), _our_rows(ours, info)]
    parts = [p for p in parts if not p.empty]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(TIDY_COLUMNS))
    for col in TIDY_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df = _join_features(df[list(TIDY_COLUMNS)].copy(), overlap, uriel)
    for col in ("f1", "f1_low", "f1_high", "clean_f1", "drop", "drop_low", "drop_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["pair_order"] = pd.to_numeric(df["pair_order"], errors="coerce").fillna(10_000).astype(int)
    origin_rank = df["origin"].map({o: i for i, o in enumerate(ORIGINS)})
    df = df.assign(_o=origin_rank).sort_values(["_o", "pair_order", "pair", "model", "setting", "perturbation",
                                                  "scope"], kind="stable")
    return df.drop(columns="_o").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------- view frames


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


def diversity_view(tidy: pd.DataFrame, target: str, diversity: Mapping[str, float | None]) -> pd.DataFrame:
    """Our multi-source / distillation rows of a target, plus its best single-source transfer model.

    Args:
        tidy: from `tidy_results`.
        target: the target language.
        diversity: sources (comma-joined) -> diversity index (e.g. mean pairwise URIEL genetic distance from
            `xner_core.features.distance.source_diversity`); None or missing = unknown.

    Returns:
        Rows (overall scope, origin ours) with columns model, setting ("multi_source", "distill" or
        "best single source"), sources, n_sources, diversity, perturbation, f1, clean_f1, drop, f1_low,
        f1_high, protocol; empty when there are no multi-source or distillation rows for the target. One
        protocol: the one most of the target's multi-source rows have, and single-source models of it.
    """
    df = tidy[(tidy["origin"] == "ours") & (tidy["target"] == target) & (tidy["scope"] == "overall")]
    multi = df[df["setting"].isin(["multi_source", "distill"])]
    if not multi.empty:  # one experiment: the protocol most of the target's multi-source rows were made with
        multi = multi[multi["protocol"] == multi["protocol"].value_counts().index[0]]
    if multi.empty:
        return pd.DataFrame(columns=["model", "setting", "sources", "n_sources", "diversity", "perturbation",
                                     "f1", "clean_f1", "drop", "f1_low", "f1_high", "protocol"])
    single = df[df["setting"] == "transfer"]
    best_parts = []
    for model, group in single.groupby("model"):
        # only single-source models made the way the multi-source ones were (same data, caps, epochs)
        group = group[group["protocol"].isin(set(multi.loc[multi["model"] == model, "protocol"]))]
        clean = group[group["perturbation"] == CLEAN].groupby(["sources", "protocol"])["f1"].mean()
        if not clean.empty:
            sources, protocol = clean.idxmax()
            best = group[(group["sources"] == sources) & (group["protocol"] == protocol)]
            best_parts.append(best.assign(setting="best single source"))
    out = pd.concat([multi, *best_parts], ignore_index=True)
    out["n_sources"] = [len([s for s in str(x).split(",") if s]) for x in out["sources"]]
    out["diversity"] = [np.nan if (d := diversity.get(s)) is None else float(d) for s in out["sources"]]
    keys = ["model", "setting", "sources", "n_sources", "diversity", "perturbation", "protocol"]
    vals = ["f1", "clean_f1", "drop", "f1_low", "f1_high"]
    return out.groupby(keys, dropna=False)[vals].mean().reset_index()


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


# ------------------------------------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with a CI and a p-value from the same method (see `correlation`).

    Attributes:
        method: "pearson" or "spearman".
        r: the coefficient on all points (NaN when undefined: fewer than 3 points or a constant variable).
        low, high: CI bounds.
        p: two-sided p-value of r = 0.
        n: number of points used (pairs with both values finite).
        level: CI level, e.g. 0.95.
        interval: "fisher" (CI and p from Fisher's z: they agree, the CI excludes 0 exactly when p < 1 - level)
            or "bootstrap" (percentile bootstrap CI beside scipy's p-value; they need not agree).
    """

    method: str
    r: float
    low: float
    high: float
    p: float
    n: int
    level: float
    interval: str = "fisher"


def _finite_xy(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length; got {xa.shape} and {ya.shape}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep]


def _rowwise_pearson(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two (B, n) matrices; NaN for rows with a constant variable."""
    xc = xs - xs.mean(axis=1, keepdims=True)
    yc = ys - ys.mean(axis=1, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / den
    # Floating-point noise can make a constant resample look non-constant; treat tiny spreads as constant.
    r[den <= 1e-12] = np.nan
    return np.clip(r, -1.0, 1.0)


INTERVALS: tuple[str, ...] = ("fisher", "bootstrap")
# Standard error of Fisher's z of a Spearman coefficient: sqrt(1.06 / (n - 3)) (Fieller, Hartley & Pearson 1957).
_SPEARMAN_Z_VARIANCE = 1.06


def fisher_z_test(r: float, n: int, method: str = "pearson", level: float = 0.95) -> tuple[float, float, float]:
    """CI and two-sided p-value of a correlation coefficient from Fisher's z = atanh(r).

    z is approximately normal with standard error 1/sqrt(n - 3) (Pearson) or sqrt(1.06 / (n - 3)) (Spearman).
    The CI is tanh(z ± q * se) with q the normal quantile of the level and p = 2 * P(Z > |z| / se): one method,
    so the CI excludes 0 exactly when p < 1 - level.

    Args:
        r: the coefficient.
        n: points it was computed on (needs n > 3).
        method: "pearson" or "spearman".
        level: CI level in (0, 1).

    Returns:
        (low, high, p); NaNs when n <= 3 or r is not finite.
    """
    from scipy import stats

    nan = float("nan")
    if n <= 3 or not np.isfinite(r):
        return nan, nan, nan
    se = math.sqrt((_SPEARMAN_Z_VARIANCE if method == "spearman" else 1.0) / (n - 3))
    z = math.atanh(min(max(r, -1 + 1e-15), 1 - 1e-15))
    q = float(stats.norm.ppf(1 - (1 - level) / 2))
    p = float(2 * stats.norm.sf(abs(z) / se))
    return math.tanh(z - q * se), math.tanh(z + q * se), p


def correlation(x: Sequence[float], y: Sequence[float], method: str = "pearson", n_boot: int = 2000,
                level: float = 0.95, seed: int = 0, interval: str = "fisher") -> Correlation:
    """Pearson or Spearman correlation with a CI and a p-value.

    The default interval is Fisher's z (`fisher_z_test`): its CI and p-value come from one method and agree. The
    percentile bootstrap (`interval="bootstrap"`) is kept for comparison: over 12-13 language pairs it gave
    intervals too narrow for scipy's p-values beside them (e.g. [+0.21, +0.88] with p = 0.059).

    Args:
        x: feature values (NaN pairs are dropped).
        y: outcome values.
        method: "pearson" or "spearman" (Pearson on ranks, average ranks for ties).
        n_boot: bootstrap resamples (interval="bootstrap"); resamples with a constant variable are skipped.
        level: CI level in (0, 1).
        seed: seed of the resampling (same inputs + seed = same CI).
        interval: "fisher" or "bootstrap".

    Returns:
        A Correlation; r, low, high and p are NaN when r is undefined (n < 3 or a constant variable); the Fisher
        CI and p need n > 3.
    """
    from scipy import stats

    if method not in ("pearson", "spearman"):
        raise ValueError(f"unknown correlation method {method!r}; choose one of: pearson, spearman")
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; choose one of: {', '.join(INTERVALS)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    xa, ya = _finite_xy(x, y)
    n = len(xa)
    nan = float("nan")
    if n < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return Correlation(method, nan, nan, nan, nan, n, level, interval)
    if method == "pearson":
        res = stats.pearsonr(xa, ya)
    else:
        res = stats.spearmanr(xa, ya)
    r, p = float(res.statistic), float(res.pvalue)
    if interval == "fisher":
        low, high, p = fisher_z_test(r, n, method, level)
        return Correlation(method, r, low, high, p, n, level, interval)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    xs, ys = xa[idx], ya[idx]
    if method == "spearman":
        xs, ys = stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1)
    boots = _rowwise_pearson(xs, ys)
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0:
        return Correlation(method, r, nan, nan, p, n, level, interval)
    alpha = (1 - level) / 2
    blow, bhigh = np.quantile(boots, [alpha, 1 - alpha])
    return Correlation(method, r, float(blow), float(bhigh), p, n, level, interval)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control over the whole family given).

    Args:
        pvalues: the family's p-values; NaNs are left out of the family and stay NaN.

    Returns:
        Adjusted p-values in the input order: the k-th smallest of m gets max over j <= k of min(1, (m-j+1) p_(j)).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()


def leave_one_out(x: Sequence[float], y: Sequence[float], labels: Sequence[str], method: str = "pearson",
                  level: float = 0.95) -> pd.DataFrame:
    """The correlation with each point left out in turn: how much one language pair drives it.

    Args:
        x, y: the points' feature and outcome.
        labels: one label per point (e.g. the pair "it→scn").
        method: "pearson" or "spearman".
        level: CI level of each refit (Fisher's z).

    Returns:
        One row per point: left_out, r, low, high, p, n, and shift (r without the point minus r with all points),
        largest |shift| first.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (len(xa) == len(ya) == len(labels)):
        raise ValueError(f"x, y and labels must have the same length; got {len(xa)}, {len(ya)}, {len(labels)}")
    full = correlation(xa.tolist(), ya.tolist(), method, level=level).r
    rows = []
    for i, label in enumerate(labels):
        keep = np.arange(len(xa)) != i
        c = correlation(xa[keep].tolist(), ya[keep].tolist(), method, level=level)
        rows.append({"left_out": label, "r": c.r, "low": c.low, "high": c.high, "p": c.p, "n": c.n,
                     "shift": c.r - full})
    out = pd.DataFrame(rows, columns=["left_out", "r", "low", "high", "p", "n", "shift"])
    return out.reindex(out["shift"].abs().sort_values(ascending=False, kind="stable").index).reset_index(drop=True)


@dataclass(frozen=True)
class OlsFit:
    """An ordinary-least-squares line y = intercept + slope * x with a confidence band for the mean.

    Attributes:
        slope, intercept: the fitted line.
        r2: coefficient of determination.
        n: points used.
        level: band level, e.g. 0.95.
        x: grid of x values (sorted) where the line and band are evaluated.
        y: the line on the grid.
        lower, upper: the pointwise confidence band of the mean response on the grid
            (y ± t_{(1+level)/2, n-2} · s · sqrt(1/n + (x - mean x)² / Sxx)).
    """

    slope: float
    intercept: float
    r2: float
    n: int
    level: float
    x: tuple[float, ...]
    y: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]


def ols_fit(x: Sequence[float], y: Sequence[float], level: float = 0.95, grid: Sequence[float] | None = None,
            points: int = 50) -> OlsFit | None:
    """Fit an OLS line and its confidence band.

    Args:
        x: feature values (NaN pairs are dropped).
        y: outcome values.
        level: band level in (0, 1).
        grid: x values to evaluate on (default: `points` evenly spaced values from min to max x).
        points: grid size when `grid` is None.

    Returns:
        An OlsFit, or None when a line cannot be fitted (fewer than 3 points, or x constant).
    """
    from scipy import stats

    xa, ya = _finite_xy(x, y)
    n = len(xa)
    if n < 3 or np.ptp(xa) == 0:
        return None
    xbar, ybar = xa.mean(), ya.mean()
    sxx = float(((xa - xbar) ** 2).sum())
    slope = float(((xa - xbar) * (ya - ybar)).sum() / sxx)
    intercept = float(ybar - slope * xbar)
    resid = ya - (intercept + slope * xa)
    sse = float((resid ** 2).sum())
    sst = float(((ya - ybar) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else float("nan")
    s = math.sqrt(sse / (n - 2))
    t = float(stats.t.ppf((1 + level) / 2, n - 2))
    gx = np.asarray(grid, dtype=float) if grid is not None else np.linspace(xa.min(), xa.max(), points)
    gx = np.sort(gx)
    gy = intercept + slope * gx
    half = t * s * np.sqrt(1.0 / n + (gx - xbar) ** 2 / sxx)
    return OlsFit(slope, intercept, r2, n, level, tuple(gx.tolist()), tuple(gy.tolist()),
                  tuple((gy - half).tolist()), tuple((gy + half).tolist()))


def stats_table(points: pd.DataFrame, x: str, y: str, by: Sequence[str] = ("setting", "perturbation", "model",
                                                                          "origin"),
                n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Pearson and Spearman r (Fisher-z CI and p, see `correlation`) and the OLS slope of y on x, per group.

    Args:
        points: from `view_points`.
        x: feature column.
        y: outcome column ("drop" or "f1").
        by: grouping columns (one regression per group, as drawn in the overview).
        n_boot, level, seed: as for `correlation`.

    Returns:
        One row per group: the `by` columns, n, pearson_r, pearson_low, pearson_high, pearson_p, pearson_p_holm,
        spearman_r, spearman_low, spearman_high, spearman_p, spearman_p_holm, slope, intercept, r2. The Holm
        columns adjust each method's p-values over the table's groups (the family a reader scans at once).
    """
    cols = [*by, "n", "pearson_r", "pearson_low", "pearson_high", "pearson_p", "pearson_p_holm", "spearman_r",
            "spearman_low", "spearman_high", "spearman_p", "spearman_p_holm", "slope", "intercept", "r2"]
    if points.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, group in points.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        pr = correlation(group[x], group[y], "pearson", n_boot, level, seed)
        sr = correlation(group[x], group[y], "spearman", n_boot, level, seed)
        fit = ols_fit(group[x], group[y], level)
        nan = float("nan")
        rows.append([*key, pr.n, pr.r, pr.low, pr.high, pr.p, nan, sr.r, sr.low, sr.high, sr.p, nan,
                     fit.slope if fit else nan, fit.intercept if fit else nan, fit.r2 if fit else nan])
    table = pd.DataFrame(rows, columns=cols)
    for m in ("pearson", "spearman"):
        table[f"{m}_p_holm"] = holm(table[f"{m}_p"].tolist())
    return table


def robustness_gap(points: pd.DataFrame, by: Sequence[str] = ("origin", "model", "perturbation")) -> pd.DataFrame:
    """Do transfer models lose less under a perturbation than native ones? Paired by language pair.

    For each group, the pairs that have both a native and a transfer drop are compared: mean drops, the mean
    gap (native − transfer, F1 points), the share of pairs where the transfer model lost less, and the two-sided
    Wilcoxon signed-rank p-value of the paired drops (NaN with fewer than 3 pairs or all gaps zero).

    Args:
        points: from `view_points` (one row per pair, model, setting, perturbation, origin), perturbed rows.
        by: grouping columns.

    Returns:
        One row per group: the `by` columns, n_pairs, native_drop, transfer_drop, gap, transfer_less_share,
        wilcoxon_p.
    """
    from scipy import stats

    cols = [*by, "n_pairs", "native_drop", "transfer_drop", "gap", "transfer_less_share", "wilcoxon_p"]
    df = points[(points["perturbation"] != CLEAN) & points["setting"].isin(["native", "transfer"])]
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for key, group in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        wide = group.pivot_table(index="pair", columns="setting", values="drop", aggfunc="mean")
        if not {"native", "transfer"} <= set(wide.columns):
            continue
        wide = wide[["native", "transfer"]].dropna()
        if wide.empty:
            continue
        gap = wide["native"] - wide["transfer"]
        p = float("nan")
        if len(wide) >= 3 and (gap != 0).any():
            p = float(stats.wilcoxon(wide["native"], wide["transfer"]).pvalue)
        rows.append([*key, len(wide), wide["native"].mean(), wide["transfer"].mean(), gap.mean(),
                     float((gap > 0).mean()), p])
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------------------------------ selection


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
