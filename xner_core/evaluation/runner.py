"""Stages 3-5 wired together: config -> training data -> cached model -> perturbed test sets -> predictions -> rows.

This is the one place that turns an `ExperimentConfig` into work. The CLI (`xner train/eval/predict`), the grid
and the dashboard call it; they never assemble training data or result rows themselves.

Data protocol: `wikiann-rahimi` uses the balanced train/dev/test splits (train capped at
`max_train_sentences`, dev at `max_dev_sentences`); `paper-resplit` pools a language's labeled sentences and
splits them 80/20 the way the reference study did (no dev set: no model selection).

The "seen" corpus a perturbation is relative to is what the model was trained on: the target's train set for
native models, the (capped) source train sets for every other setting. Entity/word overlap features are
computed against the same corpus, so the x-axes of the plots describe what the model actually saw.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

from xner_core.corpus.wikiann import Corpus, Sentence, load_wikiann, paper_resplit, wikiann_file
from xner_core.errors import ConfigError, DataError
from xner_core.evaluation.metrics import SCOPES
from xner_core.experiments.config import (
    ExperimentConfig,
    canonical_json,
    canonical_sources,
    config_hash,
    config_to_dict,
    make_config,
    resolved_lr,
)
from xner_core.numerics import resolve_precision
from xner_core.paths import cache_dir

CLEAN = "clean"
ProgressFn = Callable[[int, int, dict[str, Any]], None]


@dataclass(frozen=True)
class TrainingData:
    """Everything a setting may train on, already capped."""

    source_train: tuple[tuple[str, tuple[Sentence, ...]], ...]
    source_dev: tuple[tuple[str, tuple[Sentence, ...]], ...]
    target_train: tuple[Sentence, ...]
    target_dev: tuple[Sentence, ...]
    target_unlabeled: tuple[Sentence, ...]

    def seen(self, lang: str) -> Corpus:
        """The corpus the model was trained on (labeled), as one Corpus for overlap and perturbation context."""
        sents = self.target_train if not self.source_train else tuple(
            s for _, group in self.source_train for s in group)
        return Corpus(sents, lang, "train")


@dataclass(frozen=True)
class LoadedModel:
    """A trained (or cached) model with its tokenizer, manifest and config."""

    model: Any
    tokenizer: Any
    manifest: dict[str, Any]
    config: ExperimentConfig

    @property
    def hash(self) -> str:
        return config_hash(self.config)


@dataclass(frozen=True)
class EvalJob:
    """One evaluation: a model config on its target's test set under one perturbation."""

    config: ExperimentConfig
    perturbation: str = CLEAN
    perturb_seed: int = 0
    perturb_rate: float = 1.0
    test_limit: int | None = None
    embed_model: str = "e5-small"
    donor: str | None = None

    @property
    def target(self) -> str:
        """The evaluated language (the config's target; for transfer/multi_source it is not part of the model's
        hash, so one cached model serves several targets)."""
        return self.config.target

    @property
    def id(self) -> str:
        """Stable id: the config hash plus the target and everything else that changes this job's numbers."""
        key = {
            "config": config_hash(self.config), "target": self.config.target, "perturbation": self.perturbation,
            "perturb_seed": self.perturb_seed if self.perturbation != CLEAN else 0,
            "perturb_rate": float(self.perturb_rate) if self.perturbation != CLEAN else 1.0,
            "test_limit": self.test_limit,
            "embed_model": self.embed_model if _needs(self.perturbation, "embed") else None,
            "donor": self.donor if _needs(self.perturbation, "donor") else None,
        }
        return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()[:16]

    def clean(self) -> "EvalJob":
        """The clean job this one's drop is measured against."""
        return EvalJob(self.config, CLEAN, 0, 1.0, self.test_limit, self.embed_model, None)


@dataclass(frozen=True)
class EvalOutcome:
    """The rows of one job plus its predictions (aligned with the (perturbed) test sentences)."""

    job: EvalJob
    rows: tuple[dict[str, Any], ...]
    sentences: tuple[Sentence, ...]
    predictions: tuple[tuple[str, ...], ...]
    report: dict[str, Any] = field(default_factory=dict)


def _needs(perturbation: str, part: str) -> bool:
    if perturbation == CLEAN:
        return False
    from xner_core.perturb.registry import get_perturbation

    return part in get_perturbation(perturbation).needs


