"""The `xner` command: a thin typer shell over xner_core (every command also prints `--json`).

Each command resolves its options, calls one or two core functions and prints the result. Errors a user can
cause (`XnerError`) are printed as one line `error: ...` with exit code 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from xner_core.errors import XnerError
from xner_core.jsonable import jsonable
from xner_core.numerics import check_precision
from xner_core.training.settings import TrainOptions

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cross-lingual NER robustness explorer.")
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _show_version(value: bool) -> None:
    if value:
        from xner_core import __version__

        typer.echo(f"xner {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Cross-lingual NER robustness explorer (logging: XNER_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR)."""


def configure_logging(level: str | None = None) -> None:
    """Send xner's log records to stderr at `level` (default: env XNER_LOG_LEVEL, else WARNING).

    Args:
        level: a logging level name.

    Returns:
        None; raises XnerError for an unknown level name.
    """
    import logging
    import os

    name = (level or os.environ.get("XNER_LOG_LEVEL") or "WARNING").strip().upper()
    if name not in LOG_LEVELS:
        raise XnerError(f"XNER_LOG_LEVEL={name!r} is not a log level; choose one of: {', '.join(LOG_LEVELS)}")
    logger = logging.getLogger("xner_core")
    logger.setLevel(name)
    if not any(getattr(h, "_xner", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._xner = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
data_app = typer.Typer(no_args_is_help=True, help="Inspect the WikiANN data.")
app.add_typer(data_app, name="data")

DataDirOpt = typer.Option(None, "--data-dir", help="WikiANN directory (<dir>/<lang>/<split>.gz); env XNER_DATA_DIR")
ProtocolOpt = typer.Option("wikiann-rahimi", "--data", help="wikiann-rahimi (balanced splits) or paper-resplit")
JsonOpt = typer.Option(False, "--json", help="print machine-readable JSON")


def emit(payload: Any, as_json: bool, render: Callable[[Any], str] | None = None) -> None:
    """Print `payload` as JSON or through `render` (a plain-text renderer)."""
    if as_json:
        typer.echo(json.dumps(jsonable(payload), ensure_ascii=False, indent=2))
    else:
        typer.echo(render(payload) if render else json.dumps(jsonable(payload), ensure_ascii=False, indent=2))


def _language(code: str, role: str) -> str:
    """Check a language argument against the language table (`unknown language 'x'; choose one of: ...`).

    Done before any data is loaded, so a typo fails at once with the allowed codes instead of after a Hugging
    Face hub probe; train/eval/predict check the same table through `make_config`.
    """
    from xner_core.corpus.languages import get_language
    from xner_core.errors import ConfigError

    try:
        return get_language(code).code
    except ConfigError as exc:
        raise ConfigError(f"{role}: {exc}") from None


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
    from xner_core.corpus.resplit import split_sizes
    from xner_core.corpus.sentences import corpus_stats
    from xner_core.corpus.wikiann import available_languages, load_wikiann
    from xner_core.paths import data_dir as resolve_data_dir

    lang = _language(lang, "language")
    splits = [split] if split else list(split_sizes(lang, data_dir))
    if not splits:
        local = available_languages(data_dir)
        raise XnerError(f"no local WikiANN files for {lang!r} under {resolve_data_dir(data_dir)}; languages with "
                        f"local data: {', '.join(local) or 'none'}")
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
def data_languages(data_dir: Optional[Path] = DataDirOpt, as_json: bool = JsonOpt) -> None:
    """Languages with local WikiANN data, with their metadata."""
    from xner_core.corpus.languages import get_language
    from xner_core.corpus.wikiann import available_languages

    rows = []
    for code in available_languages(data_dir):
        lang = get_language(code)
        rows.append(jsonable(lang))
    emit(rows, as_json, lambda rs: "\n".join(f"{r['code']:<4} {r['name']:<14} {r['family']:<16} {r['script']}"
                                             for r in rs))


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
    rate: float = typer.Option(1.0, help="fraction of eligible units changed (1.0 = all, as in the study)"),
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

    g = read_conll(gold).corpus
    p = read_conll(pred).corpus
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


# ---------------------------------------------------------------------------------------------------------------
# models: train / eval / predict / models ls|rm|gc

models_app = typer.Typer(no_args_is_help=True, help="The content-addressed model cache.")
app.add_typer(models_app, name="models")
_TRAIN_DEFAULTS = TrainOptions()  # the CLI defaults are the library's: same options, same hash

ModelOpt = typer.Option("e5-small", "--model", help="mbert, xlmr, e5-small, tiny, a hub id or a local directory")
SettingOpt = typer.Option("transfer", "--setting", help="native, transfer, multi_source, distill or tapt")
SourceOpt = typer.Option(None, "--source", help="source language (repeat for several)")
TargetOpt = typer.Option(..., "--target", help="target language")
SeedOpt = typer.Option(0, "--seed", help="training seed")
EpochsOpt = typer.Option(1, "--epochs", help="training epochs")
LrOpt = typer.Option(None, "--lr", help="learning rate (default: per model; 2e-4 for e5-small)")
BatchOpt = typer.Option(32, "--batch-size", help="training batch size")
MaxTrainOpt = typer.Option(5000, "--max-train", help="cap on training sentences per language (0 = all)")
MaxDevOpt = typer.Option(1000, "--max-dev", help="cap on dev sentences (0 = no dev evaluation)")
RobustOpt = typer.Option(None, "--robust", help="adversarial or smoothing (Huang et al. 2021)")
BalancedOpt = typer.Option(False, "--balanced", help="multi_source: equal share per source language")
DistillWOpt = typer.Option("uniform", "--distill-weights", help="distill: uniform or similarity teacher weights")
TaptOpt = typer.Option(0, "--tapt-steps", help="tapt: masked-LM steps on target text before fine-tuning")
EarlyStopOpt = typer.Option(None, "--early-stopping", help="stop after N dev evaluations without a dev-F1 gain "
                                                          "(needs --max-dev > 0; default: off)")
WarmupOpt = typer.Option(_TRAIN_DEFAULTS.warmup_ratio, "--warmup", help="fraction of steps with linear LR warmup")
MaxLengthOpt = typer.Option(_TRAIN_DEFAULTS.max_length, "--max-length",
                            help="sub-tokens per sentence, [CLS]/[SEP] included")
FreezeOpt = typer.Option(_TRAIN_DEFAULTS.freeze_embeddings, "--freeze-embeddings",
                         help="keep the embedding layer frozen while fine-tuning")
RobustEpsOpt = typer.Option(_TRAIN_DEFAULTS.robust_epsilon, "--robust-epsilon",
                            help="--robust adversarial: L2 norm of the embedding perturbation")
RobustRateOpt = typer.Option(_TRAIN_DEFAULTS.robust_rate, "--robust-rate",
                             help="--robust smoothing: fraction of tokens perturbed per sentence")
CacheOpt = typer.Option(None, "--cache-dir", help="xner cache root (env XNER_CACHE_DIR)")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
PrecisionOpt = typer.Option("auto", "--precision", help="auto, bf16 or fp32 autocast for training and inference "
                                                        "(auto: bf16 on CUDA and on CPUs with native bf16)")


def _config(model: str, setting: str, source: Optional[list[str]], target: str, seed: int, data: str, *,
            epochs: int, lr: Optional[float], batch_size: int, max_train: int, max_dev: int, robust: Optional[str],
            balanced: bool, distill_weights: str, tapt_steps: int, early_stopping: Optional[int], warmup: float,
            max_length: int, freeze_embeddings: bool, robust_epsilon: float, robust_rate: float) -> Any:
    """The experiment config of train/eval/predict; `make_config` validates (errors exit 2 with its message)."""
    from xner_core.runs.config import make_config

    sources = tuple(s for item in (source or []) for s in item.split(",") if s.strip())
    return make_config(model, target, setting, sources=sources, seed=seed, data=data, epochs=epochs, lr=lr,
                       batch_size=batch_size, max_train_sentences=max_train or None,
                       max_dev_sentences=max_dev, robust=robust, balanced_sampling=balanced,
                       distill_weights=distill_weights, tapt_steps=tapt_steps,
                       early_stopping_patience=early_stopping, warmup_ratio=warmup, max_length=max_length,
                       freeze_embeddings=freeze_embeddings, robust_epsilon=robust_epsilon, robust_rate=robust_rate)


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


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@app.command("train")
def train_cmd(
    model: str = ModelOpt, setting: str = SettingOpt, source: Optional[list[str]] = SourceOpt,
    target: str = TargetOpt, seed: int = SeedOpt, epochs: int = EpochsOpt, lr: Optional[float] = LrOpt,
    batch_size: int = BatchOpt, max_train: int = MaxTrainOpt, max_dev: int = MaxDevOpt,
    robust: Optional[str] = RobustOpt, balanced: bool = BalancedOpt, distill_weights: str = DistillWOpt,
    tapt_steps: int = TaptOpt, early_stopping: Optional[int] = EarlyStopOpt, warmup: float = WarmupOpt,
    max_length: int = MaxLengthOpt, freeze_embeddings: bool = FreezeOpt, robust_epsilon: float = RobustEpsOpt,
    robust_rate: float = RobustRateOpt, data: str = ProtocolOpt, data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheOpt, device: Optional[str] = DeviceOpt, precision: str = PrecisionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fine-tune (or fetch from the cache) the model of one experiment config; prints its hash and cache path."""
    from xner_core.evaluation.modelstore import model_cache, train_model

    _quiet_transformers()
    cfg = _config(model, setting, source, target, seed, data, epochs=epochs, lr=lr, batch_size=batch_size,
                  max_train=max_train, max_dev=max_dev, robust=robust, balanced=balanced,
                  distill_weights=distill_weights, tapt_steps=tapt_steps, early_stopping=early_stopping,
                  warmup=warmup, max_length=max_length, freeze_embeddings=freeze_embeddings,
                  robust_epsilon=robust_epsilon, robust_rate=robust_rate)
    update, stop = (_progress_bar() if not as_json else (None, lambda: None))
    try:
        lm = train_model(cfg, data_dir=data_dir, cache=cache_dir, progress=update, device=device,
                         precision=check_precision(precision),
                         status=None if as_json else (lambda m: typer.echo(m, err=True)))
    finally:
        stop()
    payload = {"hash": lm.hash, "path": str(model_cache(cache_dir).path(cfg)),
               "dev_scores": lm.manifest.get("dev_scores"), "timings": lm.manifest.get("timings")}
    emit(payload, as_json, lambda p: f"model {p['hash']}\ncache {p['path']}\n"
                                     f"best dev F1 {((p['dev_scores'] or {}).get('best_dev_f1'))}\n"
                                     f"train seconds {(p['timings'] or {}).get('train_s')}")


@app.command("eval")
def eval_cmd(
    model: str = ModelOpt, setting: str = SettingOpt, source: Optional[list[str]] = SourceOpt,
    target: str = TargetOpt, seed: int = SeedOpt, epochs: int = EpochsOpt, lr: Optional[float] = LrOpt,
    batch_size: int = BatchOpt, max_train: int = MaxTrainOpt, max_dev: int = MaxDevOpt,
    robust: Optional[str] = RobustOpt, balanced: bool = BalancedOpt, distill_weights: str = DistillWOpt,
    tapt_steps: int = TaptOpt, early_stopping: Optional[int] = EarlyStopOpt, warmup: float = WarmupOpt,
    max_length: int = MaxLengthOpt, freeze_embeddings: bool = FreezeOpt, robust_epsilon: float = RobustEpsOpt,
    robust_rate: float = RobustRateOpt, data: str = ProtocolOpt,
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
    cfg = _config(model, setting, source, target, seed, data, epochs=epochs, lr=lr, batch_size=batch_size,
                  max_train=max_train, max_dev=max_dev, robust=robust, balanced=balanced,
                  distill_weights=distill_weights, tapt_steps=tapt_steps, early_stopping=early_stopping,
                  warmup=warmup, max_length=max_length, freeze_embeddings=freeze_embeddings,
                  robust_epsilon=robust_epsilon, robust_rate=robust_rate)
    check_precision(precision)
    lm = train_model(cfg, data_dir=data_dir, cache=cache_dir, device=device, precision=precision)
    options = EvalOptions(perturb_seed=perturb_seed, perturb_rate=rate, test_limit=test_limit,
                          embed_model=embed_model, donor=donor, bootstrap=bootstrap, backend=backend,
                          precision=precision)
    outcomes = evaluate(cfg, perturb or [], options, data_dir=data_dir, cache=cache_dir, loaded=lm, device=device)
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

        lines = [f"model {lm.hash}  {cfg.model} {','.join(cfg.sources) or cfg.target}->{cfg.target} {cfg.setting}",
                 f"{'perturbation':<16}{'scope':<8}{'F1':>7}{'95% CI':>17}{'drop':>8}{'drop CI':>17}"]
        for r in rs:
            if r["scope"] != "overall":
                continue
            lines.append(f"{r['perturbation']:<16}{r['scope']:<8}{f(r['f1'])} [{f(r['f1_low'])},{f(r['f1_high'])}]"
                         f"{f(r['drop'])}  [{f(r['drop_low'])},{f(r['drop_high'])}]")
        return "\n".join(lines)

    emit(slim, as_json, render)


@app.command("predict")
def predict_cmd(
    text: str = typer.Argument(..., help="a sentence (any script); it is split into words and punctuation"),
    lang: str = typer.Option(..., "--lang", help="language of the sentence (the model's target)"),
    model: str = ModelOpt, setting: str = SettingOpt, source: Optional[list[str]] = SourceOpt,
    seed: int = SeedOpt, epochs: int = EpochsOpt, lr: Optional[float] = LrOpt, batch_size: int = BatchOpt,
    max_train: int = MaxTrainOpt, max_dev: int = MaxDevOpt, robust: Optional[str] = RobustOpt,
    balanced: bool = BalancedOpt, distill_weights: str = DistillWOpt, tapt_steps: int = TaptOpt,
    early_stopping: Optional[int] = EarlyStopOpt, warmup: float = WarmupOpt, max_length: int = MaxLengthOpt,
    freeze_embeddings: bool = FreezeOpt, robust_epsilon: float = RobustEpsOpt, robust_rate: float = RobustRateOpt,
    data: str = ProtocolOpt, data_dir: Optional[Path] = DataDirOpt, cache_dir: Optional[Path] = CacheOpt,
    device: Optional[str] = DeviceOpt, precision: str = PrecisionOpt, as_json: bool = JsonOpt,
) -> None:
    """Tag one sentence with the model of a config (trained first when not cached)."""
    from xner_core.corpus.textcheck import check_sentence
    from xner_core.evaluation.modelstore import train_model
    from xner_core.inference.predict import predict_text

    _quiet_transformers()
    text = check_sentence(text)
    cfg = _config(model, setting, source, lang, seed, data, epochs=epochs, lr=lr, batch_size=batch_size,
                  max_train=max_train, max_dev=max_dev, robust=robust, balanced=balanced,
                  distill_weights=distill_weights, tapt_steps=tapt_steps, early_stopping=early_stopping,
                  warmup=warmup, max_length=max_length, freeze_embeddings=freeze_embeddings,
                  robust_epsilon=robust_epsilon, robust_rate=robust_rate)
    check_precision(precision)
    lm = train_model(cfg, data_dir=data_dir, cache=cache_dir, device=device, precision=precision)
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
        cfg = e.config or {}
        rows.append({"hash": e.hash, "model": cfg.get("model"), "setting": cfg.get("setting"),
                     "sources": cfg.get("sources"), "target": cfg.get("target"), "seed": cfg.get("seed"),
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


# ---------------------------------------------------------------------------------------------------------------
# grid: run / status; results: show / export / schema

grid_app = typer.Typer(no_args_is_help=True, help="Experiment grids: a preset or spec file -> resumable runs.")
results_app = typer.Typer(no_args_is_help=True, help="The results store (a DuckDB file): show, export, schema.")
app.add_typer(grid_app, name="grid")
app.add_typer(results_app, name="results")

SpecArg = typer.Argument(..., help="preset (paper, diversity, smoke) or spec file (.toml, .yaml)")
StoreOpt = typer.Option(None, "--store", help="results store file (DuckDB); default <cache>/results.duckdb, "
                                              "env XNER_RESULTS")
FilterOpt = typer.Option(None, "--filter", help="column=value (repeat; commas give several values: target=ca,an)")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # A pipe or a test runner has no width: give tables room instead of rich's 80 columns.
    return Console(file=stream, width=None if stream.isatty() else 160, soft_wrap=False)


def _grid_progress() -> tuple[Callable[[Any], None], Any]:
    """A rich progress display fed by `grid.run_plan` events: models and evaluation jobs, each with an ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                   console=_console(stderr=True))
    tasks: dict[str, Any] = {}

    def on_event(ev: Any) -> None:
        if ev.kind == "start":
            tasks["models"] = bar.add_task("models", total=ev.models_total, info="")
            tasks["jobs"] = bar.add_task("eval jobs", total=ev.jobs_total, completed=ev.jobs_done, info="")
        elif ev.kind == "train_start":
            bar.update(tasks["models"], info=f"loading/training {ev.label}")
        elif ev.kind == "train_done":
            bar.update(tasks["models"], completed=ev.models_done, info=f"{ev.label}: {ev.message} {ev.seconds:.1f}s")
        elif ev.kind == "job_done":
            bar.update(tasks["jobs"], completed=ev.jobs_done)
        elif ev.kind == "failed":
            bar.console.print(f"[red]failed[/red] {ev.label}: {ev.message}", markup=True, highlight=False)

    return on_event, bar


def _print_status(payload: dict[str, Any]) -> None:
    from rich.table import Table

    con = _console()
    con.print(f"grid {payload['name']} ({payload['origin']}): {payload['eval_jobs']} evaluation jobs on "
              f"{payload['train_jobs']} models: {payload['done']} done, {payload['running']} running, "
              f"{payload['missing']} missing; store {payload['store']}", highlight=False)
    for msg in payload["skipped"]:
        con.print(f"[yellow]{msg}[/yellow]", highlight=False)
    table = Table("model", "hash", "targets", "done", "running", "missing")
    for r in payload["models"]:
        table.add_row(r["model"], r["hash"], r["targets"], str(r["done"]), str(r["running"]), str(r["missing"]))
    con.print(table)


def _status_payload(plan: Any, store: Any) -> dict[str, Any]:
    from xner_core.experiments.status import plan_status, status_rows

    status = plan_status(plan, store)
    return {"name": plan.spec.name, "origin": plan.spec.origin, "store": str(store.path),
            "train_jobs": len(plan.groups), "eval_jobs": status.total, "done": len(status.done),
            "running": len(status.running), "missing": len(status.missing), "skipped": list(plan.skipped),
            "models": status_rows(plan, status)}


@grid_app.command("run")
def grid_run(
    spec: str = SpecArg,
    store: Optional[Path] = StoreOpt,
    executor: str = typer.Option("local", "--executor", help="local (this process) or ray"),
    address: Optional[str] = typer.Option(None, "--address", help="ray cluster: auto or HOST:PORT (default: a "
                                                                  "local Ray instance)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the plan and what is already done; run nothing"),
    data_dir: Optional[Path] = DataDirOpt, cache_dir: Optional[Path] = CacheOpt, device: Optional[str] = DeviceOpt,
    precision: Optional[str] = typer.Option(None, "--precision", help="auto, bf16 or fp32 (default: the spec's "
                                                                      "`precision`, auto when it has none)"),
    as_json: bool = JsonOpt,
) -> None:
    """Run a grid: train each missing model once, evaluate every missing job, store rows as each job finishes.

    Killed and started again, it does only what is missing.
    """
    from xner_core.experiments.execute import run_plan
    from xner_core.experiments.plan import expand
    from xner_core.experiments.spec import load_spec
    from xner_core.experiments.store import ResultsStore

    if executor not in ("local", "ray"):
        raise XnerError(f"unknown executor {executor!r}; choose one of: local, ray")
    if address and executor != "ray":
        raise XnerError("--address only applies to --executor ray")
    _quiet_transformers()
    grid_spec = load_spec(spec)
    if precision is not None:
        grid_spec = dataclasses.replace(grid_spec, precision=check_precision(precision))
    plan = expand(grid_spec, data_dir)
    st = ResultsStore(store)
    if dry_run:
        payload = _status_payload(plan, st)
        if as_json:
            emit(payload, True)
        else:
            _print_status(payload)
        return
    if not as_json:
        for msg in plan.skipped:
            typer.echo(msg, err=True)
    on_event, bar = (None, None) if as_json else _grid_progress()
    if bar is not None:
        bar.start()
    try:
        summary = run_plan(plan, st, executor=executor, address=address, progress=on_event, data_dir=data_dir,
                           cache=cache_dir, device=device)
    finally:
        if bar is not None:
            bar.stop()
    payload = {**jsonable(summary), "store": str(st.path), "overhead_seconds": summary.overhead_seconds}
    emit(payload, as_json, lambda p: (
        f"grid {plan.spec.name}: {p['jobs_run']} jobs run, {p['jobs_done_before']} already done, "
        f"{p['jobs_total']} in the plan; {p['rows_written']} rows written to {p['store']}\n"
        f"models: {p['models_used']} used, {p['models_trained']} trained; wall {p['wall_seconds']:.1f}s "
        f"(compute {p['compute_seconds']:.1f}s)"
        + "".join(f"\nfailed: {f}" for f in p["failures"])))
    if summary.failures:
        raise typer.Exit(1)


@grid_app.command("status")
def grid_status(spec: str = SpecArg, store: Optional[Path] = StoreOpt, data_dir: Optional[Path] = DataDirOpt,
                as_json: bool = JsonOpt) -> None:
    """Done / running / missing evaluation jobs of a grid ("running" = claimed by a live `grid run`)."""
    from xner_core.experiments.plan import expand
    from xner_core.experiments.spec import load_spec
    from xner_core.experiments.store import ResultsStore

    payload = _status_payload(expand(load_spec(spec), data_dir), ResultsStore(store))
    if as_json:
        emit(payload, True)
    else:
        _print_status(payload)


def _pct(v: Any) -> str:
    try:
        import math

        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}"
    except (TypeError, ValueError):
        return "-"


@results_app.command("show")
def results_show(
    store: Optional[Path] = StoreOpt, filters: Optional[list[str]] = FilterOpt,
    scope: str = typer.Option("overall", "--scope", help="overall, PER, ORG, LOC or all"),
    limit: int = typer.Option(50, "--limit", help="rows shown (0 = all)"),
    as_json: bool = JsonOpt,
) -> None:
    """Show stored results as a table (F1 and drop in points, with 95% CIs)."""
    from rich.table import Table

    from xner_core.experiments.store import ResultsStore, parse_filters
    from xner_core.metrics.bootstrap import SCOPES

    where = parse_filters(filters or [])
    if scope != "all":
        if scope not in SCOPES:
            raise XnerError(f"unknown scope {scope!r}; choose one of: {', '.join(SCOPES)}, all")
        where.setdefault("scope", scope)
    st = ResultsStore(store)
    df = st.frame(where)
    total = len(df)
    if limit > 0:
        df = df.head(limit)
    if as_json:
        emit(json.loads(df.to_json(orient="records", date_format="iso")), True)
        return
    con = _console()
    if total == 0:
        con.print(f"no results in {st.path}" + (f" matching {where}" if where else ""), highlight=False)
        return
    table = Table("model", "sources", "target", "setting", "seed", "perturbation", "scope", "F1", "95% CI",
                  "drop", "drop CI", "sent.", "changed", title=f"{st.path} ({total} rows"
                  + (f", first {len(df)})" if len(df) < total else ")"))
    for r in df.to_dict("records"):
        table.add_row(str(r["model"]), str(r["sources"]), str(r["target"]), str(r["setting"]), str(r["seed"]),
                      str(r["perturbation"]), str(r["scope"]), _pct(r["f1"]),
                      f"[{_pct(r['f1_low'])}, {_pct(r['f1_high'])}]", _pct(r["drop"]),
                      f"[{_pct(r['drop_low'])}, {_pct(r['drop_high'])}]", str(r["n_sentences"]),
                      _pct(r["entities_changed_frac"]))
    con.print(table)


@results_app.command("export")
def results_export(
    fmt: str = typer.Option(..., "--format", help="parquet or csv"),
    out: Path = typer.Option(..., "--out", help="output file"),
    store: Optional[Path] = StoreOpt, filters: Optional[list[str]] = FilterOpt, as_json: bool = JsonOpt,
) -> None:
    """Export the results table (or the rows matching --filter) to parquet or csv."""
    from xner_core.experiments.store import ResultsStore, parse_filters

    st = ResultsStore(store)
    where = parse_filters(filters or [])
    path = st.export(out, fmt, where=where or None)
    rows = len(st.frame(where or None))
    emit({"out": str(path), "format": fmt, "rows": rows}, as_json, lambda p: f"wrote {p['rows']} rows to {p['out']}")


@results_app.command("schema")
def results_schema(as_json: bool = JsonOpt) -> None:
    """The results table's columns: name, SQL type, meaning."""
    from rich.table import Table

    from xner_core.experiments.store import SCHEMA

    rows = [{"name": c.name, "type": c.sql_type, "description": c.description} for c in SCHEMA]
    if as_json:
        emit(rows, True)
        return
    table = Table("column", "type", "description", title="results table (primary key: job_id, scope)")
    for r in rows:
        table.add_row(r["name"], r["type"], r["description"])
    _console().print(table)


@app.command("app")
def app_cmd(
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="HTTP port"),
    address: Optional[str] = typer.Option(None, "--address", help="address to bind (default: all interfaces)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the streamlit command instead of running it"),
) -> None:
    """Serve the dashboard (Streamlit) on http://localhost:PORT; needs the `app` extra (pip install 'xner[app]')."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("xner_ui") is None:
        raise XnerError("the dashboard needs Streamlit and xner_ui; install the app extra: pip install 'xner[app]'")
    from xner_ui.launch import streamlit_command

    cmd = streamlit_command(port=port, address=address)
    if dry_run:
        typer.echo(" ".join(cmd))
        return
    try:
        code = subprocess.call(cmd)
    except KeyboardInterrupt:
        code = 130
    if code:
        raise typer.Exit(code)


def _usage_error(exc: BaseException) -> bool:
    """Whether `exc` is a command-line usage error: typer's (which vendors click from 0.29 on) or click's."""
    if isinstance(exc, typer.TyperException) and hasattr(exc, "show"):
        return True
    try:
        import click
    except ImportError:
        return False
    return isinstance(exc, click.ClickException)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. User errors print `error: ...`, usage errors the usage and one `Error:` line; both exit 2."""
    try:
        configure_logging()
        app(args=argv, standalone_mode=False, prog_name="xner")
    except XnerError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except Exception as exc:
        if _usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            return int(getattr(exc, "exit_code", 2))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
