"""torch.distributed helpers for losses computed across processes."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_reduce_sum", "is_distributed"]


def is_distributed(process_group: object | None = None) -> bool:
    """Whether a default (or the given) process group is initialised with more than one rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    return dist.get_world_size(process_group) > 1  # type: ignore[arg-type]


def all_reduce_sum(tensor: Tensor, process_group: object | None = None) -> Tensor:
    """Sum ``tensor`` over the ranks of ``process_group`` (a copy; no gradient). Without an
    initialised process group it returns the tensor unchanged."""
    if not is_distributed(process_group):
        return tensor
    out = tensor.detach().clone()
    with torch.no_grad():
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=process_group)  # type: ignore[arg-type]
    return out
