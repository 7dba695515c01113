"""Experiment identity (spans every stage): one frozen config per run and its stable hash.

An `ExperimentConfig` (model, source languages, target, setting, training options, seed, data protocol) is a
run's identity: its `config_hash` is the model-cache key (`modelcache.py`) and the id of its result rows.
The hash is a sha256 over a canonical JSON form, so it is the same on every machine and every Python run
(no `hash()`, no dict order, floats written with `repr`).

The canonical form differs from the config as given in a few deliberate ways, so that configs that train the
same model share one hash:
- hub aliases map to their hub id (`mbert` == `bert-base-multilingual-cased`);
- sources are empty for `native`, sorted for `multi_source`/`distill`/`tapt` (their training code must iterate
  sources in `canonical_sources` order so that the order given cannot change the model);
- `lr=None` becomes the model default (`default_lr`), ints in float fields become floats;
- options that a setting ignores are reset to their defaults (`balanced_sampling` only matters for
  `multi_source`, `distill_*` for `distill`, `tapt_steps` and `distill_unlabeled` (the split of target text the
  masked-LM step reads) for `tapt`, `robust_epsilon`/`robust_rate` only when `robust` is set);
- robust-training names: the descriptive aliases `fgm` and `subtoken-noise` hash as `adversarial` and `smoothing`
  (the same training); options of the later methods (`robust_steps`/`robust_alpha` for `pgd`,
  `robust_neighbours` for `word-smoothing`) are reset for the others, and those methods reset the one of
  `robust_epsilon`/`robust_rate` they do not read;
- the LoRA options (`lora_r`, `lora_alpha`, `lora_dropout`, `lora_targets`) are reset unless `adapter = "lora"`,
  and `lora_targets` is written sorted, without repeats or spaces (`"value, query"` trains what `"query,value"`
  trains);
- options added after the first release (`training.settings.NEW_OPTIONS`: the later distillation and robust options,
  `adapter`, the LoRA options and `max_steps`) are left out while at their default, so a config written before they
  existed keeps its hash; except where their defaults changed what an older config trains (`_RECIPE_CHANGED`): a
  `distill` config always writes the Wu et al. student options (loss, epochs, step floor, frozen layers), so its
  students never share an id with the students trained before them (one epoch of KL over the `extra` split, nothing
  frozen);
- the target is left out for `transfer` and `multi_source` (`TARGET_FREE_SETTINGS`): their training reads only
  source data, so one es transfer model serves ca, an and ast. The config still carries the target (it is the
  language a model is evaluated on), and evaluation ids (`evaluation.jobs.EvalJob.id`) add it back. `native`, `distill`
  and `tapt` read target text, so their target stays in the hash.

Model identity: a hub id or short name is identified by its name. A local model directory is identified by its
absolute, resolved path (`make_config` resolves it), not by its contents: overwriting the weights in that
directory does not change the hash, and the same weights under another path get another hash. The `tiny` and
`e5-small` models are built in code, so they are identified by name; a change to how they are built must bump
`SCHEMA_VERSION`, as must any change to the canonical form.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from xner_core.corpus.languages import get_language
from xner_core.errors import ConfigError, choices_message
from xner_core.training.settings import (
    ADAPTERS,
    DISTILL_LOSSES,
    DISTILL_WEIGHTS,
    LORA_OPTIONS,
    NEW_OPTIONS,
    ROBUST_ALIASES,
    ROBUST_METHODS,
    SETTINGS,
    TrainOptions,
    lora_targets,
)

SCHEMA_VERSION: int = 3  # 3: target dropped from the identity of transfer/multi_source
DATA_PROTOCOLS: tuple[str, ...] = ("wikiann-rahimi", "paper-resplit")
DISTILL_UNLABELED: tuple[str, ...] = ("extra", "train", "train+extra")
# Settings whose training never reads target-language data: the target is not part of their model's identity.
TARGET_FREE_SETTINGS: frozenset[str] = frozenset({"transfer", "multi_source"})

# Models whose default learning rate is higher: small encoders (and the random-init test model) need it.
_HIGH_LR_MODELS: frozenset[str] = frozenset({"e5-small", "tiny"})
_HIGH_LR, _BASE_LR = 2e-4, 5e-5

# Options that only some settings read; for the others they are reset to defaults in the canonical form.
_SETTING_OPTIONS: dict[str, frozenset[str]] = {
    "multi_source": frozenset({"balanced_sampling"}),
    "distill": frozenset({"distill_weights", "distill_unlabeled", "distill_temperature", "distill_loss",
                          "distill_epochs", "distill_min_steps", "distill_freeze"}),
    # tapt's masked-LM text is `evaluation.inputs.unlabeled_target(target, distill_unlabeled, ...)`: it reads the
    # option.
    # Adding it here leaves every other setting's hash unchanged (they still reset it), and a tapt config with
    # the default "extra" keeps its hash (the default was already in its canonical form).
    "tapt": frozenset({"tapt_steps", "distill_unlabeled"}),
}
_SETTING_SPECIFIC: frozenset[str] = frozenset().union(*_SETTING_OPTIONS.values())
# NEW_OPTIONS whose defaults changed what a setting trains: written for that setting even at their defaults.
_RECIPE_CHANGED: dict[str, frozenset[str]] = {
    "distill": frozenset({"distill_loss", "distill_epochs", "distill_min_steps", "distill_freeze"}),
}
_ROBUST_ONLY: frozenset[str] = frozenset({"robust_epsilon", "robust_rate"})
# Options only some robust methods read (the first two methods keep their original canonical form).
_ROBUST_METHOD_ONLY: frozenset[str] = frozenset({"robust_steps", "robust_alpha", "robust_neighbours"})
_ROBUST_READS: dict[str, frozenset[str]] = {
    "adversarial": frozenset({"robust_epsilon", "robust_rate"}),
    "smoothing": frozenset({"robust_epsilon", "robust_rate"}),
    "pgd": frozenset({"robust_epsilon", "robust_steps", "robust_alpha"}),
    "word-smoothing": frozenset({"robust_rate", "robust_neighbours"}),
}


@dataclass(frozen=True)
class ExperimentConfig:
    """One run's identity. Build it with `make_config` (which validates); `config_hash` gives its id.

    `sources` keeps the order given; the hash uses `canonical_sources`.
    """

    model: str
    sources: tuple[str, ...]
    target: str
    setting: str
    options: TrainOptions = field(default_factory=TrainOptions)
    seed: int = 0
    data: str = "wikiann-rahimi"

    @property
    def hash(self) -> str:
        """The config's 16-hex-digit id (see `config_hash`)."""
        return config_hash(self)


