"""Stage 3b, training objective: the loss one optimiser step minimises, plain or robust.

Hard labels: cross-entropy on the labeled (first sub-token) positions; soft labels (distillation):
T^2 * KL(teacher || student). Huang et al. (EMNLP 2021) robust training changes a step in one of two ways:
`adversarial` adds the loss at a one-step FGM perturbation of the word embeddings (`_adversarial_step`),
`smoothing` replaces random sub-tokens of the batch before the forward pass (`_smooth_ids`).
"""

from __future__ import annotations

from typing import Any

from xner_core.numerics import autocast
from xner_core.training.encoding import IGNORE_INDEX
from xner_core.training.settings import _Spec


def _task_loss(model: Any, ids: Any, mask: Any, labels: Any, soft: Any, temperature: float,
               embeds: Any = None) -> Any:
    """Hard labels: cross-entropy on labeled positions. Soft: T^2 * KL(teacher || student) per position."""
    import torch.nn.functional as F

    if embeds is None:
        logits = model(input_ids=ids, attention_mask=mask).logits
    else:
        logits = model(inputs_embeds=embeds, attention_mask=mask).logits
    logits = logits.float()
    if soft is None:
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=IGNORE_INDEX)
    student = F.log_softmax(logits[labels != IGNORE_INDEX] / temperature, dim=-1)
    # soft holds the teachers' averaged log-probabilities; T^2 keeps gradient size independent of T (Hinton).
    return F.kl_div(student, soft, log_target=True, reduction="batchmean") * temperature ** 2


def _smooth_ids(ids: Any, mask: Any, special: Any, candidates: Any, rate: float, generator: Any) -> Any:
    """Randomized smoothing: replace a fraction `rate` of real, non-special sub-tokens by random vocabulary ids."""
    import torch

    eligible = mask.bool() & ~torch.isin(ids, special)
    hit = (torch.rand(ids.shape, generator=generator) < rate) & eligible
    draws = candidates[torch.randint(len(candidates), ids.shape, generator=generator)]
    return torch.where(hit, draws, ids)


def _adversarial_step(model: Any, ids: Any, mask: Any, labels: Any, soft: Any, spec: _Spec, device: Any,
                      precision: str) -> Any:
    """One-step embedding-space adversarial training (FGM / PGD-1), after Huang et al. 2021.

    loss = L(e) + L(e + epsilon * g / ||g||), with e the word embeddings of the batch and g = dL/de, the
    gradient normalised per sequence over its real (non-pad) positions. Returns the clean loss (for logging).
    """
    import torch

    embeds = model.get_input_embeddings()(ids)
    if not embeds.requires_grad:  # frozen embeddings: still need dL/de for the attack
        embeds = embeds.detach().requires_grad_(True)
    with autocast(device, precision):
        clean = _task_loss(model, ids, mask, labels, soft, spec.temperature, embeds=embeds)
    (grad,) = torch.autograd.grad(clean, embeds, retain_graph=True)
    grad = grad.float() * mask.unsqueeze(-1).float()
    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    delta = (spec.robust_epsilon * grad / norm).to(embeds.dtype).detach()
    with autocast(device, precision):
        adv = _task_loss(model, ids, mask, labels, soft, spec.temperature, embeds=embeds + delta)
    (clean + adv).backward()
    return clean
