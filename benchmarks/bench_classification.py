"""Classification losses side by side with PyTorch (forward+backward, float32, CPU):

* ``cross_entropy`` vs ``F.cross_entropy`` at 2048 × 32768 logits (plain, and with label
  smoothing, where losskit keeps −inf-masked logits finite): time, bytes saved for backward, and
  the peak memory of forward+backward in a fresh process; ``inplace_backward=True`` on logits
  produced by an op (as from a model's last layer);
* ``sigmoid_focal_loss`` vs the torchvision formula written in PyTorch ops and vs
  ``F.binary_cross_entropy_with_logits`` (the floor: one fused elementwise loss) at 131072 × 80;
* the fused elementwise losses (hinge, squared hinge, asymmetric) vs ``F.mse_loss`` at 1e6
  elements.

Run: ``.venv/bin/python -m benchmarks.bench_classification [--repeats N]``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor

import losskit.functional as LF
from benchmarks._harness import compare, format_rows, machine, peak_rss_mib


def torchvision_sigmoid_focal(inputs: Tensor, targets: Tensor, alpha: float = 0.25,
                              gamma: float = 2.0) -> Tensor:
    """torchvision.ops.sigmoid_focal_loss (pure PyTorch ops), with reduction="mean"."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * loss).mean()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak", action="store_true", help="also measure peak memory (fresh processes)")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    rows = []
    peaks: list[str] = []

    n, v = 2048, 32768
    x = torch.randn(n, v, generator=g)
    y = torch.randint(0, v, (n,), generator=g)
    rows += compare(f"cross_entropy {n}x{v}", {
        "F.cross_entropy": lambda z: F.cross_entropy(z, y),
        "losskit cross_entropy": lambda z: LF.cross_entropy(z, y),
    }, [x], repeats=args.repeats, warmup=1)
    rows += compare(f"cross_entropy {n}x{v}, label_smoothing=0.1", {
        "F.cross_entropy": lambda z: F.cross_entropy(z, y, label_smoothing=0.1),
        "losskit cross_entropy": lambda z: LF.cross_entropy(z, y, label_smoothing=0.1),
    }, [x], repeats=args.repeats, warmup=1)
    # logits produced by an op (x·1 stands for the last layer), so inplace_backward applies
    rows += compare(f"cross_entropy {n}x{v}, logits = x*1", {
        "F.cross_entropy": lambda z: F.cross_entropy(z * 1.0, y),
        "losskit cross_entropy": lambda z: LF.cross_entropy(z * 1.0, y),
        "losskit inplace_backward=True": lambda z: LF.cross_entropy(z * 1.0, y, inplace_backward=True),
    }, [x], repeats=args.repeats, warmup=1)
    del x
    # channels-first segmentation logits (the class dimension strided by H·W)
    x = torch.randn(8, 21, 128, 128, generator=g)
    y = torch.randint(0, 21, (8, 128, 128), generator=g)
    for eps in (0.0, 0.1):
        rows += compare(f"cross_entropy 8x21x128x128, label_smoothing={eps}", {
            "F.cross_entropy": lambda z, e=eps: F.cross_entropy(z, y, label_smoothing=e),
            "losskit cross_entropy": lambda z, e=eps: LF.cross_entropy(z, y, label_smoothing=e),
        }, [x], repeats=3 * args.repeats, warmup=2)
    del x
    if args.peak:
        setup = ("import torch, torch.nn.functional as F, losskit.functional as LF\n"
                 f"h = torch.randn({n}, {v}, requires_grad=True); y = torch.randint(0, {v}, ({n},))\n"
                 "logits = h * 1.0\n")
        for label, call in (("F.cross_entropy", "F.cross_entropy(logits, y)"),
                            ("losskit cross_entropy", "LF.cross_entropy(logits, y)"),
                            ("losskit inplace_backward=True",
                             "LF.cross_entropy(logits, y, inplace_backward=True)")):
            mib = peak_rss_mib(setup + f"{call}.backward()\n")
            peaks.append(f"| cross_entropy {n}x{v}, logits = h*1 | {label} | {mib:.0f} |")

    n, c = 131072, 80
    x = torch.randn(n, c, generator=g)
    t = (torch.rand(n, c, generator=g) < 0.05).float()
    rows += compare(f"sigmoid_focal {n}x{c}", {
        "torchvision formula": lambda z: torchvision_sigmoid_focal(z, t),
        "losskit sigmoid_focal_loss": lambda z: LF.sigmoid_focal_loss(z, t),
        "F.binary_cross_entropy_with_logits": lambda z: F.binary_cross_entropy_with_logits(z, t),
    }, [x], repeats=args.repeats, warmup=1)

    x = torch.randn(10**6, generator=g)
    r = torch.randn(10**6, generator=g)
    pm = torch.sign(r)
    b = (pm > 0).float()
    rows += compare("elementwise 1e6", {
        "F.mse_loss": lambda z: F.mse_loss(z, r),
        "losskit hinge_loss": lambda z: LF.hinge_loss(z, pm),
        "losskit squared_hinge_loss": lambda z: LF.squared_hinge_loss(z, pm),
        "losskit asymmetric_loss": lambda z: LF.asymmetric_loss(z, b),
    }, [x], repeats=3 * args.repeats, warmup=2)

    print(machine())
    print()
    print(format_rows(rows))
    if peaks:
        print()
        print("| case | implementation | peak memory above `import torch` (MiB) |")
        print("|---|---|---:|")
        print("\n".join(peaks))


if __name__ == "__main__":
    main()
