"""Float64 references for the divergence and distillation losses, written from the
definitions with plain loops and NumPy. Gradients are derived by hand (or, for Sinkhorn, by
central finite differences of the reference). Never imports losskit."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def log_softmax(x: np.ndarray) -> np.ndarray:
    return x - logsumexp(x)


# ----------------------------------------------------------------------------- KL


def kl_div_terms(inp: np.ndarray, tgt: np.ndarray, log_target: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch kl_div pointwise terms y(log y − x), 0·log 0 = 0, and d/d input."""
    out = np.zeros_like(inp, dtype=np.float64)
    grad = np.zeros_like(inp, dtype=np.float64)
    for idx in np.ndindex(inp.shape):
        y = math.exp(tgt[idx]) if log_target else float(tgt[idx])
        if y > 0:
            out[idx] = y * (math.log(y) - inp[idx])
            grad[idx] = -y
    return out, grad


def kl_rows(x: np.ndarray, y: np.ndarray, temperature: float = 1.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per row of 2-D logits: KL(softmax(y/T) || softmax(x/T)) and its gradient in x."""
    out = np.zeros(x.shape[0])
    grad = np.zeros_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        p = softmax(x[i] / temperature)
        q = softmax(y[i] / temperature)
        lp, lq = log_softmax(x[i] / temperature), log_softmax(y[i] / temperature)
        out[i] = sum(q[c] * (lq[c] - lp[c]) for c in range(len(q)) if q[c] > 0)
        grad[i] = (p - q) / temperature
    return out, grad


def js_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: JS(softmax(x), softmax(y)) and its gradient in x (dJS/dp_c = ½ log(p_c/m_c))."""
    out = np.zeros(x.shape[0])
    grad = np.zeros_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        p, q = softmax(x[i]), softmax(y[i])
        m = 0.5 * (p + q)
        out[i] = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
        g = 0.5 * np.log(p / m)
        grad[i] = p * (g - np.dot(p, g))
    return out, grad


# ----------------------------------------------------------------------------- EMD


def emd_rows(x: np.ndarray, y: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: Σ_{k<C-1} |CDF_x(k) − CDF_y(k)|^p and its gradient in x."""
    n, c = x.shape
    out = np.zeros(n)
    grad = np.zeros_like(x, dtype=np.float64)
    for i in range(n):
        d = np.zeros(c)
        run = 0.0
        for k in range(c):
            run += x[i, k] - y[i, k]
            d[k] = run
        for k in range(c - 1):
            out[i] += abs(d[k]) ** p
            dk = p * abs(d[k]) ** (p - 1) * np.sign(d[k])
            for j in range(k + 1):
                grad[i, j] += dk
    return out, grad


# ----------------------------------------------------------------------------- cosine


def cosine_rows(x: np.ndarray, y: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: cos(x, y) with norms clamped at eps, and its gradient in x."""
    out = np.zeros(x.shape[0])
    grad = np.zeros_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        nx = max(math.sqrt(float(np.dot(x[i], x[i]))), eps)
        ny = max(math.sqrt(float(np.dot(y[i], y[i]))), eps)
        out[i] = float(np.dot(x[i], y[i])) / (nx * ny)
        if nx > eps:
            grad[i] = y[i] / (nx * ny) - out[i] * x[i] / nx**2
        else:
            grad[i] = y[i] / (nx * ny)
    return out, grad


# ----------------------------------------------------------------------------- MMD


def mmd(x: np.ndarray, y: np.ndarray, sigmas: tuple[float, ...], unbiased: bool
        ) -> tuple[float, np.ndarray, np.ndarray]:
    """MMD² (Gretton 2012, U- or V-statistic) with a sum of RBF kernels; gradients in x, y."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        d2 = float(np.sum((a - b) ** 2))
        return sum(math.exp(-d2 / (2 * s * s)) for s in sigmas)

    def dk_da(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = float(np.sum((a - b) ** 2))
        return sum(math.exp(-d2 / (2 * s * s)) * -(a - b) / (s * s) for s in sigmas)

    n, m = len(x), len(y)
    cxx = 1.0 / (n * (n - 1)) if unbiased else 1.0 / (n * n)
    cyy = 1.0 / (m * (m - 1)) if unbiased else 1.0 / (m * m)
    cxy = 2.0 / (n * m)
    val = 0.0
    gx = np.zeros_like(x, dtype=np.float64)
    gy = np.zeros_like(y, dtype=np.float64)
    for i in range(n):
        for j in range(n):
            if unbiased and i == j:
                continue
            val += cxx * k(x[i], x[j])
            g = dk_da(x[i], x[j])
            gx[i] += cxx * g
            gx[j] -= cxx * g
    for i in range(m):
        for j in range(m):
            if unbiased and i == j:
                continue
            val += cyy * k(y[i], y[j])
            g = dk_da(y[i], y[j])
            gy[i] += cyy * g
            gy[j] -= cyy * g
    for i in range(n):
        for j in range(m):
            val -= cxy * k(x[i], y[j])
            g = dk_da(x[i], y[j])
            gx[i] -= cxy * g
            gy[j] += cxy * g
    return val, gx, gy


# ----------------------------------------------------------------------------- Sinkhorn


def sinkhorn(x: np.ndarray, y: np.ndarray, epsilon: float, n_iters: int, p: int,
             a: np.ndarray | None = None, b: np.ndarray | None = None) -> float:
    """⟨P, C⟩ for the log-domain Sinkhorn plan (Cuturi 2013), C_ij = ‖x_i − y_j‖^p."""
    n, m = len(x), len(y)
    cost = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            cost[i, j] = math.sqrt(float(np.sum((x[i] - y[j]) ** 2))) ** p
    a = np.full(n, 1.0 / n) if a is None else a
    b = np.full(m, 1.0 / m) if b is None else b
    with np.errstate(divide="ignore"):
        la, lb = np.log(a), np.log(b)
    f, g = np.zeros(n), np.zeros(m)
    for _ in range(n_iters):
        # f_i = −ε log Σ_j b_j exp((g_j − C_ij)/ε);  g_j = −ε log Σ_i a_i exp((f_i − C_ij)/ε)
        f = -epsilon * logsumexp(lb[None, :] + (g[None, :] - cost) / epsilon, axis=1)
        g = -epsilon * logsumexp(la[:, None] + (f[:, None] - cost) / epsilon, axis=0)
    plan = np.exp(la[:, None] + lb[None, :] + (f[:, None] + g[None, :] - cost) / epsilon)
    return float(np.sum(plan * cost))


def numerical_grad(fn, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of a scalar function."""
    g = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (fn(xp) - fn(xm)) / (2 * h)
    return g


# ----------------------------------------------------------------------------- distillation


def distillation_rows(s: np.ndarray, t: np.ndarray, y: np.ndarray | None, temperature: float,
                      alpha: float, ignore_index: int = -100
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of 2-D logits: (loss, kd, ce, keep) with kd = T²·KL(teacher_T || student_T)
    and ce the hard-label cross-entropy at T = 1; ignored rows have keep = False."""
    n = s.shape[0]
    kd = np.zeros(n)
    ce = np.zeros(n)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        q = softmax(t[i] / temperature)
        lq, lp = log_softmax(t[i] / temperature), log_softmax(s[i] / temperature)
        kd[i] = temperature**2 * float(np.sum(q * (lq - lp)))
        if y is not None:
            if y[i] == ignore_index:
                keep[i] = False
                kd[i] = 0.0
                continue
            ce[i] = -log_softmax(s[i])[y[i]]
    return alpha * kd + (1 - alpha) * ce, kd, ce, keep


def distillation_grad(s: np.ndarray, t: np.ndarray, y: np.ndarray, temperature: float,
                      alpha: float, ignore_index: int = -100) -> np.ndarray:
    """Gradient in s of the mean over kept rows of the distillation loss:
    α·T·(softmax(s/T) − softmax(t/T)) + (1 − α)·(softmax(s) − onehot(y))."""
    keep = [i for i in range(s.shape[0]) if y[i] != ignore_index]
    g = np.zeros_like(s, dtype=np.float64)
    for i in keep:
        onehot = np.zeros(s.shape[1])
        onehot[y[i]] = 1.0
        g[i] = (alpha * temperature * (softmax(s[i] / temperature) - softmax(t[i] / temperature))
                + (1 - alpha) * (softmax(s[i]) - onehot))
    return g / max(len(keep), 1)
