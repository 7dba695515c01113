"""Stage 2, perturb: a registry of label-preserving, seeded perturbations of a target test set.

A perturbation is a pure function of (sentence, context, rng): it plans edits on one sentence, and
`perturb_corpus` / `perturb_sentence` apply them and record every change. Contract (DESIGN.md):
- tokens outside the changed spans are untouched; only entity replacements (`entity_replace`, `person_swap`,
  `location_swap`) may change the length of the span they replace;
- the output is valid IOB2, with the same entity types in the same order (entity count preserved);
- the result is a function of (seed, perturbation name, sentence id or index) only, so a sentence is perturbed
  the same way alone (`perturb_sentence`) as inside its corpus (`perturb_corpus`);
- `rate` is the probability that each eligible unit (an entity chunk or a context token) is changed; 1.0 changes
  all of them, as in the study. Selection and replacement use separate random streams, so the changes made at a
  lower rate are a subset of those made at a higher one, with the same replacements.

The reference study's perturbations (paper-spec §4), with "source" = the source training set (the HRL train set
in transfer, the target's own train set in native) and "target" = the target test set:
- P1 `entity_replace`: entity chunks (B + its I tokens; surface string = tokens joined by a space) whose string
  also occurs as a chunk in the source ("shared") become a random same-type target chunk that does not occur in
  the source ("unshared"); B on the first token, I on the rest.
- P2 `context_replace`: O tokens that are context candidates (not a target-language stopword, no punctuation or
  symbol character, longer than one character) and whose lowercased form is in the source's O-word vocabulary
  become the most cosine-similar other candidate word of the target vocabulary that is not in the source
  O-vocabulary, with the original's case restored.
- P3 `entity_context`: P1 and P2 on the same sentence.
- P5-style `context_random`: the same words as P2, replaced by a random non-overlapping target word.
Extra probes: `person_swap` / `location_swap` (donor-language names), `entity_mask`, `mask_random`
(Srinivasan & Vajjala 2023 style), `char_noise` (one typo per chosen entity token) and `context_noise` (one typo
per chosen context word: the spec's "character-level typos in entity or context tokens", context side).

P2's candidate test (`context_candidate`) lives in `overlap.py`, the lower-level stage: the overlap measure and
the perturbations use the one function, so the O-word overlap counts exactly the words P2 can target.
"""

from __future__ import annotations

import hashlib
import math
import random
import string
import threading
import unicodedata
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from xner_core.corpus.stopwords import stopwords_for
from xner_core.corpus.tags import first_invalid, span_tags, spans
from xner_core.corpus.wikiann import Corpus, Sentence
from xner_core.errors import ConfigError, DataError, choices_message
from xner_core.features.overlap import context_candidate

Embedder = Callable[[Sequence[str]], np.ndarray]
Chunk = tuple[str, ...]

# What each context part is, for the "needs" error message.
_NEED_TEXT: Mapping[str, str] = MappingProxyType({
    "source": "the source training set (build_context(source=...))",
    "target": "the target test set as the replacement pool (build_context(target=...))",
    "donor": "a donor-language corpus whose names are swapped in (build_context(donor=...), CLI --donor LANG)",
    "embed": "a word embedder (build_context(embed=...), e.g. xner_core.features.embed.make_word_embedder)",
})


def chunk_key(tokens: Sequence[str]) -> str:
    """Return the surface string of an entity chunk: its tokens joined by one space (the study's chunk key)."""
    return " ".join(tokens)


def entity_chunks(corpus: Iterable[Sentence]) -> Iterator[tuple[Chunk, str]]:
    """Yield every entity chunk of a corpus in order, as (tokens, entity type).

    Args:
        corpus: sentences with IOB2 tags.

    Returns:
        An iterator of (chunk tokens, type) pairs, one per entity occurrence.
    """
    for s in corpus:
        for sp in spans(s.tags):
            yield s.tokens[sp.start:sp.end], sp.etype


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


# --------------------------------------------------------------------------------------------------- context


