"""IOB2 tag scheme: the label contract between every stage.

Tags are `O`, `B-X`, `I-X` for X in PER, ORG, LOC. A sequence is valid IOB2 when every `I-X` follows a
`B-X` or `I-X` of the same type. Spans are half-open token ranges `[start, end)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

ENTITY_TYPES: tuple[str, ...] = ("PER", "ORG", "LOC")
LABELS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
LABEL2ID: dict[str, int] = {label: i for i, label in enumerate(LABELS)}


@dataclass(frozen=True)
class Span:
    """One entity chunk: tokens[start:end] of type `etype`."""

    start: int
    end: int
    etype: str


def is_valid_tag(tag: str) -> bool:
    """Return True for O, B-X, I-X with X a known entity type."""
    if tag == "O":
        return True
    prefix, _, etype = tag.partition("-")
    return prefix in ("B", "I") and etype in ENTITY_TYPES


def first_invalid(tags: Sequence[str]) -> int | None:
    """Return the index of the first tag that breaks IOB2 (unknown tag or I- without B-), else None."""
    prev = "O"
    for i, tag in enumerate(tags):
        if not is_valid_tag(tag):
            return i
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            return i
        prev = tag
    return None


def is_valid_iob2(tags: Sequence[str]) -> bool:
    """Return True when `tags` is a valid IOB2 sequence over the known labels."""
    return first_invalid(tags) is None


def spans(tags: Sequence[str]) -> list[Span]:
    """Extract entity spans from a valid IOB2 sequence.

    Args:
        tags: IOB2 tags.

    Returns:
        Spans in order of appearance. A stray I-X (invalid IOB2) starts a new span, as seqeval does.
    """
    out: list[Span] = []
    start: int | None = None
    etype = ""
    for i, tag in enumerate(tags):
        if tag.startswith("B-") or (tag.startswith("I-") and (start is None or tag[2:] != etype)):
            if start is not None:
                out.append(Span(start, i, etype))
            start, etype = i, tag[2:]
        elif tag == "O" or not tag.startswith("I-"):
            if start is not None:
                out.append(Span(start, i, etype))
            start = None
    if start is not None:
        out.append(Span(start, len(tags), etype))
    return out


def span_tags(etype: str, length: int) -> list[str]:
    """Return the IOB2 tags of one entity of `length` tokens: B on the first, I on the rest."""
    return [f"B-{etype}"] + [f"I-{etype}"] * (length - 1)


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Convert IOB1 (I- may open a chunk; B- only between two adjacent chunks of one type) to IOB2."""
    out: list[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            out.append("B-" + tag[2:])
        else:
            out.append(tag)
        prev = tag
    return out


def repair_iob2(tags: Sequence[str]) -> list[str]:
    """Make a tag sequence valid IOB2: an I-X after O or after another type becomes B-X.

    This is exactly how `spans` and seqeval read a stray I-X (it opens a new entity), so
    `spans(repair_iob2(t)) == spans(t)` for every `t`; the same rule as an IOB1 -> IOB2 conversion. Applied to model
    predictions (a model may emit a stray I-X) and to loaded WikiANN sentences (its ja/zh and one el sentence contain
    such chunks): it keeps the entity reading and restores the IOB2 contract.

    Args:
        tags: tags that may hold stray I- tags.

    Returns:
        A valid IOB2 sequence of the same length.
    """
    return iob1_to_iob2(tags)


def bioes_to_iob2(tags: Sequence[str]) -> list[str]:
    """Convert BIOES/BILOU (S-/U- single, E-/L- end) to IOB2."""
    out: list[str] = []
    for tag in tags:
        prefix, _, etype = tag.partition("-")
        if prefix in ("S", "U"):
            out.append("B-" + etype)
        elif prefix in ("E", "L"):
            out.append("I-" + etype)
        else:
            out.append(tag)
    return out


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the tagging scheme of a file: 'bioes', 'iob1' or 'iob2'.

    BIOES when any S-/E-/U-/L- prefix appears; IOB1 when some chunk opens with I- and no B- ever opens a chunk
    after O; IOB2 otherwise.
    """
    opens_with_i = False
    opens_with_b_after_o = False
    for tags in tag_sequences:
        prev = "O"
        for tag in tags:
            prefix = tag.split("-", 1)[0]
            if prefix in ("S", "E", "U", "L") and "-" in tag:
                return "bioes"
            if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
                opens_with_i = True
            if tag.startswith("B-") and prev == "O":
                opens_with_b_after_o = True
            prev = tag
    if opens_with_i and not opens_with_b_after_o:
        return "iob1"
    return "iob2"
