"""The fused elementwise path (losskit._core.fused): chunked forward/backward that saves only the
inputs must give the composed reference's values and gradients for every reduction."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import losskit._core.fused as fused
from losskit._core.fused import ElementwiseKernel, elementwise_loss, fusable

pytestmark = pytest.mark.usefixtures("fused_backend")


def _ref(x: Tensor, t: Tensor, c: float) -> Tensor:
    r = x - t
    return c * r * r * r * r.sign() + r * r  # c|r|³ + r²


def _value(x: Tensor, t: Tensor, c: float) -> Tensor:
    r = x - t
    a = r.abs()
    return a.mul(c).add_(1.0).mul_(r).mul_(r)


def _grad(x: Tensor, t: Tensor, c: float) -> Tensor:
    r = x - t
    return r.abs().mul_(3.0 * c).add_(2.0).mul_(r)


RESIDUAL = ElementwiseKernel("cubic", _ref, _value, _grad, target_grad="negate")
NO_TARGET_GRAD = ElementwiseKernel("cubic_x", _ref, _value, _grad)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused, "CHUNK", 7)  # many chunks and a ragged last one


def _data(shape: tuple[int, ...] = (5, 9)) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    t = torch.randn(shape, generator=gen, dtype=torch.float64)
    return x, t


def _expected(x: Tensor, t: Tensor, c: float, reduction: str) -> Tensor:
    ell = c * (x - t).abs() ** 3 + (x - t) ** 2  # written independently of _ref
    return {"none": ell, "sum": ell.sum(), "mean": ell.mean()}[reduction]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_value_and_both_gradients_match_the_formula(small_chunks: None, reduction: str) -> None:
    x, t = _data()
    x1, t1 = x.clone().requires_grad_(), t.clone().requires_grad_()
    x2, t2 = x.clone().requires_grad_(), t.clone().requires_grad_()
    got = elementwise_loss(RESIDUAL, x1, t1, (0.3,), reduction)
    want = _expected(x2, t2, 0.3, reduction)
    g = torch.randn(got.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    gx, gt = torch.autograd.grad(got, (x1, t1), g)
    wx, wt = torch.autograd.grad(want, (x2, t2), g)
    torch.testing.assert_close(gx, wx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gt, wt, rtol=1e-12, atol=1e-12)


def test_saves_only_the_inputs() -> None:
    x, t = _data((64, 64))
    x.requires_grad_()
    saved: list[int] = []
    inputs = {x.untyped_storage().data_ptr(), t.untyped_storage().data_ptr()}

    def pack(v: Tensor) -> Tensor:
        if v.untyped_storage().data_ptr() not in inputs:
            saved.append(v.untyped_storage().nbytes())
        return v

    for reduction in ("mean", "none"):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda v: v):
            elementwise_loss(RESIDUAL, x, t, (0.3,), reduction)
    assert saved == []


def test_double_backward_uses_the_reference(small_chunks: None) -> None:
    x, t = _data((3, 4))
    x.requires_grad_()
    assert torch.autograd.gradgradcheck(lambda v: elementwise_loss(RESIDUAL, v, t, (0.3,), "none"), (x,))
    assert torch.autograd.gradgradcheck(lambda v: elementwise_loss(RESIDUAL, v, t, (0.3,), "mean"), (x,))


def test_weights_and_mask_go_through_reduce(small_chunks: None) -> None:
    x, t = _data()
    w = torch.rand(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    keep = w > 0.3
    x.requires_grad_()
    got = elementwise_loss(RESIDUAL, x, t, (0.3,), "mean", sample_weight=w, mask=keep)
    ell = _expected(x, t, 0.3, "none")
    want = (ell * w)[keep].sum() / w[keep].sum()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])


def test_non_contiguous_input(small_chunks: None) -> None:
    x, t = _data((9, 5))
    xt = x.t().requires_grad_()
    got = elementwise_loss(RESIDUAL, xt, t.t(), (0.3,), "none")
    torch.testing.assert_close(got, _expected(x.t(), t.t(), 0.3, "none"))
    g = torch.randn(got.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(got, xt, g)[0],
                               (3 * 0.3 * (xt - t.t()).abs() + 2) * (xt - t.t()).detach() * g)


def test_dispatch_falls_back_where_the_fast_path_does_not_apply() -> None:
    x, t = _data()
    assert fusable(RESIDUAL, x, t, (0.3,))
    assert not fusable(RESIDUAL, x, t[:1], (0.3,))                      # broadcast
    assert not fusable(RESIDUAL, x, t.float(), (0.3,))                  # mixed dtypes
    assert not fusable(RESIDUAL, x, t, (torch.tensor(0.3),))            # tensor option
    assert not fusable(NO_TARGET_GRAD, x, t.requires_grad_(), (0.3,))   # target grad not fused
    assert not fusable(RESIDUAL, x[:0], t[:0], (0.3,))                  # empty: reduce's policy
    t1 = t.detach().requires_grad_()
    got = elementwise_loss(NO_TARGET_GRAD, x, t1, (0.3,), "sum")
    torch.testing.assert_close(torch.autograd.grad(got, t1)[0], -(0.9 * (x - t).abs() + 2) * (x - t))


def test_compiles_fullgraph_through_the_reference() -> None:
    x, t = _data()
    compiled = torch.compile(lambda a, b: elementwise_loss(RESIDUAL, a, b, (0.3,), "mean"),
                             fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, t), _expected(x, t, 0.3, "mean"))


def test_bad_reduction_is_rejected_before_any_work() -> None:
    from losskit import LossInputError

    x, t = _data()
    with pytest.raises(LossInputError, match="reduction"):
        elementwise_loss(RESIDUAL, x, t, (0.3,), "avg")
    with pytest.raises(LossInputError, match="empty"):
        elementwise_loss(RESIDUAL, x, t, (0.3,), "mean", empty="skip")


# ------------------------------------------------------------------ every kernel in the library


def library_kernels() -> list[ElementwiseKernel]:
    """Every ElementwiseKernel defined in losskit.losses."""
    import importlib
    import pkgutil

    import losskit.losses

    found: dict[str, ElementwiseKernel] = {}
    for info in pkgutil.iter_modules(losskit.losses.__path__):
        module = importlib.import_module(f"losskit.losses.{info.name}")
        for value in vars(module).values():
            if isinstance(value, ElementwiseKernel):
                found[value.name] = value
    return list(found.values())


def _library_kernels() -> list[object]:
    return [pytest.param(k, p, id=f"{k.name}{list(p)}") for k in library_kernels() for p in k.examples]


def _target(kind: str, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    if kind == "unit":
        return u
    if kind == "binary":
        return (u < 0.3).double()
    if kind == "sign":
        return torch.where(u < 0.3, 1.0, -1.0).double()
    if kind == "nonnegative":
        return torch.where(u < 0.2, 0.0, 5.0 * u).double()
    if kind == "positive":
        return 0.05 + 5.0 * u
    if kind == "log_probability":   # ≤ 0, with exact zeros and some whose exp underflows to 0
        return torch.where(u < 0.1, 0.0, torch.where(u > 0.95, -800.0, -8.0 * u)).double()
    return torch.randn(shape, generator=gen, dtype=torch.float64) * 2


def _input(kind: str, x: Tensor) -> Tensor:
    """Map real draws into the kernel's input domain."""
    return x.abs() + 0.05 if kind == "positive" else x


