"""Stage 3b, the training loop that fine-tuning (hard labels) and distillation (soft labels) share.

Holds the optimisers (AdamW with no decay on biases and LayerNorm weights; the word-embedding matrix updated
row-sparsely by `rowadam.RowAdamW`, with dense AdamW's result), layer freezing (`freeze_bottom`: embeddings +
bottom N encoder layers, Wu et al.'s student), the epoch loop (linear warmup then decay, grad clipping at 1.0,
autocast at the run's precision, deterministic kernels, an optional floor on optimiser steps), the robust-training
step of each method (`objective`), dev evaluation with best-epoch selection and early stopping, and what a
training run returns (`TrainResult`). With LoRA (`spec.lora`, `lora`), the loop trains the adapters and the head
of the wrapped model and returns the merged model.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.errors import ConfigError, DataError
from xner_core.numerics import autocast, deterministic, resolve_device, resolve_precision
from xner_core.training.encoding import (
    Encoded,
    _collate,
    _epoch_order,
    _epoch_seed,
    _pad_id,
    length_grouped_batches,
)
from xner_core.training.objective import (
    _adversarial_step,
    _pgd_step,
    _smooth_ids,
    _smooth_words,
    _task_loss,
    single_piece_words,
)
from xner_core.training.settings import ProgressFn, _check_spec, _Spec, robust_kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochStats:
    """One epoch of training: mean loss over its steps, dev F1 when a dev set was given, wall time."""

    epoch: int
    loss: float
    dev_f1: float | None
    seconds: float
    steps: int


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training run returns.

    `model` holds the best-on-dev weights when a dev set was given (else the last), in eval mode.
    `train_seconds` counts optimisation only (not dev evaluation); `run_setting` reports the sum of all its
    stages (teachers, teacher inference, student; MLM adaptation + fine-tuning) with a breakdown in `info`.
    `sentences_per_second` counts training windows (about sentences) processed per training second.
    """

    model: Any
    history: tuple[EpochStats, ...]
    train_seconds: float
    sentences_per_second: float
    best_dev_f1: float | None
    best_epoch: int | None = None
    steps: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# Optimisers
# --------------------------------------------------------------------------------------------------------------


def _optimizer(model: Any, lr: float, weight_decay: float) -> Any:
    """AdamW with no decay on biases and LayerNorm weights (the usual BERT recipe)."""
    import torch

    decay: list[Any] = []
    no_decay: list[Any] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    # The fused kernel updates e5-small's 96M-parameter embedding matrix in ~0.09 s a step on 2 CPU threads,
    # the default for-each implementation in ~0.6 s (HF Trainer also defaults to it). Fall back where a
    # device or dtype has no fused kernel.
    try:
        return torch.optim.AdamW(groups, lr=lr, eps=1e-8, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, eps=1e-8)


def _row_optimizer(model: Any, spec: _Spec) -> Any:
    """A `RowAdamW` for the word-embedding matrix, or None where the dense optimiser must keep it.

    Dense stays in charge when asked (`row_sparse_embeddings=False`), when the matrix is tied to an output layer
    (a masked-LM head updates every row), or when the embedding is not a plain lookup table.
    """
    import torch

    from xner_core.training.rowadam import RowAdamW

    emb = model.get_input_embeddings()
    if not spec.row_sparse_embeddings or not isinstance(emb, torch.nn.Embedding):
        return None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out is not None and getattr(out, "weight", None) is emb.weight:
        return None
    return RowAdamW(emb, eps=1e-8, weight_decay=spec.weight_decay)


def freeze_bottom(model: Any, layers: int) -> list[Any]:
    """Freeze the embeddings module and the bottom `layers` encoder layers (Wu et al.'s student: 3).

    Wu et al. (microsoft/vert-papers `SingleMulti-TS`, `--freeze_bottom_layer 3`) set requires_grad=False on every
    parameter named `embeddings` (word, position, token-type embeddings and their LayerNorm) or `layer.{i}.` with
    i < 3. Here: `model.base_model.embeddings` and `model.base_model.encoder.layer[:layers]` (BERT, XLM-R and
    e5-small share that layout).

    Args:
        model: a `*ForTokenClassification` with a BERT-like encoder.
        layers: encoder layers to freeze (>= 1; 0 freezes nothing). An encoder with no more layers than that (the
            2-layer test model) keeps its top layer trainable: `layers` is lowered to its depth - 1, with a log
            line.

    Returns:
        The parameters whose requires_grad was switched off (to switch back on after training).
    """
    if layers <= 0:
        return []
    inner = getattr(model, "get_base_model", None)  # a peft model (LoRA): the wrapped model, adapters in place
    base = (inner() if callable(inner) else model).base_model
    blocks = getattr(getattr(base, "encoder", None), "layer", None)
    if getattr(base, "embeddings", None) is None or blocks is None:
        raise ConfigError(f"cannot freeze layers of {type(model).__name__}: no embeddings/encoder.layer modules")
    if layers >= len(blocks):
        log.info("freezing %d of the encoder's %d layers (asked for %d): the top layer stays trainable",
                 len(blocks) - 1, len(blocks), layers)
        layers = len(blocks) - 1
    frozen = []
    for module in [base.embeddings, *blocks[:layers]]:
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen.append(p)
    return frozen


