"""The evaluation inputs the pages perturb, from the core's ONE builder (`xner_core.evaluation.inputs`).

The pair explorer's examples, the sentence lab's variants and the upload page's perturbed copy use the inputs an
evaluation of the sidebar pair's transfer model reads: the corpus that model saw (its training cap), the test set
capped as the evaluation caps it, the evaluation's donor (the target's own names by default) and its encoder, with
the evaluation's perturbation seed and rate. The model is the cached one this session uses for the pair
(`hooks.picked`), else the one the dashboard would train (`hooks.preferred_config`: the `paper` preset's options),
so the examples are the sentences `xner eval` / the grid scores for that model.

Caching, keyed by ids (a config's canonical JSON, the options' field values, the data and cache directories):
`st.cache_resource` for the inputs (one shared object per process holding corpora and the context), and
`st.cache_data` for the example rows.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import streamlit as st

from xner_core.corpus.sentences import Sentence
from xner_core.evaluation.inputs import EvalInputs, evaluation_inputs, perturb_one
from xner_core.evaluation.jobs import EvalOptions
from xner_core.paths import cache_dir, data_dir
from xner_core.runs.config import ExperimentConfig, canonical_json, config_from_dict, config_to_dict
from xner_ui import catalog, hooks
from xner_ui.data import Missing, missing_splits

# What each context part is, for the sentence lab's "not run" note.
NEED_REASON = {
    "source": "the source training set",
    "target": "the target test set",
    "donor": "donor-language names",
    "embed": "a word embedder",
}


# ---------------------------------------------------------------------------------------------- which inputs


def eval_options(spec: Any = None) -> EvalOptions:
    """The evaluation options the dashboard reproduces: a preset's (`hooks.run_spec`; default the `paper`
    preset's), with the encoder `hooks.embed_model()` names for the context perturbations."""
    spec = spec if spec is not None else hooks.paper_spec()
    return dataclasses.replace(spec.eval_options(), embed_model=hooks.embed_model())


def transfer_config(model: str, source: str, target: str, spec: Any = None) -> ExperimentConfig:
    """The config of the pair's transfer model whose evaluation the pages reproduce.

    With `spec` (the run the view shows, `hooks.run_spec`), that run's model; without it, the cached model this
    session uses for (model, transfer, source, target) when there is one (evaluated on `target`: a transfer model
    serves every target of its source), else the one the dashboard would train.
    """
    key = hooks.ModelKey(model, "transfer", source, target)
    if spec is not None:
        return hooks.preferred_config(key, spec=spec)
    digest = hooks.picked(key)
    config = hooks.cached_config(digest) if digest is not None else None
    if config is None:
        return hooks.preferred_config(key)
    if config.target == target:
        return config
    from xner_core.runs.config import make_config

    return make_config(config.model, target, config.setting, sources=config.sources, seed=config.seed,
                       data=config.data, options=config.options)


def describe(config: ExperimentConfig, options: EvalOptions) -> str:
    """Which evaluation the perturbed sentences reproduce, e.g. "as the evaluation of the e5-small es→ca transfer
    model perturbs them: relative to the ≤5,000 es sentences it was trained on, in the first 2,000 ca test
    sentences, names for swaps from ca, perturbation seed 0"."""
    cap = config.options.max_train_sentences
    seen_langs = ",".join(config.sources) if config.setting != "native" else config.target
    seen = f"{'all the' if cap is None else f'the ≤{cap:,}'} {seen_langs} sentences it was trained on"
    test = (f"the first {options.test_limit:,}" if options.test_limit is not None else "all") + \
        f" {config.target} test sentences"
    where = f"{config.model} {seen_langs}→{config.target} {config.setting}"
    rate = "" if options.perturb_rate == 1.0 else f", rate {options.perturb_rate:g}"
    return (f"as the evaluation of the {where} model perturbs them: relative to {seen}, in {test}, names for "
            f"swaps from {options.donor_for(config.target)}, perturbation seed {options.perturb_seed}{rate}")


def missing_inputs(config: ExperimentConfig, options: EvalOptions, perturbations: Sequence[str],
                   test: bool = True) -> Missing | None:
    """The local WikiANN splits these inputs need that are not there (None when all are).

    Args:
        config, options: as for `pair_inputs`.
        perturbations: the perturbations to serve.
        test: whether the target's test set is needed (False: the caller brings its own text).
    """
    needs = {part for name in perturbations for part in catalog.perturbation_info(name).needs}
    wanted: list[tuple[str, str]] = []
    if test or "source" in needs:
        wanted += [(lang, "train") for lang in (config.sources if config.setting != "native" else (config.target,))]
    if test:
        wanted.append((config.target, "test"))
    if "donor" in needs:
        from xner_core.corpus.wikiann import wikiann_file

        donor = options.donor_for(config.target)
        if wikiann_file(donor, "extra") is None:
            wanted.append((donor, "dev"))
    return missing_splits(wanted)


