"""``losskit list [--family F] [--task T] [--markdown]``: the catalog as a table."""

from __future__ import annotations

import argparse

from losskit._core.registry import FAMILIES, catalog
from losskit.commands._table import render


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list every loss (name, family, input, target, summary)")
    p.add_argument("--family", choices=FAMILIES)
    p.add_argument("--task")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    return p


def run(args: argparse.Namespace) -> int:
    specs = catalog(family=args.family, task=args.task)
    rows = [
        [s.name, s.family, s.input_kind, s.target_kind, s.summary[:70]]
        for s in specs
    ]
    print(render(["name", "family", "input", "target", "summary"], rows, args.markdown))
    print(f"\n{len(specs)} losses")
    return 0
