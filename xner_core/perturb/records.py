"""Stage 2, perturb: what a perturbation run returns: every change, the counts report and the perturbed corpus."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from xner_core.corpus.sentences import Corpus


@dataclass(frozen=True)
class Change:
    """One replaced span of one sentence.

    Attributes:
        sentence_id: the sentence's id ("" when it has none; then use `index`).
        start, end: the replaced span in the ORIGINAL sentence, half-open.
        old: the original tokens of that span.
        new: the tokens written instead (same count except for entity replacements).
        kind: "entity" (chunk replaced and retagged), "context" (O word), "mask", or "noise" (typo).
        index: the sentence's position in the perturbed corpus.
        new_start: where `new` starts in the perturbed sentence (for highlighting).
    """

    sentence_id: str
    start: int
    end: int
    old: tuple[str, ...]
    new: tuple[str, ...]
    kind: str
    index: int = 0
    new_start: int = 0


@dataclass(frozen=True)
class PerturbReport:
    """Counts of what a perturbation run could change and did change.

    `tokens`/`entities` count the input; `*_eligible` count the units the perturbation targets (entity chunks,
    or for char_noise the chunks with an eligible token; context tokens for the context perturbations);
    `sentences_eligible` counts sentences with at least one eligible unit (token or entity), i.e. those the
    perturbation could change at rate 1; `tokens_changed` counts input tokens inside changed spans;
    `entities_changed` counts input entity chunks overlapping a change; `sentences_changed` counts sentences
    with at least one change.
    """

    name: str
    seed: int
    rate: float
    sentences: int
    sentences_eligible: int
    sentences_changed: int
    tokens: int
    tokens_eligible: int
    tokens_changed: int
    entities: int
    entities_eligible: int
    entities_changed: int

    @property
    def entity_change_fraction(self) -> float:
        """entities_changed / entities (P1 at rate 1: the share of entity occurrences that were shared)."""
        return self.entities_changed / self.entities if self.entities else 0.0

    @property
    def token_change_fraction(self) -> float:
        """tokens_changed / tokens."""
        return self.tokens_changed / self.tokens if self.tokens else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        """Return the fields plus the two change fractions, for tables and JSON."""
        out: dict[str, float | int | str] = asdict(self)
        out["entity_change_fraction"] = self.entity_change_fraction
        out["token_change_fraction"] = self.token_change_fraction
        return out


@dataclass(frozen=True)
class PerturbResult:
    """A perturbed corpus, its report and every change (in corpus order)."""

    corpus: Corpus
    report: PerturbReport
    changes: tuple[Change, ...]
