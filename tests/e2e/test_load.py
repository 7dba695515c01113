"""Load check: ten concurrent browser-less sessions run the sentence lab against one server.

Each session is a websocket client (`wsclient.py`) that opens the lab with its own sentence, so none is served
from another's prediction cache. The check: every run finishes without an exception or error message and shows
both models' predictions; the server's memory stays bounded; the Runs page reports one load per model.

By default it uses tiny models trained into a fresh cache. To check a real model, point it at a cache holding
the dashboard's models, e.g. `XNER_LOAD_CACHE=~/.cache/xner XNER_LOAD_MODEL=e5-small XNER_LOAD_PAIR=fr-br`.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
from dashboard_models import cache_dashboard_models
from dashboard_server import start_server
from wsclient import blocking, run_many, run_page

pytestmark = pytest.mark.e2e

SESSIONS = 10
NAMES = ["Joan Miró", "Maria Puig", "Pau Casals", "Anna Soler", "Jordi Pujol", "Marta Ros", "Pere Vila",
         "Laia Serra", "Toni Mas", "Núria Ferrer", "Quim Roca"]


def lab_query(model: str, source: str, target: str, i: int) -> str:
    text = f"[{NAMES[i % len(NAMES)]}|PER] va visitar [Barcelona|LOC] i [Girona|LOC] el dia {i} ."
    return urllib.parse.urlencode({"model": model, "source": source, "target": target, "text": text,
                                   "perts": "entity_replace,entity_mask,char_noise"})


def test_ten_concurrent_lab_sessions(wikiann_dir, tmp_path):

    model = os.environ.get("XNER_LOAD_MODEL", "tiny")
    source, target = os.environ.get("XNER_LOAD_PAIR", "es-an").split("-", 1)
    cache = Path(os.environ["XNER_LOAD_CACHE"]).expanduser() if os.environ.get("XNER_LOAD_CACHE") else None
    if cache is None:
        cache = tmp_path / "cache"
        cache_dashboard_models(model, source, target, cache)
    for server in start_server(wikiann_dir, cache):
        warm = blocking(run_page(server.url, "sentence_lab", lab_query(model, source, target, 0)))
        assert warm.finished and not warm.exceptions and not warm.errors, (warm.exceptions, warm.errors)
        rss_warm = server.rss_mb()
        runs = blocking(run_many(server.url, "sentence_lab",
                                    [lab_query(model, source, target, i) for i in range(1, SESSIONS + 1)]))
        rss_after = server.rss_mb()
        assert all(r.finished for r in runs), [r.seconds for r in runs]
        assert not [e for r in runs for e in r.exceptions + r.errors]
        for r in runs:
            grid = next(h for h in r.texts("html") if "display:grid" in h)
            assert f"native model ({model})" in grid and f"transfer model ({model})" in grid
        print(f"\n{SESSIONS} sessions: slowest {max(r.seconds for r in runs):.1f} s, "
              f"RSS {rss_warm:.0f} -> {rss_after:.0f} MB")
        assert rss_after - rss_warm < 300, (rss_warm, rss_after)  # no per-session model copies
        status = blocking(run_page(server.url, "runs"))
        loads = [t for t in status.texts("markdown") if "load(s) so far" in t]
        assert loads and "2 load(s) so far" in loads[0], loads
