"""Stage 3b, training objective: the loss one optimiser step minimises, plain or robust.

Hard labels: cross-entropy on the labeled (first sub-token) positions. Soft labels (distillation, `soft_loss`):
Wu et al.'s (ACL 2020) mean squared error between the student's and the teachers' label probabilities, or
T^2 * KL(teacher || student).

Huang et al. (EMNLP 2021) robust training changes a step in one of four ways (`settings.ROBUST_METHODS`):
- `fgm` (also "adversarial"): the loss at the word embeddings plus the loss at a one-step, L2-normalised
  gradient perturbation of them (`_adversarial_step`);
- `pgd`: Madry et al.'s min-max objective: K steps of projected gradient ascent on a perturbation of the input
  word embeddings inside a per-sequence L2 ball of radius epsilon, then the loss at the perturbed embeddings
  (`_pgd_delta`, `_pgd_step`). The authors' repository (uclanlp/Robust-XLT) publishes only randomized smoothing;
  the ball is L2 (over the real positions of a sequence, as FreeLB and our FGM), and the perturbation starts at
  zero (deterministic: the first step is FGM's);
- `subtoken-noise` (also "smoothing"): random sub-tokens replaced by random vocabulary ids (`_smooth_ids`);
- `word-smoothing`: Huang et al.'s randomized smoothing with data augmentation, word-level: each word is replaced
  with probability `robust_rate` by one of its k nearest neighbours (`_smooth_words`; the neighbour table is
  `neighbours.neighbour_table`).
"""

from __future__ import annotations

from typing import Any

from xner_core.numerics import autocast
from xner_core.training.encoding import IGNORE_INDEX
from xner_core.training.settings import _Spec


def soft_loss(student_logits: Any, teacher_logprobs: Any, kind: str, temperature: float = 1.0) -> Any:
    """The distillation loss of student logits against the teachers' averaged log-probabilities.

    Args:
        student_logits: (positions, labels) float logits at the student's labeled positions.
        teacher_logprobs: (positions, labels) log of the weighted average of the teachers' probabilities.
        kind: "mse": mean over positions and labels of (softmax(z / T) - p_teacher)^2, Wu et al.'s loss
            (`torch.nn.MSELoss(reduction="mean")` on probabilities; they use T = 1); "kl":
            T^2 * KL(p_teacher || softmax(z / T)) averaged over positions (T^2 keeps the gradient size independent
            of T, Hinton et al.).
        temperature: T.

    Returns:
        A scalar tensor.
    """
    import torch.nn.functional as F

    if kind == "mse":
        return F.mse_loss(F.softmax(student_logits / temperature, dim=-1), teacher_logprobs.exp())
    student = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(student, teacher_logprobs, log_target=True, reduction="batchmean") * temperature ** 2


def _task_loss(model: Any, ids: Any, mask: Any, labels: Any, soft: Any, temperature: float,
               embeds: Any = None, soft_kind: str = "kl") -> Any:
    """Hard labels: cross-entropy on labeled positions. Soft: `soft_loss` at the labeled positions."""
    import torch.nn.functional as F

    if embeds is None:
        logits = model(input_ids=ids, attention_mask=mask).logits
    else:
        logits = model(inputs_embeds=embeds, attention_mask=mask).logits
    logits = logits.float()
    if soft is None:
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=IGNORE_INDEX)
    return soft_loss(logits[labels != IGNORE_INDEX], soft, soft_kind, temperature)


def _smooth_ids(ids: Any, mask: Any, special: Any, candidates: Any, rate: float, generator: Any) -> Any:
    """Sub-token noise: replace a fraction `rate` of real, non-special sub-tokens by random vocabulary ids."""
    import torch

    eligible = mask.bool() & ~torch.isin(ids, special)
    hit = (torch.rand(ids.shape, generator=generator) < rate) & eligible
    draws = candidates[torch.randint(len(candidates), ids.shape, generator=generator)]
    return torch.where(hit, draws, ids)


def single_piece_words(labels: Any, mask: Any) -> Any:
    """Positions holding a whole word in one sub-token: a labeled (first) piece followed by another word's first
    piece or by the closing special token. Boolean tensor of the batch's shape."""
    import torch

    first = labels != IGNORE_INDEX
    next_first = torch.zeros_like(first)
    next_first[:, :-1] = first[:, 1:]
    pos = torch.arange(labels.shape[1], device=labels.device).unsqueeze(0)
    next_is_closing = (pos + 1) == (mask.sum(dim=1, keepdim=True) - 1)
    return first & (next_first | next_is_closing) & mask.bool()


