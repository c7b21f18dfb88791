"""Parity tests of the Triton kernels in :mod:`losskit._fused.triton_kernels`: value and every
gradient against the composed losses in float64 and the loop references of
``tests/reference/classification_ref.py`` (1e-10), against PyTorch/torchvision in float32
(1e-6), for every option, ``reduction="none"`` with a non-uniform incoming gradient, half
precision, extremes, empty sets, memory saved for backward and ``torch.compile``.

The kernel tests run on CUDA when Triton is installed, and on CPU through Triton's interpreter
with ``LOSSKIT_TRITON_INTERPRET=1`` (this file then sets ``TRITON_INTERPRET=1`` before the
kernels are defined)::

    LOSSKIT_TRITON_INTERPRET=1 python -m pytest tests/test_triton.py -q

Without Triton (the default environment and CI) they skip; the tests of the import without
Triton, the dispatch helper, input validation and the fake (meta) implementations still run.
"""

from __future__ import annotations

import os

if os.environ.get("LOSSKIT_TRITON_INTERPRET") == "1":
    os.environ["TRITON_INTERPRET"] = "1"

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from tests.reference import classification_ref as ref
from torch import Tensor

import losskit.functional as LF
from losskit._core import checks
from losskit._core.checks import LossInputError
from losskit._fused import triton_kernels as K

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _runnable() -> tuple[bool, str]:
    if K.triton is None:
        return False, "triton is not installed"
    if torch.cuda.is_available():
        return True, ""
    if type(K._ce_kernel).__name__ != "InterpretedFunction":
        return False, "no CUDA; set LOSSKIT_TRITON_INTERPRET=1 to run the kernels in Triton's interpreter"
    return True, ""


_OK, _WHY = _runnable()
kernels = pytest.mark.skipif(not _OK, reason=_WHY)

F64 = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-10}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _leaf(t: Tensor) -> Tensor:
    return t.detach().to(DEVICE).requires_grad_(True)


def _upstream(out: Tensor, seed: int) -> Tensor:
    """A non-uniform incoming gradient for ``reduction="none"``; a non-unit scalar otherwise."""
    if out.ndim == 0:
        return torch.tensor(0.7, dtype=out.dtype, device=out.device)
    return (torch.rand(out.shape, generator=_gen(seed), dtype=F64) + 0.5).to(out.device, out.dtype)


def _value_and_grads(fn: Callable[..., Tensor], leaves: list[Tensor], seed: int = 0,
                     **kw: object) -> tuple[Tensor, tuple[Tensor, ...]]:
    out = fn(*leaves, **kw)
    grads = torch.autograd.grad(out, [t for t in leaves if t.requires_grad], _upstream(out, seed))
    return out.detach(), grads


def _close(got: tuple[Tensor, tuple[Tensor, ...]], want: tuple[Tensor, tuple[Tensor, ...]],
           **tol: float) -> None:
    torch.testing.assert_close(got[0].cpu().to(want[0].dtype), want[0].cpu(), **tol)
    assert len(got[1]) == len(want[1])
    for a, b in zip(got[1], want[1]):
        torch.testing.assert_close(a.cpu().to(b.dtype), b.cpu(), **tol)


def _saved_numels(fn: Callable[[], Tensor]) -> list[int]:
    sizes: list[int] = []

    def pack(t: Tensor) -> Tensor:
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sizes


# --------------------------------------------------------------------------- without kernels


def test_dispatch_helper_and_import_without_triton() -> None:
    assert K.cuda_kernels_available() == (K.triton is not None and torch.cuda.is_available())
    if K.triton is not None:
        pytest.skip("triton is installed here")
    x = torch.zeros(2, 3)
    with pytest.raises(RuntimeError, match="triton"):
        K.triton_cross_entropy(x, torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="triton"):
        K.triton_sigmoid_focal_loss(x, x)
    with pytest.raises(RuntimeError, match="triton"):
        K.triton_linear_cross_entropy(x, torch.zeros(4, 3), torch.tensor([0, 1]))


