"""`xner train`, `xner eval`, `xner predict` and `xner models ls|rm|gc|export|import`: models of an experiment
config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer

from xner_core.cli.common import (
    CacheOpt,
    DataDirOpt,
    DeviceOpt,
    JsonOpt,
    PrecisionOpt,
    _language,
    _quiet_transformers,
    app,
    emit,
    models_app,
)
from xner_core.cli.options import with_config
from xner_core.numerics import check_precision


def _progress_bar() -> tuple[Callable[[int, int, dict[str, Any]], None], Callable[[], None]]:
    """A rich progress bar fed by the training callback; one task per training stage."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[loss]}"),
                   transient=False, console=None)
    tasks: dict[str, Any] = {}
    bar.start()

    def update(step: int, total: int, info: dict[str, Any]) -> None:
        stage = str(info.get("stage", "train"))
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total, loss="")
        loss = info.get("loss")
        bar.update(tasks[stage], completed=step, total=total, loss=f"loss {loss:.3f}" if loss is not None else "")

    return update, bar.stop



@app.command("train")
@with_config()
def train_cmd(
    config: Any, *, data_dir: Optional[Path] = DataDirOpt, cache_dir: Optional[Path] = CacheOpt,
    device: Optional[str] = DeviceOpt, precision: str = PrecisionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fine-tune (or fetch from the cache) the model of one experiment config; prints its hash and cache path."""
    from xner_core.evaluation.modelstore import model_cache, train_model

    _quiet_transformers()
    update, stop = (_progress_bar() if not as_json else (None, lambda: None))
    try:
        lm = train_model(config, data_dir=data_dir, cache=cache_dir, progress=update, device=device,
                         precision=check_precision(precision),
                         status=None if as_json else (lambda m: typer.echo(m, err=True)))
    finally:
        stop()
    payload = {"hash": lm.hash, "path": str(model_cache(cache_dir).path(config)),
               "dev_scores": lm.manifest.get("dev_scores"), "timings": lm.manifest.get("timings"),
               "adapter": lm.manifest.get("adapter"),  # LoRA: rank, trainable parameters, adapter/ size
               "note": (lm.manifest.get("train_info") or {}).get("tapt_note")}  # e.g. TAPT without a pretrained head
    emit(payload, as_json, lambda p: f"model {p['hash']}\ncache {p['path']}\n"
                                     f"best dev F1 {((p['dev_scores'] or {}).get('best_dev_f1'))}\n"
                                     f"train seconds {(p['timings'] or {}).get('train_s')}"
                                     + (f"\n{_adapter_line(p['adapter'])}" if p["adapter"] else "")
                                     + (f"\nnote: {p['note']}" if p["note"] else ""))


def _adapter_line(adapter: dict[str, Any]) -> str:
    """One line about a LoRA model's adapter (manifest's `adapter` section)."""
    return (f"adapter {adapter.get('kind')} r={adapter.get('r')} on {','.join(adapter.get('target_modules') or [])}"
            f" + {','.join(adapter.get('modules_to_save') or [])}: {_count(adapter.get('trainable_parameters'))} "
            f"trainable parameters of {_count(adapter.get('total_parameters'))}; weights merged, the adapter alone in "
            f"{adapter.get('dir')}/ ({_mb(adapter.get('adapter_bytes'))})")


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _mb(size: Any) -> str:
    return f"{size / 2**20:.2f} MB" if isinstance(size, (int, float)) else "size unknown"


@app.command("eval")
@with_config(checkpoint=True)
def eval_cmd(
    config: Any, *, checkpoint: Optional[str] = None,
    perturb: Optional[list[str]] = typer.Option(None, "--perturb", help="perturbation(s) besides clean (repeat)"),
    perturb_seed: int = typer.Option(0, help="perturbation seed"),
    rate: float = typer.Option(1.0, help="fraction of eligible units perturbed (for the *_matched perturbations: "
                               "the share of ALL gold entities)"),
    test_limit: Optional[int] = typer.Option(None, help="evaluate on the first N test sentences"),
    embed_model: str = typer.Option("e5-small", help="encoder for context-word perturbations"),
    donor: Optional[str] = typer.Option(None, help="donor language for name swaps (default: the target's extra split)"),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for CIs"),
    backend: str = typer.Option("torch", help="torch or onnx-int8 (CPU)"),
    store: Optional[Path] = typer.Option(None, help="also write the rows to this results store (DuckDB)"),
    test_file: Optional[Path] = typer.Option(None, "--test-file", help="score on this labelled CoNLL file instead "
                                             "of the target's WikiANN test split (token first, tag last; columns "
                                             "between them such as POS and chunk are allowed)"),
    lang: Optional[str] = typer.Option(None, "--lang", help="with --test-file: the file's language (default: "
                                       "--target)"),
    other_types: str = typer.Option("o", "--other-types", help="with --test-file: entity types other than "
                                    "PER/ORG/LOC (MISC, ...): o = read as O and count them, error = refuse the file"),
    data_dir: Optional[Path] = DataDirOpt, cache_dir: Optional[Path] = CacheOpt,
    device: Optional[str] = DeviceOpt, precision: str = PrecisionOpt, as_json: bool = JsonOpt,
) -> None:
    """Score a model on its target's clean and perturbed test sets (F1 with 95% CIs, paired drop CIs).

    With --test-file, on a user's labelled CoNLL file (CoNLL-2002/2003 style files as they are), perturbed as
    the test split would be; the report counts the entities of other types read as O.

    The model is the config's (trained when not cached), or with --checkpoint an existing token classifier
    evaluated as it is: its labels are mapped onto PER/ORG/LOC (the report says how and what became O).
    """
    from xner_core.evaluation.evaluate import evaluate
    from xner_core.evaluation.jobs import CLEAN, EvalOptions
    from xner_core.evaluation.modelstore import load_checkpoint_model, train_model
    from xner_core.perturb.registry import get_perturbation

    for name in perturb or []:
        if name != CLEAN:
            get_perturbation(name)  # an unknown name fails before any training
    if donor:
        donor = _language(donor, "donor")
    parsed = _read_test_file(test_file, lang, other_types, store, config.target, test_limit)
    _quiet_transformers()
    check_precision(precision)
    if checkpoint:
        lm = load_checkpoint_model(config, device=device)  # as it is: never trained
    else:
        lm = train_model(config, data_dir=data_dir, cache=cache_dir, device=device, precision=precision)
    options = EvalOptions(perturb_seed=perturb_seed, perturb_rate=rate, test_limit=test_limit,
                          embed_model=embed_model, donor=donor, bootstrap=bootstrap, backend=backend,
                          precision=precision, checkpoint=bool(checkpoint))
    outcomes = evaluate(config, perturb or [], options, data_dir=data_dir, cache=cache_dir, loaded=lm, device=device,
                        text=parsed.corpus if parsed else None, lang=parsed.corpus.lang if parsed else None)
    rows = [r for o in outcomes for r in o.rows]
    if store:
        from xner_core.experiments.store import ResultsStore

        ResultsStore(store).write(rows)
    keep = ("perturbation", "scope", "precision", "recall", "f1", "f1_low", "f1_high", "drop", "drop_low",
            "drop_high", "n_sentences", "support", "entities_changed_frac", "tokens_changed_frac")
    slim = [{k: r.get(k) for k in keep} for r in rows]
    mapping = lm.label_mapping
    payload: Any = slim if mapping is None else {
        "checkpoint": config.model, "role": config.setting, "sources": list(config.sources),
        "target": config.target, "label_mapping": mapping.as_dict(),
        "rows": [{"model": r.get("model"), **s} for r, s in zip(rows, slim)]}
    if parsed is not None:
        payload = {**(payload if isinstance(payload, dict) else {"rows": payload}),
                   "test_file": _file_report(test_file, parsed)}

    def render(p: Any) -> str:
        def f(v: Any) -> str:
            return "   -  " if v is None else f"{100 * v:6.2f}"

        rs = p["rows"] if isinstance(p, dict) else p
        pair = f"{','.join(config.sources) or config.target}->{config.target}"
        what = "checkpoint as " if mapping is not None else ""
        lines = [f"model {lm.hash}  {config.model} {pair} {what}{config.setting}"]
        if mapping is not None:
            lines.append(f"labels {mapping.describe()}")
        if parsed is not None:
            t = p["test_file"]
            mapped = ", ".join(f"{n} {k}" for k, n in t["other_types_as_O"].items()) or "none"
            lines.append(f"test file {t['path']} ({t['lang']}): {t['sentences']} sentences, {t['entities']} "
                         f"PER/ORG/LOC entities; other types read as O: {mapped}")
        lines.append(f"{'perturbation':<16}{'scope':<8}{'F1':>7}{'95% CI':>17}{'drop':>8}{'drop CI':>17}")
        for r in rs:
            if r["scope"] != "overall":
                continue
            lines.append(f"{r['perturbation']:<16}{r['scope']:<8}{f(r['f1'])} [{f(r['f1_low'])},{f(r['f1_high'])}]"
                         f"{f(r['drop'])}  [{f(r['drop_low'])},{f(r['drop_high'])}]")
        return "\n".join(lines)

    emit(payload, as_json, render)


def _read_test_file(path: Optional[Path], lang: Optional[str], other_types: str, store: Optional[Path],
                    target: str, limit: Optional[int]) -> Any:
    """`xner eval --test-file`: the user's file read and checked before any model is loaded (None without one)."""
    from xner_core.corpus.conll import OTHER_TYPES, read_conll
    from xner_core.errors import ConfigError, DataError

    if other_types not in OTHER_TYPES:
        raise ConfigError(f"unknown --other-types {other_types!r}; choose one of: {', '.join(OTHER_TYPES)}")
    if path is None:
        if lang is not None:
            raise ConfigError("--lang names the language of a --test-file; give --test-file too (or --target)")
        return None
    if store is not None:
        raise ConfigError("--store holds evaluations on the WikiANN test splits; leave it out with --test-file")
    parsed = read_conll(path, lang=_language(lang, "lang") if lang else target, other_types=other_types)
    if not parsed.labeled:
        raise DataError(f"{path}: the file has one column (no tags), so there is nothing to score; give token and "
                        "tag columns (or tag it with the upload page)")
    return parsed.head(limit)  # --test-limit caps the file too; the counts are those of the sentences scored


