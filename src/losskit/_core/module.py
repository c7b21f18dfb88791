"""``LossModule``: the thin ``nn.Module`` form of a loss function.

A Module stores the function's keyword options (tensor options as buffers, so ``.to()`` moves
them) and calls the function. Per-batch arguments (``sample_weight``, ``mask``,
``normalizer``, ...) are passed at call time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

from losskit._core.checks import LossInputError, did_you_mean

__all__ = ["LossModule"]

#: Options that vary per batch: given to ``forward``, never stored.
CALL_TIME = ("sample_weight", "mask", "normalizer")


class LossModule(nn.Module):
    """Base class of every losskit Module. Subclasses set ``fn = staticmethod(loss_fn)``."""

    fn: ClassVar[Callable[..., Tensor]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("fn")
        if fn is None:
            return
        fn = fn.__func__ if isinstance(fn, staticmethod) else fn
        spec = getattr(fn, "__losskit_spec__", None)
        if spec is not None:
            spec.module = cls
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in CALL_TIME
        ]
        cls.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        if not cls.__doc__:
            cls.__doc__ = f"Module form of :func:`{fn.__name__}`."

    def __init__(self, **options: Any) -> None:
        super().__init__()
        allowed = self._option_names()
        for key in options:
            if key not in allowed:
                raise LossInputError(
                    f"{type(self).__name__} got an unknown option {key!r}.{did_you_mean(key, allowed)} "
                    f"Options: {', '.join(allowed) or '(none)'}."
                )
        self._options: dict[str, Any] = {}
        for key, value in options.items():
            if isinstance(value, Tensor):
                self.register_buffer(key, value)
            else:
                self._options[key] = value

    @classmethod
    def _option_names(cls) -> list[str]:
        return list(inspect.signature(cls).parameters)

    @property
    def options(self) -> dict[str, Any]:
        """The stored options, tensor ones included."""
        opts = dict(self._options)
        for name, buf in self.named_buffers(recurse=False):
            opts[name] = buf
        return opts

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return type(self).fn(*args, **{**self.options, **kwargs})

    # Composition: 0.5 * DiceLoss(mode="binary") + 0.5 * BCEWithLogitsLoss() is a Compose.
    def __mul__(self, weight: object) -> Any:
        from losskit.compose import weighted

        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            return NotImplemented
        return weighted(weight, self)

    __rmul__ = __mul__

    def __add__(self, other: object) -> Any:
        from losskit.compose import weighted

        return weighted(1.0, self) + other

    def __radd__(self, other: object) -> Any:
        from losskit.compose import Compose, weighted

        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts from 0
            return weighted(1.0, self)
        return Compose._lift(other) + weighted(1.0, self)

    def extra_repr(self) -> str:
        parts = []
        defaults = {n: p.default for n, p in inspect.signature(type(self)).parameters.items()}
        for key, value in {**defaults, **self.options}.items():
            if isinstance(value, Tensor):
                value = f"tensor{tuple(value.shape)}" if value.numel() > 6 else value.tolist()
            parts.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
        return ", ".join(parts)
