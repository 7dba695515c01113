"""Language features stage: predictors of candidate source languages for a target, for the source ranking.

For a target T and each candidate source S with local WikiANN data, the same predictors the result rows carry:
the overlap measures of `xner_core.features.overlap.overlap_features` (S's train split against T's test split, as
the study measured them, docs/paper-spec.md §5) and the URIEL distances of `xner_core.features.distance`. The
analysis (`xner_core.analysis.source_rank`) ranks the candidates by them.

Cost: one candidate reads its train split (up to 20,000 sentences) and counts overlaps, about half a second. So
- candidates are first ordered by their URIEL distances to T (cheap: a small JSON file per pair once computed) and
  only the `max_candidates` closest get the overlap measures;
- the overlap values of a pair are cached on disk under `<cache>/source_rank/` keyed by the two split files (path,
  size, mtime), the tokenizer and `FEATURES_VERSION`, so a page rerun or a second CLI call reads one small file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from xner_core.errors import DataError
from xner_core.paths import cache_dir, write_json_cache

# Bump when the overlap measures change meaning: cached values of another version are recomputed.
FEATURES_VERSION = 1
# The URIEL kinds that order candidates before the overlap measures are computed (smaller = closer). The other
# kinds are missing for many low-resource languages.
PRESELECT_KINDS: tuple[str, ...] = ("genetic", "syntactic", "geographic")
_OVERLAP_KEYS: tuple[str, ...] = ("entity_token_overlap", "unique_chunk_overlap", "o_word_overlap",
                                  "o_word_overlap_p2", "subword_type_overlap", "subword_token_overlap")


@dataclass(frozen=True)
class PairFeatures:
    """The predictors of one (source, target) pair.

    Attributes:
        source: the candidate source language.
        target: the target language.
        values: predictor column -> value (`entity_token_overlap`, ..., `uriel_genetic`, ...); None = unknown.
        train_sentences: sentences in the source's train split (0 when its overlap was not computed).
    """

    source: str
    target: str
    values: dict[str, float | None] = field(default_factory=dict)
    train_sentences: int = 0


@dataclass(frozen=True)
class CandidateSet:
    """What `candidate_features` computed for a target.

    Attributes:
        target: the target language.
        features: one PairFeatures per candidate that got overlap measures (and per `include` source with local
            data), in the order they were selected.
        considered: candidates with local data (the target and `exclude` left out).
        preselected_by: how the candidates were cut to `max_candidates` (a sentence for the user).
        problem: why there is no shortlist (e.g. no local test split for the target); None when there is one.
    """

    target: str
    features: tuple[PairFeatures, ...]
    considered: int
    preselected_by: str
    problem: str | None = None


def _uriel_values(source: str, target: str) -> dict[str, float | None]:
    """URIEL distances as `uriel_<kind>` columns; all None when URIEL+ is unavailable for the pair."""
    from xner_core.features.distance import DISTANCE_KINDS, uriel_distances

    try:
        values = uriel_distances(source, target)
    except DataError:  # urielplus not installed and the pair not in the packaged table
        values = {k: None for k in DISTANCE_KINDS}
    return {f"uriel_{k}": v for k, v in values.items()}


def _closeness(values: dict[str, float | None]) -> float:
    """Mean of the PRESELECT_KINDS distances a pair has (inf when it has none): the pre-selection order."""
    known = [v for k in PRESELECT_KINDS if (v := values.get(f"uriel_{k}")) is not None]
    return sum(known) / len(known) if known else math.inf


def _file_key(path: Path) -> list[Any]:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _cache_path(source_file: Path, target_file: Path, tokenizer: str | None, cache: str | os.PathLike[str] | None
                ) -> Path:
    key = json.dumps([FEATURES_VERSION, _file_key(source_file), _file_key(target_file), tokenizer or ""])
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return cache_dir(cache) / "source_rank" / f"{digest}.json"


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
        return None
    return data


def overlap_values(source: str, target: str, data_dir: str | os.PathLike[str] | None = None,
                   tokenizer: str | None = None, cache: str | os.PathLike[str] | None = None
                   ) -> tuple[dict[str, float | None], int]:
    """The overlap predictors of one pair from local files, cached on disk.

    Args:
        source: source language (its local train split).
        target: target language (its local test split).
        data_dir: the WikiANN directory (default: `paths.data_dir()`).
        tokenizer: a model name whose tokenizer gives the sub-word overlap (e.g. "e5-small"); None: no sub-word
            measures.
        cache: the xner cache root (default: `paths.cache_dir()`).

    Returns:
        ({column: value}, sentences in the source's train split). Raises DataError when either split is not
        there locally (no hub download: a shortlist must stay affordable).
    """
    from xner_core.corpus.wikiann import load_wikiann, wikiann_file
    from xner_core.paths import data_dir as resolve_data_dir

    files = {}
    for lang, split in ((source, "train"), (target, "test")):
        path = wikiann_file(lang, split, data_dir)
        if path is None:
            raise DataError(f"no local WikiANN {split} split for {lang!r} under {resolve_data_dir(data_dir)}")
        files[split] = path
    where = _cache_path(files["train"], files["test"], tokenizer, cache)
    cached = _read_cache(where)
    if cached is not None:
        return {k: (None if v is None else float(v)) for k, v in cached["values"].items()}, int(cached["train"])
    from xner_core.features.overlap import overlap_features

    train = load_wikiann(source, "train", data_dir)
    tok = None
    if tokenizer:
        from xner_core.models.registry import load_tokenizer

        tok = load_tokenizer(tokenizer)
    measured = overlap_features(train, load_wikiann(target, "test", data_dir), tokenizer=tok)
    values: dict[str, float | None] = {k: measured.get(k) for k in _OVERLAP_KEYS if k in measured}
    write_json_cache(where, {"values": values, "train": len(train), "source": source, "target": target,
                         "tokenizer": tokenizer, "version": FEATURES_VERSION})
    return values, len(train)


def candidate_sources(target: str, data_dir: str | os.PathLike[str] | None = None,
                      exclude: Sequence[str] = ()) -> list[str]:
    """Languages that could be a source for `target`: local data with a train split, sorted by code.

    Args:
        target: the target language (left out).
        data_dir: the WikiANN directory.
        exclude: further codes to leave out (e.g. the sources already measured).

    Returns:
        Language codes.
    """
    from xner_core.corpus.wikiann import available_languages, wikiann_file

    skip = {target, *exclude}
    return [c for c in available_languages(data_dir) if c not in skip and wikiann_file(c, "train", data_dir)]


def candidate_features(target: str, *, max_candidates: int = 10, include: Sequence[str] = (),
                       data_dir: str | os.PathLike[str] | None = None, tokenizer: str | None = None,
                       cache: str | os.PathLike[str] | None = None) -> CandidateSet:
    """Predictors of the candidate sources of a target (and of the `include` sources), for the source ranking.

    Args:
        target: the target language (a known code; `languages.get_language` raises ConfigError otherwise).
        max_candidates: how many candidates get the overlap measures: the closest by mean URIEL genetic, syntactic
            and geographic distance (those without any distance last, then by code); 0 = every candidate.
        include: sources to compute whatever the cut (e.g. the measured ones, to fill their missing predictors);
            they are not counted as candidates.
        data_dir: the WikiANN directory.
        tokenizer: model name for the sub-word overlap (None: none).
        cache: the xner cache root.

    Returns:
        A CandidateSet; its `problem` says why it is empty when the target has no local test split.
    """
    from xner_core.corpus.languages import get_language
    from xner_core.corpus.wikiann import wikiann_file
    from xner_core.errors import ConfigError
    from xner_core.paths import data_dir as resolve_data_dir

    target = get_language(target, data_dir).code
    if max_candidates < 0:
        raise ConfigError(f"max_candidates must be 0 (all) or a positive number, not {max_candidates}")
    if wikiann_file(target, "test", data_dir) is None:
        return CandidateSet(target, (), 0, "", f"no local WikiANN test split for {target!r} under "
                                               f"{resolve_data_dir(data_dir)}: candidates are ranked against it")
    extra = [s for s in dict.fromkeys(include) if s != target]
    pool = candidate_sources(target, data_dir, exclude=extra)
    uriel = {c: _uriel_values(c, target) for c in pool}
    order = sorted(pool, key=lambda c: (_closeness(uriel[c]), c))
    chosen = order if max_candidates == 0 else order[:max_candidates]
    how = (f"all {len(pool)} candidates with local data" if len(chosen) == len(pool) else
           f"the {len(chosen)} of {len(pool)} candidates closest to {target} by mean URIEL "
           f"{'/'.join(PRESELECT_KINDS)} distance")
    out = []
    for source in [*extra, *chosen]:
        try:
            overlap, n_train = overlap_values(source, target, data_dir, tokenizer, cache)
        except DataError:  # an `include` source without local data: its rows' own values are all there is
            continue
        values = {**overlap, **(uriel.get(source) or _uriel_values(source, target))}
        out.append(PairFeatures(source, target, values, n_train))
    return CandidateSet(target, tuple(out), len(pool), how)