# ---------------------------------------------------------------------------------------------------------------
# data


def _cap(corpus: Corpus, n: int | None) -> tuple[Sentence, ...]:
    return corpus.head(n).sentences


def training_data(config: ExperimentConfig, data_dir: str | os.PathLike[str] | None = None) -> TrainingData:
    """Load and cap the data the config's setting trains on.

    Args:
        config: the experiment config.
        data_dir: the WikiANN directory (default XNER_DATA_DIR).

    Returns:
        Capped source/target sets; source languages in the config's canonical order.
    """
    opts = config.options
    cap, dev_cap = opts.max_train_sentences, opts.max_dev_sentences
    resplit = config.data == "paper-resplit"

    def train_of(lang: str) -> tuple[Sentence, ...]:
        if resplit:
            return _cap(paper_resplit(lang, data_dir, seed=1)[0], cap)
        return _cap(load_wikiann(lang, "train", data_dir), cap)

    def dev_of(lang: str) -> tuple[Sentence, ...]:
        return () if resplit else _cap(load_wikiann(lang, "dev", data_dir), dev_cap)

    sources = canonical_sources(config)
    target_train: tuple[Sentence, ...] = ()
    target_dev: tuple[Sentence, ...] = ()
    unlabeled: tuple[Sentence, ...] = ()
    if config.setting == "native":
        target_train, target_dev = train_of(config.target), dev_of(config.target)
    if config.setting in ("distill", "tapt"):
        unlabeled = unlabeled_target(config.target, opts.distill_unlabeled, cap, data_dir)
    return TrainingData(
        source_train=tuple((lang, train_of(lang)) for lang in sources),
        source_dev=tuple((lang, dev_of(lang)) for lang in sources),
        target_train=target_train, target_dev=target_dev, target_unlabeled=unlabeled,
    )


def unlabeled_target(lang: str, which: str, cap: int | None,
                     data_dir: str | os.PathLike[str] | None = None) -> tuple[Sentence, ...]:
    """Target text with its labels dropped: the `extra` split, or `train` when asked or when no `extra` exists."""
    split = "extra" if which == "extra" and wikiann_file(lang, "extra", data_dir) is not None else "train"
    corpus = load_wikiann(lang, split, data_dir).head(cap)
    return tuple(s.replace(tags=("O",) * len(s)) for s in corpus)


