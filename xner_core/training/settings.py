"""Stage 3b, training: what a run can ask for. The settings, robust-training methods and teacher weightings
(`SETTINGS`, `ROBUST_METHODS`, `DISTILL_WEIGHTS`, defined here once), a run's training options
(`TrainOptions`, part of the experiment config and passed whole to `dispatch.run_setting`), the optimisation
spec fine-tuning and distillation share (`_Spec`) and the progress-callback type.

Import-light on purpose (no torch, nothing else from training): the experiment config
(`xner_core.runs.config`), which every CLI command and dashboard page imports, takes these from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from xner_core.errors import ConfigError, choices_message

ProgressFn = Callable[[int, int, dict], None]

SETTINGS: tuple[str, ...] = ("native", "transfer", "multi_source", "distill", "tapt")
ROBUST_METHODS: tuple[str, ...] = ("adversarial", "smoothing")
DISTILL_WEIGHTS: tuple[str, ...] = ("uniform", "similarity")


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
    distill_unlabeled: str = "extra"  # distill/tapt: unlabeled target text (students / masked LM), "extra" | "train"
    distill_temperature: float = 1.0
    tapt_steps: int = 0  # tapt: masked-LM steps on target text before fine-tuning
    robust: str | None = None  # None | "adversarial" | "smoothing"
    robust_epsilon: float = 1.0  # adversarial: L2 norm of the per-sequence embedding perturbation (FGM)
    robust_rate: float = 0.1  # smoothing: fraction of tokens perturbed per sentence
    freeze_embeddings: bool = False


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


def _check_spec(spec: _Spec) -> None:
    if spec.epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {spec.epochs}")
    if spec.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {spec.batch_size}")
    if spec.lr is None:
        raise ConfigError("lr is None; resolve the model's default first (xner_core.runs.config.resolved_lr)")
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
