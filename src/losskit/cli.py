"""The ``losskit`` command. Each subcommand lives in :mod:`losskit.commands` as a module with
``add_parser(subparsers)`` and ``run(args) -> int``; they are discovered, not listed here."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from losskit._core.checks import LossInputError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="losskit",
        description="Loss functions for PyTorch, verified: browse, check, compare.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import losskit.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"losskit.commands.{info.name}")
        sub_parser = module.add_parser(sub)
        sub_parser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except LossInputError as e:
        print(f"losskit: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("losskit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
