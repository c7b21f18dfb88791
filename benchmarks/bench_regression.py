"""Forward+backward of every regression loss at 1e6 elements (float32, CPU), side by side with
PyTorch's native loss where one exists, else with ``mse_loss`` as the yardstick.

Run: ``python -m benchmarks.bench_regression [--repeats N]``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import losskit.functional as LF
from benchmarks._harness import compare, format_rows, machine

N = 1_000_000


def main(repeats: int = 15) -> str:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, generator=gen)
    y = torch.randn(N, generator=gen)
    pos_x, pos_y = x.exp(), y.exp()
    counts = torch.poisson(torch.full((N,), 3.0), generator=gen)
    var = torch.rand(N, generator=gen) + 0.1
    rows = []
    native = [
        ("mse", LF.mse_loss, F.mse_loss, (x, y), {}),
        ("l1", LF.l1_loss, F.l1_loss, (x, y), {}),
        ("huber", LF.huber_loss, F.huber_loss, (x, y), {"delta": 0.5}),
        ("smooth_l1", LF.smooth_l1_loss, F.smooth_l1_loss, (x, y), {"beta": 0.5}),
        ("poisson_nll", LF.poisson_nll_loss, F.poisson_nll_loss, (x, counts), {}),
    ]
    for name, ours, theirs, inputs, kw in native:
        rows += compare(f"{name} 1e6", {
            "torch": lambda a, b, f=theirs, k=kw: f(a, b, **k),
            "losskit": lambda a, b, f=ours, k=kw: f(a, b, **k),
        }, inputs, repeats=repeats)
    rows += compare("gaussian_nll 1e6", {
        "torch": lambda a, b, v: F.gaussian_nll_loss(a, b, v),
        "losskit": lambda a, b, v: LF.gaussian_nll_loss(a, b, v),
    }, (x, y, var), grad=(0, 2), repeats=repeats)
    yardstick = [
        ("rmse", LF.rmse_loss, (x, y), {}),
        ("pseudo_huber", LF.pseudo_huber_loss, (x, y), {}),
        ("log_cosh", LF.log_cosh_loss, (x, y), {}),
        ("quantile", LF.quantile_loss, (x, y), {"quantile": 0.9}),
        ("mape", LF.mape_loss, (pos_x, pos_y), {}),
        ("smape", LF.smape_loss, (x, y), {}),
        ("msle", LF.msle_loss, (pos_x, pos_y), {}),
        ("general_robust", LF.general_robust_loss, (x, y), {"alpha": 0.5}),
        ("tweedie_deviance", LF.tweedie_deviance_loss, (pos_x, pos_y), {"power": 1.5}),
    ]
    for name, ours, inputs, kw in yardstick:
        rows += compare(f"{name} 1e6 (vs torch mse)", {
            "torch mse_loss": lambda a, b: F.mse_loss(a, b),
            "losskit": lambda a, b, f=ours, k=kw: f(a, b, **k),
        }, inputs, repeats=repeats)
    return f"Machine: {machine()}\n\n{format_rows(rows)}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    print(main(parser.parse_args().repeats))
