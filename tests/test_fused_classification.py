"""Fast paths of the classification losses against the composed reference path, PyTorch and the
float64 references: values and every gradient for every option (``reduction="none"`` with a
non-uniform upstream gradient included), half precision, extremes, the bytes saved for
backward, and the semantics of ``cross_entropy(inplace_backward=True)``."""

# The lambdas built inside loops below are called at once, inside the same iteration.
# ruff: noqa: B023

from __future__ import annotations

import itertools
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from tests.reference import classification_ref as ref

import losskit.functional as LF
import losskit.losses.classification as C
import losskit.losses.imbalance as I
from losskit import _native
from losskit._core.checks import LossInputError
from losskit.bench.harness import saved_bytes

D = torch.float64

pytestmark = pytest.mark.usefixtures("fused_backend")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@contextmanager
def composed_path():
    """Force the composed reference path (the one torch.compile traces)."""
    saved = C.use_fast_path
    C.use_fast_path = lambda: False
    try:
        yield
    finally:
        C.use_fast_path = saved


def _value_and_grad(fn, x: torch.Tensor, seed: int = 7):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    g = torch.rand(out.shape, generator=_gen(seed), dtype=out.dtype) + 0.5 if out.ndim else 1.0
    (out * g).sum().backward()
    return out.detach(), x.grad


def _assert_same(fn_a, fn_b, x, rtol=1e-10, atol=1e-10):
    va, ga = _value_and_grad(fn_a, x)
    vb, gb = _value_and_grad(fn_b, x)
    torch.testing.assert_close(va, vb, rtol=rtol, atol=atol)
    torch.testing.assert_close(ga, gb, rtol=rtol, atol=atol)


def _shared_option(option: str, shape: torch.Size, seed: int, drop_below: float,
                   normalizer: float) -> dict:
    """The keywords of one of reduce()'s shared options: random per-element weights (``seed``),
    a random mask (``seed + 1``, dropping draws below ``drop_below``), or ``normalizer`` with
    ``reduction="sum"``; nothing for any other option."""
    if option == "sample_weight":
        return {"sample_weight": torch.rand(shape, generator=_gen(seed), dtype=D)}
    if option == "mask":
        return {"mask": torch.rand(shape, generator=_gen(seed + 1)) > drop_below}
    if option == "normalizer":
        return {"reduction": "sum", "normalizer": normalizer}
    return {}


# --------------------------------------------------------------------------- cross_entropy

K = 5
W = torch.tensor([0.3, 1.0, 2.0, 0.7, 1.4], dtype=D)
LAYOUTS = {"2d": ((7, K), 1), "4d": ((2, K, 3, 2), 1), "last": ((2, 3, K), -1), "1d": ((K,), 1)}


def _case(layout: str, ignored: bool, seed: int = 3, dtype: torch.dtype = D):
    shape, dim = LAYOUTS[layout]
    x = (torch.randn(*shape, generator=_gen(seed), dtype=D) * 2).to(dtype)
    d = dim % len(shape)
    tshape = shape[:d] + shape[d + 1:]
    t = torch.randint(0, K, tshape, generator=_gen(seed + 1))
    if ignored and t.ndim:
        t = t.clone()
        t.view(-1)[::3] = -100
    return x, t, dim


def _torch_ce(x, t, dim, **kw):
    return F.cross_entropy(x.movedim(dim, 1) if x.ndim > 1 else x, t, **kw)


GRID = list(itertools.product((False, True), (False, True), (0.0, 0.2), ("none", "mean", "sum"),
                              tuple(LAYOUTS)))


