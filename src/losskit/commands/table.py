"""``losskit table [--family F] [--markdown]``: the verified comparison table."""

from __future__ import annotations

import argparse
import warnings

from losskit._core.registry import FAMILIES


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("table", help="the comparison table, every claim checked by a probe")
    p.add_argument("--family", choices=FAMILIES)
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("names", nargs="*", help="only these losses")
    return p


def run(args: argparse.Namespace) -> int:
    from losskit.table import table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        print(table(args.family, markdown=args.markdown, names=args.names or None))
    return 0
