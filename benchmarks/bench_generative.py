"""Forward+backward of the GAN losses at 1e6 logits (float32, CPU), side by side with
``F.mse_loss`` on the same number of elements (the yardstick of issue 9: ≤ 1.5×) and with the
composed form of the same loss (the textbook ops under autograd, which the fused path replaces).

Run: ``python -m benchmarks.bench_generative [--repeats N]``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import losskit.functional as LF
from benchmarks._harness import Row, compare, format_rows, machine

N = 1_000_000

COMPOSED_D = {
    "minimax": lambda r, f: F.softplus(-r) + F.softplus(f),
    "lsgan": lambda r, f: 0.5 * (r - 1.0).square() + 0.5 * f.square(),
    "hinge": lambda r, f: F.relu(1.0 - r) + F.relu(1.0 + f),
    "wgan": lambda r, f: f - r,
}
COMPOSED_G = {
    "non_saturating": lambda f: F.softplus(-f),
    "minimax": lambda f: -F.softplus(f),
    "lsgan": lambda f: 0.5 * (f - 1.0).square(),
    "hinge": lambda f: -f,
    "wgan": lambda f: -f,
}


def gan_rows(repeats: int = 15) -> list[Row]:
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(N, generator=gen) * 3
    f = torch.randn(N, generator=gen) * 3
    rows: list[Row] = []
    for kind, composed in COMPOSED_D.items():
        # mse on (input, target) with both requiring grad: the same two gradients to produce
        rows += compare(f"gan_discriminator {kind} 1e6", {
            "torch mse_loss": lambda a, b: F.mse_loss(a, b),
            "losskit": lambda a, b, k=kind: LF.gan_discriminator_loss(a, b, kind=k),
            "composed": lambda a, b, c=composed: c(a, b).mean(),
        }, (r, f), grad=(0, 1), repeats=repeats)
    for kind, composed_g in COMPOSED_G.items():
        rows += compare(f"gan_generator {kind} 1e6", {
            "torch mse_loss": lambda a, b: F.mse_loss(a, b),
            "losskit": lambda a, b, k=kind: LF.gan_generator_loss(a, kind=k),
            "composed": lambda a, b, c=composed_g: c(a).mean(),
        }, (f, r), grad=(0,), repeats=repeats)
    return rows


def main(repeats: int = 15) -> str:
    return f"Machine: {machine()}\n\n{format_rows(gan_rows(repeats))}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(main(args.repeats))
