"""Input validation: every bad input raises :class:`LossInputError` naming the argument,
showing what came in, and saying the fix.

Cheap checks (shapes, dtypes, option values) always run. Checks that must read the data
(labels in range, probabilities in [0, 1]) run only in debug mode, so that the default path
never synchronises with the GPU and stays traceable by ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "LossInputError",
    "check_class_index",
    "check_floating",
    "check_logits_not_probabilities",
    "check_ndim",
    "class_vector",
    "check_number",
    "check_option",
    "check_probabilities",
    "check_same_shape",
    "check_tensor",
    "did_you_mean",
    "is_debug",
    "set_debug",
    "shape_str",
]


class LossInputError(ValueError):
    """A loss received an input it cannot use. The message names the argument, shows what
    came in and says how to fix it."""


_DEBUG: bool | None = None


def set_debug(enabled: bool) -> None:
    """Turn on (or off) the checks that read tensor values: labels in range, probabilities in
    [0, 1], logits that look like probabilities. They synchronise with the device, so they are
    off by default; ``LOSSKIT_DEBUG=1`` in the environment turns them on too."""
    global _DEBUG
    _DEBUG = bool(enabled)


def is_debug() -> bool:
    """Whether the data-reading checks are on (see :func:`set_debug`)."""
    if _DEBUG is not None:
        return _DEBUG
    return os.environ.get("LOSSKIT_DEBUG", "") not in ("", "0", "false", "False")


def shape_str(x: Tensor | Sequence[int]) -> str:
    shape = tuple(x.shape) if isinstance(x, Tensor) else tuple(x)
    return str(shape)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _reshape_hint(a_name: str, a: tuple[int, ...], b_name: str, b: tuple[int, ...]) -> str:
    if a[:-1] == b and a[-1:] == (1,):
        return f"use {a_name}.squeeze(-1) (or {b_name}.unsqueeze(-1)) so both are {shape_str(b)}"
    if b[:-1] == a and b[-1:] == (1,):
        return f"use {b_name}.squeeze(-1) (or {a_name}.unsqueeze(-1)) so both are {shape_str(a)}"
    if len(a) == len(b) + 1 and a[0] == b[0] and a[1] == 1 and a[2:] == b[1:]:
        return f"use {a_name}.squeeze(1) so both are {shape_str(b)}"
    if sorted(a) == sorted(b):
        return f"permute {a_name} or {b_name} so the dimensions line up"
    if a and b and _numel(a) == _numel(b):
        return f"use {a_name}.reshape({b_name}.shape) if the elements correspond one to one"
    return f"give {a_name} and {b_name} the same shape"


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def check_same_shape(
    input: Tensor,
    target: Tensor,
    names: tuple[str, str] = ("input", "target"),
    *,
    broadcast: bool = False,
) -> None:
    """Raise unless ``input`` and ``target`` have the same shape.

    Broadcasting between a prediction and its target is almost always a bug ((N, 1) against
    (N,) silently becomes an (N, N) loss), so it is refused unless ``broadcast=True``.
    """
    if input.shape == target.shape:
        return
    a, b = tuple(input.shape), tuple(target.shape)
    if broadcast:
        try:
            torch.broadcast_shapes(input.shape, target.shape)
            return
        except RuntimeError:
            pass
    raise LossInputError(
        f"{names[0]} has shape {shape_str(a)} but {names[1]} has shape {shape_str(b)}; "
        f"they must match (no silent broadcasting). Fix: {_reshape_hint(names[0], a, names[1], b)}."
    )


def check_option(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value in choices:
        return
    hint = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
    raise LossInputError(
        f"{name}={value!r} is not supported; choose one of {', '.join(repr(c) for c in choices)}.{hint}"
    )


def check_tensor(name: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise LossInputError(
            f"{name} must be a torch.Tensor, got {type(value).__name__}. "
            f"Fix: wrap it with torch.as_tensor({name})."
        )
    return value


def check_floating(name: str, x: Any) -> None:
    """Raise unless ``x`` is a floating-point tensor."""
    check_tensor(name, x)
    if not x.is_floating_point():
        raise LossInputError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}. "
            f"Fix: pass {name}.float()."
        )


def check_ndim(name: str, x: Tensor, ndim: int | Sequence[int], layout: str) -> None:
    """Raise unless ``x.ndim`` is ``ndim`` (or one of them); ``layout`` describes the expected
    shape, e.g. ``"(N, D)"``."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        raise LossInputError(
            f"{name} must have shape {layout}, got {shape_str(x)} ({x.ndim}-D). "
            f"Fix: reshape {name} to {layout}."
        )


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise unless ``value`` is a number within the given bounds (tensors are not read)."""
    if isinstance(value, Tensor):
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise LossInputError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
    bad = (
        (low is not None and (value <= low if low_open else value < low))
        or (high is not None and (value >= high if high_open else value > high))
        or value != value
    )
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        interval = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise LossInputError(f"{name} must lie in {interval}, got {value!r}.")


def check_class_index(
    target: Tensor, num_classes: int, *, ignore_index: int | None = None, name: str = "target"
) -> None:
    """Raise unless ``target`` holds integer class indices; in debug mode also that each is in
    ``[0, num_classes)`` or equal to ``ignore_index``."""
    if target.is_floating_point() or target.dtype == torch.bool:
        raise LossInputError(
            f"{name} must hold integer class indices (dtype torch.long), got dtype {target.dtype}. "
            f"Fix: pass {name}.long(), or use the probability-target loss for soft labels."
        )
    if not is_debug() or target.numel() == 0:
        return
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid |= target == ignore_index
    if not bool(valid.all()):
        bad = target[~valid]
        raise LossInputError(
            f"{name} holds labels outside [0, {num_classes}) "
            f"(e.g. {bad[:5].tolist()}; ignore_index={ignore_index}). "
            f"Fix: labels must be class indices 0..{num_classes - 1}; mark padding with ignore_index."
        )


def check_probabilities(x: Tensor, name: str = "input") -> None:
    """In debug mode, raise unless every value of ``x`` is in [0, 1]."""
    if not is_debug() or x.numel() == 0:
        return
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1 or lo != lo:
        raise LossInputError(
            f"{name} must hold probabilities in [0, 1], got values in [{lo:.4g}, {hi:.4g}]. "
            f"Fix: apply torch.sigmoid/softmax first, or use the *_with_logits loss on raw scores."
        )


def check_logits_not_probabilities(x: Tensor, name: str = "input") -> None:
    """In debug mode, warn when ``logits`` look like probabilities (all in [0, 1])."""
    if not is_debug() or x.numel() < 4:
        return
    lo, hi = float(x.min()), float(x.max())
    if 0.0 <= lo and hi <= 1.0:
        import warnings

        warnings.warn(
            f"{name} holds only values in [0, 1] ({lo:.3g}..{hi:.3g}) but is expected to hold logits. "
            "If these are probabilities, pass the raw scores instead (or use the probability loss).",
            stacklevel=3,
        )


def class_vector(name: str, value: Any, num_classes: int, like: Tensor) -> Tensor:
    """A per-class option (class weights, priors, alphas) as a ``(C,)`` tensor with ``like``'s
    dtype and device; a sequence is accepted, any other shape raises."""
    t = value if isinstance(value, Tensor) else torch.as_tensor(value, dtype=torch.float64)
    if t.shape != (num_classes,):
        raise LossInputError(
            f"{name} has shape {shape_str(t)} but the input has {num_classes} classes; {name} must "
            f"have shape ({num_classes},), one value per class."
        )
    return t.to(dtype=like.dtype, device=like.device)
