"""Journey: a researcher opens the Training methods page in a real browser and reads how a robust-training method
compares with plain transfer: the run it comes from, the paired tests per perturbation, the per-pair charts, and
the per-pair CSV."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from test_journeys import open_page

pytestmark = pytest.mark.e2e


def test_training_methods_page_compares_a_method_with_plain_transfer(page, artifacts):
    # two methods now cover all 12 pairs: name the run (the page's `method` URL parameter) instead of its default
    smoothing = quote("word-smoothing · paper-resplit · all train · 1 epoch · lr 0.0001 · batch 8 · full test")
    main = open_page(page, f"training_methods?model=e5-small&method={smoothing}", "Training methods")
    text = main.inner_text()
    # the committed robust-training rows (data/results/robust_word_smoothing_e5-small.parquet) are found and named
    assert "word-level randomized smoothing" in text
    assert "run `" not in text and "run paper-resplit" in text  # the run is shown as code, not raw markdown
    assert main.locator('[data-testid="stDataFrame"]').count() >= 1  # the tests table
    # one line per perturbation: plain vs method, the difference with its interval, p and Holm p, pairs
    for needle in ("clean", "word-smoothing − plain", "Holm", "pairs"):
        assert needle in text, needle
    main.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
    assert main.locator('[data-testid="stPlotlyChart"]').count() >= 2  # clean F1 and at least one drop
    assert main.get_by_text("Per pair, seed and perturbation (CSV)").count() >= 1
    page.screenshot(path=str(artifacts / "training_methods.png"), full_page=True)
