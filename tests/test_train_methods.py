"""Tests of the training methods made faithful to their papers (tiny models, CPU): Wu et al.'s distillation (frozen
student layers, step floor, MSE vs KL, the unlabeled text), TAPT's pretrained masked-LM head, Huang et al.'s PGD
and word-level smoothing (neighbour table), the options' identities, and the presets that run them."""

from __future__ import annotations

import math

import pytest
import torch
from test_train import FAST, run_options, same_state, state, synth, tiny, unlabeled

from xner_core.errors import ConfigError
from xner_core.training.dispatch import run_setting
from xner_core.training.distill import distill
from xner_core.training.encoding import IGNORE_INDEX, _collate, _pad_id, encode_for_training
from xner_core.training.finetune import fine_tune
from xner_core.training.loop import freeze_bottom
from xner_core.training.neighbours import nearest_words, neighbour_table, word_candidates
from xner_core.training.objective import (
    _pgd_delta,
    _smooth_words,
    _task_loss,
    project_l2,
    single_piece_words,
    soft_loss,
)
from xner_core.training.settings import _Spec
from xner_core.training.tapt import FRESH_HEAD_NOTE, masked_lm_for, mlm_adapt, tapt_head_note

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    """test_train's synthetic data (same seeds)."""
    return {"train": synth(80, 1), "dev": synth(30, 2), "es": synth(40, 3, "es"), "pt": synth(20, 4, "pt"),
            "target_unlabeled": unlabeled(synth(60, 5, "ca"))}


@pytest.fixture(scope="module")
def learned(data):
    """A tiny model fine-tuned on the synthetic pattern (a teacher)."""
    model, tok = tiny()
    res = fine_tune(model, tok, data["train"], data["dev"], epochs=8, lr=5e-3, batch_size=8, warmup_ratio=0.1,
                    seed=0)
    return res, tok


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path / "cache"))  # neighbour tables go here, not to ~/.cache


def batch(sentences, tok, labeled=True):
    from xner_core.corpus.tags import LABEL2ID

    enc = encode_for_training(sentences, tok, LABEL2ID if labeled else None, 128)
    return _collate(enc, _pad_id(tok))


def spec(**kw) -> _Spec:
    base = dict(epochs=1, lr=1e-3, batch_size=8, warmup_ratio=0.0, weight_decay=0.0, max_length=128, seed=0,
                early_stopping_patience=None, freeze_embeddings=False, robust=None, robust_epsilon=1.0,
                robust_rate=0.1)
    return _Spec(**{**base, **kw})


# ------------------------------------------------------------------------------------------------ distillation


def test_frozen_layers_get_no_gradient_and_keep_their_weights(data):
    model, tok = tiny()
    frozen = freeze_bottom(model, 1)
    names = {n for n, p in model.named_parameters() if any(p is q for q in frozen)}
    assert names and all(n.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for n in names)
    assert any(n.startswith("bert.embeddings.word_embeddings") for n in names)
    ids, mask, labels = batch(data["train"][:8], tok)
    _task_loss(model, ids, mask, labels, None, 1.0).backward()
    for n, p in model.named_parameters():
        if n in names:
            assert p.grad is None, n  # no gradient reaches a frozen parameter
        elif n.startswith(("bert.encoder.layer.1.", "classifier.")):
            assert p.grad is not None and p.grad.abs().sum() > 0, n
    for p in frozen:
        p.requires_grad_(True)

    # Through the training loop: frozen while training, unchanged after it, trainable again afterwards.
    model, tok = tiny()
    before = state(model)
    seen_flags = []

    def check(step, total, info):
        seen_flags.append(all(not p.requires_grad for n, p in model.named_parameters()
                              if n.startswith(("bert.embeddings.", "bert.encoder.layer.0."))))

    teacher, _ = tiny(3)
    res = distill(model, tok, [teacher], unlabeled(data["train"][:24]), **{**FAST, "epochs": 1}, freeze_layers=1,
                  progress=check)
    after = state(model)
    assert seen_flags and all(seen_flags)
    for k in before:
        if k.startswith(("bert.embeddings.", "bert.encoder.layer.0.")):
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["bert.encoder.layer.1.output.dense.weight"],
                           after["bert.encoder.layer.1.output.dense.weight"])
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert all(p.requires_grad for p in model.parameters())
    assert res.info["frozen_parameters"] == sum(p.numel() for p in frozen)


