"""Stage 1, corpus: the sizes of a language's local splits and the reference study's re-split (pool, dedupe,
shuffle, cap, 80/20) of its WikiANN data.
"""

from __future__ import annotations

import math
import os
import random
from typing import Sequence

from xner_core.corpus.sentences import Corpus, Sentence
from xner_core.corpus.wikiann import (
    HF_SPLITS,
    SPLITS,
    _check_lang,
    _check_split,
    _load_local,
    load_wikiann,
    wikiann_file,
)
from xner_core.errors import ConfigError, DataError


def split_sizes(lang: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Return the number of sentences of each local split of a language (local files only, no hub).

    Args:
        lang: WikiANN language code.
        data_dir: the WikiANN directory.

    Returns:
        `{split: sentences}` in SPLITS order, only for splits present; empty when the language is not local.
    """
    return {
        s: len(_load_local(p, lang, s))
        for s in SPLITS
        if (p := wikiann_file(lang, s, data_dir)) is not None
    }


def paper_resplit(
    lang: str,
    data_dir: str | os.PathLike[str] | None = None,
    cap: int | None = 17003,
    seed: int = 1,
    train_fraction: float = 0.8,
    splits: Sequence[str] = ("train", "dev", "test", "extra"),
) -> tuple[Corpus, Corpus]:
    """Re-split a language the way the reference study did: pool, deduplicate, shuffle, cap, 80/20.

    The study capped each language at 17,003 sentences and split them 80/20 into train/test (13,602 / 3,401).
    We pool the labeled sentences of `splits` (those present locally; without a local copy, the hub's
    train/dev/test), drop repeated (tokens, tags) sequences keeping the first, shuffle with `random.Random(seed)`,
    keep the first `cap` and cut at `floor(n * train_fraction)`.

    Args:
        lang: WikiANN language code.
        data_dir: the WikiANN directory.
        cap: maximum pooled sentences (None: no cap).
        seed: shuffle seed; the same seed gives the same split.
        train_fraction: share of the capped pool that goes to train, in (0, 1).
        splits: which source splits to pool.

    Returns:
        (train, test) corpora with split names "train"/"test", sentences keeping their original ids, and meta
        recording the protocol, seed, cap and pool size.

    Raises:
        ConfigError: an unknown split, a cap < 2 or a fraction outside (0, 1).
        DataError: no data for the language.
    """
    _check_lang(lang)
    for s in splits:
        _check_split(s)
    if not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"invalid train_fraction {train_fraction!r}; use a number strictly between 0 and 1")
    if cap is not None and (not isinstance(cap, int) or cap < 2):
        raise ConfigError(f"invalid cap {cap!r}; use at least 2 sentences, or None for no cap")
    local = [s for s in SPLITS if wikiann_file(lang, s, data_dir) is not None]
    use = [s for s in splits if s in local] if local else [s for s in splits if s in HF_SPLITS]
    if not use:
        raise DataError(
            f"no WikiANN data for {lang!r} in splits {', '.join(splits)}; local splits: {', '.join(local) or 'none'}"
        )
    seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    pool: list[Sentence] = []
    for s in use:
        for sent in load_wikiann(lang, s, data_dir):
            key = (sent.tokens, sent.tags)
            if key not in seen:
                seen.add(key)
                pool.append(sent)
    pooled = len(pool)
    random.Random(seed).shuffle(pool)
    if cap is not None:
        pool = pool[:cap]
    n_train = int(math.floor(len(pool) * train_fraction + 1e-9))
    meta = (
        ("protocol", "paper_resplit"),
        ("seed", str(seed)),
        ("cap", str(cap)),
        ("train_fraction", str(train_fraction)),
        ("pooled_unique", str(pooled)),
        ("from_splits", ",".join(use)),
    )
    return (
        Corpus(tuple(pool[:n_train]), lang, "train", meta),
        Corpus(tuple(pool[n_train:]), lang, "test", meta),
    )
