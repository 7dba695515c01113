"""Results store: schema, idempotent transactional writes, filters, export."""

from __future__ import annotations

import pandas as pd
import pytest

from xner_core.errors import ConfigError, DataError
from xner_core.results import COLUMN_NAMES, SCHEMA, ResultsStore, committed_results


def _row(job: str, scope: str = "overall", f1: float = 0.5, **extra):
    base = dict(job_id=job, scope=scope, config_hash="abc", model="tiny", sources="es", target="ca",
                setting="transfer", perturbation="clean", f1=f1, precision=f1, recall=f1, options={"epochs": 1})
    base.update(extra)
    return base


def test_schema_has_unique_documented_columns():
    assert len(COLUMN_NAMES) == len(set(COLUMN_NAMES))
    assert all(c.description for c in SCHEMA)
    assert {"job_id", "scope", "f1", "f1_low", "f1_high", "drop", "uriel_genetic", "device", "versions"} <= set(COLUMN_NAMES)


def test_write_is_idempotent_per_job_and_scope(tmp_path):
    store = ResultsStore(tmp_path / "r.duckdb")
    assert store.count() == 0 and store.job_ids() == set()
    store.write([_row("j1"), _row("j1", "PER", 0.4)])
    store.write([_row("j1", f1=0.7), _row("j1", "PER", 0.4)])  # rerun replaces, never duplicates
    df = store.frame()
    assert len(df) == 2
    assert df.loc[df.scope == "overall", "f1"].item() == pytest.approx(0.7)
    assert store.job_ids() == {"j1"}
    assert df.loc[df.scope == "overall", "options"].item() == '{"epochs":1}'


def test_failed_write_leaves_store_unchanged(tmp_path):
    store = ResultsStore(tmp_path / "r.duckdb")
    store.write([_row("j1")])
    with pytest.raises(DataError, match="required"):
        store.write([_row("j2"), _row("j3", model="")])
    assert store.job_ids() == {"j1"}
    with pytest.raises(DataError, match="unknown result columns"):
        store.write([_row("j4", bogus=1)])
    assert store.count() == 1


def test_filters_and_export(tmp_path):
    store = ResultsStore(tmp_path / "r.duckdb")
    store.write([_row("a", target="ca"), _row("b", target="an"), _row("c", target="ast")])
    assert set(store.frame({"target": ["ca", "an"]}).target) == {"ca", "an"}
    assert store.frame({"target": []}).empty
    with pytest.raises(ConfigError, match="unknown results column"):
        store.frame({"nope": 1})
    pq = store.export(tmp_path / "out.parquet")
    csv = store.export(tmp_path / "out.csv")
    assert len(pd.read_parquet(pq)) == 3 and len(pd.read_csv(csv)) == 3
    with pytest.raises(ConfigError, match="csv, parquet"):
        store.export(tmp_path / "out.xlsx")
    assert len(committed_results(tmp_path)) == 3


def test_missing_store_reads_as_empty(tmp_path):
    store = ResultsStore(tmp_path / "none.duckdb")
    assert store.frame().empty and store.count() == 0