def test_freeze_keeps_the_top_layer_of_a_shallow_encoder_trainable():
    model, _ = tiny()  # 2 layers: asking for Wu et al.'s 3 freezes embeddings + layer 0
    frozen = freeze_bottom(model, 3)
    frozen_ids = {id(p) for p in frozen}
    assert all(id(p) not in frozen_ids for p in model.bert.encoder.layer[1].parameters())
    assert all(id(p) in frozen_ids for p in model.bert.encoder.layer[0].parameters())
    assert freeze_bottom(tiny()[0], 0) == []


def test_mse_and_kl_on_hand_made_probabilities():
    teacher = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    student = torch.log(torch.tensor([[0.25, 0.75], [0.9, 0.1]]))  # logits whose softmax is these probabilities
    # MSE: mean over the 4 entries of squared differences: (0.25^2 + 0.25^2 + 0 + 0) / 4.
    assert float(soft_loss(student, teacher, "mse")) == pytest.approx(0.03125)
    # KL(teacher || student) per position, averaged over the 2 positions: (0.5 ln(4/3) + 0) / 2.
    assert float(soft_loss(student, teacher, "kl")) == pytest.approx(0.5 * math.log(4 / 3) / 2)
    # Temperature: MSE at T compares softmax(z / T); KL is scaled by T^2.
    t = 2.0
    p = torch.softmax(student / t, dim=-1)
    assert float(soft_loss(student, teacher, "mse", t)) == pytest.approx(float(((p - teacher.exp()) ** 2).mean()))
    kl = (teacher.exp() * (teacher - torch.log_softmax(student / t, -1))).sum(-1).mean() * t * t
    assert float(soft_loss(student, teacher, "kl", t)) == pytest.approx(float(kl))
    assert float(soft_loss(teacher, teacher, "mse")) == 0.0
    assert float(soft_loss(teacher, teacher, "kl")) == pytest.approx(0.0, abs=1e-7)


def test_student_loss_and_step_floor(data, learned):
    teacher, tok = learned[0].model, learned[1]
    text = unlabeled(data["train"][:32])  # 32 windows, batch 8: 4 steps an epoch
    runs = {}
    for loss in ("mse", "kl"):
        student, _ = tiny(seed=7)
        runs[loss] = distill(student, tok, [teacher], text, epochs=1, lr=5e-3, batch_size=8, warmup_ratio=0.1,
                             seed=0, loss=loss, min_steps=10)
        assert runs[loss].steps == 10 and [h.steps for h in runs[loss].history] == [4, 4, 2]
        assert runs[loss].info["distill_loss"] == loss and runs[loss].info["student_steps"] == 10
    assert runs["mse"].history[0].loss != pytest.approx(runs["kl"].history[0].loss)
    student, _ = tiny(seed=7)
    more = distill(student, tok, [teacher], text, epochs=3, lr=5e-3, batch_size=8, seed=0, min_steps=5)
    assert more.steps == 12  # 3 epochs are more than the floor: the floor changes nothing


def test_run_setting_distill_uses_the_student_options(data):
    teacher, tok = tiny(3)
    model, _ = tiny()
    stages = []
    opts = run_options(distill_epochs=1, distill_min_steps=5, distill_freeze=1, distill_loss="kl")
    res = run_setting("distill", model, tok, teachers=[teacher], target_unlabeled=data["target_unlabeled"][:16],
                      options=opts, seed=0, progress=lambda s, t, info: stages.append((info["stage"], t)))
    assert stages and {s for s, _ in stages} == {"student"} and {t for _, t in stages} == {5}
    assert res.steps == 5 and res.info["distill_loss"] == "kl" and res.info["frozen_parameters"] > 0
    # Teachers trained in-process use `epochs` (2), the student `distill_epochs` (3).
    model, _ = tiny()
    res = run_setting("distill", model, tok, source_train={"es": data["es"][:16], "pt": data["pt"][:16]},
                      target_unlabeled=data["target_unlabeled"][:16], options=run_options(distill_epochs=3),
                      seed=0)
    assert len(res.history) == 3 and res.info["student_epochs"] == 3


