"""Float64 reference for the cross-entropy of a linear head, written from the formula with plain
loops over tokens and classes in NumPy (never importing losskit), with its gradient in closed
form. Per token i with logits a = W hᵢ + b, capped z = c·tanh(a/c) (or z = a), p = softmax(z):

    ℓᵢ = (1-ε)(lse(z) - z_y) + ε(lse(z) - mean(z)) + λ·lse(z)²
    ∂ℓᵢ/∂a_k = ((1 + 2λ·lse) p_k - (1-ε)[k = y] - ε/V) · (1 - tanh²(a_k/c))

Layouts: ``h`` (N, D), ``w`` (V, D), ``b`` (V,) or None, ``y`` (N,) ints.
"""

from __future__ import annotations

import math

import numpy as np


def _token(h_i: np.ndarray, w: np.ndarray, b: np.ndarray | None, y: int, eps: float, lam: float,
           cap: float | None) -> tuple[float, np.ndarray]:
    """Loss of one token and ∂ℓ/∂a (the pre-cap logits)."""
    v_count, d_count = w.shape
    a = [sum(w[k, j] * h_i[j] for j in range(d_count)) + (0.0 if b is None else b[k]) for k in range(v_count)]
    z = [cap * math.tanh(ak / cap) if cap is not None else ak for ak in a]
    m = max(z)
    lse = m + math.log(sum(math.exp(zk - m) for zk in z))
    loss = (1 - eps) * (lse - z[y]) + eps * (lse - sum(z) / v_count) + lam * lse**2
    da = np.zeros(v_count)
    for k in range(v_count):
        dz = (1 + 2 * lam * lse) * math.exp(z[k] - lse) - (1 - eps) * (k == y) - eps / v_count
        da[k] = dz * (1 - math.tanh(a[k] / cap) ** 2 if cap is not None else 1.0)
    return loss, da


def linear_cross_entropy(h: np.ndarray, w: np.ndarray, y: np.ndarray, b: np.ndarray | None = None, *,
                         ignore_index: int = -100, label_smoothing: float = 0.0, z_loss: float = 0.0,
                         softcap: float | None = None, reduction: str = "mean",
                         normalizer: float | None = None, grad_output: np.ndarray | float = 1.0
                         ) -> tuple[np.ndarray | float, np.ndarray, np.ndarray, np.ndarray | None]:
    """Loss (per token for ``"none"``) and the gradients of ``Σ grad_output · loss`` with respect
    to ``h``, ``w`` and ``b``. ``"mean"`` divides by the number of non-ignored tokens (0 when
    there are none), ``"sum"`` by ``normalizer`` when given."""
    n_count = h.shape[0]
    kept = [i for i in range(n_count) if int(y[i]) != ignore_index]
    per = np.zeros(n_count)
    da = np.zeros((n_count, w.shape[0]))
    for i in kept:
        per[i], da[i] = _token(h[i], w, b, int(y[i]), label_smoothing, z_loss, softcap)
    if reduction == "none":
        coef = np.broadcast_to(np.asarray(grad_output, dtype=np.float64), (n_count,)).copy()
        value: np.ndarray | float = per
    else:
        denom = (len(kept) if reduction == "mean" else (1.0 if normalizer is None else normalizer))
        scale = float(grad_output) / denom if denom else 0.0
        coef = np.full(n_count, scale)
        value = float(per.sum() / denom) if denom else 0.0
    dh = np.zeros_like(h)
    dw = np.zeros_like(w)
    db = None if b is None else np.zeros_like(b)
    for i in range(n_count):
        for k in range(w.shape[0]):
            g = coef[i] * da[i, k]
            dh[i] += g * w[k]
            dw[k] += g * h[i]
            if db is not None:
                db[k] += g
    return value, dh, dw, db
