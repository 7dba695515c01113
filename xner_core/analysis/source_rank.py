"""Stage 7, analysis: which source language for a target. The measured sources of a target ranked by clean transfer
F1 and by their drop under a perturbation, beside each pair's predictors, and the unmeasured candidates ranked by
the predictors alone; per predictor, Spearman's rho with the measured F1 says which one would have picked the best
source.

In the spirit of LangRank (Lin et al., ACL 2019, "Choosing Transfer Languages for Cross-Lingual Learning"), which
ranks candidate transfer languages by dataset overlap and URIEL distances (with a learned ranker; here each
predictor ranks on its own, and their mean rank combines them, since a few measured sources cannot train one).
Directions: an overlap is better when larger, a URIEL distance when smaller (`Predictor.higher_is_better`).

Pure functions over the tidy frame (`xner_core.analysis.tidy`); the candidates' predictors come in as
`xner_core.features.candidates.PairFeatures` (computed, and cached, by `candidate_features`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from xner_core.analysis.stats import correlation
from xner_core.analysis.tidy import CLEAN, STUDY_PROTOCOL
from xner_core.errors import ConfigError, choices_message
from xner_core.features.candidates import PairFeatures


@dataclass(frozen=True)
class Predictor:
    """A pair feature used to rank sources: its tidy column, label and direction."""

    column: str
    label: str
    higher_is_better: bool

    @property
    def direction(self) -> str:
        """"larger = better" (overlaps) or "smaller = closer = better" (distances)."""
        return "larger = better" if self.higher_is_better else "smaller = closer = better"


PREDICTORS: tuple[Predictor, ...] = (
    Predictor("entity_token_overlap", "entity-token overlap", True),
    Predictor("unique_chunk_overlap", "unique entity-chunk overlap", True),
    Predictor("o_word_overlap", "O-word overlap", True),
    Predictor("subword_token_overlap", "sub-word token overlap", True),
    Predictor("uriel_genetic", "URIEL genetic distance", False),
    Predictor("uriel_syntactic", "URIEL syntactic distance", False),
    Predictor("uriel_geographic", "URIEL geographic distance", False),
)
PREDICTOR_BY_COLUMN: Mapping[str, Predictor] = {p.column: p for p in PREDICTORS}
MEAN_RANK = "mean_rank"  # rank by the mean of the predictors' ranks
RANK_BY: tuple[str, ...] = (MEAN_RANK, *PREDICTOR_BY_COLUMN)
MIN_MEASURED = 3  # fewest measured sources for a rank correlation
EXACT_P_MAX_N = 8  # up to this many points the Spearman p-value is exact (all n! orderings)
_PREDICTOR_COLUMNS = [p.column for p in PREDICTORS]


@dataclass(frozen=True)
class SourceRanking:
    """The source ranking of one target under one run (model + protocol).

    Attributes:
        target, model, protocol, perturbation: what was ranked (perturbation: the drop's; None when the run has
            only clean rows).
        by: MEAN_RANK or the predictor column the predicted ranks follow. MEAN_RANK: the mean over the
            predictors of each source's rank (average ranks for ties); a source lacking a predictor that others
            have takes the rank below all of them for it.
        measured: one row per measured source, best clean F1 first: source, f1, f1_rank, f1_perturbed, drop,
            drop_rank (1 = smallest drop), runs, the predictor columns, score (the `by` value), predicted_rank,
            n_predictors, filled (predictors taken from computed features where the rows had none).
        correlations: one row per (predictor, outcome "F1" | "drop") with values for at least MIN_MEASURED
            sources: predictor, label, direction, outcome, rho, p, p_method, n, expected ("+" or "-" for F1),
            agrees (rho has the expected sign), top_pick (the source the predictor ranks first), picks_best
            (that source has the best measured F1). Empty with fewer than MIN_MEASURED measured sources.
        shortlist: the unmeasured candidates, best predicted first: source, predicted_rank, score, n_predictors,
            train_sentences and the predictor columns.
        message: what the measured part can and cannot tell, in one or two sentences.
    """

    target: str
    model: str | None
    protocol: str | None
    perturbation: str | None
    by: str
    measured: pd.DataFrame
    correlations: pd.DataFrame
    shortlist: pd.DataFrame
    message: str

    @property
    def enough(self) -> bool:
        """Whether enough sources are measured to compare predictors (MIN_MEASURED)."""
        return len(self.measured) >= MIN_MEASURED

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: the scalars, each frame as a list of records (NaN as None) and the predictors' directions."""
        import json

        def records(frame: pd.DataFrame) -> object:
            return json.loads(frame.to_json(orient="records"))

        return {"target": self.target, "model": self.model, "protocol": self.protocol,
                "perturbation": self.perturbation, "by": self.by, "message": self.message,
                "predictors": [{"column": p.column, "label": p.label, "direction": p.direction} for p in PREDICTORS],
                "measured": records(self.measured), "correlations": records(self.correlations),
                "shortlist": records(self.shortlist)}


