"""Multiclass Dice and Tversky, forward+backward, losskit vs MONAI and kornia.

Run: ``.venv/bin/python -m benchmarks.bench_segmentation [--quick] [--threads N] [--repeats R]
[--cpu-time]``.
Prints markdown tables (median ms, ratio to losskit, MiB saved for backward) for index and
one-hot targets (the one-hot tensor built before timing, MONAI then without ``to_onehot_y``),
with the composed reference path as a row, and the peak resident memory of index vs one-hot
targets, measured in fresh processes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

import losskit.functional as LF
import losskit.losses.segmentation as seg
from benchmarks._harness import Row, compare, format_rows, machine, saved_bytes

SHAPES = {"2-D (8, 4, 128, 128)": (8, 4, 128, 128), "3-D (2, 4, 64, 64, 64)": (2, 4, 64, 64, 64)}


def _onehot(y: Tensor, c: int) -> Tensor:
    return F.one_hot(y, c).movedim(-1, 1).float().contiguous()


def _composed(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``fn`` on the composed reference path (softmax, gather / scatter_add bins, autograd)."""

    def run(*args: Tensor) -> Tensor:
        seg.FUSED = False
        try:
            return fn(*args)
        finally:
            seg.FUSED = True

    return run


def candidates(kind: str, shape: tuple[int, ...], target: str) -> dict[str, Callable[..., Tensor]]:
    """Candidates on ``(x, t)``: ``t`` is the index target, or (``target="one-hot"``) the one-hot
    target built before timing; peers get the same tensor with their equivalent options."""
    kw: dict = dict(mode="multiclass")
    if kind == "tversky":
        kw.update(alpha=0.3, beta=0.7)
    fn = LF.dice_loss if kind == "dice" else LF.tversky_loss
    out: dict[str, Callable[..., Tensor]] = {
        "losskit": lambda x, t: fn(x, t, **kw),
        "losskit, composed path": _composed(lambda x, t: fn(x, t, **kw)),
    }
    # the peers' conventions mapped onto losskit's options (docs/segmentation-peers.md)
    try:
        import monai.losses as ml

        onehot = target == "one-hot"
        mon = (ml.DiceLoss(softmax=True, to_onehot_y=not onehot) if kind == "dice"
               else ml.TverskyLoss(softmax=True, to_onehot_y=not onehot, alpha=0.3, beta=0.7))
        out["MONAI"] = (lambda x, t: mon(x, t)) if onehot else (lambda x, t: mon(x, t.unsqueeze(1)))
    except ImportError:
        pass
    if len(shape) == 4 and target == "index":  # kornia: (B, C, H, W) logits, index targets only
        try:
            import kornia.losses as kl

            if kind == "dice":
                out["kornia"] = lambda x, t: kl.dice_loss(x, t, average="macro")
            else:
                out["kornia"] = lambda x, t: kl.tversky_loss(x, t, alpha=0.3, beta=0.7)
        except ImportError:
            pass
    return out


def _hwm_mib(code: str) -> float:
    """Peak resident memory (VmHWM, MiB) of a fresh process running ``code``. VmHWM, not
    ``ru_maxrss``: the latter survives ``exec`` and would report this (large) process's peak."""
    prog = code + "\nprint([ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1])"
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]) / 1024


def peak_memory(shape: tuple[int, ...]) -> dict[str, float]:
    """Extra peak memory (MiB) of one forward+backward over a process holding the inputs, for
    index vs one-hot targets (the one-hot tensor counts against its case)."""
    setup = (f"import torch, torch.nn.functional as F, losskit.functional as LF\n"
             f"torch.manual_seed(0)\nx = torch.randn{shape}.requires_grad_(True)\n"
             f"y = torch.randint(0, {shape[1]}, {shape[:1] + shape[2:]})\n")
    idx = setup + "LF.dice_loss(x, y, mode='multiclass').backward()\n"
    hot = setup + (f"t = F.one_hot(y, {shape[1]}).movedim(-1, 1).float()\n"
                   "LF.dice_loss(x, t, mode='multiclass').backward()\n")
    base = _hwm_mib(setup)
    return {"index": _hwm_mib(idx) - base, "one-hot": _hwm_mib(hot) - base}


def cpu_compare(case: str, cands: dict[str, Callable[..., Tensor]], inputs: tuple[Tensor, Tensor], *,
                repeats: int, warmup: int) -> list[Row]:
    """Like :func:`compare`, but timing the CPU time of this (single) thread: with one intra-op
    thread this is the work done, barely touched by other jobs on a shared machine."""
    times: dict[str, list[float]] = {k: [] for k in cands}
    for rep in range(warmup + repeats):
        for label, fn in cands.items():
            x = inputs[0].detach().requires_grad_(True)
            t0 = time.thread_time()
            fn(x, inputs[1]).backward()
            if rep >= warmup:
                times[label].append(time.thread_time() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    first = next(iter(cands))
    return [Row(case, k, med[k], med[k] / med[first],
                saved_bytes(fn, [inputs[0].detach().requires_grad_(True), inputs[1]]) / 2**20)
            for k, fn in cands.items()]


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    repeats = 3 if quick else 10
    for i, arg in enumerate(argv):
        if arg == "--threads":
            torch.set_num_threads(int(argv[i + 1]))
        elif arg == "--repeats":
            repeats = int(argv[i + 1])
    cpu_time = "--cpu-time" in argv
    if cpu_time:
        torch.set_num_threads(1)
        print("timing: CPU time of one intra-op thread (time.thread_time), not wall clock")
    print(machine())
    if not quick and not cpu_time:  # before this process grows
        for case, shape in SHAPES.items():
            mem = peak_memory(shape)
            print(f"extra peak memory of dice fwd+bwd, {case}: index target {mem['index']:.1f} MiB, "
                  f"one-hot target {mem['one-hot']:.1f} MiB")
    summary = []
    for case, shape in SHAPES.items():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g)
        y = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=g)
        rows = []
        for target, t in (("index", y), ("one-hot", _onehot(y, shape[1]))):
            for kind in ("dice", "tversky"):
                name = f"{kind} {case}, {target} target"
                timer = cpu_compare if cpu_time else compare
                rows += timer(name, candidates(kind, shape, target), (x, t), repeats=repeats, warmup=2)
                mine = next(r for r in rows if r.case == name and r.label == "losskit")
                peers = [r for r in rows if r.case == name and not r.label.startswith("losskit")]
                if peers:
                    best = min(peers, key=lambda r: r.median_ms)
                    summary.append(f"{name}: losskit / fastest peer ({best.label}) = "
                                   f"{mine.median_ms / best.median_ms:.2f}")
        print()
        print(format_rows(rows))
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