def test_cpu_tensors_without_the_interpreter_raise() -> None:
    if K.triton is None or torch.cuda.is_available() or K._interpreting():
        pytest.skip("needs triton installed, no CUDA and no interpreter")
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        K.triton_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_input_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = torch.zeros(4, 5), torch.zeros(4, dtype=torch.long)
    with pytest.raises(LossInputError, match="reduction"):
        K.triton_cross_entropy(x, y, reduction="avg")
    with pytest.raises(LossInputError, match="movedim"):
        K.triton_cross_entropy(torch.zeros(4, 5, 3), y)        # (N, C, d) needs classes last
    with pytest.raises(LossInputError, match="label_smoothing"):
        K.triton_cross_entropy(x, y, label_smoothing=1.5)
    with pytest.raises(LossInputError):
        K.triton_sigmoid_focal_loss(x, torch.zeros(4, 5, 1))   # never broadcast (PITFALLS 2)
    with pytest.raises(LossInputError, match="gamma"):
        K.triton_sigmoid_focal_loss(x, x, gamma=-1.0)
    with pytest.raises(LossInputError, match="same D"):
        K.triton_linear_cross_entropy(torch.zeros(4, 3), torch.zeros(3, 5), y)
    with pytest.raises(LossInputError, match="chunk_size"):
        K.triton_linear_cross_entropy(torch.zeros(4, 3), torch.zeros(5, 3), y, chunk_size=0)
    with pytest.raises(TypeError):                           # unsupported options are not swallowed
        K.triton_cross_entropy(x, y, pos_weight=torch.ones(5))  # type: ignore[call-arg]
    with pytest.raises(LossInputError, match="weight"):
        K.triton_cross_entropy(x, y, weight=torch.ones(4))
    with pytest.raises(LossInputError, match="detach"):
        K.triton_cross_entropy(x, y, weight=torch.ones(5, requires_grad=True))
    with pytest.raises(LossInputError, match="integer class indices"):
        K.triton_cross_entropy(x, y.float())
    monkeypatch.setattr(checks, "_DEBUG", True)             # labels read only in debug mode (PITFALLS 25)
    with pytest.raises(LossInputError, match="outside"):
        K.triton_cross_entropy(x, torch.tensor([0, 1, 5, -100]))
    with pytest.raises(LossInputError, match="outside"):
        K.triton_linear_cross_entropy(torch.zeros(4, 3), torch.zeros(5, 3), torch.tensor([0, 1, 7, 2]))
    with pytest.raises(LossInputError):
        K.triton_sigmoid_focal_loss(x, x + 2.0)              # targets outside [0, 1]


def test_fake_implementations_give_shapes_and_dtypes() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(6, 11, dtype=torch.bfloat16)
        t = torch.empty(6, dtype=torch.long)
        out, grad = torch.ops.losskit.triton_cross_entropy(x, t, None, -100, 0.1, "none", "zero", True, 0)
        assert out.shape == (6,) and out.dtype == torch.float32 and grad.shape == (6, 11)
        out, grad = torch.ops.losskit.triton_cross_entropy(x.double(), t, torch.empty(11), -100, 0.0, "mean",
                                                           "zero", False, 0)
        assert out.shape == () and out.dtype == F64 and grad.numel() == 0
        loss = torch.ops.losskit.triton_sigmoid_focal(x, x, 0.25, 2.0, "none", "zero")
        assert loss.shape == x.shape and loss.dtype == torch.float32
        h, w, b = torch.empty(6, 4), torch.empty(11, 4), torch.empty(11)
        out, dx, dw, db = torch.ops.losskit.triton_linear_cross_entropy(h, w, b, t, -100, 0.0, 0.0, 0.0,
                                                                         "sum", "zero", 2, True, 0)
        assert out.shape == () and dx.shape == h.shape and dw.shape == w.shape and db.shape == b.shape


# --------------------------------------------------------------------------- cross-entropy


