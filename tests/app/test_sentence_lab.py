"""AppTest of the sentence lab: typed text in any script, every perturbed variant, escaping of hostile input."""

from __future__ import annotations

import urllib.parse

from apptest_helpers import assert_clean_run, open_page, rendered_texts, unmd, widget_value

PAGE = "pages/sentence_lab.py"
XSS = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"
RAW = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<img src=x", "<script>")


def variant_blocks(at) -> str:
    return "".join(h for h in rendered_texts(at, ["html"]) if "display:grid" in h)


def assert_no_raw_markup(at) -> None:
    for text in rendered_texts(at):
        for raw in RAW:
            assert raw not in text, f"unescaped {raw!r} in a rendered element: {text[:200]!r}"


def test_lab_widgets_and_variants_with_data(with_data):
    at = open_page(PAGE, {"source": "es", "target": "ca"})
    assert_clean_run(at)
    assert at.radio(key="qp_mode").value == "type"
    assert at.selectbox(key="qp_lab_lang").value == "ca"
    assert at.multiselect(key="qp_perts").value[:3] == ["entity_replace", "context_replace", "entity_context"]
    at.text_area(key="qp_text").set_value("[Joan Miró|PER] va néixer a [Barcelona|LOC] l' any 1893 .").run()
    assert_clean_run(at)
    assert "Joan │ Miró │ va │ néixer │ a │ Barcelona │ l │ ' │ any │ 1893 │ ." in at.code[0].value
    blocks = variant_blocks(at)
    for title in ("P1 · unseen entities", "Masked entities", "Typos in entities", "Person names from a donor"):
        assert title in blocks
    cells = blocks.split('<div style="font-weight:600')
    masked = next(c for c in cells if c.startswith(';font-size:0.85em;padding-top:6px">Masked entities<'))
    assert masked.count("[MASK]") == 3 and "Joan" not in masked and "Barcelona" not in masked
    # P2/P3 embed words with the (tiny, in tests) pretrained encoder and run like the others.
    assert "P2 · nearest unseen context words" in blocks and "P3 · unseen entities + context" in blocks
    assert not any("Not run" in c.value for c in at.caption)
    # No model is cached in this fresh cache: the panel offers to train both (the default model works offline:
    # e5-small here, where the hub cannot be reached), with a time estimate.
    model = at.selectbox(key="qp_model").value
    assert model == "e5-small"
    assert {b.key for b in at.button} >= {f"train_{model}_native_es_ca", f"train_{model}_transfer_es_ca"}
    assert all("≈" in b.label for b in at.button if b.key.startswith("train_"))
    assert "dl_lab" in {b.key for b in at.get("download_button")}


def test_lab_escapes_hostile_text_and_keeps_it_in_the_url(no_data):
    at = open_page(PAGE, {"text": XSS, "perts": "entity_mask,char_noise,entity_replace", "lab_lang": "ar"})
    assert_clean_run(at)
    assert widget_value(at, "qp_text") == XSS
    assert at.selectbox(key="qp_lab_lang").value == "ar"
    assert at.multiselect(key="qp_perts").value == ["entity_replace", "entity_mask", "char_noise"]
    assert_no_raw_markup(at)
    html = "".join(rendered_texts(at, ["html"]))
    # split_words makes "<", "script", ">" separate words; each is escaped on its own.
    assert "&lt; script &gt; alert ( 1 ) &lt; / script &gt;" in html and "onerror = alert ( 1 ) &gt;" in html
    assert "<script>" not in html
    assert any("XNER_DATA_DIR" in i.value for i in at.info)
    assert any("entity_replace" in c.value and "source training set" in c.value for c in at.caption)
    # Entities marked around hostile text are escaped too.
    at.text_area(key="qp_text").set_value("[<b onmouseover=alert(1)>x</b>|PER] said <script>alert(1)</script>").run()
    assert_clean_run(at)
    assert_no_raw_markup(at)
    assert "<b onmouseover" not in "".join(rendered_texts(at))
    assert urllib.parse.unquote(str(at.query_params["text"])).count("onmouseover") == 1


def test_lab_any_script(no_data):
    at = open_page(PAGE, {"text": "[محمد|PER] در [تهران|LOC] زندگی می‌کند 。東京", "perts": "char_noise",
                          "lab_lang": "fa"})
    assert_clean_run(at)
    words = at.code[0].value.split(" │ ")
    assert words[:2] == ["محمد", "در"] and words[-2:] == ["東", "京"]
    html = "".join(rendered_texts(at, ["html"]))
    assert ">PER<" in html and ">LOC<" in html


def test_lab_draws_a_test_sentence(with_data):
    at = open_page(PAGE, {"source": "fr", "target": "br", "mode": "draw", "i": "4", "perts": "entity_replace"})
    assert_clean_run(at)
    assert at.slider(key="qp_i").value == 4
    from xner_core.corpus.wikiann import load_wikiann

    sent = load_wikiann("br", "test")[4]
    assert at.code[0].value == " │ ".join(sent.tokens)
    assert "P1 · unseen entities" in variant_blocks(at)


def test_lab_trains_a_missing_model_and_shows_its_predictions(with_data):
    at = open_page(PAGE, {"source": "es", "target": "an", "model": "tiny", "perts": "entity_mask,entity_replace",
                          "text": "[Joan Miró|PER] naixió en [Barcelona|LOC] ."})
    assert_clean_run(at)
    assert not any("native model (tiny)" in h for h in rendered_texts(at, ["html"]))  # nothing cached yet
    assert any("once a native or transfer model is cached" in c.value for c in at.caption)
    button = at.button(key="train_tiny_native_es_an")
    assert "≈" in button.label and "Train tiny native (an)" in button.label
    at.select_slider(key="cap_tiny_native_es_an").set_value(200).run()
    at.button(key="train_tiny_native_es_an").click().run()
    assert_clean_run(at)
    grid = variant_blocks(at)
    assert "native model (tiny)" in grid and "transfer model" not in grid
    # input + 2 variants, each with a gold and a native cell
    assert grid.count(">input<") == 1 and grid.count("Masked entities") == 1
    assert any("tiny an native seed 0 · 200 sentences" in unmd(c.value) for c in at.caption)
    assert "train_tiny_native_es_an" not in {b.key for b in at.button}
    assert "train_tiny_transfer_es_an" in {b.key for b in at.button}
    at.toggle(key="pieces").set_value(True).run()
    assert_clean_run(at)
    pieces = at.dataframe[0].value
    assert list(pieces["word"])[:2] == ["Joan", "Miró"] and (pieces["n"] >= 1).all()
    table = at.get("download_button")
    assert "dl_lab" in {b.key for b in table}


def test_default_model_works_offline(no_data, monkeypatch):
    """Where the hub cannot be reached the sidebar opens on e5-small (bundled), not on mbert."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from xner_core.experiments import plan

    monkeypatch.setattr(plan, "_ONLINE", {})
    at = open_page(PAGE, {})
    assert_clean_run(at)
    assert at.selectbox(key="qp_model").value == "e5-small"
    monkeypatch.setattr(plan, "_ONLINE", {"hub": True})
    at = open_page(PAGE, {})
    assert at.selectbox(key="qp_model").value == "mbert"
