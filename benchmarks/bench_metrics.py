"""Benchmark the bootstrap CI of entity F1 (stage 5, metrics) against re-scoring every resample with seqeval.

Both compute the same percentile bootstrap over sentences: resample the test set's sentences with replacement,
score the resample, take the 2.5th and 97.5th percentiles. The baseline does what a notebook would: draw the
indices with numpy and call `seqeval.metrics.f1_score` on each resample (seqeval's strict IOB2 mode, the same
entity definition ours uses). Ours (`metrics.bootstrap_ci`) counts true positives, predicted and gold entities
per sentence once and resamples those counts. Both run the same resamples count on the same synthetic test set
(random valid-IOB2 gold tags with 10 % noise in the predictions), one thread; best of `--repeat` runs each.
The baseline is given fewer resamples (`--baseline-resamples`) and its time scaled to the full count, since its
cost is linear in the resamples.

The last line is `ratio=<ours / baseline time>` (lower is better) with the intervals beside it (they agree up to
resampling noise only when both use many resamples).

Usage: python benchmarks/bench_metrics.py [--sentences 10000] [--resamples 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from xner_core.metrics.bootstrap import bootstrap_ci  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402

TYPES = ("PER", "ORG", "LOC")


def synthetic(n: int, seed: int = 0, noise: float = 0.1, length: int = 20) -> tuple[list[list[str]], list[list[str]]]:
    """n gold sentences with two entities each and predictions with a fraction `noise` of tags changed."""
    rng = np.random.default_rng(seed)
    gold, pred = [], []
    for _ in range(n):
        tags = ["O"] * length
        for _ in range(2):
            start, size = int(rng.integers(0, length - 3)), int(rng.integers(1, 4))
            etype = TYPES[int(rng.integers(0, 3))]
            tags[start:start + size] = [f"B-{etype}"] + [f"I-{etype}"] * (size - 1)
        gold.append(tags)
        p = list(tags)
        for i in range(length):
            if rng.random() < noise:
                p[i] = "O" if p[i] != "O" else f"B-{TYPES[int(rng.integers(0, 3))]}"
        for i in range(1, length):  # keep predictions valid IOB2
            if p[i].startswith("I-") and p[i - 1][2:] != p[i][2:]:
                p[i] = "B-" + p[i][2:]
        pred.append(p)
    return gold, pred


def baseline_ci(gold: list[list[str]], pred: list[list[str]], n_resamples: int, seed: int = 0) -> tuple[float, float]:
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    rng = np.random.default_rng(seed)
    n = len(gold)
    scores = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        scores.append(f1_score([gold[i] for i in idx], [pred[i] for i in idx], mode="strict", scheme=IOB2))
    lo, hi = np.percentile(scores, [2.5, 97.5])
    return float(lo), float(hi)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=10_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--baseline-resamples", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    gold, pred = synthetic(args.sentences)
    t_ours, ours = best_of(lambda: bootstrap_ci(gold, pred, n_resamples=args.resamples, seed=0), args.repeat)
    t_base, base = best_of(lambda: baseline_ci(gold, pred, n_resamples=args.baseline_resamples, seed=0),
                           max(1, args.repeat - 1))
    t_base_full = t_base * args.resamples / args.baseline_resamples
    print(f"sentences {args.sentences}, resamples {args.resamples}")
    print(f"ours     {t_ours:8.3f} s   CI [{ours[0]:.4f}, {ours[1]:.4f}]")
    print(f"seqeval  {t_base_full:8.3f} s   ({t_base:.3f} s for {args.baseline_resamples} resamples, scaled; "
          f"CI [{base[0]:.4f}, {base[1]:.4f}] from those)")
    print(f"ratio={t_ours / t_base_full:.4f} ours_s={t_ours:.3f} baseline_s={t_base_full:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
