"""Stage 3a, model sources: an existing token-classification checkpoint, loaded as it is.

`registry.load_token_classifier` always puts a fresh 7-label head on an encoder (for training); a checkpoint that
someone fine-tuned for NER elsewhere keeps its own head and labels here, and `labels.map_labels` says how its
labels read as ours. Nothing is trained: the model is evaluated as it was saved.
"""

from __future__ import annotations

import os
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


def _unloadable(name: str, location: str | os.PathLike[str], exc: Exception) -> str:
    return (f"could not load checkpoint {name!r} from {str(location)!r} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); give a local directory written by save_pretrained "
            f"or, with network access, a hub id of a token-classification model")
