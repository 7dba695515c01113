"""Tests for xner_core.runs.modelcache: atomic saves, checksum verification, the per-config lock, listing and gc."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from xner_core.errors import ConfigError, XnerError
from xner_core.runs.config import config_hash, config_to_dict, make_config
from xner_core.runs.modelcache import CacheCorrupt, CacheMiss, ModelCache

REPO = Path(__file__).resolve().parents[1]


def cfg(seed: int = 0):
    return make_config("tiny", "ca", "transfer", sources="es", seed=seed)


@pytest.fixture
def cache(tmp_path: Path) -> ModelCache:
    return ModelCache(tmp_path / "models")


def logits(model: Any, tokenizer: Any) -> torch.Tensor:
    enc = tokenizer([["Paris", "est", "la", "capitale", "de", "la", "France", "."]], is_split_into_words=True,
                    return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**enc).logits


def visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_default_root_follows_xner_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path / "c"))
    c = ModelCache()
    assert c.root == tmp_path / "c" / "models"
    assert c.path(cfg()) == tmp_path / "c" / "models" / config_hash(cfg())
    assert not c.root.exists()  # nothing is created until a save


def test_save_load_round_trip(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    path = cache.save(cfg(), model, tokenizer, {"dev_scores": {"f1": 0.42}, "timings": {"train_s": 1.5},
                                                "note": "test"})
    assert path == cache.path(cfg()) and cache.has(cfg())
    assert not cache.has(cfg(seed=1))
    names = visible(path)
    assert "model.safetensors" in names and "manifest.json" in names and "tokenizer.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt"))]

    loaded, tok2, manifest = cache.load(cfg())
    assert torch.equal(logits(model, tokenizer), logits(loaded, tok2))
    assert not loaded.training
    assert tok2.convert_ids_to_tokens(tok2("Barcelona")["input_ids"]) == tokenizer.convert_ids_to_tokens(
        tokenizer("Barcelona")["input_ids"])

    assert manifest["hash"] == config_hash(cfg())
    assert manifest["config"] == config_to_dict(cfg())
    assert manifest["dev_scores"] == {"f1": 0.42}
    assert manifest["timings"]["train_s"] == 1.5 and manifest["timings"]["save_s"] >= 0
    assert manifest["note"] == "test"
    assert manifest["model_class"] == "BertForTokenClassification"
    assert {"torch", "transformers", "tokenizers", "python"} <= set(manifest["versions"])
    assert manifest["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert manifest["xner_version"] and manifest["created"].endswith("+00:00")
    # every listed checksum is the real one
    for name, meta in manifest["files"].items():
        data = (path / name).read_bytes()
        assert meta == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert set(manifest["files"]) == set(names) - {"manifest.json"}


def test_load_missing_entry(cache: ModelCache) -> None:
    with pytest.raises(CacheMiss, match="no cached model"):
        cache.load(cfg())
    with pytest.raises(CacheMiss):
        cache.manifest(cfg())
    assert not cache.has(cfg())


def test_crash_before_rename_leaves_no_entry(cache: ModelCache, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer = tiny_model

    def crash(src: Any, dst: Any) -> None:
        raise OSError("simulated crash between temp write and rename")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="simulated crash"):
            cache.save(cfg(), model, tokenizer)
    assert not cache.has(cfg())
    assert not cache.path(cfg()).exists()
    assert [n for n in visible(cache.root) if not n.endswith(".lock")] == []  # temp dir cleaned up
    assert cache.entries() == []
    cache.save(cfg(), model, tokenizer)  # a rerun succeeds
    assert cache.has(cfg())
    cache.load(cfg())


def test_hard_kill_leftover_temp_dir_is_invisible_and_collected(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    # a process killed mid-save leaves a complete-looking temp dir but never renames it
    path = cache.save(cfg(), model, tokenizer)
    leftover = cache.root / f".tmp-{config_hash(cfg(1))}-deadbeef"
    shutil.copytree(path, leftover)
    assert not cache.has(cfg(1))
    assert [e.hash for e in cache.entries()] == [config_hash(cfg())]
    removed = cache.gc()
    assert leftover.name in removed and not leftover.exists()
    assert cache.has(cfg())


def _corrupt_flip_byte(entry: Path) -> None:
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))


def _corrupt_truncate(entry: Path) -> None:
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])


def _corrupt_no_manifest(entry: Path) -> None:
    (entry / "manifest.json").unlink()


def _corrupt_pickle(entry: Path) -> None:
    torch.save({"w": torch.zeros(1)}, entry / "pytorch_model.bin")


def _corrupt_unlisted(entry: Path) -> None:
    (entry / "extra.json").write_text("{}")


def _corrupt_missing_file(entry: Path) -> None:
    (entry / "tokenizer.json").unlink()


def _corrupt_manifest_config(entry: Path) -> None:
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["config"]["seed"] = 7
    (entry / "manifest.json").write_text(json.dumps(manifest))


def _corrupt_manifest_json(entry: Path) -> None:
    (entry / "manifest.json").write_text("{not json")


def _corrupt_symlink(entry: Path) -> None:
    (entry / "tokenizer.json").rename(entry.parent / "elsewhere.json")
    (entry / "tokenizer.json").symlink_to(entry.parent / "elsewhere.json")


# (corruption, visible to the cheap check in has()?, problem substring)
CORRUPTIONS = [
    (_corrupt_flip_byte, False, "sha256"),
    (_corrupt_truncate, True, "truncated"),
    (_corrupt_no_manifest, True, "no manifest.json"),
    (_corrupt_pickle, True, "pickled file(s) pytorch_model.bin"),
    (_corrupt_unlisted, True, "not in the manifest: extra.json"),
    (_corrupt_missing_file, True, "missing file(s) tokenizer.json"),
    (_corrupt_manifest_config, True, "manifest config hashes to"),
    (_corrupt_manifest_json, True, "unreadable"),
    (_corrupt_symlink, True, "symlink"),
]


@pytest.mark.parametrize("corrupt,cheap,problem", CORRUPTIONS, ids=[c[0].__name__[9:] for c in CORRUPTIONS])
def test_corruption_is_detected_before_loading(cache: ModelCache, tiny_model, corrupt, cheap: bool,
                                               problem: str) -> None:
    model, tokenizer = tiny_model
    entry = cache.save(cfg(), model, tokenizer)
    corrupt(entry)
    assert cache.has(cfg()) is not cheap
    [listed] = cache.entries(verify=True)
    assert not listed.valid and problem in (listed.problem or "")
    with pytest.raises(CacheCorrupt, match=None) as info:
        cache.load(cfg())
    assert problem in str(info.value) and config_hash(cfg()) in str(info.value)
    assert isinstance(info.value, XnerError)


def test_load_never_unpickles(cache: ModelCache, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer = tiny_model
    entry = cache.save(cfg(), model, tokenizer)
    _corrupt_pickle(entry)
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(CacheCorrupt, match="pickled"):
        cache.load(cfg())
    assert calls == []


def test_get_or_train_rebuilds_a_corrupt_entry(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    entry = cache.save(cfg(), model, tokenizer)
    _corrupt_flip_byte(entry)
    calls, messages = [], []

    def train() -> tuple[Any, Any, dict]:
        calls.append(1)
        return model, tokenizer, {"dev_scores": {"f1": 0.9}}

    _, _, manifest = cache.get_or_train(cfg(), train, progress=messages.append)
    assert calls == [1] and manifest["dev_scores"] == {"f1": 0.9}
    assert any(m.startswith("rebuilding") for m in messages)
    loaded, tok, _ = cache.load(cfg())  # the replaced entry verifies
    assert torch.equal(logits(model, tokenizer), logits(loaded, tok))
    assert [n for n in visible(cache.root) if n.startswith(".")] == []  # the corrupt copy is gone


def test_get_or_train_trains_once_then_hits(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    calls, messages = [], []

    def train() -> tuple[Any, Any, dict]:
        calls.append(1)
        return model, tokenizer, {"dev_scores": {"f1": 0.5}}

    m1, _, man1 = cache.get_or_train(cfg(), train, progress=messages.append)
    assert m1 is model and man1["timings"]["train_s"] >= 0
    m2, _, man2 = cache.get_or_train(cfg(), train, progress=messages.append)
    assert calls == [1] and m2 is not model and man2 == man1
    assert messages[0].startswith("training") and messages[-1].startswith("cache hit")


def test_save_keeps_an_existing_valid_entry_and_replaces_a_corrupt_one(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    cache.save(cfg(), model, tokenizer, {"dev_scores": {"f1": 0.1}})
    first = cache.manifest(cfg())
    cache.save(cfg(), model, tokenizer, {"dev_scores": {"f1": 0.2}})
    assert cache.manifest(cfg()) == first  # kept as it was
    _corrupt_no_manifest(cache.path(cfg()))
    cache.save(cfg(), model, tokenizer, {"dev_scores": {"f1": 0.3}})
    assert cache.manifest(cfg())["dev_scores"] == {"f1": 0.3}


def test_save_rejects_bad_extra_manifest(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    with pytest.raises(ConfigError, match="reserved"):
        cache.save(cfg(), model, tokenizer, {"hash": "x"})
    with pytest.raises(ConfigError, match="JSON-ready"):
        cache.save(cfg(), model, tokenizer, {"dev_scores": {"f1": float("nan")}})
    assert not cache.path(cfg()).exists()
    assert [n for n in visible(cache.root) if n.startswith(".")] == []


_WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from xner_core.runs.config import config_hash, make_config
    from xner_core.runs.cacheentry import inspect_entry
    from xner_core.runs.modelcache import ModelCache

    root, counter, me, other, mode = (Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]),
                                      sys.argv[5])
    config = make_config("tiny", "ca", "transfer", sources="es")

    class FakeModel:  # "light" mode: no torch import, so the test measures the lock, not import time
        def save_pretrained(self, d):
            Path(d, "model.safetensors").write_bytes(b"not really weights")
            Path(d, "config.json").write_text("{}")

    class FakeTokenizer:
        def save_pretrained(self, d):
            Path(d, "tokenizer.json").write_text("{}")

    class LightCache(ModelCache):
        def load(self, config, device=None):  # verify like load() does, without transformers
            digest = config_hash(config)
            manifest, problem = inspect_entry(self.root / digest, digest, deep=True)
            assert problem is None, problem
            return None, None, manifest

    if mode == "real":
        from xner_core.models.registry import build_tiny
        model, tokenizer = build_tiny()
        cache = ModelCache(root)
    else:
        model, tokenizer = FakeModel(), FakeTokenizer()
        cache = LightCache(root)

    def train():
        with counter.open("a") as fh:
            fh.write("trained\\n")
        time.sleep(1.0)
        return model, tokenizer, {"dev_scores": {"f1": 0.5}}

    me.touch()  # start together: both processes reach get_or_train after their imports
    deadline = time.time() + 120
    while not other.exists() and time.time() < deadline:
        time.sleep(0.01)
    _, _, manifest = cache.get_or_train(config, train, progress=lambda m: print(m, flush=True))
    print("HASH", manifest["hash"], flush=True)
""")


