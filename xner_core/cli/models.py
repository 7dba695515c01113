"""`xner train`, `xner eval`, `xner predict` and `xner models ls|rm|gc`: models of an experiment config."""

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
               "dev_scores": lm.manifest.get("dev_scores"), "timings": lm.manifest.get("timings")}
    emit(payload, as_json, lambda p: f"model {p['hash']}\ncache {p['path']}\n"
                                     f"best dev F1 {((p['dev_scores'] or {}).get('best_dev_f1'))}\n"
                                     f"train seconds {(p['timings'] or {}).get('train_s')}")


@app.command("eval")
@with_config()
def eval_cmd(
    config: Any, *,
    perturb: Optional[list[str]] = typer.Option(None, "--perturb", help="perturbation(s) besides clean (repeat)"),
    perturb_seed: int = typer.Option(0, help="perturbation seed"),
    rate: float = typer.Option(1.0, help="fraction of eligible units perturbed"),
    test_limit: Optional[int] = typer.Option(None, help="evaluate on the first N test sentences"),
    embed_model: str = typer.Option("e5-small", help="encoder for context-word perturbations"),
    donor: Optional[str] = typer.Option(None, help="donor language for name swaps (default: the target's extra split)"),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for CIs"),
    backend: str = typer.Option("torch", help="torch or onnx-int8 (CPU)"),
    store: Optional[Path] = typer.Option(None, help="also write the rows to this results store (DuckDB)"),
    data_dir: Optional[Path] = DataDirOpt, cache_dir: Optional[Path] = CacheOpt,
    device: Optional[str] = DeviceOpt, precision: str = PrecisionOpt, as_json: bool = JsonOpt,
) -> None:
    """Score a model on its target's clean and perturbed test sets (F1 with 95% CIs, paired drop CIs)."""
    from xner_core.evaluation.evaluate import evaluate
    from xner_core.evaluation.jobs import CLEAN, EvalOptions
    from xner_core.evaluation.modelstore import train_model
    from xner_core.perturb.registry import get_perturbation

    for name in perturb or []:
        if name != CLEAN:
            get_perturbation(name)  # an unknown name fails before any training
    if donor:
        donor = _language(donor, "donor")
    _quiet_transformers()
    check_precision(precision)
    lm = train_model(config, data_dir=data_dir, cache=cache_dir, device=device, precision=precision)
    options = EvalOptions(perturb_seed=perturb_seed, perturb_rate=rate, test_limit=test_limit,
                          embed_model=embed_model, donor=donor, bootstrap=bootstrap, backend=backend,
                          precision=precision)
    outcomes = evaluate(config, perturb or [], options, data_dir=data_dir, cache=cache_dir, loaded=lm, device=device)
    rows = [r for o in outcomes for r in o.rows]
    if store:
        from xner_core.experiments.store import ResultsStore

        ResultsStore(store).write(rows)
    keep = ("perturbation", "scope", "precision", "recall", "f1", "f1_low", "f1_high", "drop", "drop_low",
            "drop_high", "n_sentences", "support", "entities_changed_frac", "tokens_changed_frac")
    slim = [{k: r.get(k) for k in keep} for r in rows]

    def render(rs: list[dict[str, Any]]) -> str:
        def f(v: Any) -> str:
            return "   -  " if v is None else f"{100 * v:6.2f}"

        pair = f"{','.join(config.sources) or config.target}->{config.target}"
        lines = [f"model {lm.hash}  {config.model} {pair} {config.setting}",
                 f"{'perturbation':<16}{'scope':<8}{'F1':>7}{'95% CI':>17}{'drop':>8}{'drop CI':>17}"]
        for r in rs:
            if r["scope"] != "overall":
                continue
            lines.append(f"{r['perturbation']:<16}{r['scope']:<8}{f(r['f1'])} [{f(r['f1_low'])},{f(r['f1_high'])}]"
                         f"{f(r['drop'])}  [{f(r['drop_low'])},{f(r['drop_high'])}]")
        return "\n".join(lines)

    emit(slim, as_json, render)


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

