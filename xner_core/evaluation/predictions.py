"""Stage 5b, evaluation: per-job prediction files (`<cache>/predictions/<job_id>.json.gz`): each scored sentence
with its gold and predicted tags and the precision they were predicted at, so a rerun reuses them and a reader
can see exactly what was scored."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.paths import cache_dir


def predictions_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """Where per-job predictions are kept (`<cache>/predictions/<job_id>.json.gz`)."""
    return cache_dir(cache) / "predictions"


def save_predictions(job_id: str, sentences: Sequence[Sentence], predictions: Sequence[Sequence[str]],
                     cache: str | os.PathLike[str] | None = None, dtype: str | None = None,
                     weights: str | None = None) -> Path:
    """Write a job's sentences, gold tags and predicted tags (gzip JSON, atomic); `dtype` records the precision
    they were predicted at (`eval_dtype`) and `weights` the model weights that predicted them (`weights_id`), so a
    later evaluation at another precision, or of a retrained model under the same config hash, does not reuse
    them."""
    d = predictions_dir(cache)
    d.mkdir(parents=True, exist_ok=True)
    payload = [{"id": s.id, "tokens": list(s.tokens), "gold": list(s.tags), "pred": list(p), "dtype": dtype,
                "weights": weights} for s, p in zip(sentences, predictions)]
    path = d / f"{job_id}.json.gz"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False)
    os.replace(tmp, path)
    return path


def load_predictions(job_id: str, cache: str | os.PathLike[str] | None = None) -> list[dict[str, Any]] | None:
    """Read a job's predictions, or None when absent or unreadable."""
    path = predictions_dir(cache) / f"{job_id}.json.gz"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def weights_id(manifest: Mapping[str, Any] | None) -> str | None:
    """The identity of a cached model's weights: the sha256 of its weights file from its manifest (None for a model
    without one, e.g. a checkpoint evaluated as it is). A model retrained under the same config hash (another
    thread count or library version can round differently) gets another id, so its predictions are made afresh."""
    entry = ((manifest or {}).get("files") or {}).get("model.safetensors")
    sha = entry.get("sha256") if isinstance(entry, Mapping) else None
    return str(sha) if sha else None
