"""NT-Xent forward+backward: losskit (dense and chunked) vs pytorch-metric-learning, and the
memory of the chunked path at B=4096.

Run: ``.venv/bin/python -m benchmarks.bench_contrastive`` (prints markdown for
docs/benchmarks/contrastive.md).
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from benchmarks._harness import compare, format_rows, machine, saved_bytes
from losskit.functional import nt_xent_loss

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
        labels = torch.cat([torch.arange(b), torch.arange(b)])
        return peer(torch.cat([z1, z2]), labels)

    return fn


def speed() -> str:
    rows = []
    for b in (256, 1024):
        candidates = {
            "losskit nt_xent_loss": lambda a, c: nt_xent_loss(a, c, temperature=TEMPERATURE),
            "losskit chunk_size=256": lambda a, c: nt_xent_loss(a, c, temperature=TEMPERATURE,
                                                                chunk_size=256),
        }
        if b <= 256:
            candidates["pytorch-metric-learning NTXentLoss"] = _pml(TEMPERATURE)
        rows += compare(f"NT-Xent B={b}, D={D}", candidates, _inputs(b), grad=(0, 1),
                        repeats=5, warmup=1)
    return format_rows(rows)


def pml_saved_scaling() -> str:
    """PML is not run at B=1024 (its pair tensors grow fast); its saved bytes at small B show
    the growth that would be needed."""
    out = ["| B | PML NTXentLoss saved for backward (MiB) | losskit dense (MiB) | losskit chunked (MiB) |",
           "|---:|---:|---:|---:|"]
    for b in (64, 128, 256):
        xs = [t.requires_grad_(True) for t in _inputs(b)]
        pml = saved_bytes(_pml(TEMPERATURE), xs) / 2**20
        dense = saved_bytes(lambda a, c: nt_xent_loss(a, c, temperature=TEMPERATURE), xs) / 2**20
        chunked = saved_bytes(lambda a, c: nt_xent_loss(a, c, temperature=TEMPERATURE,
                                                        chunk_size=256), xs) / 2**20
        out.append(f"| {b} | {pml:.2f} | {dense:.2f} | {chunked:.3f} |")
    return "\n".join(out)


_PEAK = """
import torch
from losskit.functional import nt_xent_loss


def hwm():  # VmHWM, not ru_maxrss: ru_maxrss keeps the parent's high-water mark across exec
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmHWM"))


g = torch.Generator().manual_seed(0)
z1 = torch.randn({b}, {d}, generator=g, requires_grad=True)
z2 = torch.randn({b}, {d}, generator=g, requires_grad=True)
before = hwm()
nt_xent_loss(z1, z2, temperature=0.1, chunk_size={chunk}).backward()
print((hwm() - before) / 1024)
"""


def _peak_extra_mib(b: int, chunk: int | None, fixed_mmap: bool) -> float:
    """Growth of peak RSS during one forward+backward, in a fresh process. With
    ``fixed_mmap`` glibc returns every large buffer to the OS on free (MALLOC_MMAP_THRESHOLD_),
    so the figure is the live peak rather than live + allocator cache."""
    env = dict(os.environ)
    if fixed_mmap:
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    out = subprocess.run([sys.executable, "-c", _PEAK.format(b=b, d=D, chunk=chunk)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def memory_4096() -> str:
    b = 4096
    xs = [t.requires_grad_(True) for t in _inputs(b)]
    out = ["| B=4096, D=128 | saved for backward (MiB) | peak RSS growth, glibc default (MiB) "
           "| peak RSS growth, MALLOC_MMAP_THRESHOLD_=128k (MiB) |",
           "|---|---:|---:|---:|"]
    for label, chunk in (("unchunked", None), ("chunk_size=512", 512), ("chunk_size=128", 128)):
        saved = saved_bytes(lambda a, c, ch=chunk: nt_xent_loss(a, c, temperature=TEMPERATURE,
                                                                   chunk_size=ch), xs) / 2**20
        default = _peak_extra_mib(b, chunk, False)
        fixed = _peak_extra_mib(b, chunk, True)
        out.append(f"| {label} | {saved:.2f} | {default:.0f} | {fixed:.0f} |")
    out.append(f"\n(inputs themselves: {2 * b * D * 4 / 2**20:.1f} MiB)")
    return "\n".join(out)


def main() -> None:
    torch.manual_seed(0)
    print(f"Machine: {machine()}\n")
    print(speed())
    print()
    print(pml_saved_scaling())
    print()
    print(memory_4096())


if __name__ == "__main__":
    main()
