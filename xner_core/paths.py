"""Where data and caches live (configuration, not a pipeline stage).

Resolution order for the WikiANN data directory: explicit argument, `XNER_DATA_DIR`, `<cache>/wikiann`.
The cache directory: explicit argument, `XNER_CACHE_DIR`, `$XDG_CACHE_HOME/xner`, `~/.cache/xner`.
Caches never live inside the repository.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the cache root (models, embeddings, results db), creating nothing.

    Args:
        explicit: a directory given by the caller (CLI option), wins over the environment.

    Returns:
        The resolved cache directory path.
    """
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("XNER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "xner"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the local WikiANN directory (`<dir>/<lang>/<split>[.gz]`).

    Args:
        explicit: a directory given by the caller (`--data-dir`), wins over `XNER_DATA_DIR`.

    Returns:
        The resolved path; it may not exist (then loaders fall back to the Hugging Face hub).
    """
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("XNER_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "wikiann"


def repo_data_dir() -> Path:
    """Return the data tables folder (language tables, reference numbers, committed results).

    It is the repository's top-level `data/`, which the wheel ships as the package `xner_core.data`; found with
    `importlib.resources`, so an installed package reads its own copy. A source checkout that was never
    installed falls back to the folder beside `xner_core/`.

    Returns:
        The folder's path.
    """
    try:
        return Path(str(resources.files("xner_core.data")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "data"


def committed_results_dir() -> Path:
    """The folder of committed result tables the dashboard shows (`XNER_COMMITTED_RESULTS`, default
    `data/results/` of this checkout)."""
    env = os.environ.get("XNER_COMMITTED_RESULTS")
    if env:
        return Path(env).expanduser()
    return repo_data_dir() / "results"


def write_json_cache(path: Path, data: Any) -> bool:
    """Write a cache file as JSON atomically (temp file + rename, so concurrent readers never see half a file).

    Best effort: a read-only or full cache only costs a recomputation next time, so OSError is swallowed.

    Args:
        path: the file to (re)write; its folder is created.
        data: JSON-serialisable data.

    Returns:
        Whether the file was written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
        return True
    except OSError:
        return False
