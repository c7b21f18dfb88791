"""k-fold comparison of losses on one dataset: the same model and budget for every loss."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from losskit._core.checks import LossInputError
from losskit.lab import metrics as M
from losskit.lab.tasks import PRIMARY, TaskContext, evaluate, resolve_losses
from losskit.lab.train import build_model, fit, predict

__all__ = ["LabResult", "compare", "folds_for"]

Progress = Callable[[str], None]


@dataclass
class LabResult:
    """Per-loss metric values over folds × seeds, the paired comparison and a recommendation."""

    task: str
    losses: list[str]
    metrics: dict[str, dict[str, list[float]]]
    curves: dict[str, list[float]]
    primary: str
    higher_is_better: bool
    settings: dict[str, object] = field(default_factory=dict)
    reliability: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def summary(self) -> list[dict[str, object]]:
        """One row per loss: mean and std of each metric."""
        rows = []
        for loss in self.losses:
            row: dict[str, object] = {"loss": loss}
            for metric, values in self.metrics[loss].items():
                row[metric] = float(np.mean(values))
                row[f"{metric}_std"] = float(np.std(values))
            rows.append(row)
        return rows

    def recommendation(self) -> dict[str, object]:
        """The best loss by the primary metric and its paired margin over every other one."""
        sign = 1.0 if self.higher_is_better else -1.0
        means = {k: float(np.mean(self.metrics[k][self.primary])) for k in self.losses}
        best = max(self.losses, key=lambda k: sign * means[k])
        versus = {}
        for other in self.losses:
            if other == best:
                continue
            d = sign * (np.asarray(self.metrics[best][self.primary])
                        - np.asarray(self.metrics[other][self.primary]))
            se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")
            versus[other] = {"margin": float(d.mean()), "margin_std": float(d.std()),
                             "standard_error": se, "wins": int((d > 0).sum()), "runs": int(d.size),
                             "clear": bool(d.size > 1 and d.mean() > 2 * se)}
        runner_up = max(versus, key=lambda k: sign * means[k]) if versus else None
        return {"best": best, "metric": self.primary, "higher_is_better": self.higher_is_better,
                "mean": means[best], "runner_up": runner_up, "versus": versus}

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["summary"] = self.summary()
        out["recommendation"] = self.recommendation()
        return out


def folds_for(y: np.ndarray, task: str, k: int, seed: int) -> list[np.ndarray]:
    """Test-index sets of a shuffled (stratified for classification) k-fold split."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        return list(np.array_split(rng.permutation(y.size), k))
    parts: list[list[int]] = [[] for _ in range(k)]
    for c in np.unique(y):
        idx = rng.permutation(np.nonzero(y == c)[0])
        for j, chunk in enumerate(np.array_split(idx, k)):
            parts[j].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _validate(X: np.ndarray, y: np.ndarray, task: str, folds: int) -> None:
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise LossInputError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}.")
    if not np.isfinite(X).all() or (task == "regression" and not np.isfinite(y).all()):
        raise LossInputError("the data contain NaN or inf. Fix: clean them (the CLI's --dropna drops rows).")
    if folds < 2:
        raise LossInputError(f"folds={folds}: cross-validation needs at least 2 folds.")
    if y.size < 2 * folds:
        raise LossInputError(
            f"{y.size} rows are too few for {folds} folds (need at least {2 * folds}). "
            "Fix: use fewer --folds or more data."
        )
    if task != "regression":
        classes, counts = np.unique(y, return_counts=True)
        if classes.size < 2:
            raise LossInputError("the target has a single class; a classifier needs at least two.")
        if counts.min() < folds:
            raise LossInputError(
                f"class {classes[counts.argmin()]!r} has {counts.min()} rows, fewer than the "
                f"{folds} folds. Fix: use --folds {max(2, int(counts.min()))} or more data."
            )


def compare(
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    losses: Sequence[str] | None = None,
    folds: int = 5,
    seeds: int = 1,
    model: str = "linear",
    epochs: int = 300,
    lr: float = 0.05,
    weight_decay: float = 0.0,
    train_target_transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    progress: Progress | None = None,
) -> LabResult:
    """Train ``model`` once per loss, fold and seed (same splits, same initialisation, same
    budget for every loss) and evaluate on the held-out fold. ``train_target_transform``
    corrupts the training targets only (e.g. injected outliers); test targets stay clean."""
    choices = resolve_losses(task, list(losses) if losses else None)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    _validate(X, y, task, folds)
    if model not in ("linear", "mlp"):
        raise LossInputError(f"model={model!r} is unknown; choose 'linear' or 'mlp'.")
    n_classes = int(y.max()) + 1 if task == "multiclass" else 1
    metrics: dict[str, dict[str, list[float]]] = {c.name: {} for c in choices}
    curves: dict[str, list[float]] = {}
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c.name: [] for c in choices}
    total, done = seeds * folds * len(choices), 0
    for seed in range(seeds):
        for f, test in enumerate(folds_for(y, task, folds, seed)):
            train = np.setdiff1d(np.arange(y.size), test)
            y_train = y[train]
            if train_target_transform is not None:
                y_train = train_target_transform(y_train.copy(), np.random.default_rng(seed * 7919 + f))
            mu, sd = X[train].mean(0), X[train].std(0)
            sd[sd == 0] = 1.0
            Xtr = torch.tensor((X[train] - mu) / sd, dtype=torch.float32)
            Xte = torch.tensor((X[test] - mu) / sd, dtype=torch.float32)
            if task == "regression":
                ym, ys = float(y_train.mean()), float(y_train.std() or 1.0)
                ytr = torch.tensor((y_train - ym) / ys, dtype=torch.float32)
            elif task == "binary":
                ytr = torch.tensor(y[train], dtype=torch.float32)
            else:
                ytr = torch.tensor(y[train], dtype=torch.long)
            counts = np.bincount(y[train].astype(np.int64), minlength=max(n_classes, 2)).tolist() \
                if task != "regression" else []
            ctx = TaskContext(task, n_classes, counts)
            for choice in choices:
                torch.manual_seed(1000 * seed + f)
                net = build_model(model, X.shape[1], n_classes)
                curve = fit(net, Xtr, ytr, choice.make(ctx), epochs=epochs, lr=lr,
                            weight_decay=weight_decay)
                out = predict(net, Xte)
                if task == "regression":
                    out = out * ys + ym
                for k, v in evaluate(task, out, y[test]).items():
                    metrics[choice.name].setdefault(k, []).append(v)
                curves.setdefault(choice.name, curve)
                if task == "multiclass" and seed == 0:
                    pooled[choice.name].append((torch.softmax(out.double(), 1).numpy(), y[test]))
                done += 1
                if progress:
                    progress(f"{done}/{total}")
    primary, higher = PRIMARY[task]
    settings = {"folds": folds, "seeds": seeds, "model": model, "epochs": epochs, "lr": lr,
                "weight_decay": weight_decay, "rows": int(y.size), "features": int(X.shape[1])}
    reliability = {
        name: M.reliability(np.concatenate([p for p, _ in parts]), np.concatenate([t for _, t in parts]))
        for name, parts in pooled.items() if parts
    }
    return LabResult(task, [c.name for c in choices], metrics, curves, primary, higher, settings,
                     reliability)
