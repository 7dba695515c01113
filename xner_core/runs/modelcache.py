"""Runs, model cache: fine-tuned models on disk, content-addressed by the experiment config hash.

Layout under the root (default `<cache_dir>/models`):

    <hash>/                 one entry: save_pretrained weights (safetensors only), tokenizer files, manifest.json,
                            and for a LoRA run `adapter/` (adapter_model.safetensors + adapter_config.json)
    <hash>.lock             the lock held while an entry is checked, trained and saved
    .tmp-<hash>-<rand>/     an entry being written (left behind only by a crash; `gc` removes it)
    .trash-<hash>-<rand>/   an entry being deleted

An entry is written into a temp dir, every file is fsynced, `manifest.json` (the config, its hash, the sha256
and size of every other file, dev scores, timings, library versions, creation time) is written last, and the
dir is moved into place with one `os.replace`, so a reader never sees a half-written entry under `<hash>/`.
Validity has two levels: `has`/`entries` check that the manifest matches the hash and every listed file exists
with its size (cheap; catches truncation and half-deleted entries); `load` also checks every sha256 before any
weight is read (catches tampering and bit rot). Pickled weight files (`*.bin`, `*.pt`, ...) make an entry
invalid: weights are only ever read with `use_safetensors=True`. What an entry holds and how it is checked
(`inspect_entry`, `CacheEntry`, the manifest constants) is in `cacheentry.py`.

A model trained with LoRA (`adapter = "lora"`) is saved merged: the entry's weights are the base weights with the
adapters folded in and the trained head, so every reader loads it as any other model. The adapter itself is kept
beside them in `adapter/` (peft's format, the few MB to share) and the manifest's `adapter` section says so
(`merged: true`, its directory, rank, targets, trainable parameters, file size).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from xner_core import __version__
from xner_core.errors import ConfigError, XnerError
from xner_core.paths import cache_dir
from xner_core.runs.cacheentry import (
    MANIFEST,
    MANIFEST_FORMAT,
    PICKLE_SUFFIXES,
    CacheEntry,
    _entry_size,
    _fsync_path,
    _save_adapter,
    _sha256,
    _walk,
    inspect_entry,
    library_versions,
)
from xner_core.runs.config import ExperimentConfig, config_hash, config_label, config_to_dict

log = logging.getLogger(__name__)

_RESERVED_KEYS: frozenset[str] = frozenset({"format", "hash", "config", "created", "xner_version", "versions",
                                            "files", "model_class", "adapter"})
_HASH_RE = re.compile(r"^[0-9a-f]{16}$")
_TMP, _TRASH = ".tmp-", ".trash-"
_REMOVE_LOCK_TIMEOUT_S = 30.0


class CacheCorrupt(XnerError):
    """A cache entry is half-written, tampered with or holds files it must not (it is rebuilt, never loaded)."""


class CacheMiss(XnerError):
    """No cache entry exists for a config."""


def _model_class(name: Any) -> Any:
    # The class recorded at save time, when transformers has it; otherwise the token-classification auto class.
    import transformers
    from transformers import AutoModelForTokenClassification, PreTrainedModel

    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, PreTrainedModel):
        return cls
    return AutoModelForTokenClassification


class ModelCache:
    """Fine-tuned models on disk, keyed by `config_hash` (see the module docstring for the layout)."""

    def __init__(self, root: Path | str | None = None) -> None:
        """Args:
            root: the cache directory; default `paths.cache_dir() / "models"`. Nothing is created until a save.
        """
        self.root = Path(root).expanduser() if root is not None else cache_dir() / "models"

    # -- paths and locks -------------------------------------------------------------------------------------

    def path(self, config: ExperimentConfig) -> Path:
        """The entry directory of a config (it may not exist).

        Args:
            config: the experiment config.

        Returns:
            `<root>/<config_hash>`.
        """
        return self.root / config_hash(config)

    def _lock(self, digest: str, timeout: float = -1, blocking: bool = True) -> Any:
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(self.root / f"{digest}.lock", timeout=timeout, blocking=blocking)

    @contextmanager
    def _try_lock(self, digest: str) -> Iterator[bool]:
        # Take the entry's lock only if nobody holds it: gc never waits for (or disturbs) a running training.
        from filelock import Timeout

        lock = self._lock(digest, blocking=False)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def _entry_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if _HASH_RE.match(p.name) and p.is_dir() and not p.is_symlink())

    def _delete(self, entry: Path) -> None:
        # Rename first so the entry disappears at once; a crash mid-rmtree leaves only a .trash dir for gc.
        trash = self.root / f"{_TRASH}{entry.name}-{uuid.uuid4().hex[:8]}"
        os.replace(entry, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- queries ----------------------------------------------------------------------------------------------

    def has(self, config: ExperimentConfig) -> bool:
        """Whether a valid entry exists (manifest matches, every file present with its size; the sha256
        check is left to `load`).

        Args:
            config: the experiment config.

        Returns:
            True for a valid entry; False for none or an invalid one.
        """
        digest = config_hash(config)
        return inspect_entry(self.root / digest, digest, deep=False)[1] is None

    def manifest(self, config: ExperimentConfig) -> dict[str, Any]:
        """The manifest of a valid entry (cheap check only).

        Args:
            config: the experiment config.

        Returns:
            The manifest dict; raises CacheMiss or CacheCorrupt.
        """
        digest = config_hash(config)
        entry = self.root / digest
        if not entry.exists():
            raise CacheMiss(f"no cached model for config {digest} under {self.root}; train it first")
        manifest, problem = inspect_entry(entry, digest, deep=False)
        if problem is not None:
            raise CacheCorrupt(f"cached model {digest} at {entry} is invalid: {problem}")
        assert manifest is not None
        return manifest

    def load(self, config: ExperimentConfig, device: Any = None) -> tuple[Any, Any, dict[str, Any]]:
        """Load a cached model after verifying every file's sha256.

        Args:
            config: the experiment config.
            device: a torch device (or name) to move the model to; None leaves it on the CPU.

        Returns:
            (model in eval mode, tokenizer, manifest). Raises CacheMiss when there is no entry and CacheCorrupt
            when it is half-written, modified, or holds pickled files.
        """
        digest = config_hash(config)
        entry = self.root / digest
        if not entry.exists():
            raise CacheMiss(f"no cached model for config {digest} under {self.root}; train it first")
        manifest, problem = inspect_entry(entry, digest, deep=True)
        if problem is not None:
            raise CacheCorrupt(f"cached model {digest} at {entry} is invalid: {problem}; remove it "
                               f"(ModelCache.remove / `xner models gc`) or retrain to rebuild it")
        assert manifest is not None
        from transformers import AutoTokenizer

        cls = _model_class(manifest.get("model_class"))
        # local_files_only: an entry is complete on disk, never a hub lookup; use_safetensors: never unpickle.
        model = cls.from_pretrained(entry, use_safetensors=True, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(entry, local_files_only=True)
        model.eval()
        if device is not None:
            model.to(device)
        return model, tokenizer, manifest

    def manifests(self) -> list[dict[str, Any]]:
        """The manifests of the valid entries, sorted by hash (the same checks as `entries`, no sha256s, no sizes).

        Returns:
            One manifest dict per valid `<hash>/` directory.
        """
        out = []
        for entry in self._entry_dirs():
            manifest, problem = inspect_entry(entry, entry.name, deep=False)
            if problem is None and manifest is not None:
                out.append(manifest)
        return out

    def entries(self, verify: bool = False) -> list[CacheEntry]:
        """List every entry, valid or not, sorted by hash.

        Args:
            verify: also check sha256s (reads every weight file).

        Returns:
            One CacheEntry per `<hash>/` directory.
        """
        out = []
        for entry in self._entry_dirs():
            manifest, problem = inspect_entry(entry, entry.name, deep=verify)
            manifest = manifest or {}
            config = manifest.get("config")
            created = manifest.get("created")
            out.append(CacheEntry(
                hash=entry.name, config=config if isinstance(config, dict) else None,
                size_bytes=_entry_size(entry), created=created if isinstance(created, str) else None,
                valid=problem is None, problem=problem, path=entry,
            ))
        return out

    # -- writes -----------------------------------------------------------------------------------------------

    def save(self, config: ExperimentConfig, model: Any, tokenizer: Any,
             extra_manifest: Mapping[str, Any] | None = None) -> Path:
        """Save a trained model atomically (holds the entry's lock while writing).

        Args:
            config: the experiment config the model was trained with.
            model: a transformers PreTrainedModel.
            tokenizer: its tokenizer.
            extra_manifest: JSON-ready fields merged into the manifest, e.g. `dev_scores`, `timings`
                (reserved keys: format, hash, config, created, xner_version, versions, files, model_class,
                adapter).

        Returns:
            The entry path. An existing valid entry is kept as it is (the new model is discarded); an
            invalid one is replaced.
        """
        digest = config_hash(config)
        with self._lock(digest):
            return self._save_locked(config, digest, model, tokenizer, dict(extra_manifest or {}))

    def _save_locked(self, config: ExperimentConfig, digest: str, model: Any, tokenizer: Any,
                     extra: dict[str, Any]) -> Path:
        clash = sorted(set(extra) & _RESERVED_KEYS)
        if clash:
            raise ConfigError(f"extra manifest key(s) {', '.join(clash)} are reserved; "
                              f"reserved: {', '.join(sorted(_RESERVED_KEYS))}")
        dest = self.root / digest
        if dest.exists() and inspect_entry(dest, digest, deep=True)[1] is None:
            return dest
        started = time.perf_counter()
        tmp = self.root / f"{_TMP}{digest}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            model.save_pretrained(tmp)  # transformers >= 5 writes safetensors only
            tokenizer.save_pretrained(tmp)
            adapter = _save_adapter(config, model, tmp)
            written = _walk(tmp)
            pickled = sorted(n for n in written if Path(n).suffix.lower() in PICKLE_SUFFIXES)
            if pickled:
                raise XnerError(f"saving wrote pickled file(s) {', '.join(pickled)}; the cache keeps safetensors only")
            if not any(n.endswith(".safetensors") for n in written):
                raise XnerError(f"save_pretrained wrote no safetensors weights into {tmp}; cannot cache this model")
            for path in written.values():
                _fsync_path(path)
            timings = dict(extra.pop("timings", None) or {})
            timings["save_s"] = round(time.perf_counter() - started, 3)
            manifest = {
                "format": MANIFEST_FORMAT,
                "hash": digest,
                "config": config_to_dict(config),
                "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "xner_version": __version__,
                "versions": library_versions(),
                "model_class": type(model).__name__,
                "files": {name: {"sha256": _sha256(p), "size": p.stat().st_size}
                          for name, p in sorted(written.items())},
                "dev_scores": extra.pop("dev_scores", None) or {},
                "timings": timings,
                **({"adapter": adapter} if adapter else {}),
                **extra,
            }
            try:
                text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"extra manifest fields must be JSON-ready (finite numbers, strings, lists, "
                                  f"dicts): {exc}") from exc
            self._swap_in(tmp, dest, text)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def _swap_in(self, tmp: Path, dest: Path, manifest_text: str) -> None:
        """Finish an entry written into `tmp`: its manifest last, everything fsynced, then one `os.replace` onto
        `dest` (an invalid entry there is moved aside first), so a reader sees the whole entry or none."""
        with (tmp / MANIFEST).open("w", encoding="utf-8") as fh:
            fh.write(manifest_text)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_path(tmp, directory=True)
        if dest.exists():  # invalid (checked by the caller): move it aside, then swap the new entry in
            self._delete(dest)
        os.replace(tmp, dest)
        _fsync_path(self.root, directory=True)

    def get_or_train(
        self,
        config: ExperimentConfig,
        train_fn: Callable[[], tuple[Any, Any, Mapping[str, Any] | None]],
        progress: Callable[[str], None] | None = None,
        device: Any = None,
    ) -> tuple[Any, Any, dict[str, Any]]:
        """Load the config's model from the cache, or train and save it; one process at a time per config.

        The entry's file lock is held across check, training and save, so a second process asking for the
        same config waits and then loads what the first saved. An invalid entry is rebuilt.

        Args:
            config: the experiment config.
            train_fn: trains and returns (model, tokenizer, extra manifest fields such as dev_scores, timings).
            progress: called with short status messages (waiting, cache hit, rebuilding, training, saved).
            device: device for a model loaded from the cache.

        Returns:
            (model, tokenizer, manifest). A freshly trained model is returned as trained (not reloaded).
        """
        from filelock import Timeout

        def say(message: str) -> None:
            log.info("%s (%s)", message, config_label(config))
            if progress is not None:
                progress(message)

        digest = config_hash(config)
        lock = self._lock(digest)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            say(f"waiting for another process working on {digest}")
            lock.acquire()
        try:
            entry = self.root / digest
            if entry.exists():
                try:
                    model, tokenizer, manifest = self.load(config, device=device)
                    say(f"cache hit {digest}")
                    return model, tokenizer, manifest
                except CacheCorrupt as exc:
                    say(f"rebuilding: {exc}")
            say(f"training {digest}")
            started = time.perf_counter()
            model, tokenizer, extra = train_fn()
            extra = dict(extra or {})
            timings = dict(extra.get("timings") or {})
            timings.setdefault("train_s", round(time.perf_counter() - started, 3))
            extra["timings"] = timings
            path = self._save_locked(config, digest, model, tokenizer, extra)
            say(f"saved {digest}")
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            return model, tokenizer, manifest
        finally:
            lock.release()

    def resolve(self, hash_prefix: str) -> str:
        """The full hash of the one entry whose hash starts with a prefix.

        Args:
            hash_prefix: the hash or a prefix of it (hex).

        Returns:
            The entry's full hash. Raises ConfigError for no match or an ambiguous prefix (listing the matches).
        """
        prefix = (hash_prefix or "").strip().lower()
        if not re.fullmatch(r"[0-9a-f]{1,16}", prefix):
            raise ConfigError(f"invalid model hash {hash_prefix!r}; give 1-16 hex digits of a cached model's hash")
        names = [p.name for p in self._entry_dirs()]
        matches = [n for n in names if n.startswith(prefix)]
        if not matches:
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "") if names else "none"
            raise ConfigError(f"no cached model matches {hash_prefix!r}; cached: {shown}")
        if len(matches) > 1:
            raise ConfigError(f"hash prefix {hash_prefix!r} is ambiguous; it matches: {', '.join(matches)}; "
                              f"give more digits")
        return matches[0]

    def add(self, manifest: Mapping[str, Any], source: Path) -> tuple[Path, bool]:
        """File an entry whose files lie in another directory (an import), atomically as `save` writes.

        Args:
            manifest: the entry's manifest (its `hash`, `config` and `files` checked by the caller).
            source: the directory holding every file the manifest lists.

        Returns:
            (entry path, added); added is False when a valid entry already exists (it is kept as it is). Raises
            XnerError when a copied file does not match its sha256 (the source changed while being copied).
        """
        digest = str(manifest["hash"])
        if not _HASH_RE.match(digest):
            raise ConfigError(f"manifest hash {digest!r} is not 16 hex digits")
        with self._lock(digest):
            dest = self.root / digest
            if dest.exists() and inspect_entry(dest, digest, deep=True)[1] is None:
                return dest, False
            tmp = self.root / f"{_TMP}{digest}-{uuid.uuid4().hex[:8]}"
            try:
                for name, meta in sorted(dict(manifest["files"]).items()):
                    target = tmp / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source / name, target)
                    if _sha256(target) != meta["sha256"]:
                        raise XnerError(f"{source / name} changed while it was copied (sha256 mismatch)")
                    _fsync_path(target)
                self._swap_in(tmp, dest, json.dumps(dict(manifest), indent=2, sort_keys=True, allow_nan=False))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return dest, True

    def remove(self, hash_prefix: str) -> str:
        """Delete one entry by hash or unique hash prefix.

        Args:
            hash_prefix: the hash or a prefix of it (hex).

        Returns:
            The removed entry's full hash. Raises ConfigError for no match or an ambiguous prefix (listing
            the matches), XnerError when another process holds the entry for more than 30 s.
        """
        from filelock import Timeout

        digest = self.resolve(hash_prefix)
        try:
            with self._lock(digest, timeout=_REMOVE_LOCK_TIMEOUT_S):
                if (self.root / digest).exists():
                    self._delete(self.root / digest)
        except Timeout as exc:
            raise XnerError(f"cached model {digest} is in use by another process (training or saving); "
                            f"try again later") from exc
        return digest

    def gc(self, keep: set[str] | None = None, max_bytes: int | None = None, verify: bool = False) -> list[str]:
        """Clean the cache: invalid entries, stale temp/trash dirs, unused lock files, then the oldest valid
        entries until the total size is at most `max_bytes`. Anything locked by another process is skipped.

        Args:
            keep: full hashes never removed for size (invalid entries are removed regardless).
            max_bytes: size budget for valid entries; None removes nothing for size.
            verify: check sha256s too when deciding validity (reads every weight file).

        Returns:
            The names removed under the root: entry hashes, temp/trash dir names and the lock files that were
            there before the call.
        """
        from filelock import FileLock, Timeout

        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0):
            raise ConfigError(f"max_bytes={max_bytes!r} is invalid; allowed: an integer >= 0 or None")
        if not self.root.is_dir():
            return []
        keep = set(keep or ())
        removed: list[str] = []
        # gc's own probing creates lock files; it removes them again but reports only those it found.
        found_locks = {p.name for p in self.root.glob("*.lock")}
        for entry in self._entry_dirs():
            with self._try_lock(entry.name) as held:
                if held and inspect_entry(entry, entry.name, deep=verify)[1] is not None:
                    self._delete(entry)
                    removed.append(entry.name)
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(_TRASH):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
            elif path.name.startswith(_TMP):
                # A temp dir is live only while its writer holds the entry lock; if we can take it, it is stale.
                digest = path.name[len(_TMP):len(_TMP) + 16]
                with self._try_lock(digest) as held:
                    if held:
                        shutil.rmtree(path, ignore_errors=True)
                        removed.append(path.name)
        if max_bytes is not None:
            valid = [e for e in self.entries() if e.valid]
            total = sum(e.size_bytes for e in valid)
            for e in sorted(valid, key=lambda e: (e.created or "", e.hash)):
                if total <= max_bytes:
                    break
                if e.hash in keep:
                    continue
                with self._try_lock(e.hash) as held:
                    if held:
                        self._delete(e.path)
                        total -= e.size_bytes
                        removed.append(e.hash)
        for lock_path in sorted(self.root.glob("*.lock")):
            # Unlink while holding it: a waiter that opened the old file sees it unlinked and retries (filelock
            # checks st_nlink after locking), so mutual exclusion holds.
            lock = FileLock(lock_path, blocking=False)
            try:
                lock.acquire()
            except Timeout:
                continue
            try:
                lock_path.unlink(missing_ok=True)
                if lock_path.name in found_locks:
                    removed.append(lock_path.name)
            finally:
                lock.release()
        return removed
