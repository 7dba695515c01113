"""Stage 5a, metrics: entity-level scores (seqeval strict IOB2) from per-sentence counts.

Input is seqeval's interface: one list of tags per sentence for gold and predictions, aligned one to one.

Chunking. The default (`strict=True`) reproduces `seqeval.metrics.classification_report(..., mode="strict",
scheme=IOB2)`: a chunk starts only at `B-X` and extends over the following `I-X` of the same type; a stray `I-X`
(after `O` or after a chunk of another type) starts nothing and is ignored. `strict=False` reproduces seqeval's
default mode, which mimics conlleval: a stray `I-X` opens a chunk (the chunking of `tags.spans`). The two agree
on valid IOB2. A gold and a predicted chunk match when (start, end, type) are equal.

Scores are computed from per-sentence counts (true positives, gold and predicted chunks per type), which the
bootstrap (`xner_core.metrics.bootstrap`) resamples. Sentence and token indices in error messages are 0-based.

Zero divisions follow seqeval: precision with no predictions, recall with no gold chunks and F1 with P + R = 0
are 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from xner_core.corpus.tags import ENTITY_TYPES
from xner_core.errors import ConfigError, DataError, choices_message

TagSequences = Sequence[Sequence[str]]
Chunk = tuple[int, int, str]  # (start, end exclusive, type)

METRICS: tuple[str, ...] = ("precision", "recall", "f1")


class MetricsInputError(DataError, ValueError):
    """Misaligned or malformed tags: a user-facing DataError that is also a ValueError, as in seqeval."""


@dataclass(frozen=True)
class TypeScore:
    """Precision, recall, F1 and support (number of gold chunks) of one scope."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Scores:
    """Scores of one prediction set: micro-averaged overall plus one entry per entity type.

    `per_type` always lists PER, ORG and LOC (in that order, zeros when a type is absent from gold and
    predictions), followed by any other type seen in the data, sorted. It is a tuple of pairs so the object stays
    hashable; use `type_score` or `by_type` to look a type up.
    """

    overall: TypeScore
    per_type: tuple[tuple[str, TypeScore], ...]
    sentences: int
    gold_entities: int
    pred_entities: int

    @property
    def types(self) -> tuple[str, ...]:
        """The entity types scored, in `per_type` order."""
        return tuple(t for t, _ in self.per_type)

    @property
    def by_type(self) -> dict[str, TypeScore]:
        """A fresh dict type -> TypeScore."""
        return dict(self.per_type)

    def type_score(self, etype: str) -> TypeScore:
        """Return the score of one type.

        Args:
            etype: an entity type, e.g. "PER".

        Returns:
            Its TypeScore.

        Raises:
            ConfigError: the type was not scored.
        """
        for t, s in self.per_type:
            if t == etype:
                return s
        raise ConfigError(choices_message("entity type", etype, self.types))


@dataclass(frozen=True, eq=False)
class SentenceCounts:
    """Per-sentence sufficient statistics: arrays of shape (sentences, types), int64.

    `tp[i, k]` counts chunks of type `types[k]` in sentence i found exactly (span and type) by the prediction;
    `n_gold` and `n_pred` count gold and predicted chunks.
    """

    types: tuple[str, ...]
    tp: np.ndarray
    n_gold: np.ndarray
    n_pred: np.ndarray

    @property
    def sentences(self) -> int:
        """Number of sentences."""
        return int(self.tp.shape[0])

    def columns(self, scope: str) -> np.ndarray:
        """Return a (sentences, 3) array of (tp, n_gold, n_pred) for one scope.

        Args:
            scope: "overall" (summed over types) or an entity type.

        Returns:
            The int64 array.

        Raises:
            ConfigError: unknown scope.
        """
        if scope == "overall":
            return np.stack([self.tp.sum(axis=1), self.n_gold.sum(axis=1), self.n_pred.sum(axis=1)], axis=1)
        if scope not in self.types:
            raise ConfigError(choices_message("scope", scope, ("overall",) + self.types))
        k = self.types.index(scope)
        return np.stack([self.tp[:, k], self.n_gold[:, k], self.n_pred[:, k]], axis=1)


