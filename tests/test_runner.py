"""Evaluation (config -> cached model -> perturbed test sets -> rows) with the tiny model on the real WikiANN data.

Small caps keep it fast: 150 training sentences, 60 test sentences, 50 bootstrap resamples. The models are trained
once per module into a temporary cache.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from xner_core.evaluation import inputs
from xner_core.evaluation.evaluate import evaluate, iter_evaluate
from xner_core.evaluation.inputs import training_data
from xner_core.evaluation.jobs import CLEAN, EvalJob, EvalOptions, eval_jobs
from xner_core.evaluation.memo import cache_stats, clear_caches
from xner_core.evaluation.modelstore import cached_configs, find_cached, load_model, serves, train_model
from xner_core.evaluation.predictions import load_predictions
from xner_core.evaluation.throughput import (
    CUDA_SPEEDUP,
    DEFAULT_TRAIN_THROUGHPUT,
    estimate_train_seconds,
    measured_train_throughput,
)
from xner_core.runs.config import config_hash, make_config
from xner_core.experiments.store import COLUMN_NAMES, ROW_SCOPES, SCHEMA

CAPS = dict(max_train_sentences=150, max_dev_sentences=30, batch_size=16)
EVAL = EvalOptions(test_limit=60, embed_model="tiny", bootstrap=50, donor="an")
PERTS = ("entity_replace", "context_replace", "location_swap")
REQUIRED = [c.name for c in SCHEMA if "NOT NULL" in c.sql_type]


def cfg(target: str = "ca", setting: str = "transfer", sources=("es",), seed: int = 0):
    return make_config("tiny", target, setting, sources=() if setting == "native" else sources, seed=seed, **CAPS)


@pytest.fixture(scope="module")
def env(wikiann_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A cache with the es transfer model (trained for ca) and the ca native model."""
    cache = tmp_path_factory.mktemp("runner-cache")
    clear_caches()
    messages: list[str] = []
    es_ca = train_model(cfg("ca"), data_dir=wikiann_dir, cache=cache, status=messages.append)
    native = train_model(cfg("ca", "native"), data_dir=wikiann_dir, cache=cache)
    return {"data": wikiann_dir, "cache": cache, "es_ca": es_ca, "native": native, "messages": messages}


def test_eval_job_id_carries_the_target_and_what_changes_numbers():
    ca, an = cfg("ca"), cfg("an")
    assert config_hash(ca) == config_hash(an)  # one transfer model serves both targets ...
    assert EvalJob(ca).id != EvalJob(an).id  # ... but their evaluations are different jobs
    assert EvalJob(an).target == "an"
    base = EvalJob(ca, "entity_replace", 0, 1.0, 100, "e5-small", "ca")
    # each field that changes a perturbed job's numbers changes its id
    variants = [EvalJob(ca, "context_replace", 0, 1.0, 100, "e5-small", "ca"),
                EvalJob(ca, "entity_replace", 1, 1.0, 100, "e5-small", "ca"),
                EvalJob(ca, "entity_replace", 0, 0.5, 100, "e5-small", "ca"),
                EvalJob(ca, "entity_replace", 0, 1.0, 200, "e5-small", "ca"),
                EvalJob(cfg("ca", seed=1), "entity_replace", 0, 1.0, 100, "e5-small", "ca")]
    assert len({base.id, *(v.id for v in variants)}) == 1 + len(variants)
    # ... and fields the job does not read do not: P1 uses neither embeddings nor donors, clean uses no seed
    assert EvalJob(ca, "entity_replace", 0, 1.0, 100, "tiny", "an").id == base.id
    assert EvalJob(ca, CLEAN, 5, 0.3, 100, "tiny", "an").id == base.clean().id
    assert EvalJob(ca, "context_replace", 0, 1.0, 100, "tiny").id != variants[0].id  # P2 embeds words


def test_eval_jobs_lists_clean_first_without_duplicates():
    jobs = eval_jobs(cfg(), ["entity_replace", CLEAN, "entity_replace", "person_swap"], EvalOptions(donor=None))
    assert [j.perturbation for j in jobs] == [CLEAN, "entity_replace", "person_swap"]
    assert jobs[2].donor == "ca"  # a swap defaults to the target's own names


