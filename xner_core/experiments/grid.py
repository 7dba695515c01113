"""Experiment grid (drives every stage): spec file -> plan of training and evaluation jobs -> resumable execution.

A *spec* (TOML or YAML; built-in presets in `xner_core/presets/`) names models x pairs (or targets with source
sets) x settings x perturbations x seeds, with training options, data caps and evaluation options. `load_spec`
validates it (unknown keys with their line, unknown models, languages, settings and perturbations, each with
what is allowed). `expand` turns it into a `Plan`:

- training jobs, deduplicated by config hash (transfer and multi_source hashes leave the target out, so the es
  transfer model serves ca, an and ast); distillation teachers (the transfer models of each source) are jobs
  of their own, ordered before their students;
- evaluation jobs, one per (model config, target, perturbation, seed), grouped per model so a model is loaded
  once and, per target, the perturbation context is built once (see `runner.iter_evaluate`);
- units whose data is missing (no local WikiANN files and no hub) are skipped with a message saying so.

`run_plan` executes the missing part of a plan. Resumability rests on three atomic writes: a model cache entry
is moved into place whole (`modelcache`), predictions are written to a temp file and renamed, and each
evaluation job's rows are committed in one DuckDB transaction keyed by (job_id, scope). A run killed at any
moment (SIGKILL included) and started again skips every job whose rows are in the store and redoes the rest:
nothing is duplicated (INSERT OR REPLACE on the key) and nothing is partial (one transaction per job).

"Running" (`plan_status`) means claimed: before a model's jobs start, the process writes one claim file per
job next to the store (`<store>.claims/<job_id>.json` with its pid and host) and removes it once the job's rows
are committed. A claim whose process is gone (same host, pid not alive) counts as missing; a claim from
another host is trusted.

Executors: `local` runs the model groups one after another in this process; `ray` submits one task per
training job (a GPU each when the cluster has GPUs) and one streaming task per model's evaluation batch, which
yields each job's rows as it finishes; the driver alone writes to the store.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, cast

from xner_core.errors import ConfigError, DataError, XnerError
from xner_core.evaluation.runner import CLEAN, EvalJob, eval_jobs, teacher_config
from xner_core.experiments.config import (
    DATA_PROTOCOLS,
    SETTINGS,
    ExperimentConfig,
    TrainOptions,
    canonical_sources,
    config_hash,
    make_config,
    model_label,
    validate_options,
)
from xner_core.numerics import PRECISIONS

log = logging.getLogger(__name__)
PRESET_SUFFIXES: tuple[str, ...] = (".toml", ".yaml", ".yml")
_TOP_KEYS: tuple[str, ...] = ("name", "description", "models", "pairs", "targets", "settings", "perturbations",
                              "seeds", "data", "training", "eval", "precision")
_EVAL_KEYS: tuple[str, ...] = ("test_limit", "embed_model", "donor", "perturb_seed", "perturb_rate", "bootstrap",
                               "batch_size")
_TARGET_KEYS: tuple[str, ...] = ("target", "source_sets")
# Options where "no cap" is None; spec files write "all" (TOML has no null).
_ALL_MEANS_NONE: frozenset[str] = frozenset({"max_train_sentences", "max_dev_sentences", "test_limit"})
_NO_DATA_HINT = "set XNER_DATA_DIR or go online"


# =============================================================================================================
# spec


@dataclass(frozen=True)
class TargetSources:
    """A target language with the source-language sets it is evaluated from (the diversity study)."""

    target: str
    source_sets: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class GridSpec:
    """A validated experiment grid (see the module docstring; `load_spec` builds it from a file or preset)."""

    name: str
    models: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...] = ()  # (source, target)
    targets: tuple[TargetSources, ...] = ()
    settings: tuple[str, ...] = ("native", "transfer")
    perturbations: tuple[str, ...] = (CLEAN,)  # clean first, always included
    seeds: tuple[int, ...] = (0,)
    data: str = "wikiann-rahimi"
    options: TrainOptions = field(default_factory=TrainOptions)
    test_limit: int | None = None
    embed_model: str = "e5-small"
    donor: str | None = None  # None: each target's own names (its `extra` split)
    perturb_seed: int = 0
    perturb_rate: float = 1.0
    bootstrap: int = 1000
    batch_size: int = 32  # inference batch size
    precision: str = "auto"  # training and inference autocast (numerics); not part of any hash or job id
    description: str = ""
    origin: str = ""  # the file or "preset <name>" it came from (for messages)


def preset_names() -> list[str]:
    """The built-in presets (files in `xner_core/presets/`), sorted.

    Returns:
        Names such as ["diversity", "paper", "smoke"].
    """
    root = resources.files(__package__).joinpath("presets")
    return sorted(Path(p.name).stem for p in root.iterdir() if Path(p.name).suffix in PRESET_SUFFIXES)


def _preset_text(name: str) -> tuple[str, str] | None:
    root = resources.files(__package__).joinpath("presets")
    for suffix in PRESET_SUFFIXES:
        res = root.joinpath(name + suffix)
        if res.is_file():
            return res.read_text(encoding="utf-8"), suffix
    return None


def load_spec(path_or_name: str | os.PathLike[str]) -> GridSpec:
    """Read and validate a grid spec from a TOML/YAML file or a built-in preset name.

    Args:
        path_or_name: a file path (`.toml`, `.yaml`, `.yml`) or a preset name (`paper`, `diversity`, `smoke`).

    Returns:
        The GridSpec. Raises ConfigError with the file, line (where it can be found) and key path of anything
        invalid, and what is allowed.
    """
    text_arg = str(path_or_name)
    path = Path(text_arg).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix not in PRESET_SUFFIXES:
            raise ConfigError(f"spec file {text_arg!r} must end in .toml, .yaml or .yml")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read spec file {text_arg!r}: {exc}") from exc
        return parse_spec(text, suffix.lstrip("."), origin=str(path), default_name=path.stem)
    found = _preset_text(text_arg) if re.fullmatch(r"[A-Za-z0-9_-]+", text_arg) else None
    if found is None:
        raise ConfigError(f"unknown preset or spec file {text_arg!r}; presets: {', '.join(preset_names())}, "
                          f"or give the path of a .toml/.yaml spec file")
    text, suffix = found
    return parse_spec(text, suffix.lstrip("."), origin=f"preset {text_arg}", default_name=text_arg)


def parse_spec(text: str, fmt: str = "toml", origin: str = "<spec>", default_name: str = "grid") -> GridSpec:
    """Parse and validate spec text.

    Args:
        text: the file contents.
        fmt: "toml" or "yaml"/"yml".
        origin: where it came from, for messages.
        default_name: the spec's name when it sets none.

    Returns:
        The GridSpec (ConfigError otherwise).
    """
    fmt = fmt.lower()
    if fmt == "toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{origin}: invalid TOML: {exc}") from exc
        locate = _toml_locator(text)
    elif fmt in ("yaml", "yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ConfigError(f"{origin}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
        data = {} if data is None else data
        locate = _yaml_locator(root)
    else:
        raise ConfigError(f"unknown spec format {fmt!r}; choose one of: toml, yaml")
    return spec_from_dict(data, origin=origin, default_name=default_name, locate=locate)


Locator = Callable[[tuple[Any, ...]], "int | None"]


class _Where:
    """Builds error messages that name the file, the line (when found) and the key path."""

    def __init__(self, origin: str, locate: Locator | None) -> None:
        self.origin = origin
        self.locate = locate or (lambda path: None)

    def error(self, path: tuple[Any, ...], message: str) -> ConfigError:
        line = self.locate(path) if path else None
        key = _dotted(path)
        where = self.origin + (f", line {line}" if line else "") + (f" ({key})" if key else "")
        return ConfigError(f"{where}: {message}")


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def spec_from_dict(data: Mapping[str, Any], origin: str = "<spec>", default_name: str = "grid",
                   locate: Locator | None = None) -> GridSpec:
    """Validate a parsed spec mapping (see `presets/*.toml` for the keys) and build the GridSpec.

    Args:
        data: the parsed file.
        origin: where it came from, for messages.
        default_name: the name when the spec sets none.
        locate: maps a key path to its line in the file (None when unknown).

    Returns:
        The GridSpec; raises ConfigError naming the key, its line and what is allowed.
    """
    w = _Where(origin, locate)
    if not isinstance(data, Mapping):
        raise w.error((), f"a spec must be a table/mapping of keys, got {type(data).__name__}")
    _check_keys(w, (), data, _TOP_KEYS, "at the top level")
    name = _str(w, ("name",), data.get("name", default_name))
    description = _str(w, ("description",), data.get("description", ""), allow_empty=True)
    if "models" not in data:
        raise w.error((), "the spec names no models; add e.g. models = [\"e5-small\"]")
    models = tuple(_model(w, path, m) for path, m in _str_list(w, ("models",), data["models"]))
    pairs = _pairs(w, data.get("pairs", ()))
    targets = _targets(w, data.get("targets", ()))
    if not pairs and not targets:
        raise w.error((), "the spec has neither pairs nor targets; add pairs = [\"es-ca\"] (or \"reference\" for "
                          "the study's 13) or [[targets]] with source_sets")
    settings_raw = data.get("settings", ["native", "transfer"])
    settings = tuple(dict.fromkeys(_choice(w, path, s, SETTINGS, "setting")
                                   for path, s in _str_list(w, ("settings",), settings_raw)))
    from xner_core.perturb.registry import perturbation_names

    allowed_perturbations = (CLEAN, *perturbation_names())
    perts = [_choice(w, path, p, allowed_perturbations, "perturbation")
             for path, p in _str_list(w, ("perturbations",), data.get("perturbations", [CLEAN]))]
    perturbations = (CLEAN, *dict.fromkeys(p for p in perts if p != CLEAN))
    seeds_raw = data.get("seeds", [0])
    seeds_list = seeds_raw if isinstance(seeds_raw, list) else [seeds_raw]
    seeds = tuple(dict.fromkeys(_int(w, ("seeds", i), s, 0, 2**32 - 1) for i, s in enumerate(seeds_list)))
    if not seeds:
        raise w.error(("seeds",), "no seeds; give at least one, e.g. seeds = [0]")
    protocol = _choice(w, ("data",), data.get("data", "wikiann-rahimi"), DATA_PROTOCOLS, "data protocol")
    options = _training(w, data.get("training", {}))
    ev = data.get("eval", {})
    if not isinstance(ev, Mapping):
        raise w.error(("eval",), f"must be a table of evaluation options, got {type(ev).__name__}")
    _check_keys(w, ("eval",), ev, _EVAL_KEYS, "in [eval]")
    test_limit = ev.get("test_limit")
    test_limit = None if test_limit in (None, "all") else _int(w, ("eval", "test_limit"), test_limit, 1)
    embed_model = _model(w, ("eval", "embed_model"), ev.get("embed_model", "e5-small"))
    donor = ev.get("donor")
    if donor is not None:
        donor = _language(w, ("eval", "donor"), donor)
    perturb_rate = ev.get("perturb_rate", 1.0)
    if isinstance(perturb_rate, bool) or not isinstance(perturb_rate, (int, float)) or not 0 <= perturb_rate <= 1:
        raise w.error(("eval", "perturb_rate"), f"perturb_rate={perturb_rate!r} is invalid; allowed: a number in "
                                                f"[0, 1] (the fraction of eligible units changed; 1 = all)")
    spec = GridSpec(
        name=name, models=models, pairs=pairs, targets=targets, settings=settings, perturbations=perturbations,
        seeds=seeds, data=protocol, options=options, test_limit=test_limit, embed_model=embed_model, donor=donor,
        perturb_seed=_int(w, ("eval", "perturb_seed"), ev.get("perturb_seed", 0), 0),
        perturb_rate=float(perturb_rate),
        bootstrap=_int(w, ("eval", "bootstrap"), ev.get("bootstrap", 1000), 0),
        batch_size=_int(w, ("eval", "batch_size"), ev.get("batch_size", 32), 1),
        precision=_choice(w, ("precision",), data.get("precision", "auto"), PRECISIONS, "precision"),
        description=description, origin=origin,
    )
    _check_units(w, spec)
    return spec


def _check_keys(w: _Where, path: tuple[Any, ...], data: Mapping[str, Any], allowed: Sequence[str],
                where: str) -> None:
    for key in data:
        if key not in allowed:
            raise w.error((*path, key), f"unknown key {key!r}; allowed {where}: {', '.join(allowed)}")


def _str(w: _Where, path: tuple[Any, ...], value: Any, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise w.error(path, f"must be a {'' if allow_empty else 'non-empty '}string, got {value!r}")
    return value.strip()


def _str_list(w: _Where, path: tuple[Any, ...], value: Any) -> list[tuple[tuple[Any, ...], str]]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise w.error(path, f"must be a non-empty list of strings, got {value!r}")
    out = []
    for i, item in enumerate(items):
        p = path if isinstance(value, str) else (*path, i)
        out.append((p, _str(w, p, item)))
    return out


def _int(w: _Where, path: tuple[Any, ...], value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        hi = f" and <= {maximum}" if maximum is not None else ""
        raise w.error(path, f"{value!r} is invalid; allowed: an integer >= {minimum}{hi}")
    return value


def _choice(w: _Where, path: tuple[Any, ...], value: Any, allowed: Sequence[str], kind: str) -> str:
    if value not in allowed:
        raise w.error(path, f"unknown {kind} {value!r}; choose one of: {', '.join(allowed)}")
    return value


def _model(w: _Where, path: tuple[Any, ...], value: Any) -> str:
    """A model is a short name, a hub id (`org/name`, or one of the aliases' ids) or a directory with config.json."""
    from xner_core.models.registry import HUB_MODELS, MODEL_NAMES

    name = _str(w, path, value)
    if name in MODEL_NAMES or name in HUB_MODELS.values():
        return name
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise w.error(path, f"model directory {name!r} has no config.json; give a directory written by "
                                f"save_pretrained, or one of: {', '.join(MODEL_NAMES)}")
        return str(p.resolve())
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name) and not p.exists():
        return name  # a hub id; whether it exists is only known online
    raise w.error(path, f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}, a hub id like "
                        f"'org/name' ({', '.join(HUB_MODELS.values())} too) or a local model directory")


