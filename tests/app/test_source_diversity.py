"""AppTest of the source-diversity page: explanatory empty state, then charts from multi-source rows."""

from __future__ import annotations

from apptest_helpers import assert_clean_run, open_page, plotly_specs, result_row, values, write_store_rows

PAGE = "pages/source_diversity.py"


def test_empty_state_names_the_command(no_data):
    at = open_page(PAGE)
    assert_clean_run(at)
    assert any("xner grid run diversity" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_charts_from_multi_source_rows(no_data):
    rows = []
    for sources, setting, f1 in (("es", "transfer", 0.80), ("fr", "transfer", 0.70), ("es,fr", "multi_source", 0.83),
                                 ("es,fr,it", "multi_source", 0.85), ("es,fr,it", "distill", 0.84)):
        for pert, delta in (("clean", 0.0), ("entity_replace", 0.05)):
            rows.append(result_row(job_id=f"{sources}-{setting}-{pert}", sources=sources, setting=setting,
                                   target="ca", perturbation=pert, f1=f1 - delta, clean_f1=f1, drop=delta))
    write_store_rows(rows)
    at = open_page(PAGE, {"div_target": "ca", "kind": "syntactic", "perturbation": "entity_replace"})
    assert_clean_run(at)
    assert at.selectbox(key="qp_div_target").value == "ca"
    assert at.selectbox(key="qp_kind").value == "syntactic"
    count_fig, index_fig = plotly_specs(at)
    series = {(t["name"], t["meta"]["perturbation"]): t for t in count_fig["data"]}
    multi = series[("multi_source · e5-small", "clean")]
    assert values(multi["x"]) == [2, 3] and values(multi["y"]) == [83.0, 85.0]
    assert ("best single source · e5-small", "entity_replace") in series
    best = series[("best single source · e5-small", "clean")]
    assert list(best["text"]) == ["es"]
    table = at.dataframe[0].value
    assert set(table["setting"]) == {"multi_source", "distill", "best single source"}
    assert table["diversity"].notna().sum() > 0  # URIEL syntactic distances of es/fr/it
