"""Stage 3b, distillation teacher weights: source-target similarity from a character n-gram naive-Bayes language
identifier (a lightweight stand-in for Wu et al.'s language-ID classifier)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.errors import ConfigError, DataError


def _as_text(item: Sentence | str | Sequence[str]) -> str:
    if isinstance(item, Sentence):
        return " ".join(item.tokens)
    if isinstance(item, str):
        return item
    return " ".join(item)


def _char_ngrams(text: str, orders: tuple[int, ...] = (1, 2, 3)) -> Counter[str]:
    """Character n-grams of each lower-cased word padded with spaces (so word starts/ends count)."""
    grams: Counter[str] = Counter()
    for word in text.lower().split():
        padded = f" {word} "
        for n in orders:
            for i in range(len(padded) - n + 1):
                gram = padded[i:i + n]
                if gram != " ":
                    grams[gram] += 1
    return grams


def language_posteriors(
    target_texts: Sequence[Sentence | str | Sequence[str]],
    source_texts_by_lang: Mapping[str, Sequence[Sentence | str | Sequence[str]]],
    *,
    max_sentences: int = 5000,
    alpha: float = 0.5,
) -> dict[str, float]:
    """Average language-ID posterior of the target sentences over the source languages.

    A multinomial naive-Bayes classifier over character 1-3-grams (lower-cased, word-boundary padded), trained
    on each source language's text (first `max_sentences`), additive smoothing `alpha`, uniform prior; the
    posterior of every target sentence is averaged.

    Args:
        target_texts: unlabeled target sentences (Sentence, str or token list).
        source_texts_by_lang: source language -> its text (e.g. its train split).
        max_sentences: cap per language (speed; n-gram statistics settle well before that).
        alpha: additive smoothing of n-gram counts.

    Returns:
        source language -> mean posterior (sums to 1), in the mapping's order.
    """
    import numpy as np

    langs = list(source_texts_by_lang)
    if not langs:
        raise ConfigError("similarity weights need at least one source language")
    counts: list[Counter[str]] = []
    for lang in langs:
        c: Counter[str] = Counter()
        for item in list(source_texts_by_lang[lang])[:max_sentences]:
            c.update(_char_ngrams(_as_text(item)))
        if not c:
            raise DataError(f"source language {lang!r} has no text to build its language profile from")
        counts.append(c)
    vocab = set().union(*counts)
    vsize = len(vocab) + 1  # +1 for unseen n-grams
    totals = [sum(c.values()) for c in counts]
    post_sum = np.zeros(len(langs))
    n = 0
    for item in list(target_texts)[:max_sentences]:
        grams = _char_ngrams(_as_text(item))
        if not grams:
            continue
        loglik = np.array([
            sum(k * math.log((c.get(g, 0) + alpha) / (tot + alpha * vsize)) for g, k in grams.items())
            for c, tot in zip(counts, totals)
        ])
        p = np.exp(loglik - loglik.max())
        post_sum += p / p.sum()
        n += 1
    if n == 0:
        raise DataError("the target text is empty; similarity weights need unlabeled target sentences")
    return {lang: float(v) for lang, v in zip(langs, post_sum / n)}


def similarity_weights(
    target_texts: Sequence[Sentence | str | Sequence[str]],
    source_texts_by_lang: Mapping[str, Sequence[Sentence | str | Sequence[str]]],
    *,
    temperature: float = 0.1,
    max_sentences: int = 5000,
) -> list[float]:
    """Teacher weights from source-target similarity (the "similarity" option of Wu et al. 2020).

    Wu et al. estimate similarity with a language-identification classifier applied to the target's unlabeled
    data. Here: s_k = the mean naive-Bayes language-ID posterior of source k over the target sentences (see
    `language_posteriors`), then weights = softmax(s / temperature). s lies in [0, 1], so temperature 1 gives
    nearly uniform weights and small temperatures approach "trust the most similar source only"; 0.1 (default,
    our choice) lets a source identified on all target sentences get about e^10 times the weight of one never
    identified.

    Args:
        target_texts: unlabeled target sentences.
        source_texts_by_lang: source language -> its text; the weights follow this order.
        temperature: softmax temperature (> 0).
        max_sentences: cap per language for the n-gram statistics.

    Returns:
        One weight per source language, summing to 1.
    """
    import numpy as np

    if not temperature > 0:
        raise ConfigError(f"similarity temperature must be > 0, got {temperature}")
    post = language_posteriors(target_texts, source_texts_by_lang, max_sentences=max_sentences)
    s = np.array(list(post.values())) / temperature
    e = np.exp(s - s.max())
    return [float(x) for x in e / e.sum()]
