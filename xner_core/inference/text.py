"""Stage 4, predict: user-typed text. Splitting raw text into words (`split_words`), joining words back for
display (`join_words`), and tagging a typed sentence (`predict_text`, returning a `TextPrediction`).

`split_words` splits words on whitespace, separates punctuation, and treats each character of scripts written
without spaces as one word; the words then go through the batched `predict.predict_tags`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

from xner_core.corpus.tags import spans
from xner_core.inference.predict import EntitySpan, predict_tags


@dataclass(frozen=True)
class TextPrediction:
    """The result of `predict_text`: the words found in `text`, their character offsets and tags."""

    text: str
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    tags: tuple[str, ...]

    @property
    def entities(self) -> list[EntitySpan]:
        """Entities with CHARACTER offsets into `text` (for highlighting); `text` keeps inner spaces."""
        out = []
        for sp in spans(self.tags):
            start, end = self.offsets[sp.start][0], self.offsets[sp.end - 1][1]
            out.append(EntitySpan(start, end, sp.etype, self.text[start:end]))
        return out


# Scripts written without spaces between words: each character (with its combining marks) is one word.
# This matches WikiANN, whose zh and ja sentences are tokenised per character, so a model trained on it
# sees the same units; for Thai, Lao, Khmer, Myanmar and Tibetan no dictionary-free word splitter is
# reliable, and per-character tags still let an entity be any run of characters.
_NO_SPACE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x31F0, 0x31FF),  # Katakana extension
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3FFFF),  # CJK extensions B-H
)
# Punctuation that stays inside a word when letters or digits stand on both sides: d'Italia, skol-dañs, 3.5,
# 1,000, U.S.A (Persian/Urdu words keep ZWNJ since it is a format character, not punctuation).
_JOINERS = frozenset("'’ʼ-‐‑.·,_")
# Separators that are not `str.isspace()` but split words (used between words in Thai/Khmer/Burmese text).
_EXTRA_SPACES = frozenset("\u200b\ufeff\u2060")


def _no_space_script(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _NO_SPACE_RANGES)


def _kind(ch: str) -> str:
    """Classify a character: space, mark (combining), punct (punctuation/symbol), char (no-space script), word."""
    if ch.isspace() or ch in _EXTRA_SPACES:
        return "space"
    cat = unicodedata.category(ch)
    if cat[0] == "M":
        return "mark"
    if cat[0] in "PS":
        return "punct"
    if _no_space_script(ch):
        return "char"
    return "word"


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split user-typed text into words for tagging, in any script.

    Rules: whitespace (and zero-width spaces) separate words; punctuation and symbols become words of their
    own, except joiners (' - . , and kin) between two letters/digits (d'Italia, 3.5) and runs of one repeated
    mark ("...", "''"); in scripts written without spaces (CJK, kana, Thai, Lao, Khmer, Myanmar, Tibetan)
    every character with its combining marks is one word, as WikiANN zh/ja are tokenised; combining marks
    stay with the character before them.

    Args:
        text: raw text.

    Returns:
        (words, [(start, end) character offsets into `text`]).
    """
    words: list[str] = []
    offsets: list[tuple[int, int]] = []
    start: int | None = None
    cur = ""  # kind of the open word: "word", "char" or "punct"

    def close(end: int) -> None:
        nonlocal start
        if start is not None and end > start:
            words.append(text[start:end])
            offsets.append((start, end))
        start = None

    n = len(text)
    for i, ch in enumerate(text):
        kind = _kind(ch)
        if kind == "space":
            close(i)
            continue
        if kind == "mark":
            if start is None:  # a stray mark opens a word
                start, cur = i, "word"
            continue
        if kind == "punct":
            if cur == "word" and start is not None and ch in _JOINERS and i + 1 < n and _kind(text[i + 1]) == "word":
                continue  # joiner inside a word
            if cur == "punct" and start is not None and text[i - 1] == ch:
                continue  # run of one repeated mark
            close(i)
            start, cur = i, "punct"
            continue
        if kind == "char":
            close(i)
            start, cur = i, "char"
            continue
        # a letter or digit of a spaced script
        if cur != "word":
            close(i)
        if start is None:
            start, cur = i, "word"
    close(n)
    return words, offsets


def join_words(words: Sequence[str]) -> str:
    """Join words for display: single spaces, none between two characters of a script written without spaces.

    Args:
        words: words as `split_words` or WikiANN give them (zh/ja one character per word).

    Returns:
        The text, e.g. "New York" but "東京".
    """
    out: list[str] = []
    for i, w in enumerate(words):
        if i and not (_no_space_script(words[i - 1][-1:] or " ") and _no_space_script(w[:1] or " ")):
            out.append(" ")
        out.append(w)
    return "".join(out)


def predict_text(model: Any, tokenizer: Any, text: str, **kwargs: Any) -> TextPrediction:
    """Tag user-typed text: split it with `split_words`, then `predict_tags` on the words.

    Args:
        model: as for `predict_tags`.
        tokenizer: as for `predict_tags`.
        text: raw text of one sentence (or a short paragraph).
        **kwargs: passed on to `predict_tags` (device, max_length, stride, backend).

    Returns:
        A `TextPrediction` (tokens, character offsets, tags; `.entities` with character offsets).
    """
    kwargs.pop("return_probs", None)
    tokens, offsets = split_words(text)
    tags = predict_tags(model, tokenizer, [tokens], **kwargs)[0] if tokens else []
    return TextPrediction(text, tuple(tokens), tuple(offsets), tuple(tags))