def _state_copy(model: Any, trainable_only: bool = False) -> dict[str, Any]:
    if trainable_only:  # LoRA: only the adapters and the head change (load with strict=False)
        return {k: p.detach().to("cpu", copy=True) for k, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------------------------------------------
# Dev evaluation
# --------------------------------------------------------------------------------------------------------------


def evaluate_f1(model: Any, tokenizer: Any, sentences: Sequence[Sentence], batch_size: int = 32,
                device: Any = None, precision: str = "auto") -> float:
    """Entity micro F1 of `model` on labeled sentences (the dev signal for early stopping).

    Args:
        model: token classifier.
        tokenizer: its tokenizer.
        sentences: gold-tagged sentences.
        batch_size: inference batch size.
        device: torch device (auto when None).
        precision: auto, bf16 or fp32 (`numerics.resolve_precision`).

    Returns:
        Micro entity F1 in [0, 1] (`xner_core.metrics.scores.score`, seqeval strict IOB2) of `predict_tags` output.
    """
    # Imported here: predict/metrics import torch-heavy code that importing the training modules does not need.
    from xner_core.inference.predict import predict_tags
    from xner_core.metrics.scores import score

    pred = predict_tags(model, tokenizer, list(sentences), batch_size=batch_size, device=resolve_device(device),
                        precision=precision)
    return float(score([list(s.tags) for s in sentences], pred).overall.f1)


# --------------------------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------------------------


def _train(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Encoded],
    soft: Sequence[Any] | None,
    groups: Sequence[Sequence[int]] | None,
    dev: Sequence[Sentence] | None,
    spec: _Spec,
    progress: ProgressFn | None,
    device: Any,
    stage: str,
) -> TrainResult:

    _check_spec(spec)
    if not examples:
        raise DataError(f"{stage}: no training sentences (after dropping empty ones); give at least one")
    dev_device = resolve_device(device)
    precision = resolve_precision(spec.precision, dev_device)
    with deterministic():
        if spec.lora is None:
            return _train_loop(model, tokenizer, examples, soft, groups, dev, spec, progress, dev_device, stage,
                               precision)
        from xner_core.training.lora import merge, unwrap, wrap

        wrapped = wrap(model, spec.lora, spec.seed)
        try:
            result = _train_loop(wrapped, tokenizer, examples, soft, groups, dev, spec, progress, dev_device, stage,
                                 precision)
        except BaseException:
            unwrap(wrapped)
            raise
        merged, adapter = merge(wrapped, spec.lora)
        log.info("%s: LoRA r=%d on %s, %d trainable parameters, merged", stage, spec.lora.r,
                 ",".join(spec.lora.targets), adapter.trainable_parameters)
        return replace(result, model=merged, info={**result.info, "adapter": adapter.summary()})


