"""The contract, run over every registered loss: a loss that breaks it fails here."""

from __future__ import annotations

import pytest
import torch

import losskit
from losskit import contract
from losskit._core.module import LossModule
from losskit._core.reduction import reduce
from losskit._core.registry import Properties, Sample, register, unregister

SPECS = losskit.catalog()


@pytest.mark.parametrize("name", list(contract.CHECKS))
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_contract(spec: losskit.LossSpec, name: str) -> None:
    reason = contract.skipped(spec, name)
    if reason is not None:
        pytest.skip(reason)
    contract.check(spec, name)


def test_catalog_is_not_empty_and_every_family_is_known() -> None:
    assert len(SPECS) >= 15
    assert {s.family for s in SPECS} <= set(losskit._core.registry.FAMILIES)


def _bad_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                extreme: bool = False) -> Sample:
    x = torch.randn(6, 1, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.randn(6, generator=gen, dtype=torch.float64).to(dtype)
    if extreme:
        x = x * 1e4
    return Sample((x, y))


def test_a_loss_that_breaks_the_contract_fails_it() -> None:
    """A loss that broadcasts silently, returns NaN at extremes and keeps half precision is
    caught by the same checks the suite runs over the catalog."""

    @register("broken_for_test", family="regression", input_kind="prediction",
              target_kind="real", properties=Properties(), formula="x", references=("none",),
              sample=_bad_sample, elementwise=True)
    def broken(input, target, *, reduction="mean", sample_weight=None, mask=None,
               normalizer=None, empty="zero"):
        """Broken.

        >>> 1
        1

        References: none.
        """
        per = torch.exp(input - target) / torch.exp(input - target)  # NaN at extremes
        return reduce(per * (input - target), reduction, sample_weight=sample_weight, mask=mask,
                      normalizer=normalizer, empty=empty)

    class Broken(LossModule):
        fn = staticmethod(broken)

    try:
        spec = losskit.get_spec("broken_for_test")
        outcome = contract.run_contract(spec)
        failed = {k for k, v in outcome.items() if v is not None}
        assert {"bad_input", "extremes"} <= failed, outcome
    finally:
        unregister("broken_for_test")
