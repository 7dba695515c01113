"""Tests for xner_core.features.overlap: the study's overlap formulas (docs/paper-spec.md §5) on hand-built and real corpora."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentences import make_sentence

from xner_core.corpus.sentences import Corpus, Sentence
from xner_core.corpus.stopwords import stopwords_for
from xner_core.features.overlap import (
    ChunkOverlap,
    TokenOverlap,
    WordOverlap,
    chunk_counts,
    context_candidate,
    entity_chunk_overlap,
    entity_line_counts,
    entity_token_overlap,
    has_punct_or_symbol,
    is_p2_candidate,
    o_word_overlap,
    overlap_features,
    subword_overlap,
)


def corpus(rows: list[tuple[str, str]], lang: str = "xx", split: str = "test") -> Corpus:
    return Corpus(tuple(make_sentence(t, g, lang, f"{lang}-{i}") for i, (t, g) in enumerate(rows)), lang, split)


def entity_corpus(tokens: list[str], tag: str = "B-LOC", lang: str = "xx") -> Corpus:
    """One single-token entity per sentence (so lines and chunks coincide)."""
    return Corpus(tuple(Sentence((t,), (tag,), lang, str(i)) for i, t in enumerate(tokens)), lang)


EMPTY = Corpus((), "xx", "test")


# ---------------------------------------------------------------------------------------------------------------
# §5.1 entity-token ("non-unique token") overlap


def test_token_overlap_on_fixtures_by_hand(source_corpus, target_corpus):
    # S entity lines: Juan/B-PER Pérez/I-PER Madrid/B-LOC | Real/B-ORG Madrid/I-ORG Barcelona/B-LOC |
    # Francia/B-LOC París/B-LOC | María/B-PER Naciones/B-ORG Unidas/I-ORG                        -> 11 lines
    # T entity lines: Joan/B-PER Pérez/I-PER Madrid/B-LOC | Barça/B-ORG Barcelona/B-LOC |
    # Maria/B-PER Nacions/B-ORG Unides/I-ORG | Girona/B-LOC Catalunya/B-LOC                       -> 10 lines
    # shared: Pérez/I-PER, Madrid/B-LOC, Barcelona/B-LOC (Madrid/I-ORG differs from Madrid/B-LOC)
    got = entity_token_overlap(source_corpus, target_corpus)
    assert got == TokenOverlap(shared_unique=3, source_lines=11, target_lines=10, source_shared_lines=3,
                               target_shared_lines=3, overlap_source=3 / 11, overlap_target=3 / 10)


def test_token_overlap_counts_repeats_in_each_set():
    source = corpus([("Paris Paris Nice", "B-LOC B-LOC B-LOC")])
    # Paris/B-LOC x3 shared; Paris/I-LOC is another line; Lyon unshared; O tokens never count
    target = corpus([("Paris Paris", "B-LOC B-LOC"), ("in Paris Lyon", "O B-LOC B-LOC"),
                     ("New Paris", "B-LOC I-LOC")])
    got = entity_token_overlap(source, target)
    assert (got.shared_unique, got.target_lines, got.target_shared_lines) == (1, 6, 3)
    assert (got.source_lines, got.source_shared_lines) == (3, 2)
    assert got.overlap_target == pytest.approx(0.5)
    assert got.overlap_source == pytest.approx(2 / 3)


def test_token_overlap_reproduces_the_spec_example():
    # docs/paper-spec.md §5.1, fr->br: 638 shared unique lines making up 2,194 of br's 9,406 entity lines -> 0.2333
    shared = [f"s{i}" for i in range(638)]
    target_tokens = shared * 3 + shared[:280]  # 3 * 638 + 280 = 2,194 occurrences of shared lines
    target_tokens += [f"t{i}" for i in range(9406 - len(target_tokens))]
    source = entity_corpus(shared + ["only-source"])
    got = entity_token_overlap(source, entity_corpus(target_tokens))
    assert (got.shared_unique, got.target_shared_lines, got.target_lines) == (638, 2194, 9406)
    assert round(got.overlap_target, 4) == 0.2333


def test_token_overlap_is_case_sensitive_and_tag_sensitive():
    got = entity_token_overlap(corpus([("paris", "B-LOC")]), corpus([("Paris", "B-LOC"), ("paris", "B-ORG")]))
    assert got.shared_unique == 0 and got.overlap_target == 0.0


# ---------------------------------------------------------------------------------------------------------------
# §5.2 unique entity-chunk overlap


def test_chunk_overlap_on_fixtures_by_hand(source_corpus, target_corpus):
    # S chunks: Juan Pérez, Madrid, Real Madrid, Barcelona, Francia, París, María, Naciones Unidas (8)
    # T chunks: Joan Pérez, Madrid, Barça, Barcelona, Maria, Nacions Unides, Girona, Catalunya (8)
    got = entity_chunk_overlap(source_corpus, target_corpus)
    assert got == ChunkOverlap(shared_unique=2, source_unique=8, target_unique=8, ratio_source=0.25,
                               ratio_target=0.25, target_occurrences=8, target_shared_occurrences=2,
                               occurrence_fraction=0.25)


def test_chunk_overlap_ignores_type_matches_whole_surface_and_counts_occurrences():
    source = corpus([("Real Madrid ganó en Madrid", "B-ORG I-ORG O O B-LOC")])
    target = corpus([("Madrid Madrid", "B-ORG B-LOC"), ("el Real Madrid", "O B-ORG I-ORG"),
                     ("Real Madrid CF", "B-ORG I-ORG I-ORG")])
    got = entity_chunk_overlap(source, target)
    # shared surfaces: "Madrid" (as ORG and LOC) and "Real Madrid"; "Real Madrid CF" is another surface
    assert (got.shared_unique, got.target_unique, got.source_unique) == (2, 3, 2)
    assert (got.target_occurrences, got.target_shared_occurrences) == (4, 3)
    assert got.ratio_target == pytest.approx(2 / 3) and got.ratio_source == 1.0
    assert got.occurrence_fraction == pytest.approx(0.75)


def test_chunk_overlap_reproduces_the_spec_example():
    # docs/paper-spec.md §5.2, fr->br: 225 shared of 3,423 unique br chunks and 14,496 unique fr chunks -> .0657 / .0155
    shared = [f"s{i}" for i in range(225)]
    source = entity_corpus(shared + [f"f{i}" for i in range(14496 - 225)])
    target = entity_corpus(shared + [f"b{i}" for i in range(3423 - 225)] + shared[:10])  # repeats don't count
    got = entity_chunk_overlap(source, target)
    assert (got.shared_unique, got.target_unique, got.source_unique) == (225, 3423, 14496)
    assert (round(got.ratio_target, 4), round(got.ratio_source, 4)) == (0.0657, 0.0155)
    assert got.target_shared_occurrences == 235


def test_chunk_counts_reads_stray_i_as_a_chunk_start():
    # a stray I- (invalid IOB2) opens a chunk, as seqeval and tags.spans read it
    c = corpus([("a b c", "I-LOC O I-PER")])
    assert chunk_counts(c) == {"a": 1, "c": 1}


# ---------------------------------------------------------------------------------------------------------------
# O-word overlap and the P2 filter


def test_o_word_overlap_on_fixtures_by_hand(source_corpus, target_corpus):
    # S O-vocabulary (lowercased): vive en . el ganó la capital de es trabaja para
    # T O tokens (18): viu a . | El va guanyar a capital . | treballa per a . | és una ciutat de .
    # shared (lowercased): . x4, el, capital, de -> 7
    # P2 candidates without stopwords: viu | El va guanyar capital | treballa per | és una ciutat de -> 11,
    # of which shared: El, capital, de -> 3
    got = o_word_overlap(source_corpus, target_corpus, stopwords=())
    assert got == WordOverlap(target_o_tokens=18, shared_o_tokens=7, ratio=7 / 18, candidate_tokens=11,
                              shared_candidate_tokens=3, p2_ratio=3 / 18)
    # stopwords are compared lowercased: "El" is the stopword "el"
    got = o_word_overlap(source_corpus, target_corpus, stopwords=["EL", "de"])
    assert (got.candidate_tokens, got.shared_candidate_tokens, got.shared_o_tokens) == (9, 1, 7)


def test_o_word_overlap_default_stopwords_are_the_targets(source_corpus, target_corpus):
    assert o_word_overlap(source_corpus, target_corpus) == o_word_overlap(
        source_corpus, target_corpus, stopwords=stopwords_for("ca"))


def test_o_word_overlap_ignores_entity_tokens_on_both_sides():
    source = corpus([("Madrid capital", "B-LOC O")])
    target = corpus([("Madrid capital Madrid", "O B-LOC O")])
    got = o_word_overlap(source, target, stopwords=())
    # "Madrid" is an entity in S so not in its O-vocabulary; T's entity "capital" is not an O token
    assert (got.target_o_tokens, got.shared_o_tokens) == (2, 0)


@pytest.mark.parametrize(
    "word, stops, expected",
    [
        ("casa", (), True),
        ("2019", (), True),
        ("a", (), False),  # one character
        ("l'home", (), False),  # apostrophe is punctuation
        ("«casa»", (), False),  # Unicode quotes
        ("x-y", (), False),
        ("،", (), False),  # Arabic comma
        ("el", ("el",), False),
        ("El", ("el",), False),  # compared lowercased
        ("ciutat", ("el",), True),
        ("کتاب", (), True),
        # symbols (Unicode S*) disqualify too, as in the perturbations' candidate test
        ("°C", (), False),
        ("└─", (), False),
        ("€50", (), False),
        ("a+b", (), False),
        ("x^2", (), False),
    ],
)
def test_p2_candidate_filter(word, stops, expected):
    assert is_p2_candidate(word, frozenset(stops)) is expected
    assert (context_candidate(word, frozenset(stops)) == word.lower()) is expected


def test_has_punct_or_symbol():
    assert has_punct_or_symbol("U.S.") and has_punct_or_symbol("¿qué") and not has_punct_or_symbol("naïve")
    assert has_punct_or_symbol("°C") and has_punct_or_symbol("$") and not has_punct_or_symbol("2019")


def test_one_p2_candidate_definition_for_overlap_and_perturb():
    # perturb uses overlap's predicate itself (no second copy that could drift)
    import xner_core.perturb.p2rules as perturb_p2rules
    import xner_core.perturb.plan as perturb_plan

    assert perturb_p2rules.context_candidate is context_candidate
    assert perturb_plan.context_candidate is context_candidate
    stops = stopwords_for("ca")
    words = ["casa", "°C", "└─", "l'any", "de", "x", "Ciutat", "a+b", "1893", "«x»", "ñu"]
    target = corpus([(" ".join(words), " ".join(["O"] * len(words)))], "ca")
    got = o_word_overlap(target, target)
    assert got.candidate_tokens == sum(context_candidate(w, stops) is not None for w in words) == 4


# ---------------------------------------------------------------------------------------------------------------
# sub-word overlap


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from xner_core.models.registry import build_tiny_tokenizer

    return build_tiny_tokenizer()


def _reference_subword(source: Corpus, target: Corpus, tok) -> tuple[float, float]:
    """The obvious implementation: tokenize() every token of every sentence."""
    unk = tok.unk_token
    s_types = {p for s in source for w in s.tokens for p in tok.tokenize(w)} - {unk}
    t_pieces = [p for s in target for w in s.tokens for p in tok.tokenize(w)]
    t_types = set(t_pieces) - {unk}
    shared = s_types & t_types
    return len(shared) / len(t_types), sum(p in shared for p in t_pieces) / len(t_pieces)


def test_subword_overlap_matches_tokenize_reference(source_corpus, target_corpus, tiny_tokenizer):
    got = subword_overlap(source_corpus, target_corpus, tiny_tokenizer)
    type_ratio, token_ratio = _reference_subword(source_corpus, target_corpus, tiny_tokenizer)
    assert got.type_ratio == pytest.approx(type_ratio)
    assert got.token_ratio == pytest.approx(token_ratio)
    assert 0 < got.shared_types < got.target_types
    assert got.target_tokens == sum(len(tiny_tokenizer.tokenize(w)) for s in target_corpus for w in s.tokens)


def test_subword_overlap_never_counts_unknown_pieces(tiny_tokenizer):
    # characters the tiny tokenizer never saw map to [UNK] on both sides: not a shared type
    src = corpus([("ꙮꙮ", "O")])
    tgt = corpus([("ꙮꙮ ꙮ", "O O")])
    got = subword_overlap(src, tgt, tiny_tokenizer)
    assert got.shared_types == 0 and got.shared_tokens == 0 and got.target_tokens >= 2
    same = subword_overlap(corpus([("Madrid", "O")]), corpus([("Madrid", "O")]), tiny_tokenizer)
    assert same.type_ratio == 1.0 and same.token_ratio == 1.0


# ---------------------------------------------------------------------------------------------------------------
# all together


def test_overlap_features_flat_dict(source_corpus, target_corpus, tiny_tokenizer):
    feats = overlap_features(source_corpus, target_corpus)
    assert set(feats) == {
        "entity_token_overlap", "entity_token_overlap_source", "entity_token_shared_unique",
        "unique_chunk_overlap", "unique_chunk_overlap_source", "chunk_shared_unique", "chunk_occurrence_overlap",
        "o_word_overlap", "o_word_overlap_p2",
    }
    assert all(isinstance(v, float) for v in feats.values())
    assert feats["entity_token_overlap"] == pytest.approx(0.3)
    assert feats["unique_chunk_overlap"] == pytest.approx(0.25)
    assert feats["o_word_overlap"] == pytest.approx(7 / 18)
    with_tok = overlap_features(source_corpus, target_corpus, tokenizer=tiny_tokenizer)
    assert set(with_tok) - set(feats) == {"subword_type_overlap", "subword_token_overlap"}


def test_empty_corpora_give_zeros_not_errors(tiny_tokenizer, target_corpus):
    for src, tgt in ((EMPTY, EMPTY), (EMPTY, target_corpus), (target_corpus, EMPTY)):
        feats = overlap_features(src, tgt, tokenizer=tiny_tokenizer)
        assert all(v == 0.0 for v in feats.values()), (src, tgt, feats)
    no_entities = corpus([("just words", "O O")])
    assert entity_token_overlap(no_entities, no_entities).overlap_target == 0.0


def test_self_overlap_is_total(target_corpus):
    assert entity_token_overlap(target_corpus, target_corpus).overlap_target == 1.0
    assert entity_chunk_overlap(target_corpus, target_corpus).ratio_target == 1.0
    assert o_word_overlap(target_corpus, target_corpus).ratio == 1.0


_TAGS = st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"])
_WORDS = st.sampled_from(["a", "b", "Paris", "paris", "de", ",", "Nova York", "x"])


@st.composite
def corpora(draw):
    sents = draw(st.lists(st.lists(st.tuples(_WORDS, _TAGS), min_size=1, max_size=6), max_size=6))
    return Corpus(tuple(Sentence(tuple(w for w, _ in s), tuple(t for _, t in s)) for s in sents))


@settings(max_examples=60, deadline=None)
@given(corpora(), corpora())
def test_properties(source, target):
    tok, rev = entity_token_overlap(source, target), entity_token_overlap(target, source)
    chunk, word = entity_chunk_overlap(source, target), o_word_overlap(source, target, stopwords=())
    for value in (tok.overlap_source, tok.overlap_target, chunk.ratio_source, chunk.ratio_target,
                  chunk.occurrence_fraction, word.ratio, word.p2_ratio):
        assert 0.0 <= value <= 1.0
    # the measure is one formula read from either side
    assert tok.shared_unique == rev.shared_unique
    assert tok.overlap_target == rev.overlap_source and tok.overlap_source == rev.overlap_target
    assert tok.target_lines == entity_line_counts(target).total()
    assert word.shared_candidate_tokens <= min(word.shared_o_tokens, word.candidate_tokens)
    # the occurrence fraction is 0 exactly when no unique chunk is shared
    assert (chunk.occurrence_fraction == 0) == (chunk.shared_unique == 0)


# ---------------------------------------------------------------------------------------------------------------
# real data: es train (20k) vs ca test (10k)


@pytest.mark.data
def test_real_es_ca_golden_numbers_and_speed(wikiann_dir):
    from xner_core.corpus.wikiann import load_wikiann

    es = load_wikiann("es", "train", wikiann_dir)
    ca = load_wikiann("ca", "test", wikiann_dir)
    assert (len(es), len(ca)) == (20000, 10000)
    timings = {}
    results = {}
    for fn in (entity_token_overlap, entity_chunk_overlap, o_word_overlap):
        start = time.perf_counter()
        results[fn.__name__] = fn(es, ca)
        timings[fn.__name__] = time.perf_counter() - start
    # golden numbers from our own run on WikiANN (Rahimi splits); the study's own split gave .368 / .073 / .026
    assert round(results["entity_token_overlap"].overlap_target, 4) == 0.4998
    assert results["entity_token_overlap"].target_lines == 33156
    assert round(results["entity_chunk_overlap"].ratio_target, 4) == 0.0767
    assert results["entity_chunk_overlap"].shared_unique == 661
    assert round(results["o_word_overlap"].ratio, 4) == 0.7260
    # 936 shared P2 candidates of 27,701 O tokens (942 before symbols such as °C were excluded, as P2 does)
    assert results["o_word_overlap"].shared_candidate_tokens == 936
    assert round(results["o_word_overlap"].p2_ratio, 4) == 0.0338
    assert all(t < 2.0 for t in timings.values()), timings


@pytest.mark.data
def test_real_es_ca_p2_overlap_equals_what_context_replace_targets(wikiann_dir):
    """The O-word overlap's shared P2 candidates are exactly the tokens P2 (context_replace) can replace."""
    import hashlib

    import numpy as np

    from xner_core.corpus.wikiann import load_wikiann
    from xner_core.perturb.apply import perturb_corpus
    from xner_core.perturb.context import build_context

    def fake_embed(words):  # eligibility does not depend on the embedder; keep the test offline and fast
        return np.stack([np.random.default_rng(int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(),
                                                               "big")).standard_normal(8) for w in words])

    es = load_wikiann("es", "train", wikiann_dir)
    ca = load_wikiann("ca", "test", wikiann_dir)
    word = o_word_overlap(es, ca)
    ctx = build_context(es, ca, embed=fake_embed, lang="ca")
    report = perturb_corpus("context_replace", ca, ctx).report
    assert report.tokens_eligible == word.shared_candidate_tokens == 936
    assert report.tokens_changed == report.tokens_eligible  # every eligible word has an unseen neighbour
    # and the perturbation's vocabulary is the overlap's: distinct shared candidates = P2's overlap words
    stops = stopwords_for("ca")
    s_vocab = {t.lower() for s in es for t, g in zip(s.tokens, s.tags) if g == "O"}
    shared_types = {low for s in ca for t, g in zip(s.tokens, s.tags)
                    if g == "O" and (low := context_candidate(t, stops)) is not None and low in s_vocab}
    assert ctx.overlap_words == shared_types
