"""Results store: schema, idempotent transactional writes, filters, export."""

from __future__ import annotations

import pandas as pd
import pytest

from xner_core.errors import ConfigError, DataError
from xner_core.experiments.store import COLUMN_NAMES, SCHEMA, ResultsStore, committed_results


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
    # a second table sharing a job (a preset's baseline is another grid's model) counts that job once
    other = ResultsStore(tmp_path / "o.duckdb")
    other.write([_row("a", target="ca", f1=0.7, train_steps=1701), _row("d", target="br")])
    other.export(tmp_path / "00_other.parquet")  # read first, written last: its copy of "a" is the newer one
    both = committed_results(tmp_path)
    assert sorted(both["job_id"]) == ["a", "b", "c", "d"]
    assert both.set_index("job_id").loc["a", "train_steps"] == 1701


def test_committed_tables_give_a_models_steps_to_its_older_rows(tmp_path):
    # rows written before `train_steps` existed take the steps another table recorded for the same model
    old = ResultsStore(tmp_path / "old.duckdb")
    old.write([_row("sco", target="sco", config_hash="en1"), _row("br", target="br", config_hash="fr1")])
    old.export(tmp_path / "a_old.parquet")
    new = ResultsStore(tmp_path / "new.duckdb")
    new.write([_row("an", target="an", config_hash="en1", train_steps=1702)])
    new.export(tmp_path / "b_new.parquet")
    steps = committed_results(tmp_path).set_index("job_id")["train_steps"]
    assert steps["sco"] == 1702 and steps["an"] == 1702
    assert pd.isna(steps["br"])  # no row of the fr model knows its steps: left unknown, never guessed


def test_missing_store_reads_as_empty(tmp_path):
    store = ResultsStore(tmp_path / "none.duckdb")
    assert store.frame().empty and store.count() == 0


# The columns issue 4 asks the store for, by meaning -> our column names.
ISSUE_COLUMNS = {
    "config hash": ["config_hash"], "model": ["model"], "sources": ["sources"], "target": ["target"],
    "setting": ["setting"], "training options": ["options"], "perturbation": ["perturbation"], "seed": ["seed"],
    "scope": ["scope"], "precision/recall/F1": ["precision", "recall", "f1"],
    "CI bounds": ["f1_low", "f1_high", "drop_low", "drop_high"],
    "sentence/entity counts": ["n_sentences", "n_gold", "n_pred", "support"],
    "changed fractions": ["sentences_changed_frac", "tokens_changed_frac", "entities_changed_frac"],
    "overlap features": ["entity_token_overlap", "unique_chunk_overlap", "o_word_overlap", "subword_type_overlap",
                         "subword_token_overlap"],
    "URIEL features": [f"uriel_{k}" for k in ("genetic", "geographic", "syntactic", "phonological", "inventory",
                                              "featural")],
    "train and eval seconds": ["train_seconds", "eval_seconds"], "device": ["device"],
    "library versions": ["versions"], "timestamp": ["created_at"],
}


@pytest.mark.parametrize("meaning", sorted(ISSUE_COLUMNS))
def test_schema_has_every_column_the_issue_lists(meaning, tmp_path):
    store = ResultsStore(tmp_path / "r.duckdb")
    store.write([_row("j1")])
    import duckdb

    with duckdb.connect(str(store.path), read_only=True) as con:
        table = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_name = 'results'").fetchall()}
    assert set(ISSUE_COLUMNS[meaning]) <= table


def test_database_error_mid_batch_rolls_the_whole_batch_back(tmp_path):
    store = ResultsStore(tmp_path / "r.duckdb")
    store.write([_row("j1")])
    # passes the Python-side checks, fails inside DuckDB on the third row (a string where a number goes)
    bad = [_row("j2"), _row("j2", "PER"), _row("j2", "LOC", n_sentences="many")]
    with pytest.raises(Exception):
        store.write(bad)
    assert store.count() == 1 and store.job_ids() == {"j1"}
    store.write([_row("j3")])  # the store is still usable
    assert store.job_ids() == {"j1", "j3"}


def test_a_recreated_store_file_gets_its_schema_again(tmp_path):
    store = ResultsStore(tmp_path / "r.duckdb")
    store.write([_row("j1")])
    store.path.unlink()
    store.write([_row("j2")])
    assert store.job_ids() == {"j2"}


def test_import_adds_an_export_and_keeps_stored_rows_unless_replace(tmp_path):
    # a store is machine-local: an export (committed or from another machine) goes back into a fresh one whole
    src = ResultsStore(tmp_path / "src.duckdb")
    src.write([_row("a", f1=0.61, train_steps=1701, test_limit=None), _row("a", "PER", 0.4),
               _row("b", target="an", f1=0.55, config_hash="other")])
    pq = src.export(tmp_path / "t.parquet")
    csv = src.export(tmp_path / "t.csv")
    fresh = ResultsStore(tmp_path / "fresh.duckdb")
    fresh.write([_row("a", f1=0.9)])  # a newer measurement of job a, overall
    report = fresh.import_table(pq)
    assert (report.rows_read, report.rows_written, report.already_stored) == (3, 2, 1)
    df = fresh.frame().set_index(["job_id", "scope"])
    assert df.loc[("a", "overall"), "f1"] == pytest.approx(0.9)  # the stored row is kept
    assert df.loc[("a", "PER"), "f1"] == pytest.approx(0.4) and fresh.job_ids() == {"a", "b"}
    assert pd.isna(df.loc[("b", "overall"), "train_steps"]) and pd.isna(df.loc[("b", "overall"), "test_limit"])
    again = fresh.import_table(csv, replace=True)  # csv round trip; --replace takes the incoming rows
    assert (again.rows_read, again.rows_written, again.already_stored) == (3, 3, 3)
    df = fresh.frame().set_index(["job_id", "scope"])
    assert df.loc[("a", "overall"), "f1"] == pytest.approx(0.61) and df.loc[("a", "overall"), "train_steps"] == 1701
    assert len(df) == 3 and str(df["created_at"].dtype).startswith("datetime64")


def test_import_rejects_what_is_not_a_results_table_and_stores_nothing(tmp_path):
    store = ResultsStore(tmp_path / "r.duckdb")
    store.write([_row("keep")])
    with pytest.raises(DataError, match="does not exist"):
        store.import_table(tmp_path / "nope.parquet")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"allowed: \.parquet, \.csv"):
        store.import_table(tmp_path / "t.xlsx")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot be read as parquet"):
        store.import_table(tmp_path / "bad.parquet")
    pd.DataFrame({"job_id": ["x"], "colour": ["red"]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DataError, match=r"columns the results table does not: \['colour'\]"):
        store.import_table(tmp_path / "other.csv")
    pd.DataFrame({"job_id": ["x"], "scope": ["overall"]}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match="lacks required columns"):
        store.import_table(tmp_path / "short.csv")
    good = ResultsStore(tmp_path / "g.duckdb")
    good.write([_row("n1"), _row("n2")])
    frame = good.frame().astype({"seed": object})
    frame.loc[1, "seed"] = "not a number"  # one row a column's type cannot take: the whole file is refused
    frame.to_csv(tmp_path / "typed.csv", index=False)
    with pytest.raises(DataError, match="nothing was imported"):
        store.import_table(tmp_path / "typed.csv")
    assert store.job_ids() == {"keep"} and store.count() == 1
