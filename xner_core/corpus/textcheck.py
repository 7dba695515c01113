"""Input checks for user-typed sentences (sentence lab, `xner predict`): what is accepted and why not.

HTML or script-like text is accepted as text (it is data, and every renderer escapes it); what is refused is
empty input, binary control characters and sentences too long to be one sentence.
"""

from __future__ import annotations

import unicodedata

from xner_core.errors import DataError

MAX_CHARS = 2000
MAX_WORDS = 400


def check_sentence(text: str | None, max_chars: int = MAX_CHARS, max_words: int = MAX_WORDS) -> str:
    """Validate and normalise one user sentence.

    Args:
        text: the raw text.
        max_chars: the longest accepted text in characters.
        max_words: the most whitespace-separated words accepted.

    Returns:
        The text with surrounding whitespace removed and line breaks/tabs turned into spaces.

    Raises:
        DataError: empty, too long, too many words, or containing control characters (other than tab/newline).
    """
    if text is None or not text.strip():
        raise DataError("the sentence is empty; type a sentence of 1 to "
                        f"{max_words} words (any script)")
    if len(text) > max_chars:
        raise DataError(f"the sentence has {len(text)} characters; at most {max_chars} are allowed "
                        f"(split long text into sentences, or upload a CoNLL file)")
    bad = [ch for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r"]
    if bad:
        raise DataError(f"the sentence contains control character U+{ord(bad[0]):04X}; only printable text, "
                        f"spaces, tabs and line breaks are allowed")
    cleaned = " ".join(text.split())
    n_words = len(cleaned.split(" "))
    if n_words > max_words:
        raise DataError(f"the sentence has {n_words} words; at most {max_words} are allowed")
    return cleaned
