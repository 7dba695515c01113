"""Runs, models that travel: a cached model exported as a `save_pretrained` directory with a model card, and
such a directory imported back into the model cache under its config hash.

An export directory holds the cache entry's files as they are (safetensors weights, `config.json`, tokenizer
files), `xner_manifest.json` (the entry's manifest: the config, its hash, every file's sha256 and size, dev
scores, timings, library versions) and `README.md`, a model card for the Hugging Face hub. Anything else in the
directory (a hub clone's `.gitattributes`, `.git/`) is ignored by the import, which files only the files the
manifest lists, after checking that the config hashes to the recorded hash, that every listed file has its
sha256, and that the weights load as a token classifier with xner's label set.

A model trained with LoRA (`adapter = "lora"`) is exported whole: its merged weights (so the directory stays a
plain `save_pretrained` model that transformers' pipelines, `xner models import` and `xner eval --checkpoint` read
as any other) and, besides them, its adapter in `adapter/` (peft's `adapter_model.safetensors` +
`adapter_config.json`, a few MB: what to share with someone who has the base model). `Exported.adapter_bytes` and
the model card give its size.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from xner_core.corpus.tags import LABELS
from xner_core.errors import ConfigError, DataError, XnerError
from xner_core.runs.cacheentry import MANIFEST_FORMAT, PICKLE_SUFFIXES, _sha256, inspect_entry
from xner_core.runs.config import (
    ExperimentConfig,
    canonical_dict,
    config_from_dict,
    config_hash,
    resolved_lr,
)
from xner_core.runs.modelcache import ModelCache, _model_class
from xner_core.training.lora import ADAPTER_CONFIG, ADAPTER_DIR

EXPORT_MANIFEST = "xner_manifest.json"
CARD = "README.md"
WIKIANN_HUB_ID = "unimelb-nlp/wikiann"
_BUILT_IN = frozenset({"tiny", "e5-small"})  # models built in code: no hub base model to name


@dataclass(frozen=True)
class Exported:
    """What `export_model` wrote."""

    hash: str
    path: Path
    files: tuple[str, ...]  # relative names, the card and the xner manifest included
    evaluated: bool  # whether the card reports test scores
    weights_bytes: int = 0  # the full weights (*.safetensors outside adapter/)
    adapter_bytes: int | None = None  # a LoRA model's adapter/adapter_model.safetensors; None: no adapter


@dataclass(frozen=True)
class Imported:
    """What `import_model` did."""

    hash: str
    path: Path  # the cache entry
    added: bool  # False: a valid entry with that hash was already cached (nothing changed)


def _language_name(code: str) -> str:
    from xner_core.corpus.languages import get_language

    try:
        return str(get_language(code).name)
    except XnerError:
        return code


def _languages(config: ExperimentConfig, scores: Sequence[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for code in [*config.sources, config.target, *(str(s.get("target")) for s in scores if s.get("target"))]:
        if code not in out:
            out.append(code)
    return out


def _precision(manifest: Mapping[str, Any]) -> str:
    timings = manifest.get("timings") or {}
    if timings.get("precision") in ("bf16", "fp32"):
        return str(timings["precision"])
    return {"cpu": "fp32", "cuda": "bf16"}.get(str(timings.get("device")), "not recorded")


def _role(config: ExperimentConfig, code: str) -> str:
    roles = (["labelled training data"] if code in config.sources or (config.setting == "native"
                                                                      and code == config.target) else [])
    if code == config.target:
        roles.append("target")
    return f" ({', '.join(roles)})" if roles else " (evaluated)"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.2f}"


def _cap(value: Any) -> str:
    return "all" if value is None else str(value)


def model_card(config: ExperimentConfig, manifest: Mapping[str, Any],
               scores: Sequence[Mapping[str, Any]] = ()) -> str:
    """The hub model card (`README.md`) of an exported model; a pure function of its inputs.

    Args:
        config: the model's experiment config.
        manifest: its cache manifest (hash, dev scores, timings, versions).
        scores: clean overall result rows of the model (keys target, f1, f1_low, f1_high, n_sentences,
            test_limit); empty: the card says "not evaluated".

    Returns:
        Markdown with YAML front matter (language, library_name, pipeline_tag, tags, datasets, base_model when
        the model is a hub model); no license is claimed.
    """
    digest = str(manifest.get("hash") or config_hash(config))
    langs = _languages(config, scores)
    model = str(canonical_dict(config)["model"])
    front = ["---", "language:", *(f"- {c}" for c in langs), "library_name: transformers",
             "pipeline_tag: token-classification", "tags:",
             *(f"- {t}" for t in ("token-classification", "ner", "cross-lingual", "wikiann", "xner")),
             "datasets:", f"- {WIKIANN_HUB_ID}"]
    if model not in _BUILT_IN and not model.startswith(("/", ".", "~")) and not any(c in model for c in ":\\"):
        front.append(f"base_model: {model}")
    if scores:
        front += ["metrics:", "- f1"]
    front.append("---")
    pair = f"{','.join(config.sources) or config.target} -> {config.target}"
    o = config.options
    dev = (manifest.get("dev_scores") or {}).get("best_dev_f1")
    train_s = (manifest.get("timings") or {}).get("train_s")
    lines = [
        *front, "",
        f"# xner {config.setting} NER model: {model} {pair}",
        "",
        f"A named-entity tagger (PER, ORG, LOC in IOB2) fine-tuned with xner "
        f"from `{model}`, `{config.setting}` setting, xner config hash `{digest}`.",
        "",
        "## Languages",
        "",
        *(f"- `{c}`: {_language_name(c)}{_role(config, c)}" for c in langs),
        "",
        "## Training data and recipe",
        "",
        f"WikiANN (`{WIKIANN_HUB_ID}`), data protocol `{config.data}`.",
        "",
        "| | |", "|---|---|",
        f"| setting | {config.setting} |",
        f"| sources | {', '.join(config.sources) or '(none: native)'} |",
        f"| target | {config.target} |",
        f"| data protocol | {config.data} |",
        f"| train sentences (cap) | {_cap(o.max_train_sentences)} |",
        f"| dev sentences (cap) | {_cap(o.max_dev_sentences)} |",
        f"| epochs | {o.epochs} |",
        f"| learning rate | {resolved_lr(config):g} |",
        f"| batch size | {o.batch_size} |",
        f"| seed | {config.seed} |",
        f"| precision | {_precision(manifest)} |",
        f"| best dev F1 | {_pct(dev) if isinstance(dev, (int, float)) else '-'} |",
        f"| training seconds | {train_s if train_s is not None else '-'} |",
        "",
        *_adapter_lines(manifest),
        "All training options (the config as recorded in `xner_manifest.json`):",
        "",
        "```json",
        json.dumps(manifest.get("config") or {}, indent=2, sort_keys=True),
        "```",
        "",
        "## Evaluation",
        "",
    ]
    if scores:
        lines += ["Entity F1 (seqeval strict IOB2) on the clean WikiANN test split, with a 95% bootstrap CI:", "",
                  "| target | F1 | 95% CI | test sentences |", "|---|---|---|---|"]
        for s in scores:
            lines.append(f"| {s.get('target')} | {_pct(s.get('f1'))} | [{_pct(s.get('f1_low'))}, "
                         f"{_pct(s.get('f1_high'))}] | {s.get('n_sentences', '-')}"
                         + (f" (first {s['test_limit']})" if s.get("test_limit") else "") + " |")
    else:
        lines.append("Test F1: not evaluated (no clean result for this config hash in the results store).")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        "tagger = pipeline(\"token-classification\", model=\"PATH_OR_HUB_ID\", aggregation_strategy=\"simple\")",
        "```",
        "",
        "With xner: `xner models import DIR` files it in the model cache under its config hash "
        f"(`{digest}`), where `xner eval`/`predict` with the same config find it.",
        "",
        "## License",
        "",
        "Not specified; the base model's and WikiANN's terms apply.",
        "",
    ]
    return "\n".join(lines)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _adapter_lines(manifest: Mapping[str, Any]) -> list[str]:
    """The model card's LoRA section (none for a model trained without an adapter)."""
    a = manifest.get("adapter")
    if not isinstance(a, Mapping):
        return []
    size = a.get("adapter_bytes")
    mb = f"{size / 2**20:.2f} MB" if isinstance(size, (int, float)) else "size not recorded"
    return [
        f"Trained with LoRA: rank {a.get('r')}, alpha {a.get('alpha')}, dropout {a.get('dropout')} on "
        f"`{', '.join(a.get('target_modules') or [])}`, the head (`{', '.join(a.get('modules_to_save') or [])}`) "
        f"trained fully: {_count(a.get('trainable_parameters'))} trainable parameters of "
        f"{_count(a.get('total_parameters'))}. "
        f"The weights here have the adapter merged in; `{a.get('dir', ADAPTER_DIR)}/` holds the adapter alone "
        f"({mb}, peft format), to apply to `{a.get('base_model')}` with "
        f"`peft.PeftModel.from_pretrained(base, \"PATH/{a.get('dir', ADAPTER_DIR)}\")`.",
        "",
    ]


