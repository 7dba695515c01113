"""Stage 5b, evaluation: the in-process caches. A grid evaluates many jobs on the same (seen corpus, test set),
and the dashboard serves many sessions from one process, so the shared parts are built once and kept: seen
corpora, pair features, word embedders, perturbation contexts and perturbed test sets (small LRU maps, keyed
by what each part depends on; see `inputs`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

from xner_core.paths import cache_dir


class _LRU:
    """A small least-recently-used map (contexts hold embeddings and perturbed corpora: keep a few)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        # The dashboard's sessions are threads of one process: keep the map consistent between them (`make` runs
        # outside the lock, so two sessions may build the same part at once; the later one is kept).
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self.data:
                self.hits += 1
                self.data.move_to_end(key)
                return self.data[key]
            self.misses += 1
        value = make()
        with self._lock:
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self.data.clear()
            self.hits = self.misses = 0


SEEN = _LRU(16)
FEATURES = _LRU(64)
EMBEDDERS = _LRU(2)
CONTEXTS = _LRU(4)
PERTURBED = _LRU(32)
_CACHES = {"seen": SEEN, "features": FEATURES, "embedders": EMBEDDERS, "contexts": CONTEXTS,
           "perturbed": PERTURBED}


def clear_caches() -> None:
    """Drop the in-process caches (seen corpora, pair features, embedders, perturbation contexts, perturbed sets)."""
    for c in _CACHES.values():
        c.clear()


def cache_stats() -> dict[str, dict[str, int]]:
    """Hits, misses and sizes of the in-process caches (for tests and the grid benchmark)."""
    return {name: {"hits": c.hits, "misses": c.misses, "size": len(c.data)} for name, c in _CACHES.items()}


class _LazyEmbedder:
    """A word embedder loaded on its first call, so a context can carry it without paying for the encoder
    when no perturbation embeds anything."""

    def __init__(self, model_name: str, cache: str | os.PathLike[str] | None) -> None:
        self.model_name = model_name
        self.cache = cache
        self._embedder: Any = None
        # The dashboard shares one embedder between sessions (threads): load the encoder once, and run one
        # forward at a time (the embedder's memo and counters are plain attributes; the CPU is shared anyway).
        self._lock = threading.Lock()

    def __call__(self, words: Sequence[str]) -> Any:
        with self._lock:
            if self._embedder is None:
                from xner_core.features.embed import make_word_embedder

                self._embedder = make_word_embedder(self.model_name, cache=self.cache)
            return self._embedder(words)


def lazy_word_embedder(model_name: str, cache: str | os.PathLike[str] | None = None) -> Callable[[Sequence[str]],
                                                                                                   Any]:
    """A word embedder for `model_name` that loads its encoder on the first call (shared per process).

    Args:
        model_name: an encoder name (`e5-small`, `tiny`, a hub id or a local directory).
        cache: xner cache root.

    Returns:
        A callable `words -> (n, dim) array`.
    """
    return EMBEDDERS.get((model_name, str(cache_dir(cache))), lambda: _LazyEmbedder(model_name, cache))
