"""Float64 reference implementations of the classification losses, written from the papers and
the PyTorch / torchvision documentation with plain loops over scalars. Slow and obvious on
purpose; they never import losskit. Scalars are torch float64 0-d tensors only so that autograd
gives the reference gradient of the same formula.

Layouts: logits ``x`` are ``(P, C)`` (P positions, C classes); class-index targets ``(P,)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _log_softmax_row(row: list[Tensor]) -> list[Tensor]:
    finite = [v for v in row if math.isfinite(float(v.detach()))]
    m = max(finite, key=lambda v: float(v.detach()))
    total = sum(torch.exp(v - m) for v in finite)
    lse = m + torch.log(total)
    return [v - lse for v in row]


def _reduce(values: list[Tensor], denom: float | Tensor, reduction: str) -> Tensor:
    stacked = torch.stack(values) if values else torch.zeros(0, dtype=torch.float64)
    if reduction == "none":
        return stacked
    if reduction == "sum":
        return stacked.sum()
    return stacked.sum() / denom


def cross_entropy(x: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """PyTorch's cross-entropy (class indices or probabilities), from its documentation:
    ℓ_i = -Σ_c w_c ỹ_ic log p_ic with ỹ = (1-ε) onehot + ε/K; "mean" divides by Σ_i w[y_i] over
    non-ignored i for indices, by the number of positions for probabilities. −inf logits are
    treated as absent classes (their terms dropped)."""
    p_count, k = x.shape
    out: list[Tensor] = []
    denom: Tensor | float = 0.0
    for i in range(p_count):
        logp = _log_softmax_row([x[i, c] for c in range(k)])
        w = [weight[c] if weight is not None else torch.tensor(1.0, dtype=torch.float64)
             for c in range(k)]
        if target.is_floating_point():
            loss = torch.tensor(0.0, dtype=torch.float64)
            for c in range(k):
                t = (1 - label_smoothing) * target[i, c] + label_smoothing / k
                if math.isfinite(float(logp[c].detach())):
                    loss = loss - w[c] * t * logp[c]
            out.append(loss)
            denom = denom + 1.0
            continue
        y = int(target[i])
        if y == ignore_index:
            out.append(torch.tensor(0.0, dtype=torch.float64))
            continue
        loss = -(1 - label_smoothing) * w[y] * logp[y]
        for c in range(k):
            if math.isfinite(float(logp[c].detach())):
                loss = loss - (label_smoothing / k) * w[c] * logp[c]
        out.append(loss)
        denom = denom + w[y]
    return _reduce(out, denom, reduction)


def binary_cross_entropy(p: Tensor, t: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """PyTorch BCE on probabilities with log clamped at -100; "mean" divides by the count."""
    flat_p, flat_t = p.reshape(-1), t.reshape(-1)
    w = None if weight is None else torch.broadcast_to(weight, p.shape).reshape(-1)
    out = []
    for i in range(flat_p.numel()):
        lp = torch.clamp(torch.log(flat_p[i]), min=-100.0)
        l1p = torch.clamp(torch.log(1 - flat_p[i]), min=-100.0)
        v = -(flat_t[i] * lp + (1 - flat_t[i]) * l1p)
        out.append(v if w is None else w[i] * v)
    res = _reduce(out, flat_p.numel(), reduction)
    return res.reshape(p.shape) if reduction == "none" else res


def _log_sigmoid(v: Tensor) -> Tensor:
    # log σ(v) = -log(1 + e^{-v}), written for either sign of v without overflow
    if float(v.detach()) >= 0:
        return -torch.log1p(torch.exp(-v))
    return v - torch.log1p(torch.exp(v))


def bce_with_logits(x: Tensor, t: Tensor, weight: Tensor | None = None,
                    pos_weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """-w [pw t log σ(x) + (1 - t) log(1 - σ(x))]; pos_weight broadcast against x (PyTorch)."""
    w = None if weight is None else torch.broadcast_to(weight, x.shape).reshape(-1)
    pw = None if pos_weight is None else torch.broadcast_to(pos_weight, x.shape).reshape(-1)
    fx, ft = x.reshape(-1), t.reshape(-1)
    out = []
    for i in range(fx.numel()):
        pos = ft[i] * _log_sigmoid(fx[i])
        if pw is not None:
            pos = pw[i] * pos
        v = -(pos + (1 - ft[i]) * _log_sigmoid(-fx[i]))
        out.append(v if w is None else w[i] * v)
    res = _reduce(out, fx.numel(), reduction)
    return res.reshape(x.shape) if reduction == "none" else res


def sigmoid_focal_paper(x: Tensor, t: Tensor, alpha: float | None, gamma: float) -> Tensor:
    """Lin et al. 2017, eq. (5) with soft targets: FL = α_t (1 - p_t)^γ · BCE, per element
    (reduction "none")."""
    fx, ft = x.reshape(-1), t.reshape(-1)
    out = []
    for i in range(fx.numel()):
        p = 1 / (1 + torch.exp(-fx[i]))
        pt = p * ft[i] + (1 - p) * (1 - ft[i])
        ce = -(ft[i] * torch.log(p) + (1 - ft[i]) * torch.log(1 - p))
        v = (1 - pt) ** gamma * ce
        if alpha is not None:
            v = (alpha * ft[i] + (1 - alpha) * (1 - ft[i])) * v
        out.append(v)
    return torch.stack(out).reshape(x.shape)


def torchvision_sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25,
                                   gamma: float = 2.0, reduction: str = "none") -> Tensor:
    """torchvision.ops.sigmoid_focal_loss, transcribed from torchvision/ops/focal_loss.py
    (torchvision's compiled extension does not load against this torch, the function is
    pure PyTorch)."""
    p = torch.sigmoid(inputs)
    ce_loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    return loss.sum()


def softmax_focal(x: Tensor, y: Tensor, gamma: float, alpha: Tensor | None = None,
                  weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """-α_y w_y (1 - p_y)^γ log p_y per position; "mean" divides by Σ w_y over non-ignored."""
    out, denom = [], 0.0
    for i in range(x.shape[0]):
        yi = int(y[i])
        if yi == ignore_index:
            out.append(torch.tensor(0.0, dtype=torch.float64))
            continue
        logp = _log_softmax_row([x[i, c] for c in range(x.shape[1])])
        p = torch.exp(logp[yi])
        v = -((1 - p) ** gamma) * logp[yi]
        if alpha is not None:
            v = alpha[yi] * v
        w = 1.0 if weight is None else weight[yi]
        out.append(w * v)
        denom = denom + w
    return _reduce(out, denom, reduction)


def poly1(x: Tensor, y: Tensor, epsilon: float, reduction: str = "mean") -> Tensor:
    """Leng et al. 2022, Poly-1: -log p_y + ε (1 - p_y)."""
    out = []
    for i in range(x.shape[0]):
        logp = _log_softmax_row([x[i, c] for c in range(x.shape[1])])
        yi = int(y[i])
        out.append(-logp[yi] + epsilon * (1 - torch.exp(logp[yi])))
    return _reduce(out, len(out), reduction)


def hinge(x: Tensor, y: Tensor, squared: bool = False, reduction: str = "mean") -> Tensor:
    """max(0, 1 - y x) (squared: its square), labels ±1."""
    fx, fy = x.reshape(-1), y.reshape(-1)
    out = []
    for i in range(fx.numel()):
        m = 1 - fy[i] * fx[i]
        v = m if float(m.detach()) > 0 else torch.zeros((), dtype=torch.float64) * m
        out.append(v * v if squared else v)
    res = _reduce(out, fx.numel(), reduction)
    return res.reshape(x.shape) if reduction == "none" else res


def crammer_singer(x: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """max(0, 1 + max_{j≠y} x_j - x_y)."""
    out = []
    for i in range(x.shape[0]):
        yi = int(y[i])
        best = max((x[i, j] for j in range(x.shape[1]) if j != yi), key=lambda v: float(v.detach()))
        m = 1 + best - x[i, yi]
        out.append(m if float(m.detach()) > 0 else 0 * m)
    return _reduce(out, len(out), reduction)


def multi_margin(x: Tensor, y: Tensor, p: int = 1, margin: float = 1.0,
                 weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """PyTorch MultiMarginLoss as its kernel computes it: w_y Σ_{j≠y} max(0, m - x_y + x_j)^p / C."""
    n, c = x.shape
    out = []
    for i in range(n):
        yi = int(y[i])
        total = torch.zeros((), dtype=torch.float64)
        for j in range(c):
            if j == yi:
                continue
            z = margin - x[i, yi] + x[i, j]
            if float(z.detach()) > 0:
                total = total + (z if p == 1 else z * z)
        total = total / c
        out.append(total if weight is None else weight[yi] * total)
    return _reduce(out, n, reduction)


def soft_margin(x: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """log(1 + exp(-y x))."""
    fx, fy = x.reshape(-1), y.reshape(-1)
    out = [-_log_sigmoid(fy[i] * fx[i]) for i in range(fx.numel())]
    res = _reduce(out, fx.numel(), reduction)
    return res.reshape(x.shape) if reduction == "none" else res


def multilabel_soft_margin(x: Tensor, t: Tensor, weight: Tensor | None = None,
                           reduction: str = "mean") -> Tensor:
    """-(1/C) Σ_c w_c [t log σ(x) + (1 - t) log σ(-x)] per sample."""
    n, c = x.shape
    out = []
    for i in range(n):
        total = torch.zeros((), dtype=torch.float64)
        for j in range(c):
            v = -(t[i, j] * _log_sigmoid(x[i, j]) + (1 - t[i, j]) * _log_sigmoid(-x[i, j]))
            total = total + (v if weight is None else weight[j] * v)
        out.append(total / c)
    return _reduce(out, n, reduction)


def multilabel_margin(x: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """PyTorch MultiLabelMarginLoss: labels are y's entries before the first -1;
    Σ_{j in labels} Σ_{k not a label} max(0, 1 - (x_j - x_k)) / C."""
    n, c = x.shape
    out = []
    for i in range(n):
        labels = []
        for v in y[i].tolist():
            if v < 0:
                break
            labels.append(v)
        total = torch.zeros((), dtype=torch.float64)
        for j in labels:
            for k in range(c):
                if k in labels:
                    continue
                z = 1 - (x[i, j] - x[i, k])
                if float(z.detach()) > 0:
                    total = total + z
        out.append(total / c)
    return _reduce(out, n, reduction)
