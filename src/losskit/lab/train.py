"""The one model and training budget every compared loss gets."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["build_model", "fit", "predict"]


def build_model(kind: str, d_in: int, d_out: int, hidden: int = 64) -> nn.Module:
    """``"linear"`` or ``"mlp"`` (one hidden layer of ``hidden`` ReLU units)."""
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def fit(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
) -> list[float]:
    """Full-batch Adam with a cosine-decayed learning rate (so non-smooth losses settle);
    returns the training-loss curve."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    curve = []
    for step in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / epochs))
        opt.zero_grad()
        out = model(X)
        loss = loss_fn(out.squeeze(-1) if out.shape[-1] == 1 else out, y)
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
    return curve


@torch.no_grad()
def predict(model: nn.Module, X: Tensor) -> Tensor:
    out = model(X)
    return out.squeeze(-1) if out.shape[-1] == 1 else out