def _both_paths(kernel: ElementwiseKernel, x: Tensor, t: Tensor, params: tuple[float, ...],
                reduction: str, g: Tensor | None) -> list[list[Tensor]]:
    out = []
    for path in ("fused", "reference"):
        xs = x.clone().requires_grad_()
        ts = t.clone().requires_grad_(kernel.target_grad is not None)
        if path == "fused":
            loss = elementwise_loss(kernel, xs, ts, params, reduction)
        else:
            per = kernel.reference(xs, ts, *params)
            loss = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
        wrt = [xs, ts] if ts.requires_grad else [xs]
        grads = torch.autograd.grad(loss, wrt, loss.new_ones(()) if g is None else g)
        out.append([loss.detach(), *grads])
    return out


@pytest.mark.parametrize(("kernel", "params"), _library_kernels())
def test_library_kernel_equals_its_reference(small_chunks: None, kernel: ElementwiseKernel,
                                             params: tuple[float, ...]) -> None:
    gen = torch.Generator().manual_seed(3)
    shape = (6, 37)
    x = _input(kernel.input, torch.randn(shape, generator=gen, dtype=torch.float64) * 2)
    t = _target(kernel.target, shape, gen)
    assert fusable(kernel, x, t, params)
    for reduction in ("none", "sum", "mean"):
        g = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5 if reduction == "none" else None
        fast, ref = _both_paths(kernel, x, t, params, reduction, g)
        for a, b in zip(fast, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # float32 through the fused path stays close to float64
    (v32, g32), (v64, g64) = (_both_paths(kernel, x.float(), t.float(), params, "sum", None)[0][:2],
                              _both_paths(kernel, x, t, params, "sum", None)[1][:2])
    torch.testing.assert_close(v32.double(), v64, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("kernel", "params"), _library_kernels())
def test_library_kernel_is_finite_at_extremes(kernel: ElementwiseKernel, params: tuple[float, ...]) -> None:
    x = torch.tensor([-1e4, -30.0, -1e-8, 0.0, 1e-8, 30.0, 1e4], dtype=torch.float32)
    if kernel.input == "positive":
        x = torch.tensor([1e-8, 1e-3, 0.5, 1.0, 2.0, 30.0, 80.0 if 1.0 in params[1:2] else 1e4])
    for t in _target(kernel.target, x.shape, torch.Generator().manual_seed(4)).float(), x.flip(0):
        if kernel.target != "real":
            t = _target(kernel.target, x.shape, torch.Generator().manual_seed(5)).float()
        xs = x.clone().requires_grad_()
        loss = elementwise_loss(kernel, xs, t, params, "none")
        (gx,) = torch.autograd.grad(loss, xs, torch.ones_like(loss))
        assert loss.isfinite().all() and gx.isfinite().all(), (loss, gx)


@pytest.mark.parametrize(("kernel", "params"), _library_kernels())
def test_nan_inputs_give_nan_where_the_reference_does(fused_backend: str, kernel: ElementwiseKernel,
                                                      params: tuple[float, ...]) -> None:
    # a NaN input (and a NaN real target) propagates to exactly the values and gradients it
    # reaches through the composed form; a clamp or a kink may stop it there, and then here too.
    # The focal kernel's ``bounded`` hint skips the clamp on the PyTorch chunks: its caller sets
    # it only for finite logits.
    if fused_backend != "native" and kernel.name == "sigmoid_focal" and params[2]:
        pytest.skip("bounded=1 promises finite logits")
    gen = torch.Generator().manual_seed(14)
    x = _input(kernel.input, torch.randn(8, generator=gen, dtype=torch.float64) * 2)
    t = _target(kernel.target, (8,), gen)
    x[2] = float("nan")
    if kernel.target == "real":
        t[5] = float("nan")
    xs, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = elementwise_loss(kernel, xs, t, params, "none")
    (gx,) = torch.autograd.grad(got, xs, torch.ones_like(got))
    want = kernel.reference(xr, t, *params)
    (wx,) = torch.autograd.grad(want, xr, torch.ones_like(want))
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(gx.isnan(), wx.isnan())


def test_functorch_transforms_take_the_reference() -> None:
    x, t = _data()
    per_row = torch.func.vmap(lambda a, b: elementwise_loss(RESIDUAL, a, b, (0.3,), "sum"))(x, t)
    torch.testing.assert_close(per_row, _expected(x, t, 0.3, "none").sum(1))
    g = torch.func.grad(lambda a: elementwise_loss(RESIDUAL, a, t, (0.3,), "sum"))(x)
    torch.testing.assert_close(g, (0.9 * (x - t).abs() + 2) * (x - t))


# ------------------------------------------------------------------ numeric building blocks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logistic_parts_match_the_definitions(dtype: torch.dtype) -> None:
    tiny = torch.finfo(dtype).tiny
    x = torch.tensor([-float("inf"), -1e4, -80.0, -30.0, -17.0, -1.0, -tiny / 4, -tiny, 0.0, tiny / 4,
                      tiny, 1e-30, 1.0, 17.0, 30.0, 80.0, 1e4, float("inf")], dtype=dtype)
    e, r, lg, p = fused.logistic_parts(x)
    pn = fused.sigmoid_from_parts(x, e, r, negate=True)
    # float64 references written from the definitions
    xd = x.double()
    ed = torch.exp(-xd.abs())
    sig = torch.where(xd >= 0, 1.0 / (1.0 + ed), ed / (1.0 + ed))
    sig_neg = torch.where(xd >= 0, ed / (1.0 + ed), 1.0 / (1.0 + ed))
    rtol = 2e-7 if dtype == torch.float32 else 1e-15
    for got, want in ((e, ed), (r, 1.0 / (1.0 + ed)), (p, sig), (pn, sig_neg)):
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, rtol=rtol, atol=0.0)
    # log(1 + e) rather than log1p: exact to an ulp of 1 in absolute terms (what a sum needs)
    torch.testing.assert_close(lg.double(), torch.log1p(ed), rtol=rtol, atol=torch.finfo(dtype).eps)
    # relative accuracy deep in both tails (no 1 - σ cancellation) and the exact product identity
    assert p[2] > 0 and pn[-3] > 0
    torch.testing.assert_close((e * r * r).double(), sig * sig_neg, rtol=4 * rtol, atol=0.0)
    torch.testing.assert_close(p.double(), torch.sigmoid(xd), rtol=rtol, atol=0.0)


def test_power_is_pow_for_every_exponent_kind() -> None:
    q = torch.tensor([0.0, 1e-30, 1e-5, 0.3, 1.0, 2.5, 1e3], dtype=torch.float64)
    for k in (0.0, 1.0, 2.0, 3.0, 4.0, 0.5, 1.7, 2.5, 6.0):
        got = fused.power_(q.clone(), k)
        torch.testing.assert_close(got, torch.pow(q, k), rtol=1e-13, atol=0.0)
    assert fused.power_(q.clone(), -0.5)[0] == float("inf")  # 0^-k: as pow, infinite
