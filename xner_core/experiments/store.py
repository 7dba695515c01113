"""Stage 6, results store: one tidy table in a DuckDB file, a row per (evaluation job, metric scope).

An evaluation job is (model config hash, target test set, perturbation, perturbation seed, rate, test cap); its
`job_id` is a stable hash of those. The primary key is (job_id, scope) with scope in overall/PER/ORG/LOC, so
re-running a job replaces its rows instead of duplicating them, and a job's rows are written in one transaction
(all or nothing). Connections are opened per operation and closed at once, so a dashboard process can read while
a grid process writes between its transactions. `parse_filters` reads the CLI's `--filter column=value`
options into the `where` mapping that `ResultsStore.frame` takes.

Columns (`SCHEMA` is the single source of truth; `xner results schema` prints it):
identity — job_id, scope, config_hash, model, sources (comma-joined, in config order), target, setting,
options (canonical JSON of the training options), seed, data_protocol, perturbation ("clean" for none),
perturb_seed, perturb_rate, test_split, test_limit;
scores — precision, recall, f1, f1_low, f1_high (95% bootstrap CI), clean_f1, drop (clean - perturbed F1),
drop_low, drop_high, drop_p (paired bootstrap), n_sentences, n_gold, n_pred, support;
perturbation report — sentences_changed_frac, tokens_changed_frac, entities_changed_frac;
features — entity_token_overlap, unique_chunk_overlap, o_word_overlap, subword_type_overlap,
subword_token_overlap, uriel_genetic, uriel_geographic, uriel_syntactic, uriel_phonological, uriel_inventory,
uriel_featural, n_sources, diversity_genetic, diversity_syntactic;
costs and provenance — train_seconds, train_steps, eval_seconds, device, train_dtype, eval_dtype, versions (JSON),
created_at.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from xner_core.errors import ConfigError, DataError
from xner_core.metrics.bootstrap import SCOPES
from xner_core.metrics.seen import BUCKET_SCOPES, SURFACE_SCOPES
from xner_core.paths import cache_dir, committed_results_dir

# The scopes a job writes one row each for: overall, per entity type, and seen/unseen entities (by surface form
# in the model's training data; rows written before these scopes existed have the first four only).
ROW_SCOPES: tuple[str, ...] = (*SCOPES, *SURFACE_SCOPES, *BUCKET_SCOPES)


@dataclass(frozen=True)
class Column:
    """One column of the results table."""

    name: str
    sql_type: str
    description: str


SCHEMA: tuple[Column, ...] = (
    Column("job_id", "VARCHAR NOT NULL", "stable hash of the evaluation job"),
    Column("scope", "VARCHAR NOT NULL", "overall, PER, ORG, LOC; seen / unseen: the entities whose surface form "
                                        "occurs (does not occur) in the model's training data; len1 / len2 / "
                                        "len3+: entities of 1, 2, 3+ tokens; freq1 / freq2-9 / freq10+: seen "
                                        "entities by training count"),
    Column("config_hash", "VARCHAR NOT NULL", "hash of the model's ExperimentConfig (model cache key)"),
    Column("model", "VARCHAR NOT NULL", "model short name, hub id or directory"),
    Column("sources", "VARCHAR NOT NULL", "training languages, comma-joined (the target for native)"),
    Column("target", "VARCHAR NOT NULL", "evaluated language"),
    Column("setting", "VARCHAR NOT NULL", "native, transfer, multi_source, distill or tapt"),
    Column("options", "VARCHAR", "training options as canonical JSON"),
    Column("seed", "INTEGER", "training seed"),
    Column("data_protocol", "VARCHAR", "wikiann-rahimi or paper-resplit"),
    Column("perturbation", "VARCHAR NOT NULL", "perturbation name, 'clean' for none"),
    Column("perturb_seed", "INTEGER", "perturbation seed"),
    Column("perturb_rate", "DOUBLE", "fraction of eligible units changed"),
    Column("test_split", "VARCHAR", "split evaluated (test)"),
    Column("test_limit", "INTEGER", "cap on test sentences (NULL = all)"),
    Column("precision", "DOUBLE", "entity precision (seqeval strict IOB2)"),
    Column("recall", "DOUBLE", "entity recall"),
    Column("f1", "DOUBLE", "entity F1"),
    Column("f1_low", "DOUBLE", "95% bootstrap CI lower bound of F1"),
    Column("f1_high", "DOUBLE", "95% bootstrap CI upper bound of F1"),
    Column("clean_f1", "DOUBLE", "F1 of the same model on the clean test set"),
    Column("drop", "DOUBLE", "clean F1 minus this F1 (0 for clean rows)"),
    Column("drop_low", "DOUBLE", "paired bootstrap 95% CI lower bound of the drop"),
    Column("drop_high", "DOUBLE", "paired bootstrap 95% CI upper bound of the drop"),
    Column("drop_p", "DOUBLE", "one-sided paired bootstrap p-value of drop <= 0"),
    Column("n_sentences", "INTEGER", "test sentences"),
    Column("n_gold", "INTEGER", "gold entities"),
    Column("n_pred", "INTEGER", "predicted entities"),
    Column("support", "INTEGER", "gold entities in this scope"),
    Column("sentences_changed_frac", "DOUBLE", "fraction of sentences the perturbation changed"),
    Column("tokens_changed_frac", "DOUBLE", "fraction of tokens changed"),
    Column("entities_changed_frac", "DOUBLE", "fraction of entities changed"),
    Column("entity_token_overlap", "DOUBLE", "study's non-unique entity-token overlap (target side)"),
    Column("unique_chunk_overlap", "DOUBLE", "shared unique chunks / unique target chunks"),
    Column("o_word_overlap", "DOUBLE", "fraction of target O-tokens seen as source O-words"),
    Column("subword_type_overlap", "DOUBLE", "target sub-word types seen in the source"),
    Column("subword_token_overlap", "DOUBLE", "target sub-word tokens seen in the source"),
    Column("uriel_genetic", "DOUBLE", "URIEL genetic distance source-target (mean over sources)"),
    Column("uriel_geographic", "DOUBLE", "URIEL geographic distance"),
    Column("uriel_syntactic", "DOUBLE", "URIEL syntactic distance"),
    Column("uriel_phonological", "DOUBLE", "URIEL phonological distance"),
    Column("uriel_inventory", "DOUBLE", "URIEL inventory distance"),
    Column("uriel_featural", "DOUBLE", "URIEL featural distance"),
    Column("n_sources", "INTEGER", "number of source languages"),
    Column("diversity_genetic", "DOUBLE", "mean pairwise genetic distance among sources"),
    Column("diversity_syntactic", "DOUBLE", "mean pairwise syntactic distance among sources"),
    Column("train_seconds", "DOUBLE", "training wall time of the model (from its cache manifest when reused)"),
    Column("train_steps", "INTEGER", "optimiser steps the model took (TAPT's masked-LM steps included; a student's "
           "own, its teachers apart): the equal-compute measure"),
    Column("trained_at", "TIMESTAMP", "when the model was trained (UTC, its cache manifest's `created`; NULL for a "
           "checkpoint evaluated as it is and rows older than the column): which training of a job a row measures"),
    Column("eval_seconds", "DOUBLE", "perturb + predict + score wall time of the job"),
    Column("device", "VARCHAR", "cpu or cuda device name"),
    Column("train_dtype", "VARCHAR", "floating-point precision the model was trained at (bf16 or fp32)"),
    Column("eval_dtype", "VARCHAR", "floating-point precision of inference (bf16, fp32 or int8 for ONNX)"),
    Column("versions", "VARCHAR", "library versions as JSON"),
    Column("created_at", "TIMESTAMP", "when the row was written (UTC)"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in SCHEMA)
_REQUIRED = tuple(c.name for c in SCHEMA if "NOT NULL" in c.sql_type)


def default_store_path() -> Path:
    """The default DuckDB file: `<cache>/results.duckdb` (env XNER_RESULTS overrides)."""
    env = os.environ.get("XNER_RESULTS")
    return Path(env).expanduser() if env else cache_dir() / "results.duckdb"


class ResultsStore:
    """A DuckDB-backed results table with transactional, idempotent writes."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_store_path()
        self._schema_checked: tuple[int, int] | None = None  # (device, inode) of the file last checked

    @contextlib.contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[Any]:
        import duckdb

        if read_only and not self.path.exists():
            raise DataError(f"results store {str(self.path)!r} does not exist yet; run `xner grid run` first")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise DataError(f"cannot open results store {str(self.path)!r}: {exc}") from exc
        try:
            if not read_only:
                # The schema check costs about as much as a small write: do it once per file (`write` checks
                # again when the table turns out to be missing or older).
                st_ = self.path.stat()
                if self._schema_checked != (st_.st_dev, st_.st_ino):
                    self._ensure_schema(con)
                    self._schema_checked = (st_.st_dev, st_.st_ino)
            yield con
        finally:
            con.close()

    @staticmethod
    def _ensure_schema(con: Any) -> None:
        cols = ",\n".join(f'"{c.name}" {c.sql_type}' for c in SCHEMA)
        con.execute(f"CREATE TABLE IF NOT EXISTS results (\n{cols},\nPRIMARY KEY (job_id, scope))")
        existing = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                               "WHERE table_name = 'results'").fetchall()}
        for c in SCHEMA:  # forward-compatible: add columns introduced after the file was created
            if c.name not in existing:
                con.execute(f'ALTER TABLE results ADD COLUMN "{c.name}" {c.sql_type.replace(" NOT NULL", "")}')

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert or replace rows (keyed by job_id + scope) in one transaction.

        Args:
            rows: mappings with at least the NOT NULL columns; unknown keys raise DataError.

        Returns:
            The number of rows written.
        """
        if not rows:
            return 0
        records = [_normalise_row(r) for r in rows]
        placeholders = ", ".join("?" for _ in COLUMN_NAMES)
        names = ", ".join(f'"{n}"' for n in COLUMN_NAMES)
        import duckdb

        values = [[r.get(n) for n in COLUMN_NAMES] for r in records]
        with self._connect() as con:
            for attempt in (0, 1):
                con.execute("BEGIN TRANSACTION")
                try:
                    con.executemany(f"INSERT OR REPLACE INTO results ({names}) VALUES ({placeholders})", values)
                    con.execute("COMMIT")
                    break
                except (duckdb.CatalogException, duckdb.BinderException):
                    # The file changed under this store since its schema was checked (deleted and created
                    # again, or written by an older version): check it now and try once more.
                    con.execute("ROLLBACK")
                    if attempt:
                        raise
                    self._ensure_schema(con)
                except Exception:
                    con.execute("ROLLBACK")
                    raise
        return len(records)

    def job_ids(self) -> set[str]:
        """Return the ids of jobs that have an 'overall' row (a job is written whole, so it is complete)."""
        if not self.path.exists():
            return set()
        with self._connect(read_only=True) as con:
            if not _has_table(con):
                return set()
            return {r[0] for r in con.execute("SELECT job_id FROM results WHERE scope = 'overall'").fetchall()}

    def frame(self, where: Mapping[str, Any] | None = None) -> Any:
        """Return the rows as a pandas DataFrame, optionally filtered by column equality (values may be lists)."""
        import pandas as pd

        if not self.path.exists():
            return pd.DataFrame(columns=list(COLUMN_NAMES))
        clauses, params = _where(where or {})
        with self._connect(read_only=True) as con:
            if not _has_table(con):
                return pd.DataFrame(columns=list(COLUMN_NAMES))
            return con.execute(f"SELECT * FROM results{clauses} ORDER BY target, sources, model, setting, "
                               f"perturbation, scope", params).df()

    def count(self) -> int:
        """Number of rows."""
        if not self.path.exists():
            return 0
        with self._connect(read_only=True) as con:
            return con.execute("SELECT count(*) FROM results").fetchone()[0] if _has_table(con) else 0

    def export(self, out: str | os.PathLike[str], fmt: str | None = None,
               where: Mapping[str, Any] | None = None) -> Path:
        """Export the table (or a filtered part) to parquet or csv, written atomically.

        Args:
            out: output file path.
            fmt: "parquet" or "csv" (default: from the suffix).
            where: optional equality filters.

        Returns:
            The written path.
        """
        out = Path(out)
        fmt = (fmt or out.suffix.lstrip(".")).lower()
        if fmt not in ("parquet", "csv"):
            raise ConfigError(f"unknown export format {fmt!r}; choose one of: csv, parquet")
        return write_table(self.frame(where), out, fmt)

    def import_table(self, src: str | os.PathLike[str], replace: bool = False) -> ImportReport:
        """Add the rows of an exported table (parquet or csv, as `export` writes them) to this store.

        A store lives in a cache and a cache is machine-local: importing an export (a committed
        `data/results/*.parquet`, or another machine's) lets `xner grid run` count those jobs as done and a later
        export hold old and new rows together. All rows go in one transaction (all or nothing).

        Args:
            src: the table to read.
            replace: a (job_id, scope) already stored takes the incoming row; by default the stored row is kept.

        Returns:
            How many rows were read, written and kept as stored.

        Raises:
            DataError: the file is missing, unreadable, not a results table (unknown or missing required
                columns), or holds rows a column's type cannot take.
        """
        incoming = read_result_tables([src])
        if incoming.empty:
            return ImportReport(str(src), 0, 0, 0)
        names = [n for n in COLUMN_NAMES if n in incoming.columns]
        cols = ", ".join(f'"{n}"' for n in names)
        import duckdb

        with self._connect() as con:
            before = con.execute("SELECT count(*) FROM results").fetchall()[0][0]
            con.register("incoming_rows", incoming[names])
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO results ({cols}) "
                            f"SELECT {cols} FROM incoming_rows")
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise DataError(f"{str(src)!r}: its rows do not fit the results table ({exc}); nothing was "
                                f"imported") from exc
            finally:
                con.unregister("incoming_rows")
            added = con.execute("SELECT count(*) FROM results").fetchall()[0][0] - before
        written = len(incoming) if replace else added
        return ImportReport(str(src), len(incoming), int(written), len(incoming) - int(added))


@dataclass(frozen=True)
class ImportReport:
    """What `ResultsStore.import_table` did: rows read from `source` (a job's rows once), rows written to the
    store, and rows whose (job_id, scope) the store already held (kept, or replaced with --replace)."""

    source: str
    rows_read: int
    rows_written: int
    already_stored: int


def _has_table(con: Any) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'results'")
                .fetchone()[0])


def _where(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in where.items():
        if key not in COLUMN_NAMES:
            raise ConfigError(f"unknown results column {key!r}; choose one of: {', '.join(COLUMN_NAMES)}")
        if isinstance(value, (list, tuple, set, frozenset)):
            values = list(value)
            if not values:
                return " WHERE FALSE", []
            clauses.append(f'"{key}" IN ({", ".join("?" for _ in values)})')
            params.extend(values)
        else:
            clauses.append(f'"{key}" = ?')
            params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def parse_filters(items: Sequence[str]) -> dict[str, Any]:
    """Parse `--filter key=value` options into `ResultsStore.frame(where=...)` form.

    Values are converted to the column's type; commas give several allowed values (`target=ca,an`).

    Args:
        items: strings like "target=ca", "perturbation=clean,entity_replace", "seed=0".

    Returns:
        column -> value or list of values. Raises ConfigError for a malformed item, an unknown column or a value
        of the wrong type.
    """
    types = {c.name: c.sql_type.split()[0] for c in SCHEMA}
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"cannot read filter {item!r}; write column=value, e.g. target=ca")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key not in types:
            raise ConfigError(f"unknown results column {key!r}; choose one of: {', '.join(types)}")
        values = []
        for part in raw.split(","):
            part = part.strip()
            try:
                values.append(int(part) if types[key] == "INTEGER" else float(part) if types[key] == "DOUBLE"
                              else part)
            except ValueError:
                raise ConfigError(f"filter {item!r}: {part!r} is not a valid {types[key].lower()} for "
                                  f"column {key!r}") from None
        out[key] = values[0] if len(values) == 1 else values
    return out


def _unknown_columns(columns: Iterable[str]) -> list[str]:
    """The names among `columns` that the results table does not have (a row's keys or a table's columns)."""
    return sorted(set(columns) - set(COLUMN_NAMES))


def _normalise_row(row: Mapping[str, Any]) -> dict[str, Any]:
    unknown = _unknown_columns(row)
    if unknown:
        raise DataError(f"unknown result columns {unknown}; allowed: {', '.join(COLUMN_NAMES)}")
    missing = [n for n in _REQUIRED if row.get(n) in (None, "")]
    if missing:
        raise DataError(f"result row lacks required columns {missing}")
    out = dict(row)
    for key in ("options", "versions"):
        if isinstance(out.get(key), (dict, list)):
            out[key] = json.dumps(out[key], sort_keys=True, separators=(",", ":"))
    if out.get("created_at") is None:
        import datetime as dt

        out["created_at"] = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return out


def unique_jobs(frame: Any) -> Any:
    """One copy of each (job_id, scope) row: the last in `frame`'s order (a job's rows are one measurement; callers
    order their sources oldest first)."""
    return frame.drop_duplicates(subset=["job_id", "scope"], keep="last")


def read_result_tables(files: Sequence[str | os.PathLike[str]]) -> Any:
    """Read exported result tables (parquet or csv) into one DataFrame in the results schema (empty when none).

    A job in two tables (grids share models: a preset's plain transfer baseline is paper-faithful's) is one
    measurement: its rows are kept once, the newest (`created_at`; rows written by newer code carry more columns,
    e.g. `train_steps`). `train_steps` belongs to the model: a row written before the column existed takes it from
    another row of the same model (`config_hash`) where one has it.
    """
    import pandas as pd

    if not files:
        return pd.DataFrame(columns=list(COLUMN_NAMES))
    frame = pd.concat([read_table(f) for f in files], ignore_index=True)
    if "created_at" in frame.columns:
        frame = frame.sort_values("created_at", kind="stable", na_position="first")
    if {"config_hash", "train_steps"} <= set(frame.columns):
        steps = pd.to_numeric(frame["train_steps"], errors="coerce")
        known = steps.groupby(frame["config_hash"]).transform("max")
        dtype = frame["train_steps"].dtype
        frame["train_steps"] = steps.fillna(known).astype(dtype if str(dtype).startswith("Int") else "Int64")
    return unique_jobs(frame).sort_index().reset_index(drop=True)


def read_table(path: str | os.PathLike[str]) -> Any:
    """One exported results table (parquet, or csv by its suffix), checked against the schema."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DataError(f"results table {str(p)!r} does not exist")
    suffix = p.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise DataError(f"results table {str(p)!r}: unknown format {suffix or '(no suffix)'!r}; "
                        f"allowed: .parquet, .csv (what `xner results export` writes)")
    try:
        frame = pd.read_parquet(p) if suffix == ".parquet" else pd.read_csv(p)
    except Exception as exc:  # pyarrow, csv and unicode errors alike: the file is not readable as a table
        raise DataError(f"results table {str(p)!r} cannot be read as {suffix[1:]}: {exc}") from exc
    unknown = _unknown_columns(frame.columns)
    if unknown:
        raise DataError(f"results table {str(p)!r} has columns the results table does not: {unknown}; allowed: "
                        f"{', '.join(COLUMN_NAMES)}")
    missing = [n for n in _REQUIRED if n not in frame.columns]
    if missing:
        raise DataError(f"results table {str(p)!r} lacks required columns {missing}")
    empty = [n for n in _REQUIRED if frame[n].isna().any() or (frame[n].astype(str) == "").any()]
    if empty:
        raise DataError(f"results table {str(p)!r}: some rows lack a value in required columns {empty}")
    if suffix == ".csv":
        for col in ("created_at", "trained_at"):
            if col in frame.columns:
                frame[col] = pd.to_datetime(frame[col], errors="coerce")
    return frame


def write_table(frame: Any, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write a results frame as an exported table, atomically (`read_table` reads it back).

    Args:
        frame: rows in the results schema.
        path: the file; its parent is created.
        fmt: "parquet" or "csv" (default: from the suffix).
    """
    out = Path(path)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"unknown results table format {fmt!r} ({str(out)!r}); choose one of: csv, parquet")
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out


# Rows of models trained again under the job ids of committed rows, kept apart (in `data/results/*.parquet` they
# would replace the committed measurements): `<committed results>/retrained/*.parquet`.
RETRAINED_DIR = "retrained"


def retrained_results(directory: str | os.PathLike[str] | None = None) -> Any:
    """Read the committed rows of models trained again (RETRAINED_DIR under `directory`, default the committed
    results directory) into one DataFrame; empty when there are none."""
    return committed_results((Path(directory) if directory else committed_results_dir()) / RETRAINED_DIR)


def committed_results(directory: str | os.PathLike[str] | None = None) -> Any:
    """Read the committed result tables (`data/results/*.parquet`, or `XNER_COMMITTED_RESULTS`) into one DataFrame
    (empty when none; `read_result_tables`: a job shared by two tables counted once)."""
    d = Path(directory) if directory else committed_results_dir()
    return read_result_tables(sorted(d.glob("*.parquet")) if d.is_dir() else [])