def default_lr(model: str) -> float:
    """The learning rate used when `TrainOptions.lr` is None.

    Args:
        model: the model name as in the config.

    Returns:
        2e-4 for `e5-small` and `tiny`, 5e-5 for every other model.
    """
    return _HIGH_LR if model in _HIGH_LR_MODELS else _BASE_LR


def resolved_lr(config: ExperimentConfig) -> float:
    """The learning rate a run trains with: the option, or the model default when it is None.

    Args:
        config: the experiment config.

    Returns:
        The learning rate as a float.
    """
    lr = config.options.lr
    return float(lr) if lr is not None else default_lr(config.model)


def canonical_sources(config: ExperimentConfig) -> tuple[str, ...]:
    """The sources in the order that defines the config's identity (and that training must use).

    Args:
        config: the experiment config.

    Returns:
        () for native; the single source for transfer; sorted sources for multi_source, distill and tapt.
    """
    if config.setting == "native":
        return ()
    if config.setting == "transfer":
        return tuple(config.sources)
    return tuple(sorted(config.sources))


def _canonical_model(model: str) -> str:
    # Imported lazily: models.py pulls nothing heavy at import time, but keep config import-light anyway.
    from xner_core.models.registry import HUB_MODELS

    return HUB_MODELS.get(model, model)


