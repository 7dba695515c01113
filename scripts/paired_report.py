"""Paired tests of one model against another on the same test sentences, from the committed results and the
per-job predictions in the cache (`xner_core.analysis.paired`): distillation students against their best teacher
and against multi-source training at equal steps, multi-source models against their best single source, TAPT
against plain transfer. Writes `data/results/paired_differences.csv` (what the Source diversity and Training
methods pages show) and prints a table per comparison.

Difference = F1(candidate) − F1(baseline) in points; 95 % interval and two-sided p from one paired bootstrap over
test sentences (1,000 resamples, seed 0). The grid writes each job's predictions under `<cache>/predictions/` as it
evaluates; a comparison whose predictions are not in this cache (another machine's, or a cleared cache) keeps its row
from the table being rewritten, and Holm's correction is taken again over each family as it now stands.

Usage: python scripts/paired_report.py [--cache DIR] [--out data/results/paired_differences.csv] [--resamples 1000]
       [--store STORE ...]  (rows of STORE replace the committed rows of the same jobs: models trained again here,
       labelled " · trained again" where their F1 differs from the committed row's; other jobs are new rows. The
       pages show such a report written to data/results/retrained/paired_same_code.csv beside the committed table.)
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xner_core.analysis.findings import fmt_p  # noqa: E402
from xner_core.analysis.paired import (  # noqa: E402
    COMPARISONS,
    comparison_pairs,
    mark_trained_again,
    paired_differences,
    read_paired_differences,
    retrained_jobs,
)
from xner_core.analysis.plots import perturbation_short  # noqa: E402
from xner_core.analysis.tidy import read_reference_tables, tidy_results  # noqa: E402
from xner_core.corpus.languages import reference_pairs  # noqa: E402
from xner_core.evaluation.predictions import load_predictions  # noqa: E402
from xner_core.experiments.store import ResultsStore, committed_results, unique_jobs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=None, help="xner cache root (default: XNER_CACHE_DIR or ~/.cache/xner)")
    ap.add_argument("--out", default=str(ROOT / "data" / "results" / "paired_differences.csv"))
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--store", action="append", default=[],
                    help="a results store whose rows stand in for the committed rows of the same jobs (repeat): "
                         "e.g. models trained again here, to pair them with this cache's predictions; write such a "
                         "report to its own --out")
    args = ap.parse_args()
    ref = read_reference_tables()
    rows = committed_results()
    retrained: set[str] = set()
    if args.store:  # the stores' rows are the newer measurements: one row per job and scope, theirs
        stored = [ResultsStore(s).frame() for s in args.store]
        retrained = set().union(*(retrained_jobs(rows, f) for f in stored))
        rows = unique_jobs(pd.concat([rows, *stored], ignore_index=True))
    tidy = tidy_results(ref["published"], rows, ref["overlap"], ref["uriel"], reference_pairs())
    pairs = comparison_pairs(tidy)
    previous = read_paired_differences(args.out)
    table = paired_differences(pairs, functools.partial(load_predictions, cache=args.cache),
                               n_resamples=args.resamples, previous=previous)
    carried = int(table.attrs.get("carried", 0))
    print(f"{len(table) - carried} of {len(pairs)} comparisons measured from the predictions in this cache, "
          f"{carried} kept from {args.out} (their predictions are not in this cache), "
          f"{len(pairs) - len(table)} left out (neither)")
    stale = table.attrs.get("stale", [])
    if stale:
        print(f"{len(stale)} jobs' predictions in this cache do not reproduce their committed F1 (the same "
              f"configuration trained again gives another model) and were not used: {', '.join(stale)}")
    table = mark_trained_again(table, retrained)  # the labels say which side is a model trained again
    table.to_csv(args.out, index=False, float_format="%.4f")
    print(f"wrote {args.out}")
    for kind, part in table.groupby("comparison", sort=False):
        print(f"\n{COMPARISONS.get(str(kind), kind)}")
        print("| target | candidate | baseline | perturbation | seed | candidate F1 | baseline F1 | diff [95 % CI] | p "
              "| p (Holm, family) | steps (candidate / baseline) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for _, r in part.iterrows():
            print(f"| {r['target']} | {r['candidate']} | {r['baseline']} | {perturbation_short(r['perturbation'])} | "
                  f"{r['seed']} | {r['candidate_f1']:.1f} | {r['baseline_f1']:.1f} | {r['diff']:+.2f} "
                  f"[{r['low']:+.2f}, {r['high']:+.2f}] | {fmt_p(r['p'])} | {fmt_p(r['p_holm'])} "
                  f"({int(r['family_size'])}) | "
                  f"{r['candidate_steps']:,.0f} / {r['baseline_steps']:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
