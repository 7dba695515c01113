"""Stage 6, experiments: a grid spec expanded into a plan of training and evaluation jobs.

`expand` turns a spec into a `Plan`:

- training jobs, deduplicated by config hash (transfer and multi_source hashes leave the target out, so the es
  transfer model serves ca, an and ast); distillation teachers (the transfer models of each source) are jobs
  of their own, ordered before their students;
- evaluation jobs, one per (model config, target, perturbation, seed), grouped per model so a model is loaded
  once and, per target, the perturbation context is built once (see `evaluation.evaluate.iter_evaluate`);
- existing checkpoints (`[[checkpoints]]`) make groups of their own that are never trained: the executors load
  them as they are (`evaluation.modelstore.load_checkpoint_model`) and evaluate them with
  `EvalOptions(checkpoint=True)`, so their jobs have their own ids (`group_options`);
- units whose data is missing (no local WikiANN files and no hub) are skipped with a message saying so.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from xner_core.evaluation.jobs import CLEAN, EvalJob, EvalOptions, eval_jobs
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
    checkpoint: bool = False  # an existing checkpoint evaluated as it is: loaded, never trained

    @property
    def hash(self) -> str:
        """The model cache key (for a checkpoint, its config's hash: it is never cached)."""
        return config_hash(self.config)

    @property
    def key(self) -> str:
        """The job's key in a plan: the hash, prefixed for a checkpoint (a model fine-tuned from the same
        directory with the same options has the same config hash, and is another model)."""
        return f"checkpoint:{self.hash}" if self.checkpoint else self.hash

    @property
    def label(self) -> str:
        """A short human label without the target for target-free models (`config.model_label`); a checkpoint's
        says so, e.g. "checkpoint /x/my-ner es transfer"."""
        if self.checkpoint:
            trained_on = "+".join(canonical_sources(self.config)) or self.config.target
            return f"checkpoint {self.config.model} {trained_on} {self.config.setting}"
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
    for ck in spec.checkpoints:  # never trained: a group of its own per checkpoint (and target, for native)
        for target in ck.targets:
            unit = _Unit(target, ck.role, ck.sources)
            miss = missing_langs(unit)
            if miss:
                skipped.append(f"{ck.label} on {target} skipped: no local data for {', '.join(miss)} "
                               f"({_NO_DATA_HINT})")
                continue
            cfg = ck.config(spec, target)
            tj = TrainJob(cfg, checkpoint=True)
            if tj.key not in train:
                train[tj.key] = tj
                order.append(tj.key)
            jobs = eval_jobs(cfg, spec.perturbations, checkpoint_options(spec.eval_options()))
            batches.setdefault(tj.key, {}).setdefault(cfg.target, EvalBatch(cfg, tuple(jobs)))
    # Teachers (and every other non-distill model) first: a distill job then finds its teachers cached.
    ordered = [h for h in order if train[h].config.setting != "distill"] + \
              [h for h in order if train[h].config.setting == "distill"]
    groups = tuple(ModelGroup(train[h], tuple(batches.get(h, {}).values())) for h in ordered)
    return Plan(spec, groups, tuple(skipped), None if data_dir is None else str(data_dir))


def checkpoint_options(options: EvalOptions) -> EvalOptions:
    """The evaluation options of a checkpoint's jobs: the grid's, evaluated as it is (own job ids)."""
    return dataclasses.replace(options, checkpoint=True)


def group_options(plan: Plan, group: ModelGroup) -> EvalOptions:
    """The evaluation options a model group's jobs run with (`checkpoint_options` for a checkpoint's)."""
    options = plan.spec.eval_options()
    return checkpoint_options(options) if group.train.checkpoint else options


def plan_summary(plan: Plan) -> dict[str, Any]:
    """Counts and per-model rows of a plan (for `--dry-run` and status output).

    Args:
        plan: the plan.

    Returns:
        A JSON-ready dict: name, train_jobs, eval_jobs, skipped, models (hash, label, teacher, checkpoint,
        targets, jobs). `train_jobs` counts model groups, checkpoints (never trained) included.
    """
    return {
        "name": plan.spec.name, "origin": plan.spec.origin, "train_jobs": len(plan.groups),
        "eval_jobs": len(plan.eval_jobs), "skipped": list(plan.skipped),
        "models": [{"hash": g.train.hash, "label": g.train.label, "teacher": g.train.teacher,
                    "checkpoint": g.train.checkpoint,
                    "targets": [b.config.target for b in g.batches], "jobs": len(g.jobs)} for g in plan.groups],
    }
