"""Curves follow the formulas; the plot command writes a PNG."""

from __future__ import annotations

import pytest
import torch

import losskit
from losskit.plot import curve


def test_regression_curves_follow_the_formula() -> None:
    _, x, loss, grad = curve(losskit.get_spec("mse"), points=41)
    torch.testing.assert_close(loss, x**2, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grad, 2 * x, rtol=1e-6, atol=1e-9)
    label, x, loss, grad = curve(losskit.get_spec("huber"), points=41)
    assert label.startswith("residual")
    torch.testing.assert_close(grad, x.clamp(-1, 1), rtol=1e-6, atol=1e-9)


def test_margin_axis_for_logits() -> None:
    spec = losskit.get_spec("binary_cross_entropy_with_logits")
    label, m, loss, _ = curve(spec, points=21)
    assert label.startswith("margin")
    torch.testing.assert_close(loss, torch.nn.functional.softplus(-m), rtol=1e-5, atol=1e-6)


def test_cli_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    from losskit.cli import main

    out = tmp_path / "f.png"
    assert main(["plot", "mse", "mae", "huber", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
