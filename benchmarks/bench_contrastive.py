"""NT-Xent forward+backward: losskit vs pytorch-metric-learning (PML), the automatic chunking
threshold, and memory at B=1024 against what PML asks for.

Run: ``.venv/bin/python -m benchmarks.bench_contrastive [--repeats N] [--only speed,auto,memory]``
(prints markdown for docs/benchmarks/contrastive.md).

PML is never run at B=1024 (it needs tens of GB). What it asks for there is obtained two ways:
(1) its saved-for-backward bytes, measured at B=64/128/256, follow a fitted
``c · P · N_neg · 4`` bytes law (P = 2B positive pairs, N_neg = 2B(2B−2) negative pairs:
``NTXentLoss`` builds float ``P × N_neg`` tensors), extrapolated to B=1024; (2) running it at
B=1024 in a child process whose address space is capped (``RLIMIT_AS``) and reading the size of
the allocation that fails — a lower bound, since it fails on the first such tensor.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import torch

from benchmarks._harness import Row, compare, format_rows, machine, peak_rss_mib, saved_bytes
from losskit.functional import nt_xent_loss
from losskit.losses import contrastive

D = 128
TEMPERATURE = 0.1


def _inputs(b: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, D, generator=g), torch.randn(b, D, generator=g)]


def _pml(temperature: float):
    from pytorch_metric_learning.losses import NTXentLoss

    peer = NTXentLoss(temperature=temperature)

    def fn(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        b = z1.shape[0]
        labels = torch.cat([torch.arange(b), torch.arange(b)])   # labels mark the positive pairs
        return peer(torch.cat([z1, z2]), labels)

    return fn


def _ours(chunk: int | str | None = "auto"):
    return lambda a, c: nt_xent_loss(a, c, temperature=TEMPERATURE, chunk_size=chunk)


def speed(repeats: int) -> list[Row]:
    rows = []
    b = 256
    rows += compare(f"NT-Xent B={b}, D={D}", {
        "losskit nt_xent_loss (auto: dense)": _ours(),
        "losskit chunk_size=128": _ours(128),
        "pytorch-metric-learning NTXentLoss": _pml(TEMPERATURE),
    }, _inputs(b), grad=(0, 1), repeats=repeats, warmup=1)
    b = 1024
    rows += compare(f"NT-Xent B={b}, D={D}", {
        "losskit nt_xent_loss (auto: dense)": _ours(),
        "losskit chunk_size=512": _ours(512),
    }, _inputs(b), grad=(0, 1), repeats=repeats, warmup=1)
    return rows


def auto_threshold(repeats: int) -> str:
    """Dense vs chunked on each side of AUTO_CHUNK_ABOVE: time, saved bytes, peak RSS."""
    out = ["| B (logits 2B × 2B) | path | median ms | ratio | saved for backward (MiB) "
           "| peak RSS growth (MiB) |", "|---|---|---:|---:|---:|---:|"]
    for b in (2048, 4096):
        n = 2 * b
        auto = contrastive._resolve_chunk("auto", n, n)
        block = contrastive.AUTO_CHUNK_BLOCK // n
        cands = {f"dense (chunk_size=None){' = auto' if auto is None else ''}": _ours(None),
                 f"chunk_size={block}{' = auto' if auto == block else ''}": _ours(block)}
        rows = compare(f"{b}", cands, _inputs(b), grad=(0, 1), repeats=repeats, warmup=1)
        for r, chunk in zip(rows, (None, block)):
            peak = peak_rss_mib(_PEAK.format(b=b, d=D, chunk=chunk))
            out.append(f"| {b} ({n}²={n * n:.3g}) | {r.label} | {r.median_ms:.0f} | {r.ratio:.2f} "
                       f"| {r.saved_mib:.1f} | {peak:.0f} |")
    return "\n".join(out)


_PEAK = """
from losskit.functional import nt_xent_loss
g = torch.Generator().manual_seed(0)
z1 = torch.randn({b}, {d}, generator=g, requires_grad=True)
z2 = torch.randn({b}, {d}, generator=g, requires_grad=True)
nt_xent_loss(z1, z2, temperature=0.1, chunk_size={chunk!r}).backward()
"""

_PML_PEAK = """
from pytorch_metric_learning.losses import NTXentLoss
g = torch.Generator().manual_seed(0)
z = torch.randn(2 * {b}, {d}, generator=g, requires_grad=True)
labels = torch.cat([torch.arange({b}), torch.arange({b})])
NTXentLoss(temperature=0.1)(z, labels).backward()
"""

_PML_ATTEMPT = """
import resource
import torch
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from pytorch_metric_learning.losses import NTXentLoss
g = torch.Generator().manual_seed(0)
z = torch.randn(2 * {b}, {d}, generator=g, requires_grad=True)
labels = torch.cat([torch.arange({b}), torch.arange({b})])
try:
    NTXentLoss(temperature=0.1)(z, labels).backward()
    print("ran")