def test_training_data_and_test_set_follow_the_caps(env):
    data = training_data(cfg("ca"), env["data"])
    assert [lang for lang, _ in data.source_train] == ["es"]
    assert len(data.source_train[0][1]) == 150 and len(data.source_dev[0][1]) == 30
    assert data.target_train == () and data.target_unlabeled == ()
    native = training_data(cfg("ca", "native"), env["data"])
    assert native.source_train == () and len(native.target_train) == 150
    assert len(inputs.test_corpus(cfg("ca"), 60, env["data"])) == 60


def test_transfer_model_is_shared_across_targets(env):
    # trained for ca; asking for es->an finds the same cache entry instead of training again
    an = cfg("an")
    lm = load_model(an, cache=env["cache"])
    assert lm.hash == env["es_ca"].hash
    assert lm.manifest["config"]["target"] == "ca"  # the entry remembers who trained it
    assert lm.config.target == "an"  # ... but the loaded model is evaluated on the asked target
    hashes = {e["hash"] for _, e in cached_configs(env["cache"])}
    assert hashes == {env["es_ca"].hash, env["native"].hash}


def test_evaluate_rows_follow_the_schema(env):
    outs = evaluate(cfg("ca"), PERTS, data_dir=env["data"], cache=env["cache"], loaded=env["es_ca"], options=EVAL)
    assert [o.job.perturbation for o in outs] == [CLEAN, *PERTS]
    clean = outs[0].rows[0]
    for o in outs:
        assert [r["scope"] for r in o.rows] == list(ROW_SCOPES)
        assert len({r["job_id"] for r in o.rows}) == 1 and o.rows[0]["job_id"] == o.job.id
        for r in o.rows:
            assert set(r) <= set(COLUMN_NAMES)
            assert all(r[k] not in (None, "") for k in REQUIRED)
            assert r["target"] == "ca" and r["sources"] == "es" and r["n_sentences"] == 60
        overall = o.rows[0]
        assert overall["clean_f1"] == pytest.approx(clean["f1"])
        assert overall["drop"] == pytest.approx(clean["f1"] - overall["f1"])
        assert 0 <= overall["f1"] <= 1 and overall["eval_seconds"] > 0
        steps = sum(h["steps"] for h in env["es_ca"].manifest["dev_scores"]["history"])
        assert overall["train_steps"] == steps > 0  # the equal-compute measure, from the model's manifest
        assert len(o.predictions) == len(o.sentences) == 60
        # predictions are kept on disk under the job id
        saved = load_predictions(o.job.id, env["cache"])
        assert [tuple(s["pred"]) for s in saved] == [tuple(p) for p in o.predictions]
        assert {s["dtype"] for s in saved} == {o.rows[0]["eval_dtype"]} == {"fp32"}
    assert clean["sentences_changed_frac"] == 0.0 and clean["drop"] == 0.0
    swap = outs[3].rows[0]
    assert swap["entities_changed_frac"] > 0  # location_swap replaced LOC chunks with an's names
    assert swap["drop_low"] is not None and swap["drop_low"] <= swap["drop"] <= swap["drop_high"]
    assert clean["entity_token_overlap"] is not None and clean["n_sources"] == 1


def test_seen_and_unseen_rows_split_the_entities_by_the_training_data(env):
    from xner_core.evaluation.inputs import evaluation_inputs
    from xner_core.metrics.scores import score
    from xner_core.metrics.seen import restrict_tags, seen_surfaces

    outs = evaluate(cfg("ca"), ["entity_replace"], data_dir=env["data"], cache=env["cache"], loaded=env["es_ca"],
                    options=EVAL)
    surfaces = seen_surfaces(evaluation_inputs(cfg("ca"), EVAL, data_dir=env["data"], cache=env["cache"]).seen)
    for o in outs:
        rows = {r["scope"]: r for r in o.rows}
        assert rows["seen"]["n_gold"] + rows["unseen"]["n_gold"] == rows["overall"]["n_gold"]
        assert rows["seen"]["n_pred"] + rows["unseen"]["n_pred"] == rows["overall"]["n_pred"]
        tokens = [s.tokens for s in o.sentences]
        gold = [s.tags for s in o.sentences]
        for scope, flag in (("seen", True), ("unseen", False)):
            expected = score(restrict_tags(tokens, gold, surfaces, flag),
                             restrict_tags(tokens, o.predictions, surfaces, flag)).overall
            assert rows[scope]["f1"] == pytest.approx(expected.f1)
    # P1 turns seen entities into unseen ones (replacements come from the target chunks the source lacks)
    clean, p1 = ({r["scope"]: r for r in o.rows} for o in outs)
    assert p1["seen"]["n_gold"] == clean["seen"]["n_gold"] - outs[1].report["entities_changed"]
    assert p1["seen"]["clean_f1"] == pytest.approx(clean["seen"]["f1"])  # the drop is against the same group


