"""Tests for xner_core.analysis.plots: figures built from the real published rows carry the right points, fits and
values, and their points round-trip through a chart selection into a pair filter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.io
import pytest

from xner_core.analysis import plots
from xner_core.analysis.stats import ols_fit
from xner_core.analysis.tidy import read_reference_tables, tidy_results
from xner_core.analysis.views import pair_rows, pivot_drops, selection_to_filter, view_points
from xner_core.corpus.languages import reference_pairs

PAPER = ["entity_replace", "context_replace", "entity_context"]
ALL_PAIRS = {p.label for p in reference_pairs()}


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    t = read_reference_tables()
    return tidy_results(t["published"], None, t["overlap"], t["uriel"], reference_pairs())


def traces(fig, kind):
    return [t for t in fig.data if (t.meta or {}).get("kind") == kind]


def test_overlap_scatter_points_per_panel(tidy):
    pts = view_points(tidy, perturbations=PAPER)
    fig = plots.overlap_scatter(pts, "paper_token_overlap", "drop", "x", "y", perturbations=PAPER)
    markers = traces(fig, "points")
    # 3 perturbation rows x 2 setting columns x 2 models (mbert, xlmr) = 12 series of 13 pairs each.
    assert len(markers) == 12
    for t in markers:
        assert {row[6] for row in t.customdata} == ALL_PAIRS
        assert len(t.x) == 13
    # Every series has a line and a band; the legend shows each series once.
    assert len(traces(fig, "fit")) == 12 and len(traces(fig, "band")) == 12
    assert sorted(t.name for t in markers if t.showlegend) == ["mbert · published", "xlmr · published"]
    # Panels: 3 x 2 subplots.
    assert len([k for k in fig.layout if k.startswith("xaxis")]) == 6
    plotly.io.to_json(fig)  # serialisable as Streamlit sends it


def test_overlap_scatter_values_match_the_rows(tidy):
    pts = view_points(tidy, models=["mbert"], settings=["transfer"], perturbations=["entity_replace"])
    fig = plots.overlap_scatter(pts, "paper_token_overlap", "drop", "x", "y")
    (marker,) = traces(fig, "points")
    by_pair = {cd[6]: (x, y) for cd, x, y in zip(marker.customdata, marker.x, marker.y)}
    assert by_pair["fr→br"] == pytest.approx((0.233, 1.0))
    assert by_pair["es→ast"] == pytest.approx((0.477, 5.3))
    (line,) = traces(fig, "fit")
    (band,) = traces(fig, "band")
    fit = ols_fit(pts["paper_token_overlap"], pts["drop"])
    assert np.allclose(line.y, fit.y) and line.meta["slope"] == pytest.approx(fit.slope)
    n = len(line.x)
    upper, lower = np.asarray(band.y[:n]), np.asarray(band.y[n:][::-1])
    assert np.all(lower < np.asarray(line.y)) and np.all(np.asarray(line.y) < upper)


def test_our_overlap_drops_cs_sk_for_transfer_only(tidy):
    pts = view_points(tidy, models=["mbert"], perturbations=["entity_replace"])
    fig = plots.overlap_scatter(pts, "entity_token_overlap", "drop", "x", "y")
    pairs = {t.meta["setting"]: {row[6] for row in t.customdata} for t in traces(fig, "points")}
    assert pairs["native"] == ALL_PAIRS
    assert pairs["transfer"] == ALL_PAIRS - {"cs→sk"}


def test_scatter_point_selection_round_trip(tidy):
    pts = view_points(tidy, models=["xlmr"], settings=["native"], perturbations=["entity_context"])
    fig = plots.overlap_scatter(pts, "unique_chunk_overlap", "drop", "x", "y")
    (marker,) = traces(fig, "points")
    i = [row[6] for row in marker.customdata].index("nl→af")
    # What st.plotly_chart(on_select="rerun") returns for a click on that point.
    event = {"selection": {"points": [{"curve_number": 2, "point_index": i, "x": marker.x[i], "y": marker.y[i],
                                       "customdata": list(marker.customdata[i])}],
                           "point_indices": [i], "box": [], "lasso": []}}
    assert selection_to_filter(event) == {"source": "nl", "target": "af", "model": "xlmr"}


def test_overlap_scatter_error_bars_only_for_seed_spread(tidy):
    pts = view_points(tidy, perturbations=["entity_replace"], settings=["transfer"], models=["mbert"])
    fig = plots.overlap_scatter(pts, "paper_token_overlap", "drop", "x", "y")
    assert all(t.error_y.array is None for t in traces(fig, "points"))  # the study's single runs: no bars
    spread = pts.assign(drop_sd=np.linspace(0.5, 1.5, len(pts)))
    fig = plots.overlap_scatter(spread, "paper_token_overlap", "drop", "x", "y")
    (t,) = traces(fig, "points")
    by_pair = dict(zip(spread["pair"], spread["drop_sd"]))
    assert list(t.error_y.array) == pytest.approx([by_pair[p] for p in t.text])


def test_overlap_scatter_empty():
    fig = plots.overlap_scatter(pd.DataFrame(), "x", "drop", "x", "y")
    assert not fig.data and fig.layout.annotations[0].text == "no points for these filters"


def test_drop_heatmap_values(tidy):
    pts = view_points(tidy, models=["mbert"], perturbations=PAPER)
    pivots = {s: pivot_drops(pts[pts["setting"] == s], "drop", PAPER) for s in ("native", "transfer")}
    fig = plots.drop_heatmap(pivots)
    hm = traces(fig, "heatmap")
    assert [t.meta["setting"] for t in hm] == ["native", "transfer"]
    native = hm[0]
    assert list(native.y) == [p.label for p in reference_pairs()]
    assert list(native.x) == [plots.perturbation_short(p) for p in PAPER] == ["P1 entities", "P2 context", "P3 both"]
    assert np.allclose(np.asarray(native.z, dtype=float), pivots["native"].to_numpy(dtype=float))
    assert native.zmid == 0 and native.zmax == -native.zmin == pytest.approx(33.6)  # ar→fa native P3
    assert plots.drop_heatmap({}).layout.annotations[0].text == "no values for these filters"


def test_pair_f1_bars(tidy):
    rows = pair_rows(tidy, "fr", "br")
    fig = plots.pair_f1_bars(rows)
    bars = traces(fig, "bars")
    assert {(t.meta["setting"], t.meta["series"]) for t in bars} == {
        (s, f"{m} · published") for s in ("native", "transfer") for m in ("mbert", "xlmr")}
    t = next(b for b in bars if b.meta == {"kind": "bars", "series": "mbert · published", "setting": "transfer"})
    assert list(t.x)[0] == "clean" and list(t.y) == pytest.approx([74.3, 73.3, 74.2, 72.8])
    assert t.error_y.array is None  # published numbers have no CI


def test_pair_f1_bars_with_ci_for_ours():
    rows = pd.DataFrame([
        {"scope": "overall", "setting": "transfer", "model": "e5-small", "origin": "ours", "perturbation": p,
         "f1": f, "f1_low": f - 2, "f1_high": f + 3} for p, f in (("clean", 70.0), ("entity_replace", 65.0))])
    (bar,) = traces(plots.pair_f1_bars(rows), "bars")
    assert list(bar.error_y.array) == [3.0, 3.0] and list(bar.error_y.arrayminus) == [2.0, 2.0]


def test_per_type_and_diversity_figures():
    rows = pd.DataFrame([{"scope": s, "setting": "native", "perturbation": p, "f1": f}
                         for s, f in (("PER", 80.0), ("ORG", 60.0), ("LOC", 70.0)) for p in ("clean", "char_noise")])
    fig = plots.per_type_bars(rows)
    assert [t.meta["perturbation"] for t in fig.data] == ["clean", "char_noise"]
    assert list(fig.data[0].x) == ["PER", "ORG", "LOC"] and list(fig.data[0].y) == [80.0, 60.0, 70.0]
    div = pd.DataFrame([{"model": "e5-small", "setting": "multi_source", "sources": s, "n_sources": n,
                         "diversity": d, "perturbation": "clean", "f1": f}
                        for s, n, d, f in (("es,fr", 2, 0.3, 80.0), ("es,fr,it", 3, 0.35, 82.0))])
    fig = plots.diversity_scatter(div, "n_sources", "sources", ["clean", "entity_replace"])
    assert len(fig.data) == 1 and list(fig.data[0].x) == [2, 3] and list(fig.data[0].text) == ["es+fr", "es+fr+it"]
    assert [c[0] for c in fig.data[0].customdata] == ["steps not recorded"] * 2
    fig = plots.diversity_scatter(div.assign(train_steps=[3401, 5102]), "n_sources", "sources", ["clean"])
    assert [c[0] for c in fig.data[0].customdata] == ["3,401 optimiser steps", "5,102 optimiser steps"]
    # variants of a setting (other teacher weights, a step cap) never share their base setting's colour or each other's
    settings = ["distill", "distill · similarity weights", "multi_source", "multi_source · ≤1,000 steps"]
    variants = pd.concat([div.assign(setting=name) for name in settings], ignore_index=True)
    fig = plots.diversity_scatter(variants, "n_sources", "sources", ["clean"])
    style = {t.meta["setting"]: (t.marker.color, t.line.dash) for t in fig.data}
    assert len({c for c, _ in style.values()}) == 4
    assert style["distill"][1] == "solid" and style["distill · similarity weights"][1] == "dash"


def test_student_teacher_figure_joins_each_student_to_its_best_teacher():
    frame = pd.DataFrame([
        {"sources": s, "n_sources": n, "perturbation": p, "student_f1": st, "best_teacher": bt,
         "best_teacher_f1": bf, "gap": st - bf, "student_steps": 5103.0, "teacher_steps": 1701.0 * n, "seeds": 1}
        for s, n, p, st, bt, bf in (("es", 1, "clean", 83.0, "es", 81.0), ("es,fr", 2, "clean", 80.0, "es", 81.0),
                                    ("es", 1, "entity_replace", 70.0, "es", 71.5))])
    fig = plots.student_teacher_figure(frame, ["clean", "entity_replace"])
    kinds = {(t.meta["kind"], t.meta["perturbation"]): t for t in fig.data}
    student = kinds[("student", "clean")]
    assert list(student.x) == [83.0, 80.0] and list(student.y) == ["es", "es+fr"]
    assert list(kinds[("teacher", "entity_replace")].x) == [71.5]
    assert "gap -1.5" in kinds[("student", "entity_replace")].text[0]
    assert "5,103 optimiser steps" in kinds[("student", "clean")].text[0]
    assert sum(t.meta["kind"] == "link" for t in fig.data) == 3
    assert fig.layout.xaxis.range == (67, 86) == fig.layout.xaxis2.range  # one scale: 70.0-83.0 and 3 points
    no_teachers = frame.assign(best_teacher_f1=float("nan"))
    empty = plots.student_teacher_figure(no_teachers, ["clean"])
    assert not empty.data and empty.layout.annotations[0].text.startswith("no distillation students")


@pytest.mark.parametrize("fmt", plots.IMAGE_FORMATS)
def test_image_config(fmt):
    cfg = plots.image_config("xner_overview", fmt)
    assert cfg["toImageButtonOptions"] == {"format": fmt, "filename": "xner_overview", "scale": 2}


def test_image_config_rejects_unknown_format():
    with pytest.raises(ValueError, match="png, svg"):
        plots.image_config("f", "gif")


def test_model_colours_are_stable():
    assert plots.model_colour("mbert") == plots.MODEL_COLOURS["mbert"]
    assert plots.model_colour("my/model") == plots.model_colour("my/model")
    assert plots.perturbation_title("entity_replace").startswith("P1")
    assert plots.perturbation_title("clean") == "clean"


def test_canonical_figure_spec_survives_a_cache_round_trip():
    import pickle

    import plotly.graph_objects as go
    import plotly.io as pio

    from xner_core.analysis.plots import canonical_figure

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], customdata=[["es", "ca"], ["fr", "br"]], mode="markers"))
    fig.update_layout(title="t", clickmode="event+select")
    copy = pickle.loads(pickle.dumps(fig))
    assert pio.to_json(fig, validate=False) != pio.to_json(copy, validate=False)  # what broke chart clicks
    a, b = canonical_figure(fig), canonical_figure(copy)
    assert pio.to_json(a, validate=False) == pio.to_json(b, validate=False)
    assert a.to_plotly_json() == fig.to_plotly_json()