def _ce_data(seed: int, n: int = 6, v: int = 37, ignore: bool = True) -> tuple[Tensor, Tensor]:
    g = _gen(seed)
    x = torch.randn(n, v, generator=g, dtype=F64) * 3
    y = torch.randint(0, v, (n,), generator=g)
    if ignore:
        y[1] = -100
    return x, y


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.15])
@pytest.mark.parametrize("block", [8, None])   # several blocks per row, and one
def test_cross_entropy_equals_composed_float64(reduction: str, eps: float, block: int | None) -> None:
    x, y = _ce_data(1)
    xk, xc = _leaf(x), x.clone().requires_grad_(True)
    got = _value_and_grads(K.triton_cross_entropy, [xk, y.to(DEVICE)], label_smoothing=eps,
                           reduction=reduction, block_size=block)
    want = _value_and_grads(LF.cross_entropy, [xc, y], label_smoothing=eps, reduction=reduction)
    _close(got, want, **TOL)


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_class_weights(reduction: str, eps: float) -> None:  # PITFALLS 7, 8
    x, y = _ce_data(9, n=7, v=20)
    x[3, 5] = float("-inf")
    w = torch.rand(20, generator=_gen(10), dtype=F64) + 0.1
    got = _value_and_grads(K.triton_cross_entropy, [_leaf(x), y.to(DEVICE)], weight=w.to(DEVICE),
                           label_smoothing=eps, reduction=reduction, block_size=8)
    want = _value_and_grads(LF.cross_entropy, [x.clone().requires_grad_(True), y], weight=w,
                            label_smoothing=eps, reduction=reduction)
    _close(got, want, **TOL)
    if reduction == "mean":                 # ÷ Σ w[y] over kept rows, as the loops do
        loops = _value_and_grads(ref.cross_entropy, [x[:4].clone().requires_grad_(True), y[:4]], weight=w,
                                 label_smoothing=eps, reduction=reduction)
        _close(_value_and_grads(K.triton_cross_entropy, [_leaf(x[:4]), y[:4].to(DEVICE)], weight=w.to(DEVICE),
                                label_smoothing=eps, reduction=reduction), loops, **TOL)


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_cross_entropy_equals_loop_reference(reduction: str) -> None:  # PITFALLS 8
    x, y = _ce_data(2, n=4, v=9)
    xr = x.clone().requires_grad_(True)
    got = _value_and_grads(K.triton_cross_entropy, [_leaf(x), y.to(DEVICE)], label_smoothing=0.2,
                           reduction=reduction, block_size=4)
    want = _value_and_grads(ref.cross_entropy, [xr, y], label_smoothing=0.2, reduction=reduction)
    _close(got, want, **TOL)


@kernels
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_float32_matches_torch(eps: float) -> None:
    x, y = _ce_data(3, n=16, v=300)
    x = x.float()
    got = _value_and_grads(K.triton_cross_entropy, [_leaf(x), y.to(DEVICE)], label_smoothing=eps,
                           reduction="none", block_size=128)
    want = _value_and_grads(F.cross_entropy, [x.clone().requires_grad_(True), y], label_smoothing=eps,
                            reduction="none")
    _close(got, want, rtol=1e-6, atol=1e-6)


@kernels
def test_cross_entropy_masked_and_extreme_logits() -> None:  # PITFALLS 5
    x, y = _ce_data(4, n=5, v=12, ignore=False)
    x[:, 3] = float("-inf")                 # a masked class in every row
    x[0, :] = x[0, :] * 1e4                 # saturated row (finite entries ±1e4)
    x[2, 7:] = float("-inf")                # a block that is -inf from start to end
    y[2] = 1
    for eps in (0.0, 0.3):
        got = _value_and_grads(K.triton_cross_entropy, [_leaf(x), y.to(DEVICE)], label_smoothing=eps,
                               reduction="none", block_size=4)
        want = _value_and_grads(LF.cross_entropy, [x.clone().requires_grad_(True), y],
                                label_smoothing=eps, reduction="none")
        assert torch.isfinite(got[0]).all() and torch.isfinite(got[1][0]).all()
        _close(got, want, **TOL)


@kernels
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cross_entropy_half_computes_in_float32(dtype: torch.dtype) -> None:  # PITFALLS 4
    x, y = _ce_data(5, n=8, v=50)
    x = x * 10                             # float16 exp would overflow at these logits
    xh = x.to(dtype)
    got = _value_and_grads(K.triton_cross_entropy, [_leaf(xh), y.to(DEVICE)], label_smoothing=0.1,
                           reduction="none", block_size=16)
    assert got[0].dtype == torch.float32 and got[1][0].dtype == dtype
    want = _value_and_grads(LF.cross_entropy, [xh.double().requires_grad_(True), y],
                            label_smoothing=0.1, reduction="none")
    _close(got, want, rtol=1e-2, atol=1e-2)


@kernels
def test_cross_entropy_all_ignored_is_zero_or_nan() -> None:  # PITFALLS 6
    x = _leaf(torch.randn(3, 5, dtype=F64))
    y = torch.full((3,), -100, device=DEVICE)
    out = K.triton_cross_entropy(x, y, label_smoothing=0.1)
    (g,) = torch.autograd.grad(out, x)
    assert out.item() == 0.0 and torch.equal(g, torch.zeros_like(g))
    assert K.triton_cross_entropy(x, y, empty="nan").isnan()


