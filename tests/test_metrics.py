"""Tests for xner_core.metrics.scores, .bootstrap and .breakdown: hand cases, differentials against seqeval
and conlleval, bootstrap, breakdown."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report
from seqeval.metrics.v1 import precision_recall_fscore_support as prfs_v1
from seqeval.scheme import IOB2

from xner_core.corpus.tags import ENTITY_TYPES, LABELS, is_valid_iob2, spans
from xner_core.errors import ConfigError, DataError
from xner_core.metrics.bootstrap import (
    _RESAMPLE_CHUNK,
    DropCI,
    _resampled_totals,
    bootstrap_ci,
    bootstrap_from_counts,
    paired_bootstrap_drop,
)
from xner_core.metrics.breakdown import ErrorCounts, breakdown_table, error_breakdown
from xner_core.metrics.scores import MetricsInputError, TypeScore, _chunks, score, scores_table, sentence_counts

pytestmark = pytest.mark.filterwarnings("ignore")  # seqeval's UndefinedMetricWarning on empty classes


def sents(*rows: str) -> list[list[str]]:
    """Space-separated tag rows -> seqeval's list[list[str]] ('' is an empty sentence)."""
    return [row.split() for row in rows]


# --------------------------------------------------------------------------------------------------------------
# Hand cases with exact numbers

# (id, gold, pred, strict, overall (P, R, F1, support), {type: (P, R, F1, support)} for the types to check)
HAND_CASES = [
    ("perfect", sents("B-PER I-PER O B-LOC"), sents("B-PER I-PER O B-LOC"), True,
     (1.0, 1.0, 1.0, 2), {"PER": (1.0, 1.0, 1.0, 1), "LOC": (1.0, 1.0, 1.0, 1), "ORG": (0.0, 0.0, 0.0, 0)}),
    ("boundary error is a miss and a false alarm", sents("B-PER I-PER O"), sents("B-PER O O"), True,
     (0.0, 0.0, 0.0, 1), {"PER": (0.0, 0.0, 0.0, 1)}),
    ("type error", sents("B-ORG I-ORG", "B-LOC"), sents("B-LOC I-LOC", "B-LOC"), True,
     (0.5, 0.5, 0.5, 2), {"ORG": (0.0, 0.0, 0.0, 1), "LOC": (0.5, 1.0, 2 / 3, 1)}),
    ("B B is two chunks", sents("B-PER B-PER"), sents("B-PER I-PER"), True,
     (0.0, 0.0, 0.0, 2), {"PER": (0.0, 0.0, 0.0, 2)}),
    ("micro average", sents("B-PER O B-ORG O B-LOC", "B-PER I-PER"), sents("B-PER O B-ORG O O", "B-PER O"), True,
     (2 / 3, 0.5, 4 / 7, 4), {"PER": (0.5, 0.5, 0.5, 2), "ORG": (1.0, 1.0, 1.0, 1), "LOC": (0.0, 0.0, 0.0, 1)}),
    ("stray I ignored in strict mode", sents("B-PER I-PER O"), sents("I-PER I-PER O"), True,
     (0.0, 0.0, 0.0, 1), {"PER": (0.0, 0.0, 0.0, 1)}),
    ("stray I opens a chunk in default mode", sents("B-PER I-PER O"), sents("I-PER I-PER O"), False,
     (1.0, 1.0, 1.0, 1), {"PER": (1.0, 1.0, 1.0, 1)}),
    ("I of another type ends the chunk (strict)", sents("B-PER I-PER"), sents("B-PER I-ORG"), True,
     (0.0, 0.0, 0.0, 1), {"PER": (0.0, 0.0, 0.0, 1), "ORG": (0.0, 0.0, 0.0, 0)}),
    ("I of another type opens a chunk (default)", sents("B-PER B-ORG"), sents("B-PER I-ORG"), False,
     (1.0, 1.0, 1.0, 2), {"PER": (1.0, 1.0, 1.0, 1), "ORG": (1.0, 1.0, 1.0, 1)}),
    ("no entities anywhere", sents("O O", ""), sents("O O", ""), True,
     (0.0, 0.0, 0.0, 0), {t: (0.0, 0.0, 0.0, 0) for t in ENTITY_TYPES}),
    ("only predictions", sents("O O"), sents("B-LOC O"), True,
     (0.0, 0.0, 0.0, 0), {"LOC": (0.0, 0.0, 0.0, 0)}),
    ("extra type is scored and listed last", sents("B-MISC O B-PER"), sents("B-MISC O O"), True,
     (1.0, 0.5, 2 / 3, 2), {"MISC": (1.0, 1.0, 1.0, 1), "PER": (0.0, 0.0, 0.0, 1)}),
]


