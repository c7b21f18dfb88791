"""``losskit plot NAME... --out f.png``: loss and gradient curves."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("plot", help="plot loss and gradient curves (needs matplotlib)")
    p.add_argument("names", nargs="+")
    p.add_argument("--out", default="losses.png")
    return p


def run(args: argparse.Namespace) -> int:
    from losskit.plot import plot

    plot(args.names, args.out)
    print(f"wrote {args.out}")
    return 0
