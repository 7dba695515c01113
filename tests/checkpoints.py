"""A tiny saved NER checkpoint for tests (importable by name: `from checkpoints import save_checkpoint`)."""

from __future__ import annotations

from pathlib import Path

TYPES = ("PERSON", "ORGANIZATION", "LOCATION", "MISC")
BIOES = ("O", *(f"{p}-{t}" for t in TYPES for p in "BIES"))


def save_checkpoint(path: Path, labels: tuple[str, ...] = BIOES, favour: str | None = None) -> Path:
    """Save a tiny token classifier over `labels` with save_pretrained; `favour` makes that label win on every
    token."""
    import torch

    from xner_core.models.registry import build_tiny

    model, tokenizer = build_tiny(labels, seed=1)
    if favour is not None:
        with torch.no_grad():
            model.classifier.bias.zero_()
            model.classifier.bias[labels.index(favour)] = 100.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
