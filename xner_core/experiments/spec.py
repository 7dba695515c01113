"""Stage 6, experiments: the grid spec, read from a TOML/YAML file or a built-in preset and validated.

A *spec* (TOML or YAML; built-in presets in `xner_core/experiments/presets/`) names models x pairs (or targets
with source sets) x settings x perturbations x seeds, with training options, data caps and evaluation options,
and existing checkpoints to evaluate as they are (`[[checkpoints]]`: path, role, source, targets; never trained).
`load_spec` validates it (unknown keys with their line, unknown models, languages, settings and perturbations,
each with what is allowed); `plan.expand` turns it into a plan of jobs. The units of a spec (target, setting,
sources) are here too: validation builds every unit's config once, so option/setting combinations fail at load
time, not mid-run.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from xner_core.errors import ConfigError
from xner_core.evaluation.jobs import CLEAN, EvalOptions
from xner_core.evaluation.modelstore import CHECKPOINT_ROLES
from xner_core.experiments.specfile import (
    Locator,
    _check_keys,
    _choice,
    _int,
    _language,
    _model,
    _str,
    _str_list,
    _toml_locator,
    _Where,
    _yaml_locator,
)
from xner_core.numerics import PRECISIONS
from xner_core.runs.config import DATA_PROTOCOLS, make_config, validate_options
from xner_core.training.settings import SETTINGS, TrainOptions

PRESET_SUFFIXES: tuple[str, ...] = (".toml", ".yaml", ".yml")
_PRESETS_PACKAGE = "xner_core.experiments"  # the presets/ folder is package data of this package
_TOP_KEYS: tuple[str, ...] = ("name", "description", "models", "pairs", "targets", "settings", "perturbations",
                              "seeds", "data", "training", "eval", "precision", "checkpoints")
_EVAL_KEYS: tuple[str, ...] = ("test_limit", "embed_model", "donor", "perturb_seed", "perturb_rate", "rates",
                               "bootstrap", "batch_size")
_TARGET_KEYS: tuple[str, ...] = ("target", "source_sets")
_CHECKPOINT_KEYS: tuple[str, ...] = ("path", "role", "source", "targets")
# Options where "no cap" is None; spec files write "all" (TOML has no null).
_ALL_MEANS_NONE: frozenset[str] = frozenset({"max_train_sentences", "max_dev_sentences", "test_limit"})


@dataclass(frozen=True)
class TargetSources:
    """A target language with the source-language sets it is evaluated from (the diversity study)."""

    target: str
    source_sets: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CheckpointSpec:
    """An existing token-classification checkpoint a grid evaluates as it is (`[[checkpoints]]`; never trained).

    Attributes:
        path: its directory (absolute, resolved) or hub id; the `model` of its configs and result rows.
        role: the side it plays: native (fine-tuned on the target) or transfer (on `source`); it decides the data
            the perturbations call seen, as `xner eval --checkpoint --role` does.
        targets: the languages it is evaluated on.
        source: transfer: the language it was fine-tuned on.
    """

    path: str
    role: str
    targets: tuple[str, ...]
    source: str | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if self.source else ()

    @property
    def label(self) -> str:
        """e.g. "checkpoint /x/my-ner es transfer"."""
        return f"checkpoint {self.path} {self.source or self.targets[0]} {self.role}"

    def config(self, spec: "GridSpec", target: str) -> Any:
        """Its config on `target`: the spec's data protocol and training options (the seen data's cap) and first
        seed, as `xner eval --checkpoint` builds one from its options."""
        return make_config(self.path, target, self.role, sources=self.sources, seed=spec.seeds[0], data=spec.data,
                           options=spec.options)


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
    rates: tuple[tuple[str, float], ...] = ()  # [eval.rates]: per-perturbation rates overriding perturb_rate
    bootstrap: int = 1000
    batch_size: int = 32  # inference batch size
    precision: str = "auto"  # training and inference autocast (numerics); not part of any hash or job id
    description: str = ""
    origin: str = ""  # the file or "preset <name>" it came from (for messages)
    checkpoints: tuple[CheckpointSpec, ...] = ()  # existing checkpoints evaluated as they are

    def eval_options(self) -> EvalOptions:
        """The evaluation options every job of this grid runs with (one object for the planner and executors)."""
        return EvalOptions(perturb_seed=self.perturb_seed, perturb_rate=self.perturb_rate, rates=self.rates,
                           test_limit=self.test_limit,
                           embed_model=self.embed_model, donor=self.donor, bootstrap=self.bootstrap,
                           batch_size=self.batch_size, precision=self.precision)


def _rates(w: Any, raw: Any, perturbations: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """[eval.rates]: perturbation name -> its own rate in [0, 1], for perturbations the spec runs."""
    if not isinstance(raw, Mapping):
        raise w.error(("eval", "rates"), "must be a table of perturbation = rate, e.g. rates = "
                                         "{ entity_replace_matched = 0.04 }")
    out = {}
    for name, rate in raw.items():
        allowed = [p for p in perturbations if p != CLEAN]
        if name not in allowed:
            raise w.error(("eval", "rates", name), f"{name!r} is not one of this spec's perturbations; allowed: "
                                                   f"{', '.join(allowed) or 'none (list it in perturbations)'}")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise w.error(("eval", "rates", name), f"{rate!r} is invalid; allowed: a number in [0, 1]")
        out[name] = float(rate)
    return tuple(sorted(out.items()))


def preset_names() -> list[str]:
    """The built-in presets (files in `xner_core/experiments/presets/`), sorted.

    Returns:
        Names such as ["diversity", "paper", "smoke"].
    """
    root = resources.files(_PRESETS_PACKAGE).joinpath("presets")
    return sorted(Path(p.name).stem for p in root.iterdir() if Path(p.name).suffix in PRESET_SUFFIXES)


def _preset_text(name: str) -> tuple[str, str] | None:
    root = resources.files(_PRESETS_PACKAGE).joinpath("presets")
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
    checkpoints = _checkpoints(w, data.get("checkpoints", ()))
    if "models" not in data and not checkpoints:
        raise w.error((), "the spec names no models; add e.g. models = [\"e5-small\"] (or [[checkpoints]] with "
                          "the path of an existing NER model to evaluate as it is)")
    models = tuple(_model(w, path, m) for path, m in _str_list(w, ("models",), data["models"])) \
        if "models" in data else ()
    pairs = _pairs(w, data.get("pairs", ()))
    targets = _targets(w, data.get("targets", ()))
    if models and not pairs and not targets:
        raise w.error((), "the spec has neither pairs nor targets; add pairs = [\"es-ca\"] (or \"reference\" for "
                          "the study's 13) or [[targets]] with source_sets")
    if not models and (pairs or targets):
        raise w.error(("pairs",) if pairs else ("targets",), "pairs and targets are what models are trained and "
                      "evaluated on, and the spec names no models; add e.g. models = [\"e5-small\"] (a checkpoint "
                      "names its own targets)")
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
    rates = _rates(w, ev.get("rates", {}), perturbations)
    spec = GridSpec(
        name=name, models=models, pairs=pairs, targets=targets, settings=settings, perturbations=perturbations,
        seeds=seeds, data=protocol, options=options, test_limit=test_limit, embed_model=embed_model, donor=donor,
        perturb_seed=_int(w, ("eval", "perturb_seed"), ev.get("perturb_seed", 0), 0),
        perturb_rate=float(perturb_rate), rates=rates,
        bootstrap=_int(w, ("eval", "bootstrap"), ev.get("bootstrap", 1000), 0),
        batch_size=_int(w, ("eval", "batch_size"), ev.get("batch_size", 32), 1),
        precision=_choice(w, ("precision",), data.get("precision", "auto"), PRECISIONS, "precision"),
        description=description, origin=origin, checkpoints=checkpoints,
    )
    _check_units(w, spec)
    return spec


def _pairs(w: _Where, value: Any) -> tuple[tuple[str, str], ...]:
    from xner_core.corpus.languages import get_language, reference_pairs, split_pair

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
            try:  # codes may hold a hyphen themselves ("es-zh-yue")
                src, tgt = split_pair(item)
            except ConfigError as exc:
                message = str(exc) if str(exc).startswith("unknown language") else \
                    f"cannot read pair {item!r}; write source and target like 'es-ca' or 'es→ca'"
                raise w.error(path, message) from None
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


def _checkpoints(w: _Where, value: Any) -> tuple[CheckpointSpec, ...]:
    """[[checkpoints]]: path (a save_pretrained directory or hub id), role (native | transfer; default transfer
    with a source, else native), source (transfer) and targets."""
    from xner_core.models.checkpoint import check_checkpoint

    if value in ((), []):
        return ()
    if not isinstance(value, list):
        raise w.error(("checkpoints",), "must be a list of tables with path, role, source and targets "
                                        "([[checkpoints]] in TOML)")
    out: list[CheckpointSpec] = []
    for i, item in enumerate(value):
        path = ("checkpoints", i)
        if not isinstance(item, Mapping):
            raise w.error(path, f"must be a table with path, role, source and targets, got {item!r}")
        _check_keys(w, path, item, _CHECKPOINT_KEYS, "in a [[checkpoints]] entry")
        if "path" not in item:
            raise w.error(path, "needs path: the directory of an existing NER checkpoint (written by "
                                "save_pretrained) or a hub id")
        try:
            location = check_checkpoint(_str(w, (*path, "path"), item["path"]))
        except ConfigError as exc:
            raise w.error((*path, "path"), str(exc)) from None
        source = _language(w, (*path, "source"), item["source"]) if "source" in item else None
        role = item.get("role", "transfer" if source else "native")
        _choice(w, (*path, "role"), role, CHECKPOINT_ROLES, "role")
        if role == "transfer" and source is None:
            raise w.error((*path, "role"), "a transfer checkpoint needs source: the language it was fine-tuned on "
                                           "(e.g. source = \"es\")")
        if role == "native" and source is not None:
            raise w.error((*path, "source"), "a native checkpoint was fine-tuned on its target; leave source out, "
                                             "or use role = \"transfer\"")
        if "targets" not in item:
            raise w.error(path, "needs targets: the languages to evaluate it on, e.g. targets = [\"ca\", \"an\"]")
        targets = tuple(dict.fromkeys(_language(w, p, t) for p, t in _str_list(w, (*path, "targets"),
                                                                                  item["targets"])))
        if role == "native" and len(targets) != 1:
            raise w.error((*path, "targets"), f"a native checkpoint is evaluated on the one language it was "
                                              f"fine-tuned on; give one target (got {', '.join(targets)}), or "
                                              f"role = \"transfer\" with its source")
        if source in targets:
            raise w.error((*path, "targets"), f"target {source!r} is the checkpoint's source; a checkpoint "
                                              f"evaluated on its own training language plays role = \"native\"")
        out.append(CheckpointSpec(location, role, targets, source))
    return tuple(dict.fromkeys(out))


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
            elif setting in ("transfer", "tapt", "distill"):  # distill from a pair: a single-teacher student
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
    for i, ck in enumerate(spec.checkpoints):  # their configs too fail here, not mid-run
        for target in ck.targets:
            try:
                ck.config(spec, target)
            except ConfigError as exc:
                raise w.error(("checkpoints", i), f"{ck.label} on {target}: {exc}") from None
    if not spec.models:
        return  # only checkpoints: they carry their own roles, the settings apply to nothing
    units = _units(spec)
    for setting in spec.settings:
        if not any(u.setting == setting for u in units):
            need = {"multi_source": "a [[targets]] entry with a source set of 2+ languages",
                    "distill": "a pair (one teacher) or a [[targets]] entry with a source set of 2+ languages"
                    }.get(setting, "a pair or a single-language source set")
            raise w.error(("settings",), f"setting {setting!r} applies to nothing in this spec; it needs {need}")
    for model in spec.models:  # build every config once: option/setting combinations fail here, not mid-run
        for u in units:
            try:
                make_config(model, u.target, u.setting, sources=u.sources, seed=spec.seeds[0], data=spec.data,
                            options=spec.options)
            except ConfigError as exc:
                raise w.error((), f"{model} {u.label}: {exc}") from None
