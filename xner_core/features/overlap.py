"""Overlap features stage: how much of a target test set a source training set has already shown the model.

Pure functions over two `Corpus` objects (S = source train set, T = target test set) returning frozen
dataclasses; the exact definitions follow the reference study (docs/paper-spec.md §5):

- entity-token overlap (§5.1, the study's "non-unique token overlap", x-axis of its NER panels): over entity
  lines, i.e. (token, tag) pairs with tag != O, `Σ_{x ∈ set(S) ∩ set(T)} count_T(x) / |T entity lines|`;
- unique entity-chunk overlap (§5.2, what P1 removes): chunk surface strings shared by S and T over the unique
  chunks of T (and of S), plus the share of T's chunk occurrences whose surface is shared;
- O-word overlap (§5.3, what P2 removes): target O tokens whose lowercased form is among S's lowercased O words,
  overall and restricted to P2's candidates (`context_candidate`: not a stopword, no punctuation or symbol
  character, longer than one character; the one definition the P2/P5 perturbations also use);
- sub-word overlap (our addition): sub-word types/tokens of T that a tokenizer also produces on S.

Every ratio with an empty denominator is 0.0 (nothing to overlap), never NaN.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

from xner_core.corpus.sentences import Corpus
from xner_core.corpus.stopwords import stopwords_for
from xner_core.corpus.tags import spans


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Counting helpers (public: the perturbations reuse them to find what is shared)


def entity_line_counts(corpus: Corpus) -> Counter[tuple[str, str]]:
    """Count entity lines, i.e. (token, tag) pairs whose tag is not O.

    Args:
        corpus: any corpus.

    Returns:
        Counter over (token, full IOB2 tag); "Paris"/B-LOC and "Paris"/I-LOC are different lines.
    """
    return Counter(pair for s in corpus for pair in zip(s.tokens, s.tags) if pair[1] != "O")


def chunk_counts(corpus: Corpus) -> Counter[str]:
    """Count entity chunk surfaces (a chunk's tokens joined by one space), regardless of type.

    Args:
        corpus: any corpus.

    Returns:
        Counter over surface strings, one count per chunk occurrence.
    """
    out: Counter[str] = Counter()
    for s in corpus:
        for sp in spans(s.tags):
            out[" ".join(s.tokens[sp.start:sp.end])] += 1
    return out


def o_word_counts(corpus: Corpus) -> Counter[str]:
    """Count the lowercased tokens tagged O.

    Args:
        corpus: any corpus.

    Returns:
        Counter over lowercased O tokens.
    """
    return Counter(tok.lower() for s in corpus for tok, tag in zip(s.tokens, s.tags) if tag == "O")


@lru_cache(maxsize=1 << 16)
def has_punct_or_symbol(word: str) -> bool:
    """Return True when `word` has a punctuation or symbol character (Unicode categories P*, S*).

    The study's "free of punctuation", made script-independent: every ASCII punctuation character is P* or S*,
    and so are the Arabic comma, guillemets, `°`, `€` or box-drawing characters.
    """
    return any(unicodedata.category(ch)[0] in "PS" for ch in word)


def context_candidate(token: str, stopwords: frozenset[str] | set[str]) -> str | None:
    """Return the lowercased token when it is a context-word candidate (P2), else None.

    The one definition of a P2 candidate (docs/paper-spec.md §4, P2): longer than one character, no punctuation or
    symbol character (`has_punct_or_symbol`) and not a stopword (compared lowercased). The O-tag condition is
    the caller's. `o_word_overlap` counts with it and the perturbations (`xner_core.perturb.plan`) pick with it, so
    the overlap measure and the perturbation always agree on which words are candidates.

    Args:
        token: one token.
        stopwords: lowercased stopwords of the token's language.

    Returns:
        `token.lower()` or None.
    """
    if len(token) <= 1 or has_punct_or_symbol(token):
        return None
    low = token.lower()
    return None if low in stopwords else low


def is_p2_candidate(word: str, stopwords: frozenset[str] | set[str]) -> bool:
    """The study's P2 filter for a context word (the caller checks that it is tagged O).

    Args:
        word: the token as written.
        stopwords: lowercased stopwords of the word's language.

    Returns:
        `context_candidate(word, stopwords) is not None`: not a stopword (compared lowercased), no punctuation
        or symbol character, longer than 1.
    """
    return context_candidate(word, stopwords) is not None


# ---------------------------------------------------------------------------------------------------------------
# Measures


@dataclass(frozen=True)
class TokenOverlap:
    """Entity-token ("non-unique token") overlap, docs/paper-spec.md §5.1.

    Attributes:
        shared_unique: |set(S lines) ∩ set(T lines)|.
        source_lines, target_lines: entity lines (non-unique) in S and T.
        source_shared_lines, target_shared_lines: Σ over shared lines of their count in S / in T.
        overlap_source: source_shared_lines / source_lines.
        overlap_target: target_shared_lines / target_lines (the study's x-axis).
    """

    shared_unique: int
    source_lines: int
    target_lines: int
    source_shared_lines: int
    target_shared_lines: int
    overlap_source: float
    overlap_target: float


def entity_token_overlap(source: Corpus, target: Corpus) -> TokenOverlap:
    """Compute the study's non-unique entity-token overlap.

    Args:
        source: source training set S.
        target: target test set T.

    Returns:
        Counts and both directions of the overlap.
    """
    s_lines, t_lines = entity_line_counts(source), entity_line_counts(target)
    shared = s_lines.keys() & t_lines.keys()
    s_shared = sum(s_lines[x] for x in shared)
    t_shared = sum(t_lines[x] for x in shared)
    s_total, t_total = s_lines.total(), t_lines.total()
    return TokenOverlap(len(shared), s_total, t_total, s_shared, t_shared,
                        _ratio(s_shared, s_total), _ratio(t_shared, t_total))


@dataclass(frozen=True)
class ChunkOverlap:
    """Unique entity-chunk overlap, docs/paper-spec.md §5.2.

    Attributes:
        shared_unique: |chunks(S) ∩ chunks(T)| over surface strings.
        source_unique, target_unique: distinct chunk surfaces in S and T.
        ratio_source: shared_unique / source_unique.
        ratio_target: shared_unique / target_unique (the study's "unique chunk overlap").
        target_occurrences: chunk occurrences in T.
        target_shared_occurrences: occurrences in T whose surface is shared (what P1 replaces).
        occurrence_fraction: target_shared_occurrences / target_occurrences.
    """

    shared_unique: int
    source_unique: int
    target_unique: int
    ratio_source: float
    ratio_target: float
    target_occurrences: int
    target_shared_occurrences: int
    occurrence_fraction: float


def entity_chunk_overlap(source: Corpus, target: Corpus) -> ChunkOverlap:
    """Compute the unique entity-chunk overlap and the share of target chunk occurrences it covers.

    Args:
        source: source training set S.
        target: target test set T.

    Returns:
        Counts and ratios; chunk types are ignored, as in the study (a surface shared as LOC and ORG counts).
    """
    s_chunks, t_chunks = chunk_counts(source), chunk_counts(target)
    shared = s_chunks.keys() & t_chunks.keys()
    t_shared_occ = sum(t_chunks[c] for c in shared)
    t_occ = t_chunks.total()
    return ChunkOverlap(len(shared), len(s_chunks), len(t_chunks), _ratio(len(shared), len(s_chunks)),
                        _ratio(len(shared), len(t_chunks)), t_occ, t_shared_occ, _ratio(t_shared_occ, t_occ))


@dataclass(frozen=True)
class WordOverlap:
    """Overlap of context (O) words, docs/paper-spec.md §4 P2 / §5.3.

    Attributes:
        target_o_tokens: O tokens in T.
        shared_o_tokens: O tokens of T whose lowercased form is among S's lowercased O words.
        ratio: shared_o_tokens / target_o_tokens.
        candidate_tokens: O tokens of T that pass the P2 filter (`context_candidate`).
        shared_candidate_tokens: candidates whose lowercased form is among S's O words (what P2 replaces).
        p2_ratio: shared_candidate_tokens / target_o_tokens (the study's same_O / all_O).
    """

    target_o_tokens: int
    shared_o_tokens: int
    ratio: float
    candidate_tokens: int
    shared_candidate_tokens: int
    p2_ratio: float


def o_word_overlap(source: Corpus, target: Corpus, stopwords: Iterable[str] | None = None) -> WordOverlap:
    """Compute how many of the target's context words the source has shown in context.

    Args:
        source: source training set S.
        target: target test set T.
        stopwords: the target language's stopwords; None uses `xner_core.corpus.stopwords.stopwords_for(target.lang)`.

    Returns:
        Counts and ratios, without and with the P2 candidate filter. S's O vocabulary is not filtered: a
        target candidate counts as shared when S has it as an O word at all.
    """
    stops = stopwords_for(target.lang) if stopwords is None else frozenset(w.lower() for w in stopwords)
    s_vocab = o_word_counts(source).keys()
    total = shared = cand = shared_cand = 0
    # Count over raw O tokens (not lowercased) so the P2 filter sees the token as written.
    t_raw = Counter(tok for s in target for tok, tag in zip(s.tokens, s.tags) if tag == "O")
    for tok, n in t_raw.items():
        total += n
        in_source = tok.lower() in s_vocab
        shared += n if in_source else 0
        if context_candidate(tok, stops) is not None:
            cand += n
            shared_cand += n if in_source else 0
    return WordOverlap(total, shared, _ratio(shared, total), cand, shared_cand, _ratio(shared_cand, total))


@dataclass(frozen=True)
class SubwordOverlap:
    """Sub-word overlap under one tokenizer.

    Attributes:
        source_types, target_types: distinct sub-word ids in S and T (the unknown token excluded).
        shared_types: ids in both.
        type_ratio: shared_types / target_types.
        target_tokens: sub-word tokens in T (unknown tokens included: they are part of the input).
        shared_tokens: tokens of T whose id also occurs in S (never the unknown token).
        token_ratio: shared_tokens / target_tokens.
    """

    source_types: int
    target_types: int
    shared_types: int
    type_ratio: float
    target_tokens: int
    shared_tokens: int
    token_ratio: float


def _subword_counts(corpus: Corpus, tokenizer: Any) -> Counter[int]:
    """Count sub-word ids over a corpus, tokenizing each distinct word once."""
    words = Counter(tok for s in corpus for tok in s.tokens)
    if not words:
        return Counter()
    vocab = list(words)
    # One batched call over distinct words: each word is tokenized on its own, exactly as with
    # `is_split_into_words=True` (the way the NER models see the text), and far faster than tokenize() per word.
    ids = tokenizer(vocab, add_special_tokens=False, return_attention_mask=False,
                    return_token_type_ids=False)["input_ids"]
    out: Counter[int] = Counter()
    for word, word_ids in zip(vocab, ids):
        n = words[word]
        for i in word_ids:
            out[i] += n
    return out


def subword_overlap(source: Corpus, target: Corpus, tokenizer: Any) -> SubwordOverlap:
    """Compute the share of the target's sub-word types and tokens that also occur in the source.

    Args:
        source: source training set S.
        target: target test set T.
        tokenizer: a Hugging Face tokenizer (fast or slow) for the model in question.

    Returns:
        Type and token counts and ratios.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    s_ids, t_ids = _subword_counts(source, tokenizer), _subword_counts(target, tokenizer)
    s_types = s_ids.keys() - {unk}
    t_types = t_ids.keys() - {unk}
    shared = s_types & t_types
    t_total = t_ids.total()
    t_shared = sum(t_ids[i] for i in shared)
    return SubwordOverlap(len(s_types), len(t_types), len(shared), _ratio(len(shared), len(t_types)),
                          t_total, t_shared, _ratio(t_shared, t_total))


def overlap_features(source: Corpus, target: Corpus, tokenizer: Any = None) -> dict[str, float]:
    """All overlap measures as one flat dict (columns of the results table).

    Args:
        source: source training set S.
        target: target test set T.
        tokenizer: optional HF tokenizer; when given, the sub-word measures are included.

    Returns:
        Keys: entity_token_overlap, entity_token_overlap_source, entity_token_shared_unique,
        unique_chunk_overlap, unique_chunk_overlap_source, chunk_shared_unique, chunk_occurrence_overlap,
        o_word_overlap, o_word_overlap_p2, and with a tokenizer subword_type_overlap, subword_token_overlap.
        Counts are given as floats so every value has one type.
    """
    tok = entity_token_overlap(source, target)
    chunk = entity_chunk_overlap(source, target)
    word = o_word_overlap(source, target)
    out: dict[str, float] = {
        "entity_token_overlap": tok.overlap_target,
        "entity_token_overlap_source": tok.overlap_source,
        "entity_token_shared_unique": float(tok.shared_unique),
        "unique_chunk_overlap": chunk.ratio_target,
        "unique_chunk_overlap_source": chunk.ratio_source,
        "chunk_shared_unique": float(chunk.shared_unique),
        "chunk_occurrence_overlap": chunk.occurrence_fraction,
        "o_word_overlap": word.ratio,
        "o_word_overlap_p2": word.p2_ratio,
    }
    if tokenizer is not None:
        sub = subword_overlap(source, target, tokenizer)
        out["subword_type_overlap"] = sub.type_ratio
        out["subword_token_overlap"] = sub.token_ratio
    return out
