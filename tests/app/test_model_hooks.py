"""The dashboard's training hooks: what a click trains (no dev set one epoch cannot use) and the trained model
handed to the prediction cache without being read back from disk."""

from __future__ import annotations

import dataclasses

import pytest

from xner_core.runs.config import config_hash
from xner_ui import hooks

WORDS = [["Joan", "Miró", "naixió", "en", "Barcelona", "."]]


def test_training_config_drops_the_dev_set_one_epoch_never_uses(monkeypatch):
    key = hooks.ModelKey("tiny", "transfer", "es", "an")
    preferred, trained = hooks.preferred_config(key, 200), hooks.training_config(key, 200)
    assert preferred.options.epochs == 1 and preferred.options.max_dev_sentences == 1000
    assert trained.options.max_dev_sentences == 0
    assert dataclasses.replace(trained.options, max_dev_sentences=1000) == preferred.options
    assert dataclasses.replace(trained, options=preferred.options) == preferred
    # With several epochs the dev set picks the best one: kept.
    spec = hooks.paper_spec()
    longer = dataclasses.replace(spec, options=dataclasses.replace(spec.options, epochs=2))
    monkeypatch.setattr(hooks, "paper_spec", lambda: longer)
    assert hooks.training_config(key, 200) == hooks.preferred_config(key, 200)


def test_fresh_models_are_kept_for_the_last_two_trainings():
    hooks._FRESH.clear()
    for digest in ("a", "b", "c"):
        hooks._offer_fresh("/cache", digest, digest.upper())
    assert hooks._take_fresh("/cache", "a") is None  # the oldest was dropped
    assert hooks._take_fresh("/cache", "c") == "C" and hooks._take_fresh("/cache", "c") is None  # taken once
    assert hooks._take_fresh("/other", "b") is None and hooks._take_fresh("/cache", "b") == "B"


def test_trained_model_predicts_without_being_read_back(with_data, monkeypatch):
    from xner_core.evaluation import modelstore
    from xner_core.inference.predict import predict_tags
    from xner_core.paths import cache_dir

    hooks._FRESH.clear()
    key = hooks.ModelKey("tiny", "native", "es", "an")
    said: list[str] = []
    digest = hooks.train(key, 200, status=said.append)
    assert digest == config_hash(hooks.training_config(key, 200)) and hooks.picked(key) == digest
    assert not any("rebuilding" in s for s in said)  # tiny: no e5-small rebuild
    real_load = modelstore.load_model

    def no_reload(*args, **kwargs):
        raise AssertionError("the model just trained was read back from the cache")

    monkeypatch.setattr(modelstore, "load_model", no_reload)
    tags = hooks.tag_with(digest, WORDS)
    assert not hooks._FRESH
    # The same predictions as the entry on disk gives.
    from_disk = real_load(hooks.training_config(key, 200), cache=str(cache_dir()))
    assert tags == predict_tags(from_disk.model, from_disk.tokenizer, WORDS)
    manifest = from_disk.manifest
    assert manifest["config"]["options"]["max_dev_sentences"] == 0 and manifest["dev_scores"]["best_dev_f1"] is None


@pytest.mark.parametrize("model, rebuilds", [("e5-small", True), ("tiny", False)])
def test_train_announces_the_e5_rebuild(model, rebuilds, monkeypatch):
    from xner_core.models import e5

    calls: list[object] = []
    monkeypatch.setattr(e5, "ensure_e5_small", lambda **kw: calls.append(kw.get("status")))
    said: list[str] = []
    hooks._prepare_encoder(model, said.append)
    assert (calls == [said.append]) if rebuilds else not calls
