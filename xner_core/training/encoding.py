"""Stage 3b, training inputs: word-split sentences to model inputs, and epochs of padded batches.

Labels sit on the FIRST sub-token of every word (-100 elsewhere, as in transformers' `run_ner.py`); sentences
longer than `max_length` sub-tokens become several windows of whole words (never truncated); an epoch is a seeded
permutation (or each group oversampled to the largest, for balanced multi-source training), grouped into batches
of similar length and padded to each batch's longest member (dynamic padding).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.errors import ConfigError, DataError

IGNORE_INDEX = -100
# Batches per mega-batch for length grouping: long enough to make padding small, short enough to keep the
# epoch order random (the same trade-off as transformers' LengthGroupedSampler).
MEGABATCH_BATCHES = 50


@dataclass(frozen=True)
class Encoded:
    """One model input: a window of whole words of one sentence, with specials and first-sub-token labels.

    `labels[i]` is the label id of the word starting at sub-token i, or -100 (continuation pieces, specials).
    Words that produce zero sub-tokens have no position and so no label.
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    sentence: int  # index of the sentence in the encoded sequence
    first_word: int  # index of the window's first word in that sentence
    n_words: int  # number of words in the window

    def __len__(self) -> int:
        return len(self.input_ids)


# --------------------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------------------


def _label_ids(encoded_word_ids: Sequence[int | None], word_labels: Sequence[int], offset: int) -> list[int]:
    """First sub-token of each word -> its label; every other position -> -100."""
    out: list[int] = []
    prev: int | None = None
    for wid in encoded_word_ids:
        if wid is None:
            out.append(IGNORE_INDEX)
        elif wid != prev:
            out.append(word_labels[offset + wid])
        else:
            out.append(IGNORE_INDEX)
        prev = wid
    return out


def _windows(pieces_per_word: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Split words into consecutive [start, end) windows whose sub-token counts fit `budget`.

    Greedy: fill a window until the next word would overflow it. A single word longer than the budget gets a
    window of its own (its tail pieces are then cut; its first piece, which carries the label, survives).
    """
    out: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, n in enumerate(pieces_per_word):
        if used + n > budget and i > start:
            out.append((start, i))
            start, used = i, 0
        used += n
    if start < len(pieces_per_word):
        out.append((start, len(pieces_per_word)))
    return out


def encode_for_training(
    sentences: Sequence[Sentence],
    tokenizer: Any,
    label2id: Mapping[str, int] | None,
    max_length: int,
) -> list[Encoded]:
    """Tokenize word-split sentences and put each word's label on its first sub-token.

    Args:
        sentences: tagged sentences (tags are ignored when `label2id` is None, e.g. unlabeled text).
        tokenizer: a fast HF tokenizer (needs `is_split_into_words` and `word_ids()`).
        label2id: tag -> label id; None marks every first sub-token with label 0 (for soft/unlabeled targets).
        max_length: the most sub-tokens per input, specials included.

    Returns:
        One or more `Encoded` windows per non-empty sentence, in order. Sentences longer than `max_length` are
        split at word boundaries into several windows (no word is dropped); empty sentences yield nothing.
        Raises DataError for a tag not in `label2id`, ConfigError for a `max_length` too small for the specials.
    """
    n_special = len(tokenizer("", add_special_tokens=True)["input_ids"])
    budget = max_length - n_special
    if budget < 1:
        raise ConfigError(f"max_length {max_length} leaves no room for words after {n_special} special tokens; "
                          f"use max_length >= {n_special + 1} (128 is usual)")
    word_labels: list[list[int]] = []
    for s in sentences:
        if label2id is None:
            word_labels.append([0] * len(s.tokens))
            continue
        try:
            word_labels.append([label2id[t] for t in s.tags])
        except KeyError as exc:
            raise DataError(f"sentence {s.id!r}: tag {exc.args[0]!r} is not one of the model's labels; allowed: "
                            f"{', '.join(label2id)}") from None
    keep = [i for i, s in enumerate(sentences) if len(s.tokens) > 0]
    if not keep:
        return []
    words = [list(sentences[i].tokens) for i in keep]
    full = tokenizer(words, is_split_into_words=True, add_special_tokens=True, truncation=False, verbose=False)
    out: list[Encoded] = []
    pending: list[tuple[int, int, int]] = []  # (sentence index, start word, end word) for long sentences
    for row, si in enumerate(keep):
        ids = full["input_ids"][row]
        wids = full.word_ids(row)
        if len(ids) <= max_length:
            out.append(Encoded(tuple(ids), tuple(_label_ids(wids, word_labels[si], 0)), si, 0, len(words[row])))
            continue
        counts = Counter(w for w in wids if w is not None)
        per_word = [counts.get(w, 0) for w in range(len(words[row]))]
        pending.extend((si, a, b) for a, b in _windows(per_word, budget))
    if pending:
        # Re-tokenize each window so the tokenizer adds its own specials; truncation only bites for a single
        # word longer than the window (see `_windows`).
        chunks = [list(sentences[si].tokens[a:b]) for si, a, b in pending]
        enc = tokenizer(chunks, is_split_into_words=True, add_special_tokens=True, truncation=True,
                        max_length=max_length, verbose=False)
        for row, (si, a, b) in enumerate(pending):
            labels = _label_ids(enc.word_ids(row), word_labels[si], a)
            out.append(Encoded(tuple(enc["input_ids"][row]), tuple(labels), si, a, b - a))
        out.sort(key=lambda e: (e.sentence, e.first_word))
    return out


# --------------------------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------------------------


def length_grouped_batches(
    order: Sequence[int],
    lengths: Sequence[int],
    batch_size: int,
    generator: Any,
    megabatch: int = MEGABATCH_BATCHES,
) -> list[list[int]]:
    """Group an (already shuffled) epoch order into batches of similar length.

    Args:
        order: example indices in epoch order (may repeat indices, e.g. when oversampling).
        lengths: sub-token length of every example.
        batch_size: examples per batch.
        generator: a seeded `torch.Generator` used to shuffle the batch order.
        megabatch: batches per mega-batch; examples are sorted by length only inside a mega-batch.

    Returns:
        Batches (lists of indices); every entry of `order` appears exactly once.
    """
    import torch

    size = batch_size * megabatch
    batches: list[list[int]] = []
    for start in range(0, len(order), size):
        mega = sorted(order[start:start + size], key=lambda i: -lengths[i])
        batches.extend(mega[j:j + batch_size] for j in range(0, len(mega), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[p] for p in perm]


def _epoch_order(n: int, groups: Sequence[Sequence[int]] | None, generator: Any) -> list[int]:
    """One epoch of example indices: a permutation, or each group oversampled to the largest group's size."""
    import torch

    if not groups:
        return torch.randperm(n, generator=generator).tolist()
    target = max(len(g) for g in groups)
    order: list[int] = []
    for g in groups:
        picked: list[int] = []
        while len(picked) < target:  # whole permutations first, so every example is seen before any repeats
            picked.extend(g[i] for i in torch.randperm(len(g), generator=generator).tolist())
        order.extend(picked[:target])
    return [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]


def _collate(examples: Sequence[Encoded], pad_id: int) -> tuple[Any, Any, Any]:
    """Pad a batch to its longest member: (input_ids, attention_mask, labels) tensors."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e)
        ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels, dtype=torch.long)
    return ids, mask, labels


def _epoch_seed(seed: int, epoch: int) -> int:
    # Distinct streams per (seed, epoch); seed + epoch would make (0, 1) and (1, 0) collide.
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


def _pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else 0
