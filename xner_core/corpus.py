"""Stage 1, corpus: Sentence/Corpus types and readers (WikiANN local files or the HF hub, CoNLL user files).

A Sentence is tokens + IOB2 tags of equal length, with its language code and a stable id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

from .tags import is_valid_iob2


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
