"""``check_loss``: hold a loss of your own to losskit's contract and measure its properties.

Runs, on a loss function or Module you wrote: ``gradcheck`` and ``gradgradcheck`` in float64,
finite value and gradient at extreme inputs and at a perfect prediction, reduction consistency
(when it takes ``reduction``), ``torch.compile(fullgraph=True)`` tracing, what half-precision
inputs give (dtype and accuracy), no in-place writes, and its row of the property table
(:mod:`losskit.properties`). The contract checks are those of :mod:`losskit.contract`, run on a
temporary, unregistered :class:`~losskit._core.registry.LossSpec`.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from losskit import contract
from losskit._core.checks import LossInputError
from losskit._core.registry import LossSpec, Properties, Sample, cast_sample
from losskit._core.samples import DEFAULT_SHAPE, draw, regression_sample
from losskit.properties import ProbeRow, probe

__all__ = ["CheckReport", "check_loss", "default_sample"]


def default_sample(input_kind: str, target_kind: str) -> Callable[..., Sample]:
    """A sampler for common input/target kinds (pass your own ``sample=`` otherwise)."""
    if input_kind in ("prediction", "real") and target_kind in ("real", "positive", "nonnegative"):
        return regression_sample(target=target_kind)
    if input_kind == "logits" and target_kind == "class_index":
        def cls(gen: torch.Generator, dtype: torch.dtype = torch.float64, extreme: bool = False) -> Sample:
            x = draw("real", (6, 4), gen, dtype, extreme)
            y = torch.randint(4, (6,), generator=gen)
            return Sample((x, y))
        return cls
    if input_kind in ("logits", "probabilities") and target_kind in ("binary", "probability"):
        def binary(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False) -> Sample:
            kind = "real" if input_kind == "logits" else "probability"
            return Sample((draw(kind, DEFAULT_SHAPE, gen, dtype, extreme),
                           draw(target_kind, DEFAULT_SHAPE, gen, dtype)))
        return binary
    raise LossInputError(
        f"no default sample for input_kind={input_kind!r}, target_kind={target_kind!r}. "
        "Pass sample=lambda gen, dtype=torch.float64, extreme=False: Sample((input, target)) "
        "(losskit._core.registry.Sample), or use input_kind='prediction'/'logits'/'probabilities' "
        "with target_kind='real'/'class_index'/'binary'."
    )


@dataclass
class CheckReport:
    """Outcome of :func:`check_loss`: ``results[name] = (status, detail)`` with status
    ``"pass"``, ``"fail"``, ``"info"`` or ``"n/a"``; ``properties`` is the measured row."""

    name: str
    results: dict[str, tuple[str, str]] = field(default_factory=dict)
    properties: ProbeRow | None = None

    @property
    def passed(self) -> bool:
        return all(status != "fail" for status, _ in self.results.values())

    @property
    def failures(self) -> list[str]:
        return [k for k, (status, _) in self.results.items() if status == "fail"]

    def __str__(self) -> str:
        lines = [f"check_loss({self.name}): {'PASS' if self.passed else 'FAIL'}"]
        for key, (status, detail) in self.results.items():
            mark = {"pass": "✓", "fail": "✗", "info": "·", "n/a": "–"}[status]
            lines.append(f"  {mark} {key:<20} {detail}")
        if self.properties is not None:
            p = self.properties
            lines.append("  measured properties:")
            for attr in ("convex", "smoothness", "robust", "homogeneity", "minimizer", "symmetric",
                         "zero_at_perfect"):
                value = getattr(p, attr)
                lines.append(f"    {attr:<16} {'not probed' if value is None else value}")
        return "\n".join(lines)


def _as_function(loss: Callable[..., Tensor]) -> Callable[..., Tensor]:
    if isinstance(loss, nn.Module):
        def call(*args: Any, **kwargs: Any) -> Tensor:
            return loss(*args, **kwargs)
        try:
            call.__signature__ = inspect.signature(loss.forward)  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            pass
        return call
    return loss


def _run(report: CheckReport, name: str, spec: LossSpec, check: Callable[[LossSpec], None],
         ok: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check(spec)
        report.results[name] = ("pass", ok)
    except Exception as e:
        report.results[name] = ("fail", f"{type(e).__name__}: {str(e)[:240]}")


def _perfect(spec: LossSpec) -> None:
    s = spec.sample(torch.Generator().manual_seed(0), dtype=torch.float64)
    x, y = s.args[0], s.args[1]
    if not (isinstance(y, Tensor) and y.is_floating_point() and y.shape == x.shape):
        raise _NotApplicable
    leaf = y.detach().clone().requires_grad_(True)
    out = spec.fn(leaf, *s.args[1:], **s.kwargs)
    out.backward()
    if not bool(torch.isfinite(out).all()) or leaf.grad is None or not bool(torch.isfinite(leaf.grad).all()):
        raise contract.ContractError(
            f"at input == target the loss is {out.detach()} and its gradient has non-finite entries "
            "(sqrt/log/pow at 0?). Fix: the double-where trick or clamp before sqrt."
        )


class _NotApplicable(Exception):
    pass


def _half(spec: LossSpec) -> str:
    s = spec.sample(torch.Generator().manual_seed(0), dtype=torch.float32)
    h = cast_sample(s, torch.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = spec.fn(*h.args, **h.kwargs)
        ref = spec.fn(*cast_sample(h, torch.float64).args, **h.kwargs)
    err = float((out.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
    return f"float16 in → {str(out.dtype).replace('torch.', '')} out, relative error {err:.1e} vs float64"


def check_loss(
    loss: Callable[..., Tensor],
    *,
    input_kind: str = "prediction",
    target_kind: str = "real",
    sample: Callable[..., Sample] | None = None,
    name: str | None = None,
    verbose: bool = True,
) -> CheckReport:
    """Check a loss of your own: gradients, extremes, reductions, compile, dtypes, properties.

    Args:
        loss: a function ``loss(input, target, ...) -> Tensor`` or a Module.
        input_kind: ``"prediction"``, ``"logits"`` or ``"probabilities"`` (for the default sample).
        target_kind: ``"real"``, ``"class_index"`` or ``"binary"`` (for the default sample).
        sample: ``sample(gen, dtype=torch.float64, extreme=False) -> Sample`` giving example
            arguments, when the defaults do not fit.
        name: the name shown in the report.
        verbose: print the summary.

    Returns:
        A :class:`CheckReport` (``report.passed``, ``report.failures``, ``print(report)``).

    Examples:
        >>> import torch, losskit
        >>> def my_l2(input, target, *, reduction="mean"):
        ...     r = (input - target) ** 2
        ...     return r if reduction == "none" else r.sum() if reduction == "sum" else r.mean()
        >>> report = losskit.check_loss(my_l2, verbose=False)
        >>> report.passed, report.properties.convex, report.properties.homogeneity
        (True, True, 2.0)
    """
    fn = _as_function(loss)
    label = name or getattr(loss, "__name__", type(loss).__name__)
    spec = LossSpec(
        name=label, fn=fn, family="regression", tasks=(), input_kind=input_kind,
        target_kind=target_kind, properties=Properties(smoothness="C2"), formula="",
        references=(), sample=sample or default_sample(input_kind, target_kind),
    )
    report = CheckReport(label)
    try:
        sig_ok = "reduction" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        sig_ok = False
    if sig_ok:
        _run(report, "reductions", spec, contract.check_reductions,
             "none/mean/sum consistent (sum == none.sum(), mean == none.mean())")
    else:
        report.results["reductions"] = ("n/a", "no `reduction` argument")
    _run(report, "gradcheck", spec, _gradcheck_only, "float64 gradcheck")
    _run(report, "gradgradcheck", spec, contract.check_gradcheck, "float64 gradgradcheck")
    if report.results["gradcheck"][0] == "fail":
        report.results["gradgradcheck"] = ("n/a", "first derivatives already wrong")
    _run(report, "extremes", spec, contract.check_extremes, "finite value and gradient at extremes")
    try:
        _perfect(spec)
        report.results["perfect_prediction"] = ("pass", "finite value and gradient at input == target")
    except _NotApplicable:
        report.results["perfect_prediction"] = ("n/a", "target is not a real tensor of the input's shape")
    except Exception as e:
        report.results["perfect_prediction"] = ("fail", f"{type(e).__name__}: {str(e)[:240]}")
    _run(report, "compile", spec, contract.check_compile, "torch.compile(fullgraph=True) traces it")
    _run(report, "no_inplace", spec, contract.check_no_inplace, "inputs left untouched")
    try:
        report.results["half"] = ("info", _half(spec))
    except Exception as e:
        report.results["half"] = ("info", f"float16 inputs fail: {type(e).__name__}: {str(e)[:120]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.properties = probe(spec, cache=False)
    if verbose:
        print(report)
    return report


def _gradcheck_only(spec: LossSpec) -> None:
    plain = LossSpec(**{**spec.__dict__, "properties": Properties(smoothness="C0")})
    contract.check_gradcheck(plain)