def _language(w: _Where, path: tuple[Any, ...], value: Any) -> str:
    from xner_core.corpus.languages import get_language

    if not isinstance(value, str):
        raise w.error(path, f"a language code must be a string like 'es', got {value!r}")
    try:
        return get_language(value).code
    except ConfigError as exc:
        raise w.error(path, str(exc)) from None


def _pairs(w: _Where, value: Any) -> tuple[tuple[str, str], ...]:
    from xner_core.corpus.languages import get_language, reference_pairs

    if value in ((), []):
        return ()
    if value == "reference":
        return tuple((p.source, p.target) for p in reference_pairs())
    if not isinstance(value, list):
        raise w.error(("pairs",), f"must be \"reference\" (the study's 13 pairs) or a list like [\"es-ca\", "
                                  f"\"fr-br\"], got {value!r}")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        path = ("pairs", i)
        if isinstance(item, list) and len(item) == 2:
            src, tgt = (_language(w, path, x) for x in item)
        elif isinstance(item, str):
            parts = [p for p in re.split(r"\s*(?:->|→|>|,|-|\s)\s*", item.strip().lower()) if p]
            if len(parts) != 2:
                raise w.error(path, f"cannot read pair {item!r}; write source and target like 'es-ca' or 'es→ca'")
            src, tgt = (_language(w, path, x) for x in parts)
        else:
            raise w.error(path, f"a pair is a string like 'es-ca' or a list [\"es\", \"ca\"], got {item!r}")
        if src == tgt:
            raise w.error(path, f"pair {item!r} has the same source and target; use setting 'native' for that")
        get_language(tgt)
        out.append((src, tgt))
    return tuple(dict.fromkeys(out))


