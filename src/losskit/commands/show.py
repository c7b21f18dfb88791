"""``losskit show NAME``: formula, properties, signature, peers and references of one loss."""

from __future__ import annotations

import argparse
import dataclasses

from losskit._core.registry import get_spec


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("show", help="show one loss: formula, properties, signature, references")
    p.add_argument("name")
    return p


def run(args: argparse.Namespace) -> int:
    spec = get_spec(args.name)
    print(f"{spec.name}  ({spec.family}; tasks: {', '.join(spec.tasks)})")
    if spec.aliases:
        print(f"aliases: {', '.join(spec.aliases)}")
    print(f"\n{spec.summary}\n")
    print(f"function: losskit.functional.{spec.fn.__name__}{spec.signature}")
    if spec.module is not None:
        print(f"module:   losskit.nn.{spec.module.__name__}")
    print(f"input: {spec.input_kind}    target: {spec.target_kind}")
    print(f"\nformula: {spec.formula}")
    print("\nproperties (declared):")
    for field in dataclasses.fields(spec.properties):
        value = getattr(spec.properties, field.name)
        if value is not None:
            print(f"  {field.name:<16} {value}")
    if spec.peers:
        print("\npeers:")
        for peer, name in spec.peers.items():
            print(f"  {peer:<10} {name}")
    print("\nreferences:")
    for ref in spec.references:
        print(f"  - {ref}")
    return 0
