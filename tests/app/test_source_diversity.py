"""AppTest of the source-diversity page: explanatory empty state, then charts from multi-source rows; the section
"Which source for this target" (measured sources ranked, the predictor-based shortlist)."""

from __future__ import annotations

from apptest_helpers import (
    assert_clean_run,
    open_page,
    plotly_specs,
    rendered_texts,
    result_row,
    unmd,
    values,
    write_store_rows,
)

PAGE = "pages/source_diversity.py"


def test_empty_state_names_the_command(no_data):
    at = open_page(PAGE)
    assert_clean_run(at)
    assert any("xner grid run diversity" in i.value for i in at.info)
    assert not at.get("plotly_chart")
    # the source ranking still explains itself: the study's one measured source, no shortlist without local data
    texts = [unmd(t) for t in rendered_texts(at)]
    assert "Which source for this target" in texts
    assert any("Only 1 measured source for br" in t for t in texts)
    assert any(t.startswith("No shortlist: no local WikiANN test split for 'br'") for t in texts)


def test_charts_from_multi_source_rows(no_data):
    rows = []
    for sources, setting, f1 in (("es", "transfer", 0.80), ("fr", "transfer", 0.70), ("es,fr", "multi_source", 0.83),
                                 ("es,fr,it", "multi_source", 0.85), ("es,fr,it", "distill", 0.84),
                                 ("es", "distill", 0.82)):
        for pert, delta in (("clean", 0.0), ("entity_replace", 0.05)):
            rows.append(result_row(job_id=f"{sources}-{setting}-{pert}", sources=sources, setting=setting,
                                   target="ca", perturbation=pert, f1=f1 - delta, clean_f1=f1, drop=delta))
    write_store_rows(rows)
    at = open_page(PAGE, {"div_target": "ca", "kind": "syntactic", "perturbation": "entity_replace"})
    assert_clean_run(at)
    assert at.selectbox(key="qp_div_target").value == "ca"
    assert at.selectbox(key="qp_kind").value == "syntactic"
    count_fig, index_fig, students_fig, measured_fig = plotly_specs(at)
    series = {(t["name"], t["meta"]["perturbation"]): t for t in count_fig["data"]}
    multi = series[("multi_source · e5-small", "clean")]
    assert values(multi["x"]) == [2, 3] and values(multi["y"]) == [83.0, 85.0]
    assert ("best single source · e5-small", "entity_replace") in series
    best = series[("best single source · e5-small", "clean")]
    assert list(best["text"]) == ["es"]
    table = at.dataframe[0].value
    assert set(table["setting"]) == {"multi_source", "distill", "best single source"}
    assert table["diversity"].notna().sum() > 0  # URIEL syntactic distances of es/fr/it
    # students beside their best teacher: es's student against the es model; es+fr+it's has no it teacher rows
    students = at.dataframe[1].value.set_index(["sources", "perturbation"])
    lone = students.loc[("es", "entity_replace")]
    assert lone["best_teacher"] == "es" and abs(lone["gap"] - (77.0 - 75.0)) < 1e-9
    assert students.loc[("es,fr,it", "clean"), "teachers_missing"] == "it"
    marks = {(t["meta"]["kind"], t["meta"]["perturbation"]): t for t in students_fig["data"]}
    assert values(marks[("student", "clean")]["x"]) == [82.0] and values(marks[("teacher", "clean")]["x"]) == [80.0]
    assert "gap +2.0" in marks[("student", "clean")]["text"][0]
    # which source: es and fr measured (too few to compare predictors), F1 against each predictor
    assert at.selectbox(key="qp_src_run").value.startswith("e5-small | ")
    assert any("Only 2 measured sources for ca" in unmd(w.value) for w in at.warning)
    measured = at.dataframe[2].value
    assert list(measured["source"]) == ["es", "fr"] and list(measured["drop_rank"]) == [1, 1]
    points = [t for t in measured_fig["data"] if t["meta"]["kind"] == "measured"]
    assert points and all(values(t["y"]) == [80.0, 70.0] for t in points)


