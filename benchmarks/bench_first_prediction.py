"""Benchmark the dashboard's out-of-the-box path: from a fresh cache to the sentence lab's first prediction.

What the sentence lab does when a visitor clicks "Train" for the default pair (fr→br, e5-small, transfer, the
slider's default cap of 1,000 sentences): `xner_ui.hooks.train` (the one-time rebuild of e5-small into the cache,
loading it, training, caching the model) then `xner_ui.hooks.tag_with` on one sentence. It runs in a new process
on an empty cache, so imports and the rebuild count, and reports each phase (wall and CPU seconds).

Baseline, measured in the same run: the e5-small rebuild as it was first written (build the `BertModel`, then
`save_pretrained` the model and the tokenizer) against ours (`ensure_e5_small`: config and safetensors written
tensor by tensor, no model built), each in a new process after the same imports, round robin, best of
`--repeat`. Both must write the same model.safetensors (checked).

The LAST line printed is `ratio=<our rebuild / save_pretrained rebuild> first_prediction_s=... ...`, with the
issue's budget (120 s) beside the first-prediction time.

Usage: XNER_DATA_DIR=/path/to/wikiann python benchmarks/bench_first_prediction.py [--cap 1000] [--repeat 2]
           [--model e5-small] [--source fr] [--target br] [--setting transfer] [--skip-first]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BUDGET_S = 120.0
WORDS = [["Anjela", "Duval", "a", "zo", "ganet", "e", "Kemper", "."]]


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> dict[str, float]:
    wall, cpu = _clock()
    return {"wall": round(wall - start[0], 3), "cpu": round(cpu - start[1], 3)}


def _timed(phases: dict[str, Any], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        start = _clock()
        try:
            return fn(*args, **kwargs)
        finally:
            phases[name] = _since(start)
    return run


def _imports() -> dict[str, float]:
    start = _clock()
    import torch  # noqa: F401
    from transformers import AutoModelForTokenClassification, BertModel, XLMRobertaTokenizerFast  # noqa: F401

    return _since(start)


def child_rebuild(cache: str, baseline: bool) -> dict[str, Any]:
    """One rebuild of e5-small into `cache` (ours, or the save_pretrained baseline)."""
    out: dict[str, Any] = {"imports": _imports()}
    from xner_core.models.e5 import build_e5_model, e5_model_dir, ensure_e5_small
    from xner_core.models.e5file import find_e5_file, read_e5_file
    from xner_core.models.e5tokenizer import build_e5_tokenizer

    start = _clock()
    if baseline:
        target = e5_model_dir(cache)
        e5file = read_e5_file(find_e5_file())
        tokenizer = build_e5_tokenizer(e5file)
        build_e5_model(e5file).save_pretrained(target, safe_serialization=True)
        tokenizer.save_pretrained(target)
    else:
        target = ensure_e5_small(cache)
    out["rebuild"] = _since(start)
    out["weights_sha256"] = hashlib.sha256((target / "model.safetensors").read_bytes()).hexdigest()
    return out


def child_first(cache: str, model: str, setting: str, source: str, target: str, cap: int) -> dict[str, Any]:
    """The sentence lab's first prediction on an empty cache, phase by phase."""
    os.environ["XNER_CACHE_DIR"] = cache
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    begin = _clock()
    phases: dict[str, Any] = {}
    start = _clock()
    from xner_ui import hooks

    phases["import hooks"] = _since(start)
    phases["import torch+transformers"] = _imports()
    from xner_core.evaluation import modelstore
    from xner_core.models import e5
    from xner_core.runs import modelcache
    from xner_core.training import loop

    e5._rebuild = _timed(phases, "e5 rebuild", e5._rebuild)
    modelstore.training_data = _timed(phases, "training data", modelstore.training_data)
    loop.evaluate_f1 = _timed(phases, "dev evaluation", loop.evaluate_f1)
    modelcache.ModelCache._save_locked = _timed(phases, "cache save", modelcache.ModelCache._save_locked)
    steps: dict[str, float] = {}

    def progress(step: int, total: int, info: dict[str, Any]) -> None:
        steps.setdefault("first", time.perf_counter())
        steps.update(last=time.perf_counter(), n=step, total=total)

    start = _clock()
    digest = hooks.train(hooks.ModelKey(model, setting, source, target), cap, progress=progress)
    phases["train (all)"] = _since(start)
    start = _clock()
    tags = hooks.tag_with(digest, WORDS)
    phases["first prediction"] = _since(start)
    return {"phases": phases, "total": _since(begin), "tags": tags,
            "steps": {"n": steps.get("n"), "first_to_last_s": round(steps["last"] - steps["first"], 3)}}


def _spawn(*args: str) -> dict[str, Any]:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=False)
    if run.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cap", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--model", default="e5-small")
    parser.add_argument("--setting", default="transfer")
    parser.add_argument("--source", default="fr")
    parser.add_argument("--target", default="br")
    parser.add_argument("--skip-first", action="store_true", help="only the rebuild comparison")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, cache = args.child[0], args.child[1]
        result = (child_first(cache, args.model, args.setting, args.source, args.target, args.cap)
                  if kind == "first" else child_rebuild(cache, baseline=kind == "baseline"))
        print(json.dumps(result))
        return

    best: dict[str, dict[str, float]] = {}
    shas = set()
    for i in range(args.repeat):
        for kind in ("baseline", "ours"):
            with tempfile.TemporaryDirectory(prefix="xner-bench-first-") as cache:
                got = _spawn(kind, cache)
            shas.add(got["weights_sha256"])
            print(f"rebuild {kind} #{i + 1}: {got['rebuild']['wall']:.2f} s wall, {got['rebuild']['cpu']:.2f} s CPU "
                  f"(imports {got['imports']['wall']:.1f} s)", flush=True)
            if kind not in best or got["rebuild"]["wall"] < best[kind]["wall"]:
                best[kind] = got["rebuild"]
    if len(shas) != 1:
        raise SystemExit(f"the rebuilds wrote different weights: {sorted(shas)}")
    first: dict[str, Any] = {}
    if not args.skip_first:
        with tempfile.TemporaryDirectory(prefix="xner-bench-first-") as cache:
            first = _spawn("first", cache)
        for name, t in first["phases"].items():
            print(f"  {name:28s} {t['wall']:8.2f} s wall {t['cpu']:8.2f} s CPU", flush=True)
        print(f"  steps: {first['steps']['n']}, first to last {first['steps']['first_to_last_s']:.1f} s; "
              f"tags {first['tags']}", flush=True)
    ratio = best["ours"]["wall"] / best["baseline"]["wall"]
    total = first.get("total", {}).get("wall", float("nan"))
    print(f"ratio={ratio:.3f} first_prediction_s={total:.1f} budget_s={BUDGET_S:.0f} "
          f"rebuild_s={best['ours']['wall']:.2f} rebuild_baseline_s={best['baseline']['wall']:.2f} "
          f"rebuild_cpu_s={best['ours']['cpu']:.2f} rebuild_baseline_cpu_s={best['baseline']['cpu']:.2f}")


if __name__ == "__main__":
    main()
