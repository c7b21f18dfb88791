"""Loss and gradient curves (matplotlib, imported lazily: ``pip install losskit[plot]``).

The x-axis follows the loss's kinds: the residual ``input − target`` for regression losses,
the margin ``y·z`` for logits with binary targets, the predicted probability for probability
inputs, and otherwise the step ``t`` along a fixed random direction through the registered
sample. Both the loss and its derivative along the axis are drawn.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from losskit._core.registry import LossSpec, Sample, get_spec
from losskit.properties import _regression_like

__all__ = ["curve", "plot"]


def curve(spec: LossSpec, points: int = 101) -> tuple[str, Tensor, Tensor, Tensor]:
    """``(axis label, x, loss, dloss/dx)`` for one loss along its natural 1-D axis: every
    element of the input moves together (residual, margin or probability ``x``)."""
    gen = torch.Generator().manual_seed(0)
    s = spec.sample(gen, dtype=torch.float64)
    gi = s.grad[0]
    base = s.args[gi]
    target = s.args[1] if len(s.args) > 1 else None
    kwargs = dict(s.kwargs)
    if spec.accepts("reduction"):
        kwargs["reduction"] = "mean"
    x_axis = torch.linspace(-3.0, 3.0, points, dtype=torch.float64)
    float_target = isinstance(target, Tensor) and target.is_floating_point() and target.shape == base.shape
    if _regression_like(spec, s):
        label = "residual  input − target"
        assert isinstance(target, Tensor)
        y = target.abs() + 3.0 if float(target.min()) >= 0 else target  # keep positive inputs positive
        if float(target.min()) >= 0:
            s = Sample((s.args[0], y, *s.args[2:]), s.kwargs, s.grad)
        make = lambda t: y + t  # noqa: E731
    elif float_target and "prob" in spec.input_kind:
        assert isinstance(target, Tensor)
        label = "predicted probability of the true class"
        x_axis = torch.linspace(0.01, 0.99, points, dtype=torch.float64)
        make = lambda t: torch.where(target > 0.5, t, 1 - t)  # noqa: E731
    elif float_target and spec.input_kind == "logits" and bool(((target == 0) | (target == 1)).all()):
        assert isinstance(target, Tensor)
        label = "margin  (2y − 1)·z"
        make = lambda t: t * (2 * target - 1)  # noqa: E731
    else:
        label = "t along a random direction through the sample"
        d = torch.randn(base.shape, generator=gen, dtype=torch.float64)
        d = d / d.abs().max()
        make = lambda t: base + t * d  # noqa: E731
    def phi(t: Tensor) -> Tensor:
        args = list(s.args)
        args[gi] = make(t)
        return spec.fn(*args, **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # one batched call: value and derivative by forward-mode AD under vmap
            loss, grad = torch.func.vmap(lambda t: torch.func.jvp(phi, (t,), (torch.ones_like(t),)))(x_axis)
            return label, x_axis, loss.detach().double(), grad.detach().double()
        except Exception:
            pass
        losses, grads = [], []
        for t in x_axis:
            tt = t.clone().requires_grad_(True)
            try:
                val = phi(tt)
                (g,) = torch.autograd.grad(val, tt, allow_unused=True)
                v, gv = float(val.detach()), float("nan") if g is None else float(g)
            except Exception:
                v, gv = float("nan"), float("nan")
            losses.append(v)
            grads.append(gv)
    return label, x_axis, torch.tensor(losses, dtype=torch.float64), torch.tensor(grads, dtype=torch.float64)


def plot(names: Sequence[str], out: str | Path | None = None, *, points: int = 201) -> Any:
    """Plot the loss (left) and its derivative (right) of each named loss; save to ``out`` if
    given. Returns the matplotlib Figure."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - optional extra
        raise ImportError("losskit.plot needs matplotlib: pip install 'losskit[plot]'") from e
    specs = [get_spec(n) for n in names]
    fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = set()
    for spec in specs:
        label, x, loss, grad = curve(spec, points)
        labels.add(label)
        ax_l.plot(x.numpy(), loss.numpy(), label=spec.name)
        ax_g.plot(x.numpy(), grad.numpy(), label=spec.name)
    xlabel = labels.pop() if len(labels) == 1 else "x (see each loss's axis)"
    ax_l.set_title("loss")
    ax_g.set_title("gradient d loss / dx")
    for ax in (ax_l, ax_g):
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=90)
        plt.close(fig)
    return fig
