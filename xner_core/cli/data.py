"""`xner data ...`, `xner overlap`, `xner perturb`, `xner perturbations`, `xner score`: the data-side commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from xner_core.cli.common import DataDirOpt, JsonOpt, ProtocolOpt, _kv_table, _language, app, data_app, emit
from xner_core.errors import XnerError
from xner_core.jsonable import jsonable


@data_app.command("stats")
def data_stats(
    lang: str = typer.Argument(..., help="language code, e.g. br"),
    split: Optional[str] = typer.Option(None, help="one split (train/dev/test/extra); default all present"),
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Sentence, token and entity counts of a language's WikiANN splits."""
    from xner_core.corpus.resplit import split_sizes
    from xner_core.corpus.sentences import corpus_stats
    from xner_core.corpus.wikiann import available_languages, load_wikiann
    from xner_core.paths import data_dir as resolve_data_dir

    lang = _language(lang, "language")
    splits = [split] if split else list(split_sizes(lang, data_dir))
    if not splits:
        from xner_core.corpus.languages import data_hint

        local = available_languages(data_dir)
        raise XnerError(f"no local WikiANN files for {lang!r} under {resolve_data_dir(data_dir)}; "
                        f"{data_hint(lang, data_dir)}. Languages with local data: {', '.join(local) or 'none'}")
    out = {s: jsonable(corpus_stats(load_wikiann(lang, s, data_dir))) for s in splits}
    emit(out, as_json, lambda d: "\n\n".join(f"[{lang} {s}]\n" + _kv_table(_flat(v)) for s, v in d.items()))


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@data_app.command("languages")
def data_languages(data_dir: Optional[Path] = DataDirOpt, as_json: bool = JsonOpt,
                   all_: bool = typer.Option(False, "--all", help="every language xner knows: the 176 of WikiANN "
                                             "on the Hugging Face hub and any with local data, each marked local "
                                             "or not")) -> None:
    """Languages with local WikiANN data, with their metadata (--all: every WikiANN language)."""
    from xner_core.corpus.languages import get_language, known_languages, local_codes, on_hub
    from xner_core.corpus.wikiann import available_languages

    if not all_:
        rows = [jsonable(get_language(code, data_dir)) for code in available_languages(data_dir)]
        emit(rows, as_json, lambda rs: "\n".join(f"{r['code']:<4} {r['name']:<14} {r['family']:<16} {r['script']}"
                                                 for r in rs))
        return
    local = set(local_codes(data_dir))
    rows = [{**jsonable(lang), "local": lang.code in local, "hub": on_hub(lang.code)}
            for lang in known_languages(data_dir)]

    def render(rs: list[dict[str, Any]]) -> str:
        lines = [f"{r['code']:<13} {r['name'][:26]:<26} {r['iso639_3'] or '-':<4} {r['script']:<5} "
                 f"{'local' if r['local'] else 'hub' if r['hub'] else '-'}" for r in rs]
        n_local = sum(r["local"] for r in rs)
        lines.append(f"{len(rs)} languages, {n_local} with local data; put another's splits at "
                     f"<data dir>/<code>/{{train,dev,test}}.gz, or go online to load it from the hub")
        return "\n".join(lines)

    emit(rows, as_json, render)


@data_app.command("pairs")
def data_pairs(as_json: bool = JsonOpt) -> None:
    """The 13 source->target pairs of the reference study."""
    from xner_core.corpus.languages import reference_pairs

    rows = [jsonable(p) for p in reference_pairs()]
    emit(rows, as_json, lambda rs: "\n".join(f"{r['source']}->{r['target']:<4} {r['relation']}" for r in rs))


