"""Cached core calls of the dashboard: result tables and the views over them, local data checks, environment.

Two cache layers, keyed by ids, never by objects (docs/design.md, convention 4):
- `st.cache_data` for tables (results, example sentences): a copy per caller, safe between sessions. The results
  are keyed by a *stamp* of the committed files and the store file (names, sizes, mtimes), so a finished grid run
  shows up on the next rerun without a server restart, and an unchanged store costs only a few `stat` calls.
- `st.cache_resource` for shared read-only objects, one copy per process for every session (the evaluation
  inputs the pages perturb are in `xner_ui.inputs`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from xner_core.analysis.stats import stats_table
from xner_core.analysis.tidy import FEATURES, OUTCOMES, read_reference_tables, tidy_results
from xner_core.analysis.views import view_points
from xner_core.errors import DataError, XnerError
from xner_core.paths import cache_dir, committed_results_dir, data_dir

STORE_HINT = "`xner grid run paper` (or `xner grid run smoke` for a quick check)"


# ------------------------------------------------------------------------------------------------ results


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        st_ = path.stat()
        return str(path), st_.st_size, st_.st_mtime_ns
    except OSError:
        return str(path), -1, -1


def results_stamp() -> tuple[Any, ...]:
    """Identity of the result inputs: committed parquet files and the DuckDB store (path, size, mtime)."""
    from xner_core.experiments.store import default_store_path

    return _table_stamps(committed_results_dir()) + (_stat(default_store_path()),)


def _table_stamps(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of each result table (`*.parquet`) in `folder`; () when there is no such folder."""
    return tuple(_stat(f) for f in sorted(folder.glob("*.parquet"))) if folder.is_dir() else ()


@st.cache_data(show_spinner=False)
def default_protocols() -> tuple[str, ...]:
    """The protocol labels the views show first when they have rows: the `paper-faithful` preset's run (the
    study's recipe at full scale, several seeds) for each of its models."""
    from xner_core.analysis.tidy import DEFAULT_PRESET, spec_protocol
    from xner_core.experiments.spec import load_spec

    spec = load_spec(DEFAULT_PRESET)
    return tuple(spec_protocol(spec, model) for model in spec.models)


