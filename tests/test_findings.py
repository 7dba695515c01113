"""Tests of the findings (xner_core.analysis.findings), the cluster bootstrap and paired t-test behind them
(xner_core.analysis.stats), the report script and the Findings page.

Synthetic runs whose answers are known by construction, property tests that every interval excludes 0 exactly when
its p-value is below 1 − level, and exact checks of every row the report prints on the committed faithful run.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from xner_core.analysis.finding_frames import TABLE_COLUMNS, VERDICTS
from xner_core.analysis.findings import compute_findings, findings_table, verdict
from xner_core.analysis.stats import bootstrap_interval, cluster_bootstrap_correlation, paired_t
from xner_core.analysis.tidy import CHANGE_COLUMNS, read_reference_tables, tidy_results
from xner_core.corpus.languages import reference_pairs
from xner_core.experiments.store import COLUMN_NAMES

ROOT = Path(__file__).resolve().parents[1]
FAITHFUL = ROOT / "data" / "results" / "paper_faithful_e5-small.parquet"
PAIRS = [("fr", "br"), ("ar", "fa"), ("ar", "hi"), ("en", "sco"), ("en", "cy"), ("es", "ca"), ("id", "ms"),
         ("fr", "oc"), ("nl", "af"), ("it", "scn"), ("es", "an"), ("es", "ast")]


def _excludes_zero(low: float, high: float) -> bool:
    return low > 0 or high < 0


# ------------------------------------------------------------------------------------------------ statistics


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 3.0]) | st.floats(-5, 5),
                       min_size=1, max_size=300),
       level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_bootstrap_interval_excludes_zero_exactly_when_p_is_below_alpha(values, level):
    low, high, p = bootstrap_interval(values, level)
    assert low <= high and 0 <= p <= 1
    assert _excludes_zero(low, high) == (p < 1 - level)


def test_bootstrap_interval_of_all_zeros_and_of_one_sign():
    assert bootstrap_interval([0.0] * 50) == (0.0, 0.0, 1.0)
    low, high, p = bootstrap_interval(np.linspace(0.1, 1.0, 1000))
    assert p == 0.0 and low > 0
    assert all(math.isnan(v) for v in bootstrap_interval([float("nan")]))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(4, 14), slope=st.floats(-2, 2), noise=st.floats(0.05, 3), seed=st.integers(0, 10**6),
       groups=st.integers(3, 7), method=st.sampled_from(["pearson", "spearman"]),
       level=st.sampled_from([0.9, 0.95]))
def test_cluster_bootstrap_interval_agrees_with_its_p(n, slope, noise, seed, groups, method, level):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = slope * x + noise * rng.normal(size=n)
    clusters = [f"c{i % groups}" for i in range(n)]
    c = cluster_bootstrap_correlation(x, y, clusters, method, n_boot=300, level=level, seed=seed)
    assert c.interval == "cluster" and c.clusters == min(groups, n)
    assert c.r == pytest.approx(stats.pearsonr(x, y)[0] if method == "pearson" else stats.spearmanr(x, y)[0])
    if math.isfinite(c.p):
        assert _excludes_zero(c.low, c.high) == (c.p < 1 - level)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_cluster_bootstrap_equals_a_plain_loop_over_whole_clusters(method):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=9), rng.normal(size=9)
    y[:3] += x[:3]
    clusters = np.array(["es", "es", "es", "fr", "fr", "ar", "ar", "en", "nl"])
    c = cluster_bootstrap_correlation(x, y, clusters, method, n_boot=200, seed=11)
    names = sorted(set(clusters))
    drawn = np.random.default_rng(11).integers(0, len(names), size=(200, len(names)))
    boots = []
    for row in drawn:  # the points of every drawn cluster, a cluster drawn twice twice
        idx = np.concatenate([np.flatnonzero(clusters == names[g]) for g in row])
        xs, ys = x[idx], y[idx]
        if len(set(idx)) < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
            continue
        boots.append((stats.pearsonr if method == "pearson" else stats.spearmanr)(xs, ys)[0])
    low, high, p = bootstrap_interval(boots)
    assert c.resamples == len(boots)
    assert (c.low, c.high, c.p) == pytest.approx((low, high, p), abs=1e-9)


def test_cluster_bootstrap_needs_three_clusters():
    c = cluster_bootstrap_correlation([1, 2, 3, 4], [1, 3, 2, 4], ["a", "a", "b", "b"])
    assert c.clusters == 2 and math.isfinite(c.r) and math.isnan(c.p) and math.isnan(c.low)


@settings(max_examples=300, deadline=None)
@given(d=st.lists(st.floats(-10, 10), min_size=2, max_size=30), level=st.sampled_from([0.9, 0.95, 0.99]))
def test_paired_t_interval_excludes_zero_exactly_when_p_is_below_alpha(d, level):
    t = paired_t(d, level=level)
    assert t.n == len(d) and t.low <= t.mean <= t.high
    if abs(t.p - (1 - level)) > 1e-9:  # not exactly on the boundary
        assert _excludes_zero(t.low, t.high) == (t.p < 1 - level)


def test_paired_t_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5, 2, 12), rng.normal(3, 2, 12)
    t = paired_t(a, b)
    ref = stats.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert t.p == pytest.approx(ref.pvalue) and (t.low, t.high) == pytest.approx((ci.low, ci.high))
    assert t.wilcoxon_p == pytest.approx(stats.wilcoxon(a - b).pvalue)
    assert t.sd == pytest.approx(np.std(a - b, ddof=1))
    same = paired_t([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert (same.low, same.high, same.p) == (1.0, 1.0, 0.0)
    assert paired_t([2.0, 2.0], [2.0, 2.0]).p == 1.0
    assert math.isnan(paired_t([1.0], [0.0]).p)


def test_verdicts():
    assert verdict(0.6, 0.01, 0.03) == "holds"
    assert verdict(0.6, 0.01, 0.2) == "weaker"
    assert verdict(-0.6, 0.01, 0.03) == "not supported here"
    assert verdict(0.01, 0.7, 1.0) == "not supported here"
    assert verdict(float("nan"), float("nan"), float("nan")) == "not measured"
    assert verdict(-0.6, 0.01, 0.03, direction=-1) == "holds"
    # "holds" needs the second method too (the cluster bootstrap of a correlation, Wilcoxon of a paired test)
    assert verdict(0.6, 0.01, 0.03, alt_p=0.01) == "holds"
    assert verdict(0.6, 0.01, 0.03, alt_p=0.2) == "weaker"


# ------------------------------------------------------------------------------------------ a synthetic run


def _row(job: str, src: str, tgt: str, setting: str, pert: str, seed: int, clean: float, drop: float,
         overlap: float, changed: float = 0.0, rate: float = 1.0, ci: tuple[float, float] | None = None) -> dict:
    row = {c: None for c in COLUMN_NAMES}
    low, high = ci if ci is not None else (drop - 1, drop + 1)
    row.update(job_id=job, scope="overall", config_hash=f"h-{tgt}-{setting}-{seed}", model="e5-small",
               sources=src if setting == "transfer" else tgt, target=tgt, setting=setting,
               options=json.dumps({"epochs": 1}), seed=seed, data_protocol="paper-resplit", perturbation=pert,
               perturb_rate=rate, f1=(clean - drop) / 100, clean_f1=clean / 100, drop=drop / 100,
               drop_low=None if pert == "clean" else low / 100, drop_high=None if pert == "clean" else high / 100,
               entities_changed_frac=changed, tokens_changed_frac=changed / 2, entity_token_overlap=overlap,
               n_sentences=500)
    return row


def synthetic(*, control_ci=(-0.5, 0.5), perts=("clean", "entity_replace", "context_replace", "entity_context",
                                                  "location_swap", "entity_replace_matched")) -> pd.DataFrame:
    """12 pairs, 2 seeds (±0.2 around the designed drop), answers known by construction:
    clean transfer F1 = 50 + 40·overlap (r = +1); P1 and P3 drops = 20·overlap (r = +1); P2 drop = 2 − 2·overlap
    (r = −1); LOC swap: native = transfer + 3 ± 0.5; matched P1: native = transfer + 1 ± 0.2, ar→fa/ar→hi transfer
    change nothing; fr→oc's native model is below the floor (clean F1 30)."""
    rows = []
    for i, (src, tgt) in enumerate(PAIRS):
        ov = 0.1 + 0.05 * i
        wiggle = 0.5 if i % 2 else -0.5
        for setting in ("native", "transfer"):
            clean = (30.0 if tgt == "oc" else 85.0) if setting == "native" else 50 + 40 * ov
            overlap = 0.8 if setting == "native" else ov
            for pert in perts:
                changed, rate = 0.0, 1.0
                if pert == "clean":
                    drop = 0.0
                elif pert in ("entity_replace", "entity_context"):
                    drop = 20 * ov + (5 if setting == "native" else 0)
                    changed = 0.6 if setting == "native" else (0.0 if src == "ar" else ov)
                elif pert == "context_replace":
                    drop = 2 - 2 * ov
                elif pert == "location_swap":
                    drop = 4.0 + (3 + wiggle if setting == "native" else 0)
                    changed = 0.4
                else:  # entity_replace_matched at 4 % of all gold entities
                    rate = 0.04
                    drop = 2.0 + (1 + wiggle / 2.5 if setting == "native" else 0)
                    changed = 0.0 if (src == "ar" and setting == "transfer") else 0.04
                for seed, jitter in ((0, -0.2), (1, 0.2)):
                    d = 0.0 if pert == "clean" else drop + jitter
                    control = tgt == "hi" and setting == "transfer" and pert in ("entity_replace", "context_replace",
                                                                                  "entity_context")
                    ci = control_ci if control else None
                    if ci is not None:
                        d = 0.0
                    rows.append(_row(f"{tgt}-{setting}-{pert}-{seed}", src, tgt, setting, pert, seed, clean, d,
                                     overlap, changed, rate, ci))
    return pd.DataFrame(rows)


