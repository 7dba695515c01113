"""Stage 5b, evaluation: per-job prediction files (`<cache>/predictions/<job_id>.json.gz`): each scored sentence
with its gold and predicted tags and the precision they were predicted at, so a rerun reuses them and a reader
can see exactly what was scored."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.paths import cache_dir


def predictions_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """Where per-job predictions are kept (`<cache>/predictions/<job_id>.json.gz`)."""
    return cache_dir(cache) / "predictions"


def save_predictions(job_id: str, sentences: Sequence[Sentence], predictions: Sequence[Sequence[str]],
                     cache: str | os.PathLike[str] | None = None, dtype: str | None = None) -> Path:
    """Write a job's sentences, gold tags and predicted tags (gzip JSON, atomic); `dtype` records the precision
    they were predicted at (`eval_dtype`), so a later evaluation at another precision does not reuse them."""
    d = predictions_dir(cache)
    d.mkdir(parents=True, exist_ok=True)
    payload = [{"id": s.id, "tokens": list(s.tokens), "gold": list(s.tags), "pred": list(p), "dtype": dtype}
               for s, p in zip(sentences, predictions)]
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
