"""Stage 3, training: fine-tune token classifiers in every setting the dashboard compares.

Settings (see `run_setting`):
- `native`: fine-tune on the target language's labeled train split;
- `transfer`: fine-tune on one source language, used zero-shot on the target (the reference study);
- `multi_source`: fine-tune on several source languages at once, optionally balanced per source;
- `distill`: Wu et al. (ACL 2020) teacher-student learning. One teacher per source language produces soft label
  distributions on unlabeled target text; their weighted average (uniform, or by a language-ID similarity) is
  the target of a student trained with KL(teacher || student);
- `tapt`: target-adaptive masked-LM training of the encoder on unlabeled target text, then source fine-tuning.
Any setting can add Huang et al. (EMNLP 2021) robust training: `adversarial` (one-step FGM in the word-embedding
space) or `smoothing` (randomized smoothing by random sub-token substitution).

Conventions shared by all of them: labels on the FIRST sub-token of every word (-100 elsewhere, as in
transformers' `run_ner.py`); sentences longer than `max_length` sub-tokens become several windows of whole words
(never truncated); length-grouped batches with dynamic padding; AdamW + linear warmup + grad clipping at 1.0
(the word-embedding matrix updated row-sparsely by `rowadam.RowAdamW`, with dense AdamW's result);
autocast at the run's precision (`numerics`: bf16 on CUDA and on CPUs with native bf16 by default); everything
seeded and run with deterministic kernels (same config, seed, device, precision and thread count -> the same
weights, bit for bit, in any process).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from xner_core.corpus.tags import LABELS
from xner_core.corpus.wikiann import Sentence
from xner_core.errors import ConfigError, DataError, choices_message
from xner_core.numerics import autocast, deterministic, resolve_device, resolve_precision

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, dict], None]

SETTINGS: tuple[str, ...] = ("native", "transfer", "multi_source", "distill", "tapt")
ROBUST_METHODS: tuple[str, ...] = ("adversarial", "smoothing")
DISTILL_WEIGHTS: tuple[str, ...] = ("uniform", "similarity")
IGNORE_INDEX = -100
# Batches per mega-batch for length grouping: long enough to make padding small, short enough to keep the
# epoch order random (the same trade-off as transformers' LengthGroupedSampler).
MEGABATCH_BATCHES = 50


# --------------------------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """One model input: a window of whole words of one sentence, with specials and first-sub-token labels.

    `labels[i]` is the label id of the word starting at sub-token i, or -100 (continuation pieces, specials).
    Words that produce zero sub-tokens have no position and so no label.
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    sentence: int  # index of the sentence in the encoded sequence
    first_word: int  # index of the window's first word in that sentence
    n_words: int  # number of words in the window

    def __len__(self) -> int:
        return len(self.input_ids)


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


@dataclass(frozen=True)
class _Spec:
    """Optimisation hyperparameters shared by fine-tuning and distillation (internal)."""

    epochs: int
    lr: float
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    max_length: int
    seed: int
    early_stopping_patience: int | None
    freeze_embeddings: bool
    robust: str | None
    robust_epsilon: float
    robust_rate: float
    temperature: float = 1.0
    row_sparse_embeddings: bool = True
    precision: str = "auto"  # resolved for the device in `_train`


# --------------------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------------------


def _label_ids(encoded_word_ids: Sequence[int | None], word_labels: Sequence[int], offset: int) -> list[int]:
    """First sub-token of each word -> its label; every other position -> -100."""
    out: list[int] = []
    prev: int | None = None
    for wid in encoded_word_ids:
        if wid is None:
            out.append(IGNORE_INDEX)
        elif wid != prev:
            out.append(word_labels[offset + wid])
        else:
            out.append(IGNORE_INDEX)
        prev = wid
    return out


