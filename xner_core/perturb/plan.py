"""Stage 2, perturb: planning primitives shared by every perturbation's planner.

A planner turns one sentence into a `_Plan` of `_Edit`s, drawing from the sentence's `Streams`: a select stream
(one number per eligible unit) and a choose stream (each unit's replacement), both seeded by (seed, perturbation
name, sentence key) only.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.features.overlap import context_candidate
from xner_core.perturb.context import Chunk, PerturbContext


def restore_case(original: str, word: str) -> str:
    """Give a lowercased replacement word the case pattern of the word it replaces.

    Args:
        original: the replaced token.
        word: the (lowercased) replacement.

    Returns:
        `word` all-caps when `original` is all-caps (and longer than one character), capitalised when
        `original` starts with an uppercase letter, else `word` unchanged.
    """
    if len(original) > 1 and original.isupper():
        return word.upper()
    if original[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


@dataclass(frozen=True)
class _Edit:
    """A planned replacement of tokens[start:end]; `etype` set = retag the new span as one entity of that type."""

    start: int
    end: int
    new: tuple[str, ...]
    kind: str
    etype: str | None = None


@dataclass(frozen=True)
class _Plan:
    edits: tuple[_Edit, ...]
    tokens_eligible: int
    entities_eligible: int


def _rng(*parts: object) -> random.Random:
    # A stable 64-bit seed from the parts (hash() is salted per process, so it cannot be used).
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


class Streams:
    """The random streams of one sentence: `pair(name)` -> (select, choose) generators for a perturbation.

    The select stream draws exactly one number per eligible unit (changed iff it is < rate); the choose stream
    picks every eligible unit's replacement whether or not it is selected. Both depend only on
    (seed, perturbation name, sentence key), so composite perturbations reuse their parts' streams.
    """

    def __init__(self, seed: int, key: str) -> None:
        self.seed = seed
        self.key = key

    def pair(self, name: str) -> tuple[random.Random, random.Random]:
        """Return fresh (select, choose) generators for perturbation `name` on this sentence."""
        return _rng(self.seed, name, self.key, "select"), _rng(self.seed, name, self.key, "choose")


PlanFn = Callable[[Sentence, PerturbContext, Streams, float], _Plan]


class _Lazy:
    """Create a sentence's (select, choose) pair only when it has an eligible unit (seeding costs ~10 us)."""

    def __init__(self, streams: Streams, name: str) -> None:
        self.streams, self.name = streams, name
        self._pair: tuple[random.Random, random.Random] | None = None

    def get(self) -> tuple[random.Random, random.Random]:
        if self._pair is None:
            self._pair = self.streams.pair(self.name)
        return self._pair


def _pick(pool: Sequence[Chunk], rng: random.Random, exclude: int | None = None) -> Chunk | None:
    """Uniform pick from `pool`, skipping index `exclude`; None when nothing is left."""
    n = len(pool) - (exclude is not None)
    if n <= 0:
        return None
    i = rng.randrange(n)
    if exclude is not None and i >= exclude:
        i += 1
    return pool[i]


def _candidate(ctx: PerturbContext, token: str) -> str | None:
    return context_candidate(token, ctx.stopwords)