def export_model(cache: ModelCache, hash_prefix: str, dest: Path | str,
                 scores: Sequence[Mapping[str, Any]] = ()) -> Exported:
    """Write a cached model as a `save_pretrained` directory with a model card and the xner manifest.

    Args:
        cache: the model cache.
        hash_prefix: the model's config hash or a unique prefix of it.
        dest: a new (or empty) directory; it appears whole or not at all.
        scores: clean overall result rows for the card (see `model_card`).

    Returns:
        An `Exported`. Raises ConfigError for an unknown/ambiguous hash or a non-empty destination,
        CacheCorrupt-like XnerError when the entry fails its sha256 check.
    """
    digest = cache.resolve(hash_prefix)
    entry = cache.root / digest
    manifest, problem = inspect_entry(entry, digest, deep=True)
    if problem is not None or manifest is None:
        raise XnerError(f"cached model {digest} is invalid ({problem}); remove it (`xner models rm {digest}`) "
                        "or retrain it")
    config = config_from_dict(manifest["config"], check=False)
    out = Path(dest).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty directory; give a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for name in sorted(manifest["files"]):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry / name, tmp / name)
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        (tmp / CARD).write_text(model_card(config, manifest, scores), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = tuple(sorted([*manifest["files"], EXPORT_MANIFEST, CARD]))
    sizes = {name: int(meta["size"]) for name, meta in manifest["files"].items()}
    adapter_dir = f"{ADAPTER_DIR}/"
    weights = sum(n for name, n in sizes.items() if name.endswith(".safetensors") and not name.startswith(adapter_dir))
    adapter = sum(n for name, n in sizes.items() if name.endswith(".safetensors") and name.startswith(adapter_dir))
    return Exported(hash=digest, path=out, files=files, evaluated=bool(scores), weights_bytes=weights,
                    adapter_bytes=adapter if manifest.get("adapter") else None)


def _not_an_export(src: Path) -> DataError:
    present = sorted(p.name for p in src.iterdir()) if src.is_dir() else []
    has_weights = any(n.endswith(".safetensors") for n in present)
    hint = (" (it looks like a plain save_pretrained directory: evaluate it as it is with `xner eval --checkpoint "
            f"{src}`)" if "config.json" in present and has_weights else "")
    missing = [EXPORT_MANIFEST] + ([] if "config.json" in present else ["config.json"]) \
        + ([] if has_weights else ["*.safetensors weights"])
    return DataError(f"{src} is not an xner model export: missing {', '.join(missing)}; it holds "
                     f"{', '.join(present[:10]) or 'nothing'}{hint}. Write one with `xner models export HASH DIR`")


def read_export(src: Path | str) -> dict[str, Any]:
    """Check an export directory's manifest and files (not the weights' loading).

    Args:
        src: the directory.

    Returns:
        The xner manifest. Raises DataError naming what is missing, unreadable or modified.
    """
    src = Path(src).expanduser()
    if not src.is_dir():
        raise DataError(f"{src} is not a directory; give a directory written by `xner models export`")
    path = src / EXPORT_MANIFEST
    if not path.is_file():
        raise _not_an_export(src)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is unreadable ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a JSON object")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{path}: manifest format {manifest.get('format')!r} is not {MANIFEST_FORMAT} "
                        "(written by another xner version?)")
    try:
        rehashed = config_hash(config_from_dict(manifest.get("config"), check=False))  # type: ignore[arg-type]
    except (XnerError, TypeError, KeyError, AttributeError) as exc:
        raise DataError(f"{path}: the config is unreadable ({exc})") from None
    if rehashed != manifest.get("hash"):
        raise DataError(f"{path}: the config hashes to {rehashed}, but the manifest records "
                        f"{manifest.get('hash')!r} (edited?)")
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not any(n.endswith(".safetensors") for n in listed):
        raise DataError(f"{path} lists no safetensors weights")
    for name, meta in sorted(listed.items()):
        if Path(name).suffix.lower() in PICKLE_SUFFIXES or ".." in Path(name).parts or Path(name).is_absolute():
            raise DataError(f"{path} lists {name!r}; only safetensors weights and plain files inside the "
                            "directory are imported")
        file = src / name
        if not file.is_file() or file.is_symlink():
            raise DataError(f"{src} is missing {name}, listed in {EXPORT_MANIFEST}")
        if not isinstance(meta, dict) or file.stat().st_size != meta.get("size") or _sha256(file) != meta.get("sha256"):
            raise DataError(f"{file} does not match its size/sha256 in {EXPORT_MANIFEST} (modified after export)")
    return manifest


