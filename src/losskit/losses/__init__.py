"""Loss families: pure functions and their thin Modules side by side, a file per family (or
per part of a large family).

Importing this package imports every module in it, which registers every loss. A module lists
its public names in ``__all__``; :mod:`losskit.functional` and :mod:`losskit.nn` re-export them.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["FAMILY_MODULES"]

FAMILY_MODULES: dict[str, ModuleType] = {
    info.name: importlib.import_module(f"{__name__}.{info.name}")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    if not info.name.startswith("_")
}
