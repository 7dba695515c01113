"""Dashboard state: widgets bound to the URL (`st.query_params`) and the shared sidebar choices.

A bound widget reads its first value from the URL (so a shared link reproduces the view), and writes its value
back after every run. The URL wins whenever it changed since this session last wrote it, e.g. after
`st.switch_page(..., query_params=...)` from a chart click or when a link is opened in a running session;
otherwise the widget's own state wins. Values that are not among the widget's options are ignored (the default
is used), so a hand-edited URL cannot put a widget into an impossible state.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import streamlit as st

_LAST = "_xner_url_last"  # param -> the raw value this session last wrote to (or read from) the URL
_SHARED = "_xner_shared"
PAIR_SEP = "→"  # pair widget values are "fr→br" (codes may contain "-", e.g. zh-yue)
SEP = ","  # multi-value params are one comma-joined value: ?perturbations=entity_replace,entity_context


def _last() -> dict[str, str]:
    if _LAST not in st.session_state:
        st.session_state[_LAST] = {}
    return st.session_state[_LAST]


def url_raw(param: str) -> str | None:
    """The URL's value of `param` when it changed since this session last saw it, else None."""
    raw = st.query_params.get(param)
    if raw is None or raw == _last().get(param):
        return None
    _last()[param] = raw
    return raw


def publish(params: dict[str, str]) -> None:
    """Write values to the URL (only those that differ, so a run does not rewrite an unchanged URL)."""
    last = _last()
    for param, raw in params.items():
        if st.query_params.get(param) != raw:
            st.query_params[param] = raw
        last[param] = raw


def _init(key: str, value: Any, valid: Callable[[Any], bool], default: Any) -> None:
    """Put `value` (from the URL) or `default` into the widget's state before the widget is created."""
    if value is not None and valid(value):
        st.session_state[key] = value
    elif key not in st.session_state or not valid(st.session_state[key]):
        st.session_state[key] = default


def select(label: str, options: Sequence[Any], param: str, default: Any, *, where: Any = st,
           format_func: Callable[[Any], str] = str, help: str | None = None, radio: bool = False) -> Any:
    """A selectbox (or horizontal radio) whose value lives in the URL parameter `param`.

    Args:
        label: widget label.
        options: allowed values (strings, so they round-trip through the URL).
        param: URL parameter name (also the widget key, prefixed with "qp_").
        default: value when the URL has none (must be in options).
        where: container to draw in (`st`, `st.sidebar`, a column).
        format_func: display text of an option.
        help: tooltip.
        radio: draw a horizontal radio instead of a selectbox.

    Returns:
        The chosen value.
    """
    key = f"qp_{param}"
    options = list(options)
    _init(key, url_raw(param), lambda v: v in options, default if default in options else options[0])
    widget = where.radio if radio else where.selectbox
    extra = {"horizontal": True} if radio else {}
    value = widget(label, options, key=key, format_func=format_func, help=help, **extra)
    publish({param: str(value)})
    return value


def multiselect(label: str, options: Sequence[str], param: str, default: Sequence[str], *, where: Any = st,
                format_func: Callable[[Any], str] = str, help: str | None = None) -> list[str]:
    """A multiselect whose values live in the URL parameter `param` (comma-joined).

    Args:
        label: widget label.
        options: allowed values.
        param: URL parameter name.
        default: values when the URL has none.
        where: container.
        format_func: display text.
        help: tooltip.

    Returns:
        The chosen values, in option order.
    """
    key = f"qp_{param}"
    options = list(options)
    raw = url_raw(param)
    wanted = set(raw.split(SEP)) if raw is not None else None
    from_url = [v for v in options if v in wanted] if wanted is not None else None
    _init(key, from_url or None, lambda v: isinstance(v, list) and all(x in options for x in v),
          [d for d in default if d in options])
    picked = set(where.multiselect(label, options, key=key, format_func=format_func, help=help))
    value = [v for v in options if v in picked]
    publish({param: SEP.join(value)})
    return value


def slider(label: str, lo: int, hi: int, param: str, default: int, *, where: Any = st,
           help: str | None = None) -> int:
    """An integer slider whose value lives in the URL parameter `param`."""
    key = f"qp_{param}"
    raw = url_raw(param)
    value_in = int(raw) if raw is not None and raw.lstrip("-").isdigit() else None
    _init(key, value_in, lambda v: isinstance(v, int) and lo <= v <= hi, default)
    value = where.slider(label, lo, hi, key=key, help=help)
    publish({param: str(value)})
    return int(value)


