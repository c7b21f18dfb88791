"""The one reduction every loss goes through.

``reduce(loss, reduction, sample_weight=, mask=, normalizer=, empty=)`` turns a tensor of
per-element (or per-sample) losses into what the caller asked for:

* ``"none"``: the weighted losses, same shape as ``loss``; masked-out entries are 0.
* ``"sum"``: :math:`\\sum_i m_i w_i \\ell_i`, divided by ``normalizer`` when one is given.
* ``"mean"``: :math:`\\sum_i m_i w_i \\ell_i / \\sum_i m_i w_i d_i` (with no weights, mask or
  ``denominator`` d, the plain mean; ``d`` is e.g. the class weight of each position's target,
  which gives PyTorch's weighted cross-entropy mean, 0 where a target is ignored). When nothing
  is left (every entry masked, or all weights 0) the result is 0 with a zero gradient
  (``empty="zero"``) or NaN (``empty="nan"``).
* ``"batchmean"``: the sum divided by the batch size ``loss.shape[0]`` (for divergences).

``sample_weight`` may have the shape of ``loss`` (per element) or ``(N,)`` (per sample, applied
along dim 0). ``mask`` is a bool tensor of the same shapes. ``normalizer`` (a number or a 0-d
tensor, e.g. a token count all-reduced over data-parallel ranks) is only valid with
``reduction="sum"``: ``sum / normalizer`` is then the same number whether the batch is split
into micro-batches or not.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from losskit._core.checks import LossInputError, check_option, shape_str

__all__ = ["EMPTY_POLICIES", "REDUCTIONS", "Empty", "Reduction", "as_float32", "plain_reduction", "reduce"]

Reduction = Literal["none", "mean", "sum", "batchmean"]
Empty = Literal["zero", "nan"]
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")
EMPTY_POLICIES: tuple[str, ...] = ("zero", "nan")


def as_float32(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Upcast float16/bfloat16 tensors to float32 (losses compute and return float32 for half
    inputs); other tensors are returned unchanged."""
    return tuple(
        t.float() if isinstance(t, Tensor) and t.dtype in (torch.float16, torch.bfloat16) else t
        for t in tensors
    )


def plain_reduction(input: Tensor, reduction: str, empty: str, *extras: object) -> bool:
    """True when a PyTorch kernel's own ``reduction`` computes exactly what :func:`reduce` would:
    no weights, mask or normalizer (``extras`` all ``None``), a PyTorch reduction, and a
    non-empty input (PyTorch's empty mean is NaN)."""
    check_option("empty", empty, EMPTY_POLICIES)
    return reduction in ("none", "mean", "sum") and input.numel() > 0 and all(e is None for e in extras)


def per_sample_or_element(name: str, value: Tensor, loss: Tensor) -> Tensor:
    """``value`` shaped like ``loss``: as it is, or ``(N,)`` viewed along dim 0; else raise."""
    if value.shape == loss.shape:
        return value
    if loss.ndim >= 1 and value.ndim == 1 and value.shape[0] == loss.shape[0]:
        return value.reshape((-1,) + (1,) * (loss.ndim - 1))
    per_sample = f" or ({loss.shape[0]},) (one per sample)" if loss.ndim >= 1 else ""
    raise LossInputError(
        f"{name} has shape {shape_str(value)} but the per-element loss has shape "
        f"{shape_str(loss)}; {name} must have shape {shape_str(loss)}{per_sample}. "
        f"Fix: reshape {name}, or compute with reduction='none' and weight it yourself."
    )


def reduce(
    loss: Tensor,
    reduction: str = "mean",
    *,
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    denominator: Tensor | None = None,
    allowed: tuple[str, ...] = REDUCTIONS,
) -> Tensor:
    """Reduce per-element losses; see the module docstring for the exact formulas."""
    check_option("reduction", reduction, allowed)
    check_option("empty", empty, EMPTY_POLICIES)
    if loss.dtype in (torch.float16, torch.bfloat16):
        loss = loss.float()
    weight: Tensor | None = None
    if sample_weight is not None:
        if not isinstance(sample_weight, Tensor):
            sample_weight = torch.as_tensor(sample_weight, dtype=loss.dtype, device=loss.device)
        if not sample_weight.is_floating_point():
            sample_weight = sample_weight.to(loss.dtype)
        weight = per_sample_or_element("sample_weight", sample_weight, loss).to(loss.dtype)
    keep: Tensor | None = None
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise LossInputError(
                f"mask must be a bool tensor (True = keep), got {got}. Fix: pass mask.bool()."
            )
        keep = per_sample_or_element("mask", mask, loss)
    if normalizer is not None and reduction != "sum":
        raise LossInputError(
            f"normalizer={normalizer!r} was given with reduction={reduction!r}; the normalizer "
            "divides a sum. Fix: use reduction='sum' together with normalizer=."
        )

    weighted = loss if weight is None else loss * weight
    if keep is not None:
        # where, not multiply: an inf/NaN at a masked-out entry must not leak into the result.
        weighted = torch.where(keep, weighted, weighted.new_zeros(()))

    if reduction == "none":
        return weighted if keep is None and weight is None else weighted.expand(loss.shape)
    total = weighted.sum()
    if reduction == "sum":
        if normalizer is None:
            return total
        return total / normalizer
    if reduction == "batchmean":
        return total / max(loss.shape[0], 1) if loss.ndim else total
    # mean
    if weight is None and keep is None and denominator is None:
        if loss.numel() == 0:
            return _empty_result(total, empty)
        return total / loss.numel()
    if denominator is not None:
        if denominator.shape != loss.shape:
            raise LossInputError(
                f"denominator has shape {shape_str(denominator)}; it must match the per-element "
                f"loss {shape_str(loss)}."
            )
        w = denominator.to(loss.dtype) if weight is None else denominator.to(loss.dtype) * weight
        count = (w if keep is None else torch.where(keep, w, w.new_zeros(()))).sum()
    elif weight is None:
        count = keep.expand(loss.shape).sum().to(loss.dtype)  # type: ignore[union-attr]
    else:
        w = weight.expand(loss.shape)
        count = (w if keep is None else torch.where(keep, w, w.new_zeros(()))).sum()
    return mean_over(total, count, empty)


def mean_over(total: Tensor, count: Tensor, empty: str) -> Tensor:
    """``total / count``, the mean of a sum over a weight or count that may be 0 (``empty``:
    ``"zero"`` gives the 0 that the empty sum is, ``"nan"`` NaN)."""
    mean = total / count.clamp_min(torch.finfo(total.dtype).tiny)
    if empty == "nan":
        mean = torch.where(count > 0, mean, mean.new_full((), float("nan")))
    return mean


def _empty_result(total: Tensor, empty: str) -> Tensor:
    return total * 0.0 if empty == "zero" else total + float("nan")
