"""The comparison table: typical task, convex, differentiable, robust to outliers, scale/units and
induced estimator for every loss, each declared claim marked by what the probes found.

Marks: ✓ the probe confirmed the claim; ✗ the probe found evidence against it; ? not probed
(or, for "not convex"/"kinked" claims, no counter-evidence found: a kink can lie off the
probed slice); – no claim declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from losskit._core.registry import LossSpec, catalog
from losskit.properties import ProbeRow, probe, verdicts

__all__ = ["COLUMNS", "Cell", "MARKS", "property_rows", "table"]

MARKS: dict[str, str] = {
    "verified": "✓",
    "disagrees": "✗",
    "unconfirmed": "?",
    "not probed": "?",
    "no claim": "–",
}

COLUMNS: tuple[str, ...] = (
    "loss", "task", "convex", "differentiable", "robust to outliers", "scale/units", "estimator",
)

_SMOOTH = {"C0": "no (kinks, C0)", "C1": "C1", "C2": "C2", "Cinf": "C∞"}
_ROBUST = {"none": "no", "bounded_influence": "bounded influence", "redescending": "redescending"}


@dataclass
class Cell:
    """One claim: the declared value in words, the verdict and its mark."""

    text: str
    verdict: str

    @property
    def mark(self) -> str:
        return MARKS[self.verdict]

    def __str__(self) -> str:
        return self.text if self.verdict == "no claim" else f"{self.text} {self.mark}"


def _cells(spec: LossSpec, row: ProbeRow) -> dict[str, Cell]:
    p = spec.properties
    v = verdicts(spec, row)
    convex = "–" if p.convex is None else ("yes" if p.convex else "no")
    smooth = "–" if p.smoothness is None else _SMOOTH.get(p.smoothness, p.smoothness)
    robust = "–" if p.robust is None else _ROBUST.get(p.robust, p.robust)
    if p.homogeneity is not None:
        k = float(p.homogeneity)
        scale = f"degree {k:g}" + (f" ({p.units})" if p.units else "")
    else:
        scale = p.units or "–"
    return {
        "convex": Cell(convex, v["convex"]),
        "differentiable": Cell(smooth, v["smoothness"]),
        "robust to outliers": Cell(robust, v["robust"]),
        "scale/units": Cell(scale, v["homogeneity"]),
        "estimator": Cell(p.minimizer or "–", v["minimizer"]),
    }


def property_rows(family: str | None = None, names: list[str] | None = None) -> list[dict[str, object]]:
    """One dict per loss: ``spec``, ``row`` (the probe) and a :class:`Cell` per column."""
    specs = catalog(family=family)
    if names is not None:
        wanted = set(names)
        specs = [s for s in specs if s.name in wanted]
    out: list[dict[str, object]] = []
    for spec in specs:
        row = probe(spec)
        out.append({"spec": spec, "row": row, "task": ", ".join(spec.tasks), **_cells(spec, row)})
    return out


def table(family: str | None = None, markdown: bool = False, names: list[str] | None = None) -> str:
    """The comparison table for every loss (or one family) as text or markdown; every claim is
    followed by its mark (✓ verified, ✗ contradicted, ? not probed, – no claim)."""
    from losskit.commands._table import render

    rows = [
        [r["spec"].name, str(r["task"]), *(str(r[c]) for c in COLUMNS[2:])]  # type: ignore[attr-defined]
        for r in property_rows(family, names)
    ]
    legend = "✓ verified by a probe · ✗ a probe contradicts it · ? not probed · – no claim"
    return render(list(COLUMNS), rows, markdown) + "\n\n" + legend
