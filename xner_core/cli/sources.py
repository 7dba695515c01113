"""`xner sources rank`: which source language for a target (measured sources and a predictor-based shortlist)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer

from xner_core.cli.common import CacheOpt, DataDirOpt, JsonOpt, _language, emit, sources_app
from xner_core.errors import ConfigError, DataError, XnerError


def _read_results(path: Path) -> Any:
    """Result rows (the store's schema) from a parquet or csv file, e.g. `xner results export` output."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"results file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"results file {str(path)!r}: unknown format {suffix or '(none)'!r}; use .parquet or .csv "
                          "(`xner results export --format parquet|csv`)")
    try:
        frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read results file {str(path)!r}: {exc}") from exc
    need = ("model", "sources", "target", "setting", "perturbation", "scope", "f1")
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DataError(f"results file {str(path)!r} lacks column(s) {', '.join(missing)}; expected the results "
                        "table's columns (`xner results schema`)")
    return frame


def _our_rows(results: Optional[Path]) -> Any:
    """--results FILE, else the committed tables plus the local store (the store's copy of a row wins)."""
    import pandas as pd

    from xner_core.experiments.store import ResultsStore, committed_results

    if results is not None:
        return _read_results(results)
    parts = [committed_results()]
    try:
        parts.append(ResultsStore().frame())
    except XnerError as exc:  # e.g. a grid holds the write lock: rank from the committed rows
        typer.echo(f"warning: the local results store could not be read ({exc}); using committed results only",
                   err=True)
    parts = [p for p in parts if not p.empty]
    if not parts:
        return None
    ours = pd.concat(parts, ignore_index=True)
    return ours.drop_duplicates(subset=["job_id", "scope"], keep="last") if "job_id" in ours.columns else ours


