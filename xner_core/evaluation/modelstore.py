"""Stage 5b, evaluation: the models an evaluation scores, from the content-addressed model cache. Train a config's
model on demand (`train_model`, distillation teachers included), load a cached one (`load_model`), list the
cached ones and find those that can serve a language pair (`cached_configs`, `serves`, `find_cached`).

It sits in evaluation (above training and models) because it wires a config's training data (`inputs`) into
training: `models` and `training` never import evaluation.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from xner_core.errors import ConfigError
from xner_core.evaluation.inputs import training_data
from xner_core.jsonable import jsonable
from xner_core.models.labels import LabelMapping
from xner_core.paths import cache_dir
from xner_core.runs.config import ExperimentConfig, config_hash, make_config, resolved_lr

CHECKPOINT_ROLES: tuple[str, ...] = ("native", "transfer")  # the sides an existing checkpoint can play
ProgressFn = Callable[[int, int, dict[str, Any]], None]


@dataclass(frozen=True)
class LoadedModel:
    """A trained (or cached) model with its tokenizer, manifest and config.

    `label_mapping` is set for an existing checkpoint evaluated as it is (`load_checkpoint_model`): how its own
    labels read as ours; None for models of the cache, whose labels are ours.
    """

    model: Any
    tokenizer: Any
    manifest: dict[str, Any]
    config: ExperimentConfig
    label_mapping: LabelMapping | None = None

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Our IOB2 label per output id for `predict_tags(..., labels=)`; None: the model's own."""
        return None if self.label_mapping is None or self.label_mapping.identity else self.label_mapping.labels

    @property
    def hash(self) -> str:
        return config_hash(self.config)


def model_cache(cache: str | os.PathLike[str] | None = None) -> Any:
    """The model cache under `<cache>/models`."""
    from xner_core.runs.modelcache import ModelCache

    return ModelCache(cache_dir(cache) / "models")


def train_model(config: ExperimentConfig, *, data_dir: str | os.PathLike[str] | None = None,
                cache: str | os.PathLike[str] | None = None, progress: ProgressFn | None = None,
                status: Callable[[str], None] | None = None, device: Any = None,
                precision: str = "auto") -> LoadedModel:
    """Return the config's model from the cache, training (and caching) it first when missing.

    Distillation teachers are the cached transfer models of each source (trained on demand), so a grid that
    already trained es→X transfer reuses it as the es teacher.

    Args:
        config: the experiment config (its hash is the cache key).
        data_dir: WikiANN directory.
        cache: xner cache root.
        progress: training progress callback `(step, total, info)`.
        status: short status messages (cache hit, waiting for another process, training, saved).
        device: torch device (auto when None).
        precision: auto, bf16 or fp32 for training (`numerics`); not part of the hash: a cached model trained
            at another precision is returned as it is (its manifest's `timings.precision` says which).

    Returns:
        The loaded model.
    """
    from dataclasses import replace

    from xner_core.models.registry import load_token_classifier
    from xner_core.numerics import resolve_device
    from xner_core.training.dispatch import run_setting

    def train_fn() -> tuple[Any, Any, dict[str, Any]]:
        import torch

        data = training_data(config, data_dir)
        model, tokenizer = load_token_classifier(config.model, cache=cache, seed=config.seed)
        teachers = None
        if config.setting == "distill":
            teachers = [train_model(teacher_config(config, lang), data_dir=data_dir, cache=cache,
                                    progress=progress, status=status, device=device, precision=precision).model
                        for lang, _ in data.source_train]
        result = run_setting(
            config.setting, model, tokenizer,
            source_train={lang: list(s) for lang, s in data.source_train},
            source_dev={lang: list(s) for lang, s in data.source_dev if s},
            target_train=list(data.target_train), target_dev=list(data.target_dev) or None,
            target_unlabeled=list(data.target_unlabeled), teachers=teachers,
            options=replace(config.options, lr=resolved_lr(config)),
            seed=config.seed, progress=progress, device=device, precision=precision,
        )
        extra = {
            "dev_scores": {"best_dev_f1": result.best_dev_f1, "best_epoch": result.best_epoch,
                           "history": [jsonable(h) for h in result.history]},
            "timings": {"train_s": round(result.train_seconds, 3),
                        "sentences_per_second": round(result.sentences_per_second or 0.0, 2),
                        "device": resolve_device(device).type, "precision": result.info.get("precision"),
                        # CPU weights depend on the intra-op thread count (numerics: determinism), so it is kept
                        "threads": torch.get_num_threads()},
            "data_sizes": {"source_train": {lang: len(s) for lang, s in data.source_train},
                           "target_train": len(data.target_train), "target_unlabeled": len(data.target_unlabeled)},
            "train_info": jsonable(result.info),
        }
        return result.model, tokenizer, extra

    model, tokenizer, manifest = model_cache(cache).get_or_train(config, train_fn, progress=status, device=device)
    model.eval()
    return LoadedModel(model, tokenizer, manifest, config)


