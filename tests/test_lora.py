"""LoRA adapters (xner_core/training/lora.py, `adapter = "lora"`): only the adapters and the head train, the merged
model predicts as the peft model, the options enter the config hash only away from their defaults, invalid
options and a missing peft are refused with the rule, and a LoRA model goes through the cache and export/import
with its adapter (tiny models, CPU, one thread)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import synthetic_ner
import torch

from xner_core.corpus.sentences import Sentence
from xner_core.errors import ConfigError
from xner_core.inference.predict import predict_tags
from xner_core.models.registry import build_tiny
from xner_core.runs.config import canonical_dict, make_config
from xner_core.runs.modelcache import ModelCache
from xner_core.runs.portable import CARD, export_model, import_model
from xner_core.training import lora as lora_mod
from xner_core.training.dispatch import run_setting
from xner_core.training.finetune import fine_tune
from xner_core.training.settings import LoraSpec, TrainOptions, lora_spec

torch.set_num_threads(1)

WORDS = "the we saw went in met and then today home".split()
PLACES = "Arlen Bovar Cetra Dunmore".split()
PEOPLE = "Gosta Havel Istra Jorvik".split()
TEXTS = [" ".join(WORDS + PLACES + PEOPLE + ["."])] * 3
FAST = dict(epochs=2, lr=5e-3, batch_size=8, warmup_ratio=0.1, seed=0)
SPEC = LoraSpec(r=4, alpha=8.0, dropout=0.1, targets=("query", "value"))


def synth(n: int, seed: int, lang: str = "xx") -> list[Sentence]:
    """One clause after one of four filler words: the tokenizer's small vocabulary."""
    return synthetic_ner.synth(n, seed, lang, fill=WORDS[:4], places=PLACES, people=PEOPLE, clauses=(1, 1),
                               fillers=(1, 1))


@pytest.fixture(scope="module")
def base():
    """A tiny model and its tokenizer, never trained (tests copy it)."""
    return build_tiny(texts=TEXTS, seed=0)


@pytest.fixture(scope="module")
def trained(base):
    """(initial model, merged LoRA model, tokenizer, TrainResult) of one LoRA fine-tuning run."""
    model, tokenizer = base
    initial = copy.deepcopy(model)
    result = fine_tune(copy.deepcopy(model), tokenizer, synth(64, 1), synth(16, 2), lora=SPEC, **FAST)
    return initial, result.model, tokenizer, result


def _expected_trainable(model, spec: LoraSpec) -> int:
    adapted = sum(spec.r * (m.in_features + m.out_features) for name, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and name.split(".")[-1] in spec.targets)
    return adapted + sum(p.numel() for p in model.classifier.parameters())


def _logits(model, tokenizer, sentences) -> torch.Tensor:
    enc = tokenizer([list(s.tokens) for s in sentences], is_split_into_words=True, return_tensors="pt",
                    padding=True)
    with torch.no_grad():
        return model(**enc).logits


def test_trainable_parameters_are_the_rank_r_matrices_and_the_head(base):
    model, _ = base
    wrapped = lora_mod.wrap(copy.deepcopy(model), SPEC, seed=0)
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert names and all(("lora_A" in n or "lora_B" in n) and (".query." in n or ".value." in n)
                         or ".classifier.modules_to_save." in n for n in names), names
    assert lora_mod.trainable_parameters(wrapped) == _expected_trainable(model, SPEC)
    # tiny: 2 layers x (query, value) x r (32 + 32) + head 32 x 7 + 7
    assert _expected_trainable(model, SPEC) == 2 * 2 * 4 * 64 + 32 * 7 + 7
    bigger = lora_mod.wrap(copy.deepcopy(model), LoraSpec(r=8, targets=("dense", "key", "query", "value")), seed=0)
    assert lora_mod.trainable_parameters(bigger) == _expected_trainable(
        model, LoraSpec(r=8, targets=("dense", "key", "query", "value")))


