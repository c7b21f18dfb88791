"""torch.distributed helpers for losses computed across processes.

* :func:`all_gather_with_grad` concatenates a tensor from every rank along dim 0 and carries the
  gradient back: its backward sums the incoming gradient over the ranks and returns this rank's
  slice. That is what makes a loss computed on gathered embeddings train every rank's encoder
  (``torch.distributed.all_gather`` alone has no gradient; PITFALLS 12).
* :func:`all_gather_no_grad` gathers labels and other non-differentiable tensors.
* :func:`all_reduce_sum` sums a count (a global normalizer) over the ranks.

Without an initialised process group (or with one rank) every helper returns its input, so the
same code runs in one process. See ``docs/distributed.md`` for the DDP recipe and the scaling.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "all_gather_no_grad",
    "all_gather_with_grad",
    "all_reduce_sum",
    "get_rank",
    "get_world_size",
    "is_distributed",
]


def is_distributed(process_group: object | None = None) -> bool:
    """Whether a default (or the given) process group is initialised with more than one rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    return dist.get_world_size(process_group) > 1  # type: ignore[arg-type]


def get_world_size(process_group: object | None = None) -> int:
    """Ranks in the group; 1 without an initialised process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(process_group)  # type: ignore[arg-type]


def get_rank(process_group: object | None = None) -> int:
    """This process's rank within the group; 0 without an initialised process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0
    return dist.get_rank(process_group)  # type: ignore[arg-type]


def all_reduce_sum(tensor: Tensor, process_group: object | None = None) -> Tensor:
    """Sum ``tensor`` over the ranks of ``process_group`` (a copy; no gradient). Without an
    initialised process group it returns the tensor unchanged."""
    if not is_distributed(process_group):
        return tensor
    out = tensor.detach().clone()
    with torch.no_grad():
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=process_group)  # type: ignore[arg-type]
    return out


def all_gather_no_grad(tensor: Tensor, process_group: object | None = None) -> Tensor:
    """Concatenate ``tensor`` from every rank along dim 0 (rank order), without a gradient.
    Every rank must pass the same shape."""
    if not is_distributed(process_group):
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(get_world_size(process_group))]
    with torch.no_grad():
        dist.all_gather(parts, tensor.detach().contiguous(), group=process_group)  # type: ignore[arg-type]
    return torch.cat(parts, 0)


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, tensor: Tensor, process_group: object | None) -> Tensor:
        ctx.process_group = process_group
        ctx.rank = get_rank(process_group)
        ctx.rows = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(get_world_size(process_group))]
        dist.all_gather(parts, tensor.contiguous(), group=process_group)  # type: ignore[arg-type]
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        # Every rank's loss may depend on every rank's rows: the gradient of this rank's rows
        # is the sum over the ranks of the gradient each computed for them.
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.process_group)
        start = ctx.rank * ctx.rows
        return total[start:start + ctx.rows], None


def all_gather_with_grad(tensor: Tensor, process_group: object | None = None) -> Tensor:
    """Concatenate ``tensor`` (shape ``(B, *)``, the same on every rank) from every rank of
    ``process_group`` along dim 0, in rank order, with a gradient.

    Backward all-reduces (sums) the gradient of the gathered tensor and returns this rank's
    slice, so ``d(Σ_ranks loss_r)/d(tensor)`` reaches each rank. With DDP averaging gradients
    over ``N`` ranks, a loss that every rank computes in full on gathered tensors therefore
    yields exactly the single-process gradient (``N · ∂L/∂x`` per rank, averaged by ``1/N``).

    Without an initialised process group (or with one rank) it returns ``tensor`` itself.
    """
    if not is_distributed(process_group):
        return tensor
    return _AllGatherWithGrad.apply(tensor, process_group)
