"""Stage 5a, metrics: scores on entities seen in the model's training data vs unseen ones.

The reference study's central variable is whether an entity's surface form was in the training data (P1 replaces
seen entities by unseen ones). Scoring the two groups apart follows the usual partition by surface form
(Augenstein et al. 2017, "Generalisation in NER"): a gold or predicted entity chunk is *seen* when its tokens,
joined by spaces (`perturb.context.chunk_key`), occur as an entity chunk of any type in the training sentences.
A predicted chunk that matches a gold chunk exactly has the same surface form, so it falls in the same group:
restricting both gold and predictions to one group (every other chunk set to O) and scoring as usual gives that
group's precision, recall and F1 with the ordinary seqeval-strict counting (and its bootstrap).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import spans

SURFACE_SCOPES: tuple[str, ...] = ("seen", "unseen")


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
    return frozenset(surface_key(s.tokens[sp.start:sp.end]) for s in sentences for sp in spans(s.tags))


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
    out: list[list[str]] = []
    for toks, tg in zip(tokens, tags):
        kept = ["O"] * len(tg)
        for sp in spans(tg):
            if (surface_key(toks[sp.start:sp.end]) in surfaces) == seen:
                kept[sp.start:sp.end] = tg[sp.start:sp.end]
        out.append(kept)
    return out
