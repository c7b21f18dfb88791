"""Weighted sums of losses: ``weighted(0.5, DiceLoss(mode="binary")) + weighted(0.5,
BCEWithLogitsLoss())`` is a Module whose value is the sum of its parts (gradients too).

Terms may be losskit Modules, torch's own loss Modules (``torch.nn.BCEWithLogitsLoss()``) or
plain callables ``f(input, target, ...)``. Each term keeps its own configuration (set when the
term is built); call-time keyword arguments go to the terms that accept them, and one that no
term accepts raises (a compound loss never swallows an option). The unweighted value of every
term is kept in ``.last_terms`` for logging (or returned with ``return_terms=True``). A weight
may be a number or a schedule ``step -> weight``; ``set_step(step)`` sets the step.

Examples:
    >>> import torch
    >>> from losskit.compose import weighted
    >>> from losskit.nn import L1Loss, MSELoss
    >>> loss = weighted(0.5, MSELoss()) + weighted(2.0, L1Loss())
    >>> x, y = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])
    >>> loss(x, y)                    # 0.5 * 5 + 2 * 2
    tensor(6.5000)
    >>> {k: float(v) for k, v in loss.last_terms.items()}
    {'mse': 5.0, 'l1': 2.0}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from losskit._core.checks import LossInputError, did_you_mean

__all__ = ["Compose", "weighted"]

Weight = float | Callable[[int], float]


def _term_name(loss: Any) -> str:
    fn = getattr(type(loss), "fn", None)
    spec = getattr(fn, "__losskit_spec__", None)
    if spec is not None:
        return spec.name
    if isinstance(loss, nn.Module):
        return type(loss).__name__
    return getattr(loss, "__name__", type(loss).__name__)


def _accepted(loss: Any) -> set[str] | None:
    """Keyword names a term accepts at call time (``None``: anything)."""
    target = getattr(type(loss), "fn", None)
    if target is not None:
        target = inspect.unwrap(target)
    elif isinstance(loss, nn.Module):
        target = loss.forward
    else:
        target = loss
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


class _Callable(nn.Module):
    """Holds a plain callable as a Module term."""

    def __init__(self, fn: Callable[..., Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.fn(*args, **kwargs)


class Compose(nn.Module):
    """A weighted sum of loss terms, itself a loss Module.

    Args:
        terms: ``(weight, loss)`` pairs; a weight is a number or a schedule ``step -> weight``.
        names: optional names of the terms (default: the registry name, class or function
            name, made unique).
    """

    def __init__(self, terms: Iterable[tuple[Weight, Any]], names: Iterable[str] | None = None) -> None:
        super().__init__()
        pairs = list(terms)
        if not pairs:
            raise LossInputError("Compose needs at least one (weight, loss) term")
        given = list(names) if names is not None else [_term_name(loss) for _, loss in pairs]
        if len(given) != len(pairs):
            raise LossInputError(f"{len(given)} names for {len(pairs)} terms")
        unique: list[str] = []
        for n in given:
            k, base = 2, n
            while n in unique:
                n, k = f"{base}_{k}", k + 1
            unique.append(n)
        for w, loss in pairs:
            if not (callable(w) or isinstance(w, (int, float))):
                raise LossInputError(f"weight {w!r} is neither a number nor a schedule step -> weight")
            if not callable(loss):
                raise LossInputError(f"term {loss!r} is not callable")
        self.names: list[str] = unique
        self.weights: list[Weight] = [w for w, _ in pairs]
        self.terms = nn.ModuleList(
            [loss if isinstance(loss, nn.Module) else _Callable(loss) for _, loss in pairs]
        )
        self._accepts = [_accepted(loss) for _, loss in pairs]
        self.step = 0
        self.last_terms: dict[str, Tensor] = {}

    # ----------------------------------------------------------------- algebra
    def _pairs(self) -> list[tuple[Weight, Any, str]]:
        return [
            (w, t.fn if isinstance(t, _Callable) else t, n)
            for w, t, n in zip(self.weights, self.terms, self.names)
        ]

    @staticmethod
    def _lift(other: Any) -> Compose:
        if isinstance(other, Compose):
            return other
        if callable(other):
            return Compose([(1.0, other)])
        raise TypeError(f"cannot add a loss and {type(other).__name__}")

    def __add__(self, other: Any) -> Compose:
        both = self._pairs() + self._lift(other)._pairs()
        return Compose([(w, t) for w, t, _ in both], [n for _, _, n in both])

    def __radd__(self, other: Any) -> Compose:
        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts at 0
            return self
        return self._lift(other) + self

    def __mul__(self, factor: float) -> Compose:
        if not isinstance(factor, (int, float)):
            return NotImplemented
        pairs = self._pairs()
        scaled = [
            (w * factor if isinstance(w, (int, float)) else _scaled(w, factor), t)
            for w, t, _ in pairs
        ]
        return Compose(scaled, [n for _, _, n in pairs])

    __rmul__ = __mul__

    # ----------------------------------------------------------------- use
    def set_step(self, step: int) -> None:
        """Set the training step that weight schedules are evaluated at."""
        self.step = int(step)

    def current_weights(self) -> dict[str, float]:
        """Every term's weight at the current step."""
        return {
            n: float(w(self.step)) if callable(w) else float(w)
            for n, w in zip(self.names, self.weights)
        }

    def forward(self, *args: Any, return_terms: bool = False, **kwargs: Any) -> Any:
        for key in kwargs:
            if all(acc is not None and key not in acc for acc in self._accepts):
                known = sorted(set().union(*(a for a in self._accepts if a)))
                raise LossInputError(
                    f"no term of this Compose ({', '.join(self.names)}) accepts the keyword "
                    f"{key!r}.{did_you_mean(key, known)} Configure each term when you build it."
                )
        weights = self.current_weights()
        total: Tensor | None = None
        terms: dict[str, Tensor] = {}
        for name, term, acc in zip(self.names, self.terms, self._accepts):
            mine = {k: v for k, v in kwargs.items() if acc is None or k in acc}
            value = term(*args, **mine)
            if not isinstance(value, Tensor):
                value = torch.as_tensor(value)
            terms[name] = value
            part = weights[name] * value
            total = part if total is None else total + part
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        assert total is not None
        return (total, terms) if return_terms else total

    def extra_repr(self) -> str:
        return ", ".join(
            f"{n}: {w if isinstance(w, (int, float)) else 'schedule'}"
            for n, w in zip(self.names, self.weights)
        )


def _scaled(schedule: Callable[[int], float], factor: float) -> Callable[[int], float]:
    return lambda step: factor * schedule(step)


def weighted(weight: Weight, loss: Any, name: str | None = None) -> Compose:
    """A one-term :class:`Compose`: ``weight * loss``; add them up with ``+``."""
    return Compose([(weight, loss)], None if name is None else [name])
