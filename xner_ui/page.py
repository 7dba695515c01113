"""Page scaffolding: error guard, charts with image export, CSV downloads.

Every page body runs inside `guarded`, so a user never sees a traceback: an `XnerError` (bad input, missing data,
unknown name) is shown as `st.error` with its message, which already says what was wrong and what is allowed,
plus a line of guidance; anything else is logged on the server and shown as a short error. Streamlit's own
control-flow exceptions (`st.rerun`, `st.switch_page`, `st.stop`) derive from BaseException and pass through.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import pandas as pd
import streamlit as st

from xner_core.analysis.plots import canonical_figure, image_config
from xner_core.errors import ConfigError, DataError, XnerError
from xner_ui.render import md_escape
from xner_ui.state import shared

log = logging.getLogger("xner.dashboard")

_GUIDANCE = {
    DataError: "Check the data this view needs (XNER_DATA_DIR for WikiANN, the uploaded file, the results store).",
    ConfigError: "Pick one of the allowed values listed above.",
}


def guidance_for(exc: XnerError) -> str:
    """One line of what to do next for an error class."""
    for cls, text in _GUIDANCE.items():
        if isinstance(exc, cls):
            return text
    return "Change the choices in the sidebar or on the page and try again."


@contextlib.contextmanager
def guarded(what: str) -> Iterator[None]:
    """Run a page or section; show errors as messages, never as tracebacks.

    Args:
        what: what is being built, for the message ("the overview", "the example viewer").
    """
    try:
        yield
    except XnerError as exc:
        st.error(f"{md_escape(str(exc))}\n\n{guidance_for(exc)}", icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - the UI boundary: log the traceback, show a message
        log.exception("error while building %s", what)
        st.error(f"Something went wrong while building {md_escape(what)} ({type(exc).__name__}). "
                 "The details are in the server log; try other choices or reload the page.",
                 icon=":material/error:")


def chart(fig: Any, key: str, filename: str, *, select: bool = False) -> Any:
    """Draw a Plotly figure; the modebar camera saves it as PNG or SVG (the sidebar's image format).

    Args:
        fig: the figure.
        key: widget key (unique on the page).
        filename: image file name without extension.
        select: rerun on point clicks and return the selection event.

    Returns:
        The selection event when `select`, else None.
    """
    config = image_config(filename, shared().image_format)
    if select:  # a stable spec keeps the widget id, and so the clicked point, from one run to the next
        return st.plotly_chart(canonical_figure(fig), key=key, on_select="rerun", selection_mode="points",
                               config=config, width="stretch")
    st.plotly_chart(fig, key=key, config=config, width="stretch")
    return None


def download_csv(df: pd.DataFrame, filename: str, key: str, label: str = "Download CSV") -> None:
    """A CSV download button for a table (no rerun on click).

    Args:
        df: the table.
        filename: file name including `.csv`.
        key: widget key (unique on the page).
        label: button label.
    """
    st.download_button(label, df.to_csv(index=False).encode("utf-8"), file_name=filename, mime="text/csv", key=key,
                       on_click="ignore", icon=":material/download:")


def paired_tests(rows: pd.DataFrame, key: str, filename: str, what: str) -> None:
    """Paired tests of one model against another (`analysis.paired.paired_rows`): each clean comparison in words,
    then every row (CSV too); a note saying how to make them when there are none.

    Args:
        rows: `paired_rows` output.
        key: widget key prefix.
        filename: CSV download name.
        what: what the rows compare, for the empty-state note (e.g. "students and their teachers").
    """
    from xner_core.analysis.paired import COMPARISONS, TRAINED_AGAIN, paired_sentence, paired_summary

    if rows.empty:
        st.caption(f"No paired tests of {what} committed yet: `python scripts/paired_report.py` writes them from "
                   "the grid's cached predictions (data/results/paired_differences.csv).")
        return
    clean = rows[rows["perturbation"] == "clean"]
    for kind, part in clean.groupby("comparison", sort=False):
        st.markdown(f"**{COMPARISONS.get(str(kind), str(kind))}**, clean: {paired_summary(part)}.")
        with st.expander(f"Each of the {len(part)} in words", expanded=len(part) <= 3):
            st.markdown("\n".join(f"- **{r['target']}**: {paired_sentence(r)}" for _, r in part.iterrows()))
    st.dataframe(rows, hide_index=True, width="stretch", key=f"{key}_table",
                 column_config={c: st.column_config.NumberColumn(format="%.2f")
                                for c in ("candidate_f1", "baseline_f1", "diff", "low", "high")}
                 | {c: st.column_config.NumberColumn(format="%.3f") for c in ("p", "p_holm")})
    st.caption("p: two-sided, from the same bootstrap resamples as the interval; p_holm: Holm-corrected over the "
               "family_size tests of the same kind (same comparison and method, perturbation, run and seed, all "
               "targets).")
    if rows[["candidate", "baseline"]].astype(str).apply(lambda c: c.str.endswith(TRAINED_AGAIN)).any().any():
        st.caption(f"A model labelled “{TRAINED_AGAIN.strip(' ·')}” is the committed configuration trained again, "
                   "by the code that trained the model it is paired with (data/results/retrained/): the committed "
                   "row's own predictions were another training's, and the same configuration trained again can "
                   "differ by several F1 points (data/results/retrained/README.md). Its F1 is that training's, not "
                   "the committed row's.")
    download_csv(rows, filename, key=f"{key}_csv", label="Paired tests (CSV)")
