"""Forward+backward timings: CTC (losskit's traceable log-space recursion vs PyTorch's kernel),
kl_div vs torch, and distillation_loss vs the usual hand-written KD expression.

Run: ``.venv/bin/python -m benchmarks.bench_divergence`` (prints markdown for
docs/benchmarks/divergence.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks._harness import compare, format_rows, machine
from losskit.functional import ctc_loss, distillation_loss, kl_div


def _ctc_case(t: int, n: int, c: int, s: int) -> tuple[list[torch.Tensor], dict]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(t, n, c, generator=g)
    targets = torch.randint(1, c, (n, s), generator=g)
    il = torch.full((n,), t, dtype=torch.long)
    tl = torch.full((n,), s, dtype=torch.long)

    def ours(x: torch.Tensor) -> torch.Tensor:
        return ctc_loss(x.log_softmax(-1), targets, il, tl)

    def theirs(x: torch.Tensor) -> torch.Tensor:
        return F.ctc_loss(x.log_softmax(-1), targets, il, tl, zero_infinity=True)

    def recursion(x: torch.Tensor) -> torch.Tensor:
        return ctc_loss(x.log_softmax(-1), targets, il, tl, impl="recursion")

    cands = {"torch F.ctc_loss": theirs, "losskit ctc_loss": ours}
    if t <= 50:
        cands["losskit ctc_loss impl='recursion' (eager)"] = recursion
    return [logits], cands


def speed() -> str:
    rows = []
    for t, n, c, s in ((50, 8, 32, 10), (200, 8, 32, 40)):
        inputs, cands = _ctc_case(t, n, c, s)
        rows += compare(f"CTC T={t}, N={n}, C={c}, S={s}", cands, inputs, repeats=7, warmup=2)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4096, 1000, generator=g).log_softmax(-1)
    y = torch.randn(4096, 1000, generator=g).softmax(-1)
    rows += compare("kl_div batchmean 4096×1000",
                    {"torch F.kl_div": lambda a, b: F.kl_div(a, b, reduction="batchmean"),
                     "losskit kl_div": lambda a, b: kl_div(a, b, reduction="batchmean")},
                    [x, y], repeats=9)
    s, t = torch.randn(4096, 1000, generator=g), torch.randn(4096, 1000, generator=g)
    lab = torch.randint(0, 1000, (4096,), generator=g)

    def manual(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        kd = F.kl_div((a / 2).log_softmax(-1), (b / 2).log_softmax(-1), reduction="batchmean",
                      log_target=True) * 4
        return 0.5 * kd + 0.5 * F.cross_entropy(a, lab)

    rows += compare("distillation T=2, α=0.5, 4096×1000",
                    {"hand-written F.kl_div + F.cross_entropy": manual,
                     "losskit distillation_loss": lambda a, b: distillation_loss(a, b, lab)},
                    [s, t], repeats=9)
    return format_rows(rows)


if __name__ == "__main__":
    print(machine())
    print()
    print(speed())