def _tidy(rows: pd.DataFrame) -> pd.DataFrame:
    t = read_reference_tables()
    return tidy_results(t["published"], rows, t["overlap"], t["uriel"], reference_pairs())


@pytest.fixture(scope="module")
def synth() -> tuple[pd.DataFrame, object]:
    rows = synthetic()
    return rows, compute_findings(_tidy(rows), n_boot=500)


def test_synthetic_correlations_have_the_known_sign(synth):
    _, f = synth
    t = f.table.set_index("id")
    assert list(f.table.columns) == list(TABLE_COLUMNS)
    assert t.loc["1", "estimate"] == pytest.approx(1.0) and t.loc["1", "verdict"] == "holds"
    assert t.loc["1", "n"] == 12 and "7 source clusters" in t.loc["1", "note"]
    # the control pair ar→hi (i = 2) does not move; every other pair's drop is as designed
    ov = np.array([0.1 + 0.05 * i for i in range(12)])
    p1, p2 = 20 * ov, 2 - 2 * ov
    p1[2] = p2[2] = 0.0
    assert t.loc["2a", "estimate"] == pytest.approx(stats.pearsonr(ov, p1)[0]) and t.loc["2a", "verdict"] == "holds"
    r2 = stats.pearsonr(ov, p2)[0]
    assert r2 < 0 and t.loc["2b", "estimate"] == pytest.approx(r2)
    assert t.loc["2b", "verdict"] == "not supported here"
    # seeds ±0.2 around each drop: sd 0.2·√2 per pair, pooled over the 12 pairs (ar→hi's two seeds agree: sd 0)
    assert t.loc["2a", "seeds"] == "0, 1 (2 per model)"
    assert t.loc["2a", "seed_sd"] == pytest.approx(math.sqrt(11 / 12 * 0.08))
    scatter = f.plots["2a:e5-small"].frame
    assert scatter["x"].tolist() == pytest.approx([0.1 + 0.05 * i for i in range(12)])  # our overlap, never the study's


