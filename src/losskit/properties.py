"""Numerical probes of the properties a loss declares (:class:`~losskit.Properties`).

``probe(spec)`` measures, from the loss function alone and its registered ``sample``:

* **convex** in the input for a fixed target: the midpoint test ``f((a+b)/2) <= (f(a)+f(b))/2``
  on random segments (dense and single-coordinate) through the sample's input.
* **smoothness** ``C0``/``C1``/``C2+``: along a 1-D slice through the input (for regression
  losses, a slice of the residual through 0 and far beyond the usual transition points), the
  first and second derivatives along the slice are computed by autograd; a jump is located by
  bisecting the coarse-grid cell with the largest change: a jump keeps its size as the cell
  shrinks, a continuous derivative does not. ``C2+`` means no jump in either (C2 and C∞ cannot
  be told apart numerically; both claims are confirmed by ``C2+``).
* **robust**: the influence of one outlier: the gradient on one element as its residual grows
  (1 … 1e4) relative to the gradient on the other elements: growing → ``"none"``, flat →
  ``"bounded_influence"``, decaying to 0 → ``"redescending"``.
* **homogeneity**: the degree k with ``loss(c·x, c·y) = c^k·loss(x, y)`` fitted over several c
  (every floating positional argument is scaled); ``homogeneous=False`` when no k fits.
* **minimizer** (regression-like losses): the constant prediction minimising the mean loss on a
  skewed (lognormal) sample, compared with the mean, median, τ-quantile, weighted median and
  ``expm1(mean(log1p(y)))``; ``"other"`` when it is none of them (an M-estimator centre).
* **zero_at_perfect** and **symmetric** (regression-like losses).

Probes run in float64 with fixed seeds. A probe that does not apply to a loss (its input is
not on a domain the probe can move along, or the loss is not finite there) reports ``None``
with the reason in ``notes``; :func:`compare` then says ``"not probed"``, never a fake ✓.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from losskit._core.registry import LossSpec, Sample

__all__ = [
    "FIELDS",
    "ProbeRow",
    "Verdict",
    "compare",
    "probe",
    "verdicts",
]

#: The property fields probed and compared, in table order.
FIELDS: tuple[str, ...] = (
    "convex", "smoothness", "robust", "homogeneity", "minimizer", "symmetric", "zero_at_perfect",
)

Verdict = str  # "verified" | "disagrees" | "unconfirmed" | "not probed" | "no claim"

_ORDER = {"C0": 0, "C1": 1, "C2": 2, "Cinf": 2, "C2+": 2}

_SEED = 1234


@dataclass
class ProbeRow:
    """What the probes measured for one loss; ``None`` = not probed (reason in ``notes``)."""

    name: str
    convex: bool | None = None
    smoothness: str | None = None
    robust: str | None = None
    homogeneity: float | None = None
    homogeneous: bool | None = None
    minimizer: str | None = None
    minimizer_value: float | None = None
    symmetric: bool | None = None
    zero_at_perfect: bool | None = None
    notes: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _domain(x: Tensor) -> str:
    """Where the input lives, judged from the sample: ``unit`` ([0, 1]), ``positive`` or
    ``real``; the probes move along curves that stay inside it."""
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return "unit"
    if lo >= 0.0:
        return "positive"
    return "real"


def _move(center: Tensor, step: Tensor, domain: str) -> Tensor:
    """A point at ``step`` from ``center`` along a smooth curve that stays in the domain
    (a diffeomorphism, so it preserves convexity violations' existence and smoothness class)."""
    if domain == "positive":
        return center * torch.exp(step)
    if domain == "unit":
        c = center.clamp(1e-6, 1 - 1e-6)
        return torch.sigmoid(torch.log(c) - torch.log1p(-c) + step)
    return center + step


_PAIRED = ("embedding", "embeddings")  # the second argument is another input, not a target


def _regression_like(spec: LossSpec, s: Sample) -> bool:
    """Input and target are floating tensors of one shape and the target is not a label or a
    probability (not all in [0, 1], not all ±1)."""
    if len(s.args) < 2 or 0 not in s.grad or spec.input_kind in _PAIRED:
        return False
    x, y = s.args[0], s.args[1]
    if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
        return False
    if not (x.is_floating_point() and y.is_floating_point()) or x.shape != y.shape:
        return False
    return not bool(((y >= 0) & (y <= 1)).all() or (y.abs() == 1).all())


def _perfect(spec: LossSpec, target: Tensor) -> Tensor:
    """The input that predicts ``target`` exactly (log-link inputs take ``log(target)``)."""
    if spec.input_kind.startswith("log_"):
        return torch.log(target.clamp_min(1e-6))
    return target.clone()


def _caller(spec: LossSpec, s: Sample, reduction: str = "mean") -> Callable[[Tensor], Tensor]:
    """``x -> loss`` with the first differentiable argument replaced by ``x``."""
    gi = s.grad[0]
    kwargs = dict(s.kwargs)
    if spec.accepts("reduction"):
        kwargs["reduction"] = reduction

    def f(x: Tensor) -> Tensor:
        args = list(s.args)
        args[gi] = x
        return spec.fn(*args, **kwargs)

    return f


def _rand(shape: torch.Size, gen: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def _base(spec: LossSpec) -> tuple[Sample, Tensor, str, bool]:
    """The probe sample (float64), the centre of the probes, the input domain and whether the
    loss is regression-like."""
    gen = torch.Generator().manual_seed(_SEED)
    s = spec.sample(gen, dtype=torch.float64)
    x = s.args[s.grad[0]]
    reg = _regression_like(spec, s)
    if reg:
        y = s.args[1]
        dom_y = _domain(y)
        # targets the probes can move around: positive targets stay away from 0
        y = y.abs() + 0.5 if dom_y != "real" else y
        s = Sample((s.args[0], y, *s.args[2:]), dict(s.kwargs), s.grad)
        center = _perfect(spec, y)
        domain = "real" if spec.input_kind.startswith("log_") else _domain(x)
    else:
        center = x.detach().clone()
        domain = _domain(x)
    return s, center, domain, reg


def _finite(*ts: Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in ts)


# --------------------------------------------------------------------------- probes


def _many(f: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """``f`` over a stack of inputs: ``torch.func.vmap`` when the loss supports it, else a loop."""
    vf = torch.func.vmap(f)

    def run(xs: Tensor) -> Tensor:
        try:
            return vf(xs)
        except Exception:
            return torch.stack([f(x) for x in xs])

    return run


def probe_convex(f: Callable[[Tensor], Tensor], center: Tensor, domain: str,
                 light: bool = False) -> bool | None:
    """Midpoint convexity on random dense and single-coordinate segments."""
    gen = torch.Generator().manual_seed(_SEED + 1)
    n = center.numel()
    ends = []
    for k in range(8 if light else 24):
        u1, u2 = _rand(center.shape, gen), _rand(center.shape, gen)
        if k % 2:  # a segment along one coordinate
            onehot = torch.zeros(n, dtype=torch.float64)
            onehot[int(torch.randint(n, (1,), generator=gen))] = 1.0
            u1, u2 = u1 * onehot.view(center.shape), u2 * onehot.view(center.shape)
        for scale in (0.3, 1.0, 3.0, 10.0):
            ends.append((_move(center, scale * u1, domain), _move(center, scale * u2, domain)))
    a = torch.stack([e[0] for e in ends])
    b = torch.stack([e[1] for e in ends])
    run = _many(f)
    with torch.no_grad():
        fa, fb, fm = run(a), run(b), run((a + b) / 2)
    ok = torch.isfinite(fa) & torch.isfinite(fb) & torch.isfinite(fm)
    if not bool(ok.any()):
        return None
    excess = fm - (fa + fb) / 2 - 1e-9 * (fa.abs() + fb.abs()) - 1e-12
    return not bool((excess > 0)[ok].any())


def _slice_derivatives(f: Callable[[Tensor], Tensor], center: Tensor, d: Tensor,
                       domain: str) -> tuple[Callable[[Tensor], tuple[Tensor, Tensor]], bool]:
    """``ts -> (g, h)``: first and second derivative of ``f`` along the slice at each t
    (forward-mode AD under vmap when the loss supports it; else a loop with autograd), and
    whether the fast path is in use."""

    def phi(t: Tensor) -> Tensor:
        return f(_move(center, t * d, domain))

    def g_of(t: Tensor) -> Tensor:
        return torch.func.jvp(phi, (t,), (torch.ones_like(t),))[1]

    def gh(t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.func.jvp(g_of, (t,), (torch.ones_like(t),))

    fast = torch.func.vmap(gh)

    def slow_one(t: float) -> tuple[float, float]:
        tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(phi(tt), tt, create_graph=True)
        h = torch.autograd.grad(g, tt, allow_unused=True)[0] if g.requires_grad else None
        return float(g.detach()), 0.0 if h is None else float(h)

    def slow(ts: Tensor) -> tuple[Tensor, Tensor]:
        out = torch.tensor([slow_one(float(t)) for t in ts], dtype=torch.float64)
        return out[:, 0], out[:, 1]

    try:
        probe_ts = torch.tensor([0.1, 0.7], dtype=torch.float64)
        g_fast, h_fast = fast(probe_ts)
        g_slow, h_slow = slow(probe_ts)
        same = torch.allclose(g_fast, g_slow, rtol=1e-6, atol=1e-9, equal_nan=True) and \
            torch.allclose(h_fast, h_slow, rtol=1e-6, atol=1e-9, equal_nan=True)
    except Exception:
        same = False
    return (fast, True) if same else (slow, False)


def _has_jump(ts: Tensor, values: Tensor, ev: Callable[[Tensor], Tensor], extra: tuple[int, ...],
              points: int, levels: int, cells_max: int = 4) -> bool | None:
    """Whether the function sampled at ``ts`` jumps. Candidate cells: those whose change
    stands out from their neighbours' (a smooth function's changes vary smoothly), the largest
    change and ``extra``; each is zoomed into ``levels`` times (``points`` per level, keeping the
    sub-cell with the largest change): a jump keeps its size, a continuous function's change
    vanishes."""
    if not bool(torch.isfinite(values).all()):
        return None
    scale = float(values.abs().max())
    if scale == 0.0:
        return False
    dv = values.diff()
    nb = torch.cat([dv[:1], dv, dv[-1:]])
    spike = (dv - 0.5 * (nb[:-2] + nb[2:])).abs()
    cells = [*extra, *spike.argsort(descending=True)[:3].tolist(), int(dv.abs().argmax())]
    cells = list(dict.fromkeys(cells))[:cells_max]
    lo = ts[cells].clone()
    hi = ts[[c + 1 for c in cells]].clone()
    jumps = dv[cells].abs()
    for _ in range(levels):
        w = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
        pts = lo[:, None] + (hi - lo)[:, None] * w[None, :]
        vals = ev(pts.reshape(-1)).reshape(len(cells), points)
        if not bool(torch.isfinite(vals).all()):
            return None
        d = vals.diff(dim=1).abs()
        k = d.argmax(dim=1)
        rows = torch.arange(len(cells))
        lo, hi, jumps = pts[rows, k], pts[rows, k + 1], d[rows, k]
    return bool((jumps > 1e-4 * scale).any())


def probe_smoothness(f: Callable[[Tensor], Tensor], center: Tensor, domain: str,
                     light: bool = False) -> str | None:
    """``C0`` (the gradient jumps), ``C1`` (the second derivative jumps) or ``C2+``."""
    gen = torch.Generator().manual_seed(_SEED + 2)
    sign = torch.where(torch.rand(center.shape, generator=gen) > 0.5, 1.0, -1.0).double()
    d = sign * (0.5 + torch.rand(center.shape, generator=gen, dtype=torch.float64))
    ev, fast = _slice_derivatives(f, center, d, domain)
    points, levels = (257, 3) if fast else (3, 20)
    if light:
        points, levels = (129, 3) if fast else (3, 12)
    width = 3.0 if domain == "real" else 1.5
    ts = torch.linspace(-width, width, 17 if light else 49, dtype=torch.float64) + 0.0123
    zero = tuple(int(i) for i in torch.nonzero((ts[:-1] <= 0) & (ts[1:] > 0)).flatten())
    g, h = ev(ts)
    n_cells = 1 if light else 5
    g_jump = _has_jump(ts, g, lambda t: ev(t)[0], zero, points, levels, n_cells)
    if g_jump is None:
        return None
    if g_jump:
        return "C0"
    h_jump = _has_jump(ts, h, lambda t: ev(t)[1], zero, points, levels, n_cells)
    if h_jump is None:
        return None
    return "C1" if h_jump else "C2+"


def probe_robust(f: Callable[[Tensor], Tensor], center: Tensor, domain: str) -> str | None:
    """Influence of one outlier relative to the inliers as its residual grows."""
    if domain == "unit" or center.numel() < 2:
        return None
    gen = torch.Generator().manual_seed(_SEED + 3)
    inliers = _move(center, 0.5 * _rand(center.shape, gen), domain).reshape(-1)
    signs = (1.0,) if domain == "positive" else (1.0, -1.0)
    rs = (1.0, 10.0, 100.0, 1e3, 1e4)
    best: list[float] = [0.0] * len(rs)
    for sgn in signs:
        for j, r in enumerate(rs):
            x = inliers.clone()
            x[0] = center.reshape(-1)[0] + sgn * r
            x = x.reshape(center.shape).requires_grad_(True)
            val = f(x)
            (g,) = torch.autograd.grad(val, x)
            g = g.reshape(-1).abs()
            if not _finite(val, g):  # overflow on the way out: the influence is unbounded
                return "none"
            others = float(g[1:].mean())
            ratio = float(g[0]) / others if others > 0 else float(g[0])
            best[j] = max(best[j], ratio)
    if best[-2] > 0 and best[-1] / best[-2] > 3.0:
        return "none"
    if best[-1] < 0.05 * max(best):
        return "redescending"
    return "bounded_influence"


def probe_homogeneity(spec: LossSpec, s: Sample) -> tuple[bool | None, float | None]:
    """``(homogeneous, k)`` from loss(c·args) / loss(args) over c ∈ {0.5, 2, 5}."""
    floats = [  # every real-valued argument; labels (all in {-1, 0, 1}) keep their meaning
        i for i, a in enumerate(s.args)
        if isinstance(a, Tensor) and a.is_floating_point()
        and not bool(((a == 0) | (a.abs() == 1)).all())
    ]

    def at(c: float) -> float:
        args = tuple(a * c if i in floats else a for i, a in enumerate(s.args))
        with torch.no_grad():
            return float(spec.fn(*args, **s.kwargs))

    base = at(1.0)
    if not math.isfinite(base) or base == 0.0:
        return None, None
    ks = []
    for c in (0.5, 2.0, 5.0):
        v = at(c)
        if not math.isfinite(v) or v == 0.0 or (v > 0) != (base > 0):
            return False, None
        ks.append(math.log(v / base) / math.log(c))
    if max(ks) - min(ks) > 1e-6 * max(1.0, max(abs(k) for k in ks)):
        return False, None
    return True, round(sum(ks) / len(ks), 6)


def _candidates(y: Tensor, kwargs: dict[str, Any]) -> dict[str, float]:
    """Statistics a constant fit may converge to."""
    ys = y.sort().values
    n = ys.numel()
    out = {"mean": float(y.mean()), "median": float(ys[n // 2])}
    tau = kwargs.get("quantile", kwargs.get("tau"))
    if isinstance(tau, float) and tau != 0.5:
        out["quantile"] = float(torch.quantile(y, tau))
    w = 1.0 / y.abs()
    cw = torch.cumsum(w[y.argsort()], 0)
    out["weighted_median"] = float(ys[int(torch.searchsorted(cw, cw[-1] / 2))])
    if bool((y > -1).all()):
        out["log1p_mean"] = float(torch.expm1(torch.log1p(y).mean()))
    return out


def probe_minimizer(spec: LossSpec, s: Sample) -> tuple[str | None, float | None]:
    """Fit a constant prediction to a lognormal sample; name the statistic it lands on."""
    gen = torch.Generator().manual_seed(_SEED + 4)
    y = torch.exp(torch.randn(1001, generator=gen, dtype=torch.float64))
    others = tuple(torch.ones_like(y) if isinstance(a, Tensor) and a.is_floating_point() else a
                   for a in s.args[2:])
    kwargs = {**s.kwargs, "reduction": "mean"} if spec.accepts("reduction") else dict(s.kwargs)
    log_link = spec.input_kind.startswith("log_")

    def obj(c: float) -> float:
        pred = math.log(c) if log_link else c
        x = torch.full_like(y, pred)
        with torch.no_grad():
            return float(spec.fn(x, y, *others, **kwargs))

    lo, hi = float(y.min()), float(y.max())
    grid = torch.linspace(lo, hi, 801, dtype=torch.float64).tolist()
    vals = [obj(c) for c in grid]
    if not all(math.isfinite(v) for v in vals):
        return None, None
    k = min(range(len(vals)), key=vals.__getitem__)
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(80):  # golden section inside the best bracket
        c1, c2 = b - phi * (b - a), a + phi * (b - a)
        if obj(c1) <= obj(c2):
            b = c2
        else:
            a = c1
    c = 0.5 * (a + b)
    cands = _candidates(y, s.kwargs)
    spread = float(y.std())
    name, dist = min(((n_, abs(v - c)) for n_, v in cands.items()), key=lambda t: t[1])
    return (name if dist <= 2e-3 * spread else "other"), c


def probe_perfect(f: Callable[[Tensor], Tensor], center: Tensor, domain: str) -> bool | None:
    """0 at the perfect prediction and nothing lower nearby."""
    gen = torch.Generator().manual_seed(_SEED + 5)
    with torch.no_grad():
        at = float(f(center))
        if not math.isfinite(at):
            return None
        far = float(f(_move(center, _rand(center.shape, gen), domain)))
        if abs(at) > 1e-6 * max(abs(far), 1.0):  # eps-guarded formulas leave ~1e-7
            return False
        for scale in (1e-3, 0.1, 1.0, 5.0):
            v = float(f(_move(center, scale * _rand(center.shape, gen), domain)))
            if math.isfinite(v) and v < -1e-12:
                return False
    return True


def probe_symmetric(f: Callable[[Tensor], Tensor], center: Tensor, domain: str) -> bool | None:
    """``loss(y + r) == loss(y - r)`` (residuals kept inside the input domain)."""
    if domain == "unit":
        return None
    gen = torch.Generator().manual_seed(_SEED + 6)
    with torch.no_grad():
        for scale in (0.3, 1.0, 3.0):
            r = scale * _rand(center.shape, gen)
            if domain == "positive":
                r = 0.9 * center * torch.tanh(r)
            a, b = float(f(center + r)), float(f(center - r))
            if not (math.isfinite(a) and math.isfinite(b)):
                return None
            if abs(a - b) > 1e-9 * max(abs(a), abs(b), 1e-12):
                return False
    return True


# --------------------------------------------------------------------------- driver


_CACHE: dict[tuple[str, int], ProbeRow] = {}


def _attempt(row: ProbeRow, name: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as e:  # a probe that cannot run is "not probed", with the reason
        row.notes[name] = f"{type(e).__name__}: {str(e)[:160]}"
        return None


def _slow(f: Callable[[Tensor], Tensor], center: Tensor) -> bool:
    t = time.process_time()
    try:
        with torch.no_grad():
            f(center)
    except Exception:
        return False
    return time.process_time() - t > 0.003


def probe(spec: LossSpec, *, cache: bool = True) -> ProbeRow:
    """Measure the properties of one loss (cached per loss)."""
    key = (spec.name, id(spec.fn))
    if cache and key in _CACHE:
        return _CACHE[key]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the probes evaluate tiny tensors: one thread is several times faster
    try:
        row = _measure(spec)
    finally:
        torch.set_num_threads(threads)
    if cache:
        _CACHE[key] = row
    return row


def _measure(spec: LossSpec) -> ProbeRow:
    row = ProbeRow(spec.name)
    try:
        s, center, domain, reg = _base(spec)
    except Exception as e:
        row.notes["sample"] = f"{type(e).__name__}: {e}"
        return row
    f = _caller(spec, s)
    light = _slow(f, center)  # expensive losses (iterative solvers, ...) get fewer probe points
    row.convex = _attempt(row, "convex", lambda: probe_convex(f, center, domain, light))
    row.smoothness = _attempt(row, "smoothness", lambda: probe_smoothness(f, center, domain, light))
    row.robust = _attempt(row, "robust", lambda: probe_robust(f, center, domain))
    hom = _attempt(row, "homogeneity", lambda: probe_homogeneity(spec, s))
    if hom is not None:
        row.homogeneous, row.homogeneity = hom
    if reg:
        row.zero_at_perfect = _attempt(row, "zero_at_perfect", lambda: probe_perfect(f, center, domain))
        row.symmetric = _attempt(row, "symmetric", lambda: probe_symmetric(f, center, domain))
        if spec.elementwise or spec.family == "regression":
            mini = _attempt(row, "minimizer", lambda: probe_minimizer(spec, s))
            if mini is not None:
                row.minimizer, row.minimizer_value = mini
    else:
        for name in ("zero_at_perfect", "symmetric", "minimizer"):
            row.notes.setdefault(name, "needs a real-valued target of the input's shape")
    for name in FIELDS:
        if getattr(row, name) is None:
            row.notes.setdefault(name, "the probe could not evaluate the loss here")
    return row


_KNOWN_MINIMIZERS = ("mean", "median", "quantile", "weighted_median", "log1p_mean")


def compare(field_name: str, declared: Any, measured: Any, row: ProbeRow | None = None) -> Verdict:
    """The verdict for one claim: ``verified``, ``disagrees`` (the probe found evidence
    against it), ``unconfirmed`` (a non-smoothness or non-convexity claim the probe found no
    evidence for: a kink or a violation can lie off the probed slices), ``not probed`` or
    ``no claim``."""
    if declared is None:
        return "no claim"
    if field_name == "homogeneity":
        if row is None or row.homogeneous is None:
            return "not probed"
        if not row.homogeneous:
            return "disagrees"
        return "verified" if abs(float(declared) - float(measured)) < 1e-4 else "disagrees"
    if measured is None:
        return "not probed"
    if field_name == "smoothness":
        # a kink found is proof; a kink not found on the probed slice is only no evidence
        if _ORDER[measured] == _ORDER[declared]:
            return "verified"
        return "disagrees" if _ORDER[measured] < _ORDER[declared] else "unconfirmed"
    if field_name == "convex" and declared is False and measured is True:
        return "unconfirmed"  # no violation found on the probed segments
    if field_name == "minimizer":
        if declared in _KNOWN_MINIMIZERS:
            return "verified" if measured == declared else "disagrees"
        # a named M-estimator centre (huber_center, ...): it must be none of the classics
        return "verified" if measured == "other" else "disagrees"
    return "verified" if measured == declared else "disagrees"


def verdicts(spec: LossSpec, row: ProbeRow | None = None) -> dict[str, Verdict]:
    """The verdict for every field of ``spec.properties``."""
    row = probe(spec) if row is None else row
    return {
        name: compare(name, getattr(spec.properties, name), getattr(row, name), row)
        for name in FIELDS
    }