def _windows(pieces_per_word: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Split words into consecutive [start, end) windows whose sub-token counts fit `budget`.

    Greedy: fill a window until the next word would overflow it. A single word longer than the budget gets a
    window of its own (its tail pieces are then cut; its first piece, which carries the label, survives).
    """
    out: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, n in enumerate(pieces_per_word):
        if used + n > budget and i > start:
            out.append((start, i))
            start, used = i, 0
        used += n
    if start < len(pieces_per_word):
        out.append((start, len(pieces_per_word)))
    return out


def encode_for_training(
    sentences: Sequence[Sentence],
    tokenizer: Any,
    label2id: Mapping[str, int] | None,
    max_length: int,
) -> list[Encoded]:
    """Tokenize word-split sentences and put each word's label on its first sub-token.

    Args:
        sentences: tagged sentences (tags are ignored when `label2id` is None, e.g. unlabeled text).
        tokenizer: a fast HF tokenizer (needs `is_split_into_words` and `word_ids()`).
        label2id: tag -> label id; None marks every first sub-token with label 0 (for soft/unlabeled targets).
        max_length: the most sub-tokens per input, specials included.

    Returns:
        One or more `Encoded` windows per non-empty sentence, in order. Sentences longer than `max_length` are
        split at word boundaries into several windows (no word is dropped); empty sentences yield nothing.
        Raises DataError for a tag not in `label2id`, ConfigError for a `max_length` too small for the specials.
    """
    n_special = len(tokenizer("", add_special_tokens=True)["input_ids"])
    budget = max_length - n_special
    if budget < 1:
        raise ConfigError(f"max_length {max_length} leaves no room for words after {n_special} special tokens; "
                          f"use max_length >= {n_special + 1} (128 is usual)")
    word_labels: list[list[int]] = []
    for s in sentences:
        if label2id is None:
            word_labels.append([0] * len(s.tokens))
            continue
        try:
            word_labels.append([label2id[t] for t in s.tags])
        except KeyError as exc:
            raise DataError(f"sentence {s.id!r}: tag {exc.args[0]!r} is not one of the model's labels; allowed: "
                            f"{', '.join(label2id)}") from None
    keep = [i for i, s in enumerate(sentences) if len(s.tokens) > 0]
    if not keep:
        return []
    words = [list(sentences[i].tokens) for i in keep]
    full = tokenizer(words, is_split_into_words=True, add_special_tokens=True, truncation=False, verbose=False)
    out: list[Encoded] = []
    pending: list[tuple[int, int, int]] = []  # (sentence index, start word, end word) for long sentences
    for row, si in enumerate(keep):
        ids = full["input_ids"][row]
        wids = full.word_ids(row)
        if len(ids) <= max_length:
            out.append(Encoded(tuple(ids), tuple(_label_ids(wids, word_labels[si], 0)), si, 0, len(words[row])))
            continue
        counts = Counter(w for w in wids if w is not None)
        per_word = [counts.get(w, 0) for w in range(len(words[row]))]
        pending.extend((si, a, b) for a, b in _windows(per_word, budget))
    if pending:
        # Re-tokenize each window so the tokenizer adds its own specials; truncation only bites for a single
        # word longer than the window (see `_windows`).
        chunks = [list(sentences[si].tokens[a:b]) for si, a, b in pending]
        enc = tokenizer(chunks, is_split_into_words=True, add_special_tokens=True, truncation=True,
                        max_length=max_length, verbose=False)
        for row, (si, a, b) in enumerate(pending):
            labels = _label_ids(enc.word_ids(row), word_labels[si], a)
            out.append(Encoded(tuple(enc["input_ids"][row]), tuple(labels), si, a, b - a))
        out.sort(key=lambda e: (e.sentence, e.first_word))
    return out


# --------------------------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------------------------


def length_grouped_batches(
    order: Sequence[int],
    lengths: Sequence[int],
    batch_size: int,
    generator: Any,
    megabatch: int = MEGABATCH_BATCHES,
) -> list[list[int]]:
    """Group an (already shuffled) epoch order into batches of similar length.

    Args:
        order: example indices in epoch order (may repeat indices, e.g. when oversampling).
        lengths: sub-token length of every example.
        batch_size: examples per batch.
        generator: a seeded `torch.Generator` used to shuffle the batch order.
        megabatch: batches per mega-batch; examples are sorted by length only inside a mega-batch.

    Returns:
        Batches (lists of indices); every entry of `order` appears exactly once.
    """
    import torch

    size = batch_size * megabatch
    batches: list[list[int]] = []
    for start in range(0, len(order), size):
        mega = sorted(order[start:start + size], key=lambda i: -lengths[i])
        batches.extend(mega[j:j + batch_size] for j in range(0, len(mega), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[p] for p in perm]


def _epoch_order(n: int, groups: Sequence[Sequence[int]] | None, generator: Any) -> list[int]:
    """One epoch of example indices: a permutation, or each group oversampled to the largest group's size."""
    import torch

    if not groups:
        return torch.randperm(n, generator=generator).tolist()
    target = max(len(g) for g in groups)
    order: list[int] = []
    for g in groups:
        picked: list[int] = []
        while len(picked) < target:  # whole permutations first, so every example is seen before any repeats
            picked.extend(g[i] for i in torch.randperm(len(g), generator=generator).tolist())
        order.extend(picked[:target])
    return [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]


def _collate(examples: Sequence[Encoded], pad_id: int) -> tuple[Any, Any, Any]:
    """Pad a batch to its longest member: (input_ids, attention_mask, labels) tensors."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e)
        ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels, dtype=torch.long)
    return ids, mask, labels


def _epoch_seed(seed: int, epoch: int) -> int:
    # Distinct streams per (seed, epoch); seed + epoch would make (0, 1) and (1, 0) collide.
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


# --------------------------------------------------------------------------------------------------------------
# Devices, optimiser, model helpers
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


def _label2id(model: Any) -> dict[str, int]:
    mapping = dict(getattr(model.config, "label2id", {}) or {})
    if not mapping:
        raise ConfigError("the model config has no label2id; build it with labels (see xner_core.models.registry)")
    return {str(k): int(v) for k, v in mapping.items()}


def _pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else 0


def _state_copy(model: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _check_spec(spec: _Spec) -> None:
    if spec.epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {spec.epochs}")
    if spec.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {spec.batch_size}")
    if spec.lr is None:
        raise ConfigError("lr is None; resolve the model's default first (xner_core.experiments.config.resolved_lr)")
    if not spec.lr > 0:
        raise ConfigError(f"lr must be > 0, got {spec.lr}")
    if not 0 <= spec.warmup_ratio < 1:
        raise ConfigError(f"warmup_ratio must be in [0, 1), got {spec.warmup_ratio}")
    if spec.robust is not None and spec.robust not in ROBUST_METHODS:
        raise ConfigError(choices_message("robust training method", spec.robust, ROBUST_METHODS) + " (or None)")
    if spec.robust == "smoothing" and not 0 < spec.robust_rate <= 1:
        raise ConfigError(f"robust_rate must be in (0, 1] for smoothing, got {spec.robust_rate}")
    if spec.robust == "adversarial" and not spec.robust_epsilon > 0:
        raise ConfigError(f"robust_epsilon must be > 0 for adversarial training, got {spec.robust_epsilon}")
    if not spec.temperature > 0:
        raise ConfigError(f"distillation temperature must be > 0, got {spec.temperature}")
    if spec.early_stopping_patience is not None and spec.early_stopping_patience < 1:
        raise ConfigError(f"early_stopping_patience must be >= 1 or None, got {spec.early_stopping_patience}")


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
        Micro entity F1 in [0, 1] (`xner_core.evaluation.metrics.score`, seqeval strict IOB2) of `predict_tags` output.
    """
    # Imported here: predict/metrics import torch-heavy code the encoding helpers above do not need.
    from xner_core.evaluation.metrics import score
    from xner_core.inference.predict import predict_tags

    pred = predict_tags(model, tokenizer, list(sentences), batch_size=batch_size, device=resolve_device(device),
                        precision=precision)
    return float(score([list(s.tags) for s in sentences], pred).overall.f1)


# --------------------------------------------------------------------------------------------------------------
# The training loop (fine-tuning with hard labels and distillation with soft labels share it)
# --------------------------------------------------------------------------------------------------------------


def _task_loss(model: Any, ids: Any, mask: Any, labels: Any, soft: Any, temperature: float,
               embeds: Any = None) -> Any:
    """Hard labels: cross-entropy on labeled positions. Soft: T^2 * KL(teacher || student) per position."""
    import torch.nn.functional as F

    if embeds is None:
        logits = model(input_ids=ids, attention_mask=mask).logits
    else:
        logits = model(inputs_embeds=embeds, attention_mask=mask).logits
    logits = logits.float()
    if soft is None:
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=IGNORE_INDEX)
    student = F.log_softmax(logits[labels != IGNORE_INDEX] / temperature, dim=-1)
    # soft holds the teachers' averaged log-probabilities; T^2 keeps gradient size independent of T (Hinton).
    return F.kl_div(student, soft, log_target=True, reduction="batchmean") * temperature ** 2


