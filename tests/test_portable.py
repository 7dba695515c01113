"""Models that travel (xner_core/runs/portable.py, `xner models export|import`): a trained tiny model exported
with its model card and xner manifest, imported into a fresh cache under the same hash with the same predictions;
directories that are not exports are refused with a message that says what is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from xner_core.cli.main import main
from xner_core.errors import ConfigError, DataError
from xner_core.evaluation.memo import clear_caches
from xner_core.evaluation.modelstore import train_model
from xner_core.inference.predict import predict_tags
from xner_core.runs.config import config_from_dict, make_config
from xner_core.runs.modelcache import ModelCache
from xner_core.runs.portable import CARD, EXPORT_MANIFEST, export_model, import_model, model_card

pytestmark = pytest.mark.data

CFG = dict(model="tiny", target="ca", setting="transfer", sources=("es",), max_train_sentences=100,
           max_dev_sentences=20, batch_size=16)
WORDS = [["Joan", "Pérez", "viu", "a", "Madrid", "."], ["El", "Barça", "va", "guanyar", "a", "Barcelona", "."],
         ["Maria", "treballa", "per", "a", "Nacions", "Unides", "."]]


@pytest.fixture(scope="module")
def trained(wikiann_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A cache holding the tiny es->ca transfer model of CFG, trained through the library."""
    cache_root = tmp_path_factory.mktemp("portable-cache")
    clear_caches()
    cfg = make_config(**CFG)
    lm = train_model(cfg, data_dir=wikiann_dir, cache=cache_root)
    return {"root": cache_root, "cache": ModelCache(cache_root / "models"), "config": cfg, "hash": lm.hash}


