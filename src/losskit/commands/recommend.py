"""``losskit recommend TASK [--outliers] [--imbalance-ratio R] ...``: the decision guide."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("recommend", help="which loss for which problem, with a snippet")
    p.add_argument("task", help="regression, quantile, counts, binary, multiclass, segmentation, ...")
    for flag in ("outliers", "label-noise", "multi-label", "calibration", "small-objects",
                 "embedding", "distillation", "sequence-unaligned", "labels"):
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("--imbalance-ratio", type=float, default=None)
    return p


def run(args: argparse.Namespace) -> int:
    from losskit.recommend import recommend

    out = recommend(
        args.task, outliers=args.outliers, imbalance_ratio=args.imbalance_ratio,
        label_noise=args.label_noise, multi_label=args.multi_label, calibration=args.calibration,
        small_objects=args.small_objects, embedding=args.embedding, distillation=args.distillation,
        sequence_unaligned=args.sequence_unaligned, labels=args.labels,
    )
    for i, sug in enumerate(out, 1):
        print(f"{i}. {sug}\n")
    return 0