def test_which_source_shortlist_from_local_data(with_data, committed):
    at = open_page(PAGE, {"div_target": "ast", "src_n": "5", "src_run": "mbert | study"})
    assert_clean_run(at)
    assert at.selectbox(key="qp_div_target").value == "ast"
    assert any("Only 1 measured source for ast in the study's published mbert rows (es)" in unmd(w.value)
               for w in at.warning)
    measured, shortlist = at.dataframe[-2].value, at.dataframe[-1].value
    assert list(measured["source"]) == ["es"]
    # the 5 closest candidates, plus the sources other runs measured (e5-small's fr, it, pt, en, de): unmeasured in
    # the study's run, and measured anyway to fill their predictors
    others = {"fr", "it", "pt", "en", "de"}
    assert len(set(shortlist["source"]) - others) <= 5 <= len(shortlist) <= 10
    assert "es" not in set(shortlist["source"]) and "ast" not in set(shortlist["source"])
    assert list(shortlist["predicted_rank"]) == sorted(shortlist["predicted_rank"])
    assert any("the 5 of" in t and "closest to ast" in t for t in map(unmd, rendered_texts(at)))
    ranks = plotly_specs(at)[-1]
    assert {t["meta"]["kind"] for t in ranks["data"]} == {"predictor", "mean_rank"}


# ------------------------------------------------------------------------------------- the training-methods page


def test_training_methods_page_empty_state_and_a_method(no_data):
    import json

    at = open_page("pages/training_methods.py")
    assert_clean_run(at)
    assert any("xner grid run tapt" in i.value for i in at.info)
    base = {"epochs": 1, "lr": 1e-4, "batch_size": 8}
    rows = []
    for i, tgt in enumerate(("br", "oc", "sco")):
        src = "en" if tgt == "sco" else "fr"
        for setting, opts, clean, drop in (("transfer", base, 0.60, 0.05),
                                           ("tapt", {**base, "tapt_steps": 2000}, 0.64 + 0.01 * i, 0.04)):
            for pert, d in (("clean", 0.0), ("entity_replace", drop)):
                rows.append(result_row(job_id=f"{tgt}-{setting}-{pert}", sources=src, target=tgt, setting=setting,
                                       options=json.dumps(opts), seed=0, data_protocol="paper-resplit",
                                       perturbation=pert, f1=clean - d, clean_f1=clean, drop=d))
    write_store_rows(rows)
    at = open_page("pages/training_methods.py")
    assert_clean_run(at)
    tests = at.dataframe[0].value.set_index("perturbation")
    assert tests.loc["clean", "n"] == 3 and abs(tests.loc["clean", "diff"] - 5.0) < 1e-9  # 4, 5, 6 points
    assert tests.loc["P1 entities", "better_in"] == "method better in 3 of 3 pairs"  # short title, not the id
    texts = [unmd(t) for t in rendered_texts(at)]
    assert any("freshly initialised masked-LM head" in t for t in texts)  # e5-small's TAPT note
    assert any("No paired tests of TAPT models committed yet: `python scripts/paired_report.py`" in t for t in texts)
    assert len(plotly_specs(at)) == 2


def test_students_and_multi_source_models_show_their_committed_paired_tests(no_data):
    import os
    from pathlib import Path

    import pandas as pd

    from xner_core.analysis.paired import PAIRED_COLUMNS, PAIRED_FILE

    rows = [result_row(job_id=f"{s}-{setting}", sources=s, setting=setting, target="ca", perturbation="clean", f1=f1,
                       clean_f1=f1, drop=0.0, seed=1)
            for s, setting, f1 in (("es", "transfer", 0.80), ("es", "distill", 0.82), ("es,fr", "multi_source", 0.83))]
    write_store_rows(rows)
    base = {c: None for c in PAIRED_COLUMNS}
    paired = pd.DataFrame([
        {**base, "comparison": "student_vs_best_teacher", "model": "e5-small", "target": "ca", "perturbation": "clean",
         "seed": 1, "candidate": "distill es", "baseline": "transfer es", "candidate_f1": 82.0, "baseline_f1": 80.0,
         "diff": 2.0, "low": 0.5, "high": 3.5, "p": 0.004, "n_sentences": 3401, "n_resamples": 1000},
        {**base, "comparison": "multi_source_vs_best_single", "model": "e5-small", "target": "ca",
         "perturbation": "clean", "seed": 1, "candidate": "multi_source es+fr", "baseline": "transfer es",
         "candidate_f1": 83.0, "baseline_f1": 80.0, "diff": 3.0, "low": -0.2, "high": 6.1, "p": 0.07,
         "n_sentences": 3401, "n_resamples": 1000},
        {**base, "comparison": "student_vs_best_teacher", "model": "e5-small", "target": "an", "perturbation": "clean",
         "seed": 1, "candidate": "distill es", "baseline": "transfer es", "candidate_f1": 77.0, "baseline_f1": 78.0,
         "diff": -1.0, "low": -3.0, "high": 1.0, "p": 0.4, "n_sentences": 518, "n_resamples": 1000},
    ])
    paired.to_csv(Path(os.environ["XNER_COMMITTED_RESULTS"]) / PAIRED_FILE, index=False)
    at = open_page(PAGE, {"div_target": "ca"})
    assert_clean_run(at)
    texts = [unmd(t) for t in rendered_texts(at)]
    assert any("**ca**: distill es − transfer es: +2.00 [+0.50, +3.50] F1, p = 0.004 (paired bootstrap over "
               "3,401 test sentences, seed 1)" in t for t in texts)
    # each comparison is summed up before its sentences: how many intervals exclude 0
    assert any("distillation student − its best teacher (Wu et al. 2020)**, clean: 1 test: 1 interval above 0, 0 "
               "below, 0 span 0." in t for t in texts)
    assert any("multi_source es+fr − transfer es: +3.00 [-0.20, +6.10] F1, p = 0.070" in t for t in texts)
    tables = [d.value for d in at.dataframe if "baseline" in d.value.columns]
    assert [set(t["target"]) for t in tables] == [{"ca"}, {"ca"}]  # an's student is not ca's