def _smooth_words(ids: Any, labels: Any, mask: Any, table: Any, rate: float, generator: Any) -> Any:
    """Word-level randomized smoothing: each one-piece word with neighbours is replaced, with probability `rate`,
    by one of its neighbours drawn uniformly (`table[id]`, -1 = no neighbours). Labels stay with the position.

    Huang et al.'s `perturb.py` draws uniformly from {word} + its neighbours for every word, i.e. a rate of
    k / (k + 1) with each neighbour equally likely; `rate = k / (k + 1)` reproduces it exactly.
    """
    import torch

    rows = table[ids.clamp_max(table.shape[0] - 1)]  # (B, L, k); ids beyond the table have no neighbours
    has = (rows[..., 0] >= 0) & (ids < table.shape[0])
    pick = torch.randint(table.shape[1], ids.shape, generator=generator)
    draws = rows.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
    hit = (torch.rand(ids.shape, generator=generator) < rate) & single_piece_words(labels, mask) & has
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
        clean = _task_loss(model, ids, mask, labels, soft, spec.temperature, embeds=embeds, soft_kind=spec.soft_loss)
    (grad,) = torch.autograd.grad(clean, embeds, retain_graph=True)
    grad = grad.float() * mask.unsqueeze(-1).float()
    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    delta = (spec.robust_epsilon * grad / norm).to(embeds.dtype).detach()
    with autocast(device, precision):
        adv = _task_loss(model, ids, mask, labels, soft, spec.temperature, embeds=embeds + delta,
                         soft_kind=spec.soft_loss)
    (clean + adv).backward()
    return clean


def project_l2(delta: Any, epsilon: float) -> Any:
    """Project each sequence's perturbation (B, L, d) onto the L2 ball of radius `epsilon` (per sequence)."""
    norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
    return delta * (epsilon / norm.clamp_min(epsilon))


def _pgd_delta(model: Any, ids: Any, mask: Any, labels: Any, soft: Any, spec: _Spec, device: Any,
               precision: str) -> Any:
    """K steps of projected gradient ascent on the embedding perturbation (float32, zero on padding).

    delta_0 = 0; delta_{t+1} = Proj_{||.||_2 <= epsilon}(delta_t + alpha * g_t / ||g_t||_2), g_t = dL/d delta at
    e + delta_t, norms per sequence over its real positions; alpha = `robust_alpha` or 2.5 * epsilon / K.
    Model weights get no gradient here (only delta does).
    """
    import torch

    steps = spec.robust_steps
    alpha = spec.robust_alpha if spec.robust_alpha is not None else 2.5 * spec.robust_epsilon / steps
    base = model.get_input_embeddings()(ids).detach()
    real = mask.unsqueeze(-1).float()
    delta = torch.zeros(base.shape, dtype=torch.float32, device=base.device)
    for _ in range(steps):
        delta.requires_grad_(True)
        with autocast(device, precision):
            loss = _task_loss(model, ids, mask, labels, soft, spec.temperature, embeds=base + delta.to(base.dtype),
                              soft_kind=spec.soft_loss)
        (grad,) = torch.autograd.grad(loss, delta)
        grad = grad.float() * real
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
        delta = project_l2((delta.detach() + alpha * grad / norm) * real, spec.robust_epsilon)
    return delta.detach()


def _pgd_step(model: Any, ids: Any, mask: Any, labels: Any, soft: Any, spec: _Spec, device: Any,
              precision: str) -> Any:
    """PGD adversarial training: backpropagate L(e + delta_K) (`_pgd_delta`); returns that loss for logging."""
    delta = _pgd_delta(model, ids, mask, labels, soft, spec, device, precision)
    embeds = model.get_input_embeddings()(ids)  # not detached: the embedding matrix learns from the attacked loss
    with autocast(device, precision):
        adv = _task_loss(model, ids, mask, labels, soft, spec.temperature, embeds=embeds + delta.to(embeds.dtype),
                         soft_kind=spec.soft_loss)
    adv.backward()
    return adv
