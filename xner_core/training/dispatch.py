"""Stage 3b, training dispatch: `run_setting` trains a model in one of the compared settings (`SETTINGS`).

- `native`: fine-tune on the target language's labeled train split;
- `transfer`: fine-tune on one source language, used zero-shot on the target (the reference study);
- `multi_source`: fine-tune on several source languages at once, optionally balanced per source;
- `distill`: Wu et al. (ACL 2020) teacher-student learning. One teacher per source language (the transfer model,
  same recipe) produces label distributions on unlabeled target text; their weighted average (uniform, or Wu et
  al.'s language-ID similarity weights) is the target of a fresh student (embeddings + bottom 3 layers frozen,
  3 epochs with a floor on steps, MSE on probabilities; `distill.py` lists where we differ);
- `tapt`: target-adaptive masked-LM training of the encoder (from the pretrained masked-LM head where the model
  has one) on unlabeled target text, then source fine-tuning.
Any setting can add Huang et al. (EMNLP 2021) robust training (`objective.py`): `pgd` (K-step projected gradient
ascent in an L2 ball around the word embeddings), `word-smoothing` (randomized smoothing by nearest-neighbour word
substitution), or the first two variants `fgm` (= `adversarial`, one-step) and `subtoken-noise` (= `smoothing`,
random sub-token substitution). Any setting but tapt can train LoRA adapters instead of every weight
(`options.adapter = "lora"`, `lora.py`): every supervised stage (teachers and student included) trains adapters +
the head and returns the merged model.

The run's options arrive whole, as the experiment config's `TrainOptions`.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Iterable, Mapping, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.errors import ConfigError, DataError, choices_message
from xner_core.numerics import resolve_precision
from xner_core.training.distill import distill
from xner_core.training.finetune import fine_tune
from xner_core.training.loop import TrainResult
from xner_core.training.settings import DISTILL_WEIGHTS, SETTINGS, ProgressFn, TrainOptions, lora_spec
from xner_core.training.similarity import similarity_weights
from xner_core.training.tapt import mlm_adapt


def _concat(groups: Iterable[Sequence[Sentence]]) -> list[Sentence]:
    return [s for g in groups for s in g]


def run_setting(
    setting: str,
    model: Any,
    tokenizer: Any,
    *,
    source_train: Mapping[str, Sequence[Sentence]] | None = None,
    target_train: Sequence[Sentence] | None = None,
    target_dev: Sequence[Sentence] | None = None,
    target_unlabeled: Sequence[Sentence] | None = None,
    source_dev: Mapping[str, Sequence[Sentence]] | None = None,
    teachers: Sequence[Any] | None = None,
    options: TrainOptions,
    seed: int = 0,
    progress: ProgressFn | None = None,
    device: Any = None,
    precision: str = "auto",
) -> TrainResult:
    """Train `model` in one of the compared settings.

    - native: fine-tune on `target_train`, select on `target_dev`.
    - transfer: exactly one source; fine-tune on it, select on its `source_dev` (zero-shot: no target labels).
    - multi_source: fine-tune on all sources, balanced per source when `options.balanced_sampling` (see
      `fine_tune`), else concatenated; select on the concatenated source dev sets.
    - distill: one teacher per source (fine-tuned from a copy of `model`'s initial weights, or `teachers` given
      in `source_train` order, e.g. cached transfer models), weights uniform or `similarity_weights` over
      `target_unlabeled` vs the source train text; the student (`model`) learns from them on
      `target_unlabeled`. No target labels: no dev selection for the student.
      The student: `options.distill_epochs` epochs (at least `options.distill_min_steps` steps), loss
      `options.distill_loss`, embeddings + bottom `options.distill_freeze` layers frozen; teachers: `epochs`.
    - tapt: `mlm_adapt` on `target_unlabeled` for `options.tapt_steps`, then fine-tune on the source(s) as in
      transfer/multi_source; `info["tapt_head"]` says whether the masked-LM head was pretrained or new and
      `info["tapt_note"]` carries the message to show when it was new (e5-small).
    `options.robust` applies to every training stage (teachers and student included), and so does
    `options.adapter = "lora"` (not with tapt, whose masked-LM stage changes every encoder weight):
    `info["adapter"]` then describes the adapter of the final model (r, targets, trainable parameters, bytes).

    Args:
        setting: one of SETTINGS.
        model: the initial token classifier (trained in place and returned in the result).
        tokenizer: its tokenizer.
        source_train: source language -> labeled train sentences.
        target_train: labeled target train sentences (native).
        target_dev: labeled target dev sentences (native, tapt-free native selection).
        target_unlabeled: target sentences whose tags are ignored (distill, tapt).
        source_dev: source language -> labeled dev sentences (optional model selection for source training).
        teachers: already-trained teachers for distill (skips teacher training).
        options: the run's training options (the experiment config's, with `lr` resolved: see
            `xner_core.runs.config.resolved_lr`); its data-selection fields are the caller's and ignored
            here (see `fine_tune`, `distill`, `mlm_adapt` for the rest).
        seed: the run's seed.
        progress: `progress(step, total, info)`; steps restart for each stage, named in `info["stage"]`.
        device: torch device (auto when None).
        precision: auto, bf16 or fp32 autocast for every stage (`numerics`).

    Returns:
        The final model's `TrainResult`; `train_seconds` sums all stages and `info` has the per-stage seconds
        (plus distillation weights / teacher results where relevant).
    """
    if setting not in SETTINGS:
        raise ConfigError(choices_message("setting", setting, SETTINGS))
    distill_weights = options.distill_weights
    if distill_weights not in DISTILL_WEIGHTS:
        raise ConfigError(choices_message("distillation weighting", distill_weights, DISTILL_WEIGHTS))
    if options.lr is None:
        raise ConfigError("lr is None; resolve the model's default first (xner_core.runs.config.resolved_lr)")
    lr = options.lr
    lora = lora_spec(options)
    if lora is not None and setting == "tapt":
        raise ConfigError("adapter 'lora' does not combine with setting 'tapt': its masked-LM stage changes every "
                          "encoder weight, so the adapter would not apply to the pretrained model; use adapter "
                          "'none' with tapt, or lora with native, transfer, multi_source or distill")
    sources = dict(source_train or {})
    common = dict(epochs=options.epochs, lr=lr, batch_size=options.batch_size, warmup_ratio=options.warmup_ratio,
                  weight_decay=options.weight_decay, max_length=options.max_length, seed=seed,
                  early_stopping_patience=options.early_stopping_patience,
                  freeze_embeddings=options.freeze_embeddings, robust=options.robust,
                  robust_epsilon=options.robust_epsilon, robust_rate=options.robust_rate,
                  robust_steps=options.robust_steps, robust_alpha=options.robust_alpha,
                  robust_neighbours=options.robust_neighbours, progress=progress, device=device,
                  precision=precision, lora=lora, max_steps=options.max_steps)

    def source_dev_for(langs: Sequence[str]) -> list[Sentence] | None:
        dev = _concat((source_dev or {}).get(lang, ()) for lang in langs)
        return dev or None

    def need_sources(minimum: int, exact: bool = False) -> list[str]:
        langs = [lang for lang, sents in sources.items() if len(sents) > 0]
        if len(langs) < minimum or (exact and len(langs) != minimum):
            want = f"exactly {minimum}" if exact else f"at least {minimum}"
            raise ConfigError(f"setting {setting!r} needs {want} source language(s) with training sentences; "
                              f"got {sorted(sources)}")
        return langs

    def train_on_sources(m: Any, langs: list[str], stage: str) -> TrainResult:
        dev = source_dev_for(langs)
        if len(langs) > 1 and options.balanced_sampling:
            return fine_tune(m, tokenizer, [], dev, balanced_groups=[sources[lang] for lang in langs],
                             stage=stage, **common)
        return fine_tune(m, tokenizer, _concat(sources[lang] for lang in langs), dev, stage=stage, **common)

    t0 = time.perf_counter()
    if setting == "native":
        if not target_train:
            raise DataError("setting 'native' needs labeled target training sentences (target_train)")
        res = fine_tune(model, tokenizer, target_train, target_dev or None, stage="native", **common)
        info: dict[str, Any] = {"fine_tune_seconds": res.train_seconds}
        train_seconds = res.train_seconds
    elif setting == "transfer":
        res = train_on_sources(model, need_sources(1, exact=True), "transfer")
        info = {"fine_tune_seconds": res.train_seconds}
        train_seconds = res.train_seconds
    elif setting == "multi_source":
        res = train_on_sources(model, need_sources(1), "multi_source")
        info = {"fine_tune_seconds": res.train_seconds, "balanced": options.balanced_sampling and len(sources) > 1}
        train_seconds = res.train_seconds
    elif setting == "tapt":
        if not target_unlabeled:
            raise DataError("setting 'tapt' needs unlabeled target sentences (target_unlabeled)")
        langs = need_sources(1)
        t_mlm = time.perf_counter()
        tapt_stats: dict[str, Any] = {}
        mlm_adapt(model, tokenizer, target_unlabeled, steps=options.tapt_steps, lr=lr,
                  batch_size=options.batch_size, seed=seed, max_length=options.max_length,
                  warmup_ratio=options.warmup_ratio, weight_decay=options.weight_decay,
                  progress=progress, device=device, precision=precision, stats=tapt_stats)
        tapt_seconds = time.perf_counter() - t_mlm
        res = train_on_sources(model, langs, "fine-tune")
        info = {"tapt_seconds": tapt_seconds, "tapt_steps": options.tapt_steps,
                "tapt_head": tapt_stats.get("head"), "tapt_note": tapt_stats.get("note"),
                "tapt_sentences": len(target_unlabeled), "tapt_epochs": tapt_stats.get("epochs"),
                "fine_tune_seconds": res.train_seconds}
        train_seconds = tapt_seconds + res.train_seconds
    else:  # distill
        if not target_unlabeled:
            raise DataError("setting 'distill' needs unlabeled target sentences (target_unlabeled)")
        langs = need_sources(1) if teachers is None or distill_weights == "similarity" else list(sources)
        teacher_results: dict[str, TrainResult] = {}
        if teachers is None:
            initial = copy.deepcopy(model).cpu()
            trained = []
            for lang in langs:
                res_t = train_on_sources(copy.deepcopy(initial), [lang], f"teacher {lang}")
                teacher_results[lang] = res_t
                trained.append(res_t.model)
            teachers = trained
        elif distill_weights == "similarity" and len(teachers) != len(langs):
            raise ConfigError(f"got {len(teachers)} teachers but {len(langs)} source languages; give one teacher "
                              f"per source, in source_train order")
        weights = (similarity_weights(target_unlabeled, {lang: sources[lang] for lang in langs})
                   if distill_weights == "similarity" else None)
        student = {**common, "epochs": options.distill_epochs}
        res = distill(model, tokenizer, teachers, target_unlabeled, weights=weights,
                      temperature=options.distill_temperature, loss=options.distill_loss,
                      freeze_layers=options.distill_freeze, min_steps=options.distill_min_steps, **student)
        info = dict(res.info)
        info.update({
            "teacher_languages": tuple(langs),
            "teacher_seconds": {lang: r.train_seconds for lang, r in teacher_results.items()},
            "teacher_dev_f1": {lang: r.best_dev_f1 for lang, r in teacher_results.items()},
            "student_seconds": res.train_seconds,
        })
        train_seconds = (res.train_seconds + info["teacher_pass_seconds"]
                         + sum(r.train_seconds for r in teacher_results.values()))
    # Wall time including dev evaluation, encoding and model copies, next to the optimisation-only figure.
    info["total_seconds"] = time.perf_counter() - t0
    info["precision"] = res.info.get("precision", resolve_precision(precision, device))
    for key in ("trainable_parameters", "adapter"):
        if key in res.info:
            info.setdefault(key, res.info[key])
    return TrainResult(res.model, res.history, train_seconds, res.sentences_per_second, res.best_dev_f1,
                       res.best_epoch, res.steps, info)