def test_unlabeled_target_text_is_the_train_split_without_labels(wikiann_dir):
    from xner_core.corpus.resplit import paper_resplit
    from xner_core.corpus.wikiann import load_wikiann
    from xner_core.evaluation.inputs import training_data, unlabeled_target
    from xner_core.runs.config import make_config

    train, test = paper_resplit("an", wikiann_dir, seed=1)
    got = unlabeled_target("an", "train", None, wikiann_dir, data="paper-resplit")
    assert [s.tokens for s in got] == [s.tokens for s in train]
    assert all(set(s.tags) == {"O"} for s in got)
    test_text = {s.tokens for s in test}
    for which in ("train", "extra", "train+extra"):  # never a re-split test sentence
        assert not any(s.tokens in test_text for s in unlabeled_target("an", which, None, wikiann_dir,
                                                                       data="paper-resplit"))
    ca_train, ca_test = paper_resplit("ca", wikiann_dir, seed=1)
    extra = unlabeled_target("ca", "extra", 500, wikiann_dir, data="paper-resplit")
    kept = {s.tokens for s in (*ca_train, *ca_test)}
    assert len(extra) == 500 and not any(s.tokens in kept for s in extra)
    # wikiann-rahimi: the train split, or train then extra.
    rahimi = load_wikiann("an", "train", wikiann_dir)
    assert [s.tokens for s in unlabeled_target("an", "train", 50, wikiann_dir)] == [s.tokens for s in rahimi][:50]
    both = unlabeled_target("an", "train+extra", None, wikiann_dir)
    assert len(both) == len(rahimi) + len(load_wikiann("an", "extra", wikiann_dir))
    # What a distill config's student reads.
    cfg = make_config("tiny", "an", "distill", sources="es,fr", data="paper-resplit", distill_unlabeled="train",
                      max_train_sentences=None)
    assert [s.tokens for s in training_data(cfg, wikiann_dir).target_unlabeled] == [s.tokens for s in train]


# ------------------------------------------------------------------------------------------------ TAPT


def test_tapt_starts_from_the_pretrained_masked_lm_head(data, tmp_path):
    from transformers import AutoModelForTokenClassification, BertForMaskedLM, BertModel

    from xner_core.corpus.tags import LABELS

    model, tok = tiny()
    torch.manual_seed(11)
    pretrained = BertForMaskedLM(model.config)
    pretrained.save_pretrained(tmp_path / "mlm")
    kw = dict(num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={x: i for i, x in enumerate(LABELS)})
    clf = AutoModelForTokenClassification.from_pretrained(tmp_path / "mlm", **kw)
    mlm, head = masked_lm_for(clf, seed=0)
    assert head == "pretrained"
    saved = pretrained.state_dict()
    for k, v in mlm.state_dict().items():
        if k.startswith("cls."):
            assert torch.equal(v, saved[k]), k  # the head's weights are the checkpoint's
    emb = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(mlm.state_dict()[emb], clf.state_dict()[emb])  # the encoder is the classifier's

    # No head in the checkpoint (like e5-small: an encoder only) or a model built in code: a fresh head, said so.
    BertModel(model.config, add_pooling_layer=False).save_pretrained(tmp_path / "encoder")
    bare = AutoModelForTokenClassification.from_pretrained(tmp_path / "encoder", **kw)
    assert masked_lm_for(bare)[1] == "fresh" and masked_lm_for(model)[1] == "fresh"
    stats: dict = {}
    mlm_adapt(clf, tok, data["target_unlabeled"][:16], steps=3, lr=1e-3, batch_size=8, stats=stats)
    assert stats["head"] == "pretrained" and stats["note"] is None and stats["steps"] == 3
    res = run_setting("tapt", tiny()[0], tok, source_train={"es": data["es"][:16]},
                      target_unlabeled=data["target_unlabeled"][:16], options=run_options(tapt_steps=2), seed=0)
    assert res.info["tapt_head"] == "fresh" and res.info["tapt_note"] == FRESH_HEAD_NOTE


