"""Tests for xner_core.training (encoding, loop, objective, finetune, distill, similarity, tapt, dispatch): label
alignment, windows, batching, reproducibility, learning, every setting, robust training, distillation, similarity
weights and masked-LM adaptation (tiny models, CPU, one thread)."""

from __future__ import annotations

import gzip
import math
import random
from pathlib import Path

import pytest
import torch
from synthetic_ner import FILL, PEOPLE, PLACES, synth

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import LABEL2ID
from xner_core.errors import ConfigError, DataError
from xner_core.models.registry import build_tiny
from xner_core.runs.config import make_config
from xner_core.training import loop
from xner_core.training.dispatch import run_setting
from xner_core.training.distill import distill, teacher_soft_labels
from xner_core.training.encoding import (
    IGNORE_INDEX,
    _epoch_order,
    _windows,
    encode_for_training,
    length_grouped_batches,
)
from xner_core.training.finetune import fine_tune
from xner_core.training.loop import evaluate_f1
from xner_core.training.objective import _smooth_ids
from xner_core.training.settings import TrainOptions
from xner_core.training.similarity import language_posteriors, language_scores, similarity_weights
from xner_core.training.tapt import _mask_tokens, mlm_adapt

torch.set_num_threads(1)

VOCAB_TEXT = [" ".join(FILL + PLACES + PEOPLE + ("in", "met", "."))] * 3


def unlabeled(sentences: list[Sentence]) -> list[Sentence]:
    return [s.replace(tags=["O"] * len(s)) for s in sentences]


_TOKENIZER = None


def tiny(seed: int = 0):
    """A tiny model (random init from `seed`) and ONE shared tokenizer.

    `build_tiny` trains a new WordPiece tokenizer per call and its id assignment is not stable between calls
    (ties in the trainer), so weight comparisons across models must share the tokenizer.
    """
    global _TOKENIZER
    model, tokenizer = build_tiny(texts=VOCAB_TEXT, seed=seed)
    if _TOKENIZER is None:
        _TOKENIZER = tokenizer
    assert len(tokenizer) == len(_TOKENIZER)
    return model, _TOKENIZER


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


FAST = dict(epochs=2, lr=5e-3, batch_size=8, warmup_ratio=0.1, seed=0)


def run_options(**overrides) -> TrainOptions:
    """`run_setting`'s options: FAST's, balanced sampling on (its keyword default before it took TrainOptions), and
    students trained like everything else (2 epochs, no step floor: the floor's 1,000 steps are for real runs)."""
    base = {k: v for k, v in FAST.items() if k != "seed"}
    return TrainOptions(**{**base, "balanced_sampling": True, "distill_epochs": 2, "distill_min_steps": 0,
                           **overrides})


# ------------------------------------------------------------------------------------------------ encoding


@pytest.fixture(scope="module")
def tok():
    return tiny()[1]


def first_positions(labels) -> list[int]:
    return [i for i, lab in enumerate(labels) if lab != IGNORE_INDEX]


def test_labels_sit_on_first_subtoken_of_multi_piece_words(tok):
    words = ["we", "met", "Havelund", "in", "Arlenthen", "."]
    pieces = [tok(w, add_special_tokens=False)["input_ids"] for w in words]
    assert len(pieces[2]) > 1 and len(pieces[4]) > 1, "precondition: these words split into several pieces"
    sent = Sentence(tuple(words), ("O", "O", "B-PER", "O", "B-LOC", "O"))
    (enc,) = encode_for_training([sent], tok, LABEL2ID, 128)
    expected_ids = [tok.cls_token_id] + [i for p in pieces for i in p] + [tok.sep_token_id]
    assert list(enc.input_ids) == expected_ids
    # First piece of each word carries its label; continuation pieces and specials are ignored.
    starts = [1]
    for p in pieces[:-1]:
        starts.append(starts[-1] + len(p))
    assert first_positions(enc.labels) == starts
    assert [enc.labels[i] for i in starts] == [LABEL2ID[t] for t in sent.tags]
    assert enc.labels[0] == enc.labels[-1] == IGNORE_INDEX