def test_training_changes_only_the_adapted_projections_by_b_a_and_the_head(trained):
    initial, merged, _, result = trained
    assert lora_mod.adapter_of(merged) is not None and all(p.requires_grad for p in merged.parameters())
    info = result.info["adapter"]
    assert info["trainable_parameters"] == _expected_trainable(initial, SPEC) == result.info["trainable_parameters"]
    assert info["r"] == 4 and info["target_modules"] == ["query", "value"] and info["modules_to_save"] == ["classifier"]
    before, after = initial.state_dict(), merged.state_dict()
    assert before.keys() == after.keys()
    adapter = lora_mod.adapter_of(merged)
    changed = set()
    for key in before:
        if torch.equal(before[key], after[key]):
            continue
        changed.add(key)
        if key.startswith("classifier."):
            continue
        module = key.rsplit(".", 1)[0]
        assert key.endswith(".weight") and module.split(".")[-1] in ("query", "value"), key
        a = adapter.state[f"base_model.model.{module}.lora_A.weight"]
        b = adapter.state[f"base_model.model.{module}.lora_B.weight"]
        torch.testing.assert_close(after[key] - before[key], (b @ a) * (SPEC.alpha / SPEC.r), atol=1e-6, rtol=1e-4)
    assert {"classifier.weight", "classifier.bias"} <= changed
    assert any(".query." in k for k in changed) and any(".value." in k for k in changed)
    assert result.history[-1].loss < result.history[0].loss


def test_the_merged_model_predicts_as_the_peft_model_from_the_saved_adapter(trained, tmp_path):
    initial, merged, tokenizer, _ = trained
    files = lora_mod.adapter_of(merged).save(tmp_path / "adapter", base_model="tiny")
    assert {f.name for f in files} == {"adapter_model.safetensors", "adapter_config.json"}
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["target_modules"] == ["query", "value"]
    assert config["modules_to_save"] == ["classifier"] and config["base_model_name_or_path"] == "tiny"
    peft_model = lora_mod.load_adapter(copy.deepcopy(initial), tmp_path / "adapter")
    sents = synth(12, 5)
    torch.testing.assert_close(_logits(peft_model, tokenizer, sents), _logits(merged, tokenizer, sents),
                               atol=1e-5, rtol=1e-5)
    assert predict_tags(peft_model, tokenizer, sents, precision="fp32") == \
        predict_tags(merged, tokenizer, sents, precision="fp32")


def test_lora_runs_are_deterministic_and_differ_from_full_fine_tuning(base, trained):
    model, tokenizer = base
    again = fine_tune(copy.deepcopy(model), tokenizer, synth(64, 1), synth(16, 2), lora=SPEC, **FAST).model
    a, b = trained[1].state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    full = fine_tune(copy.deepcopy(model), tokenizer, synth(64, 1), synth(16, 2), **FAST)
    assert "adapter" not in full.info and lora_mod.adapter_of(full.model) is None
    assert full.info["trainable_parameters"] == sum(p.numel() for p in model.parameters())


def test_the_best_dev_epoch_adapters_are_the_ones_merged(base, monkeypatch):
    from xner_core.training import loop

    model, tokenizer = base
    dev, probe = synth(8, 2), synth(6, 9)
    seen: list[torch.Tensor] = []

    def fake_f1(m, tok, sentences, **kwargs):  # epoch 1 scores best: its weights must be the ones kept
        m.eval()
        seen.append(_logits(m, tok, probe))
        return [0.9, 0.1, 0.2][len(seen) - 1]

    monkeypatch.setattr(loop, "evaluate_f1", fake_f1)
    res = fine_tune(copy.deepcopy(model), tokenizer, synth(32, 1), dev, lora=SPEC, **{**FAST, "epochs": 3})
    assert res.best_epoch == 1 and len(seen) == 3
    assert not torch.allclose(seen[0], seen[2], atol=1e-4)
    torch.testing.assert_close(_logits(res.model, tokenizer, probe), seen[0], atol=1e-5, rtol=1e-5)


