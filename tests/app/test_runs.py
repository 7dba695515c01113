"""AppTest of the runs page: store and committed counts, exports, cached models."""

from __future__ import annotations

from apptest_helpers import assert_clean_run, open_page, result_row, write_store_rows

PAGE = "pages/runs.py"


def test_runs_empty_store(no_data):
    at = open_page(PAGE)
    assert_clean_run(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows in the local store"] == "0"
    assert metrics["Published rows (the study)"] == "208"
    assert any("No rows yet" in i.value for i in at.info)
    assert any("No trained models" in i.value for i in at.info)


def test_runs_counts_and_exports(no_data):
    write_store_rows([result_row(job_id="a"), result_row(job_id="a", scope="PER"),
                      result_row(job_id="b", perturbation="entity_replace"), result_row(job_id="c", target="an")])
    at = open_page(PAGE)
    assert_clean_run(at)
    assert {m.label: m.value for m in at.metric}["Rows in the local store"] == "4"
    counts = at.dataframe[0].value
    assert counts[["target", "rows", "jobs"]].values.tolist() == [["an", 1, 1], ["ca", 3, 2]]
    assert {"dl_store_csv", "dl_store_parquet", "dl_store_counts"} <= {b.key for b in at.get("download_button")}