@pytest.mark.parametrize("blank", [" ", "\u3000", "\t", ""])
def test_word_with_zero_pieces_does_not_shift_labels(tok, blank):
    words = ["met", "Gosta", blank, "in", "Arlen", "."]
    tags = ("O", "B-PER", "O", "O", "B-LOC", "O")
    assert tok(blank, add_special_tokens=False)["input_ids"] == [], "precondition: the word yields no piece"
    (enc,) = encode_for_training([Sentence(tuple(words), tags)], tok, LABEL2ID, 128)
    labeled = [enc.labels[i] for i in first_positions(enc.labels)]
    assert labeled == [LABEL2ID[t] for i, t in enumerate(tags) if i != 2]
    assert tok.convert_ids_to_tokens(enc.input_ids[first_positions(enc.labels)[3]]) == "Arlen"


def test_long_sentence_is_split_into_windows_of_whole_words(tok):
    sent = synth(1, 3)[0]
    long = Sentence(sent.tokens * 6, sent.tags * 6, "xx", "long")
    windows = encode_for_training([long], tok, LABEL2ID, 16)
    assert len(windows) > 2
    assert all(len(w) <= 16 for w in windows)
    # Consecutive, non-overlapping word ranges covering the sentence; every word labeled exactly once.
    assert windows[0].first_word == 0
    for a, b in zip(windows, windows[1:]):
        assert b.first_word == a.first_word + a.n_words
    assert windows[-1].first_word + windows[-1].n_words == len(long)
    labels = [w.labels[i] for w in windows for i in first_positions(w.labels)]
    assert labels == [LABEL2ID[t] for t in long.tags]
    assert all(w.input_ids[0] == tok.cls_token_id and w.input_ids[-1] == tok.sep_token_id for w in windows)


def test_single_overlong_word_gets_its_own_truncated_window(tok):
    huge = "Gosta" * 20  # many pieces
    sent = Sentence(("met", huge, "in", "Arlen"), ("O", "B-PER", "O", "B-LOC"))
    windows = encode_for_training([sent], tok, LABEL2ID, 8)
    assert all(len(w) <= 8 for w in windows)
    assert [lab for w in windows for lab in w.labels if lab != IGNORE_INDEX] == [0, 1, 0, 5]


@pytest.mark.parametrize("windows_in, budget, expected", [
    ([2, 2, 2], 4, [(0, 2), (2, 3)]),
    ([5, 1], 4, [(0, 1), (1, 2)]),
    ([0, 0, 3, 0], 3, [(0, 4)]),
    ([1, 1, 1, 1], 2, [(0, 2), (2, 4)]),
])
def test_window_splitting_table(windows_in, budget, expected):
    assert _windows(windows_in, budget) == expected


def test_encoding_errors(tok):
    with pytest.raises(DataError, match="B-MISC"):
        encode_for_training([Sentence(("x",), ("B-MISC",), "xx", "s1")], tok, LABEL2ID, 16)
    with pytest.raises(ConfigError, match="max_length"):
        encode_for_training(synth(1, 0), tok, LABEL2ID, 2)
    assert encode_for_training([Sentence((), ())], tok, LABEL2ID, 16) == []


# ------------------------------------------------------------------------------------------------ batching


def test_length_grouped_batches_cover_each_index_once_and_group_lengths():
    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(230)]
    order = list(range(230))
    rng.shuffle(order)
    batches = length_grouped_batches(order, lengths, 8, torch.Generator().manual_seed(1), megabatch=5)
    assert sorted(i for b in batches for i in b) == list(range(230))
    # Inside a mega-batch the examples are sorted by length, so a batch spans a narrow length range.
    for start in range(0, 230, 40):
        mega = sorted(order[start:start + 40], key=lambda i: -lengths[i])
        expected = [mega[j:j + 8] for j in range(0, len(mega), 8)]
        assert all(b in batches for b in expected)
    again = length_grouped_batches(order, lengths, 8, torch.Generator().manual_seed(1), megabatch=5)
    assert again == batches


def test_balanced_epoch_order_oversamples_small_groups():
    groups = [list(range(0, 10)), list(range(10, 13)), list(range(13, 18))]
    order = _epoch_order(18, groups, torch.Generator().manual_seed(0))
    counts = [sum(1 for i in order if i in g) for g in groups]
    assert counts == [10, 10, 10]
    assert set(order) == set(range(18))  # every sentence of every group is seen
    small = [i for i in order if 10 <= i < 13]
    assert max(small.count(i) for i in range(10, 13)) - min(small.count(i) for i in range(10, 13)) <= 1


# ------------------------------------------------------------------------------------------------ fine-tuning


