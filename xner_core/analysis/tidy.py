"""Stage 7, analysis: the one tidy results frame every view reads, its reference tables and run protocols.

Pure functions over pandas frames (results and plots are the two places where frames cross module lines,
docs/design.md). Nothing in the analysis package imports Streamlit, so the dashboard, benchmarks and notebooks compute
the same numbers; view frames are in `xner_core.analysis.views`, statistics in `xner_core.analysis.stats`.

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

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from xner_core.corpus.languages import LanguagePair
from xner_core.evaluation.jobs import CLEAN  # re-exported for the views: "clean" = the unperturbed test set

# The study's condition names -> our perturbation registry names (docs/paper-spec.md §4).
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
# "(study)" = the study's own measure on its data (docs/paper-spec.md §5).
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
                                "diversity_genetic", "diversity_syntactic", "train_steps")
# How much a perturbation changed (our rows; NaN for the study's): shares of gold entities and tokens, its rate.
CHANGE_COLUMNS: tuple[str, ...] = ("entities_changed_frac", "tokens_changed_frac", "perturb_rate")
# Columns of the tidy frame, in order.
TIDY_COLUMNS: tuple[str, ...] = (
    "origin", "pair", "pair_order", "relation", "source", "sources", "target", "model", "setting", "perturbation",
    "scope", "f1", "f1_low", "f1_high", "clean_f1", "drop", "drop_low", "drop_high", "n_sentences", "seed",
    "perturb_seed", "job_id", "protocol", "method", "base_protocol", "max_steps", "teacher_weights", "model_time",
    *CHANGE_COLUMNS, *_OVERLAP_COLUMNS,
    *_URIEL_COLUMNS, *_OURS_EXTRA,
)
# `method` of our rows trained without TAPT, robust training or adapters.
PLAIN = "plain"
STUDY_PROTOCOL = "study"  # the `protocol` of the published rows
TRAINED_AGAIN = " · trained again"  # appended to the label of a model whose row comes from a retraining


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
    if published is None or published.empty:  # e.g. a tidy frame of our rows alone
        return pd.DataFrame(columns=list(TIDY_COLUMNS))
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
    missing = [None] * len(df)
    df["method"] = [training_method(o, st) for o, st in zip(df.get("options", missing), df["setting"])]
    df["base_protocol"] = row_protocols(df, base=True)
    # a cap on optimiser steps (equal-compute variants): not in the protocol, so such a model sits beside the
    # uncapped one of the same run; views that average models must keep the two apart
    df["max_steps"] = pd.to_numeric(pd.Series([_options(o).get("max_steps") for o in df.get("options", missing)],
                                              index=df.index, dtype=object), errors="coerce").astype(float)
    # a distillation student's teacher weights (Wu et al.: "uniform" or "similarity"; None for other settings): not
    # in the protocol either, so views must keep students of one source set with other weights apart
    df["teacher_weights"] = [teacher_weights(o, st) for o, st in zip(df.get("options", missing), df["setting"])]
    df["model_time"] = model_times(df)
    return df


def model_times(rows: pd.DataFrame) -> pd.Series:
    """When each row's model was trained, or the latest it can have been: its `trained_at`, else (rows older than
    that column) its `created_at` (a row is written after its model is trained); NaT when neither is known. Two
    trainings of one job (a model trained again) are told apart by it.

    Args:
        rows: result rows (`xner_core.experiments.store.SCHEMA` columns; either timestamp may be absent).
    """
    def column(name: str) -> pd.Series:
        if name not in rows.columns:
            return pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns]")
        return pd.to_datetime(rows[name], errors="coerce").astype("datetime64[ns]")

    return column("trained_at").fillna(column("created_at"))


def teacher_weights(options: Any, setting: Any) -> str | None:
    """How a distillation student weighted its teachers ("uniform", the default, or "similarity"); None for a
    model of another setting."""
    if setting != "distill":
        return None
    return str(_options(options).get("distill_weights") or "uniform")


def _options(options: Any) -> dict[str, Any]:
    """A row's training options as a dict (canonical JSON string or mapping; {} when unreadable)."""
    import json

    if isinstance(options, str) and options.strip():
        try:
            loaded = json.loads(options)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return dict(options) if isinstance(options, Mapping) else {}


def training_method(options: Any, setting: Any) -> str:
    """How a model was trained beyond its setting: "tapt" (the tapt setting), a robust method's descriptive name
    ("fgm", "subtoken-noise", "pgd", "word-smoothing"), "lora" (adapters), else PLAIN. An adversarial method
    (fgm, pgd) run with another budget than the defaults carries it, e.g. "pgd · ε 0.1" or "pgd · ε 0.5 · K 5", so
    runs of different strength are never averaged into one method.

    Args:
        options: the row's training options (canonical JSON string or mapping).
        setting: the row's setting.

    Returns:
        The method's name.
    """
    from xner_core.training.settings import TrainOptions, robust_kind

    opts = _options(options)
    if setting == "tapt":
        return "tapt"
    if opts.get("robust"):
        kind = str(robust_kind(str(opts["robust"])))
        parts = [kind]
        if kind in ("fgm", "pgd"):
            default = TrainOptions()  # the budget a run without these options trained with
            eps = opts.get("robust_epsilon", default.robust_epsilon)
            if eps is not None and float(eps) != default.robust_epsilon:
                parts.append(f"ε {float(eps):g}")
            if kind == "pgd" and opts.get("robust_steps", default.robust_steps) not in (None, default.robust_steps):
                parts.append(f"K {int(opts['robust_steps'])}")
            if kind == "pgd" and opts.get("robust_alpha") is not None:
                parts.append(f"α {float(opts['robust_alpha']):g}")
        return " · ".join(parts)
    if opts.get("adapter") == "lora":
        return "lora"
    return PLAIN


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
    opts = _options(options)
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


