"""Stage 2, perturb: the perturbation context (what a perturbation may read) and its shared tables.

`build_context` precomputes, once per (source, target, donor) triple, the chunk tables and vocabularies every
perturbation shares; word embeddings for P2's nearest-neighbour replacement are computed lazily and memoised.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from xner_core.corpus.sentences import Corpus, Sentence
from xner_core.corpus.tags import spans
from xner_core.errors import ConfigError
from xner_core.perturb.p2rules import ContextWords, check_rules, context_words

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


class _NeighbourTable:
    """Memo of word embeddings and nearest non-overlapping words; shared by every call on one context.

    Mutable on purpose (the context itself is frozen): embedding is the expensive step, so each word is embedded
    once, in batches, the first time a perturbation needs it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.vectors: dict[str, np.ndarray] = {}
        # Per rule set ("xner", "study"): word -> nearest fresh word, and the fresh pool's matrix.
        self.neighbours: dict[str, dict[str, str | None]] = {}
        self.pool_matrix: dict[str, np.ndarray] = {}
        self.embed_calls = 0


def _distinct_chunks(corpus: Iterable[Sentence]
                     ) -> tuple[Mapping[str, tuple[Chunk, ...]], Mapping[str, Mapping[str, int]]]:
    """Per entity type, the distinct chunks of `corpus` in first-seen order, and each one's position by key."""
    pool: dict[str, list[Chunk]] = {}
    index: dict[str, dict[str, int]] = {}
    for chunk, etype in entity_chunks(corpus):
        where = index.setdefault(etype, {})
        key = chunk_key(chunk)
        if key not in where:
            where[key] = len(where)
            pool.setdefault(etype, []).append(chunk)
    return (MappingProxyType({t: tuple(v) for t, v in pool.items()}),
            MappingProxyType({t: MappingProxyType(v) for t, v in index.items()}))


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
        study_words: the same P2 tables under the study's own rules (`perturb.p2rules`; `context_replace_study`).
        shared_entity_share: the share of the target's entity occurrences whose string the source has (what P1
            can change at most; `eligible_rate` turns a share of all entities into P1's per-eligible rate).
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
    target_chunks: Mapping[str, tuple[Chunk, ...]] = field(init=False)
    shared_entity_share: float = field(init=False)
    _words: Mapping[str, ContextWords] = field(init=False, repr=False)
    _donor_index: Mapping[str, Mapping[str, int]] = field(init=False, repr=False)
    _chunk_index: Mapping[str, Mapping[str, int]] = field(init=False, repr=False)
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
        n_entities = n_shared = 0
        for chunk, etype in entity_chunks(self.target or ()):
            key = chunk_key(chunk)
            n_entities += 1
            if key in src_chunks:
                n_shared += 1
                shared.add(key)
            elif (key, etype) not in seen:
                seen.add((key, etype))
                pool.setdefault(etype, []).append(chunk)
        set_("shared_chunks", frozenset(shared))
        set_("shared_entity_share", n_shared / n_entities if n_entities else 0.0)
        set_("unshared_chunks", MappingProxyType({t: tuple(v) for t, v in pool.items()}))
        # The P1 control's pool: every distinct target chunk per type, seen in the source or not.
        target_pool, target_index = _distinct_chunks(self.target or ())
        set_("target_chunks", target_pool)
        set_("_chunk_index", target_index)
        donor_pool, donor_index = _distinct_chunks(self.donor or ())
        set_("donor_chunks", donor_pool)
        set_("_donor_index", donor_index)

        # P2 tables: our rules and the study's own (`perturb.p2rules`); the P2 properties below read them.
        ours = context_words(self.source, self.target, lang, rules="xner")
        source_lang = (self.source.lang if self.source is not None else "") or lang
        study = context_words(self.source, self.target, lang, source_lang, rules="study")
        set_("_words", MappingProxyType({"xner": ours, "study": study}))
        set_("_target_index", MappingProxyType({w: i for i, w in enumerate(ours.target_vocab)}))
        set_("_table", _NeighbourTable())

    # -- P2 tables (our rules; `words("study")` / `study_words` for the study's) ---------------------------------

    @property
    def stopwords(self) -> frozenset[str]:
        return self._words["xner"].stopwords

    @property
    def source_o_vocab(self) -> frozenset[str]:
        return self._words["xner"].source_words

    @property
    def target_vocab(self) -> tuple[str, ...]:
        return self._words["xner"].target_vocab

    @property
    def overlap_words(self) -> frozenset[str]:
        return self._words["xner"].overlap_words

    @property
    def fresh_words(self) -> tuple[str, ...]:
        return self._words["xner"].fresh_words

    @property
    def study_words(self) -> ContextWords:
        return self._words["study"]

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

    def nearest_fresh(self, words: Iterable[str], rules: str = "xner") -> dict[str, str | None]:
        """Return, for each lowercased word, the most cosine-similar other word of the fresh pool (P2).

        The first call embeds the whole replacement pool plus the asked words (one list, in batches of
        `embed_batch`); later calls embed only words never seen. Ties go to the alphabetically first word.

        Args:
            words: lowercased words (typically `overlap_words`).
            rules: whose pool: "xner" (`fresh_words`) or "study" (`study_words.fresh_words`); word vectors are
                shared between the two.

        Returns:
            word -> replacement, or None when the pool has no other word.

        Raises:
            ConfigError: the context has no `embed`, it returned a wrongly shaped array, or unknown rules.
        """
        pool = self._words[check_rules(rules)].fresh_words
        asked = list(dict.fromkeys(words))
        table = self._table
        with table.lock:
            known = table.neighbours.setdefault(rules, {})
            missing = [w for w in asked if w not in known]
            if missing:
                self._fill_neighbours(missing, rules, pool, known)
            return {w: known[w] for w in asked}

    def _fill_neighbours(self, missing: list[str], rules: str, pool: tuple[str, ...],
                         known: dict[str, str | None]) -> None:
        table = self._table
        if not pool:
            known.update(dict.fromkeys(missing))
            return
        if self.embed is None:
            raise ConfigError(f"nearest-word replacement needs {_NEED_TEXT['embed']}")
        # One sorted list: every pool word and every asked word is embedded exactly once.
        self._embed_missing(sorted(set(pool).union(missing)))
        if rules not in table.pool_matrix:
            table.pool_matrix[rules] = np.stack([table.vectors[w] for w in pool])
        matrix = table.pool_matrix[rules]
        pool_index = {w: i for i, w in enumerate(pool)}
        block = 1024
        for b in range(0, len(missing), block):
            rows = missing[b:b + block]
            sims = np.stack([table.vectors[w] for w in rows]) @ matrix.T
            for r, w in enumerate(rows):
                j = pool_index.get(w)
                if j is not None:  # "other" word: never the word itself
                    sims[r, j] = -np.inf
            best = sims.argmax(axis=1)
            for r, w in enumerate(rows):
                j = int(best[r])
                known[w] = pool[j] if np.isfinite(sims[r, j]) else None

    def words(self, rules: str = "xner") -> ContextWords:
        """The P2 word tables under a rule set ("xner" or "study", see `perturb.p2rules`)."""
        return self._words[check_rules(rules)]

    def eligible_rate(self, share: float) -> float:
        """P1's per-eligible rate that changes `share` of ALL the target's entity occurrences in expectation.

        Args:
            share: the fraction of all gold entities to change, in [0, 1].

        Returns:
            min(1, share / shared_entity_share): 1 where the source shares fewer entities than asked (then the
            achieved share is `shared_entity_share`), 0 where it shares none.
        """
        if self.shared_entity_share <= 0:
            return 0.0
        return min(1.0, share / self.shared_entity_share)

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