def _bad_tag(sent: int, tok: int, tag: object) -> MetricsInputError:
    return MetricsInputError(
        f"invalid tag {tag!r} at sentence {sent}, token {tok} (0-based); tags must be 'O', 'B-<type>' or 'I-<type>' "
        f"(types: {', '.join(ENTITY_TYPES)})"
    )


def _chunks(tags: Sequence[str], strict: bool, sent: int) -> list[Chunk]:
    """Chunk one tag sequence the way seqeval does (strict IOB2 or conlleval-like default).

    Args:
        tags: the tags of one sentence.
        strict: True for seqeval mode="strict", scheme=IOB2; False for seqeval's default mode.
        sent: sentence index, for error messages.

    Returns:
        Chunks (start, end exclusive, type) in order.

    Raises:
        DataError: a tag is not O / B-X / I-X.
    """
    out: list[Chunk] = []
    start = -1  # start of the open chunk, -1 when none is open
    etype = ""
    for i, tag in enumerate(tags):
        if tag == "O":
            if start >= 0:
                out.append((start, i, etype))
                start = -1
            continue
        if not isinstance(tag, str) or len(tag) < 3 or tag[1] != "-":
            raise _bad_tag(sent, i, tag)
        prefix = tag[0]
        if prefix == "B":
            if start >= 0:
                out.append((start, i, etype))
            start, etype = i, tag[2:]
        elif prefix == "I":
            if start >= 0 and tag[2:] == etype:
                continue
            if start >= 0:
                out.append((start, i, etype))
            if strict:
                # seqeval strict IOB2 only opens chunks at B-: a stray I- is dropped.
                start = -1
            else:
                # conlleval: an I- after O or after another type opens a chunk.
                start, etype = i, tag[2:]
        else:
            raise _bad_tag(sent, i, tag)
    if start >= 0:
        out.append((start, len(tags), etype))
    return out


def _check_aligned(gold: TagSequences, pred: TagSequences, what: str = "predictions") -> None:
    """Raise DataError unless gold and pred have the same number of sentences and tags per sentence."""
    if len(gold) != len(pred):
        raise MetricsInputError(
            f"gold has {len(gold)} sentences but {what} have {len(pred)}; they must be aligned one to one"
        )
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise MetricsInputError(
                f"sentence {i} (0-based): gold has {len(g)} tags but {what} have {len(p)}; "
                "every sentence needs one predicted tag per gold token"
            )


def _type_order(seen: set[str]) -> tuple[str, ...]:
    """PER, ORG, LOC first (always), then any other type seen, sorted."""
    return ENTITY_TYPES + tuple(sorted(seen - set(ENTITY_TYPES)))


# ---------------------------------------------------------------------------------------------------------------
# Counting and scoring


