"""Stage 2, perturb: a user file's other columns (POS, chunk, other entity types) aligned with its perturbed copy.

A perturbation keeps the token count of every span it does not touch and edits spans in place (docs/design.md),
so each token of the perturbed copy comes from one row of the file: an untouched token keeps its row, a
replaced token (context word, mask, typo, or the i-th token of a replaced entity) keeps the row it replaced.
Only an entity replacement may be longer or shorter than the chunk it replaces: a chunk's rows beyond the new
name's length are dropped with its tokens, and the tokens a longer name adds continue the chunk's last row (the
same POS; a chunk column's `B-X` becomes `I-X`, as the name stays one phrase).
"""

from __future__ import annotations

from xner_core.corpus.conll import FileColumns
from xner_core.perturb.records import Change, PerturbResult


def _continued(fields: tuple[str, ...]) -> tuple[str, ...]:
    """The row of a token appended to a phrase: the last row's fields, with a chunk's B- prefix as I-."""
    return tuple("I-" + f[2:] if f.startswith("B-") and len(f) > 2 else f for f in fields)


def carry_columns(columns: FileColumns, result: PerturbResult) -> FileColumns:
    """The columns of the perturbed copy `result` of the corpus `columns` is aligned with.

    Args:
        columns: the file's columns (`ConllResult.columns`), aligned with the corpus that was perturbed.
        result: `perturb_corpus` of that corpus (its changes index sentences by position).

    Returns:
        FileColumns aligned with `result.corpus` (see the module docstring for replaced and added tokens).

    Raises:
        ValueError: `columns` does not fit the perturbed corpus (a different corpus, or changes that disagree
            with the sentences; a caller bug, not user input).
    """
    by_sentence: dict[int, list[Change]] = {}
    for change in result.changes:
        by_sentence.setdefault(change.index, []).append(change)
    if len(columns.extra) != len(result.corpus):
        raise ValueError(f"columns of {len(columns.extra)} sentences for a corpus of {len(result.corpus)}")
    extra_out: list[tuple[tuple[str, ...], ...]] = []
    other_out: list[tuple[str, ...]] = []
    blank = ("_",) * columns.width
    for k, sent in enumerate(result.corpus.sentences):
        rows, others = columns.extra[k], columns.other[k]
        extra: list[tuple[str, ...]] = []
        other: list[str] = []
        pos = 0
        for c in sorted(by_sentence.get(k, ()), key=lambda c: c.start):
            extra.extend(rows[pos:c.start])
            other.extend(others[pos:c.start])
            old = rows[c.start:c.end]
            for i in range(len(c.new)):
                inside = i < len(old)
                extra.append(old[i] if inside else _continued(old[-1]) if old else blank)
                other.append(others[c.start + i] if inside else "")
            pos = c.end
        extra.extend(rows[pos:])
        other.extend(others[pos:])
        if len(extra) != len(sent):
            raise ValueError(f"sentence {sent.id or k}: {len(extra)} column rows for {len(sent)} tokens; the "
                             "columns are not those of the perturbed corpus")
        extra_out.append(tuple(extra))
        other_out.append(tuple(other))
    return FileColumns(columns.width, tuple(extra_out), tuple(other_out))
