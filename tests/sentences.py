"""Helpers to build hand-made sentences in tests (importable by name: `from sentences import make_sentence`)."""

from __future__ import annotations

from xner_core.corpus.sentences import Sentence


def make_sentence(text: str, tags: str, lang: str = "xx", sid: str = "") -> Sentence:
    """Build a sentence from space-separated tokens and tags."""
    return Sentence(tuple(text.split()), tuple(tags.split()), lang, sid)
