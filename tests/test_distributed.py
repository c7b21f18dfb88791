"""Losses across processes (PITFALLS 12): N CPU ranks (gloo) × B samples, each with a shard of
one fixed batch and a tiny encoder wrapped in DDP, give the loss and the parameter gradients
(after DDP's averaging) of one process holding the whole batch, for every batch-contrastive
loss, with and without ``local_loss`` and with the chunked path."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

import losskit.functional as LF
from losskit import distributed as D

TOTAL = 8       # samples in the global batch
D_IN, D_OUT = 6, 4


class Encoder(nn.Module):
    """Two linear towers and a learnable log-scale and bias; ``forward`` returns exactly the
    tensors one loss needs (DDP wants every parameter used inside ``forward``)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(D_IN, D_OUT).double()
        self.b = nn.Linear(D_IN, D_OUT).double()
        self.log_scale = nn.Parameter(torch.tensor(math.log(4.0), dtype=torch.float64))
        self.bias = nn.Parameter(torch.tensor(-2.0, dtype=torch.float64))

    def forward(self, name: str, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
        x1, x2 = batch["x1"], batch["x2"]
        scale = self.log_scale.exp()
        if name == "info_nce_negatives":
            return self.a(x1), self.b(x2), self.a(batch["neg"]), scale
        if name in ("nt_xent", "supcon"):
            return self.a(x1), self.a(x2), scale
        if name == "siglip":
            return self.a(x1), self.b(x2), scale, 1.0 * self.bias  # not the parameter itself
        if name == "supcon_one_view":
            return self.a(x1), scale
        return self.a(x1), self.b(x2), scale


def _data() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(TOTAL, D_IN, generator=g, dtype=torch.float64)
    return {
        "x1": x1,
        "x2": x1 + 0.3 * torch.randn(TOTAL, D_IN, generator=g, dtype=torch.float64),
        "neg": torch.randn(TOTAL, D_IN, generator=g, dtype=torch.float64),
        # three classes for SupCon with two views; with one view labels 5 and 6 are singletons
        "labels": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]),
        "labels_single": torch.tensor([0, 1, 0, 5, 1, 6, 0, 1]),
    }


def _loss(name: str, model: nn.Module, batch: dict[str, Tensor], **kw: object) -> Tensor:
    out = model(name, batch)
    scale = out[-1] if name != "siglip" else out[2]
    temp = 1.0 / scale
    if name == "info_nce":
        return LF.info_nce_loss(out[0], out[1], temperature=temp, **kw)
    if name == "info_nce_negatives":
        return LF.info_nce_loss(out[0], out[1], negative_keys=out[2], temperature=temp, **kw)
    if name == "nt_xent":
        return LF.nt_xent_loss(out[0], out[1], temperature=temp, **kw)
    if name == "clip":
        return LF.clip_loss(out[0], out[1], logit_scale=scale, **kw)
    if name == "siglip":
        return LF.siglip_loss(out[0], out[1], logit_scale=scale, logit_bias=out[3], **kw)
    if name == "supcon":
        return LF.supcon_loss(torch.stack(out[:2], 1), batch["labels"], temperature=temp, **kw)
    if name == "supcon_one_view":
        return LF.supcon_loss(out[0][:, None], batch["labels_single"], temperature=temp, **kw)
    if name == "supcon_no_labels":
        return LF.supcon_loss(torch.stack(out[:2], 1), None, temperature=temp,
                              contrast_mode="one", **kw)
    raise KeyError(name)


NAMES = ["info_nce", "info_nce_negatives", "nt_xent", "clip", "siglip", "supcon",
         "supcon_one_view", "supcon_no_labels"]
# the chunked path with local rows (global row ids offset by rank) on every loss; the chunked
# path with all rows is the single-process one, tested in test_contrastive.py
CASES = [(n, local, None) for n in NAMES for local in (False, True)] + [(n, True, 3) for n in NAMES]


def _grads(model: nn.Module) -> dict[str, Tensor]:
    return {k: (torch.zeros_like(v) if v.grad is None else v.grad.detach().clone())
            for k, v in model.named_parameters()}