@kernels
def test_cross_entropy_saves_one_logits_sized_tensor_and_keeps_shape() -> None:  # PITFALLS 10
    x, y = _ce_data(6, n=12, v=40)
    x = _leaf(x.reshape(3, 4, 40))
    yy = y.reshape(3, 4).to(DEVICE)
    sizes = _saved_numels(lambda: K.triton_cross_entropy(x, yy))
    assert sizes == [x.numel()]
    out = K.triton_cross_entropy(x, yy, reduction="none")
    assert out.shape == (3, 4)
    wide = _leaf(torch.randn(12, 50, dtype=F64))     # strided rows: a slice of wider logits
    got = _value_and_grads(K.triton_cross_entropy, [wide[:, 5:45], y.to(DEVICE)], reduction="none")
    wide_c = wide.detach().clone().requires_grad_(True)
    want = _value_and_grads(LF.cross_entropy, [wide_c[:, 5:45], y], reduction="none")
    _close(got, want, **TOL)
    with torch.no_grad():                  # no gradient needed: no gradient buffer either
        assert torch.ops.losskit.triton_cross_entropy(x.reshape(12, 40), yy.reshape(-1), None, -100, 0.0,
                                                      "none", "zero", False, 0)[1].numel() == 0


@kernels
def test_cross_entropy_no_inplace_write_and_repeated_backward() -> None:  # PITFALLS 11
    x, y = _ce_data(7)
    xk = _leaf(x)
    before = xk.detach().clone()
    out = K.triton_cross_entropy(xk, y.to(DEVICE), reduction="none")
    g = _upstream(out, 1)
    (g1,) = torch.autograd.grad(out, xk, g, retain_graph=True)
    (g2,) = torch.autograd.grad(out, xk, g)
    assert torch.equal(xk.detach(), before) and torch.equal(g1, g2)
    again = K.triton_cross_entropy(xk, y.to(DEVICE), reduction="none")   # no atomics (PITFALLS 21)
    assert torch.equal(again, out) and torch.equal(torch.autograd.grad(again, xk, g)[0], g1)


@kernels
def test_cross_entropy_gradcheck_float64() -> None:
    x, y = _ce_data(8, n=3, v=6)
    for red, eps in (("none", 0.2), ("mean", 0.0)):
        assert torch.autograd.gradcheck(
            lambda t, red=red, eps=eps: K.triton_cross_entropy(t, y.to(DEVICE), reduction=red,
                                                               label_smoothing=eps, block_size=4),
            (_leaf(x),))


# --------------------------------------------------------------------------- sigmoid focal


def _focal_data(seed: int, shape: tuple[int, ...] = (5, 9)) -> tuple[Tensor, Tensor]:
    g = _gen(seed)
    x = torch.randn(shape, generator=g, dtype=F64) * 3
    t = torch.rand(shape, generator=g, dtype=F64)
    t.view(-1)[::3] = 1.0
    t.view(-1)[1::3] = 0.0
    return x, t


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("alpha", "gamma"), [(None, 0.0), (0.25, 0.0), (None, 0.5), (0.25, 2.0), (0.8, 3.5)])
def test_focal_equals_composed_float64(reduction: str, alpha: float | None, gamma: float) -> None:
    x, t = _focal_data(11, (33, 40))       # more than one program of FOCAL_BLOCK elements
    got = _value_and_grads(K.triton_sigmoid_focal_loss, [_leaf(x), _leaf(t)], alpha=alpha, gamma=gamma,
                           reduction=reduction)
    want = _value_and_grads(LF.sigmoid_focal_loss, [x.clone().requires_grad_(True),
                                                    t.clone().requires_grad_(True)],
                            alpha=alpha, gamma=gamma, reduction=reduction)
    _close(got, want, **TOL)


