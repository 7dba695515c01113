"""Journeys a user takes through the dashboard, in a real browser (see conftest.py for the server and browser)."""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest

pytestmark = pytest.mark.e2e

XSS = '<script>alert("xss")</script> [<img src=x onerror=alert(1)>|PER] in [Madrid|LOC]'


def settle(page, timeout: float = 90) -> None:
    """Wait until the app's script run is over (no 'Running' status widget, no spinner) and the page drew."""
    page.wait_for_selector('[data-testid="stMain"]', timeout=timeout * 1000)
    # app.py writes the sidebar's device line after the page: once it is there, the page's run is through.
    page.get_by_text("Device:").first.wait_for(timeout=timeout * 1000)
    deadline = time.time() + timeout
    quiet = 0
    while time.time() < deadline:
        busy = page.query_selector('[data-testid="stStatusWidget"]') or page.query_selector(
            '[data-testid="stSpinner"]')
        quiet = 0 if busy else quiet + 1
        if quiet >= 3:  # three quiet polls in a row: reruns triggered by the URL have finished too
            return
        time.sleep(0.4)
    raise AssertionError("the app kept running")


def href(page) -> str:
    """The address bar (`page.url` can lag behind Streamlit's history-API updates)."""
    return page.evaluate("location.href")


def wait_for_path(page, path: str, artifacts, timeout: float = 60) -> None:
    """Wait until the URL's path ends with `path` (Streamlit switches pages with the history API, no load)."""
    deadline = time.time() + timeout
    while not urllib.parse.urlparse(href(page)).path.endswith(path):
        if time.time() > deadline:
            page.screenshot(path=str(artifacts / "timeout.png"), full_page=True)
            raise AssertionError(f"still on {href(page)}, wanted {path}")
        time.sleep(0.3)


def no_error(page) -> None:
    assert page.query_selector('[data-testid="stException"]') is None
    errors = [e.inner_text() for e in page.query_selector_all('[data-testid="stAlertContentError"]')]
    assert not errors, errors


def open_page(page, path: str, title: str):
    """Open a dashboard page (`path` with its query), wait for its run, check it drew its title without an error;
    returns the main area's locator."""
    page.goto(f"{page.base}/{path}")
    settle(page)
    no_error(page)
    assert page.locator("h1").first.inner_text().startswith(title)
    return page.locator('[data-testid="stMain"]')


def test_overview_click_opens_the_pair(page, artifacts):
    page.goto(f"{page.base}/")
    settle(page)
    no_error(page)
    page.get_by_text("F1 drop (clean − perturbed, points) vs", exact=False).first.wait_for()
    page.screenshot(path=str(artifacts / "overview.png"), full_page=True)
    points = page.locator('[data-testid="stPlotlyChart"] .scatterlayer .points path.point')
    points.first.wait_for()
    for i in range(min(points.count(), 40)):  # the first point whose hover label shows (not one hidden under another)
        box = points.nth(i).bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x - 3, y - 3)
        page.mouse.move(x, y, steps=3)  # plotly picks the clicked point from the hover it tracks
        page.wait_for_timeout(300)
        if page.locator(".hoverlayer .hovertext").count():
            break
    else:
        raise AssertionError("no point of the overview shows a hover label")
    page.mouse.down()
    page.mouse.up()
    wait_for_path(page, "/pair_explorer", artifacts)
    settle(page)
    no_error(page)
    params = urllib.parse.parse_qs(urllib.parse.urlparse(href(page)).query)
    title = page.locator("h1").first.inner_text()
    assert f"({params['source'][0]}→{params['target'][0]})" in title
    page.screenshot(path=str(artifacts / "pair_explorer.png"), full_page=True)


def test_sentence_lab_trains_tiny_and_tags_variants(page, artifacts):
    page.goto(f"{page.base}/sentence_lab?model=tiny&source=es&target=an&perts=entity_mask,entity_replace"
              "&text=" + urllib.parse.quote("[Joan Miró|PER] naixió en [Barcelona|LOC] ."))
    settle(page)
    no_error(page)
    page.get_by_role("button", name=re.compile(r"Train tiny native \(an\)")).click()
    page.get_by_text("native model (tiny)").wait_for(timeout=120_000)
    settle(page)
    no_error(page)
    grid = page.locator('div[style*="display:grid"]').first.inner_text()
    assert "Masked entities" in grid and "P1 · unseen entities" in grid and "[MASK]" in grid
    assert page.get_by_role("button", name=re.compile(r"Train tiny native")).count() == 0
    page.screenshot(path=str(artifacts / "sentence_lab.png"), full_page=True)


