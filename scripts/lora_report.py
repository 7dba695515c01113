"""LoRA adapters vs full fine-tuning on the same data, seed and initial weights (issue 15's measurement, redone).

Trains e5-small on the first `--train` sentences of the source's WikiANN train split, with the `paper` preset's
options (batch 32, warmup 10 %, 128 sub-tokens, no weight decay), once per variant:
- `full`, 1 epoch and 3 epochs, lr 2e-4 (e5-small's default): every weight trained;
- `lora`, 3 epochs, r = 16, alpha 32, dropout 0.1, on query,value (xner's default, 0.3 M trainable parameters) and
  on query,key,value,dense (every Linear of the encoder, 1.3 M), each at lr 2e-4 and at lr 1e-3 (adapters
  usually want a higher rate than full fine-tuning; Hu et al. tuned it per task).
No dev set steers training (no early stopping, no best-epoch pick): the model after its last epoch is scored on the
first `--dev` sentences of the validation split and the first `--test` sentences of the test split (seqeval entity
micro F1 through `training.loop.evaluate_f1`). Dev F1 picks a variant; test F1 is reported beside it.

Writes `data/results/lora_vs_full_e5-small.csv` (variant, epochs, lr, targets, trainable parameters, steps, seconds,
dev F1, test F1, adapter bytes) after every variant, keeping the table's rows of variants a run did not measure
(`--only` picks rows of VARIANTS, in the order given). `seconds` is wall time: compare it only between rows
measured on an otherwise idle machine.

Usage:
    XNER_DATA_DIR=/work/shared/data/wikiann python scripts/lora_report.py [--source es] [--train 2000]
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

COLUMNS = ("model", "source", "variant", "targets", "epochs", "lr", "seed", "precision", "n_train", "n_dev",
           "n_test", "trainable_parameters", "steps", "seconds", "dev_f1", "test_f1", "adapter_bytes")
# (variant, epochs, lr, LoRA targets or "" for full fine-tuning)
VARIANTS: tuple[tuple[str, int, float, str], ...] = (
    ("full", 1, 2e-4, ""),
    ("full", 3, 2e-4, ""),
    ("lora", 3, 2e-4, "query,value"),
    ("lora", 3, 1e-3, "query,value"),
    ("lora", 3, 2e-4, "dense,key,query,value"),
    ("lora", 3, 1e-3, "dense,key,query,value"),
)


KEY = ("model", "source", "variant", "targets", "epochs", "lr", "seed", "n_train")


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    """Write `rows` into the table at `path`, keeping its rows of variants this run did not measure."""
    def key(r: dict[str, object]) -> tuple[str, ...]:
        return tuple(str(float(r[k])) if k == "lr" else str(r[k]) for k in KEY)

    mine = {key(r) for r in rows}
    kept: list[dict[str, object]] = [dict(r) for r in _read(path) if key(dict(r)) not in mine]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(kept + list(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--source", default="es")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--dev", type=int, default=1000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--only", default="", help="comma-separated row numbers of VARIANTS to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path("data/results/lora_vs_full_e5-small.csv"))
    args = ap.parse_args(argv)

    from xner_core.corpus.wikiann import load_wikiann
    from xner_core.models.registry import load_token_classifier
    from xner_core.training.finetune import fine_tune
    from xner_core.training.loop import evaluate_f1
    from xner_core.training.lora import adapter_of, trainable_parameters
    from xner_core.training.settings import LoraSpec, lora_targets

    train = load_wikiann(args.source, "train").sentences[: args.train]
    dev = load_wikiann(args.source, "dev").sentences[: args.dev]
    test = load_wikiann(args.source, "test").sentences[: args.test]
    picked = [int(i) for i in args.only.split(",")] if args.only else list(range(len(VARIANTS)))
    rows = []
    for i in picked:
        variant, epochs, lr, targets = VARIANTS[i]
        spec = LoraSpec(targets=lora_targets(targets)) if targets else None
        model, tok = load_token_classifier(args.model, seed=args.seed)
        trainable = trainable_parameters(model)
        t0 = time.perf_counter()
        res = fine_tune(model, tok, train, None, epochs=epochs, lr=lr, batch_size=32, warmup_ratio=0.1,
                        seed=args.seed, precision=args.precision, lora=spec)
        seconds = time.perf_counter() - t0
        adapter = adapter_of(res.model)
        if adapter is not None:
            trainable = adapter.trainable_parameters
        row = {"model": args.model, "source": args.source, "variant": variant, "targets": targets or "all weights",
               "epochs": epochs, "lr": lr, "seed": args.seed, "precision": res.info.get("precision", args.precision),
               "n_train": len(train), "n_dev": len(dev), "n_test": len(test), "trainable_parameters": trainable,
               "steps": res.steps, "seconds": round(seconds, 1),
               "dev_f1": round(100 * evaluate_f1(res.model, tok, dev, precision=args.precision), 2),
               "test_f1": round(100 * evaluate_f1(res.model, tok, test, precision=args.precision), 2),
               "adapter_bytes": adapter.bytes if adapter is not None else ""}
        print(row, flush=True)
        rows.append(row)
        _write(args.out, rows)  # after every variant: a long run stopped halfway keeps what it measured
    best = max(_read(args.out), key=lambda r: float(r["dev_f1"]))
    print(f"best on dev: {best['variant']} {best['targets']} {best['epochs']} epochs lr {best['lr']} "
          f"(dev F1 {best['dev_f1']}, test F1 {best['test_f1']}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
