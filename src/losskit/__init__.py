"""losskit: loss functions for PyTorch, each checked against an independent reference,
numerically safe, and described by properties the library verifies itself."""

from __future__ import annotations

from losskit import functional, nn
from losskit._core.checks import LossInputError, is_debug, set_debug
from losskit._core.registry import LossSpec, Properties, catalog, get, get_spec
from losskit.check import check_loss
from losskit.compose import Compose, weighted
from losskit.recommend import recommend
from losskit.table import table

__version__ = "0.1.0"

__all__ = [
    "Compose",
    "check_loss",
    "recommend",
    "table",
    "weighted",
    "LossInputError",
    "LossSpec",
    "Properties",
    "__version__",
    "catalog",
    "functional",
    "get",
    "get_spec",
    "is_debug",
    "nn",
    "set_debug",
]
