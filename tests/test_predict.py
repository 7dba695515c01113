"""Tests for stage 4, predict: alignment, order, windowing, text splitting, IOB2 repair, the ONNX backend.

Most tests use a "spotter": the tiny BERT with its encoder sub-layers and position embeddings zeroed, so each
sub-token's hidden state is a fixed pattern chosen by its token id (and, optionally, its position); the hand-set
head then reads a known label off that pattern. Its predictions are exactly predictable, so the tests can
compare whole tag sequences instead of lengths.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import LABEL2ID, LABELS, is_valid_iob2, repair_iob2, spans
from xner_core.errors import ConfigError
from xner_core.inference.predict import (
    EntitySpan,
    Prediction,
    _windows,
    max_sequence_length,
    predict_entities,
    predict_tags,
)
from xner_core.inference.text import join_words, predict_text, split_words
from xner_core.models.registry import build_tiny
from xner_core.numerics import resolve_device

HIDDEN = 32


def _pattern(j: int) -> torch.Tensor:
    """Row j+1 of a 32x32 Sylvester-Hadamard matrix: zero-mean +-1 vectors, orthogonal for different j."""
    i = j + 1
    return torch.tensor([(-1.0) ** bin(i & k).count("1") for k in range(HIDDEN)])


@pytest.fixture(scope="module")
def tiny():
    """A fresh tiny model + tokenizer for this module (the session fixture must not be mutated)."""
    return build_tiny(hidden_size=HIDDEN)


def make_spotter(tiny, words: dict[str, str], positions: dict[int, str] | None = None):
    """Build a model that tags each sub-token by its id (`words`: piece -> label; others "O").

    `positions` adds a label that wins at given input positions whatever the token (to detect window edges).
    """
    base, tok = tiny
    model = copy.deepcopy(base)
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            for lin in (layer.attention.output.dense, layer.output.dense):
                lin.weight.zero_()
                lin.bias.zero_()
        emb = model.bert.embeddings
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.word_embeddings.weight[:] = _pattern(LABEL2ID["O"])
        for piece, label in words.items():
            emb.word_embeddings.weight[tok.convert_tokens_to_ids(piece)] = _pattern(LABEL2ID[label])
        for pos, label in (positions or {}).items():
            emb.position_embeddings.weight[pos] = 3 * _pattern(LABEL2ID[label])
        model.classifier.weight[:] = torch.stack([_pattern(j) for j in range(len(LABELS))])
        model.classifier.bias.zero_()
    return model, tok


# ------------------------------------------------------------------------------------------- alignment


def test_spotter_tags_only_the_target_word(tiny):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC"})
    assert predict_tags(model, tok, [["Paris", "est", "la", "capitale", "."]]) == [["B-LOC", "O", "O", "O", "O"]]


def test_first_sub_token_decides_a_split_word(tiny):
    # "Capitalization" -> Ca ##pital ##i ##z ##a ##ti ##on: only "Ca" counts for the word.
    words = [["Capitalization", "Paris", "est"]]
    on_first, tok = make_spotter(tiny, {"Ca": "B-ORG", "Paris": "B-LOC"})
    assert predict_tags(on_first, tok, words) == [["B-ORG", "B-LOC", "O"]]
    on_inner, tok = make_spotter(tiny, {"##pital": "B-ORG", "##on": "B-PER", "Paris": "B-LOC"})
    assert predict_tags(on_inner, tok, words) == [["O", "B-LOC", "O"]]


def test_words_without_sub_tokens_get_o_and_keep_alignment(tiny):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC", "Madrid": "B-LOC"})
    words = [["Paris", "", "est", " ", "Madrid", "\u3000"]]
    assert predict_tags(model, tok, words) == [["B-LOC", "O", "O", "O", "B-LOC", "O"]]


def test_empty_input_and_empty_sentences(tiny):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC"})
    assert predict_tags(model, tok, []) == []
    assert predict_tags(model, tok, [[], ["Paris"], []]) == [[], ["B-LOC"], []]
    assert predict_tags(model, tok, [[""]]) == [["O"]]


def test_sentence_objects_are_accepted(tiny):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC"})
    s = Sentence(("Paris", "est"), ("O", "O"), "fr", "s1")
    assert predict_tags(model, tok, [s]) == [["B-LOC", "O"]]


# ------------------------------------------------------------------------------------------- order


def _varied_sentences() -> list[list[str]]:
    pool = ["Paris", "est", "la", "capitale", "de", "France", "Capitalization", "Madrid", "Barcelona", "."]
    rng = np.random.default_rng(0)
    return [[pool[j] for j in rng.integers(0, len(pool), size=n)] for n in rng.integers(1, 25, size=70)]


def test_order_is_restored_after_length_sorting(tiny):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC", "Madrid": "B-LOC", "Ca": "B-ORG"})
    sents = _varied_sentences()
    want = [["B-LOC" if w in ("Paris", "Madrid") else "B-ORG" if w == "Capitalization" else "O" for w in s]
            for s in sents]
    for bs in (1, 7, 32):
        assert predict_tags(model, tok, sents, batch_size=bs) == want


def test_random_model_same_tags_for_any_batch_size(tiny):
    model, tok = tiny
    sents = _varied_sentences()
    one = predict_tags(model, tok, sents, batch_size=1)
    assert predict_tags(model, tok, sents, batch_size=32) == one
    assert [len(t) for t in one] == [len(s) for s in sents]
    assert all(is_valid_iob2(t) for t in one)
    single = [predict_tags(model, tok, [s])[0] for s in sents[:10]]
    assert single == one[:10]


def test_training_mode_is_restored(tiny):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC"})
    model.train()
    assert predict_tags(model, tok, [["Paris"]]) == [["B-LOC"]]  # dropout was off during the forward
    assert model.training


# ------------------------------------------------------------------------------------------- windows


def _long_sentence(n: int = 300) -> list[str]:
    filler = ["est", "la", "Capitalization", "de", "capitale", "Madrid"]
    return ["Paris" if i % 7 == 3 else filler[i % len(filler)] for i in range(n)]


@pytest.mark.parametrize("max_length,stride", [(None, None), (None, 0), (40, None), (40, 5), (12, 3)])
def test_long_sentence_is_windowed_not_truncated(tiny, max_length, stride):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC", "Madrid": "B-ORG"})
    words = _long_sentence()
    n_sub = len(tok(words, is_split_into_words=True)["input_ids"])
    assert n_sub > 3 * 128  # far beyond the 128 positions of the tiny model
    tags = predict_tags(model, tok, [words, ["Paris"]], max_length=max_length, stride=stride)
    want = ["B-LOC" if w == "Paris" else "B-ORG" if w == "Madrid" else "O" for w in words]
    assert tags == [want, ["B-LOC"]]


def test_stitching_takes_each_word_from_its_most_central_window(tiny):
    # Positions 1-3 (just after [CLS]) say B-PER whatever the word: inside every window after the first, the
    # words at its left edge would be B-PER. Stitching must take them from the previous window instead, so
    # only the sentence's own first words are B-PER.
    model, tok = make_spotter(tiny, {}, positions={1: "B-PER", 2: "B-PER", 3: "B-PER"})
    words = ["est", "la", "de"] * 100
    tags = predict_tags(model, tok, [words])[0]
    assert tags[:3] == ["B-PER"] * 3
    assert tags[3:] == ["O"] * (len(words) - 3)


def test_a_word_longer_than_a_window_keeps_its_place(tiny):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC", "Ca": "B-ORG"})
    giant = "Capitalization" + "ization" * 12  # 98 characters (WordPiece's limit is 100), 67 pieces
    assert len(tok([giant], is_split_into_words=True)["input_ids"]) > 40
    tags = predict_tags(model, tok, [["Paris", giant, "est", "Paris"]], max_length=40)
    assert tags == [["B-LOC", "B-ORG", "O", "B-LOC"]]


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 10), min_size=1, max_size=60), room=st.integers(10, 40),
       stride=st.integers(0, 40))
def test_windows_cover_every_word_within_room(lengths, room, stride):
    wins = _windows(lengths, room, min(stride, room - 1))
    assert wins[0][0] == 0 and wins[-1][1] == len(lengths)
    for (a, b), (a2, b2) in zip(wins, wins[1:]):
        assert a < a2 <= b < b2  # progress, no gap
        assert sum(lengths[a2:b]) <= stride  # overlap bounded
    for a, b in wins:
        assert b > a and sum(lengths[a:b]) <= room


def test_max_sequence_length_takes_the_smallest_limit(tiny):
    from types import SimpleNamespace

    model, tok = tiny
    assert max_sequence_length(model, tok) == 128
    assert max_sequence_length(model, tok, 16) == 16
    xlmr = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=514, model_type="xlm-roberta",
                                                  pad_token_id=1))
    assert max_sequence_length(xlmr, SimpleNamespace(model_max_length=int(1e30))) == 512
    with pytest.raises(ConfigError, match="max_length"):
        max_sequence_length(model, tok, 0)


# ------------------------------------------------------------------------------------------- IOB2 repair


@pytest.mark.parametrize("raw,fixed", [
    ("I-LOC", "B-LOC"),
    ("O I-PER I-PER", "O B-PER I-PER"),
    ("B-PER I-LOC I-LOC", "B-PER B-LOC I-LOC"),
    ("B-ORG I-ORG O I-ORG", "B-ORG I-ORG O B-ORG"),
    ("B-LOC B-LOC I-LOC", "B-LOC B-LOC I-LOC"),
    ("", ""),
])
def test_repair_iob2(raw, fixed):
    assert repair_iob2(raw.split()) == fixed.split()


@given(st.lists(st.sampled_from(LABELS), max_size=30))
def test_repair_keeps_entities_and_makes_valid_iob2(tags):
    fixed = repair_iob2(tags)
    assert is_valid_iob2(fixed)
    assert spans(fixed) == spans(tags)


def test_predictions_are_repaired(tiny):
    model, tok = make_spotter(tiny, {"Paris": "I-LOC", "Madrid": "I-PER"})
    tags = predict_tags(model, tok, [["Paris", "Paris", "est", "Paris", "Madrid"]])
    assert tags == [["B-LOC", "I-LOC", "O", "B-LOC", "B-PER"]]


# ------------------------------------------------------------------------------------------- probs, entities


def test_return_probs(tiny):
    model, tok = make_spotter(tiny, {"Paris": "B-LOC"})
    out = predict_tags(model, tok, [["Paris", "", "est"], []], return_probs=True)
    assert isinstance(out, Prediction)
    assert out.tags == [["B-LOC", "O", "O"], []]
    assert out.probs[0][1] == 0.0 and out.probs[1] == []
    assert out.probs[0][0] > 0.99 and out.probs[0][2] > 0.99


def test_predict_entities(tiny):
    model, tok = make_spotter(tiny, {"New": "B-LOC", "York": "I-LOC", "John": "B-PER", "東": "B-LOC",
                                     "京": "I-LOC"})
    got = predict_entities(model, tok, [["John", "works", "in", "New", "York", "."], ["the"], ["東", "京", "は"]])
    assert got == [[EntitySpan(0, 1, "PER", "John"), EntitySpan(3, 5, "LOC", "New York")], [],
                   [EntitySpan(0, 2, "LOC", "東京")]]


# ------------------------------------------------------------------------------------------- text


@pytest.mark.parametrize("words,text", [
    (["New", "York"], "New York"),
    (["東", "京"], "東京"),
    (["東", "京", "Tower"], "東京 Tower"),
    (["ก", "รุ"], "กรุ"),
    (["", "a"], " a"),
    ([], ""),
])
def test_join_words(words, text):
    assert join_words(words) == text


@pytest.mark.parametrize("text,words", [
    ("東京は日本の首都です。", ["東", "京", "は", "日", "本", "の", "首", "都", "で", "す", "。"]),
    ("القاهرة، هي عاصمة مصر؟", ["القاهرة", "،", "هي", "عاصمة", "مصر", "؟"]),
    ("(Paris)", ["(", "Paris", ")"]),
    ("Roma è la capitale d'Italia, 3.5 km... «ja»", ["Roma", "è", "la", "capitale", "d'Italia", ",", "3.5", "km",
                                                     "...", "«", "ja", "»"]),
    ("नई दिल्ली भारत की राजधानी है।", ["नई", "दिल्ली", "भारत", "की", "राजधानी", "है", "।"]),
    ("می‌خواهم تهران", ["می‌خواهم", "تهران"]),  # ZWNJ stays inside the Persian word
    ("ที่ไทย", ["ที่", "ไ", "ท", "ย"]),  # Thai: one word per character with its marks
    ("Paris\u200bLondon  \t", ["Paris", "London"]),
    ("2024年に", ["2024", "年", "に"]),
    ("skol-dañs -x", ["skol-dañs", "-", "x"]),
    ("", []),
    ("   ", []),
])
def test_split_words(text, words):
    got, offsets = split_words(text)
    assert got == words
    assert [text[s:e] for s, e in offsets] == words


def test_predict_text_scripts_without_spaces_and_attached_punctuation(tiny):
    model, tok = make_spotter(tiny, {"東": "B-LOC", "京": "I-LOC", "القاهرة": "B-LOC", "Paris": "B-LOC"})
    ja = predict_text(model, tok, "東京は日本の首都です。")
    assert ja.tags[:3] == ("B-LOC", "I-LOC", "O") and set(ja.tags[3:]) == {"O"}
    assert ja.entities == [EntitySpan(0, 2, "LOC", "東京")]
    ar = predict_text(model, tok, "القاهرة، هي عاصمة مصر.")
    assert ar.tokens[:2] == ("القاهرة", "،")
    assert ar.entities == [EntitySpan(0, 7, "LOC", "القاهرة")]
    fr = predict_text(model, tok, "(Paris)")
    assert fr.tags == ("O", "B-LOC", "O")
    assert fr.entities == [EntitySpan(1, 6, "LOC", "Paris")]
    assert predict_text(model, tok, "  ").tags == ()


# ------------------------------------------------------------------------------------------- errors, device


def test_bad_inputs_raise_config_errors(tiny):
    model, tok = tiny
    with pytest.raises(ConfigError, match="predict_text"):
        predict_tags(model, tok, ["Paris est"])
    with pytest.raises(ConfigError, match="batch_size"):
        predict_tags(model, tok, [["Paris"]], batch_size=0)
    with pytest.raises(ConfigError, match="backend"):
        predict_tags(model, tok, [["Paris"]], backend="tensorrt")
    unlabeled = copy.deepcopy(model)
    unlabeled.config.id2label = {i: f"LABEL_{i}" for i in range(len(LABELS))}
    with pytest.raises(ConfigError, match="IOB2"):
        predict_tags(unlabeled, tok, [["Paris"]])


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")


# ------------------------------------------------------------------------------------------- ONNX backend


def test_onnx_fp32_export_matches_torch_logits(tiny, tmp_path):
    from xner_core.inference.onnx import OnnxTokenClassifier, export_onnx

    model, tok = tiny
    path = export_onnx(model, tmp_path / "m.onnx")
    onnx_model = OnnxTokenClassifier(path, config=model.config)
    enc = tok([["Paris", "est", "la", "capitale"], ["Capitalization"] * 10, ["a"]], is_split_into_words=True,
              padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model.eval()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    got = onnx_model(enc["input_ids"], enc["attention_mask"])
    mask = enc["attention_mask"].bool()
    assert got.shape == want.shape
    assert torch.allclose(got[mask], want[mask], atol=1e-4)


def test_onnx_int8_backend_gives_the_torch_tags_and_is_cached(tiny, tmp_path, monkeypatch):
    import xner_core.inference.onnx as ob

    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path))
    model, tok = make_spotter(tiny, {"Paris": "B-LOC", "Madrid": "B-ORG", "Ca": "B-PER"})
    sents = _varied_sentences() + [_long_sentence()]
    want = predict_tags(model, tok, sents)
    root_handlers = list(logging.getLogger().handlers)
    assert predict_tags(model, tok, sents, backend="onnx-int8") == want
    assert logging.getLogger().handlers == root_handlers  # quantizing left the caller's logging alone
    path = ob.onnx_int8_path(model)
    assert path.is_file() and path.parent.parent == tmp_path / "onnx"
    assert not [p for p in path.parent.parent.iterdir() if p.name.startswith(".")]  # no temp folder left

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although cached")

    monkeypatch.setattr(ob, "export_onnx_int8", no_export)
    onnx_model = ob.load_onnx_int8(model)
    assert predict_tags(onnx_model, tok, sents) == want  # an OnnxTokenClassifier as the model
    assert predict_tags(onnx_model, tok, sents, return_probs=True).tags == want
    with pytest.raises(ConfigError, match="CPU"):
        predict_tags(onnx_model, tok, sents, device="cuda")


@pytest.mark.data
def test_real_wikiann_sentences_keep_alignment(tiny, wikiann_dir):
    from xner_core.corpus.wikiann import load_wikiann

    model, tok = tiny
    corpus = load_wikiann("ar", "test", wikiann_dir, limit=300)
    tags = predict_tags(model, tok, corpus)
    assert [len(t) for t in tags] == [len(s) for s in corpus]
    assert all(is_valid_iob2(t) for t in tags)
    assert predict_tags(model, tok, corpus, batch_size=5) == tags


def test_fingerprint_follows_the_weights(tiny):
    from xner_core.inference.onnx import model_fingerprint

    model, _ = tiny
    other = copy.deepcopy(model)
    assert model_fingerprint(other) == model_fingerprint(model)
    with torch.no_grad():
        other.classifier.bias[0] += 1.0
    assert model_fingerprint(other) != model_fingerprint(model)



def test_onnx_twin_is_reused_until_the_weights_change(tiny, tmp_path, monkeypatch):
    import xner_core.inference.onnx as ob

    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path))
    model, tok = make_spotter(tiny, {"Paris": "B-LOC"})
    sents = _varied_sentences()
    loads = []
    real = ob.load_onnx_int8
    monkeypatch.setattr(ob, "load_onnx_int8", lambda m, *a, **k: loads.append(1) or real(m, *a, **k))
    first = predict_tags(model, tok, sents, backend="onnx-int8")
    assert predict_tags(model, tok, sents, backend="onnx-int8") == first and len(loads) == 1  # no re-hash
    with torch.no_grad():
        model.classifier.bias[LABELS.index("B-PER")] += 50.0  # every word becomes B-PER (or I-PER)
    changed = predict_tags(model, tok, sents, backend="onnx-int8")
    assert len(loads) == 2 and changed != first
    assert all(t.endswith("-PER") for row in changed for t in row)
