"""AppTest of the upload page: a real CoNLL file is validated, summarised and perturbed; bad files give a line
number, never a traceback; hostile tokens are escaped."""

from __future__ import annotations

from pathlib import Path

from apptest_helpers import assert_clean_run, open_page, rendered_texts, unmd

PAGE = "pages/upload.py"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "conll"


def upload(at, name: str, content: bytes):
    at.file_uploader(key="upload_file").set_value((name, content, "text/plain"))
    return at.run()


def test_upload_valid_file_stats_and_perturbed_copy(no_data):
    at = open_page(PAGE, {"upload_pert": "entity_mask"})
    assert_clean_run(at)
    assert at.selectbox(key="qp_file_lang").value == "auto"
    assert any("Choose a file" in i.value for i in at.info)
    upload(at, "bioes.conll", (FIXTURES / "bioes.conll").read_bytes())
    assert_clean_run(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sentences"] == "2" and metrics["Entities"] == "3" and metrics["Scheme"] == "BIOES → IOB2"
    assert any("converted BIOES" in w.value for w in at.warning)
    stats = at.dataframe[0].value.iloc[0]
    assert (stats["entities_PER"], stats["entities_LOC"], stats["entities_ORG"]) == (1, 1, 1)
    report = at.dataframe[1].value.iloc[0]
    assert report["name"] == "entity_mask" and report["entities_changed"] == 3
    assert {"dl_perturbed", "dl_report", "dl_upload_stats"} <= {b.key for b in at.get("download_button")}
    assert any(">PER<" in h for h in rendered_texts(at, ["html"]))


def test_upload_invalid_file_shows_line_number(no_data):
    at = open_page(PAGE)
    upload(at, "bad.conll", b"Juan B-PER\nvive O\nen O\nMadrid I-per\n")
    assert not at.exception
    (err,) = at.error
    shown = unmd(err.value)
    assert "line 4: entity type 'per' is unsupported" in shown and "**bad.conll**" in shown
    assert not at.metric


CONLL2002 = ("La DA O\nCoruña NC B-LOC\n, Fc O\nEFECOM NP B-ORG\n. Fp O\n\n"
             "Juan NP B-PER\nPérez NP I-PER\nganó VMI O\nla DA O\nCopa NC B-MISC\ndel SP I-MISC\nRey NC I-MISC\n"
             "y CC O\nel DA O\nMundial NC B-MISC\n. Fp O\n")


def served_downloads(monkeypatch) -> dict[str, bytes]:
    """Record what each download button serves, by file name (AppTest runs without the media file manager)."""
    from streamlit.elements.widgets import button

    served: dict[str, bytes] = {}
    marshall = button.marshall_file

    def record(coordinates, data, proto, mimetype, file_name=None, **kw):
        if isinstance(data, (bytes, str)):
            served[file_name or ""] = data.encode("utf-8") if isinstance(data, str) else data
        return marshall(coordinates, data, proto, mimetype, file_name, **kw)

    monkeypatch.setattr(button, "marshall_file", record)
    return served


def test_upload_conll2002_file_with_misc_keeps_its_columns(no_data, monkeypatch):
    served = served_downloads(monkeypatch)
    at = open_page(PAGE, {"upload_pert": "entity_mask"})
    upload(at, "esp.testa", CONLL2002.encode())
    assert_clean_run(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Entities"] == "3" and metrics["Other types → O"] == "2" and metrics["Scheme"] == "IOB2"
    assert any("read 2 entities of other types as O (2 MISC)" in unmd(w.value) for w in at.warning)
    stats = at.dataframe[0].value.iloc[0]
    assert stats["extra_columns"] == 1 and stats["other_types_as_O"] == 2
    assert "dl_perturbed" in {b.key for b in at.get("download_button")}
    text = served["esp.entity_mask.conll"].decode("utf-8")
    assert text.startswith("La\tDA\tO\n[MASK]\tNC\tB-LOC\n,\tFc\tO\n[MASK]\tNP\tB-ORG\n")
    assert "[MASK]\tNP\tB-PER\n[MASK]\tNP\tI-PER\nganó\tVMI\tO\n" in text
    assert "Copa\tNC\tB-MISC\ndel\tSP\tI-MISC\nRey\tNC\tI-MISC\n" in text  # other types kept as they were


def test_upload_hostile_tokens_are_escaped(no_data):
    at = open_page(PAGE, {"upload_pert": "char_noise"})
    upload(at, "x<img src=x onerror=alert(1)>.conll",
           b"<script>alert(1)</script>\tB-PER\n<img\tO\nsrc=x\tO\nonerror=alert(1)>\tB-LOC\n")
    assert_clean_run(at)
    for text in rendered_texts(at):
        assert "<script>" not in text and "<img" not in text
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in h for h in rendered_texts(at, ["html"]))


def test_upload_source_perturbation_needs_local_data(no_data):
    at = open_page(PAGE, {"upload_pert": "entity_replace", "source": "es", "target": "ca"})
    upload(at, "iob1.conll", (FIXTURES / "iob1.conll").read_bytes())
    assert_clean_run(at)
    assert any("XNER_DATA_DIR" in i.value and "es/train" in i.value for i in at.info)


def test_upload_entity_replace_with_real_source(with_data):
    at = open_page(PAGE, {"upload_pert": "entity_replace", "source": "es", "target": "ca"})
    upload(at, "ca.conll", "Joan\tB-PER\nviu\tO\na\tO\nMadrid\tB-LOC\n.\tO\n".encode())
    assert_clean_run(at)
    report = at.dataframe[1].value.iloc[0]
    assert report["name"] == "entity_replace" and report["entities"] == 2


def test_upload_scores_with_cached_models(tiny_models):
    from xner_core.corpus.wikiann import load_wikiann

    text = "".join("".join(f"{t}\t{g}\n" for t, g in zip(s.tokens, s.tags)) + "\n"
                   for s in load_wikiann("an", "test").sentences[:30])
    at = open_page(PAGE, {"upload_pert": "entity_mask", "source": "es", "target": "an", "model": "tiny"})
    upload(at, "an.conll", text.encode())
    assert_clean_run(at)
    assert not [b for b in at.button if b.key.startswith("train_")]  # both tiny models cached
    scores = at.dataframe[2].value
    assert set(scores["setting"]) == {"native", "transfer"}
    assert set(scores["condition"]) == {"clean", "entity_mask"}
    assert set(scores["scope"]) == {"overall", "PER", "ORG", "LOC"}
    clean = scores[(scores["condition"] == "clean")]
    assert (clean["drop"] == 0).all() and clean["f1"].between(0, 100).all()
    masked = scores[(scores["condition"] == "entity_mask") & (scores["scope"] == "overall")]
    assert masked["drop_low"].notna().all()  # paired bootstrap of the drop
    labels = {m.label for m in at.metric}
    assert {"native F1", "transfer F1"} <= labels
    downloads = {b.key: b for b in at.get("download_button")}
    assert {"dl_scores", "dl_pred_clean", "dl_pred_entity_mask"} <= set(downloads)



def test_upload_work_is_cached_between_reruns(no_data, monkeypatch):
    # Parsing and perturbing are keyed by the file's content hash and the choices: reruns (any widget change)
    # reuse them. Unique content, so no earlier test's cache entry answers.
    import uuid

    import xner_core.corpus.conll as conll
    import xner_core.evaluation.inputs as inputs

    calls: list[str] = []
    read, perturb = conll.read_conll, inputs.perturb_test
    monkeypatch.setattr(conll, "read_conll", lambda *a, **k: calls.append("read") or read(*a, **k))
    monkeypatch.setattr(inputs, "perturb_test", lambda *a, **k: calls.append("perturb") or perturb(*a, **k))
    at = open_page(PAGE, {"upload_pert": "entity_mask"})
    upload(at, "cached.conll", f"{uuid.uuid4().hex}\tB-PER\nvive\tO\n".encode())
    assert_clean_run(at)
    assert calls == ["read", "perturb"]
    at.run()
    at.selectbox(key="qp_upload_pert").set_value("char_noise").run()
    assert_clean_run(at)
    assert calls == ["read", "perturb", "perturb"]  # a new perturbation: the parsed file is reused
    at.selectbox(key="qp_upload_pert").set_value("entity_mask").run()
    assert calls == ["read", "perturb", "perturb"]  # back to the first choice: both cached
