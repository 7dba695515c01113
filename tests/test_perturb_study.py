"""P2 by the study's own word rules, and P1 (and its control) at a matched share of all entities."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentences import make_sentence

from xner_core.corpus.sentences import Corpus
from xner_core.corpus.stopwords import stopwords_for
from xner_core.corpus.tags import spans
from xner_core.errors import ConfigError
from xner_core.perturb.apply import perturb_corpus
from xner_core.perturb.context import build_context
from xner_core.perturb.p2rules import context_words, study_candidate


def fake_embed(words: Sequence[str]) -> np.ndarray:
    rows = [np.random.default_rng(int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "big"))
            .standard_normal(8) for w in words]
    return np.stack(rows) if rows else np.zeros((0, 8))


def corpus_of(rows: Sequence[tuple[str, str]], lang: str, split: str) -> Corpus:
    return Corpus(tuple(make_sentence(t, g, lang, f"{lang}-{split}-{i}") for i, (t, g) in enumerate(rows)), lang,
                  split)


# ----------------------------------------------------------------------------------------------- P2 rules

SOURCE = [
    ("Capital de la ciudad y puerto", "O O O O O O"),   # "Capital" capitalised: the study's source has it as written
    ("el gran puerto del norte", "O O O O O"),
]
TARGET = [
    ("La capital gran de «port» i nord-est", "O O O O O O O"),
    ("El port del capital ciudad", "O O O O O"),
]


def test_study_rules_differ_from_ours_where_the_study_code_did() -> None:
    source, target = corpus_of(SOURCE, "es", "train"), corpus_of(TARGET, "ca", "test")
    ours = context_words(source, target, "ca", rules="xner")
    study = context_words(source, target, "ca", "es", rules="study")
    # ours: any Unicode punctuation excludes «port» and nord-est; the study only ASCII punctuation: «port» stays
    assert "«port»" not in ours.target_vocab and "«port»" in study.target_vocab
    assert "nord-est" not in ours.target_vocab and "nord-est" not in study.target_vocab
    # ours lowercases the source ("Capital" -> capital overlaps); the study compares with the source as written
    assert "capital" in ours.overlap_words and "capital" not in study.overlap_words
    # "ciudad" is a source O word under both rules; "gran" and "del" are Spanish stopwords: removed from the
    # study's source words only
    assert "ciudad" in ours.overlap_words and "ciudad" in study.overlap_words
    assert "gran" in ours.overlap_words and "gran" not in study.overlap_words
    assert "del" in ours.source_words and "del" not in study.source_words
    assert study.fresh_words == tuple(sorted(set(study.target_vocab) - study.source_words))


def test_study_rules_use_no_borrowed_stopwords() -> None:
    # stopwordsiso has no Scots list: ours borrows English, the study used none
    assert stopwords_for("sco") == stopwords_for("en") and stopwords_for("sco", borrow=False) == frozenset()
    assert stopwords_for("ca", borrow=False) == stopwords_for("ca")
    target = corpus_of([("the toun and the kirk", "O O O O O")], "sco", "test")
    assert "the" not in context_words(None, target, "sco", rules="xner").target_vocab
    assert "the" in context_words(None, target, "sco", rules="study").target_vocab


@pytest.mark.parametrize("token, expected", [
    ("Port", "port"), ("a", None), ("la", None), ("«port»", "«port»"), ("nord-est", None), ("x.y", None),
])
def test_study_candidate(token: str, expected: str | None) -> None:
    assert study_candidate(token, stopwords_for("ca", borrow=False)) == expected


def test_unknown_rules_are_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown P2 rule set .paper.; choose one of: study, xner"):
        context_words(None, None, "ca", rules="paper")


def test_context_replace_study_replaces_the_study_overlap_only() -> None:
    source, target = corpus_of(SOURCE, "es", "train"), corpus_of(TARGET, "ca", "test")
    ctx = build_context(source, target, embed=fake_embed)
    res = perturb_corpus("context_replace_study", target, ctx, seed=1)
    old = {c.old[0].lower() for c in res.changes}
    assert old and old <= ctx.study_words.overlap_words
    assert all(c.new[0].lower() in ctx.study_words.fresh_words for c in res.changes)
    ours = perturb_corpus("context_replace", target, ctx, seed=1)
    assert {c.old[0].lower() for c in ours.changes} <= ctx.overlap_words
    assert {c.old[0].lower() for c in ours.changes} != old  # "capital" is replaced by ours, not the study's


# ------------------------------------------------------------------------------------- matched share of P1

TYPES = ("PER", "ORG", "LOC")
NAMES = ("Ana", "Bo", "Cy", "Dee", "Eli", "Fa", "Gus", "Hal", "Ivo", "Jo", "Kai", "Lu")


@st.composite
def corpora(draw: st.DrawFn) -> tuple[Corpus, Corpus]:
    def sentences(n: int, lang: str, split: str) -> Corpus:
        rows = []
        for _ in range(n):
            k = draw(st.integers(1, 4))
            toks: list[str] = []
            tags: list[str] = []
            for _ in range(k):
                toks += ["w"]
                tags += ["O"]
                toks.append(draw(st.sampled_from(NAMES)))
                tags.append("B-" + draw(st.sampled_from(TYPES)))
            rows.append((" ".join(toks), " ".join(tags)))
        return corpus_of(rows, lang, split)

    return sentences(draw(st.integers(1, 8)), "es", "train"), sentences(draw(st.integers(1, 12)), "ca", "test")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora(), st.floats(0.0, 1.0), st.integers(0, 5))
def test_matched_p1_changes_a_subset_of_p1_and_its_control_as_many(data: tuple[Corpus, Corpus], share: float,
                                                                   seed: int) -> None:
    source, target = data
    ctx = build_context(source, target)
    p1 = perturb_corpus("entity_replace", target, ctx, seed=seed)
    matched = perturb_corpus("entity_replace_matched", target, ctx, seed=seed, rate=share)
    control = perturb_corpus("entity_random_matched", target, ctx, seed=seed, rate=share)
    p1_at = {(c.index, c.start, c.new) for c in p1.changes}
    assert {(c.index, c.start, c.new) for c in matched.changes} <= p1_at  # same streams: a subset of P1
    per_sentence = lambda r: [sum(1 for c in r.changes if c.index == i) for i in range(len(target))]  # noqa: E731
    # as many per sentence, fewer only where an entity's type has no other target chunk to take its place
    for i, (c, m) in enumerate(zip(per_sentence(control), per_sentence(matched))):
        lonely = any(len(ctx.target_chunks.get(sp.etype, ())) < 2 for sp in spans(target[i].tags))
        assert c == m or (c < m and lonely)
    if share == 0 or ctx.shared_entity_share == 0:
        assert matched.changes == ()
    assert ctx.eligible_rate(share) == (0.0 if ctx.shared_entity_share == 0
                                        else min(1.0, share / ctx.shared_entity_share))


def test_matched_share_reaches_the_asked_fraction_of_all_entities() -> None:
    # 4000 entities, 40 % of them seen in the source: asking for 10 % changes about a quarter of the seen ones
    rng = np.random.default_rng(0)
    seen = [f"S{i}" for i in range(50)]
    rows = []
    for i in range(2000):
        names = [seen[rng.integers(50)] if rng.random() < 0.4 else f"U{i}x{j}" for j in range(2)]
        rows.append((f"a {names[0]} b {names[1]}", "O B-PER O B-LOC"))
    target = corpus_of(rows, "ca", "test")
    source = corpus_of([(f"x {n}", "O B-PER") for n in seen] + [(f"x {n}", "O B-LOC") for n in seen], "es",
                       "train")
    ctx = build_context(source, target)
    total = sum(1 for s in target for _ in spans(s.tags))
    assert ctx.shared_entity_share == pytest.approx(
        sum(1 for s in target for sp in spans(s.tags) if s.tokens[sp.start] in set(seen)) / total)
    res = perturb_corpus("entity_replace_matched", target, ctx, seed=0, rate=0.10)
    assert len(res.changes) / total == pytest.approx(0.10, abs=0.015)
    control = perturb_corpus("entity_random_matched", target, ctx, seed=0, rate=0.10)
    assert len(control.changes) == len(res.changes)
    # more than the source shares cannot be changed: then every shared entity is
    res = perturb_corpus("entity_replace_matched", target, ctx, seed=0, rate=0.9)
    assert len(res.changes) / total == pytest.approx(ctx.shared_entity_share)