@pytest.fixture(scope="module")
def data():
    return {"train": synth(80, 1), "dev": synth(30, 2), "es": synth(40, 3, "es"), "pt": synth(20, 4, "pt"),
            "target_unlabeled": unlabeled(synth(60, 5, "ca"))}


def test_same_seed_gives_bit_identical_weights_and_other_seed_does_not(data):
    runs = []
    for seed in (0, 0, 1):
        model, tok = tiny()
        fine_tune(model, tok, data["train"][:40], None, **{**FAST, "seed": seed})
        runs.append(state(model))
    assert same_state(runs[0], runs[1])
    assert not same_state(runs[0], runs[2])


@pytest.fixture(scope="module")
def learned(data):
    """A tiny model fine-tuned on the synthetic pattern (also the teacher of the distillation test)."""
    model, tok = tiny()
    before = evaluate_f1(model, tok, data["dev"], device="cpu")
    res = fine_tune(model, tok, data["train"], data["dev"], epochs=8, lr=5e-3, batch_size=8, warmup_ratio=0.1,
                    seed=0)
    return res, tok, before


def test_tiny_model_learns_the_pattern(data, learned):
    res, tok, before = learned
    assert len(res.history) == 8
    assert res.history[-1].loss < 0.5 * res.history[0].loss
    assert res.best_dev_f1 is not None and res.best_dev_f1 > 0.8 > before
    assert res.best_dev_f1 == max(h.dev_f1 for h in res.history)
    # The returned model is the best epoch's: evaluating it again gives the best F1.
    assert evaluate_f1(res.model, tok, data["dev"], device="cpu") == pytest.approx(res.best_dev_f1)
    assert res.train_seconds > 0 and res.sentences_per_second > 0
    assert res.steps == 8 * math.ceil(80 / 8)
    assert not res.model.training


def test_best_epoch_weights_are_restored_and_early_stopping_stops(data, monkeypatch):
    scripted = iter([0.5, 0.9, 0.4, 0.3, 0.95])
    snapshots = []

    def fake_eval(model, tokenizer, sentences, batch_size=32, device=None, precision="auto"):
        snapshots.append(state(model))
        return next(scripted)

    monkeypatch.setattr(loop, "evaluate_f1", fake_eval)
    model, tok = tiny()
    res = fine_tune(model, tok, data["train"][:16], data["dev"][:4], **{**FAST, "epochs": 5},
                    early_stopping_patience=2)
    assert [h.dev_f1 for h in res.history] == [0.5, 0.9, 0.4, 0.3]  # stopped after two epochs without gain
    assert res.best_epoch == 2 and res.best_dev_f1 == 0.9
    assert same_state(state(res.model), snapshots[1])
    assert not same_state(state(res.model), snapshots[-1])


def test_progress_reports_every_step_in_order(data):
    calls = []
    model, tok = tiny()
    fine_tune(model, tok, data["train"][:20], None, **{**FAST, "batch_size": 6, "warmup_ratio": 0.5},
              progress=lambda step, total, info: calls.append((step, total, dict(info))))
    total = 2 * math.ceil(20 / 6)
    assert [c[0] for c in calls] == list(range(1, total + 1))
    assert {c[1] for c in calls} == {total}
    assert {"loss", "lr", "elapsed", "epoch", "stage"} <= set(calls[0][2])
    elapsed = [c[2]["elapsed"] for c in calls]
    assert elapsed == sorted(elapsed)
    lrs = [c[2]["lr"] for c in calls]  # linear warmup over 4 of 8 steps to 5e-3, then linear decay
    assert lrs == pytest.approx([0.0, 1.25e-3, 2.5e-3, 3.75e-3, 5e-3, 3.75e-3, 2.5e-3, 1.25e-3])


