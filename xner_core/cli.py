"""The `xner` command: a thin typer shell over xner_core (every command also prints `--json`).

Each command resolves its options, calls one or two core functions and prints the result. Errors a user can
cause (`XnerError`) are printed as one line `error: ...` with exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from .errors import XnerError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cross-lingual NER robustness explorer.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect the WikiANN data.")
app.add_typer(data_app, name="data")

DataDirOpt = typer.Option(None, "--data-dir", help="WikiANN directory (<dir>/<lang>/<split>.gz); env XNER_DATA_DIR")
JsonOpt = typer.Option(False, "--json", help="print machine-readable JSON")


def _jsonable(obj: Any) -> Any:
    """Convert dataclasses, tuples and paths into JSON-friendly values."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def emit(payload: Any, as_json: bool, render: Callable[[Any], str] | None = None) -> None:
    """Print `payload` as JSON or through `render` (a plain-text renderer)."""
    if as_json:
        typer.echo(json.dumps(_jsonable(payload), ensure_ascii=False, indent=2))
    else:
        typer.echo(render(payload) if render else json.dumps(_jsonable(payload), ensure_ascii=False, indent=2))


def _kv_table(d: dict[str, Any]) -> str:
    width = max((len(k) for k in d), default=0)
    lines = []
    for k, v in d.items():
        if isinstance(v, float):
            v = f"{v:.4f}"
        lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines)


@data_app.command("stats")
def data_stats(
    lang: str = typer.Argument(..., help="language code, e.g. br"),
    split: Optional[str] = typer.Option(None, help="one split (train/dev/test/extra); default all present"),
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Sentence, token and entity counts of a language's WikiANN splits."""
    from .corpus import corpus_stats, load_wikiann, split_sizes

    splits = [split] if split else list(split_sizes(lang, data_dir))
    if not splits:
        raise XnerError(f"no local WikiANN files for {lang!r} under {data_dir or 'XNER_DATA_DIR'}")
    out = {s: _jsonable(corpus_stats(load_wikiann(lang, s, data_dir))) for s in splits}
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
def data_languages(data_dir: Optional[Path] = DataDirOpt, as_json: bool = JsonOpt) -> None:
    """Languages with local WikiANN data, with their metadata."""
    from .corpus import available_languages
    from .languages import get_language

    rows = []
    for code in available_languages(data_dir):
        lang = get_language(code)
        rows.append(_jsonable(lang))
    emit(rows, as_json, lambda rs: "\n".join(f"{r['code']:<4} {r['name']:<14} {r['family']:<16} {r['script']}" for r in rs))


@data_app.command("pairs")
def data_pairs(as_json: bool = JsonOpt) -> None:
    """The 13 source->target pairs of the reference study."""
    from .languages import reference_pairs

    rows = [_jsonable(p) for p in reference_pairs()]
    emit(rows, as_json, lambda rs: "\n".join(f"{r['source']}->{r['target']:<4} {r['relation']}" for r in rs))


@app.command("overlap")
def overlap(
    source: str = typer.Argument(..., help="source language (its train split)"),
    target: str = typer.Argument(..., help="target language (its test split)"),
    source_split: str = typer.Option("train", help="split of the source"),
    target_split: str = typer.Option("test", help="split of the target"),
    limit: Optional[int] = typer.Option(None, help="use only the first N sentences of each side"),
    uriel: bool = typer.Option(True, help="also compute URIEL distances (first call loads URIEL, a few seconds)"),
    tokenizer: Optional[str] = typer.Option(None, help="model whose tokenizer gives the subword overlap (e.g. e5-small)"),
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Entity/word/subword overlap between a source training set and a target test set, plus URIEL distances."""
    from .corpus import load_wikiann
    from .overlap import overlap_features

    src = load_wikiann(source, source_split, data_dir, limit=limit)
    tgt = load_wikiann(target, target_split, data_dir, limit=limit)
    tok = None
    if tokenizer:
        from .models import load_tokenizer

        tok = load_tokenizer(tokenizer)
    out: dict[str, Any] = {"source": source, "target": target, **overlap_features(src, tgt, tokenizer=tok)}
    if uriel:
        from .distance import uriel_distances

        out.update({f"uriel_{k}": v for k, v in uriel_distances(source, target).items()})
    emit(out, as_json, _kv_table)


@app.command("perturb")
def perturb(
    source: str = typer.Argument(..., help="source language: its train split is the 'seen' data"),
    target: str = typer.Argument(..., help="target language: its test split is perturbed"),
    name: str = typer.Argument(..., help="perturbation name (see `xner perturbations`)"),
    seed: int = typer.Option(0, help="random seed"),
    rate: float = typer.Option(1.0, help="fraction of eligible units changed (1.0 = all, as in the study)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the perturbed test set as token<TAB>tag CoNLL"),
    limit: Optional[int] = typer.Option(None, help="perturb only the first N target sentences"),
    donor: Optional[str] = typer.Option(None, help="donor language for person_swap/location_swap"),
    embed_model: str = typer.Option("e5-small", help="encoder for context_replace word embeddings"),
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Perturb a target test set relative to a source training set and report what changed."""
    from .conll import write_conll
    from .corpus import load_wikiann
    from .perturb import build_context, get_perturbation, perturb_corpus

    pert = get_perturbation(name)
    src = load_wikiann(source, "train", data_dir)
    tgt = load_wikiann(target, "test", data_dir, limit=limit)
    donor_corpus = load_wikiann(donor, "train", data_dir) if donor else None
    if donor_corpus is None and "donor" in pert.needs:
        raise XnerError(f"perturbation {name!r} needs --donor LANG (a language whose names are swapped in)")
    embed = None
    if "embed" in pert.needs:
        from .embed import make_word_embedder

        embed = make_word_embedder(embed_model)
    ctx = build_context(src, tgt, donor=donor_corpus, embed=embed, lang=target)
    result = perturb_corpus(name, tgt, ctx, seed=seed, rate=rate)
    if out:
        write_conll(result.corpus, out)
    payload = {"report": result.report.as_dict(), "out": str(out) if out else None}
    emit(payload, as_json, lambda p: _kv_table(p["report"]) + (f"\nwritten to {p['out']}" if p["out"] else ""))


@app.command("perturbations")
def perturbations(as_json: bool = JsonOpt) -> None:
    """List the registered perturbations."""
    from .perturb import PERTURBATIONS

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
    from .conll import read_conll
    from .metrics import bootstrap_ci, error_breakdown, score, scores_table

    g = read_conll(gold).corpus
    p = read_conll(pred).corpus
    if len(g) != len(p):
        raise XnerError(f"gold has {len(g)} sentences but predictions have {len(p)}; they must match one to one")
    for i, (gs, ps) in enumerate(zip(g, p)):
        if gs.tokens != ps.tokens:
            raise XnerError(f"sentence {i + 1}: gold and predicted tokens differ; score the same tokenisation")
    s = score(g.tags, p.tags)
    payload: dict[str, Any] = {"scores": scores_table(s), "errors": _jsonable(error_breakdown(g.tags, p.tags))}
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print `error: ...` and exit 2."""
    try:
        app(args=argv, standalone_mode=False)
    except XnerError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
