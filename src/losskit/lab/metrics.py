"""Task metrics for the lab, in NumPy (no scikit-learn needed at run time)."""

from __future__ import annotations

import numpy as np

__all__ = [
    "mae", "rmse", "average_precision", "f1_score", "recall_at_precision",
    "accuracy", "nll", "expected_calibration_error", "reliability",
]


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y)))


def rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def _sorted_pr(score: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="mergesort")
    y = y[order].astype(float)
    s = score[order]
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    last = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]  # one point per distinct threshold
    tp, fp = tp[last], fp[last]
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(y.sum(), 1)
    return precision, recall


def average_precision(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the precision-recall curve as Σ (R_k − R_{k−1})·P_k (scikit-learn's
    ``average_precision_score``)."""
    precision, recall = _sorted_pr(score, y)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_score(prob: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> float:
    pred = prob >= threshold
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def recall_at_precision(score: np.ndarray, y: np.ndarray, min_precision: float = 0.9) -> float:
    """The best recall among thresholds whose precision is at least ``min_precision``."""
    precision, recall = _sorted_pr(score, y)
    ok = precision >= min_precision
    return float(recall[ok].max()) if ok.any() else 0.0


def accuracy(prob: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(prob.argmax(1) == y))


def nll(prob: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(prob[np.arange(y.size), y], 1e-12, 1.0)
    return float(-np.mean(np.log(p)))


def reliability(prob: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Per confidence bin: mean confidence, accuracy and count (equal-width bins)."""
    conf = prob.max(1)
    correct = (prob.argmax(1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        out["count"].append(n)
        out["confidence"].append(float(conf[sel].mean()) if n else float((edges[b] + edges[b + 1]) / 2))
        out["accuracy"].append(float(correct[sel].mean()) if n else 0.0)
    return out


def expected_calibration_error(prob: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE: Σ_b (n_b / n)·|accuracy_b − confidence_b| over equal-width confidence bins."""
    r = reliability(prob, y, bins)
    n = max(sum(r["count"]), 1)
    return float(sum(c / n * abs(a - p) for c, a, p in zip(r["count"], r["accuracy"], r["confidence"])))
