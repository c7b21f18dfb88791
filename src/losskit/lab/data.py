"""Reading a user's CSV into a feature matrix and a target, with clear errors."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from losskit._core.checks import LossInputError, did_you_mean

__all__ = ["Dataset", "load_csv", "encode"]

_MISSING = {"", "na", "nan", "null", "none", "?"}


@dataclass
class Dataset:
    """Raw columns: numeric ones as float arrays (NaN = missing), the rest as strings."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    classes: list[str] | None  # class labels for classification targets


def _as_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return math.nan if value.strip().lower() in _MISSING else None


def load_csv(path: str | Path, target: str, task: str, *, dropna: bool = False) -> Dataset:
    """Read ``path``; numeric columns are standardised later, other columns one-hot encoded."""
    path = Path(path)
    if not path.is_file():
        raise LossInputError(f"no such file: {str(path)!r}. Fix: pass the path of a CSV file.")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0]:
        raise LossInputError(f"{path} is empty. Fix: the first line must name the columns.")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
    if target not in header:
        raise LossInputError(
            f"target column {target!r} is not in {path.name}.{did_you_mean(target, header)} "
            f"Columns: {', '.join(header)}."
        )
    bad = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise LossInputError(f"{path.name}: line(s) {bad[:5]} do not have {len(header)} fields.")
    columns = {h: [r[j].strip() for r in body] for j, h in enumerate(header)}
    missing_rows = {i for col in columns.values() for i, v in enumerate(col) if v.lower() in _MISSING}
    if missing_rows and not dropna:
        raise LossInputError(
            f"{len(missing_rows)} row(s) of {path.name} have missing values (e.g. line "
            f"{min(missing_rows) + 2}). Fix: clean them, or pass --dropna to drop those rows."
        )
    keep = [i for i in range(len(body)) if i not in missing_rows]
    columns = {h: [v[i] for i in keep] for h, v in columns.items()}
    y_raw = columns.pop(target)
    y, classes = _target(y_raw, task, target)
    X, names = encode(columns)
    return Dataset(X, y, names, classes)


def _target(values: list[str], task: str, name: str) -> tuple[np.ndarray, list[str] | None]:
    if task == "regression":
        nums = [_as_float(v) for v in values]
        if any(v is None for v in nums):
            example = next(v for v, n in zip(values, nums) if n is None)
            raise LossInputError(
                f"target {name!r} is not numeric (e.g. {example!r}) but task is regression. "
                "Fix: choose --task binary/multiclass, or a numeric target column."
            )
        return np.asarray(nums, dtype=np.float64), None
    classes = sorted(set(values), key=lambda v: (_as_float(v) is None, _as_float(v) or 0.0, v))
    if len(classes) < 2:
        raise LossInputError(
            f"target {name!r} has a single class ({classes[0] if classes else 'none'!r}); a "
            "classifier needs at least two. Fix: check the target column."
        )
    if task == "binary" and len(classes) != 2:
        raise LossInputError(
            f"target {name!r} has {len(classes)} classes but task is binary. Fix: use --task multiclass."
        )
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[v] for v in values], dtype=np.int64), classes


def encode(columns: dict[str, list[str]]) -> tuple[np.ndarray, list[str]]:
    """Numeric columns as they are; every other column one-hot encoded."""
    parts, names = [], []
    for name, values in columns.items():
        nums = [_as_float(v) for v in values]
        if all(v is not None for v in nums):
            parts.append(np.asarray(nums, dtype=np.float64)[:, None])
            names.append(name)
        else:
            levels = sorted(set(values))
            parts.append(np.asarray([[v == lv for lv in levels] for v in values], dtype=np.float64))
            names += [f"{name}={lv}" for lv in levels]
    n = len(next(iter(columns.values()))) if columns else 0
    X = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
    return X, names