def _targets(w: _Where, value: Any) -> tuple[TargetSources, ...]:
    if value in ((), []):
        return ()
    if not isinstance(value, list):
        raise w.error(("targets",), "must be a list of tables with target and source_sets ([[targets]] in TOML)")
    out = []
    for i, item in enumerate(value):
        path = ("targets", i)
        if not isinstance(item, Mapping):
            raise w.error(path, f"must be a table with target and source_sets, got {item!r}")
        _check_keys(w, path, item, _TARGET_KEYS, "in a [[targets]] entry")
        if "target" not in item or "source_sets" not in item:
            raise w.error(path, "needs both target and source_sets")
        target = _language(w, (*path, "target"), item["target"])
        sets_raw = item["source_sets"]
        if not isinstance(sets_raw, list) or not sets_raw:
            raise w.error((*path, "source_sets"), "must be a non-empty list like [\"es\", \"es+fr\", [\"es\", \"fr\", "
                                                  "\"it\"]]")
        sets: list[tuple[str, ...]] = []
        for j, raw in enumerate(sets_raw):
            spath = (*path, "source_sets", j)
            codes = re.split(r"\s*[+,]\s*", raw.strip()) if isinstance(raw, str) else raw
            if not isinstance(codes, list) or not codes or not all(isinstance(c, str) and c for c in codes):
                raise w.error(spath, f"a source set is \"es+fr\" or [\"es\", \"fr\"], got {raw!r}")
            langs = tuple(_language(w, spath, c) for c in codes)
            if len(set(langs)) != len(langs):
                raise w.error(spath, f"source set {raw!r} names a language twice")
            if target in langs:
                raise w.error(spath, f"source set {raw!r} contains the target {target!r}; zero-shot settings "
                                     f"cannot train on the target")
            sets.append(langs)
        out.append(TargetSources(target, tuple(dict.fromkeys(sets))))
    return tuple(out)


def _training(w: _Where, value: Any) -> TrainOptions:
    if not isinstance(value, Mapping):
        raise w.error(("training",), f"must be a table of training options, got {type(value).__name__}")
    known = [f.name for f in dataclasses.fields(TrainOptions)]
    _check_keys(w, ("training",), value, known, "in [training]")
    kwargs: dict[str, Any] = {k: (None if (k in _ALL_MEANS_NONE and v == "all") else v) for k, v in value.items()}
    options = TrainOptions(**kwargs)
    try:
        validate_options(options)
    except ConfigError as exc:
        bad = next((k for k in kwargs if f"{k}=" in str(exc)), None)
        raise w.error(("training", bad) if bad else ("training",), str(exc)) from None
    return options


# =============================================================================================================
# units: (target, setting, sources) combinations of a spec