@pytest.mark.parametrize(("gold", "pred", "strict", "overall", "per_type"),
                         [c[1:] for c in HAND_CASES], ids=[c[0] for c in HAND_CASES])
def test_hand_cases(gold, pred, strict, overall, per_type):
    s = score(gold, pred, strict=strict)
    assert (s.overall.precision, s.overall.recall, s.overall.f1, s.overall.support) == pytest.approx(overall)
    for etype, expected in per_type.items():
        ts = s.type_score(etype)
        assert (ts.precision, ts.recall, ts.f1, ts.support) == pytest.approx(expected)
    assert s.types[:3] == ENTITY_TYPES  # PER, ORG, LOC always first, in that order
    assert s.sentences == len(gold)


def test_counts_and_extra_type_order():
    s = score(sents("B-MISC O B-PER", "B-ORG"), sents("B-MISC O O", "B-ZZZ"))
    assert s.types == ("PER", "ORG", "LOC", "MISC", "ZZZ")
    assert (s.gold_entities, s.pred_entities) == (3, 2)
    assert s.by_type["ZZZ"] == TypeScore(0.0, 0.0, 0.0, 0)


def test_scores_are_frozen_and_hashable():
    s = score(sents("B-PER"), sents("B-PER"))
    assert hash(s) == hash(score(sents("B-PER"), sents("B-PER")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.sentences = 3  # type: ignore[misc]
    with pytest.raises(ConfigError, match="unknown entity type 'XYZ'; choose one of: LOC, ORG, PER"):
        s.type_score("XYZ")


def test_accepts_tuples_like_corpus_tags():
    assert score((("B-PER", "O"),), (("B-PER", "O"),)).overall.f1 == 1.0


def test_scores_table_rows():
    rows = scores_table(score(sents("B-PER O B-ORG O B-LOC", "B-PER I-PER"), sents("B-PER O B-ORG O O", "B-PER O")))
    assert [r["scope"] for r in rows] == ["overall", "PER", "ORG", "LOC"]
    assert rows[0] == {"scope": "overall", "precision": pytest.approx(2 / 3), "recall": 0.5,
                       "f1": pytest.approx(4 / 7), "support": 4}
    assert rows[3] == {"scope": "LOC", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


# --------------------------------------------------------------------------------------------------------------
# Input validation

BAD_INPUTS = [
    ("sentence count", sents("O"), sents("O", "O"), r"gold has 1 sentences but predictions have 2"),
    ("length", sents("O", "O O", "O O O"), sents("O", "O", "O"),
     r"^sentence 1 \(0-based\): gold has 2 tags but predictions have 1"),
    ("BIOES tag", sents("E-PER"), sents("O"), r"invalid tag 'E-PER' at sentence 0, token 0"),
    ("no type", sents("O B-"), sents("O O"), r"invalid tag 'B-' at sentence 0, token 1"),
    ("bare type", sents("O"), sents("PER"), r"invalid tag 'PER' at sentence 0, token 0"),
    ("lower-case prefix", sents("O", "O b-LOC"), sents("O", "O O"), r"invalid tag 'b-LOC' at sentence 1, token 1"),
]


@pytest.mark.parametrize(("gold", "pred", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
@pytest.mark.parametrize("fn", [score, error_breakdown, sentence_counts, bootstrap_ci])
def test_bad_inputs_raise_data_error(fn, gold, pred, message):
    with pytest.raises(MetricsInputError, match=message) as info:
        fn(gold, pred)
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------------------------------------
# Differential tests against seqeval (strict IOB2 and default mode) and conlleval

EXTRA_LABELS = LABELS + ("B-MISC", "I-MISC")


@st.composite
def tag_pairs(draw, labels=LABELS, max_sents=6, max_len=9):
    """Aligned (gold, pred): arbitrary (often invalid) tags; pred is independent or a mutation of gold."""
    lengths = draw(st.lists(st.integers(0, max_len), min_size=1, max_size=max_sents))  # seqeval rejects []
    gold = [draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)) for n in lengths]
    if draw(st.booleans()):
        pred = [draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)) for n in lengths]
    else:  # mostly-right predictions, so exact matches are frequent
        pred = [[draw(st.sampled_from(labels)) if draw(st.integers(0, 3)) == 0 else t for t in g] for g in gold]
    return gold, pred


def _assert_matches_seqeval(gold, pred, strict: bool) -> None:
    kw = {"mode": "strict", "scheme": IOB2} if strict else {}
    report = classification_report(gold, pred, output_dict=True, zero_division=0, **kw)
    ours = score(gold, pred, strict=strict)
    micro = report["micro avg"]
    # Same arithmetic as seqeval, so equality is exact.
    assert (ours.overall.precision, ours.overall.recall, ours.overall.f1, ours.overall.support) == (
        micro["precision"], micro["recall"], micro["f1-score"], micro["support"])
    seq_types = {k for k in report if not k.endswith(" avg")}
    assert seq_types <= set(ours.types)
    for etype, ts in ours.per_type:
        if etype in seq_types:
            r = report[etype]
            assert (ts.precision, ts.recall, ts.f1, ts.support) == (
                r["precision"], r["recall"], r["f1-score"], r["support"])
        else:
            assert ts == TypeScore(0.0, 0.0, 0.0, 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag_pairs(labels=EXTRA_LABELS))
def test_matches_seqeval_strict_classification_report(pair):
    _assert_matches_seqeval(*pair, strict=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag_pairs(labels=EXTRA_LABELS))
def test_matches_seqeval_default_mode(pair):
    _assert_matches_seqeval(*pair, strict=False)


@settings(max_examples=100, deadline=None)
@given(tag_pairs())
def test_matches_seqeval_precision_recall_fscore_support(pair):
    gold, pred = pair
    ours = score(gold, pred)
    p, r, f, s = prfs_v1(gold, pred, average="micro", scheme=IOB2, zero_division=0)
    assert (ours.overall.precision, ours.overall.recall, ours.overall.f1, ours.overall.support) == (p, r, f, s)
    p, r, f, s = prfs_v1(gold, pred, average=None, scheme=IOB2, zero_division=0)
    counts = sentence_counts(gold, pred)
    present = sorted(t for k, t in enumerate(counts.types) if counts.n_gold[:, k].sum() + counts.n_pred[:, k].sum())
    assert [ours.type_score(t).precision for t in present] == list(p)
    assert [ours.type_score(t).recall for t in present] == list(r)
    assert [ours.type_score(t).f1 for t in present] == list(f)
    assert [ours.type_score(t).support for t in present] == list(s)


def _conlleval_counts(gold, pred) -> dict[str, tuple[int, int, int]]:
    """Chunk counts (correct, gold, guessed) per type, following conlleval.pl's streaming algorithm.

    conlleval reads token lines in order with a sentence break counted as an O line, keeps one 'the current
    chunks agree so far' flag, and counts a correct chunk when both chunks end together with equal types. It never
    builds chunk sets, so it is an independent check of the set-based counting in xner_core.metrics.scores.
    """

    def split(tag: str) -> tuple[str, str]:
        prefix, _, etype = tag.partition("-")
        return prefix, etype

    def ends(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
        return (prev in ("B", "I") and cur in ("B", "O")) or (prev != "O" and prev_type != cur_type)

    def starts(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
        return cur == "B" or (prev == "O" and cur == "I") or (cur != "O" and prev_type != cur_type)

    correct, found_gold, found_pred = Counter(), Counter(), Counter()
    stream = [pair for g, p in zip(gold, pred) for pair in list(zip(g, p)) + [("O", "O")]]
    in_correct = False
    last_c, last_ct, last_g, last_gt = "O", "", "O", ""
    for c_tag, g_tag in stream:
        c, ct = split(c_tag)
        g, gt = split(g_tag)
        if in_correct:
            end_c, end_g = ends(last_c, c, last_ct, ct), ends(last_g, g, last_gt, gt)
            if end_c and end_g and last_gt == last_ct:
                in_correct = False
                correct[last_ct] += 1
            elif end_c != end_g or gt != ct:
                in_correct = False
        start_c, start_g = starts(last_c, c, last_ct, ct), starts(last_g, g, last_gt, gt)
        if start_c and start_g and gt == ct:
            in_correct = True
        found_gold[ct] += start_c
        found_pred[gt] += start_g
        last_c, last_ct, last_g, last_gt = c, ct, g, gt
    types = {t for t in found_gold | found_pred}
    return {t: (correct[t], found_gold[t], found_pred[t]) for t in types}


CONLLEVAL_GOLDEN = [
    # (gold, pred, {type: (correct, gold chunks, guessed chunks)}), checked by hand against conlleval's rules
    (sents("B-PER I-PER O"), sents("I-PER I-PER O"), {"PER": (1, 1, 1)}),
    (sents("B-PER I-ORG"), sents("B-PER B-ORG"), {"PER": (1, 1, 1), "ORG": (1, 1, 1)}),
    (sents("B-LOC", "I-LOC"), sents("B-LOC", "O"), {"LOC": (1, 2, 1)}),  # a sentence break counts as O
]


@pytest.mark.parametrize(("gold", "pred", "expected"), CONLLEVAL_GOLDEN)
def test_conlleval_port_golden(gold, pred, expected):
    assert _conlleval_counts(gold, pred) == expected


@settings(max_examples=200, deadline=None)
@given(tag_pairs(labels=EXTRA_LABELS))
def test_default_mode_matches_conlleval(pair):
    gold, pred = pair
    counts = sentence_counts(gold, pred, strict=False)
    ours = {t: (int(counts.tp[:, k].sum()), int(counts.n_gold[:, k].sum()), int(counts.n_pred[:, k].sum()))
            for k, t in enumerate(counts.types)}
    ours = {t: v for t, v in ours.items() if any(v)}
    assert ours == _conlleval_counts(gold, pred)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LABELS), max_size=12))