def row_protocols(results: pd.DataFrame, base: bool = False) -> list[str]:
    """`protocol_label` of every row of a results frame (its options, data_protocol and test_limit columns).

    Args:
        results: result rows.
        base: label the recipe without its robust-training method (`base_protocol`: a robust model's rows and the
            plain models they are compared with share it).

    Returns:
        One label per row.
    """
    missing = [None] * len(results)
    opts = [_options(o) for o in results.get("options", missing)]
    if base:
        opts = [{k: v for k, v in o.items() if k != "robust"} for o in opts]
    return [protocol_label(o, d, t) for o, d, t in zip(opts, results.get("data_protocol", missing),
                                                        results.get("test_limit", missing))]


def spec_protocol(spec: Any, model: str) -> str:
    """The protocol label the rows of a grid spec (`grid.load_spec`) get for `model`, e.g. to select its run."""
    from xner_core.runs.config import canonical_json, config_to_dict, make_config

    # The label depends on the options and data protocol only; any target stands in for the spec's.
    cfg = make_config(model, "ca", "native", options=spec.options, data=spec.data)
    return protocol_label(canonical_json(config_to_dict(cfg)["options"]), spec.data, spec.test_limit)


# The preset whose run the views show first when it has rows: the study's recipe at full scale.
DEFAULT_PRESET = "paper-faithful"


def protocols(tidy: pd.DataFrame, prefer: Sequence[str] = ()) -> list[str]:
    """Protocols of our rows (the study's rows are not listed): `prefer`'s that have rows first, in its order, then
    the others, the one with the most rows first.

    Args:
        tidy: the tidy frame.
        prefer: protocol labels to list first where present (e.g. `spec_protocol` of `DEFAULT_PRESET`).

    Returns:
        Protocol labels; the first is the views' default.
    """
    ours = tidy[tidy["origin"] == "ours"]
    by_rows = list(ours["protocol"].value_counts(sort=True).index)
    first = [p for p in dict.fromkeys(prefer) if p in by_rows]
    return first + [p for p in by_rows if p not in first]


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

    # URIEL: 0 for native rows (a language's distance to itself, as xner_core.evaluation.evaluate.pair_features),
    # else the mean over the sources, only when every source has a value.
    long = pd.DataFrame([(i, s, t) for i, (srcs, t) in enumerate(zip(source_lists, df["target"])) for s in srcs],
                        columns=["row", "source", "target"])
    ur_cols = [f"uriel_{k}" for k in URIEL_KINDS]
    ur = uriel.rename(columns={k: f"uriel_{k}" for k in URIEL_KINDS})
    ur = ur.drop_duplicates(["source", "target"])[["source", "target", *ur_cols]]
    long = long.merge(ur, on=["source", "target"], how="left")
    means = long.groupby("row")[ur_cols].agg(lambda v: v.mean() if v.notna().all() else np.nan)
    means = means.reindex(range(len(df)))
    native = (df["setting"] == "native").to_numpy() | np.array([s == [t] for s, t in zip(source_lists, df["target"])],
                                                                  dtype=bool)
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
        clean_f1 / drop / drop_low / drop_high in F1 points (CIs only for our rows), model_time (`model_times`:
        when the row's model was trained; our rows only), CHANGE_COLUMNS (what a
        perturbation changed; our rows only) and the feature columns.
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
    for col in ("f1", "f1_low", "f1_high", "clean_f1", "drop", "drop_low", "drop_high", *CHANGE_COLUMNS):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["model_time"] = pd.to_datetime(df["model_time"], errors="coerce").astype("datetime64[ns]")
    df["pair_order"] = pd.to_numeric(df["pair_order"], errors="coerce").fillna(10_000).astype(int)
    origin_rank = df["origin"].map({o: i for i, o in enumerate(ORIGINS)})
    df = df.assign(_o=origin_rank).sort_values(["_o", "pair_order", "pair", "model", "setting", "perturbation",
                                                  "scope"], kind="stable")
    return df.drop(columns="_o").reset_index(drop=True)


def tidy_ours(rows: pd.DataFrame | None, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """`tidy_results` of our rows alone (no published rows), e.g. the models trained again under committed job ids
    (`xner_core.experiments.store.retrained_results`) that `views.student_teacher_view` weighs as teachers.

    Args:
        rows: result rows (store schema); None or empty for none.
        tables: `read_reference_tables()` (the pair features).
    """
    from xner_core.corpus.languages import reference_pairs

    ours = rows if rows is not None and not rows.empty else None
    return tidy_results(tables["published"].iloc[0:0], ours, tables["overlap"], tables["uriel"], reference_pairs())
