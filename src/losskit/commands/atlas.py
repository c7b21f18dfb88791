"""``losskit atlas --out DIR``: the offline HTML reference."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("atlas", help="write the offline HTML reference of every loss")
    p.add_argument("--out", default="losskit-atlas")
    p.add_argument("--no-probes", action="store_true", help="skip the property probes (faster)")
    return p


def run(args: argparse.Namespace) -> int:
    from losskit.atlas import build

    t = build(args.out, probes=not args.no_probes)
    print(f"wrote {args.out}/index.html  (probes {t['probes']:.1f}s, plots {t['plots']:.1f}s, "
          f"pages {t['pages']:.1f}s)")
    return 0
