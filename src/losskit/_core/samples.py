"""Example-argument generators (``sample=`` in ``@register``).

A sampler is called as ``sample(gen, dtype=torch.float64, extreme=False)`` and returns a
:class:`~losskit._core.registry.Sample`. The contract test, the property probes and the plots
all draw from it. ``extreme=True`` asks for values at the edge of the domain (residuals or
logits of 1e4, probabilities of 0 and 1) where naive formulas overflow or divide by zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from losskit._core.registry import Sample

__all__ = ["DEFAULT_SHAPE", "draw", "regression_sample"]

DEFAULT_SHAPE: tuple[int, ...] = (6, 5)


def draw(kind: str, shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype,
         extreme: bool = False) -> Tensor:
    """Random values of a kind: ``real``, ``positive``, ``nonnegative``, ``count``,
    ``probability``, ``binary``, ``pm1`` (±1), ``logvar``-like ``variance``."""
    n = torch.randn(shape, generator=gen, dtype=torch.float64)
    if kind == "real":
        x = n * (1e4 if extreme else 1.0)
    elif kind == "positive":
        x = torch.exp(n.clamp(-3, 3)) if not extreme else torch.exp(n * 8)
    elif kind == "nonnegative":
        x = n.abs() if not extreme else (n.abs() * 1e4).where(n > 0, torch.zeros(()))
    elif kind == "count":
        x = torch.poisson(torch.full(shape, 3.0, dtype=torch.float64), generator=gen)
    elif kind == "probability":
        u = torch.rand(shape, generator=gen, dtype=torch.float64)
        x = (u > 0.5).double() if extreme else u.clamp(0.02, 0.98)
    elif kind == "binary":
        x = (torch.rand(shape, generator=gen, dtype=torch.float64) > 0.5).double()
    elif kind == "pm1":
        x = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) > 0.5, 1.0, -1.0)
    elif kind == "variance":
        x = torch.exp(n.clamp(-2, 2)) if not extreme else torch.exp(n * 10)
    else:
        raise ValueError(f"unknown sample kind {kind!r}")
    return x.to(dtype)


def regression_sample(
    target: str = "real",
    input: str = "real",
    shape: tuple[int, ...] = DEFAULT_SHAPE,
    **kwargs: object,
) -> Callable[..., Sample]:
    """Sampler for ``fn(input, target, **kwargs)`` with the given value kinds."""

    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
        x = draw(input, shape, gen, dtype, extreme)
        y = draw(target, shape, gen, dtype, extreme)
        return Sample((x, y), dict(kwargs))

    return sample