def test_chunking_agrees_with_tags_spans(tags):
    as_tuples = [(s.start, s.end, s.etype) for s in spans(tags)]
    assert _chunks(tags, strict=False, sent=0) == as_tuples
    if is_valid_iob2(tags):  # the two modes differ only on invalid IOB2
        assert _chunks(tags, strict=True, sent=0) == as_tuples


# --------------------------------------------------------------------------------------------------------------
# Bootstrap


def add_noise(gold: list[list[str]], noise: float, seed: int) -> list[list[str]]:
    """Predictions: each tag replaced by a random label (possibly invalid IOB2) with probability `noise`."""
    rng = np.random.default_rng(seed)
    return [[LABELS[int(rng.integers(0, len(LABELS)))] if rng.random() < noise else t for t in tags]
            for tags in gold]


def noisy_corpus(n: int, seed: int = 0, noise: float = 0.1, length: int = 20):
    """n valid-IOB2 gold sentences with two entities each (some overlapping ones merge), and noisy predictions."""
    rng = np.random.default_rng(seed)
    gold = []
    for _ in range(n):
        tags = ["O"] * length
        for _ in range(2):
            start, size = int(rng.integers(0, length - 3)), int(rng.integers(1, 4))
            etype = ENTITY_TYPES[int(rng.integers(0, 3))]
            tags[start:start + size] = [f"B-{etype}"] + [f"I-{etype}"] * (size - 1)
        gold.append(tags)
    return gold, add_noise(gold, noise, seed + 1)