def _file_report(path: Optional[Path], parsed: Any) -> dict[str, Any]:
    """What `xner eval --test-file` reports about the file besides the scores."""
    from xner_core.corpus.sentences import corpus_stats

    stats = corpus_stats(parsed.corpus)
    return {"path": str(path), "lang": parsed.corpus.lang, "sentences": stats.sentences,
            "entities": stats.entities, "scheme": parsed.scheme,
            "extra_columns": parsed.columns.width if parsed.columns else 0,
            "other_types_as_O": dict(parsed.other_types), "mapped_entities": parsed.mapped_entities,
            "warnings": list(parsed.warnings)}


@app.command("predict")
@with_config(target_from="lang")
def predict_cmd(
    config: Any, *,
    text: str = typer.Argument(..., help="a sentence (any script); it is split into words and punctuation"),
    lang: str = typer.Option(..., "--lang", help="language of the sentence (the model's target)"),
    data_dir: Optional[Path] = DataDirOpt, cache_dir: Optional[Path] = CacheOpt,
    device: Optional[str] = DeviceOpt, precision: str = PrecisionOpt, as_json: bool = JsonOpt,
) -> None:
    """Tag one sentence with the model of a config (trained first when not cached)."""
    from xner_core.corpus.textcheck import check_sentence
    from xner_core.evaluation.modelstore import train_model
    from xner_core.inference.text import predict_text

    _quiet_transformers()
    text = check_sentence(text)
    check_precision(precision)
    lm = train_model(config, data_dir=data_dir, cache=cache_dir, device=device, precision=precision)
    pred = predict_text(lm.model, lm.tokenizer, text, device=device, precision=precision)
    payload = {"model": lm.hash, "tokens": list(pred.tokens), "tags": list(pred.tags),
               "entities": [list(e) for e in pred.entities]}
    emit(payload, as_json, lambda p: "\n".join(f"{t}\t{g}" for t, g in zip(p["tokens"], p["tags"])))


