"""Stage 5a, metrics: scores on entities seen in the model's training data vs unseen ones.

The reference study's central variable is whether an entity's surface form was in the training data (P1 replaces
seen entities by unseen ones). Scoring the two groups apart follows the usual partition by surface form
(Augenstein et al. 2017, "Generalisation in NER"): a gold or predicted entity chunk is *seen* when its tokens,
joined by spaces (`perturb.context.chunk_key`), occur as an entity chunk of any type in the training sentences.
A predicted chunk that matches a gold chunk exactly has the same surface form, so it falls in the same group:
restricting both gold and predictions to one group (every other chunk set to O) and scoring as usual gives that
group's precision, recall and F1 with the ordinary seqeval-strict counting (and its bootstrap).

The same partition by a chunk's own properties gives cheap buckets (Augenstein et al. bucket by both): by entity
length in tokens (`len1`, `len2`, `len3+`) and, for seen entities, by how often the surface form occurs as an
entity chunk in the training data (`freq1`, `freq2-9`, `freq10+`; `unseen` is frequency 0). Each bucket family
partitions the chunks, so its groups' counts add up to the overall ones.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Mapping, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import spans

SURFACE_SCOPES: tuple[str, ...] = ("seen", "unseen")
LENGTH_SCOPES: tuple[str, ...] = ("len1", "len2", "len3+")
FREQUENCY_SCOPES: tuple[str, ...] = ("freq1", "freq2-9", "freq10+")
BUCKET_SCOPES: tuple[str, ...] = (*LENGTH_SCOPES, *FREQUENCY_SCOPES)
# Display names of the scopes above (charts, the dashboard).
SCOPE_LABELS: Mapping[str, str] = {
    "seen": "seen in training", "unseen": "unseen in training", "len1": "1 token", "len2": "2 tokens",
    "len3+": "3+ tokens", "freq1": "seen once", "freq2-9": "seen 2–9×", "freq10+": "seen 10+×"}


def surface_key(tokens: Sequence[str]) -> str:
    """The surface form of a chunk: its tokens joined by single spaces (as `perturb.context.chunk_key`)."""
    return " ".join(tokens)


def seen_surfaces(sentences: Iterable[Sentence]) -> frozenset[str]:
    """Surface forms of every entity chunk of `sentences` (e.g. a model's training data), any type.

    Args:
        sentences: labeled sentences.

    Returns:
        The set of chunk surface forms.
    """
    return frozenset(surface_counts(sentences))


def surface_counts(sentences: Iterable[Sentence]) -> Counter[str]:
    """How often each surface form occurs as an entity chunk (any type) in `sentences`.

    Args:
        sentences: labeled sentences.

    Returns:
        Surface form -> count (its keys are `seen_surfaces`).
    """
    return Counter(surface_key(s.tokens[sp.start:sp.end]) for s in sentences for sp in spans(s.tags))


def length_bucket(tokens: Sequence[str]) -> str:
    """A chunk's length bucket: "len1", "len2" or "len3+"."""
    return LENGTH_SCOPES[min(len(tokens), 3) - 1]


def frequency_bucket(count: int) -> str | None:
    """A training count's bucket: "freq1", "freq2-9", "freq10+", or None for 0 (unseen)."""
    return None if count <= 0 else "freq1" if count == 1 else "freq2-9" if count < 10 else "freq10+"


def restrict_tags(tokens: Sequence[Sequence[str]], tags: Sequence[Sequence[str]], surfaces: frozenset[str],
                  seen: bool) -> list[list[str]]:
    """Tags with only the chunks of one group kept: those whose surface form is in `surfaces` (seen=True) or not
    in it (seen=False); every other chunk becomes O. The result is valid IOB2 when `tags` is.

    Args:
        tokens: the sentences' tokens.
        tags: one tag sequence per sentence (gold or predicted), aligned with `tokens`.
        surfaces: the seen surface forms (`seen_surfaces`).
        seen: which group to keep.

    Returns:
        The restricted tag sequences.
    """
    return restrict_by(tokens, tags, lambda chunk: (surface_key(chunk) in surfaces) == seen)


def restrict_by(tokens: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
                keep: Callable[[Sequence[str]], bool]) -> list[list[str]]:
    """Tags with only the chunks whose tokens satisfy `keep`; every other chunk becomes O (valid IOB2 stays so).

    Args:
        tokens: the sentences' tokens.
        tags: one tag sequence per sentence, aligned with `tokens`.
        keep: a chunk's tokens -> whether to keep it.

    Returns:
        The restricted tag sequences.
    """
    out: list[list[str]] = []
    for toks, tg in zip(tokens, tags):
        kept = ["O"] * len(tg)
        for sp in spans(tg):
            if keep(toks[sp.start:sp.end]):
                kept[sp.start:sp.end] = tg[sp.start:sp.end]
        out.append(kept)
    return out


def scope_groups(tokens: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                 counts: Mapping[str, int]) -> dict[str, tuple[list[list[str]], list[list[str]]]]:
    """Gold and predicted tags of every scope of this module (SURFACE_SCOPES, then BUCKET_SCOPES).

    Args:
        tokens: the sentences' tokens.
        gold, pred: gold and predicted tags, aligned with `tokens`.
        counts: the model's training surface counts (`surface_counts`).

    Returns:
        Scope -> (gold, pred) restricted to that scope's chunks.
    """
    def length_is(scope: str) -> Callable[[Sequence[str]], bool]:
        return lambda chunk: length_bucket(chunk) == scope

    def frequency_is(scope: str) -> Callable[[Sequence[str]], bool]:
        return lambda chunk: frequency_bucket(counts.get(surface_key(chunk), 0)) == scope

    tests: dict[str, Callable[[Sequence[str]], bool]] = {
        "seen": lambda chunk: surface_key(chunk) in counts, "unseen": lambda chunk: surface_key(chunk) not in counts,
        **{scope: length_is(scope) for scope in LENGTH_SCOPES},
        **{scope: frequency_is(scope) for scope in FREQUENCY_SCOPES}}
    return {scope: (restrict_by(tokens, gold, keep), restrict_by(tokens, pred, keep)) for scope, keep in tests.items()}
