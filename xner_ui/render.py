"""Dashboard rendering helpers: escaped entity highlighting and user-text parsing (pure; no Streamlit import).

User text is untrusted. Every token goes through `html.escape` before it is placed in the HTML this module
builds, and the HTML is shown with `st.html` (no Markdown pass over it). Text shown in Markdown elements
(`st.markdown`, `st.error`, ...) goes through `md_escape`, which neutralises both HTML and Markdown syntax.
"""

from __future__ import annotations

import html
import re
from typing import Iterable, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import ENTITY_TYPES, spans
from xner_core.errors import DataError
from xner_core.inference.text import join_words, split_words

# Background / border colour per entity type (colour-blind-safe pairs: blue, orange, green).
ENTITY_COLOURS: dict[str, tuple[str, str]] = {
    "PER": ("#dbeafe", "#1d4ed8"),
    "ORG": ("#ffedd5", "#c2410c"),
    "LOC": ("#dcfce7", "#15803d"),
}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:>])")
# `[Juan Pérez|PER]` marks an entity in typed text (the sentence lab's optional gold markup).
_MARK_RE = re.compile(r"\[([^\[\]|\n]+)\|(" + "|".join(ENTITY_TYPES) + r")\]")


def md_escape(text: str) -> str:
    """Escape text for a Markdown element: HTML characters become entities, Markdown syntax is backslashed.

    Args:
        text: any user-derived string (file names, tokens, error messages quoting user input).

    Returns:
        A string that Streamlit's Markdown renders as the literal text.
    """
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def html_text(text: str) -> str:
    """Escape any text for a place inside HTML built here (element content or a quoted attribute)."""
    return html.escape(str(text), quote=True)


def _token(tok: str) -> str:
    return html_text(tok)


def entity_html(tokens: Sequence[str], tags: Sequence[str], changed: Iterable[int] = (),
                label: str | None = None) -> str:
    """One sentence as HTML: entity chunks coloured per type with a type badge, changed tokens underlined.

    Args:
        tokens: the words (untrusted; each is escaped).
        tags: IOB2 tags, one per token (invalid I- tags start a chunk, as `tags.spans` reads them).
        changed: indices of tokens a perturbation wrote (drawn with a dotted red underline).
        label: optional row label in front of the sentence (escaped).

    Returns:
        An HTML fragment (a single `<div>`), safe to pass to `st.html`.
    """
    changed = set(changed)
    starts = {sp.start: sp for sp in spans(tags)}
    parts: list[str] = []
    i = 0
    n = len(tokens)

    def word(k: int) -> str:
        text = _token(tokens[k])
        if k in changed:
            return f'<span style="text-decoration: underline dotted #dc2626 2px" title="changed">{text}</span>'
        return text

    while i < n:
        sp = starts.get(i)
        if sp is None:
            parts.append(word(i))
            i += 1
            continue
        bg, fg = ENTITY_COLOURS.get(sp.etype, ("#f3f4f6", "#374151"))
        inner = " ".join(word(k) for k in range(sp.start, sp.end))
        parts.append(
            f'<span style="background:{bg};border:1px solid {fg};border-radius:4px;padding:1px 4px;'
            f'line-height:2">{inner} <span style="color:{fg};font-size:0.7em;font-weight:600">'
            f"{html.escape(sp.etype)}</span></span>"
        )
        i = sp.end
    head = (f'<span style="color:#6b7280;font-size:0.8em;margin-right:8px">{_token(label)}</span>'
            if label else "")
    return f'<div style="font-size:1.02em;margin:2px 0">{head}{" ".join(parts)}</div>'


def legend_html() -> str:
    """A one-line colour legend of the entity types."""
    items = [
        f'<span style="background:{bg};border:1px solid {fg};border-radius:4px;padding:1px 6px;margin-right:6px">'
        f"{t}</span>" for t, (bg, fg) in ENTITY_COLOURS.items()
    ]
    items.append('<span style="text-decoration: underline dotted #dc2626 2px">changed by the perturbation</span>')
    return f'<div style="font-size:0.85em">{"".join(items)}</div>'


def parse_marked_text(text: str) -> tuple[list[str], list[str]]:
    """Split typed text into words (`xner_core.inference.text.split_words`) and read optional entity markup.

    `[Juan Pérez|PER] vive en [Madrid|LOC]` marks two entities; text without markup gives all-"O" tags. The
    markup brackets are removed; the words inside a mark are split like any other text.

    Args:
        text: the user's sentence (any script).

    Returns:
        (words, IOB2 tags), equal lengths.
    """
    words: list[str] = []
    tags: list[str] = []
    pos = 0
    for m in _MARK_RE.finditer(text):
        plain, _ = split_words(text[pos:m.start()])
        words.extend(plain)
        tags.extend(["O"] * len(plain))
        inner, _ = split_words(m.group(1))
        words.extend(inner)
        tags.extend([f"B-{m.group(2)}"] + [f"I-{m.group(2)}"] * (len(inner) - 1) if inner else [])
        pos = m.end()
    rest, _ = split_words(text[pos:])
    words.extend(rest)
    tags.extend(["O"] * len(rest))
    return words, tags


def user_sentence(text: str, lang: str, max_chars: int = 500, sentence_id: str = "lab-0") -> tuple[Sentence | None,
                                                                                                     str | None]:
    """A typed sentence (with optional entity markup) as a Sentence, after the core's text checks.

    Args:
        text: the user's text (untrusted).
        lang: its language code.
        max_chars: longest accepted text.
        sentence_id: the id the sentence gets.

    Returns:
        (sentence, None); (None, the check's message) for a rejected text; (None, None) for a text without words.
    """
    from xner_core.corpus.textcheck import check_sentence

    try:
        words, tags = parse_marked_text(check_sentence(text, max_chars=max_chars))
    except DataError as exc:
        return None, str(exc)
    if not words:
        return None, None
    return Sentence(tuple(words), tuple(tags), lang, sentence_id), None


def relabel(sentence: Sentence, lang: str) -> Sentence:
    """The same tokens, tags and id under another language code (a drawn test sentence shown as `lang`)."""
    return Sentence(sentence.tokens, sentence.tags, lang, sentence.id)


def sentence_text(words: Sequence[str]) -> str:
    """Words joined back into readable text (no space before closing punctuation; `text.join_words`)."""
    return join_words(words)


def changed_positions(changes: Iterable[object]) -> set[int]:
    """Token indices in the PERTURBED sentence that a perturbation wrote (from `perturb.Change` records).

    Args:
        changes: `Change` objects (fields `new_start`, `new`).

    Returns:
        The set of indices.
    """
    out: set[int] = set()
    for c in changes:
        start = c.new_start
        out.update(range(start, start + len(c.new)))
    return out
