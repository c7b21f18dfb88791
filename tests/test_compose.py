"""Compose: equal to the sum of its parts (values and gradients), torch Modules and callables
as terms, per-term values, schedules, unknown keywords raise."""

from __future__ import annotations

import pytest
import torch

import losskit
from losskit.compose import Compose, weighted
from losskit.nn import L1Loss, MSELoss


def _xy() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(4, 3, generator=g, dtype=torch.float64),
            torch.randn(4, 3, generator=g, dtype=torch.float64))


def test_sum_of_parts_value_and_gradient() -> None:
    x, y = _xy()
    bce = torch.nn.BCEWithLogitsLoss()
    loss = weighted(0.5, MSELoss()) + weighted(0.25, bce) + weighted(2.0, lambda a, b: (a - b).abs().max())
    xa = x.clone().requires_grad_(True)
    total = loss(xa, y.sigmoid())
    (g,) = torch.autograd.grad(total, xa)
    xb = x.clone().requires_grad_(True)
    yb = y.sigmoid()
    ref = 0.5 * ((xb - yb) ** 2).mean() + 0.25 * bce(xb, yb) + 2.0 * (xb - yb).abs().max()
    (g_ref,) = torch.autograd.grad(ref, xb)
    torch.testing.assert_close(total, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    assert set(loss.last_terms) == {"mse", "BCEWithLogitsLoss", "<lambda>"}
    torch.testing.assert_close(loss.last_terms["mse"], ((x - yb) ** 2).mean())


def test_return_terms_scaling_and_names() -> None:
    x, y = _xy()
    loss = 3.0 * (weighted(1.0, MSELoss()) + weighted(1.0, MSELoss()))
    total, terms = loss(x, y, return_terms=True)
    assert list(terms) == ["mse", "mse_2"]
    torch.testing.assert_close(total, 6.0 * ((x - y) ** 2).mean())
    assert sum([weighted(1.0, L1Loss()), weighted(1.0, MSELoss())]).names == ["l1", "mse"]


def test_schedule() -> None:
    x, y = _xy()
    loss = weighted(lambda step: min(1.0, step / 10), L1Loss()) + weighted(1.0, MSELoss())
    assert float(loss(x, y)) == pytest.approx(float(((x - y) ** 2).mean()))
    loss.set_step(5)
    assert loss.current_weights() == {"l1": 0.5, "mse": 1.0}
    assert float(loss(x, y)) == pytest.approx(float(0.5 * (x - y).abs().mean() + ((x - y) ** 2).mean()))


def test_call_time_options_routed_and_unknown_raise() -> None:
    """PITFALLS 30: options go to the terms that take them; one no term takes raises."""
    x, y = _xy()
    loss = weighted(1.0, MSELoss()) + weighted(1.0, L1Loss())
    w = torch.rand(4, 3, dtype=torch.float64)
    got = loss(x, y, sample_weight=w)
    want = MSELoss()(x, y, sample_weight=w) + L1Loss()(x, y, sample_weight=w)
    torch.testing.assert_close(got, want)
    with pytest.raises(losskit.LossInputError, match="sample_wieght"):
        loss(x, y, sample_wieght=w)
    with pytest.raises(losskit.LossInputError):
        Compose([])


def test_operator_form_on_loss_modules() -> None:
    """``0.5 * DiceLoss(...) + 0.5 * BCEWithLogitsLoss()`` once LossModule has the operators."""
    if not hasattr(losskit.nn.MSELoss, "__rmul__"):
        pytest.skip("LossModule has no __mul__/__add__ yet")
    x, y = _xy()
    loss = 0.5 * MSELoss() + 0.5 * L1Loss()
    torch.testing.assert_close(loss(x, y), 0.5 * ((x - y) ** 2).mean() + 0.5 * (x - y).abs().mean())