@st.cache_data(show_spinner=False, max_entries=4)
def _our_results(stamp: tuple[Any, ...]) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(committed rows, store rows, a warning) for one stamp."""
    from xner_core.experiments.store import ResultsStore, committed_results

    committed = committed_results()
    warning = None
    try:
        store = ResultsStore().frame()
    except XnerError as exc:  # e.g. the grid holds the write lock: show the committed rows and say so
        store = committed.iloc[0:0]
        warning = f"the local results store could not be read ({exc}); showing committed results only"
    return committed, store, warning


def our_results() -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """Our result rows: (committed `data/results/*.parquet`, the local DuckDB store, a warning or None)."""
    return _our_results(results_stamp())


@st.cache_data(show_spinner=False, max_entries=4)
def _tidy(stamp: tuple[Any, ...]) -> pd.DataFrame:
    from xner_core.corpus.languages import reference_pairs
    from xner_core.experiments.store import unique_jobs

    tables = read_reference_tables()
    committed, store, _ = _our_results(stamp)
    parts = [f for f in (committed, store) if not f.empty]
    ours = pd.concat(parts, ignore_index=True) if parts else None
    if ours is not None and "job_id" in ours.columns:
        ours = unique_jobs(ours)  # a committed row may also be in the local store: the store's copy, read last
    return tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())


def tidy_frame() -> pd.DataFrame:
    """The tidy frame of `tidy_results`: published numbers + ours, with pair features."""
    return _tidy(results_stamp())


@st.cache_data(show_spinner=False, max_entries=2)
def _trained_again(stamp: tuple[tuple[str, int, int], ...]) -> pd.DataFrame:
    from xner_core.analysis.tidy import tidy_ours
    from xner_core.experiments.store import retrained_results

    return tidy_ours(retrained_results(), read_reference_tables())


def trained_again_frame() -> pd.DataFrame:
    """Tidy rows (ours only) of the models trained again under committed job ids (`data/results/retrained/
    *.parquet`): the teachers some distillation students met (`student_teacher_view`); empty when none."""
    from xner_core.experiments.store import RETRAINED_DIR

    return _trained_again(_table_stamps(committed_results_dir() / RETRAINED_DIR))


@st.cache_data(show_spinner=False, max_entries=2)
def _paired(stamp: tuple[str, int, int], same_code_stamp: tuple[str, int, int]) -> pd.DataFrame:
    from xner_core.analysis.paired import read_paired_differences, with_same_code

    return with_same_code(read_paired_differences(stamp[0]), read_paired_differences(same_code_stamp[0]))


def paired_table() -> pd.DataFrame:
    """The committed paired tests (`data/results/paired_differences.csv`, `scripts/paired_report.py`) and, after
    them, the tests against models trained again by the candidate's code (`data/results/retrained/
    paired_same_code.csv`, labels ending in " · trained again"); empty when there are none."""
    from xner_core.analysis.paired import PAIRED_FILE, SAME_CODE_FILE

    root = committed_results_dir()
    return _paired(_stat(root / PAIRED_FILE), _stat(root / SAME_CODE_FILE))


@dataclass(frozen=True)
class OverviewView:
    """What the overview draws for one set of choices (computed once per choices and results stamp)."""

    points: pd.DataFrame
    figure: Any
    stats: pd.DataFrame


def overview_view(y: str, x: str, models: tuple[str, ...], settings: tuple[str, ...],
                  perturbations: tuple[str, ...], origins: tuple[str, ...],
                  protocol: str | None = None, scope: str = "overall") -> OverviewView:
    """Points, scatter figure and correlation table of the overview (cached by choices + results stamp).

    Args:
        y: "drop" or "f1".
        x: a feature column of `FEATURES`.
        models, settings, perturbations, origins: the filters.
        protocol: which of our runs (`xner_core.analysis.tidy.protocol_label`); None: all.
        scope: "overall", an entity type, or "seen" / "unseen" (entities in / not in the model's training data;
            our rows only: the study published overall F1).

    Returns:
        An OverviewView.
    """
    return _overview_view(results_stamp(), y, x, models, settings, perturbations, origins, protocol, scope)


@st.cache_data(show_spinner=False, max_entries=64)
def _overview_view(stamp: tuple[Any, ...], y: str, x: str, models: tuple[str, ...], settings: tuple[str, ...],
                   perturbations: tuple[str, ...], origins: tuple[str, ...], protocol: str | None,
                   scope: str = "overall") -> OverviewView:
    from xner_core.analysis import plots

    points = view_points(_tidy(stamp), models=models, settings=settings, perturbations=perturbations,
                         origins=origins, protocol=protocol, scope=scope)
    figure = plots.overlap_scatter(points, x, y, FEATURES[x], OUTCOMES[y], settings=settings,
                                   perturbations=perturbations)
    stats = stats_table(points, x, y)
    return OverviewView(points, figure, stats)


@dataclass(frozen=True)
class FindingsView:
    """What the Findings page shows for one run and floor (computed once per choices and results stamp).

    Attributes:
        findings: `xner_core.analysis.findings.Findings` (table, exclusions, plot frames, protocol, floor).
        figures: plot key (the table's `plot`) -> its Plotly figure.
    """

    findings: Any
    figures: dict[str, Any]


def findings_view(protocol: str | None, floor: float) -> FindingsView:
    """The study's findings tested on one of our runs (cached by protocol, floor and results stamp).

    Args:
        protocol: which of our runs (`xner_core.analysis.tidy.protocol_label`); None: the paper-faithful run.
        floor: clean F1 (points) below which a model's drops are left out.

    Returns:
        A FindingsView.
    """
    return _findings_view(results_stamp(), protocol, float(floor))


@st.cache_data(show_spinner=False, max_entries=16)
def _findings_view(stamp: tuple[Any, ...], protocol: str | None, floor: float) -> FindingsView:
    from xner_core.analysis import plots
    from xner_core.analysis.findings import compute_findings

    findings = compute_findings(_tidy(stamp), protocol=protocol, floor=floor)
    return FindingsView(findings, {key: plots.finding_figure(plot) for key, plot in findings.plots.items()})


@dataclass(frozen=True)
class MethodView:
    """What the Training methods page shows for one method, run and model.

    Attributes:
        comparison: `xner_core.analysis.methods.method_comparison` (per pair, seed and perturbation).
        tests: `method_tests` (per perturbation, method − plain over pairs).
        figures: perturbation -> its paired chart (plain transfer vs the method per pair).
    """

    comparison: pd.DataFrame
    tests: pd.DataFrame
    figures: dict[str, Any]


def available_methods(model: str) -> pd.DataFrame:
    """The training methods with rows of `model` and a plain transfer baseline (`analysis.methods`)."""
    return _available_methods(results_stamp(), model)


@st.cache_data(show_spinner=False, max_entries=16)
def _available_methods(stamp: tuple[Any, ...], model: str) -> pd.DataFrame:
    from xner_core.analysis.methods import available_methods as found

    return found(_tidy(stamp), model)


def method_view(method: str, base_protocol: str, model: str) -> MethodView:
    """One method against plain transfer on one run (cached by choices and results stamp)."""
    return _method_view(results_stamp(), method, base_protocol, model)


@st.cache_data(show_spinner=False, max_entries=16)
def _method_view(stamp: tuple[Any, ...], method: str, base_protocol: str, model: str) -> MethodView:
    from xner_core.analysis import plots
    from xner_core.analysis.methods import method_comparison, method_plot, method_tests

    comp = method_comparison(_tidy(stamp), method, model, base_protocol)
    tests = method_tests(comp)
    figures = {p: plots.finding_figure(method_plot(comp, p, method)) for p in tests["perturbation"]}
    return MethodView(comp, tests, figures)


@st.cache_data(show_spinner=False, max_entries=64)
def diversity_index(sources: str, kind: str) -> float | None:
    """Mean pairwise URIEL distance of `kind` among comma-joined sources (None for one source or no data)."""
    from xner_core.features.distance import source_diversity

    try:
        return source_diversity([s for s in sources.split(",") if s]).mean_distance.get(kind)
    except XnerError:
        return None


# ----------------------------------------------------------------------------------------- corpora and contexts


@dataclass(frozen=True)
class Missing:
    """Local WikiANN files that are not there, with the message to show."""

    message: str


def missing_splits(needs: list[tuple[str, str]]) -> Missing | None:
    """Check local WikiANN files (no hub download from the dashboard: a large split would block the page).

    Args:
        needs: (language, split) pairs.

    Returns:
        None when every file is present, else a Missing with guidance.
    """
    from xner_core.corpus.wikiann import wikiann_file

    absent = [f"{lang}/{split}" for lang, split in needs if wikiann_file(lang, split) is None]
    if not absent:
        return None
    where = data_dir()
    env = os.environ.get("XNER_DATA_DIR")
    return Missing(
        f"No local WikiANN data for {', '.join(absent)} under `{where}`"
        + ("" if env else " (XNER_DATA_DIR is not set)")
        + ". Set `XNER_DATA_DIR` to a directory with `<lang>/{train,dev,test}.gz` files "
          "(here: `../shared/data/wikiann`, which `make app` sets) and reload the page."
    )


# ---------------------------------------------------------------------------------------------- environment


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    """The torch device inference uses here and its precision ("cuda: <name> · bf16" or "cpu · fp32")."""
    try:
        import torch
    except ImportError:
        return "cpu (torch not installed)"
    from xner_core.numerics import resolve_precision

    precision = resolve_precision("auto")  # what the dashboard's training and tagging use (XNER_PRECISION pins it)
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} · {precision}"
    return f"cpu · {precision}"


@st.cache_data(show_spinner=False, ttl=60)
def dir_size(path: str) -> int:
    """Total bytes of the files under `path` (0 when absent); cached for a minute."""
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def human_bytes(n: int) -> str:
    """e.g. 1.2 GB."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def cache_summary() -> tuple[str, str]:
    """(size, path) of the cache directory for the sidebar, e.g. ("1.2 GB", "/root/.cache/xner")."""
    root = cache_dir()
    return human_bytes(dir_size(str(root))), str(root)


def require_local(needs: list[tuple[str, str]]) -> None:
    """Raise DataError with guidance when a needed local split is missing (for code paths without an info box)."""
    missing = missing_splits(needs)
    if missing is not None:
        raise DataError(missing.message)