except RuntimeError as e:
    print(str(e))
"""


def _pml_failed_allocation(b: int, cap_gib: int = 6) -> int | None:
    src = _PML_ATTEMPT.format(b=b, d=D, cap=cap_gib * 2**30)
    out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True).stdout
    m = re.search(r"tried to allocate (\d+) bytes", out)
    return int(m.group(1)) if m else None


def memory() -> str:
    lines = ["| B | PML saved (MiB) | PML saved / (4·P·N_neg) | PML peak RSS growth (MiB) "
             "| losskit saved (MiB) | losskit peak RSS growth (MiB) |",
             "|---:|---:|---:|---:|---:|---:|"]
    coef = []
    for b in (64, 128, 256):
        xs = [t.requires_grad_(True) for t in _inputs(b)]
        pml = saved_bytes(_pml(TEMPERATURE), xs)
        cube = 4 * (2 * b) * (2 * b) * (2 * b - 2)
        coef.append(pml / cube)
        ours = saved_bytes(_ours(), xs) / 2**20
        pml_peak = peak_rss_mib(_PML_PEAK.format(b=b, d=D))
        our_peak = peak_rss_mib(_PEAK.format(b=b, d=D, chunk="auto"))
        lines.append(f"| {b} | {pml / 2**20:.1f} | {pml / cube:.3f} | {pml_peak:.0f} | {ours:.2f} "
                     f"| {our_peak:.0f} |")
    b = 1024
    # the coefficient falls towards 2.25 (9 bytes per pair: two float32 P × N_neg tensors and
    # one bool one); the largest measured B is the closest to it
    c = coef[-1]
    asked = c * 4 * (2 * b) * (2 * b) * (2 * b - 2)
    failed = _pml_failed_allocation(b)
    xs = [t.requires_grad_(True) for t in _inputs(b)]
    rows = [f"\nB=1024, D={D}:\n",
            f"- PML saved for backward, extrapolated with c = {c:.3f} (the B=256 value): "
            f"**{asked / 2**30:.1f} GiB** (its peak is at least that)",
            f"- PML's first allocation at B=1024 under a 6 GiB address-space cap fails asking for "
            f"{'n/a' if failed is None else f'{failed / 2**30:.2f} GiB'} in one tensor",
            "",
            "| losskit at B=1024 | saved for backward (MiB) | peak RSS growth (MiB) "
            "| peak / PML's extrapolated saved bytes |", "|---|---:|---:|---:|"]
    for label, chunk in (("auto (dense)", "auto"), ("chunk_size=256", 256)):
        saved = saved_bytes(_ours(chunk), xs) / 2**20
        peak = peak_rss_mib(_PEAK.format(b=b, d=D, chunk=chunk))
        rows.append(f"| {label} | {saved:.1f} | {peak:.0f} | {100 * peak * 2**20 / asked:.2f}% |")
    return "\n".join(lines + rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="speed,auto,memory")
    args = parser.parse_args()
    parts = args.only.split(",")
    torch.manual_seed(0)
    print(f"Machine: {machine()}\n")
    if "speed" in parts:
        print(format_rows(speed(args.repeats)) + "\n")
    if "auto" in parts:
        print(auto_threshold(max(3, args.repeats // 2)) + "\n")
    if "memory" in parts:
        print(memory())


if __name__ == "__main__":
    main()
