"""numerics: precision resolution, bf16 autocast in training and inference, deterministic training across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xner_core import numerics
from xner_core.errors import ConfigError
from xner_core.inference.predict import predict_tags
from xner_core.models.registry import build_tiny, build_tiny_tokenizer, tiny_vocabulary
from xner_core.training.finetune import fine_tune

ROOT = Path(__file__).resolve().parents[1]


def test_explicit_precisions_pass_through_and_unknown_ones_name_the_choices():
    assert numerics.resolve_precision("bf16", "cpu") == "bf16"
    assert numerics.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ConfigError, match="auto, bf16, fp32"):
        numerics.resolve_precision("fp16", "cpu")


def test_auto_follows_the_cpu_flags_unless_the_environment_pins_it(monkeypatch, tmp_path):
    monkeypatch.delenv("XNER_PRECISION", raising=False)
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: True)
    assert numerics.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: False)
    assert numerics.resolve_precision("auto", "cpu") == "fp32"
    assert numerics.resolve_precision(None, "cpu") == "fp32"
    monkeypatch.setenv("XNER_PRECISION", "bf16")
    assert numerics.resolve_precision("auto", "cpu") == "bf16"
    assert numerics.resolve_precision("fp32", "cpu") == "fp32"  # explicit beats the environment
    monkeypatch.setenv("XNER_PRECISION", "half")
    with pytest.raises(ConfigError, match="XNER_PRECISION"):
        numerics.resolve_precision("auto", "cpu")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    numerics.cpu_has_bf16.cache_clear()
    with_flag = tmp_path / "a"
    with_flag.write_text("processor: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n")
    without = tmp_path / "b"
    without.write_text("processor: 0\nflags\t\t: fpu sse2 avx2\n")
    assert numerics.cpu_has_bf16(str(with_flag)) is True
    assert numerics.cpu_has_bf16(str(without)) is False
    assert numerics.cpu_has_bf16(str(tmp_path / "missing")) is False
    numerics.cpu_has_bf16.cache_clear()


def test_autocast_runs_matmuls_in_bf16_only_when_asked():
    a = torch.randn(4, 8)
    with numerics.autocast("cpu", "bf16"):
        assert (a @ a.T).dtype == torch.bfloat16
    with numerics.autocast("cpu", "fp32"):
        assert (a @ a.T).dtype == torch.float32
    with pytest.raises(ConfigError, match="resolve"):
        numerics.autocast("cpu", "auto")


def test_deterministic_restores_the_previous_mode():
    before = torch.are_deterministic_algorithms_enabled()
    with numerics.deterministic():
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_device_type_does_not_need_the_device():
    assert numerics.device_type("cuda:1") == "cuda"
    assert numerics.device_type("cpu") == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        numerics.device_type("quantum")


def _train_tiny(precision: str):
    model, tok = build_tiny(seed=3)
    sents = [s for s in _sentences()]
    res = fine_tune(model, tok, sents, epochs=2, lr=3e-3, batch_size=4, seed=3, precision=precision)
    return model, tok, res


def _sentences():
    from sentences import make_sentence

    rows = [("Paris est la capitale de la France .", "B-LOC O O O O O B-LOC O"),
            ("John Smith works for the United Nations in New York .", "B-PER I-PER O O O B-ORG I-ORG O B-LOC I-LOC O"),
            ("Madrid es la capital de España .", "B-LOC O O O O B-LOC O"),
            ("Berlin ist die Hauptstadt von Deutschland .", "B-LOC O O O O B-LOC O")] * 4
    return [make_sentence(t, g, "xx", i) for i, (t, g) in enumerate(rows)]


def test_bf16_training_is_recorded_and_learns_like_fp32():
    _, _, fp = _train_tiny("fp32")
    model, tok, bf = _train_tiny("bf16")
    assert fp.info["precision"] == "fp32" and bf.info["precision"] == "bf16"
    assert bf.history[-1].loss < bf.history[0].loss  # it trains
    assert bf.history[-1].loss == pytest.approx(fp.history[-1].loss, rel=0.05)  # rounding, not another recipe
    # bf16 inference of the same weights tags (almost) every word as fp32 does
    sents = _sentences()
    a = predict_tags(model, tok, sents, precision="bf16")
    b = predict_tags(model, tok, sents, precision="fp32")
    words = sum(len(s) for s in sents)
    assert sum(x == y for p, q in zip(a, b) for x, y in zip(p, q)) / words >= 0.95


def test_tiny_vocabulary_is_sorted_data_not_a_trainer_run():
    vocab = tiny_vocabulary(["b a a", "c a"], vocab_size=100)
    assert list(vocab)[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert list(vocab)[5:] == ["a", "b", "c", "##a", "##b", "##c"]  # chars first; whole words already there
    assert list(tiny_vocabulary(["xy xy zz"], vocab_size=100))[-2:] == ["xy", "zz"]  # by count, then alphabet
    small = tiny_vocabulary(["abc abd"], vocab_size=3)
    assert "abc" not in small and "##d" in small  # characters always fit, words only while there is room
    tok = build_tiny_tokenizer(["Paris est belle"])
    assert tok.convert_ids_to_tokens(tok("Paris")["input_ids"]) == ["[CLS]", "Paris", "[SEP]"]


_TRAIN_SCRIPT = """
import hashlib, json, sys
from xner_core.runs.config import make_config
from xner_core.evaluation.modelstore import model_cache, train_model
config = make_config(sys.argv[1], "an", "transfer", sources=("es",), max_train_sentences=int(sys.argv[2]),
                     max_dev_sentences=20, epochs=1, seed=1, batch_size=16)
