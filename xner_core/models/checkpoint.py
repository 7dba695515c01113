"""Stage 3a, model sources: an existing token-classification checkpoint, loaded as it is.

`registry.load_token_classifier` always puts a fresh 7-label head on an encoder (for training); a checkpoint that
someone fine-tuned for NER elsewhere keeps its own head and labels here, and `labels.map_labels` says how its
labels read as ours. Nothing is trained: the model is evaluated as it was saved.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from xner_core.errors import ConfigError
from xner_core.models.labels import LabelMapping, map_labels
from xner_core.models.registry import MODEL_NAMES, resolve_source


def load_checkpoint(name: str) -> tuple[Any, Any, LabelMapping]:
    """Load a token classifier with its own head and labels (a local `save_pretrained` directory or a hub id).

    Args:
        name: a directory holding `config.json` (and weights), or a hub id (`org/name`).

    Returns:
        (model in eval mode, fast tokenizer, label mapping). ConfigError for a short name (mbert, e5-small, ...:
        encoders without an NER head), a checkpoint that cannot be loaded (e.g. a hub id offline), one without a
        token-classification head, labels that do not map to PER/ORG/LOC, or a slow-only tokenizer.
    """
    if name in MODEL_NAMES:
        raise ConfigError(f"{name!r} is an encoder without a fine-tuned NER head; give a checkpoint (a directory "
                          f"written by save_pretrained or a hub id), or use --model {name} to fine-tune it")
    # A hub id is `name` or `org/name`; a path that starts like one, or has more parts, and does not exist is a typo.
    if (name.startswith((".", "/", "~")) or name.count("/") > 1) and not Path(name).expanduser().exists():
        raise ConfigError(f"no such checkpoint directory: {name!r}; give a directory written by save_pretrained "
                          "(with config.json and the weights) or a hub id such as 'org/name'")
    src = resolve_source(name)
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(src.location)
    except (OSError, ValueError) as exc:
        raise ConfigError(_unloadable(name, src.location, exc)) from exc
    mapping = map_labels(getattr(config, "id2label", None) or {})  # fails before the weights are read
    try:
        tokenizer = AutoTokenizer.from_pretrained(src.location)
        model, info = AutoModelForTokenClassification.from_pretrained(src.location, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(_unloadable(name, src.location, exc)) from exc
    missing = list(info.get("missing_keys") or [])
    if any(key.startswith("classifier") or ".classifier" in key for key in missing):
        raise ConfigError(f"checkpoint {name!r} has no token-classification head (its classifier weights are "
                          f"missing); give a model fine-tuned for NER, or use --model to fine-tune this encoder")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"checkpoint {name!r} has only a slow tokenizer; word alignment needs a fast one "
                          f"(save it with tokenizer.json)")
    model.eval()
    return model, tokenizer, mapping


# A hub id: `name` or `org/name` (whether it exists is only known online).
_HUB_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def check_checkpoint(name: str) -> str:
    """Check, without loading it, that `name` can be an existing NER checkpoint; return where it is.

    A local directory needs `config.json` (a token classifier's, when it names its architecture), labels that map
    onto PER/ORG/LOC (`labels.map_labels`) and weight files; a hub id (`org/name`) is taken as it is (only a
    load, online, can tell). Cheap: reads config.json only (what grid specs and the dashboard's picker check).

    Args:
        name: a directory written by save_pretrained (`~` and relative paths allowed) or a hub id.

    Returns:
        The directory's absolute, resolved path (the identity `runs.config.make_config` stores), or the hub id.
        ConfigError saying what is wrong and what is expected otherwise.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("empty checkpoint; give a directory written by save_pretrained or a hub id such as "
                          "'org/name'")
    name = name.strip()
    if name in MODEL_NAMES:
        raise ConfigError(f"{name!r} is an encoder without a fine-tuned NER head; give a checkpoint (a directory "
                          f"written by save_pretrained or a hub id) to evaluate as it is, or list it under models "
                          f"to fine-tune it")
    path = Path(name).expanduser()
    if not path.exists():
        if name.startswith((".", "/", "~")) or name.count("/") > 1 or not _HUB_ID_RE.fullmatch(name):
            raise ConfigError(f"no such checkpoint directory: {name!r} (looked for {path.absolute()}); give a "
                              f"directory written by save_pretrained (with config.json and the weights) or a hub "
                              f"id such as 'org/name'")
        return name
    if not path.is_dir():
        raise ConfigError(f"checkpoint {name!r} is a file; give the directory save_pretrained wrote (with "
                          f"config.json, the weights and the tokenizer)")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"checkpoint directory {name!r} has no config.json; give a directory written by "
                          f"save_pretrained")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"checkpoint {name!r}: cannot read config.json ({exc})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"checkpoint {name!r}: config.json is not a JSON object")
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    if archs and not any(a.endswith("ForTokenClassification") for a in archs):
        raise ConfigError(f"checkpoint {name!r} is a {', '.join(archs)}, not a token classifier (an NER model's "
                          f"architecture ends in ForTokenClassification); list an encoder under models to "
                          f"fine-tune it")
    try:
        map_labels(config.get("id2label") or {})
    except ConfigError as exc:
        raise ConfigError(f"checkpoint {name!r}: {exc}") from None
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in path.iterdir() if p.is_file()):
        raise ConfigError(f"checkpoint directory {name!r} has no weights (model.safetensors or pytorch_model.bin); "
                          f"save the model with save_pretrained")
    return str(path.resolve())


def _unloadable(name: str, location: str | os.PathLike[str], exc: Exception) -> str:
    return (f"could not load checkpoint {name!r} from {str(location)!r} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); give a local directory written by save_pretrained "
            f"or, with network access, a hub id of a token-classification model")