@pytest.mark.parametrize("model, head, says", [
    ("e5-small", None, ["e5-small trains a freshly initialised masked-LM head", "sentence-embedding model",
                        "mBERT and XLM-R would start from their pretrained masked-LM heads"]),
    ("tiny", None, ["freshly initialised", "built in code"]),
    ("mbert", None, ["starts from its pretrained masked-LM head (mBERT's cls.predictions)", "e5-small has none"]),
    ("xlm-roberta-base", None, ["XLM-R's lm_head"]),
    ("/ckpt/dir", "fresh", ["freshly initialised", "as the run's manifest records", "mBERT and XLM-R"]),
    ("/ckpt/dir", None, ["where it has one, else from a fresh head", "train_info.tapt_head"]),
])
def test_tapt_head_note_says_which_head(model, head, says):
    note = tapt_head_note(model, head)
    assert all(s in note for s in says), note


# ------------------------------------------------------------------------------------------------ robust training


def test_pgd_perturbation_stays_in_the_epsilon_ball(data):
    model, tok = tiny()
    ids, mask, labels = batch(data["train"][:8], tok)
    for eps, steps, alpha in [(0.5, 3, None), (0.5, 5, 10.0), (2.0, 1, 0.1)]:
        delta = _pgd_delta(model, ids, mask, labels, None, spec(robust="pgd", robust_epsilon=eps, robust_steps=steps,
                                                                 robust_alpha=alpha), "cpu", "fp32")
        norms = delta.flatten(1).norm(dim=1)
        assert bool((norms <= eps * (1 + 1e-5)).all())
        assert float(delta[mask == 0].abs().sum()) == 0.0  # padding is never perturbed
        if alpha == 10.0:
            assert norms == pytest.approx(torch.full_like(norms, eps))  # big steps end on the sphere
        if steps == 1:
            assert norms == pytest.approx(torch.full_like(norms, 0.1))  # one step of size alpha, inside the ball
    inside = torch.full((2, 3, 4), 0.01)
    assert torch.equal(project_l2(inside, 1.0), inside)


def test_pgd_training_changes_training_and_is_reproducible(data):
    runs = []
    for _ in range(2):
        model, tok = tiny()
        res = fine_tune(model, tok, data["train"][:24], None, **FAST, robust="pgd", robust_epsilon=0.5,
                        robust_steps=2)
        assert all(math.isfinite(h.loss) for h in res.history)
        runs.append(state(model))
    plain, tok = tiny()
    fine_tune(plain, tok, data["train"][:24], None, **FAST)
    assert same_state(runs[0], runs[1]) and not same_state(runs[0], state(plain))


def test_word_smoothing_substitutes_only_neighbours_at_the_rate():
    # [CLS]=2 w5 w6 (w7 ##8) w9 [SEP]=3 [PAD]: one-piece words at 1, 2 and 5; 3-4 is a two-piece word.
    ids = torch.tensor([[2, 5, 6, 7, 8, 9, 3, 0]])
    labels = torch.tensor([[IGNORE_INDEX, 0, 0, 0, IGNORE_INDEX, 0, IGNORE_INDEX, IGNORE_INDEX]])
    mask = (ids != 0).long()
    assert single_piece_words(labels, mask).tolist() == [[False, True, True, False, False, True, False, False]]
    table = torch.full((20, 3), -1, dtype=torch.long)
    table[5] = torch.tensor([11, 12, 13])
    table[7] = torch.tensor([14, 15, 16])  # a two-piece word's first piece: never replaced
    table[9] = torch.tensor([17, 18, 19])  # word 6 has no neighbours: never replaced
    gen = torch.Generator().manual_seed(0)
    big_ids, big_labels, big_mask = ids.repeat(4000, 1), labels.repeat(4000, 1), mask.repeat(4000, 1)
    for rate in (0.3, 8 / 9):
        out = _smooth_words(big_ids, big_labels, big_mask, table, rate, gen)
        changed = out != big_ids
        assert not bool(changed[:, [0, 2, 3, 4, 6, 7]].any())
        for pos, word in ((1, 5), (5, 9)):
            new = out[changed[:, pos], pos]
            assert set(new.tolist()) == set(table[word].tolist())  # every neighbour drawn, nothing else
            assert float(changed[:, pos].float().mean()) == pytest.approx(rate, abs=0.03)
    assert torch.equal(_smooth_words(ids, labels, mask, table, 1e-9, gen), ids)


