"""Stage 3b, training: the word-neighbour table of word-level randomized smoothing (`robust = "word-smoothing"`).

Huang et al. (EMNLP 2021; uclanlp/Robust-XLT `perturb.py`) replace English training words by their neighbours in
counter-fitted word vectors (Mrkšić et al. 2016; `counterfitted_neighbors.json`, up to 8 per word). Offline and
for any source language we have no such synonym sets, so the k nearest neighbours of a word in the model's OWN
input word-embedding space (cosine similarity) stand in for them.

Words are vocabulary entries that are whole, alphabetic words (WordPiece entries without `##`, SentencePiece
entries starting with `▁`, specials excluded); only a sentence word that the tokenizer keeps as ONE such piece can
be replaced (by another one-piece word, so labels and positions never move). The table is built once per
vocabulary (embedding matrix + candidate set + k): rows are computed when first needed and cached on disk under
`<cache>/neighbours/`, so later runs with the same pretrained embeddings only read it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from xner_core.errors import ConfigError
from xner_core.paths import cache_dir

_TABLE_VERSION = 1  # bump when the candidate rule or the similarity changes
_CHUNK = 256  # query rows per similarity block (256 x 250k floats = 256 MB at most)
_MEMO: dict[tuple[str, int], dict[int, tuple[int, ...]]] = {}


def word_candidates(tokenizer: Any) -> list[int]:
    """Vocabulary ids that are whole alphabetic words (the entries a word may be replaced by).

    Args:
        tokenizer: a HF tokenizer (WordPiece or SentencePiece vocabulary).

    Returns:
        Sorted ids: SentencePiece vocabularies (any entry starts with `▁`): entries `▁` + letters; WordPiece:
        entries of letters only (continuations start with `##`). Special tokens are never candidates.
    """
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids)
    sentencepiece = any(tok.startswith("\u2581") for tok in vocab)
    out = []
    for tok, i in vocab.items():
        if i in special:
            continue
        word = tok[1:] if sentencepiece and tok.startswith("\u2581") else (None if sentencepiece else tok)
        if word and word.isalpha():
            out.append(int(i))
    return sorted(out)


def _table_key(weights: Any, candidates: Sequence[int], k: int) -> str:
    import numpy as np

    h = hashlib.sha256()
    h.update(f"v{_TABLE_VERSION} k{k} {tuple(weights.shape)}".encode())
    h.update(np.ascontiguousarray(weights.detach().float().cpu().numpy()).data)  # the buffer: no 384 MB copy
    h.update(np.asarray(candidates, dtype=np.int64).tobytes())
    return h.hexdigest()[:20]


def _load(path: Path) -> dict[int, tuple[int, ...]]:
    import numpy as np

    if not path.is_file():
        return {}
    try:
        with np.load(path) as data:
            return {int(i): tuple(int(x) for x in row) for i, row in zip(data["ids"], data["neighbours"])}
    except (OSError, ValueError, KeyError):
        return {}  # a damaged file is rebuilt


def _save(path: Path, rows: dict[int, tuple[int, ...]]) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    ids = sorted(rows)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, ids=np.asarray(ids, dtype=np.int64), neighbours=np.asarray([rows[i] for i in ids], dtype=np.int64))
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new table, never half of one


def nearest_words(weights: Any, candidates: Sequence[int], queries: Sequence[int],
                  k: int) -> dict[int, tuple[int, ...]]:
    """The k candidates nearest (cosine) to each query id in the embedding matrix, the query itself excluded.

    Args:
        weights: (vocabulary, dim) input word-embedding matrix.
        candidates: ids words may be replaced by.
        queries: ids to find neighbours for (each a candidate).
        k: neighbours per query (fewer only when there are not k other candidates).

    Returns:
        query id -> its neighbours, nearest first (ties: lower id first, as `torch.topk` on CPU orders them).
    """
    import torch

    cand = torch.as_tensor(list(candidates), dtype=torch.long)
    emb = torch.nn.functional.normalize(weights.detach().float().cpu()[cand], dim=1)
    where = {int(c): i for i, c in enumerate(cand.tolist())}
    take = min(k + 1, len(cand))
    out: dict[int, tuple[int, ...]] = {}
    queries = list(queries)
    for start in range(0, len(queries), _CHUNK):
        chunk = queries[start:start + _CHUNK]
        rows = torch.as_tensor([where[q] for q in chunk], dtype=torch.long)
        sims = emb[rows] @ emb.T
        sims[torch.arange(len(chunk)), rows] = -float("inf")  # never a word's own neighbour
        idx = torch.topk(sims, take, dim=1).indices[:, :take - 1]  # take >= 2: at least two candidates
        for q, row in zip(chunk, idx.tolist()):
            out[q] = tuple(int(cand[j]) for j in row[:k])
    return out


def neighbour_table(model: Any, tokenizer: Any, query_ids: Iterable[int], k: int,
                    cache: str | os.PathLike[str] | None = None) -> Any:
    """The (vocabulary, k) lookup table of word-level smoothing for the ids a training run can replace.

    Args:
        model: the model whose input word embeddings define the neighbourhoods (at the start of training).
        tokenizer: its tokenizer.
        query_ids: ids occurring as one-piece words in the training data (others get no row).
        k: neighbours per word (Huang et al.'s counter-fitted sets hold up to 8).
        cache: xner cache root (default `XNER_CACHE_DIR` ...); rows are added to `<cache>/neighbours/<key>.npz`.

    Returns:
        A LongTensor (vocabulary size, k'): row i holds the neighbours of id i, -1 where i has none; k' = k unless
        the vocabulary has fewer other word candidates.
    """
    import torch

    if k < 1:
        raise ConfigError(f"robust_neighbours must be >= 1, got {k}")
    weights = model.get_input_embeddings().weight
    candidates = word_candidates(tokenizer)
    if len(candidates) < 2:
        raise ConfigError("word-smoothing needs a vocabulary with at least two whole-word entries")
    cand_set = set(candidates)
    wanted = sorted({int(i) for i in query_ids} & cand_set)
    key = _table_key(weights, candidates, k)
    path = cache_dir(cache) / "neighbours" / f"{key}.npz"
    rows = _MEMO.setdefault((str(path), k), {})
    if not all(i in rows for i in wanted):
        rows.update(_load(path))
        missing = [i for i in wanted if i not in rows]
        if missing:
            rows.update(nearest_words(weights, candidates, missing, k))
            _save(path, rows)
    width = min(k, len(candidates) - 1)
    table = torch.full((int(weights.shape[0]), width), -1, dtype=torch.long)
    for i in wanted:
        nb = rows[i][:width]
        if nb:
            table[i, :len(nb)] = torch.as_tensor(nb)
            table[i, len(nb):] = nb[0]
    return table
