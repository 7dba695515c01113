"""AppTest of the runs page: store and committed counts, exports, cached models."""

from __future__ import annotations

from apptest_helpers import assert_clean_run, open_page, result_row, unmd, write_store_rows

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


def test_runs_grid_status_of_a_preset(with_data):
    at = open_page(PAGE, {"grid": "smoke"})
    assert_clean_run(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Done"] == "0 / 16" and metrics["Missing"] == "16" and metrics["Running"] == "0"
    grid = next(d.value for d in at.dataframe if "missing" in d.value.columns)
    assert len(grid) == 4 and grid["missing"].sum() == 16
    assert "dl_grid_status" in {b.key for b in at.get("download_button")}


def test_runs_lists_models_held_in_memory(tiny_models):
    at = open_page("pages/sentence_lab.py", {"model": "tiny", "source": "es", "target": "an", "perts": "entity_mask"})
    assert_clean_run(at)
    at.switch_page(PAGE).run()
    assert_clean_run(at)
    models = next(d.value for d in at.dataframe if "loaded" in d.value.columns)
    assert sorted(models["hash"]) == sorted(tiny_models)
    assert models["loaded"].tolist() == [1, 1]  # one copy each, whatever the number of sessions


def test_tapt_rows_and_preset_carry_the_head_note(no_data):
    # e5-small has no pretrained masked-LM head: wherever the tapt setting shows, the page says which head TAPT used
    write_store_rows([result_row(job_id="t", setting="tapt", model="e5-small"), result_row(job_id="n")])
    at = open_page(PAGE, {"grid": "tapt"})
    assert_clean_run(at)
    notes = [unmd(i.value) for i in at.info if "TAPT with e5-small" in unmd(i.value)]
    assert len(notes) == 2  # under the store's counts and under the tapt preset's status
    assert all("freshly initialised masked-LM head" in n and "mBERT and XLM-R would start from their pretrained"
               in n for n in notes)


def test_no_tapt_note_without_tapt(no_data):
    write_store_rows([result_row(job_id="n")])
    at = open_page(PAGE, {"grid": "smoke"})
    assert not any("TAPT" in i.value for i in at.info)
