"""Stage 3a, model sources: Q4_0, the 4-bit block quantization of the bundled e5-small file (ggml's layout).

A block holds 32 weights as an fp16 scale d and 16 bytes of nibbles; weight = (q - 8) * d.
"""

from __future__ import annotations

import numpy as np

QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles


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
