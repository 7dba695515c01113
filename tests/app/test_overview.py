"""AppTest of the overview page: widgets, charts from the real published rows, ours beside them, URL state."""

from __future__ import annotations

from apptest_helpers import (
    assert_clean_run,
    open_page,
    plotly_specs,
    result_row,
    values,
    widget_value,
    write_store_rows,
)

from xner_core.corpus.languages import reference_pairs

ALL_PAIRS = {p.label for p in reference_pairs()}


def marker_traces(spec: dict) -> list[dict]:
    return [t for t in spec["data"] if (t.get("meta") or {}).get("kind") == "points"]


def pairs_of(trace: dict) -> set[str]:
    return {row[6] for row in trace["customdata"]}


def test_overview_default_view_from_published_rows(no_data):
    at = open_page(None)
    assert_clean_run(at)
    assert at.title[0].value == "Overview"
    # Shared sidebar + page filters.
    assert [s.label for s in at.sidebar.selectbox] == ["Model", "Pair (source → target)", "Source", "Target",
                                                      "Perturbation"]  # Source/Target: "Another pair"
    assert {m.label for m in at.multiselect} == {"Origin", "Models", "Settings", "Perturbations"}
    assert at.radio(key="qp_y").value == "drop"
    assert at.selectbox(key="qp_x").value == "entity_token_overlap"
    scatter, heatmap = plotly_specs(at)
    markers = marker_traces(scatter)
    # 3 perturbations x 2 settings x 2 models; our overlap has no cs (no local Czech data) -> 12 transfer pairs.
    assert len(markers) == 12
    for t in markers:
        expected = ALL_PAIRS if t["meta"]["setting"] == "native" else ALL_PAIRS - {"cs→sk"}
        assert pairs_of(t) == expected
    assert any((t.get("meta") or {}).get("kind") == "band" for t in scatter["data"])
    hm = [t for t in heatmap["data"] if t["type"] == "heatmap"]
    assert [t["meta"]["setting"] for t in hm] == ["native", "transfer"]
    assert list(hm[0]["y"]) == [p.label for p in reference_pairs()]
    # the sidebar says where and at which precision models run (the suite pins auto to fp32)
    assert any(c.value.startswith("Device: **") and c.value.endswith(" · fp32**") for c in at.sidebar.caption)
    # Image export via the modebar; downloads for every chart/table.
    assert '"toImageButtonOptions"' in at.get("plotly_chart")[0].proto.config
    assert {b.key for b in at.get("download_button")} >= {"dl_points", "dl_stats", "dl_heatmap"}
    # Stats table: one row per panel x series.
    assert len(at.dataframe[0].value) == 12
    assert any("No results of ours yet" in i.value for i in at.info)


def test_overview_url_state_round_trip(no_data):
    params = {"y": "f1", "x": "paper_token_overlap", "models": "xlmr", "settings": "transfer",
              "perturbations": "clean,entity_replace", "origins": "published", "model": "xlmr", "source": "es",
              "target": "an", "perturbation": "char_noise"}
    at = open_page(None, params)
    assert_clean_run(at)
    assert at.radio(key="qp_y").value == "f1"
    assert at.selectbox(key="qp_x").value == "paper_token_overlap"
    assert at.multiselect(key="qp_models").value == ["xlmr"]
    assert at.multiselect(key="qp_settings").value == ["transfer"]
    assert at.multiselect(key="qp_perturbations").value == ["clean", "entity_replace"]
    assert widget_value(at, "qp_model") == "xlmr"
    assert widget_value(at, "qp_pair") == "es→an"
    assert widget_value(at, "qp_perturbation") == "char_noise"
    markers = marker_traces(plotly_specs(at)[0])
    assert len(markers) == 2  # clean + P1, transfer, xlmr, published
    for t in markers:
        assert pairs_of(t) == ALL_PAIRS  # the study's overlap covers cs→sk
        assert {row[2] for row in t["customdata"]} == {"xlmr"}
    for key, value in params.items():
        assert at.query_params[key] == [value] or at.query_params[key] == value


def test_overview_ignores_invalid_url_values(no_data):
    at = open_page(None, {"x": "<script>alert(1)</script>", "y": "nope", "models": "mbert,bogus",
                          "source": "xx", "target": "br"})
    assert_clean_run(at)
    assert at.selectbox(key="qp_x").value == "entity_token_overlap"
    assert at.radio(key="qp_y").value == "drop"
    assert at.multiselect(key="qp_models").value == ["mbert"]
    assert widget_value(at, "qp_pair") == "fr→br"


