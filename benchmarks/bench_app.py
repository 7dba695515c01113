"""Benchmark the dashboard as a user meets it: the overview's first full render and the sentence lab's latency.

A real server (`streamlit run app.py`) is started; pages are run by a browser-less websocket client
(`tests/e2e/wsclient.py`), so the timings are from the request to the end of the script run, what a browser
waits for before the page is complete (drawing in the browser comes on top).

1. Overview, from the committed results (`data/results/*.parquet` + the study's numbers), on a fresh cache:
   - baseline: the first render in a new server process (cold: imports, tables, figures);
   - ours: the median of `--repeat` later renders by new sessions (warm: the cached tables and figures).
2. Sentence lab, per typed sentence (new words each time, so no prediction is cached): the full page with
   `--variants` perturbations and the native and transfer models' predictions, from a cache that holds the
   dashboard's models (`--cache`, default XNER_CACHE_DIR; e.g. after `xner grid run paper`):
   - baseline, measured in the same run: `transformers.pipeline("token-classification",
     aggregation_strategy="first")` tagging the same sentence and its variants with the same two models;
   - ours: the page's latency for each new sentence a visitor types in an open session (one websocket
     session, a rerun per sentence as the browser sends one), after the first sentence has loaded the models.

The last line is `ratio=<lab latency / pipeline baseline> ...` with the other figures after it.

Usage: python benchmarks/bench_app.py [--model e5-small] [--pair fr-br] [--cache DIR] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from dashboard_server import start_server  # noqa: E402
from wsclient import Session, run_page  # noqa: E402

PERTS = ("entity_replace", "entity_mask", "char_noise", "location_swap")
SENTENCES = [
    "[Anjela Duval|PER] a zo bet ganet e [Kemper|LOC] hag he deus skrivet evit [Al Liamm|ORG] .",
    "[Per-Jakez Helias|PER] a oa o chom e [Pouldreuzic|LOC] e-pad pell amzer .",
    "Ar skipailh [Stade Rennais|ORG] en deus c'hoariet e [Brest|LOC] dec'h .",
    "[Yann-Fañch Kemener|PER] a ganas e [Roazhon|LOC] gant [Dan Ar Braz|PER] .",
    "[Xavier Grall|PER] a skrivas diwar-benn [Breizh|LOC] hag [Iwerzhon|LOC] .",
    "Ti-kêr [Gwengamp|LOC] a zo tost d'ar stal [Coop Breizh|ORG] .",
    "[Glenmor|PER] a oa ur c'haner brudet e [Karaez|LOC] .",
]


def _check(run: Any, page: str) -> float:
    if not run.finished or run.exceptions or run.errors:
        raise SystemExit(f"page {page!r} did not render cleanly: {run.exceptions or run.errors or 'timeout'}")
    return run.seconds


def _run(url: str, page: str, query: str) -> float:
    """A new visitor's page: open a session, run the page, close it (seconds)."""
    return _check(asyncio.run(run_page(url, page, query, timeout=600)), page)


async def _lab_session(url: str, texts: list[str], model: str, source: str, target: str) -> tuple[list[float], float]:
    """One visitor typing one sentence after another: (seconds per later sentence, seconds of the first)."""
    times: list[float] = []
    async with Session(url) as session:
        for text in texts:
            query = urllib.parse.urlencode({"model": model, "source": source, "target": target, "text": text,
                                            "perts": ",".join(PERTS), "lab_lang": target})
            times.append(_check(await session.run("sentence_lab", query, timeout=600), "sentence_lab"))
    return times[1:], times[0]  # the first loads the models and the pair's data


def overview(data_dir: str, repeat: int) -> tuple[float, float]:
    """(cold first render, warm median) in seconds, on a fresh cache."""
    with tempfile.TemporaryDirectory(prefix="xner-bench-app-") as tmp:
        for server in start_server(Path(data_dir), Path(tmp) / "cache"):
            cold = _run(server.url, "", "")
            warm = [_run(server.url, "", "") for _ in range(repeat)]
            return cold, statistics.median(warm)
    raise RuntimeError("server did not start")


