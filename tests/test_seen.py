"""Tests for xner_core.metrics.seen: scores on entities seen in the training data vs unseen ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import ENTITY_TYPES, is_valid_iob2, span_tags
from xner_core.metrics.scores import score
from xner_core.metrics.seen import (
    BUCKET_SCOPES,
    FREQUENCY_SCOPES,
    LENGTH_SCOPES,
    frequency_bucket,
    length_bucket,
    restrict_tags,
    scope_groups,
    seen_surfaces,
    surface_counts,
)

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


def test_buckets_by_length_and_training_frequency_by_hand():
    train = TRAIN + [Sentence(("Madrid", "y", "Madrid"), ("B-LOC", "O", "B-LOC"), "es")] * 5
    counts = surface_counts(train)
    assert counts == {"Juan": 1, "Madrid": 11, "ONU": 1, "Nueva York": 1}
    assert [frequency_bucket(n) for n in (0, 1, 2, 9, 10, 50)] == [None, "freq1", "freq2-9", "freq2-9", "freq10+",
                                                                   "freq10+"]
    assert [length_bucket(("a",) * n) for n in (1, 2, 3, 7)] == ["len1", "len2", "len3+", "len3+"]
    tokens = [("Juan", "visita", "Nueva", "York", "y", "Madrid"), ("Casa", "de", "Campo", "y", "Pere")]
    gold = [["B-PER", "O", "B-LOC", "I-LOC", "O", "B-LOC"], ["B-LOC", "I-LOC", "I-LOC", "O", "B-PER"]]
    groups = scope_groups(tokens, gold, gold, counts)
    assert list(groups) == ["seen", "unseen", *BUCKET_SCOPES]
    assert groups["len2"][0] == [["O", "O", "B-LOC", "I-LOC", "O", "O"], ["O"] * 5]
    assert groups["len3+"][0] == [["O"] * 6, ["B-LOC", "I-LOC", "I-LOC", "O", "O"]]
    assert groups["freq10+"][0] == [["O"] * 5 + ["B-LOC"], ["O"] * 5]
    assert groups["freq1"][0][0] == ["B-PER", "O", "B-LOC", "I-LOC", "O", "O"]  # Juan and Nueva York, once each
    assert groups["unseen"][0][1] == gold[1]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 5))
def test_each_bucket_family_partitions_every_count(data, n):
    from xner_core.corpus.tags import repair_iob2

    gold = data.draw(tagged(n))
    tokens = [data.draw(st.lists(word, min_size=len(g), max_size=len(g))) for g in gold]
    pred = [repair_iob2(data.draw(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"]), min_size=len(g),
                                           max_size=len(g)))) for g in gold]
    counts = surface_counts(TRAIN + [Sentence(("Madrid",), ("B-LOC",), "es")] * 12)
    groups = scope_groups(tokens, gold, pred, counts)
    whole = score(gold, pred)
    tp = lambda s: round(s.overall.recall * s.gold_entities)  # noqa: E731
    for family in (LENGTH_SCOPES, ("unseen", *FREQUENCY_SCOPES)):
        parts = [score(*groups[scope]) for scope in family]
        assert sum(p.gold_entities for p in parts) == whole.gold_entities
        assert sum(p.pred_entities for p in parts) == whole.pred_entities
        assert sum(tp(p) for p in parts) == tp(whole)
        assert all(is_valid_iob2(t) for scope in family for t in groups[scope][1])
