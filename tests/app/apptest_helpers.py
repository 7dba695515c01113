"""Helpers of the dashboard's AppTests: open a page through app.py, read what it rendered."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app.py"
# Element types whose text is rendered as Markdown or HTML in the browser.
RENDERED_TYPES = ("markdown", "caption", "html", "error", "warning", "info", "success", "title", "header",
                  "subheader", "exception", "toast")


def open_page(page: str | None, query_params: Mapping[str, str] | None = None, timeout: float = 60) -> AppTest:
    """Run app.py on `page` (a path like "pages/overview.py"; None = the default page) with URL parameters.

    The page's url_path is its file stem, so AppTest finds it before the first run; AppTest then starts the page
    in Streamlit's legacy pages/ mode, and the page's `require_app()` reruns it through app.py (as on a real
    server whose first request names a page).
    """
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.query_params.update(dict(query_params or {}))
    if page is not None:
        at.switch_page(page)
    return at.run()


def rendered_texts(at: AppTest, types: Iterable[str] = RENDERED_TYPES) -> list[str]:
    """The text of every element rendered as Markdown or HTML (alerts and headings included)."""
    out: list[str] = []
    for kind in types:
        for el in at.get(kind):
            value: Any = getattr(el, "value", None)
            if value is None and hasattr(el, "proto"):
                value = getattr(el.proto, "body", None)
            if value is not None:
                out.append(str(value))
    return out


def unmd(text: str) -> str:
    """Undo Markdown backslash escapes (what the browser shows of `xner_ui.render.md_escape` output)."""
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def assert_clean_run(at: AppTest) -> None:
    """No exception element and no error message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def plotly_specs(at: AppTest) -> list[dict]:
    """The figures sent to the browser (JSON specs of every st.plotly_chart)."""
    import json

    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def write_store_rows(rows: list[dict]) -> None:
    """Write rows into the test's results store (XNER_RESULTS)."""
    from xner_core.experiments.store import ResultsStore

    ResultsStore().write(rows)


def result_row(**kw: Any) -> dict:
    """A results-store row (F1 as 0..1) with every column present."""
    from xner_core.experiments.store import COLUMN_NAMES

    row = {c: None for c in COLUMN_NAMES}
    row.update(job_id="job", scope="overall", config_hash="cfg", model="e5-small", sources="es", target="ca",
               setting="transfer", perturbation="clean", f1=0.8, clean_f1=0.8, drop=0.0)
    row.update(kw)
    return row


def widget_value(at: AppTest, key: str) -> Any:
    """A widget's value by key, read from session state.

    Sidebar widgets are drawn by app.py before the page; AppTest (Streamlit 1.67) drops app.py's sidebar
    deltas from its element tree on reruns of an st.navigation app, although the widgets run and keep their
    state, so tests read values from session state rather than from the tree.
    """
    return at.session_state[key]


def values(v: Any) -> list:
    """Numbers of a Plotly JSON array (plain list, or a typed array {"dtype", "bdata"} as Plotly 6+ writes)."""
    import base64

    import numpy as np

    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)