@dataclass(frozen=True)
class _Unit:
    target: str
    setting: str
    sources: tuple[str, ...]

    @property
    def label(self) -> str:
        if self.setting == "native":
            return f"{self.target} native"
        arrow = f"{'+'.join(self.sources)}→{self.target}"
        return arrow if self.setting == "transfer" else f"{arrow} {self.setting}"


def _units(spec: GridSpec) -> list[_Unit]:
    """Every (target, setting, sources) the spec asks for, in spec order, without duplicates."""
    out: list[_Unit] = []
    for src, tgt in spec.pairs:
        for setting in spec.settings:
            if setting == "native":
                out.append(_Unit(tgt, "native", ()))
            elif setting in ("transfer", "tapt"):
                out.append(_Unit(tgt, setting, (src,)))
    for ts in spec.targets:
        for setting in spec.settings:
            if setting == "native":
                out.append(_Unit(ts.target, "native", ()))
                continue
            for sources in ts.source_sets:
                n = len(sources)
                if (setting == "transfer" and n == 1) or (setting in ("multi_source", "distill") and n >= 2) \
                        or setting == "tapt":
                    out.append(_Unit(ts.target, setting, sources))
    return list(dict.fromkeys(out))


def _check_units(w: _Where, spec: GridSpec) -> None:
    units = _units(spec)
    for setting in spec.settings:
        if not any(u.setting == setting for u in units):
            need = ("a [[targets]] entry with a source set of 2+ languages"
                    if setting in ("multi_source", "distill") else "a pair or a single-language source set")
            raise w.error(("settings",), f"setting {setting!r} applies to nothing in this spec; it needs {need}")
    for model in spec.models:  # build every config once: option/setting combinations fail here, not mid-run
        for u in units:
            try:
                make_config(model, u.target, u.setting, sources=u.sources, seed=spec.seeds[0], data=spec.data,
                            options=spec.options)
            except ConfigError as exc:
                raise w.error((), f"{model} {u.label}: {exc}") from None


# =============================================================================================================
# plan


@dataclass(frozen=True)
class TrainJob:
    """One model to train (or find in the cache); `config` carries the first target it is evaluated on."""

    config: ExperimentConfig
    needs: tuple[str, ...] = ()  # hashes of the models this one trains from (distillation teachers)
    teacher: bool = False  # a distillation teacher of another job

    @property
    def hash(self) -> str:
        """The model cache key."""
        return config_hash(self.config)

    @property
    def label(self) -> str:
        """A short human label without the target for target-free models (`config.model_label`)."""
        return model_label(self.config)


@dataclass(frozen=True)
class EvalBatch:
    """The evaluation jobs of one model on one target (config = the model's config with that target)."""

    config: ExperimentConfig
    jobs: tuple[EvalJob, ...]


@dataclass(frozen=True)
class ModelGroup:
    """A training job and every evaluation that uses its model."""

    train: TrainJob
    batches: tuple[EvalBatch, ...]

    @property
    def jobs(self) -> tuple[EvalJob, ...]:
        return tuple(j for b in self.batches for j in b.jobs)


@dataclass(frozen=True)
class Plan:
    """A spec expanded into jobs, in execution order (teachers before their students)."""

    spec: GridSpec
    groups: tuple[ModelGroup, ...]
    skipped: tuple[str, ...] = ()
    data_dir: str | None = None

    @property
    def train_jobs(self) -> tuple[TrainJob, ...]:
        return tuple(g.train for g in self.groups)

    @property
    def eval_jobs(self) -> tuple[EvalJob, ...]:
        return tuple(j for g in self.groups for j in g.jobs)


def _needed_splits(unit: _Unit, spec: GridSpec) -> list[tuple[str, tuple[str, ...]]]:
    """(language, acceptable local splits) pairs a unit reads (any one split of the tuple is enough)."""
    need: list[tuple[str, tuple[str, ...]]] = []
    train_langs = unit.sources if unit.setting != "native" else (unit.target,)
    resplit = spec.data == "paper-resplit"
    need += [(lang, ("train", "test") if resplit else ("train",)) for lang in train_langs]
    need.append((unit.target, ("test", "train") if resplit else ("test",)))
    if unit.setting in ("distill", "tapt"):
        need.append((unit.target, ("extra", "train")))
    from xner_core.perturb.registry import get_perturbation

    if any("donor" in get_perturbation(p).needs for p in spec.perturbations if p != CLEAN):
        need.append((spec.donor or unit.target, ("extra", "dev")))
    return need


_ONLINE: dict[str, bool] = {}


def hub_online() -> bool:
    """Whether WikiANN splits missing locally could come from the Hugging Face hub (probed once per process)."""
    if "hub" not in _ONLINE:
        from xner_core.corpus import wikiann as corpus

        offline = getattr(corpus, "_hub_offline", lambda: False)()
        reachable = getattr(corpus, "_hub_reachable", lambda: False)
        _ONLINE["hub"] = (not offline) and bool(reachable())
    return _ONLINE["hub"]