@pytest.fixture(scope="module")
def corpus_500():
    return noisy_corpus(500)


@pytest.mark.parametrize("scope", ["overall", "PER", "ORG", "LOC"])
@pytest.mark.parametrize("metric", ["f1", "precision", "recall"])
def test_bootstrap_ci_contains_point_estimate(corpus_500, scope, metric):
    gold, pred = corpus_500
    s = score(gold, pred)
    point = getattr(s.overall if scope == "overall" else s.type_score(scope), metric)
    low, high = bootstrap_ci(gold, pred, n_resamples=500, scope=scope, metric=metric)
    assert 0.0 <= low < point < high <= 1.0
    assert high - low < 0.2


def test_bootstrap_ci_narrows_with_more_sentences():
    small = bootstrap_ci(*noisy_corpus(250, seed=1), n_resamples=400)
    large = bootstrap_ci(*noisy_corpus(4000, seed=2), n_resamples=400)
    # The width shrinks like 1/sqrt(n): 16x the sentences should give about a quarter of the width.
    assert large[1] - large[0] < 0.5 * (small[1] - small[0])


def test_bootstrap_ci_narrows_with_alpha(corpus_500):
    wide = bootstrap_ci(*corpus_500, alpha=0.05)
    narrow = bootstrap_ci(*corpus_500, alpha=0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_bootstrap_is_deterministic_for_a_seed(corpus_500):
    gold, pred = corpus_500
    assert bootstrap_ci(gold, pred, seed=7) == bootstrap_ci(gold, pred, seed=7)
    assert bootstrap_ci(gold, pred, seed=7) != bootstrap_ci(gold, pred, seed=8)
    assert bootstrap_from_counts(sentence_counts(gold, pred), seed=7) == bootstrap_ci(gold, pred, seed=7)
    drop = paired_bootstrap_drop(gold, gold, gold, pred, seed=3)
    assert drop == paired_bootstrap_drop(gold, gold, gold, pred, seed=3)
    assert drop != paired_bootstrap_drop(gold, gold, gold, pred, seed=4)


def test_bootstrap_single_sentence_is_degenerate():
    low, high = bootstrap_ci(sents("B-PER O B-LOC"), sents("B-PER O O"), n_resamples=50)
    assert low == high == pytest.approx(2 / 3)


@pytest.mark.parametrize("max_count", [3, 10**6, 2**40])
def test_resampled_totals_packing_is_exact(max_count):
    # Packing several count columns into one int64 must give exactly the plain gather-and-sum, including when
    # large counts leave room for one field per word.
    rng = np.random.default_rng(5)
    cols = rng.integers(0, max_count + 1, size=(300, 6), dtype=np.int64)
    got = _resampled_totals(cols, 150, seed=11)
    draws = np.random.default_rng(11)
    expected = []
    for b0 in range(0, 150, _RESAMPLE_CHUNK):
        idx = draws.integers(0, 300, size=(min(_RESAMPLE_CHUNK, 150 - b0), 300), dtype=np.int32)
        expected.append(cols[idx].sum(axis=1))
    assert np.array_equal(got, np.concatenate(expected))


def test_bootstrap_matches_naive_resampling(corpus_500):
    # Independent naive bootstrap (different generator use): the bounds agree up to Monte Carlo error.
    gold, pred = corpus_500
    rng = np.random.default_rng(123)
    f1s = []
    for _ in range(200):
        idx = rng.integers(0, len(gold), size=len(gold))
        f1s.append(score([gold[i] for i in idx], [pred[i] for i in idx]).overall.f1)
    naive = np.quantile(f1s, [0.025, 0.975])
    fast = bootstrap_ci(gold, pred, n_resamples=2000)
    assert fast == pytest.approx(tuple(naive), abs=0.012)


BAD_BOOTSTRAP_ARGS = [
    ({"n_resamples": 0}, ConfigError, "n_resamples must be a positive integer"),
    ({"alpha": 1.0}, ConfigError, "alpha must be between 0 and 1"),
    ({"scope": "MISC"}, ConfigError, "unknown scope 'MISC'; choose one of: LOC, ORG, PER, overall"),
    ({"metric": "accuracy"}, ConfigError, "unknown metric 'accuracy'; choose one of: f1, precision, recall"),
]


@pytest.mark.parametrize(("kwargs", "exc", "message"), BAD_BOOTSTRAP_ARGS)
def test_bootstrap_bad_arguments(kwargs, exc, message):
    g = sents("B-PER")
    with pytest.raises(exc, match=message):
        bootstrap_ci(g, g, **kwargs)
    with pytest.raises(exc, match=message):
        paired_bootstrap_drop(g, g, g, g, **kwargs)


def test_bootstrap_empty_input():
    with pytest.raises(DataError, match="cannot bootstrap over 0 sentences"):
        bootstrap_ci([], [])


# --------------------------------------------------------------------------------------------------------------
# Paired bootstrap of the drop


def lengthen_entities(gold: list[list[str]]) -> list[list[str]]:
    """A stand-in for entity replacement: every entity gains one token, so sentence lengths change."""
    out = []
    for tags in gold:
        new: list[str] = []
        for i, t in enumerate(tags):
            new.append(t)
            if t != "O" and (i + 1 == len(tags) or not tags[i + 1].startswith("I-")):
                new.append("I-" + t[2:])
        out.append(new)
    return out


def test_paired_drop_is_positive_when_perturbed_predictions_are_wrong(corpus_500):
    gold, pred = corpus_500
    gold_pert = lengthen_entities(gold)
    assert any(len(a) != len(b) for a, b in zip(gold, gold_pert))
    # Wrong on the perturbed set: every entity tagged with another type, everything else right.
    swap = {"PER": "ORG", "ORG": "LOC", "LOC": "PER"}
    pred_pert = [[t if t == "O" else f"{t[:2]}{swap[t[2:]]}" for t in g] for g in gold_pert]
    d = paired_bootstrap_drop(gold, pred, gold_pert, pred_pert, n_resamples=500)
    clean_f1 = score(gold, pred).overall.f1
    assert score(gold_pert, pred_pert).overall.f1 == 0.0
    assert d.drop == pytest.approx(clean_f1)
    assert 0.0 < d.low <= d.drop <= d.high
    assert d.p_value == 0.0
    # Swapping the conditions flips the sign: the "drop" is reliably negative, p = 1.
    r = paired_bootstrap_drop(gold_pert, pred_pert, gold, pred, n_resamples=500)
    assert r.drop == pytest.approx(-d.drop)
    assert r.high < 0.0 and r.p_value == 1.0


def test_paired_drop_small_effect_has_a_ci_around_it():
    gold, pred = noisy_corpus(800, seed=3, noise=0.10)
    pred_worse = add_noise(pred, 0.03, seed=99)  # the same predictions with a little more noise
    d = paired_bootstrap_drop(gold, pred, gold, pred_worse, n_resamples=1000)
    assert d.drop == pytest.approx(score(gold, pred).overall.f1 - score(gold, pred_worse).overall.f1)
    assert d.low < d.drop < d.high
    assert 0.0 <= d.p_value <= 1.0
    # Pairing removes sentence-difficulty variance: the paired CI is narrower than the unpaired one.
    lo_c, hi_c = bootstrap_ci(gold, pred)
    lo_p, hi_p = bootstrap_ci(gold, pred_worse)
    unpaired = np.hypot(hi_c - lo_c, hi_p - lo_p)
    assert d.high - d.low < unpaired


def test_paired_drop_identical_conditions():
    gold, pred = noisy_corpus(100, seed=4)
    assert paired_bootstrap_drop(gold, pred, gold, pred, n_resamples=200) == DropCI(0.0, 0.0, 0.0, 1.0)


def test_paired_drop_per_type_scope():
    gold = sents("B-PER O B-LOC", "B-PER O")
    pert_pred = sents("B-PER O O", "B-PER O")  # LOC lost, PER intact
    per = paired_bootstrap_drop(gold, gold, gold, pert_pred, n_resamples=200, scope="PER")
    loc = paired_bootstrap_drop(gold, gold, gold, pert_pred, n_resamples=200, scope="LOC")
    assert per == DropCI(0.0, 0.0, 0.0, 1.0)
    assert loc.drop == 1.0


def test_paired_drop_needs_the_same_sentences():
    g = sents("B-PER", "O")
    with pytest.raises(DataError, match="clean set has 2 sentences but perturbed set has 1"):
        paired_bootstrap_drop(g, g, g[:1], g[:1])
    with pytest.raises(DataError, match=r"sentence 1 \(0-based\): gold has 1 tags but perturbed predictions have 2"):
        paired_bootstrap_drop(g, g, g, sents("B-PER", "O O"))


# --------------------------------------------------------------------------------------------------------------
# Error breakdown

# (id, gold, pred, expected overall counts as a dict of non-zero categories)
BREAKDOWN_CASES = [
    ("correct", sents("B-PER I-PER O"), sents("B-PER I-PER O"), {"correct": 1}),
    ("wrong_type", sents("B-PER I-PER"), sents("B-ORG I-ORG"), {"wrong_type": 1}),
    ("boundary", sents("B-PER I-PER O"), sents("B-PER O O"), {"boundary": 1}),
    ("boundary_and_type", sents("B-PER I-PER O"), sents("O B-LOC I-LOC"), {"boundary_and_type": 1}),
    ("missed", sents("B-LOC O"), sents("O O"), {"missed": 1}),
    ("spurious", sents("O O"), sents("O B-ORG"), {"spurious": 1}),
    ("adjacent is not overlapping", sents("B-PER I-PER O"), sents("O O B-PER"), {"missed": 1, "spurious": 1}),
    ("one prediction over two gold chunks", sents("B-PER O B-PER"), sents("B-PER I-PER I-PER"), {"boundary": 2}),
    ("two predictions over one gold chunk", sents("B-LOC I-LOC I-LOC"), sents("B-LOC B-LOC I-LOC"), {"boundary": 1}),
    ("best match wins", sents("B-LOC I-LOC I-LOC"), sents("B-ORG B-LOC I-LOC"), {"boundary": 1}),
    ("exact match beats overlap", sents("B-PER I-PER O"), sents("B-PER I-PER B-PER"), {"correct": 1, "spurious": 1}),
    ("stray I is no prediction (strict)", sents("B-PER I-PER"), sents("O I-PER"), {"missed": 1}),
    ("mixed", sents("B-PER O B-ORG I-ORG O B-LOC", "O O"), sents("B-PER O B-ORG O O B-PER", "B-LOC O"),
     {"correct": 1, "boundary": 1, "wrong_type": 1, "spurious": 1}),
]


@pytest.mark.parametrize(("gold", "pred", "expected"), [c[1:] for c in BREAKDOWN_CASES],
                         ids=[c[0] for c in BREAKDOWN_CASES])
def test_error_breakdown_hand_cases(gold, pred, expected):
    assert error_breakdown(gold, pred).overall == ErrorCounts(**expected)


def test_error_breakdown_per_type_and_table():
    b = error_breakdown(sents("B-PER O B-ORG I-ORG O B-LOC", "O O"), sents("B-PER O B-ORG O O B-PER", "B-LOC O"))
    assert b.by_type["PER"] == ErrorCounts(correct=1)
    assert b.by_type["ORG"] == ErrorCounts(boundary=1)
    assert b.by_type["LOC"] == ErrorCounts(wrong_type=1, spurious=1)  # gold LOC mistyped; spurious pred LOC
    rows = breakdown_table(b)
    assert [r["scope"] for r in rows] == ["overall", "PER", "ORG", "LOC"]
    assert rows[0] == {"scope": "overall", "correct": 1, "wrong_type": 1, "boundary": 1, "boundary_and_type": 0,
                       "missed": 0, "spurious": 1}


def test_error_breakdown_default_mode_counts_stray_i():
    assert error_breakdown(sents("B-PER I-PER"), sents("O I-PER"), strict=False).overall == ErrorCounts(boundary=1)


@settings(max_examples=100, deadline=None)
@given(tag_pairs(labels=EXTRA_LABELS))
def test_error_breakdown_invariants(pair):
    gold, pred = pair
    for strict in (True, False):
        s = score(gold, pred, strict=strict)
        b = error_breakdown(gold, pred, strict=strict)
        counts = sentence_counts(gold, pred, strict=strict)
        assert b.overall.correct == int(counts.tp.sum())
        assert b.overall.gold_total == s.gold_entities
        assert b.overall.spurious <= s.pred_entities - b.overall.correct
        for etype, ec in b.per_type:
            assert ec.gold_total == (s.type_score(etype).support if etype in s.types else 0)




def test_condition_rows_clean_and_perturbed():
    from xner_core.metrics.bootstrap import condition_rows, paired_bootstrap_drop
    from xner_core.metrics.scores import score

    gold = [["B-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"], ["O", "B-LOC", "O"]] * 5
    clean_pred = [["B-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"], ["O", "O", "O"]] * 5
    pert_pred = [["O", "O", "B-LOC"], ["B-ORG", "O", "O"], ["O", "O", "O"]] * 5
    clean = {r["scope"]: r for r in condition_rows(gold, clean_pred, n_resamples=200)}
    assert set(clean) == {"overall", "PER", "ORG", "LOC"}
    assert clean["overall"]["f1"] == pytest.approx(score(gold, clean_pred).overall.f1)
    assert clean["overall"]["drop"] == 0 and clean["overall"]["drop_low"] is None
    assert clean["overall"]["f1_low"] <= clean["overall"]["f1"] <= clean["overall"]["f1_high"]
    pert = {r["scope"]: r for r in condition_rows(gold, pert_pred, gold, clean_pred, n_resamples=200)}
    want = paired_bootstrap_drop(gold, clean_pred, gold, pert_pred, n_resamples=200, scope="PER")
    assert pert["PER"]["drop"] == pytest.approx(1.0) and pert["PER"]["drop_low"] == want.low
    assert pert["LOC"]["drop"] == pytest.approx(0.0)
    assert pert["overall"]["clean_f1"] == clean["overall"]["f1"] and pert["overall"]["n_sentences"] == 15
    none = condition_rows(gold, pert_pred, gold, clean_pred, n_resamples=0)
    assert all(r["f1_low"] is None and r["drop_low"] is None for r in none)
