"""``losskit lab``: which loss suits this data, measured.

With no CSV it runs the built-in study (scikit-learn's bundled datasets); with a CSV it
cross-validates the chosen losses on it. Either way it writes an HTML report and results.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from losskit._core.checks import LossInputError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("lab", help="compare losses on data (built-in study, or your CSV)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", nargs="?", help="a CSV file with a header row (omit for the built-in study)")
    p.add_argument("--target", help="the target column of the CSV")
    p.add_argument("--task", choices=["regression", "binary", "multiclass"])
    p.add_argument("--losses", help="comma-separated presets or registered loss names")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seeds", type=int, default=None, help="repeats with different splits (default 3 "
                   "for the study, 1 for a CSV)")
    p.add_argument("--model", choices=["linear", "mlp"], default="linear")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--dropna", action="store_true", help="drop rows with missing values")
    p.add_argument("--claims", help="comma-separated subset of the study: outliers,estimator,imbalance,"
                   "calibration")
    p.add_argument("--out", type=Path, help="report folder (default: a new timestamped folder)")
    p.add_argument("--force", action="store_true", help="replace an existing report folder")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not sys.stderr.isatty()
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"\r  [{time.perf_counter() - self.start:5.1f}s] {message}   ", end="", file=sys.stderr,
                  flush=True)

    def done(self) -> None:
        if not self.quiet:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from losskit.lab import report
    from losskit.lab.compare import compare
    from losskit.lab.study import CLAIMS, run_study

    out = args.out or report.default_out_dir()
    if out.exists() and not args.force:
        raise LossInputError(f"{out} already exists; pass --force to replace it, or choose another --out.")
    progress = _Progress(args.quiet)
    from losskit._core.checks import did_you_mean

    if args.csv is None:
        if args.target or args.task:
            raise LossInputError(
                "--target/--task need a CSV file: losskit lab data.csv --target y --task ..."
            )
        claims = args.claims.split(",") if args.claims else None
        for c in claims or []:
            if c not in CLAIMS:
                raise LossInputError(
                    f"unknown claim {c!r}.{did_you_mean(c, CLAIMS)} Claims: {', '.join(CLAIMS)}."
                )
        print("losskit lab: the built-in study (scikit-learn's bundled datasets)", file=sys.stderr)
        results = run_study(seeds=args.seeds or 3, claims=claims, progress=progress)
        progress.done()
        html_text = report.render_html("losskit lab: which loss suits the data", claims=results)
        payload = {"study": [c.to_dict() for c in results], "environment": report.environment()}
        path = report.write_report(out, html_text, payload, force=args.force)
        print(report.summary_text(claims=results))
    else:
        from losskit.lab.data import load_csv

        if not args.target or not args.task:
            raise LossInputError("a CSV needs --target COLUMN and --task regression|binary|multiclass.")
        data = load_csv(args.csv, args.target, args.task, dropna=args.dropna)
        losses = [s.strip() for s in args.losses.split(",")] if args.losses else None
        result = compare(data.X, data.y, task=args.task, losses=losses, folds=args.folds,
                         seeds=args.seeds or 1, model=args.model, epochs=args.epochs, lr=args.lr,
                         progress=progress)
        progress.done()
        html_text = report.render_html(f"losskit lab: {Path(args.csv).name}, target {args.target}",
                                       result=result)
        payload = {"csv": str(args.csv), "target": args.target, "classes": data.classes,
                   "features": data.feature_names, "result": result.to_dict(),
                   "environment": report.environment()}
        path = report.write_report(out, html_text, payload, force=args.force)
        print(report.summary_text(result=result))
    print(f"report: {path / 'index.html'}")
    return 0