def _canonical_options(config: ExperimentConfig) -> dict[str, Any]:
    defaults = TrainOptions()
    out: dict[str, Any] = {}
    relevant = _SETTING_OPTIONS.get(config.setting, frozenset())
    robust = ROBUST_ALIASES.get(config.options.robust or "", config.options.robust)
    reads = _ROBUST_READS.get(robust or "", frozenset())
    for f in fields(TrainOptions):
        value = getattr(config.options, f.name)
        if f.name in _SETTING_SPECIFIC and f.name not in relevant:
            value = getattr(defaults, f.name)
        if f.name in _ROBUST_ONLY | _ROBUST_METHOD_ONLY and config.options.robust is None:
            value = getattr(defaults, f.name)
        if f.name in _ROBUST_ONLY | _ROBUST_METHOD_ONLY and robust is not None and f.name not in reads:
            value = getattr(defaults, f.name)
        if f.name in LORA_OPTIONS and config.options.adapter != "lora":
            value = getattr(defaults, f.name)
        if f.name == "lora_targets":
            value = ",".join(lora_targets(value))
        if f.name == "robust":
            value = robust
        if f.name == "lr":
            value = resolved_lr(config)
        floaty = isinstance(getattr(defaults, f.name), float) or f.name == "robust_alpha"
        if floaty and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # lr=1 and lr=1.0 are the same run
        if f.name in NEW_OPTIONS and value == getattr(defaults, f.name) \
                and f.name not in _RECIPE_CHANGED.get(config.setting, frozenset()):
            continue  # added later: at its default it leaves every older hash unchanged
        out[f.name] = value
    return out


def canonical_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The dict the hash is computed over (see the module docstring for how it differs from the config).

    Args:
        config: the experiment config.

    Returns:
        A JSON-ready dict including `schema` (SCHEMA_VERSION); without `target` for TARGET_FREE_SETTINGS
        (`config_from_dict` then needs the target added back to rebuild a config).
    """
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "model": _canonical_model(config.model),
        "sources": list(canonical_sources(config)),
        "target": config.target,
        "setting": config.setting,
        "options": _canonical_options(config),
        "seed": int(config.seed),
        "data": config.data,
    }
    if config.setting in TARGET_FREE_SETTINGS:
        del out["target"]  # the model never sees target data: one model serves every target
    return out


def canonical_json(obj: Any) -> str:
    """Serialize to the canonical JSON text: sorted keys, no whitespace, ASCII, floats as `repr` (shortest
    round-trip form, identical on every platform), NaN/inf refused.

    Args:
        obj: a JSON-ready value.

    Returns:
        The JSON text.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_hash(config: ExperimentConfig) -> str:
    """The config's stable id: the first 16 hex digits of sha256(canonical JSON of `canonical_dict`).

    Args:
        config: the experiment config.

    Returns:
        16 lowercase hex characters; the same on any machine, Python run or PYTHONHASHSEED.
    """
    text = canonical_json(canonical_dict(config))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as given (sources in the given order, lr possibly None), JSON-ready, for manifests and rows.

    Args:
        config: the experiment config.

    Returns:
        A dict with `schema`, the config fields and `options` as a dict; `config_from_dict` inverts it.
    """
    return {
        "schema": SCHEMA_VERSION,
        "model": config.model,
        "sources": list(config.sources),
        "target": config.target,
        "setting": config.setting,
        "options": dataclasses.asdict(config.options),
        "seed": config.seed,
        "data": config.data,
    }


def config_from_dict(data: Mapping[str, Any], check: bool = True) -> ExperimentConfig:
    """Rebuild a config from `config_to_dict` output (or `canonical_dict`, same keys).

    Args:
        data: the dict; missing option keys take their defaults, unknown keys are an error.
        check: validate and normalize through `make_config` (the default). False rebuilds the dataclass
            as stored, without looking at the file system or the language table (for re-hashing a stored
            config whose model directory or language may not exist on this machine).

    Returns:
        The ExperimentConfig. Raises ConfigError for an unknown schema version, unknown keys or invalid values.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise ConfigError(f"config schema version {schema!r} is not supported; this xner reads version "
                          f"{SCHEMA_VERSION}")
    allowed = {"schema", "model", "sources", "target", "setting", "options", "seed", "data"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(sorted(allowed))}")
    missing = [k for k in ("model", "target", "setting") if k not in data]
    if missing:
        raise ConfigError(f"config is missing {', '.join(missing)}")
    opts = data.get("options") or {}
    if not isinstance(opts, Mapping):
        raise ConfigError(f"config 'options' must be an object, got {type(opts).__name__}")
    if not check:
        known = {f.name for f in fields(TrainOptions)}
        bad = sorted(set(opts) - known)
        if bad:
            raise ConfigError(f"unknown training option(s) {', '.join(map(repr, bad))}; "
                              f"choose from: {', '.join(sorted(known))}")
        return ExperimentConfig(
            model=data["model"], sources=tuple(data.get("sources") or ()), target=data["target"],
            setting=data["setting"], options=TrainOptions(**dict(opts)), seed=data.get("seed", 0),
            data=data.get("data", "wikiann-rahimi"),
        )
    return make_config(
        model=data["model"], sources=data.get("sources") or (), target=data["target"], setting=data["setting"],
        seed=data.get("seed", 0), data=data.get("data", "wikiann-rahimi"), **dict(opts),
    )