@kernels
@pytest.mark.parametrize(("alpha", "gamma"), [(None, 2.0), (0.25, 0.5)])
def test_focal_equals_paper_reference(alpha: float | None, gamma: float) -> None:
    x, t = _focal_data(12, (3, 4))
    got = _value_and_grads(K.triton_sigmoid_focal_loss, [_leaf(x), _leaf(t)], alpha=alpha, gamma=gamma,
                           reduction="none")
    want = _value_and_grads(ref.sigmoid_focal_paper, [x.clone().requires_grad_(True),
                                                      t.clone().requires_grad_(True)], alpha=alpha,
                            gamma=gamma)
    _close(got, want, **TOL)


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_float32_matches_torchvision(reduction: str) -> None:
    try:
        from torchvision.ops import sigmoid_focal_loss as peer
    except ImportError:  # its transcription (torchvision's function is pure PyTorch)
        peer = ref.torchvision_sigmoid_focal_loss
    x, t = _focal_data(13, (64, 20))
    x, t = x.float(), (t > 0.5).float()
    got = _value_and_grads(K.triton_sigmoid_focal_loss, [_leaf(x), t.to(DEVICE)], reduction=reduction)
    want = _value_and_grads(peer, [x.clone().requires_grad_(True), t], reduction=reduction)
    _close(got, want, rtol=1e-6, atol=1e-6)


@kernels
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_extreme_logits_finite(gamma: float) -> None:  # PITFALLS 5
    inf = float("inf")
    # ±inf: 0 where the target agrees; where it disagrees a huge finite loss (logits clamped to
    # ±sqrt(max), as in the composed loss) with the clamp's zero gradient
    x = torch.tensor([[-1e4, 1e4, -60.0, 60.0, 0.0, inf, -inf, inf, -inf]], dtype=F64)
    t = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0, 1.0]], dtype=F64)
    for dtype in (F64, torch.float32):
        xd, td = x.to(dtype), t.to(dtype)
        got = _value_and_grads(K.triton_sigmoid_focal_loss, [_leaf(xd), _leaf(td)], gamma=gamma,
                               reduction="none")
        want = _value_and_grads(LF.sigmoid_focal_loss, [xd.clone().requires_grad_(True),
                                                        td.clone().requires_grad_(True)],
                                gamma=gamma, reduction="none")
        assert all(torch.isfinite(v).all() for v in (got[0], *got[1]))
        _close(got, want, rtol=1e-6, atol=1e-6)


@kernels
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_focal_half_computes_in_float32(dtype: torch.dtype) -> None:  # PITFALLS 4
    x, t = _focal_data(14, (6, 7))
    xh, th = x.to(dtype), t.to(dtype)
    got = _value_and_grads(K.triton_sigmoid_focal_loss, [_leaf(xh), _leaf(th)], reduction="none")
    assert got[0].dtype == torch.float32 and got[1][0].dtype == dtype
    want = _value_and_grads(ref.sigmoid_focal_paper, [xh.double().requires_grad_(True),
                                                      th.double().requires_grad_(True)],
                            alpha=0.25, gamma=2.0)
    _close(got, want, rtol=1e-2, atol=1e-2)


@kernels
def test_focal_saves_only_its_inputs() -> None:
    x, t = _focal_data(15)
    xk, tk = _leaf(x), t.to(DEVICE)
    saved: list[Tensor] = []

    def pack(v: Tensor) -> Tensor:
        saved.append(v)
        return v

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda v: v):
        K.triton_sigmoid_focal_loss(xk, tk)
    assert len(saved) == 2 and saved[0] is xk and saved[1] is tk


@kernels
def test_focal_gradcheck_float64() -> None:
    x, t = _focal_data(16, (2, 3))
    for alpha, gamma in ((0.25, 2.0), (None, 0.5)):
        assert torch.autograd.gradcheck(
            lambda a, b, alpha=alpha, gamma=gamma: K.triton_sigmoid_focal_loss(
                a, b, alpha=alpha, gamma=gamma, reduction="none"),
            (_leaf(x), _leaf(t)))


# --------------------------------------------------------------------------- linear cross-entropy


def _lce_data(seed: int, n: int = 9, d: int = 5, v: int = 23) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = _gen(seed)
    h = torch.randn(n, d, generator=g, dtype=F64)
    w = torch.randn(v, d, generator=g, dtype=F64)
    b = torch.randn(v, generator=g, dtype=F64)
    y = torch.randint(0, v, (n,), generator=g)
    y[0] = -100
    return h, w, b, y


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("eps", "z_loss", "cap", "bias", "chunk"),
                         [(0.0, 0.0, None, True, 4), (0.2, 1e-2, 2.5, True, 1), (0.1, 0.0, 1.5, False, None)])
