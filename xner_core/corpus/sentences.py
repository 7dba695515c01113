"""Stage 1, corpus: the Sentence and Corpus types every stage passes around, and corpus statistics.

A Sentence is tokens + IOB2 tags of equal length, with its language code and a stable id. The readers that make
them are `xner_core.corpus.wikiann` (WikiANN local files or the HF hub) and `xner_core.corpus.conll` (user files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

from xner_core.corpus.tags import ENTITY_TYPES, is_valid_iob2, spans


@dataclass(frozen=True)
class Sentence:
    """One tagged sentence. `tags` may be all "O" for unlabeled text."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    lang: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.tags):
            raise ValueError(
                f"sentence {self.id!r}: {len(self.tokens)} tokens but {len(self.tags)} tags; they must be equal"
            )

    def __len__(self) -> int:
        return len(self.tokens)

    def replace(self, tokens: Sequence[str] | None = None, tags: Sequence[str] | None = None) -> "Sentence":
        """Return a copy with new tokens and/or tags (same lang and id)."""
        return Sentence(
            tuple(self.tokens if tokens is None else tokens),
            tuple(self.tags if tags is None else tags),
            self.lang,
            self.id,
        )

    @property
    def valid(self) -> bool:
        """True when the tags are valid IOB2."""
        return is_valid_iob2(self.tags)


@dataclass(frozen=True)
class Corpus:
    """An ordered collection of sentences of one language and split."""

    sentences: tuple[Sentence, ...]
    lang: str = ""
    split: str = ""
    meta: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[Sentence]:
        return iter(self.sentences)

    def __getitem__(self, i: int) -> Sentence:
        return self.sentences[i]

    @property
    def tags(self) -> list[list[str]]:
        """The seqeval interface: one list of tags per sentence."""
        return [list(s.tags) for s in self.sentences]

    @property
    def tokens(self) -> list[list[str]]:
        """One list of tokens per sentence."""
        return [list(s.tokens) for s in self.sentences]

    def head(self, n: int | None) -> "Corpus":
        """Return the first `n` sentences (all when n is None)."""
        if n is None or n >= len(self.sentences):
            return self
        return Corpus(self.sentences[:n], self.lang, self.split, self.meta)


@dataclass(frozen=True)
class CorpusStats:
    """Size and entity counts of one corpus (`xner data stats`)."""

    lang: str
    split: str
    sentences: int
    tokens: int
    entities: int
    entities_by_type: dict[str, int] = field(hash=False)
    entity_tokens: int
    mean_length: float
    max_length: int
    vocab_size: int


def corpus_stats(corpus: Corpus) -> CorpusStats:
    """Count sentences, tokens, entity chunks (total and per type), entity tokens and distinct token strings.

    Args:
        corpus: any corpus (tags read as IOB2 chunks via `tags.spans`).

    Returns:
        A CorpusStats; mean_length is 0.0 for an empty corpus. `entities_by_type` lists every known type.
    """
    by_type = {t: 0 for t in ENTITY_TYPES}
    n_tokens = entity_tokens = max_len = 0
    vocab: set[str] = set()
    for sent in corpus.sentences:
        n = len(sent.tokens)
        n_tokens += n
        max_len = max(max_len, n)
        vocab.update(sent.tokens)
        for sp in spans(sent.tags):
            by_type[sp.etype] = by_type.get(sp.etype, 0) + 1
            entity_tokens += sp.end - sp.start
    n_sent = len(corpus.sentences)
    return CorpusStats(
        lang=corpus.lang,
        split=corpus.split,
        sentences=n_sent,
        tokens=n_tokens,
        entities=sum(by_type.values()),
        entities_by_type=by_type,
        entity_tokens=entity_tokens,
        mean_length=n_tokens / n_sent if n_sent else 0.0,
        max_length=max_len,
        vocab_size=len(vocab),
    )
