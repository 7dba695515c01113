"""User sentence validation: clear messages for empty, huge and binary input; HTML is kept as text."""

import re

import pytest

from xner_core.corpus.textcheck import check_sentence
from xner_core.errors import DataError


@pytest.mark.parametrize("text,expected", [
    ("  Joan viu a Girona .  ", "Joan viu a Girona ."),
    ("line\none\ttab", "line one tab"),
    ("<script>alert(1)</script> a Paris", "<script>alert(1)</script> a Paris"),
    ("東京は日本の首都です。", "東京は日本の首都です。"),
])
def test_accepts_and_normalises(text, expected):
    assert check_sentence(text) == expected


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("   \n ", "empty"),
    (None, "empty"),
    ("a" * 2001, "2001 characters; at most 2000"),
    ("w " * 401, "401 words; at most 400"),
    ("bad\x00byte", "U+0000"),
])
def test_rejects_with_reason(text, message):
    with pytest.raises(DataError, match=re.escape(message)):
        check_sentence(text)
