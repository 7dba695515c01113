"""The upload page's work, cached by the file's content hash and the user's choices: parsing and statistics,
the perturbed copy (from the core's one builder of evaluation inputs, with the file as the text to perturb), and
the cached models' predictions and scores. A rerun of the page (any widget change) costs a hash of the bytes and
cache lookups, not a re-parse, a re-perturbation or a new bootstrap.

The file is untrusted: `xner_core.corpus.conll.read_conll` turns every problem into a message naming the line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
import streamlit as st

from xner_core.corpus.conll import FileColumns
from xner_core.corpus.sentences import Corpus
from xner_core.errors import DataError
from xner_core.evaluation.jobs import CLEAN, EvalOptions
from xner_core.paths import cache_dir, data_dir
from xner_core.runs.config import ExperimentConfig, canonical_json, config_from_dict, config_to_dict
from xner_ui import hooks

BOOTSTRAP = 500  # resamples of the upload's CIs (fewer than the grid's 1000: the page answers while one waits)


@dataclass(frozen=True)
class Upload:
    """A parsed upload: its content hash, the language choice it was read with, the sentences and the notes."""

    digest: str
    lang_choice: str
    corpus: Corpus
    labeled: bool
    scheme: str
    converted: bool
    warnings: tuple[str, ...]
    stats: dict[str, Any]  # sentences, tokens, entities, entities_<type>, entity_tokens, mean/max length, vocabulary
    columns: FileColumns | None = None  # the columns between token and tag, other types' tags (kept in downloads)
    other_types: dict[str, int] = dataclasses.field(default_factory=dict)  # entities of other types read as O

    @property
    def mapped_entities(self) -> int:
        """How many entities of other types (MISC, ...) were read as O."""
        return sum(self.other_types.values())

    @property
    def lang(self) -> str:
        """The file's language ("xx" when unknown)."""
        return self.corpus.lang


def read_upload(data: bytes, lang: str, max_bytes: int) -> Upload | str:
    """Parse an uploaded CoNLL file (cached by content hash and language).

    Args:
        data: the file's bytes (plain or gzip).
        lang: a language code, or "xx" to read it from `br:`-style token prefixes.
        max_bytes: refuse larger inputs.

    Returns:
        The Upload, or the reason it was not read (a DataError message with the line number).
    """
    return _read(hashlib.sha256(data).hexdigest(), lang, max_bytes, data)


@st.cache_data(show_spinner="Reading the file…", max_entries=8)
def _read(digest: str, lang: str, max_bytes: int, _data: bytes) -> Upload | str:
    from xner_core.corpus.conll import read_conll
    from xner_core.corpus.sentences import corpus_stats

    try:
        parsed = read_conll(_data, lang=lang, max_bytes=max_bytes)
    except DataError as exc:
        return str(exc)
    s = corpus_stats(parsed.corpus)
    stats = {"language": parsed.corpus.lang, "sentences": s.sentences, "tokens": s.tokens, "entities": s.entities,
             **{f"entities_{t}": n for t, n in s.entities_by_type.items()}, "entity_tokens": s.entity_tokens,
             "mean_length": round(s.mean_length, 2), "max_length": s.max_length, "vocabulary": s.vocab_size,
             "extra_columns": parsed.columns.width if parsed.columns else 0,
             "other_types_as_O": parsed.mapped_entities}
    return Upload(digest, lang, parsed.corpus, parsed.labeled, parsed.scheme, parsed.converted,
                  tuple(parsed.warnings), stats, parsed.columns, dict(parsed.other_types))


@dataclass(frozen=True)
class PerturbedCopy:
    """The upload under one perturbation: the sentences, the perturbation report, the CoNLL text and its hash."""

    corpus: Corpus
    report: dict[str, Any]
    conll: str
    digest: str


def perturbed_copy(upload: Upload, perturbation: str, config: ExperimentConfig,
                   options: EvalOptions) -> PerturbedCopy:
    """The upload perturbed with the inputs of `config`'s evaluation: the corpus that model saw (when the
    perturbation reads it), the evaluation's donor and encoder, its seed and rate; the file itself is the
    replacement pool (cached by content hash and choices). The CoNLL text keeps the file's other columns (POS,
    chunk, other entity types; `perturb.columns.carry_columns`).

    Args:
        upload: from `read_upload`.
        perturbation: a registry name.
        config: the pair's transfer model config (`xner_ui.inputs.transfer_config`).
        options: the evaluation options (`xner_ui.inputs.eval_options`).
    """
    return _perturbed(upload.digest, upload.lang_choice, perturbation, canonical_json(config_to_dict(config)),
                      dataclasses.astuple(options), str(data_dir()), str(cache_dir()), upload.corpus, upload.columns)


