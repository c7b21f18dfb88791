"""Float64 references for the imbalance / noisy-label losses, written from the papers with
plain loops and NumPy. Each returns per-sample losses and the analytic gradient with respect
to the logits. Never imports losskit."""

from __future__ import annotations

import math

import numpy as np


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def class_weights(counts: list[float], method: str, beta: float = 0.999) -> np.ndarray:
    n = np.asarray(counts, dtype=np.float64)
    if method == "inverse":
        raw = 1.0 / n
    elif method == "inverse_sqrt":
        raw = 1.0 / np.sqrt(n)
    else:
        raw = np.array([(1.0 - beta) / (1.0 - beta**c) for c in n])
    return raw / raw.sum() * len(n)


def balanced_softmax(z: np.ndarray, y: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ren et al. 2020: p_y = n_y e^{z_y} / Σ_k n_k e^{z_k}; loss -log p_y."""
    loss = np.zeros(len(y))
    grad = np.zeros_like(z)
    for i in range(len(y)):
        w = counts * np.exp(z[i] - z[i].max())
        p = w / w.sum()
        loss[i] = -math.log(p[y[i]])
        grad[i] = p
        grad[i, y[i]] -= 1.0
    return loss, grad


def logit_adjusted(z: np.ndarray, y: np.ndarray, priors: np.ndarray,
                   tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Menon et al. 2021, eq. (10): CE of z + τ log π."""
    loss = np.zeros(len(y))
    grad = np.zeros_like(z)
    for i in range(len(y)):
        a = z[i] + tau * np.log(priors)
        p = _softmax(a)
        loss[i] = -math.log(p[y[i]])
        grad[i] = p
        grad[i, y[i]] -= 1.0
    return loss, grad


def ldam(z: np.ndarray, y: np.ndarray, counts: np.ndarray, max_m: float,
         s: float) -> tuple[np.ndarray, np.ndarray]:
    """Cao et al. 2019: Δ_j = C / n_j^{1/4} with C such that max Δ = max_m; CE of s·(z - Δ_y e_y)."""
    m = np.array([1.0 / c**0.25 for c in counts])
    m = m * (max_m / m.max())
    loss = np.zeros(len(y))
    grad = np.zeros_like(z)
    for i in range(len(y)):
        a = z[i].copy()
        a[y[i]] -= m[y[i]]
        p = _softmax(s * a)
        loss[i] = -math.log(p[y[i]])
        g = p.copy()
        g[y[i]] -= 1.0
        grad[i] = s * g
    return loss, grad


def gce(z: np.ndarray, y: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Zhang & Sabuncu 2018: (1 - p_y^q)/q; ∂/∂z_k = -p_y^q (1[k=y] - p_k)."""
    loss = np.zeros(len(y))
    grad = np.zeros_like(z)
    for i in range(len(y)):
        p = _softmax(z[i])
        py = p[y[i]]
        loss[i] = (1.0 - py**q) / q
        e = np.zeros_like(p)
        e[y[i]] = 1.0
        grad[i] = -(py**q) * (e - p)
    return loss, grad


def sce(z: np.ndarray, y: np.ndarray, alpha: float, beta: float, A: float) -> tuple[np.ndarray, np.ndarray]:
    """Wang et al. 2019: α·CE + β·RCE, RCE = -Σ_k p_k log q_k with log 0 := A."""
    loss = np.zeros(len(y))
    grad = np.zeros_like(z)
    for i in range(len(y)):
        p = _softmax(z[i])
        ce = -math.log(p[y[i]])
        rce = 0.0
        for k in range(len(p)):
            log_q = 0.0 if k == y[i] else A
            rce -= p[k] * log_q
        loss[i] = alpha * ce + beta * rce
        e = np.zeros_like(p)
        e[y[i]] = 1.0
        # ∂RCE/∂z = -A ∂(1 - p_y)/∂z = A p_y (e - p)
        grad[i] = alpha * (p - e) + beta * A * p[y[i]] * (e - p)
    return loss, grad


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def asymmetric(x: np.ndarray, y: np.ndarray, gamma_pos: float, gamma_neg: float,
               clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridnik et al. 2021, eq. (6)-(7) with p_m = max(p - m, 0), elementwise, no clamps (use
    logits where p > 1e-8). Gradient from differentiating the formula by hand."""
    loss = np.zeros_like(x)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        p = _sigmoid(float(x[idx]))
        dp = p * (1.0 - p)
        lp = -((1.0 - p) ** gamma_pos) * math.log(p)
        # d/dx of (1-p)^γ log p = (1-p)^γ [(1-p) - γ p log p]
        glp = -((1.0 - p) ** gamma_pos) * ((1.0 - p) - gamma_pos * p * math.log(p))
        pm = max(p - clip, 0.0)
        if pm > 0:
            ln = -(pm**gamma_neg) * math.log(1.0 - pm)
            d_pm = gamma_neg * pm ** (gamma_neg - 1.0) * math.log(1.0 - pm) - pm**gamma_neg / (1.0 - pm)
            gln = -dp * d_pm
        else:
            ln, gln = 0.0, 0.0
        t = float(y[idx])
        loss[idx] = t * lp + (1.0 - t) * ln
        grad[idx] = t * glp + (1.0 - t) * gln
    return loss, grad


def asl_official_sum(x: np.ndarray, y: np.ndarray, gamma_pos: float, gamma_neg: float, clip: float,
                     eps: float = 1e-8) -> float:
    """The official ASL ``AsymmetricLoss.forward`` (github.com/Alibaba-MIIL/ASL,
    src/loss_functions/losses.py), transcribed to NumPy: sigmoid, shift the negatives'
    probability, log with clamp(min=eps), asymmetric focusing, negative sum."""
    xs_pos = 1.0 / (1.0 + np.exp(-x))
    xs_neg = 1.0 - xs_pos
    if clip > 0:
        xs_neg = np.minimum(xs_neg + clip, 1.0)
    los_pos = y * np.log(np.maximum(xs_pos, eps))
    los_neg = (1 - y) * np.log(np.maximum(xs_neg, eps))
    loss = los_pos + los_neg
    pt = xs_pos * y + xs_neg * (1 - y)
    gamma = gamma_pos * y + gamma_neg * (1 - y)
    loss = loss * np.power(1 - pt, gamma)
    return float(-loss.sum())
