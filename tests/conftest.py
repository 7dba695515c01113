"""Shared test fixtures: the shared WikiANN directory (skip without it), small hand-built corpora, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sentences import make_sentence

from xner_core.corpus.sentences import Corpus

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# "auto" precision means bf16 on CPUs with native bf16 and fp32 elsewhere: pin it so the suite's numbers are the
# same on every machine. Tests of the bf16 path ask for it explicitly (tests/test_numerics.py).
os.environ.setdefault("XNER_PRECISION", "fp32")

_DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikiann"


def _shared_dir() -> Path | None:
    env = os.environ.get("XNER_DATA_DIR")
    for cand in ([Path(env)] if env else []) + [_DEFAULT_SHARED]:
        if cand.is_dir() and any(cand.iterdir()):
            return cand
    return None


@pytest.fixture(scope="session")
def wikiann_dir() -> Path:
    """The real WikiANN directory; the test is skipped when it is not on this machine."""
    found = _shared_dir()
    if found is None:
        pytest.skip("shared WikiANN data not found (set XNER_DATA_DIR)")
    return found


@pytest.fixture
def source_corpus() -> Corpus:
    """A tiny 'source training set' (es-like)."""
    rows = [
        ("Juan Pérez vive en Madrid .", "B-PER I-PER O O B-LOC O"),
        ("El Real Madrid ganó en Barcelona .", "O B-ORG I-ORG O O B-LOC O"),
        ("La capital de Francia es París .", "O O O B-LOC O B-LOC O"),
        ("María trabaja para Naciones Unidas .", "B-PER O O B-ORG I-ORG O"),
    ]
    return Corpus(tuple(make_sentence(t, g, "es", f"es-train-{i}") for i, (t, g) in enumerate(rows)), "es", "train")


@pytest.fixture
def target_corpus() -> Corpus:
    """A tiny 'target test set' (ca-like) sharing some entities and context words with the source."""
    rows = [
        ("Joan Pérez viu a Madrid .", "B-PER I-PER O O B-LOC O"),
        ("El Barça va guanyar a Barcelona capital .", "O B-ORG O O O B-LOC O O"),
        ("Maria treballa per a Nacions Unides .", "B-PER O O O B-ORG I-ORG O"),
        ("Girona és una ciutat de Catalunya .", "B-LOC O O O O B-LOC O"),
    ]
    return Corpus(tuple(make_sentence(t, g, "ca", f"ca-test-{i}") for i, (t, g) in enumerate(rows)), "ca", "test")


@pytest.fixture(scope="session")
def tiny_model():
    """A random-init tiny BERT token classifier + its tokenizer (built in code, < 1 s)."""
    from xner_core.models.registry import build_tiny

    return build_tiny()