def test_overview_shows_ours_beside_published(no_data):
    rows = []
    for i, pair in enumerate(reference_pairs()[:5]):
        for pert, f1 in (("clean", 0.80), ("entity_replace", 0.70 - 0.02 * i)):
            rows.append(result_row(job_id=f"{pair.key}-{pert}", sources=pair.source, target=pair.target,
                                   perturbation=pert, f1=f1, clean_f1=0.80, drop=0.80 - f1, f1_low=f1 - 0.02,
                                   f1_high=f1 + 0.02))
    write_store_rows(rows)
    at = open_page(None, {"perturbations": "entity_replace", "settings": "transfer"})
    assert_clean_run(at)
    assert at.multiselect(key="qp_models").value == ["mbert", "xlmr", "e5-small"]
    markers = marker_traces(plotly_specs(at)[0])
    names = {t["name"] for t in markers}
    assert names == {"mbert · published", "xlmr · published", "e5-small · ours"}
    ours = next(t for t in markers if t["name"] == "e5-small · ours")
    assert pairs_of(ours) == {p.label for p in reference_pairs()[:5]}
    by_pair = {row[6]: y for row, y in zip(ours["customdata"], values(ours["y"]))}
    assert abs(by_pair["fr→br"] - 10.0) < 1e-9 and abs(by_pair["ar→hi"] - 14.0) < 1e-9
    assert not any("No results of ours yet" in i.value for i in at.info)


def test_overview_shows_the_committed_results_at_once(committed, no_data):
    # What `make app` shows on a fresh machine: the study's numbers and our committed runs, no local data.
    at = open_page(None)
    assert_clean_run(at)
    assert not any("No results of ours yet" in i.value for i in at.info)
    scatter, _ = plotly_specs(at)
    ours = [t for t in marker_traces(scatter) if t["meta"]["series"].endswith("· ours")]
    assert ours and {t["meta"]["series"] for t in ours} == {"e5-small · ours"}
    transfer = [t for t in ours if t["meta"]["setting"] == "transfer"]
    # the 12 reference pairs we ran, and the same recipe's other sources of ca, an and ast (diversity-faithful)
    assert transfer and all(ALL_PAIRS - {"cs→sk"} <= pairs_of(t) for t in transfer)
    assert all({p.split("→")[1] for p in pairs_of(t) - ALL_PAIRS} <= {"ca", "an", "ast"} for t in transfer)
    stats = at.dataframe[0].value
    assert (stats["origin"] == "ours").any() and stats["pearson_r"].notna().all()


def test_overview_shows_one_of_our_experiments_at_a_time(no_data):
    opts = '{"batch_size":32,"epochs":1,"lr":null,"max_train_sentences":%d,"robust":null}'
    rows = []
    for cap, clean, n_pairs in ((5000, 0.80, 3), (2000, 0.60, 1)):
        for pair in list(reference_pairs())[:n_pairs]:
            for pert, f1 in (("clean", clean), ("entity_replace", clean - 0.1)):
                rows.append(result_row(job_id=f"{cap}-{pair.key}-{pert}", sources=pair.source, target=pair.target,
                                       perturbation=pert, f1=f1, clean_f1=clean, drop=clean - f1,
                                       options=opts % cap, data_protocol="wikiann-rahimi", test_limit=1000))
    write_store_rows(rows)
    at = open_page(None, {"y": "f1", "perturbations": "clean", "models": "e5-small", "settings": "transfer"})
    assert_clean_run(at)
    big = "wikiann-rahimi · ≤5000 train · 1 epoch · test ≤1000"
    assert widget_value(at, "qp_protocol") == big  # the experiment with the most rows first
    (ours,) = [t for t in marker_traces(plotly_specs(at)[0]) if t["meta"]["series"] == "e5-small · ours"]
    assert values(ours["y"]) == [80.0, 80.0, 80.0]
    at.query_params["protocol"] = "wikiann-rahimi · ≤2000 train · 1 epoch · test ≤1000"
    at.run()
    assert_clean_run(at)
    (ours,) = [t for t in marker_traces(plotly_specs(at)[0]) if t["meta"]["series"] == "e5-small · ours"]
    assert values(ours["y"]) == [60.0]


def test_the_faithful_run_is_the_default_view(committed, no_data):
    """With the committed tables (the faithful run has fewer rows than the 5000-sentence grid while its seeds
    land), the sidebar opens on the study's recipe at full scale."""
    from xner_core.analysis.tidy import DEFAULT_PRESET, spec_protocol
    from xner_core.experiments.spec import load_spec

    at = open_page(None, {"models": "e5-small"})
    assert_clean_run(at)
    assert widget_value(at, "qp_protocol") == spec_protocol(load_spec(DEFAULT_PRESET), "e5-small")


def test_overview_scores_seen_or_unseen_entities(committed, no_data):
    """The committed faithful run has seen/unseen rows: with scope=unseen only our points are drawn (the study
    published overall F1 only), and their drops differ from the overall ones."""
    overall = open_page(None, {"models": "e5-small", "origins": "ours", "perturbations": "entity_replace"})
    unseen = open_page(None, {"models": "e5-small", "origins": "ours", "perturbations": "entity_replace",
                              "scope": "unseen"})
    assert_clean_run(unseen)
    assert widget_value(unseen, "qp_scope") == "unseen"
    traces = marker_traces(plotly_specs(unseen)[0])
    assert traces and all(t["meta"]["series"].endswith("· ours") for t in traces)
    ys = lambda at: sorted(v for t in marker_traces(plotly_specs(at)[0]) for v in values(t["y"]))  # noqa: E731
    assert ys(unseen) and ys(unseen) != ys(overall)