def test_freeze_embeddings_keeps_word_embeddings(data):
    model, tok = tiny()
    emb = model.get_input_embeddings().weight.detach().clone()
    other = model.classifier.weight.detach().clone()
    fine_tune(model, tok, data["train"][:16], None, **FAST, freeze_embeddings=True)
    assert torch.equal(model.get_input_embeddings().weight, emb)
    assert not torch.equal(model.classifier.weight, other)
    assert model.get_input_embeddings().weight.requires_grad  # restored afterwards


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("options", [
    {},
    {"weight_decay": 0.05},
    {"robust": "adversarial"},
    {"robust": "smoothing", "robust_rate": 0.2},
    {"robust": "pgd", "robust_steps": 2},
    {"robust": "word-smoothing", "robust_rate": 0.5, "robust_neighbours": 3},
], ids=["plain", "weight-decay", "adversarial", "smoothing", "pgd", "word-smoothing"])
def test_row_sparse_embedding_updates_equal_dense_adamw(data, options, tmp_path, monkeypatch):
    monkeypatch.setenv("XNER_CACHE_DIR", str(tmp_path))  # word-smoothing's neighbour table
    # Three epochs with a dev set: deferred decay flushed before each dev evaluation and the best epoch kept.
    runs = {}
    for rows in (False, True):
        model, tok = tiny()
        res = fine_tune(model, tok, data["train"][:40], data["dev"], **{**FAST, "epochs": 3}, **options,
                        row_sparse_embeddings=rows)
        runs[rows] = (state(model), res)
    (dense, rd), (sparse, rs) = runs[False], runs[True]
    assert _max_diff(dense, sparse) < 1e-4
    assert [h.loss for h in rs.history] == pytest.approx([h.loss for h in rd.history], rel=1e-5)
    assert rs.best_dev_f1 == pytest.approx(rd.best_dev_f1)
    emb = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(sparse[emb], tiny()[0].state_dict()[emb])  # the embeddings were trained
    assert model.get_input_embeddings().weight.requires_grad  # restored afterwards
    assert not model.get_input_embeddings()._forward_hooks  # and the gather hook removed


def test_row_sparse_distillation_equals_dense(data, learned):
    teacher, tok = learned[0].model, learned[1]
    out = []
    for rows in (False, True):
        student, _ = tiny(seed=7)
        distill(student, tok, [teacher], unlabeled(data["train"][:32]), epochs=2, lr=5e-3, batch_size=8,
                warmup_ratio=0.1, seed=0, row_sparse_embeddings=rows)
        out.append(state(student))
    assert _max_diff(*out) < 1e-4


@pytest.mark.parametrize("robust", ["adversarial", "smoothing"])
def test_robust_training_changes_training_and_is_reproducible(data, robust):
    plain, tok = tiny()
    fine_tune(plain, tok, data["train"][:24], None, **FAST)
    runs = []
    for _ in range(2):
        model, tok = tiny()
        res = fine_tune(model, tok, data["train"][:24], None, **FAST, robust=robust, robust_epsilon=1.0,
                        robust_rate=0.2)
        assert all(math.isfinite(h.loss) for h in res.history)
        runs.append(state(model))
    assert same_state(runs[0], runs[1])
    assert not same_state(runs[0], state(plain))


def test_adversarial_step_with_frozen_embeddings(data):
    model, tok = tiny()
    emb = model.get_input_embeddings().weight.detach().clone()
    fine_tune(model, tok, data["train"][:16], None, **FAST, robust="adversarial", freeze_embeddings=True)
    assert torch.equal(model.get_input_embeddings().weight, emb)


def test_smoothing_replaces_only_real_non_special_tokens():
    ids = torch.tensor([[2, 10, 11, 12, 3, 0, 0], [2, 13, 14, 15, 16, 17, 3]])
    mask = (ids != 0).long()
    special = torch.tensor([0, 1, 2, 3, 4])
    candidates = torch.arange(100, 120)
    gen = torch.Generator().manual_seed(0)
    all_out = _smooth_ids(ids, mask, special, candidates, 1.0, gen)
    eligible = mask.bool() & ~torch.isin(ids, special)
    assert torch.equal(all_out[~eligible], ids[~eligible])
    assert bool(((all_out[eligible] >= 100) & (all_out[eligible] < 120)).all())
    big = torch.randint(5, 50, (200, 50))
    changed = (_smooth_ids(big, torch.ones_like(big), special, candidates, 0.3, gen) != big).float().mean()
    assert 0.25 < float(changed) < 0.35


def test_option_errors(data):
    model, tok = tiny()
    for kwargs, pattern in [({"robust": "gaussian"}, "adversarial"), ({"epochs": 0}, "epochs"),
                            ({"lr": None}, "resolved_lr"), ({"warmup_ratio": 1.5}, "warmup_ratio")]:
        with pytest.raises(ConfigError, match=pattern):
            fine_tune(model, tok, data["train"][:4], None, **{**FAST, **kwargs})
    with pytest.raises(ConfigError, match="not both"):
        fine_tune(model, tok, data["train"][:4], None, balanced_groups=[data["es"]], **FAST)
    with pytest.raises(DataError, match="no training sentences"):
        fine_tune(model, tok, [], None, **FAST)


