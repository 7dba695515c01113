"""The source-diversity page's section "Which source for this target": the cached source ranking
(`xner_core.analysis.source_rank`) and its tables and charts.

Two cache layers (docs/design.md, convention 4): the candidates' overlap measures are cached on disk by the core
(`xner_core.features.candidates`), and the whole ranking here with `st.cache_data`, keyed by the results stamp, the
data directory and the choices (strings and ints only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from xner_core.analysis.plots import perturbation_title
from xner_core.analysis.source_plots import measured_vs_predictors, shortlist_ranks
from xner_core.analysis.source_rank import (
    MEAN_RANK,
    MIN_MEASURED,
    PREDICTOR_BY_COLUMN,
    PREDICTORS,
    RANK_BY,
    SourceRanking,
    rank_sources,
    ranking_runs,
)
from xner_core.analysis.tidy import STUDY_PROTOCOL
from xner_ui import data, page, state
from xner_ui.render import md_escape

RUN_SEP = " | "  # a run's select value: "<model> | <protocol>"
CANDIDATE_CHOICES: tuple[str, ...] = ("5", "10", "20", "all")


@dataclass(frozen=True)
class RankingView:
    """A ranking and what was done to get its candidates.

    Attributes:
        ranking: from `rank_sources`.
        candidates: how the candidates were chosen (a sentence), or why there are none.
        has_shortlist: whether candidates could be measured at all (a local test split of the target).
    """

    ranking: SourceRanking
    candidates: str
    has_shortlist: bool


@st.cache_data(show_spinner=False, ttl=60)
def local_languages() -> list[str]:
    """Languages with a local WikiANN test split (the targets a shortlist can be made for)."""
    from xner_core.corpus.wikiann import available_languages

    return available_languages()


def runs_for(target: str) -> pd.DataFrame:
    """`ranking_runs` of a target over the dashboard's tidy frame."""
    return _runs(data.results_stamp(), target)


@st.cache_data(show_spinner=False, max_entries=64)
def _runs(stamp: tuple[Any, ...], target: str) -> pd.DataFrame:
    return ranking_runs(data.tidy_frame(), target)


def source_ranking(target: str, model: str | None, protocol: str | None, perturbation: str | None, by: str,
                   max_candidates: int) -> RankingView:
    """The ranking of a target's sources (cached by results stamp, data directory and choices).

    Args:
        target: the target language.
        model, protocol: the run (None: no measured run).
        perturbation: the drop's perturbation (None: the run's first).
        by: MEAN_RANK or a predictor column.
        max_candidates: candidates that get overlap measures (0 = all with local data).

    Returns:
        A RankingView.
    """
    from xner_core.paths import data_dir

    return _ranking(data.results_stamp(), str(data_dir()), target, model, protocol, perturbation, by,
                    int(max_candidates))


@st.cache_data(show_spinner=False, max_entries=32)
def _ranking(stamp: tuple[Any, ...], data_dir: str, target: str, model: str | None, protocol: str | None,
             perturbation: str | None, by: str, max_candidates: int) -> RankingView:
    from xner_core.features.candidates import candidate_features

    tidy = data.tidy_frame()
    runs = ranking_runs(tidy, target)
    measured = [s for names in runs["names"] for s in str(names).split(",") if s]
    cands = candidate_features(target, max_candidates=max_candidates, include=measured, data_dir=data_dir)
    ranking = rank_sources(tidy, target, model=model, protocol=protocol, perturbation=perturbation,
                           features=cands.features, by=by)
    return RankingView(ranking, cands.problem or cands.preselected_by, cands.problem is None)


def _run_label(runs: pd.DataFrame) -> dict[str, str]:
    out = {}
    for r in runs.itertuples():
        who = f"{r.model} · the study's published numbers" if r.protocol == STUDY_PROTOCOL else \
            f"{r.model} · {r.protocol}"
        out[f"{r.model}{RUN_SEP}{r.protocol}"] = f"{who} ({r.sources} measured source{'s' * (r.sources != 1)})"
    return out


def _formats(frame: pd.DataFrame) -> dict[str, Any]:
    """Column formats: F1 and drops in points with one decimal, predictors with three, ranks as integers."""
    fmt = {c: "%.1f" for c in ("f1", "f1_perturbed", "drop")}
    fmt.update({c: "%.3f" for c in (*PREDICTOR_BY_COLUMN, "rho", "p")})
    fmt.update({c: "%d" for c in ("f1_rank", "drop_rank", "predicted_rank", "runs", "n", "train_sentences")})
    fmt["score"] = "%.2f"
    return {c: st.column_config.NumberColumn(c, format=f) for c, f in fmt.items() if c in frame.columns}


def _table(frame: pd.DataFrame) -> None:
    st.dataframe(frame, hide_index=True, width="stretch", column_config=_formats(frame))


def _by_label(by: str) -> str:
    if by == MEAN_RANK:
        return "mean rank over the predictors"
    pred = PREDICTOR_BY_COLUMN[by]
    return f"{pred.label} ({pred.direction})"


