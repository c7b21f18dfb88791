"""The lab's outputs: a self-contained HTML report, ``results.json`` and a stdout summary,
written atomically (a crash or Ctrl-C leaves no partial report)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from losskit._core.checks import LossInputError
from losskit.lab.compare import LabResult
from losskit.lab.study import Claim
from losskit.lab.tasks import TaskContext, resolve_losses

__all__ = ["environment", "write_report", "summary_text", "default_out_dir"]


def environment() -> dict[str, str]:
    """The machine and versions the numbers came from."""
    import losskit

    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__, "losskit": losskit.__version__}
    try:
        import sklearn

        versions["scikit-learn"] = sklearn.__version__
    except ImportError:
        pass
    return {"machine": f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads",
            "platform": platform.platform(), **versions,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def default_out_dir() -> Path:
    return Path(f"lab-report-{datetime.now().strftime('%Y%m%d-%H%M%S')}")


def _png(fig: object) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    import matplotlib.pyplot as plt

    plt.close(fig)  # type: ignore[arg-type]
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves_plot(res: LabResult) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, curve in res.curves.items():
        ax.plot(curve, label=name)
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training curves (first fold)")
    ax.legend(fontsize=7)
    return _png(fig)


def _shape_plot(res: LabResult) -> str:
    """Each compared loss against the residual (regression) or the logit margin."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    z = torch.linspace(-4, 4, 201)
    for choice in resolve_losses(res.task, res.losses):
        if res.task == "regression":
            fn = choice.make(TaskContext("regression"))
            vals = [float(fn(r.reshape(1), torch.zeros(1))) for r in z]
            xlabel = "residual (standardised units)"
        elif res.task == "binary":
            fn = choice.make(TaskContext("binary", 1, [50, 50]))
            vals = [float(fn(v.reshape(1), torch.ones(1))) for v in z]
            xlabel = "logit of the true class (positive example)"
        else:
            fn = choice.make(TaskContext("multiclass", 10, [10] * 10))
            vals = [float(fn(torch.cat([v.reshape(1), torch.zeros(9)]).reshape(1, 10),
                             torch.zeros(1, dtype=torch.long))) for v in z]
            xlabel = "true-class logit (9 other logits at 0)"
        ax.plot(z.numpy(), vals, label=choice.name)
    ax.set(xlabel=xlabel, ylabel="loss", title="the compared losses")
    ax.legend(fontsize=7)
    return _png(fig)


