"""Stage 3b, fine-tuning: train a token classifier on labeled sentences (hard labels), optionally balanced over
several source languages (`balanced_groups`)."""

from __future__ import annotations

from typing import Any, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.errors import ConfigError, DataError
from xner_core.training.encoding import IGNORE_INDEX, Encoded, encode_for_training
from xner_core.training.loop import TrainResult, _train
from xner_core.training.settings import LoraSpec, ProgressFn, _Spec


def _label2id(model: Any) -> dict[str, int]:
    mapping = dict(getattr(model.config, "label2id", {}) or {})
    if not mapping:
        raise ConfigError("the model config has no label2id; build it with labels (see xner_core.models.registry)")
    return {str(k): int(v) for k, v in mapping.items()}


def fine_tune(
    model: Any,
    tokenizer: Any,
    train: Sequence[Sentence],
    dev: Sequence[Sentence] | None = None,
    *,
    epochs: int = 1,
    lr: float = 4e-5,
    batch_size: int = 8,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.0,
    max_length: int = 128,
    seed: int = 0,
    early_stopping_patience: int | None = None,
    freeze_embeddings: bool = False,
    robust: str | None = None,
    robust_epsilon: float = 1.0,
    robust_rate: float = 0.1,
    robust_steps: int = 3,
    robust_alpha: float | None = None,
    robust_neighbours: int = 8,
    balanced_groups: Sequence[Sequence[Sentence]] | None = None,
    row_sparse_embeddings: bool = True,
    progress: ProgressFn | None = None,
    device: Any = None,
    stage: str = "fine-tune",
    precision: str = "auto",
    lora: LoraSpec | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    """Fine-tune a token classifier on labeled sentences (in place).

    Defaults are the reference study's NER values (1 epoch, batch 8, lr 4e-5, warmup 6 %, no weight decay,
    128 sub-tokens); the experiment config normally sets them all.

    Args:
        model: a `*ForTokenClassification` whose `config.label2id` covers every tag in the data.
        tokenizer: its fast tokenizer.
        train: labeled training sentences (must be empty when `balanced_groups` is given).
        dev: labeled dev sentences; when given, F1 is measured after every epoch and the best epoch's weights
            are kept.
        epochs, lr, batch_size, warmup_ratio, weight_decay: AdamW with linear warmup then linear decay.
        max_length: most sub-tokens per input; longer sentences are split into windows of whole words.
        seed: seeds dropout, shuffling, oversampling and smoothing (same seed, same device -> same weights).
        early_stopping_patience: stop after this many epochs without a dev F1 improvement (None: never stop).
        freeze_embeddings: keep the word-embedding matrix fixed (faster with large vocabularies).
        row_sparse_embeddings: update the word-embedding matrix with `rowadam.RowAdamW`, which works only on
            the rows batches have used and gives dense AdamW's result (up to rounding); False = dense AdamW
            over the whole matrix (the same weights, slower with large vocabularies).
        robust: None or a method of `settings.ROBUST_METHODS` (see `objective`): "fgm"/"adversarial" (one-step
            perturbation of the word embeddings, L2 size `robust_epsilon` per sequence, clean + perturbed loss),
            "pgd" (`robust_steps` projected ascent steps of size `robust_alpha` inside the L2 ball of radius
            `robust_epsilon`, loss at the perturbed embeddings), "subtoken-noise"/"smoothing" (each real
            sub-token replaced by a random vocabulary id with probability `robust_rate`), "word-smoothing" (each
            one-piece word replaced by one of its `robust_neighbours` nearest words with probability
            `robust_rate`; `neighbours`).
        robust_epsilon: L2 radius of the embedding perturbation per sequence (fgm, pgd).
        robust_rate: substitution rate (subtoken-noise, word-smoothing).
        robust_steps, robust_alpha: pgd's K and step size (None: 2.5 * robust_epsilon / robust_steps).
        robust_neighbours: word-smoothing's k.
        balanced_groups: one list of sentences per source language. Each epoch draws every group up to the
            size of the largest (smaller groups are oversampled, whole permutations before repeats), so each
            source contributes equally and no sentence of the largest is dropped.
        progress: called after every optimiser step as `progress(step, total, info)`, info holding `stage`,
            `epoch`, `loss` (this step), `mean_loss` (this epoch so far), `lr` (used by this step; the
            first warmup step uses 0, as transformers' schedule does) and `elapsed` seconds.
        device: torch device or name; cuda when available else cpu.
        stage: the label progress reports (e.g. "teacher es").
        precision: auto (bf16 on CUDA and on CPUs with native bf16, else fp32), bf16 or fp32 autocast
            (`numerics`); the one used is `result.info["precision"]`.
        lora: None trains every weight; a `LoraSpec` trains LoRA adapters on its target modules plus the head
            (`lora`), then merges them: `result.model` is then the merged model (the same object, adapters folded
            into its weights, the adapter attached for the model cache: `lora.adapter_of`) and
            `result.info["adapter"]` describes it.
        max_steps: exactly this many optimiser steps (epochs repeated, the last one partial, or cut), the
            schedule spanning them; None: `epochs` decide.

    Returns:
        A `TrainResult`; `result.model` is `model`, trained, in eval mode.
    """
    spec = _Spec(epochs, lr, batch_size, warmup_ratio, weight_decay, max_length, seed, early_stopping_patience,
                 freeze_embeddings, robust, robust_epsilon, robust_rate,
                 row_sparse_embeddings=row_sparse_embeddings, precision=precision, robust_steps=robust_steps,
                 robust_alpha=robust_alpha, robust_neighbours=robust_neighbours, lora=lora, max_steps=max_steps)
    label2id = _label2id(model)

    def encode(sentences: Sequence[Sentence]) -> list[Encoded]:
        # Drop windows without any labeled position (e.g. only zero-piece words): they carry no signal.
        return [e for e in encode_for_training(sentences, tokenizer, label2id, max_length)
                if any(lab != IGNORE_INDEX for lab in e.labels)]

    groups_idx: list[list[int]] | None = None
    if balanced_groups is not None:
        if len(train) > 0:
            raise ConfigError("give the training data either as `train` or as `balanced_groups` (one list per "
                              "source), not both; pass train=[] with balanced_groups")
        examples: list[Encoded] = []
        groups_idx = []
        for group in balanced_groups:
            enc = encode(group)
            groups_idx.append(list(range(len(examples), len(examples) + len(enc))))
            examples.extend(enc)
        sizes = [len(g) for g in groups_idx]
        if not sizes or min(sizes) == 0:
            raise DataError(f"balanced_groups needs one non-empty group of sentences per source; windows per "
                            f"group: {sizes}")
    else:
        examples = encode(train)
    return _train(model, tokenizer, examples, None, groups_idx, dev, spec, progress, device, stage)
