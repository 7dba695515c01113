"""Tests for xner_core.training.rowadam: the row-sparse AdamW gives torch.optim.AdamW's result on an embedding matrix."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xner_core.training.rowadam import RowAdamW

torch.set_num_threads(1)

VOCAB, DIM = 40, 6


class Toy(torch.nn.Module):
    """An embedding (padding row 0) and a linear read-out: enough to give rows gradients of any shape."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Embedding(VOCAB, DIM, padding_idx=0)
        self.out = torch.nn.Linear(DIM, 3)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(VOCAB, DIM, generator=g))
            self.emb.weight[0].zero_()
            self.out.weight.copy_(torch.randn(3, DIM, generator=g))
            self.out.bias.copy_(torch.randn(3, generator=g))

    def loss(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        return (self.out(h).tanh() * torch.arange(1.0, 4.0)).sum() / ids.numel()


def _run(batches: list[torch.Tensor], lrs: list[float], weight_decay: float, rows_mode: bool) -> torch.Tensor:
    model = Toy(seed=0)
    model.out.weight.requires_grad_(False)
    model.out.bias.requires_grad_(False)
    if rows_mode:
        opt = RowAdamW(model.emb, weight_decay=weight_decay)
        opt.attach()
        for ids, lr in zip(batches, lrs):
            opt.begin(ids)
            model.loss(ids).backward()
            opt.step(lr)
        opt.detach()
    else:
        dense = torch.optim.AdamW([model.emb.weight], lr=1.0, eps=1e-8, weight_decay=weight_decay)
        for ids, lr in zip(batches, lrs):
            dense.param_groups[0]["lr"] = lr
            model.loss(ids).backward()
            dense.step()
            dense.zero_grad(set_to_none=True)
    return model.emb.weight.detach().clone()


batch_st = st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=12).map(lambda xs: torch.tensor([xs]))


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(batch_st, min_size=1, max_size=8),
       lr=st.floats(1e-4, 5e-2), weight_decay=st.sampled_from([0.0, 0.01, 0.3]))
def test_equals_dense_adamw_for_any_sequence_of_batches(batches, lr, weight_decay):
    # Rows used once keep moving while their moments decay; unused rows only decay: both as in dense AdamW.
    lrs = [lr * (1 + i % 3) / 3 for i in range(len(batches))]
    dense = _run(batches, lrs, weight_decay, rows_mode=False)
    rows = _run(batches, lrs, weight_decay, rows_mode=True)
    assert torch.allclose(rows, dense, rtol=1e-5, atol=1e-6)


def test_rows_absent_from_a_batch_still_move_and_unused_rows_never_do():
    model = Toy(seed=1)
    before = model.emb.weight.detach().clone()
    opt = RowAdamW(model.emb)
    opt.attach()
    snapshots = []
    for ids in (torch.tensor([[3, 4]]), torch.tensor([[5]]), torch.tensor([[5]])):
        opt.begin(ids)
        model.loss(ids).backward()
        opt.step(1e-2)
        snapshots.append(opt.weight.detach().clone())
    after = snapshots[-1]
    moved = (after != before).any(dim=1)
    assert moved[[3, 4, 5]].all()
    # 3 and 4 keep moving in steps 2-3 without a gradient (their momentum), as in dense AdamW, not LazyAdam.
    assert (snapshots[2][[3, 4]] != snapshots[0][[3, 4]]).all()
    assert not moved[[i for i in range(VOCAB) if i not in (3, 4, 5)]].any()
    assert opt.n_active == 3
    opt.detach()


def test_padding_row_gets_no_update_and_hook_is_removed():
    model = Toy(seed=2)
    opt = RowAdamW(model.emb)
    assert model.emb.weight.requires_grad
    opt.attach()
    assert not model.emb.weight.requires_grad
    ids = torch.tensor([[7, 0, 0]])
    opt.begin(ids)
    model.loss(ids).backward()
    opt.step(1e-2)
    assert torch.equal(model.emb.weight[0], torch.zeros(DIM))
    opt.detach()
    assert model.emb.weight.requires_grad
    # With the hook gone the module is a plain lookup again: gradients flow to its weight.
    model.loss(torch.tensor([[7]])).backward()
    assert model.emb.weight.grad is not None


def test_weight_decay_of_unused_rows_is_applied_by_flush():
    model = Toy(seed=3)
    before = model.emb.weight.detach().clone()
    opt = RowAdamW(model.emb, weight_decay=0.5)
    opt.attach()
    for _ in range(2):
        ids = torch.tensor([[1]])
        opt.begin(ids)
        model.loss(ids).backward()
        opt.step(0.1)
    assert torch.equal(model.emb.weight[2], before[2])  # deferred
    opt.flush()
    assert torch.allclose(model.emb.weight[2], before[2] * 0.95 ** 2)
    opt.detach()


def test_step_before_begin_is_an_error():
    opt = RowAdamW(Toy(seed=4).emb)
    with pytest.raises(RuntimeError, match="before begin"):
        opt.step(1e-3)


def test_moment_buffers_grow_past_their_capacity_and_stay_exact():
    # 3000 rows, 700 new ids a step: the buffers start at 1024 slots and are doubled twice on the way.
    g = torch.Generator().manual_seed(5)
    emb_dense = torch.nn.Embedding(3000, 4)
    with torch.no_grad():
        emb_dense.weight.copy_(torch.randn(3000, 4, generator=g))
    emb_rows = torch.nn.Embedding(3000, 4)
    with torch.no_grad():
        emb_rows.weight.copy_(emb_dense.weight)
    batches = [torch.randperm(3000, generator=g)[:700].view(1, -1) for _ in range(5)]
    dense = torch.optim.AdamW([emb_dense.weight], lr=1e-2, eps=1e-8, weight_decay=0.1)
    rows = RowAdamW(emb_rows, weight_decay=0.1)
    rows.attach()
    for ids in batches:
        (emb_dense(ids) ** 2).sum().backward()
        dense.step()
        dense.zero_grad(set_to_none=True)
        rows.begin(ids)
        (emb_rows(ids) ** 2).sum().backward()
        rows.step(1e-2)
    rows.detach()
    assert rows.n_active == len(torch.unique(torch.cat([b.view(-1) for b in batches])))
    assert rows._m.shape[0] >= rows.n_active > 1024
    assert torch.allclose(emb_rows.weight, emb_dense.weight, rtol=1e-5, atol=1e-6)
