"""Cache models the way the dashboard trains them (the `paper` preset's options, a small training cap)."""

from __future__ import annotations

import dataclasses
from pathlib import Path


def cache_dashboard_models(model: str, source: str, target: str, cache: Path | None = None,
                           max_train_sentences: int = 200) -> list[str]:
    """Train (or reuse) the native and transfer models of source→target; return their config hashes."""
    from xner_core.evaluation.modelstore import train_model
    from xner_core.runs.config import make_config
    from xner_core.experiments.spec import load_spec

    spec = load_spec("paper")
    options = dataclasses.replace(spec.options, max_train_sentences=max_train_sentences, max_dev_sentences=50)
    configs = [make_config(model, target, "native", options=options),
               make_config(model, target, "transfer", sources=(source,), options=options)]
    return [train_model(c, cache=cache).manifest["hash"] for c in configs]
