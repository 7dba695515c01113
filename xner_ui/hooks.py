"""Model hooks of the dashboard: the ONE place pages get model outputs from.

Which model answers for a (model, setting, source, target) choice: a fine-tuned model in the on-disk model cache
(`xner_core.evaluation.modelstore.find_cached`), the one the committed results were made with first (the `paper`
preset's training options), else the newest. A session can pick another cached one (`pick`), train the missing one
(`train`), which the sentence lab offers with a progress bar and a time estimate, or pick an existing NER checkpoint
directory (`add_checkpoint`; remembered for the session, listed beside the cached models): it then predicts as it
is, its own labels mapped onto PER/ORG/LOC (`xner_core.models.checkpoint`, as `xner eval --checkpoint` does). A
pick is a config hash or `CHECKPOINT` + the checkpoint's absolute path (`is_checkpoint`).

Sharing between sessions: a model is loaded once per process (`st.cache_resource`, keyed by its config hash,
never by an object) and used under a lock, one forward pass at a time: torch already spreads one pass over the
CPU's cores, and the lock keeps concurrent sessions from oversubscribing them. A model `train` has just trained
is taken as it is (not read back from disk). Predictions are cached per (model hash, words) with `st.cache_data`,
so ten people looking at the same examples cost one pass.

The word embedder the context perturbations (P2/P3) need is the pretrained encoder `XNER_EMBED_MODEL` names
(default `e5-small`, the encoder the committed results used), whatever model the sidebar shows: the study embeds
words with a pretrained encoder, not with the fine-tuned tagger.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import streamlit as st

from xner_core.corpus.sentences import Sentence
from xner_core.paths import cache_dir

EMBED_ENV = "XNER_EMBED_MODEL"
DEFAULT_EMBED_MODEL = "e5-small"
# The two settings every page compares side by side (the study's native vs transfer; `training.settings.SETTINGS`
# lists every setting a model can be trained in).
COMPARED: tuple[str, ...] = ("native", "transfer")
_PICKS = "_xner_model_picks"  # session state: ModelKey -> chosen config hash (or checkpoint pick)
_CHECKPOINTS = "_xner_checkpoints"  # session state: the checkpoint directories this session added, in order
CHECKPOINT = "checkpoint:"  # prefix of a pick that names an existing checkpoint directory, not a cached model


@dataclass(frozen=True)
class ModelKey:
    """Which model to ask: model name (e.g. "e5-small"), setting ("native" or "transfer"), pair languages."""

    model: str
    setting: str
    source: str
    target: str

    @property
    def label(self) -> str:
        """e.g. "e5-small native (br)" or "e5-small transfer (fr→br)"."""
        where = self.target if self.setting == "native" else f"{self.source}→{self.target}"
        return f"{self.model} {self.setting} ({where})"


# ------------------------------------------------------------------------------------------------- embedder


def embed_model() -> str:
    """The encoder the context perturbations embed words with (`XNER_EMBED_MODEL`, default e5-small)."""
    return os.environ.get(EMBED_ENV, "").strip() or DEFAULT_EMBED_MODEL


@st.cache_resource(show_spinner=False, max_entries=2)
def _embedder(name: str, cache_key: str) -> Callable[[Sequence[str]], Any]:
    from xner_core.evaluation.memo import lazy_word_embedder

    return lazy_word_embedder(name, cache_key)


def embedder_for(name: str) -> Callable[[Sequence[str]], Any]:
    """The shared word embedder of encoder `name` (loads the encoder on the first word it embeds)."""
    return _embedder(name, str(cache_dir()))


# ------------------------------------------------------------------------------------------- cached models


@st.cache_resource(show_spinner=False)
def paper_spec() -> Any:
    """The `paper` preset (a GridSpec): the training and evaluation options of the committed results."""
    from xner_core.experiments.spec import load_spec

    return load_spec("paper")


@st.cache_resource(show_spinner=False)
def _preset_protocols(model: str) -> dict[str, str]:
    """protocol label -> preset name, for the built-in presets that run `model`."""
    from xner_core.analysis.tidy import spec_protocol
    from xner_core.experiments.spec import load_spec, preset_names

    out: dict[str, str] = {}
    for name in preset_names():
        spec = load_spec(name)
        if model in spec.models:
            out.setdefault(spec_protocol(spec, model), name)
    return out


def run_spec(protocol: str | None, model: str) -> Any:
    """The preset (a GridSpec) whose run made the rows of `protocol` for `model` (the sidebar's "Our runs"), so
    that examples are perturbed as that run's evaluation perturbs them; the `paper` preset when no preset matches.
    """
    from xner_core.experiments.spec import load_spec

    name = _preset_protocols(model).get(protocol or "")
    return load_spec(name) if name else paper_spec()


def preferred_config(key: ModelKey, max_train_sentences: int | None = None, spec: Any = None) -> Any:
    """The config the dashboard trains for `key`: a preset's training options and data protocol.

    Args:
        key: the wanted model.
        max_train_sentences: a smaller training cap (quicker demos); None keeps the preset's.
        spec: the preset (`run_spec`); None: the `paper` preset (the quickest to train here).

    Returns:
        An ExperimentConfig (raises ConfigError for an unknown model or language).
    """
    import dataclasses

    from xner_core.runs.config import make_config

    spec = spec if spec is not None else paper_spec()
    options = spec.options
    if max_train_sentences is not None:
        options = dataclasses.replace(options, max_train_sentences=max_train_sentences)
    sources = () if key.setting == "native" else (key.source,)
    return make_config(key.model, key.target, key.setting, sources=sources, seed=spec.seeds[0], data=spec.data,
                       options=options)


def training_config(key: ModelKey, max_train_sentences: int | None = None) -> Any:
    """The config `train` trains for `key`: `preferred_config` without a dev set where one cannot change the model.

    With one epoch and no early stopping, the dev set picks no epoch: it is only scored, for the cache manifest,
    and scoring its 1,000 sentences took about a fifth of the first prediction's time from a fresh cache. The
    trained weights are the same; the config (hash) says `max_dev_sentences = 0`, as the `demo` preset does.

    Args:
        key: the wanted model.
        max_train_sentences: a smaller training cap (None keeps the preset's).

    Returns:
        An ExperimentConfig.
    """
    import dataclasses

    config = preferred_config(key, max_train_sentences)
    options = config.options
    if options.epochs > 1 or options.early_stopping_patience is not None or options.max_dev_sentences == 0:
        return config
    return dataclasses.replace(config, options=dataclasses.replace(options, max_dev_sentences=0))


def _models_stamp() -> tuple[str, int]:
    """(cache root, a number that changes when a model entry is added or removed: entries are renamed into
    `<cache>/models/`, which changes that directory's mtime)."""
    root = cache_dir()
    try:
        return str(root), (root / "models").stat().st_mtime_ns
    except OSError:
        return str(root), -1


@st.cache_data(show_spinner=False, max_entries=64)
def _choices(stamp: tuple[str, int], model: str, setting: str, source: str, target: str) -> list[dict[str, Any]]:
    from xner_core.evaluation.modelstore import find_cached
    from xner_core.runs.config import model_label

    key = ModelKey(model, setting, source, target)
    try:
        prefer = preferred_config(key)
    except Exception:  # noqa: BLE001 - an odd model name: no preference, list what there is
        prefer = None
    out = []
    for cfg, info in find_cached(model, setting, source, target, prefer=prefer, cache=stamp[0]):
        opts = cfg.options
        cap = "all" if opts.max_train_sentences is None else f"{opts.max_train_sentences:,}"
        # what it was trained on (a transfer model's target is not part of what it is: it serves any target)
        label = f"{model_label(cfg)} · {cap} sentences · {opts.epochs} epoch(s)"
        out.append({"hash": info["hash"], "label": label,
                    "created": info["created"], "size_bytes": info["size_bytes"]})
    return out


def cached_choices(key: ModelKey) -> list[dict[str, Any]]:
    """Cached models that can answer for `key`, preferred first: dicts with hash, label, created, size_bytes."""
    return _choices(_models_stamp(), key.model, key.setting, key.source, key.target)


def _picks() -> dict[ModelKey, str]:
    if _PICKS not in st.session_state:
        st.session_state[_PICKS] = {}
    return st.session_state[_PICKS]


def pick(key: ModelKey, config_hash: str | None) -> None:
    """Make this session use the cached model `config_hash` (or a checkpoint pick) for `key`; None or "": no pick
    (the preferred cached model, if any)."""
    if config_hash:
        _picks()[key] = config_hash
    else:
        _picks().pop(key, None)


def picked(key: ModelKey) -> str | None:
    """What this session uses for `key`: its pick (a cached model's hash or a checkpoint pick), else the preferred
    cached model; None when there is neither (a checkpoint is used only where it was picked)."""
    hashes = [c["hash"] for c in cached_choices(key)]
    chosen = _picks().get(key)
    if chosen in hashes or (chosen is not None and chosen in remembered_checkpoints()):
        return chosen
    return hashes[0] if hashes else None


# ------------------------------------------------------------------------------------------ checkpoints


def is_checkpoint(choice: str | None) -> bool:
    """Whether a pick names an existing checkpoint (else it is a cached model's config hash)."""
    return bool(choice) and str(choice).startswith(CHECKPOINT)


def checkpoint_path(choice: str) -> str:
    """The directory of a checkpoint pick."""
    return choice[len(CHECKPOINT):]


def remembered_checkpoints() -> list[str]:
    """The checkpoint picks this session added (`add_checkpoint`), oldest first."""
    if _CHECKPOINTS not in st.session_state:
        st.session_state[_CHECKPOINTS] = []
    return st.session_state[_CHECKPOINTS]


def add_checkpoint(text: str) -> str:
    """Check a local checkpoint directory and remember it for this session.

    Args:
        text: the directory a user typed (`~` and paths relative to the server's directory allowed).

    Returns:
        Its pick (`CHECKPOINT` + the absolute path). ConfigError saying what is wrong otherwise: no such
        directory, no config.json, not a token classifier, labels that do not map onto PER/ORG/LOC, no weights.
    """
    from xner_core.errors import ConfigError
    from xner_core.models.checkpoint import check_checkpoint

    location = check_checkpoint(text)
    if not os.path.isdir(location):  # a hub id: the dashboard loads local directories only
        raise ConfigError(f"no such checkpoint directory: {text.strip()!r}; give a local directory written by "
                          f"save_pretrained (a hub checkpoint can be evaluated with `xner eval --checkpoint ID`)")
    choice = CHECKPOINT + location
    if choice not in remembered_checkpoints():
        remembered_checkpoints().append(choice)
    return choice


def checkpoint_choices() -> list[dict[str, Any]]:
    """The checkpoints this session added, as choices: dicts with hash (the pick), label, path and labels (how its
    labels read as ours, e.g. "BIOES; PERSON→PER, ...; dropped (→ O): MISC")."""
    return [{"hash": c, "label": f"checkpoint · {checkpoint_path(c)}", "path": checkpoint_path(c),
             "labels": _label_summary(checkpoint_path(c), _weights_stamp(checkpoint_path(c)))}
            for c in remembered_checkpoints()]


def model_choices(key: ModelKey) -> list[dict[str, Any]]:
    """Everything that can answer for `key`: its cached models (preferred first), then this session's
    checkpoints."""
    return [*cached_choices(key), *checkpoint_choices()]


def _weights_stamp(path: str) -> str:
    """A cheap identity of a checkpoint's files (names, sizes, mtimes): a checkpoint saved again reloads."""
    try:
        files = sorted(os.scandir(path), key=lambda e: e.name)
        return "|".join(f"{e.name}:{e.stat().st_size}:{e.stat().st_mtime_ns}" for e in files if e.is_file())
    except OSError:
        return ""


@st.cache_data(show_spinner=False, max_entries=32)
def _label_summary(path: str, stamp: str) -> str:
    import json

    from xner_core.errors import XnerError
    from xner_core.models.labels import map_labels

    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            return map_labels(json.load(fh).get("id2label") or {}).describe()
    except (OSError, ValueError, XnerError) as exc:
        return f"unreadable ({exc})"


def cached_config(config_hash: str) -> Any:
    """The ExperimentConfig of the cached model `config_hash` (None when it is no longer cached, or for a checkpoint
    pick: the pages then perturb as for the sidebar model of the same role and data, which a checkpoint of that
    role shares)."""
    for cfg, info in _cached_configs(_models_stamp()):
        if info["hash"] == config_hash:
            return cfg
    return None


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_configs(stamp: tuple[str, int]) -> list[tuple[Any, dict[str, Any]]]:
    from xner_core.evaluation.modelstore import cached_configs

    return cached_configs(stamp[0])


@dataclass
class _Shared:
    """A loaded model shared by every session of the process, used under its lock."""

    model: Any
    tokenizer: Any
    config: Any
    lock: threading.Lock
    labels: tuple[str, ...] | None = None  # a checkpoint's output ids as our IOB2 labels (None: the model's own)


_LOADS: list[tuple[str, str]] = []  # (cache root, config hash), in the order this process loaded them
_LOADS_LOCK = threading.Lock()
# Models `train` has just trained (and cached), until `_loaded` takes them instead of reading them back from disk.
_FRESH: dict[tuple[str, str], Any] = {}  # (cache root, config hash) -> modelstore.LoadedModel
_FRESH_KEEP = 2  # the native and transfer model of one pair; older ones are dropped (`_loaded` then reads them)


def _offer_fresh(cache_key: str, config_hash: str, loaded: Any) -> None:
    """Hand a just-trained model to `_loaded` (the same weights it would read back from the cache)."""
    with _LOADS_LOCK:
        _FRESH.pop((cache_key, config_hash), None)
        _FRESH[(cache_key, config_hash)] = loaded
        while len(_FRESH) > _FRESH_KEEP:
            _FRESH.pop(next(iter(_FRESH)))


def _take_fresh(cache_key: str, config_hash: str) -> Any:
    """The model `train` just trained for (cache, hash), once; None when there is none."""
    with _LOADS_LOCK:
        return _FRESH.pop((cache_key, config_hash), None)


def loaded_models() -> list[str]:
    """Config hashes of the models of the current cache this server process has loaded, one entry per load."""
    root = str(cache_dir())
    with _LOADS_LOCK:
        return [h for r, h in _LOADS if r == root]


@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def _loaded(config_hash: str, cache_key: str) -> _Shared:
    from xner_core.errors import DataError
    from xner_core.evaluation.modelstore import cached_configs, load_model

    for cfg, info in cached_configs(cache_key):
        if info["hash"] == config_hash:
            loaded = _take_fresh(cache_key, config_hash) or load_model(cfg, cache=cache_key)
            with _LOADS_LOCK:
                _LOADS.append((cache_key, config_hash))
            return _Shared(loaded.model, loaded.tokenizer, cfg, threading.Lock())
    raise DataError(f"model {config_hash} is no longer in the cache ({cache_key}); pick another or train it again")


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=4)
def _loaded_checkpoint(path: str, stamp: str) -> _Shared:
    from xner_core.models.checkpoint import load_checkpoint

    model, tokenizer, mapping = load_checkpoint(path)  # its own head and labels, as `xner eval --checkpoint`
    return _Shared(model, tokenizer, None, threading.Lock(), None if mapping.identity else mapping.labels)


def _shared_for(choice: str, cache_key: str) -> _Shared:
    if is_checkpoint(choice):
        path = checkpoint_path(choice)
        return _loaded_checkpoint(path, _weights_stamp(path))
    return _loaded(choice, cache_key)


@st.cache_data(show_spinner=False, max_entries=512)
def _predict(config_hash: str, cache_key: str, words: tuple[tuple[str, ...], ...], stamp: str = ""
             ) -> list[list[str]]:
    from xner_core.inference.predict import predict_tags

    shared = _shared_for(config_hash, cache_key)
    with shared.lock:
        return predict_tags(shared.model, shared.tokenizer, [list(w) for w in words], labels=shared.labels)


def predictions_for(sentences: Sequence[Sentence], key: ModelKey) -> list[list[str]] | None:
    """Word-level IOB2 predictions of the model `key` names, one list per sentence.

    Args:
        sentences: the sentences to tag (original or perturbed; tags are ignored).
        key: the model to use.

    Returns:
        One tag list per sentence, or None when no such model is cached (pages then say how to get one).
    """
    return tag_words([s.tokens for s in sentences], key)


def tag_words(words: Sequence[Sequence[str]], key: ModelKey) -> list[list[str]] | None:
    """`predictions_for` on word lists: one IOB2 tag list per sentence, or None when no such model is cached."""
    config_hash = picked(key)
    if config_hash is None:
        return None
    return tag_with(config_hash, words)


def tag_with(config_hash: str, words: Sequence[Sequence[str]], cache_key: str | None = None) -> list[list[str]]:
    """Word-level IOB2 predictions of the cached model `config_hash` (of the cache `cache_key`, default the
    current one), or of a checkpoint pick, one list per sentence; cached per (model, words)."""
    stamp = _weights_stamp(checkpoint_path(config_hash)) if is_checkpoint(config_hash) else ""
    return _predict(config_hash, cache_key or str(cache_dir()), tuple(tuple(w) for w in words), stamp)


def subword_pieces(words: Sequence[str], key: ModelKey) -> list[list[str]] | None:
    """The model's sub-word pieces of each word (what the tagger sees; the tag is read from the first piece).

    Args:
        words: the words of one sentence.
        key: the model whose tokenizer to use.

    Returns:
        One list of pieces per word (empty for a word the tokenizer drops), or None when no model is cached.
    """
    config_hash = picked(key)
    if config_hash is None or not words:
        return None if config_hash is None else []
    tokenizer = _shared_for(config_hash, str(cache_dir())).tokenizer
    enc = tokenizer([list(words)], is_split_into_words=True, add_special_tokens=False, truncation=False,
                    verbose=False)
    pieces: list[list[str]] = [[] for _ in words]
    tokens = enc.encodings[0].tokens
    for tok, w in zip(tokens, enc.encodings[0].word_ids):
        if w is not None:
            pieces[w].append(tok)
    return pieces


# ------------------------------------------------------------------------------------------------ training


def default_model() -> str:
    """The sidebar's default model: `mbert` (the study's) where the Hugging Face hub is reachable, else
    `e5-small`, which is bundled and works offline (so the sentence lab can predict on a fresh machine)."""
    from xner_core.experiments.plan import hub_online

    return "mbert" if hub_online() else "e5-small"


def missing_training_data(key: ModelKey) -> Any:
    """The local WikiANN training splits `key`'s model needs that are missing (`data.Missing`), else None."""
    from xner_ui.data import missing_splits

    langs = (key.target,) if key.setting == "native" else (key.source,)
    return missing_splits([(lang, "train") for lang in langs])


def hub_unreachable(model: str) -> str | None:
    """Why `model` cannot be trained here (a hub model without network access), else None."""
    from xner_core.experiments.plan import hub_online
    from xner_core.models.registry import HUB_MODELS, resolve_source

    try:
        kind = resolve_source(model).kind
    except Exception as exc:  # noqa: BLE001 - the reason is the message
        return str(exc)
    if (model in HUB_MODELS or kind == "hub") and not hub_online():
        return (f"`{model}` comes from the Hugging Face hub, which this machine cannot reach; pick `e5-small` "
                "(bundled) or `tiny` (a small random model) in the sidebar, or a cached model")
    return None


def estimate_seconds(key: ModelKey, max_train_sentences: int | None = None) -> float:
    """Rough training time of `train(key, max_train_sentences)` on this machine."""
    from xner_core.evaluation.throughput import estimate_train_seconds

    return estimate_train_seconds(training_config(key, max_train_sentences))


def train(key: ModelKey, max_train_sentences: int | None = None,
          progress: Callable[[int, int, dict[str, Any]], None] | None = None,
          status: Callable[[str], None] | None = None) -> str:
    """Train (or reuse) the model for `key` (`training_config`), cache it on disk, make this session use it; return
    its hash. A first e5-small model rebuilds the encoder into the cache first (once), announced through `status`.

    Training runs in the calling script thread; if the user leaves the page, Streamlit stops the script at the
    next progress update and nothing half-trained is ever cached (the model cache writes entries atomically).

    Args:
        key: the wanted model.
        max_train_sentences: training cap (None: the preset's).
        progress: `(step, total, info)` callback.
        status: short status messages.

    Returns:
        The config hash of the cached model.
    """
    from xner_core.evaluation.modelstore import train_model
    from xner_core.runs.config import config_hash

    config = training_config(key, max_train_sentences)
    _prepare_encoder(config.model, status)
    loaded = train_model(config, progress=progress, status=status)
    digest = config_hash(config)
    _offer_fresh(str(cache_dir()), digest, loaded)
    _choices.clear()
    pick(key, digest)
    return digest


def _prepare_encoder(model: str, status: Callable[[str], None] | None) -> None:
    """Rebuild e5-small into the cache first where it is not there yet, saying so: a one-time step that would
    otherwise pass unannounced before training's first progress update."""
    from xner_core.models.registry import resolve_source

    if resolve_source(model).kind != "e5-small":
        return
    from xner_core.models.e5 import ensure_e5_small

    ensure_e5_small(status=status)