@models_app.command("ls")
def models_ls(cache_dir: Optional[Path] = CacheOpt, verify: bool = typer.Option(False, help="check checksums"),
              as_json: bool = JsonOpt) -> None:
    """List cached models."""
    from xner_core.evaluation.modelstore import model_cache

    rows = []
    for e in model_cache(cache_dir).entries(verify=verify):
        config = e.config or {}
        rows.append({"hash": e.hash, "model": config.get("model"), "setting": config.get("setting"),
                     "sources": config.get("sources"), "target": config.get("target"), "seed": config.get("seed"),
                     "size_mb": round(e.size_bytes / 2**20, 1), "created": e.created, "valid": e.valid,
                     "problem": e.problem})
    emit(rows, as_json, lambda rs: "\n".join(
        f"{r['hash']}  {str(r['model']):<10} {str(r['setting']):<12} {','.join(r['sources'] or [])}->{r['target']}"
        f"  {r['size_mb']:>7} MB  {'ok' if r['valid'] else 'INVALID: ' + str(r['problem'])}" for r in rs)
        or "no cached models")


@models_app.command("rm")
def models_rm(hash_prefix: str = typer.Argument(..., help="model hash or unique prefix"),
              cache_dir: Optional[Path] = CacheOpt, as_json: bool = JsonOpt) -> None:
    """Remove one cached model."""
    from xner_core.evaluation.modelstore import model_cache

    removed = model_cache(cache_dir).remove(hash_prefix)
    emit({"removed": removed}, as_json, lambda p: f"removed {p['removed']}")


