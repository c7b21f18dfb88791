"""Module losses: ``losskit.nn.HuberLoss(delta=...)``, collected from the family modules."""

from __future__ import annotations

from typing import Any

from losskit._core.module import LossModule
from losskit.losses import FAMILY_MODULES

__all__: list[str] = ["LossModule"]


def _collect() -> None:
    namespace = globals()
    for module in FAMILY_MODULES.values():
        for name in module.__all__:
            obj: Any = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, LossModule):
                namespace[name] = obj
                __all__.append(name)


_collect()
