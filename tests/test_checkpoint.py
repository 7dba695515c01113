"""Tests for existing checkpoints evaluated as they are: the label mapping (xner_core/models/labels.py), loading
(xner_core/models/checkpoint.py, evaluation.modelstore.load_checkpoint_model), prediction through the batched path
with the mapping (inference.predict.predict_tags(labels=)) and `xner eval --checkpoint`.

The checkpoints are tiny random BERT token classifiers built in code (`models.registry.build_tiny`) whose labels are
PERSON/ORGANIZATION/LOCATION/MISC in BIOES, saved with `save_pretrained` to a temporary directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkpoints import BIOES, save_checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st

from xner_core.cli.main import main
from xner_core.corpus.tags import is_valid_iob2
from xner_core.errors import ConfigError
from xner_core.evaluation.evaluate import evaluate
from xner_core.evaluation.jobs import EvalOptions, eval_jobs
from xner_core.evaluation.modelstore import load_checkpoint_model, model_cache
from xner_core.inference.predict import predict_tags
from xner_core.models.checkpoint import load_checkpoint
from xner_core.models.labels import LabelMapping, map_labels
from xner_core.runs.config import make_config


@pytest.fixture(scope="module")
def bioes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "bioes", BIOES)


# ------------------------------------------------------------------------------------------------ label mapping


def test_bioes_mapping_report():
    m = map_labels(dict(enumerate(BIOES)))
    assert m.scheme == "bioes"
    assert m.types == (("PERSON", "PER"), ("ORGANIZATION", "ORG"), ("LOCATION", "LOC"))
    assert m.dropped == ("MISC",) and m.unmapped == () and not m.identity
    assert dict(zip(m.source, m.labels)) == {
        "O": "O", "B-PERSON": "B-PER", "I-PERSON": "I-PER", "E-PERSON": "I-PER", "S-PERSON": "B-PER",
        "B-ORGANIZATION": "B-ORG", "I-ORGANIZATION": "I-ORG", "E-ORGANIZATION": "I-ORG", "S-ORGANIZATION": "B-ORG",
        "B-LOCATION": "B-LOC", "I-LOCATION": "I-LOC", "E-LOCATION": "I-LOC", "S-LOCATION": "B-LOC",
        "B-MISC": "O", "I-MISC": "O", "E-MISC": "O", "S-MISC": "O"}
    report = m.as_dict()
    assert report["types"] == {"PERSON": "PER", "ORGANIZATION": "ORG", "LOCATION": "LOC"}
    assert report["dropped"] == ["MISC"] and "MISC" in report["description"]
    json.dumps(report)


@pytest.mark.parametrize("labels, scheme, types, dropped", [
    (("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"), "iob2",
     (("PER", "PER"), ("ORG", "ORG"), ("LOC", "LOC")), ()),
    (("O", "U-person", "B-person", "I-person", "L-person", "U-gpe", "L-DATE"), "bilou",
     (("PERSON", "PER"), ("GPE", "LOC")), ("DATE",)),
    (("O", "PER", "Org", "location", "MISC"), "io", (("PER", "PER"), ("ORG", "ORG"), ("LOCATION", "LOC")), ("MISC",)),
    (("O", "b_per", "i_per", "B-Organisation", "I-Organisation"), "iob2",
     (("PER", "PER"), ("ORGANISATION", "ORG")), ()),
])
def test_schemes_case_and_aliases(labels, scheme, types, dropped):
    m = map_labels({str(i): x for i, x in enumerate(labels)})  # config.json keys are strings
    assert (m.scheme, m.types, m.dropped) == (scheme, types, dropped)
    assert m.source == labels and len(m.labels) == len(labels)


def test_identity_and_never_predicted_types():
    ours = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
    assert map_labels(dict(enumerate(ours))).identity
    only_per = map_labels(dict(enumerate(("O", "B-PER", "I-PER", "B-MISC"))))
    assert only_per.unmapped == ("ORG", "LOC") and "never predicted: ORG, LOC" in only_per.describe()


@pytest.mark.parametrize("id2label, needle", [
    ({0: "O", 1: "B-MISC", 2: "I-MISC"}, "found O, B-MISC, I-MISC"),
    ({0: "LABEL_0", 1: "LABEL_1"}, "found LABEL_0, LABEL_1"),
    ({}, "expected 0..n-1"),
    ({0: "O", 2: "B-PER"}, "expected 0..n-1"),
])
def test_no_mappable_label_is_a_clear_error(id2label, needle):
    with pytest.raises(ConfigError) as err:
        map_labels(id2label)
    assert needle in str(err.value)
    if "found" in needle:
        assert "PERSON" in str(err.value) and "GPE" in str(err.value)  # what is accepted


def test_apply_converts_bioes_to_iob2():
    m = map_labels(dict(enumerate(BIOES)))
    got = m.apply(["S-PERSON", "S-PERSON", "B-LOCATION", "E-LOCATION", "O", "E-ORGANIZATION", "B-MISC",
                   "I-PERSON", "E-PERSON"])
    assert got == ["B-PER", "B-PER", "B-LOC", "I-LOC", "O", "B-ORG", "O", "B-PER", "I-PER"]
    with pytest.raises(ConfigError, match="not one of the checkpoint's labels"):
        m.apply(["B-PER"])


_PREFIXES = st.sampled_from(["B", "I", "E", "S", "L", "U", "b", "e", ""])
_TYPES = st.sampled_from(["PER", "person", "ORG", "Organization", "LOC", "gpe", "Location", "MISC", "DATE"])
_LABEL = st.one_of(st.just("O"), st.builds(lambda p, t, sep: f"{p}{sep}{t}" if p else t, _PREFIXES, _TYPES,
                                            st.sampled_from(["-", "_"])))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), labels=st.lists(_LABEL, min_size=1, max_size=12, unique=True))
def test_any_mapped_prediction_is_valid_iob2(data, labels):
    try:
        m = map_labels(dict(enumerate(labels)))
    except ConfigError:
        return  # nothing maps: refused, never a wrong mapping
    assert isinstance(m, LabelMapping) and m.types
    seq = data.draw(st.lists(st.sampled_from(labels), max_size=30))
    got = m.apply(seq)
    assert len(got) == len(seq) and is_valid_iob2(got)


# ------------------------------------------------------------------------------------------- load and predict


def test_load_checkpoint_keeps_its_head_and_labels(bioes_dir):
    model, tokenizer, mapping = load_checkpoint(str(bioes_dir))
    assert model.config.num_labels == len(BIOES) and mapping.source == BIOES
    assert tokenizer.is_fast and not model.training


@pytest.mark.parametrize("favour, want", [
    ("E-PERSON", ["B-PER", "I-PER", "I-PER", "I-PER"]),
    ("S-LOCATION", ["B-LOC", "B-LOC", "B-LOC", "B-LOC"]),
    ("B-MISC", ["O", "O", "O", "O"]),
])
def test_predictions_go_through_the_mapping(tmp_path, favour, want):
    path = save_checkpoint(tmp_path / "favour", BIOES, favour=favour)
    model, tokenizer, mapping = load_checkpoint(str(path))
    words = [["Joan", "viu", "a", "Barcelona"], ["Maria", "treballa", "per", "Nacions"], []]
    tags = predict_tags(model, tokenizer, words, labels=mapping.labels, device="cpu")
    assert tags[:2] == [want, want] and tags[2] == []
    assert all(is_valid_iob2(t) for t in tags)
    with pytest.raises(ConfigError, match="not IOB2"):
        predict_tags(model, tokenizer, words, device="cpu")  # its own labels are not ours
    with pytest.raises(ConfigError, match="outputs"):
        predict_tags(model, tokenizer, words, labels=mapping.labels[:-1], device="cpu")


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(ConfigError, match="without a fine-tuned NER head"):
        load_checkpoint("e5-small")
    with pytest.raises(ConfigError, match="no config.json"):
        load_checkpoint(str(tmp_path))
    misc = save_checkpoint(tmp_path / "misc", ("O", "B-MISC", "I-MISC"))
    with pytest.raises(ConfigError, match="no label of the checkpoint maps"):
        load_checkpoint(str(misc))


def test_checkpoint_options_need_a_loaded_checkpoint(bioes_dir):
    cfg = make_config(str(bioes_dir), "ca", "transfer", sources=("es",))
    with pytest.raises(ConfigError, match="never trained"):
        evaluate(cfg, options=EvalOptions(checkpoint=True))
    with pytest.raises(ConfigError, match="native or transfer"):
        load_checkpoint_model(make_config(str(bioes_dir), "ca", "multi_source", sources=("es", "fr")))
    # an as-is evaluation is its own job: never the rows or predictions of a model fine-tuned from the directory
    plain = [j.id for j in eval_jobs(cfg, ["location_swap"], EvalOptions())]
    as_is = [j.id for j in eval_jobs(cfg, ["location_swap"], EvalOptions(checkpoint=True))]
    assert not set(plain) & set(as_is)


# ------------------------------------------------------------------------------------------------------ the CLI


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.data
def test_eval_checkpoint_cli(capsys, bioes_dir, wikiann_dir, tmp_path):
    cache = tmp_path / "cache"
    base = ["eval", "--checkpoint", str(bioes_dir), "--target", "ca", "--role", "transfer", "--source", "es",
            "--test-limit", "50", "--bootstrap", "0", "--max-train", "200", "--perturb", "location_swap",
            "--data-dir", str(wikiann_dir), "--cache-dir", str(cache)]
    code, out, err = _run(capsys, [*base, "--json"])
    assert code == 0, err
    got = json.loads(out)
    assert got["checkpoint"] == str(bioes_dir.resolve()) and got["role"] == "transfer" and got["sources"] == ["es"]
    assert got["label_mapping"]["dropped"] == ["MISC"]
    assert got["label_mapping"]["types"] == {"PERSON": "PER", "ORGANIZATION": "ORG", "LOCATION": "LOC"}
    rows = got["rows"]
    assert {r["perturbation"] for r in rows} == {"clean", "location_swap"}
    for r in rows:
        assert r["model"] == str(bioes_dir.resolve())
        assert r["f1"] is not None and 0.0 <= r["f1"] <= 1.0
    assert next(r for r in rows if r["perturbation"] == "clean" and r["scope"] == "overall")["n_sentences"] == 50
    assert model_cache(cache).entries() == []  # evaluated as it is: nothing trained or cached as a model

    code, out, err = _run(capsys, base)  # the text report names the mapping
    assert code == 0, err
    assert "checkpoint as transfer" in out and "dropped (→ O): MISC" in out and "PERSON→PER" in out


@pytest.mark.data
def test_eval_checkpoint_rows_match_evaluate(capsys, bioes_dir, wikiann_dir, tmp_path):
    cfg = make_config(str(bioes_dir), "ca", "native", max_train_sentences=200)
    lm = load_checkpoint_model(cfg, device="cpu")
    opts = EvalOptions(test_limit=30, bootstrap=0, checkpoint=True)
    rows = [r for o in evaluate(cfg, [], opts, data_dir=wikiann_dir, cache=tmp_path, loaded=lm, device="cpu")
            for r in o.rows]
    assert rows and all(r["model"] == cfg.model and r["setting"] == "native" for r in rows)
    code, out, err = _run(capsys, ["eval", "--checkpoint", str(bioes_dir), "--target", "ca", "--max-train", "200",
                                   "--test-limit", "30", "--bootstrap", "0", "--data-dir", str(wikiann_dir),
                                   "--cache-dir", str(tmp_path), "--device", "cpu", "--json"])
    assert code == 0, err
    got = json.loads(out)
    assert got["role"] == "native"  # no --source: the checkpoint plays the native model
    assert [(r["scope"], r["f1"]) for r in got["rows"]] == [(r["scope"], r["f1"]) for r in rows]


@pytest.mark.parametrize("extra, needle", [
    (["--role", "transfer", "--source", "es"], "no label of the checkpoint maps to PER, ORG or LOC"),
])
def test_eval_checkpoint_with_only_misc_exits_2(capsys, tmp_path, extra, needle):
    misc = save_checkpoint(tmp_path / "misc", ("O", "B-MISC", "I-MISC", "E-MISC", "S-MISC"))
    code, out, err = _run(capsys, ["eval", "--checkpoint", str(misc), "--target", "ca", *extra,
                                   "--test-limit", "5", "--bootstrap", "0"])
    assert code == 2 and "Traceback" not in out + err
    assert needle in err and "found O, B-MISC" in err and "MISC" in err


@pytest.mark.parametrize("argv, needle", [
    (["--checkpoint", "CKPT", "--model", "tiny", "--source", "es"], "--checkpoint or --model, not both"),
    (["--checkpoint", "CKPT", "--setting", "multi_source", "--source", "es,fr"], "--role"),
    (["--checkpoint", "CKPT", "--role", "distill", "--source", "es,fr"], "unknown role 'distill'"),
    (["--role", "native"], "give --checkpoint too"),
    (["--checkpoint", "CKPT", "--role", "native", "--source", "es"], "native trains on the target only"),
])
def test_eval_checkpoint_usage_errors(capsys, bioes_dir, argv, needle):
    argv = [str(bioes_dir) if a == "CKPT" else a for a in argv]
    code, out, err = _run(capsys, ["eval", "--target", "ca", *argv])
    assert code == 2 and "Traceback" not in out + err
    assert needle in err


@pytest.mark.data
def test_eval_checkpoint_on_a_test_file(capsys, bioes_dir, wikiann_dir, tmp_path):
    """--checkpoint with --test-file (the other half of "bring your own"): a CoNLL-2002-style file with MISC."""
    path = tmp_path / "mine.conll"
    path.write_text("Joan NNP B-PER\nviu VB O\na IN O\nBarcelona NNP B-LOC\n. . O\n\n"
                    "El DT O\nBarça NNP B-ORG\nguanya VB O\nla DT O\nLliga NNP B-MISC\n. . O\n\n", encoding="utf-8")
    code, out, err = _run(capsys, ["eval", "--checkpoint", str(bioes_dir), "--target", "ca", "--role", "transfer",
                                   "--source", "es", "--max-train", "200", "--test-file", str(path), "--bootstrap",
                                   "0", "--data-dir", str(wikiann_dir), "--cache-dir", str(tmp_path / "c"), "--json"])
    assert code == 0, err
    got = json.loads(out)
    assert got["label_mapping"]["dropped"] == ["MISC"] and got["test_file"]["sentences"] == 2
    assert all(r["f1"] is not None for r in got["rows"])


def test_a_missing_checkpoint_directory_is_named_before_any_hub_lookup(tmp_path):
    from xner_core.errors import ConfigError
    from xner_core.models.checkpoint import load_checkpoint

    for name in (str(tmp_path / "nope"), "./not-here", "a/b/c"):
        with pytest.raises(ConfigError, match="no such checkpoint directory"):
            load_checkpoint(name)