def _reliability_plot(res: LabResult) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for name, r in res.reliability.items():
        conf = np.asarray(r["confidence"])
        acc = np.asarray(r["accuracy"])
        used = np.asarray(r["count"]) > 0
        ax.plot(conf[used], acc[used], marker="o", ms=3, label=name)
    ax.set(xlabel="confidence", ylabel="accuracy", title="reliability diagram", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    return _png(fig)


def _estimator_plot(claim: Claim) -> str:
    plt = _plt()
    rng = np.random.default_rng(0)
    sample = rng.lognormal(0.0, 0.75, size=4000)
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.hist(sample, bins=80, color="#ccc")
    fits = claim.details["fits"]
    for (name, values), color in zip(fits.items(), ["C0", "C1", "C2", "C3"]):  # type: ignore[union-attr]
        ax.axvline(values[0], color=color, label=f"{name}: {values[0]:.3f}")
    ax.set(xlabel="y (log-normal sample, seed 0)", title="constants fitted by each loss", xlim=(0, 6))
    ax.legend(fontsize=7)
    return _png(fig)


def _table(res: LabResult) -> str:
    metrics = list(next(iter(res.metrics.values())).keys())
    rec = res.recommendation()
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for row in res.summary():
        cells = "".join(f"<td>{row[m]:.4g} ± {row[m + '_std']:.2g}</td>" for m in metrics)
        mark = " class='best'" if row["loss"] == rec["best"] else ""
        rows.append(f"<tr{mark}><td>{html.escape(str(row['loss']))}</td>{cells}</tr>")
    return f"<table><tr><th>loss</th>{head}</tr>{''.join(rows)}</table>"


def _recommendation_html(res: LabResult) -> str:
    rec = res.recommendation()
    direction = "higher" if rec["higher_is_better"] else "lower"
    lines = [f"<p class='verdict'>Recommended: <b>{html.escape(str(rec['best']))}</b> by {rec['metric']} "
             f"({direction} is better), mean {rec['mean']:.4g}.</p><ul>"]
    for other, v in rec["versus"].items():  # type: ignore[union-attr]
        lines.append(
            f"<li>vs {html.escape(other)}: margin {v['margin']:.3g} ± {v['margin_std']:.2g} "
            f"(standard error {v['standard_error']:.2g}), better in {v['wins']}/{v['runs']} paired runs"
            f"{'' if v['clear'] else ' — within noise'}</li>")
    return "".join(lines) + "</ul>"


CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}tr.best{background:#eef7ee}.held{color:#176b17}
.notheld{color:#a33}.verdict{font-weight:600}img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}"""


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def render_html(title: str, claims: Sequence[Claim] = (), result: LabResult | None = None,
                env: dict[str, str] | None = None) -> str:
    env = env or environment()
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for claim in claims:
        cls = "held" if claim.held else "notheld"
        body = (f"<p>{html.escape(claim.statement)}</p>"
                f"<p class='verdict {cls}'>{html.escape(claim.verdict)}</p>")
        if claim.result is not None:
            body += _table(claim.result)
            body += f"<img alt='loss shapes' src='{_shape_plot(claim.result)}'>"
            body += f"<img alt='training curves' src='{_curves_plot(claim.result)}'>"
            if claim.result.reliability:
                body += f"<img alt='reliability diagram' src='{_reliability_plot(claim.result)}'>"
        elif claim.key == "estimator":
            body += f"<img alt='fitted constants' src='{_estimator_plot(claim)}'>"
        parts.append(_section(claim.title, body))
    if result is not None:
        settings = ", ".join(f"{k}={v}" for k, v in result.settings.items())
        body = (f"<p>Task: {result.task}; {settings}.</p>" + _recommendation_html(result)
                + _table(result) + f"<img alt='loss shapes' src='{_shape_plot(result)}'>"
                + f"<img alt='training curves' src='{_curves_plot(result)}'>")
        if result.reliability:
            body += f"<img alt='reliability diagram' src='{_reliability_plot(result)}'>"
        parts.append(_section("Comparison", body))
    env_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in env.items())
    parts.append(_section("Machine and versions", f"<table>{env_rows}</table>"))
    parts.append("</body></html>")
    return "".join(parts)


def write_report(out: Path, html_text: str, payload: dict[str, object], *, force: bool = False) -> Path:
    """Write ``index.html`` and ``results.json`` into ``out`` atomically: everything goes to a
    temporary folder beside it, which is renamed into place only when complete."""
    out = Path(out)
    if out.exists() and not force:
        raise LossInputError(f"{out} already exists; pass --force to replace it, or choose another --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "index.html").write_text(html_text, encoding="utf-8")
        (tmp / "results.json").write_text(json.dumps(payload, indent=2, default=float), encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def summary_text(claims: Sequence[Claim] = (), result: LabResult | None = None) -> str:
    lines = []
    for c in claims:
        lines.append(f"[{c.title}] {c.verdict}")
    if result is not None:
        rec = result.recommendation()
        lines.append(f"recommended loss: {rec['best']} ({rec['metric']} = {rec['mean']:.4g})")
        for other, v in rec["versus"].items():  # type: ignore[union-attr]
            lines.append(f"  vs {other}: margin {v['margin']:.3g} ± {v['margin_std']:.2g}, "
                         f"{v['wins']}/{v['runs']} wins{'' if v['clear'] else ' (within noise)'}")
    return "\n".join(lines)
