"""Stage 5, metrics: entity-level scores (seqeval strict IOB2), bootstrap CIs, paired drops, error breakdown.

Input is seqeval's interface: one list of tags per sentence for gold and predictions, aligned one to one.

Chunking. The default (`strict=True`) reproduces `seqeval.metrics.classification_report(..., mode="strict",
scheme=IOB2)`: a chunk starts only at `B-X` and extends over the following `I-X` of the same type; a stray `I-X`
(after `O` or after a chunk of another type) starts nothing and is ignored. `strict=False` reproduces seqeval's
default mode, which mimics conlleval: a stray `I-X` opens a chunk (the chunking of `tags.spans`). The two agree
on valid IOB2. A gold and a predicted chunk match when (start, end, type) are equal.

Speed. Scores are computed from per-sentence counts (true positives, gold and predicted chunks per type), so a
bootstrap only resamples rows of a small integer matrix with numpy instead of re-chunking tags; 1,000 resamples
over 10k sentences take about 0.1 s. Sentence and token indices in error messages are 0-based.

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
ERROR_CATEGORIES: tuple[str, ...] = ("correct", "wrong_type", "boundary", "boundary_and_type", "missed", "spurious")

# Resamples drawn per numpy step: bounds the temporary (resamples x sentences) index array to a few MB.
_RESAMPLE_CHUNK = 64


# ---------------------------------------------------------------------------------------------------------------
# Result types


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


@dataclass(frozen=True)
class DropCI:
    """Paired bootstrap estimate of an F1 drop (clean minus perturbed).

    `drop` is the point estimate on all sentences; `low`/`high` the percentile CI; `p_value` the fraction of
    resamples whose drop is <= 0, a one-sided test of "the perturbation does not lower F1".
    """

    drop: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class ErrorCounts:
    """Span-level error categories (see `error_breakdown`)."""

    correct: int = 0
    wrong_type: int = 0
    boundary: int = 0
    boundary_and_type: int = 0
    missed: int = 0
    spurious: int = 0

    @property
    def gold_total(self) -> int:
        """Gold chunks classified: every gold chunk falls in exactly one of the first five categories."""
        return self.correct + self.wrong_type + self.boundary + self.boundary_and_type + self.missed


@dataclass(frozen=True)
class ErrorBreakdown:
    """Error categories overall and per type (gold type; spurious chunks under their predicted type)."""

    overall: ErrorCounts
    per_type: tuple[tuple[str, ErrorCounts], ...]

    @property
    def by_type(self) -> dict[str, ErrorCounts]:
        """A fresh dict type -> ErrorCounts."""
        return dict(self.per_type)


# ---------------------------------------------------------------------------------------------------------------
# Chunking and validation


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


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap


def _check_bootstrap_args(n_resamples: int, alpha: float, metric: str) -> None:
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    if metric not in METRICS:
        raise ConfigError(choices_message("metric", metric, METRICS))


def _metric_vec(tp: np.ndarray, ng: np.ndarray, npr: np.ndarray, metric: str) -> np.ndarray:
    """Vectorised `_prf` over arrays of totals; returns the requested metric."""
    tp = tp.astype(np.float64)
    p = np.divide(tp, npr, out=np.zeros_like(tp), where=npr > 0)
    if metric == "precision":
        return p
    r = np.divide(tp, ng, out=np.zeros_like(tp), where=ng > 0)
    if metric == "recall":
        return r
    s = p + r
    return np.divide(2 * p * r, s, out=np.zeros_like(tp), where=s > 0)


def _pack(columns: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Pack non-negative count columns into as few int64 words as their resampled sums allow.

    A resampled total is at most n * max(column), so `bits` per field can never overflow into the next field.
    Gathering one packed word instead of three columns makes the bootstrap's gather (its cost) ~3x cheaper.

    Returns:
        (words of shape (n, n_words), bits per field, fields per word).
    """
    n, c = columns.shape
    bits = max(1, int(n * max(int(columns.max(initial=0)), 1)).bit_length())
    per_word = max(1, 63 // bits)
    n_words = -(-c // per_word)
    words = np.zeros((n, n_words), dtype=np.int64)
    for j in range(c):
        words[:, j // per_word] |= columns[:, j].astype(np.int64) << ((j % per_word) * bits)
    return words, bits, per_word


def _resampled_totals(columns: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Sum `columns` (sentences x c, non-negative ints) over bootstrap resamples of sentences.

    Returns:
        (n_resamples, c) int64 totals; resample b draws len(columns) sentence indices uniformly with replacement.
    """
    n, c = columns.shape
    words, bits, per_word = _pack(columns)
    mask = (1 << bits) - 1
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, c), dtype=np.int64)
    # Resamples are drawn in fixed-size blocks from one generator, so results depend only on the seed; blocks
    # bound the temporary index array to a few MB.
    idx_dtype = np.int32 if n < 2**31 else np.int64
    for b0 in range(0, n_resamples, _RESAMPLE_CHUNK):
        b1 = min(b0 + _RESAMPLE_CHUNK, n_resamples)
        idx = rng.integers(0, n, size=(b1 - b0, n), dtype=idx_dtype)
        sums = [words[:, w][idx].sum(axis=1) for w in range(words.shape[1])]
        for j in range(c):
            out[b0:b1, j] = (sums[j // per_word] >> ((j % per_word) * bits)) & mask
    return out


def _check_nonempty(n: int) -> None:
    if n == 0:
        raise MetricsInputError("cannot bootstrap over 0 sentences; give at least one sentence")


def bootstrap_from_counts(
    counts: SentenceCounts,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    scope: str = "overall",
    metric: str = "f1",
) -> tuple[float, float]:
    """Percentile bootstrap CI over sentences from precomputed counts (see `bootstrap_ci`)."""
    _check_bootstrap_args(n_resamples, alpha, metric)
    _check_nonempty(counts.sentences)
    cols = counts.columns(scope)
    totals = _resampled_totals(cols, n_resamples, seed)
    values = _metric_vec(totals[:, 0], totals[:, 1], totals[:, 2], metric)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    gold: TagSequences,
    pred: TagSequences,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    scope: str = "overall",
    metric: str = "f1",
    strict: bool = True,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a score, resampling sentences with replacement.

    Each resample draws len(gold) sentence indices uniformly with replacement and recomputes the micro score
    from the summed per-sentence counts. Deterministic for a seed.

    Args:
        gold: gold tags, one sequence per sentence.
        pred: predicted tags, aligned with `gold`.
        n_resamples: number of bootstrap resamples.
        alpha: 1 - confidence level (0.05 gives a 95% interval).
        seed: seed of numpy's default_rng.
        scope: "overall" or an entity type ("PER", "ORG", "LOC", ...).
        metric: "f1", "precision" or "recall".
        strict: chunking mode, as in `score`.

    Returns:
        (low, high): the alpha/2 and 1 - alpha/2 quantiles of the resampled metric.

    Raises:
        DataError: misaligned or empty inputs, bad tags.
        ConfigError: bad n_resamples, alpha, scope or metric.
    """
    _check_bootstrap_args(n_resamples, alpha, metric)
    return bootstrap_from_counts(
        sentence_counts(gold, pred, strict=strict), n_resamples, alpha, seed, scope, metric
    )


def paired_bootstrap_drop(
    gold_clean: TagSequences,
    pred_clean: TagSequences,
    gold_pert: TagSequences,
    pred_pert: TagSequences,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    scope: str = "overall",
    metric: str = "f1",
    strict: bool = True,
) -> DropCI:
    """Paired bootstrap of the score drop from a clean to a perturbed test set.

    Sentence i of the perturbed set is the perturbed version of clean sentence i (it may have a different
    number of tokens, e.g. after an entity replacement). Each resample draws one set of sentence indices and
    uses it for both conditions, so sentence difficulty cancels out of the difference.

    Args:
        gold_clean: clean gold tags.
        pred_clean: predictions on the clean sentences.
        gold_pert: perturbed gold tags, same number of sentences as `gold_clean`.
        pred_pert: predictions on the perturbed sentences.
        n_resamples: number of bootstrap resamples.
        alpha: 1 - confidence level.
        seed: seed of numpy's default_rng.
        scope: "overall" or an entity type.
        metric: "f1" (default), "precision" or "recall".
        strict: chunking mode, as in `score`.

    Returns:
        DropCI(drop, low, high, p_value): drop = metric(clean) - metric(perturbed) on all sentences; low/high the
        percentile CI of the resampled drops; p_value = fraction of resamples with drop <= 0, a one-sided
        test of "the perturbation does not lower the score" (small = the drop is reliably positive; 0 means no
        resample had drop <= 0, i.e. p < 1/n_resamples).

    Raises:
        DataError: clean and perturbed sets differ in sentence count, or a pair is misaligned.
        ConfigError: bad n_resamples, alpha, scope or metric.
    """
    _check_bootstrap_args(n_resamples, alpha, metric)
    _check_aligned(gold_clean, pred_clean, "clean predictions")
    _check_aligned(gold_pert, pred_pert, "perturbed predictions")
    if len(gold_clean) != len(gold_pert):
        raise MetricsInputError(
            f"clean set has {len(gold_clean)} sentences but perturbed set has {len(gold_pert)}; "
            "a paired bootstrap needs the perturbed version of every clean sentence, in the same order"
        )
    _check_nonempty(len(gold_clean))
    clean = sentence_counts(gold_clean, pred_clean, strict=strict)
    pert = sentence_counts(gold_pert, pred_pert, strict=strict)
    if scope != "overall" and scope not in clean.types and scope not in pert.types:
        raise ConfigError(choices_message("scope", scope, ("overall",) + clean.types))
    cols = np.concatenate([_scope_columns(clean, scope), _scope_columns(pert, scope)], axis=1)
    full = cols.sum(axis=0, keepdims=True)
    point = _metric_vec(full[:, 0], full[:, 1], full[:, 2], metric) - _metric_vec(
        full[:, 3], full[:, 4], full[:, 5], metric
    )
    totals = _resampled_totals(cols, n_resamples, seed)
    drops = _metric_vec(totals[:, 0], totals[:, 1], totals[:, 2], metric) - _metric_vec(
        totals[:, 3], totals[:, 4], totals[:, 5], metric
    )
    low, high = np.quantile(drops, [alpha / 2, 1 - alpha / 2])
    return DropCI(float(point[0]), float(low), float(high), float(np.mean(drops <= 0)))



SCOPES: tuple[str, ...] = ("overall", "PER", "ORG", "LOC")


def condition_rows(
    gold: TagSequences,
    pred: TagSequences,
    clean_gold: TagSequences | None = None,
    clean_pred: TagSequences | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    scopes: Sequence[str] = SCOPES,
) -> list[dict]:
    """Scores of one test condition per scope, with a bootstrap CI and, for a perturbed condition, the paired
    bootstrap of its drop from the clean condition (the numbers of a results row).

    Args:
        gold: gold tags of the condition's sentences.
        pred: predictions on them.
        clean_gold: gold tags of the clean sentences (None: this IS the clean condition).
        clean_pred: predictions on the clean sentences.
        n_resamples: bootstrap resamples (0: no CIs).
        seed: bootstrap seed.
        scopes: "overall" and/or entity types.

    Returns:
        One dict per scope: scope, precision, recall, f1, f1_low, f1_high, clean_f1, drop, drop_low, drop_high,
        drop_p, support, n_sentences, n_gold, n_pred (CIs None without resamples or gold chunks of the scope).
    """
    if (clean_gold is None) != (clean_pred is None):
        raise ConfigError("give clean_gold and clean_pred together (the clean condition), or neither")
    scores = score(gold, pred)
    clean = score(clean_gold, clean_pred) if clean_gold is not None and clean_pred is not None else scores
    rows = []
    for scope in scopes:
        ts = scores.overall if scope == "overall" else scores.type_score(scope)
        cs = clean.overall if scope == "overall" else clean.type_score(scope)
        lo = hi = None
        if n_resamples > 0 and ts.support > 0:
            lo, hi = bootstrap_ci(gold, pred, n_resamples=n_resamples, seed=seed, scope=scope)
        row = {"scope": scope, "precision": ts.precision, "recall": ts.recall, "f1": ts.f1, "f1_low": lo,
               "f1_high": hi, "clean_f1": cs.f1, "drop": cs.f1 - ts.f1, "drop_low": None, "drop_high": None,
               "drop_p": None, "support": ts.support, "n_sentences": len(gold), "n_gold": scores.gold_entities,
               "n_pred": scores.pred_entities}
        if clean_gold is not None and clean_pred is not None and n_resamples > 0 and cs.support > 0:
            d = paired_bootstrap_drop(clean_gold, clean_pred, gold, pred, n_resamples=n_resamples, seed=seed,
                                      scope=scope)
            row.update(drop_low=d.low, drop_high=d.high, drop_p=d.p_value)
        rows.append(row)
    return rows

def _scope_columns(counts: SentenceCounts, scope: str) -> np.ndarray:
    """`counts.columns(scope)`, with zeros for a type seen only in the other condition."""
    if scope != "overall" and scope not in counts.types:
        return np.zeros((counts.sentences, 3), dtype=np.int64)
    return counts.columns(scope)


# ---------------------------------------------------------------------------------------------------------------
# Error breakdown


def _classify_gold(g: Chunk, preds: list[Chunk]) -> str:
    """Category of one gold chunk given the predicted chunks of its sentence (best match wins)."""
    best = "missed"
    rank = {"correct": 0, "wrong_type": 1, "boundary": 2, "boundary_and_type": 3, "missed": 4}
    gs, ge, gt = g
    for ps, pe, pt in preds:
        if ps >= ge or gs >= pe:  # no overlap
            continue
        same_span = ps == gs and pe == ge
        if same_span:
            cat = "correct" if pt == gt else "wrong_type"
        else:
            cat = "boundary" if pt == gt else "boundary_and_type"
        if rank[cat] < rank[best]:
            best = cat
            if best == "correct":
                break
    return best


def error_breakdown(gold: TagSequences, pred: TagSequences, strict: bool = True) -> ErrorBreakdown:
    """Classify span-level errors.

    Every gold chunk is classified exactly once, by the best overlapping prediction in this order:
    correct (same span and type) > wrong_type (same span, other type) > boundary (overlapping, same type,
    different span) > boundary_and_type (overlapping, other type, different span) > missed (no overlapping
    prediction). A predicted chunk is spurious only when it overlaps no gold chunk; a prediction overlapping
    several gold chunks (or a gold chunk overlapping several predictions) therefore adds no extra count, so
    correct == the true positives of `score`, and the five gold categories sum to the gold chunk count.

    Args:
        gold: gold tags, one sequence per sentence.
        pred: predicted tags, aligned with `gold`.
        strict: chunking mode, as in `score`.

    Returns:
        ErrorBreakdown: totals and per type, where gold categories count under the gold chunk's type and
        spurious predictions under the predicted type. Types: PER, ORG, LOC, then any other type seen.

    Raises:
        DataError: misaligned inputs or bad tags.
    """
    _check_aligned(gold, pred)
    per: dict[str, dict[str, int]] = {}
    for i, (g_tags, p_tags) in enumerate(zip(gold, pred)):
        g = _chunks(g_tags, strict, i)
        p = _chunks(p_tags, strict, i)
        for chunk in g:
            cat = _classify_gold(chunk, p)
            bucket = per.setdefault(chunk[2], {})
            bucket[cat] = bucket.get(cat, 0) + 1
        for ps, pe, pt in p:
            if not any(ps < ge and gs < pe for gs, ge, _ in g):
                bucket = per.setdefault(pt, {})
                bucket["spurious"] = bucket.get("spurious", 0) + 1
    per_type = tuple((t, ErrorCounts(**per.get(t, {}))) for t in _type_order(set(per)))
    overall = ErrorCounts(**{c: sum(getattr(ec, c) for _, ec in per_type) for c in ERROR_CATEGORIES})
    return ErrorBreakdown(overall, per_type)


def breakdown_table(breakdown: ErrorBreakdown) -> list[dict]:
    """Flatten an ErrorBreakdown into rows for results and plots.

    Args:
        breakdown: output of `error_breakdown`.

    Returns:
        Rows {"scope", "correct", "wrong_type", "boundary", "boundary_and_type", "missed", "spurious"}:
        "overall" first, then each type.
    """
    rows = [("overall", breakdown.overall)] + list(breakdown.per_type)
    return [{"scope": scope, **{c: getattr(ec, c) for c in ERROR_CATEGORIES}} for scope, ec in rows]
