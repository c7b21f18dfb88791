"""Forward+backward of the mining triplet losses (float32, CPU) side by side with
pytorch-metric-learning for the same numbers: batch-hard vs ``TripletMarginLoss`` +
``BatchHardMiner`` (``LpDistance(normalize_embeddings=False)``, ``MeanReducer``) at B = 256 and
1024, and batch-all vs ``TripletMarginLoss`` over all triplets (``AvgNonZeroReducer``) at B = 256
(PML materialises every triplet's indices, O(B³)). D = 128, 4 samples per class.

Run: ``python -m benchmarks.bench_metric [--repeats N] [--runs R] [--best-of]``. ``--runs``
repeats the whole interleaved comparison R times and adds a table of the spread of the ratios
(PML / losskit) over the runs. ``--best-of`` adds a table of the minimum over repeats with one
intra-op thread, a steadier figure than the median on a shared, loaded machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import losskit.functional as LF
from benchmarks._harness import Row, compare, format_rows, machine

D = 128
MARGIN = 0.2


def _inputs(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(b, D, generator=gen), torch.arange(b) // 4


def main(repeats: int = 15) -> str:
    return f"Machine: {machine()}\n\n{format_rows(_rows(repeats))}"


def spread(repeats: int, runs: int) -> str:
    """The PML / losskit time ratio of batch-hard over ``runs`` separate interleaved runs."""
    ratios: dict[str, list[float]] = {}
    for _ in range(runs):
        rows = _rows(repeats, hard_only=True)
        ours = {r.case: r.median_ms for r in rows if r.label.startswith("losskit")}
        for r in rows:
            if r.label.startswith("PML"):
                ratios.setdefault(r.case, []).append(r.median_ms / ours[r.case])
    out = ["| case | runs | PML / losskit: min | median | max |", "|---|---:|---:|---:|---:|"]
    for case, v in ratios.items():
        out.append(f"| {case} | {len(v)} | {min(v):.2f} | {statistics.median(v):.2f} | {max(v):.2f} |")
    return "\n".join(out)


def _rows(repeats: int, hard_only: bool = False) -> list[Row]:
    rows: list[Row] = []
    try:
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.losses import TripletMarginLoss
        from pytorch_metric_learning.miners import BatchHardMiner
        from pytorch_metric_learning.reducers import MeanReducer
    except ImportError:  # the peer is optional
        LpDistance = None  # type: ignore[assignment,misc]

    for b in (256, 1024):
        x, labels = _inputs(b)
        cands = {"losskit batch_hard":
                 lambda e, y=labels: LF.batch_hard_triplet_loss(e, y, margin=MARGIN)}
        if LpDistance is not None:
            dist = LpDistance(normalize_embeddings=False)
            miner = BatchHardMiner(distance=dist)
            pml = TripletMarginLoss(margin=MARGIN, distance=dist, reducer=MeanReducer())
            cands["PML Triplet+BatchHardMiner"] = (
                lambda e, y=labels, f=pml, m=miner: f(e, y, m(e, y)))
        rows += compare(f"batch-hard B={b} D={D}", cands, (x,), repeats=repeats)
    if hard_only:
        return rows

    x, labels = _inputs(256)
    cands = {"losskit batch_all": lambda e: LF.batch_all_triplet_loss(e, labels, margin=MARGIN)}
    if LpDistance is not None:
        pml_all = TripletMarginLoss(margin=MARGIN, distance=LpDistance(normalize_embeddings=False))
        cands["PML Triplet (all triplets)"] = lambda e: pml_all(e, labels)
    rows += compare(f"batch-all B=256 D={D}", cands, (x,), repeats=repeats)

    x, labels = _inputs(1024)
    rows += compare(f"batch-all / semi-hard B=1024 D={D} (losskit only)", {
        "losskit batch_all": lambda e: LF.batch_all_triplet_loss(e, labels, margin=MARGIN),
        "losskit semi_hard": lambda e: LF.semi_hard_triplet_loss(e, labels, margin=MARGIN),
    }, (x,), repeats=repeats)
    return rows


def best_of(repeats: int = 12) -> str:
    """Minimum forward+backward time over interleaved repeats, one thread."""
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner
    from pytorch_metric_learning.reducers import MeanReducer

    torch.set_num_threads(1)
    dist = LpDistance(normalize_embeddings=False)
    miner = BatchHardMiner(distance=dist)
    pml = TripletMarginLoss(margin=MARGIN, distance=dist, reducer=MeanReducer())
    pml_all = TripletMarginLoss(margin=MARGIN, distance=dist)
    out = ["| case | losskit min ms | PML min ms | PML / losskit |", "|---|---:|---:|---:|"]
    for name, b, ours, theirs in [
        ("batch-hard", 256, LF.batch_hard_triplet_loss, lambda e, y: pml(e, y, miner(e, y))),
        ("batch-hard", 1024, LF.batch_hard_triplet_loss, lambda e, y: pml(e, y, miner(e, y))),
        ("batch-all", 256, LF.batch_all_triplet_loss, pml_all),
    ]:
        x, labels = _inputs(b)
        cands: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
            "ours": lambda e, y, f=ours: f(e, y, margin=MARGIN), "pml": theirs}
        times: dict[str, list[float]] = {k: [] for k in cands}
        for _ in range(repeats):
            for key, fn in cands.items():
                e = x.clone().requires_grad_(True)
                t0 = time.perf_counter()
                fn(e, labels).backward()
                times[key].append(time.perf_counter() - t0)
        lo, hi = min(times["ours"]) * 1e3, min(times["pml"]) * 1e3
        out.append(f"| {name} B={b} D={D} | {lo:.2f} | {hi:.2f} | {hi / lo:.1f} |")
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--best-of", action="store_true")
    args = parser.parse_args()
    print(main(args.repeats))
    if args.runs > 1:
        print()
        print(spread(args.repeats, args.runs))
    if args.best_of:
        print()
        print(best_of())
