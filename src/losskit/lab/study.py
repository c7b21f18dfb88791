"""The built-in study: the textbook claims about choosing a loss, measured on datasets that ship
with scikit-learn (nothing is downloaded). Each claim ends in a verdict with its spread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from losskit._core.registry import get_spec
from losskit.lab.compare import LabResult, compare

__all__ = ["Claim", "run_study", "CLAIMS"]

Progress = Callable[[str], None]


@dataclass
class Claim:
    """One claim: what was run, the numbers, and whether the claim held."""

    key: str
    title: str
    statement: str
    held: bool
    verdict: str
    result: LabResult | None = None
    details: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "title": self.title, "statement": self.statement, "held": self.held,
                "verdict": self.verdict, "details": self.details,
                "result": self.result.to_dict() if self.result else None}


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.4g} ± {np.std(values):.2g}"


def claim_outliers(seeds: int, progress: Progress | None = None) -> Claim:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)

    def inject(y_train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        idx = rng.choice(y_train.size, size=max(1, y_train.size // 10), replace=False)
        y_train[idx] += 10 * y_train.std()  # one-sided gross errors, as from a broken sensor
        return y_train

    res = compare(X, y, task="regression", folds=3, seeds=seeds, model="linear", epochs=300, lr=0.05,
                  train_target_transform=inject, progress=progress)
    mae = {k: res.metrics[k]["mae"] for k in res.losses}
    robust = ["mae", "huber"]
    held = all(np.mean(mae[k]) < np.mean(mae["mse"]) for k in robust)
    verdict = (f"{'HELD' if held else 'DID NOT HOLD'}: clean-test MAE mse {_ms(mae['mse'])}, "
               + ", ".join(f"{k} {_ms(mae[k])}" for k in robust))
    return Claim("outliers", "Robust losses resist gross outliers",
                 "With 10% gross outliers in the training targets, Huber and MAE give a lower "
                 "clean-test error than MSE (diabetes, linear model).", held, verdict, res)


def claim_estimator(seeds: int, progress: Progress | None = None) -> Claim:
    """Fit a constant to a skewed sample: MSE → mean, MAE → median, pinball(τ) → τ-quantile."""
    taus = (0.1, 0.9)
    fits: dict[str, list[float]] = {"mse": [], "mae": [], **{f"pinball_{t}": [] for t in taus}}
    errors: dict[str, list[float]] = {k: [] for k in fits}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        sample = rng.lognormal(0.0, 0.75, size=4000)
        y = torch.tensor(sample, dtype=torch.float32)
        targets = {"mse": float(sample.mean()), "mae": float(np.median(sample)),
                   **{f"pinball_{t}": float(np.quantile(sample, t)) for t in taus}}
        losses = {"mse": lambda c, y=y: get_spec("mse").fn(c.expand_as(y), y),
                  "mae": lambda c, y=y: get_spec("l1").fn(c.expand_as(y), y),
                  **{f"pinball_{t}": (lambda c, t=t, y=y: get_spec("quantile").fn(c.expand_as(y), y,
                                                                                 quantile=t))
                     for t in taus}}
        for name, loss in losses.items():
            c = torch.zeros(1, requires_grad=True)
            opt = torch.optim.Adam([c], lr=0.05)
            steps = 1500
            for step in range(steps):
                for g in opt.param_groups:
                    g["lr"] = 0.05 * (1 - step / steps) + 1e-4
                opt.zero_grad()
                loss(c).backward()
                opt.step()
            fitted = float(c.detach())
            fits[name].append(fitted)
            errors[name].append(abs(fitted - targets[name]) / float(sample.std()))
        if progress:
            progress(f"estimator seed {seed + 1}/{seeds}")
    worst = max(max(v) for v in errors.values())
    held = worst < 0.02
    verdict = (f"{'HELD' if held else 'DID NOT HOLD'}: largest gap between the fitted constant and its "
               f"statistic {worst:.2g} standard deviations (tolerance 0.02); "
               + ", ".join(f"{k} {_ms(v)}" for k, v in fits.items()))
    return Claim("estimator", "Each loss induces its estimator",
                 "Fitting a constant to a skewed (log-normal) sample, MSE converges to the mean, "
                 "MAE to the median and pinball(τ) to the τ-quantile.", held, verdict,
                 details={"fits": fits, "relative_error": errors,
                          "statistics": {"mean": "mse", "median": "mae", "quantiles": list(taus)}})


def _imbalanced_breast_cancer(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    y = (y == 0).astype(np.int64)  # positive = malignant
    rng = np.random.default_rng(1234 + seed)
    pos, neg = np.nonzero(y == 1)[0], np.nonzero(y == 0)[0]
    keep_pos = rng.choice(pos, size=round(0.05 / 0.95 * neg.size), replace=False)
    idx = np.sort(np.r_[neg, keep_pos])
    return X[idx], y[idx]


def claim_imbalance(seeds: int, progress: Progress | None = None) -> Claim:
    X, y = _imbalanced_breast_cancer()
    res = compare(X, y, task="binary", folds=3, seeds=seeds, model="linear", epochs=300, lr=0.05,
                  progress=progress)
    f1 = {k: res.metrics[k]["f1"] for k in res.losses}
    helpers = ["bce_pos_weight", "sigmoid_focal"]
    held = all(np.mean(f1[k]) > np.mean(f1["bce"]) for k in helpers)
    ap = {k: res.metrics[k]["pr_auc"] for k in res.losses}
    verdict = (f"{'HELD' if held else 'DID NOT HOLD'}: F1 at threshold 0.5 bce {_ms(f1['bce'])}, "
               + ", ".join(f"{k} {_ms(f1[k])}" for k in helpers)
               + f"; PR-AUC bce {_ms(ap['bce'])}, "
               + ", ".join(f"{k} {_ms(ap[k])}" for k in helpers))
    return Claim("imbalance", "Re-weighting and focal loss help severe imbalance",
                 f"On breast cancer subsampled to {y.mean():.1%} positives, BCE with pos_weight and "
                 "sigmoid focal loss find more positives at threshold 0.5 (higher F1) than plain BCE.",
                 held, verdict, res)


def claim_calibration(seeds: int, progress: Progress | None = None) -> Claim:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    res = compare(X, y.astype(np.int64), task="multiclass", folds=3, seeds=seeds, model="mlp",
                  epochs=300, lr=0.01, progress=progress)
    ece = {k: res.metrics[k]["ece"] for k in res.losses}
    held = np.mean(ece["label_smoothing_0.1"]) < np.mean(ece["cross_entropy"])
    verdict = (f"{'HELD' if held else 'DID NOT HOLD'}: expected calibration error cross_entropy "
               f"{_ms(ece['cross_entropy'])}, label_smoothing_0.1 {_ms(ece['label_smoothing_0.1'])}")
    return Claim("calibration", "Label smoothing improves calibration",
                 "On digits with a one-hidden-layer MLP, label smoothing 0.1 gives a lower expected "
                 "calibration error than plain cross-entropy.", held, verdict, res)


CLAIMS: dict[str, Callable[[int, Progress | None], Claim]] = {
    "outliers": claim_outliers,
    "estimator": claim_estimator,
    "imbalance": claim_imbalance,
    "calibration": claim_calibration,
}


def run_study(seeds: int = 3, claims: list[str] | None = None,
              progress: Progress | None = None) -> list[Claim]:
    """Run the built-in claims (all by default)."""
    return [CLAIMS[name](seeds, progress) for name in (claims or list(CLAIMS))]
