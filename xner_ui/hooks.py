"""Model hooks of the dashboard: the ONE place pages get model outputs from.

The pages already call these and render whatever they return; until the models are wired in they return None
and the pages say so. To add predictions, make `predictions_for` call the runner (e.g. a cached
`xner_core.runner` function that loads the model of `ModelKey` once per process with `st.cache_resource` and
tags the sentences) and return one tag list per sentence; nothing in the pages needs to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from xner_core.corpus import Sentence


@dataclass(frozen=True)
class ModelKey:
    """Which model to ask: model name (e.g. "e5-small"), setting ("native" or "transfer"), pair languages."""

    model: str
    setting: str
    source: str
    target: str


def predictions_for(sentences: Sequence[Sentence], key: ModelKey) -> list[list[str]] | None:
    """Word-level IOB2 predictions of the model `key` names, one list per sentence.

    Args:
        sentences: the sentences to tag (original or perturbed; tags are ignored).
        key: the model to use.

    Returns:
        None until the lead's runner function is wired in here (pages then show "predictions: not available").
    """
    return None


def word_embedder(model: str) -> Callable[[Sequence[str]], np.ndarray] | None:
    """The word embedder the P2/P3 context perturbations need (`xner_core.embed.make_word_embedder`).

    Args:
        model: the embedding model's name.

    Returns:
        None until models are wired in; pages then list those perturbations as needing a model.
    """
    return None
