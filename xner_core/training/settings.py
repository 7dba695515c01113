"""Stage 3b, training: what a run can ask for. The settings, robust-training methods, teacher weightings,
distillation losses and adapters (`SETTINGS`, `ROBUST_METHODS`, `DISTILL_WEIGHTS`, `DISTILL_LOSSES`, `ADAPTERS`,
defined here once), a run's training options (`TrainOptions`, part of the experiment config and passed whole to
`dispatch.run_setting`), the LoRA adapter's shape (`LoraSpec`, from `lora_spec(options)`), the optimisation spec
fine-tuning and distillation share (`_Spec`) and the progress-callback type.

Options added after the first release (`NEW_OPTIONS`) enter a config's hash only when they differ from their
default (`xner_core.runs.config`), so every config written before them keeps its id.

Import-light on purpose (no torch, nothing else from training): the experiment config
(`xner_core.runs.config`), which every CLI command and dashboard page imports, takes these from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from xner_core.errors import ConfigError, choices_message

ProgressFn = Callable[[int, int, dict], None]

SETTINGS: tuple[str, ...] = ("native", "transfer", "multi_source", "distill", "tapt")
# Robust training (Huang et al., EMNLP 2021). "fgm" and "subtoken-noise" are the first two methods under their
# descriptive names; "adversarial" and "smoothing" are their original names, kept (and used in config hashes) so
# existing configs keep their ids. "pgd" and "word-smoothing" follow the paper (see `objective`, `neighbours`).
ROBUST_METHODS: tuple[str, ...] = ("adversarial", "smoothing", "fgm", "subtoken-noise", "pgd", "word-smoothing")
ROBUST_ALIASES: dict[str, str] = {"fgm": "adversarial", "subtoken-noise": "smoothing"}  # new name -> hashed name
DISTILL_WEIGHTS: tuple[str, ...] = ("uniform", "similarity")
DISTILL_LOSSES: tuple[str, ...] = ("mse", "kl")
# Parameter-efficient training: "none" trains every weight; "lora" trains low-rank adapters on the attention
# projections named by `lora_targets` plus the whole token-classification head (`training.lora`).
ADAPTERS: tuple[str, ...] = ("none", "lora")
# BERT-like encoders (BERT, mBERT, XLM-R, e5-small, tiny) name their attention projections query/key/value; Hu et
# al.'s LoRA paper adapts W_q and W_v, as do peft's defaults for these architectures.
DEFAULT_LORA_TARGETS = "query,value"
LORA_OPTIONS: frozenset[str] = frozenset({"lora_r", "lora_alpha", "lora_dropout", "lora_targets"})
# Fields added to TrainOptions after hashes were first published: in the hash only when not at their default.
NEW_OPTIONS: frozenset[str] = frozenset({
    "distill_loss", "distill_epochs", "distill_min_steps", "distill_freeze", "robust_steps", "robust_alpha",
    "robust_neighbours", "adapter", "max_steps", *LORA_OPTIONS,
})
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def robust_kind(robust: str | None) -> str | None:
    """The descriptive name of a robust-training method: fgm, subtoken-noise, pgd, word-smoothing (or None).

    Args:
        robust: a name of ROBUST_METHODS or None.

    Returns:
        "adversarial" reads as "fgm", "smoothing" as "subtoken-noise"; the others as they are.
    """
    if robust is None:
        return None
    return {v: k for k, v in ROBUST_ALIASES.items()}.get(robust, robust)


@dataclass(frozen=True)
class TrainOptions:
    """Fine-tuning options; every field is part of the run's identity (the exceptions, options a setting ignores,
    are in `xner_core.runs.config`'s docstring). Data selection (`max_*_sentences`, `distill_unlabeled`) is
    the runner's; `run_setting` reads the rest."""

    epochs: int = 1
    lr: float | None = None  # None: the model's default, see `experiments.config.default_lr`
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_length: int = 128  # sub-tokens per sentence, [CLS]/[SEP] included
    max_train_sentences: int | None = 5000  # None: the whole train split
    max_dev_sentences: int | None = 1000  # None: the whole dev split; 0: no dev evaluation
    early_stopping_patience: int | None = None  # evaluations without dev-F1 gain before stopping; None: off
    balanced_sampling: bool = False  # multi_source: equal share per source language
    distill_weights: str = "uniform"  # distill: "uniform" | "similarity" teacher weights
    # distill/tapt: unlabeled target text (students / masked LM): "extra" | "train" | "train+extra", labels removed
    # (`evaluation.inputs.unlabeled_target`). Wu et al. use the target's train split ("train"); the default stays
    # "extra" because it is part of published config hashes (the faithful presets set "train").
    distill_unlabeled: str = "extra"
    distill_temperature: float = 1.0
    tapt_steps: int = 0  # tapt: masked-LM steps on target text before fine-tuning
    robust: str | None = None  # None | a name of ROBUST_METHODS
    robust_epsilon: float = 1.0  # fgm/pgd: radius of the per-sequence L2 ball of the embedding perturbation
    robust_rate: float = 0.1  # subtoken-noise: sub-tokens replaced; word-smoothing: words replaced (probability)
    freeze_embeddings: bool = False
    # ---- added later (NEW_OPTIONS): in a config's hash only when not at these defaults
    distill_loss: str = "mse"  # distill: "mse" on probabilities (Wu et al.) | "kl" (T^2 * KL(teacher || student))
    distill_epochs: int = 3  # distill: student epochs (Wu et al.: 3); teachers train with `epochs`
    # distill: the least number of student optimiser steps (epochs are added, the last one partial, until it is
    # reached): small targets (an, ast: ~2,070 sentences, 777 steps at batch 8) still get about the updates of
    # Wu et al.'s smallest student (es: 8,323 sentences, 3 epochs at batch 32 = 783 steps), rounded up to 1,000.
    distill_min_steps: int = 1000
    distill_freeze: int = 3  # distill: student's embeddings + bottom N encoder layers frozen (Wu et al.: 3); 0: none
    robust_steps: int = 3  # pgd: K ascent steps
    robust_alpha: float | None = None  # pgd: step size; None: 2.5 * robust_epsilon / robust_steps (Madry et al.)
    robust_neighbours: int = 8  # word-smoothing: k nearest neighbours of a word in the model's embedding space
    adapter: str = "none"  # "none": every weight trains | "lora": LoRA adapters + the head (`training.lora`)
    lora_r: int = 16  # lora: rank of each adapter's A (r x in) and B (out x r) matrices
    lora_alpha: float = 32.0  # lora: the update B A is scaled by lora_alpha / lora_r
    lora_dropout: float = 0.1  # lora: dropout on the adapter's input
    lora_targets: str = DEFAULT_LORA_TARGETS  # lora: comma-separated Linear module names (suffixes) to adapt
    # Every supervised stage (fine-tuning, a distillation's teachers and student) takes exactly this many optimiser
    # steps: epochs repeat (the last one partial) or stop early, and the schedule spans them (Hugging Face
    # Trainer's `max_steps`). None: `epochs` decide (and `distill_min_steps` for students). For equal-compute
    # comparisons, e.g. a multi-source model given a distillation student's step count. TAPT's masked-LM steps are
    # `tapt_steps`.
    max_steps: int | None = None


