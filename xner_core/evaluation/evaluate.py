"""Stages 3-5 wired together: config -> cached model -> perturbed test sets -> predictions -> result rows.

This is the one place that turns an `ExperimentConfig` into evaluation work. The CLI (`xner eval`), the grid and
the scripts call `evaluate` / `iter_evaluate` with one `EvalOptions`; they never assemble evaluation inputs or
result rows themselves. The inputs (seen corpus, test set, donor, perturbation context) come from
`inputs.evaluation_inputs`, the model from `modelstore`, and each job's predictions are kept on disk
(`predictions`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Collection, Iterator, Mapping, Sequence

from xner_core.corpus.sentences import Corpus
from xner_core.errors import ConfigError, DataError
from xner_core.evaluation.inputs import evaluation_inputs, perturb_test
from xner_core.evaluation.jobs import CLEAN, EvalOptions, EvalOutcome, eval_jobs
from xner_core.evaluation.memo import FEATURES
from xner_core.evaluation.modelstore import LoadedModel, train_model, trained_at, trained_precision, trained_steps
from xner_core.evaluation.predictions import load_predictions, save_predictions, weights_id
from xner_core.metrics.bootstrap import SCOPES
from xner_core.metrics.seen import scope_groups, surface_counts
from xner_core.numerics import resolve_precision
from xner_core.runs.config import (
    ExperimentConfig,
    canonical_json,
    canonical_sources,
    config_hash,
    config_to_dict,
)


def evaluate(
    config: ExperimentConfig,
    perturbations: Sequence[str] = (CLEAN,),
    options: EvalOptions = EvalOptions(),
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    loaded: LoadedModel | None = None,
    device: Any = None,
    train_seconds: float | None = None,
    text: Corpus | None = None,
    lang: str | None = None,
) -> list[EvalOutcome]:
    """Evaluate a model config on its target's clean test set and under each perturbation.

    The model comes from `loaded`, else the cache (trained when missing). Clean predictions are computed once
    (and reused from disk by later calls); each perturbed job's drop is a paired bootstrap against them.

    Args:
        config: the model's experiment config (its target is the evaluated language).
        perturbations: registry names; "clean" is always evaluated first.
        options: the evaluation options (perturbation seed and rate, test cap, encoder, donor, bootstrap
            resamples, batch size, backend, precision; see `EvalOptions`).
        data_dir: WikiANN directory.
        cache: xner cache root.
        loaded: an already loaded model.
        device: torch device.
        train_seconds: recorded in the rows (default: from the model's manifest).
        text: sentences to score instead of the target's test set (a user's labelled file, `corpus.conll`), as
            given (no test cap); they are perturbed by the one builder (`evaluation_inputs(..., text=)`), their
            predictions are not cached on disk and their rows say `test_split` = the corpus's split ("user").
        lang: the language of `text` (its stopwords; default: the target).

    Returns:
        One outcome per condition, clean first; `outcome.rows` follow `results.SCHEMA`.
    """
    return list(iter_evaluate(config, perturbations, options, data_dir=data_dir, cache=cache, loaded=loaded,
                              device=device, train_seconds=train_seconds, text=text, lang=lang))


def iter_evaluate(
    config: ExperimentConfig,
    perturbations: Sequence[str] = (CLEAN,),
    options: EvalOptions = EvalOptions(),
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    loaded: LoadedModel | None = None,
    device: Any = None,
    train_seconds: float | None = None,
    skip: Collection[str] = (),
    text: Corpus | None = None,
    lang: str | None = None,
) -> Iterator[EvalOutcome]:
    """`evaluate`, one outcome at a time as each condition finishes (so a caller can store it at once).

    The parts every condition shares are built once per process and reused by later calls on the same data:
    the seen corpus, the pair features, the perturbation context (with its word embeddings) and each perturbed
    test set (keyed by seen corpus, test set, donor, embedder, perturbation, seed and rate).

    Args:
        config ... train_seconds, text, lang: as in `evaluate`.
        skip: ids of jobs not to run (already stored). A skipped perturbed job is not computed; a skipped clean
            job is still scored when another job needs it as the reference of its drop, but not yielded.

    Yields:
        One EvalOutcome per condition not skipped, clean first.
    """
    from xner_core.inference.predict import predict_tags
    from xner_core.metrics.bootstrap import condition_rows
    from xner_core.perturb.registry import get_perturbation

    jobs = eval_jobs(config, perturbations, options)
    names = [j.perturbation for j in jobs]
    for name in names[1:]:
        get_perturbation(name)  # unknown names fail before any work
    skip = frozenset(skip)
    todo = [j for j in jobs if j.id not in skip]
    if not todo:
        return
    precision = options.precision
    if options.checkpoint and (loaded is None or loaded.label_mapping is None):
        raise ConfigError("EvalOptions(checkpoint=True) evaluates an existing checkpoint as it is: pass it as "
                          "loaded=load_checkpoint_model(config); it is never trained from the config")
    lm = loaded or train_model(config, data_dir=data_dir, cache=cache, device=device, precision=precision)
    if train_seconds is None:
        train_seconds = float((lm.manifest.get("timings") or {}).get("train_s") or 0.0)
    inputs = evaluation_inputs(config, options, names, data_dir=data_dir, cache=cache, text=text, lang=lang)
    test = inputs.test
    if len(test) == 0:
        raise DataError(f"the {config.target!r} test set is empty; nothing to evaluate")
    seen = inputs.seen
    if inputs.key is None:  # a caller's text: no in-process key names it
        feats = pair_features(config, seen, test, tokenizer=lm.tokenizer)
    else:
        feats = FEATURES.get((*inputs.key, config.model),
                             lambda: pair_features(config, seen, test, tokenizer=lm.tokenizer))
    eval_dtype = "int8" if options.backend == "onnx-int8" else resolve_precision(precision, device)
    weights = weights_id(lm.manifest)  # stored predictions are reused only for these very weights
    common = {
        "config_hash": config_hash(config), "model": config.model,
        "sources": ",".join(canonical_sources(config) or (config.target,)), "target": config.target,
        "setting": config.setting, "options": canonical_json(config_to_dict(config)["options"]),
        "seed": config.seed, "data_protocol": config.data, "test_limit": options.test_limit,
        "test_split": "test" if text is None else (text.split or "user"),
        "train_seconds": train_seconds, "device": _device_name(lm.model), "versions": _versions(),
        "train_dtype": trained_precision(lm.manifest), "train_steps": trained_steps(lm.manifest),
        "trained_at": trained_at(lm.manifest), "eval_dtype": eval_dtype,
    }
    surfaces = surface_counts(seen)  # the model's training entities: the seen/unseen and bucket scopes
    wanted = {j.id for j in todo}
    clean_tags: list[list[str]] | None = None
    clean_groups: dict[str, tuple[list[list[str]], list[list[str]]]] = {}
    for job in jobs:
        name = job.perturbation
        if job.id not in wanted and name != CLEAN:
            continue
        t0 = time.perf_counter()
        report: dict[str, Any] = {}
        corpus: Corpus
        if name == CLEAN:
            corpus = test
        else:
            result = perturb_test(inputs, name)
            corpus = result.corpus
            report = result.report.as_dict()
        cached = load_predictions(job.id, cache) if text is None else None  # job ids name the test split
        if cached is not None and len(cached) == len(corpus) and all(
                tuple(c["tokens"]) == s.tokens and c.get("dtype") == eval_dtype and c.get("weights") == weights
                for c, s in zip(cached, corpus)):
            pred = [list(c["pred"]) for c in cached]
        else:
            pred = predict_tags(lm.model, lm.tokenizer, list(corpus), batch_size=options.batch_size, device=device,
                                backend=options.backend, precision=precision, labels=lm.labels)
            if text is None:
                save_predictions(job.id, corpus.sentences, pred, cache, dtype=eval_dtype, weights=weights)
        gold = corpus.tags
        groups = _surface_groups(corpus, gold, pred, surfaces)
        if name == CLEAN:
            clean_tags, clean_groups = pred, groups
            if job.id not in wanted:
                continue  # only the reference of the perturbed jobs' drops: no CIs, not yielded
        clean_gold, clean_pred = (test.tags, clean_tags) if name != CLEAN else (None, None)
        rows = []
        scored = condition_rows(gold, pred, clean_gold, clean_pred, n_resamples=options.bootstrap, seed=0,
                                scopes=SCOPES)
        for scope, (g, p) in groups.items():  # a perturbed condition's drop is against the clean set's same group
            cg, cp = clean_groups[scope] if name != CLEAN else (None, None)
            (numbers,) = condition_rows(g, p, cg, cp, n_resamples=options.bootstrap, seed=0, scopes=("overall",))
            scored.append({**numbers, "scope": scope})
        for numbers in scored:
            if name == CLEAN:
                numbers = {k: v for k, v in numbers.items() if not k.startswith("drop_")}
            rows.append({**common, "job_id": job.id, "perturbation": name,
                         "perturb_seed": options.perturb_seed if name != CLEAN else 0,
                         "perturb_rate": options.rate_for(name), **numbers,
                         "sentences_changed_frac": _frac(report, "sentences_changed", "sentences"),
                         "tokens_changed_frac": _frac(report, "tokens_changed", "tokens"),
                         "entities_changed_frac": _frac(report, "entities_changed", "entities"),
                         **{k: feats.get(k) for k in _FEATURE_COLUMNS}})
        eval_s = time.perf_counter() - t0
        for row in rows:
            row["eval_seconds"] = eval_s
        yield EvalOutcome(job, tuple(rows), corpus.sentences, tuple(tuple(p) for p in pred), report)


def _surface_groups(corpus: Corpus, gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                    surfaces: Mapping[str, int]) -> dict[str, tuple[list[list[str]], list[list[str]]]]:
    """Gold and predicted tags of each "seen" / "unseen" scope (the entities whose surface form occurs / does not
    occur in the model's training data) and of each length and training-frequency bucket (`metrics.seen`)."""
    return scope_groups([s.tokens for s in corpus], gold, pred, surfaces)


_FEATURE_COLUMNS = (
    "entity_token_overlap", "unique_chunk_overlap", "o_word_overlap", "subword_type_overlap",
    "subword_token_overlap", "uriel_genetic", "uriel_geographic", "uriel_syntactic", "uriel_phonological",
    "uriel_inventory", "uriel_featural", "n_sources", "diversity_genetic", "diversity_syntactic",
)


def _frac(report: Mapping[str, Any], num: str, den: str) -> float | None:
    if not report:
        return 0.0
    d = report.get(den) or 0
    return (report.get(num) or 0) / d if d else 0.0


def pair_features(config: ExperimentConfig, seen: Corpus, test: Corpus, tokenizer: Any = None) -> dict[str, Any]:
    """Overlap (seen training data vs clean test set) and URIEL features of a model config's pair.

    URIEL distances are averaged over the sources; for native rows they are 0 by definition (same language).
    """
    from xner_core.features.distance import DISTANCE_KINDS, source_diversity, uriel_distances
    from xner_core.features.overlap import overlap_features

    feats: dict[str, Any] = dict(overlap_features(seen, test, tokenizer=tokenizer))
    sources = canonical_sources(config) or (config.target,)
    for kind in DISTANCE_KINDS:
        vals = []
        for src in sources:
            try:
                v = uriel_distances(src, config.target).get(kind) if src != config.target else 0.0
            except Exception:  # a language URIEL lacks: leave the feature empty, never fail the evaluation
                v = None
            if v is not None:
                vals.append(v)
        feats[f"uriel_{kind}"] = sum(vals) / len(vals) if vals else None
    try:
        div = source_diversity(sources)
        feats["n_sources"] = div.count
        feats["diversity_genetic"] = div.mean_distance.get("genetic")
        feats["diversity_syntactic"] = div.mean_distance.get("syntactic")
    except Exception:
        feats["n_sources"] = len(sources)
    return feats


def _versions() -> dict[str, str]:
    from xner_core import __version__
    from xner_core.runs.cacheentry import library_versions

    return {**library_versions(), "xner": __version__}


def _device_name(model: Any) -> str:
    try:
        dev = next(model.parameters()).device
    except (StopIteration, AttributeError):
        return "cpu"
    if dev.type == "cuda":
        import torch

        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return dev.type
