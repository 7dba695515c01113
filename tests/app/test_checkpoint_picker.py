"""AppTest of the model panel's checkpoint picker: a local NER checkpoint directory (a tiny random BERT saved with
save_pretrained, labels PERSON/LOCATION/... in BIOES) is checked, remembered for the session, listed beside the
cached models, and the sentence lab and the pair explorer predict with it (its labels mapped onto ours)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import assert_clean_run, open_page, rendered_texts, unmd
from checkpoints import save_checkpoint

LAB = "pages/sentence_lab.py"
EXPLORER = "pages/pair_explorer.py"


@pytest.fixture(scope="module")
def loc_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tags every word S-LOCATION (read as B-LOC)."""
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "all-loc", favour="S-LOCATION")


def grid_cells(at) -> list[str]:
    """The sentence lab's variant grid, one string per variant row (title, gold and model cells)."""
    grid = "".join(h for h in rendered_texts(at, ["html"]) if "display:grid" in h)
    return grid.split('<div style="font-weight:600')[1:]


def test_lab_predicts_with_a_picked_checkpoint(no_data, loc_checkpoint, tmp_path):
    at = open_page(LAB, {"source": "es", "target": "an", "model": "tiny", "perts": "entity_mask",
                         "text": "[Joan Miró|PER] naixió en [Barcelona|LOC] ."})
    assert_clean_run(at)
    assert "transfer model" not in "".join(grid_cells(at))  # nothing cached, no checkpoint yet
    slug = "tiny_transfer_es_an"
    # A directory that is not a checkpoint is refused with the reason, and nothing is picked.
    not_one = tmp_path / "not-a-checkpoint"
    not_one.mkdir()
    at.text_input(key=f"ckpt_path_{slug}").set_value(str(not_one))
    at.button(key=f"ckpt_use_{slug}").click().run()
    assert not at.exception
    assert any("has no config.json" in unmd(e.value) for e in at.error)
    at.text_input(key=f"ckpt_path_{slug}").set_value(str(tmp_path / "nowhere"))
    at.button(key=f"ckpt_use_{slug}").click().run()
    assert any("no such checkpoint directory" in unmd(e.value) for e in at.error)
    # The real one: it becomes the transfer model and the lab shows its predictions.
    at.text_input(key=f"ckpt_path_{slug}").set_value(str(loc_checkpoint))
    at.button(key=f"ckpt_use_{slug}").click().run()
    assert_clean_run(at)
    choice = f"checkpoint:{loc_checkpoint.resolve()}"
    assert at.selectbox(key=f"pick_{slug}").value == choice
    assert any("dropped (→ O): MISC" in unmd(c.value) for c in at.caption)  # how its labels read as ours
    rows = grid_cells(at)
    assert "transfer model (tiny)" in "".join(h for h in rendered_texts(at, ["html"]) if "display:grid" in h)
    assert "native model" not in "".join(rows)
    # input row: title, gold (PER + LOC), the checkpoint's tags (every one of the 6 words a LOC)
    assert rows[0].startswith(';font-size:0.85em;padding-top:6px">input<')
    assert rows[0].count(">LOC</span>") == 1 + 6 and rows[0].count(">PER</span>") == 1
    # The native column lists the checkpoint beside "no model", and uses it only when picked.
    native = at.selectbox(key="pick_tiny_native_es_an")
    assert native.value == "" and native.options[1] == f"checkpoint · {loc_checkpoint.resolve()}"
    native.set_value(choice).run()
    assert_clean_run(at)
    html = "".join(h for h in rendered_texts(at, ["html"]) if "display:grid" in h)
    assert "native model (tiny)" in html and "transfer model (tiny)" in html
    at.toggle(key="pieces").set_value(True).run()  # sub-word pieces from the checkpoint's tokenizer
    assert_clean_run(at)
    assert list(at.dataframe[0].value["word"])[:2] == ["Joan", "Miró"]


def test_pair_explorer_predicts_with_a_picked_checkpoint(with_data, loc_checkpoint):
    at = open_page(EXPLORER, {"source": "es", "target": "an", "model": "tiny", "perturbation": "entity_mask",
                              "n": "3"})
    assert_clean_run(at)
    blocks = [h for h in rendered_texts(at, ["html"]) if "gold · original" in h]
    assert blocks and not any("transfer · original" in b for b in blocks)
    slug = "tiny_transfer_es_an"
    at.text_input(key=f"ckpt_path_{slug}").set_value(str(loc_checkpoint))
    at.button(key=f"ckpt_use_{slug}").click().run()
    assert_clean_run(at)
    blocks = [h for h in rendered_texts(at, ["html"]) if "gold · original" in h]
    assert len(blocks) == 3
    for block in blocks:
        assert "transfer · original" in block and "transfer · perturbed" in block
        assert "native · original" not in block
    assert not at.toggle(key="only_changed").disabled
