"""AdamW for a large word-embedding matrix that touches only the rows it has to, with dense AdamW's result.

A multilingual encoder's word-embedding matrix dominates its parameter count (multilingual-e5-small: 250,037 x 384
= 96M of 118M parameters), but a batch of 32 sentences uses a few hundred of its rows. Dense training still
pays for all of them every step: autograd materialises a (V, d) gradient, gradient clipping reads it, and AdamW
reads and writes the weights and both moment buffers in full.

The work on rows that no batch has used yet is provably zero: their gradient has always been 0, so both Adam
moments are 0 and the Adam step `lr * m_hat / (sqrt(v_hat) + eps)` is 0. The only thing that happens to them is
the decoupled weight decay, a scalar factor per step. `RowAdamW` therefore
- gathers the batch's unique token ids into a small leaf tensor and substitutes it for the embedding module's
  output (a forward hook), so backward yields a (k, d) gradient;
- keeps the Adam moments only for the "active" rows (every row that has had a gradient so far, in the order
  they appeared) and applies AdamW's update to exactly those rows, each step, including active rows that are
  absent from the current batch (their moments still decay and they still move, as in dense AdamW);
- defers the weight decay of inactive rows: a running product, applied to a row when it becomes active and to
  all inactive rows by `flush()` (before evaluation and at the end of training).
The update formula is torch.optim.AdamW's (decoupled decay, bias-corrected moments, eps outside the square
root); results equal dense AdamW's up to floating-point rounding (tests compare the two).
"""

from __future__ import annotations

from typing import Any


class RowAdamW:
    """Row-sparse AdamW for one embedding module (`torch.nn.Embedding`) inside a model being trained.

    Use: `attach()` before training (the weight stops requiring grad, so the dense optimiser leaves it out);
    each step `begin(input_ids)` before the forward pass, `rows` into gradient clipping, `step(lr)` after
    `backward()`; `flush()` before the model is used for anything else; `detach()` at the end.

    Args:
        embedding: the model's input-embedding module (its `weight` is updated in place).
        betas, eps, weight_decay: as torch.optim.AdamW.
    """

    def __init__(self, embedding: Any, *, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        import torch

        self.embedding = embedding
        self.weight = embedding.weight
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        vocab, dim = self.weight.shape
        dev = self.weight.device
        self.slot = torch.full((vocab,), -1, dtype=torch.long, device=dev)  # row -> index into the moments
        self.active = torch.empty(0, dtype=torch.long, device=dev)  # active row ids, in slot order
        # Moment buffers with spare capacity (doubled when full), so new rows do not copy them every step.
        self._m = torch.zeros(0, dim, dtype=self.weight.dtype, device=dev)
        self._v = torch.zeros(0, dim, dtype=self.weight.dtype, device=dev)
        self.steps = 0
        self.pending_decay = 1.0  # product of (1 - lr * wd) not yet applied to the inactive rows
        self.padding_idx = getattr(embedding, "padding_idx", None)
        self.rows: Any = None  # this step's leaf: weight[unique ids], shape (k, d)
        self._inverse: Any = None
        self._unique: Any = None
        self._hook: Any = None
        self._requires_grad = bool(self.weight.requires_grad)

    @property
    def n_active(self) -> int:
        """Rows that have had a gradient so far."""
        return int(self.active.numel())

    @property
    def exp_avg(self) -> Any:
        """First moments of the active rows, in slot order (a view)."""
        return self._m[: self.n_active]

    @property
    def exp_avg_sq(self) -> Any:
        """Second moments of the active rows, in slot order (a view)."""
        return self._v[: self.n_active]

    def _reserve(self, n: int) -> None:
        import torch

        if n <= self._m.shape[0]:
            return
        cap = max(n, 2 * self._m.shape[0], 1024)
        for name in ("_m", "_v"):
            old = getattr(self, name)
            grown = torch.zeros(cap, old.shape[1], dtype=old.dtype, device=old.device)
            grown[: old.shape[0]] = old
            setattr(self, name, grown)

    def attach(self) -> None:
        """Take the weight out of autograd and start substituting the gathered rows for the module's output."""
        self.weight.requires_grad_(False)
        if self._hook is None:
            self._hook = self.embedding.register_forward_hook(self._substitute)

    def detach(self) -> None:
        """Flush the deferred decay, remove the hook and give the weight its `requires_grad` back."""
        self.flush()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.rows = self._inverse = self._unique = None
        self.weight.requires_grad_(self._requires_grad)

    def _substitute(self, module: Any, inputs: Any, output: Any) -> Any:
        if self.rows is None or not inputs or inputs[0].shape != self._inverse.shape:
            return output  # evaluation, or a call with other ids: the module's own lookup
        return self.rows[self._inverse].to(output.dtype)

    def begin(self, input_ids: Any) -> Any:
        """Gather the rows of `input_ids` for this step's forward pass; returns the leaf (also `self.rows`)."""
        import torch

        unique, inverse = torch.unique(input_ids, return_inverse=True)
        with torch.no_grad():
            new = unique[self.slot[unique] < 0]
            if new.numel():
                if self.pending_decay != 1.0:
                    self.weight[new] *= self.pending_decay
                self._reserve(self.n_active + new.numel())  # new slots are zero: fresh moments
                self.slot[new] = torch.arange(self.n_active, self.n_active + new.numel(), device=new.device)
                self.active = torch.cat([self.active, new])
        self._unique, self._inverse = unique, inverse
        self.rows = self.weight[unique].detach().requires_grad_(True)
        return self.rows

    def step(self, lr: float) -> None:
        """One AdamW step at learning rate `lr` on every active row (the gradient is `rows.grad`, 0 elsewhere)."""
        import torch

        if self.rows is None:
            raise RuntimeError("RowAdamW.step() before begin()")
        self.steps += 1
        decay = 1.0 - lr * self.weight_decay
        with torch.no_grad():
            m, v = self.exp_avg, self.exp_avg_sq
            grad = m.new_zeros(m.shape)
            if self.rows.grad is not None:
                g = self.rows.grad
                if self.padding_idx is not None:  # nn.Embedding never gives its padding row a gradient
                    g = g.masked_fill((self._unique == self.padding_idx).unsqueeze(1), 0.0)
                grad[self.slot[self._unique]] = g.to(grad.dtype)
            m.lerp_(grad, 1.0 - self.beta1)
            v.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
            bias1 = 1.0 - self.beta1 ** self.steps
            bias2_sqrt = (1.0 - self.beta2 ** self.steps) ** 0.5
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            w = self.weight[self.active]
            if decay != 1.0:
                w.mul_(decay)
            w.addcdiv_(m, denom, value=-lr / bias1)
            self.weight[self.active] = w
        if decay != 1.0:
            self.pending_decay *= decay
        self.rows = None

    def flush(self) -> None:
        """Apply the deferred weight decay to the rows that are still inactive."""
        import torch

        if self.pending_decay == 1.0:
            return
        with torch.no_grad():
            inactive = self.slot < 0
            self.weight[inactive] *= self.pending_decay
        self.pending_decay = 1.0
