"""linear_cross_entropy vs the materialised ``F.cross_entropy(h @ W.T)``: forward+backward time
and peak extra memory at N=4096, D=1024, V=32768 (float32, mean loss, gradients of h and W).

Run: ``.venv/bin/python -m benchmarks.bench_linear_ce [--repeats 3] [--rounds 2] [--memory-runs 3]
[--with-torch]`` (each forward+backward takes several seconds on 2 CPU cores).

Time: :func:`benchmarks._harness.compare` (interleaved repeats, median), ``--rounds`` times, so
the spread of the ratio between rounds shows how noisy the machine was.

Memory: each variant runs in a fresh process that first builds the inputs, then resets the
kernel's peak-RSS counter (``/proc/self/clear_refs`` ← 5), runs forward+backward and reads
``VmHWM``. "Peak extra" is that peak above the resident size just before the call, minus the
gradients of h and W (which both variants must hand back and which are still resident after the
call). Resetting the counter, rather than subtracting a second process's peak, keeps transient
allocations made while building the inputs out of the figure.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

import torch
import torch.nn.functional as F

import losskit.functional as LF
from benchmarks._harness import compare, format_rows, machine

N, D, V = 4096, 1024, 32768
GRADS_MIB = (N * D + V * D) * 4 / 2**20

_CHILD = f"""
import torch, torch.nn.functional as F
import losskit.functional as LF
g = torch.Generator().manual_seed(0)
h = torch.randn({N}, {D}, generator=g).mul_(0.05).requires_grad_(True)
w = torch.randn({V}, {D}, generator=g).mul_(0.05).requires_grad_(True)
y = torch.randint(0, {V}, ({N},), generator=g)
def status(key):
    return int([l.split()[1] for l in open('/proc/self/status') if l.startswith(key)][0]) / 1024
before = status('VmRSS:')
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')
{{code}}
print(status('VmHWM:') - before, status('VmRSS:') - before)
"""

VARIANTS = {
    "losskit linear_cross_entropy": "LF.linear_cross_entropy(h, w, y).backward()",
    "materialised F.cross_entropy(h @ W.T)": "F.cross_entropy(h @ w.T, y).backward()",
}
TORCH_VARIANT = {"torch F.linear_cross_entropy": "F.linear_cross_entropy(h, w, y).backward()"}


def peak_extra_mib(code: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(peak RSS above the resident inputs, RSS still held after) of ``code`` in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _CHILD.replace("{code}", code)], capture_output=True,
                         text=True, check=True, env=None if env is None else {**os.environ, **env})
    peak, after = out.stdout.split()[-2:]
    return float(peak), float(after)


def main(repeats: int = 3, rounds: int = 2, memory_runs: int = 3, with_torch: bool = False) -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(N, D, generator=g) * 0.05
    w = torch.randn(V, D, generator=g) * 0.05
    y = torch.randint(0, V, (N,), generator=g)
    candidates = {
        "materialised F.cross_entropy(h @ W.T)": lambda h, w: F.cross_entropy(h @ w.T, y),
        "losskit linear_cross_entropy": lambda h, w: LF.linear_cross_entropy(h, w, y),
    }
    variants = dict(VARIANTS)
    if with_torch:
        candidates["torch F.linear_cross_entropy"] = lambda h, w: F.linear_cross_entropy(h, w, y)
        variants.update(TORCH_VARIANT)
    print(machine())
    ratios: dict[str, list[float]] = {}
    for r in range(rounds):
        rows = compare(f"N={N} D={D} V={V} fp32, round {r + 1}", candidates, [h, w], grad=(0, 1),
                       repeats=repeats, warmup=1)
        print(format_rows(rows), flush=True)
        for row in rows:
            ratios.setdefault(row.label, []).append(row.ratio)
    for label, rs in ratios.items():
        print(f"{label}: ratio to materialised per round {[round(x, 3) for x in rs]}, "
              f"median {statistics.median(rs):.3f}")

    print(f"\nPeak extra memory ({memory_runs} fresh processes each; gradients of h and W = "
          f"{GRADS_MIB:.0f} MiB subtracted)")
    print("| implementation | peak above inputs (MiB) | held after (MiB) | peak extra (MiB) |")
    print("|---|---:|---:|---:|")
    extra: dict[str, list[float]] = {}
    for _ in range(memory_runs):
        for label, code in variants.items():
            peak, after = peak_extra_mib(code)
            extra.setdefault(label, []).append(peak - GRADS_MIB)
            print(f"| {label} | {peak:.0f} | {after:.0f} | {peak - GRADS_MIB:.0f} |", flush=True)
    base = statistics.median(extra["materialised F.cross_entropy(h @ W.T)"])
    for label, xs in extra.items():
        print(f"{label}: peak extra {min(xs):.0f}-{max(xs):.0f} MiB, "
              f"{statistics.median(xs) / base:.1%} of materialised")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-runs", type=int, default=3)
    parser.add_argument("--with-torch", action="store_true")
    args = parser.parse_args()
    main(args.repeats, args.rounds, args.memory_runs, args.with_torch)
