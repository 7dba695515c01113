"""Tests for the stopword lists of stage 2 (perturb): coverage of the 46-language pool and the fallbacks."""

from __future__ import annotations

import pytest
import stopwordsiso

from xner_core.corpus.stopwords import FALLBACKS, has_stopwords, stopword_source, stopwords_for

POOL = ("af an ar ast az be bn br ca cy de el en es et eu fa fi fr gl he hi id it ja jv kk ku mr ms ne nl oc ps pt ru "
        "scn sco sk sw ta tg tr uk ur zh").split()
OWN = set("af ar bn br ca de el en es et eu fa fi fr gl he hi id it ja ku mr ms nl pt ru sk sw tr uk ur zh".split())
NONE = set("az be cy jv kk ne ps ta tg".split())


def test_pool_partition() -> None:
    # every pool language has its own list, a borrowed one, or none; this pins stopwordsiso 0.7.1's coverage
    assert len(POOL) == 46
    assert OWN | set(FALLBACKS) | NONE == set(POOL)
    assert {lang for lang in POOL if stopwordsiso.has_lang(lang)} == OWN


@pytest.mark.parametrize("lang", POOL)
def test_every_pool_language_resolves(lang: str) -> None:
    words = stopwords_for(lang)
    assert isinstance(words, frozenset)
    assert all(w == w.lower() for w in words)
    expected_source = lang if lang in OWN else FALLBACKS.get(lang)
    assert stopword_source(lang) == expected_source
    assert has_stopwords(lang) == (expected_source is not None)
    if expected_source is not None:
        assert words == {w.lower() for w in stopwordsiso.stopwords(expected_source)}
    else:
        assert words == frozenset()


@pytest.mark.parametrize("lang, fallback", [("sco", "en"), ("ast", "es"), ("an", "es"), ("scn", "it"), ("oc", "ca")])
def test_fallbacks(lang: str, fallback: str) -> None:
    assert not stopwordsiso.has_lang(lang)
    assert stopwords_for(lang) == stopwords_for(fallback)


@pytest.mark.parametrize("lang, word, expected", [
    ("ca", "de", True), ("ca", "ciutat", False), ("es", "el", True), ("en", "the", True), ("sco", "the", True),
    ("scn", "di", True), ("oc", "que", True), ("cy", "y", False), ("ar", "في", True), ("fa", "از", True),
])
def test_membership(lang: str, word: str, expected: bool) -> None:
    assert (word in stopwords_for(lang)) is expected


@pytest.mark.parametrize("code, same_as", [("CA", "ca"), ("pt-BR", "pt"), ("zh_Hans", "zh"), (" es ", "es")])
def test_codes_are_normalised(code: str, same_as: str) -> None:
    assert stopwords_for(code) == stopwords_for(same_as) and stopword_source(code) == same_as


@pytest.mark.parametrize("code", ["", "xx", "zzz-ZZ"])
def test_unknown_codes_give_no_stopwords(code: str) -> None:
    assert stopwords_for(code) == frozenset()
    assert stopword_source(code) is None and not has_stopwords(code)