# ------------------------------------------------------------------------------------------------- runs


def _registry_order(names: Sequence[str]) -> list[str]:
    """Distinct names, registry order first (P1, P2, P3, ...), then the rest as they come."""
    from xner_core.perturb.registry import perturbation_names

    present = list(dict.fromkeys(names))
    known = [CLEAN, *perturbation_names()]
    return [n for n in known if n in present] + [n for n in present if n not in known]


def _transfer_rows(tidy: pd.DataFrame, target: str) -> pd.DataFrame:
    """Single-source transfer rows of a target, overall scope."""
    df = tidy[(tidy["setting"] == "transfer") & (tidy["target"] == target) & (tidy["scope"] == "overall")]
    return df[~df["sources"].astype(str).str.contains(",")]


def ranking_runs(tidy: pd.DataFrame, target: str) -> pd.DataFrame:
    """The runs (model + protocol) with single-source transfer rows for a target, most measured sources first.

    Args:
        tidy: from `tidy_results`.
        target: the target language.

    Returns:
        Columns origin, model, protocol ("study" for the published rows), sources (how many measured), names
        (the sources, comma-joined), perturbations (the non-clean ones, comma-joined); ours before the study's
        on equal counts.
    """
    cols = ["origin", "model", "protocol", "sources", "names", "perturbations"]
    df = _transfer_rows(tidy, target)
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (origin, model, protocol), part in df.groupby(["origin", "model", "protocol"], sort=False):
        perts = [p for p in _registry_order(part["perturbation"]) if p != CLEAN]
        names = sorted(set(part.loc[part["perturbation"] == CLEAN, "sources"].astype(str)))
        rows.append({"origin": origin, "model": model, "protocol": protocol, "sources": len(names),
                     "names": ",".join(names), "perturbations": ",".join(perts)})
    out = pd.DataFrame(rows, columns=cols)
    out = out.assign(_o=(out["origin"] != "ours").astype(int))
    return out.sort_values(["sources", "_o", "model", "protocol"], ascending=[False, True, True, True],
                           kind="stable").drop(columns="_o").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ ranking


def _oriented_rank(values: pd.Series, higher_is_better: bool, method: str = "min") -> pd.Series:
    """1 = best; NaN stays NaN."""
    return values.rank(ascending=not higher_is_better, method=method, na_option="keep")


