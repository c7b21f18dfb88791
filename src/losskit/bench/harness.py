"""Side-by-side timing of forward+backward: interleaved repeats, median, ratios.

A benchmark builds a dict of candidates ``{label: fn}`` where ``fn(*inputs)`` returns a scalar
loss, and hands it to :func:`compare`, which times them in one process on the same inputs,
round-robin (so drift in machine load hits every candidate alike), and reports the median (with
the min and max of the repeats), the ratio to a baseline, and the bytes each saves for backward.

Memory, two figures:

* **saved for backward** (:func:`saved_bytes`): the bytes of the storages autograd keeps between
  forward and backward (``torch.autograd.graph.saved_tensors_hooks``), each storage once, the
  inputs not counted. Exact and reproducible.
* **peak** (:func:`live_peak_mib` on CPU, :func:`cuda_peak_mib` on CUDA): how far memory rises
  above what was live before one forward+backward, the gradients of the inputs included. On
  CUDA it is ``torch.cuda.max_memory_allocated``; on CPU it is the growth of the process's
  resident high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``), taken in a
  fresh process started with ``MALLOC_MMAP_THRESHOLD_=131072`` so that glibc returns every
  buffer of 128 KiB or more to the system when it is freed: the figure is then the live peak,
  not live memory plus the allocator's cache (see :func:`peak_env`).
"""

from __future__ import annotations

import ctypes
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

from losskit import _native

__all__ = [
    "Row",
    "compare",
    "cuda_peak_mib",
    "steady_allocator",
    "format_rows",
    "live_peak_mib",
    "machine",
    "peak_env",
    "peak_rss_mib",
    "saved_bytes",
]


@dataclass
class Row:
    """One implementation in one benchmark case. ``ratio`` is ``median_ms`` over the baseline's;
    ``peak_mib`` is filled in where a peak was measured; ``status`` is ``"ok"`` or why the row
    has no figures (``"not installed: ..."``, ``"not measured (no CUDA device)"``, ...)."""

    case: str
    label: str
    median_ms: float | None
    ratio: float | None
    saved_mib: float | None
    peak_mib: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    status: str = "ok"


def machine(device: str | torch.device = "cpu") -> str:
    """One line naming the machine and the versions (and the GPU for a CUDA device). The CPU's
    family/model numbers and the widest vector instructions PyTorch uses (e.g. AVX2 or AVX512)
    are part of it: a name such as "AMD EPYC" covers generations whose compute-bound kernels
    differ by 2× against the same memory-bound yardstick."""
    cpu = platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not key.strip():
                    break    # the first CPU's block ends at the first blank line
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name", cpu)
    if "cpu family" in fields and "model" in fields:
        cpu += f" (family {fields['cpu family']}, model {fields['model']})"
    cpu += f", {torch.backends.cpu.get_cpu_capability()}"
    line = (f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        line += f", {torch.cuda.get_device_name(torch.device(device))} (CUDA {torch.version.cuda})"
    _native.library()
    return f"{line}; fused C kernels: {_native.status()}"


def saved_bytes(fn: Callable[..., Tensor], inputs: Sequence[Tensor], *, backward: bool = False) -> int:
    """Bytes of the tensors autograd saves for backward during ``fn(*inputs)``, counting each
    storage once and not counting the inputs themselves; ``backward=True`` also runs the
    backward of the result (one forward+backward serving as a warm-up too)."""
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
        out = fn(*inputs)
    if backward:
        out.backward()
    return total


def _fresh(inputs: Sequence[Tensor], grad: Sequence[int]) -> list[Tensor]:
    out = []
    for i, t in enumerate(inputs):
        if i in grad:
            t = t.detach().requires_grad_(True)
        out.append(t)
    return out


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_of(inputs: Sequence[Tensor]) -> torch.device | None:
    for t in inputs:
        if isinstance(t, Tensor):
            return t.device
    return None


def compare(
    case: str,
    candidates: dict[str, Callable[..., Tensor]],
    inputs: Sequence[Tensor],
    *,
    grad: Sequence[int] = (0,),
    baseline: str | None = None,
    repeats: int = 15,
    warmup: int = 3,
    peak: bool = False,
    saved: bool = True,
) -> list[Row]:
    """Time forward+backward of each candidate, interleaved; ratios are to ``baseline``
    (default: the first candidate). On CUDA the device is synchronised around each call;
    ``peak=True`` also fills ``peak_mib`` there (on CPU the peak needs a fresh process: see
    :func:`live_peak_mib`); ``saved=False`` skips the extra forward that counts the bytes saved
    for backward (``saved_mib`` is then ``None``)."""
    labels = list(candidates)
    baseline = baseline or labels[0]
    device = _device_of(inputs)
    times: dict[str, list[float]] = {k: [] for k in labels}
    for rep in range(warmup + repeats):
        for label in labels:
            xs = _fresh(inputs, grad)
            _sync(device)
            t0 = time.perf_counter()
            candidates[label](*xs).backward()
            _sync(device)
            dt = time.perf_counter() - t0
            if rep >= warmup:
                times[label].append(dt)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    rows = []
    for label in labels:
        nbytes = saved_bytes(candidates[label], _fresh(inputs, grad)) / 2**20 if saved else None
        pk = None
        if peak and device is not None and device.type == "cuda":
            pk = cuda_peak_mib(candidates[label], inputs, grad)
        rows.append(Row(case, label, med[label], med[label] / med[baseline], nbytes, pk,
                        min(times[label]) * 1e3, max(times[label]) * 1e3))
    return rows


def format_rows(rows: Sequence[Row]) -> str:
    """A markdown table of rows."""
    out = ["| case | implementation | median ms | ratio | saved for backward (MiB) |",
           "|---|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r.case} | {r.label} | {r.median_ms:.2f} | {r.ratio:.2f} | {r.saved_mib:.1f} |")
    return "\n".join(out)


def cuda_peak_mib(fn: Callable[..., Tensor], inputs: Sequence[Tensor], grad: Sequence[int] = (0,)) -> float:
    """Peak CUDA memory allocated during one forward+backward of ``fn``, above what was
    allocated before it (``torch.cuda.max_memory_allocated``), in MiB."""
    xs = _fresh(inputs, grad)
    device = _device_of(xs)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn(*xs).backward()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def live_peak_mib(fn: Callable[..., Tensor], inputs: Sequence[Tensor], grad: Sequence[int] = (0,)) -> float:
    """Growth of this process's resident high-water mark during one forward+backward of ``fn``
    (Linux: ``VmHWM`` after resetting it with ``/proc/self/clear_refs``), in MiB. Meaningful as
    the live peak only in a process started with :func:`peak_env` (otherwise freed buffers
    cached by malloc are reused without raising the mark)."""
    xs = _fresh(inputs, grad)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    fn(*xs).backward()
    return max(_status_kib("VmHWM") - before, 0) / 1024


def steady_allocator() -> bool:
    """Keep freed buffers under 32 MiB in glibc's heap for the rest of the process (no trimming,
    no per-allocation ``mmap``), as in the steady state of a training loop: a gradient of a few
    MiB then costs the same page faults (none) whichever presets ran before, and timings of
    1e6-element losses stop depending on the allocator's history. ``True`` where it applied
    (Linux with glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(libc.mallopt(m_trim_threshold, 2**30))


def peak_env() -> dict[str, str]:
    """The environment for a child process that measures :func:`live_peak_mib`: glibc hands
    every allocation of 128 KiB or more back to the system when it is freed."""
    env = dict(os.environ)
    env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    return env


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
