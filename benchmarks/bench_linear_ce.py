"""linear_cross_entropy vs the materialised ``F.cross_entropy(h @ W.T)``: forward+backward time
and peak memory at N=4096, D=1024, V=32768 (float32).

Run: ``.venv/bin/python -m benchmarks.bench_linear_ce`` (about 2-3 minutes on 2 CPU cores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import losskit.functional as LF
from benchmarks._harness import compare, format_rows, machine, peak_rss_mib

N, D, V = 4096, 1024, 32768

_SETUP = f"""
import torch, torch.nn.functional as F
import losskit.functional as LF
g = torch.Generator().manual_seed(0)
h = (torch.randn({N}, {D}, generator=g) * 0.05).requires_grad_(True)
w = (torch.randn({V}, {D}, generator=g) * 0.05).requires_grad_(True)
y = torch.randint(0, {V}, ({N},), generator=g)
"""

VARIANTS = {
    "losskit linear_cross_entropy": "LF.linear_cross_entropy(h, w, y).backward()",
    "materialised F.cross_entropy(h @ W.T)": "F.cross_entropy(h @ w.T, y).backward()",
}


def main(repeats: int = 3) -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(N, D, generator=g) * 0.05
    w = torch.randn(V, D, generator=g) * 0.05
    y = torch.randint(0, V, (N,), generator=g)
    candidates = {
        "losskit linear_cross_entropy": lambda h, w: LF.linear_cross_entropy(h, w, y),
        "materialised F.cross_entropy(h @ W.T)": lambda h, w: F.cross_entropy(h @ w.T, y),
    }
    rows = compare(f"N={N} D={D} V={V} fp32", candidates, [h, w], grad=(0, 1), repeats=repeats, warmup=1)
    print(machine())
    print(format_rows(rows))
    inputs_and_grads = 2 * (N * D + V * D) * 4 / 2**20
    base = peak_rss_mib(_SETUP)
    print(f"\npeak RSS of a process holding h, W (and y): {base:.0f} MiB above `import torch`")
    print(f"inputs + their gradients: {inputs_and_grads:.0f} MiB (the same for both)")
    print("| implementation | peak RSS above inputs (MiB) | above inputs + grads (MiB) |")
    print("|---|---:|---:|")
    for label, code in VARIANTS.items():
        peak = peak_rss_mib(_SETUP + code) - base
        print(f"| {label} | {peak:.0f} | {peak - inputs_and_grads / 2:.0f} |")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args().repeats)