def test_same_model_on_another_target_gives_rows_of_that_target(env):
    outs = evaluate(cfg("an"), [], data_dir=env["data"], cache=env["cache"], loaded=env["es_ca"], options=EVAL)
    row = outs[0].rows[0]
    ca_clean = EvalJob(cfg("ca"), CLEAN, test_limit=60, embed_model="tiny", donor="an")
    assert row["target"] == "an" and row["config_hash"] == env["es_ca"].hash
    assert row["job_id"] != ca_clean.id


def test_iter_evaluate_skips_done_jobs(env):
    full = {o.job.perturbation: o for o in evaluate(cfg("ca"), PERTS, data_dir=env["data"], cache=env["cache"],
                                                   loaded=env["es_ca"], options=EVAL)}
    ids = {p: o.job.id for p, o in full.items()}
    # the clean job is done: only the perturbed ones come back, with the same drops (clean is the reference)
    got = list(iter_evaluate(cfg("ca"), PERTS, data_dir=env["data"], cache=env["cache"], loaded=env["es_ca"],
                             skip={ids[CLEAN]}, options=EVAL))
    assert [o.job.perturbation for o in got] == list(PERTS)
    for o in got:
        assert o.rows[0]["drop"] == pytest.approx(full[o.job.perturbation].rows[0]["drop"])
        assert o.rows[0]["f1_low"] == pytest.approx(full[o.job.perturbation].rows[0]["f1_low"])
    # every job done: nothing is loaded or trained (this config was never trained)
    untrained = cfg("ca", seed=7)
    all_ids = {j.id for j in eval_jobs(untrained, PERTS, EVAL)}
    assert list(iter_evaluate(untrained, PERTS, data_dir=env["data"], cache=env["cache"], skip=all_ids,
                              options=EVAL)) == []
    assert not (Path(env["cache"]) / "models" / config_hash(untrained)).exists()


def test_stored_predictions_are_reused_only_at_their_precision_and_for_their_weights(env, monkeypatch, tmp_path):
    from xner_core.inference import predict as predict_module

    config = cfg("ca")
    lm = train_model(config, data_dir=env["data"], cache=tmp_path)  # its own cache: the others stay as they are
    calls: list[str] = []
    original = predict_module.predict_tags

    def counting(*args, **kwargs):
        calls.append(kwargs.get("precision", "auto"))
        return original(*args, **kwargs)

    # the evaluation imports predict_tags where it calls it, so the patch reaches it
    monkeypatch.setattr(predict_module, "predict_tags", counting)
    fp32, bf16 = replace(EVAL, precision="fp32"), replace(EVAL, precision="bf16")
    fp = evaluate(config, (), fp32, data_dir=env["data"], cache=tmp_path, loaded=lm)
    again = evaluate(config, (), fp32, data_dir=env["data"], cache=tmp_path, loaded=lm)
    assert calls == ["fp32"]  # the second run read the stored fp32 predictions
    bf = evaluate(config, (), bf16, data_dir=env["data"], cache=tmp_path, loaded=lm)
    assert calls == ["fp32", "bf16"]  # another precision is predicted again, not read from the fp32 file
    assert fp[0].rows[0]["eval_dtype"] == again[0].rows[0]["eval_dtype"] == "fp32"
    assert bf[0].rows[0]["eval_dtype"] == "bf16" and bf[0].rows[0]["train_dtype"] == "fp32"
    # the same config hash retrained into other weights (e.g. on another thread count): predicted afresh, not read
    # from the file the first weights wrote
    files = {**lm.manifest["files"], "model.safetensors": {**lm.manifest["files"]["model.safetensors"],
                                                           "sha256": "0" * 64}}
    retrained = replace(lm, manifest={**lm.manifest, "files": files})
    evaluate(config, (), fp32, data_dir=env["data"], cache=tmp_path, loaded=retrained)
    assert calls == ["fp32", "bf16", "fp32"]
    saved = load_predictions(fp[0].job.id, tmp_path)
    assert {s["weights"] for s in saved} == {"0" * 64}
    evaluate(config, (), fp32, data_dir=env["data"], cache=tmp_path, loaded=retrained)
    assert calls == ["fp32", "bf16", "fp32"]  # and reused for those weights