@models_app.command("gc")
def models_gc(cache_dir: Optional[Path] = CacheOpt,
              max_gb: Optional[float] = typer.Option(None, help="then remove oldest entries beyond this size"),
              as_json: bool = JsonOpt) -> None:
    """Remove invalid entries, stale temporary directories and orphan locks (and oldest beyond --max-gb)."""
    from xner_core.evaluation.modelstore import model_cache

    removed = model_cache(cache_dir).gc(max_bytes=int(max_gb * 2**30) if max_gb else None, verify=True)
    emit({"removed": removed}, as_json, lambda p: "\n".join(p["removed"]) or "nothing to remove")



def _clean_scores(store: Optional[Path], digest: str) -> list[dict[str, Any]]:
    """The clean overall rows of a config hash in the results store, one per target (full test sets first)."""
    from xner_core.experiments.store import ResultsStore

    df = ResultsStore(store).frame({"config_hash": digest, "scope": "overall", "perturbation": "clean"})
    best: dict[str, dict[str, Any]] = {}
    for row in df.to_dict("records"):
        limit = row.get("test_limit")
        row["test_limit"] = None if limit is None or limit != limit else int(limit)  # NaN from pandas: no cap
        key = (row["test_limit"] is not None, -(row.get("n_sentences") or 0), str(row.get("eval_dtype")) == "int8")
        kept = best.get(row["target"])
        if kept is None or key < kept["_key"]:
            best[row["target"]] = {**row, "_key": key}
    return [{k: r.get(k) for k in ("target", "f1", "f1_low", "f1_high", "n_sentences", "test_limit")}
            for _, r in sorted(best.items())]


@models_app.command("export")
def models_export(hash_prefix: str = typer.Argument(..., help="model hash or unique prefix"),
                  out_dir: Path = typer.Argument(..., help="a new directory to write"),
                  store: Optional[Path] = typer.Option(None, help="results store for the card's test F1 "
                                                       "(default: the default store)"),
                  cache_dir: Optional[Path] = CacheOpt, as_json: bool = JsonOpt) -> None:
    """Write a cached model as a save_pretrained directory with a hub model card and the xner manifest.

    A LoRA model (trained with --adapter lora) is written whole (merged weights) and its adapter besides, in
    adapter/ (peft format, a few MB); the output says the size of each."""
    from xner_core.evaluation.modelstore import model_cache
    from xner_core.runs.portable import export_model

    cache = model_cache(cache_dir)
    digest = cache.resolve(hash_prefix)
    done = export_model(cache, digest, out_dir, scores=_clean_scores(store, digest))
    emit({"hash": done.hash, "path": str(done.path), "files": list(done.files), "evaluated": done.evaluated,
          "weights_bytes": done.weights_bytes, "adapter_bytes": done.adapter_bytes},
         as_json, lambda p: f"exported {p['hash']} to {p['path']} ({len(p['files'])} files, weights "
                            f"{_mb(p['weights_bytes'])}; test F1 "
                            f"{'on the card' if p['evaluated'] else 'not evaluated'})"
                            + (f"\nLoRA adapter alone in {p['path']}/adapter/: {_mb(p['adapter_bytes'])} (apply it to "
                               "the base model with peft; the weights beside it have it merged in)"
                               if p["adapter_bytes"] is not None else ""))


@models_app.command("import")
def models_import(src_dir: Path = typer.Argument(..., help="a directory written by `xner models export`"),
                  cache_dir: Optional[Path] = CacheOpt, as_json: bool = JsonOpt) -> None:
    """Validate an exported model directory and file it in the model cache under its config hash."""
    from xner_core.evaluation.modelstore import model_cache
    from xner_core.runs.portable import import_model

    _quiet_transformers()
    done = import_model(model_cache(cache_dir), src_dir)
    emit({"hash": done.hash, "path": str(done.path), "added": done.added}, as_json,
         lambda p: (f"imported {p['hash']} into {p['path']}" if p["added"]
                    else f"model {p['hash']} is already cached at {p['path']}; nothing to do"))
