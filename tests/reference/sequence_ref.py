"""Float64 reference for CTC (Graves et al. 2006): the forward (alpha) and backward (beta)
recursions with plain loops in log space, and the gradient from the forward–backward
occupancies (not from automatic differentiation). Never imports losskit."""

from __future__ import annotations

import math

import numpy as np

NEG_INF = -math.inf


def _lse(*xs: float) -> float:
    m = max(xs)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(sum(math.exp(x - m) for x in xs))


def ctc_single(lp: np.ndarray, label: list[int], blank: int = 0) -> tuple[float, np.ndarray]:
    """Negative log-likelihood of ``label`` under the (T, C) log-probabilities ``lp`` and its
    gradient with respect to ``lp`` (inf and a zero gradient when no alignment exists)."""
    t_len, c = lp.shape
    ext = [blank]
    for lab in label:
        ext += [lab, blank]
    s_len = len(ext)
    grad = np.zeros((t_len, c))
    if t_len == 0:
        return (0.0 if not label else math.inf), grad
    alpha = np.full((t_len, s_len), NEG_INF)
    alpha[0, 0] = lp[0, ext[0]]
    if s_len > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for t in range(1, t_len):
        for s in range(s_len):
            terms = [alpha[t - 1, s]]
            if s >= 1:
                terms.append(alpha[t - 1, s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(alpha[t - 1, s - 2])
            alpha[t, s] = _lse(*terms) + lp[t, ext[s]]
    beta = np.full((t_len, s_len), NEG_INF)
    beta[t_len - 1, s_len - 1] = lp[t_len - 1, ext[s_len - 1]]
    if s_len > 1:
        beta[t_len - 1, s_len - 2] = lp[t_len - 1, ext[s_len - 2]]
    for t in range(t_len - 2, -1, -1):
        for s in range(s_len):
            terms = [beta[t + 1, s]]
            if s + 1 < s_len:
                terms.append(beta[t + 1, s + 1])
            if s + 2 < s_len and ext[s + 2] != blank and ext[s + 2] != ext[s]:
                terms.append(beta[t + 1, s + 2])
            beta[t, s] = _lse(*terms) + lp[t, ext[s]]
    ends = [alpha[t_len - 1, s_len - 1]] + ([alpha[t_len - 1, s_len - 2]] if s_len > 1 else [])
    log_p = _lse(*ends)
    if log_p == NEG_INF:
        return math.inf, grad
    # alpha_t(s)·beta_t(s) counts lp[t, ext[s]] twice; d(-log p)/d lp[t, k] = -Σ_{s: ext[s]=k}
    # exp(alpha + beta - lp - log p).
    for t in range(t_len):
        for k in range(c):
            terms = [alpha[t, s] + beta[t, s] - lp[t, k] for s in range(s_len) if ext[s] == k]
            if terms:
                g = _lse(*terms)
                grad[t, k] = -math.exp(g - log_p) if g != NEG_INF else 0.0
    return -log_p, grad


def ctc_batch(log_probs: np.ndarray, targets: list[list[int]], input_lengths: list[int],
              blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T, N, C) log-probs → per-sequence NLL (N,) and gradient (T, N, C) of their sum."""
    t_len, n, c = log_probs.shape
    nll = np.zeros(n)
    grad = np.zeros((t_len, n, c))
    for b in range(n):
        t_b = input_lengths[b]
        value, g = ctc_single(log_probs[:t_b, b, :], targets[b], blank)
        nll[b] = value
        grad[:t_b, b, :] = g
    return nll, grad
