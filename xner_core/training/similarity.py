"""Stage 3b, distillation teacher weights: source-target similarity from a character n-gram naive-Bayes language
identifier (a lightweight stand-in for Wu et al.'s language-ID classifier).

Wu et al. (ACL 2020; microsoft/vert-papers `SingleMulti-TS`, `domain_learner.py` + `main.py`
`get_src_weighted_probs` with `--sim_level domain --tau_metric var`) train a language identifier on the source
languages (a low-rank bilinear classifier over mBERT's pooled sentence embeddings, with an orthogonality
regulariser), score every unlabeled target sentence x against each source k (s_k(x)), and weight teacher k by
alpha_k = mean over x of softmax(tau * s(x))_k with tau = 1 / var(s) (the variance of all scores). We keep their
aggregation exactly (`similarity_weights`, method "wu") and differ in the classifier only: s_k(x) is the mean
log-likelihood per character 1-3-gram of x under a multinomial naive-Bayes model of source k's text (no
encoder, no training loop; the per-n-gram mean keeps scores independent of sentence length, as a classifier's
logits are). Method "posterior" is the first version of this module (mean NB posterior, softmax at T = 0.1).
"""

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


def _profiles(source_texts_by_lang: Mapping[str, Sequence[Sentence | str | Sequence[str]]],
              max_sentences: int) -> tuple[list[str], list[Counter[str]]]:
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
    return langs, counts


def language_scores(
    target_texts: Sequence[Sentence | str | Sequence[str]],
    source_texts_by_lang: Mapping[str, Sequence[Sentence | str | Sequence[str]]],
    *,
    max_sentences: int = 5000,
    alpha: float = 0.5,
) -> tuple[list[str], list[list[float]]]:
    """Per target sentence, the naive-Bayes language-ID score of each source language.

    Args:
        target_texts: unlabeled target sentences (Sentence, str or token list); empty ones are skipped.
        source_texts_by_lang: source language -> its text (e.g. its train split).
        max_sentences: cap per language, target included.
        alpha: additive smoothing of n-gram counts.

    Returns:
        (languages, scores): scores[i][k] = mean log-likelihood per character n-gram of sentence i under source k.
    """
    langs, counts = _profiles(source_texts_by_lang, max_sentences)
    vsize = len(set().union(*counts)) + 1  # +1 for unseen n-grams
    totals = [sum(c.values()) for c in counts]
    rows = []
    for item in list(target_texts)[:max_sentences]:
        grams = _char_ngrams(_as_text(item))
        n = sum(grams.values())
        if not n:
            continue
        rows.append([sum(k * math.log((c.get(g, 0) + alpha) / (tot + alpha * vsize)) for g, k in grams.items()) / n
                     for c, tot in zip(counts, totals)])
    if not rows:
        raise DataError("the target text is empty; similarity weights need unlabeled target sentences")
    return langs, rows


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

    langs, counts = _profiles(source_texts_by_lang, max_sentences)
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
    method: str = "wu",
    temperature: float = 0.1,
    max_sentences: int = 5000,
) -> list[float]:
    """Teacher weights from source-target similarity (the "similarity" option of Wu et al. 2020).

    Method "wu" (default): Wu et al.'s domain-level weights over our classifier's scores (`language_scores`):
    alpha_k = mean_x softmax(tau * s(x))_k, tau = 1 / var(s) over all (sentence, source) scores (their
    `tau_metric var`). Method "posterior" (the first version): s_k = the mean naive-Bayes posterior of source k
    (`language_posteriors`), weights = softmax(s / temperature).

    Args:
        target_texts: unlabeled target sentences.
        source_texts_by_lang: source language -> its text; the weights follow this order.
        method: "wu" or "posterior".
        temperature: the "posterior" method's softmax temperature (> 0); "wu" sets its own (1 / variance).
        max_sentences: cap per language for the n-gram statistics.

    Returns:
        One weight per source language, summing to 1.
    """
    import numpy as np

    if method == "wu":
        _, rows = language_scores(target_texts, source_texts_by_lang, max_sentences=max_sentences)
        scores = np.array(rows)
        var = float(scores.var(ddof=1)) if scores.size > 1 else 0.0  # torch.var's unbiased estimate, as theirs
        z = scores / var if var > 0 else np.zeros_like(scores)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return [float(x) for x in (p / p.sum(axis=1, keepdims=True)).mean(axis=0)]
    if method != "posterior":
        raise ConfigError(f"unknown similarity method {method!r}; choose one of: wu, posterior")
    if not temperature > 0:
        raise ConfigError(f"similarity temperature must be > 0, got {temperature}")
    post = language_posteriors(target_texts, source_texts_by_lang, max_sentences=max_sentences)
    s = np.array(list(post.values())) / temperature
    e = np.exp(s - s.max())
    return [float(x) for x in e / e.sum()]