def test_neighbour_table_is_nearest_by_cosine_and_cached(tmp_path, monkeypatch):
    model, tok = tiny()
    cands = word_candidates(tok)
    vocab = tok.get_vocab()
    assert cands and all(not tok.convert_ids_to_tokens(i).startswith("##") for i in cands)
    assert not set(cands) & set(tok.all_special_ids) and vocab["Arlen"] in cands
    # A hand-made embedding space: word a's nearest are b (same direction), then c, never a itself.
    w = torch.randn(len(tok), model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    a, b, c = cands[:3]
    w[a] = 0.0
    w[a, 0] = 1.0
    w[b] = 3 * w[a]
    w[c] = w[a]
    w[c, 1] = 0.1
    got = nearest_words(w, cands, [a], 2)[a]
    assert got == (b, c)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(w)
    cache = tmp_path / "nb"
    table = neighbour_table(model, tok, [a, b, tok.cls_token_id], 2, cache=cache)
    assert table.shape == (len(tok), 2) and tuple(table[a].tolist()) == (b, c)
    assert bool((table[tok.cls_token_id] == -1).all())  # specials are not words
    files = list((cache / "neighbours").glob("*.npz"))
    assert len(files) == 1
    # Built once per vocabulary: a new process (memo cleared) reads the rows instead of computing them.
    import xner_core.training.neighbours as nb

    nb._MEMO.clear()
    monkeypatch.setattr(nb, "nearest_words", lambda *a, **k: pytest.fail("recomputed a cached row"))
    assert torch.equal(neighbour_table(model, tok, [a, b], 2, cache=cache), table.masked_fill(
        torch.arange(len(tok)).unsqueeze(1) == tok.cls_token_id, -1))


def test_word_smoothing_training_runs_and_is_reproducible(data):
    runs = []
    for _ in range(2):
        model, tok = tiny()
        fine_tune(model, tok, data["train"][:24], None, **FAST, robust="word-smoothing", robust_rate=0.5,
                  robust_neighbours=3)
        runs.append(state(model))
    plain, tok = tiny()
    fine_tune(plain, tok, data["train"][:24], None, **FAST)
    assert same_state(runs[0], runs[1]) and not same_state(runs[0], state(plain))


def test_old_robust_names_are_the_new_variants(data):
    runs = {}
    for name in ("adversarial", "fgm", "smoothing", "subtoken-noise"):
        model, tok = tiny()
        fine_tune(model, tok, data["train"][:16], None, **FAST, robust=name, robust_rate=0.2)
        runs[name] = state(model)
    assert same_state(runs["adversarial"], runs["fgm"]) and same_state(runs["smoothing"], runs["subtoken-noise"])
    with pytest.raises(ConfigError, match="robust_steps"):
        fine_tune(tiny()[0], tok, data["train"][:4], None, **FAST, robust="pgd", robust_steps=0)


# ------------------------------------------------------------------------------------------------ identity, presets


def test_new_options_enter_the_hash_only_away_from_their_default():
    from xner_core.runs.config import canonical_dict, make_config

    def h(**kw):
        return make_config("xlmr", "ca", kw.pop("setting", "distill"), sources=kw.pop("sources", "es,fr"),
                           **kw).hash

    base = make_config("xlmr", "ca", "distill", sources="es,fr")
    # A distill config writes the student options whose defaults changed its recipe (runs.config._RECIPE_CHANGED);
    # the robust ones stay out at their defaults.
    opts = canonical_dict(base)["options"]
    assert {"distill_loss", "distill_epochs", "distill_freeze", "distill_min_steps"} <= set(opts)
    assert "robust_steps" not in opts
    assert h(distill_loss="mse", distill_epochs=3, distill_min_steps=1000, distill_freeze=3) == base.hash
    for kw in ({"distill_loss": "kl"}, {"distill_epochs": 1}, {"distill_min_steps": 0}, {"distill_freeze": 0}):
        assert h(**kw) != base.hash, kw
    # Student options are not the teachers' (transfer) business.
    t = h(setting="transfer", sources="es")
    assert h(setting="transfer", sources="es", distill_loss="kl", distill_freeze=0, distill_epochs=1) == t
    # Old robust names keep their hashes; the descriptive names are the same runs.
    assert h(setting="transfer", sources="es", robust="fgm") == h(setting="transfer", sources="es",
                                                                  robust="adversarial")
    assert h(setting="transfer", sources="es", robust="subtoken-noise") == h(setting="transfer", sources="es",
                                                                             robust="smoothing")
    pgd = h(setting="transfer", sources="es", robust="pgd")
    assert h(setting="transfer", sources="es", robust="pgd", robust_rate=0.5, robust_neighbours=3) == pgd
    assert h(setting="transfer", sources="es", robust="pgd", robust_steps=5) != pgd
    ws = h(setting="transfer", sources="es", robust="word-smoothing")
    assert h(setting="transfer", sources="es", robust="word-smoothing", robust_epsilon=0.1, robust_steps=9) == ws
    assert h(setting="transfer", sources="es", robust="word-smoothing", robust_neighbours=4) != ws
    assert h(setting="transfer", sources="es", robust_steps=7) == t  # no robust method: ignored
    for bad in ({"distill_loss": "l1"}, {"distill_epochs": 0}, {"robust_alpha": -1.0}, {"robust_neighbours": 0},
                {"distill_unlabeled": "test"}):
        with pytest.raises(ConfigError):
            h(**bad)


@pytest.mark.parametrize("name, models, jobs", [
    ("diversity-faithful", 25, 180), ("diversity-faithful-similarity", 18, 48), ("tapt", 10, 48),
    ("diversity-faithful-equal-steps", 4, 32),
    ("robust-pgd", 7, 96), ("robust-word-smoothing", 7, 96),
])
def test_faithful_presets_share_paper_faithfuls_recipe_and_teachers(wikiann_dir, name, models, jobs):
    from xner_core.evaluation.modelstore import teacher_config
    from xner_core.experiments.plan import expand
    from xner_core.experiments.spec import load_spec
    from xner_core.runs.config import make_config

    faithful = load_spec("paper-faithful")
    spec = load_spec(name)
    plan = expand(spec, wikiann_dir)
    assert (len(plan.train_jobs), sum(len(g.jobs) for g in plan.groups)) == (models, jobs)
    assert spec.data == faithful.data == "paper-resplit"
    for field in ("epochs", "lr", "batch_size", "warmup_ratio", "weight_decay", "max_length", "max_train_sentences",
                  "max_dev_sentences"):
        assert getattr(spec.options, field) == getattr(faithful.options, field), field
    plain = {make_config("e5-small", "ca", "transfer", sources=(src,), data=faithful.data,
                         options=faithful.options).hash for src in ("es", "fr", "it", "pt", "en", "de")}
    for job in plan.train_jobs:
        if name == "diversity-faithful-equal-steps":  # a student's step count, not an epoch's
            assert job.config.setting == "multi_source" and job.config.options.max_steps == 1000
        if job.config.setting == "distill":
            assert job.config.options.distill_unlabeled == "train"
            assert all(teacher_config(job.config, s).hash in plain for s in job.config.sources)
        if job.config.setting == "transfer" and not job.config.options.robust:
            assert job.hash in plain  # paper-faithful's own seed-0 transfer models