def _check_language(code: str, role: str) -> None:
    if not isinstance(code, str) or code != code.strip().lower() or not code:
        # One spelling per language, or "ES" and "es" would be two identities for one run.
        raise ConfigError(f"{role} language {code!r} must be a lowercase language code like 'es'")
    try:
        get_language(code)  # raises ConfigError naming the known languages
    except ConfigError as exc:
        raise ConfigError(f"{role}: {exc}") from exc



def _check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ConfigError(f"option {name}={value!r} is invalid; allowed: {allowed}")


def _check_float(name: str, value: Any, low: float, high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low)
        if high is not None:
            ok = ok and (value < high if high_open else value <= high)
    if not ok:
        lo = f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f" and {'<' if high_open else '<='} {high}"
        raise ConfigError(f"option {name}={value!r} is invalid; allowed: a number {lo}{hi}")


def _check_choice(name: str, value: Any, allowed: Iterable[str], optional: bool = False) -> None:
    if value is None and optional:
        return
    allowed = tuple(allowed)
    if value not in allowed:
        extra = " or None" if optional else ""
        raise ConfigError(f"option {name}={value!r} is invalid; choose one of: {', '.join(allowed)}{extra}")


def validate_options(options: TrainOptions) -> None:
    """Check every training option's type and range.

    Args:
        options: the options.

    Returns:
        None; raises ConfigError naming the option and what is allowed.
    """
    o = options
    _check_int("epochs", o.epochs, 1)
    if o.lr is not None:
        _check_float("lr", o.lr, 0.0, low_open=True)
    _check_int("batch_size", o.batch_size, 1)
    _check_float("warmup_ratio", o.warmup_ratio, 0.0, 1.0, high_open=True)
    _check_float("weight_decay", o.weight_decay, 0.0)
    _check_int("max_length", o.max_length, 8)
    _check_int("max_train_sentences", o.max_train_sentences, 1, optional=True)
    _check_int("max_dev_sentences", o.max_dev_sentences, 0, optional=True)
    _check_int("early_stopping_patience", o.early_stopping_patience, 1, optional=True)
    if o.early_stopping_patience is not None and o.max_dev_sentences == 0:
        raise ConfigError("early_stopping_patience needs a dev set; set max_dev_sentences > 0 or None")
    for name in ("balanced_sampling", "freeze_embeddings"):
        if not isinstance(getattr(o, name), bool):
            raise ConfigError(f"option {name}={getattr(o, name)!r} is invalid; allowed: true or false")
    _check_choice("distill_weights", o.distill_weights, DISTILL_WEIGHTS)
    _check_choice("distill_unlabeled", o.distill_unlabeled, DISTILL_UNLABELED)
    _check_float("distill_temperature", o.distill_temperature, 0.0, low_open=True)
    _check_int("tapt_steps", o.tapt_steps, 0)
    _check_choice("robust", o.robust, ROBUST_METHODS, optional=True)
    _check_float("robust_epsilon", o.robust_epsilon, 0.0, low_open=True)
    _check_float("robust_rate", o.robust_rate, 0.0, 1.0, low_open=True)
    _check_choice("distill_loss", o.distill_loss, DISTILL_LOSSES)
    _check_int("distill_epochs", o.distill_epochs, 1)
    _check_int("distill_min_steps", o.distill_min_steps, 0)
    _check_int("distill_freeze", o.distill_freeze, 0)
    _check_int("robust_steps", o.robust_steps, 1)
    if o.robust_alpha is not None:
        _check_float("robust_alpha", o.robust_alpha, 0.0, low_open=True)
    _check_int("robust_neighbours", o.robust_neighbours, 1)
    _check_int("max_steps", o.max_steps, 1, optional=True)
    _check_choice("adapter", o.adapter, ADAPTERS)
    _check_int("lora_r", o.lora_r, 1)
    _check_float("lora_alpha", o.lora_alpha, 0.0, low_open=True)
    _check_float("lora_dropout", o.lora_dropout, 0.0, 1.0, high_open=True)
    lora_targets(o.lora_targets)


