"""Forward+backward of the mining triplet losses (float32, CPU) side by side with
pytorch-metric-learning for the same numbers: batch-hard vs ``TripletMarginLoss`` +
``BatchHardMiner`` (``LpDistance(normalize_embeddings=False)``, ``MeanReducer``) at B = 256 and
1024, and batch-all vs ``TripletMarginLoss`` over all triplets (``AvgNonZeroReducer``) at B = 256
(PML materialises every triplet's indices, O(B³)). D = 128, 4 samples per class.

Run: ``python -m benchmarks.bench_metric [--repeats N]``.
"""

from __future__ import annotations

import argparse

import torch

import losskit.functional as LF
from benchmarks._harness import Row, compare, format_rows, machine

D = 128
MARGIN = 0.2


def _inputs(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(b, D, generator=gen), torch.arange(b) // 4


def main(repeats: int = 15) -> str:
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
    return f"Machine: {machine()}\n\n{format_rows(rows)}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    print(main(parser.parse_args().repeats))
