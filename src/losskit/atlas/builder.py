"""Writes the atlas: index, one page per loss, stylesheet; everything offline."""

from __future__ import annotations

import html
import math
import shutil
import time
import warnings
from pathlib import Path

from torch import Tensor

from losskit._core.registry import LossSpec, catalog
from losskit.atlas.latex import latex_to_html
from losskit.plot import curve
from losskit.table import COLUMNS, property_rows

__all__ = ["build", "svg_plot"]

_STATIC = Path(__file__).with_name("static")


def _polyline(x: Tensor, y: Tensor, x0: float, w: float, h: float) -> str:
    finite = [(float(a), float(b)) for a, b in zip(x, y) if math.isfinite(float(b))]
    if not finite:
        return ""
    xs, ys = [p[0] for p in finite], [p[1] for p in finite]
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    xl, xh = min(xs), max(xs)
    pts = " ".join(
        f"{x0 + 30 + (a - xl) / ((xh - xl) or 1) * (w - 40):.1f},{10 + (hi - b) / span * (h - 40):.1f}"
        for a, b in finite
    )
    return (f'<path class="curve" d="M {pts.replace(" ", " L ")}"/>'
            f'<text x="{x0 + 2}" y="16">{hi:.3g}</text><text x="{x0 + 2}" y="{h - 30}">{lo:.3g}</text>')


def svg_plot(spec: LossSpec, points: int = 61) -> str:
    """Inline SVG: the loss (left) and its derivative (right) along the loss's natural axis."""
    label, x, loss, grad = curve(spec, points)
    w, h = 320, 200
    parts = [f'<svg class="plot" viewBox="0 0 {2 * w} {h}" '
             f'width="{2 * w}" height="{h}" role="img" '
             f'aria-label="{html.escape(spec.name)} loss and gradient">']
    for k, (title, ys) in enumerate((("loss", loss), ("gradient", grad))):
        x0 = k * w
        parts.append(f'<rect x="{x0 + 30}" y="10" width="{w - 40}" height="{h - 40}" class="frame"/>')
        parts.append(_polyline(x, ys, x0, w, h))
        parts.append(f'<text x="{x0 + w / 2}" y="{h - 8}" text-anchor="middle">{title} vs '
                     f'{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _page(title: str, body: str, depth: int = 0) -> str:
    css = "../" * depth + "style.css"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><link rel=\"stylesheet\" href=\"{css}\"></head>"
            f"<body>{body}</body></html>\n")


def _cells_html(row: dict[str, object]) -> str:
    out = []
    for col in COLUMNS[2:]:
        cell = row[col]
        verdict = cell.verdict  # type: ignore[attr-defined]
        out.append(f'<td class="{verdict.replace(" ", "-")}">{html.escape(str(cell))}</td>')
    return "".join(out)


def _loss_page(spec: LossSpec, row: dict[str, object] | None, plot: str) -> str:
    snippet = (f"import losskit\nloss_fn = losskit.get(\"{spec.name}\")\n"
               f"# or: losskit.functional.{spec.fn.__name__}(...)")
    if spec.module is not None:
        snippet += f"\n# or: losskit.nn.{spec.module.__name__}()"
    props = ""
    if row is not None:
        heads = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS[2:])
        props = (f'<h2>Properties</h2><table class="props"><tr>{heads}</tr><tr>{_cells_html(row)}'
                 "</tr></table><p class=\"legend\">✓ verified by a probe · ✗ a probe contradicts it · "
                 "? not probed · – no claim</p>")
    peers = "".join(
        f"<tr><td>{html.escape(p)}</td><td><code>{html.escape(n)}</code></td></tr>"
        for p, n in spec.peers.items()
    ) or "<tr><td colspan=2>none recorded</td></tr>"
    refs = "".join(f"<li>{html.escape(r)}</li>" for r in spec.references)
    aliases = ", ".join(spec.aliases) or "–"
    body = (
        f'<nav><a href="../index.html">losskit atlas</a> / {html.escape(spec.family)}</nav>'
        f"<h1>{html.escape(spec.name)}</h1><p class=\"summary\">{html.escape(spec.summary)}</p>"
        f"<p>family <b>{html.escape(spec.family)}</b> · tasks {html.escape(', '.join(spec.tasks))} · "
        f"input {html.escape(spec.input_kind)} · target {html.escape(spec.target_kind)} · "
        f"aliases {html.escape(aliases)}</p>"
        f'<h2>Formula</h2><div class="formula">{latex_to_html(spec.formula)}</div>'
        f'<details><summary>LaTeX</summary><code>{html.escape(spec.formula)}</code></details>'
        f"{props}<h2>Loss and gradient</h2>{plot}"
        f"<h2>Usage</h2><pre><code>{html.escape(snippet)}</code></pre>"
        f"<h2>Equivalent names in other libraries</h2><table>{peers}</table>"
        f"<h2>References</h2><ul>{refs}</ul>"
    )
    return _page(f"{spec.name} — losskit atlas", body, depth=1)


def build(out: str | Path, *, names: list[str] | None = None,
          probes: bool | list[str] = True) -> dict[str, float]:
    """Write the atlas into ``out`` (every loss, or ``names``); ``probes`` is ``True`` (probe
    every property row), ``False`` (rows marked "not probed") or the names to probe. Returns
    the timings (seconds) of its parts."""
    out = Path(out)
    (out / "loss").mkdir(parents=True, exist_ok=True)
    shutil.copy(_STATIC / "style.css", out / "style.css")
    specs = catalog()
    if names is not None:
        keep = set(names)
        specs = [s for s in specs if s.name in keep]
    timings = {"probes": 0.0, "plots": 0.0, "pages": 0.0}
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probed = [s.name for s in specs] if probes is True else list(probes or [])
        rows = {r["spec"].name: r for r in property_rows(names=probed)} if probed else {}  # type: ignore[attr-defined]
    timings["probes"] = time.perf_counter() - t
    index_rows = []
    for spec in specs:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plot = svg_plot(spec)
        timings["plots"] += time.perf_counter() - t
        t = time.perf_counter()
        row = rows.get(spec.name)
        (out / "loss" / f"{spec.name}.html").write_text(_loss_page(spec, row, plot), encoding="utf-8")
        cells = _cells_html(row) if row is not None else "<td colspan=5>not probed</td>"
        index_rows.append(
            f'<tr><td><a href="loss/{spec.name}.html">{html.escape(spec.name)}</a></td>'
            f"<td>{html.escape(spec.family)}</td><td>{html.escape(', '.join(spec.tasks))}</td>{cells}</tr>"
        )
        timings["pages"] += time.perf_counter() - t
    heads = "".join(f"<th>{html.escape(c)}</th>" for c in ("loss", "family", "task", *COLUMNS[2:]))
    body = (
        f"<h1>losskit atlas</h1><p>{len(specs)} losses. Every property claim is marked by what "
        "losskit's numerical probes found: ✓ verified · ✗ contradicted · ? not probed · – no claim.</p>"
        f'<table class="index"><tr>{heads}</tr>{"".join(index_rows)}</table>'
    )
    (out / "index.html").write_text(_page("losskit atlas", body), encoding="utf-8")
    return timings
