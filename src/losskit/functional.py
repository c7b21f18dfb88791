"""Functional losses: ``losskit.functional.huber_loss(input, target, delta=...)``.

Every registered loss function, its aliases (``mae_loss`` for ``l1_loss``) and the family
helpers (``class_weights``, ...) live here. They are collected from the family modules'
``__all__``, so a loss is written once, in its family file.
"""

from __future__ import annotations

from typing import Any

from losskit._core.module import LossModule
from losskit._core.registry import catalog
from losskit.losses import FAMILY_MODULES

__all__: list[str] = []


def _collect() -> None:
    namespace = globals()
    for module in FAMILY_MODULES.values():
        for name in module.__all__:
            obj: Any = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, LossModule):
                continue
            namespace[name] = obj
            __all__.append(name)
    for spec in catalog():
        for alias in spec.aliases:
            if alias not in namespace:
                namespace[alias] = spec.fn
                __all__.append(alias)


_collect()
