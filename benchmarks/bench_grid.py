"""Benchmark the experiment grid's own overhead per evaluation job against the job's compute time.

Runs a smoke-like plan (default: the `smoke` preset: tiny model, es→ca and fr→br, native + transfer, 4
conditions = 16 evaluation jobs) with the local executor in a temporary cache and store:

1. cold: from nothing (4 models trained, then evaluated);
2. eval-only (`--repeat` times, median): the store and predictions removed, the trained models kept and the
   evaluation's in-process caches cleared, so every job recomputes its perturbation, predictions and scores;
3. no-op: the same plan again once everything is stored (planning and reading the store only).

Compute is the time spent inside evaluation calls (`train_model`, each step of `iter_evaluate`: data, features,
perturbation, prediction, scoring), as `RunSummary.compute_seconds` measures it; the grid's overhead is the rest
of the wall time (planning, reading the store, claims, handing rows to the writer, waiting for the last write).
Rows are committed on a writer thread while the next job computes; its time is reported separately
(`write_ms_per_job`) together with the ratio the overhead would have if writes were not overlapped.

The last line is `ratio=<overhead/compute of the eval-only runs> ...` with the other figures after it.

Usage: python benchmarks/bench_grid.py [--spec smoke] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from xner_core.evaluation.memo import clear_caches  # noqa: E402
from xner_core.experiments.execute import run_plan  # noqa: E402
from xner_core.experiments.plan import expand  # noqa: E402
from xner_core.experiments.spec import load_spec  # noqa: E402
from xner_core.experiments.store import ResultsStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="smoke", help="preset or spec file (default: smoke)")
    ap.add_argument("--repeat", type=int, default=3, help="eval-only runs (median reported)")
    ap.add_argument("--data-dir", default=None, help="WikiANN directory (default XNER_DATA_DIR)")
    args = ap.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    t_import = time.perf_counter()
    import torch  # noqa: F401  (import cost reported apart: it is per process, not per job)

    import_s = time.perf_counter() - t_import
    plan = expand(load_spec(args.spec), args.data_dir)
    jobs = len(plan.eval_jobs)
    with tempfile.TemporaryDirectory(prefix="xner-bench-grid-") as tmp:
        root = Path(tmp)
        cache = root / "cache"

        def fresh_store(name: str) -> ResultsStore:
            return ResultsStore(root / f"{name}.duckdb")

        clear_caches()
        cold = run_plan(plan, fresh_store("cold"), data_dir=args.data_dir, cache=cache)
        assert cold.failures == (), cold.failures
        evals = []
        for i in range(args.repeat):
            shutil.rmtree(cache / "predictions", ignore_errors=True)
            clear_caches()
            s = run_plan(plan, fresh_store(f"eval{i}"), data_dir=args.data_dir, cache=cache)
            assert s.jobs_run == jobs and s.models_trained == 0 and s.failures == ()
            evals.append(s)
        t0 = time.perf_counter()
        noop = run_plan(plan, fresh_store(f"eval{args.repeat - 1}"), data_dir=args.data_dir, cache=cache)
        noop_s = time.perf_counter() - t0
        assert noop.jobs_run == 0

    def per_job_ms(seconds: float) -> float:
        return 1000 * seconds / jobs

    print(f"plan {plan.spec.name}: {len(plan.groups)} models, {jobs} evaluation jobs; torch import {import_s:.1f}s "
          f"(per process, not counted)")
    print(f"{'run':<10}{'wall s':>8}{'compute s':>11}{'overhead s':>12}{'writes s':>10}{'overhead/compute':>18}")
    for name, s in [("cold", cold)] + [(f"eval {i}", s) for i, s in enumerate(evals)]:
        print(f"{name:<10}{s.wall_seconds:8.2f}{s.compute_seconds:11.2f}{s.overhead_seconds:12.3f}"
              f"{s.write_seconds:10.2f}{s.overhead_seconds / s.compute_seconds:18.4f}")
    print(f"{'no-op':<10}{noop_s:8.2f}{'':>11}{noop_s:12.3f}")
    ratios = [s.overhead_seconds / s.compute_seconds for s in evals]
    mid = evals[ratios.index(statistics.median(ratios))] if len(ratios) % 2 else min(
        evals, key=lambda s: abs(s.overhead_seconds / s.compute_seconds - statistics.median(ratios)))
    ratio = mid.overhead_seconds / mid.compute_seconds
    serial = (mid.overhead_seconds + mid.write_seconds) / mid.compute_seconds
    print(f"ratio={ratio:.4f} overhead_ms_per_job={per_job_ms(mid.overhead_seconds):.1f} "
          f"compute_ms_per_job={per_job_ms(mid.compute_seconds):.1f} "
          f"write_ms_per_job={per_job_ms(mid.write_seconds):.1f} ratio_if_writes_serial={serial:.4f} "
          f"ratio_cold={cold.overhead_seconds / cold.compute_seconds:.4f} "
          f"noop_ms_per_job={per_job_ms(noop_s):.1f} jobs={jobs} wall_s={mid.wall_seconds:.2f}")


if __name__ == "__main__":
    main()
