"""Stage 5b, evaluation: what one evaluation is. The evaluation options (`EvalOptions`, built once by the CLI, a
grid spec or the dashboard and passed through), the jobs they make (`EvalJob`, with the stable id the results
store keys rows by) and what a finished job returns (`EvalOutcome`).

`CLEAN` (the unperturbed test set) is defined here, once for the repository.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.runs.config import ExperimentConfig, canonical_json, config_hash

CLEAN = "clean"


@dataclass(frozen=True)
class EvalOptions:
    """How a model config is evaluated (everything besides the model, the perturbations and where files live).

    Attributes:
        perturb_seed: seed of every perturbation.
        perturb_rate: fraction of eligible units changed.
        rates: per-perturbation rates overriding `perturb_rate`, as sorted (name, rate) pairs (a grid spec's
            `[eval.rates]`; e.g. `entity_replace_matched`, whose rate is a share of all entities). `rate_for`
            reads them; each job carries its own rate, so its id and rows do.
        test_limit: cap on test sentences (None = all).
        embed_model: encoder for context perturbations' word embeddings (pretrained, not fine-tuned).
        donor: donor language of person/location swaps (None: the target itself, names from its `extra` split).
        bootstrap: resamples for CIs (0 = no CIs).
        batch_size: inference batch size.
        backend: "torch" or "onnx-int8".
        precision: inference autocast, auto/bf16/fp32 (`numerics`; also used to train a missing model). Not part
            of the job id; rows record it as `eval_dtype` (and the model's as `train_dtype`).
        checkpoint: the model is an existing checkpoint evaluated as it is (`models.checkpoint`), never trained
            from the config: its jobs get their own ids, so their rows and cached predictions never mix with those
            of a model fine-tuned from the same directory.
    """

    perturb_seed: int = 0
    perturb_rate: float = 1.0
    test_limit: int | None = None
    embed_model: str = "e5-small"
    donor: str | None = None
    bootstrap: int = 1000
    rates: tuple[tuple[str, float], ...] = ()
    batch_size: int = 32
    backend: str = "torch"
    precision: str = "auto"
    checkpoint: bool = False

    def rate_for(self, perturbation: str) -> float:
        """The rate perturbation `perturbation` runs at: its own from `rates`, else `perturb_rate` (1.0 for clean)."""
        if perturbation == CLEAN:
            return 1.0
        return float(dict(self.rates).get(perturbation, self.perturb_rate))

    def donor_for(self, target: str) -> str:
        """The donor language of name swaps when evaluating on `target` (the target itself by default)."""
        return self.donor or target


@dataclass(frozen=True)
class EvalJob:
    """One evaluation: a model config on its target's test set under one perturbation."""

    config: ExperimentConfig
    perturbation: str = CLEAN
    perturb_seed: int = 0
    perturb_rate: float = 1.0
    test_limit: int | None = None
    embed_model: str = "e5-small"
    donor: str | None = None
    checkpoint: bool = False  # an existing checkpoint evaluated as it is (see EvalOptions)

    @property
    def target(self) -> str:
        """The evaluated language (the config's target; for transfer/multi_source it is not part of the model's
        hash, so one cached model serves several targets)."""
        return self.config.target

    @property
    def id(self) -> str:
        """Stable id: the config hash plus the target and everything else that changes this job's numbers."""
        key = {
            "config": config_hash(self.config), "target": self.config.target, "perturbation": self.perturbation,
            "perturb_seed": self.perturb_seed if self.perturbation != CLEAN else 0,
            "perturb_rate": float(self.perturb_rate) if self.perturbation != CLEAN else 1.0,
            "test_limit": self.test_limit,
            "embed_model": self.embed_model if _needs(self.perturbation, "embed") else None,
            "donor": self.donor if _needs(self.perturbation, "donor") else None,
        }
        if self.checkpoint:  # only then: every other job keeps its id
            key["checkpoint"] = True
        return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()[:16]

    def clean(self) -> "EvalJob":
        """The clean job this one's drop is measured against."""
        return EvalJob(self.config, CLEAN, 0, 1.0, self.test_limit, self.embed_model, None, self.checkpoint)


@dataclass(frozen=True)
class EvalOutcome:
    """The rows of one job plus its predictions (aligned with the (perturbed) test sentences)."""

    job: EvalJob
    rows: tuple[dict[str, Any], ...]
    sentences: tuple[Sentence, ...]
    predictions: tuple[tuple[str, ...], ...]
    report: dict[str, Any] = field(default_factory=dict)


def _needs(perturbation: str, part: str) -> bool:
    if perturbation == CLEAN:
        return False
    from xner_core.perturb.registry import get_perturbation

    return part in get_perturbation(perturbation).needs


def condition_names(perturbations: Sequence[str]) -> list[str]:
    """The conditions an evaluation runs for these perturbation names: clean first, each name once."""
    return [CLEAN] + [p for p in dict.fromkeys(perturbations) if p != CLEAN]


def eval_jobs(config: ExperimentConfig, perturbations: Sequence[str] = (CLEAN,),
              options: EvalOptions = EvalOptions()) -> list[EvalJob]:
    """The jobs `evaluate` runs for these arguments (clean first), with the ids its rows carry.

    Args:
        config: the model config (its target is the evaluated language).
        perturbations: registry names; "clean" is always included, first.
        options: the evaluation options (seed, rate, test cap, encoder and donor enter the ids).

    Returns:
        One EvalJob per condition.
    """
    o = options
    return [EvalJob(config, name, o.perturb_seed, o.rate_for(name), o.test_limit, o.embed_model,
                    o.donor_for(config.target), o.checkpoint)
            for name in condition_names(perturbations)]