@pytest.fixture(scope="module")
def exported(trained: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "model"
    export_model(trained["cache"], trained["hash"][:6], out)
    return out


def _logits(model, tokenizer) -> torch.Tensor:
    enc = tokenizer(WORDS[0], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits


def test_round_trip_into_a_fresh_cache_gives_the_same_hash_and_predictions(trained, exported, tmp_path):
    names = {p.name for p in exported.iterdir()}
    assert {EXPORT_MANIFEST, CARD, "config.json"} <= names and any(n.endswith(".safetensors") for n in names)
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    fresh = ModelCache(tmp_path / "fresh")
    done = import_model(fresh, exported)
    assert done.added and done.hash == trained["hash"] and done.path == fresh.root / trained["hash"]
    assert fresh.has(trained["config"])
    m1, t1, man1 = trained["cache"].load(trained["config"])
    m2, t2, man2 = fresh.load(trained["config"])
    assert man2["hash"] == man1["hash"] and man2["config"] == man1["config"] and man2["files"] == man1["files"]
    assert predict_tags(m1, t1, WORDS, precision="fp32") == predict_tags(m2, t2, WORDS, precision="fp32")
    assert torch.equal(_logits(m1, t1), _logits(m2, t2))
    # the export is a plain save_pretrained directory too
    from transformers import AutoModelForTokenClassification

    m3 = AutoModelForTokenClassification.from_pretrained(exported, use_safetensors=True, local_files_only=True)
    assert torch.equal(_logits(m1, t1), _logits(m3.eval(), t1))
    again = import_model(fresh, exported)
    assert not again.added and again.hash == trained["hash"]


def test_model_card_names_languages_hash_recipe_and_scores(trained, exported):
    card = (exported / CARD).read_text(encoding="utf-8")
    front = card.split("---")[1]
    assert "language:\n- es\n- ca\n" in front
    assert "library_name: transformers" in front and "pipeline_tag: token-classification" in front
    assert "tags:" in front and "license" not in front and "base_model" not in front
    assert trained["hash"] in card
    for want in ("| setting | transfer |", "| sources | es |", "| target | ca |", "| data protocol | wikiann-rahimi |",
                 "| train sentences (cap) | 100 |", "| dev sentences (cap) | 20 |", "| epochs | 1 |",
                 "| learning rate | 0.0002 |", "| batch size | 16 |", "| seed | 0 |", "| precision | fp32 |",
                 "not evaluated"):
        assert want in card, want
    manifest = json.loads((exported / EXPORT_MANIFEST).read_text(encoding="utf-8"))
    scored = model_card(trained["config"], manifest, [{"target": "ca", "f1": 0.5123, "f1_low": 0.48,
                                                       "f1_high": 0.55, "n_sentences": 100, "test_limit": None}])
    assert "| ca | 51.23 | [48.00, 55.00] | 100 |" in scored and "not evaluated" not in scored
    assert "metrics:\n- f1" in scored
    hub = make_config("xlmr", "ca", "native", seed=3)
    hub_card = model_card(hub, {"hash": hub.hash, "config": {}}, ())
    assert "base_model: xlm-roberta-base" in hub_card and "| sources | (none: native) |" in hub_card


def _copy(exported: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    return bad


def test_bad_directories_say_what_is_wrong(trained, exported, tmp_path):
    cache = ModelCache(tmp_path / "c")
    with pytest.raises(DataError, match="not a directory"):
        import_model(cache, tmp_path / "nowhere")
    plain = _copy(exported, tmp_path)
    (plain / EXPORT_MANIFEST).unlink()
    with pytest.raises(DataError, match=r"not an xner model export: missing xner_manifest.json.*--checkpoint"):
        import_model(cache, plain)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="missing xner_manifest.json, config.json, \\*.safetensors weights"):
        import_model(cache, empty)
    shutil.rmtree(plain)
    for edit, match in [
        (lambda d: (d / EXPORT_MANIFEST).write_text("{not json"), "unreadable"),
        (lambda d: _edit_manifest(d, lambda m: m["config"].update(seed=7)), "hashes to"),
        (lambda d: next(d.glob("*.safetensors")).write_bytes(b"x"), "modified after export"),
        (lambda d: (d / "config.json").unlink(), "missing config.json"),
    ]:
        bad = _copy(exported, tmp_path)
        edit(bad)
        with pytest.raises(DataError, match=match):
            import_model(cache, bad)
        shutil.rmtree(bad)
    assert not (cache.root.exists() and any(cache.root.iterdir() if cache.root.is_dir() else []))


def _edit_manifest(d: Path, change) -> None:
    m = json.loads((d / EXPORT_MANIFEST).read_text())
    change(m)
    (d / EXPORT_MANIFEST).write_text(json.dumps(m))


def test_export_refuses_a_non_empty_destination_and_unknown_hash(trained, exported, tmp_path):
    with pytest.raises(ConfigError, match="not an empty directory"):
        export_model(trained["cache"], trained["hash"], exported)
    with pytest.raises(ConfigError, match="no cached model matches"):
        export_model(trained["cache"], "ffffffff", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_export_import_exit_codes(trained, tmp_path, capsys):
    from xner_core.experiments.store import ResultsStore

    store = tmp_path / "r.duckdb"
    cfg = trained["config"]
    ResultsStore(store).write([{"job_id": "j1", "scope": "overall", "config_hash": trained["hash"], "model": "tiny",
                                "sources": "es", "target": "ca", "setting": "transfer", "perturbation": "clean",
                                "f1": 0.42, "f1_low": 0.4, "f1_high": 0.44, "n_sentences": 50}])
    out = tmp_path / "exp"
    args = ["--cache-dir", str(trained["root"])]
    assert main(["models", "export", trained["hash"][:5], str(out), "--store", str(store), *args, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["hash"] == trained["hash"] and got["evaluated"] and CARD in got["files"]
    assert "| ca | 42.00 | [40.00, 44.00] | 50 |" in (out / CARD).read_text()
    fresh = ["--cache-dir", str(tmp_path / "fresh")]
    assert main(["models", "import", str(out), *fresh]) == 0
    assert f"imported {trained['hash']}" in capsys.readouterr().out
    assert main(["models", "import", str(out), *fresh]) == 0
    assert "already cached" in capsys.readouterr().out
    assert config_from_dict(json.loads((out / EXPORT_MANIFEST).read_text())["config"]).hash == cfg.hash
    assert main(["models", "export", trained["hash"], str(out), *args]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert main(["models", "import", str(tmp_path), *fresh]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing xner_manifest.json" in err and "Traceback" not in err
    assert main(["models", "export", "zz", str(tmp_path / "y"), *args]) == 2