def test_linear_ce_equals_composed_float64(reduction: str, eps: float, z_loss: float, cap: float | None,
                                           bias: bool, chunk: int | None) -> None:
    h, w, b, y = _lce_data(21)

    def run(fn: Callable[..., Tensor], block: dict[str, object]) -> tuple[Tensor, tuple[Tensor, ...]]:
        dev = DEVICE if fn is K.triton_linear_cross_entropy else "cpu"
        leaves = [h.detach().to(dev).requires_grad_(True), w.detach().to(dev).requires_grad_(True)]
        bb = b.detach().to(dev).requires_grad_(True) if bias else None
        out = fn(*leaves, y.to(dev), bias=bb, label_smoothing=eps, z_loss=z_loss, softcap=cap,
                 reduction=reduction, chunk_size=chunk, **block)
        wrt = leaves + ([bb] if bb is not None else [])
        return out.detach(), torch.autograd.grad(out, wrt, _upstream(out, 3))

    _close(run(K.triton_linear_cross_entropy, {"block_size": 8}), run(LF.linear_cross_entropy, {}), **TOL)


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_linear_ce_equals_materialised_loop_reference(reduction: str) -> None:
    h, w, b, y = _lce_data(22, n=4, d=3, v=6)
    leaves = [t.clone().requires_grad_(True) for t in (h, w, b)]
    want_out = ref.cross_entropy(leaves[0] @ leaves[1].T + leaves[2], y, label_smoothing=0.1,
                                 reduction=reduction)
    want = (want_out.detach(), torch.autograd.grad(want_out, leaves, _upstream(want_out, 4)))
    k = [_leaf(t) for t in (h, w, b)]
    got_out = K.triton_linear_cross_entropy(k[0], k[1], y.to(DEVICE), bias=k[2], label_smoothing=0.1,
                                            reduction=reduction, chunk_size=3)
    got = (got_out.detach(), torch.autograd.grad(got_out, k, _upstream(got_out, 4)))
    _close(got, want, **TOL)


@kernels
def test_linear_ce_float32_matches_torch() -> None:
    h, w, b, y = _lce_data(23, n=32, d=16, v=200)
    h, w, b = h.float(), w.float(), b.float()
    k = [_leaf(t) for t in (h, w, b)]
    got_out = K.triton_linear_cross_entropy(k[0], k[1], y.to(DEVICE), bias=k[2], label_smoothing=0.1,
                                            chunk_size=10, block_size=64)
    got = (got_out.detach(), torch.autograd.grad(got_out, k))
    t = [v.clone().requires_grad_(True) for v in (h, w, b)]
    want_out = F.cross_entropy(F.linear(t[0], t[1], t[2]), y, label_smoothing=0.1)
    want = (want_out.detach(), torch.autograd.grad(want_out, t))
    _close(got, want, rtol=1e-5, atol=1e-6)
    # soft-capped logits (Gemma 2), tanh written without libdevice: against torch.tanh in float32
    k = [_leaf(v) for v in (h, w, b)]
    got_out = K.triton_linear_cross_entropy(k[0], k[1], y.to(DEVICE), bias=k[2], softcap=3.0, chunk_size=10)
    got = (got_out.detach(), torch.autograd.grad(got_out, k))
    t = [v.clone().requires_grad_(True) for v in (h, w, b)]
    want_out = F.cross_entropy(3.0 * torch.tanh(F.linear(t[0], t[1], t[2]) / 3.0), y)
    want = (want_out.detach(), torch.autograd.grad(want_out, t))
    _close(got, want, rtol=1e-5, atol=1e-6)


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_linear_ce_half(reduction: str) -> None:  # PITFALLS 4
    h, w, _, y = _lce_data(24, n=8, d=8, v=40)
    hh, wh = h.to(torch.bfloat16), w.to(torch.bfloat16)
    k = [_leaf(hh), _leaf(wh)]
    out = K.triton_linear_cross_entropy(k[0], k[1], y.to(DEVICE), reduction=reduction, chunk_size=3)
    assert out.dtype == torch.float32
    got = (out.detach(), torch.autograd.grad(out, k, _upstream(out, 5)))
    assert got[1][0].dtype == torch.bfloat16 and got[1][1].dtype == torch.bfloat16
    r = [hh.double().requires_grad_(True), wh.double().requires_grad_(True)]
    want_out = LF.linear_cross_entropy(r[0], r[1], y, reduction=reduction)
    want = (want_out.detach(), torch.autograd.grad(want_out, r, _upstream(want_out, 5)))
    _close(got, want, rtol=3e-2, atol=3e-2)