# ------------------------------------------------------------------------------------------------ distillation


def test_teacher_soft_labels_weighted_average(data):
    (t1, tok), (t2, _) = tiny(1), tiny(2)
    text = data["target_unlabeled"][:6]
    w1, s1 = teacher_soft_labels([t1], tok, text, device="cpu")
    _, s2 = teacher_soft_labels([t2], tok, text, device="cpu")
    _, mix = teacher_soft_labels([t1, t2], tok, text, weights=[3, 1], device="cpu")
    _, only1 = teacher_soft_labels([t1, t2], tok, text, weights=[1, 0], device="cpu")
    for i, w in enumerate(w1):
        assert s1[i].shape == (len(first_positions(w.labels)), 7)
        assert torch.allclose(s1[i].exp().sum(-1), torch.ones(s1[i].shape[0]), atol=1e-5)
        assert torch.allclose(mix[i].exp(), 0.75 * s1[i].exp() + 0.25 * s2[i].exp(), atol=1e-6)
        assert torch.allclose(only1[i], s1[i], atol=1e-6)
    with pytest.raises(ConfigError, match="weight"):
        teacher_soft_labels([t1, t2], tok, text, weights=[1.0])


def test_student_learns_from_teacher_on_unlabeled_text(data, learned):
    teacher, tok = learned[0].model, learned[1]
    assert evaluate_f1(teacher, tok, data["dev"], device="cpu") > 0.8
    student, _ = tiny(seed=7)
    res = distill(student, tok, [teacher], unlabeled(data["train"]), epochs=8, lr=5e-3, batch_size=8,
                  warmup_ratio=0.1, seed=0)
    assert evaluate_f1(res.model, tok, data["dev"], device="cpu") > 0.8
    assert res.history[-1].loss < res.history[0].loss
    assert res.info["distill_weights"] == (1.0,)


# ------------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize("setting, extra", [
    ("native", {}),
    ("native", {"robust": "adversarial"}),
    ("native", {"robust": "smoothing"}),
    ("transfer", {"sources": ["es"]}),
    ("multi_source", {"balanced_sampling": True}),
    ("multi_source", {"balanced_sampling": False}),
    ("distill", {"distill_weights": "uniform"}),
    ("distill", {"distill_weights": "similarity"}),
    ("tapt", {"tapt_steps": 4}),
    ("tapt", {"tapt_steps": 3, "sources": ["es"], "robust": "smoothing"}),
])
def test_every_setting_runs(data, setting, extra):
    extra = dict(extra)
    langs = extra.pop("sources", ["es", "pt"])
    model, tok = tiny()
    before = state(model)
    stages = set()
    res = run_setting(
        setting, model, tok,
        source_train={lang: data[lang] for lang in langs}, target_train=data["train"][:20],
        target_dev=data["dev"][:10], target_unlabeled=data["target_unlabeled"][:20],
        source_dev={"es": data["dev"][:5]}, options=run_options(**extra), seed=FAST["seed"],
        progress=lambda step, total, info: stages.add(info["stage"]),
    )
    assert res.model is model and not same_state(before, state(model))
    assert len(res.history) == 2 and res.train_seconds > 0 and res.info["total_seconds"] >= res.train_seconds
    expected_stages = {
        "native": {"native"}, "transfer": {"transfer"}, "multi_source": {"multi_source"},
        "distill": {"teacher es", "teacher pt", "student"}, "tapt": {"tapt", "fine-tune"},
    }[setting]
    assert stages == expected_stages
    if setting == "native":
        assert res.best_dev_f1 is not None
    if setting == "multi_source" and extra["balanced_sampling"]:
        assert res.steps == 2 * math.ceil(2 * 40 / 8)  # pt (20) oversampled to es's 40
    if setting == "distill":
        weights = res.info["distill_weights"]
        assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)
        if extra["distill_weights"] == "uniform":
            assert weights == (0.5, 0.5)
        assert res.best_dev_f1 is None  # no target labels in the zero-resource setting