@dataclass(frozen=True)
class LoraSpec:
    """The shape of a run's LoRA adapters (`lora_spec(options)`; None when a run trains every weight)."""

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.1
    targets: tuple[str, ...] = ("query", "value")  # sorted, unique


def lora_targets(text: str) -> tuple[str, ...]:
    """The module names of a `lora_targets` option, sorted and unique (the order cannot change the model).

    Args:
        text: comma-separated names, e.g. "query,value" or "query, key, value, dense".

    Returns:
        The names; ConfigError when none is given or one is not a module name.
    """
    if not isinstance(text, str):
        raise ConfigError(f"option lora_targets={text!r} is invalid; allowed: comma-separated module names such as "
                          f"{DEFAULT_LORA_TARGETS!r}")
    names = sorted({n.strip() for n in text.split(",") if n.strip()})
    bad = [n for n in names if not _MODULE_NAME.match(n)]
    if not names or bad:
        raise ConfigError(f"option lora_targets={text!r} is invalid; allowed: comma-separated module names such as "
                          f"{DEFAULT_LORA_TARGETS!r} (BERT-like attention: query, key, value; every Linear: "
                          f"query,key,value,dense)")
    return tuple(names)


def lora_spec(options: TrainOptions) -> LoraSpec | None:
    """The LoRA adapter shape a run's options ask for.

    Args:
        options: the run's training options.

    Returns:
        None for `adapter = "none"`; a `LoraSpec` for "lora"; ConfigError for another adapter name.
    """
    if options.adapter == "none":
        return None
    if options.adapter != "lora":
        raise ConfigError(choices_message("adapter", options.adapter, ADAPTERS))
    return LoraSpec(options.lora_r, float(options.lora_alpha), float(options.lora_dropout),
                    lora_targets(options.lora_targets))


