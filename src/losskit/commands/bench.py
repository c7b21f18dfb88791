"""``losskit bench [FAMILY|NAME ...] [--device cpu|cuda] [--json] [--repeats N] [--quick]``:
forward+backward time, memory saved for backward and peak memory, side by side with PyTorch
and the installed peers, on fixed shape presets."""

from __future__ import annotations

import argparse
import sys
import warnings

_EPILOG = """\
Every row is one forward+backward of one implementation on the same inputs; implementations
are timed round-robin in one process and the median of the repeats is reported with its
min-max. "ratio" is to the first implementation of the case (PyTorch's kernel, the yardstick
F.mse_loss, or the peer). "saved for backward" counts the bytes autograd keeps between forward
and backward, inputs excluded. "peak" is the rise of memory above what was live before one
forward+backward, input gradients included: on CUDA torch.cuda.max_memory_allocated; on CPU the
growth of VmHWM in a fresh process where glibc returns freed buffers of 128 KiB or more to the
system. Peers that are not installed are listed as such. GPU rows need --device cuda.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench", help="time and memory of the losses vs PyTorch and peers (fixed presets)",
        description=__doc__.split("\n", 1)[1].strip(), epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("names", nargs="*", metavar="FAMILY|NAME",
                   help="families or loss names (aliases work); default: every preset")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where to run (default: cuda when available, else cpu)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--repeats", type=int, default=None, metavar="N",
                   help="timed repeats per implementation (default: per preset, 3-10)")
    p.add_argument("--quick", action="store_true", help="tiny shapes and 2 repeats (a smoke test)")
    p.add_argument("--no-peak", action="store_true",
                   help="skip the peak-memory measurement (on CPU it runs in a second process)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="intra-op threads (torch.set_num_threads), here and in the peak process; "
                        "1 is steadier on a shared machine")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from losskit._core.checks import LossInputError
    from losskit.bench.runner import families_of, format_json, format_text, run, select

    cases = select(args.names)
    if args.list:
        for c in cases:
            print(f"{c.id}  [{', '.join(families_of(c))}: {', '.join(c.losses)}]")
        return 0
    if args.repeats is not None and args.repeats < 1:
        raise LossInputError(f"--repeats must be at least 1, got {args.repeats}.")
    if args.threads is not None:
        if args.threads < 1:
            raise LossInputError(f"--threads must be at least 1, got {args.threads}.")
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run(cases, device=device, quick=args.quick, repeats=args.repeats,
                     peak=not args.no_peak, progress=None if args.json else progress)
    if args.json:
        print(format_json(report))
    else:
        counts = sorted({c.repeats for c in cases})
        span = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else f"{counts[0]}" if counts else "0"
        reps = f"--repeats {args.repeats}" if args.repeats else f"per-preset repeats ({span})"
        note = f"Forward+backward, median (min–max) of {reps}{', --quick shapes' if args.quick else ''}."
        print(format_text(report, repeats_note=note))
    return 0