def test_every_setting_but_tapt_trains_adapters(base):
    model, tokenizer = base
    options = TrainOptions(epochs=1, lr=5e-3, batch_size=8, distill_epochs=1, distill_min_steps=0,
                           adapter="lora", lora_r=2, robust="pgd", robust_steps=1)
    res = run_setting("distill", copy.deepcopy(model), tokenizer, source_train={"aa": synth(24, 1, "aa"),
                      "bb": synth(24, 2, "bb")}, target_unlabeled=synth(16, 3, "cc"), options=options)
    assert res.info["adapter"]["r"] == 2 and lora_mod.adapter_of(res.model) is not None
    # the student's bottom layers (embeddings + layer 0 of 2) are frozen, adapters included
    assert res.info["frozen_parameters"] > 0
    res = run_setting("transfer", copy.deepcopy(model), tokenizer, source_train={"aa": synth(24, 1, "aa")},
                      options=TrainOptions(epochs=1, lr=5e-3, batch_size=8, adapter="lora", lora_r=2,
                                           robust="word-smoothing", robust_rate=0.5))
    assert res.info["adapter"]["trainable_parameters"] == _expected_trainable(model, LoraSpec(r=2))
    with pytest.raises(ConfigError, match="does not combine with setting 'tapt'"):
        run_setting("tapt", copy.deepcopy(model), tokenizer, source_train={"aa": synth(8, 1, "aa")},
                    target_unlabeled=synth(8, 3, "cc"), options=TrainOptions(lr=1e-3, tapt_steps=1, adapter="lora"))
    with pytest.raises(ConfigError, match="does not combine with setting 'tapt'"):
        make_config("tiny", "ca", "tapt", sources=["es"], tapt_steps=5, adapter="lora")


def test_default_options_keep_every_hash_and_lora_options_count_only_with_lora():
    base = make_config("e5-small", "ca", "transfer", sources=["es"])
    assert "adapter" not in canonical_dict(base)["options"]
    assert not any(k.startswith("lora_") for k in canonical_dict(base)["options"])
    # LoRA options without the adapter are ignored, as a setting's options are for the others
    assert make_config("e5-small", "ca", "transfer", sources=["es"], adapter="none", lora_r=8,
                       lora_targets="query,key").hash == base.hash
    lora = make_config("e5-small", "ca", "transfer", sources=["es"], adapter="lora")
    assert lora.hash != base.hash and canonical_dict(lora)["options"]["adapter"] == "lora"
    assert not any(k.startswith("lora_") for k in canonical_dict(lora)["options"])  # at their defaults
    assert make_config("e5-small", "ca", "transfer", sources=["es"], adapter="lora", lora_r=16, lora_alpha=32,
                       lora_dropout=0.1, lora_targets=" value, query").hash == lora.hash
    r8 = make_config("e5-small", "ca", "transfer", sources=["es"], adapter="lora", lora_r=8)
    assert r8.hash not in (lora.hash, base.hash) and canonical_dict(r8)["options"]["lora_r"] == 8
    wide = make_config("e5-small", "ca", "transfer", sources=["es"], adapter="lora",
                       lora_targets="value,query,key,dense")
    assert canonical_dict(wide)["options"]["lora_targets"] == "dense,key,query,value"
    assert lora_spec(wide.options) == LoraSpec(16, 32.0, 0.1, ("dense", "key", "query", "value"))
    assert lora_spec(base.options) is None


@pytest.mark.parametrize("override, message", [
    ({"lora_r": 0}, "option lora_r=0 is invalid; allowed: an integer >= 1"),
    ({"lora_r": 2.5}, "option lora_r=2.5 is invalid"),
    ({"lora_alpha": 0}, "option lora_alpha=0 is invalid; allowed: a number > 0.0"),
    ({"lora_dropout": 1.0}, "option lora_dropout=1.0 is invalid; allowed: a number >= 0.0 and < 1.0"),
    ({"lora_targets": " , "}, "option lora_targets=' , ' is invalid; allowed: comma-separated module names"),
    ({"lora_targets": "query;value"}, "option lora_targets='query;value' is invalid"),
    ({"adapter": "qlora"}, "option adapter='qlora' is invalid; choose one of: none, lora"),
])
def test_invalid_lora_options_are_refused_with_the_rule(override, message):
    with pytest.raises(ConfigError) as err:
        make_config("tiny", "ca", "transfer", sources=["es"], **{"adapter": "lora", **override})
    assert message in str(err.value)