def expand(spec: GridSpec, data_dir: str | os.PathLike[str] | None = None, online: bool | None = None) -> Plan:
    """Expand a spec into deduplicated training jobs and per-model evaluation batches.

    Args:
        spec: the grid spec.
        data_dir: WikiANN directory (default XNER_DATA_DIR).
        online: whether languages missing locally can be loaded from the hub; None probes once, only when a
            language is missing.

    Returns:
        The Plan; units whose data is missing are left out and named in `plan.skipped`, e.g.
        "cs→sk skipped: no local data for cs (set XNER_DATA_DIR or go online)".
    """
    from xner_core.corpus.wikiann import wikiann_file

    units = _units(spec)
    local: dict[tuple[str, tuple[str, ...]], bool] = {}

    def missing_langs(unit: _Unit) -> list[str]:
        out = []
        for lang, splits in _needed_splits(unit, spec):
            key = (lang, splits)
            if key not in local:
                local[key] = any(wikiann_file(lang, s, data_dir) is not None for s in splits)
            if not local[key] and lang not in out:
                out.append(lang)
        if out and (online if online is not None else hub_online()):
            return []
        return out

    skipped: list[str] = []
    kept: list[_Unit] = []
    for u in units:
        miss = missing_langs(u)
        if miss:
            skipped.append(f"{u.label} skipped: no local data for {', '.join(miss)} ({_NO_DATA_HINT})")
        else:
            kept.append(u)

    train: dict[str, TrainJob] = {}
    batches: dict[str, dict[str, EvalBatch]] = {}
    order: list[str] = []
    for model in spec.models:
        for seed in spec.seeds:
            for u in kept:
                cfg = make_config(model, u.target, u.setting, sources=u.sources, seed=seed, data=spec.data,
                                  options=spec.options)
                h = config_hash(cfg)
                if cfg.setting == "distill":
                    needs = []
                    for src in canonical_sources(cfg):
                        tc = teacher_config(cfg, src)
                        th = config_hash(tc)
                        needs.append(th)
                        if th not in train:
                            train[th] = TrainJob(tc, teacher=True)
                            order.append(th)
                        elif not train[th].teacher:
                            train[th] = dataclasses.replace(train[th], teacher=True)
                    if h not in train:
                        train[h] = TrainJob(cfg, needs=tuple(needs))
                        order.append(h)
                elif h not in train:
                    train[h] = TrainJob(cfg)
                    order.append(h)
                jobs = eval_jobs(cfg, spec.perturbations, perturb_seed=spec.perturb_seed,
                                 perturb_rate=spec.perturb_rate, test_limit=spec.test_limit,
                                 embed_model=spec.embed_model, donor=spec.donor)
                batches.setdefault(h, {}).setdefault(cfg.target, EvalBatch(cfg, tuple(jobs)))
    # Teachers (and every other non-distill model) first: a distill job then finds its teachers cached.
    ordered = [h for h in order if train[h].config.setting != "distill"] + \
              [h for h in order if train[h].config.setting == "distill"]
    groups = tuple(ModelGroup(train[h], tuple(batches.get(h, {}).values())) for h in ordered)
    return Plan(spec, groups, tuple(skipped), None if data_dir is None else str(data_dir))


def plan_summary(plan: Plan) -> dict[str, Any]:
    """Counts and per-model rows of a plan (for `--dry-run` and status output).

    Args:
        plan: the plan.

    Returns:
        A JSON-ready dict: name, train_jobs, eval_jobs, skipped, models (hash, label, targets, jobs).
    """
    return {
        "name": plan.spec.name, "origin": plan.spec.origin, "train_jobs": len(plan.groups),
        "eval_jobs": len(plan.eval_jobs), "skipped": list(plan.skipped),
        "models": [{"hash": g.train.hash, "label": g.train.label, "teacher": g.train.teacher,
                    "targets": [b.config.target for b in g.batches], "jobs": len(g.jobs)} for g in plan.groups],
    }


# =============================================================================================================
# status: done / running / missing