def load_checkpoint_model(config: ExperimentConfig, device: Any = None) -> LoadedModel:
    """Load the existing checkpoint `config.model` as it is (its own head and labels), for `evaluate(...,
    loaded=...)` with `EvalOptions(checkpoint=True)`. Nothing is trained or cached.

    Args:
        config: the config naming the checkpoint (a directory or hub id) as its model and the side it plays
            (setting native or transfer, sources): that decides the "seen" data of the perturbations.
        device: torch device (auto when None).

    Returns:
        The loaded model with its label mapping; ConfigError when it cannot be loaded or its labels do not map.
    """
    from xner_core.models.checkpoint import load_checkpoint
    from xner_core.numerics import resolve_device

    if config.setting not in CHECKPOINT_ROLES:
        raise ConfigError(f"a checkpoint plays the native or transfer model, got {config.setting!r}; "
                          f"choose one of: {', '.join(CHECKPOINT_ROLES)}")
    model, tokenizer, mapping = load_checkpoint(config.model)
    model.to(resolve_device(device))
    manifest = {"checkpoint": config.model, "label_mapping": mapping.as_dict()}
    return LoadedModel(model, tokenizer, manifest, config, mapping)


def teacher_config(config: ExperimentConfig, source: str) -> ExperimentConfig:
    """The transfer config of one distillation teacher (same model, options and seed)."""
    return make_config(config.model, config.target, "transfer", sources=(source,), seed=config.seed,
                       data=config.data, options=config.options)


def load_model(config: ExperimentConfig, cache: str | os.PathLike[str] | None = None,
               device: Any = None) -> LoadedModel:
    """Load a cached model; raises CacheMiss (an XnerError) when it was never trained."""
    from xner_core.runs.modelcache import CacheMiss

    mc = model_cache(cache)
    if not mc.has(config):
        raise CacheMiss(f"model {config_hash(config)} is not cached; train it with `xner train` "
                        f"(same options) or pick a cached one (`xner models ls`)")
    model, tokenizer, manifest = mc.load(config, device=device)
    model.eval()
    return LoadedModel(model, tokenizer, manifest, config)


def trained_precision(manifest: Mapping[str, Any]) -> str | None:
    """The precision a cached model was trained at: its manifest's record, else (older manifests) fp32 for CPU
    training and bf16 for CUDA (the only autocast before precision became an option), None when unknown."""
    timings = manifest.get("timings") or {}
    if timings.get("precision") in ("bf16", "fp32"):
        return str(timings["precision"])
    return {"cpu": "fp32", "cuda": "bf16"}.get(str(timings.get("device")))


def trained_at(manifest: Mapping[str, Any]) -> dt.datetime | None:
    """When a cached model was trained: its manifest's `created`, as naive UTC (the results store's timestamps);
    None when the manifest records none or it is unreadable (a checkpoint evaluated as it is)."""
    raw = manifest.get("created")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        stamp = dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return stamp