@kernels
def test_linear_ce_saves_no_logits_and_all_ignored() -> None:  # PITFALLS 6, 10
    n, d, v = 16, 4, 64
    h, w, b, y = _lce_data(25, n, d, v)
    k = [_leaf(t) for t in (h, w, b)]
    for red in ("mean", "none"):
        sizes = _saved_numels(lambda red=red: K.triton_linear_cross_entropy(
            k[0], k[1], y.to(DEVICE), bias=k[2], reduction=red, chunk_size=4))
        assert sizes and max(sizes) <= max(n, v) * d < n * v, (red, sizes)
    ignored = torch.full((n,), -100, device=DEVICE)
    out = K.triton_linear_cross_entropy(k[0], k[1], ignored, bias=k[2], chunk_size=4)
    grads = torch.autograd.grad(out, k)
    assert out.item() == 0.0 and all(torch.equal(g, torch.zeros_like(g)) for g in grads)
    assert K.triton_linear_cross_entropy(k[0], k[1], ignored, empty="nan").isnan()


@kernels
def test_linear_ce_gradcheck_float64() -> None:
    h, w, b, y = _lce_data(26, n=3, d=2, v=5)
    for red in ("none", "sum"):
        assert torch.autograd.gradcheck(
            lambda a, c, e, red=red: K.triton_linear_cross_entropy(a, c, y.to(DEVICE), bias=e, reduction=red,
                                                                   label_smoothing=0.1, chunk_size=3),
            (_leaf(h), _leaf(w), _leaf(b)))


@kernels
def test_linear_ce_shift_and_micro_batches_with_normalizer() -> None:  # PITFALLS 1, 29
    g = _gen(27)
    h = torch.randn(2, 6, 4, generator=g, dtype=F64)
    w = torch.randn(11, 4, generator=g, dtype=F64)
    y = torch.randint(0, 11, (2, 6), generator=g)
    y[1, 4:] = -100
    full = LF.linear_cross_entropy(h, w, y, shift=True)
    count = LF.count_valid_targets(y, shift=True)
    parts = [K.triton_linear_cross_entropy(_leaf(h[i:i + 1]), _leaf(w), y[i:i + 1].to(DEVICE), shift=True,
                                           reduction="sum", normalizer=count.to(DEVICE)) for i in range(2)]
    torch.testing.assert_close((parts[0] + parts[1]).cpu(), full, **TOL)
    none = K.triton_linear_cross_entropy(_leaf(h), _leaf(w), y.to(DEVICE), shift=True, reduction="none")
    assert none.shape == (2, 5)
    with pytest.raises(LossInputError, match="normalizer"):
        K.triton_linear_cross_entropy(_leaf(h), _leaf(w), y.to(DEVICE), normalizer=3.0)


@kernels
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sample_weight_mask_normalizer_go_through_reduce(reduction: str) -> None:  # PITFALLS 27
    x, y = _ce_data(41, n=8, v=10)
    cw = torch.rand(10, generator=_gen(42), dtype=F64) + 0.2
    sw = torch.rand(8, generator=_gen(43), dtype=F64)
    keep = torch.rand(8, generator=_gen(44)) > 0.3
    xf, tf = _focal_data(45, (8, 3))
    swf = torch.rand(8, 3, generator=_gen(46), dtype=F64)
    extra = {"normalizer": 3.5} if reduction == "sum" else {}
    ce_kw = {"weight": cw, "label_smoothing": 0.1, "reduction": reduction, **extra}
    dev = {"weight": cw.to(DEVICE), "sample_weight": sw.to(DEVICE), "mask": keep.to(DEVICE)}
    got = _value_and_grads(K.triton_cross_entropy, [_leaf(x), y.to(DEVICE)], **{**ce_kw, **dev})
    want = _value_and_grads(LF.cross_entropy, [x.clone().requires_grad_(True), y], sample_weight=sw,
                            mask=keep, **ce_kw)
    _close(got, want, **TOL)
    got = _value_and_grads(K.triton_sigmoid_focal_loss, [_leaf(xf), _leaf(tf)], reduction=reduction,
                           sample_weight=swf.to(DEVICE), mask=keep.to(DEVICE), **extra)
    want = _value_and_grads(LF.sigmoid_focal_loss, [xf.clone().requires_grad_(True),
                                                    tf.clone().requires_grad_(True)],
                            reduction=reduction, sample_weight=swf, mask=keep, **extra)
    _close(got, want, **TOL)
    if extra:                              # normalizer alone: the kernel's own sum, divided
        got = _value_and_grads(K.triton_sigmoid_focal_loss, [_leaf(xf), _leaf(tf)], reduction="sum", **extra)
        want = _value_and_grads(LF.sigmoid_focal_loss, [xf.clone().requires_grad_(True),
                                                        tf.clone().requires_grad_(True)], reduction="sum",
                                **extra)
        _close(got, want, **TOL)