def test_synthetic_paired_tests_match_scipy_on_the_pairs_kept(synth):
    rows, f = synth
    t = f.table.set_index("id")
    # LOC swap: every pair but fr→oc (native below the floor)
    wig = np.array([0.5 if i % 2 else -0.5 for i, (_, tgt) in enumerate(PAIRS) if tgt != "oc"])
    ref = stats.ttest_1samp(3 + wig, 0.0)
    assert t.loc["4", "n"] == 11 and t.loc["4", "estimate"] == pytest.approx(np.mean(3 + wig))
    assert t.loc["4", "p"] == pytest.approx(ref.pvalue) and t.loc["4", "verdict"] == "holds"
    # matched P1: ar→fa and ar→hi transfer changed nothing, fr→oc under the floor
    assert t.loc["3a", "n"] == 9 and "4 %" in t.loc["3a", "test"]
    ex = f.exclusions
    unmatched = ex[ex["finding"] == "3a"]
    assert set(unmatched["pair"]) == {"ar→fa", "ar→hi"} and set(unmatched["setting"]) == {"transfer"}
    assert unmatched["reason"].str.contains("the source shares 0.0 %, under the intended 4 %").all()
    floor = ex[ex["finding"] == "2–6 (drops)"]
    assert floor[["pair", "setting"]].values.tolist() == [["fr→oc", "native"]]
    assert "clean F1 30.0 < floor 50" in floor["reason"].iloc[0]
    # per changed entity: transfer P1 of the ar pairs changed nothing
    assert set(ex.loc[ex["finding"] == "3b", "pair"]) == {"ar→fa", "ar→hi"} and t.loc["3b", "n"] == 9
    # a lower floor keeps fr→oc
    assert findings_table(_tidy(rows), floor=20.0, n_boot=200).set_index("id").loc["4", "n"] == 12


