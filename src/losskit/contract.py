"""The loss contract, as executable checks.

Every registered loss must pass every check here (the test suite runs them over
``losskit.catalog()``); a check that does not apply to a loss is skipped only when its
``@register(skip={...})`` says so, with the reason. ``run_contract(spec)`` returns the outcome
of each check, so a user can hold a loss of their own to the same standard.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from losskit._core.checks import LossInputError
from losskit._core.module import CALL_TIME
from losskit._core.registry import LossSpec, Sample, cast_sample

__all__ = ["CHECKS", "ContractError", "check", "run_contract", "skipped"]


class ContractError(AssertionError):
    """A loss broke the contract; the message says which rule and how."""


def _fail(spec: LossSpec, msg: str) -> None:
    raise ContractError(f"{spec.name}: {msg}")


def _sample(spec: LossSpec, seed: int = 0, dtype: torch.dtype = torch.float64,
            extreme: bool = False) -> Sample:
    gen = torch.Generator().manual_seed(seed)
    return spec.sample(gen, dtype=dtype, extreme=extreme)


def _call(spec: LossSpec, s: Sample, args: tuple[Any, ...] | None = None, **over: Any) -> Tensor:
    return spec.fn(*(s.args if args is None else args), **{**s.kwargs, **over})


def _with_grad(s: Sample) -> tuple[tuple[Any, ...], list[Tensor]]:
    args = list(s.args)
    leaves = []
    for i in s.grad:
        leaf = args[i].detach().clone().requires_grad_(True)
        args[i] = leaf
        leaves.append(leaf)
    return tuple(args), leaves


def _close(a: Tensor, b: Tensor, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
    if a.shape != b.shape:
        return False
    return bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=True))


def _none(spec: LossSpec, s: Sample) -> Tensor:
    return _call(spec, s, reduction="none")


def check_signature(spec: LossSpec) -> None:
    """Data first and positional; every option keyword-only; ``reduction="mean"`` by default;
    elementwise losses take ``sample_weight``, ``mask``, ``normalizer`` and ``empty``; no
    ``**kwargs`` (an option is never accepted and ignored)."""
    params = list(spec.signature.parameters.values())
    if not params or params[0].kind is not params[0].POSITIONAL_OR_KEYWORD:
        _fail(spec, "the first parameter must be the positional input")
    for p in params:
        if p.kind is p.VAR_KEYWORD or p.kind is p.VAR_POSITIONAL:
            _fail(spec, f"*{p.name}/**{p.name} is not allowed: options must be explicit")
        if p.default is not p.empty and p.kind is not p.KEYWORD_ONLY:
            _fail(spec, f"option {p.name!r} has a default but is not keyword-only")
    red = spec.signature.parameters.get("reduction")
    if red is None:
        _fail(spec, "no `reduction` option")
    elif red.default != "mean" and "reduction_default" not in spec.skip:
        _fail(spec, f"reduction defaults to {red.default!r}, not 'mean'")
    if spec.elementwise:
        for name in (*CALL_TIME, "empty"):
            if name not in spec.signature.parameters:
                _fail(spec, f"elementwise loss without the {name!r} option")


def check_docs(spec: LossSpec) -> None:
    """Docstring with a doctest and references; a formula; a Module."""
    doc = inspect.getdoc(spec.fn) or ""
    if ">>>" not in doc:
        _fail(spec, "docstring has no doctest example")
    if "Reference" not in doc:
        _fail(spec, "docstring has no References section")
    if "$" in doc.replace("$$", ""):
        leftover = [w for w in doc.split() if w.startswith("$")]
        if leftover:
            _fail(spec, f"docstring has unfilled fragments {leftover[:3]}")
    if not spec.formula or not spec.references:
        _fail(spec, "registry entry without formula or references")
    if spec.module is None:
        _fail(spec, "no Module (subclass LossModule with fn = staticmethod(...))")


def check_reductions(spec: LossSpec) -> None:
    """``mean``/``sum`` give 0-d tensors; ``sum == none.sum()``; ``mean == none.mean()``."""
    s = _sample(spec)
    none, mean, total = (_call(spec, s, reduction=r) for r in ("none", "mean", "sum"))
    for name, v in (("none", none), ("mean", mean), ("sum", total)):
        if not isinstance(v, Tensor):
            _fail(spec, f"reduction={name!r} returned {type(v).__name__}, not a Tensor")
        if v.dtype != torch.float64:
            _fail(spec, f"float64 inputs gave a {v.dtype} loss with reduction={name!r}")
    if mean.ndim != 0 or total.ndim != 0:
        _fail(spec, f"mean/sum are not 0-d: {tuple(mean.shape)}, {tuple(total.shape)}")
    if not _close(total, none.sum()):
        _fail(spec, f"sum {total.item()} != none.sum() {none.sum().item()}")
    if "mean_of_none" not in spec.skip and not _close(mean, none.mean()):
        _fail(spec, f"mean {mean.item()} != none.mean() {none.mean().item()}")


def _split_options(spec: LossSpec, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    options = spec.module.__signature__.parameters if spec.module else {}  # type: ignore[union-attr]
    ctor = {k: v for k, v in kwargs.items() if k in options}
    call = {k: v for k, v in kwargs.items() if k not in options}
    return ctor, call


def check_module(spec: LossSpec) -> None:
    """The Module built with the options gives the function's value."""
    if spec.module is None:
        _fail(spec, "no Module")
    s = _sample(spec)
    for red in ("mean", "none"):
        kwargs = {**s.kwargs, "reduction": red}
        ctor, call = _split_options(spec, kwargs)
        mod = spec.module(**ctor)  # type: ignore[misc]
        repr(mod)
        got = mod(*s.args, **call)
        want = spec.fn(*s.args, **kwargs)
        if not _close(got, want):
            _fail(spec, f"Module != function for reduction={red!r}")