# --------------------------------------------------------------------------- all three


@kernels
@pytest.mark.parametrize("empty", ["zero", "nan"])
def test_empty_inputs_follow_the_empty_policy(empty: str) -> None:  # PITFALLS 6
    x, y = _leaf(torch.zeros(0, 5, dtype=F64)), torch.zeros(0, dtype=torch.long, device=DEVICE)
    h, w = _leaf(torch.zeros(0, 3, dtype=F64)), _leaf(torch.randn(5, 3, dtype=F64))
    outs = [K.triton_cross_entropy(x, y, empty=empty),
            K.triton_sigmoid_focal_loss(x, x.detach(), empty=empty),
            K.triton_linear_cross_entropy(h, w, y, empty=empty)]
    wants = [LF.cross_entropy(x, y, empty=empty),
             LF.sigmoid_focal_loss(x, x.detach(), empty=empty),
             LF.linear_cross_entropy(h, w, y, empty=empty)]
    for out, want in zip(outs, wants):
        torch.testing.assert_close(out, want, equal_nan=True)
    for out in outs[:2] + [K.triton_cross_entropy(x, y, reduction="sum")]:
        assert out.shape == () and torch.autograd.grad(out, x)[0].shape == x.shape
    (gw,) = torch.autograd.grad(K.triton_linear_cross_entropy(h, w, y, reduction="sum"), w)
    assert torch.equal(gw, torch.zeros_like(gw))


# --------------------------------------------------------------------------- torch.compile


@kernels
def test_all_three_trace_under_compile_fullgraph() -> None:  # PITFALLS 22
    x, y = _ce_data(31)
    xf, tf = _focal_data(32)
    h, w, b, yl = _lce_data(33)
    torch._dynamo.reset()
    cases: list[tuple[Callable[..., Tensor], list[Tensor], dict[str, object]]] = [
        (K.triton_cross_entropy, [_leaf(x), y.to(DEVICE)], {"label_smoothing": 0.1, "reduction": "none"}),
        (K.triton_sigmoid_focal_loss, [_leaf(xf), _leaf(tf)], {"reduction": "mean"}),
        (K.triton_linear_cross_entropy, [_leaf(h), _leaf(w), yl.to(DEVICE)],
         {"bias": _leaf(b), "chunk_size": 4}),
    ]
    for fn, args, kw in cases:
        # aot_eager traces forward and backward with the fake implementations and the
        # registered autograd formulas
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
        _close(_value_and_grads(compiled, args, **kw), _value_and_grads(fn, args, **kw), **TOL)


@kernels
def test_opcheck_registrations() -> None:
    x, y = _ce_data(34, n=3, v=5)
    xf, tf = _focal_data(35, (2, 3))
    h, w, b, yl = _lce_data(36, n=3, d=2, v=5)
    ops = torch.ops.losskit
    checks = [
        (ops.triton_cross_entropy.default, (_leaf(x), y.to(DEVICE), torch.rand(5, dtype=F64, device=DEVICE),
                                            -100, 0.1, "mean", "zero", True, 4)),
        (ops.triton_sigmoid_focal.default, (_leaf(xf), _leaf(tf), 0.25, 2.0, "none", "zero")),
        (ops.triton_linear_cross_entropy.default,
         (_leaf(h), _leaf(w), _leaf(b), yl.to(DEVICE), -100, 0.1, 1e-2, 2.0, "none", "zero", 2, False, 0)),
    ]
    for op, args in checks:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor",
                                                    "test_aot_dispatch_dynamic"))