def test_synthetic_control_and_missing_perturbations(synth):
    _, f = synth
    t = f.table.set_index("id")
    assert (t.loc[["5a", "5b", "5c"], "verdict"] == "holds").all() and t.loc[["5a", "5b", "5c"], "p"].isna().all()
    assert t.loc[["6a", "6b"], "verdict"].tolist() == ["not measured"] * 2
    assert "not measured yet" in t.loc["6a", "note"]
    assert "2d" not in t.index  # the study-rules P2 is not announced until it is run
    rows = synthetic(control_ci=(0.2, 1.0))
    moved = compute_findings(_tidy(rows), n_boot=200).table.set_index("id")
    assert (moved.loc[["5a", "5b", "5c"], "verdict"] == "not supported here").all()
    few = synthetic(perts=("clean", "entity_replace"))
    sparse = compute_findings(_tidy(few), n_boot=200).table.set_index("id")
    assert sparse.loc["4", "verdict"] == "not measured" and sparse.loc["2a", "verdict"] == "holds"


def test_holm_runs_over_every_test_with_a_p(synth):
    _, f = synth
    t = f.table
    ok = t["p"].notna()
    assert (t.loc[ok, "p_holm"] >= t.loc[ok, "p"] - 1e-15).all() and t.loc[~ok, "p_holm"].isna().all()
    m = int(ok.sum())
    smallest = t.loc[ok, "p"].idxmin()
    assert t.loc[smallest, "p_holm"] == pytest.approx(min(1.0, m * t.loc[smallest, "p"]))


def test_the_tidy_frame_carries_what_each_perturbation_changed():
    rows = synthetic(perts=("clean", "entity_replace_matched"))
    tidy = _tidy(rows)
    ours, published = tidy[tidy["origin"] == "ours"], tidy[tidy["origin"] == "published"]
    assert published[list(CHANGE_COLUMNS)].isna().all().all()
    matched = ours[ours["perturbation"] == "entity_replace_matched"]
    assert matched["perturb_rate"].eq(0.04).all()
    assert ours.loc[ours["perturbation"] == "clean", "perturb_rate"].eq(1.0).all()
    assert set(matched["entities_changed_frac"]) == {0.0, 0.04}
    assert matched["tokens_changed_frac"].tolist() == pytest.approx((matched["entities_changed_frac"] / 2).tolist())


# ----------------------------------------------------------------------------------- the committed faithful run


