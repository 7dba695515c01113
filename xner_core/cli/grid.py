"""`xner grid run|status` and `xner results show|export|import|schema`: experiment grids and the results store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from xner_core.cli.common import (
    CacheOpt,
    DataDirOpt,
    DeviceOpt,
    JsonOpt,
    _console,
    _quiet_transformers,
    emit,
    grid_app,
    results_app,
)
from xner_core.errors import XnerError
from xner_core.jsonable import jsonable
from xner_core.numerics import check_precision

SpecArg = typer.Argument(..., help="preset (paper-faithful, paper, diversity, smoke, demo) or spec file (.toml, .yaml)")
StoreOpt = typer.Option(None, "--store", help="results store file (DuckDB); default <cache>/results.duckdb, "
                                              "env XNER_RESULTS")
FilterOpt = typer.Option(None, "--filter", help="column=value (repeat; commas give several values: target=ca,an)")



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

    from xner_core.experiments.store import ROW_SCOPES, ResultsStore, parse_filters

    where = parse_filters(filters or [])
    if scope != "all":
        if scope not in ROW_SCOPES:
            raise XnerError(f"unknown scope {scope!r}; choose one of: {', '.join(ROW_SCOPES)}, all")
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


@results_app.command("import")
def results_import(
    tables: list[Path] = typer.Argument(..., help="exported tables (.parquet or .csv), e.g. data/results/*.parquet"),
    store: Optional[Path] = StoreOpt,
    replace: bool = typer.Option(False, "--replace", help="an incoming row replaces a stored row of the same "
                                                         "job and scope (default: the stored row is kept)"),
    as_json: bool = JsonOpt,
) -> None:
    """Add exported result tables to a store, so `grid run` counts their jobs as done and an export holds all."""
    from xner_core.experiments.store import ResultsStore

    st = ResultsStore(store)
    reports = [dataclasses.asdict(st.import_table(t, replace=replace)) for t in tables]

    def text(rs: list[dict[str, Any]]) -> str:
        kept = "replaced" if replace else "kept as stored"
        return "\n".join(f"{r['source']}: {r['rows_read']} rows read, {r['rows_written']} written, "
                         f"{r['already_stored']} already in the store ({kept})" for r in rs) + f"\nstore {st.path}"

    emit(reports, as_json, text)


@results_app.command("trained-at")
def results_trained_at(
    tables: list[Path] = typer.Argument(..., help="exported tables (.parquet or .csv) to date, rewritten in place"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="model cache directory (default: <cache>/models)"),
    as_json: bool = JsonOpt,
) -> None:
    """Fill `trained_at` (when a row's model was trained) in exported tables written before the column, from the
    model cache: only where the cached model of a row's config is the one that made it (trained no later than the
    row was written; a later retraining of the job leaves the row undated)."""
    from xner_core.evaluation.modelstore import fill_trained_at
    from xner_core.experiments.store import COLUMN_NAMES, read_table, write_table
    from xner_core.runs.modelcache import ModelCache

    manifests = ModelCache(cache).manifests()
    reports = []
    for table in tables:
        frame = read_table(table)
        before = int(frame["trained_at"].notna().sum()) if "trained_at" in frame.columns else 0
        dated = fill_trained_at(frame, manifests)
        dated = dated[[c for c in COLUMN_NAMES if c in dated.columns]]
        after = int(dated["trained_at"].notna().sum())
        if after > before:  # a table with nothing new to date is left as it is
            write_table(dated, table)
        reports.append({"table": str(table), "rows": len(dated), "dated_before": before, "dated": after,
                        "rewritten": after > before})

    def text(rs: list[dict[str, Any]]) -> str:
        return "\n".join(f"{r['table']}: {r['dated']} of {r['rows']} rows dated (were {r['dated_before']}"
                         + ("" if r["rewritten"] else "; left as it was") + ")" for r in rs)

    emit(reports, as_json, text)


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

