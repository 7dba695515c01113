"""Results report (stages 3-5 end to end): e5-small fine-tuned on es, zero-shot to ca/an/ast, and native baselines.

Produces `data/results/e5_finetune_es.csv`, the figures of the models issue's closing note, through the real code
path: `runner.train_model` (content-addressed model cache) and `runner.evaluate` (clean test set, bootstrap CIs).

Runs:
- es: e5-small fine-tuned on es train (first 5000 sentences, 1 epoch, lr 2e-4, batch 32, warmup 10 %,
  es dev 1000 for selection), scored on the es test set (native es) and zero-shot on the ca, an and ast test sets
  (transfer es->X);
- native ca, an, ast: e5-small fine-tuned on each target's own train split (capped at 5000; an and ast have 1000),
  scored on its own test set.

Every test set is capped at `--test-limit` sentences (default 1000).

Why the transfer rows reuse the es model: a transfer config's hash includes the target, so `train_model` would
train es->ca, es->an and es->ast as three cache entries, although for `transfer` the training data (es train,
es dev), options and seed do not depend on the target: all three are the same model as native es (same data,
same seed, same loop). The script trains native es once and passes it to `evaluate(..., loaded=...)` for each
transfer config (`--no-reuse` trains every transfer config separately instead). The rows keep each config's
own hash; `trained_as` says which cache entry the weights came from.

Usage:
    XNER_DATA_DIR=/work/shared/data/wikiann XNER_CACHE_DIR=/tmp/xner-cache-e5 \
        python scripts/e5_finetune_report.py [--model e5-small] [--n-train 5000] [--out data/results/...]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COLUMNS: tuple[str, ...] = ("model", "setting", "source", "target", "f1", "f1_low", "f1_high", "n_test",
                            "train_seconds", "eval_seconds", "config_hash", "trained_as")
SOURCE = "es"
TARGETS: tuple[str, ...] = ("ca", "an", "ast")


def overall_row(outcome: Any, source: str, trained_as: str) -> dict[str, Any]:
    """The report row of an evaluation outcome: its clean `overall` scope, F1 and bounds in percent.

    Args:
        outcome: a clean `runner.EvalOutcome`.
        source: the language the model was trained on.
        trained_as: config hash of the cache entry holding the weights.

    Returns:
        A dict with the keys of COLUMNS.
    """
    row = next(r for r in outcome.rows if r["scope"] == "overall")

    def pct(x: float | None) -> float | None:
        return None if x is None else round(100.0 * float(x), 2)

    return {
        "model": row["model"], "setting": row["setting"], "source": source, "target": row["target"],
        "f1": pct(row["f1"]), "f1_low": pct(row["f1_low"]), "f1_high": pct(row["f1_high"]),
        "n_test": row["n_sentences"], "train_seconds": round(float(row["train_seconds"] or 0.0), 1),
        "eval_seconds": round(float(row["eval_seconds"]), 1), "config_hash": row["config_hash"],
        "trained_as": trained_as,
    }


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write the report table (header = COLUMNS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="e5-small")
    p.add_argument("--n-train", type=int, default=5000, help="train sentences cap per language")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--test-limit", type=int, default=1000)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--no-reuse", action="store_true", help="train each transfer config as its own cache entry")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "data/results/e5_finetune_es.csv"))
    args = p.parse_args(argv)

    import torch

    from xner_core.config import make_config
    from xner_core.runner import evaluate, train_model

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    opts = dict(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, warmup_ratio=0.1,
                max_train_sentences=args.n_train)
    log(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")

    def progress(step: int, total: int, info: dict) -> None:
        if step == 1 or step % 20 == 0 or step == total:
            log(f"  {info.get('stage')} step {step}/{total} loss {info.get('loss', 0):.3f} "
                f"elapsed {info.get('elapsed', 0):.0f}s")

    def train(config: Any) -> Any:
        t0 = time.perf_counter()
        lm = train_model(config, progress=progress, status=lambda m: log(f"  cache: {m}"))
        timings = lm.manifest.get("timings") or {}
        log(f"{config.setting} {','.join(config.sources) or config.target}: hash {lm.hash}, "
            f"train_s {timings.get('train_s')}, {timings.get('sentences_per_second')} sent/s, "
            f"dev {(lm.manifest.get('dev_scores') or {}).get('best_dev_f1')}, call {time.perf_counter() - t0:.0f}s")
        return lm

    def score(config: Any, lm: Any, source: str) -> dict[str, Any]:
        out = evaluate(config, test_limit=args.test_limit, bootstrap=args.bootstrap, loaded=lm)
        row = overall_row(out[0], source, lm.hash)
        log(f"  {row['setting']} {source}->{row['target']}: F1 {row['f1']} [{row['f1_low']}, {row['f1_high']}] "
            f"n={row['n_test']} eval {row['eval_seconds']}s")
        return row

    rows: list[dict[str, Any]] = []
    es_cfg = make_config(args.model, SOURCE, "native", **opts)
    es_lm = train(es_cfg)
    rows.append(score(es_cfg, es_lm, SOURCE))
    for tgt in targets:
        cfg = make_config(args.model, tgt, "transfer", sources=(SOURCE,), **opts)
        lm = train(cfg) if args.no_reuse else es_lm
        rows.append(score(cfg, lm, SOURCE))
        write_csv(rows, Path(args.out))
    for tgt in targets:
        cfg = make_config(args.model, tgt, "native", **opts)
        lm = train(cfg)
        rows.append(score(cfg, lm, tgt))
        write_csv(rows, Path(args.out))
        del lm
    write_csv(rows, Path(args.out))
    log(f"wrote {len(rows)} rows to {args.out}")
    for r in rows:
        print(",".join(str(r[c]) for c in COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