def upload(page, path):
    """Open the upload page (entity masking, tiny models, es->an) and upload `path` until its perturbed copy shows."""
    page.goto(f"{page.base}/upload?upload_pert=entity_mask&model=tiny&source=es&target=an")
    settle(page)
    page.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text("Perturbed copy").wait_for(timeout=60_000)
    settle(page)
    no_error(page)


def test_upload_scores_a_file_and_reports_bad_lines(page, artifacts, tmp_path):
    good = tmp_path / "mine.conll"
    good.write_text("Joan\tB-PER\nviu\tO\na\tO\nMadrid\tB-LOC\n.\tO\n\nMaria\tB-PER\ntreballa\tO\n.\tO\n",
                    encoding="utf-8")
    upload(page, good)
    metrics = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    assert metrics[:3] == ["2", "8", "3"]  # sentences, tokens, entities
    page.screenshot(path=str(artifacts / "upload.png"), full_page=True)
    bad = tmp_path / "bad.conll"
    bad.write_text("Juan B-PER\nvive O\nMadrid I-per\n", encoding="utf-8")  # a misspelt type (MISC is read as O)
    page.locator('input[type="file"]').set_input_files(str(bad))
    page.locator('[data-testid="stAlertContentError"]').first.wait_for(timeout=60_000)
    text = page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    assert "line 3" in text and "'per'" in text
    page.screenshot(path=str(artifacts / "upload_error.png"), full_page=True)


def test_upload_conll2002_file_with_misc_downloads_its_perturbed_copy(page, artifacts, tmp_path):
    # A CoNLL-2002 file as distributed (esp.testa: token, POS, tag; MISC entities): read, MISC counted, and the
    # perturbed copy downloaded with the POS column and the MISC tags where they were.
    esp = tmp_path / "esp.testa"
    esp.write_text("-DOCSTART- -X- O\n\nLa DA O\nCoruña NC B-LOC\n, Fc O\nEFECOM NP B-ORG\n. Fp O\n\n"
                   "Juan NP B-PER\nPérez NP I-PER\nganó VMI O\nla DA O\nCopa NC B-MISC\ndel SP I-MISC\n"
                   "Rey NC I-MISC\n. Fp O\n", encoding="utf-8")
    upload(page, esp)
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    metrics = dict(zip([t.strip() for t in labels], values))
    assert metrics["Entities"] == "3" and metrics["Other types → O"] == "1"
    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    assert any("1 entity of other types as O (1 MISC)" in t for t in alerts), alerts
    page.screenshot(path=str(artifacts / "upload_conll2002.png"), full_page=True)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name=re.compile("Perturbed file")).click()
    assert download.value.suggested_filename == "esp.entity_mask.conll"
    text = open(download.value.path(), encoding="utf-8").read()
    assert text == ("La\tDA\tO\n[MASK]\tNC\tB-LOC\n,\tFc\tO\n[MASK]\tNP\tB-ORG\n.\tFp\tO\n\n"
                    "[MASK]\tNP\tB-PER\n[MASK]\tNP\tI-PER\nganó\tVMI\tO\nla\tDA\tO\nCopa\tNC\tB-MISC\n"
                    "del\tSP\tI-MISC\nRey\tNC\tI-MISC\n.\tFp\tO\n\n")


def test_hostile_sentence_is_shown_as_text(page, artifacts):
    page.goto(f"{page.base}/sentence_lab?perts=entity_mask,char_noise&text=" + urllib.parse.quote(XSS))
    settle(page)
    no_error(page)
    page.wait_for_timeout(1000)  # give any injected handler the chance to fire
    assert page.dialogs == []
    assert page.locator("main img[src='x']").count() == 0 and page.locator("main script").count() == 0
    shown = page.locator('[data-testid="stMain"]').inner_text()
    assert "onerror" in shown and "script" in shown  # the markup is visible text
    page.screenshot(path=str(artifacts / "xss.png"), full_page=True)
