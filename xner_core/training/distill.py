"""Stage 3b, distillation (Wu et al., ACL 2020): the teachers' weighted soft labels on unlabeled target text, and a
student trained on them. Similarity-based teacher weights: `similarity.py`.

What follows the authors' code (microsoft/vert-papers, `papers/SingleMulti-TS`: `main_single.py`, `main.py`,
`modeling.py`) and what does not:
- teachers: one model per source, run once over the unlabeled target text; softmax of their logits (no
  temperature: T = 1 by default), weighted sum per position (uniform 1/K, or the similarity weights);
- student: a fresh pretrained encoder with a new head (not a teacher copy), its embeddings and bottom 3 encoder
  layers frozen (`--freeze_bottom_layer 3`), trained 3 epochs (`--num_train_epochs 3`) on the target's train split
  with its labels unused, loss = MSE between the student's and the teachers' probabilities at the first sub-token
  of each word (`MSELoss(reduction="mean")`, "L2 Norm" in `modeling.py`); KL is our option (their code keeps it
  commented out);
- ours: the student's batch size, learning rate, warmup and weight decay are the run's (the transfer recipe, so
  teacher and student share one optimiser recipe; theirs: batch 32, lr 1e-4, warmup 10 %, weight decay 0.01),
  and a floor on student steps (`TrainOptions.distill_min_steps`) for small targets;
- teachers here are the run's transfer models, trained with the run's recipe (theirs also freeze the bottom 3
  layers of the teachers; ours do not, so a teacher IS the transfer model the study evaluates).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.errors import ConfigError
from xner_core.numerics import autocast, resolve_device, resolve_precision
from xner_core.training.encoding import IGNORE_INDEX, Encoded, _collate, _pad_id, encode_for_training
from xner_core.training.loop import TrainResult, _train
from xner_core.training.settings import LoraSpec, ProgressFn, _check_spec, _Spec


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
    robust_steps: int = 3,
    robust_alpha: float | None = None,
    robust_neighbours: int = 8,
    loss: str = "mse",
    freeze_layers: int = 0,
    min_steps: int = 0,
    progress: ProgressFn | None = None,
    device: Any = None,
    row_sparse_embeddings: bool = True,
    precision: str = "auto",
    lora: LoraSpec | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    """Teacher-student distillation on unlabeled target text (Wu et al., ACL 2020; see the module docstring).

    The teachers' per-token distributions are computed once (first sub-tokens) and averaged with `weights`; the
    student minimises `objective.soft_loss` against them: "mse" (Wu et al.) or "kl" (T^2 * KL(teacher_avg ||
    student)). Wu et al. start the student from the pretrained encoder, not from a teacher: pass a fresh model.

    Args:
        student: the token classifier to train (in place), same labels and tokenizer as the teachers.
        tokenizer: the shared tokenizer.
        teachers: trained source-language models.
        unlabeled: target-language sentences (their tags are ignored).
        weights: one weight per teacher (uniform when None); see `similarity_weights`.
        temperature: softmax temperature for teachers and student.
        epochs, lr, batch_size, warmup_ratio, weight_decay, max_length, seed, early_stopping_patience,
        freeze_embeddings, robust, robust_epsilon, robust_rate, robust_steps, robust_alpha, robust_neighbours,
        progress, device, row_sparse_embeddings, lora: as in `fine_tune`.
        loss: "mse" or "kl".
        freeze_layers: freeze the student's embeddings and bottom N encoder layers (Wu et al.: 3; 0: none).
        min_steps: the least number of optimiser steps (epochs are added until reached; the last is partial).
        max_steps: exactly this many optimiser steps (overrides epochs and min_steps); None: they decide.
        dev: labeled dev sentences for model selection (None in the zero-resource setting).

    Returns:
        A `TrainResult` for the student; `info` holds the normalised weights and the teacher-pass seconds.
    """
    spec = _Spec(epochs, lr, batch_size, warmup_ratio, weight_decay, max_length, seed, early_stopping_patience,
                 freeze_embeddings, robust, robust_epsilon, robust_rate, temperature, row_sparse_embeddings,
                 precision, soft_loss=loss, freeze_layers=freeze_layers, min_steps=min_steps,
                 robust_steps=robust_steps, robust_alpha=robust_alpha, robust_neighbours=robust_neighbours,
                 lora=lora, max_steps=max_steps)
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
            "precision": result.info["precision"], "distill_loss": loss, "student_steps": result.steps,
            "student_epochs": len(result.history), "student_windows": len(windows),
            "frozen_parameters": result.info.get("frozen_parameters", 0)}
    if "adapter" in result.info:
        info["adapter"] = result.info["adapter"]
    return TrainResult(result.model, result.history, result.train_seconds, result.sentences_per_second,
                       result.best_dev_f1, result.best_epoch, result.steps, info)