def _num(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _render(payload: dict[str, Any]) -> str:
    from xner_core.analysis.source_rank import PREDICTORS

    short = {p.column: p.column.replace("_overlap", "").replace("uriel_", "") for p in PREDICTORS}
    run = (f"run {payload['model']} · {payload['protocol']} · drop under {payload['perturbation'] or '-'}"
           if payload["model"] is not None else "no measured run")
    lines = [f"target {payload['target']} · {run}", payload["message"]]
    head = f"{'source':<8} {'F1':>6} {'#F1':>4} {'drop':>6} {'#drop':>5} {'pred#':>5}  " + " ".join(
        f"{short[p.column][:9]:>9}" for p in PREDICTORS)
    if payload["measured"]:
        lines += ["", "Measured sources (best clean F1 first; #F1, #drop: their ranks, 1 = best; pred#: predicted "
                  "rank):", head]
    for r in payload["measured"]:
        lines.append(f"{r['source']:<8} {_num(r['f1']):>6} {_num(r['f1_rank'], '.0f'):>4} {_num(r['drop']):>6} "
                     f"{_num(r['drop_rank'], '.0f'):>5} {_num(r['predicted_rank'], '.0f'):>5}  "
                     + " ".join(f"{_num(r[p.column], '.3f'):>9}" for p in PREDICTORS)
                     + (f"  (filled: {r['filled']})" if r.get("filled") else ""))
    if payload["correlations"]:
        lines += ["", "Spearman's rho with the measured clean F1 (and drop):"]
        for c in payload["correlations"]:
            extra = (f" expected {c['expected']}, {'agrees' if c['agrees'] else 'does not agree'}; ranks "
                     f"{c['top_pick']} first ({'the best' if c['picks_best'] else 'not the best'})"
                     if c["outcome"] == "F1" else "")
            lines.append(f"  {c['label']:<28} vs {c['outcome']:<4} rho {_num(c['rho'], '+.2f')} "
                         f"p {_num(c['p'], '.3f')} ({c['p_method']}) n {c['n']};{extra}")
    if payload["candidates_problem"]:
        lines += ["", f"No shortlist: {payload['candidates_problem']}."]
    else:
        lines += ["", f"Shortlist of unmeasured candidates ({payload['candidates']}), ranked by {payload['by']} "
                      "(train: sentences in the candidate's train split):",
                  f"{'rank':>4} {'source':<8} {'score':>6} {'train':>6}  "
                  + " ".join(f"{short[p.column][:9]:>9}" for p in PREDICTORS)]
        for r in payload["shortlist"]:
            lines.append(f"{_num(r['predicted_rank'], '.0f'):>4} {r['source']:<8} {_num(r['score'], '.3g'):>6} "
                         f"{r['train_sentences']:>6}  "
                         + " ".join(f"{_num(r[p.column], '.3f'):>9}" for p in PREDICTORS))
        if not payload["shortlist"]:
            lines.append("  (none)")
    lines += ["", "Directions: " + "; ".join(f"{p.column} {p.direction}" for p in PREDICTORS)]
    return "\n".join(lines)


@sources_app.command("rank")
def sources_rank(
    target: str = typer.Option(..., "--target", help="target language, e.g. ast"),
    results: Optional[Path] = typer.Option(None, "--results", help="result rows to rank from (.parquet or .csv, "
                                           "the store's columns); default: data/results/*.parquet + the local store"),
    model: Optional[str] = typer.Option(None, "--model", help="the run's model (default: the run with the most "
                                        "measured sources for the target)"),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="the run's protocol label ('study' = the "
                                           "published rows); see --list-runs"),
    perturbation: Optional[str] = typer.Option(None, "--perturbation", help="the drop's perturbation (default: the "
                                               "run's first)"),
    by: str = typer.Option("mean_rank", "--by", help="rank candidates by mean_rank (mean of the predictors' ranks) "
                           "or one predictor column, e.g. uriel_genetic"),
    max_candidates: int = typer.Option(10, "--max-candidates", help="candidates that get overlap measures (the "
                                       "closest by URIEL distance; 0 = all with local data)"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="model whose tokenizer gives the candidates' "
                                            "sub-word overlap (e.g. e5-small; default none)"),
    list_runs: bool = typer.Option(False, "--list-runs", help="list the runs with measured sources and exit"),
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Rank a target's measured sources by transfer F1 and drop, and unmeasured candidates by predictors alone."""
    from xner_core.analysis.source_rank import RANK_BY, rank_sources, ranking_runs
    from xner_core.analysis.tidy import read_reference_tables, tidy_results
    from xner_core.corpus.languages import reference_pairs
    from xner_core.features.candidates import candidate_features

    target = _language(target, "target")
    if by not in RANK_BY:
        raise ConfigError(f"--by {by!r} is not one of: {', '.join(RANK_BY)}")
    if max_candidates < 0:
        raise ConfigError(f"--max-candidates must be 0 (all) or a positive number, not {max_candidates}")
    tables = read_reference_tables()
    tidy = tidy_results(tables["published"], _our_rows(results), tables["overlap"], tables["uriel"],
                        reference_pairs())
    runs = ranking_runs(tidy, target)
    if list_runs:
        rows = runs.to_dict("records")
        emit(rows, as_json, lambda rs: "\n".join(f"{r['sources']:>2} sources  --model {r['model']} --protocol "
                                                 f"'{r['protocol']}'  ({r['names']})" for r in rs)
             or f"no measured transfer into {target}")
        return
    if (model is None) != (protocol is None) and not runs.empty:
        pick = runs[runs["model"] == model] if model is not None else runs[runs["protocol"] == protocol]
        if pick.empty:
            raise ConfigError(f"no run with {'--model ' + str(model) if model else '--protocol ' + str(protocol)} "
                              f"measured {target}; see `xner sources rank --target {target} --list-runs`")
        model, protocol = str(pick["model"].iloc[0]), str(pick["protocol"].iloc[0])
    measured_names = [s for n in runs["names"] for s in str(n).split(",") if s]
    cands = candidate_features(target, max_candidates=max_candidates, include=measured_names, data_dir=data_dir,
                               tokenizer=tokenizer, cache=cache_dir)
    ranking = rank_sources(tidy, target, model=model, protocol=protocol, perturbation=perturbation,
                           features=cands.features, by=by)
    payload = ranking.as_dict()
    payload["candidates"] = cands.preselected_by
    payload["candidates_problem"] = cands.problem
    emit(payload, as_json, _render)