@pytest.mark.parametrize("mode", ["light", pytest.param("real", marks=pytest.mark.slow)])
def test_lock_two_processes_train_once(tmp_path: Path, mode: str) -> None:
    root, counter = tmp_path / "models", tmp_path / "counter.txt"
    ready = [tmp_path / "ready-a", tmp_path / "ready-b"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(root), str(counter), str(ready[i]),
                               str(ready[1 - i]), mode], env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out)
    assert counter.read_text().splitlines() == ["trained"]
    digest = config_hash(cfg())
    assert all(f"HASH {digest}" in out for out in outs)
    trainer = [o for o in outs if "training" in o]
    waiter = [o for o in outs if "cache hit" in o]
    assert len(trainer) == 1 and len(waiter) == 1
    assert "waiting for another process" in waiter[0]
    manifest = json.loads((root / digest / "manifest.json").read_text())
    assert manifest["dev_scores"] == {"f1": 0.5}
    if mode == "real":
        assert ModelCache(root).has(cfg())
        ModelCache(root).load(cfg())


def test_entries_and_remove(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    assert cache.entries() == []
    for seed in (0, 1):
        cache.save(cfg(seed), model, tokenizer)
    listed = cache.entries()
    assert [e.hash for e in listed] == sorted(config_hash(cfg(s)) for s in (0, 1))
    for e in listed:
        assert e.valid and e.problem is None and e.size_bytes > 10_000 and e.created
        assert e.config["seed"] in (0, 1) and e.path == cache.root / e.hash
    target = config_hash(cfg(1))
    assert cache.remove(target[:6].upper()) == target
    assert not cache.has(cfg(1)) and cache.has(cfg(0))
    with pytest.raises(ConfigError, match="no cached model matches"):
        cache.remove(target)
    with pytest.raises(ConfigError, match="invalid model hash"):
        cache.remove("xyz")


def test_remove_ambiguous_prefix_lists_matches(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    real = config_hash(cfg())
    cache.save(cfg(), model, tokenizer)
    twin = real[:4] + ("0" * 12 if real[4:] != "0" * 12 else "1" * 12)
    (cache.root / twin).mkdir()
    with pytest.raises(ConfigError, match="ambiguous") as info:
        cache.remove(real[:4])
    assert real in str(info.value) and twin in str(info.value)
    assert cache.remove(real) == real


def test_gc_removes_invalid_temp_trash_and_locks(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    good = cache.save(cfg(0), model, tokenizer)
    bad = cache.save(cfg(1), model, tokenizer)
    _corrupt_no_manifest(bad)
    trash = cache.root / f".trash-{bad.name}-0000"
    trash.mkdir()
    (cache.root / "0123456789abcdef.lock").touch()  # an orphan lock
    removed = cache.gc()
    assert bad.name in removed and trash.name in removed and "0123456789abcdef.lock" in removed
    assert visible(cache.root) == [good.name]
    assert cache.gc() == []


def test_gc_skips_what_another_process_holds(cache: ModelCache, tiny_model) -> None:
    from filelock import FileLock

    model, tokenizer = tiny_model
    bad = cache.save(cfg(1), model, tokenizer)
    _corrupt_no_manifest(bad)
    tmp = cache.root / f".tmp-{bad.name}-live0000"
    tmp.mkdir()
    held = FileLock(cache.root / f"{bad.name}.lock")
    with held:  # a separate lock object on the same file conflicts like another process would
        removed = cache.gc()
    assert removed == [] and bad.exists() and tmp.exists()
    assert set(cache.gc()) == {bad.name, tmp.name, f"{bad.name}.lock"}


def test_gc_max_bytes_removes_oldest_except_kept(cache: ModelCache, tiny_model) -> None:
    model, tokenizer = tiny_model
    for seed in (0, 1, 2):  # saved in this order: seed 0 is the oldest
        cache.save(cfg(seed), model, tokenizer)
    sizes = {e.hash: e.size_bytes for e in cache.entries()}
    h0, h1, h2 = (config_hash(cfg(s)) for s in (0, 1, 2))
    # budget for about one entry: h0 is kept, so h1 and then h2 (oldest first) go
    removed = cache.gc(keep={h0}, max_bytes=sizes[h2] + 1)
    assert [r for r in removed if not r.endswith(".lock")] == [h1, h2]
    assert {e.hash for e in cache.entries()} == {h0}
    cache.save(cfg(1), model, tokenizer)
    removed = cache.gc(max_bytes=sizes[h1] + 1)
    assert [r for r in removed if not r.endswith(".lock")] == [h0]  # without keep, the oldest goes first
    assert cache.gc(max_bytes=10**12) == []
    with pytest.raises(ConfigError, match="max_bytes"):
        cache.gc(max_bytes=-1)


def test_manifests_lists_only_valid_entries(cache: ModelCache, tiny_model) -> None:
    model, tok = tiny_model
    good, bad = cfg(), cfg(seed=1)
    cache.save(good, model, tok)
    entry = cache.save(bad, model, tok)
    (entry / "manifest.json").write_text("{not json", encoding="utf-8")
    assert [m["hash"] for m in cache.manifests()] == [config_hash(good)]
    assert {e.hash: e.valid for e in cache.entries()} == {config_hash(good): True, config_hash(bad): False}


def test_trained_steps_counts_every_epoch_and_tapt_and_none_for_no_training() -> None:
    from xner_core.evaluation.modelstore import trained_steps

    history = [{"epoch": 1, "steps": 1701}, {"epoch": 2, "steps": 1701}, {"epoch": 3, "steps": 1701}]
    assert trained_steps({"dev_scores": {"history": history}}) == 5103
    tapt = {"dev_scores": {"history": history[:1]}, "train_info": {"tapt_steps": 2000}}
    assert trained_steps(tapt) == 3701  # the masked-LM steps count: TAPT's extra compute
    assert trained_steps({"format": 1}) is None  # a checkpoint evaluated as it is: no training recorded
    assert trained_steps({"dev_scores": {"history": [{"epoch": 1}]}}) is None  # older manifest: unknown, not 0


def test_trained_at_reads_the_manifest_as_naive_utc_and_none_when_unknown() -> None:
    import datetime as dt

    from xner_core.evaluation.modelstore import trained_at

    assert trained_at({"created": "2026-12-07T14:52:24.510710+00:00"}) == dt.datetime(2026, 12, 7, 14, 52, 24, 510710)
    assert trained_at({"created": "2026-12-07T15:52:24+01:00"}) == dt.datetime(2026, 12, 7, 14, 52, 24)
    assert trained_at({"format": 1}) is None and trained_at({"created": "yesterday"}) is None


def test_fill_trained_at_dates_only_rows_the_cached_model_made() -> None:
    import pandas as pd

    from xner_core.evaluation.modelstore import fill_trained_at

    rows = pd.DataFrame({
        "config_hash": ["a", "b", "c", "a"],
        "created_at": pd.to_datetime(["2026-12-07 12:00", "2026-12-06 12:00", "2026-12-07 12:00", "2026-12-07 13:00"]),
    })
    manifests = [{"hash": "a", "created": "2026-12-07T11:00:00+00:00"},
                 {"hash": "b", "created": "2026-12-07T11:00:00+00:00"}]  # b: trained again after its row
    out = fill_trained_at(rows, manifests)
    assert list(out["trained_at"].isna()) == [False, True, True, False]  # c: not in the cache
    assert (out.loc[[0, 3], "trained_at"] == pd.Timestamp("2026-12-07 11:00")).all()
    assert "trained_at" not in rows.columns  # a copy
    known = rows.assign(trained_at=pd.to_datetime(["2026-12-01", None, None, None]))
    assert fill_trained_at(known, manifests)["trained_at"][0] == pd.Timestamp("2026-12-01")  # kept as it was

