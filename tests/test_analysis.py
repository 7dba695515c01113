"""Tests for xner_core.analysis (tidy, views, stats): the tidy frame from the real reference tables, statistics
against scipy and numpy, pivots, and the chart-selection -> filter function."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from xner_core.analysis.plots import student_teacher_figure
from xner_core.analysis.stats import correlation, holm, leave_one_out, ols_fit, stats_table
from xner_core.analysis.tidy import (
    TIDY_COLUMNS,
    TRAINED_AGAIN,
    protocol_label,
    protocols,
    read_reference_tables,
    row_protocols,
    spec_protocol,
    tidy_ours,
    tidy_results,
)
from xner_core.analysis.views import (
    best_source,
    compare_table,
    diversity_view,
    pair_rows,
    pivot_drops,
    run_counts,
    selection_to_filter,
    student_teacher_view,
    view_points,
)
from xner_core.corpus.languages import reference_pairs
from xner_core.experiments.store import COLUMN_NAMES


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return read_reference_tables()


@pytest.fixture(scope="module")
def tidy(tables) -> pd.DataFrame:
    return tidy_results(tables["published"], None, tables["overlap"], tables["uriel"], reference_pairs())


def our_row(**kw) -> dict:
    """A result row in the results-store schema (F1 as 0..1)."""
    row = {c: None for c in COLUMN_NAMES}
    row.update(job_id="j", scope="overall", config_hash="h", model="e5-small", sources="es", target="ca",
               setting="transfer", perturbation="clean", f1=0.8, clean_f1=0.8, drop=0.0)
    row.update(kw)
    return row


def points_of(tidy, **kw):
    return view_points(tidy, **kw)


# ------------------------------------------------------------------------------------------------ tidy frame


def test_tidy_published_shape_and_columns(tidy):
    assert list(tidy.columns) == list(TIDY_COLUMNS)
    assert len(tidy) == 208  # 13 pairs x 2 models x 2 settings x 4 conditions
    assert set(tidy["origin"]) == {"published"}
    assert set(tidy["perturbation"]) == {"clean", "entity_replace", "context_replace", "entity_context"}
    assert tidy["pair"].nunique() == 13
    assert list(dict.fromkeys(tidy["pair"])) == [p.label for p in reference_pairs()]


@pytest.mark.parametrize("pair, model, setting, pert, f1, clean, drop", [
    ("fr→br", "mbert", "transfer", "entity_replace", 73.3, 74.3, 1.0),
    ("fr→br", "mbert", "native", "entity_context", 79.9, 92.8, 12.9),
    ("ar→fa", "xlmr", "native", "context_replace", 78.2, 89.4, 11.2),
    ("it→scn", "mbert", "transfer", "entity_context", 45.4, 63.7, 18.3),
    ("es→ast", "xlmr", "transfer", "clean", 84.3, 84.3, 0.0),
])
def test_tidy_published_values(tidy, pair, model, setting, pert, f1, clean, drop):
    row = tidy[(tidy["pair"] == pair) & (tidy["model"] == model) & (tidy["setting"] == setting)
               & (tidy["perturbation"] == pert)]
    assert len(row) == 1
    r = row.iloc[0]
    assert r["f1"] == pytest.approx(f1)
    assert r["clean_f1"] == pytest.approx(clean)
    assert r["drop"] == pytest.approx(drop)


def test_tidy_native_rows_belong_to_their_pair(tidy):
    native = tidy[(tidy["setting"] == "native") & (tidy["target"] == "br")]
    assert set(native["pair"]) == {"fr→br"}
    assert set(native["source"]) == {"fr"}  # the pair's source, for the link to the pair explorer
    assert set(native["sources"]) == {"br"}  # what the model was trained on


@pytest.mark.parametrize("pair, setting, col, value", [
    ("fr→br", "transfer", "entity_token_overlap", 0.3366),
    ("fr→br", "native", "entity_token_overlap", 0.5106),
    ("fr→br", "transfer", "paper_token_overlap", 0.233),
    ("fr→br", "transfer", "unique_chunk_overlap", 0.0843),
    ("fr→br", "transfer", "paper_unique_chunk_overlap", 0.066),
    ("fr→br", "transfer", "uriel_genetic", 0.9304),
    ("fr→br", "transfer", "uriel_syntactic", 0.418),
    ("fr→br", "native", "uriel_genetic", 0.0),
    ("cs→sk", "transfer", "paper_token_overlap", 0.395),
    ("es→ca", "transfer", "o_word_overlap", 0.7260),
])
def test_tidy_features_joined(tidy, pair, setting, col, value):
    vals = tidy.loc[(tidy["pair"] == pair) & (tidy["setting"] == setting), col].to_numpy()
    assert len(vals) == 8 and np.allclose(vals, value)


def test_tidy_cs_sk_has_no_overlap_of_ours(tidy):
    # cs has no local WikiANN data, so our overlap measures are missing for the cs->sk transfer rows only.
    rows = tidy[tidy["pair"] == "cs→sk"]
    assert rows.loc[rows["setting"] == "transfer", "entity_token_overlap"].isna().all()
    assert rows.loc[rows["setting"] == "native", "entity_token_overlap"].notna().all()


def test_tidy_with_our_rows(tables):
    ours = pd.DataFrame([
        our_row(job_id="a", perturbation="clean", f1=0.8, clean_f1=0.8, drop=0.0, f1_low=0.78, f1_high=0.82),
        our_row(job_id="b", perturbation="entity_replace", f1=0.7, clean_f1=0.8, drop=0.1,
                entity_token_overlap=0.42),
        our_row(job_id="c", sources="ca", setting="native", perturbation="clean", f1=0.9, clean_f1=0.9, drop=0.0),
        our_row(job_id="d", sources="es,fr", setting="multi_source", perturbation="clean"),
        our_row(job_id="e", sources="de", target="ca", perturbation="clean"),
    ])
    tidy = tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())
    mine = tidy[tidy["origin"] == "ours"].set_index("job_id")
    assert len(mine) == 5
    assert mine.loc["a", "f1"] == pytest.approx(80.0)
    assert mine.loc["a", "f1_low"] == pytest.approx(78.0)
    assert mine.loc["b", "drop"] == pytest.approx(10.0)
    assert mine.loc["a", "pair"] == "es→ca"
    assert mine.loc["c", "pair"] == "es→ca" and mine.loc["c", "uriel_genetic"] == 0.0
    assert mine.loc["d", "pair"] == "es+fr→ca"
    assert mine.loc["e", "pair"] == "de→ca" and mine.loc["e", "pair_order"] == 10_000
    # A row's own feature wins over the table; missing ones are filled from it.
    assert mine.loc["b", "entity_token_overlap"] == pytest.approx(0.42)
    assert mine.loc["a", "entity_token_overlap"] == pytest.approx(0.4998)
    # Multi-source URIEL = mean over the sources (es-ca 0.2677, fr-ca from the table).
    ur = tables["uriel"].set_index(["source", "target"])
    expected = (ur.loc[("es", "ca"), "genetic"] + ur.loc[("fr", "ca"), "genetic"]) / 2
    assert mine.loc["d", "uriel_genetic"] == pytest.approx(expected)
    # Published rows come first, then ours.
    assert list(dict.fromkeys(tidy["origin"])) == ["published", "ours"]


def test_tidy_rejects_unknown_condition(tables):
    bad = tables["published"].copy()
    bad.loc[0, "condition"] = "P9"
    with pytest.raises(ValueError, match="P9"):
        tidy_results(bad, None, tables["overlap"], tables["uriel"], reference_pairs())


def test_view_points_averages_repeated_runs(tables):
    ours = pd.DataFrame([our_row(job_id="s0", perturbation="entity_replace", f1=0.70, clean_f1=0.8, drop=0.10),
                         our_row(job_id="s1", perturbation="entity_replace", f1=0.60, clean_f1=0.8, drop=0.20)])
    tidy = tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())
    pts = points_of(tidy, origins=["ours"])
    assert len(pts) == 1
    assert pts.iloc[0]["drop"] == pytest.approx(15.0)
    assert pts.iloc[0]["runs"] == 2


def test_view_points_spread_across_seeds(tables):
    drops = [0.10, 0.20, 0.15]
    ours = pd.DataFrame([our_row(job_id=f"s{s}", seed=s, perturbation="entity_replace", f1=0.8 - d, clean_f1=0.8,
                                 drop=d) for s, d in enumerate(drops)])
    tidy = tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())
    pt = points_of(tidy, origins=["ours"]).iloc[0]
    assert (pt["runs"], pt["seeds"]) == (3, 3)
    assert pt["drop"] == pytest.approx(15.0)
    assert pt["drop_sd"] == pytest.approx(float(np.std([10.0, 20.0, 15.0], ddof=1)))
    assert pt["clean_f1_sd"] == pytest.approx(0.0)
    one = points_of(tidy_results(tables["published"], ours.head(1), tables["overlap"], tables["uriel"],
                                          reference_pairs()), origins=["ours"]).iloc[0]
    assert one["seeds"] == 1 and np.isnan(one["drop_sd"])  # one run has no spread


def test_view_points_filters(tidy):
    pts = points_of(tidy, models=["mbert"], settings=["transfer"], perturbations=["entity_replace"])
    assert len(pts) == 13
    assert set(pts["model"]) == {"mbert"} and set(pts["setting"]) == {"transfer"}
    assert points_of(tidy, models=[]).empty


# ------------------------------------------------------------------------------------------------ statistics


@pytest.fixture(scope="module")
def transfer_p1(tidy) -> pd.DataFrame:
    return points_of(tidy, models=["mbert"], settings=["transfer"], perturbations=["entity_replace"])


def test_pearson_and_spearman_match_scipy(transfer_p1):
    x, y = transfer_p1["paper_token_overlap"], transfer_p1["drop"]
    p = correlation(x, y, "pearson")
    s = correlation(x, y, "spearman")
    ref_p = stats.pearsonr(x, y)
    ref_s = stats.spearmanr(x, y)
    assert p.r == pytest.approx(ref_p.statistic, abs=1e-12)
    assert s.r == pytest.approx(ref_s.statistic, abs=1e-12)
    assert p.n == s.n == 13 and p.interval == s.interval == "fisher"
    for c in (p, s):
        assert -1 <= c.low <= c.r <= c.high <= 1
    # Fisher's z by hand: se 1/sqrt(n-3) for Pearson, sqrt(1.06/(n-3)) for Spearman
    for c, var in ((p, 1.0), (s, 1.06)):
        z, se = math.atanh(c.r), math.sqrt(var / (13 - 3))
        assert c.low == pytest.approx(math.tanh(z - stats.norm.ppf(0.975) * se), abs=1e-12)
        assert c.high == pytest.approx(math.tanh(z + stats.norm.ppf(0.975) * se), abs=1e-12)
        assert c.p == pytest.approx(2 * stats.norm.sf(abs(z) / se), rel=1e-12)
    # the bootstrap option keeps scipy's p-values
    b = correlation(x, y, "pearson", interval="bootstrap")
    assert b.p == pytest.approx(ref_p.pvalue, rel=1e-9) and b.interval == "bootstrap"


@settings(max_examples=300, deadline=None)
@given(n=st.integers(4, 40), slope=st.floats(-2, 2), noise=st.floats(0.05, 3), seed=st.integers(0, 10**6),
       method=st.sampled_from(["pearson", "spearman"]), level=st.sampled_from([0.9, 0.95, 0.99]))
def test_every_reported_interval_excludes_zero_exactly_when_p_is_below_alpha(n, slope, noise, seed, method, level):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = slope * x + noise * rng.normal(size=n)
    c = correlation(x, y, method, level=level)
    if not np.isfinite(c.p) or abs(c.p - (1 - level)) < 1e-9:
        return  # undefined, or exactly on the boundary
    assert (c.low > 0 or c.high < 0) == (c.p < 1 - level)


def test_stats_table_intervals_agree_with_their_p_values(tidy):
    pts = points_of(tidy, perturbations=["entity_replace", "context_replace", "entity_context"])
    table = stats_table(pts, "paper_token_overlap", "drop")
    assert len(table) >= 8
    for m in ("pearson", "spearman"):
        ok = table[f"{m}_p"].notna()
        excl = (table[f"{m}_low"] > 0) | (table[f"{m}_high"] < 0)
        assert (excl[ok] == (table[f"{m}_p"][ok] < 0.05)).all()


def test_bootstrap_ci_equals_a_plain_loop(transfer_p1):
    x = transfer_p1["paper_token_overlap"].to_numpy()
    y = transfer_p1["drop"].to_numpy()
    got = correlation(x, y, "spearman", n_boot=300, seed=7, interval="bootstrap")
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(x), size=(300, len(x)))
    boots = []
    for row in idx:
        xs, ys = x[row], y[row]
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            continue
        boots.append(stats.spearmanr(xs, ys).statistic)
    low, high = np.quantile(boots, [0.025, 0.975])
    assert got.low == pytest.approx(low, abs=1e-12)
    assert got.high == pytest.approx(high, abs=1e-12)


def test_correlation_is_deterministic_and_nan_when_undefined():
    x, y = [0.1, 0.4, 0.2, 0.8, 0.5], [1.0, 3.0, 2.5, 7.0, 4.0]
    assert correlation(x, y, seed=3) == correlation(x, y, seed=3)
    for xs, ys in (([1, 1, 1, 1], [1, 2, 3, 4]), ([1, 2], [3, 4]), ([1, 2, float("nan")], [1, 2, 3])):
        c = correlation(xs, ys)
        assert math.isnan(c.r) and math.isnan(c.low) and math.isnan(c.p)
    with pytest.raises(ValueError, match="kendall"):
        correlation(x, y, "kendall")
    with pytest.raises(ValueError, match="fisher, bootstrap"):
        correlation(x, y, interval="bca")


def test_ols_matches_linregress_and_band_contains_line(transfer_p1):
    x = transfer_p1["paper_token_overlap"].to_numpy()
    y = transfer_p1["drop"].to_numpy()
    fit = ols_fit(x, y)
    ref = stats.linregress(x, y)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-10)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-10)
    assert fit.r2 == pytest.approx(ref.rvalue ** 2, rel=1e-10)
    gx, gy, lo, hi = map(np.asarray, (fit.x, fit.y, fit.lower, fit.upper))
    assert np.all(lo < gy) and np.all(gy < hi)
    assert np.allclose(gy, fit.intercept + fit.slope * gx)
    # Width at the mean of x is 2 * t * s / sqrt(n), and it is the narrowest point of the band.
    n = len(x)
    s = math.sqrt(((y - (ref.intercept + ref.slope * x)) ** 2).sum() / (n - 2))
    t = stats.t.ppf(0.975, n - 2)
    at_mean = ols_fit(x, y, grid=[x.mean()])
    assert at_mean.upper[0] - at_mean.lower[0] == pytest.approx(2 * t * s / math.sqrt(n), rel=1e-10)
    assert (hi - lo).min() >= at_mean.upper[0] - at_mean.lower[0] - 1e-12


def test_ols_none_when_x_constant():
    assert ols_fit([1, 1, 1], [1, 2, 3]) is None
    assert ols_fit([1, 2], [1, 2]) is None


def test_stats_table(tidy):
    pts = points_of(tidy, models=["mbert", "xlmr"], perturbations=["entity_replace", "entity_context"])
    table = stats_table(pts, "paper_token_overlap", "drop", n_boot=200)
    assert len(table) == 2 * 2 * 2  # settings x perturbations x models
    assert (table["n"] == 13).all()
    one = table[(table["setting"] == "transfer") & (table["perturbation"] == "entity_replace")
                & (table["model"] == "mbert")].iloc[0]
    sub = pts[(pts["setting"] == "transfer") & (pts["perturbation"] == "entity_replace") & (pts["model"] == "mbert")]
    assert one["pearson_r"] == pytest.approx(stats.pearsonr(sub["paper_token_overlap"], sub["drop"]).statistic)
    # URIEL distances of native rows are all 0: r undefined, no line.
    native = stats_table(points_of(tidy, settings=["native"], models=["mbert"],
                                            perturbations=["entity_replace"]), "uriel_genetic", "drop")
    assert native["pearson_r"].isna().all() and native["slope"].isna().all()


# ------------------------------------------------------------------------------------------------- pivot etc.


def test_pivot_drops(tidy):
    pts = points_of(tidy, models=["mbert"], settings=["native"],
                    perturbations=["entity_replace", "context_replace", "entity_context"])
    m = pivot_drops(pts, "drop", ["entity_replace", "context_replace", "entity_context"])
    assert m.shape == (13, 3)
    assert list(m.index) == [p.label for p in reference_pairs()]
    assert list(m.columns) == ["entity_replace", "context_replace", "entity_context"]
    assert m.loc["fr→br", "entity_context"] == pytest.approx(12.9)
    assert m.loc["ar→fa", "context_replace"] == pytest.approx(29.5)
    assert pivot_drops(pts.iloc[0:0]).empty


def test_pair_rows_and_compare_table(tidy):
    rows = pair_rows(tidy, "es", "ca")
    assert set(rows["setting"]) == {"native", "transfer"}
    assert set(rows["target"]) == {"ca"}
    assert len(rows) == 16
    table = compare_table(rows)
    assert set(table.columns) == {"setting", "perturbation", "mbert · published", "xlmr · published"}
    cell = table[(table["setting"] == "transfer") & (table["perturbation"] == "clean")]["mbert · published"]
    assert cell.iloc[0] == pytest.approx(85.1)


def test_diversity_view(tables):
    ours = pd.DataFrame([
        our_row(job_id="t1", sources="es", setting="transfer", perturbation="clean", f1=0.80),
        our_row(job_id="t2", sources="fr", setting="transfer", perturbation="clean", f1=0.70),
        our_row(job_id="t3", sources="es", setting="transfer", perturbation="entity_replace", f1=0.75),
        our_row(job_id="m1", sources="es,fr", setting="multi_source", perturbation="clean", f1=0.85),
        our_row(job_id="d1", sources="es,fr,it", setting="distill", perturbation="clean", f1=0.83),
    ])
    tidy = tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())
    view = diversity_view(tidy, "ca", {"es,fr": 0.3, "es,fr,it": 0.35})
    assert set(view["setting"]) == {"multi_source", "distill", "best single source"}
    best = view[view["setting"] == "best single source"]
    assert set(best["sources"]) == {"es"}  # es beats fr on clean F1
    assert set(best["perturbation"]) == {"clean", "entity_replace"}
    assert view.set_index("sources").loc["es,fr,it", "n_sources"] == 3
    assert view.set_index("sources").loc["es,fr", "diversity"] == pytest.approx(0.3)
    assert math.isnan(best["diversity"].iloc[0])
    assert diversity_view(tidy, "br", {}).empty
    # a second run of the same target: the one asked for is shown, else the one with the most rows
    resplit = pd.DataFrame([our_row(job_id="r1", sources="es", setting="distill", data_protocol="paper-resplit",
                                    f1=0.82),
                            our_row(job_id="r2", sources="es", setting="transfer", data_protocol="paper-resplit",
                                    f1=0.81)])
    both = tidy_results(tables["published"], pd.concat([ours, resplit]), tables["overlap"], tables["uriel"],
                        reference_pairs())
    other = protocol_label(None, "paper-resplit", None)
    picked = diversity_view(both, "ca", {}, protocol=other)
    assert set(picked["protocol"]) == {other} and set(picked["setting"]) == {"distill", "best single source"}
    assert set(diversity_view(both, "ca", {})["protocol"]) == set(view["protocol"])  # 2 multi rows beat 1
    assert set(diversity_view(both, "ca", {}, protocol="no such run")["protocol"]) == set(view["protocol"])


def test_diversity_view_picks_the_best_single_source_among_those_measured_at_every_seed(tables):
    rows = [our_row(job_id=f"{s}{seed}", sources=s, setting=setting, f1=f1, seed=seed)
            for s, setting, f1, seed in (("es", "transfer", 0.80, 1), ("es", "transfer", 0.82, 2),
                                         ("pt", "transfer", 0.84, 1),  # best, but at seed 1 alone
                                         ("es,fr,it", "multi_source", 0.85, 1), ("es,fr,it", "multi_source", 0.86, 2),
                                         ("es,fr", "multi_source", 0.83, 1))]
    tidy = tidy_results(tables["published"], pd.DataFrame(rows), tables["overlap"], tables["uriel"],
                        reference_pairs())
    view = diversity_view(tidy, "ca", {}).set_index("setting")
    best = view.loc["best single source"]
    assert best["sources"] == "es" and best["f1"] == pytest.approx(81.0) and best["seeds"] == 2
    multi = view.loc["multi_source"].set_index("sources")
    assert multi.loc["es,fr,it", "seeds"] == 2 and multi.loc["es,fr", "seeds"] == 1
    assert multi.loc["es,fr,it", "f1"] == pytest.approx(85.5)
    # with no source at every seed, the best of all is taken
    one = tidy[~((tidy["sources"] == "es") & (tidy["seed"] == 2))]
    assert diversity_view(one, "ca", {}).set_index("setting").loc["best single source", "sources"] == "pt"


def test_student_teacher_view_sets_each_student_beside_its_teachers_seed_by_seed(tables):
    def row(job, sources, setting, f1, seed, pert="clean", steps=1701, target="ca"):
        return our_row(job_id=job, sources=sources, setting=setting, f1=f1, seed=seed, perturbation=pert,
                       train_steps=steps, target=target)

    ours = pd.DataFrame([
        row("es0", "es", "transfer", 0.80, 0), row("fr0", "fr", "transfer", 0.70, 0),
        row("es1", "es", "transfer", 0.84, 1), row("fr1", "fr", "transfer", 0.72, 1),
        row("es0p", "es", "transfer", 0.60, 0, "entity_replace"), row("fr0p", "fr", "transfer", 0.65, 0,
                                                                      "entity_replace"),
        row("d0", "es,fr", "distill", 0.81, 0, steps=5103), row("d1", "es,fr", "distill", 0.80, 1, steps=5103),
        row("d0p", "es,fr", "distill", 0.66, 0, "entity_replace", steps=5103),
        row("s0", "es", "distill", 0.83, 0, steps=5103),
        row("s2", "es", "distill", 0.70, 2, steps=5103),  # seed 2 has no teacher rows: left out of the comparison
        row("a0", "es", "distill", 0.75, 0, steps=1000, target="an"),
    ])
    tidy = tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())
    view = student_teacher_view(tidy, "ca").set_index(["sources", "perturbation"])
    multi = view.loc[("es,fr", "clean")]
    assert multi["best_teacher"] == "es" and multi["seeds"] == 2
    assert multi["best_teacher_f1"] == pytest.approx((80 + 84) / 2) and multi["student_f1"] == pytest.approx(80.5)
    assert multi["gap"] == pytest.approx(80.5 - 82.0) and multi["mean_teacher_f1"] == pytest.approx(76.5)
    assert multi["student_steps"] == 5103 and multi["teacher_steps"] == 2 * 1701
    # under P1 fr scores higher than es, but the best teacher stays the clean test's best, held to each perturbation
    # (each model's perturbed set depends on the sources it saw: P1 F1s of es and fr are not one test set's)
    p1 = view.loc[("es,fr", "entity_replace")]
    assert p1["best_teacher"] == "es" and p1["gap"] == pytest.approx(66 - 60) and p1["seeds"] == 1
    single = view.loc[("es", "clean")]  # seed 2's student has no teacher rows: only seed 0 compares
    assert single["seeds"] == 1 and single["student_f1"] == pytest.approx(83) and single["gap"] == pytest.approx(3)
    assert single["teachers_missing"] == "es"
    assert set(student_teacher_view(tidy)["target"]) == {"ca", "an"}
    lone = student_teacher_view(tidy, "an").iloc[0]  # no es rows on an: the teacher side is unknown, not 0
    assert lone["seeds"] == 0 and math.isnan(lone["gap"]) and lone["teachers_missing"] == "es"
    assert student_teacher_view(tidy, "br").empty


def test_student_teacher_view_weighs_the_teacher_training_the_student_met(tables):
    """A teacher's job trained again (rows kept apart, `data/results/retrained/`): a student trained after the
    retraining is set beside it, one trained before beside the committed training."""
    def row(job, sources, setting, f1, when, target="ca", dated=True, **kw):
        stamp = pd.Timestamp(when)
        return our_row(job_id=job, sources=sources, setting=setting, f1=f1, seed=1, target=target,
                       trained_at=stamp if dated else None, created_at=stamp + pd.Timedelta(minutes=5), **kw)

    committed = pd.DataFrame([
        row("es", "es", "transfer", 0.81, "2026-12-06 10:00", dated=False),  # undated: its row's time bounds it
        row("fr", "fr", "transfer", 0.79, "2026-12-06 10:00", dated=False),
        row("old", "es,fr", "distill", 0.82, "2026-12-06 20:00", dated=False),
        row("new", "es,fr", "distill", 0.82, "2026-12-07 13:00"),
    ])
    again = pd.DataFrame([row("es", "es", "transfer", 0.799, "2026-12-07 11:00"),
                          row("fr", "fr", "transfer", 0.805, "2026-12-07 11:30"),
                          row("fr", "fr", "transfer", 0.5, "2026-12-07 11:30", target="an")])
    tidy = tidy_results(tables["published"], committed, tables["overlap"], tables["uriel"], reference_pairs())
    retrained = tidy_ours(again, tables)
    assert set(retrained["origin"]) == {"ours"} and retrained["model_time"].notna().all()
    students = tidy[tidy["setting"] == "distill"]
    view = student_teacher_view(pd.concat([tidy[tidy["setting"] != "distill"], students[students["job_id"] == "new"]]),
                                "ca", retrained).iloc[0]
    assert view["best_teacher"] == "fr" + TRAINED_AGAIN and view["best_teacher_f1"] == pytest.approx(80.5)
    assert view["gap"] == pytest.approx(1.5) and view["mean_teacher_f1"] == pytest.approx((79.9 + 80.5) / 2)
    before = student_teacher_view(tidy[tidy["job_id"] != "new"], "ca", retrained).iloc[0]
    assert before["best_teacher"] == "es" and before["gap"] == pytest.approx(1.0)  # the committed es taught it
    assert student_teacher_view(tidy[tidy["job_id"] != "new"], "ca").equals(
        student_teacher_view(tidy[tidy["job_id"] != "new"], "ca", retrained.iloc[0:0]))  # no retraining: as before


def test_run_counts():
    rows = pd.DataFrame([our_row(job_id="a"), our_row(job_id="a", scope="PER"),
                         our_row(job_id="b", perturbation="entity_replace"),
                         our_row(job_id="c", target="an")])
    counts = run_counts(rows)
    proto = protocol_label(rows["options"].iloc[0], rows["data_protocol"].iloc[0], rows["test_limit"].iloc[0])
    assert counts.to_dict("records") == [
        {"protocol": proto, "model": "e5-small", "target": "an", "setting": "transfer", "rows": 1, "jobs": 1,
         "perturbations": 1},
        {"protocol": proto, "model": "e5-small", "target": "ca", "setting": "transfer", "rows": 3, "jobs": 2,
         "perturbations": 2},
    ]
    # The same target and setting made another way (here: the pooled re-split data) is counted apart.
    other = pd.concat([rows, pd.DataFrame([our_row(job_id="d", data_protocol="paper-resplit")])])
    split = run_counts(other)
    assert len(split) == 3 and split["protocol"].nunique() == 2
    assert run_counts(pd.DataFrame()).empty


# ------------------------------------------------------------------------------------------------- selection


POINT = {"curve_number": 2, "point_number": 0, "point_index": 0, "x": 0.2, "y": 1.0,
         "customdata": ["fr", "br", "mbert", "transfer", "entity_replace", "published", "fr→br"]}


@pytest.mark.parametrize("event, expected", [
    ({"points": [POINT], "point_indices": [0], "box": [], "lasso": []},
     {"source": "fr", "target": "br", "model": "mbert"}),
    ({"selection": {"points": [POINT], "point_indices": [0], "box": [], "lasso": []}},
     {"source": "fr", "target": "br", "model": "mbert"}),
    ({"points": [{"x": 0.1, "y": 2.0}, {**POINT, "customdata": ["es", "ast", "e5-small", "native", "clean",
                                                                "ours", "es→ast"]}]},
     {"source": "es", "target": "ast", "model": "e5-small"}),
    ({"points": [{**POINT, "customdata": {"source": "nl", "target": "af", "model": "xlmr"}}]},
     {"source": "nl", "target": "af", "model": "xlmr"}),
    ({"points": []}, None),
    ({"selection": {"points": []}}, None),
    (None, None),
    ({}, None),
    ({"points": [{**POINT, "customdata": ["<script>", "br", "mbert"]}]}, None),
    ({"points": [{**POINT, "customdata": ["fr", "br", "m b'ert"]}]}, None),
    ({"points": [{**POINT, "customdata": ["fr"]}]}, None),
])
def test_selection_to_filter(event, expected):
    assert selection_to_filter(event) == expected


def test_robustness_gap_pairs_native_and_transfer_drops():
    from xner_core.analysis.stats import robustness_gap

    rows = []
    for pair, nat, tra in (("a→b", 10.0, 2.0), ("c→d", 6.0, 1.0), ("e→f", 3.0, 4.0), ("g→h", 8.0, 0.0)):
        for setting, drop in (("native", nat), ("transfer", tra)):
            rows.append({"origin": "ours", "model": "m", "perturbation": "entity_replace", "pair": pair,
                         "setting": setting, "drop": drop})
            rows.append({"origin": "ours", "model": "m", "perturbation": "clean", "pair": pair,
                         "setting": setting, "drop": 0.0})
    rows.append({"origin": "ours", "model": "m", "perturbation": "entity_replace", "pair": "x→y",
                 "setting": "native", "drop": 50.0})  # no transfer partner: left out
    out = robustness_gap(pd.DataFrame(rows))
    assert len(out) == 1
    row = out.iloc[0]
    assert row["n_pairs"] == 4 and row["native_drop"] == pytest.approx(6.75)
    assert row["transfer_drop"] == pytest.approx(1.75) and row["gap"] == pytest.approx(5.0)
    assert row["transfer_less_share"] == pytest.approx(0.75)
    from scipy import stats

    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon([10, 6, 3, 8], [2, 1, 4, 0]).pvalue)


def _opts(cap: int) -> str:
    return ('{"batch_size":32,"epochs":1,"lr":null,"max_train_sentences":%d,"robust":null}' % cap)


def test_protocol_label_names_how_a_row_was_made():
    assert protocol_label(_opts(5000), "wikiann-rahimi", 2000) == \
        "wikiann-rahimi · ≤5000 train · 1 epoch · test ≤2000"
    assert protocol_label('{"epochs":3,"lr":2e-05,"max_train_sentences":null,"robust":"adversarial",'
                                   '"batch_size":8}', "paper-resplit", None) == \
        "paper-resplit · all train · 3 epochs · lr 2e-05 · robust adversarial · batch 8 · full test"


def test_spec_protocol_is_the_label_its_rows_get():
    from xner_core.experiments.spec import load_spec

    assert spec_protocol(load_spec("paper"), "e5-small") == \
        "wikiann-rahimi · ≤5000 train · 1 epoch · test ≤2000"
    assert spec_protocol(load_spec("diversity"), "e5-small").startswith("wikiann-rahimi · ≤2000 train")
    rows = pd.DataFrame([our_row(options=_opts(5000), data_protocol="wikiann-rahimi", test_limit=2000),
                         our_row(options=_opts(2000), data_protocol=None, test_limit=None)])
    assert row_protocols(rows) == ["wikiann-rahimi · ≤5000 train · 1 epoch · test ≤2000",
                                            "wikiann-rahimi · ≤2000 train · 1 epoch · full test"]


def test_runs_made_differently_are_never_averaged(tables):
    rows = [our_row(job_id=f"{cap}-{p}", options=_opts(cap), data_protocol="wikiann-rahimi", test_limit=limit,
                    perturbation=p, f1=f1, clean_f1=clean, drop=clean - f1)
            for cap, limit, clean in ((5000, 2000, 0.80), (2000, 1000, 0.70))
            for p, f1 in (("clean", clean), ("entity_replace", clean - 0.05))]
    tidy = tidy_results(tables["published"], pd.DataFrame(rows), tables["overlap"], tables["uriel"],
                                 reference_pairs())
    assert set(protocols(tidy)) == {"wikiann-rahimi · ≤5000 train · 1 epoch · test ≤2000",
                                             "wikiann-rahimi · ≤2000 train · 1 epoch · test ≤1000"}
    mixed = view_points(tidy, origins=["ours"], perturbations=["clean"])
    assert sorted(mixed["f1"]) == [70.0, 80.0]  # two points, not one average of 75
    first = view_points(tidy, perturbations=["clean"], protocol="wikiann-rahimi · ≤5000 train · 1 epoch · "
                                                                        "test ≤2000")
    assert first[first["origin"] == "ours"]["f1"].tolist() == [80.0]
    assert (first["origin"] == "published").sum() > 0  # the study's rows stay


def test_preferred_protocol_comes_first_only_when_it_has_rows(tables):
    small = "wikiann-rahimi · ≤2000 train · 1 epoch · test ≤1000"
    big = "wikiann-rahimi · ≤5000 train · 1 epoch · test ≤2000"
    rows = [our_row(job_id=f"{cap}-{i}", options=_opts(cap), data_protocol="wikiann-rahimi", test_limit=limit)
            for cap, limit, n in ((5000, 2000, 3), (2000, 1000, 1)) for i in range(n)]
    tidy = tidy_results(tables["published"], pd.DataFrame(rows), tables["overlap"], tables["uriel"],
                        reference_pairs())
    assert protocols(tidy) == [big, small]  # most rows first
    assert protocols(tidy, prefer=[small]) == [small, big]
    assert protocols(tidy, prefer=["paper-resplit · all train · 1 epoch · full test", small, small]) == [small, big]


def test_diversity_best_single_source_comes_from_the_same_protocol(tables):
    rows = []
    for cap, clean in ((2000, 0.70), (5000, 0.80)):  # a stronger es model made another way must not be picked
        rows.append(our_row(job_id=f"es-{cap}", sources="es", options=_opts(cap), data_protocol="wikiann-rahimi",
                            test_limit=1000, f1=clean, clean_f1=clean))
    rows.append(our_row(job_id="m", sources="es,fr", setting="multi_source", options=_opts(2000),
                        data_protocol="wikiann-rahimi", test_limit=1000, f1=0.75, clean_f1=0.75))
    tidy = tidy_results(tables["published"], pd.DataFrame(rows), tables["overlap"], tables["uriel"],
                                 reference_pairs())
    view = diversity_view(tidy, "ca", {"es,fr": 0.4})
    best = view[view["setting"] == "best single source"]
    assert best["f1"].tolist() == [70.0] and set(view["protocol"]) == {
        "wikiann-rahimi · ≤2000 train · 1 epoch · test ≤1000"}


def test_a_step_capped_multi_source_model_is_its_own_series_not_averaged_with_the_full_one(tables):
    import json

    full = json.dumps({"epochs": 1, "max_train_sentences": None})
    capped = json.dumps({"epochs": 1, "max_train_sentences": None, "max_steps": 1000})
    ours = pd.DataFrame([
        our_row(job_id="t", sources="es", setting="transfer", options=full, f1=0.80, train_steps=1701),
        our_row(job_id="m", sources="es,fr", setting="multi_source", options=full, f1=0.84, train_steps=3401),
        our_row(job_id="e", sources="es,fr", setting="multi_source", options=capped, f1=0.78, train_steps=1000),
    ])
    tidy = tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())
    assert tidy.set_index("job_id").loc[["m", "e"], "max_steps"].tolist()[1] == 1000
    assert math.isnan(tidy.set_index("job_id").loc["m", "max_steps"])
    assert tidy.loc[tidy["origin"] == "published", "max_steps"].isna().all()
    view = diversity_view(tidy, "ca", {}).set_index("setting")
    assert view.loc["best single source", "f1"] == pytest.approx(80.0)
    assert view.loc["multi_source", "f1"] == pytest.approx(84.0)  # not (84 + 78) / 2
    assert view.loc["multi_source · ≤1,000 steps", "f1"] == pytest.approx(78.0)
    assert view.loc["multi_source · ≤1,000 steps", "train_steps"] == 1000


def test_the_best_single_source_is_averaged_over_the_seeds_the_multi_source_rows_have(tables):
    # paper-faithful has es at seeds 0-2; the diversity grid's students are seed 1 only: compare seed 1 with seed 1
    ours = pd.DataFrame([our_row(job_id=f"t{s}", sources="es", setting="transfer", seed=s, f1=f1)
                         for s, f1 in ((0, 0.90), (1, 0.80), (2, 0.70))]
                        + [our_row(job_id="d1", sources="es,fr", setting="distill", seed=1, f1=0.82)])
    tidy = tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())
    view = diversity_view(tidy, "ca", {}).set_index("setting")
    assert view.loc["best single source", "f1"] == pytest.approx(80.0)


def test_holm_adjusts_in_order_and_keeps_nan():
    got = holm([0.01, 0.04, float("nan"), 0.03, 0.5])
    # m = 4 finite: sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.09, max(0.09, 0.08), max(0.09, 0.5)
    assert got[0] == pytest.approx(0.04) and got[3] == pytest.approx(0.09) and got[1] == pytest.approx(0.09)
    assert got[4] == pytest.approx(0.5) and math.isnan(got[2])
    assert holm([0.9, 0.8]) == [1.0, 1.0]
    assert holm([]) == []


def test_leave_one_out_names_the_high_leverage_pair():
    x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.95]
    y = [1.0, 0.8, 1.1, 0.9, 1.0, 5.0]  # flat except one extreme point
    loo = leave_one_out(x, y, list("abcdef"))
    assert loo.iloc[0]["left_out"] == "f" and loo.iloc[0]["shift"] < -0.5  # without f the correlation vanishes
    assert len(loo) == 6 and (loo["n"] == 5).all()
    with pytest.raises(ValueError, match="same length"):
        leave_one_out(x, y, list("abc"))


def test_stats_table_holm_column(tidy):
    pts = points_of(tidy, perturbations=["entity_replace", "context_replace", "entity_context"])
    table = stats_table(pts, "paper_token_overlap", "drop")
    assert (table["pearson_p_holm"] >= table["pearson_p"] - 1e-12).all()
    assert table["pearson_p_holm"].tolist() == pytest.approx(holm(table["pearson_p"].tolist()))


def test_best_source_is_the_highest_clean_score_with_ties_to_the_first_source_and_nan_ignored():
    assert best_source({"fr": 0.79, "es": 0.81, "it": 0.78}) == "es"
    assert best_source({"fr": 0.8, "es": 0.8}) == "es"  # a tie goes to the first in sort order, whatever the row order
    assert best_source({"es": float("nan"), "fr": 0.5}) == "fr"
    assert best_source({}) is None and best_source({"es": float("nan")}) is None
    assert best_source({("fr", "p1"): 0.7, ("es", "p1"): 0.7, ("it", "p1"): 0.6}) == ("es", "p1")


@given(st.dictionaries(st.sampled_from(["es", "fr", "it", "pt", "en", "de"]),
                       st.floats(0, 1, allow_nan=False), min_size=1))
def test_best_source_does_not_depend_on_order_and_no_source_beats_it(scores):
    best = best_source(scores)
    assert best_source(dict(reversed(list(scores.items())))) == best
    assert all(scores[best] >= v for v in scores.values())


def test_students_with_similarity_weighted_teachers_are_kept_apart_from_uniform_ones(tables):
    sim = json.dumps({"distill_weights": "similarity"})
    ours = pd.DataFrame([
        our_row(job_id="es", sources="es", setting="transfer", f1=0.80, seed=1),
        our_row(job_id="fr", sources="fr", setting="transfer", f1=0.70, seed=1),
        our_row(job_id="u", sources="es,fr", setting="distill", f1=0.82, seed=1,
                options=json.dumps({"distill_weights": "uniform"})),
        our_row(job_id="s", sources="es,fr", setting="distill", f1=0.78, seed=1, options=sim),
        our_row(job_id="old", sources="es,fr,it", setting="distill", f1=0.75, seed=1),  # predates the option
    ])
    tidy = tidy_results(tables["published"], ours, tables["overlap"], tables["uriel"], reference_pairs())
    weights = dict(zip(tidy.loc[tidy["origin"] == "ours", "job_id"], tidy.loc[tidy["origin"] == "ours",
                                                                              "teacher_weights"]))
    assert pd.isna(weights.pop("es")) and pd.isna(weights.pop("fr"))  # not a student: no teacher weights
    assert weights == {"u": "uniform", "s": "similarity", "old": "uniform"}
    view = diversity_view(tidy, "ca", {})
    f1 = {(r.setting, r.sources): r.f1 for r in view.itertuples()}
    assert f1[("distill", "es,fr")] == pytest.approx(82) and f1[("distill · similarity weights", "es,fr")] == \
        pytest.approx(78)  # two series, never one averaged point
    students = student_teacher_view(tidy, "ca").set_index(["sources", "teacher_weights"])
    assert students.loc[("es,fr", "similarity"), "gap"] == pytest.approx(-2)
    assert students.loc[("es,fr", "uniform"), "gap"] == pytest.approx(2)
    assert students.loc[("es,fr,it", "uniform"), "student_f1"] == pytest.approx(75)
    fig = student_teacher_figure(student_teacher_view(tidy, "ca"), ["clean"])
    labels = {y for t in fig.data if t.meta["kind"] == "student" for y in t.y}
    assert labels == {"es+fr", "es+fr (similarity)"}  # es+fr+it has no it teacher rows: not drawn