def _smooth_ids(ids: Any, mask: Any, special: Any, candidates: Any, rate: float, generator: Any) -> Any:
    """Randomized smoothing: replace a fraction `rate` of real, non-special sub-tokens by random vocabulary ids."""
    import torch

    eligible = mask.bool() & ~torch.isin(ids, special)
    hit = (torch.rand(ids.shape, generator=generator) < rate) & eligible
    draws = candidates[torch.randint(len(candidates), ids.shape, generator=generator)]
    return torch.where(hit, draws, ids)


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
        return _train_loop(model, tokenizer, examples, soft, groups, dev, spec, progress, dev_device, stage,
                           precision)


def _train_loop(model: Any, tokenizer: Any, examples: Sequence[Encoded], soft: Sequence[Any] | None,
                groups: Sequence[Sequence[int]] | None, dev: Sequence[Sentence] | None, spec: _Spec,
                progress: ProgressFn | None, dev_device: Any, stage: str, precision: str) -> TrainResult:
    import torch
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(spec.seed)  # dropout masks
    model.to(dev_device)
    model.train()
    emb = model.get_input_embeddings()
    emb_requires_grad = emb.weight.requires_grad
    if spec.freeze_embeddings:
        emb.weight.requires_grad_(False)
    rows = _row_optimizer(model, spec) if emb.weight.requires_grad else None
    if rows is not None:
        rows.attach()  # the dense optimiser below leaves the embedding matrix to it
    optimizer = _optimizer(model, spec.lr, spec.weight_decay)
    epoch_size = len(groups) * max(len(g) for g in groups) if groups else len(examples)
    steps_per_epoch = math.ceil(epoch_size / spec.batch_size)
    total = steps_per_epoch * spec.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(spec.warmup_ratio * total), total)
    lengths = [len(e) for e in examples]
    pad_id = _pad_id(tokenizer)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    candidates = None
    if spec.robust == "smoothing":
        vocab = min(len(tokenizer), int(model.config.vocab_size))
        keep = torch.ones(vocab, dtype=torch.bool)
        keep[special[special < vocab]] = False
        candidates = torch.arange(vocab)[keep]
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
        for epoch in range(spec.epochs):
            t_epoch = time.perf_counter()
            gen = torch.Generator().manual_seed(_epoch_seed(spec.seed, epoch))
            order = _epoch_order(len(examples), groups, gen)
            batches = length_grouped_batches(order, lengths, spec.batch_size, gen)
            loss_sum = 0.0
            epoch_first_step = step
            for batch in batches:
                ids, mask, labels = _collate([examples[i] for i in batch], pad_id)
                if candidates is not None:
                    ids = _smooth_ids(ids, mask, special, candidates, spec.robust_rate, gen)
                batch_soft = torch.cat([soft[i] for i in batch]).to(dev_device) if soft is not None else None
                ids, mask, labels = ids.to(dev_device), mask.to(dev_device), labels.to(dev_device)
                clip = params if rows is None else [*params, rows.begin(ids)]
                if spec.robust == "adversarial":
                    loss = _adversarial_step(model, ids, mask, labels, batch_soft, spec, dev_device, precision)
                else:
                    with autocast(dev_device, precision):
                        loss = _task_loss(model, ids, mask, labels, batch_soft, spec.temperature)
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
            log.info("%s epoch %d/%d: loss %.4f, dev F1 %s, %.1f s, %d steps (%s)", stage, epoch + 1, spec.epochs,
                     history[-1].loss, "-" if dev_f1 is None else f"{dev_f1:.4f}", epoch_train, len(batches),
                     precision)
            if dev_f1 is not None:
                if best_f1 is None or dev_f1 > best_f1:
                    best_f1, best_epoch, bad_epochs = dev_f1, epoch + 1, 0
                    if epoch + 1 < spec.epochs:  # the last epoch's weights are already in the model
                        best_state = _state_copy(model)
                    else:
                        best_state = None
                else:
                    bad_epochs += 1
                    if spec.early_stopping_patience is not None and bad_epochs >= spec.early_stopping_patience:
                        break
        if best_state is not None and best_epoch != len(history):
            model.load_state_dict(best_state)
    finally:
        if rows is not None:
            rows.detach()
        emb.weight.requires_grad_(emb_requires_grad)
    model.eval()
    return TrainResult(
        model=model,
        history=tuple(history),
        train_seconds=train_seconds,
        sentences_per_second=seen / train_seconds if train_seconds > 0 else 0.0,
        best_dev_f1=best_f1,
        best_epoch=best_epoch,
        steps=step,
        info={"precision": precision},
    )


def _adversarial_step(model: Any, ids: Any, mask: Any, labels: Any, soft: Any, spec: _Spec, device: Any,
                      precision: str) -> Any:
    """One-step embedding-space adversarial training (FGM / PGD-1), after Huang et al. 2021.

    loss = L(e) + L(e + epsilon * g / ||g||), with e the word embeddings of the batch and g = dL/de, the
    gradient normalised per sequence over its real (non-pad) positions. Returns the clean loss (for logging).
    """
    import torch

    embeds = model.get_input_embeddings()(ids)
    if not embeds.requires_grad:  # frozen embeddings: still need dL/de for the attack
        embeds = embeds.detach().requires_grad_(True)
    with autocast(device, precision):
        clean = _task_loss(model, ids, mask, labels, soft, spec.temperature, embeds=embeds)
    (grad,) = torch.autograd.grad(clean, embeds, retain_graph=True)
    grad = grad.float() * mask.unsqueeze(-1).float()
    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    delta = (spec.robust_epsilon * grad / norm).to(embeds.dtype).detach()
    with autocast(device, precision):
        adv = _task_loss(model, ids, mask, labels, soft, spec.temperature, embeds=embeds + delta)
    (clean + adv).backward()
    return clean


# --------------------------------------------------------------------------------------------------------------
# Public training entry points
# --------------------------------------------------------------------------------------------------------------


