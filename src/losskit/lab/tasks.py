"""What each task trains and measures: loss presets, output sizes, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from losskit._core.checks import LossInputError, did_you_mean
from losskit._core.registry import get_spec
from losskit.lab import metrics as M

__all__ = ["TASKS", "LossChoice", "TaskContext", "resolve_losses", "evaluate", "PRIMARY"]

TASKS = ("regression", "binary", "multiclass")

#: the metric a recommendation ranks by, and whether higher is better
PRIMARY: dict[str, tuple[str, bool]] = {
    "regression": ("mae", False),
    "binary": ("pr_auc", True),
    "multiclass": ("nll", False),
}


@dataclass
class TaskContext:
    """What a loss may need to know about the training labels."""

    task: str
    n_classes: int = 1
    class_counts: list[int] = field(default_factory=list)


LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class LossChoice:
    name: str
    label: str
    registry_name: str
    make: Callable[[TaskContext], LossFn]


def _fn(name: str) -> Callable[..., Tensor]:
    return get_spec(name).fn


def _preset(label: str, registry: str, **options: object) -> LossChoice:
    return LossChoice(label, label, registry, lambda ctx: lambda out, y: _fn(registry)(out, y, **options))


def _pos_weight(ctx: TaskContext) -> LossFn:
    neg, pos = ctx.class_counts
    pw = torch.tensor(neg / max(pos, 1))
    return lambda out, y: _fn("binary_cross_entropy_with_logits")(out, y, pos_weight=pw)


def _class_balanced(ctx: TaskContext) -> LossFn:
    from losskit.functional import class_weights

    w = class_weights(torch.tensor(ctx.class_counts, dtype=torch.float64), method="effective_number",
                      beta=0.999).float()
    return lambda out, y: _fn("binary_cross_entropy_with_logits")(out, y, sample_weight=w[y.long()])


PRESETS: dict[str, dict[str, LossChoice]] = {
    "regression": {c.name: c for c in [
        _preset("mse", "mse"),
        _preset("mae", "l1"),
        _preset("huber", "huber", delta=1.0),
        _preset("log_cosh", "log_cosh"),
        _preset("pseudo_huber", "pseudo_huber", delta=1.0),
        _preset("general_robust", "general_robust", alpha=0.0),
    ]},
    "binary": {c.name: c for c in [
        _preset("bce", "binary_cross_entropy_with_logits"),
        LossChoice("bce_pos_weight", "bce_pos_weight", "binary_cross_entropy_with_logits", _pos_weight),
        _preset("sigmoid_focal", "sigmoid_focal_loss", alpha=0.25, gamma=2.0),
        LossChoice("class_balanced", "class_balanced", "binary_cross_entropy_with_logits",
                   _class_balanced),
        _preset("asymmetric", "asymmetric_loss", gamma_pos=0.0, gamma_neg=4.0, clip=0.05),
    ]},
    "multiclass": {c.name: c for c in [
        _preset("cross_entropy", "cross_entropy"),
        _preset("label_smoothing_0.1", "cross_entropy", label_smoothing=0.1),
        _preset("softmax_focal", "softmax_focal_loss", gamma=2.0),
        _preset("poly1", "poly1_cross_entropy", epsilon=1.0),
    ]},
}


def resolve_losses(task: str, names: list[str] | None) -> list[LossChoice]:
    """The presets of a task, or the named ones: a preset label or any registered loss name
    (called with its default options)."""
    if task not in TASKS:
        raise LossInputError(
            f"task={task!r} is unknown.{did_you_mean(task, TASKS)} Tasks: {', '.join(TASKS)}."
        )
    presets = PRESETS[task]
    if not names:
        return list(presets.values())
    out = []
    for name in names:
        if name in presets:
            out.append(presets[name])
            continue
        try:
            spec = get_spec(name)
        except LossInputError as e:
            hint = did_you_mean(name, list(presets))
            detail = hint or " " + str(e)
            raise LossInputError(f"unknown loss {name!r} for task {task}.{detail}") from None
        out.append(_preset(name, spec.name))
    return out


def evaluate(task: str, out: Tensor, y: np.ndarray) -> dict[str, float]:
    """Task metrics of model outputs (regression predictions, binary logits, class logits)."""
    if task == "regression":
        pred = out.double().numpy()
        return {"mae": M.mae(pred, y), "rmse": M.rmse(pred, y)}
    if task == "binary":
        prob = torch.sigmoid(out.double()).numpy()
        return {"pr_auc": M.average_precision(prob, y), "f1": M.f1_score(prob, y),
                "recall_at_p90": M.recall_at_precision(prob, y, 0.9)}
    prob = torch.softmax(out.double(), dim=1).numpy()
    return {"accuracy": M.accuracy(prob, y), "nll": M.nll(prob, y),
            "ece": M.expected_calibration_error(prob, y)}