def lab(data_dir: str, cache: Path, model: str, source: str, target: str,
        repeat: int) -> tuple[float, float, float]:
    """(our median page latency, pipeline baseline median) per sentence, and the first sentence's, in seconds."""
    from transformers import pipeline

    from xner_core.evaluation.modelstore import find_cached, load_model
    from xner_core.perturb.apply import perturb_sentence
    from xner_ui.render import parse_marked_text

    found = {s: find_cached(model, s, source, target, cache=cache) for s in ("native", "transfer")}
    missing = [s for s, f in found.items() if not f]
    if missing:
        raise SystemExit(f"no cached {model} {'/'.join(missing)} model for {source}→{target} under {cache}; run "
                         f"`xner grid run paper` (or train them in the sentence lab) first")
    texts = (SENTENCES * (repeat // len(SENTENCES) + 2))[: repeat + 1]
    ours: list[float] = []
    first_visit = 0.0
    for server in start_server(Path(data_dir), cache, embed_model=model):
        ours, first_visit = asyncio.run(_lab_session(server.url, texts, model, source, target))

    # Baseline: the same sentences and variants through HF pipelines of the same two models.
    from xner_core.corpus.sentences import Sentence
    from xner_core.corpus.wikiann import load_wikiann
    from xner_core.evaluation.inputs import donor_corpus
    from xner_core.inference.text import join_words
    from xner_core.perturb.context import build_context

    ctx = build_context(load_wikiann(source, "train"), load_wikiann(target, "test"), donor=donor_corpus(source),
                        lang=target)
    pipes = []
    for setting, entries in found.items():
        lm = load_model(entries[0][0], cache=cache)
        pipes.append(pipeline("token-classification", model=lm.model, tokenizer=lm.tokenizer,
                              aggregation_strategy="first", device=-1))
    base: list[float] = []
    for i, text in enumerate(texts):
        words, tags = parse_marked_text(text)
        sent = Sentence(tuple(words), tuple(tags), target, f"bench-{i}")
        t0 = time.perf_counter()
        variants = [sent] + [perturb_sentence(p, sent, ctx, seed=0).corpus[0] for p in PERTS]
        for pipe in pipes:
            pipe([join_words(v.tokens) for v in variants])
        if i:
            base.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(base), first_visit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--pair", default="fr-br", help="source-target with cached native and transfer models")
    ap.add_argument("--cache", default=None, help="xner cache holding those models (default XNER_CACHE_DIR)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data-dir", default=os.environ.get("XNER_DATA_DIR"))
    args = ap.parse_args()
    if not args.data_dir:
        raise SystemExit("set XNER_DATA_DIR (or --data-dir) to the WikiANN directory")
    from xner_core.paths import cache_dir

    source, target = args.pair.split("-", 1)
    cold, warm = overview(args.data_dir, args.repeat)
    print(f"overview: first render {cold:.2f} s (cold process), warm median {warm:.2f} s over {args.repeat} "
          f"sessions (aim < 1.5 s): ratio warm/cold = {warm / cold:.3f}")
    ours, base, first = lab(args.data_dir, cache_dir(args.cache), args.model, source, target, args.repeat)
    print(f"sentence lab ({args.model}, {source}→{target}, {len(PERTS)} variants, 2 models): {ours * 1000:.0f} ms "
          f"per typed sentence in an open session (aim < 300 ms; the first, loading models and data: "
          f"{first:.1f} s); HF pipeline on the same variants {base * 1000:.0f} ms")
    print(f"ratio={ours / base:.3f} lab_ms={ours * 1000:.0f} pipeline_ms={base * 1000:.0f} "
          f"overview_warm_s={warm:.3f} overview_cold_s={cold:.3f} overview_ratio={warm / cold:.3f}")


if __name__ == "__main__":
    main()