def _check_lora(lora: LoraSpec) -> None:
    if isinstance(lora.r, bool) or not isinstance(lora.r, int) or lora.r < 1:
        raise ConfigError(f"option lora_r={lora.r!r} is invalid; allowed: an integer >= 1 (the adapter rank)")
    if not lora.alpha > 0:
        raise ConfigError(f"option lora_alpha={lora.alpha!r} is invalid; allowed: a number > 0")
    if not 0 <= lora.dropout < 1:
        raise ConfigError(f"option lora_dropout={lora.dropout!r} is invalid; allowed: a number >= 0 and < 1")
    if not lora.targets:
        raise ConfigError("LoRA needs at least one target module (e.g. query,value)")


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
    soft_loss: str = "kl"  # soft labels (distillation): "mse" | "kl"
    freeze_layers: int = 0  # > 0: embeddings + bottom N encoder layers frozen (distillation students)
    min_steps: int = 0  # the least number of optimiser steps (epochs added, the last one partial)
    max_steps: int | None = None  # exactly this many optimiser steps (epochs repeated or cut); None: epochs decide
    robust_steps: int = 3  # pgd
    robust_alpha: float | None = None  # pgd; None: 2.5 * epsilon / steps
    robust_neighbours: int = 8  # word-smoothing
    lora: LoraSpec | None = None  # LoRA adapters + the head train, every other weight stays (`training.lora`)


def _check_spec(spec: _Spec) -> None:
    if spec.epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {spec.epochs}")
    if spec.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {spec.batch_size}")
    if spec.max_steps is not None and spec.max_steps < 1:
        raise ConfigError(f"max_steps must be >= 1 or None, got {spec.max_steps}")
    if spec.lr is None:
        raise ConfigError("lr is None; resolve the model's default first (xner_core.runs.config.resolved_lr)")
    if not spec.lr > 0:
        raise ConfigError(f"lr must be > 0, got {spec.lr}")
    if not 0 <= spec.warmup_ratio < 1:
        raise ConfigError(f"warmup_ratio must be in [0, 1), got {spec.warmup_ratio}")
    if spec.robust is not None and spec.robust not in ROBUST_METHODS:
        raise ConfigError(choices_message("robust training method", spec.robust, ROBUST_METHODS) + " (or None)")
    kind = robust_kind(spec.robust)
    if kind in ("subtoken-noise", "word-smoothing") and not 0 < spec.robust_rate <= 1:
        raise ConfigError(f"robust_rate must be in (0, 1] for {spec.robust}, got {spec.robust_rate}")
    if kind in ("fgm", "pgd") and not spec.robust_epsilon > 0:
        raise ConfigError(f"robust_epsilon must be > 0 for {spec.robust} training, got {spec.robust_epsilon}")
    if kind == "pgd" and (spec.robust_steps < 1 or (spec.robust_alpha is not None and not spec.robust_alpha > 0)):
        raise ConfigError(f"pgd needs robust_steps >= 1 and robust_alpha > 0 (or None); got {spec.robust_steps}, "
                          f"{spec.robust_alpha}")
    if kind == "word-smoothing" and spec.robust_neighbours < 1:
        raise ConfigError(f"robust_neighbours must be >= 1, got {spec.robust_neighbours}")
    if spec.soft_loss not in DISTILL_LOSSES:
        raise ConfigError(choices_message("distillation loss", spec.soft_loss, DISTILL_LOSSES))
    if spec.freeze_layers < 0 or spec.min_steps < 0:
        raise ConfigError(f"freeze_layers and min_steps must be >= 0, got {spec.freeze_layers}, {spec.min_steps}")
    if not spec.temperature > 0:
        raise ConfigError(f"distillation temperature must be > 0, got {spec.temperature}")
    if spec.early_stopping_patience is not None and spec.early_stopping_patience < 1:
        raise ConfigError(f"early_stopping_patience must be >= 1 or None, got {spec.early_stopping_patience}")
    if spec.lora is not None:
        _check_lora(spec.lora)