@app.command("overlap")
def overlap(
    source: str = typer.Argument(..., help="source language (its train split)"),
    target: str = typer.Argument(..., help="target language (its test split)"),
    source_split: str = typer.Option("train", help="split of the source"),
    target_split: str = typer.Option("test", help="split of the target"),
    limit: Optional[int] = typer.Option(None, help="use only the first N sentences of each side"),
    uriel: bool = typer.Option(True, help="also compute URIEL distances (first call loads URIEL, a few seconds)"),
    tokenizer: Optional[str] = typer.Option(None, help="model whose tokenizer gives the subword overlap "
                                                       "(e.g. e5-small)"),
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Entity/word/subword overlap between a source training set and a target test set, plus URIEL distances."""
    from xner_core.corpus.wikiann import load_wikiann
    from xner_core.features.overlap import overlap_features

    source, target = _language(source, "source"), _language(target, "target")
    src = load_wikiann(source, source_split, data_dir, limit=limit)
    tgt = load_wikiann(target, target_split, data_dir, limit=limit)
    tok = None
    if tokenizer:
        from xner_core.models.registry import load_tokenizer

        tok = load_tokenizer(tokenizer)
    out: dict[str, Any] = {"source": source, "target": target, **overlap_features(src, tgt, tokenizer=tok)}
    if uriel:
        from xner_core.features.distance import uriel_distances

        out.update({f"uriel_{k}": v for k, v in uriel_distances(source, target).items()})
    emit(out, as_json, _kv_table)


@app.command("perturb")
def perturb(
    source: str = typer.Argument(..., help="source language: its train split is the 'seen' data"),
    target: str = typer.Argument(..., help="target language: its test split is perturbed"),
    name: str = typer.Argument(..., help="perturbation name (see `xner perturbations`)"),
    seed: int = typer.Option(0, help="random seed"),
    rate: float = typer.Option(1.0, help="fraction of eligible units changed (1.0 = all, as in the study; for the "
                               "*_matched perturbations: the share of ALL gold entities)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the perturbed test set as token<TAB>tag CoNLL"),
    limit: Optional[int] = typer.Option(None, help="perturb only the first N target sentences"),
    donor: Optional[str] = typer.Option(
        None, help="donor language for person_swap/location_swap; its names come from its extra split (else "
                   "dev), as in `xner eval` (default: the target itself, names from its extra split)"),
    embed_model: str = typer.Option("e5-small", help="encoder for context_replace word embeddings"),
    setting: str = typer.Option("transfer", "--setting",
                                help="whose training data is the 'seen' data: transfer (the source's train split) "
                                     "or native (the target's own train split)"),
    max_train: int = typer.Option(0, "--max-train",
                                  help="cap on the seen training sentences (0 = the whole split, as the study; "
                                       "5000 = what `xner eval` trains on by default)"),
    data: str = ProtocolOpt,
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Perturb a target test set relative to a source training set and report what changed.

    The seen training data, the test set, the donor corpus and the perturbation context come from the builder
    `xner eval` uses (`evaluation.inputs.evaluation_inputs`, default donor = the target), for a model of that
    setting, training cap and data protocol. So with the same --setting, --max-train, --data, --limit, seed, rate
    and donor, the file written with --out is the perturbed test set eval scores.
    """
    from xner_core.corpus.conll import write_conll
    from xner_core.evaluation.inputs import evaluation_inputs, perturb_test
    from xner_core.evaluation.jobs import EvalOptions
    from xner_core.perturb.registry import get_perturbation
    from xner_core.runs.config import make_config

    get_perturbation(name)
    source, target = _language(source, "source"), _language(target, "target")
    if setting not in ("transfer", "native"):
        raise XnerError(f"--setting {setting!r} is not one of: transfer, native (multi-source and distilled "
                        "models: perturb against each source with --setting transfer)")
    if max_train < 0:
        raise XnerError(f"--max-train must be 0 (the whole split) or a positive number of sentences, not {max_train}")
    donor_lang = _language(donor, "donor") if donor else None  # None: the target, as eval (EvalOptions.donor_for)
    config = make_config("e5-small", target, setting, sources=(source,) if setting == "transfer" else (),
                         max_train_sentences=max_train or None, data=data)
    options = EvalOptions(perturb_seed=seed, perturb_rate=rate, test_limit=limit, embed_model=embed_model,
                          donor=donor_lang)
    result = perturb_test(evaluation_inputs(config, options, [name], data_dir=data_dir), name)
    if out:
        write_conll(result.corpus, out)
    payload = {"report": result.report.as_dict(), "out": str(out) if out else None}
    emit(payload, as_json, lambda p: _kv_table(p["report"]) + (f"\nwritten to {p['out']}" if p["out"] else ""))


@app.command("perturbations")
def perturbations(as_json: bool = JsonOpt) -> None:
    """List the registered perturbations."""
    from xner_core.perturb.registry import PERTURBATIONS

    rows = [{"name": p.name, "title": p.title, "needs": list(p.needs), "description": p.description}
            for p in PERTURBATIONS.values()]
    emit(rows, as_json, lambda rs: "\n".join(f"{r['name']:<16} {r['title']}" for r in rs))


@app.command("score")
def score_cmd(
    gold: Path = typer.Argument(..., help="gold CoNLL file (token ... tag)"),
    pred: Path = typer.Argument(..., help="predicted CoNLL file, same sentences and tokens"),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for the 95% CI (0 = none)"),
    seed: int = typer.Option(0, help="bootstrap seed"),
    as_json: bool = JsonOpt,
) -> None:
    """Entity-level P/R/F1 (seqeval, strict IOB2) with a bootstrap CI and an error breakdown."""
    from xner_core.corpus.conll import read_conll
    from xner_core.metrics.bootstrap import bootstrap_ci
    from xner_core.metrics.breakdown import error_breakdown
    from xner_core.metrics.scores import score, scores_table

    g = read_conll(gold, other_types="error").corpus  # scores over PER/ORG/LOC only: other types are refused
    p = read_conll(pred, other_types="error").corpus
    if len(g) != len(p):
        raise XnerError(f"gold has {len(g)} sentences but predictions have {len(p)}; they must match one to one")
    for i, (gs, ps) in enumerate(zip(g, p)):
        if gs.tokens != ps.tokens:
            raise XnerError(f"sentence {i + 1}: gold and predicted tokens differ; score the same tokenisation")
    s = score(g.tags, p.tags)
    payload: dict[str, Any] = {"scores": scores_table(s), "errors": jsonable(error_breakdown(g.tags, p.tags))}
    if bootstrap > 0:
        lo, hi = bootstrap_ci(g.tags, p.tags, n_resamples=bootstrap, seed=seed)
        payload["f1_ci95"] = [lo, hi]

    def render(pl: dict[str, Any]) -> str:
        lines = [f"{'scope':<8} {'P':>7} {'R':>7} {'F1':>7} {'support':>8}"]
        for r in pl["scores"]:
            lines.append(f"{r['scope']:<8} {r['precision']:7.4f} {r['recall']:7.4f} {r['f1']:7.4f} {r['support']:8d}")
        if "f1_ci95" in pl:
            lines.append(f"F1 95% CI: [{pl['f1_ci95'][0]:.4f}, {pl['f1_ci95'][1]:.4f}]")
        return "\n".join(lines)

    emit(payload, as_json, render)