def sentence_counts(gold: TagSequences, pred: TagSequences, strict: bool = True) -> SentenceCounts:
    """Count true positives, gold and predicted chunks per sentence and type.

    Args:
        gold: gold tags, one sequence per sentence.
        pred: predicted tags, aligned with `gold`.
        strict: seqeval strict IOB2 chunking (default) or seqeval's conlleval-like default.

    Returns:
        SentenceCounts with PER, ORG, LOC (plus any other type seen) as columns.

    Raises:
        DataError: misaligned inputs or a malformed tag.
    """
    _check_aligned(gold, pred)
    # Sparse (sentence, type, value) events, turned into dense arrays once all types are known.
    col: dict[str, int] = {t: k for k, t in enumerate(ENTITY_TYPES)}
    rows_g: list[int] = []
    cols_g: list[int] = []
    rows_p: list[int] = []
    cols_p: list[int] = []
    rows_t: list[int] = []
    cols_t: list[int] = []
    for i, (g_tags, p_tags) in enumerate(zip(gold, pred)):
        g = _chunks(g_tags, strict, i)
        p = _chunks(p_tags, strict, i)
        if not g and not p:
            continue
        for _, _, t in g:
            rows_g.append(i)
            cols_g.append(col.setdefault(t, len(col)))
        for _, _, t in p:
            rows_p.append(i)
            cols_p.append(col.setdefault(t, len(col)))
        if g and p:
            # Chunks within one sentence are distinct, so the set intersection counts exact matches.
            for _, _, t in set(g).intersection(p):
                rows_t.append(i)
                cols_t.append(col[t])
    order = _type_order(set(col))
    # Columns were numbered in order of first appearance; remap to the reported order.
    remap = np.array([order.index(t) for t in sorted(col, key=col.__getitem__)], dtype=np.int64)
    n, k = len(gold), len(order)

    def dense(rows: list[int], cols: list[int]) -> np.ndarray:
        flat = np.asarray(rows, dtype=np.int64) * k + remap[np.asarray(cols, dtype=np.int64)]
        return np.bincount(flat, minlength=n * k).reshape(n, k).astype(np.int64)

    return SentenceCounts(order, dense(rows_t, cols_t), dense(rows_g, cols_g), dense(rows_p, cols_p))


def _prf(tp: float, n_gold: float, n_pred: float) -> tuple[float, float, float]:
    # Same arithmetic as seqeval (F1 from the rounded P and R), so results agree to the last bit.
    p = tp / n_pred if n_pred > 0 else 0.0
    r = tp / n_gold if n_gold > 0 else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def _type_score(tp: int, n_gold: int, n_pred: int) -> TypeScore:
    p, r, f = _prf(tp, n_gold, n_pred)
    return TypeScore(float(p), float(r), float(f), int(n_gold))


def scores_from_counts(counts: SentenceCounts) -> Scores:
    """Aggregate per-sentence counts into Scores (micro average overall).

    Args:
        counts: output of `sentence_counts`.

    Returns:
        Scores.
    """
    tp = counts.tp.sum(axis=0)
    ng = counts.n_gold.sum(axis=0)
    npr = counts.n_pred.sum(axis=0)
    per_type = tuple((t, _type_score(int(tp[k]), int(ng[k]), int(npr[k]))) for k, t in enumerate(counts.types))
    return Scores(
        overall=_type_score(int(tp.sum()), int(ng.sum()), int(npr.sum())),
        per_type=per_type,
        sentences=counts.sentences,
        gold_entities=int(ng.sum()),
        pred_entities=int(npr.sum()),
    )


def score(gold: TagSequences, pred: TagSequences, strict: bool = True) -> Scores:
    """Entity-level precision, recall and F1, as seqeval computes them.

    Args:
        gold: gold tags, one sequence per sentence.
        pred: predicted tags, aligned with `gold` (same sentences, same number of tags in each).
        strict: True (default) = seqeval `mode="strict", scheme=IOB2`; False = seqeval's default
            (conlleval-compatible) mode, where a stray I- opens a chunk.

    Returns:
        Scores: micro-averaged overall scores and per-type scores (PER, ORG, LOC, then any other type seen).

    Raises:
        MetricsInputError (a DataError and a ValueError): different sentence counts, different lengths (the
            message names the first bad sentence), or a tag that is not O / B-X / I-X.
    """
    return scores_from_counts(sentence_counts(gold, pred, strict=strict))


def scores_table(scores: Scores) -> list[dict]:
    """Flatten Scores into rows for results and plots.

    Args:
        scores: output of `score`.

    Returns:
        Rows {"scope", "precision", "recall", "f1", "support"}: "overall" first, then each type.
    """
    rows = [("overall", scores.overall)] + list(scores.per_type)
    return [
        {"scope": scope, "precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
        for scope, s in rows
    ]
