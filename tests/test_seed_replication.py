"""Seeds as the unit of variance (xner_core.analysis.seeds): each finding's statistic on every complete seed, the t
over seeds (its interval agreeing with its p), the verdict that a seed pointing away caps at "weaker", and the
paired findings per pair over seeds. Synthetic runs from tests/test_findings.py, whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from test_findings import PAIRS, _tidy, synthetic

from xner_core.analysis.finding_frames import average_seeds, pair_cells, seed_cells
from xner_core.analysis.findings import compute_findings
from xner_core.analysis.seeds import PER_PAIR_COLUMNS, correlation_statistic, replicate, seed_t


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(-0.99, 0.99), min_size=2, max_size=8), fisher=st.booleans(),
       level=st.sampled_from([0.9, 0.95, 0.99]))
def test_seed_t_interval_excludes_zero_exactly_when_p_is_below_alpha(values, fisher, level):
    mean, low, high, p = seed_t(values, level, fisher)
    if not math.isfinite(p):
        return
    assert low <= mean <= high and 0 <= p <= 1
    assert (low > 0 or high < 0) == (p < 1 - level)


def test_seed_t_matches_scipy_and_fisher_back_transforms():
    est = [0.61, 0.72, 0.55]
    mean, low, high, p = seed_t(est)
    assert mean == pytest.approx(np.mean(est)) and p == pytest.approx(stats.ttest_1samp(est, 0).pvalue)
    zmean, zlow, zhigh, zp = seed_t(est, fisher=True)
    z = np.arctanh(est)
    assert zmean == pytest.approx(np.tanh(z.mean())) and zp == pytest.approx(stats.ttest_1samp(z, 0).pvalue)
    assert -1 < zlow < zmean < zhigh < 1
    one = seed_t([0.5])
    assert one[0] == 0.5 and all(math.isnan(v) for v in one[1:])


@pytest.fixture(scope="module")
def rows():
    return synthetic()


def test_seed_cells_average_to_pair_cells(rows):
    tidy = _tidy(rows)
    by_seed = seed_cells(tidy, None, "e5-small")
    assert set(by_seed["seed"]) == {0, 1}
    assert len(by_seed) == 2 * len(pair_cells(tidy, None, "e5-small"))
    avg = average_seeds(by_seed)
    pc = pair_cells(tidy, None, "e5-small")
    assert avg["drop"].tolist() == pytest.approx(pc["drop"].tolist())
    assert avg["seed_list"].tolist() == [(0, 1)] * len(avg)


def test_each_seed_replicates_the_correlation(rows):
    tidy = _tidy(rows)
    by_seed = seed_cells(tidy, None, "e5-small")
    pairs = [f"{s}→{t}" for s, t in PAIRS]
    rep = replicate(by_seed, pairs, correlation_statistic("clean", "f1"), fisher=True)
    assert rep.seeds == (0, 1) and rep.pairs == 12 and rep.incomplete == ()
    assert rep.estimates == pytest.approx((1.0, 1.0)) and rep.agrees()
    # a seed that lacks one pair is named, not used
    gone = by_seed[~((by_seed["seed"] == 1) & (by_seed["pair"] == "fr→br"))]
    rep = replicate(gone, pairs, correlation_statistic("clean", "f1"), fisher=True)
    assert rep.seeds == (0,) and rep.incomplete == ((1, 11),) and math.isnan(rep.p)
    assert "seed 1 (11 of 12 pairs)" in rep.text()


def test_findings_table_carries_the_seed_columns(rows):
    f = compute_findings(_tidy(rows), n_boot=200)
    t = f.table.set_index("id")
    assert t.loc["1", "seed_n"] == 2 and bool(t.loc["1", "seed_agree"])
    assert "seed 0 +1.00, seed 1 +1.00" in t.loc["1", "seed_estimates"]
    # LOC swap: native − transfer = 3 ± 0.5 in each seed (the jitter moves both sides alike)
    wig = np.array([0.5 if i % 2 else -0.5 for i, (_, tgt) in enumerate(PAIRS) if tgt != "oc"])
    assert t.loc["4", "seed_n"] == 2 and t.loc["4", "seed_mean"] == pytest.approx(np.mean(3 + wig))
    per = f.per_pair
    assert list(per.columns) == list(PER_PAIR_COLUMNS)
    four = per[per["id"] == "4"].set_index("pair")
    assert len(four) == 11 and "fr→oc" not in four.index  # the floor's exclusion holds per pair too
    assert (four["seeds"] == 2).all() and four.loc["fr→br", "diff"] == pytest.approx(3 - 0.5)
    assert (four["p_holm"] >= four["p"] - 1e-15).all()


def test_a_seed_pointing_away_caps_the_verdict_at_weaker(rows):
    base = compute_findings(_tidy(rows), n_boot=200).table.set_index("id")
    assert base.loc["4", "verdict"] == "holds"
    # seed 0: native loses 6 more than transfer under the LOC swap; seed 1: 0.5 less. The pair means (+2.75) still
    # hold over pairs, but seed 1 on its own points away from the study.
    moved = rows.copy()
    native_loc = (moved["setting"] == "native") & (moved["perturbation"] == "location_swap")
    transfer_drop = moved[(moved["setting"] == "transfer") & (moved["perturbation"] == "location_swap")] \
        .set_index(["target", "seed"])["drop"]
    for i in moved.index[native_loc]:
        d = transfer_drop[(moved.at[i, "target"], moved.at[i, "seed"])]
        moved.at[i, "drop"] = d + (0.06 if moved.at[i, "seed"] == 0 else -0.005)
    t = compute_findings(_tidy(moved), n_boot=200).table.set_index("id")
    assert t.loc["4", "estimate"] == pytest.approx(2.75) and t.loc["4", "p_holm"] < 0.05
    assert t.loc["4", "seed_agree"] is False or not t.loc["4", "seed_agree"]
    assert t.loc["4", "verdict"] == "weaker"
