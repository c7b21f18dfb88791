"""Loss families, one file each: pure functions and their thin Modules side by side.

Importing this package registers every loss. A family lists its public names in ``__all__``;
:mod:`losskit.functional` and :mod:`losskit.nn` re-export them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from losskit._core.registry import FAMILIES

__all__ = ["FAMILY_MODULES"]

FAMILY_MODULES: dict[str, ModuleType] = {
    family: importlib.import_module(f"losskit.losses.{family}") for family in FAMILIES
}