@pytest.mark.parametrize("weighted,ignored,eps,reduction,layout", GRID)
def test_fast_cross_entropy_equals_composed_path_and_torch(weighted, ignored, eps, reduction, layout):
    x, t, dim = _case(layout, ignored)
    kw = dict(weight=W if weighted else None, label_smoothing=eps, reduction=reduction)

    def fast(z):
        return LF.cross_entropy(z, t, class_dim=dim, **kw)

    with composed_path():
        composed = _value_and_grad(fast, x)
    _assert_same(fast, lambda z: _torch_ce(z, t, dim, **kw), x)
    va, ga = _value_and_grad(fast, x)
    torch.testing.assert_close(va, composed[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ga, composed[1], rtol=1e-10, atol=1e-10)
    # float32 against PyTorch's kernel to 1e-6
    kw32 = {**kw, "weight": None if not weighted else W.float()}
    _assert_same(lambda z: LF.cross_entropy(z, t, class_dim=dim, **kw32),
                 lambda z: _torch_ce(z, t, dim, **kw32), x.float(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.15])
def test_fast_cross_entropy_equals_float64_reference(eps):
    x, t, _ = _case("2d", True, seed=11)
    _assert_same(lambda z: LF.cross_entropy(z, t, weight=W, label_smoothing=eps, reduction="none"),
                 lambda z: ref.cross_entropy(z, t, weight=W, label_smoothing=eps, reduction="none"), x)


@pytest.mark.parametrize("option", ["sample_weight", "mask", "normalizer", "weighted_mean", "empty_nan"])
def test_fast_cross_entropy_shared_options_equal_composed_path(option):
    x, t, _ = _case("4d", True, seed=5)
    kw: dict = {"weight": W, "label_smoothing": 0.1,
                **_shared_option(option, t.shape, seed=1, drop_below=0.4, normalizer=17.0)}
    if option == "weighted_mean":
        kw["weighted_mean"] = False
    elif option == "empty_nan":
        kw["empty"] = "nan"

    def fn(z):
        return LF.cross_entropy(z, t, **kw)

    with composed_path():
        composed = _value_and_grad(fn, x)
    va, ga = _value_and_grad(fn, x)
    torch.testing.assert_close(va, composed[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ga, composed[1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("empty", ["zero", "nan"])
def test_fast_cross_entropy_all_ignored_and_zero_batch(empty):
    x = torch.randn(3, K, dtype=D, requires_grad=True)
    loss = LF.cross_entropy(x, torch.full((3,), -100), empty=empty)
    loss.backward()
    if empty == "zero":
        assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    else:
        assert loss.isnan()
    z = torch.randn(0, K, requires_grad=True)
    out = LF.cross_entropy(z, torch.zeros(0, dtype=torch.long), reduction="sum")
    out.backward()
    assert out.item() == 0.0 and z.grad.shape == (0, K)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fast_cross_entropy_half_inputs_compute_in_float32(dtype):
    x, t, _ = _case("2d", True, seed=13, dtype=dtype)
    for eps in (0.0, 0.1):
        xh = x.detach().clone().requires_grad_(True)
        out = LF.cross_entropy(xh, t, weight=W.float(), label_smoothing=eps, reduction="none")
        assert out.dtype == torch.float32
        g = torch.rand(out.shape, generator=_gen(3)) + 0.5
        (out * g).sum().backward()
        assert xh.grad.dtype == dtype
        x64 = x.to(D).requires_grad_(True)
        expected = ref.cross_entropy(x64, t, weight=W, label_smoothing=eps, reduction="none")
        (expected * g.to(D)).sum().backward()
        torch.testing.assert_close(out.to(D), expected.detach(), rtol=1e-2, atol=1e-2)
        torch.testing.assert_close(xh.grad.to(D), x64.grad, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_fast_cross_entropy_extreme_and_masked_logits(scale):
    x = torch.randn(6, K, generator=_gen(17), dtype=D) * scale
    x[:, 1] = float("-inf")  # a masked class
    x[0, 3] = float("-inf")
    t = torch.tensor([0, 2, 3, 4, -100, 0])
    for eps, weighted in itertools.product((0.0, 0.3), (False, True)):
        kw = dict(weight=W if weighted else None, label_smoothing=eps, reduction="none")

        def fn(z):
            return LF.cross_entropy(z, t, **kw)

        va, ga = _value_and_grad(fn, x)
        assert torch.isfinite(va).all() and torch.isfinite(ga).all()
        assert torch.equal(ga[:, 1], torch.zeros(6, dtype=D))  # no gradient into masked classes
        with composed_path():
            vc, gc = _value_and_grad(fn, x)
        torch.testing.assert_close(va, vc, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ga, gc, rtol=1e-10, atol=1e-10)
        # and the float64 reference (which drops -inf classes from the smoothing term)
        vr, gr = _value_and_grad(lambda z: ref.cross_entropy(z, t, **kw), x)
        torch.testing.assert_close(va, vr, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ga, gr, rtol=1e-10, atol=1e-10)


def test_fast_cross_entropy_gradcheck_and_gradgradcheck():
    for layout, reduction in (("4d", "mean"), ("2d", "none")):
        x, t, _ = _case(layout, True, seed=19)
        if layout == "4d":
            x, t = x[:1, :, :2], t[:1, :2]  # (1, K, 2, 2)
        else:
            x, t = x[:3], t[:3]
        x = x.requires_grad_(True)
        for eps in (0.0, 0.2):
            def fn(z):
                return LF.cross_entropy(z, t, weight=W, label_smoothing=eps, reduction=reduction)

            assert torch.autograd.gradcheck(fn, (x,))
            assert torch.autograd.gradgradcheck(fn, (x,))


def test_fast_cross_entropy_non_contiguous_logits():
    x = torch.randn(K, 8, generator=_gen(23), dtype=D).t()  # (8, K), not contiguous
    t = torch.randint(0, K, (8,), generator=_gen(24))
    _assert_same(lambda z: LF.cross_entropy(z.t().t(), t, label_smoothing=0.1),
                 lambda z: F.cross_entropy(z, t, label_smoothing=0.1), x)


def test_torch_func_transforms_take_the_composed_path():
    x, t, _ = _case("2d", False, seed=29)
    g = torch.func.grad(lambda z: LF.cross_entropy(z, t, label_smoothing=0.1))(x)
    x = x.clone().requires_grad_(True)
    F.cross_entropy(x, t, label_smoothing=0.1).backward()
    torch.testing.assert_close(g, x.grad, rtol=1e-10, atol=1e-10)


def _saved_storage_bytes(fn, *inputs, count_inputs: bool = True) -> int:
    """Bytes of every distinct storage autograd saves during fn(*inputs) (the benchmark's counter;
    ``count_inputs=False``: the inputs' own storages not counted)."""
    return saved_bytes(lambda: fn(*inputs), ()) if count_inputs else saved_bytes(fn, inputs)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_fast_cross_entropy_saves_at_most_one_logits_buffer(eps):
    n, k = 64, 2048
    x = torch.randn(n, k, requires_grad=True)
    t = torch.randint(0, k, (n,))
    logits_bytes = x.untyped_storage().nbytes()
    small = 8 * n * 8  # a few per-row vectors
    ours = _saved_storage_bytes(lambda z: LF.cross_entropy(z, t, label_smoothing=eps), x)
    assert ours <= logits_bytes + small  # the logits themselves and a few per-row floats
    ours_new = _saved_storage_bytes(lambda z: LF.cross_entropy(z, t, label_smoothing=eps), x,
                                    count_inputs=False)
    theirs_new = _saved_storage_bytes(lambda z: F.cross_entropy(z, t, label_smoothing=eps), x,
                                      count_inputs=False)
    assert ours_new <= small
    assert theirs_new >= logits_bytes  # PyTorch keeps log_softmax: what the fast path avoids


_CE_BASED = {
    "softmax_focal γ=2": lambda z, t, **kw: LF.softmax_focal_loss(z, t, gamma=2.0, **kw),
    "softmax_focal γ=0.5 α w": lambda z, t, **kw: LF.softmax_focal_loss(
        z, t, gamma=0.5, alpha=torch.linspace(0.2, 1.0, K, dtype=z.dtype), weight=W.to(z.dtype), **kw),
    "poly1 ε=1": lambda z, t, **kw: LF.poly1_cross_entropy(z, t, epsilon=1.0, **kw),
    "poly1 ε=-0.5": lambda z, t, **kw: LF.poly1_cross_entropy(z, t, epsilon=-0.5, **kw),
}


@pytest.mark.parametrize("layout", ["2d", "nd", "channels_last"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name", list(_CE_BASED))
def test_ce_based_losses_fast_path_equals_composed(name, reduction, layout):
    # softmax focal and poly-1 with class indices are functions of the per-position NLL: the
    # low-memory cross-entropy path must give the composed path's values and gradients
    fn = _CE_BASED[name]
    gen = _gen(71)
    tshape, kw = {"2d": ((12,), {}), "nd": ((3, 4, 2), {}),
                  "channels_last": ((3, 4), {"class_dim": -1})}[layout]
    t = torch.randint(0, K, tshape, generator=gen)
    t.view(-1)[1] = -100  # one ignored position
    last = torch.randn(tshape + (K,), generator=gen, dtype=D) * 3  # built channels-last
    rows, first = last.view(-1, K), t.view(-1)
    other = (first.clamp_min(0) + 1) % K  # a non-target class of each position
    rows[0, other[0]] = 1e4       # saturated against the target
    rows[2, first[2]] = 1e4       # saturated for the target
    rows[3, other[3]] = float("-inf")  # a masked class
    x = last if layout == "channels_last" else last.movedim(-1, 1).contiguous()
    run = lambda z: fn(z, t, reduction=reduction, **kw)  # noqa: E731
    va, ga = _value_and_grad(run, x)
    with composed_path():
        vb, gb = _value_and_grad(run, x)
    assert torch.isfinite(va).all() and torch.isfinite(ga).all()
    torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(_CE_BASED))
def test_ce_based_losses_save_nothing_logits_sized(name):
    n, k = 64, 2048
    x = torch.randn(n, k, requires_grad=True)
    t = torch.randint(0, K, (n,))
    fn = _CE_BASED[name]
    kw = {} if "α" not in name else None
    if kw is None:  # per-class options sized for k classes
        alpha, w = torch.rand(k) + 0.1, torch.rand(k) + 0.5
        run = lambda z, y: LF.softmax_focal_loss(z, y, gamma=0.5, alpha=alpha, weight=w)  # noqa: E731
    else:
        run = lambda z, y: fn(z, y)  # noqa: E731
    saved = _saved_storage_bytes(run, x, t, count_inputs=False)
    assert saved <= 16 * n * 8  # a few per-row vectors
    with composed_path():  # the composed form keeps log_softmax: what the fast path avoids
        assert _saved_storage_bytes(run, x, t, count_inputs=False) >= x.untyped_storage().nbytes()


# ----------------------------------------------------------------- inplace_backward semantics


def _head(seed: int = 31):
    g = _gen(seed)
    h = torch.randn(6, 4, generator=g, dtype=D, requires_grad=True)
    w = torch.randn(4, K, generator=g, dtype=D, requires_grad=True)
    t = torch.randint(0, K, (6,), generator=g)
    t[2] = -100
    return h, w, t


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_inplace_backward_gives_the_same_gradients_and_overwrites_the_logits(reduction, eps):
    h, w, t = _head()
    g = torch.rand(6, generator=_gen(3), dtype=D) + 0.5
    kw = dict(weight=W, label_smoothing=eps, reduction=reduction)
    grads = []
    for inplace in (False, True):
        h.grad = w.grad = None
        logits = h @ w
        logits.retain_grad()
        loss = LF.cross_entropy(logits, t, inplace_backward=inplace, **kw)
        before = logits.detach().clone()
        (loss * g if reduction == "none" else loss).sum().backward()
        grads.append((h.grad.clone(), w.grad.clone(), logits.grad.clone()))
        if inplace:
            # documented: after backward the logits hold d(loss)/d(logits)
            torch.testing.assert_close(logits.detach(), grads[0][2], rtol=1e-12, atol=1e-12)
        else:
            assert torch.equal(logits.detach(), before)
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_inplace_backward_keeps_the_logits_until_backward():
    h, w, t = _head()
    logits = h @ w
    before = logits.detach().clone()
    LF.cross_entropy(logits, t, inplace_backward=True)
    assert torch.equal(logits.detach(), before)  # metrics can still be computed here


def test_inplace_backward_refuses_unsafe_uses():
    h, w, t = _head()
    with pytest.raises(LossInputError, match="leaf"):
        LF.cross_entropy(torch.randn(6, K, requires_grad=True), t, inplace_backward=True)
    leaf = torch.randn(6 * K, requires_grad=True)
    with pytest.raises(LossInputError, match="leaf"):
        LF.cross_entropy(leaf.view(6, K), t, inplace_backward=True)
    with pytest.raises(LossInputError, match="probabilities"):
        LF.cross_entropy(h @ w, torch.softmax(torch.randn(6, K, dtype=D), 1), inplace_backward=True)
    with composed_path(), pytest.raises(LossInputError, match=r"torch\.compile"):
        LF.cross_entropy(h @ w, t, inplace_backward=True)
    loss = LF.cross_entropy(h @ w, t, inplace_backward=True)
    with pytest.raises(LossInputError, match="differentiated twice"):
        torch.autograd.grad(loss, h, create_graph=True)


def test_inplace_backward_never_feeds_overwritten_logits_to_another_node():
    h, w, t = _head()
    logits = h @ w
    other = (logits**2).sum()  # PowBackward saves the logits and runs after the loss's backward
    loss = LF.cross_entropy(logits, t, inplace_backward=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (loss + other).backward()
    # the other order is correct: the consumer created later runs its backward first
    h.grad = w.grad = None
    logits = h @ w
    loss = LF.cross_entropy(logits, t, inplace_backward=True)
    (loss + (logits**2).sum()).backward()
    got = (h.grad.clone(), w.grad.clone())
    h.grad = w.grad = None
    logits = h @ w
    (F.cross_entropy(logits, t) + (logits**2).sum()).backward()
    torch.testing.assert_close(got[0], h.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], w.grad, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------- fused elementwise: focal and hinge losses

FOCAL_PARAMS = [(0.25, 2.0), (None, 2.0), (0.7, 0.5), (0.25, 0.0), (None, 3.0), (0.4, 1.0)]


def _focal_case(shape=(9, 6), seed=41, dtype=D, scale=3.0):
    x = torch.randn(*shape, generator=_gen(seed), dtype=D) * scale
    t = torch.rand(*shape, generator=_gen(seed + 1), dtype=D)
    t[: shape[0] // 2] = (t[: shape[0] // 2] > 0.7).to(D)  # hard and soft targets
    return x.to(dtype), t.to(dtype)


def _elementwise_cases():
    """name → (fast(x, t, **opts), composed per-element reference(x, t), signed targets?)"""
    cases = {}
    for alpha, gamma in FOCAL_PARAMS:
        a = -1.0 if alpha is None else alpha
        cases[f"sigmoid_focal-{alpha}-{gamma}"] = (
            lambda z, t, alpha=alpha, gamma=gamma, **kw: LF.sigmoid_focal_loss(z, t, alpha=alpha,
                                                                               gamma=gamma, **kw),
            lambda z, t, a=a, gamma=gamma: C._sigmoid_focal_reference(z, t, a, gamma), False)
    cases["hinge"] = (lambda z, t, **kw: LF.hinge_loss(z, t, **kw),
                      lambda z, t: torch.relu(1.0 - t * z), True)
    cases["squared_hinge"] = (lambda z, t, **kw: LF.squared_hinge_loss(z, t, **kw),
                              lambda z, t: torch.relu(1.0 - t * z).square(), True)
    for gp, gn, clip, eps in [(0.0, 4.0, 0.05, 1e-8), (1.0, 0.5, 0.0, 0.0), (0.5, 2.0, 0.2, 0.05),
                              (2.0, 1.0, 0.1, 1e-8), (0.0, 0.0, 0.1, 1e-8), (0.0, 0.7, 0.05, 0.0)]:
        opts = dict(gamma_pos=gp, gamma_neg=gn, clip=clip, eps=eps)
        cases[f"asymmetric-{gp}-{gn}-{clip}-{eps}"] = (
            lambda z, t, opts=opts, **kw: LF.asymmetric_loss(z, t, **opts, **kw),
            lambda z, t, opts=opts: I._asymmetric_reference(z, t, *opts.values()), False)
    return cases


ELEMENTWISE = _elementwise_cases()
SHARED = ["none", "mean", "sum", "sample_weight", "mask", "normalizer"]


def _targets(t: torch.Tensor, signed: bool) -> torch.Tensor:
    return torch.where(t > 0.5, 1.0, -1.0).to(t.dtype) if signed else t


@pytest.mark.parametrize("option", SHARED)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_fused_elementwise_equals_composed_reference(name, option):
    fast, composed, signed = ELEMENTWISE[name]
    x, t = _focal_case()
    t = _targets(t, signed)
    kw: dict = {"reduction": option} if option in ("none", "mean", "sum") else {}
    kw.update(_shared_option(option, x.shape, seed=3, drop_below=0.3, normalizer=7.0))
    _assert_same(lambda z: fast(z, t, **kw), lambda z: C.reduce(composed(z, t), **kw), x)


@pytest.mark.parametrize("alpha,gamma", FOCAL_PARAMS)
def test_fused_sigmoid_focal_equals_float64_paper_and_torchvision_float32(alpha, gamma):
    x, t = _focal_case(seed=43)
    _assert_same(lambda z: LF.sigmoid_focal_loss(z, t, alpha=alpha, gamma=gamma, reduction="none"),
                 lambda z: ref.sigmoid_focal_paper(z, t, alpha, gamma), x)
    x32, t32 = x.float(), t.float()
    a = -1.0 if alpha is None else alpha
    _assert_same(lambda z: LF.sigmoid_focal_loss(z, t32, alpha=alpha, gamma=gamma, reduction="sum"),
                 lambda z: ref.torchvision_sigmoid_focal_loss(z, t32, a, gamma, reduction="sum"),
                 x32, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("squared", [False, True])
def test_fused_hinge_equals_float64_reference(squared):
    x, t = _focal_case(seed=47)
    y = _targets(t, True)
    fn = LF.squared_hinge_loss if squared else LF.hinge_loss
    _assert_same(lambda z: fn(z, y, reduction="none"), lambda z: ref.hinge(z, y, squared, "none"), x)
    _assert_same(lambda z: fn(z, (y > 0).long(), target_kind="01"), lambda z: ref.hinge(z, y, squared), x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["sigmoid_focal-0.25-2.0", "sigmoid_focal-0.7-0.5", "hinge",
                                  "squared_hinge", "asymmetric-0.0-4.0-0.05-1e-08"])
def test_fused_elementwise_half_inputs(name, dtype):
    fast, composed, signed = ELEMENTWISE[name]
    x, t = _focal_case(seed=53)
    t = _targets(t, signed)
    xh = x.to(dtype).requires_grad_(True)
    out = fast(xh, t.to(dtype), reduction="none")
    assert out.dtype == torch.float32
    g = torch.rand(out.shape, generator=_gen(5)) + 0.5
    (out * g).sum().backward()
    x64 = x.to(dtype).to(D).requires_grad_(True)
    expected = composed(x64, t.to(dtype).to(D))
    (expected * g.to(D)).sum().backward()
    torch.testing.assert_close(out.to(D), expected.detach(), rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(xh.grad.to(D), x64.grad, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_fused_elementwise_extremes_equal_reference_and_are_finite(name):
    fast, composed, signed = ELEMENTWISE[name]
    x, t = _focal_case(seed=59, scale=1e4)
    t = _targets(t, signed)
    if name.startswith("sigmoid_focal"):  # ±inf logits: finite, as the reference
        x[0, :2] = torch.tensor([float("inf"), float("-inf")], dtype=D)
        t[0, :2] = torch.tensor([1.0, 0.0], dtype=D)
    va, ga = _value_and_grad(lambda z: fast(z, t, reduction="none"), x)
    vb, gb = _value_and_grad(lambda z: composed(z, t), x)
    assert torch.isfinite(va).all() and torch.isfinite(ga).all()
    torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_fused_elementwise_equals_reference_through_the_saturation_band(name):
    # logits of ±10…±40: σ rounds to 0/1 in float32, the ASL log clamps at log(1e-8) ≈ -18.4
    # switch on, the focal factor underflows: each piece of the fused gradient meets its edge
    fast, composed, signed = ELEMENTWISE[name]
    x = torch.linspace(-40.0, 40.0, 161, dtype=D).repeat(2, 1)
    t = _targets(torch.tensor([[1.0], [0.0]], dtype=D).expand_as(x).contiguous(), signed)
    va, ga = _value_and_grad(lambda z: fast(z, t, reduction="none"), x)
    vb, gb = _value_and_grad(lambda z: composed(z, t), x)
    torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name", ["sigmoid_focal-0.25-2.0", "hinge", "squared_hinge",
                                  "asymmetric-0.0-4.0-0.05-1e-08"])
def test_fused_elementwise_saves_nothing_beyond_its_inputs(name, reduction):
    fast, composed, signed = ELEMENTWISE[name]
    x, t = _focal_case(shape=(64, 80), dtype=torch.float32)
    t = _targets(t, signed)
    x.requires_grad_(True)
    saved = _saved_storage_bytes(lambda z, y: fast(z, y, reduction=reduction), x, t, count_inputs=False)
    assert saved == 0
    # the composed form saves several input-sized tensors: what the fused path avoids
    composed_bytes = _saved_storage_bytes(lambda z, y: composed(z, y).sum(), x, t, count_inputs=False)
    assert composed_bytes >= x.untyped_storage().nbytes() or name == "hinge"


def test_fused_sigmoid_focal_gradcheck_and_gradgradcheck():
    x, t = _focal_case(shape=(4, 3), seed=61, scale=2.0)
    x.requires_grad_(True)
    for alpha, gamma in [(0.25, 2.0), (None, 0.5), (0.7, 3.0)]:
        def fn(z):
            return LF.sigmoid_focal_loss(z, t, alpha=alpha, gamma=gamma, reduction="none")

        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))
    y = _targets(t, True)
    assert torch.autograd.gradcheck(lambda z: LF.squared_hinge_loss(z, y), (x,))
    assert torch.autograd.gradgradcheck(lambda z: LF.squared_hinge_loss(z, y, reduction="sum"), (x,))


def test_focal_kernel_skips_the_clamp_only_when_every_logit_is_within_it():
    bound = torch.finfo(torch.float32).max ** 0.5
    ok = torch.tensor([-1e4, 0.0, 3.0, bound * 0.99])
    with _native.enabled(False):  # the hint serves the PyTorch chunks of the fused path
        for bad in (float("inf"), -float("inf"), float("nan"), bound * 1.01, -bound * 1.01):
            assert C._within_bce_bound(torch.cat([ok, torch.tensor([bad])])) == 0.0, bad
        assert C._within_bce_bound(ok) == 1.0
    with composed_path():  # no fused kernel to hint: nothing measured, nothing synced
        assert C._within_bce_bound(ok) == 0.0
    with _native.enabled(True):
        if _native.library() is not None:  # the C kernel clamps by itself: nothing measured
            assert C._within_bce_bound(ok) == 0.0
    # beyond the bound the clamped value is what the reference gives (1.8e19-ish, not 1e20)
    x = torch.tensor([1e20, -1e20, 2.0], requires_grad=True)
    t = torch.tensor([0.0, 1.0, 1.0])
    got = LF.sigmoid_focal_loss(x, t, reduction="none")
    want = C._sigmoid_focal_reference(x.detach(), t, 0.25, 2.0)
    torch.testing.assert_close(got.detach(), want)
    (g,) = torch.autograd.grad(got.sum(), x)
    assert torch.isfinite(g).all() and g[0] == 0 and g[1] == 0  # no gradient through the clamp


def test_ce_based_losses_gradcheck_through_the_fast_path():
    # weight and alpha enter outside the cross-entropy path, so their gradients flow too
    gen = _gen(73)
    x = torch.randn(6, K, generator=gen, dtype=D, requires_grad=True)
    y = torch.randint(0, K, (6,), generator=gen)
    w = (torch.rand(K, generator=gen, dtype=D) + 0.5).requires_grad_(True)
    a = (torch.rand(K, generator=gen, dtype=D) + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z, w, a: LF.softmax_focal_loss(z, y, gamma=1.5, weight=w, alpha=a), (x, w, a))
    assert torch.autograd.gradcheck(
        lambda z: LF.poly1_cross_entropy(z, y, epsilon=0.7, reduction="none"), (x,))