def fine_tune(
    model: Any,
    tokenizer: Any,
    train: Sequence[Sentence],
    dev: Sequence[Sentence] | None = None,
    *,
    epochs: int = 1,
    lr: float = 4e-5,
    batch_size: int = 8,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.0,
    max_length: int = 128,
    seed: int = 0,
    early_stopping_patience: int | None = None,
    freeze_embeddings: bool = False,
    robust: str | None = None,
    robust_epsilon: float = 1.0,
    robust_rate: float = 0.1,
    balanced_groups: Sequence[Sequence[Sentence]] | None = None,
    row_sparse_embeddings: bool = True,
    progress: ProgressFn | None = None,
    device: Any = None,
    stage: str = "fine-tune",
    precision: str = "auto",
) -> TrainResult:
    """Fine-tune a token classifier on labeled sentences (in place).

    Defaults are the reference study's NER values (1 epoch, batch 8, lr 4e-5, warmup 6 %, no weight decay,
    128 sub-tokens); the experiment config normally sets them all.

    Args:
        model: a `*ForTokenClassification` whose `config.label2id` covers every tag in the data.
        tokenizer: its fast tokenizer.
        train: labeled training sentences (must be empty when `balanced_groups` is given).
        dev: labeled dev sentences; when given, F1 is measured after every epoch and the best epoch's weights
            are kept.
        epochs, lr, batch_size, warmup_ratio, weight_decay: AdamW with linear warmup then linear decay.
        max_length: most sub-tokens per input; longer sentences are split into windows of whole words.
        seed: seeds dropout, shuffling, oversampling and smoothing (same seed, same device -> same weights).
        early_stopping_patience: stop after this many epochs without a dev F1 improvement (None: never stop).
        freeze_embeddings: keep the word-embedding matrix fixed (faster with large vocabularies).
        row_sparse_embeddings: update the word-embedding matrix with `rowadam.RowAdamW`, which works only on
            the rows batches have used and gives dense AdamW's result (up to rounding); False = dense AdamW
            over the whole matrix (the same weights, slower with large vocabularies).
        robust: None, "adversarial" (FGM on word embeddings, size `robust_epsilon` per sequence) or
            "smoothing" (each real sub-token replaced by a random vocabulary id with probability `robust_rate`).
        robust_epsilon: L2 size of the adversarial embedding perturbation per sequence.
        robust_rate: sub-token substitution rate for smoothing.
        balanced_groups: one list of sentences per source language. Each epoch draws every group up to the
            size of the largest (smaller groups are oversampled, whole permutations before repeats), so each
            source contributes equally and no sentence of the largest is dropped.
        progress: called after every optimiser step as `progress(step, total, info)`, info holding `stage`,
            `epoch`, `loss` (this step), `mean_loss` (this epoch so far), `lr` (used by this step; the
            first warmup step uses 0, as transformers' schedule does) and `elapsed` seconds.
        device: torch device or name; cuda when available else cpu.
        stage: the label progress reports (e.g. "teacher es").
        precision: auto (bf16 on CUDA and on CPUs with native bf16, else fp32), bf16 or fp32 autocast
            (`numerics`); the one used is `result.info["precision"]`.

    Returns:
        A `TrainResult`; `result.model` is `model`, trained, in eval mode.
    """
    spec = _Spec(epochs, lr, batch_size, warmup_ratio, weight_decay, max_length, seed, early_stopping_patience,
                 freeze_embeddings, robust, robust_epsilon, robust_rate,
                 row_sparse_embeddings=row_sparse_embeddings, precision=precision)
    label2id = _label2id(model)

    def encode(sentences: Sequence[Sentence]) -> list[Encoded]:
        # Drop windows without any labeled position (e.g. only zero-piece words): they carry no signal.
        return [e for e in encode_for_training(sentences, tokenizer, label2id, max_length)
                if any(lab != IGNORE_INDEX for lab in e.labels)]

    groups_idx: list[list[int]] | None = None
    if balanced_groups is not None:
        if len(train) > 0:
            raise ConfigError("give the training data either as `train` or as `balanced_groups` (one list per "
                              "source), not both; pass train=[] with balanced_groups")
        examples: list[Encoded] = []
        groups_idx = []
        for group in balanced_groups:
            enc = encode(group)
            groups_idx.append(list(range(len(examples), len(examples) + len(enc))))
            examples.extend(enc)
        sizes = [len(g) for g in groups_idx]
        if not sizes or min(sizes) == 0:
            raise DataError(f"balanced_groups needs one non-empty group of sentences per source; windows per "
                            f"group: {sizes}")
    else:
        examples = encode(train)
    return _train(model, tokenizer, examples, None, groups_idx, dev, spec, progress, device, stage)