def _predicted(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Add score, predicted_rank (1 = best) and n_predictors; sorted best first, then by source code."""
    have = frame[_PREDICTOR_COLUMNS].notna()
    frame = frame.assign(n_predictors=have.sum(axis=1).astype(int))
    if by == MEAN_RANK:
        # A source without a value of a predictor that others have ranks below all of them (an unknown is no
        # evidence of closeness); a predictor nobody has is left out.
        ranks = pd.DataFrame({p.column: _oriented_rank(frame[p.column], p.higher_is_better, "average")
                              .fillna(frame[p.column].notna().sum() + 1)
                              for p in PREDICTORS if frame[p.column].notna().any()}, index=frame.index)
        score = ranks.mean(axis=1) if not ranks.empty else pd.Series(np.nan, index=frame.index)
        rank = score.rank(ascending=True, method="min", na_option="keep")
    else:
        pred = PREDICTOR_BY_COLUMN[by]
        score = frame[by]
        rank = _oriented_rank(score, pred.higher_is_better)
    frame = frame.assign(score=score, predicted_rank=rank)
    frame = frame.sort_values(["predicted_rank", "source"], na_position="last", kind="stable")
    return frame.reset_index(drop=True)


def _measured(tidy: pd.DataFrame, target: str, model: str | None, protocol: str | None,
              perturbation: str | None) -> pd.DataFrame:
    """One row per measured source: mean clean F1, perturbed F1 and drop over the run's seeds, predictors."""
    cols = ["source", "f1", "f1_perturbed", "drop", "runs", *_PREDICTOR_COLUMNS]
    df = _transfer_rows(tidy, target)
    df = df[(df["model"] == model) & (df["protocol"] == protocol)]
    clean = df[df["perturbation"] == CLEAN]
    if clean.empty:
        return pd.DataFrame(columns=cols)
    present = [c for c in _PREDICTOR_COLUMNS if c in clean.columns]
    out = clean.groupby("sources").agg(f1=("f1", "mean"), runs=("f1", "size"),
                                       **{c: (c, "first") for c in present})
    for c in _PREDICTOR_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    pert = df[df["perturbation"] == perturbation] if perturbation else df.iloc[0:0]
    by_source = pert.groupby("sources").agg(f1_perturbed=("f1", "mean"), drop=("drop", "mean"))
    out = out.join(by_source, how="left").reset_index(names="source")
    for c in ("f1_perturbed", "drop"):
        if c not in out.columns:
            out[c] = np.nan
    return out[cols]


def _value(features: PairFeatures, column: str) -> float:
    value = features.values.get(column)
    return np.nan if value is None else float(value)


def _fill(measured: pd.DataFrame, features: Mapping[str, PairFeatures]) -> pd.DataFrame:
    """Fill predictors the rows lack from computed features; list what was filled per source."""
    filled = []
    measured = measured.copy()
    for i, source in measured["source"].items():
        feats = features.get(str(source))
        done = []
        for col in _PREDICTOR_COLUMNS:
            value = np.nan if feats is None else _value(feats, col)
            if pd.isna(measured.at[i, col]) and not np.isnan(value):
                measured.at[i, col] = value
                done.append(col)
        filled.append(",".join(done))
    return measured.assign(filled=filled)


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, int, str]:
    """Spearman's rho with a two-sided p-value that is exact for small n.

    rho comes from `stats.correlation` (Pearson on average ranks). Up to EXACT_P_MAX_N points the p-value is the
    share of all n! orderings of y whose |rho| reaches the observed one (Fisher's z, `correlation`'s p, is an
    approximation that needs more points and gives none for n = 3); above, Fisher's z.

    Args:
        x: predictor values (NaN pairs are dropped).
        y: outcome values.

    Returns:
        (rho, p, n, p_method); rho and p are NaN when rho is undefined (n < 3 or a constant variable).
    """
    corr = correlation(x, y, method="spearman")
    n, rho = corr.n, corr.r
    if not math.isfinite(rho):
        return rho, math.nan, n, "-"
    if n > EXACT_P_MAX_N:
        return rho, corr.p, n, "Fisher z"
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    rx = pd.Series(xa[keep]).rank().to_numpy()
    ry = pd.Series(ya[keep]).rank().to_numpy()
    rx, perms = rx - rx.mean(), np.array(list(itertools.permutations(ry)))
    perms = perms - perms.mean(axis=1, keepdims=True)
    rhos = (perms @ rx) / np.sqrt((perms ** 2).sum(axis=1) * (rx ** 2).sum())
    p = float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))
    return rho, p, n, f"exact ({math.factorial(n)} orderings)"


def _correlations(measured: pd.DataFrame) -> pd.DataFrame:
    cols = ["predictor", "label", "direction", "outcome", "rho", "p", "p_method", "n", "expected", "agrees",
            "top_pick", "picks_best"]
    rows = []
    best = set(measured.loc[measured["f1"] == measured["f1"].max(), "source"])
    for pred in PREDICTORS:
        have = measured[measured[pred.column].notna()]
        for outcome, col in (("F1", "f1"), ("drop", "drop")):
            part = have[have[col].notna()]
            if len(part) < MIN_MEASURED:
                continue
            rho, p, n, method = spearman(part[pred.column], part[col])
            row = {"predictor": pred.column, "label": pred.label, "direction": pred.direction, "outcome": outcome,
                   "rho": rho, "p": p, "p_method": method, "n": n, "expected": None, "agrees": None,
                   "top_pick": None, "picks_best": None}
            if outcome == "F1":
                ranks = _oriented_rank(part[pred.column], pred.higher_is_better)
                top = sorted(part.loc[ranks == ranks.min(), "source"].astype(str))
                row.update(expected="+" if pred.higher_is_better else "-",
                           agrees=bool(math.isfinite(rho) and (rho > 0) == pred.higher_is_better and rho != 0),
                           top_pick=",".join(top), picks_best=bool(best & set(top)))
            rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _message(target: str, measured: pd.DataFrame, run: str) -> str:
    n = len(measured)
    if n == 0:
        return (f"No measured transfer into {target} in {run}: the shortlist ranks candidate sources by the "
                "predictors alone.")
    names = ", ".join(measured["source"].astype(str))
    if n < MIN_MEASURED:
        return (f"Only {n} measured source{'s' if n > 1 else ''} for {target} in {run} ({names}): too few to tell "
                f"which predictor picks the best source (a rank correlation needs at least {MIN_MEASURED}). The "
                "shortlist ranks the other candidates by the predictors alone.")
    return (f"{n} measured sources for {target} in {run} ({names}): Spearman's rho of each predictor with their "
            "clean F1 shows which predictor would have picked the best source.")


