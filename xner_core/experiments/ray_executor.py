"""Stage 6, experiments: the Ray executor of `execute.run_plan`.

One task per training job (a GPU each when the cluster has GPUs) and one streaming task per model's evaluation
batch, which yields each job's rows as it finishes; the driver alone writes to the store (through the run's
`_Writer`). Ray is imported only when this executor runs; the task functions are module-level so Ray workers
import them from this module.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, cast

from xner_core.errors import ConfigError
from xner_core.evaluation.jobs import EvalOptions
from xner_core.experiments.execute import _Tally, _Writer
from xner_core.experiments.plan import EvalBatch, ModelGroup, Plan, group_options
from xner_core.experiments.status import _Claims
from xner_core.runs.config import ExperimentConfig, config_hash


def _ray_train(config: ExperimentConfig, data_dir: str | None, cache: str | None, precision: str,
               *teachers: Any) -> dict[str, Any]:
    """Ray task: train (or find) one model; `teachers` are the refs of the jobs it needs (ordering only)."""
    from xner_core.evaluation.modelstore import model_cache, train_model

    _quiet()
    cached = model_cache(cache).has(config)
    t0 = time.perf_counter()
    if not cached:
        train_model(config, data_dir=data_dir, cache=cache, precision=precision)
    return {"hash": config_hash(config), "cached": cached, "seconds": time.perf_counter() - t0}


def _ray_eval(batches: list[tuple[ExperimentConfig, tuple[str, ...]]], options: EvalOptions, skip: frozenset[str],
              data_dir: str | None, cache: str | None, trained: Any) -> Any:
    """Ray streaming task: evaluate one model on each of its targets, yielding (job_id, rows, seconds) per job
    (an existing checkpoint, `options.checkpoint`, is loaded as it is, never trained)."""
    from xner_core.evaluation.evaluate import iter_evaluate
    from xner_core.evaluation.modelstore import load_checkpoint_model, train_model

    _quiet()
    lm = None
    for config, perturbations in batches:
        t0 = time.perf_counter()
        if lm is None and options.checkpoint:
            lm = load_checkpoint_model(config)
        elif lm is None:
            lm = train_model(config, data_dir=data_dir, cache=cache, precision=options.precision)
        it = iter_evaluate(config, perturbations, options, data_dir=data_dir, cache=cache, loaded=lm, skip=skip)
        for outcome in it:
            yield outcome.job.id, outcome.rows, time.perf_counter() - t0
            t0 = time.perf_counter()


def _quiet() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def gpu_request(cluster_resources: Mapping[str, float]) -> int:
    """GPUs each task asks for: 1 when the Ray cluster has GPUs (so tasks spread one per GPU), else 0.

    Args:
        cluster_resources: `ray.cluster_resources()`.

    Returns:
        0 or 1.
    """
    return 1 if float(cluster_resources.get("GPU", 0) or 0) > 0 else 0


def _run_ray(needed: list[tuple[ModelGroup, list[EvalBatch]]], done: set[str], plan: Plan, writer: _Writer,
             claims: _Claims, tally: _Tally, event: Callable[..., None], address: str | None, data_dir: Any,
             cache: Any) -> None:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover
        raise ConfigError("the ray executor needs the `ray` package; pip install 'ray[default]'") from exc
    from xner_core.paths import cache_dir as resolve_cache
    from xner_core.paths import data_dir as resolve_data

    # Workers may run elsewhere: pass absolute paths (a cluster needs them on a shared file system).
    data_s = str(resolve_data(data_dir).expanduser().absolute())
    cache_s = str(resolve_cache(cache).expanduser().absolute())
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
            raise ConfigError(f"could not connect to {where} ({_ray_message(exc)}); give --address auto (a "
                              "cluster started with `ray start --head`), HOST:PORT of its head node, or leave "
                              "--address out to start a local instance") from exc
        started = True
    try:
        gpus = gpu_request(ray.cluster_resources())
        train_remote = ray.remote(_ray_train).options(num_gpus=gpus, num_cpus=1)
        eval_remote = ray.remote(_ray_eval).options(num_gpus=gpus, num_cpus=1)
        skip = frozenset(done)
        train_refs: dict[str, Any] = {}
        failed_train: set[str] = set()
        pending: dict[Any, tuple[str, ModelGroup]] = {}
        for group, batches in needed:
            claims.claim(j.id for b in batches for j in b.jobs if j.id not in done)
            if group.train.checkpoint:  # never trained: its evaluation task loads it
                tally.models_done += 1
                event("train_done", group.train.label, 0.0, "checkpoint")
                continue
            deps = [train_refs[h] for h in group.train.needs if h in train_refs]
            ref = train_remote.remote(group.train.config, data_s, cache_s, plan.spec.precision, *deps)
            train_refs[group.train.key] = ref
            pending[ref] = ("train", group)
            event("train_start", group.train.label)
        for group, batches in needed:
            if not batches:
                continue
            payload = [(b.config, plan.spec.perturbations) for b in batches]
            gen = eval_remote.remote(payload, group_options(plan, group), skip, data_s, cache_s,
                                     train_refs.get(group.train.key))
            pending[gen] = ("eval", group)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            kind, group = pending[ref]
            label = group.train.label
            if kind == "train":
                del pending[ref]
                try:
                    info = ray.get(ref)
                except Exception as exc:  # RayTaskError wraps the worker's exception
                    failed_train.add(group.train.key)
                    tally.failures.append(f"{label}: training failed: {_ray_message(exc)}")
                    event("failed", label, message=_ray_message(exc))
                    continue
                tally.models_done += 1
                tally.models_trained += 0 if info["cached"] else 1
                tally.compute += info["seconds"]
                event("train_done", label, info["seconds"], "cached" if info["cached"] else "trained")
                continue
            try:
                item_ref = next(cast(Any, ref))
            except StopIteration:
                del pending[ref]
                continue
            try:
                job_id, rows, seconds = ray.get(item_ref)
            except Exception as exc:
                del pending[ref]
                if group.train.key not in failed_train:  # else already reported as a training failure
                    tally.failures.append(f"{label}: evaluation failed: {_ray_message(exc)}")
                    event("failed", label, message=_ray_message(exc))
                for b in group.batches:
                    for j in b.jobs:
                        if j.id in claims.held:
                            claims.release(j.id)
                continue
            tally.compute += seconds
            writer.put(job_id, rows)
    finally:
        if started:
            ray.shutdown()


def _ray_message(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return " ".join(str(exc).split())[:500]