def _config_key(config: ExperimentConfig) -> str:
    return canonical_json(config_to_dict(config))


def _options_key(options: EvalOptions) -> tuple[Any, ...]:
    return dataclasses.astuple(options)


# ---------------------------------------------------------------------------------------------- the inputs


@st.cache_resource(show_spinner="Loading the pair's WikiANN data…", max_entries=16)
def _inputs(config_key: str, options_key: tuple[Any, ...], perturbations: tuple[str, ...], lang: str | None,
            data_dir_key: str, cache_key: str) -> EvalInputs:
    inputs = evaluation_inputs(config_from_dict(json.loads(config_key)), EvalOptions(*options_key), perturbations,
                               data_dir=data_dir_key, cache=cache_key, lang=lang)
    inputs.context  # noqa: B018 - build the shared parts inside the spinner, once per process
    return inputs


def pair_inputs(config: ExperimentConfig, options: EvalOptions, perturbations: Sequence[str],
                lang: str | None = None) -> EvalInputs:
    """The evaluation inputs of `config` under `options` (seen corpus, capped test set, donor, context), shared
    by every session of the process.

    Args:
        config: the model's config (`transfer_config`).
        options: the evaluation options (`eval_options`).
        perturbations: the perturbations to serve (the donor is loaded only for name swaps).
        lang: stopword language of the context (default: the target).

    Returns:
        An `EvalInputs`; `.test` is the capped test set, `.context` the perturbation context.
    """
    return _inputs(_config_key(config), _options_key(options), tuple(sorted(set(perturbations))), lang,
                   str(data_dir()), str(cache_dir()))


@st.cache_resource(show_spinner=False, max_entries=8)
def _bare_context(lang: str, embed_model: str, cache_key: str) -> Any:
    from xner_core.perturb.context import build_context

    return build_context(None, None, embed=hooks.embedder_for(embed_model), lang=lang)


def bare_context(lang: str, options: EvalOptions) -> Any:
    """A context without corpora (no local data): only source-free perturbations run in it."""
    return _bare_context(lang, options.embed_model, str(cache_dir()))


def lacking(context: Any, perturbation: str) -> list[str]:
    """The context parts a perturbation reads that `context` lacks (see `NEED_REASON`)."""
    return [n for n in catalog.perturbation_info(perturbation).needs if getattr(context, n) is None]


def variant(context: Any, options: EvalOptions, perturbation: str, sentence: Sentence,
            index: int = 0) -> tuple[Sentence, set[int]]:
    """One sentence under a perturbation in `context` with the options' seed and rate, and the token positions
    the perturbation wrote (in the perturbed sentence)."""
    from xner_core.perturb.apply import perturb_sentence
    from xner_ui.render import changed_positions

    res = perturb_sentence(perturbation, sentence, context, seed=options.perturb_seed,
                           rate=options.rate_for(perturbation), index=index)
    return res.corpus[0], changed_positions(res.changes)


# ---------------------------------------------------------------------------------------------- examples


def examples_for(config: ExperimentConfig, options: EvalOptions, perturbation: str, n: int,
                 changed_only: bool = False) -> list[dict[str, Any]]:
    """The first `n` test sentences with an entity, perturbed exactly as the evaluation of `config` under
    `options` perturbs them (same seen corpus, capped test set, donor, encoder, seed and rate).

    Args:
        config: the model's config (`transfer_config`).
        options: the evaluation options (`eval_options`).
        perturbation: a registry name.
        n: how many sentences.
        changed_only: keep only sentences the perturbation changed (P1 changes only sentences with an entity
            shared with the source, often a minority).

    Returns:
        One dict per sentence: id, tokens, tags, p_tokens, p_tags, changed (indices in the perturbed sentence),
        kinds (change kinds). Cached per (arguments, data and cache directories).
    """
    return _example_rows(_config_key(config), _options_key(options), perturbation, n, changed_only,
                         str(data_dir()), str(cache_dir()))


@st.cache_data(show_spinner=False, max_entries=32)
def _example_rows(config_key: str, options_key: tuple[Any, ...], perturbation: str, n: int, changed_only: bool,
                  data_dir_key: str, cache_key: str) -> list[dict[str, Any]]:
    from xner_ui.render import changed_positions

    inputs = _inputs(config_key, options_key, (perturbation,), None, data_dir_key, cache_key)
    out: list[dict[str, Any]] = []
    for i, sent in enumerate(inputs.test):
        if len(out) >= n:
            break
        if all(t == "O" for t in sent.tags):
            continue  # sentences without entities show nothing for entity perturbations
        res = perturb_one(inputs, perturbation, sent, index=i)
        if changed_only and not res.changes:
            continue
        new = res.corpus[0]
        out.append({"id": sent.id, "tokens": list(sent.tokens), "tags": list(sent.tags),
                    "p_tokens": list(new.tokens), "p_tags": list(new.tags),
                    "changed": sorted(changed_positions(res.changes)),
                    "kinds": sorted({c.kind for c in res.changes})})
    return out