def test_shared_parts_are_built_once_per_seen_and_test_set(env):
    clear_caches()
    kwargs = dict(data_dir=env["data"], cache=env["cache"], options=EVAL)
    first = evaluate(cfg("ca"), PERTS, loaded=env["es_ca"], **kwargs)
    stats = cache_stats()
    assert stats["contexts"]["misses"] == 1 and stats["contexts"]["size"] == 1  # one for all three perturbations
    # the same model on the same test set again (e.g. the next seed): context and perturbed sets are reused
    again = evaluate(cfg("ca"), PERTS, loaded=env["es_ca"], **kwargs)
    stats = cache_stats()
    assert stats["contexts"]["misses"] == 1 and stats["perturbed"]["misses"] == len(PERTS)
    assert stats["perturbed"]["hits"] == len(PERTS) and stats["features"]["hits"] == 1
    assert all(_same(a.rows, b.rows) for a, b in zip(again, first))
    # a different seen corpus (native: the ca train set) gets its own context
    evaluate(cfg("ca", "native"), ["entity_replace"], loaded=env["native"], **kwargs)
    assert cache_stats()["contexts"]["misses"] == 2


def _same(a, b) -> bool:
    skip = {"eval_seconds"}
    for ra, rb in zip(a, b):
        for k in ra:
            if k in skip:
                continue
            va, vb = ra[k], rb[k]
            if isinstance(va, float) and isinstance(vb, float):
                if not (va == vb or (math.isnan(va) and math.isnan(vb))):
                    return False
            elif va != vb:
                return False
    return True


def test_cached_context_gives_the_same_numbers_as_a_fresh_one(env):
    kwargs = dict(data_dir=env["data"], cache=env["cache"], options=EVAL)
    warm = evaluate(cfg("ca"), PERTS, loaded=env["es_ca"], **kwargs)
    clear_caches()
    cold = evaluate(cfg("ca"), PERTS, loaded=env["es_ca"], **kwargs)
    assert all(_same(a.rows, b.rows) for a, b in zip(warm, cold))
    assert [o.sentences for o in warm] == [o.sentences for o in cold]


def test_find_cached_serves_pairs_the_models_fit(env):
    es, native = env["es_ca"].config, env["native"].config
    # the es transfer model (trained while targeting ca) serves every es→X pair; the native one only ca
    assert [c.hash for c, _ in find_cached("tiny", "transfer", "es", "ast", cache=env["cache"])] == [es.hash]
    assert [c.hash for c, _ in find_cached("tiny", "native", "es", "ca", cache=env["cache"])] == [native.hash]
    assert find_cached("tiny", "native", "es", "ast", cache=env["cache"]) == []
    assert find_cached("tiny", "transfer", "fr", "ca", cache=env["cache"]) == []
    assert find_cached("e5-small", "transfer", "es", "ca", cache=env["cache"]) == []
    assert serves(make_config("mbert", "ca", "native"), "bert-base-multilingual-cased", "native", "es", "ca")
    multi = make_config("tiny", "ca", "multi_source", sources=("es", "fr"))
    assert serves(multi, "tiny", "multi_source", "fr", "ca") and not serves(multi, "tiny",
                                                                                            "multi_source", "it", "ca")


def test_find_cached_puts_the_preferred_config_first(env):
    other = train_model(cfg("ca", "native", seed=7), data_dir=env["data"], cache=env["cache"])
    natives = find_cached("tiny", "native", "es", "ca", cache=env["cache"])
    assert [c.hash for c, _ in natives] == [other.config.hash, env["native"].config.hash]  # newest first
    preferred = find_cached("tiny", "native", "es", "ca", prefer=env["native"].config, cache=env["cache"])
    assert [c.hash for c, _ in preferred] == [env["native"].config.hash, other.config.hash]


