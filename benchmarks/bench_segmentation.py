"""Multiclass Dice and Tversky, forward+backward, losskit vs MONAI and kornia.

Run: ``.venv/bin/python -m benchmarks.bench_segmentation [--quick]``. Prints markdown tables
(median ms, ratio to losskit with index targets, MiB saved for backward) and the peak resident
memory of index vs one-hot targets, measured in fresh processes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

import losskit.functional as LF
from benchmarks._harness import compare, format_rows, machine

SHAPES = {"2-D (8, 4, 128, 128)": (8, 4, 128, 128), "3-D (2, 4, 64, 64, 64)": (2, 4, 64, 64, 64)}


def _onehot(y: Tensor, c: int) -> Tensor:
    return F.one_hot(y, c).movedim(-1, 1).float()


def candidates(kind: str, shape: tuple[int, ...]) -> dict[str, Callable[..., Tensor]]:
    c = shape[1]
    # the peers' conventions mapped onto losskit's options (docs/segmentation-peers.md)
    if kind == "dice":
        out: dict[str, Callable[..., Tensor]] = {
            "losskit (index target)": lambda x, y: LF.dice_loss(x, y, mode="multiclass"),
            "losskit (one-hot target)": lambda x, y: LF.dice_loss(x, _onehot(y, c), mode="multiclass"),
        }
    else:
        kw = dict(mode="multiclass", alpha=0.3, beta=0.7)
        out = {
            "losskit (index target)": lambda x, y: LF.tversky_loss(x, y, **kw),
            "losskit (one-hot target)": lambda x, y: LF.tversky_loss(x, _onehot(y, c), **kw),
        }
    try:
        import monai.losses as ml

        mon = (ml.DiceLoss(softmax=True, to_onehot_y=True) if kind == "dice"
               else ml.TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7))
        out["MONAI"] = lambda x, y: mon(x, y.unsqueeze(1))
    except ImportError:
        pass
    if len(shape) == 4:  # kornia's dice / tversky take (B, C, H, W) only
        try:
            import kornia.losses as kl

            if kind == "dice":
                out["kornia"] = lambda x, y: kl.dice_loss(x, y, average="macro")
            else:
                out["kornia"] = lambda x, y: kl.tversky_loss(x, y, alpha=0.3, beta=0.7)
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


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    repeats = 3 if quick else 10
    print(machine())
    if not quick:  # before this process grows
        for case, shape in SHAPES.items():
            mem = peak_memory(shape)
            print(f"extra peak memory of dice fwd+bwd, {case}: index target {mem['index']:.1f} MiB, "
                  f"one-hot target {mem['one-hot']:.1f} MiB")
    for case, shape in SHAPES.items():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g)
        y = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=g)
        rows = []
        for kind in ("dice", "tversky"):
            rows += compare(f"{kind} {case}", candidates(kind, shape), (x, y), repeats=repeats, warmup=2)
        print()
        print(format_rows(rows))
        for kind in ("dice", "tversky"):
            mine = next(r for r in rows if r.case.startswith(kind) and r.label == "losskit (index target)")
            peers = [r for r in rows if r.case.startswith(kind) and not r.label.startswith("losskit")]
            if peers:
                best = min(peers, key=lambda r: r.median_ms)
                print(f"{kind} {case}: losskit / fastest peer ({best.label}) = "
                      f"{mine.median_ms / best.median_ms:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
