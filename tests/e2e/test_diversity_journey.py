"""Journey: a researcher opens the Source diversity page in a real browser and asks whether distillation students
match the teachers they learned from (Wu et al. report students above their teachers): the committed
diversity-faithful students (data/results/diversity_faithful_e5-small.parquet) beside their best teacher, with
each side's optimiser steps."""

from __future__ import annotations

import pytest
from test_journeys import open_page

pytestmark = pytest.mark.e2e


def test_source_diversity_sets_each_student_beside_its_teacher(page, artifacts):
    main = open_page(page, "source_diversity?div_target=an", "Source diversity")
    main.get_by_text("Students and their teachers").first.wait_for(timeout=60_000)
    text = main.inner_text()
    assert "No distillation students" not in text
    assert "gap = student − best teacher" in text
    charts = main.locator('[data-testid="stPlotlyChart"]')
    charts.first.wait_for(timeout=60_000)
    assert charts.count() >= 3  # F1 against the number of sources and against diversity; students vs teachers
    assert main.get_by_text("Students (CSV)").count() >= 1
    # the student's row names its teacher and both step counts (the equal-compute labels)
    frames = main.locator('[data-testid="stDataFrame"]')
    assert frames.count() >= 2
    # each student against its best teacher on an's 518 test sentences: the paired test in words, and as a table
    main.get_by_text("Paired tests: each student against its best teacher").first.wait_for(timeout=60_000)
    # each kind of comparison summed up (how many intervals exclude 0), its tests in words one click away
    # seed 1: es single-teacher, 4 uniform and 4 similarity students; seed 2: the es+fr+it student
    assert "distillation student − its best teacher (Wu et al. 2020), clean: 10 tests:" in main.inner_text()
    for summary in main.get_by_text("Each of the").all():
        summary.click()
    # the multi-source section's lines (above the students') may stay folded: wait for a visible student line
    line = main.get_by_text("(paired bootstrap over 518 test sentences, seed 1; Holm over")
    line.filter(visible=True).first.wait_for(timeout=30_000)
    text = main.inner_text()
    assert "− transfer es:" in text
    # the similarity-weighted students (diversity-faithful-similarity) are their own rows, tested against uniform ones
    assert "distill es+fr+it · similarity weights − distill es+fr+it:" in text
    main.get_by_text("Paired tests: each student against its best teacher").first.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "source_diversity_paired.png"))
    assert main.get_by_text("Paired tests (CSV)").count() >= 1
    page.screenshot(path=str(artifacts / "source_diversity.png"), full_page=True)
    students_chart = charts.nth(2)  # the page scrolls inside its main area: bring the section into view for a look
    students_chart.scroll_into_view_if_needed()
    students_chart.screenshot(path=str(artifacts / "source_diversity_students.png"))
