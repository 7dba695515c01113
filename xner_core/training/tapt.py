"""Stage 3b, target-adaptive pretraining (TAPT): masked-LM steps of the encoder on unlabeled target text, copied
back into the token classifier (the `tapt` setting then fine-tunes it on the source languages).

After Gururangan et al. (ACL 2020, "Don't Stop Pretraining"): continue the model's own masked-LM objective on the
task's unlabeled text. The masked-LM model starts from the model's PRETRAINED masked-LM head where the checkpoint
has one (mBERT's `cls.predictions`, XLM-R's `lm_head`: `AutoModelForMaskedLM.from_pretrained` of the location the
token classifier was loaded from, `masked_lm_for`); only the encoder weights are taken from the token classifier.
e5-small has no masked-LM head (it is a sentence-embedding model; its checkpoint holds the encoder only), and
neither has the in-code `tiny` model: there the head is new (randomly initialised, the decoder tied to the word
embeddings) and `FRESH_HEAD_NOTE` says so in the run's info (manifest `train_info.tapt_note`) and the log;
`tapt_head_note` is the sentence the dashboard shows wherever the `tapt` setting appears.

Steps and text: `TrainOptions.tapt_steps` AdamW steps (batches of `batch_size` windows, the run's learning rate,
linear warmup/decay, BERT's 15 % masking with 80/10/10 replacement), cycling over the unlabeled target text that
`TrainOptions.distill_unlabeled` names (`evaluation.inputs.unlabeled_target`: the target's train split, its
`extra` split or both, labels removed; never its test sentences). Gururangan et al. run 100 epochs over the task
text; our presets use a step budget CPUs can afford (see `presets/tapt.toml`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from typing import Any, Sequence

from xner_core.corpus.sentences import Sentence
from xner_core.corpus.tags import LABELS
from xner_core.errors import ConfigError, DataError
from xner_core.numerics import autocast, deterministic, resolve_device, resolve_precision
from xner_core.training.encoding import (
    IGNORE_INDEX,
    _collate,
    _epoch_order,
    _epoch_seed,
    _pad_id,
    encode_for_training,
    length_grouped_batches,
)
from xner_core.training.loop import _optimizer
from xner_core.training.settings import ProgressFn

log = logging.getLogger(__name__)

FRESH_HEAD_NOTE = ("this model has no pretrained masked-LM head (e5-small and tiny have none): TAPT trained a "
                   "freshly initialised head together with the encoder")
# Built-in models and the masked-LM head TAPT starts from (a checkpoint directory: its run's manifest says which).
PRETRAINED_HEADS: dict[str, str] = {"mbert": "mBERT's cls.predictions", "bert-base-multilingual-cased":
                                    "mBERT's cls.predictions", "xlmr": "XLM-R's lm_head",
                                    "xlm-roberta-base": "XLM-R's lm_head"}
NO_HEAD_REASONS: dict[str, str] = {"e5-small": "a sentence-embedding model: its checkpoint holds the encoder only",
                                   "tiny": "a random model built in code"}
_OTHERS = "mBERT and XLM-R would start from their pretrained masked-LM heads"


def tapt_head_note(model: str, head: str | None = None) -> str:
    """The sentence the dashboard shows wherever the `tapt` setting appears: which masked-LM head TAPT used.

    Args:
        model: a model name ("e5-small", "mbert", a hub id) or checkpoint directory.
        head: the run's own record (`train_info.tapt_head` of its manifest: "pretrained" | "fresh") when known;
            None infers it from the model name.

    Returns:
        e.g. "TAPT with e5-small trains a freshly initialised masked-LM head with the encoder: e5-small has no
        pretrained one (...). mBERT and XLM-R would start from their pretrained masked-LM heads."
    """
    recorded = " (as the run's manifest records)" if head is not None else ""
    if head is None:
        head = "fresh" if model in NO_HEAD_REASONS else "pretrained" if model in PRETRAINED_HEADS else None
    if head == "fresh":
        why = f" ({NO_HEAD_REASONS[model]})" if model in NO_HEAD_REASONS else ""
        return (f"TAPT with {model} trains a freshly initialised masked-LM head with the encoder{recorded}: {model} "
                f"has no pretrained one{why}. {_OTHERS}.")
    if head == "pretrained":
        which = PRETRAINED_HEADS.get(model, "the checkpoint's pretrained masked-LM head")
        return (f"TAPT with {model} starts from its pretrained masked-LM head ({which}){recorded}. e5-small has none "
                "and trains a fresh head.")
    return (f"TAPT with {model} starts from the checkpoint's pretrained masked-LM head where it has one, else from a "
            "fresh head (the model's manifest says which: train_info.tapt_head). e5-small has none and trains a "
            f"fresh head; {_OTHERS}.")


def masked_lm_for(model: Any, seed: int = 0) -> tuple[Any, str]:
    """The masked-LM model TAPT trains: the pretrained head of the model's checkpoint when it has one.

    Args:
        model: a `*ForTokenClassification` loaded with `from_pretrained` (its `name_or_path` names the checkpoint)
            or built in code.
        seed: seeds the initialisation of a new head.

    Returns:
        (masked-LM model holding `model`'s encoder weights, "pretrained" | "fresh"): "pretrained" when every
        head weight came from the checkpoint, "fresh" when the checkpoint has no masked-LM head (e5-small), the
        model was built in code (tiny) or the checkpoint cannot be read as a masked LM.
    """
    import torch
    from transformers import AutoModelForMaskedLM

    location = str(getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "") or "")
    mlm = None
    head = "fresh"
    if location:
        torch.manual_seed(seed)
        try:
            mlm, info = AutoModelForMaskedLM.from_pretrained(location, output_loading_info=True)
        except (OSError, ValueError, KeyError):
            mlm = None
        if mlm is not None:
            prefix = mlm.base_model_prefix + "."
            missing = [k for k in info.get("missing_keys", ()) if not k.startswith(prefix)]
            head = "fresh" if missing else "pretrained"
    if mlm is None:
        torch.manual_seed(seed)
        mlm = AutoModelForMaskedLM.from_config(copy.deepcopy(model.config))
    _copy_encoder(model, mlm)
    return mlm, head


def _copy_encoder(src: Any, dst: Any) -> None:
    """Copy the shared encoder (`base_model`) weights from one head model into another of the same config."""
    state = src.base_model.state_dict()
    missing, unexpected = dst.base_model.load_state_dict(state, strict=False)
    bad = [k for k in list(missing) + list(unexpected) if not k.startswith("pooler.")]
    if bad:
        raise ConfigError(f"encoder weights do not match between {type(src).__name__} and {type(dst).__name__}: "
                          f"{bad[:5]}")


def _mask_tokens(ids: Any, mask: Any, special: Any, mask_id: int, vocab: int, prob: float,
                 generator: Any) -> tuple[Any, Any]:
    """BERT masking: pick `prob` of real non-special positions (at least one per row); 80 % -> mask token,
    10 % -> random id, 10 % unchanged. Returns (masked ids, labels with -100 off the picked positions)."""
    import torch

    eligible = mask.bool() & ~torch.isin(ids, special)
    picked = (torch.rand(ids.shape, generator=generator) < prob) & eligible
    # Guarantee one target per row with any eligible position, so no batch has an empty loss.
    empty = ~picked.any(dim=1) & eligible.any(dim=1)
    if empty.any():
        scores = torch.rand(ids.shape, generator=generator) * eligible
        first = scores.argmax(dim=1)
        rows = torch.nonzero(empty).flatten()
        picked[rows, first[rows]] = True
    labels = torch.where(picked, ids, torch.full_like(ids, IGNORE_INDEX))
    roll = torch.rand(ids.shape, generator=generator)
    randoms = torch.randint(vocab, ids.shape, generator=generator)
    out = torch.where(picked & (roll < 0.8), torch.full_like(ids, mask_id), ids)
    out = torch.where(picked & (roll >= 0.8) & (roll < 0.9), randoms, out)
    return out, labels


def mlm_adapt(
    model: Any,
    tokenizer: Any,
    unlabeled: Sequence[Sentence],
    *,
    steps: int,
    lr: float = 5e-5,
    batch_size: int = 16,
    mask_prob: float = 0.15,
    seed: int = 0,
    max_length: int = 128,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.0,
    labels: Sequence[str] = LABELS,
    progress: ProgressFn | None = None,
    device: Any = None,
    precision: str = "auto",
    stats: dict[str, Any] | None = None,
) -> Any:
    """Target-adaptive pretraining: masked-LM steps on target text, then back to a token classifier.

    The masked-LM model is `masked_lm_for(model)` (the checkpoint's pretrained MLM head where it has one, else a
    new head; from a directory, that directory's) with the token classifier's encoder weights. After `steps` AdamW
    steps the adapted encoder weights are copied into the token classifier.

    Args:
        model: a `*ForTokenClassification` (adapted in place and returned) or a model directory / hub id (a new
            token classifier over `labels` is returned).
        tokenizer: its tokenizer (needs a mask token).
        unlabeled: target-language sentences (tags ignored); cycled until `steps` is reached.
        steps: optimiser steps (0 returns the model unchanged).
        lr, batch_size, warmup_ratio, weight_decay: AdamW with linear warmup/decay, grad clipping 1.0.
        mask_prob: fraction of real sub-tokens predicted per sequence (BERT 80/10/10 replacement).
        seed: seeds the MLM head init, the batch order and the masks.
        max_length: most sub-tokens per window.
        labels: label list for the token classifier built from a directory.
        progress: `progress(step, steps, info)` after each step, info with stage "tapt", loss, lr, elapsed.
        device: torch device (auto when None).
        stats: filled (when given) with `head` ("pretrained" | "fresh"), `note` (`FRESH_HEAD_NOTE` or None),
            `steps`, `windows` (unlabeled windows cycled over) and `epochs` (passes over them, the last partial).

    Returns:
        The token classifier with the adapted encoder, in eval mode.
    """
    import torch
    from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification, get_linear_schedule_with_warmup

    if steps < 0:
        raise ConfigError(f"tapt steps must be >= 0, got {steps}")
    if tokenizer.mask_token_id is None:
        raise ConfigError("masked-LM adaptation needs a tokenizer with a mask token")
    if not 0 < mask_prob < 1:
        raise ConfigError(f"mask_prob must be in (0, 1), got {mask_prob}")
    from_dir = isinstance(model, (str, os.PathLike))
    if steps == 0 and not from_dir:
        model.eval()
        return model
    torch.manual_seed(seed)
    if from_dir:
        mlm, info = AutoModelForMaskedLM.from_pretrained(str(model), output_loading_info=True)
        prefix = mlm.base_model_prefix + "."
        kind = "fresh" if any(not k.startswith(prefix) for k in info.get("missing_keys", ())) else "pretrained"
    else:
        mlm, kind = masked_lm_for(model, seed)
    if kind == "fresh":
        log.warning("tapt: %s", FRESH_HEAD_NOTE)
    report = {"head": kind, "note": FRESH_HEAD_NOTE if kind == "fresh" else None, "steps": steps, "windows": 0,
              "epochs": 0}
    if stats is not None:
        stats.update(report)
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    if steps > 0:
        windows = [e for e in encode_for_training(unlabeled, tokenizer, None, max_length) if len(e) > 2]
        if not windows:
            raise DataError("masked-LM adaptation needs non-empty unlabeled target sentences")
        mlm.to(dev)
        mlm.train()
        optimizer = _optimizer(mlm, lr, weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * steps), steps)
        special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        vocab = min(len(tokenizer), int(mlm.config.vocab_size))
        head = getattr(mlm, "cls", None)
        if head is None:
            head = getattr(mlm, "lm_head", None)
        lengths = [len(e) for e in windows]
        params = [p for p in mlm.parameters() if p.requires_grad]
        with deterministic():  # the same seed gives the same adapted encoder in any process
            step, epoch, t_start = 0, 0, time.perf_counter()
            while step < steps:
                gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
                for batch in length_grouped_batches(_epoch_order(len(windows), None, gen), lengths, batch_size, gen):
                    if step >= steps:
                        break
                    ids, mask, _ = _collate([windows[i] for i in batch], _pad_id(tokenizer))
                    inputs, targets = _mask_tokens(ids, mask, special, tokenizer.mask_token_id, vocab, mask_prob, gen)
                    inputs, mask, targets = inputs.to(dev), mask.to(dev), targets.to(dev)
                    with autocast(dev, precision):
                        if head is not None:
                            # Predict only the masked positions: full-vocabulary logits for every position
                            # (250k pieces for XLM-R vocabularies) would dominate time and memory.
                            hidden = mlm.base_model(input_ids=inputs, attention_mask=mask)[0]
                            sel = targets != IGNORE_INDEX
                            logits = head(hidden[sel]).float()
                            loss = torch.nn.functional.cross_entropy(logits, targets[sel])
                        else:
                            loss = mlm(input_ids=inputs, attention_mask=mask, labels=targets).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    lr_used = scheduler.get_last_lr()[0]
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    if progress is not None:
                        progress(step, steps, {"stage": "tapt", "epoch": epoch + 1, "loss": float(loss.detach()),
                                               "lr": lr_used,
                                               "elapsed": time.perf_counter() - t_start})
                epoch += 1
        if stats is not None:
            stats.update(windows=len(windows), epochs=epoch)
        mlm.to("cpu")
    if from_dir:
        torch.manual_seed(seed)
        target = AutoModelForTokenClassification.from_pretrained(
            str(model), num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)})
    else:
        target = model
    target.to("cpu")
    _copy_encoder(mlm, target)
    target.eval()
    return target
