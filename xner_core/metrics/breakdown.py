"""Stage 5a, metrics: span-level error breakdown (correct, wrong type, boundary, missed, spurious) per type."""

from __future__ import annotations

from dataclasses import dataclass

from xner_core.metrics.scores import Chunk, TagSequences, _check_aligned, _chunks, _type_order

ERROR_CATEGORIES: tuple[str, ...] = ("correct", "wrong_type", "boundary", "boundary_and_type", "missed", "spurious")


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