@pytest.mark.parametrize("max_steps, epochs_run", [(12, [5, 5, 2]), (3, [3]), (5, [5])])
def test_max_steps_fixes_every_stage_at_that_many_optimiser_steps(data, max_steps, epochs_run):
    """Equal compute: `max_steps` overrides epochs (repeated, the last partial, or cut) for fine-tuning, teachers and
    the student alike; 40 es sentences at batch 8 are 5 steps per epoch."""
    model, tok = tiny()
    res = run_setting("transfer", model, tok, source_train={"es": data["es"]},
                      options=run_options(max_steps=max_steps), seed=FAST["seed"])
    assert res.steps == max_steps and [h.steps for h in res.history] == epochs_run
    teacher_steps: list[int] = []
    res = run_setting("distill", tiny()[0], tok, source_train={"es": data["es"]},
                      target_unlabeled=data["target_unlabeled"][:40],
                      options=run_options(max_steps=max_steps, distill_min_steps=1000), seed=FAST["seed"],
                      progress=lambda step, total, info: teacher_steps.append(total) if info["stage"] != "student"
                      else None)
    assert res.steps == max_steps and set(teacher_steps) == {max_steps}  # the step floor yields to max_steps
    with pytest.raises(ConfigError, match="max_steps=0 is invalid"):
        make_config("tiny", "ca", "transfer", sources="es", max_steps=0)


def test_distill_with_given_teachers_skips_teacher_training(data):
    teacher, tok = tiny(3)
    model, _ = tiny()
    stages = set()
    res = run_setting("distill", model, tok, teachers=[teacher], target_unlabeled=data["target_unlabeled"][:10],
                      progress=lambda s, t, info: stages.add(info["stage"]), options=run_options(),
                      seed=FAST["seed"])
    assert stages == {"student"} and res.info["teacher_seconds"] == {}


@pytest.mark.parametrize("setting, kwargs, error, pattern", [
    ("zero_shot", {}, ConfigError, "native"),
    ("transfer", {"source_train": {"es": [1], "pt": [1]}}, ConfigError, "exactly 1"),
    ("native", {}, DataError, "target_train"),
    ("distill", {"source_train": {"es": [1]}}, DataError, "unlabeled"),
    ("native", {"options": run_options(distill_weights="entropy")}, ConfigError, "similarity"),
    ("native", {"options": TrainOptions()}, ConfigError, "resolved_lr"),  # lr None: the caller resolves it
])
def test_run_setting_errors(setting, kwargs, error, pattern):
    model, tok = tiny()
    with pytest.raises(error, match=pattern):
        run_setting(setting, model, tok, **{"options": run_options(), **kwargs})


# ------------------------------------------------------------------------------------------------ similarity

ES = ["El ayuntamiento de la ciudad aprobó ayer el nuevo presupuesto para las escuelas públicas .",
      "La selección española jugará el próximo partido en el estadio de Sevilla .",
      "Los científicos de la universidad publicaron un estudio sobre el cambio climático .",
      "El río atraviesa la región y desemboca en el mar Mediterráneo cerca de Valencia ."]
DE = ["Der Stadtrat hat gestern den neuen Haushalt für die öffentlichen Schulen beschlossen .",
      "Die deutsche Nationalmannschaft spielt das nächste Spiel im Stadion von München .",
      "Die Wissenschaftler der Universität veröffentlichten eine Studie über den Klimawandel .",
      "Der Fluss durchquert die Region und mündet in der Nähe von Hamburg in die Nordsee ."]
AR = ["وافق مجلس المدينة أمس على الميزانية الجديدة للمدارس العامة .",
      "سيلعب المنتخب الوطني المباراة القادمة في ملعب القاهرة .",
      "نشر علماء الجامعة دراسة عن تغير المناخ .",
      "يعبر النهر المنطقة ويصب في البحر المتوسط قرب الإسكندرية ."]
CA = ["L'ajuntament de la ciutat va aprovar ahir el nou pressupost per a les escoles públiques .",
      "La selecció catalana jugarà el proper partit a l'estadi de Girona .",
      "Els científics de la universitat van publicar un estudi sobre el canvi climàtic ."]