def check_sample_weight(spec: LossSpec) -> None:
    """Weights of ones change nothing; weighted mean == Σwℓ/Σw; per-sample weights broadcast."""
    if not spec.accepts("sample_weight"):
        return
    s = _sample(spec)
    none = _none(spec, s)
    ones = torch.ones_like(none)
    for red in ("mean", "sum"):
        if not _close(_call(spec, s, reduction=red, sample_weight=ones), _call(spec, s, reduction=red)):
            _fail(spec, f"sample_weight of ones changed reduction={red!r}")
    w = torch.rand(none.shape, generator=torch.Generator().manual_seed(1), dtype=none.dtype) + 0.1
    got = _call(spec, s, sample_weight=w)
    if not _close(got, (w * none).sum() / w.sum()):
        _fail(spec, "weighted mean is not Σ w·ℓ / Σ w")
    if none.ndim >= 2:
        per = w.reshape(w.shape[0], -1)[:, 0].contiguous()
        full = per.reshape((-1,) + (1,) * (none.ndim - 1)).expand(none.shape)
        if not _close(_call(spec, s, sample_weight=per), _call(spec, s, sample_weight=full.contiguous())):
            _fail(spec, "per-sample weights (N,) differ from the same weights per element")


def _random_mask(shape: torch.Size) -> Tensor:
    m = torch.rand(shape, generator=torch.Generator().manual_seed(2)) > 0.4
    flat = m.reshape(-1)
    flat[0], flat[-1] = True, False
    return flat.reshape(shape)


def check_mask(spec: LossSpec) -> None:
    """mask == selecting the kept elements; masked entries are 0 under ``none``; for
    elementwise losses, mask == slicing the inputs."""
    if not spec.accepts("mask"):
        return
    s = _sample(spec)
    none = _none(spec, s)
    m = _random_mask(none.shape)
    if not _close(_call(spec, s, mask=m), none[m].mean()):
        _fail(spec, "mean with mask != mean of the kept elements")
    if not _close(_call(spec, s, mask=m, reduction="sum"), none[m].sum()):
        _fail(spec, "sum with mask != sum of the kept elements")
    masked_none = _call(spec, s, mask=m, reduction="none")
    if not _close(masked_none, torch.where(m, none, 0.0)):
        _fail(spec, "reduction='none' with mask does not zero the masked entries")
    tensors = [a for a in s.args if isinstance(a, Tensor)]
    if spec.elementwise and all(t.shape == none.shape for t in tensors):
        sliced = tuple(a[m] if isinstance(a, Tensor) else a for a in s.args)
        if not _close(_call(spec, s, args=sliced), none[m].mean()):
            _fail(spec, "mask != slicing the inputs")


