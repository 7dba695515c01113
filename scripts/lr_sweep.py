"""Learning-rate sweep for the faithful preset (stage 3): pick e5-small's lr on held-out source data, not on a test set.

The study fine-tuned mBERT with lr 4e-5 (simpletransformers' default); e5-small is a smaller encoder rebuilt from
4-bit weights and wants a higher one (docs/e5-format.md). This sweep trains e5-small with the faithful recipe
(batch 8, warmup 0.06, 1 epoch, weight decay 0, 128 sub-tokens) on the first `--train` sentences of the source's
`paper-resplit` train split and scores entity F1 on its last `--dev` sentences (disjoint from the training part;
no target-language data and no test set is looked at), once per learning rate and seed.

Writes `data/results/lr_sweep_e5-small.csv` (lr, seed, dev F1, loss, seconds, steps).

Usage:
    XNER_DATA_DIR=/work/shared/data/wikiann python scripts/lr_sweep.py [--source es] [--lrs 3e-5,1e-4,2e-4]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COLUMNS = ("model", "source", "lr", "seed", "precision", "n_train", "n_dev", "steps", "loss", "dev_f1", "seconds")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--source", default="es")
    ap.add_argument("--lrs", default="4e-5,1e-4,2e-4,3e-4")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--dev", type=int, default=1000)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", type=Path, default=Path("data/results/lr_sweep_e5-small.csv"))
    args = ap.parse_args(argv)

    from xner_core.corpus.resplit import paper_resplit
    from xner_core.models.registry import load_token_classifier
    from xner_core.training.finetune import fine_tune
    from xner_core.training.loop import evaluate_f1

    train_all = paper_resplit(args.source, seed=1)[0].sentences
    if len(train_all) < args.train + args.dev:
        raise SystemExit(f"{args.source} has {len(train_all)} re-split training sentences; need --train + --dev")
    train, dev = train_all[: args.train], train_all[-args.dev:]
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for lr in (float(x) for x in args.lrs.split(",")):
            model, tok = load_token_classifier(args.model, seed=seed)
            t0 = time.perf_counter()
            res = fine_tune(model, tok, train, None, epochs=1, lr=lr, batch_size=8, warmup_ratio=0.06,
                            seed=seed, precision=args.precision)
            f1 = evaluate_f1(model, tok, dev, precision=args.precision)
            row = {"model": args.model, "source": args.source, "lr": lr, "seed": seed,
                   "precision": res.info.get("precision", args.precision), "n_train": len(train),
                   "n_dev": len(dev), "steps": res.steps, "loss": round(res.history[-1].loss, 4),
                   "dev_f1": round(100 * f1, 2), "seconds": round(time.perf_counter() - t0, 1)}
            print(row, flush=True)
            rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    best = max(rows, key=lambda r: r["dev_f1"])
    print(f"best lr {best['lr']} (dev F1 {best['dev_f1']}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
