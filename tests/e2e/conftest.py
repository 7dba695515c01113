"""Real-browser journeys: `streamlit run app.py` on a free port, driven by Playwright in Debian's Chromium.

The server gets its own cache directory (models trained during a journey land there) and embeds words with the
tiny encoder; WikiANN comes from XNER_DATA_DIR (the journeys skip without it). Chromium is the system one
(`/usr/bin/chromium`, Debian package `chromium`); the journeys skip when it is not installed. Screenshots go to
`artifacts/e2e/` (or `XNER_ARTIFACTS`), one per journey step worth looking at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from dashboard_server import start_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    for name in (os.environ.get("XNER_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if name and Path(name).exists():
            return name
    return None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    out = Path(os.environ.get("XNER_ARTIFACTS", ROOT / "artifacts")) / "e2e"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def server(wikiann_dir, tmp_path_factory):
    """The dashboard served by `streamlit run app.py` (tiny encoder, fresh cache) for the journeys."""
    yield from start_server(wikiann_dir, tmp_path_factory.mktemp("e2e-cache"))


@pytest.fixture(scope="session")
def browser():
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium not installed (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh browser page; JavaScript dialogs (an `alert` from injected markup) are recorded, not accepted."""
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    pg = context.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.base = server.url
    yield pg
    context.close()