class _NeighbourTable:
    """Memo of word embeddings and nearest non-overlapping words; shared by every call on one context.

    Mutable on purpose (the context itself is frozen): embedding is the expensive step, so each word is embedded
    once, in batches, the first time a perturbation needs it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.vectors: dict[str, np.ndarray] = {}
        self.neighbours: dict[str, str | None] = {}
        self.pool_matrix: np.ndarray | None = None
        self.embed_calls = 0


@dataclass(frozen=True, eq=False)
class PerturbContext:
    """Everything a perturbation may read, with the shared tables precomputed once.

    Build it with `build_context`. Fields after `embed_batch` are derived in `__post_init__`.

    Attributes:
        source: the source training set (the HRL train set in transfer, the target's train set in native).
        target: the target test set; the pool of replacement chunks and words.
        donor: donor-language data for `person_swap` / `location_swap`.
        lang: the target language code (for its stopwords); defaults to `target.lang`.
        embed: words -> one vector per word (rows are L2-normalised here), for `context_replace`.
        mask_token: the string `entity_mask` / `mask_random` write.
        embed_batch: words per `embed` call.
        source_chunks: surface strings of every source entity chunk.
        shared_chunks: target chunk strings that also occur in the source (the study's "shared" list).
        unshared_chunks: per entity type, the distinct target chunks whose string is not a source chunk, in order
            of first appearance (the P1 replacement pool).
        donor_chunks: per entity type, the distinct donor chunks in order of first appearance.
        stopwords: lowercased stopwords of `lang`.
        source_o_vocab: lowercased forms of every source token tagged O.
        target_vocab: sorted lowercased context candidates among the target's O tokens.
        overlap_words: target_vocab ∩ source_o_vocab (the words P2 replaces).
        fresh_words: sorted target_vocab − source_o_vocab (P2/P5 replacement pool).
    """

    source: Corpus | None = None
    target: Corpus | None = None
    donor: Corpus | None = None
    lang: str | None = None
    embed: Embedder | None = None
    mask_token: str = "[MASK]"
    embed_batch: int = 512
    source_chunks: frozenset[str] = field(init=False)
    shared_chunks: frozenset[str] = field(init=False)
    unshared_chunks: Mapping[str, tuple[Chunk, ...]] = field(init=False)
    donor_chunks: Mapping[str, tuple[Chunk, ...]] = field(init=False)
    stopwords: frozenset[str] = field(init=False)
    source_o_vocab: frozenset[str] = field(init=False)
    target_vocab: tuple[str, ...] = field(init=False)
    overlap_words: frozenset[str] = field(init=False)
    fresh_words: tuple[str, ...] = field(init=False)
    _donor_index: Mapping[str, Mapping[str, int]] = field(init=False, repr=False)
    _target_index: Mapping[str, int] = field(init=False, repr=False)
    _table: _NeighbourTable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.mask_token or any(ch.isspace() for ch in self.mask_token):
            raise ConfigError(f"mask_token must be a non-empty string without spaces; got {self.mask_token!r}")
        if self.embed_batch < 1:
            raise ConfigError(f"embed_batch must be a positive number of words; got {self.embed_batch}")
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        lang = self.lang if self.lang is not None else (self.target.lang if self.target is not None else "")
        set_("lang", lang)
        src_chunks = frozenset(chunk_key(c) for c, _ in entity_chunks(self.source or ()))
        set_("source_chunks", src_chunks)

        # P1 tables: shared strings and, per type, the distinct unshared target chunks in first-seen order.
        shared: set[str] = set()
        pool: dict[str, list[Chunk]] = {}
        seen: set[tuple[str, str]] = set()
        for chunk, etype in entity_chunks(self.target or ()):
            key = chunk_key(chunk)
            if key in src_chunks:
                shared.add(key)
            elif (key, etype) not in seen:
                seen.add((key, etype))
                pool.setdefault(etype, []).append(chunk)
        set_("shared_chunks", frozenset(shared))
        set_("unshared_chunks", MappingProxyType({t: tuple(v) for t, v in pool.items()}))

        donor: dict[str, list[Chunk]] = {}
        donor_index: dict[str, dict[str, int]] = {}
        for chunk, etype in entity_chunks(self.donor or ()):
            index = donor_index.setdefault(etype, {})
            key = chunk_key(chunk)
            if key not in index:
                index[key] = len(index)
                donor.setdefault(etype, []).append(chunk)
        set_("donor_chunks", MappingProxyType({t: tuple(v) for t, v in donor.items()}))
        set_("_donor_index", MappingProxyType({t: MappingProxyType(v) for t, v in donor_index.items()}))

        # P2 tables: vocabularies of lowercased words.
        stop = stopwords_for(lang)
        set_("stopwords", stop)
        o_vocab = {tok.lower() for s in (self.source or ()) for tok, tag in zip(s.tokens, s.tags) if tag == "O"}
        set_("source_o_vocab", frozenset(o_vocab))
        target_o = {tok for s in (self.target or ()) for tok, tag in zip(s.tokens, s.tags) if tag == "O"}
        vocab = {low for tok in target_o if (low := context_candidate(tok, stop)) is not None}
        target_vocab = tuple(sorted(vocab))
        set_("target_vocab", target_vocab)
        set_("_target_index", MappingProxyType({w: i for i, w in enumerate(target_vocab)}))
        set_("overlap_words", frozenset(vocab & o_vocab))
        set_("fresh_words", tuple(sorted(vocab - o_vocab)))
        set_("_table", _NeighbourTable())

    # -- P2 nearest neighbours ---------------------------------------------------------------------------------

    def _embed_missing(self, words: Sequence[str]) -> None:
        """Embed the words not yet in the table, in batches, storing L2-normalised float32 rows."""
        table = self._table
        todo = [w for w in words if w not in table.vectors]
        assert self.embed is not None
        for b in range(0, len(todo), self.embed_batch):
            batch = todo[b:b + self.embed_batch]
            arr = np.asarray(self.embed(batch), dtype=np.float32)
            table.embed_calls += 1
            if arr.ndim != 2 or arr.shape[0] != len(batch):
                raise ConfigError(
                    f"embed returned an array of shape {arr.shape} for {len(batch)} words; "
                    "it must return one vector per word (shape (n_words, dim))"
                )
            norms = np.linalg.norm(arr, axis=1, keepdims=True)
            arr = arr / np.maximum(norms, 1e-12)
            for w, v in zip(batch, arr):
                table.vectors[w] = v

    def nearest_fresh(self, words: Iterable[str]) -> dict[str, str | None]:
        """Return, for each lowercased word, the most cosine-similar other word of `fresh_words` (P2).

        The first call embeds the whole replacement pool plus the asked words (one list, in batches of
        `embed_batch`); later calls embed only words never seen. Ties go to the alphabetically first word.

        Args:
            words: lowercased words (typically `overlap_words`).

        Returns:
            word -> replacement, or None when the pool has no other word.

        Raises:
            ConfigError: the context has no `embed`, or it returned a wrongly shaped array.
        """
        asked = list(dict.fromkeys(words))
        table = self._table
        with table.lock:
            missing = [w for w in asked if w not in table.neighbours]
            if missing:
                self._fill_neighbours(missing)
            return {w: table.neighbours[w] for w in asked}

    def _fill_neighbours(self, missing: list[str]) -> None:
        table = self._table
        pool = self.fresh_words
        if not pool:
            table.neighbours.update(dict.fromkeys(missing))
            return
        if self.embed is None:
            raise ConfigError(f"nearest-word replacement needs {_NEED_TEXT['embed']}")
        # One sorted list: every pool word and every asked word is embedded exactly once.
        self._embed_missing(sorted(set(pool).union(missing)))
        if table.pool_matrix is None:
            table.pool_matrix = np.stack([table.vectors[w] for w in pool])
        pool_index = {w: i for i, w in enumerate(pool)}
        block = 1024
        for b in range(0, len(missing), block):
            rows = missing[b:b + block]
            sims = np.stack([table.vectors[w] for w in rows]) @ table.pool_matrix.T
            for r, w in enumerate(rows):
                j = pool_index.get(w)
                if j is not None:  # "other" word: never the word itself
                    sims[r, j] = -np.inf
            best = sims.argmax(axis=1)
            for r, w in enumerate(rows):
                j = int(best[r])
                table.neighbours[w] = pool[j] if np.isfinite(sims[r, j]) else None

    @property
    def embed_calls(self) -> int:
        """How many times `embed` has been called through this context (for tests and timing reports)."""
        return self._table.embed_calls


def build_context(
    source: Corpus | None,
    target: Corpus | None,
    donor: Corpus | None = None,
    embed: Embedder | None = None,
    lang: str | None = None,
    *,
    mask_token: str = "[MASK]",
    embed_batch: int = 512,
) -> PerturbContext:
    """Precompute the tables every perturbation shares, once per (source, target, donor) triple.

    Chunk tables and vocabularies are built here (linear in corpus size, well under a second for WikiANN
    splits); word embeddings are computed lazily, on the first perturbation that needs them, and kept.

    Args:
        source: the source training set (None when only source-free perturbations are used).
        target: the target test set (the replacement pool).
        donor: donor-language data for `person_swap` / `location_swap`.
        embed: word embedder for `context_replace` / `entity_context`.
        lang: target language code for stopwords (default: `target.lang`).
        mask_token: the mask string of `entity_mask` / `mask_random`.
        embed_batch: words per `embed` call.

    Returns:
        A frozen PerturbContext.
    """
    return PerturbContext(source, target, donor, lang, embed, mask_token, embed_batch)


# ------------------------------------------------------------------------------------------ results and report


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


# ------------------------------------------------------------------------------------------- planning primitives


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


def _plan_entity_replace(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    lazy = _Lazy(streams, "entity_replace")
    edits: list[_Edit] = []
    tok_el = ent_el = 0
    for sp in spans(s.tags):
        chunk = s.tokens[sp.start:sp.end]
        if chunk_key(chunk) not in ctx.source_chunks:
            continue
        ent_el += 1
        tok_el += len(chunk)
        sel, cho = lazy.get()
        # The pool holds only non-source strings, so the pick always differs from this (shared) chunk.
        new = _pick(ctx.unshared_chunks.get(sp.etype, ()), cho)
        if sel.random() < rate and new is not None:
            edits.append(_Edit(sp.start, sp.end, new, "entity", sp.etype))
    return _Plan(tuple(edits), tok_el, ent_el)


def _make_swap(etype: str, name: str) -> PlanFn:
    def plan(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
        lazy = _Lazy(streams, name)
        pool = ctx.donor_chunks.get(etype, ())
        index = ctx._donor_index.get(etype, {})
        edits: list[_Edit] = []
        tok_el = ent_el = 0
        for sp in spans(s.tags):
            if sp.etype != etype:
                continue
            chunk = s.tokens[sp.start:sp.end]
            ent_el += 1
            tok_el += len(chunk)
            sel, cho = lazy.get()
            new = _pick(pool, cho, index.get(chunk_key(chunk)))  # never the same name back
            if sel.random() < rate and new is not None:
                edits.append(_Edit(sp.start, sp.end, new, "entity", etype))
        return _Plan(tuple(edits), tok_el, ent_el)

    return plan


def _candidate(ctx: PerturbContext, token: str) -> str | None:
    return context_candidate(token, ctx.stopwords)


def _overlap_positions(s: Sentence, ctx: PerturbContext) -> list[tuple[int, str]]:
    """(position, lowercased word) of the O tokens P2/P5 target: candidates whose lowercase is a source O word."""
    out = []
    for i, (tok, tag) in enumerate(zip(s.tokens, s.tags)):
        if tag == "O":
            low = _candidate(ctx, tok)
            if low is not None and low in ctx.source_o_vocab:
                out.append((i, low))
    return out


def _plan_context_replace(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    units = _overlap_positions(s, ctx)
    if not units:
        return _Plan((), 0, 0)
    sel, _ = streams.pair("context_replace")  # deterministic choice: only selection is random
    nearest = ctx.nearest_fresh(low for _, low in units)
    edits = []
    for i, low in units:
        new = nearest[low]
        if sel.random() < rate and new is not None:
            edits.append(_Edit(i, i + 1, (restore_case(s.tokens[i], new),), "context"))
    return _Plan(tuple(edits), len(units), 0)


def _plan_context_random(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    units = _overlap_positions(s, ctx)
    if not units:
        return _Plan((), 0, 0)
    sel, cho = streams.pair("context_random")
    pool = ctx.fresh_words
    edits = []
    for i, _low in units:
        new = pool[cho.randrange(len(pool))] if pool else None  # never `low`: pool excludes source O words
        if sel.random() < rate and new is not None:
            edits.append(_Edit(i, i + 1, (restore_case(s.tokens[i], new),), "context"))
    return _Plan(tuple(edits), len(units), 0)


def _plan_entity_context(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    # P1 touches only entity tokens and P2 only O tokens, and P2's choice of a token depends on that token alone,
    # so planning both on the original sentence equals applying P1 then P2. Each part uses its own streams:
    # P3's changes are exactly P1's plus P2's for the same seed.
    p1 = _plan_entity_replace(s, ctx, streams, rate)
    p2 = _plan_context_replace(s, ctx, streams, rate)
    return _Plan(p1.edits + p2.edits, p1.tokens_eligible + p2.tokens_eligible, p1.entities_eligible)


def _plan_entity_mask(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    lazy = _Lazy(streams, "entity_mask")
    mask = ctx.mask_token
    edits = []
    tok_el = ent_el = 0
    for sp in spans(s.tags):
        chunk = s.tokens[sp.start:sp.end]
        if all(t == mask for t in chunk):
            continue
        ent_el += 1
        tok_el += len(chunk)
        sel, _ = lazy.get()
        if sel.random() < rate:
            edits.append(_Edit(sp.start, sp.end, (mask,) * len(chunk), "mask"))
    return _Plan(tuple(edits), tok_el, ent_el)


def _plan_mask_random(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    lazy = _Lazy(streams, "mask_random")
    vocab = ctx.target_vocab
    edits = []
    eligible = 0
    for i, (tok, tag) in enumerate(zip(s.tokens, s.tags)):
        if tag != "O":
            continue
        low = _candidate(ctx, tok)
        if low is None:
            continue
        eligible += 1
        sel, cho = lazy.get()
        masked = cho.random() < 0.5
        j = ctx._target_index.get(low)
        other = None
        if vocab:
            n = len(vocab) - (j is not None)
            if n > 0:
                k = cho.randrange(n)
                other = vocab[k + 1 if j is not None and k >= j else k]
        if sel.random() < rate:
            if masked or other is None:  # nothing else to swap in: mask instead
                edits.append(_Edit(i, i + 1, (ctx.mask_token,), "mask"))
            else:
                edits.append(_Edit(i, i + 1, (restore_case(tok, other),), "context"))
    return _Plan(tuple(edits), eligible, 0)


_ASCII_LOWER = tuple(string.ascii_lowercase)
_ASCII_UPPER = tuple(string.ascii_uppercase)
_ASCII_DIGITS = tuple(string.digits)


def _script(ch: str) -> str:
    return unicodedata.name(ch, "").split(" ", 1)[0]


@lru_cache(maxsize=4096)
def _alphabet_like(ch: str) -> tuple[str, ...]:
    """Characters a typo may put in place of (or next to) `ch`: same script, same letter category, not `ch`.

    ASCII letters/digits map to ASCII letters of the same case / digits (the realistic typos for Latin text);
    other letters to the letters of the same 256-code-point block, script (first word of the Unicode name) and
    category. Non-letters give (): whitespace or punctuation can never be produced.
    """
    if ch.isascii():
        base = _ASCII_LOWER if ch.islower() else _ASCII_UPPER if ch.isupper() else _ASCII_DIGITS if ch.isdigit() else ()
        return tuple(c for c in base if c != ch)
    if not ch.isalpha():
        return ()
    cat, script, start = unicodedata.category(ch), _script(ch), ord(ch) & ~0xFF
    return tuple(
        c for c in map(chr, range(start, start + 0x100))
        if c != ch and unicodedata.category(c) == cat and c.isalpha() and _script(c) == script
    )


def typo(token: str, rng: random.Random) -> str:
    """Apply one character edit to a token of length >= 2: swap adjacent, delete, insert or substitute.

    Args:
        token: the token (len >= 2).
        rng: the generator choosing the edit.

    Returns:
        A different, non-empty token without whitespace (the inserted/substituted characters are letters or
        digits of the script of a character of the token).
    """
    swaps = [i for i in range(len(token) - 1) if token[i] != token[i + 1]]
    letters = [i for i, ch in enumerate(token) if _alphabet_like(ch)]
    ops = ["delete"] + (["swap"] if swaps else []) + (["insert", "substitute"] if letters else [])
    op = ops[rng.randrange(len(ops))]
    if op == "delete":
        i = rng.randrange(len(token))
        return token[:i] + token[i + 1:]
    if op == "swap":
        i = swaps[rng.randrange(len(swaps))]
        return token[:i] + token[i + 1] + token[i] + token[i + 2:]
    i = letters[rng.randrange(len(letters))]
    alphabet = _alphabet_like(token[i])
    ch = alphabet[rng.randrange(len(alphabet))]
    if op == "substitute":
        return token[:i] + ch + token[i + 1:]
    at = i + rng.randrange(2)  # before or after the character whose script it copies
    return token[:at] + ch + token[at:]


def _plan_char_noise(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    lazy = _Lazy(streams, "char_noise")
    edits = []
    tok_el = ent_el = 0
    for sp in spans(s.tags):
        has_eligible = False
        for i in range(sp.start, sp.end):
            tok = s.tokens[i]
            if len(tok) < 2:
                continue
            has_eligible = True
            tok_el += 1
            sel, cho = lazy.get()
            new = typo(tok, cho)
            if sel.random() < rate:
                edits.append(_Edit(i, i + 1, (new,), "noise"))
        ent_el += has_eligible
    return _Plan(tuple(edits), tok_el, ent_el)


def _plan_context_noise(s: Sentence, ctx: PerturbContext, streams: Streams, rate: float) -> _Plan:
    # The context side of the spec's typo probe: the same words P2's candidate test accepts (O, not a stopword of
    # the context's language, no punctuation/symbol, longer than one character), each given one `typo`.
    lazy = _Lazy(streams, "context_noise")
    edits = []
    eligible = 0
    for i, (tok, tag) in enumerate(zip(s.tokens, s.tags)):
        if tag != "O" or _candidate(ctx, tok) is None:
            continue
        eligible += 1
        sel, cho = lazy.get()
        new = typo(tok, cho)  # drawn for every eligible token, so a lower rate keeps the same typos
        if sel.random() < rate:
            edits.append(_Edit(i, i + 1, (new,), "noise"))
    return _Plan(tuple(edits), eligible, 0)


def _prepare_neighbours(sentences: Sequence[Sentence], ctx: PerturbContext) -> None:
    """Embed every word P2 will look up in one batched pass, before the per-sentence loop."""
    words = {low for s in sentences for _, low in _overlap_positions(s, ctx)}
    if words:
        ctx.nearest_fresh(sorted(words))


# ---------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation.

    Attributes:
        name: stable registry name (CLI argument, results column).
        title: short human title (dashboard).
        description: one paragraph on what is changed and how.
        needs: the context parts it reads ("source", "target", "donor", "embed").
        fn: plans the edits of one sentence: (sentence, context, streams, rate) -> plan.
        prepare: optional batch step run once per corpus before `fn` (e.g. embedding all words at once).
    """

    name: str
    title: str
    description: str
    needs: tuple[str, ...]
    fn: PlanFn = field(repr=False)
    prepare: Callable[[Sequence[Sentence], PerturbContext], None] | None = field(default=None, repr=False)


_REGISTRY: tuple[Perturbation, ...] = (
    Perturbation(
        "entity_replace", "P1 · unseen entities",
        "Entity chunks of the target whose surface string also occurs as a chunk in the source training set are "
        "replaced by a random same-type chunk of the target that never occurs in the source (paper P1).",
        ("source", "target"), _plan_entity_replace,
    ),
    Perturbation(
        "context_replace", "P2 · nearest unseen context words",
        "Non-stopword, punctuation-free O words (longer than one character) that also occur as O words in the "
        "source are replaced by the most cosine-similar target word not seen in the source, case restored (P2).",
        ("source", "target", "embed"), _plan_context_replace, _prepare_neighbours,
    ),
    Perturbation(
        "entity_context", "P3 · unseen entities + context",
        "P1 and P2 applied to the same sentences (paper P3).",
        ("source", "target", "embed"), _plan_entity_context, _prepare_neighbours,
    ),
    Perturbation(
        "context_random", "P5 · random unseen context words",
        "The same overlapping O words as P2, each replaced by a random target word not seen in the source "
        "(the study's P5 random replacement, applied to NER).",
        ("source", "target"), _plan_context_random,
    ),
    Perturbation(
        "person_swap", "Person names from a donor language",
        "Every PER chunk is replaced by a random PER chunk of the donor language's data (cross-lingual name "
        "replacement; the study used Wiktionary given names).",
        ("donor",), _make_swap("PER", "person_swap"),
    ),
    Perturbation(
        "location_swap", "Places from a donor language",
        "Every LOC chunk is replaced by a random LOC chunk of the donor language's data (the study used "
        "Wiktionary place names).",
        ("donor",), _make_swap("LOC", "location_swap"),
    ),
    Perturbation(
        "entity_mask", "Masked entities",
        "Every token of every entity chunk is replaced by the mask string (default [MASK]); tags are kept.",
        (), _plan_entity_mask,
    ),
    Perturbation(
        "mask_random", "Masked / random context words",
        "Each non-stopword, punctuation-free O word is masked with probability 0.5, else replaced by a random "
        "other word of the target vocabulary (Srinivasan & Vajjala 2023 style context perturbation).",
        ("target",), _plan_mask_random,
    ),
    Perturbation(
        "char_noise", "Typos in entities",
        "Each entity token of two or more characters gets one typo: swapped adjacent characters, a deleted, "
        "inserted or substituted character (letters of the token's own script).",
        (), _plan_char_noise,
    ),
    Perturbation(
        "context_noise", "Typos in context words",
        "Each non-stopword, punctuation- and symbol-free O word longer than one character (P2's context "
        "candidates) gets one typo: swapped adjacent characters, a deleted, inserted or substituted character "
        "(letters of the token's own script). Entity tokens and tags are untouched.",
        (), _plan_context_noise,
    ),
)

PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in _REGISTRY}


def perturbation_names() -> list[str]:
    """Return the registered perturbation names in registry order (paper P1, P2, P3 first)."""
    return list(PERTURBATIONS)


def get_perturbation(name: str) -> Perturbation:
    """Look up a perturbation by name.

    Args:
        name: a registry name.

    Returns:
        The Perturbation.

    Raises:
        ConfigError: unknown name (the message lists the allowed names).
    """
    try:
        return PERTURBATIONS[name]
    except (KeyError, TypeError):
        raise ConfigError(choices_message("perturbation", name, list(PERTURBATIONS))) from None


def _check_args(pert: Perturbation, context: PerturbContext, seed: int, rate: float) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not 0 <= rate <= 1:
        raise ConfigError(
            f"rate must be a number in [0, 1] (the fraction of eligible units changed; 1 = all); got {rate!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer; got {seed!r}")
    missing = [n for n in pert.needs if getattr(context, n) is None]
    if missing:
        what = "; ".join(_NEED_TEXT[n] for n in missing)
        raise ConfigError(f"perturbation {pert.name!r} needs {what}; missing from the context: {', '.join(missing)}")
    return float(rate)


def _check_sentence(s: Sentence, index: int) -> None:
    bad = first_invalid(s.tags)
    if bad is not None:
        raise DataError(
            f"sentence {s.id or index!r}: tag {s.tags[bad]!r} at token {bad} is not valid IOB2; perturbations "
            "need IOB2 tags over O, B-/I-PER, B-/I-ORG, B-/I-LOC (convert IOB1/BIOES first)"
        )


def _apply(s: Sentence, plan: _Plan, index: int) -> tuple[Sentence, list[Change], int]:
    """Apply a plan's edits; return the new sentence, its changes and the number of entity chunks touched."""
    if not plan.edits:
        return s, [], 0
    edits = sorted(plan.edits, key=lambda e: e.start)
    toks: list[str] = []
    tags: list[str] = []
    changes: list[Change] = []
    pos = 0
    for e in edits:
        if e.start < pos:
            raise AssertionError(f"overlapping edits in sentence {index}")  # a planner bug, never user input
        toks.extend(s.tokens[pos:e.start])
        tags.extend(s.tags[pos:e.start])
        new_start = len(toks)
        toks.extend(e.new)
        tags.extend(span_tags(e.etype, len(e.new)) if e.etype else s.tags[e.start:e.end])
        changes.append(Change(s.id, e.start, e.end, s.tokens[e.start:e.end], e.new, e.kind, index, new_start))
        pos = e.end
    toks.extend(s.tokens[pos:])
    tags.extend(s.tags[pos:])
    touched = sum(1 for sp in spans(s.tags) if any(e.start < sp.end and sp.start < e.end for e in edits))
    return s.replace(toks, tags), changes, touched


def _sentence_key(s: Sentence, index: int) -> str:
    return s.id if s.id else f"#{index}"


def _run(
    pert: Perturbation, sentences: Sequence[Sentence], indices: Sequence[int], context: PerturbContext,
    seed: int, rate: float,
) -> tuple[list[Sentence], PerturbReport, tuple[Change, ...]]:
    for s, i in zip(sentences, indices):
        _check_sentence(s, i)
    if pert.prepare is not None:
        pert.prepare(sentences, context)
    out: list[Sentence] = []
    changes: list[Change] = []
    n_tok = n_ent = tok_el = ent_el = tok_ch = ent_ch = sent_ch = sent_el = 0
    for s, i in zip(sentences, indices):
        plan = pert.fn(s, context, Streams(seed, _sentence_key(s, i)), rate)
        new, ch, touched = _apply(s, plan, i)
        out.append(new)
        changes.extend(ch)
        n_tok += len(s)
        n_ent += sum(1 for t in s.tags if t.startswith("B-"))
        tok_el += plan.tokens_eligible
        ent_el += plan.entities_eligible
        sent_el += plan.tokens_eligible > 0 or plan.entities_eligible > 0
        tok_ch += sum(len(c.old) for c in ch)
        ent_ch += touched
        sent_ch += bool(ch)
    report = PerturbReport(
        name=pert.name, seed=int(seed), rate=rate, sentences=len(sentences), sentences_eligible=sent_el,
        sentences_changed=sent_ch, tokens=n_tok, tokens_eligible=tok_el, tokens_changed=tok_ch, entities=n_ent,
        entities_eligible=ent_el, entities_changed=ent_ch,
    )
    return out, report, tuple(changes)


def perturb_corpus(name: str, corpus: Corpus, context: PerturbContext, seed: int = 0,
                   rate: float = 1.0) -> PerturbResult:
    """Perturb every sentence of a corpus.

    Args:
        name: a registered perturbation name (see `perturbation_names()`).
        corpus: the sentences to perturb (normally the target test set); valid IOB2.
        context: from `build_context`, holding what the perturbation needs.
        seed: random seed; each sentence's streams derive from (seed, name, sentence id or index).
        rate: probability in [0, 1] that each eligible unit is changed (1.0 = all, the study's setting).

    Returns:
        The perturbed corpus (same lang/split, meta extended with the perturbation, seed and rate), a report and
        the list of changes.

    Raises:
        ConfigError: unknown name, bad rate or seed, or a context missing what the perturbation needs.
        DataError: a sentence whose tags are not valid IOB2.
    """
    pert = get_perturbation(name)
    rate = _check_args(pert, context, seed, rate)
    out, report, changes = _run(pert, corpus.sentences, range(len(corpus)), context, seed, rate)
    meta = corpus.meta + (("perturbation", name), ("seed", str(seed)), ("rate", repr(rate)))
    return PerturbResult(Corpus(tuple(out), corpus.lang, corpus.split, meta), report, changes)


def perturb_sentence(name: str, sentence: Sentence, context: PerturbContext, seed: int = 0, rate: float = 1.0,
                     index: int = 0) -> PerturbResult:
    """Perturb one sentence (e.g. one a user typed), exactly as it would be inside a corpus.

    Args:
        name: a registered perturbation name.
        sentence: the sentence; valid IOB2.
        context: from `build_context`; entity/context replacements need its source and target.
        seed: random seed.
        rate: probability in [0, 1] that each eligible unit is changed.
        index: the sentence's position in its corpus; only used when it has no id, so that the result equals
            row `index` of `perturb_corpus`.

    Returns:
        A PerturbResult whose corpus holds the one perturbed sentence.

    Raises:
        ConfigError / DataError: as `perturb_corpus`.
    """
    pert = get_perturbation(name)
    rate = _check_args(pert, context, seed, rate)
    out, report, changes = _run(pert, (sentence,), (index,), context, seed, rate)
    return PerturbResult(Corpus(tuple(out), sentence.lang), report, changes)
