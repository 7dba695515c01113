"""Fixtures of the dashboard's AppTests: an isolated cache and results store per test, data on or off.

Each test gets its own XNER_CACHE_DIR and XNER_RESULTS (so no rows of the developer's own store leak in), and
Streamlit's scan of installed packages for custom components (about 1.4 s per AppTest; the dashboard uses none)
is skipped. Helpers to open pages and inspect them are in apptest_helpers.py.
"""

from __future__ import annotations

import pytest
from streamlit.components.v2 import manifest_scanner


@pytest.fixture(autouse=True)
def app_env(tmp_path, monkeypatch):
    """Isolate caches and the results store, embed words with the tiny encoder; skip the component scan."""
    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XNER_RESULTS", str(tmp_path / "results.duckdb"))
    monkeypatch.setenv("XNER_EMBED_MODEL", "tiny")  # a random encoder built in code: P2/P3 run without e5-small
    # No committed result tables unless a test asks for them (`committed`): views start from the study's numbers.
    (tmp_path / "committed").mkdir()
    monkeypatch.setenv("XNER_COMMITTED_RESULTS", str(tmp_path / "committed"))
    monkeypatch.setattr(manifest_scanner, "scan_component_manifests", lambda: [])
    return tmp_path


@pytest.fixture
def committed(monkeypatch):
    """The result tables committed in data/results/ (what `make app` shows on a fresh machine)."""
    monkeypatch.delenv("XNER_COMMITTED_RESULTS")
    from xner_core.experiments.store import committed_results

    frame = committed_results()
    if frame.empty:
        pytest.skip("no committed result tables in data/results/")
    return frame


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """An empty WikiANN directory: pages must explain what is missing instead of failing."""
    empty = tmp_path / "no-wikiann"
    empty.mkdir()
    monkeypatch.setenv("XNER_DATA_DIR", str(empty))
    return empty


@pytest.fixture
def with_data(wikiann_dir, monkeypatch):
    """The shared WikiANN directory (the test is skipped without it)."""
    monkeypatch.setenv("XNER_DATA_DIR", str(wikiann_dir))
    return wikiann_dir




@pytest.fixture
def tiny_models(with_data):
    """Cache tiny native and transfer models for es→an the way the dashboard trains them (200 sentences)."""
    from dashboard_models import cache_dashboard_models

    return cache_dashboard_models("tiny", "es", "an")