def test_training_refuses_a_bad_rank_unknown_targets_and_a_missing_peft(base, monkeypatch):
    model, tokenizer = base
    with pytest.raises(ConfigError, match="option lora_r=0 is invalid"):
        fine_tune(copy.deepcopy(model), tokenizer, synth(8, 1), lora=LoraSpec(r=0), **FAST)
    with pytest.raises(ConfigError, match=r"lora_targets q_proj names no Linear module.*choose from: dense, key, "
                                          r"query, value"):
        fine_tune(copy.deepcopy(model), tokenizer, synth(8, 1), lora=LoraSpec(targets=("q_proj",)), **FAST)
    with pytest.raises(ConfigError, match="lora_targets classifier names no Linear module"):
        lora_mod.wrap(copy.deepcopy(model), LoraSpec(targets=("classifier",)), seed=0)
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    fresh = copy.deepcopy(model)
    with pytest.raises(ConfigError, match=r"adapter 'lora' needs the `peft` package, which is not installed"):
        fine_tune(fresh, tokenizer, synth(8, 1), lora=SPEC, **FAST)
    assert all(p.requires_grad for p in fresh.parameters())  # nothing was wrapped
    fine_tune(copy.deepcopy(model), tokenizer, synth(8, 1), **{**FAST, "epochs": 1})  # without LoRA: no peft needed


def test_a_failed_lora_run_leaves_the_model_unwrapped(base):
    model, tokenizer = base
    fresh = copy.deepcopy(model)

    def boom(step, total, info):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        fine_tune(fresh, tokenizer, synth(8, 1), lora=SPEC, progress=boom, **FAST)
    assert not any("lora" in n for n, _ in fresh.named_parameters())
    assert all(p.requires_grad for p in fresh.parameters())
    assert type(fresh.classifier) is torch.nn.Linear


def test_cache_export_import_round_trip_keeps_the_adapter_and_the_predictions(trained, tmp_path):
    initial, merged, tokenizer, result = trained
    config = make_config("tiny", "ca", "transfer", sources=["es"], adapter="lora", lora_r=4, lora_alpha=8)
    assert lora_spec(config.options) == SPEC
    cache = ModelCache(tmp_path / "cache")
    entry = cache.save(config, merged, tokenizer, {"train_info": {"adapter": result.info["adapter"]}})
    assert (entry / "adapter" / "adapter_model.safetensors").is_file()
    manifest = cache.manifest(config)
    section = manifest["adapter"]
    assert section["merged"] is True and section["dir"] == "adapter" and section["base_model"] == "tiny"
    assert section["files"] == ["adapter/adapter_model.safetensors", "adapter/adapter_config.json"]
    assert set(section["files"]) <= set(manifest["files"])
    assert section["adapter_bytes"] == (entry / "adapter" / "adapter_model.safetensors").stat().st_size
    assert section["trainable_parameters"] == _expected_trainable(initial, SPEC)
    loaded, tok, _ = cache.load(config)  # the merged weights, as any other model
    sents = synth(12, 7)
    want = predict_tags(merged, tokenizer, sents, precision="fp32")
    assert predict_tags(loaded, tok, sents, precision="fp32") == want
    # an entry whose manifest names adapter files it does not list is invalid
    broken = json.loads((entry / "manifest.json").read_text())
    broken["adapter"]["files"] = ["adapter/missing.safetensors"]
    from xner_core.runs.cacheentry import inspect_entry

    (tmp_path / "copy").mkdir()
    import shutil

    shutil.copytree(entry, tmp_path / "copy" / entry.name)
    (tmp_path / "copy" / entry.name / "manifest.json").write_text(json.dumps(broken))
    assert "adapter section" in inspect_entry(tmp_path / "copy" / entry.name, entry.name, deep=False)[1]

    done = export_model(cache, config.hash, tmp_path / "export")
    assert "adapter/adapter_model.safetensors" in done.files and "adapter/adapter_config.json" in done.files
    assert 0 < done.adapter_bytes < done.weights_bytes
    card = (tmp_path / "export" / CARD).read_text(encoding="utf-8")
    assert "Trained with LoRA: rank 4" in card and "`adapter/` holds the adapter alone" in card
    fresh = ModelCache(tmp_path / "fresh")
    imported = import_model(fresh, tmp_path / "export")
    assert imported.added and imported.hash == config.hash
    again, tok2, man2 = fresh.load(config)
    assert man2["adapter"] == section
    assert predict_tags(again, tok2, sents, precision="fp32") == want
    assert torch.equal(_logits(again, tok2, sents), _logits(loaded, tok, sents))
    # the exported adapter alone, on the base model, predicts as the merged model
    alone = lora_mod.load_adapter(copy.deepcopy(initial), tmp_path / "export" / "adapter")
    assert predict_tags(alone, tokenizer, sents, precision="fp32") == want
    # a plain (non-LoRA) model's export says it has no adapter
    plain = make_config("tiny", "ca", "transfer", sources=["es"])
    cache.save(plain, copy.deepcopy(initial), tokenizer)
    assert "adapter" not in cache.manifest(plain)
    assert export_model(cache, plain.hash, tmp_path / "plain").adapter_bytes is None


