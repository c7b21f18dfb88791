"""Select, run and report the presets of ``losskit bench``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from losskit._core.checks import LossInputError, did_you_mean
from losskit._core.registry import FAMILIES, catalog, get_spec
from losskit.bench.cases import CASES, Built, Case, Goal, NotTimed, Unavailable
from losskit.bench.harness import (
    Row,
    compare,
    cuda_peak_mib,
    machine,
    peak_env,
    saved_bytes,
    steady_allocator,
)

__all__ = ["GoalResult", "Report", "families_of", "format_json", "format_text", "run", "select"]

NO_CUDA = "not measured (no CUDA device)"


def families_of(c: Case) -> tuple[str, ...]:
    return tuple(dict.fromkeys(get_spec(n).family for n in c.losses))


def select(names: Sequence[str], cases: Sequence[Case] = CASES) -> list[Case]:
    """The cases for these family or loss names (aliases resolved through the registry), in
    preset order; every case when ``names`` is empty."""
    if not names:
        return list(cases)
    wanted: set[str] = set()
    for raw in names:
        name = raw.strip().lower().replace("-", "_")
        if name in FAMILIES:
            wanted.update(c.id for c in cases if name in families_of(c))
            continue
        try:
            spec = get_spec(name)
        except LossInputError:
            known = list(FAMILIES) + [n for s in catalog() for n in (s.name, *s.aliases)]
            raise LossInputError(
                f"no family or loss named {raw!r}.{did_you_mean(name, known)} "
                f"Families: {', '.join(FAMILIES)}; `losskit bench --list` shows every preset."
            ) from None
        hits = [c.id for c in cases if spec.name in c.losses]
        if not hits:
            covered = sorted({n for c in cases for n in c.losses})
            raise LossInputError(
                f"loss {spec.name!r} has no benchmark preset. Presets cover: {', '.join(covered)}."
            )
        wanted.update(hits)
    return [c for c in cases if c.id in wanted]


@dataclass
class GoalResult:
    case: str
    goal: str
    value: float | None
    limit: float
    met: bool | None
    detail: str


@dataclass
class Report:
    machine: str
    device: str
    rows: list[tuple[Case, Row]]
    goals: list[GoalResult]
    baselines: dict[str, str]


def cpu_peaks(cases: Sequence[Case], quick: bool) -> dict[str, dict[str, tuple[float | None, str]]]:
    """Peak memory of every candidate of ``cases``, from one fresh process (see
    :mod:`losskit.bench.peak`); an empty result with a note if that process fails."""
    if not cases:
        return {}
    cmd = [sys.executable, "-m", "losskit.bench.peak", *(["--quick"] if quick else []),
           *(c.id for c in cases)]
    env = peak_env()
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # the same threads as the timings
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {c.id: {"__error__": (None, f"peak not measured: {tail[:120]}")} for c in cases}
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {cid: {k: (v[0], v[1]) for k, v in res.items()} for cid, res in data.items()}


def _preflight(fn: Callable[..., Tensor], built: Built) -> float | str:
    """One forward+backward (the first warm-up), counting the bytes saved for backward (MiB);
    the error as a string if it fails."""
    xs = [t.detach().requires_grad_(True) if i in built.grad else t for i, t in enumerate(built.inputs)]
    try:
        return saved_bytes(fn, xs, backward=True) / 2**20
    except Exception as e:  # a peer's failure is a row, not a crash
        return f"error: {type(e).__name__}: {str(e)[:120]}"


def run_case(
    c: Case,
    device: torch.device,
    *,
    quick: bool,
    repeats: int | None,
    peaks: dict[str, tuple[float | None, str]] | None,
) -> tuple[list[Row], Built, str | None]:
    built = c.build(quick, device)
    reps = repeats if repeats is not None else (min(c.repeats, 2) if quick else c.repeats)
    status: dict[str, str] = {}
    saved: dict[str, float] = {}
    timed: dict[str, Callable[..., Tensor]] = {}
    for label, cand in built.candidates.items():
        if isinstance(cand, Unavailable):
            status[label] = cand.reason
        elif isinstance(cand, NotTimed):
            status[label] = "not timed"
        else:
            first = _preflight(cand, built)
            if isinstance(first, str):
                status[label] = first
            else:
                timed[label], saved[label] = cand, first
    rows_by_label: dict[str, Row] = {}
    baseline = None
    if timed:
        baseline = built.baseline if built.baseline in timed else next(iter(timed))
        for r in compare(c.id, timed, built.inputs, grad=built.grad, baseline=baseline, repeats=reps,
                         warmup=0 if quick else max(c.warmup - 1, 0), peak=device.type == "cuda",
                         saved=False):
            r.saved_mib = saved[r.label]
            rows_by_label[r.label] = r
    rows = []
    for label, cand in built.candidates.items():
        row = rows_by_label.get(label) or Row(c.id, label, None, None, None, status=status[label])
        if device.type == "cuda" and isinstance(cand, NotTimed):
            try:
                row.peak_mib = cuda_peak_mib(cand.fn, built.inputs, built.grad)
            except torch.OutOfMemoryError as e:
                row.status = f"cannot run: {str(e).splitlines()[0][:120]}"
        if peaks is not None and label in peaks:
            row.peak_mib, pstatus = peaks[label]
            if pstatus not in ("ok", "not timed"):
                row.status = pstatus
        elif peaks is not None and "__error__" in peaks and row.status == "ok":
            row.status = peaks["__error__"][1]
        rows.append(row)
    return rows, built, baseline


def _goal(c: Case, g: Goal, rows: dict[str, Row], input0_mib: float) -> GoalResult:
    ours, other = rows.get(g.ours), rows.get(g.other) if g.other else None
    field = {"time": "median_ms", "saved": "saved_mib", "peak": "peak_mib"}[g.metric]
    mine = getattr(ours, field) if ours else None
    if g.unit == "ratio":
        theirs = getattr(other, field) if other else None
        why = other.status if other is not None and theirs is None else "not measured"
        if mine is None or theirs is None or theirs == 0:
            return GoalResult(c.id, g.text, None, g.limit, None, why)
        value = mine / theirs
        detail = f"{value:.3g}× {g.other}"
    elif g.unit == "input0":
        if mine is None:
            return GoalResult(c.id, g.text, None, g.limit, None, "not measured")
        # per-row statistics (O(N) beside the N×C logits) are ignored: 1% slack
        value = mine / input0_mib
        detail = f"{mine:.1f} MiB = {value:.3g}× the logits ({input0_mib:.1f} MiB)"
        return GoalResult(c.id, g.text, value, g.limit, value <= g.limit + 0.01, detail)
    else:
        if mine is None:
            return GoalResult(c.id, g.text, None, g.limit, None, ours.status if ours else "not measured")
        value = mine
        detail = f"{mine:.3g} {'ms' if g.metric == 'time' else 'MiB'}"
    return GoalResult(c.id, g.text, value, g.limit, value <= g.limit, detail)


def run(
    cases: Sequence[Case],
    *,
    device: str = "cpu",
    quick: bool = False,
    repeats: int | None = None,
    peak: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Measure ``cases`` on ``device``; GPU-only cases are rows saying "not measured" off CUDA."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LossInputError("--device cuda: no CUDA device is available here. Fix: use --device cpu.")
    runnable = [c for c in cases if not c.gpu or dev.type == "cuda"]
    peaks = cpu_peaks(runnable, quick) if (peak and dev.type == "cpu") else {}
    steady_allocator()  # for the timings only: the peak process (already run) needs the opposite
    rows: list[tuple[Case, Row]] = []
    goals: list[GoalResult] = []
    baselines: dict[str, str] = {}
    for i, c in enumerate(cases):
        if progress:
            progress(f"[{i + 1}/{len(cases)}] {c.id}")
        if c not in runnable:
            why = NO_CUDA if not torch.cuda.is_available() else "not measured (--device cpu)"
            built = None
            case_rows = [Row(c.id, "*", None, None, None, status=why)]
        else:
            case_rows, built, base = run_case(c, dev, quick=quick, repeats=repeats,
                                              peaks=peaks.get(c.id) if (peak and dev.type == "cpu") else None)
            if base is not None:
                baselines[c.id] = base
        rows += [(c, r) for r in case_rows]
        by_label = {r.label: r for r in case_rows}
        input0 = built.inputs[0].nbytes / 2**20 if built is not None else 0.0
        for g in c.goals:
            if built is None:
                goals.append(GoalResult(c.id, g.text, None, g.limit, None, case_rows[0].status))
            else:
                goals.append(_goal(c, g, by_label, input0))
        del built
    return Report(machine(dev), str(dev), rows, goals, baselines)


def _num(x: float | None, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def format_text(report: Report, *, repeats_note: str = "") -> str:
    """Markdown tables: every row, then the goals with their measured values."""
    out = [f"Machine: {report.machine}", f"Device: {report.device}"]
    if repeats_note:
        out.append(repeats_note)
    out += ["", "| case | implementation | median ms (min–max) | ratio | saved for backward MiB | peak MiB |",
            "|---|---|---:|---:|---:|---:|"]
    for _, r in report.rows:
        if r.median_ms is None:
            time = r.status
        else:
            time = f"{r.median_ms:.2f} ({r.min_ms:.2f}–{r.max_ms:.2f})"
            if r.status != "ok":
                time += f"; {r.status}"
        out.append(f"| {r.case} | {r.label} | {time} | {_num(r.ratio, '.2f')} | {_num(r.saved_mib, '.1f')} "
                   f"| {_num(r.peak_mib, '.1f')} |")
    if report.goals:
        out += ["", "| case | goal | measured | met |", "|---|---|---|:---:|"]
        for g in report.goals:
            met = "—" if g.met is None else ("yes" if g.met else "**no**")
            out.append(f"| {g.case} | {g.goal} | {g.detail} | {met} |")
    return "\n".join(out)


def format_json(report: Report) -> str:
    """One JSON array, one object per row: case, family, implementation, median_ms, min_ms,
    max_ms, ratio, baseline, saved_mib, peak_mib, status, device, machine, and on losskit's rows
    the goals measured from them."""
    goals: dict[str, list[dict[str, object]]] = {}
    for g in report.goals:
        goals.setdefault(g.case, []).append(asdict(g))
    items = []
    for c, r in report.rows:
        item: dict[str, object] = {
            "case": r.case, "family": list(families_of(c)), "losses": list(c.losses),
            "implementation": r.label, "median_ms": r.median_ms, "min_ms": r.min_ms, "max_ms": r.max_ms,
            "ratio": r.ratio, "baseline": report.baselines.get(r.case), "saved_mib": r.saved_mib,
            "peak_mib": r.peak_mib, "status": r.status, "device": report.device, "machine": report.machine,
        }
        if r.label.startswith("losskit") or r.label == "*":
            item["goals"] = [g for g in goals.get(r.case, []) if r.label == "*" or
                             any(goal.ours == r.label and goal.text == g["goal"] for goal in c.goals)]
        items.append(item)
    return json.dumps(items, indent=1)