def _check_loads(src: Path, manifest: Mapping[str, Any]) -> None:
    from transformers import AutoTokenizer

    try:
        model = _model_class(manifest.get("model_class")).from_pretrained(src, use_safetensors=True,
                                                                          local_files_only=True)
        AutoTokenizer.from_pretrained(src, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise DataError(f"{src}: the weights or tokenizer do not load as a token classifier "
                        f"({exc.__class__.__name__}: {str(exc)[:200]})") from None
    adapter = manifest.get("adapter")
    if isinstance(adapter, Mapping):
        path = src / str(adapter.get("dir", ADAPTER_DIR)) / ADAPTER_CONFIG
        try:
            kind = json.loads(path.read_text(encoding="utf-8")).get("peft_type")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
            raise DataError(f"{path} is unreadable ({exc.__class__.__name__})") from None
        if kind != "LORA":
            raise DataError(f"{path}: peft_type {kind!r} is not LORA")
    id2label = getattr(model.config, "id2label", None) or {}
    labels = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
    if labels != LABELS:
        raise DataError(f"{src}: the model's labels {', '.join(labels) or 'none'} are not xner's "
                        f"{', '.join(LABELS)}; a checkpoint with other labels is evaluated with "
                        "`xner eval --checkpoint DIR`")


def import_model(cache: ModelCache, src: Path | str) -> Imported:
    """Validate an export directory and file it in the cache under its config hash (atomically).

    Args:
        cache: the model cache.
        src: a directory written by `export_model` (or a hub clone of one).

    Returns:
        An `Imported`; `added` is False when a valid entry with that hash was already cached. Raises DataError
        for a directory that is not a valid export (saying what is missing or wrong).
    """
    src = Path(src).expanduser()
    manifest = read_export(src)
    _check_loads(src, manifest)
    path, added = cache.add(manifest, src)
    return Imported(hash=str(manifest["hash"]), path=path, added=added)