def claims_dir(store_path: str | os.PathLike[str]) -> Path:
    """Where a run keeps its claim files: `<store>.claims/` next to the store file."""
    p = Path(store_path)
    return p.with_name(p.name + ".claims")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def live_claims(store_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Claims of jobs being worked on by a live process (stale claims of dead processes are ignored).

    Args:
        store_path: the results store file.

    Returns:
        job_id -> claim (pid, host, started).
    """
    d = claims_dir(store_path)
    out: dict[str, dict[str, Any]] = {}
    if not d.is_dir():
        return out
    host = socket.gethostname()
    for f in d.glob("*.json"):
        try:
            claim = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being written or removed right now
        if claim.get("host") != host or _pid_alive(int(claim.get("pid", -1))):
            out[f.stem] = claim
    return out


@dataclass(frozen=True)
class PlanStatus:
    """Which evaluation jobs of a plan are done (rows stored), running (claimed by a live run) or missing."""

    done: tuple[str, ...]
    running: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def total(self) -> int:
        return len(self.done) + len(self.running) + len(self.missing)


def read_done(store: Any, attempts: int = 50, delay: float = 0.1) -> set[str]:
    """`store.job_ids()`, retried while another process holds the DuckDB file for a write.

    Args:
        store: a ResultsStore.
        attempts: tries before giving up.
        delay: seconds between tries.

    Returns:
        The ids of stored jobs.
    """
    for i in range(attempts):
        try:
            return store.job_ids()
        except DataError:
            if i == attempts - 1:
                raise
            time.sleep(delay)
    return set()


def plan_status(plan: Plan, store: Any) -> PlanStatus:
    """Classify every evaluation job of a plan.

    Args:
        plan: the plan.
        store: the ResultsStore.

    Returns:
        A PlanStatus; "running" = a live process has claimed the job (see the module docstring).
    """
    done_ids = read_done(store)
    claimed = live_claims(store.path)
    done: list[str] = []
    running: list[str] = []
    missing: list[str] = []
    for j in plan.eval_jobs:
        (done if j.id in done_ids else running if j.id in claimed else missing).append(j.id)
    return PlanStatus(tuple(done), tuple(running), tuple(missing))


def status_rows(plan: Plan, status: PlanStatus) -> list[dict[str, Any]]:
    """One row per model of a plan: its label, hash, targets and how many of its jobs are done/running/missing.

    Args:
        plan: the plan.
        status: its `plan_status`.

    Returns:
        Rows {model, hash, targets, done, running, missing} (for `xner grid status` and the dashboard).
    """
    done, running = set(status.done), set(status.running)
    rows = []
    for g in plan.groups:
        ids = [j.id for j in g.jobs]
        rows.append({"model": g.train.label, "hash": g.train.hash,
                     "targets": ",".join(b.config.target for b in g.batches) or "(teacher)",
                     "done": sum(i in done for i in ids), "running": sum(i in running for i in ids),
                     "missing": sum(i not in done and i not in running for i in ids)})
    return rows


# =============================================================================================================
# execution


@dataclass(frozen=True)
class GridEvent:
    """A progress event of `run_plan`.

    kind: "start", "train_start", "train_done", "job_done", "failed" or "finish"; counts are after the event.
    """

    kind: str
    label: str = ""
    models_total: int = 0
    models_done: int = 0
    jobs_total: int = 0
    jobs_done: int = 0
    seconds: float = 0.0
    message: str = ""


ProgressFn = Callable[[GridEvent], None]


@dataclass(frozen=True)
class RunSummary:
    """What a `run_plan` call did.

    Attributes:
        jobs_total: evaluation jobs in the plan.
        jobs_done_before: already stored when the run started.
        jobs_run: jobs computed and stored by this run.
        rows_written: result rows committed.
        models_used: model groups this run needed (trained or loaded).
        models_trained: of those, trained now (not in the cache before).
        failures: one message per failed model group or job.
        skipped: the plan's skipped units.
        wall_seconds: wall time of the run.
        compute_seconds: time inside runner calls (train_model, iter_evaluate) on the driver; for ray, the
            tasks' own compute time.
        write_seconds: time spent committing rows (on the writer thread, overlapping compute).
    """

    jobs_total: int
    jobs_done_before: int
    jobs_run: int
    rows_written: int
    models_used: int
    models_trained: int
    failures: tuple[str, ...]
    skipped: tuple[str, ...]
    wall_seconds: float
    compute_seconds: float
    write_seconds: float

    @property
    def overhead_seconds(self) -> float:
        """Wall time not spent in runner compute (planning, store reads, claims, writes not overlapped)."""
        return max(0.0, self.wall_seconds - self.compute_seconds)


class _Writer:
    """Commits finished jobs' rows on a background thread, so the next job computes while the last one is
    written; then removes the jobs' claims. Errors surface on the next call.

    Group commit: a job is committed in the first transaction after it finishes; jobs that finish while a
    commit is in progress go together into the next one (one DuckDB commit costs ~0.1-0.3 s, more than a tiny
    model's job). Each job's rows are always inside exactly one transaction: never partial, never duplicated.
    """

    def __init__(self, store: Any, claims: "_Claims", on_written: Callable[[str, int], None],
                 lock_wait_s: float = 120.0) -> None:
        self.store = store
        self.claims = claims
        self.on_written = on_written
        self.lock_wait_s = lock_wait_s
        self.q: queue.Queue[tuple[str, Sequence[Mapping[str, Any]]] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.rows = 0
        self.commits = 0
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._loop, name="xner-grid-writer", daemon=True)
        self.thread.start()

    def _write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                return self.store.write(rows)
            except DataError as exc:  # the file is open in another process (a reader); wait for it
                if "cannot open" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _loop(self) -> None:
        stop = False
        while not stop:
            item = self.q.get()
            if item is None:
                return
            batch = [item]
            while True:  # everything that finished meanwhile joins this commit
                try:
                    more = self.q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            if self.error is not None:
                continue
            try:
                t0 = time.perf_counter()
                self.rows += self._write([r for _, rows in batch for r in rows])
                self.seconds += time.perf_counter() - t0
                self.commits += 1
                for job_id, rows in batch:
                    self.claims.release(job_id)
                    self.on_written(job_id, len(rows))
            except BaseException as exc:  # noqa: BLE001 (re-raised on the caller's thread)
                self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, job_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.check()
        self.q.put((job_id, rows))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        self.check()


class _Claims:
    """Claim files of the jobs this process works on (see the module docstring)."""

    def __init__(self, store_path: Path) -> None:
        self.dir = claims_dir(store_path)
        self.payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        self.held: set[str] = set()
        self.lock = threading.Lock()

    def claim(self, job_ids: Iterable[str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for jid in job_ids:
            path = self.dir / f"{jid}.json"
            tmp = self.dir / f".{jid}.{os.getpid()}.tmp"
            tmp.write_text(self.payload, encoding="utf-8")
            os.replace(tmp, path)
            with self.lock:
                self.held.add(jid)

    def release(self, job_id: str) -> None:
        with self.lock:
            self.held.discard(job_id)
        try:
            (self.dir / f"{job_id}.json").unlink()
        except FileNotFoundError:
            pass

    def release_all(self) -> None:
        with self.lock:
            held = list(self.held)
        for jid in held:
            self.release(jid)


@dataclass
class _Tally:
    jobs_done: int = 0
    models_done: int = 0
    models_trained: int = 0
    compute: float = 0.0
    failures: list[str] = field(default_factory=list)


def _needed_groups(plan: Plan, done: set[str]) -> list[tuple[ModelGroup, list[EvalBatch]]]:
    """Model groups with work left, with their batches that have missing jobs; teachers are kept when a student
    that needs them has work left."""
    todo: dict[str, list[EvalBatch]] = {}
    for g in plan.groups:
        todo[g.train.hash] = [b for b in g.batches if any(j.id not in done for j in b.jobs)]
    needed: set[str] = {h for h, bs in todo.items() if bs}
    for g in plan.groups:
        if g.train.hash in needed:
            needed.update(g.train.needs)
    return [(g, todo[g.train.hash]) for g in plan.groups if g.train.hash in needed]


def run_plan(
    plan: Plan,
    store: Any,
    executor: str = "local",
    address: str | None = None,
    progress: ProgressFn | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    device: Any = None,
) -> RunSummary:
    """Run the missing part of a plan and store each evaluation job's rows as soon as it finishes.

    Args:
        plan: from `expand`.
        store: a `results.ResultsStore`.
        executor: "local" (this process) or "ray".
        address: Ray address ("auto", "HOST:PORT"); None starts a local Ray instance unless one is initialized.
        progress: called with a GridEvent at each step (start, model trained, job stored, failure, finish).
        data_dir: WikiANN directory (default: the plan's, then XNER_DATA_DIR).
        cache: xner cache root (models, predictions, embeddings).
        device: torch device for the local executor.

    Returns:
        A RunSummary. A failing model group is reported in `failures` and the run goes on with the others.
    """
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; choose one of: local, ray")
    t_start = time.perf_counter()
    data_dir = data_dir if data_dir is not None else plan.data_dir
    emit = progress or (lambda event: None)
    done = read_done(store)
    all_jobs = plan.eval_jobs
    done_before = sum(1 for j in all_jobs if j.id in done)
    needed = _needed_groups(plan, done)
    jobs_total = len(all_jobs)
    tally = _Tally(jobs_done=done_before)
    models_total = len(needed)
    lock = threading.Lock()

    def event(kind: str, label: str = "", seconds: float = 0.0, message: str = "") -> None:
        log.log(logging.WARNING if kind == "failed" else logging.INFO, "grid %s: %s %s%s", plan.spec.name, kind,
                label, f" ({message})" if message else (f" {seconds:.1f}s" if seconds else ""))
        emit(GridEvent(kind, label, models_total, tally.models_done, jobs_total, tally.jobs_done, seconds, message))

    def on_written(job_id: str, n: int) -> None:
        with lock:
            tally.jobs_done += 1
        event("job_done", job_id)

    claims = _Claims(Path(store.path))
    writer = _Writer(store, claims, on_written)
    event("start")
    try:
        if executor == "local":
            _run_local(needed, done, plan, writer, claims, tally, event, data_dir, cache, device)
        else:
            _run_ray(needed, done, plan, writer, claims, tally, event, address, data_dir, cache)
    finally:
        try:
            writer.close()
        finally:
            claims.release_all()
    event("finish", seconds=time.perf_counter() - t_start)
    return RunSummary(
        jobs_total=jobs_total, jobs_done_before=done_before, jobs_run=tally.jobs_done - done_before,
        rows_written=writer.rows, models_used=models_total, models_trained=tally.models_trained,
        failures=tuple(tally.failures), skipped=plan.skipped, wall_seconds=time.perf_counter() - t_start,
        compute_seconds=tally.compute, write_seconds=writer.seconds,
    )


def _eval_kwargs(spec: GridSpec) -> dict[str, Any]:
    return dict(perturb_seed=spec.perturb_seed, perturb_rate=spec.perturb_rate, test_limit=spec.test_limit,
                embed_model=spec.embed_model, donor=spec.donor, bootstrap=spec.bootstrap, batch_size=spec.batch_size,
                precision=spec.precision)


def _run_local(needed: list[tuple[ModelGroup, list[EvalBatch]]], done: set[str], plan: Plan, writer: _Writer,
               claims: _Claims, tally: _Tally, event: Callable[..., None], data_dir: Any, cache: Any,
               device: Any) -> None:
    from xner_core.evaluation.runner import iter_evaluate, model_cache, train_model

    mc = model_cache(cache)
    kwargs = _eval_kwargs(plan.spec)
    for group, batches in needed:
        tj = group.train
        todo_ids = [j.id for b in batches for j in b.jobs if j.id not in done]
        claims.claim(todo_ids)
        try:
            cached = mc.has(tj.config)
            if not batches and cached:
                tally.models_done += 1
                event("train_done", tj.label, 0.0, "cached")
                continue  # a teacher already in the cache: nothing to load
            event("train_start", tj.label)
            t0 = time.perf_counter()
            lm = train_model(tj.config, data_dir=data_dir, cache=cache, device=device, precision=plan.spec.precision)
            dt = time.perf_counter() - t0
            tally.compute += dt
            tally.models_trained += 0 if cached else 1
            tally.models_done += 1
            event("train_done", tj.label, dt, "cached" if cached else "trained")
            for batch in batches:
                it = iter_evaluate(batch.config, plan.spec.perturbations, data_dir=data_dir, cache=cache, loaded=lm,
                                   device=device, skip=done, **kwargs)
                while True:
                    t0 = time.perf_counter()
                    try:
                        outcome = next(it)
                    except StopIteration:
                        tally.compute += time.perf_counter() - t0
                        break
                    tally.compute += time.perf_counter() - t0
                    writer.put(outcome.job.id, outcome.rows)
        except Exception as exc:  # one failing model (bad data, a bug, out of memory) must not stop the others
            writer.check()  # a store failure is fatal: re-raise it rather than report it as this model's
            message = str(exc) if isinstance(exc, XnerError) else f"{type(exc).__name__}: {exc}"
            tally.failures.append(f"{tj.label}: {message}")
            event("failed", tj.label, message=message)
            for jid in todo_ids:
                if jid in claims.held:
                    claims.release(jid)


# ---------------------------------------------------------------------------------------------------------------
# ray


def _ray_train(config: ExperimentConfig, data_dir: str | None, cache: str | None, precision: str,
               *teachers: Any) -> dict[str, Any]:
    """Ray task: train (or find) one model; `teachers` are the refs of the jobs it needs (ordering only)."""
    from xner_core.evaluation.runner import model_cache, train_model

    _quiet()
    cached = model_cache(cache).has(config)
    t0 = time.perf_counter()
    if not cached:
        train_model(config, data_dir=data_dir, cache=cache, precision=precision)
    return {"hash": config_hash(config), "cached": cached, "seconds": time.perf_counter() - t0}


def _ray_eval(batches: list[tuple[ExperimentConfig, tuple[str, ...]]], kwargs: dict[str, Any], skip: frozenset[str],
              data_dir: str | None, cache: str | None, trained: Any) -> Any:
    """Ray streaming task: evaluate one model on each of its targets, yielding (job_id, rows, seconds) per job."""
    from xner_core.evaluation.runner import iter_evaluate, train_model

    _quiet()
    lm = None
    for config, perturbations in batches:
        t0 = time.perf_counter()
        if lm is None:
            lm = train_model(config, data_dir=data_dir, cache=cache, precision=kwargs.get("precision", "auto"))
        it = iter_evaluate(config, perturbations, data_dir=data_dir, cache=cache, loaded=lm, skip=skip, **kwargs)
        for outcome in it:
            yield outcome.job.id, outcome.rows, time.perf_counter() - t0
            t0 = time.perf_counter()


def _quiet() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def gpu_request(cluster_resources: Mapping[str, float]) -> int:
    """GPUs each task asks for: 1 when the Ray cluster has GPUs (so tasks spread one per GPU), else 0.

    Args:
        cluster_resources: `ray.cluster_resources()`.

    Returns:
        0 or 1.
    """
    return 1 if float(cluster_resources.get("GPU", 0) or 0) > 0 else 0


def _run_ray(needed: list[tuple[ModelGroup, list[EvalBatch]]], done: set[str], plan: Plan, writer: _Writer,
             claims: _Claims, tally: _Tally, event: Callable[..., None], address: str | None, data_dir: Any,
             cache: Any) -> None:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover
        raise ConfigError("the ray executor needs the `ray` package; pip install 'ray[default]'") from exc
    from xner_core.paths import cache_dir as resolve_cache
    from xner_core.paths import data_dir as resolve_data

    # Workers may run elsewhere: pass absolute paths (a cluster needs them on a shared file system).
    data_s = str(resolve_data(data_dir).expanduser().absolute())
    cache_s = str(resolve_cache(cache).expanduser().absolute())
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
            raise ConfigError(f"could not connect to {where} ({_ray_message(exc)}); give --address auto (a "
                              "cluster started with `ray start --head`), HOST:PORT of its head node, or leave "
                              "--address out to start a local instance") from exc
        started = True
    try:
        gpus = gpu_request(ray.cluster_resources())
        train_remote = ray.remote(_ray_train).options(num_gpus=gpus, num_cpus=1)
        eval_remote = ray.remote(_ray_eval).options(num_gpus=gpus, num_cpus=1)
        kwargs = _eval_kwargs(plan.spec)
        skip = frozenset(done)
        train_refs: dict[str, Any] = {}
        failed_train: set[str] = set()
        pending: dict[Any, tuple[str, ModelGroup]] = {}
        for group, batches in needed:
            deps = [train_refs[h] for h in group.train.needs if h in train_refs]
            ref = train_remote.remote(group.train.config, data_s, cache_s, plan.spec.precision, *deps)
            train_refs[group.train.hash] = ref
            pending[ref] = ("train", group)
            claims.claim(j.id for b in batches for j in b.jobs if j.id not in done)
            event("train_start", group.train.label)
        for group, batches in needed:
            if not batches:
                continue
            payload = [(b.config, plan.spec.perturbations) for b in batches]
            gen = eval_remote.remote(payload, kwargs, skip, data_s, cache_s, train_refs[group.train.hash])
            pending[gen] = ("eval", group)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            kind, group = pending[ref]
            label = group.train.label
            if kind == "train":
                del pending[ref]
                try:
                    info = ray.get(ref)
                except Exception as exc:  # RayTaskError wraps the worker's exception
                    failed_train.add(group.train.hash)
                    tally.failures.append(f"{label}: training failed: {_ray_message(exc)}")
                    event("failed", label, message=_ray_message(exc))
                    continue
                tally.models_done += 1
                tally.models_trained += 0 if info["cached"] else 1
                tally.compute += info["seconds"]
                event("train_done", label, info["seconds"], "cached" if info["cached"] else "trained")
                continue
            try:
                item_ref = next(cast(Any, ref))
            except StopIteration:
                del pending[ref]
                continue
            try:
                job_id, rows, seconds = ray.get(item_ref)
            except Exception as exc:
                del pending[ref]
                if group.train.hash not in failed_train:  # else already reported as a training failure
                    tally.failures.append(f"{label}: evaluation failed: {_ray_message(exc)}")
                    event("failed", label, message=_ray_message(exc))
                for b in group.batches:
                    for j in b.jobs:
                        if j.id in claims.held:
                            claims.release(j.id)
                continue
            tally.compute += seconds
            writer.put(job_id, rows)
    finally:
        if started:
            ray.shutdown()


def _ray_message(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return " ".join(str(exc).split())[:500]


# =============================================================================================================
# results filters (CLI)


def parse_filters(items: Sequence[str]) -> dict[str, Any]:
    """Parse `--filter key=value` options into `ResultsStore.frame(where=...)` form.

    Values are converted to the column's type; commas give several allowed values (`target=ca,an`).

    Args:
        items: strings like "target=ca", "perturbation=clean,entity_replace", "seed=0".

    Returns:
        column -> value or list of values. Raises ConfigError for a malformed item, an unknown column or a value
        of the wrong type.
    """
    from xner_core.experiments.store import SCHEMA

    types = {c.name: c.sql_type.split()[0] for c in SCHEMA}
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"cannot read filter {item!r}; write column=value, e.g. target=ca")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key not in types:
            raise ConfigError(f"unknown results column {key!r}; choose one of: {', '.join(types)}")
        values = []
        for part in raw.split(","):
            part = part.strip()
            try:
                values.append(int(part) if types[key] == "INTEGER" else float(part) if types[key] == "DOUBLE"
                              else part)
            except ValueError:
                raise ConfigError(f"filter {item!r}: {part!r} is not a valid {types[key].lower()} for "
                                  f"column {key!r}") from None
        out[key] = values[0] if len(values) == 1 else values
    return out


# =============================================================================================================
# locating keys in spec files (for error messages)


def _key_parts(text: str) -> list[str]:
    return [p.strip().strip("\"'") for p in text.split(".")]


def _toml_locator(text: str) -> Locator:
    """Line numbers of keys in TOML text (1-based): headers `[a]`/`[[a]]` and `key = ...` lines; inline tables
    fall back to the first line assigning the last key."""
    lines = text.splitlines()
    key_re = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")

    def locate(path: tuple[Any, ...]) -> int | None:
        target = tuple(path)
        table: tuple[Any, ...] = ()
        counts: dict[tuple[Any, ...], int] = {}
        for i, line in enumerate(lines, 1):
            st = line.strip()
            if st.startswith("[["):
                name = tuple(_key_parts(st[2:st.find("]]")]))
                counts[name] = counts.get(name, -1) + 1
                table = (*name, counts[name])
                if table == target or name == target:
                    return i
                continue
            if st.startswith("["):
                table = tuple(_key_parts(st[1:st.find("]")]))
                if table == target:
                    return i
                continue
            m = key_re.match(line)
            if m and not st.startswith("#"):
                full = (*table, *_key_parts(m.group(1)))
                if full == target or (len(target) > len(full) and target[:len(full)] == full):
                    return i
        last = next((p for p in reversed(target) if isinstance(p, str)), None)
        if last is not None:
            pat = re.compile(rf"(^|[\s{{,]){re.escape(last)}\s*=")
            for i, line in enumerate(lines, 1):
                if pat.search(line):
                    return i
        return None

    return locate


def _yaml_locator(root: Any) -> Locator:
    """Line numbers of keys in a composed YAML node tree (1-based)."""

    def locate(path: tuple[Any, ...]) -> int | None:
        node, line = root, None
        for p in path:
            if node is None:
                break
            if isinstance(p, int) and hasattr(node, "value") and isinstance(node.value, list) and \
                    node.tag.endswith(":seq"):
                if p >= len(node.value):
                    break
                node = node.value[p]
                line = node.start_mark.line + 1
            elif isinstance(node.value, list) and node.tag.endswith(":map"):
                for k, v in node.value:
                    if k.value == p:
                        line, node = k.start_mark.line + 1, v
                        break
                else:
                    break
            else:
                break
        return line

    return locate
