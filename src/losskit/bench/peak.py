"""Peak memory of the benchmark candidates on CPU, measured in a fresh process.

``python -m losskit.bench.peak [--quick] CASE_ID ...`` rebuilds each case (same seed, same
inputs), runs one forward+backward of every candidate and prints one JSON object
``{case_id: {label: [peak_mib, status]}}``. :func:`losskit.bench.runner.cpu_peaks` starts it
with :func:`~losskit.bench.harness.peak_env` so that the high-water mark follows live memory.
"""

from __future__ import annotations

import gc
import json
import re
import resource
import sys
import time
from collections.abc import Sequence

import torch

from losskit.bench.cases import NotTimed, Unavailable, case
from losskit.bench.harness import _status_kib, live_peak_mib

__all__ = ["main", "measure"]


def _capped(c: NotTimed, inputs: Sequence[torch.Tensor], grad: Sequence[int]) -> tuple[float | None, str]:
    """Run under an address-space cap; a refused allocation is reported as what it asks for."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _status_kib("VmSize") * 1024 + int(c.cap_gib * 2**30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        return live_peak_mib(c.fn, inputs, grad), "not timed"
    except (RuntimeError, MemoryError) as e:
        m = re.search(r"tried to allocate (\d+) bytes", str(e))
        if m is None:
            return None, f"error: {type(e).__name__}: {str(e)[:120]}"
        asked = int(m.group(1)) / 2**20
        return asked, (f"cannot run: asks for {asked / 1024:.1f} GiB in one allocation "
                       f"(a lower bound; run under a {c.cap_gib:g} GiB cap)")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def measure(case_ids: Sequence[str], quick: bool) -> dict[str, dict[str, tuple[float | None, str]]]:
    out: dict[str, dict[str, tuple[float | None, str]]] = {}
    cpu = torch.device("cpu")
    # one small forward+backward first, so that the autograd engine's and the thread pool's
    # one-time allocations do not land on the first candidate measured
    w = torch.randn(64, 64, requires_grad=True)
    torch.log_softmax(w @ w.T, 1).exp().sum().backward()
    for cid in case_ids:
        t0 = time.perf_counter()
        built = case(cid).build(quick, cpu)
        res: dict[str, tuple[float | None, str]] = {}
        for label, cand in built.candidates.items():
            if isinstance(cand, Unavailable):
                continue
            gc.collect()
            if isinstance(cand, NotTimed):
                res[label] = _capped(cand, built.inputs, built.grad)
                continue
            try:
                res[label] = (live_peak_mib(cand, built.inputs, built.grad), "ok")
            except Exception as e:  # a peer's failure is a row, not a crash
                res[label] = (None, f"error: {type(e).__name__}: {str(e)[:120]}")
        out[cid] = res
        del built
        gc.collect()
        print(f"{cid}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return out


def main(argv: Sequence[str]) -> int:
    quick = "--quick" in argv
    ids = [a for a in argv if a != "--quick"]
    print(json.dumps(measure(ids, quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