def test_corpus(config: ExperimentConfig, limit: int | None = None,
                data_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """The target test set of the config's data protocol, capped at `limit` sentences."""
    if config.data == "paper-resplit":
        return paper_resplit(config.target, data_dir, seed=1)[1].head(limit)
    return load_wikiann(config.target, "test", data_dir, limit=limit)


def donor_corpus(lang: str, data_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """Names for person/location swaps: the donor language's `extra` split (outside every train/test split)
    when present, else its dev split."""
    split = "extra" if wikiann_file(lang, "extra", data_dir) is not None else "dev"
    return load_wikiann(lang, split, data_dir)


# ---------------------------------------------------------------------------------------------------------------
# models


def model_cache(cache: str | os.PathLike[str] | None = None) -> Any:
    """The model cache under `<cache>/models`."""
    from xner_core.models.cache import ModelCache

    return ModelCache(cache_dir(cache) / "models")


def train_model(config: ExperimentConfig, *, data_dir: str | os.PathLike[str] | None = None,
                cache: str | os.PathLike[str] | None = None, progress: ProgressFn | None = None,
                status: Callable[[str], None] | None = None, device: Any = None,
                precision: str = "auto") -> LoadedModel:
    """Return the config's model from the cache, training (and caching) it first when missing.

    Distillation teachers are the cached transfer models of each source (trained on demand), so a grid that
    already trained es→X transfer reuses it as the es teacher.

    Args:
        config: the experiment config (its hash is the cache key).
        data_dir: WikiANN directory.
        cache: xner cache root.
        progress: training progress callback `(step, total, info)`.
        status: short status messages (cache hit, waiting for another process, training, saved).
        device: torch device (auto when None).
        precision: auto, bf16 or fp32 for training (`numerics`); not part of the hash: a cached model trained
            at another precision is returned as it is (its manifest's `timings.precision` says which).

    Returns:
        The loaded model.
    """
    from xner_core.models.registry import load_token_classifier
    from xner_core.numerics import resolve_device
    from xner_core.training.train import options_kwargs, run_setting

    def train_fn() -> tuple[Any, Any, dict[str, Any]]:
        data = training_data(config, data_dir)
        model, tokenizer = load_token_classifier(config.model, cache=cache, seed=config.seed)
        teachers = None
        if config.setting == "distill":
            teachers = [train_model(teacher_config(config, lang), data_dir=data_dir, cache=cache,
                                    progress=progress, status=status, device=device, precision=precision).model
                        for lang, _ in data.source_train]
        kwargs = options_kwargs(config.options)
        kwargs["lr"] = resolved_lr(config)
        result = run_setting(
            config.setting, model, tokenizer,
            source_train={lang: list(s) for lang, s in data.source_train},
            source_dev={lang: list(s) for lang, s in data.source_dev if s},
            target_train=list(data.target_train), target_dev=list(data.target_dev) or None,
            target_unlabeled=list(data.target_unlabeled), teachers=teachers,
            seed=config.seed, progress=progress, device=device, precision=precision, **kwargs,
        )
        extra = {
            "dev_scores": {"best_dev_f1": result.best_dev_f1, "best_epoch": result.best_epoch,
                           "history": [_jsonable(h) for h in result.history]},
            "timings": {"train_s": round(result.train_seconds, 3),
                        "sentences_per_second": round(result.sentences_per_second or 0.0, 2),
                        "device": resolve_device(device).type, "precision": result.info.get("precision")},
            "data_sizes": {"source_train": {lang: len(s) for lang, s in data.source_train},
                           "target_train": len(data.target_train), "target_unlabeled": len(data.target_unlabeled)},
            "train_info": _jsonable(result.info),
        }
        return result.model, tokenizer, extra

    model, tokenizer, manifest = model_cache(cache).get_or_train(config, train_fn, progress=status, device=device)
    model.eval()
    return LoadedModel(model, tokenizer, manifest, config)


def teacher_config(config: ExperimentConfig, source: str) -> ExperimentConfig:
    """The transfer config of one distillation teacher (same model, options and seed)."""
    return make_config(config.model, config.target, "transfer", sources=(source,), seed=config.seed,
                       data=config.data, options=config.options)


def load_model(config: ExperimentConfig, cache: str | os.PathLike[str] | None = None,
               device: Any = None) -> LoadedModel:
    """Load a cached model; raises CacheMiss (an XnerError) when it was never trained."""
    from xner_core.models.cache import CacheMiss

    mc = model_cache(cache)
    if not mc.has(config):
        raise CacheMiss(f"model {config_hash(config)} is not cached; train it with `xner train` "
                        f"(same options) or pick a cached one (`xner models ls`)")
    model, tokenizer, manifest = mc.load(config, device=device)
    model.eval()
    return LoadedModel(model, tokenizer, manifest, config)


# Training throughput (sentences/s) assumed before this machine has trained a model of that kind: measured on
# 2 CPU threads (bench_training: e5-small ~40), and about 20x that on one CUDA GPU.
DEFAULT_TRAIN_THROUGHPUT: dict[str, float] = {"tiny": 2000.0, "e5-small": 40.0}
UNKNOWN_MODEL_THROUGHPUT = 8.0
CUDA_SPEEDUP = 20.0


def measured_train_throughput(model: str, device: str, cache: str | os.PathLike[str] | None = None,
                              recent: int = 10) -> float | None:
    """Median training throughput of the `recent` newest cached models of `model` trained on `device`.

    Read from the cache manifests' `timings` (sentences per second of the optimisation loop). Manifests written
    before the device was recorded count as CPU runs when their torch build is CPU-only (`+cpu`).

    Args:
        model: the model name of the configs (`e5-small`, `tiny`, a hub id, ...).
        device: "cpu" or "cuda".
        cache: cache directory.
        recent: how many of the newest matching entries to use.

    Returns:
        Sentences per second, or None when no cached model of that kind has a measurement.
    """
    import statistics

    found: list[tuple[str, float]] = []
    for manifest in model_cache(cache).manifests():
        config = manifest.get("config")
        if not isinstance(config, dict) or config.get("model") != model:
            continue
        timings = manifest.get("timings") or {}
        sps = timings.get("sentences_per_second")
        dev = timings.get("device")
        if dev is None and "+cpu" in str((manifest.get("versions") or {}).get("torch", "")):
            dev = "cpu"
        if dev == device and isinstance(sps, (int, float)) and sps > 0:
            found.append((str(manifest.get("created") or ""), float(sps)))
    if not found:
        return None
    found.sort(reverse=True)
    return float(statistics.median(v for _, v in found[:recent]))


def estimate_train_seconds(config: ExperimentConfig, data_dir: str | os.PathLike[str] | None = None,
                           sentences_per_second: float | None = None,
                           cache: str | os.PathLike[str] | None = None, device: Any = None) -> float:
    """A rough training-time estimate from the training set size and a throughput.

    Args:
        config: the experiment config.
        data_dir: WikiANN directory.
        sentences_per_second: throughput to assume; by default what this machine measured when it trained
            models of the same kind (`measured_train_throughput`), else `DEFAULT_TRAIN_THROUGHPUT` (x
            `CUDA_SPEEDUP` on CUDA).
        cache: cache directory whose manifests hold the measurements.
        device: the training device (default: cuda when available, else cpu).

    Returns:
        Seconds.
    """
    data = training_data(config, data_dir)
    n = sum(len(s) for _, s in data.source_train) + len(data.target_train)
    if config.setting == "distill":
        n += len(data.target_unlabeled) * (1 + len(data.source_train))
    if sentences_per_second is None:
        from xner_core.numerics import device_type

        kind = device_type(device)
        sentences_per_second = measured_train_throughput(config.model, kind, cache)
        if sentences_per_second is None:
            sentences_per_second = DEFAULT_TRAIN_THROUGHPUT.get(config.model, UNKNOWN_MODEL_THROUGHPUT)
            if kind == "cuda":
                sentences_per_second *= CUDA_SPEEDUP
    return n * config.options.epochs / sentences_per_second


# ---------------------------------------------------------------------------------------------------------------
# evaluation helpers


def _jsonable(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def predictions_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """Where per-job predictions are kept (`<cache>/predictions/<job_id>.json.gz`)."""
    return cache_dir(cache) / "predictions"


def save_predictions(job_id: str, sentences: Sequence[Sentence], predictions: Sequence[Sequence[str]],
                     cache: str | os.PathLike[str] | None = None, dtype: str | None = None) -> Path:
    """Write a job's sentences, gold tags and predicted tags (gzip JSON, atomic); `dtype` records the precision
    they were predicted at (`eval_dtype`), so a later evaluation at another precision does not reuse them."""
    d = predictions_dir(cache)
    d.mkdir(parents=True, exist_ok=True)
    payload = [{"id": s.id, "tokens": list(s.tokens), "gold": list(s.tags), "pred": list(p), "dtype": dtype}
               for s, p in zip(sentences, predictions)]
    path = d / f"{job_id}.json.gz"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False)
    os.replace(tmp, path)
    return path


def load_predictions(job_id: str, cache: str | os.PathLike[str] | None = None) -> list[dict[str, Any]] | None:
    """Read a job's predictions, or None when absent or unreadable."""
    path = predictions_dir(cache) / f"{job_id}.json.gz"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def pair_features(config: ExperimentConfig, seen: Corpus, test: Corpus, tokenizer: Any = None) -> dict[str, Any]:
    """Overlap (seen training data vs clean test set) and URIEL features of a model config's pair.

    URIEL distances are averaged over the sources; for native rows they are 0 by definition (same language).
    """
    from xner_core.features.distance import DISTANCE_KINDS, source_diversity, uriel_distances
    from xner_core.features.overlap import overlap_features

    feats: dict[str, Any] = dict(overlap_features(seen, test, tokenizer=tokenizer))
    sources = canonical_sources(config) or (config.target,)
    for kind in DISTANCE_KINDS:
        vals = []
        for src in sources:
            try:
                v = uriel_distances(src, config.target).get(kind) if src != config.target else 0.0
            except Exception:  # a language URIEL lacks: leave the feature empty, never fail the evaluation
                v = None
            if v is not None:
                vals.append(v)
        feats[f"uriel_{kind}"] = sum(vals) / len(vals) if vals else None
    try:
        div = source_diversity(sources)
        feats["n_sources"] = div.count
        feats["diversity_genetic"] = div.mean_distance.get("genetic")
        feats["diversity_syntactic"] = div.mean_distance.get("syntactic")
    except Exception:
        feats["n_sources"] = len(sources)
    return feats


def trained_precision(manifest: Mapping[str, Any]) -> str | None:
    """The precision a cached model was trained at: its manifest's record, else (older manifests) fp32 for CPU
    training and bf16 for CUDA (the only autocast before precision became an option), None when unknown."""
    timings = manifest.get("timings") or {}
    if timings.get("precision") in ("bf16", "fp32"):
        return str(timings["precision"])
    return {"cpu": "fp32", "cuda": "bf16"}.get(str(timings.get("device")))


def _versions() -> dict[str, str]:
    from xner_core import __version__
    from xner_core.models.cache import library_versions

    return {**library_versions(), "xner": __version__}


def _device_name(model: Any) -> str:
    try:
        dev = next(model.parameters()).device
    except (StopIteration, AttributeError):
        return "cpu"
    if dev.type == "cuda":
        import torch

        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return dev.type


# ---------------------------------------------------------------------------------------------------------------
# in-process caches: a grid evaluates many jobs on the same (seen corpus, test set); build the shared parts once


class _LRU:
    """A small least-recently-used map (contexts hold embeddings and perturbed corpora: keep a few)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self.data:
            self.hits += 1
            self.data.move_to_end(key)
            return self.data[key]
        self.misses += 1
        value = make()
        self.data[key] = value
        while len(self.data) > self.size:
            self.data.popitem(last=False)
        return value

    def clear(self) -> None:
        self.data.clear()
        self.hits = self.misses = 0


_SEEN = _LRU(16)
_FEATURES = _LRU(64)
_EMBEDDERS = _LRU(2)
_CONTEXTS = _LRU(4)
_PERTURBED = _LRU(32)
_CACHES = {"seen": _SEEN, "features": _FEATURES, "embedders": _EMBEDDERS, "contexts": _CONTEXTS,
           "perturbed": _PERTURBED}


def clear_caches() -> None:
    """Drop the in-process caches (seen corpora, pair features, embedders, perturbation contexts, perturbed sets)."""
    for c in _CACHES.values():
        c.clear()


def cache_stats() -> dict[str, dict[str, int]]:
    """Hits, misses and sizes of the in-process caches (for tests and the grid benchmark)."""
    return {name: {"hits": c.hits, "misses": c.misses, "size": len(c.data)} for name, c in _CACHES.items()}


def _data_key(data_dir: str | os.PathLike[str] | None) -> str:
    from xner_core.paths import data_dir as resolve_data_dir

    return str(resolve_data_dir(data_dir).expanduser().absolute())


def _seen_key(config: ExperimentConfig, data_dir: str | os.PathLike[str] | None) -> tuple[Any, ...]:
    # What `TrainingData.seen` depends on: the training languages, their cap and the data protocol (the target
    # is kept because the seen Corpus is labeled with it, and the test set differs per target anyway).
    langs = canonical_sources(config) or (config.target,)
    return ("seen", _data_key(data_dir), config.data, config.setting == "native", langs,
            config.options.max_train_sentences, config.target)


def _test_key(config: ExperimentConfig, limit: int | None, data_dir: str | os.PathLike[str] | None) -> tuple[Any, ...]:
    return ("test", _data_key(data_dir), config.data, config.target, limit)


def seen_corpus(config: ExperimentConfig, data_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """The labeled corpus the config's model was trained on (cached in-process; see the module docstring).

    Args:
        config: the experiment config.
        data_dir: WikiANN directory.

    Returns:
        The target's train set for native models, the capped source train sets otherwise.
    """
    return _SEEN.get(_seen_key(config, data_dir), lambda: training_data(config, data_dir).seen(config.target))


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


def _embedder(model_name: str, cache: str | os.PathLike[str] | None) -> _LazyEmbedder:
    return _EMBEDDERS.get((model_name, str(cache_dir(cache))), lambda: _LazyEmbedder(model_name, cache))


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def evaluate(
    config: ExperimentConfig,
    perturbations: Sequence[str] = (CLEAN,),
    *,
    perturb_seed: int = 0,
    perturb_rate: float = 1.0,
    test_limit: int | None = None,
    embed_model: str = "e5-small",
    donor: str | None = None,
    bootstrap: int = 1000,
    batch_size: int = 32,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    loaded: LoadedModel | None = None,
    device: Any = None,
    backend: str = "torch",
    train_seconds: float | None = None,
    precision: str = "auto",
) -> list[EvalOutcome]:
    """Evaluate a model config on its target's clean test set and under each perturbation.

    The model comes from `loaded`, else the cache (trained when missing). Clean predictions are computed once
    (and reused from disk by later calls); each perturbed job's drop is a paired bootstrap against them.

    Args:
        config: the model's experiment config (its target is the evaluated language).
        perturbations: registry names; "clean" is always evaluated first.
        perturb_seed: seed of every perturbation.
        perturb_rate: fraction of eligible units changed.
        test_limit: cap on test sentences (None = all).
        embed_model: encoder for context perturbations' word embeddings (pretrained, not fine-tuned).
        donor: donor language of person/location swaps (default: the target itself, names from its `extra`).
        bootstrap: resamples for CIs (0 = no CIs).
        batch_size: inference batch size.
        data_dir: WikiANN directory.
        cache: xner cache root.
        loaded: an already loaded model.
        device: torch device.
        backend: "torch" or "onnx-int8".
        train_seconds: recorded in the rows (default: from the model's manifest).
        precision: inference autocast, auto/bf16/fp32 (`numerics`; also used to train a missing model). Not
            part of the job id; rows record it as `eval_dtype` (and the model's as `train_dtype`).

    Returns:
        One outcome per condition, clean first; `outcome.rows` follow `results.SCHEMA`.
    """
    return list(iter_evaluate(
        config, perturbations, perturb_seed=perturb_seed, perturb_rate=perturb_rate, test_limit=test_limit,
        embed_model=embed_model, donor=donor, bootstrap=bootstrap, batch_size=batch_size, data_dir=data_dir,
        cache=cache, loaded=loaded, device=device, backend=backend, train_seconds=train_seconds,
        precision=precision))


def eval_jobs(config: ExperimentConfig, perturbations: Sequence[str] = (CLEAN,), *, perturb_seed: int = 0,
              perturb_rate: float = 1.0, test_limit: int | None = None, embed_model: str = "e5-small",
              donor: str | None = None) -> list[EvalJob]:
    """The jobs `evaluate` runs for these arguments (clean first), with the ids its rows carry.

    Args:
        config: the model config (its target is the evaluated language).
        perturbations ... donor: as in `evaluate`.

    Returns:
        One EvalJob per condition.
    """
    names = [CLEAN] + [p for p in dict.fromkeys(perturbations) if p != CLEAN]
    return [EvalJob(config, name, perturb_seed, perturb_rate, test_limit, embed_model, donor or config.target)
            for name in names]


def iter_evaluate(
    config: ExperimentConfig,
    perturbations: Sequence[str] = (CLEAN,),
    *,
    perturb_seed: int = 0,
    perturb_rate: float = 1.0,
    test_limit: int | None = None,
    embed_model: str = "e5-small",
    donor: str | None = None,
    bootstrap: int = 1000,
    batch_size: int = 32,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    loaded: LoadedModel | None = None,
    device: Any = None,
    backend: str = "torch",
    train_seconds: float | None = None,
    skip: Collection[str] = (),
    precision: str = "auto",
) -> Iterator[EvalOutcome]:
    """`evaluate`, one outcome at a time as each condition finishes (so a caller can store it at once).

    The parts every condition shares are built once per process and reused by later calls on the same data:
    the seen corpus, the pair features, the perturbation context (with its word embeddings) and each perturbed
    test set (keyed by seen corpus, test set, donor, embedder, perturbation, seed and rate).

    Args:
        config ... train_seconds: as in `evaluate`.
        skip: ids of jobs not to run (already stored). A skipped perturbed job is not computed; a skipped clean
            job is still scored when another job needs it as the reference of its drop, but not yielded.

    Yields:
        One EvalOutcome per condition not skipped, clean first.
    """
    from xner_core.evaluation.metrics import condition_rows
    from xner_core.inference.predict import predict_tags
    from xner_core.perturb.registry import build_context, get_perturbation, perturb_corpus

    jobs = eval_jobs(config, perturbations, perturb_seed=perturb_seed, perturb_rate=perturb_rate,
                     test_limit=test_limit, embed_model=embed_model, donor=donor)
    names = [j.perturbation for j in jobs]
    for name in names[1:]:
        get_perturbation(name)  # unknown names fail before any work
    skip = frozenset(skip)
    todo = [j for j in jobs if j.id not in skip]
    if not todo:
        return
    lm = loaded or train_model(config, data_dir=data_dir, cache=cache, device=device, precision=precision)
    if train_seconds is None:
        train_seconds = float((lm.manifest.get("timings") or {}).get("train_s") or 0.0)
    test = test_corpus(config, test_limit, data_dir)
    if len(test) == 0:
        raise DataError(f"the {config.target!r} test set is empty; nothing to evaluate")
    seen = seen_corpus(config, data_dir)
    seen_key, test_key = _seen_key(config, data_dir), _test_key(config, test_limit, data_dir)
    feats = _FEATURES.get((seen_key, test_key, config.model),
                          lambda: pair_features(config, seen, test, tokenizer=lm.tokenizer))
    donor_lang = donor or config.target
    needs_donor = any(_needs(n, "donor") for n in names)
    ctx_key = (seen_key, test_key, donor_lang if needs_donor else None, embed_model)
    eval_dtype = "int8" if backend == "onnx-int8" else resolve_precision(precision, device)
    common = {
        "config_hash": config_hash(config), "model": config.model,
        "sources": ",".join(canonical_sources(config) or (config.target,)), "target": config.target,
        "setting": config.setting, "options": canonical_json(config_to_dict(config)["options"]),
        "seed": config.seed, "data_protocol": config.data, "test_split": "test", "test_limit": test_limit,
        "train_seconds": train_seconds, "device": _device_name(lm.model), "versions": _versions(),
        "train_dtype": trained_precision(lm.manifest),
        "eval_dtype": eval_dtype,
    }
    wanted = {j.id for j in todo}
    clean_tags: list[list[str]] | None = None
    for job in jobs:
        name = job.perturbation
        if job.id not in wanted and name != CLEAN:
            continue
        t0 = time.perf_counter()
        report: dict[str, Any] = {}
        if name == CLEAN:
            corpus = test
        else:
            def make_ctx() -> Any:
                donor_c = donor_corpus(donor_lang, data_dir) if needs_donor else None
                return build_context(seen, test, donor=donor_c, embed=_embedder(embed_model, cache),
                                     lang=config.target)

            ctx = _CONTEXTS.get(ctx_key, make_ctx)
            def make_perturbed(name: str = name, ctx: Any = ctx) -> Any:
                return perturb_corpus(name, test, ctx, seed=perturb_seed, rate=perturb_rate)

            result = _PERTURBED.get((ctx_key, name, perturb_seed, float(perturb_rate)), make_perturbed)
            corpus = result.corpus
            report = result.report.as_dict()
        cached = load_predictions(job.id, cache)
        if cached is not None and len(cached) == len(corpus) and all(
                tuple(c["tokens"]) == s.tokens and c.get("dtype") == eval_dtype
                for c, s in zip(cached, corpus)):
            pred = [list(c["pred"]) for c in cached]
        else:
            pred = predict_tags(lm.model, lm.tokenizer, list(corpus), batch_size=batch_size, device=device,
                                backend=backend, precision=precision)
            save_predictions(job.id, corpus.sentences, pred, cache, dtype=eval_dtype)
        gold = corpus.tags
        if name == CLEAN:
            clean_tags = pred
            if job.id not in wanted:
                continue  # only the reference of the perturbed jobs' drops: no CIs, not yielded
        clean_gold, clean_pred = (test.tags, clean_tags) if name != CLEAN else (None, None)
        rows = []
        for numbers in condition_rows(gold, pred, clean_gold, clean_pred, n_resamples=bootstrap, seed=0,
                                      scopes=SCOPES):
            if name == CLEAN:
                numbers = {k: v for k, v in numbers.items() if not k.startswith("drop_")}
            rows.append({**common, "job_id": job.id, "perturbation": name,
                         "perturb_seed": perturb_seed if name != CLEAN else 0,
                         "perturb_rate": perturb_rate if name != CLEAN else 1.0, **numbers,
                         "sentences_changed_frac": _frac(report, "sentences_changed", "sentences"),
                         "tokens_changed_frac": _frac(report, "tokens_changed", "tokens"),
                         "entities_changed_frac": _frac(report, "entities_changed", "entities"),
                         **{k: feats.get(k) for k in _FEATURE_COLUMNS}})
        eval_s = time.perf_counter() - t0
        for row in rows:
            row["eval_seconds"] = eval_s
        yield EvalOutcome(job, tuple(rows), corpus.sentences, tuple(tuple(p) for p in pred), report)


_FEATURE_COLUMNS = (
    "entity_token_overlap", "unique_chunk_overlap", "o_word_overlap", "subword_type_overlap",
    "subword_token_overlap", "uriel_genetic", "uriel_geographic", "uriel_syntactic", "uriel_phonological",
    "uriel_inventory", "uriel_featural", "n_sources", "diversity_genetic", "diversity_syntactic",
)


def _frac(report: Mapping[str, Any], num: str, den: str) -> float | None:
    if not report:
        return 0.0
    d = report.get(den) or 0
    return (report.get(num) or 0) / d if d else 0.0


def cached_configs(cache: str | os.PathLike[str] | None = None) -> list[tuple[ExperimentConfig, dict[str, Any]]]:
    """Valid cached models as (config, entry summary), newest first (for pickers in the CLI and dashboard)."""
    from xner_core.experiments.config import config_from_dict

    out = []
    for entry in model_cache(cache).entries():
        if not entry.valid:
            continue
        try:
            cfg = config_from_dict(entry.config)
        except (ConfigError, KeyError, TypeError):
            continue
        out.append((cfg, {"hash": entry.hash, "size_bytes": entry.size_bytes, "created": entry.created}))
    out.sort(key=lambda item: str(item[1]["created"]), reverse=True)
    return out


def serves(config: ExperimentConfig, model: str, setting: str, source: str, target: str) -> bool:
    """Whether a config's model can act as the `setting` model of the pair source→target.

    A native model must be trained on `target`; a transfer model on `source` alone (its target is not part of
    its identity: the es model serves ca, an and ast). Other settings serve a target they were built for and
    whose sources include `source`.

    Args:
        config: a (cached) model's config.
        model: model name as the user gives it (aliases such as `mbert` match their hub id).
        setting: the wanted setting.
        source: the pair's source language.
        target: the pair's target language.

    Returns:
        True when the model fits.
    """
    from xner_core.models.registry import HUB_MODELS

    if HUB_MODELS.get(config.model, config.model) != HUB_MODELS.get(model, model) or config.setting != setting:
        return False
    if setting == "native":
        return config.target == target
    if setting == "transfer":
        return tuple(config.sources) == (source,)
    return config.target == target and source in config.sources


def find_cached(model: str, setting: str, source: str, target: str, prefer: ExperimentConfig | None = None,
                cache: str | os.PathLike[str] | None = None) -> list[tuple[ExperimentConfig, dict[str, Any]]]:
    """Cached models that can act as the `setting` model of source→target, the preferred one first.

    Args:
        model, setting, source, target: what is wanted (see `serves`).
        prefer: a config to put first when it is cached (e.g. the one the committed results were made with);
            the others follow newest first.
        cache: xner cache root.

    Returns:
        (config, entry summary) pairs as in `cached_configs`.
    """
    found = [(cfg, info) for cfg, info in cached_configs(cache) if serves(cfg, model, setting, source, target)]
    if prefer is not None:
        want = config_hash(prefer)
        found.sort(key=lambda item: item[1]["hash"] != want)  # stable: newest first otherwise
    return found


def lazy_word_embedder(model_name: str, cache: str | os.PathLike[str] | None = None) -> Callable[[Sequence[str]],
                                                                                                   Any]:
    """A word embedder for `model_name` that loads its encoder on the first call (shared per process).

    Args:
        model_name: an encoder name (`e5-small`, `tiny`, a hub id or a local directory).
        cache: xner cache root.

    Returns:
        A callable `words -> (n, dim) array`.
    """
    return _embedder(model_name, cache)