def check_empty(spec: LossSpec) -> None:
    """All masked: 0 with a zero (finite) gradient, or NaN with ``empty="nan"``."""
    if not (spec.accepts("mask") and spec.accepts("empty")):
        return
    s = _sample(spec)
    none = _none(spec, s)
    nothing = torch.zeros(none.shape, dtype=torch.bool)
    args, leaves = _with_grad(s)
    out = _call(spec, s, args=args, mask=nothing)
    if out.item() != 0.0:
        _fail(spec, f"all-masked mean is {out.item()}, not 0")
    out.backward()
    for leaf in leaves:
        if leaf.grad is not None and not bool((leaf.grad == 0).all()):
            _fail(spec, "all-masked loss has a non-zero gradient")
    if not torch.isnan(_call(spec, s, mask=nothing, empty="nan")):
        _fail(spec, "empty='nan' did not give NaN when everything is masked")


def check_normalizer(spec: LossSpec) -> None:
    """``sum / normalizer``; micro-batches with the global normalizer == the full batch."""
    if not spec.accepts("normalizer"):
        return
    s = _sample(spec)
    total = _call(spec, s, reduction="sum")
    if not _close(_call(spec, s, reduction="sum", normalizer=7.0), total / 7.0):
        _fail(spec, "normalizer does not divide the sum")
    try:
        _call(spec, s, reduction="mean", normalizer=7.0)
    except LossInputError:
        pass
    else:
        _fail(spec, "normalizer with reduction='mean' was accepted (ambiguous)")
    none = _none(spec, s)
    tensors = [a for a in s.args if isinstance(a, Tensor)]
    if not (spec.elementwise and none.ndim and all(t.shape[:1] == none.shape[:1] for t in tensors)):
        return
    n = none.shape[0]
    halves = [slice(0, n // 2), slice(n // 2, n)]
    parts = sum(
        _call(spec, s, args=tuple(a[h] if isinstance(a, Tensor) else a for a in s.args),
              reduction="sum", normalizer=none.numel())
        for h in halves
    )
    if not _close(parts, _call(spec, s), rtol=1e-6):
        _fail(spec, "micro-batches with the global normalizer != the full-batch mean")


def check_gradcheck(spec: LossSpec) -> None:
    """``torch.autograd.gradcheck`` in float64 (and gradgradcheck where declared smooth)."""
    if "gradcheck" in spec.skip:
        return
    s = _sample(spec)
    args, leaves = _with_grad(s)

    def f(*xs: Tensor) -> Tensor:
        a = list(args)
        for i, x in zip(s.grad, xs):
            a[i] = x
        return _call(spec, s, args=tuple(a), reduction="sum")

    try:
        torch.autograd.gradcheck(f, tuple(leaves), eps=1e-6, atol=1e-5, rtol=1e-4)
        smooth = spec.properties.smoothness in ("C2", "Cinf")
        if smooth and "gradgradcheck" not in spec.skip:
            torch.autograd.gradgradcheck(f, tuple(leaves), eps=1e-6, atol=1e-5, rtol=1e-4)
    except RuntimeError as e:
        _fail(spec, f"gradcheck failed: {str(e)[:300]}")


def check_half(spec: LossSpec) -> None:
    """float16/bfloat16 inputs give a float32 loss within 1e-2 relative of float64 computed
    on the same (rounded) inputs, and finite gradients."""
    if "half" in spec.skip:
        return
    base = _sample(spec, dtype=torch.float32)
    for dtype in (torch.float16, torch.bfloat16):
        s = cast_sample(base, dtype)
        args, leaves = _with_grad(s)
        out = _call(spec, s, args=args)
        if out.dtype != torch.float32:
            _fail(spec, f"{dtype} inputs gave a {out.dtype} loss, not float32")
        ref = _call(spec, cast_sample(s, torch.float64))
        if not bool((out.double() - ref).abs() <= 1e-2 * ref.abs() + 1e-4):
            _fail(spec, f"{dtype}: {out.item()} vs float64 {ref.item()}")
        out.backward()
        for leaf in leaves:
            if leaf.grad is None or not bool(torch.isfinite(leaf.grad).all()):
                _fail(spec, f"{dtype}: missing or non-finite gradient")


def check_compile(spec: LossSpec) -> None:
    """``torch.compile(fullgraph=True, backend="eager")`` traces the loss and gives the same
    value and gradient."""
    if "compile" in spec.skip:
        return
    s = _sample(spec)
    compiled = torch.compile(spec.fn, backend="eager", fullgraph=True, dynamic=False)
    args, leaves = _with_grad(s)
    try:
        got = compiled(*args, **s.kwargs)
    except Exception as e:
        _fail(spec, f"torch.compile(fullgraph=True) failed: {type(e).__name__}: {str(e)[:300]}")
    eager = _call(spec, s)
    if not _close(got, eager):
        _fail(spec, "compiled value != eager value")
    got.backward()
    if any(leaf.grad is None for leaf in leaves):
        _fail(spec, "compiled loss gave no gradient")


def check_extremes(spec: LossSpec) -> None:
    """Inputs at the edge of the domain give a finite loss and finite gradients."""
    if "extremes" in spec.skip:
        return
    for dtype in (torch.float64, torch.float32):
        s = _sample(spec, dtype=dtype, extreme=True)
        args, leaves = _with_grad(s)
        out = _call(spec, s, args=args)
        if not bool(torch.isfinite(out).all()):
            _fail(spec, f"{dtype} extreme inputs gave a non-finite loss {out}")
        out.backward()
        for leaf in leaves:
            if leaf.grad is None or not bool(torch.isfinite(leaf.grad).all()):
                _fail(spec, f"{dtype} extreme inputs gave a non-finite gradient")


def check_bad_input(spec: LossSpec) -> None:
    """An unknown reduction and an extra trailing dimension on the input raise
    ``LossInputError`` with the argument's name."""
    s = _sample(spec)
    try:
        _call(spec, s, reduction="avg")
    except LossInputError as e:
        if "reduction" not in str(e):
            _fail(spec, f"bad reduction error does not name it: {e}")
    else:
        _fail(spec, "reduction='avg' was accepted")
    if "bad_shape" in spec.skip:
        return
    bad = (s.args[0].unsqueeze(-1),) + tuple(s.args[1:])
    try:
        _call(spec, s, args=bad)
    except LossInputError:
        pass
    except Exception as e:
        _fail(spec, f"a wrongly shaped input raised {type(e).__name__}, not LossInputError: {e}")
    else:
        _fail(spec, f"input of shape {tuple(bad[0].shape)} was accepted (silent broadcasting?)")


def check_no_inplace(spec: LossSpec) -> None:
    """Forward and backward leave the caller's tensors untouched."""
    s = _sample(spec)
    args, _ = _with_grad(s)
    tensors = [a for a in args if isinstance(a, Tensor)]
    tensors += [v for v in s.kwargs.values() if isinstance(v, Tensor)]
    before = [(t.detach().clone(), t._version) for t in tensors]
    _call(spec, s, args=args).backward()
    for t, (copy, version) in zip(tensors, before):
        if t._version != version or not torch.equal(t.detach(), copy):
            _fail(spec, "an input tensor was modified in place")


CHECKS: dict[str, Callable[[LossSpec], None]] = {
    "signature": check_signature,
    "docs": check_docs,
    "reductions": check_reductions,
    "module": check_module,
    "sample_weight": check_sample_weight,
    "mask": check_mask,
    "empty": check_empty,
    "normalizer": check_normalizer,
    "gradcheck": check_gradcheck,
    "half": check_half,
    "compile": check_compile,
    "extremes": check_extremes,
    "bad_input": check_bad_input,
    "no_inplace": check_no_inplace,
}


def skipped(spec: LossSpec, name: str) -> str | None:
    """The reason ``spec`` gives for not applying check ``name``, or ``None``."""
    return spec.skip.get(name)


def check(spec: LossSpec, name: str) -> None:
    """Run one contract check (raises :class:`ContractError`); a check the loss declares
    not applicable (``skip``) is not run."""
    if skipped(spec, name) is None:
        CHECKS[name](spec)


def run_contract(spec: LossSpec) -> dict[str, str | None]:
    """Run every check; map each name to ``None`` (passed) or the failure message."""
    out: dict[str, str | None] = {}
    for name in CHECKS:
        try:
            check(spec, name)
            out[name] = None
        except Exception as e:
            out[name] = f"{type(e).__name__}: {e}"
    return out