def _default_run(runs: pd.DataFrame, model: str, protocol: str | None) -> str:
    """Among the runs with the most measured sources: the sidebar's model and run, else its model, else the first."""
    top = runs[runs["sources"] == runs["sources"].max()]
    for keep in ((top["model"] == model) & (top["protocol"] == protocol), top["model"] == model):
        if keep.any():
            top = top[keep]
            break
    return f"{top['model'].iloc[0]}{RUN_SEP}{top['protocol'].iloc[0]}"


def which_source(target: str, shared: state.Shared) -> None:
    """Draw the section: controls, the measured sources, the predictors' rank correlations and the shortlist.

    Args:
        target: the page's target language.
        shared: the sidebar's choices (its model and run are the default run when they have the most measured
            sources; its perturbation the drop's default when the run has it).
    """
    perturbation = shared.perturbation
    st.header("Which source for this target", anchor="which-source")
    st.caption(
        "The measured single-source transfer models into this target, ranked by clean F1 and by their drop, beside "
        "the predictors of each pair; then the languages with local data that nobody trained from yet, ranked by "
        "the predictors alone (after LangRank: Lin et al., ACL 2019, *Choosing Transfer Languages for "
        "Cross-Lingual Learning*). Directions: overlaps are better when larger, URIEL distances when smaller.")
    runs = runs_for(target)
    model = protocol = pert = None
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
    if not runs.empty:
        labels = _run_label(runs)
        run = state.select("Run", list(labels), "src_run", _default_run(runs, shared.model, shared.protocol),
                           where=c1, format_func=labels.get,
                           help="Which models' measured sources to rank: one of our runs (model + protocol) or the "
                                "study's published numbers. Runs made differently are never mixed.")
        model, protocol = run.split(RUN_SEP, 1)
        perts = [p for p in str(runs.loc[(runs["model"] == model) & (runs["protocol"] == protocol),
                                         "perturbations"].iloc[0]).split(",") if p]
        if perts:
            pert = state.select("Drop under", perts, "src_pert", perturbation if perturbation in perts else perts[0],
                                where=c2, format_func=perturbation_title)
    by = state.select("Rank candidates by", list(RANK_BY), "src_by", MEAN_RANK, where=c3, format_func=_by_label)
    n = state.select("Candidates", list(CANDIDATE_CHOICES), "src_n", "10", where=c4,
                     help="How many candidate sources get their overlap measured (the closest by URIEL distance "
                          "first; each reads the candidate's train split once, then it is cached).")
    with st.spinner("Measuring the candidates' overlap with the target (cached after the first time)…"):
        view = source_ranking(target, model, protocol, pert, by, 0 if n == "all" else int(n))
    ranking = view.ranking
    (st.info if ranking.enough else st.warning)(md_escape(ranking.message), icon=":material/leaderboard:")
    measured, correlations, shortlist = ranking.measured, ranking.correlations, ranking.shortlist
    if not measured.empty:
        st.subheader("Measured sources")
        _table(measured)
        st.caption("f1: clean transfer F1 (points, mean over seeds); f1_rank / drop_rank: 1 = best F1 / smallest "
                   "drop; predicted_rank: the rank the chosen predictor ranking gives among these sources; filled: "
                   "predictors the result rows lacked, computed here from the local WikiANN splits.")
        page.download_csv(measured, f"xner_sources_{target}_measured.csv", key="dl_src_measured",
                          label="Measured sources (CSV)")
    if not correlations.empty:
        st.subheader("Which predictor would have picked the best source")
        _table(correlations[["label", "direction", "outcome", "rho", "p", "n", "expected", "agrees", "top_pick",
                              "picks_best", "p_method"]])
        st.caption("rho: Spearman's rank correlation over the measured sources (p exact over all orderings up to "
                   "8 sources); expected: its sign if the predictor works as its direction says; top_pick: the "
                   "source the predictor ranks first; picks_best: whether that source has the best measured F1.")
    elif len(measured) > 0:
        st.caption(f"Predictor correlations need at least {MIN_MEASURED} measured sources.")
    fig = measured_vs_predictors(ranking)
    if fig is not None:
        page.chart(fig, "src_measured", f"xner_sources_{target}_measured")
    st.subheader("Shortlist of unmeasured candidates")
    if not view.has_shortlist:
        st.info(f"No shortlist: {md_escape(view.candidates)}.", icon=":material/folder_off:")
        return
    st.caption(f"Candidates: {md_escape(view.candidates)}; ranked by {_by_label(by)}. train_sentences: the "
               "candidate's train split (a small one makes a weak source whatever the predictors say).")
    if shortlist.empty:
        st.info("No candidate sources with local data besides the measured ones.")
        return
    _table(shortlist)
    page.download_csv(shortlist, f"xner_sources_{target}_shortlist.csv", key="dl_src_shortlist",
                      label="Shortlist (CSV)")
    fig = shortlist_ranks(ranking)
    if fig is not None:
        page.chart(fig, "src_shortlist", f"xner_sources_{target}_shortlist")
    st.caption("Predictors: " + "; ".join(f"{p.column}: {p.label}, {p.direction}" for p in PREDICTORS) + ".")
