"""Tests for xner_core.metrics.seen: scores on entities seen in the training data vs unseen ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import ENTITY_TYPES, is_valid_iob2, span_tags
from xner_core.metrics.scores import score
from xner_core.metrics.seen import restrict_tags, seen_surfaces

TRAIN = [Sentence(("Juan", "vive", "en", "Madrid"), ("B-PER", "O", "O", "B-LOC"), "es"),
         Sentence(("la", "ONU", "y", "Nueva", "York"), ("O", "B-ORG", "O", "B-LOC", "I-LOC"), "es")]


def test_seen_surfaces_are_chunk_strings_of_any_type():
    assert seen_surfaces(TRAIN) == {"Juan", "Madrid", "ONU", "Nueva York"}


def test_seen_and_unseen_scores_by_hand():
    tokens = [("Juan", "visita", "Girona", "y", "Madrid"), ("Nueva", "York", "y", "Pere")]
    gold = [["B-PER", "O", "B-LOC", "O", "B-LOC"], ["B-LOC", "I-LOC", "O", "B-PER"]]
    pred = [["B-PER", "O", "B-LOC", "O", "O"], ["B-LOC", "O", "O", "B-ORG"]]
    surfaces = seen_surfaces(TRAIN)
    seen_gold, seen_pred = restrict_tags(tokens, gold, surfaces, True), restrict_tags(tokens, pred, surfaces, True)
    assert seen_gold == [["B-PER", "O", "O", "O", "B-LOC"], ["B-LOC", "I-LOC", "O", "O"]]
    # "Nueva" alone is not a seen surface form: the predicted B-LOC on it is an unseen (wrong) prediction
    assert seen_pred == [["B-PER", "O", "O", "O", "O"], ["O", "O", "O", "O"]]
    s = score(seen_gold, seen_pred).overall
    assert (s.precision, s.recall) == (1.0, 1 / 3)  # Juan found; Madrid and Nueva York missed
    unseen = score(restrict_tags(tokens, gold, surfaces, False), restrict_tags(tokens, pred, surfaces, False)).overall
    assert (unseen.precision, unseen.recall) == (1 / 3, 1 / 2)  # Girona right; Nueva and Pere/ORG wrong


word = st.sampled_from(["Juan", "Madrid", "ONU", "Nueva", "York", "Pere", "la", "y", "en"])
segment = st.one_of(st.tuples(st.just("O"), st.lists(word, min_size=1, max_size=1)),
                    st.tuples(st.sampled_from(ENTITY_TYPES), st.lists(word, min_size=1, max_size=2)))


@st.composite
def tagged(draw: st.DrawFn, n: int) -> list[list[str]]:
    out = []
    for _ in range(n):
        tags: list[str] = []
        for kind, ws in draw(st.lists(segment, max_size=6)):
            tags += ["O"] * len(ws) if kind == "O" else span_tags(kind, len(ws))
        out.append(tags)
    return out


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 5))
def test_the_two_groups_partition_every_count(data, n):
    gold = data.draw(tagged(n))
    tokens = [data.draw(st.lists(word, min_size=len(g), max_size=len(g))) for g in gold]
    pred = [data.draw(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"]), min_size=len(g),
                               max_size=len(g))) for g in gold]
    from xner_core.corpus.tags import repair_iob2

    pred = [repair_iob2(p) for p in pred]
    surfaces = seen_surfaces(TRAIN)
    whole = score(gold, pred)
    parts = [score(restrict_tags(tokens, gold, surfaces, flag), restrict_tags(tokens, pred, surfaces, flag))
             for flag in (True, False)]
    assert sum(p.gold_entities for p in parts) == whole.gold_entities
    assert sum(p.pred_entities for p in parts) == whole.pred_entities
    # a correct prediction has its gold chunk's surface form, so true positives split too
    tp = lambda s: round(s.overall.recall * s.gold_entities)  # noqa: E731
    assert sum(tp(p) for p in parts) == tp(whole)
    for flag in (True, False):
        assert all(is_valid_iob2(t) for t in restrict_tags(tokens, gold, surfaces, flag))