def fill_trained_at(rows: Any, manifests: Iterable[Mapping[str, Any]]) -> Any:
    """`rows` (results schema) with `trained_at` filled from the model cache where a row lacks it (rows written
    before the column) and the cached model of its `config_hash` is the one that made it: trained no later than
    the row was written (`created_at`). A cached model trained after the row is a later training of the job (the
    cache keeps the newest), and the row keeps NULL.

    Args:
        rows: a results frame (`ResultsStore.frame`, `read_result_tables`).
        manifests: cache manifests (`ModelCache.manifests()`), each with its `hash` and `created`.

    Returns:
        A copy of `rows`; `trained_at` added where absent, as naive UTC timestamps.
    """
    import pandas as pd

    when = {str(m.get("hash")): t for m in manifests if (t := trained_at(m)) is not None}
    out = rows.copy()
    have = pd.to_datetime(out["trained_at"], errors="coerce") if "trained_at" in out.columns \
        else pd.Series(pd.NaT, index=out.index)
    written = pd.to_datetime(out["created_at"], errors="coerce") if "created_at" in out.columns \
        else pd.Series(pd.NaT, index=out.index)
    cached = pd.to_datetime(out["config_hash"].astype(str).map(when), errors="coerce")
    made_it = cached.notna() & written.notna() & (cached <= written)
    out["trained_at"] = have.where(have.notna(), cached.where(made_it)).astype("datetime64[us]")
    return out


def trained_steps(manifest: Mapping[str, Any]) -> int | None:
    """Optimiser steps a cached model took (the equal-compute measure): its own epochs' steps, plus TAPT's masked-LM
    steps; a distillation student's count is its own (its teachers are models of their own). None when the manifest
    records no training (a checkpoint evaluated as it is, or a manifest older than per-epoch steps)."""
    history = (manifest.get("dev_scores") or {}).get("history") or []
    raw = [h.get("steps") for h in history if isinstance(h, Mapping)]
    steps = [n for n in raw if isinstance(n, int)]
    if not steps or len(steps) != len(raw):
        return None
    tapt = (manifest.get("train_info") or {}).get("tapt_steps") or 0
    return sum(steps) + int(tapt)


def cached_configs(cache: str | os.PathLike[str] | None = None) -> list[tuple[ExperimentConfig, dict[str, Any]]]:
    """Valid cached models as (config, entry summary), newest first (for pickers in the CLI and dashboard)."""
    from xner_core.runs.config import config_from_dict

    out = []
    for entry in model_cache(cache).entries():
        if not entry.valid:
            continue
        try:
            cfg = config_from_dict(entry.config)
        except (ConfigError, KeyError, TypeError):
            continue
        out.append((cfg, {"hash": entry.hash, "size_bytes": entry.size_bytes, "created": entry.created}))
    out.sort(key=lambda item: str(item[1]["created"]), reverse=True)
    return out


def serves(config: ExperimentConfig, model: str, setting: str, source: str, target: str) -> bool:
    """Whether a config's model can act as the `setting` model of the pair source→target.

    A native model must be trained on `target`; a transfer model on `source` alone (its target is not part of
    its identity: the es model serves ca, an and ast). Other settings serve a target they were built for and
    whose sources include `source`.

    Args:
        config: a (cached) model's config.
        model: model name as the user gives it (aliases such as `mbert` match their hub id).
        setting: the wanted setting.
        source: the pair's source language.
        target: the pair's target language.

    Returns:
        True when the model fits.
    """
    from xner_core.models.registry import HUB_MODELS

    if HUB_MODELS.get(config.model, config.model) != HUB_MODELS.get(model, model) or config.setting != setting:
        return False
    if setting == "native":
        return config.target == target
    if setting == "transfer":
        return tuple(config.sources) == (source,)
    return config.target == target and source in config.sources


def find_cached(model: str, setting: str, source: str, target: str, prefer: ExperimentConfig | None = None,
                cache: str | os.PathLike[str] | None = None) -> list[tuple[ExperimentConfig, dict[str, Any]]]:
    """Cached models that can act as the `setting` model of source→target, the preferred one first.

    Args:
        model, setting, source, target: what is wanted (see `serves`).
        prefer: a config to put first when it is cached (e.g. the one the committed results were made with);
            the others follow newest first.
        cache: xner cache root.

    Returns:
        (config, entry summary) pairs as in `cached_configs`.
    """
    found = [(cfg, info) for cfg, info in cached_configs(cache) if serves(cfg, model, setting, source, target)]
    if prefer is not None:
        want = config_hash(prefer)
        found.sort(key=lambda item: item[1]["hash"] != want)  # stable: newest first otherwise
    return found