@st.cache_data(show_spinner="Perturbing the file…", max_entries=16)
def _perturbed(digest: str, lang_choice: str, perturbation: str, config_key: str, options_key: tuple[Any, ...],
               data_dir_key: str, cache_key: str, _corpus: Corpus, _columns: FileColumns | None) -> PerturbedCopy:
    from xner_core.corpus.conll import write_conll
    from xner_core.evaluation.inputs import evaluation_inputs, perturb_test
    from xner_core.perturb.columns import carry_columns

    config = config_from_dict(json.loads(config_key))
    lang = _corpus.lang if _corpus.lang != "xx" else config.target  # stopwords of the file's language
    inputs = evaluation_inputs(config, EvalOptions(*options_key), [perturbation], data_dir=data_dir_key,
                               cache=cache_key, text=_corpus, lang=lang)
    result = perturb_test(inputs, perturbation)
    text = write_conll(result.corpus, columns=carry_columns(_columns, result) if _columns is not None else None)
    return PerturbedCopy(result.corpus, result.report.as_dict(), text,
                         hashlib.sha256(text.encode("utf-8")).hexdigest())


@dataclass(frozen=True)
class UploadScores:
    """Predictions per (setting, condition) and, for a labeled file, one score row per (setting, condition,
    scope): F1 with bootstrap CIs and the paired drop against the clean condition."""

    predictions: dict[tuple[str, str], list[list[str]]]
    rows: list[dict[str, Any]]


def upload_scores(upload: Upload, perturbation: str, perturbed: PerturbedCopy | None,
                  keys: Sequence[hooks.ModelKey]) -> UploadScores:
    """Tag the upload (and its perturbed copy) with the cached models of `keys` this session uses, and score
    them when the file is labeled (cached by content hash, perturbation and model hashes).

    Args:
        upload: from `read_upload`.
        perturbation: the perturbation of `perturbed`.
        perturbed: the perturbed copy, or None (then only the file as uploaded is tagged).
        keys: the models (typically native and transfer of the sidebar pair).
    """
    models = tuple((key.setting, h) for key in keys if (h := hooks.picked(key)) is not None)
    conditions = ((CLEAN, upload.corpus),) + (((perturbation, perturbed.corpus),) if perturbed is not None else ())
    ids = ((CLEAN, upload.digest),) + (((perturbation, perturbed.digest),) if perturbed is not None else ())
    return _scores(ids, upload.lang_choice, models, str(cache_dir()), upload.labeled, conditions)


@st.cache_data(show_spinner=False, max_entries=16)
def _scores(conditions: tuple[tuple[str, str], ...], lang_choice: str, models: tuple[tuple[str, str], ...],
            cache_key: str, labeled: bool, _corpora: tuple[tuple[str, Corpus], ...]) -> UploadScores:
    # Keyed by (condition, content hash) pairs: the uploaded file's bytes and the perturbed copy's text.
    from xner_core.metrics.bootstrap import condition_rows

    preds: dict[tuple[str, str], list[list[str]]] = {}
    for setting, config_hash in models:
        for cond, corpus in _corpora:
            preds[setting, cond] = hooks.tag_with(config_hash, [s.tokens for s in corpus], cache_key)
    rows: list[dict[str, Any]] = []
    if labeled:
        clean = dict(_corpora)[CLEAN]
        for setting in dict.fromkeys(s for s, _ in preds):
            clean_pred = preds[setting, CLEAN]
            for cond, corpus in _corpora:
                reference = (clean.tags, clean_pred) if cond != CLEAN else (None, None)
                for r in condition_rows(corpus.tags, preds[setting, cond], *reference, n_resamples=BOOTSTRAP):
                    rows.append({"setting": setting, "condition": cond, **r})
    return UploadScores(preds, rows)


def scores_frame(scores: UploadScores) -> pd.DataFrame:
    """The score rows as a frame (empty when there are none)."""
    return pd.DataFrame(scores.rows)


def predictions_file(corpus: Corpus, columns: dict[str, list[list[str]]]) -> str:
    """CoNLL text with the gold tags and one column per prediction set (`corpus.conll.predictions_conll`)."""
    from xner_core.corpus.conll import predictions_conll

    return predictions_conll(corpus, columns)