def rank_sources(tidy: pd.DataFrame, target: str, *, model: str | None = None, protocol: str | None = None,
                 perturbation: str | None = None, features: Sequence[PairFeatures] = (),
                 by: str = MEAN_RANK) -> SourceRanking:
    """Rank the measured sources of a target by transfer F1 and by drop, and the unmeasured candidates by predictors.

    Args:
        tidy: from `tidy_results`.
        target: the target language (any known code; a target without measured rows gets the shortlist only).
        model, protocol: the run (see `ranking_runs`; protocol "study" = the published rows). None: the run with
            the most measured sources.
        perturbation: the drop's perturbation; None: the run's first non-clean one (none when it has only clean).
        features: computed predictors (`features.candidates.candidate_features`): the candidates of the
            shortlist, and values for measured sources whose rows lack a predictor.
        by: how predicted ranks are made: MEAN_RANK or a predictor column (RANK_BY).

    Returns:
        A SourceRanking. Raises ConfigError for an unknown target, model, protocol, perturbation or `by`,
        naming the allowed values.
    """
    from xner_core.corpus.languages import get_language

    target = get_language(target).code
    if by not in RANK_BY:
        raise ConfigError(choices_message("ranking", by, RANK_BY))
    runs = ranking_runs(tidy, target)
    if model is None and protocol is None and not runs.empty:
        model, protocol = str(runs["model"].iloc[0]), str(runs["protocol"].iloc[0])
    for name, value, allowed in (("model", model, tidy["model"]), ("protocol", protocol, tidy["protocol"])):
        options = sorted(set(allowed.dropna().astype(str)) | ({STUDY_PROTOCOL} if name == "protocol" else set()))
        if value is not None and value not in options:
            raise ConfigError(choices_message(name, value, options))
    run = runs[(runs["model"] == model) & (runs["protocol"] == protocol)]
    perts = [p for p in str(run["perturbations"].iloc[0]).split(",") if p] if not run.empty else []
    if perturbation is None:
        perturbation = perts[0] if perts else None
    elif perturbation != CLEAN and run.shape[0] and perturbation not in perts:
        raise ConfigError(f"perturbation {perturbation!r} was not run in {model} · {protocol} for {target}; "
                          f"choose one of: {', '.join([CLEAN, *perts])}")
    elif perturbation == CLEAN:
        perturbation = None
    by_source = {f.source: f for f in features if f.target == target}
    measured = _fill(_measured(tidy, target, model, protocol, perturbation), by_source)
    measured = _predicted(measured, by)
    measured["f1_rank"] = _oriented_rank(measured["f1"], True)
    measured["drop_rank"] = _oriented_rank(measured["drop"], False)
    measured = measured.sort_values(["f1_rank", "drop_rank", "source"], na_position="last", kind="stable")
    measured = measured[["source", "f1", "f1_rank", "f1_perturbed", "drop", "drop_rank", "runs", *_PREDICTOR_COLUMNS,
                         "score", "predicted_rank", "n_predictors", "filled"]].reset_index(drop=True)
    correlations = _correlations(measured) if len(measured) >= MIN_MEASURED else _correlations(measured.iloc[0:0])
    seen = set(measured["source"].astype(str)) | {target}
    cand = [f for f in by_source.values() if f.source not in seen]
    short = pd.DataFrame([{"source": f.source, "train_sentences": f.train_sentences,
                           **{c: _value(f, c) for c in _PREDICTOR_COLUMNS}} for f in cand],
                         columns=["source", "train_sentences", *_PREDICTOR_COLUMNS])
    short = _predicted(short.astype({c: float for c in _PREDICTOR_COLUMNS}), by)
    short = short[["source", "predicted_rank", "score", "n_predictors", "train_sentences", *_PREDICTOR_COLUMNS]]
    label = (f"the study's published {model} rows" if protocol == STUDY_PROTOCOL else
             f"the run {model} · {protocol}" if model is not None else "any run")
    return SourceRanking(target, model, protocol, perturbation, by, measured, correlations, short,
                         _message(target, measured, label))