def validate(config: ExperimentConfig) -> None:
    """Check a config: setting, source/target combination, language codes, data protocol, seed, options.

    Args:
        config: the config (e.g. one built directly rather than through `make_config`).

    Returns:
        None; raises ConfigError saying what was wrong and what is allowed.
    """
    if not isinstance(config.model, str) or not config.model.strip():
        raise ConfigError("empty model name; give a short name (mbert, xlmr, e5-small, tiny), a hub id or a directory")
    if config.setting not in SETTINGS:
        raise ConfigError(f"unknown setting {config.setting!r}; choose one of: {', '.join(SETTINGS)}")
    if config.data not in DATA_PROTOCOLS:
        raise ConfigError(choices_message("data protocol", config.data, DATA_PROTOCOLS))
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed < 2**32:
        raise ConfigError(f"seed {config.seed!r} is invalid; allowed: an integer in [0, 2**32)")
    if not isinstance(config.options, TrainOptions):
        raise ConfigError(f"options must be TrainOptions, got {type(config.options).__name__}")
    _check_language(config.target, "target")
    sources = tuple(config.sources)
    for code in sources:
        _check_language(code, "source")
    dupes = sorted({s for s in sources if sources.count(s) > 1})
    if dupes:
        raise ConfigError(f"source language(s) {', '.join(dupes)} given more than once")
    setting, target = config.setting, config.target
    if setting == "native":
        if sources not in ((), (target,)):
            raise ConfigError(f"native trains on the target only; got sources {list(sources)} for target {target!r} "
                              f"(give no sources, or just {target!r})")
    else:
        if target in sources:
            raise ConfigError(f"{setting} is zero-shot: the target {target!r} cannot also be a source; "
                              f"use setting 'native' to train on the target")
        if setting == "transfer" and len(sources) != 1:
            raise ConfigError(f"transfer needs exactly one source language, got {len(sources)}; "
                              f"use 'multi_source' or 'distill' for several")
        if setting == "multi_source" and len(sources) < 2:
            raise ConfigError(f"{setting} needs at least 2 source languages, got {len(sources)}; "
                              f"use 'transfer' for one")
        if setting == "distill" and not sources:  # one source: Wu et al.'s single-teacher student
            raise ConfigError("distill needs at least one source language (one teacher per source)")
        if setting == "tapt" and not sources:
            raise ConfigError("tapt needs at least one source language")
    validate_options(config.options)
    if setting == "tapt" and config.options.tapt_steps < 1:
        raise ConfigError("tapt needs tapt_steps >= 1 (masked-LM steps on target text); "
                          "use setting 'transfer' for no adaptation")
    if setting == "tapt" and config.options.adapter == "lora":
        raise ConfigError("adapter 'lora' does not combine with setting 'tapt' (its masked-LM stage changes every "
                          "encoder weight); use adapter 'none' with tapt, or lora with native, transfer, "
                          "multi_source or distill")


