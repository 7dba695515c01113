"""A browser-less Streamlit client: one websocket session that runs a page like a browser tab would.

It speaks the app's own protocol (`streamlit.proto` BackMsg / ForwardMsg over `/_stcore/stream`): it asks for a
run of a page with a query string, collects the elements the run draws, and answers nothing else (no widget
interaction). Used by the load check to hold many concurrent sessions against one server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY


@dataclass
class PageRun:
    """What one session saw: element kinds with their text, exceptions and error alerts, timings."""

    elements: list[tuple[str, str]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    finished: bool = False

    def texts(self, kind: str) -> list[str]:
        return [t for k, t in self.elements if k == kind]


def _element_text(element: Any) -> tuple[str, str]:
    kind = element.WhichOneof("type") or ""
    inner = getattr(element, kind, None)
    for attr in ("body", "message", "label", "text"):
        value = getattr(inner, attr, None)
        if isinstance(value, str) and value:
            return kind, value
    return kind, ""


class Session:
    """One open websocket session; `run` asks it for a page run (as a browser tab does on navigation or a URL
    change) and waits for that run to finish."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.replace("http", "ws", 1) + "/_stcore/stream"
        self.ws: Any = None

    async def __aenter__(self) -> "Session":
        import websockets

        self.ws = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=None, open_timeout=30)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.ws.close()

    async def run(self, page_name: str, query_string: str = "", timeout: float = 120) -> PageRun:
        """Run `page_name` with `query_string`; the returned PageRun holds what that run drew."""
        out = PageRun()
        start = time.perf_counter()
        msg = BackMsg()
        msg.rerun_script.query_string = query_string
        msg.rerun_script.page_name = page_name
        await self.ws.send(msg.SerializeToString())
        deadline = start + timeout
        while time.perf_counter() < deadline:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout=max(0.1, deadline - time.perf_counter()))
            except asyncio.TimeoutError:
                break
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                el_kind, text = _element_text(fwd.delta.new_element)
                out.elements.append((el_kind, text))
                if el_kind == "exception":
                    out.exceptions.append(fwd.delta.new_element.exception.message)
                elif el_kind == "alert" and fwd.delta.new_element.alert.format == 1:  # ERROR
                    out.errors.append(text)
            elif kind == "script_finished":
                if fwd.script_finished == FINISHED:
                    out.finished = True
                    break
                out.elements.clear()  # an early finish for a rerun: the next run draws the page again
        out.seconds = time.perf_counter() - start
        return out


async def run_page(base_url: str, page_name: str, query_string: str = "", timeout: float = 120) -> PageRun:
    """Open a session, run `page_name` (its url_path) with `query_string`, wait for the run to finish.

    Args:
        base_url: e.g. http://127.0.0.1:8501.
        page_name: the page's url_path ("" for the default page).
        query_string: URL parameters without "?".
        timeout: seconds before giving up.

    Returns:
        The PageRun (finished=False on timeout); its seconds include opening the session.
    """
    start = time.perf_counter()
    async with Session(base_url) as session:
        out = await session.run(page_name, query_string, timeout)
    out.seconds = time.perf_counter() - start
    return out


async def run_many(base_url: str, page_name: str, query_strings: list[str], timeout: float = 300) -> list[PageRun]:
    """Run one session per query string, all at once."""
    return list(await asyncio.gather(*(run_page(base_url, page_name, q, timeout) for q in query_strings)))


def blocking(coro: Any) -> Any:
    """Run a coroutine to completion from synchronous code, in a thread of its own (the Playwright journeys
    of the same test session keep an event loop on the main thread)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
