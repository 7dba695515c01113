"""Training methods against plain transfer (xner_core.analysis.methods, the tidy frame's `method` and
`base_protocol`): which rows are compared, the paired tests over pairs, and the chart frame. Synthetic rows whose
answers are known by construction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from xner_core.analysis.methods import (
    COMPARISON_COLUMNS,
    available_methods,
    method_comparison,
    method_title,
    method_plot,
    method_tests,
)
from xner_core.analysis.tidy import PLAIN, read_reference_tables, tidy_results, training_method
from xner_core.corpus.languages import reference_pairs
from xner_core.experiments.store import COLUMN_NAMES

PAIRS = [("fr", "br"), ("en", "sco"), ("fr", "oc"), ("it", "scn"), ("es", "an"), ("es", "ast")]
BASE = {"epochs": 1, "lr": 1e-4, "batch_size": 8, "max_train_sentences": None}


def _row(src, tgt, setting, options, pert, seed, f1, drop):
    row = {c: None for c in COLUMN_NAMES}
    row.update(job_id=f"{src}-{tgt}-{setting}-{json.dumps(options, sort_keys=True)}-{pert}-{seed}", scope="overall",
               config_hash="h", model="e5-small", sources=src, target=tgt, setting=setting,
               options=json.dumps(options, sort_keys=True), seed=seed, data_protocol="paper-resplit",
               perturbation=pert, f1=(f1 - drop) / 100, clean_f1=f1 / 100, drop=drop / 100, n_sentences=100)
    return row


def synthetic():
    """Plain transfer: clean F1 60 + 2i, P1 drop 5. TAPT: +3 clean F1 (± 1 by pair), P1 drop 4. PGD (robust):
    clean −1, P1 drop 2. Two seeds (±0.1). Another run (batch 32) has plain rows only: never a baseline."""
    rows = []
    for i, (src, tgt) in enumerate(PAIRS):
        for seed, jit in ((0, -0.1), (1, 0.1)):
            wig = 1.0 if i % 2 else -1.0
            for setting, opts, clean, drop in (
                    ("transfer", BASE, 60 + 2 * i, 5.0),
                    ("tapt", {**BASE, "tapt_steps": 2000, "distill_unlabeled": "train"}, 63 + 2 * i + wig, 4.0),
                    ("transfer", {**BASE, "robust": "pgd", "robust_steps": 3}, 59 + 2 * i, 2.0),
                    ("transfer", {**BASE, "batch_size": 32}, 10.0, 0.0)):
                for pert, d in (("clean", 0.0), ("entity_replace", drop)):
                    rows.append(_row(src, tgt, setting, opts, pert, seed, clean + jit, d + (jit if d else 0)))
    import pandas as pd

    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tidy():
    t = read_reference_tables()
    return tidy_results(t["published"], synthetic(), t["overlap"], t["uriel"], reference_pairs())


def test_training_method_names():
    assert training_method(json.dumps(BASE), "transfer") == PLAIN
    assert training_method({**BASE, "robust": "adversarial"}, "transfer") == "fgm"
    assert training_method({**BASE, "robust": "smoothing"}, "native") == "subtoken-noise"
    assert training_method({**BASE, "robust": "word-smoothing"}, "transfer") == "word-smoothing"
    assert training_method({**BASE, "adapter": "lora"}, "transfer") == "lora"
    assert training_method(BASE, "tapt") == "tapt"
    assert training_method("not json", "transfer") == PLAIN
    # an adversarial run of another strength is another method: never averaged with the default budget's
    assert training_method({**BASE, "robust": "pgd", "robust_epsilon": 1.0, "robust_steps": 3}, "transfer") == "pgd"
    assert training_method({**BASE, "robust": "pgd", "robust_epsilon": 0.1}, "transfer") == "pgd · ε 0.1"
    assert training_method({**BASE, "robust": "pgd", "robust_epsilon": 0.5, "robust_steps": 5, "robust_alpha": 0.2},
                           "transfer") == "pgd · ε 0.5 · K 5 · α 0.2"
    assert training_method({**BASE, "robust": "adversarial", "robust_epsilon": 0.3}, "transfer") == "fgm · ε 0.3"
    assert method_title("pgd · ε 0.1") == "PGD adversarial training on embeddings (Huang et al. 2021), ε 0.1"
    assert method_title("word-smoothing").startswith("word-level randomized smoothing")


def test_robust_rows_share_the_plain_run_as_base_protocol(tidy):
    ours = tidy[tidy["origin"] == "ours"]
    pgd, plain = ours[ours["method"] == "pgd"], ours[(ours["method"] == PLAIN) & (ours["n_sentences"] == 100)]
    assert set(pgd["protocol"]) != set(plain["protocol"])  # the views never average them
    assert "robust pgd" in pgd["protocol"].iloc[0]
    assert set(pgd["base_protocol"]) <= set(plain["base_protocol"])
    found = available_methods(tidy, "e5-small").set_index("method")
    assert set(found.index) == {"tapt", "pgd"} and (found["pairs"] == 6).all() and (found["seeds"] == "0, 1").all()


def test_comparison_pairs_each_method_row_with_its_plain_twin(tidy):
    proto = available_methods(tidy, "e5-small").set_index("method").loc["tapt", "base_protocol"]
    comp = method_comparison(tidy, "tapt", "e5-small", proto)
    assert list(comp.columns) == list(COMPARISON_COLUMNS)
    assert len(comp) == 6 * 2 * 2  # pairs x seeds x (clean, P1)
    clean = comp[comp["perturbation"] == "clean"]
    assert (clean["method_f1"] - clean["plain_f1"]).abs().max() == pytest.approx(4.0)  # 3 ± 1, never the batch-32 run
    assert comp.loc[comp["perturbation"] == "entity_replace", "plain_drop"].tolist() == pytest.approx(
        [4.9, 5.1] * 6)


def test_paired_tests_over_pairs_match_scipy(tidy):
    proto = available_methods(tidy, "e5-small").set_index("method").loc["tapt", "base_protocol"]
    tests = method_tests(method_comparison(tidy, "tapt", "e5-small", proto)).set_index("perturbation")
    wig = np.array([1.0 if i % 2 else -1.0 for i in range(6)])
    ref = stats.ttest_1samp(3 + wig, 0)
    c = tests.loc["clean"]
    assert c["outcome"] == "clean F1" and c["n"] == 6 and c["seeds"] == "2"
    assert c["diff"] == pytest.approx(3.0) and c["p"] == pytest.approx(ref.pvalue)
    assert (c["low"] > 0) == (c["p"] < 0.05)
    assert c["better_in"] == "method better in 6 of 6 pairs"
    p1 = tests.loc["entity_replace"]
    assert p1["outcome"] == "drop" and p1["diff"] == pytest.approx(-1.0) and p1["better_in"].endswith("6 of 6 pairs")
    assert (tests["p_holm"] >= tests["p"] - 1e-15).all()


def test_plot_frame_and_empty_cases(tidy):
    proto = available_methods(tidy, "e5-small").set_index("method").loc["pgd", "base_protocol"]
    comp = method_comparison(tidy, "pgd", "e5-small", proto)
    plot = method_plot(comp, "entity_replace", "pgd")
    assert plot.kind == "paired" and list(plot.frame["a"]) == pytest.approx([5.0] * 6)
    assert list(plot.frame["b"]) == pytest.approx([2.0] * 6) and (plot.frame["reason"] == "").all()
    none = method_comparison(tidy, "word-smoothing", "e5-small", proto)
    assert none.empty and method_tests(none).empty
    one = method_tests(comp[comp["pair"] == "fr→br"])
    assert one["n"].tolist() == [1, 1] and all(math.isnan(v) for v in one["p"])


def test_report_script_prints_each_method_and_its_tests():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "methods_report.py"
    spec = importlib.util.spec_from_file_location("methods_report", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = synthetic().assign(train_seconds=36.0, eval_seconds=3.6)
    text = mod.report(rows)
    assert "(`tapt`;" in text and "(`pgd`;" in text and "6 pairs; seeds 0, 1" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("| clean | clean F1 | 6 |")]
    assert len(lines) == 2 and "method better in 6 of 6 pairs" in lines[0]
    assert "No training-method rows" in mod.report(rows[rows["setting"] == "transfer"].iloc[:0])