def teacher_soft_labels(
    teachers: Sequence[Any],
    tokenizer: Any,
    unlabeled: Sequence[Sentence],
    *,
    weights: Sequence[float] | None = None,
    temperature: float = 1.0,
    max_length: int = 128,
    batch_size: int = 32,
    device: Any = None,
    precision: str = "auto",
) -> tuple[list[Encoded], list[Any]]:
    """Run every teacher once over unlabeled text; average their label distributions per first sub-token.

    Args:
        teachers: token classifiers sharing `tokenizer` and one label order.
        tokenizer: the shared tokenizer.
        unlabeled: target-language sentences (tags ignored).
        weights: one non-negative weight per teacher (normalised to sum 1); uniform when None.
        temperature: softmax temperature applied to teacher logits.
        max_length: most sub-tokens per window.
        batch_size: inference batch size.
        device: torch device (auto when None).

    Returns:
        (windows, soft): `soft[i]` is a float32 CPU tensor of shape (first sub-tokens in window i, labels)
        holding log of the weighted average of the teachers' probabilities.
    """
    import torch

    if not teachers:
        raise ConfigError("distillation needs at least one teacher model")
    w = [1.0] * len(teachers) if weights is None else [float(x) for x in weights]
    if len(w) != len(teachers) or any(x < 0 for x in w) or sum(w) <= 0:
        raise ConfigError(f"need one non-negative weight per teacher ({len(teachers)}), not all zero; got {w}")
    w = [x / sum(w) for x in w]
    ref = [teachers[0].config.id2label[i] for i in range(teachers[0].config.num_labels)]
    for t in teachers[1:]:
        if [t.config.id2label[i] for i in range(t.config.num_labels)] != ref:
            raise ConfigError(f"teachers disagree on labels; all must use {ref}")
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    windows = encode_for_training(unlabeled, tokenizer, None, max_length)
    windows = [e for e in windows if any(lab != IGNORE_INDEX for lab in e.labels)]
    probs: list[Any] = [None] * len(windows)
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    for teacher, weight in zip(teachers, w):
        teacher.to(dev)
        teacher.eval()
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                ids, mask, labels = _collate([windows[i] for i in idx], _pad_id(tokenizer))
                with autocast(dev, precision):
                    logits = teacher(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
                p = torch.softmax(logits.float() / temperature, dim=-1).cpu()
                for row, i in enumerate(idx):
                    contrib = weight * p[row][labels[row] != IGNORE_INDEX]
                    probs[i] = contrib if probs[i] is None else probs[i] + contrib
    soft = [torch.log(p.clamp_min(1e-12)).float() for p in probs]
    return windows, soft


def distill(
    student: Any,
    tokenizer: Any,
    teachers: Sequence[Any],
    unlabeled: Sequence[Sentence],
    *,
    weights: Sequence[float] | None = None,
    temperature: float = 1.0,
    epochs: int = 1,
    lr: float = 4e-5,
    batch_size: int = 8,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.0,
    max_length: int = 128,
    seed: int = 0,
    dev: Sequence[Sentence] | None = None,
    early_stopping_patience: int | None = None,
    freeze_embeddings: bool = False,
    robust: str | None = None,
    robust_epsilon: float = 1.0,
    robust_rate: float = 0.1,
    progress: ProgressFn | None = None,
    device: Any = None,
    row_sparse_embeddings: bool = True,
    precision: str = "auto",
) -> TrainResult:
    """Teacher-student distillation on unlabeled target text (Wu et al., ACL 2020).

    The teachers' per-token distributions are computed once (first sub-tokens), averaged with `weights`, and
    the student minimises T^2 * KL(teacher_avg || student) at temperature T (equal, up to a constant, to the
    soft cross-entropy). Wu et al. start the student from the pretrained encoder, not from a teacher: pass a
    fresh model.

    Args:
        student: the token classifier to train (in place), same labels and tokenizer as the teachers.
        tokenizer: the shared tokenizer.
        teachers: trained source-language models.
        unlabeled: target-language sentences (their tags are ignored).
        weights: one weight per teacher (uniform when None); see `similarity_weights`.
        temperature: softmax temperature for teachers and student.
        epochs, lr, batch_size, warmup_ratio, weight_decay, max_length, seed, early_stopping_patience,
        freeze_embeddings, robust, robust_epsilon, robust_rate, progress, device, row_sparse_embeddings: as
            in `fine_tune`.
        dev: labeled dev sentences for model selection (None in the zero-resource setting).

    Returns:
        A `TrainResult` for the student; `info` holds the normalised weights and the teacher-pass seconds.
    """
    spec = _Spec(epochs, lr, batch_size, warmup_ratio, weight_decay, max_length, seed, early_stopping_patience,
                 freeze_embeddings, robust, robust_epsilon, robust_rate, temperature, row_sparse_embeddings,
                 precision)
    _check_spec(spec)
    n_labels = int(student.config.num_labels)
    if any(int(t.config.num_labels) != n_labels for t in teachers):
        raise ConfigError(f"student has {n_labels} labels but a teacher differs; all must share one label set")
    t0 = time.perf_counter()
    windows, soft = teacher_soft_labels(teachers, tokenizer, unlabeled, weights=weights, temperature=temperature,
                                        max_length=max_length, batch_size=max(32, batch_size), device=device,
                                        precision=precision)
    teacher_seconds = time.perf_counter() - t0
    result = _train(student, tokenizer, windows, soft, None, dev, spec, progress, device, "student")
    w = [1.0] * len(teachers) if weights is None else [float(x) for x in weights]
    info = {"distill_weights": tuple(x / sum(w) for x in w), "teacher_pass_seconds": teacher_seconds,
            "precision": result.info["precision"]}
    return TrainResult(result.model, result.history, result.train_seconds, result.sentences_per_second,
                       result.best_dev_f1, result.best_epoch, result.steps, info)


# --------------------------------------------------------------------------------------------------------------
# Source-target similarity for teacher weights (a lightweight language-ID stand-in for Wu et al.'s classifier)
# --------------------------------------------------------------------------------------------------------------


def _as_text(item: Sentence | str | Sequence[str]) -> str:
    if isinstance(item, Sentence):
        return " ".join(item.tokens)
    if isinstance(item, str):
        return item
    return " ".join(item)


def _char_ngrams(text: str, orders: tuple[int, ...] = (1, 2, 3)) -> Counter[str]:
    """Character n-grams of each lower-cased word padded with spaces (so word starts/ends count)."""
    grams: Counter[str] = Counter()
    for word in text.lower().split():
        padded = f" {word} "
        for n in orders:
            for i in range(len(padded) - n + 1):
                gram = padded[i:i + n]
                if gram != " ":
                    grams[gram] += 1
    return grams


def language_posteriors(
    target_texts: Sequence[Sentence | str | Sequence[str]],
    source_texts_by_lang: Mapping[str, Sequence[Sentence | str | Sequence[str]]],
    *,
    max_sentences: int = 5000,
    alpha: float = 0.5,
) -> dict[str, float]:
    """Average language-ID posterior of the target sentences over the source languages.

    A multinomial naive-Bayes classifier over character 1-3-grams (lower-cased, word-boundary padded), trained
    on each source language's text (first `max_sentences`), additive smoothing `alpha`, uniform prior; the
    posterior of every target sentence is averaged.

    Args:
        target_texts: unlabeled target sentences (Sentence, str or token list).
        source_texts_by_lang: source language -> its text (e.g. its train split).
        max_sentences: cap per language (speed; n-gram statistics settle well before that).
        alpha: additive smoothing of n-gram counts.

    Returns:
        source language -> mean posterior (sums to 1), in the mapping's order.
    """
    import numpy as np

    langs = list(source_texts_by_lang)
    if not langs:
        raise ConfigError("similarity weights need at least one source language")
    counts: list[Counter[str]] = []
    for lang in langs:
        c: Counter[str] = Counter()
        for item in list(source_texts_by_lang[lang])[:max_sentences]:
            c.update(_char_ngrams(_as_text(item)))
        if not c:
            raise DataError(f"source language {lang!r} has no text to build its language profile from")
        counts.append(c)
    vocab = set().union(*counts)
    vsize = len(vocab) + 1  # +1 for unseen n-grams
    totals = [sum(c.values()) for c in counts]
    post_sum = np.zeros(len(langs))
    n = 0
    for item in list(target_texts)[:max_sentences]:
        grams = _char_ngrams(_as_text(item))
        if not grams:
            continue
        loglik = np.array([
            sum(k * math.log((c.get(g, 0) + alpha) / (tot + alpha * vsize)) for g, k in grams.items())
            for c, tot in zip(counts, totals)
        ])
        p = np.exp(loglik - loglik.max())
        post_sum += p / p.sum()
        n += 1
    if n == 0:
        raise DataError("the target text is empty; similarity weights need unlabeled target sentences")
    return {lang: float(v) for lang, v in zip(langs, post_sum / n)}


def similarity_weights(
    target_texts: Sequence[Sentence | str | Sequence[str]],
    source_texts_by_lang: Mapping[str, Sequence[Sentence | str | Sequence[str]]],
    *,
    temperature: float = 0.1,
    max_sentences: int = 5000,
) -> list[float]:
    """Teacher weights from source-target similarity (the "similarity" option of Wu et al. 2020).

    Wu et al. estimate similarity with a language-identification classifier applied to the target's unlabeled
    data. Here: s_k = the mean naive-Bayes language-ID posterior of source k over the target sentences (see
    `language_posteriors`), then weights = softmax(s / temperature). s lies in [0, 1], so temperature 1 gives
    nearly uniform weights and small temperatures approach "trust the most similar source only"; 0.1 (default,
    our choice) lets a source identified on all target sentences get about e^10 times the weight of one never
    identified.

    Args:
        target_texts: unlabeled target sentences.
        source_texts_by_lang: source language -> its text; the weights follow this order.
        temperature: softmax temperature (> 0).
        max_sentences: cap per language for the n-gram statistics.

    Returns:
        One weight per source language, summing to 1.
    """
    import numpy as np

    if not temperature > 0:
        raise ConfigError(f"similarity temperature must be > 0, got {temperature}")
    post = language_posteriors(target_texts, source_texts_by_lang, max_sentences=max_sentences)
    s = np.array(list(post.values())) / temperature
    e = np.exp(s - s.max())
    return [float(x) for x in e / e.sum()]


# --------------------------------------------------------------------------------------------------------------
# Target-adaptive masked-LM training (TAPT)
# --------------------------------------------------------------------------------------------------------------


def _copy_encoder(src: Any, dst: Any) -> None:
    """Copy the shared encoder (`base_model`) weights from one head model into another of the same config."""
    state = src.base_model.state_dict()
    missing, unexpected = dst.base_model.load_state_dict(state, strict=False)
    bad = [k for k in list(missing) + list(unexpected) if not k.startswith("pooler.")]
    if bad:
        raise ConfigError(f"encoder weights do not match between {type(src).__name__} and {type(dst).__name__}: "
                          f"{bad[:5]}")


def _mask_tokens(ids: Any, mask: Any, special: Any, mask_id: int, vocab: int, prob: float,
                 generator: Any) -> tuple[Any, Any]:
    """BERT masking: pick `prob` of real non-special positions (at least one per row); 80 % -> mask token,
    10 % -> random id, 10 % unchanged. Returns (masked ids, labels with -100 off the picked positions)."""
    import torch

    eligible = mask.bool() & ~torch.isin(ids, special)
    picked = (torch.rand(ids.shape, generator=generator) < prob) & eligible
    # Guarantee one target per row with any eligible position, so no batch has an empty loss.
    empty = ~picked.any(dim=1) & eligible.any(dim=1)
    if empty.any():
        scores = torch.rand(ids.shape, generator=generator) * eligible
        first = scores.argmax(dim=1)
        rows = torch.nonzero(empty).flatten()
        picked[rows, first[rows]] = True
    labels = torch.where(picked, ids, torch.full_like(ids, IGNORE_INDEX))
    roll = torch.rand(ids.shape, generator=generator)
    randoms = torch.randint(vocab, ids.shape, generator=generator)
    out = torch.where(picked & (roll < 0.8), torch.full_like(ids, mask_id), ids)
    out = torch.where(picked & (roll >= 0.8) & (roll < 0.9), randoms, out)
    return out, labels


def mlm_adapt(
    model: Any,
    tokenizer: Any,
    unlabeled: Sequence[Sentence],
    *,
    steps: int,
    lr: float = 5e-5,
    batch_size: int = 16,
    mask_prob: float = 0.15,
    seed: int = 0,
    max_length: int = 128,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.0,
    labels: Sequence[str] = LABELS,
    progress: ProgressFn | None = None,
    device: Any = None,
    precision: str = "auto",
) -> Any:
    """Target-adaptive pretraining: masked-LM steps on target text, then back to a token classifier.

    A `*ForMaskedLM` is built from the same config (from a directory, its saved MLM head is kept when there is
    one; from a token-classification model, the MLM head starts random) and gets the encoder weights. After
    `steps` AdamW steps the adapted encoder weights are copied into the token classifier.

    Args:
        model: a `*ForTokenClassification` (adapted in place and returned) or a model directory / hub id (a new
            token classifier over `labels` is returned).
        tokenizer: its tokenizer (needs a mask token).
        unlabeled: target-language sentences (tags ignored); cycled until `steps` is reached.
        steps: optimiser steps (0 returns the model unchanged).
        lr, batch_size, warmup_ratio, weight_decay: AdamW with linear warmup/decay, grad clipping 1.0.
        mask_prob: fraction of real sub-tokens predicted per sequence (BERT 80/10/10 replacement).
        seed: seeds the MLM head init, the batch order and the masks.
        max_length: most sub-tokens per window.
        labels: label list for the token classifier built from a directory.
        progress: `progress(step, steps, info)` after each step, info with stage "tapt", loss, lr, elapsed.
        device: torch device (auto when None).

    Returns:
        The token classifier with the adapted encoder, in eval mode.
    """
    import torch
    from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification, get_linear_schedule_with_warmup

    if steps < 0:
        raise ConfigError(f"tapt steps must be >= 0, got {steps}")
    if tokenizer.mask_token_id is None:
        raise ConfigError("masked-LM adaptation needs a tokenizer with a mask token")
    if not 0 < mask_prob < 1:
        raise ConfigError(f"mask_prob must be in (0, 1), got {mask_prob}")
    from_dir = isinstance(model, (str, os.PathLike))
    if steps == 0 and not from_dir:
        model.eval()
        return model
    torch.manual_seed(seed)
    if from_dir:
        mlm = AutoModelForMaskedLM.from_pretrained(str(model))
    else:
        mlm = AutoModelForMaskedLM.from_config(copy.deepcopy(model.config))
        _copy_encoder(model, mlm)
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    if steps > 0:
        windows = [e for e in encode_for_training(unlabeled, tokenizer, None, max_length) if len(e) > 2]
        if not windows:
            raise DataError("masked-LM adaptation needs non-empty unlabeled target sentences")
        mlm.to(dev)
        mlm.train()
        optimizer = _optimizer(mlm, lr, weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * steps), steps)
        special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        vocab = min(len(tokenizer), int(mlm.config.vocab_size))
        head = getattr(mlm, "cls", None)
        if head is None:
            head = getattr(mlm, "lm_head", None)
        lengths = [len(e) for e in windows]
        params = [p for p in mlm.parameters() if p.requires_grad]
        with deterministic():  # the same seed gives the same adapted encoder in any process
            step, epoch, t_start = 0, 0, time.perf_counter()
            while step < steps:
                gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
                for batch in length_grouped_batches(_epoch_order(len(windows), None, gen), lengths, batch_size, gen):
                    if step >= steps:
                        break
                    ids, mask, _ = _collate([windows[i] for i in batch], _pad_id(tokenizer))
                    inputs, targets = _mask_tokens(ids, mask, special, tokenizer.mask_token_id, vocab, mask_prob, gen)
                    inputs, mask, targets = inputs.to(dev), mask.to(dev), targets.to(dev)
                    with autocast(dev, precision):
                        if head is not None:
                            # Predict only the masked positions: full-vocabulary logits for every position
                            # (250k pieces for XLM-R vocabularies) would dominate time and memory.
                            hidden = mlm.base_model(input_ids=inputs, attention_mask=mask)[0]
                            sel = targets != IGNORE_INDEX
                            logits = head(hidden[sel]).float()
                            loss = torch.nn.functional.cross_entropy(logits, targets[sel])
                        else:
                            loss = mlm(input_ids=inputs, attention_mask=mask, labels=targets).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    lr_used = scheduler.get_last_lr()[0]
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    if progress is not None:
                        progress(step, steps, {"stage": "tapt", "epoch": epoch + 1, "loss": float(loss.detach()),
                                               "lr": lr_used,
                                               "elapsed": time.perf_counter() - t_start})
                epoch += 1
        mlm.to("cpu")
    if from_dir:
        torch.manual_seed(seed)
        target = AutoModelForTokenClassification.from_pretrained(
            str(model), num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)})
    else:
        target = model
    target.to("cpu")
    _copy_encoder(mlm, target)
    target.eval()
    return target


