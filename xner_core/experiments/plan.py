"""Stage 6, experiments: a grid spec expanded into a plan of training and evaluation jobs.

`expand` turns a spec into a `Plan`:

- training jobs, deduplicated by config hash (transfer and multi_source hashes leave the target out, so the es
  transfer model serves ca, an and ast); distillation teachers (the transfer models of each source) are jobs
  of their own, ordered before their students;
- evaluation jobs, one per (model config, target, perturbation, seed), grouped per model so a model is loaded
  once and, per target, the perturbation context is built once (see `evaluation.evaluate.iter_evaluate`);
- units whose data is missing (no local WikiANN files and no hub) are skipped with a message saying so.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from xner_core.evaluation.jobs import CLEAN, EvalJob, eval_jobs
from xner_core.evaluation.modelstore import teacher_config
from xner_core.experiments.spec import GridSpec, _Unit, _units
from xner_core.runs.config import ExperimentConfig, canonical_sources, config_hash, make_config, model_label

_NO_DATA_HINT = "set XNER_DATA_DIR or go online"


@dataclass(frozen=True)
class TrainJob:
    """One model to train (or find in the cache); `config` carries the first target it is evaluated on."""

    config: ExperimentConfig
    needs: tuple[str, ...] = ()  # hashes of the models this one trains from (distillation teachers)
    teacher: bool = False  # a distillation teacher of another job

    @property
    def hash(self) -> str:
        """The model cache key."""
        return config_hash(self.config)

    @property
    def label(self) -> str:
        """A short human label without the target for target-free models (`config.model_label`)."""
        return model_label(self.config)


@dataclass(frozen=True)
class EvalBatch:
    """The evaluation jobs of one model on one target (config = the model's config with that target)."""

    config: ExperimentConfig
    jobs: tuple[EvalJob, ...]


@dataclass(frozen=True)
class ModelGroup:
    """A training job and every evaluation that uses its model."""

    train: TrainJob
    batches: tuple[EvalBatch, ...]

    @property
    def jobs(self) -> tuple[EvalJob, ...]:
        return tuple(j for b in self.batches for j in b.jobs)


@dataclass(frozen=True)
class Plan:
    """A spec expanded into jobs, in execution order (teachers before their students)."""

    spec: GridSpec
    groups: tuple[ModelGroup, ...]
    skipped: tuple[str, ...] = ()
    data_dir: str | None = None

    @property
    def train_jobs(self) -> tuple[TrainJob, ...]:
        return tuple(g.train for g in self.groups)

    @property
    def eval_jobs(self) -> tuple[EvalJob, ...]:
        return tuple(j for g in self.groups for j in g.jobs)


def _needed_splits(unit: _Unit, spec: GridSpec) -> list[tuple[str, tuple[str, ...]]]:
    """(language, acceptable local splits) pairs a unit reads (any one split of the tuple is enough)."""
    need: list[tuple[str, tuple[str, ...]]] = []
    train_langs = unit.sources if unit.setting != "native" else (unit.target,)
    resplit = spec.data == "paper-resplit"
    need += [(lang, ("train", "test") if resplit else ("train",)) for lang in train_langs]
    need.append((unit.target, ("test", "train") if resplit else ("test",)))
    if unit.setting in ("distill", "tapt"):
        need.append((unit.target, ("extra", "train")))
    from xner_core.perturb.registry import get_perturbation

    if any("donor" in get_perturbation(p).needs for p in spec.perturbations if p != CLEAN):
        need.append((spec.donor or unit.target, ("extra", "dev")))
    return need


_ONLINE: dict[str, bool] = {}


def hub_online() -> bool:
    """Whether WikiANN splits missing locally could come from the Hugging Face hub (probed once per process)."""
    if "hub" not in _ONLINE:
        from xner_core.corpus import wikiann as corpus

        offline = getattr(corpus, "_hub_offline", lambda: False)()
        reachable = getattr(corpus, "_hub_reachable", lambda: False)
        _ONLINE["hub"] = (not offline) and bool(reachable())
    return _ONLINE["hub"]


def expand(spec: GridSpec, data_dir: str | os.PathLike[str] | None = None, online: bool | None = None) -> Plan:
    """Expand a spec into deduplicated training jobs and per-model evaluation batches.

    Args:
        spec: the grid spec.
        data_dir: WikiANN directory (default XNER_DATA_DIR).
        online: whether languages missing locally can be loaded from the hub; None probes once, only when a
            language is missing.

    Returns:
        The Plan; units whose data is missing are left out and named in `plan.skipped`, e.g.
        "cs→sk skipped: no local data for cs (set XNER_DATA_DIR or go online)".
    """
    from xner_core.corpus.wikiann import wikiann_file

    units = _units(spec)
    local: dict[tuple[str, tuple[str, ...]], bool] = {}

    def missing_langs(unit: _Unit) -> list[str]:
        out = []
        for lang, splits in _needed_splits(unit, spec):
            key = (lang, splits)
            if key not in local:
                local[key] = any(wikiann_file(lang, s, data_dir) is not None for s in splits)
            if not local[key] and lang not in out:
                out.append(lang)
        if out and (online if online is not None else hub_online()):
            return []
        return out

    skipped: list[str] = []
    kept: list[_Unit] = []
    for u in units:
        miss = missing_langs(u)
        if miss:
            skipped.append(f"{u.label} skipped: no local data for {', '.join(miss)} ({_NO_DATA_HINT})")
        else:
            kept.append(u)

    train: dict[str, TrainJob] = {}
    batches: dict[str, dict[str, EvalBatch]] = {}
    order: list[str] = []
    for model in spec.models:
        for seed in spec.seeds:
            for u in kept:
                cfg = make_config(model, u.target, u.setting, sources=u.sources, seed=seed, data=spec.data,
                                  options=spec.options)
                h = config_hash(cfg)
                if cfg.setting == "distill":
                    needs = []
                    for src in canonical_sources(cfg):
                        tc = teacher_config(cfg, src)
                        th = config_hash(tc)
                        needs.append(th)
                        if th not in train:
                            train[th] = TrainJob(tc, teacher=True)
                            order.append(th)
                        elif not train[th].teacher:
                            train[th] = dataclasses.replace(train[th], teacher=True)
                    if h not in train:
                        train[h] = TrainJob(cfg, needs=tuple(needs))
                        order.append(h)
                elif h not in train:
                    train[h] = TrainJob(cfg)
                    order.append(h)
                jobs = eval_jobs(cfg, spec.perturbations, spec.eval_options())
                batches.setdefault(h, {}).setdefault(cfg.target, EvalBatch(cfg, tuple(jobs)))
    # Teachers (and every other non-distill model) first: a distill job then finds its teachers cached.
    ordered = [h for h in order if train[h].config.setting != "distill"] + \
              [h for h in order if train[h].config.setting == "distill"]
    groups = tuple(ModelGroup(train[h], tuple(batches.get(h, {}).values())) for h in ordered)
    return Plan(spec, groups, tuple(skipped), None if data_dir is None else str(data_dir))


def plan_summary(plan: Plan) -> dict[str, Any]:
    """Counts and per-model rows of a plan (for `--dry-run` and status output).

    Args:
        plan: the plan.

    Returns:
        A JSON-ready dict: name, train_jobs, eval_jobs, skipped, models (hash, label, targets, jobs).
    """
    return {
        "name": plan.spec.name, "origin": plan.spec.origin, "train_jobs": len(plan.groups),
        "eval_jobs": len(plan.eval_jobs), "skipped": list(plan.skipped),
        "models": [{"hash": g.train.hash, "label": g.train.label, "teacher": g.train.teacher,
                    "targets": [b.config.target for b in g.batches], "jobs": len(g.jobs)} for g in plan.groups],
    }