def test_tests_against_a_baseline_trained_again_are_shown_labelled_beside_the_committed_ones(no_data):
    import os
    from pathlib import Path

    import pandas as pd

    from xner_core.analysis.paired import PAIRED_COLUMNS, PAIRED_FILE, SAME_CODE_FILE, TRAINED_AGAIN
    from xner_core.experiments.store import RETRAINED_DIR, write_table

    rows = [result_row(job_id=f"{s}-{setting}", sources=s, setting=setting, target="ca", perturbation="clean", f1=f1,
                       clean_f1=f1, drop=0.0, seed=1, created_at=pd.Timestamp(made), trained_at=None)
            for s, setting, f1, made in (("es", "transfer", 0.80, "2026-12-06 10:00"),
                                         ("fr", "transfer", 0.78, "2026-12-06 10:00"),
                                         ("es,fr", "distill", 0.83, "2026-12-07 13:00"))]
    write_store_rows(rows)
    # the es teacher was trained again (same job) before the student was trained: the student met that training
    again = result_row(job_id="es-transfer", sources="es", setting="transfer", target="ca", perturbation="clean",
                       f1=0.815, clean_f1=0.815, drop=0.0, seed=1, trained_at=pd.Timestamp("2026-12-07 11:00"),
                       created_at=pd.Timestamp("2026-12-07 14:00"))
    base = {c: None for c in PAIRED_COLUMNS}
    test = {**base, "comparison": "student_vs_best_teacher", "model": "e5-small", "target": "ca",
            "perturbation": "clean", "seed": 1, "candidate": "distill es+fr", "candidate_job": "s",
            "baseline_job": "t", "candidate_f1": 83.0, "n_sentences": 3401, "n_resamples": 1000, "p_holm": 0.004,
            "family_size": 1}
    root = Path(os.environ["XNER_COMMITTED_RESULTS"])
    pd.DataFrame([{**test, "baseline": "transfer es", "baseline_f1": 80.0, "diff": 3.0, "low": 1.5, "high": 4.5,
                   "p": 0.002}]).to_csv(root / PAIRED_FILE, index=False)
    (root / SAME_CODE_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_table(pd.DataFrame([again]), root / RETRAINED_DIR / "plain_retrained.parquet")
    pd.DataFrame([{**test, "baseline": "transfer es" + TRAINED_AGAIN, "baseline_f1": 81.5, "diff": 1.5, "low": 0.2,
                   "high": 2.8, "p": 0.03}]).to_csv(root / SAME_CODE_FILE, index=False)
    at = open_page(PAGE, {"div_target": "ca"})
    assert_clean_run(at)
    texts = [unmd(t) for t in rendered_texts(at)]
    assert any("distill es+fr − transfer es: +3.00 [+1.50, +4.50] F1, p = 0.002" in t for t in texts)
    assert any("distill es+fr − transfer es · trained again: +1.50 [+0.20, +2.80] F1, p = 0.030" in t for t in texts)
    assert any("is the committed configuration trained again, by the code that trained the model it is paired with"
               in t for t in texts)
    table = next(d.value for d in at.dataframe if "baseline" in d.value.columns)
    assert table["baseline"].tolist() == ["transfer es", "transfer es" + TRAINED_AGAIN]
    # the chart of students and teachers sets the student beside the teacher it met, as the same-code test does
    student = next(d.value for d in at.dataframe if "best_teacher" in d.value.columns).iloc[0]
    assert student["best_teacher"] == "es" + TRAINED_AGAIN and abs(student["gap"] - 1.5) < 1e-9
    assert any("A teacher marked \"· trained again\" is a retraining of its committed job" in t for t in texts)