def _report_module():
    spec = importlib.util.spec_from_file_location("findings_report", ROOT / "scripts" / "findings_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def faithful():
    if not FAITHFUL.exists():
        pytest.skip("no committed faithful results")
    report = _report_module()
    rows = pd.read_parquet(FAITHFUL)
    return rows, report.build(rows), report


def test_every_printed_interval_agrees_with_its_p_on_the_committed_run(faithful):
    _, f, _ = faithful
    t = f.table
    assert set(t["verdict"]) <= set(VERDICTS) and {"1", "2a", "2b", "2c", "3b", "4", "5a"} <= set(t["id"])
    for _, r in t.iterrows():
        if math.isfinite(r["p"]):
            assert _excludes_zero(r["low"], r["high"]) == (r["p"] < 0.05), r["id"]
            assert r["p_holm"] >= r["p"] - 1e-15
            expected = verdict(r["estimate"], r["p"], r["p_holm"], alt_p=r["alt_p"])
            assert r["verdict"] == expected if r["n"] >= 3 else r["verdict"] == "not measured"
        if math.isfinite(r["alt_p"]) and math.isfinite(r["alt_low"]):
            assert _excludes_zero(r["alt_low"], r["alt_high"]) == (r["alt_p"] < 0.05), r["id"]
        if r["id"].startswith("5") and r["verdict"] != "not measured":  # every seed's CI holds 0, or it fails
            assert (r["verdict"] == "holds") == (r["low"] <= 0 <= r["high"]) or r["verdict"] == "not supported here"


def test_committed_run_numbers_are_the_seed_averaged_pairs(faithful):
    rows, f, _ = faithful
    t = f.table.set_index("id")
    ours = rows[(rows["scope"] == "overall") & (rows["setting"] == "transfer")]
    clean = ours[ours["perturbation"] == "clean"].groupby("target").agg(f1=("f1", "mean"),
                                                                       ov=("entity_token_overlap", "first"))
    assert t.loc["1", "estimate"] == pytest.approx(stats.pearsonr(clean["ov"], 100 * clean["f1"])[0])
    assert t.loc["1", "n"] == 12 and t.loc["1", "protocol"] == f.protocol
    p1 = ours[ours["perturbation"] == "entity_replace"].groupby("target").agg(d=("drop", "mean"),
                                                                            ov=("entity_token_overlap", "first"))
    assert t.loc["2a", "estimate"] == pytest.approx(stats.pearsonr(p1["ov"], p1["d"])[0])
    # the control pair: every seed's P1 CI from the rows contains 0
    hi = ours[(ours["target"] == "hi") & (ours["perturbation"] == "entity_replace")]
    assert t.loc["5a", "verdict"] == ("holds" if ((hi["drop_low"] <= 0) & (hi["drop_high"] >= 0)).all()
                                      else "not supported here")


def test_report_script_prints_the_table(faithful):
    _, f, report = faithful
    text = report.to_markdown(f)
    lines = text.splitlines()
    body = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| #")]
    assert len(body) == len(f.table)
    for ln, (_, r) in zip(body, f.table.iterrows()):
        assert ln.startswith(f"| {r['id']} |") and f"**{r['verdict']}**" in ln
    assert "Holm-adjusted over the" in lines[0] and "Left out" in text
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "findings_report.py"), "--n-boot", "500"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "| 1 | Transfer F1 grows with entity overlap |" in out.stdout


# ------------------------------------------------------------------------------------------------ the page


def test_findings_page_shows_the_table_and_verdicts(tmp_path, monkeypatch):
    if not FAITHFUL.exists():
        pytest.skip("no committed faithful results")
    from streamlit.components.v2 import manifest_scanner
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XNER_RESULTS", str(tmp_path / "results.duckdb"))
    monkeypatch.setattr(manifest_scanner, "scan_component_manifests", lambda: [])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/findings.py")
    at.run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Findings"
    table = at.dataframe[0].value
    assert {"id", "verdict", "estimate", "p_holm"} <= set(table.columns)
    assert table["verdict"].str.contains("holds|weaker|not supported here|not measured").all()
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    assert len(badges) == len(table)
    assert len(at.get("plotly_chart")) >= 5


def test_counts_in_text_take_the_plural_except_for_one():
    from xner_core.analysis.findings import counted

    assert [counted(n, "pair") for n in (0, 1, 2, 12)] == ["0 pairs", "1 pair", "2 pairs", "12 pairs"]
