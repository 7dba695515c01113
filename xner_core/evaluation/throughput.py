"""Stage 5b, evaluation: how long training a config's model will take here, from the training set size and the
throughput this machine measured when it trained models of the same kind (the model cache's manifests), else a
documented default. The dashboard shows it on its train buttons."""

from __future__ import annotations

import os
from typing import Any

from xner_core.evaluation.inputs import training_data
from xner_core.evaluation.modelstore import model_cache
from xner_core.runs.config import ExperimentConfig

# Training throughput (sentences/s) assumed before this machine has trained a model of that kind: measured on
# 2 CPU threads (bench_training: e5-small ~40), and about 20x that on one CUDA GPU.
DEFAULT_TRAIN_THROUGHPUT: dict[str, float] = {"tiny": 2000.0, "e5-small": 40.0}
UNKNOWN_MODEL_THROUGHPUT = 8.0
CUDA_SPEEDUP = 20.0


def measured_train_throughput(model: str, device: str, cache: str | os.PathLike[str] | None = None,
                              recent: int = 10) -> float | None:
    """Median training throughput of the `recent` newest cached models of `model` trained on `device`.

    Read from the cache manifests' `timings` (sentences per second of the optimisation loop). Manifests written
    before the device was recorded count as CPU runs when their torch build is CPU-only (`+cpu`).

    Args:
        model: the model name of the configs (`e5-small`, `tiny`, a hub id, ...).
        device: "cpu" or "cuda".
        cache: cache directory.
        recent: how many of the newest matching entries to use.

    Returns:
        Sentences per second, or None when no cached model of that kind has a measurement.
    """
    import statistics

    found: list[tuple[str, float]] = []
    for manifest in model_cache(cache).manifests():
        config = manifest.get("config")
        if not isinstance(config, dict) or config.get("model") != model:
            continue
        timings = manifest.get("timings") or {}
        sps = timings.get("sentences_per_second")
        dev = timings.get("device")
        if dev is None and "+cpu" in str((manifest.get("versions") or {}).get("torch", "")):
            dev = "cpu"
        if dev == device and isinstance(sps, (int, float)) and sps > 0:
            found.append((str(manifest.get("created") or ""), float(sps)))
    if not found:
        return None
    found.sort(reverse=True)
    return float(statistics.median(v for _, v in found[:recent]))


def estimate_train_seconds(config: ExperimentConfig, data_dir: str | os.PathLike[str] | None = None,
                           sentences_per_second: float | None = None,
                           cache: str | os.PathLike[str] | None = None, device: Any = None) -> float:
    """A rough training-time estimate from the training set size and a throughput.

    Args:
        config: the experiment config.
        data_dir: WikiANN directory.
        sentences_per_second: throughput to assume; by default what this machine measured when it trained
            models of the same kind (`measured_train_throughput`), else `DEFAULT_TRAIN_THROUGHPUT` (x
            `CUDA_SPEEDUP` on CUDA).
        cache: cache directory whose manifests hold the measurements.
        device: the training device (default: cuda when available, else cpu).

    Returns:
        Seconds.
    """
    data = training_data(config, data_dir)
    n = sum(len(s) for _, s in data.source_train) + len(data.target_train)
    if config.setting == "distill":
        n += len(data.target_unlabeled) * (1 + len(data.source_train))
    if sentences_per_second is None:
        from xner_core.numerics import device_type

        kind = device_type(device)
        sentences_per_second = measured_train_throughput(config.model, kind, cache)
        if sentences_per_second is None:
            sentences_per_second = DEFAULT_TRAIN_THROUGHPUT.get(config.model, UNKNOWN_MODEL_THROUGHPUT)
            if kind == "cuda":
                sentences_per_second *= CUDA_SPEEDUP
    return n * config.options.epochs / sentences_per_second