def _normalize_model(model: str) -> str:
    # A local directory is identified by its absolute resolved path, so "./m" and "/abs/m" are one model.
    if not isinstance(model, str):
        raise ConfigError(f"model must be a string, got {type(model).__name__}")
    path = Path(model).expanduser()
    if model.strip() and path.is_dir():
        from xner_core.models.registry import resolve_source

        return resolve_source(model).location  # checks config.json, returns the resolved path
    return model


def make_config(
    model: str,
    target: str,
    setting: str,
    sources: Iterable[str] | str = (),
    seed: int = 0,
    data: str = "wikiann-rahimi",
    options: TrainOptions | None = None,
    **option_overrides: Any,
) -> ExperimentConfig:
    """Build and validate an experiment config.

    Args:
        model: short name (mbert, xlmr, e5-small, tiny), hub id or local directory (stored resolved).
        target: target language code.
        setting: one of SETTINGS.
        sources: source language codes (a list, or one string with commas: "es,fr"); order is kept.
        seed: training seed, 0 <= seed < 2**32.
        data: data protocol, one of DATA_PROTOCOLS.
        options: base training options (defaults when None).
        **option_overrides: TrainOptions fields to override, e.g. `epochs=3`.

    Returns:
        The validated ExperimentConfig; raises ConfigError otherwise.
    """
    known = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(option_overrides) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(map(repr, unknown))}; "
                          f"choose from: {', '.join(sorted(known))}")
    base = options if options is not None else TrainOptions()
    opts = dataclasses.replace(base, **option_overrides) if option_overrides else base
    if isinstance(sources, str):
        sources = [s for s in sources.split(",")]
    srcs = tuple(str(s).strip().lower() for s in sources if str(s).strip())
    config = ExperimentConfig(
        model=_normalize_model(model), sources=srcs, target=str(target).strip().lower(), setting=setting,
        options=opts, seed=seed, data=data,
    )
    validate(config)
    return config


def config_label(config: ExperimentConfig) -> str:
    """A short human label, e.g. `xlmr es->ca transfer seed 0` (not an id: use `config_hash` for that).

    Args:
        config: the experiment config.

    Returns:
        The label.
    """
    src = "+".join(canonical_sources(config)) or config.target
    return f"{config.model} {src}->{config.target} {config.setting} seed {config.seed}"


def model_label(config: ExperimentConfig) -> str:
    """A short label of the trained model itself, e.g. `e5-small es transfer seed 0`, `e5-small es+fr→an distill
    seed 0`: what it was trained on, with the target only where training reads it (not for
    `TARGET_FREE_SETTINGS`, whose one model serves every target).

    Args:
        config: the experiment config.

    Returns:
        The label.
    """
    trained_on = "+".join(canonical_sources(config)) or config.target
    where = "" if config.setting in TARGET_FREE_SETTINGS or config.setting == "native" else f"→{config.target}"
    return f"{config.model} {trained_on}{where} {config.setting} seed {config.seed}"