def test_similarity_weights_rank_closest_source_first_handwritten():
    sources = {"de": DE, "ar": AR, "es": ES}
    post = language_posteriors(CA, sources)
    assert max(post, key=post.get) == "es" and sum(post.values()) == pytest.approx(1.0)
    weights = similarity_weights(CA, sources)
    assert weights.index(max(weights)) == 2 and sum(weights) == pytest.approx(1.0)
    assert weights[2] > weights[0] > weights[1]  # es, then de (Latin script), then ar
    # Wu et al.'s aggregation by hand: mean over sentences of softmax(s / var(s)) of the language-ID scores.
    langs, scores = language_scores(CA, sources)
    s = torch.tensor(scores, dtype=torch.float64)
    expected = torch.softmax(s / torch.var(s), dim=1).mean(dim=0)
    assert langs == ["de", "ar", "es"] and weights == pytest.approx(expected.tolist())
    # The first method: posterior averages; a higher temperature flattens them toward uniform.
    sharp = similarity_weights(CA, sources, method="posterior")
    flat = similarity_weights(CA, sources, method="posterior", temperature=100.0)
    assert sharp.index(max(sharp)) == 2 and max(flat) - min(flat) < max(sharp) - min(sharp)
    with pytest.raises(ConfigError, match="posterior"):
        similarity_weights(CA, sources, method="lid")
    # Sentences, strings and token lists are accepted alike.
    as_sent = [Sentence(tuple(s.split()), ("O",) * len(s.split())) for s in CA]
    assert similarity_weights(as_sent, sources) == pytest.approx(weights)


def _read_wikiann(path: Path, n: int) -> list[list[str]]:
    out, cur = [], []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                if cur:
                    out.append(cur)
                    cur = []
                    if len(out) >= n:
                        break
                continue
            token = line.split("\t")[0]
            cur.append(token.split(":", 1)[1] if ":" in token else token)
    return out


def test_similarity_weights_on_wikiann(wikiann_dir):
    sources = {lang: _read_wikiann(wikiann_dir / lang / "train.gz", 1000) for lang in ("ar", "de", "es")}
    target = _read_wikiann(wikiann_dir / "ca" / "dev.gz", 300)
    post = language_posteriors(target, sources)
    assert post["es"] > post["de"] > post["ar"]
    weights = similarity_weights(target, sources)
    assert weights[2] == max(weights)


# ------------------------------------------------------------------------------------------------ TAPT


def test_mlm_adapt_updates_encoder_only_and_learns(data):
    model, tok = tiny()
    before = state(model)
    losses = []
    out = mlm_adapt(model, tok, data["target_unlabeled"], steps=40, lr=5e-3, batch_size=16, seed=0,
                    progress=lambda s, t, info: losses.append((s, t, info["loss"])))
    assert out is model
    after = state(model)
    assert [s for s, _, _ in losses] == list(range(1, 41)) and {t for _, t, _ in losses} == {40}
    assert sum(x for *_, x in losses[-8:]) < sum(x for *_, x in losses[:8])
    assert not torch.equal(after["bert.embeddings.word_embeddings.weight"],
                           before["bert.embeddings.word_embeddings.weight"])
    assert torch.equal(after["classifier.weight"], before["classifier.weight"])  # head untouched
    # Reproducible for a seed.
    again, _ = tiny()
    mlm_adapt(again, tok, data["target_unlabeled"], steps=40, lr=5e-3, batch_size=16, seed=0)
    assert same_state(after, state(again))


def test_mlm_adapt_from_directory_returns_token_classifier(data, tmp_path):
    model, tok = tiny()
    model.save_pretrained(tmp_path)
    out = mlm_adapt(str(tmp_path), tok, data["target_unlabeled"][:10], steps=2, lr=1e-3, batch_size=4)
    assert type(out).__name__ == "BertForTokenClassification"
    assert out.config.id2label[5] == "B-LOC"
    assert not torch.equal(out.bert.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight)
    assert mlm_adapt(model, tok, data["target_unlabeled"], steps=0) is model


def test_mask_tokens_picks_real_positions_and_at_least_one_per_row():
    ids = torch.tensor([[2, 10, 3, 0, 0, 0], [2, 11, 12, 13, 14, 3]])
    mask = (ids != 0).long()
    special = torch.tensor([0, 1, 2, 3, 4])
    for seed in range(20):
        inputs, labels = _mask_tokens(ids, mask, special, 4, 100, 0.15, torch.Generator().manual_seed(seed))
        picked = labels != IGNORE_INDEX
        assert bool(picked.any(dim=1).all())
        assert not bool((picked & ~(mask.bool() & ~torch.isin(ids, special))).any())
        assert torch.equal(labels[picked], ids[picked])
        assert torch.equal(inputs[~picked], ids[~picked])