def test_grid_spec_training_table_takes_the_adapter():
    from xner_core.experiments.spec import parse_spec

    spec = parse_spec('name = "l"\nmodels = ["tiny"]\npairs = ["es-ca"]\nperturbations = ["clean"]\n'
                      '[training]\nadapter = "lora"\nlora_r = 8\nlora_targets = "query,key,value"\n')
    assert spec.options.adapter == "lora" and spec.options.lora_r == 8
    with pytest.raises(ConfigError, match="lora_r"):
        parse_spec('name = "l"\nmodels = ["tiny"]\npairs = ["es-ca"]\nperturbations = ["clean"]\n'
                   '[training]\nadapter = "lora"\nlora_r = 0\n')


# ------------------------------------------------------------------------------------------------ the CLI (data)


@pytest.mark.data
def test_cli_train_eval_export_with_lora(wikiann_dir: Path, tmp_path, capsys):
    from xner_core.cli.main import main
    from xner_core.evaluation.memo import clear_caches

    clear_caches()
    args = ["--model", "tiny", "--source", "es", "--target", "ca", "--max-train", "60", "--max-dev", "20",
            "--batch-size", "16", "--data-dir", str(wikiann_dir), "--cache-dir", str(tmp_path / "c")]

    def run(argv):
        code = main([*argv, "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out)

    got = run(["train", *args, "--adapter", "lora", "--lora-r", "4"])
    want = make_config("tiny", "ca", "transfer", sources=["es"], max_train_sentences=60, max_dev_sentences=20,
                       batch_size=16, adapter="lora", lora_r=4)
    assert got["hash"] == want.hash
    assert got["adapter"]["r"] == 4 and got["adapter"]["merged"] is True and got["adapter"]["adapter_bytes"] > 0
    rows = run(["eval", *args, "--adapter", "lora", "--lora-r", "4", "--test-limit", "20", "--bootstrap", "10"])
    assert rows and rows[0]["perturbation"] == "clean"
    done = run(["models", "export", want.hash, str(tmp_path / "x"), "--cache-dir", str(tmp_path / "c"),
                "--store", str(tmp_path / "r.duckdb")])
    assert 0 < done["adapter_bytes"] < done["weights_bytes"]
    code = main(["train", *args, "--adapter", "lora", "--lora-r", "0"])
    _, err = capsys.readouterr()
    assert code == 2 and "option lora_r=0 is invalid" in err
    code = main(["eval", "--checkpoint", str(tmp_path / "x"), "--target", "ca", "--adapter", "lora",
                 "--data-dir", str(wikiann_dir)])
    _, err = capsys.readouterr()
    assert code == 2 and "a --checkpoint is evaluated as it is" in err