def _run_cases(rank: int, world: int, group: object | None) -> dict[str, object]:
    data = _data()
    b = TOTAL // world
    shard = {k: v[rank * b:(rank + 1) * b] for k, v in data.items()}
    out: dict[str, object] = {}
    for name, local, chunk in CASES:
        model = nn.parallel.DistributedDataParallel(Encoder(), process_group=group,
                                                    find_unused_parameters=True)
        loss = _loss(name, model, shard, gather=True, local_loss=local, chunk_size=chunk,
                     process_group=group)
        loss.backward()
        out[f"{name}/{local}/{chunk}"] = (loss.detach(), _grads(model.module))
    # the gather itself: values in rank order; backward sums the ranks' gradients
    x = torch.full((2, 3), float(rank), dtype=torch.float64, requires_grad=True)
    gathered = D.all_gather_with_grad(x, group)
    weights = torch.arange(gathered.numel(), dtype=torch.float64).reshape(gathered.shape)
    (gathered * weights).sum().backward()
    out["gather"] = (gathered.detach(), x.grad, weights)
    out["count"] = D.all_reduce_sum(torch.tensor(rank + 1.0), group)
    return out


def _worker(rank: int, folder: str) -> None:
    # One pool of 4 processes: world size 4 on the default group, world size 2 on the
    # sub-group {0, 1} (which also exercises process_group=).
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                            world_size=4)
    try:
        pair = dist.new_group([0, 1])
        results = {4: _run_cases(rank, 4, None)}
        if rank < 2:
            results[2] = _run_cases(rank, 2, pair)
        torch.save(results, os.path.join(folder, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def pool() -> list[dict[int, dict[str, object]]]:
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(folder,), nprocs=4, join=True)
        return [torch.load(os.path.join(folder, f"rank{r}.pt"), weights_only=False)
                for r in range(4)]


@pytest.fixture(params=[2, 4], ids=["world2", "world4"])
def ranks(request: pytest.FixtureRequest,
          pool: list[dict[int, dict[str, object]]]) -> tuple[int, list[dict[str, object]]]:
    world = request.param
    return world, [pool[r][world] for r in range(world)]


_REFERENCE: dict[str, tuple[Tensor, dict[str, Tensor]]] = {}


def _single_process(name: str) -> tuple[Tensor, dict[str, Tensor]]:
    if name not in _REFERENCE:
        model = Encoder()
        loss = _loss(name, model, _data())
        loss.backward()
        _REFERENCE[name] = (loss.detach(), _grads(model))
    return _REFERENCE[name]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{n}-local{l_}-chunk{c}" for n, l_, c in CASES])
def test_ranks_equal_one_process_with_the_whole_batch(
    ranks: tuple[int, list[dict[str, object]]], case: tuple[str, bool, int | None],
) -> None:
    _, results = ranks
    name, local, chunk = case
    want_loss, want_grads = _single_process(name)
    per_rank = [r[f"{name}/{local}/{chunk}"] for r in results]
    losses = torch.stack([loss for loss, _ in per_rank])  # type: ignore[misc]
    if local:
        # each rank's loss is world × its share: their mean is the global loss
        torch.testing.assert_close(losses.mean(), want_loss, rtol=1e-6, atol=1e-6)
    else:
        for loss in losses:
            torch.testing.assert_close(loss, want_loss, rtol=1e-6, atol=1e-6)
    for _, grads in per_rank:  # type: ignore[misc]
        for key, want in want_grads.items():
            torch.testing.assert_close(grads[key], want, rtol=1e-6, atol=1e-8, msg=key)
    assert any(float(g.abs().max()) > 0 for g in want_grads.values())


@pytest.mark.slow
def test_all_gather_with_grad_sums_the_ranks_gradients(
    ranks: tuple[int, list[dict[str, object]]],
) -> None:
    world, results = ranks
    for rank, r in enumerate(results):
        gathered, grad, weights = r["gather"]  # type: ignore[misc]
        want = torch.cat([torch.full((2, 3), float(s), dtype=torch.float64) for s in range(world)])
        assert torch.equal(gathered, want)
        # every rank computed Σ w·gathered: rank r's rows get world × their weights
        assert torch.equal(grad, world * weights[2 * rank:2 * rank + 2])
        assert r["count"].item() == world * (world + 1) / 2  # type: ignore[union-attr]


def test_without_a_process_group_the_helpers_are_the_identity() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    assert D.all_gather_with_grad(x) is x
    assert D.all_gather_no_grad(x) is x
    assert D.all_reduce_sum(x) is x
    assert (D.get_rank(), D.get_world_size(), D.is_distributed()) == (0, 1, False)
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    for fn in (LF.nt_xent_loss, LF.info_nce_loss):
        call: Callable[..., Tensor] = fn
        assert torch.equal(call(z1, z2, gather=True, local_loss=True), call(z1, z2))
