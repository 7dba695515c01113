"""Runs, model cache: one cache entry. What an entry directory holds (`manifest.json` and the files it
lists; a LoRA model's adapter beside its merged weights, `_save_adapter`), how it is checked (`inspect_entry`:
the cheap size check, or every sha256), how it is listed (`CacheEntry`), and the file helpers the cache writes
with (sha256, walk, fsync). The cache itself, its layout, locks and writes, is `modelcache.ModelCache`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from xner_core.errors import XnerError
from xner_core.runs.config import ExperimentConfig, canonical_dict, config_from_dict, config_hash
from xner_core.training.lora import ADAPTER_CONFIG, ADAPTER_DIR, ADAPTER_WEIGHTS, adapter_of

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
# Files that could hold pickles: their presence makes an entry invalid (never loaded, never written).
PICKLE_SUFFIXES: frozenset[str] = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy"})


@dataclass(frozen=True)
class CacheEntry:
    """One entry as listed by `ModelCache.entries` (`config` and `created` are None without a readable manifest)."""

    hash: str
    config: Mapping[str, Any] | None
    size_bytes: int
    created: str | None  # ISO 8601 UTC
    valid: bool
    problem: str | None  # why it is invalid
    path: Path


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a saved model (recorded in every manifest).

    Returns:
        {"python": ..., "torch": ..., "transformers": ..., "tokenizers": ..., "safetensors": ...}; a missing
        package maps to "missing".
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "tokenizers", "safetensors"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _walk(entry: Path) -> dict[str, Path]:
    # Every non-directory below the entry, keyed by its posix path relative to it (symlinks included, so
    # that they are reported rather than followed).
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(entry):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            out[(base / name).relative_to(entry).as_posix()] = base / name
    return out


def _fsync_path(path: Path, directory: bool = False) -> None:
    if directory and os.name == "nt":
        return  # Windows cannot open a directory for fsync; its renames are journaled anyway
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def inspect_entry(entry: Path, expected_hash: str, deep: bool) -> tuple[dict[str, Any] | None, str | None]:
    """Check one entry directory.

    Args:
        entry: the entry directory.
        expected_hash: the hash the entry must hold (its directory name).
        deep: also compare every file's sha256 with the manifest (reads all weights).

    Returns:
        (manifest or None, problem or None); the entry is valid when problem is None.
    """
    if not entry.is_dir():
        return None, "no such entry"
    files_on_disk = _walk(entry)
    pickled = sorted(name for name in files_on_disk if Path(name).suffix.lower() in PICKLE_SUFFIXES)
    if pickled:
        return None, f"pickled file(s) {', '.join(pickled)} present; only safetensors weights are loaded"
    links = sorted(name for name, p in files_on_disk.items() if p.is_symlink())
    if links:
        return None, f"unexpected symlink(s) {', '.join(links)}"
    if MANIFEST not in files_on_disk:
        return None, "no manifest.json (a half-written or half-deleted entry)"
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"manifest.json is unreadable ({exc.__class__.__name__})"
    if not isinstance(manifest, dict):
        return None, "manifest.json is not a JSON object"
    if manifest.get("format") != MANIFEST_FORMAT:
        return manifest, f"manifest format {manifest.get('format')!r} is not {MANIFEST_FORMAT}"
    if manifest.get("hash") != expected_hash:
        return manifest, f"manifest hash {manifest.get('hash')!r} does not match the entry name {expected_hash!r}"
    try:
        rehashed = config_hash(config_from_dict(manifest.get("config"), check=False))  # type: ignore[arg-type]
    except (XnerError, TypeError, KeyError, AttributeError) as exc:
        return manifest, f"manifest config is unreadable ({exc})"
    if rehashed != expected_hash:
        return manifest, f"manifest config hashes to {rehashed}, not {expected_hash}"
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        return manifest, "manifest lists no files"
    if not any(name.endswith(".safetensors") for name in listed):
        return manifest, "no safetensors weights listed"
    on_disk = set(files_on_disk) - {MANIFEST}
    missing, unlisted = sorted(set(listed) - on_disk), sorted(on_disk - set(listed))
    if missing:
        return manifest, f"missing file(s) {', '.join(missing)}"
    if unlisted:
        return manifest, f"file(s) not in the manifest: {', '.join(unlisted)}"
    adapter = manifest.get("adapter")
    if adapter is not None:
        named = adapter.get("files") if isinstance(adapter, dict) else None
        if not isinstance(named, list) or not named or not set(named) <= set(listed):
            return manifest, "the manifest's adapter section names files the entry does not list"
    for name, meta in sorted(listed.items()):
        if not isinstance(meta, dict) or "size" not in meta or "sha256" not in meta:
            return manifest, f"manifest entry for {name} lacks size/sha256"
        path = files_on_disk[name]
        if path.stat().st_size != meta["size"]:
            return manifest, f"{name} has {path.stat().st_size} bytes, the manifest says {meta['size']} (truncated?)"
        if deep and _sha256(path) != meta["sha256"]:
            return manifest, f"{name} does not match its sha256 in the manifest (modified after saving)"
    return manifest, None


def _save_adapter(config: ExperimentConfig, model: Any, entry: Path) -> dict[str, Any] | None:
    """Write the LoRA adapter a merged model carries (`training.lora.adapter_of`) into `entry/adapter/`.

    Returns:
        The manifest's `adapter` section, or None for a model trained without an adapter.
    """
    adapter = adapter_of(model)
    if adapter is None:
        return None
    base = str(canonical_dict(config)["model"])
    adapter.save(entry / ADAPTER_DIR, base_model=base)
    size = (entry / ADAPTER_DIR / ADAPTER_WEIGHTS).stat().st_size
    return {**adapter.summary(), "merged": True, "dir": ADAPTER_DIR, "base_model": base,
            "files": [f"{ADAPTER_DIR}/{ADAPTER_WEIGHTS}", f"{ADAPTER_DIR}/{ADAPTER_CONFIG}"], "adapter_bytes": size,
            "note": "the weights of this entry are the base model's with the adapter merged in and the head "
                    f"trained; {ADAPTER_DIR}/ holds the adapter alone (peft format) to apply to {base}"}


def _entry_size(entry: Path) -> int:
    total = 0
    for path in _walk(entry).values():
        try:
            total += path.lstat().st_size
        except OSError:
            pass  # deleted while walking
    return total