def test_training_estimate_uses_the_throughput_this_machine_measured(env, tmp_path):
    import shutil

    cache = tmp_path / "two-models"  # exactly the fixture's two entries (other tests add more to its cache)
    for lm in (env["es_ca"], env["native"]):
        shutil.copytree(Path(env["cache"]) / "models" / lm.hash, cache / "models" / lm.hash)
    measured = [lm.manifest["timings"]["sentences_per_second"] for lm in (env["es_ca"], env["native"])]
    assert all(lm.manifest["timings"]["device"] == "cpu" for lm in (env["es_ca"], env["native"]))
    assert measured_train_throughput("tiny", "cpu", cache) == pytest.approx(sum(measured) / 2)
    assert measured_train_throughput("tiny", "cuda", cache) is None
    assert measured_train_throughput("e5-small", "cpu", cache) is None
    config = cfg("an")
    n = len(training_data(config, env["data"]).source_train[0][1])
    assert estimate_train_seconds(config, env["data"], cache=cache, device="cpu") == pytest.approx(
        n / (sum(measured) / 2))
    # Nothing measured yet (an empty cache): the documented default throughput.
    empty = tmp_path / "empty-cache"
    assert estimate_train_seconds(config, env["data"], cache=empty, device="cpu") == pytest.approx(
        n / DEFAULT_TRAIN_THROUGHPUT["tiny"])
    assert estimate_train_seconds(config, env["data"], cache=empty, device="cuda") == pytest.approx(
        n / (DEFAULT_TRAIN_THROUGHPUT["tiny"] * CUDA_SPEEDUP))


@pytest.mark.parametrize("name", ["entity_replace", "context_replace", "location_swap"])
def test_pair_explorer_shows_the_sentences_the_evaluation_scored(env, monkeypatch, name):
    """The pair explorer's examples (through the xner_ui function the page calls) are the perturbed test sentences
    the evaluation scored: same seen corpus (the model's training cap), test cap, donor, encoder and seed."""
    from xner_core.evaluation.inputs import evaluation_inputs, perturb_test
    from xner_ui import inputs as ui_inputs

    monkeypatch.setenv("XNER_DATA_DIR", str(env["data"]))
    monkeypatch.setenv("XNER_CACHE_DIR", str(env["cache"]))
    config = cfg("ca")
    options = replace(EVAL, test_limit=400, bootstrap=0)  # enough sentences for P1/P2 to find what es shares
    outcome = evaluate(config, [name], options, data_dir=env["data"], cache=env["cache"], loaded=env["es_ca"])[1]
    saved = load_predictions(outcome.job.id, env["cache"])
    test = inputs.test_corpus(config, options.test_limit, env["data"])
    row = {s.id: i for i, s in enumerate(test)}
    examples = ui_inputs.examples_for(config, options, name, n=len(test))
    # every test sentence with an entity, in order, each exactly as scored and as stored with its predictions
    assert [e["id"] for e in examples] == [s.id for s in test if any(t != "O" for t in s.tags)]
    assert any(e["changed"] for e in examples)
    for e in examples:
        i = row[e["id"]]
        assert (tuple(e["p_tokens"]), tuple(e["p_tags"])) == (outcome.sentences[i].tokens, outcome.sentences[i].tags)
        assert (e["p_tokens"], e["p_tags"]) == (saved[i]["tokens"], saved[i]["gold"])
        assert (tuple(e["tokens"]), tuple(e["tags"])) == (test[i].tokens, test[i].tags)
    changed = ui_inputs.examples_for(config, options, name, n=len(test), changed_only=True)
    assert changed and all(e["changed"] for e in changed) and {e["id"] for e in changed} <= set(row)
    if name == "entity_replace":
        # The page used to take the whole es train split as the seen corpus: P1 then also replaced entities the
        # model never saw in its 150 training sentences, so it showed sentences the evaluation did not score.
        whole = evaluation_inputs(make_config("tiny", "ca", "transfer", sources=("es",), max_train_sentences=None),
                                  options, [name], data_dir=env["data"], cache=env["cache"])
        assert perturb_test(whole, name).corpus.sentences != outcome.sentences
