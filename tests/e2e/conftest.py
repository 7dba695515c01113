"""Real-browser journeys: `streamlit run app.py` on a free port, driven by Playwright in Debian's Chromium.

The server gets its own cache directory (models trained during a journey land there) and embeds words with the
tiny encoder; WikiANN comes from XNER_DATA_DIR (the journeys skip without it). Chromium is the system one
(`/usr/bin/chromium`, Debian package `chromium`); the journeys skip when it is not installed. Screenshots go to
`artifacts/e2e/` (or `XNER_ARTIFACTS`), one per journey step worth looking at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    for name in (os.environ.get("XNER_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if name and Path(name).exists():
            return name
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    out = Path(os.environ.get("XNER_ARTIFACTS", ROOT / "artifacts")) / "e2e"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def server(wikiann_dir, tmp_path_factory):
    """The dashboard served by `streamlit run app.py`; yields its base URL."""
    port = _free_port()
    cache = tmp_path_factory.mktemp("e2e-cache")
    env = {**os.environ, "XNER_DATA_DIR": str(wikiann_dir), "XNER_CACHE_DIR": str(cache),
           "XNER_RESULTS": str(cache / "results.duckdb"), "XNER_EMBED_MODEL": "tiny",
           "TOKENIZERS_PARALLELISM": "false"}
    log = open(cache / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start: {(cache / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
    pg.base = server
    yield pg
    context.close()
