"""Side-by-side timing of forward+backward: interleaved repeats, median, ratios.

Every benchmark script builds a dict of candidates ``{label: fn}`` where ``fn(*inputs)``
returns a scalar loss, and hands it to :func:`compare`, which times them in one process on the
same inputs, round-robin (so drift in machine load hits every candidate alike), and reports the
median, the ratio to a baseline, and the bytes each saves for backward.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Row", "compare", "saved_bytes", "machine", "format_rows", "peak_rss_mib"]


@dataclass
class Row:
    case: str
    label: str
    median_ms: float
    ratio: float
    saved_mib: float


def machine() -> str:
    """One line naming the machine and the versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def saved_bytes(fn: Callable[..., Tensor], inputs: Sequence[Tensor]) -> int:
    """Bytes of the tensors autograd saves for backward during ``fn(*inputs)``, counting each
    storage once and not counting the inputs themselves."""
    seen: set[int] = {t.untyped_storage().data_ptr() for t in inputs if isinstance(t, Tensor)}
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*inputs)
    return total


def _fresh(inputs: Sequence[Tensor], grad: Sequence[int]) -> list[Tensor]:
    out = []
    for i, t in enumerate(inputs):
        if i in grad:
            t = t.detach().requires_grad_(True)
        out.append(t)
    return out


def compare(
    case: str,
    candidates: dict[str, Callable[..., Tensor]],
    inputs: Sequence[Tensor],
    *,
    grad: Sequence[int] = (0,),
    baseline: str | None = None,
    repeats: int = 15,
    warmup: int = 3,
) -> list[Row]:
    """Time forward+backward of each candidate, interleaved; ratios are to ``baseline``
    (default: the first candidate)."""
    labels = list(candidates)
    baseline = baseline or labels[0]
    times: dict[str, list[float]] = {k: [] for k in labels}
    for rep in range(warmup + repeats):
        for label in labels:
            xs = _fresh(inputs, grad)
            t0 = time.perf_counter()
            candidates[label](*xs).backward()
            dt = time.perf_counter() - t0
            if rep >= warmup:
                times[label].append(dt)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    rows = []
    for label in labels:
        xs = _fresh(inputs, grad)
        saved = saved_bytes(candidates[label], xs) / 2**20
        rows.append(Row(case, label, med[label], med[label] / med[baseline], saved))
    return rows


def format_rows(rows: Sequence[Row]) -> str:
    """A markdown table of rows."""
    out = ["| case | implementation | median ms | ratio | saved for backward (MiB) |",
           "|---|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r.case} | {r.label} | {r.median_ms:.2f} | {r.ratio:.2f} | {r.saved_mib:.1f} |")
    return "\n".join(out)


def peak_rss_mib(code: str) -> float:
    """Peak resident memory (MiB) of a fresh Python process running ``code`` minus that of one
    that only imports torch: a coarse but honest CPU peak-memory figure."""

    def run(src: str) -> float:
        # VmHWM of the child itself (ru_maxrss can carry over a large parent's peak across exec)
        prog = src + ("\nprint([l.split()[1] for l in open('/proc/self/status') "
                      "if l.startswith('VmHWM')][0])")
        out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1]) / 1024

    return run("import torch\n" + code) - run("import torch")