# --------------------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------------------

# Names of run_setting's options, matching the fields of the experiment config's training options, so the
# caller can pass `**options_kwargs(config.train)`.
RUN_OPTIONS: tuple[str, ...] = (
    "epochs", "lr", "batch_size", "warmup_ratio", "weight_decay", "max_length", "early_stopping_patience",
    "balanced_sampling", "distill_weights", "distill_temperature", "tapt_steps", "robust", "robust_epsilon",
    "robust_rate", "freeze_embeddings",
)


def options_kwargs(options: Any) -> dict[str, Any]:
    """Pick `run_setting`'s keyword options from any options object (e.g. the config's TrainOptions).

    Args:
        options: an object with some of the attributes named in `RUN_OPTIONS`.

    Returns:
        {name: value} for each of those attributes it has.
    """
    return {name: getattr(options, name) for name in RUN_OPTIONS if hasattr(options, name)}


def _concat(groups: Iterable[Sequence[Sentence]]) -> list[Sentence]:
    return [s for g in groups for s in g]


def run_setting(
    setting: str,
    model: Any,
    tokenizer: Any,
    *,
    source_train: Mapping[str, Sequence[Sentence]] | None = None,
    target_train: Sequence[Sentence] | None = None,
    target_dev: Sequence[Sentence] | None = None,
    target_unlabeled: Sequence[Sentence] | None = None,
    source_dev: Mapping[str, Sequence[Sentence]] | None = None,
    teachers: Sequence[Any] | None = None,
    epochs: int = 1,
    lr: float = 4e-5,
    batch_size: int = 8,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.0,
    max_length: int = 128,
    early_stopping_patience: int | None = None,
    balanced_sampling: bool = True,
    distill_weights: str = "uniform",
    distill_temperature: float = 1.0,
    tapt_steps: int = 0,
    robust: str | None = None,
    robust_epsilon: float = 1.0,
    robust_rate: float = 0.1,
    freeze_embeddings: bool = False,
    seed: int = 0,
    progress: ProgressFn | None = None,
    device: Any = None,
    precision: str = "auto",
) -> TrainResult:
    """Train `model` in one of the compared settings.

    - native: fine-tune on `target_train`, select on `target_dev`.
    - transfer: exactly one source; fine-tune on it, select on its `source_dev` (zero-shot: no target labels).
    - multi_source: fine-tune on all sources, balanced per source when `balanced_sampling` (see `fine_tune`),
      else concatenated; select on the concatenated source dev sets.
    - distill: one teacher per source (fine-tuned from a copy of `model`'s initial weights, or `teachers` given
      in `source_train` order, e.g. cached transfer models), weights uniform or `similarity_weights` over
      `target_unlabeled` vs the source train text; the student (`model`) learns from them on
      `target_unlabeled`. No target labels: no dev selection for the student.
    - tapt: `mlm_adapt` on `target_unlabeled` for `tapt_steps`, then fine-tune on the source(s) as in
      transfer/multi_source.
    `robust` applies to every training stage (teachers and student included).

    Args:
        setting: one of SETTINGS.
        model: the initial token classifier (trained in place and returned in the result).
        tokenizer: its tokenizer.
        source_train: source language -> labeled train sentences.
        target_train: labeled target train sentences (native).
        target_dev: labeled target dev sentences (native, tapt-free native selection).
        target_unlabeled: target sentences whose tags are ignored (distill, tapt).
        source_dev: source language -> labeled dev sentences (optional model selection for source training).
        teachers: already-trained teachers for distill (skips teacher training).
        epochs ... freeze_embeddings: training options (see `fine_tune`, `distill`, `mlm_adapt`).
        seed: the run's seed.
        progress: `progress(step, total, info)`; steps restart for each stage, named in `info["stage"]`.
        device: torch device (auto when None).

    Returns:
        The final model's `TrainResult`; `train_seconds` sums all stages and `info` has the per-stage seconds
        (plus distillation weights / teacher results where relevant).
    """
    if setting not in SETTINGS:
        raise ConfigError(choices_message("setting", setting, SETTINGS))
    if distill_weights not in DISTILL_WEIGHTS:
        raise ConfigError(choices_message("distillation weighting", distill_weights, DISTILL_WEIGHTS))
    sources = dict(source_train or {})
    common = dict(epochs=epochs, lr=lr, batch_size=batch_size, warmup_ratio=warmup_ratio,
                  weight_decay=weight_decay, max_length=max_length, seed=seed,
                  early_stopping_patience=early_stopping_patience, freeze_embeddings=freeze_embeddings,
                  robust=robust, robust_epsilon=robust_epsilon, robust_rate=robust_rate, progress=progress,
                  device=device, precision=precision)

    def source_dev_for(langs: Sequence[str]) -> list[Sentence] | None:
        dev = _concat((source_dev or {}).get(lang, ()) for lang in langs)
        return dev or None

    def need_sources(minimum: int, exact: bool = False) -> list[str]:
        langs = [lang for lang, sents in sources.items() if len(sents) > 0]
        if len(langs) < minimum or (exact and len(langs) != minimum):
            want = f"exactly {minimum}" if exact else f"at least {minimum}"
            raise ConfigError(f"setting {setting!r} needs {want} source language(s) with training sentences; "
                              f"got {sorted(sources)}")
        return langs

    def train_on_sources(m: Any, langs: list[str], stage: str) -> TrainResult:
        dev = source_dev_for(langs)
        if len(langs) > 1 and balanced_sampling:
            return fine_tune(m, tokenizer, [], dev, balanced_groups=[sources[lang] for lang in langs],
                             stage=stage, **common)
        return fine_tune(m, tokenizer, _concat(sources[lang] for lang in langs), dev, stage=stage, **common)

    t0 = time.perf_counter()
    if setting == "native":
        if not target_train:
            raise DataError("setting 'native' needs labeled target training sentences (target_train)")
        res = fine_tune(model, tokenizer, target_train, target_dev or None, stage="native", **common)
        info: dict[str, Any] = {"fine_tune_seconds": res.train_seconds}
        train_seconds = res.train_seconds
    elif setting == "transfer":
        res = train_on_sources(model, need_sources(1, exact=True), "transfer")
        info = {"fine_tune_seconds": res.train_seconds}
        train_seconds = res.train_seconds
    elif setting == "multi_source":
        res = train_on_sources(model, need_sources(1), "multi_source")
        info = {"fine_tune_seconds": res.train_seconds, "balanced": balanced_sampling and len(sources) > 1}
        train_seconds = res.train_seconds
    elif setting == "tapt":
        if not target_unlabeled:
            raise DataError("setting 'tapt' needs unlabeled target sentences (target_unlabeled)")
        langs = need_sources(1)
        t_mlm = time.perf_counter()
        mlm_adapt(model, tokenizer, target_unlabeled, steps=tapt_steps, lr=lr, batch_size=batch_size, seed=seed,
                  max_length=max_length, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                  progress=progress, device=device, precision=precision)
        tapt_seconds = time.perf_counter() - t_mlm
        res = train_on_sources(model, langs, "fine-tune")
        info = {"tapt_seconds": tapt_seconds, "tapt_steps": tapt_steps, "fine_tune_seconds": res.train_seconds}
        train_seconds = tapt_seconds + res.train_seconds
    else:  # distill
        if not target_unlabeled:
            raise DataError("setting 'distill' needs unlabeled target sentences (target_unlabeled)")
        langs = need_sources(1) if teachers is None or distill_weights == "similarity" else list(sources)
        teacher_results: dict[str, TrainResult] = {}
        if teachers is None:
            initial = copy.deepcopy(model).cpu()
            trained = []
            for lang in langs:
                res_t = train_on_sources(copy.deepcopy(initial), [lang], f"teacher {lang}")
                teacher_results[lang] = res_t
                trained.append(res_t.model)
            teachers = trained
        elif distill_weights == "similarity" and len(teachers) != len(langs):
            raise ConfigError(f"got {len(teachers)} teachers but {len(langs)} source languages; give one teacher "
                              f"per source, in source_train order")
        weights = (similarity_weights(target_unlabeled, {lang: sources[lang] for lang in langs})
                   if distill_weights == "similarity" else None)
        res = distill(model, tokenizer, teachers, target_unlabeled, weights=weights,
                      temperature=distill_temperature, **common)
        info = dict(res.info)
        info.update({
            "teacher_languages": tuple(langs),
            "teacher_seconds": {lang: r.train_seconds for lang, r in teacher_results.items()},
            "teacher_dev_f1": {lang: r.best_dev_f1 for lang, r in teacher_results.items()},
            "student_seconds": res.train_seconds,
        })
        train_seconds = (res.train_seconds + info["teacher_pass_seconds"]
                         + sum(r.train_seconds for r in teacher_results.values()))
    # Wall time including dev evaluation, encoding and model copies, next to the optimisation-only figure.
    info["total_seconds"] = time.perf_counter() - t0
    info["precision"] = res.info.get("precision", resolve_precision(precision, device))
    return TrainResult(res.model, res.history, train_seconds, res.sentences_per_second, res.best_dev_f1,
                       res.best_epoch, res.steps, info)