# ------------------------------------------------------------------------------------------- the app frame

_frame = threading.local()  # a script run executes app.py and its page on one thread


@contextlib.contextmanager
def app_frame() -> Iterator[None]:
    """Mark the page run that app.py starts (pages check it with `require_app`)."""
    _frame.active = True
    try:
        yield
    finally:
        _frame.active = False


def require_app() -> None:
    """Make sure this page runs inside the dashboard's main script (sidebar, shared state); reroute when not.

    A `pages/` folder beside the main script (`streamlit run app.py` in a checkout) makes Streamlit start in its
    legacy multipage mode until a script calls `st.navigation` once per process. So the first request after a
    server start that names a page (a shared link such as /pair_explorer?source=es&target=ast) runs that page
    file alone. Registering the dashboard's pages with `st.navigation` (hidden: this run draws nothing) switches
    the process to navigation mode, and the rerun routes the same URL through the main script. (`xner app`
    starts `xner_ui/app.py`, which has no `pages/` beside it; AppTest starts every run in the legacy mode.)
    """
    if getattr(_frame, "active", False):
        return
    from xner_ui.app import pages

    st.navigation(pages(), position="hidden")
    st.rerun()


# ------------------------------------------------------------------------------------------- shared sidebar


@dataclass(frozen=True)
class Shared:
    """The sidebar's choices every page may read (set by app.py on each run)."""

    model: str
    source: str
    target: str
    perturbation: str
    image_format: str
    protocol: str | None = None  # which of our runs the views show (`analysis.protocol_label`); None: all

    @property
    def pair_label(self) -> str:
        """e.g. "fr→br"."""
        return f"{self.source}→{self.target}"


def pair_select(label: str, pairs: Sequence[tuple[str, str]], default: tuple[str, str], *, where: Any = st,
                format_func: Callable[[str], str] = str) -> tuple[str, str]:
    """A pair selectbox bound to the two URL parameters `source` and `target` (the pair explorer's link).

    Args:
        label: widget label.
        pairs: (source, target) options.
        default: the default pair.
        where: container.
        format_func: display text of a "src→tgt" key.

    Returns:
        The chosen (source, target).
    """
    key = "qp_pair"
    keys = [f"{s}{PAIR_SEP}{t}" for s, t in pairs]
    src, tgt = url_raw("source"), url_raw("target")
    if src is None and tgt is None:
        from_url = None
    else:  # one of the two changed: combine with the current URL value of the other
        from_url = (f"{src or st.query_params.get('source', '')}{PAIR_SEP}"
                    f"{tgt or st.query_params.get('target', '')}")
    _init(key, from_url, lambda v: v in keys, f"{default[0]}{PAIR_SEP}{default[1]}")
    value = where.selectbox(label, keys, key=key, format_func=format_func)
    source, target = value.split(PAIR_SEP, 1)
    publish({"source": source, "target": target})
    return source, target


def set_shared(shared: Shared) -> None:
    """Store the sidebar's choices for the page of this run."""
    st.session_state[_SHARED] = shared


def shared() -> Shared:
    """The sidebar's choices of this run (defaults when a page runs without app.py, e.g. in a unit test)."""
    value = st.session_state.get(_SHARED)
    return value if isinstance(value, Shared) else Shared("mbert", "fr", "br", "entity_replace", "png")


def text_area(label: str, param: str, default: str, *, where: Any = st, max_chars: int = 500,
              help: str | None = None, placeholder: str | None = None) -> str:
    """A text area whose text lives in the URL parameter `param` (so a typed sentence can be shared).

    Args:
        label: widget label.
        param: URL parameter name.
        default: text when the URL has none.
        where: container.
        max_chars: limit (longer URL values are cut).
        help: tooltip.
        placeholder: grey hint text.

    Returns:
        The text.
    """
    key = f"qp_{param}"
    raw = url_raw(param)
    _init(key, raw[:max_chars] if raw is not None else None, lambda v: isinstance(v, str), default)
    value = where.text_area(label, key=key, max_chars=max_chars, help=help, placeholder=placeholder)
    publish({param: value})
    return value