out = {}
for precision in sys.argv[5].split(","):
    cache = f"{sys.argv[4]}/{precision}"
    train_model(config, data_dir=sys.argv[3], cache=cache, precision=precision)
    path = model_cache(cache).path(config)
    out[precision] = {"weights": hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest(),
                      "tokenizer": hashlib.sha256((path / "tokenizer.json").read_bytes()).hexdigest(),
                      "threads": model_cache(cache).manifest(config)["timings"]["threads"]}
print(json.dumps(out))
"""


def _train_in_process(model: str, n: int, wikiann_dir: Path, cache: Path, hash_seed: str, precisions: str,
                      threads: int = 2) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, model, str(n), str(wikiann_dir), str(cache),
                          precisions], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.data
def test_same_config_and_seed_give_identical_weights_in_separate_processes(wikiann_dir, tmp_path):
    # Different hash seeds: no set or dict order may reach the weights; two threads: the kernels' reductions.
    runs = [_train_in_process("tiny", 200, wikiann_dir, tmp_path / f"c{i}", str(i), "fp32,bf16") for i in (1, 2)]
    assert runs[0] == runs[1]
    assert runs[0]["bf16"]["weights"] != runs[0]["fp32"]["weights"]  # the precision really changed the arithmetic
    assert runs[0]["fp32"]["threads"] == 2  # the manifest says which thread count these weights need


@pytest.mark.data
def test_the_manifest_records_the_thread_count_the_weights_were_trained_with(wikiann_dir, tmp_path):
    # CPU weights depend on the intra-op thread count, so a retrained entry that differs can be told apart.
    one = _train_in_process("tiny", 50, wikiann_dir, tmp_path / "one", "0", "fp32", threads=1)
    assert one["fp32"]["threads"] == 1


@pytest.mark.slow
@pytest.mark.data
def test_e5_small_training_is_identical_across_processes(wikiann_dir, tmp_path):
    runs = [_train_in_process("e5-small", 64, wikiann_dir, tmp_path / f"c{i}", str(i), "bf16") for i in (1, 2)]
    assert runs[0] == runs[1]
