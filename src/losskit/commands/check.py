"""``losskit check module:attr``: run check_loss on a loss of your own."""

from __future__ import annotations

import argparse
import importlib

from losskit._core.checks import LossInputError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="check your own loss: gradients, extremes, compile, properties")
    p.add_argument("target", help="module:attr of a loss function or Module class/instance")
    p.add_argument("--input-kind", default="prediction", help="prediction | logits | probabilities")
    p.add_argument("--target-kind", default="real", help="real | class_index | binary")
    return p


def run(args: argparse.Namespace) -> int:
    from losskit.check import check_loss

    mod_name, _, attr = args.target.partition(":")
    if not attr:
        raise LossInputError(f"expected module:attr, got {args.target!r}")
    obj = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, type):
        obj = obj()
    report = check_loss(obj, input_kind=args.input_kind, target_kind=args.target_kind, name=attr)
    return 0 if report.passed else 1
