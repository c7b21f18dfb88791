"""The loss lab: train the same small model with several losses and measure which one suits
the data. ``compare(X, y, task=...)`` for your arrays; ``run_study()`` for the built-in claims."""

from losskit.lab.compare import LabResult, compare
from losskit.lab.study import Claim, run_study

__all__ = ["LabResult", "compare", "Claim", "run_study"]
