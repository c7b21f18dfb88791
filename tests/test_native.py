"""The compiled C kernels of the fused elementwise path (losskit/_native): built here, used by
default for contiguous float32/float64 CPU tensors, equal to the float64 composed reference on
large inputs split across threads, and absent without harm where they cannot be built."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tests.test_fused import _input, _library_kernels, _target, library_kernels

from losskit import _native
from losskit._core import fused
from losskit._core.fused import ElementwiseKernel, elementwise_loss

pytestmark = pytest.mark.usefixtures("low_memory_cross_entropy")

needs_native = pytest.mark.skipif(_native.library() is None,
                                  reason=f"native kernels unavailable: {_native.status()}")


CASES = _library_kernels()


def test_every_library_kernel_has_a_native_form() -> None:
    assert [k.name for k in library_kernels() if k.native is None] == []


@needs_native
@pytest.mark.parametrize(("kernel", "params"), CASES)
def test_native_kernel_is_the_default_path(kernel: ElementwiseKernel, params: tuple[float, ...]) -> None:
    x = torch.randn(10, dtype=torch.float32)
    assert fused.native_kernel(kernel, params, x, x) is not None
    assert fused.native_kernel(kernel, params, x.half(), x.half()) is None      # half: PyTorch
    assert fused.native_kernel(kernel, params, x[::2], x[::2]) is None          # strided: copied first
    with _native.enabled(False):
        assert fused.native_kernel(kernel, params, x, x) is None


@needs_native
@pytest.mark.parametrize(("kernel", "params"), CASES)
def test_native_float32_over_threads_matches_float64_reference(kernel: ElementwiseKernel,
                                                               params: tuple[float, ...]) -> None:
    # 100003 elements: above the kernels' parallel threshold, split unevenly over two threads,
    # with a saturated band (|x| up to 40) and exact zeros of the residual
    gen = torch.Generator().manual_seed(11)
    n = 100_003
    x = torch.randn(n, generator=gen, dtype=torch.float64) * 3
    x[:200] = torch.linspace(-40.0, 40.0, 200, dtype=torch.float64)
    x = _input(kernel.input, x)
    t = _target(kernel.target, (n,), gen)
    if kernel.target == "real":
        t[200:300] = x[200:300]
    g = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for reduction in ("none", "sum"):
            xs = x.float().requires_grad_()
            got = elementwise_loss(kernel, xs, t.float(), params, reduction)
            (gx,) = torch.autograd.grad(got, xs, g.float() if reduction == "none" else None)
            xr = x.clone().requires_grad_()
            per = kernel.reference(xr, t, *params)
            want = per if reduction == "none" else per.sum()
            (wx,) = torch.autograd.grad(want, xr, g if reduction == "none" else None)
            scale = float(want.detach().abs().mean())
            torch.testing.assert_close(got.double(), want.detach(), rtol=1e-4, atol=1e-5 * scale + 1e-6)
            torch.testing.assert_close(gx.double(), wx, rtol=1e-4, atol=1e-5)
    finally:
        torch.set_num_threads(threads)


@needs_native
def test_native_and_pytorch_chunks_agree_in_float64() -> None:
    # the two implementations of each kernel, against each other at float64 precision
    gen = torch.Generator().manual_seed(12)
    for kernel in library_kernels():
        for params in kernel.examples:
            x = _input(kernel.input, torch.randn(3001, generator=gen, dtype=torch.float64) * 4)
            t = _target(kernel.target, (3001,), gen)
            g = torch.rand(3001, generator=gen, dtype=torch.float64)
            out = []
            for on in (True, False):
                with _native.enabled(on):
                    xs = x.clone().requires_grad_()
                    v = elementwise_loss(kernel, xs, t, params, "none")
                    (gx,) = torch.autograd.grad(v, xs, g)
                    out.append((v.detach(), gx))
            for a, b in zip(out[0], out[1], strict=True):
                torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=f"{kernel.name}{params}")


@needs_native
@pytest.mark.parametrize("alpha", [-2.0, -1.5, -1.0, -0.5, 0.5, 1.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_general_robust_fourth_roots_are_accurate_over_thirty_decades(alpha: float,
                                                                    dtype: torch.dtype) -> None:
    # the square-root forms for α in halves, against ρ and ρ' written from the formula in float64,
    # across residuals from 1e-15 to 1e15: no cancellation near 0 and no power overflowing (a
    # derivative of order r^(α-1) must not vanish where it is still representable)
    import losskit.functional as LF

    scale = 0.7
    r = torch.cat([torch.logspace(-15, 15, 3001, dtype=torch.float64), -torch.linspace(0.0, 6.0, 601,
                                                                                          dtype=torch.float64)])
    x = r.to(dtype).requires_grad_()
    got = LF.general_robust_loss(x, torch.zeros_like(x), alpha=alpha, scale=scale, reduction="none")
    (gx,) = torch.autograd.grad(got.sum(), x)
    rr, b = x.detach().double(), abs(alpha - 2)
    base = 1 + (rr / scale) ** 2 / b
    want = b / alpha * torch.expm1(0.5 * alpha * torch.log1p((rr / scale) ** 2 / b))
    dwant = rr / scale**2 * base ** (alpha / 2 - 1)
    ulp = 1e-5 if dtype == torch.float32 else 1e-13
    tiny = torch.finfo(dtype).tiny * 2**20
    torch.testing.assert_close(got.double(), want, rtol=ulp, atol=tiny)
    torch.testing.assert_close(gx.double(), dwant, rtol=ulp, atol=tiny)


@needs_native
def test_logistic_kernels_are_within_a_few_ulps_of_float64_over_the_whole_float32_range() -> None:
    # softplus(-x) and its derivative -σ(-x) (the GAN generator's kernel, built on e^-|x|) over
    # every 4096th float32 in [-87, 87]: within 8 ulps of the formula in float64, so an error in
    # the exponential (inline in float32 on 256-bit vectors) of 1e-6 shows; beyond ±87.34,
    # where e^-|x| is below the smallest normal float, within that of it
    import losskit.functional as LF

    bits = torch.arange(0, 0x42AE0000, 4096, dtype=torch.int32)      # 0 … 87.0 as float32 bits
    pos = bits.view(torch.float32)
    x = torch.cat([pos, -pos, torch.linspace(-100.0, 100.0, 2001)]).requires_grad_()
    got = LF.gan_generator_loss(x, kind="non_saturating", reduction="none")
    (gx,) = torch.autograd.grad(got.sum(), x)
    xd = x.detach().double()
    want = torch.clamp(-xd, min=0.0) + torch.log1p(torch.exp(-xd.abs()))
    dwant = -1.0 / (1.0 + torch.exp(xd))
    tiny = torch.finfo(torch.float32).tiny
    torch.testing.assert_close(got.double(), want, rtol=8 * 2.0**-24, atol=tiny)
    torch.testing.assert_close(gx.double(), dwant, rtol=8 * 2.0**-24, atol=tiny)


@needs_native
def test_log_cosh_gradient_is_within_a_few_ulps_of_tanh() -> None:
    # d/dx log cosh(x - t) = tanh(x - t), inline in float32 on 256-bit vectors (a series below
    # |r| = 1/4, a quotient of exponentials above): every 1024th float32 residual up to 20 and
    # its negative, against tanh in float64
    import losskit.functional as LF

    bits = torch.arange(0, 0x41A00000, 1024, dtype=torch.int32)     # 0 … 20.0 as float32 bits
    r = bits.view(torch.float32)
    x = torch.cat([r, -r]).requires_grad_()
    (gx,) = torch.autograd.grad(LF.log_cosh_loss(x, torch.zeros_like(x), reduction="sum"), x)
    torch.testing.assert_close(gx.double(), torch.tanh(x.detach().double()), rtol=4 * 2.0**-24,
                               atol=torch.finfo(torch.float32).tiny)


@needs_native
def test_softmax_row_kernels_are_within_a_few_ulps_of_float64() -> None:
    # the row kernels' e^(x - max) and e^(x - lse), inline in float32 on 256-bit vectors: the
    # per-row loss and the softmax (the gradient of the summed loss plus the one-hot) against
    # log-sum-exp and softmax written in float64, on logits in ±8 (the rounding of lse itself,
    # ulp(lse)/2, enters every e^(x - lse) and grows with the logits)
    import losskit.functional as LF

    gen = torch.Generator().manual_seed(5)
    x = (torch.rand(512, 97, generator=gen) * 16 - 8).requires_grad_()
    y = torch.randint(0, 97, (512,), generator=gen)
    got = LF.cross_entropy(x, y, reduction="none")
    (gx,) = torch.autograd.grad(got.sum(), x)
    xd = x.detach().double()
    m = xd.max(dim=1, keepdim=True).values
    lse = m.squeeze(1) + torch.log(torch.exp(xd - m).sum(dim=1))
    p = torch.exp(xd - lse.unsqueeze(1))
    torch.testing.assert_close(got.double(), lse - xd.gather(1, y[:, None]).squeeze(1), rtol=2e-6, atol=2e-6)
    onehot = torch.nn.functional.one_hot(y, 97).double()
    torch.testing.assert_close(gx.double() + onehot, p, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_cosh_is_relatively_accurate_from_tiny_to_large_residuals(native: bool,
                                                                      dtype: torch.dtype) -> None:
    # log cosh r against log1p(expm1(|r|)² / (2·e^|r|)) in double (cosh r - 1 without
    # cancellation): thirty decades of residuals and a fine grid across 0…3 (the kernels switch
    # forms near 0.6 and 1), both signs; |r| + log1p(e^-2|r|) - log 2 alone had a relative error
    # of 12 % at r = 1e-3 in float32
    import losskit.functional as LF

    r = torch.cat([torch.logspace(-30, 1.5, 400, dtype=torch.float64),
                   torch.linspace(0.0, 3.0, 3001, dtype=torch.float64)])
    r = torch.cat([r, -r]).to(dtype)
    with _native.enabled(native):
        got = LF.log_cosh_loss(r, torch.zeros_like(r), reduction="none").double()
    a = r.double().abs().tolist()
    want = torch.tensor([math.log1p(math.expm1(v) ** 2 / (2 * math.exp(v))) for v in a], dtype=torch.float64)
    eps = torch.finfo(dtype).eps
    representable = want >= torch.finfo(dtype).tiny
    rtol = (3 if dtype == torch.float32 else 6) * eps
    torch.testing.assert_close(got[representable], want[representable], rtol=rtol, atol=0.0)
    assert (got[~representable] <= torch.finfo(dtype).tiny).all()


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_msle_is_accurate_from_equal_values_to_sixty_decades_apart(native: bool, dtype: torch.dtype) -> None:
    # d = log1p(x) - log1p(t) over every pair of a grid from 1e-30 to 1e30 (and 0, subnormals,
    # near-equal pairs): no cancellation at x ≈ t, and no log1p(-1) = -inf when t ≫ x, on the C
    # kernel and on the PyTorch chunks
    import losskit.functional as LF

    grid = torch.cat([torch.logspace(-30, 30, 121, dtype=torch.float64),
                      torch.tensor([0.0, 1e-40, 3.0, 3.0000002, 7e5, 7.0000001e5], dtype=torch.float64)])
    xg, tg = (g.reshape(-1) for g in torch.meshgrid(grid, grid, indexing="ij"))
    x = xg.to(dtype).requires_grad_()
    with _native.enabled(native):
        got = LF.msle_loss(x, tg.to(dtype), reduction="none")
        (gx,) = torch.autograd.grad(got.sum(), x)
    xd, td = x.detach().double(), tg.to(dtype).double()
    near = (xd - td).abs() < 0.5 * (1 + td)
    d = torch.where(near, torch.log1p((xd - td) / (1 + td)), torch.log1p(xd) - torch.log1p(td))
    tol = 4e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.double(), d * d, rtol=tol, atol=1e-30)
    torch.testing.assert_close(gx.double(), 2 * d / (1 + xd), rtol=tol, atol=1e-30)


@needs_native
@pytest.mark.parametrize("kind", ["minimax", "lsgan", "hinge"])
def test_discriminator_pair_kernels_differentiate_both_scores(kind: str) -> None:
    # one kernel of the real and the fake scores (staged with both heads for minimax): the loss
    # and the gradient in each score, against the formulas in float64, over two threads
    gen = torch.Generator().manual_seed(21)
    n = 100_003
    r64 = torch.randn(n, generator=gen, dtype=torch.float64) * 4
    f64 = torch.randn(n, generator=gen, dtype=torch.float64) * 4
    r64[:100] = torch.linspace(-60.0, 60.0, 100, dtype=torch.float64)
    g = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    softplus = torch.nn.functional.softplus
    formulas = {
        "minimax": (lambda r, f: softplus(-r) + softplus(f), lambda r: -torch.sigmoid(-r), torch.sigmoid),
        "lsgan": (lambda r, f: 0.5 * (r - 1) ** 2 + 0.5 * f**2, lambda r: r - 1, lambda f: f),
        "hinge": (lambda r, f: (1 - r).clamp_min(0) + (1 + f).clamp_min(0),
                  lambda r: -(r < 1).double(), lambda f: (f > -1).double()),
    }
    loss, d_real, d_fake = formulas[kind]
    import losskit.functional as LF

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for reduction in ("none", "sum"):
            r, f = r64.float().requires_grad_(), f64.float().requires_grad_()
            got = LF.gan_discriminator_loss(r, f, kind=kind, reduction=reduction)
            up = g.float() if reduction == "none" else None
            gr, gf = torch.autograd.grad(got, [r, f], up)
            want = loss(r64, f64)
            want = want if reduction == "none" else want.sum()
            w = g if reduction == "none" else 1.0
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(gr.double(), w * d_real(r64), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(gf.double(), w * d_fake(f64), rtol=1e-5, atol=1e-6)
    finally:
        torch.set_num_threads(threads)


@needs_native
@pytest.mark.parametrize(("gamma_neg", "clip", "eps"),
                         [(4.0, 0.05, 1e-8), (1.0, 0.2, 0.0), (2.0, 1e-9, 1e-8), (3.0, 0.1, 1e-8)])
def test_asymmetric_binary_blocks_and_soft_blocks_give_one_loss_and_gradient(gamma_neg: float, clip: float,
                                                                             eps: float) -> None:
    # the kernels take shorter forms on blocks of 0/1 targets: blocks of hard labels, of soft
    # labels and one with a NaN target side by side, the losses, their sum and the gradient against
    # the float64 composed form
    import losskit.functional as LF

    gen = torch.Generator().manual_seed(13)
    n = 5 * 4096 + 77
    x = torch.randn(n, generator=gen, dtype=torch.float64) * 4
    x[:200] = torch.linspace(-40.0, 40.0, 200, dtype=torch.float64)
    x[200] = -math.inf
    x[201] = math.inf
    t = (torch.rand(n, generator=gen, dtype=torch.float64) < 0.3).double()
    t[4096:8192] = torch.rand(4096, generator=gen, dtype=torch.float64)    # a block of soft labels
    t[9000] = 0.5                                                          # one soft label
    t[13000] = float("nan")
    t[200:202] = torch.tensor([1.0, 0.0], dtype=torch.float64)
    g = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    opts = {"gamma_pos": 0.0, "gamma_neg": gamma_neg, "clip": clip, "eps": eps}
    xr = x.clone().requires_grad_()
    log_p = torch.nn.functional.logsigmoid(xr)
    log_q = torch.log(torch.clamp(torch.sigmoid(-xr) + clip, max=1.0))
    if eps > 0:
        log_p, log_q = log_p.clamp(min=math.log(eps)), log_q.clamp(min=math.log(eps))
    p_m = torch.clamp(torch.sigmoid(xr) - clip, min=0.0)
    # t·log p at t = 0 and x = -inf would be 0·(-inf) without the floor: the terms one at a time
    want = -torch.where(t == 1, log_p, torch.where(t == 0, p_m**gamma_neg * log_q,
                                                    t * log_p + (1 - t) * p_m**gamma_neg * log_q))
    finite = torch.ones(n, dtype=torch.bool)
    finite[13000] = False
    keep = finite.clone()
    keep[200:202] = False                               # the infinite logits: values only
    (want_grad,) = torch.autograd.grad(want[keep], xr, g[keep])
    want = want.detach()
    for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
        xs = x.to(dtype).requires_grad_()
        got = LF.asymmetric_loss(xs, t.to(dtype), reduction="none", **opts)
        (gx,) = torch.autograd.grad(got, xs, g.to(dtype))
        assert torch.isnan(got[13000]) and torch.isnan(gx[13000])
        torch.testing.assert_close(got.double()[finite], want[finite], rtol=tol, atol=tol * 1e-2)
        positive = finite & (t == 1)    # softplus(-x): relatively accurate down to e^-x
        torch.testing.assert_close(got.double()[positive], want[positive], rtol=tol, atol=0.0)
        torch.testing.assert_close(gx.double()[keep], want_grad[keep], rtol=tol, atol=tol * 1e-2)
        total = LF.asymmetric_loss(x[finite].to(dtype), t[finite].to(dtype), reduction="sum", **opts)
        torch.testing.assert_close(total.double(), want[finite].sum(), rtol=tol, atol=0.0)


def test_a_failed_build_leaves_the_pytorch_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("LOSSKIT_CACHE_DIR", str(tmp_path / "cache"))
    saved = dict(_native._state)
    try:
        assert _native.library.__wrapped__() is None
        assert _native.status().startswith("build failed")
        monkeypatch.setenv("LOSSKIT_NATIVE", "0")
        assert _native.library.__wrapped__() is None
        assert _native.status().startswith("disabled")
    finally:
        _native._state.update(saved)


@needs_native
def test_a_fresh_build_compiles_and_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOSSKIT_CACHE_DIR", str(tmp_path))
    saved = dict(_native._state)
    try:
        lib = _native.library.__wrapped__()
        assert lib is not None and list(tmp_path.glob("elementwise-*.so"))
        assert hasattr(lib, "lk_grad_f32_log_cosh") and hasattr(lib, "lk_sum_f64_asymmetric_aa_clip")
    finally:
        _native._state.update(saved)


@needs_native
def test_row_kernels_name_a_target_out_of_range() -> None:
    import losskit.functional as LF
    from losskit import LossInputError

    x = torch.randn(4, 5, requires_grad=True)
    with pytest.raises(LossInputError, match=r"target holds 1 class index\(es\) outside \[0, 5\)"):
        LF.cross_entropy(x, torch.tensor([0, 4, 5, -100]))
    got = LF.cross_entropy(x, torch.tensor([0, 4, 1, -100]))   # -100: ignore_index, not a class
    torch.testing.assert_close(got, torch.nn.functional.cross_entropy(x, torch.tensor([0, 4, 1, -100])))


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("rows", "classes"), [(3001, 37), (203, 3000)])
def test_row_kernels_match_pytorch_over_threads(dtype: torch.dtype, rows: int, classes: int) -> None:
    # logits parallel over rows, −inf (masked) classes, ignored positions; the forward takes the
    # rows in groups (16 at 37 classes, fewer at 3000) with a last group cut short
    gen = torch.Generator().manual_seed(13)
    x = (torch.randn(rows, classes, generator=gen, dtype=torch.float64) * 5).to(dtype)
    x[::7, 3] = float("-inf")
    y = torch.randint(0, classes, (rows,), generator=gen)
    y[y == 3] = 4
    y[::11] = -100
    w = torch.rand(classes, generator=gen, dtype=torch.float64).to(dtype) + 0.5
    g = (torch.rand(rows, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    import losskit.functional as LF

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for weight in (None, w):
            a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
            got = LF.cross_entropy(a, y, weight=weight, reduction="none")
            want = torch.nn.functional.cross_entropy(b, y, weight=weight, reduction="none")
            (ga,) = torch.autograd.grad(got, a, g)
            (gb,) = torch.autograd.grad(want, b, g)
            tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
            torch.testing.assert_close(got, want, **tol)
            torch.testing.assert_close(ga, gb, **tol)
    finally:
        torch.set_num_threads(threads)


@needs_native
def test_the_single_threaded_build_without_openmp_gives_the_same_numbers(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the last resort of the build (a compiler without OpenMP): the pragmas are ignored
    monkeypatch.setenv("LOSSKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_native, "_FLAG_SETS", _native._FLAG_SETS[-1:])
    saved = dict(_native._state)
    try:
        lib = _native.library.__wrapped__()
        assert lib is not None and "-fopenmp" not in _native.status()
        plain = _native.NativeKernel(lib, "log_cosh", "f64")
        x = torch.linspace(-30.0, 30.0, 40001, dtype=torch.float64)
        t = torch.zeros_like(x)
        torch.testing.assert_close(plain.value(x, t, ()), torch.log(torch.cosh(x)), rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(plain.grad(x, t, (), 1.0), torch.tanh(x), rtol=1e-14, atol=0.0)
        assert plain.sum(x, t, ()) == pytest.approx(float(torch.log(torch.cosh(x)).sum()), rel=1e-12)
    finally:
        _native._state.update(saved)


@needs_native
def test_row_kernels_leave_ignored_rows_out_entirely() -> None:
    # an ignored position contributes nothing, whatever its logits hold
    import losskit.functional as LF

    x = torch.randn(5, 7, dtype=torch.float64)
    x[2] = float("nan")
    x[4, 0] = float("inf")
    y = torch.tensor([1, 6, -100, 0, -100])
    xs = x.clone().requires_grad_()
    loss = LF.cross_entropy(xs, y)
    loss.backward()
    keep = torch.tensor([0, 1, 3])
    want = -torch.log_softmax(x[keep], 1)[torch.arange(3), y[keep]].mean()
    torch.testing.assert_close(loss.detach(), want, rtol=1e-13, atol=0.0)
    assert torch.equal(xs.grad[2], torch.zeros(7, dtype=torch.float64))
    assert torch.equal(xs.grad[4], torch.zeros(7, dtype=torch.float64))
    assert torch.isfinite(xs.grad).all()


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_kernels_with_label_smoothing_match_pytorch(dtype: torch.dtype) -> None:
    # finite logits (PyTorch puts smoothing mass on -inf classes too; losskit does not), weights,
    # ignored positions, two threads over 2003 × 41 rows
    import losskit.functional as LF

    gen = torch.Generator().manual_seed(14)
    x = (torch.randn(2003, 41, generator=gen, dtype=torch.float64) * 4).to(dtype)
    y = torch.randint(0, 41, (2003,), generator=gen)
    y[::9] = -100
    w = (torch.rand(41, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    g = (torch.rand(2003, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    tol = {"rtol": 2e-5, "atol": 2e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for weight in (None, w):
            for eps in (0.1, 0.4):
                a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
                got = LF.cross_entropy(a, y, weight=weight, label_smoothing=eps, reduction="none")
                want = torch.nn.functional.cross_entropy(b, y, weight=weight, label_smoothing=eps,
                                                         reduction="none")
                torch.testing.assert_close(got, want, **tol)
                (ga,), (gb,) = torch.autograd.grad(got, a, g), torch.autograd.grad(want, b, g)
                torch.testing.assert_close(ga, gb, **tol)
    finally:
        torch.set_num_threads(threads)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_probability_target_row_kernels_match_the_formula_and_pytorch(dtype: torch.dtype) -> None:
    # cross_entropy against probabilities on the row kernels, two threads over 2003 × 41 rows:
    # the formula -Σ_c w_c t'_c log p_c (t' smoothed, terms of -inf classes dropped) in float64,
    # and F.cross_entropy where the logits are finite
    import losskit.functional as LF

    gen = torch.Generator().manual_seed(15)
    x64 = torch.randn(2003, 41, generator=gen, dtype=torch.float64) * 4
    t64 = torch.rand(2003, 41, generator=gen, dtype=torch.float64)
    t64 = t64 / t64.sum(1, keepdim=True)
    t64[7] = 0.0                                    # a row without mass
    xm = x64.clone()
    xm[3, 5] = -float("inf")                        # a masked class with no target mass
    t64[3, 5] = 0.0
    xm[4, 6] = -float("inf")                        # ... and one with mass: its term is dropped
    w64 = torch.rand(41, generator=gen, dtype=torch.float64) + 0.5
    g64 = torch.rand(2003, generator=gen, dtype=torch.float64) + 0.5
    tol = {"rtol": 2e-5, "atol": 2e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for weight in (None, w64):
            wd = None if weight is None else weight.to(dtype)
            for eps in (0.0, 0.3):
                ts = (1 - eps) * t64 + eps / 41
                for logits, finite in ((x64, True), (xm, False)):
                    a = logits.to(dtype).requires_grad_()
                    got = LF.cross_entropy(a, t64.to(dtype), weight=wd, label_smoothing=eps, reduction="none")
                    (ga,) = torch.autograd.grad(got, a, g64.to(dtype))
                    b = logits.clone().requires_grad_()
                    logp = torch.log_softmax(b, 1)
                    keep = logp > -float("inf")
                    terms = torch.where(keep, ts * torch.where(keep, logp, 0.0), 0.0)
                    want = -(terms * (1.0 if weight is None else weight)).sum(1)
                    (gb,) = torch.autograd.grad(want, b, g64)
                    torch.testing.assert_close(got.double(), want.detach(), **tol)
                    torch.testing.assert_close(ga.double(), gb, **tol)
                    if finite:
                        c = logits.to(dtype).requires_grad_()
                        ref = torch.nn.functional.cross_entropy(c, t64.to(dtype), weight=wd,
                                                                label_smoothing=eps, reduction="none")
                        torch.testing.assert_close(got, ref, **tol)
    finally:
        torch.set_num_threads(threads)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_plane_kernels_match_pytorch_on_channels_first_logits(dtype: torch.dtype, smoothing: float) -> None:
    # (N, C, H, W) segmentation logits: the class dimension strided by H·W, positions in chunks
    # of 256 with a ragged last one (21·23 = 483), weights, ignored pixels (one holding +inf)
    import losskit.functional as LF

    gen = torch.Generator().manual_seed(15)
    x = (torch.randn(3, 7, 21, 23, generator=gen, dtype=torch.float64) * 4).to(dtype)
    y = torch.randint(0, 7, (3, 21, 23), generator=gen)
    y[:, ::5, ::3] = -100
    x[0, :, 0, 0] = float("inf")
    w = (torch.rand(7, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    g = (torch.rand(3, 21, 23, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    tol = {"rtol": 2e-5, "atol": 2e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for weight in (None, w):
            a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
            got = LF.cross_entropy(a, y, weight=weight, label_smoothing=smoothing, reduction="none")
            want = torch.nn.functional.cross_entropy(b, y, weight=weight, label_smoothing=smoothing,
                                                     reduction="none")
            (ga,), (gb,) = torch.autograd.grad(got, a, g), torch.autograd.grad(want, b, g)
            torch.testing.assert_close(got, want, **tol)
            assert torch.equal(ga[0, :, 0, 0], torch.zeros(7, dtype=dtype))   # ignored, +inf logits
            gb[0, :, 0, 0] = 0.0   # PyTorch: NaN there
            torch.testing.assert_close(ga, gb, **tol)
    finally:
        torch.set_num_threads(threads)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["index", "onehot", "soft"])
def test_region_kernels_match_the_composed_dice_over_threads(monkeypatch: pytest.MonkeyPatch,
                                                             dtype: torch.dtype, target: str) -> None:
    # 3 × 5 × 97 × 101 logits (chunks of positions over two threads, a ragged last one), ignored
    # pixels (index targets), per-image and batch reductions, Dice, Jaccard and Tversky
    import losskit.functional as LF
    import losskit.losses.segmentation as seg

    gen = torch.Generator().manual_seed(16)
    x = (torch.randn(3, 5, 97, 101, generator=gen, dtype=torch.float64) * 3).to(dtype)
    y = torch.randint(0, 5, (3, 97, 101), generator=gen)
    y[:, ::7] = 255
    ignore: dict = {"ignore_index": 255}
    if target == "onehot":
        y, ignore = torch.nn.functional.one_hot(y % 5, 5).movedim(-1, 1).to(dtype), {}
    elif target == "soft":
        y, ignore = torch.softmax(torch.randn(x.shape, generator=gen, dtype=torch.float64), 1).to(dtype), {}
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-11, "atol": 1e-13}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for fn, extra in ((LF.dice_loss, {}), (LF.jaccard_loss, {"reduce_over": "batch"}),
                          (LF.tversky_loss, {"alpha": 0.3, "beta": 0.7})):
            out = []
            for fused_on in (True, False):
                monkeypatch.setattr(seg, "FUSED", fused_on)
                a = x.clone().requires_grad_()
                v = fn(a, y, mode="multiclass", reduction="none", **ignore, **extra)
                upstream = torch.linspace(0.5, 1.5, v.numel(), dtype=dtype).view(v.shape)
                (ga,) = torch.autograd.grad(v, a, upstream)
                out.append((v.detach(), ga))
            torch.testing.assert_close(out[0][0], out[1][0], **tol)
            torch.testing.assert_close(out[0][1], out[1][1], **tol)
    finally:
        torch.set_num_threads(threads)
