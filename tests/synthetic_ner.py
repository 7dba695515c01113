"""A synthetic NER language for training tests: capitalised names after "in" are places (B-LOC), after "met" people
(B-PER); filler words are O. Deterministic for a seed; tests/test_train.py and tests/test_lora.py draw from it."""

from __future__ import annotations

import random
from typing import Sequence

from xner_core.corpus.sentences import Sentence

FILL = tuple("the a we they saw went walked lived worked stayed today yesterday there home quickly slowly and then"
             .split())
PLACES = tuple("Arlen Bovar Cetra Dunmore Elvik Farrow".split())
PEOPLE = tuple("Gosta Havel Istra Jorvik Kelmar Lunde".split())


def _count(rng: random.Random, span: tuple[int, int]) -> int:
    lo, hi = span
    return lo if lo == hi else rng.randint(lo, hi)  # a fixed count draws nothing: sequences stay as they were


def synth(n: int, seed: int, lang: str = "xx", *, fill: Sequence[str] = FILL, places: Sequence[str] = PLACES,
          people: Sequence[str] = PEOPLE, clauses: tuple[int, int] = (1, 3),
          fillers: tuple[int, int] = (1, 3)) -> list[Sentence]:
    """`n` sentences of the synthetic language, ids "<lang>-<seed>-<i>".

    Args:
        n, seed, lang: how many, the random seed, the language code they carry.
        fill, places, people: the vocabulary (a tiny tokenizer must know it).
        clauses, fillers: (min, max) clauses per sentence and filler words before each clause's name.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        toks: list[str] = []
        tags: list[str] = []
        for _ in range(_count(rng, clauses)):
            for _ in range(_count(rng, fillers)):
                toks.append(rng.choice(fill))
                tags.append("O")
            if rng.random() < 0.5:
                toks += ["in", rng.choice(places)]
                tags += ["O", "B-LOC"]
            else:
                toks += ["met", rng.choice(people)]
                tags += ["O", "B-PER"]
        toks.append(".")
        tags.append("O")
        out.append(Sentence(tuple(toks), tuple(tags), lang, f"{lang}-{seed}-{i}"))
    return out
