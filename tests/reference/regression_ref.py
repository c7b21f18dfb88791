"""Float64 NumPy references for the regression losses, written from the formulas.

Each function returns ``(per_element_loss, d_loss / d_input)`` for arrays of predictions ``x``
and targets ``y``. Nothing here imports losskit.
"""

from __future__ import annotations

import math

import numpy as np


def mse(x, y):
    r = x - y
    return r**2, 2 * r


def l1(x, y):
    r = x - y
    return np.abs(r), np.sign(r)


def huber(x, y, delta=1.0):
    r = x - y
    a = np.abs(r)
    value = np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))
    grad = np.where(a <= delta, r, delta * np.sign(r))
    return value, grad


def smooth_l1(x, y, beta=1.0):
    r = x - y
    a = np.abs(r)
    if beta == 0:
        return a, np.sign(r)
    value = np.where(a < beta, 0.5 * r**2 / beta, a - 0.5 * beta)
    grad = np.where(a < beta, r / beta, np.sign(r))
    return value, grad


def pseudo_huber(x, y, delta=1.0):
    r = x - y
    root = np.sqrt(1 + (r / delta) ** 2)
    return delta**2 * (root - 1), r / root


def log_cosh(x, y):
    r = x - y
    return np.log(np.cosh(r)), np.tanh(r)


def quantile(x, y, tau):
    u = y - x
    value = np.maximum(tau * u, (tau - 1) * u)
    grad = np.where(u > 0, -tau, 1 - tau)
    return value, grad


def mape(x, y, eps=2.220446049250313e-16):
    r = x - y
    d = np.maximum(np.abs(y), eps)
    return np.abs(r) / d, np.sign(r) / d


def smape(x, y):
    r = x - y
    d = np.abs(x) + np.abs(y)
    value = 2 * np.abs(r) / d
    grad = 2 * np.sign(r) / d - 2 * np.abs(r) * np.sign(x) / d**2
    return value, grad


def msle(x, y):
    d = np.log1p(x) - np.log1p(y)
    return d**2, 2 * d / (1 + x)


def poisson_nll(x, y, log_input=True, full=False, eps=1e-8):
    if log_input:
        value, grad = np.exp(x) - y * x, np.exp(x) - y
    else:
        value, grad = x - y * np.log(x + eps), 1 - y / (x + eps)
    if full:
        stirling = np.zeros_like(y)
        big = y > 1
        yb = y[big]
        stirling[big] = yb * np.log(yb) - yb + 0.5 * np.log(2 * math.pi * yb)
        value = value + stirling
    return value, grad


def gaussian_nll(x, y, var, full=False):
    """Returns (value, d/dx, d/dvar)."""
    r = x - y
    value = 0.5 * (np.log(var) + r**2 / var)
    if full:
        value = value + 0.5 * math.log(2 * math.pi)
    return value, r / var, 0.5 * (1 / var - r**2 / var**2)


def general_robust(x, y, alpha, scale=1.0):
    z = (x - y) / scale
    if alpha == 2:
        value = 0.5 * z**2
    elif alpha == 0:
        value = np.log(0.5 * z**2 + 1)
    elif alpha == -math.inf:
        value = 1 - np.exp(-0.5 * z**2)
    else:
        b = abs(alpha - 2)
        value = b / alpha * ((z**2 / b + 1) ** (alpha / 2) - 1)
    if alpha == -math.inf:
        grad = z / scale * np.exp(-0.5 * z**2)
    else:
        b = abs(alpha - 2) if alpha != 2 else 1.0
        grad = z / scale * (z**2 / b + 1) ** (alpha / 2 - 1) if alpha != 2 else z / scale
    return value, grad


def tweedie(mu, y, power):
    p = power
    if p == 0:
        value = (y - mu) ** 2
    elif p == 1:
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1)), 0.0)
        value = 2 * (ylogy - y * np.log(mu) - y + mu)
    elif p == 2:
        value = 2 * (np.log(mu / y) + y / mu - 1)
    else:
        value = 2 * (np.maximum(y, 0) ** (2 - p) / ((1 - p) * (2 - p))
                     - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p))
    grad = 2 * mu ** (-p) * (mu - y)
    return value, grad


def rmse(x, y):
    """Returns (scalar RMSE, d/dx)."""
    r = x - y
    value = math.sqrt(np.mean(r**2))
    return value, r / (r.size * value)