def _train_loop(model: Any, tokenizer: Any, examples: Sequence[Encoded], soft: Sequence[Any] | None,
                groups: Sequence[Sequence[int]] | None, dev: Sequence[Sentence] | None, spec: _Spec,
                progress: ProgressFn | None, dev_device: Any, stage: str, precision: str) -> TrainResult:
    import torch
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(spec.seed)  # dropout masks
    model.to(dev_device)
    model.train()
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    kind = robust_kind(spec.robust)
    candidates = words = None
    if kind == "subtoken-noise":
        vocab = min(len(tokenizer), int(model.config.vocab_size))
        keep = torch.ones(vocab, dtype=torch.bool)
        keep[special[special < vocab]] = False
        candidates = torch.arange(vocab)[keep]
    elif kind == "word-smoothing":  # neighbours in the embedding space the run starts from
        from xner_core.training.neighbours import neighbour_table

        words = neighbour_table(model, tokenizer, _one_piece_word_ids(examples), spec.robust_neighbours)
    emb = model.get_input_embeddings()
    emb_requires_grad = emb.weight.requires_grad
    frozen = freeze_bottom(model, spec.freeze_layers)
    if spec.freeze_embeddings:
        emb.weight.requires_grad_(False)
    rows = _row_optimizer(model, spec) if emb.weight.requires_grad else None
    if rows is not None:
        rows.attach()  # the dense optimiser below leaves the embedding matrix to it
    optimizer = _optimizer(model, spec.lr, spec.weight_decay)
    epoch_size = len(groups) * max(len(g) for g in groups) if groups else len(examples)
    steps_per_epoch = math.ceil(epoch_size / spec.batch_size)
    total = spec.max_steps or max(steps_per_epoch * spec.epochs, spec.min_steps)
    n_epochs = math.ceil(total / steps_per_epoch)  # != spec.epochs only for min_steps/max_steps (last one partial)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(spec.warmup_ratio * total), total)
    lengths = [len(e) for e in examples]
    pad_id = _pad_id(tokenizer)
    params = [p for p in model.parameters() if p.requires_grad]

    history: list[EpochStats] = []
    best_f1: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, Any] | None = None
    bad_epochs = 0
    step = 0
    train_seconds = 0.0
    seen = 0
    t_start = time.perf_counter()
    try:
        for epoch in range(n_epochs):
            t_epoch = time.perf_counter()
            gen = torch.Generator().manual_seed(_epoch_seed(spec.seed, epoch))
            order = _epoch_order(len(examples), groups, gen)
            batches = length_grouped_batches(order, lengths, spec.batch_size, gen)
            batches = batches[:total - step]  # the floor's last epoch stops at `total`
            loss_sum = 0.0
            epoch_first_step = step
            for batch in batches:
                ids, mask, labels = _collate([examples[i] for i in batch], pad_id)
                if candidates is not None:
                    ids = _smooth_ids(ids, mask, special, candidates, spec.robust_rate, gen)
                elif words is not None:
                    ids = _smooth_words(ids, labels, mask, words, spec.robust_rate, gen)
                batch_soft = torch.cat([soft[i] for i in batch]).to(dev_device) if soft is not None else None
                ids, mask, labels = ids.to(dev_device), mask.to(dev_device), labels.to(dev_device)
                clip = params if rows is None else [*params, rows.begin(ids)]
                if kind == "fgm":
                    loss = _adversarial_step(model, ids, mask, labels, batch_soft, spec, dev_device, precision)
                elif kind == "pgd":
                    loss = _pgd_step(model, ids, mask, labels, batch_soft, spec, dev_device, precision)
                else:
                    with autocast(dev_device, precision):
                        loss = _task_loss(model, ids, mask, labels, batch_soft, spec.temperature,
                                          soft_kind=spec.soft_loss)
                    loss.backward()
                torch.nn.utils.clip_grad_norm_(clip, 1.0)
                lr_used = scheduler.get_last_lr()[0]
                optimizer.step()
                if rows is not None:
                    rows.step(lr_used)
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                seen += len(batch)
                loss_sum += float(loss.detach())
                if progress is not None:
                    progress(step, total, {
                        "stage": stage, "epoch": epoch + 1, "loss": float(loss.detach()),
                        "mean_loss": loss_sum / (step - epoch_first_step), "lr": lr_used,
                        "elapsed": time.perf_counter() - t_start,
                    })
            epoch_train = time.perf_counter() - t_epoch
            train_seconds += epoch_train
            if rows is not None:
                rows.flush()
            dev_f1 = None
            if dev:
                dev_f1 = evaluate_f1(model, tokenizer, dev, batch_size=max(32, spec.batch_size), device=dev_device,
                                     precision=precision)
                model.train()
            history.append(EpochStats(epoch + 1, loss_sum / max(1, len(batches)), dev_f1, epoch_train,
                                      len(batches)))
            log.info("%s epoch %d/%d: loss %.4f, dev F1 %s, %.1f s, %d steps (%s)", stage, epoch + 1, n_epochs,
                     history[-1].loss, "-" if dev_f1 is None else f"{dev_f1:.4f}", epoch_train, len(batches),
                     precision)
            if dev_f1 is not None:
                if best_f1 is None or dev_f1 > best_f1:
                    best_f1, best_epoch, bad_epochs = dev_f1, epoch + 1, 0
                    if epoch + 1 < n_epochs:  # the last epoch's weights are already in the model
                        best_state = _state_copy(model, trainable_only=spec.lora is not None)
                    else:
                        best_state = None
                else:
                    bad_epochs += 1
                    if spec.early_stopping_patience is not None and bad_epochs >= spec.early_stopping_patience:
                        break
        if best_state is not None and best_epoch != len(history):
            model.load_state_dict(best_state, strict=spec.lora is None)
    finally:
        if rows is not None:
            rows.detach()
        emb.weight.requires_grad_(emb_requires_grad)
        for p in frozen:
            p.requires_grad_(True)
    model.eval()
    return TrainResult(
        model=model,
        history=tuple(history),
        train_seconds=train_seconds,
        sentences_per_second=seen / train_seconds if train_seconds > 0 else 0.0,
        best_dev_f1=best_f1,
        best_epoch=best_epoch,
        steps=step,
        info={"precision": precision, "frozen_parameters": sum(p.numel() for p in frozen),
              "trainable_parameters": sum(p.numel() for p in params) + (rows.weight.numel() if rows else 0)},
    )


def _one_piece_word_ids(examples: Sequence[Encoded]) -> set[int]:
    """Ids at the one-piece word positions of the training windows (the words word-smoothing may replace)."""
    import torch

    out: set[int] = set()
    for e in examples:
        ids = torch.tensor([e.input_ids])
        labels = torch.tensor([e.labels])
        hit = single_piece_words(labels, torch.ones_like(ids))
        out.update(ids[hit].tolist())
    return out
