"""Benchmark for stage 3, training: our `fine_tune` loop vs Hugging Face `Trainer` + `DataCollatorForTokenClassification`.

Both sides get the same inputs and hyperparameters:
- the same initial model (`load_token_classifier(model, seed=seed)`, loaded afresh for each run, so the encoder
  and the new head start bit-identical);
- the same first `--n` WikiANN train sentences of `--lang`, tokenised once per side with
  `xner_core.training.encoding.encode_for_training` (labels on the first sub-token, -100 elsewhere; the same
  windows, and the same filter dropping windows without a labeled position, as `fine_tune` applies internally);
- AdamW (no weight decay, eps 1e-8), linear warmup over 10 % of the steps then linear decay, grad-norm clipping
  at 1.0, batch size 32, 1 epoch, the same lr and seed, and the same precision (`--precision`, default auto: bf16
  autocast on CPUs with native bf16 and on CUDA; Trainer then gets `bf16=True`, its best CPU setting there).
Ours also runs as `ours-fp32` (the same loop in fp32): bf16 must train as well as fp32 (dev F1 within 1 point).
Ours runs twice: as shipped (the word-embedding matrix updated row-sparsely by `xner_core.training.rowadam.RowAdamW`, the
same result as dense AdamW up to rounding) and as `ours-dense` (dense AdamW over the whole matrix).
Trainer runs twice: with its default random sampler and with `train_sampling_strategy="group_by_length"` (its
`LengthGroupedSampler`, the counterpart of our length-grouped batches; in transformers 5.x this replaces the old
`group_by_length=True`). Its per-step logging, evaluation, checkpointing, tqdm and reporting are switched off so
that only the training loop is timed. Trainer keeps its default optimiser implementation (`adamw_torch_fused`
in transformers 5 with torch >= 2.8), the baseline a user gets.

Timing. "end-to-end" = tokenisation + building the loop + training, per side; "train-only" = our
`TrainResult.train_seconds` vs Trainer's `train_runtime`. Sentences/s = `--n` / seconds. The ratio on the last
line uses end-to-end figures and the faster Trainer variant. Each variant runs `--repeat` times (round robin)
and its fastest run counts. Dev F1: entity micro F1 (seqeval strict IOB2) on
the first `--dev-n` dev sentences, computed alike for every model with `predict_tags` + `metrics.score`.

Trainer needs `accelerate` (not a runtime dependency of xner): `pip install 'accelerate>=1.1' psutil`.

Usage:
    XNER_DATA_DIR=/path/to/wikiann python benchmarks/bench_training.py [--model e5-small|tiny|DIR]
        [--lang es] [--n 2000] [--dev-n 1000] [--lr 2e-4] [--threads 2] [--repeat 2]
        [--variants ours,ours-dense,random,grouped]

The LAST line printed is `ratio=<ours/trainer sentences per second> f1_ours=... f1_trainer=... ...`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VARIANTS: tuple[str, ...] = ("ours", "ours-fp32", "ours-dense", "random", "grouped")
SAMPLING = {"random": "random", "grouped": "group_by_length"}


@dataclass(frozen=True)
class RunFigures:
    """One training run: wall times, throughput, final training loss and dev F1 (percent)."""

    name: str
    end_to_end_s: float
    train_s: float
    steps: int
    loss: float | None
    dev_f1: float
    sentences: int

    @property
    def sps(self) -> float:
        """Sentences per second, end to end."""
        return self.sentences / self.end_to_end_s

    @property
    def train_sps(self) -> float:
        """Sentences per second of the optimisation loop alone."""
        return self.sentences / self.train_s


def encode(sentences: Sequence[Any], tokenizer: Any, label2id: dict[str, int], max_length: int) -> list[Any]:
    """The training windows `fine_tune` builds: first-sub-token labels, windows with no labeled position dropped."""
    from xner_core.training.encoding import IGNORE_INDEX, encode_for_training

    return [e for e in encode_for_training(sentences, tokenizer, label2id, max_length)
            if any(lab != IGNORE_INDEX for lab in e.labels)]


def dev_f1(model: Any, tokenizer: Any, dev: Sequence[Any], device: Any) -> float:
    """Entity micro F1 in percent (seqeval strict IOB2) of `predict_tags` on `dev`."""
    from xner_core.metrics.scores import score
    from xner_core.inference.predict import predict_tags

    model.eval()
    pred = predict_tags(model, tokenizer, list(dev), batch_size=32, device=device)
    return 100.0 * score([list(s.tags) for s in dev], pred).overall.f1


def run_ours(model: Any, tokenizer: Any, train: Sequence[Any], args: argparse.Namespace, device: Any,
             row_sparse: bool = True, precision: str | None = None) -> tuple[Any, float, float, int, float | None]:
    """Train with `xner_core.training.finetune.fine_tune` (no dev set inside the loop).

    Returns (model, wall, train, steps, loss).

    `row_sparse=False` is the same loop with dense AdamW over the whole word-embedding matrix (the same result up
    to rounding; it shows what the row-sparse update saves).
    """
    from xner_core.training.finetune import fine_tune

    t0 = time.perf_counter()
    res = fine_tune(model, tokenizer, list(train), None, epochs=1, lr=args.lr, batch_size=args.batch_size,
                    warmup_ratio=0.1, weight_decay=0.0, max_length=args.max_length, seed=args.seed, device=device,
                    row_sparse_embeddings=row_sparse, precision=precision or args.precision)
    wall = time.perf_counter() - t0
    loss = res.history[-1].loss if res.history else None
    return res.model, wall, res.train_seconds, res.steps, loss


def run_trainer(model: Any, tokenizer: Any, train: Sequence[Any], args: argparse.Namespace, device: Any,
                sampling: str) -> tuple[Any, float, float, int, float | None]:
    """Train with HF `Trainer` + `DataCollatorForTokenClassification`. Returns (model, wall, train, steps, loss)."""
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    t0 = time.perf_counter()
    label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
    examples = encode(train, tokenizer, label2id, args.max_length)
    dataset = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples]
    cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="xner-bench-trainer-") as out:
        targs = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            num_train_epochs=1,
            learning_rate=args.lr,
            lr_scheduler_type="linear",
            warmup_steps=0.1,  # a float in [0, 1) is a ratio of the total steps in transformers 5
            weight_decay=0.0,
            adam_epsilon=1e-8,
            max_grad_norm=1.0,
            seed=args.seed,
            data_seed=args.seed,
            train_sampling_strategy=sampling,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            logging_steps=10**9,
            report_to="none",
            disable_tqdm=True,
            use_cpu=not cuda,
            bf16=args.precision == "bf16",
            dataloader_num_workers=0,
            dataloader_pin_memory=cuda,
        )
        trainer = Trainer(model=model, args=targs, train_dataset=dataset, processing_class=tokenizer,
                          data_collator=DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-100))
        out_metrics = trainer.train().metrics
    wall = time.perf_counter() - t0
    steps = math.ceil(len(dataset) / args.batch_size)
    model = trainer.model
    if cuda:
        torch.cuda.synchronize()
    return model, wall, float(out_metrics["train_runtime"]), steps, out_metrics.get("train_loss")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="e5-small", help="e5-small, tiny, a hub id or a local model directory")
    p.add_argument("--lang", default="es")
    p.add_argument("--n", type=int, default=2000, help="train sentences (the first N of the train split)")
    p.add_argument("--dev-n", type=int, default=1000, help="dev sentences for F1 (the first N)")
    p.add_argument("--lr", type=float, default=None, help="default: the model's default (2e-4 for e5-small/tiny)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--repeat", type=int, default=2, help="runs per variant (round robin); the fastest counts")
    p.add_argument("--precision", default="auto", help="auto, bf16 or fp32 for ours and Trainer alike")
    args = p.parse_args(argv)

    import torch

    from xner_core.corpus.wikiann import load_wikiann
    from xner_core.runs.config import default_lr
    from xner_core.models.registry import load_token_classifier
    from xner_core.numerics import resolve_device

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or "ours" not in variants or not any(v in SAMPLING for v in variants):
        p.error(f"--variants must include 'ours' and at least one of random, grouped; got {args.variants!r}")
    if any(v in SAMPLING for v in variants):
        try:
            import accelerate  # noqa: F401  (Trainer refuses to start without it)
        except ImportError:
            p.error("HF Trainer needs the `accelerate` package: pip install 'accelerate>=1.1' psutil")
        # Import Trainer's modules before any timing, so no run pays transformers' lazy imports.
        from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments  # noqa: F401
    if args.lr is None:
        args.lr = default_lr(args.model)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    from xner_core.numerics import resolve_precision

    args.precision = resolve_precision(args.precision, device)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    train = load_wikiann(args.lang, "train", limit=args.n).sentences
    dev = load_wikiann(args.lang, "dev", limit=args.dev_n).sentences
    n_words = sum(len(s) for s in train)
    print(f"model {args.model}, {args.lang} train {len(train)} sentences ({n_words} words), dev {len(dev)}; "
          f"lr {args.lr}, batch {args.batch_size}, 1 epoch, warmup 10%, seed {args.seed}; device {device}, "
          f"precision {args.precision}, "
          f"torch threads {torch.get_num_threads()}, load average before {os.getloadavg()}", flush=True)

    figures: dict[str, RunFigures] = {}
    # Round-robin repeats, the fastest run of each variant kept: on a shared machine one slow minute should not
    # decide a ratio. Training is deterministic: with a fixed tokenizer (not `tiny`, which builds one per load)
    # every repeat of a variant gives the same weights and F1.
    for rep in range(args.repeat):
        for name in variants:
            model, tokenizer = load_token_classifier(args.model, seed=args.seed)
            if name in ("ours", "ours-dense", "ours-fp32"):
                model, wall, train_s, steps, loss = run_ours(model, tokenizer, train, args, device,
                                                             name != "ours-dense",
                                                             "fp32" if name == "ours-fp32" else None)
            else:
                model, wall, train_s, steps, loss = run_trainer(model, tokenizer, train, args, device,
                                                                SAMPLING[name])
            f1 = dev_f1(model, tokenizer, dev, device)
            r = RunFigures(name, wall, train_s, steps, loss, f1, len(train))
            if name not in figures or r.end_to_end_s < figures[name].end_to_end_s:
                figures[name] = r
            print(f"{name:8s} run {rep + 1}/{args.repeat} end-to-end {r.end_to_end_s:7.1f} s ({r.sps:6.1f} sent/s)  "
                  f"train-only {r.train_s:7.1f} s ({r.train_sps:6.1f} sent/s)  steps {r.steps}  "
                  f"loss {r.loss if r.loss is None else round(r.loss, 4)}  dev F1 {r.dev_f1:.2f}  "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
            del model

    ours = figures["ours"]
    trainers = [figures[v] for v in variants if v in SAMPLING]
    best = max(trainers, key=lambda r: r.sps)
    extra = " ".join(
        f"ratio_{r.name}={ours.sps / r.sps:.2f} ratio_train_only_{r.name}={ours.train_sps / r.train_sps:.2f} "
        f"sps_trainer_{r.name}={r.sps:.1f} f1_trainer_{r.name}={r.dev_f1:.2f}" for r in trainers)
    if "ours-fp32" in figures:
        fp = figures["ours-fp32"]
        extra += (f" sps_ours_fp32={fp.sps:.1f} f1_ours_fp32={fp.dev_f1:.2f} bf16_speedup={ours.sps / fp.sps:.2f} "
                  f"f1_bf16_minus_fp32={ours.dev_f1 - fp.dev_f1:+.2f}")
    if "ours-dense" in figures:
        dense = figures["ours-dense"]
        extra += (f" sps_ours_dense={dense.sps:.1f} f1_ours_dense={dense.dev_f1:.2f} "
                  f"ratio_dense={dense.sps / best.sps:.2f} row_sparse_speedup={ours.sps / dense.sps:.2f}")
    print(f"ratio={ours.sps / best.sps:.2f} f1_ours={ours.dev_f1:.2f} f1_trainer={best.dev_f1:.2f} "
          f"trainer_variant={best.name} sps_ours={ours.sps:.1f} sps_trainer={best.sps:.1f} {extra} "
          f"n={len(train)} model={args.model} device={device.type} precision={args.precision} "
          f"load1={os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
