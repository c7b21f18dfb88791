"""Classification losses: float64 references (tests/reference/classification_ref.py), PyTorch
parity over the option grid, peers (torchvision's formula, Keras, optax), edge cases."""

# The lambdas built inside loops below are called at once, inside the same iteration.
# ruff: noqa: B023

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from tests.reference import classification_ref as ref

import losskit
import losskit.functional as LF
import losskit.nn as LN
from losskit._core.checks import LossInputError, set_debug

D = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-10}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(*shape: int, seed: int = 0, dtype: torch.dtype = D, scale: float = 2.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=_gen(seed), dtype=D) * scale).to(dtype)


def _labels(*shape: int, classes: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, classes, shape, generator=_gen(seed))


def _value_and_grad(fn, x: torch.Tensor, reduction: str, seed: int = 5):
    """Loss and d(Σ g·loss)/dx with a non-uniform g for reduction='none'."""
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    g = torch.rand(out.shape, generator=_gen(seed), dtype=out.dtype) + 0.5 if out.ndim else 1.0
    (out * g).sum().backward()
    return out.detach(), x.grad


def _assert_same(fn_a, fn_b, x, reduction="mean", **tol):
    va, ga = _value_and_grad(fn_a, x, reduction)
    vb, gb = _value_and_grad(fn_b, x, reduction)
    tol = tol or TOL
    torch.testing.assert_close(va, vb, **tol)
    torch.testing.assert_close(ga, gb, **tol)


def _flat(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1) if v.ndim else v


def _to_rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *) → (P, C) positions in row-major order of the non-class dims."""
    return x.movedim(1, -1).reshape(-1, x.shape[1])


# --------------------------------------------------------------------------- cross_entropy

WEIGHT = torch.tensor([0.3, 1.0, 2.0, 0.7], dtype=D)

GRID = [
    c for c in itertools.product(
        (False, True),                 # weight
        (False, True),                 # some targets ignored
        (0.0, 0.2),                    # label smoothing
        ("none", "mean", "sum"),
        ("2d", "4d"),
        (False, True),                 # probability targets
    )
    if not (c[1] and c[5])             # ignore_index does not apply to probability targets
]


def _ce_case(weighted, ignored, layout, probs):
    shape = (6, 4) if layout == "2d" else (2, 4, 3, 2)
    x = _logits(*shape, seed=3)
    if probs:
        target = torch.softmax(_logits(*shape, seed=4), 1)
    else:
        target = _labels(shape[0], *shape[2:], classes=4, seed=5)
        if ignored:
            target = target.clone()
            target.view(-1)[::3] = -100
    return x, target, (WEIGHT if weighted else None)


@pytest.mark.parametrize("weighted,ignored,eps,reduction,layout,probs", GRID)
def test_cross_entropy_equals_torch_over_the_grid(weighted, ignored, eps, reduction, layout, probs):
    x, target, w = _ce_case(weighted, ignored, layout, probs)
    kw = dict(weight=w, label_smoothing=eps, reduction=reduction)
    _assert_same(lambda z: LF.cross_entropy(z, target, **kw),
                 lambda z: F.cross_entropy(z, target, **kw), x, reduction)
    if reduction != "mean":
        return
    # float32 to 1e-6 as well
    _assert_same(lambda z: LF.cross_entropy(z, target if not probs else target.float(),
                                            **{**kw, "weight": None if w is None else w.float()}),
                 lambda z: F.cross_entropy(z, target if not probs else target.float(),
                                           **{**kw, "weight": None if w is None else w.float()}),
                 x.float(), reduction, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_equals_float64_reference(eps, weighted):
    x = _logits(2, 4, 3, seed=7)
    y = _labels(2, 3, classes=4, seed=8)
    y[0, 1] = -100
    w = WEIGHT if weighted else None
    for reduction in ("none", "mean", "sum"):
        _assert_same(
            lambda z: _flat(LF.cross_entropy(z, y, weight=w, label_smoothing=eps, reduction=reduction)),
            lambda z: ref.cross_entropy(_to_rows(z), y.reshape(-1), w, -100, eps, reduction),
            x, reduction)
    t = torch.softmax(_logits(5, 4, seed=9), 1)
    x2 = _logits(5, 4, seed=10)
    _assert_same(lambda z: LF.soft_cross_entropy(z, t, weight=w, label_smoothing=eps),
                 lambda z: ref.cross_entropy(z, t, w, -100, eps, "mean"), x2)


def test_cross_entropy_weighted_mean_option_divides_by_the_count():
    x, y = _logits(8, 4, seed=11), _labels(8, classes=4, seed=12)
    y[2] = -100
    per = LF.cross_entropy(x, y, weight=WEIGHT, reduction="none")
    valid = y != -100
    torch.testing.assert_close(LF.cross_entropy(x, y, weight=WEIGHT, weighted_mean=False),
                               per.sum() / valid.sum(), **TOL)
    torch.testing.assert_close(LF.cross_entropy(x, y, weight=WEIGHT),            # PyTorch: Σ w[y]
                               per.sum() / WEIGHT[y[valid]].sum(), **TOL)
    torch.testing.assert_close(LF.nll_loss(torch.log_softmax(x, 1), y, weight=WEIGHT, weighted_mean=False),
                               per.sum() / valid.sum(), **TOL)


def test_cross_entropy_all_ignored_is_zero_with_zero_grad_or_nan():
    x = _logits(3, 4, seed=13).requires_grad_(True)
    y = torch.full((3,), -100)
    for kw in ({}, {"label_smoothing": 0.1}, {"weight": WEIGHT}):
        out = LF.cross_entropy(x, y, **kw)
        assert out.item() == 0.0
        (g,) = torch.autograd.grad(out, x)
        assert torch.equal(g, torch.zeros_like(g))
        assert torch.isnan(LF.cross_entropy(x, y, empty="nan", **kw))
        assert torch.isnan(F.cross_entropy(x, y, **kw))          # what PyTorch does
    assert LF.softmax_focal_loss(x, y).item() == 0.0
    for kw in ({}, {"weight": WEIGHT}):
        lp = torch.log_softmax(x, 1)
        out = LF.nll_loss(lp, y, **kw)      # PyTorch's kernel gives NaN here: taken again
        assert out.item() == 0.0
        assert torch.equal(torch.autograd.grad(out, x)[0], torch.zeros_like(x))
        assert torch.isnan(LF.nll_loss(lp, y, empty="nan", **kw))
        kept = torch.tensor([0, -100, 3])
        bad = lp.detach().clone()
        bad[0, 0] = float("nan")
        assert torch.isnan(LF.nll_loss(bad, kept, **kw))   # a NaN input stays NaN
        assert LF.nll_loss(bad, torch.tensor([1, -100, 3]), **kw).isfinite()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_small_cpu_cross_entropy_is_pytorchs_call_where_that_is_this_loss(reduction):
    """Below 2**18 CPU logits the plain reductions are F.cross_entropy's own numbers (bit for
    bit) and its saved log-softmax; what PyTorch gets wrong there still takes the low-memory
    path: an index out of range, an all-ignored mean, smoothing mass on a -inf class."""
    x = _logits(6, 5, seed=23).requires_grad_()
    y = torch.tensor([0, 4, -100, 2, 1, 3])
    for kw in ({}, {"weight": torch.tensor([0.3, 1.0, 2.0, 0.7, 1.5], dtype=D)}, {"label_smoothing": 0.2}):
        got = LF.cross_entropy(x, y, reduction=reduction, **kw)
        want = F.cross_entropy(x, y, reduction=reduction, **kw)
        assert torch.equal(got, want)
        g = torch.rand_like(got)
        assert torch.equal(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])
    xf = x.detach().float().requires_grad_()
    kept = []

    def pack(t):
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        LF.cross_entropy(xf, y.clamp(min=0))
    # the (6, 5) log-softmax PyTorch keeps, a buffer other than the logits
    assert any(t.numel() == 30 and t.data_ptr() != xf.data_ptr() for t in kept)
    with pytest.raises(LossInputError, match="outside"):
        LF.cross_entropy(x, torch.tensor([0, 5, 1, 2, 1, 3]), reduction=reduction)
    masked = x.detach().clone()
    masked[0, 3] = float("-inf")
    assert torch.isfinite(LF.cross_entropy(masked, y, label_smoothing=0.1, reduction=reduction)).all()
    assert LF.cross_entropy(x, torch.full((6,), -100)).item() == 0.0


def test_cross_entropy_channels_last_and_unbatched():
    x = _logits(2, 3, 3, 5, seed=14)                          # (N, H, W, C)
    y = _labels(2, 3, 3, classes=5, seed=15)
    for eps in (0.0, 0.1):
        torch.testing.assert_close(
            LF.cross_entropy(x, y, class_dim=-1, label_smoothing=eps, reduction="none"),
            F.cross_entropy(x.movedim(-1, 1), y, label_smoothing=eps, reduction="none"), **TOL)
    x1, y1 = _logits(5, seed=16), torch.tensor(2)
    torch.testing.assert_close(LF.cross_entropy(x1, y1), F.cross_entropy(x1, y1), **TOL)
    assert LF.cross_entropy(x1, y1, reduction="none").shape == ()


def test_cross_entropy_sample_weight_mask_and_microbatch_normalizer():
    x, y = _logits(8, 4, seed=17), _labels(8, classes=4, seed=18)
    y[[1, 6]] = -100
    per = LF.cross_entropy(x, y, weight=WEIGHT, label_smoothing=0.1, reduction="none")
    s = torch.rand(8, generator=_gen(19), dtype=D) + 0.1
    m = torch.tensor([True, True, False, True, True, False, True, True])
    den = torch.where(y != -100, WEIGHT[y.clamp_min(0)], 0.0)
    got = LF.cross_entropy(x, y, weight=WEIGHT, label_smoothing=0.1, sample_weight=s, mask=m)
    torch.testing.assert_close(got, (s * per)[m].sum() / (s * den)[m].sum(), **TOL)
    # micro-batches with the global count add up to the full-batch mean (no class weights)
    full = LF.cross_entropy(x, y, label_smoothing=0.1)
    count = (y != -100).sum()
    parts = sum(LF.cross_entropy(x[h], y[h], label_smoothing=0.1, reduction="sum", normalizer=count)
                for h in (slice(0, 3), slice(3, 8)))
    torch.testing.assert_close(parts, full, **TOL)


def test_masked_logits_give_finite_values_and_gradients():
    """-inf-masked classes (PITFALLS 5): finite loss and gradient for every softmax loss, with
    and without smoothing, where PyTorch's smoothed loss is inf."""
    x = _logits(4, 5, seed=20)
    x[:, 3] = float("-inf")
    x[0, 1] = float("-inf")
    y = torch.tensor([0, 2, 4, 1])
    t = F.one_hot(y, 5).to(D)
    calls = {
        "ce": lambda z: LF.cross_entropy(z, y),
        "ce_smooth": lambda z: LF.cross_entropy(z, y, label_smoothing=0.1, weight=torch.ones(5, dtype=D)),
        "ce_probs": lambda z: LF.cross_entropy(z, t, label_smoothing=0.1),
        "soft_ce": lambda z: LF.soft_cross_entropy(z, t),
        "softmax_focal": lambda z: LF.softmax_focal_loss(z, y, gamma=2.0),
        "softmax_focal_half_gamma": lambda z: LF.softmax_focal_loss(z, y, gamma=0.5),
        "poly1": lambda z: LF.poly1_cross_entropy(z, y),
        "poly1_probs": lambda z: LF.poly1_cross_entropy(z, t),
    }
    for name, fn in calls.items():
        v, g = _value_and_grad(fn, x, "mean")
        assert torch.isfinite(v).all() and torch.isfinite(g).all(), name
        assert torch.equal(g[:, 3], torch.zeros(4, dtype=D)), name
    assert torch.isinf(F.cross_entropy(x, y, label_smoothing=0.1))  # PyTorch's value
    # the masked classes are simply absent: same value as dropping the column (no smoothing)
    keep = [0, 1, 2, 4]
    x2, y2 = x[1:, keep], torch.tensor([2, 3, 1])
    torch.testing.assert_close(LF.cross_entropy(x[1:], y[1:]), LF.cross_entropy(x2, y2), **TOL)
    torch.testing.assert_close(LF.softmax_focal_loss(x[1:], y[1:]), LF.softmax_focal_loss(x2, y2), **TOL)


def test_infinite_logits_with_a_zero_target_weight_are_finite():
    """A -inf logit with target 0 (or +inf with target 1) costs 0 with a zero gradient in the
    sigmoid losses, and an infinite wrong-class score does not poison the margin losses."""
    x = _logits(3, 4, seed=60)
    x[0, 1], x[2, 3] = float("-inf"), float("inf")
    t = torch.zeros(3, 4, dtype=D)
    t[2, 3] = 1.0
    pm = 2 * t - 1
    lists = torch.tensor([[0, -1, 0, 0], [2, 0, -1, 0], [3, -1, 0, 0]])
    calls = {
        "bce_with_logits": lambda z: LF.binary_cross_entropy_with_logits(
            z, t, pos_weight=torch.ones(4, dtype=D)),
        "sigmoid_focal": lambda z: LF.sigmoid_focal_loss(z, t),
        "sigmoid_focal_gamma_half": lambda z: LF.sigmoid_focal_loss(z, t, gamma=0.5),
        "multilabel_soft_margin": lambda z: LF.multilabel_soft_margin_loss(z, t),
        "hinge": lambda z: LF.hinge_loss(z, pm),
        "soft_margin": lambda z: LF.soft_margin_loss(z, pm),
        "multiclass_hinge": lambda z: LF.multiclass_hinge_loss(z, torch.tensor([0, 2, 3])),
        "multi_margin": lambda z: LF.multi_margin_loss(z, torch.tensor([0, 2, 3])),
        "multilabel_margin": lambda z: LF.multilabel_margin_loss(z, lists),
    }
    for name, fn in calls.items():
        v, g = _value_and_grad(fn, x, "mean")
        assert torch.isfinite(v).all() and torch.isfinite(g).all(), name
    finite = x.clone()
    finite[0, 1], finite[2, 3] = -50.0, 50.0
    torch.testing.assert_close(LF.binary_cross_entropy_with_logits(x, t),
                               LF.binary_cross_entropy_with_logits(finite, t), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weighted_bce_clamps_only_where_a_logit_is_beyond_the_bound(reduction):
    """The ±sqrt(max) clamp is skipped when every logit is within it (one aminmax instead of a
    pass and a saved mask): the same numbers as PyTorch's kernel there (small CPU inputs take it
    without weights too); a finite logit beyond it still costs the clamped value with no
    gradient, as the unweighted C kernel gives."""
    gen = torch.Generator().manual_seed(61)
    x = torch.randn(6, 5, generator=gen)
    t = (torch.rand(6, 5, generator=gen) < 0.4).float()
    w, pw = torch.rand(5, generator=gen) + 0.5, torch.rand(5, generator=gen) + 0.5
    for z, opts in itertools.product((x, x.double()), ({}, {"weight": w, "pos_weight": pw})):
        opts = {k: v.to(z.dtype) for k, v in opts.items()}
        zs = z.clone().requires_grad_()
        got = LF.binary_cross_entropy_with_logits(zs, t.to(z.dtype), reduction=reduction, **opts)
        zt = z.clone().requires_grad_()
        want = F.binary_cross_entropy_with_logits(zt, t.to(z.dtype), reduction=reduction, **opts)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        g = torch.rand_like(got)
        torch.testing.assert_close(torch.autograd.grad(got, zs, g)[0], torch.autograd.grad(want, zt, g)[0],
                                   rtol=0, atol=0)
    bound = math.sqrt(torch.finfo(torch.float32).max)
    far = x.clone()
    far[1, 2], far[3, 0] = 1e30, -1e30
    t[1, 2], t[3, 0] = 0.0, 1.0
    zs = far.clone().requires_grad_()
    per = LF.binary_cross_entropy_with_logits(zs, t, weight=w, pos_weight=pw, reduction="none")
    (gz,) = torch.autograd.grad(per.sum(), zs)
    assert per[1, 2].item() == pytest.approx(w[2].item() * bound, rel=1e-6)
    assert per[3, 0].item() == pytest.approx(w[0].item() * pw[0].item() * bound, rel=1e-6)
    assert gz[1, 2] == 0 and gz[3, 0] == 0
    clamped = F.binary_cross_entropy_with_logits(far.clamp(-bound, bound), t, weight=w, pos_weight=pw,
                                                 reduction="none")
    torch.testing.assert_close(per, clamped, rtol=0, atol=0)


EXTREME_CALLS = {
    "cross_entropy": lambda z, y, b, pm: LF.cross_entropy(z, y, label_smoothing=0.1),
    "soft_cross_entropy": lambda z, y, b, pm: LF.soft_cross_entropy(z, F.one_hot(y, 5).to(z.dtype)),
    "nll": lambda z, y, b, pm: LF.nll_loss(torch.log_softmax(z, 1), y),
    "bce_with_logits": lambda z, y, b, pm: LF.binary_cross_entropy_with_logits(
        z, b, pos_weight=torch.full((5,), 3.0, dtype=z.dtype)),
    "bce": lambda z, y, b, pm: LF.binary_cross_entropy(torch.sigmoid(z), b),
    "sigmoid_focal": lambda z, y, b, pm: LF.sigmoid_focal_loss(z, b),
    "sigmoid_focal_gamma_half": lambda z, y, b, pm: LF.sigmoid_focal_loss(z, b * 0.9, gamma=0.5),
    "softmax_focal": lambda z, y, b, pm: LF.softmax_focal_loss(z, y, alpha=torch.ones(5, dtype=z.dtype)),
    "poly1": lambda z, y, b, pm: LF.poly1_cross_entropy(z, y),
    "hinge": lambda z, y, b, pm: LF.hinge_loss(z, pm),
    "squared_hinge": lambda z, y, b, pm: LF.squared_hinge_loss(z, pm),
    "multiclass_hinge": lambda z, y, b, pm: LF.multiclass_hinge_loss(z, y),
    "multi_margin": lambda z, y, b, pm: LF.multi_margin_loss(z, y, p=2),
    "soft_margin": lambda z, y, b, pm: LF.soft_margin_loss(z, pm),
    "multilabel_soft_margin": lambda z, y, b, pm: LF.multilabel_soft_margin_loss(z, b),
    "multilabel_margin": lambda z, y, b, pm: LF.multilabel_margin_loss(
        z, torch.tensor([[1, 2, -1, 0, 0]] * 4)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(EXTREME_CALLS))
def test_logits_of_1e4_give_finite_values_and_gradients(name, dtype):
    x = (torch.tensor([[1.0, -1.0, 0.5, -0.5, 0.0]] * 4, dtype=D) * 1e4).to(dtype)
    x[1] = -x[1]
    y = torch.tensor([0, 0, 2, 4])
    b = (torch.arange(20).reshape(4, 5) % 2).to(dtype)
    pm = 2 * b - 1
    v, g = _value_and_grad(lambda z: EXTREME_CALLS[name](z, y, b, pm), x, "mean")
    assert torch.isfinite(v).all() and torch.isfinite(g).all()


def test_cross_entropy_rejects_ambiguous_targets():
    x = _logits(4, 3)
    with pytest.raises(LossInputError, match="class_dim"):
        LF.cross_entropy(x, torch.zeros(4, 3, dtype=torch.long))      # indices of the input's shape
    with pytest.raises(LossInputError, match="shape"):
        LF.cross_entropy(x, torch.rand(4, dtype=D))                   # float target must be probs
    with pytest.raises(LossInputError, match="weight"):
        LF.cross_entropy(x, torch.zeros(4, dtype=torch.long), weight=torch.ones(4, dtype=D))
    with pytest.raises(LossInputError, match="ignore_index"):
        LF.cross_entropy(x, torch.softmax(x, 1), ignore_index=0)


def test_aliases_resolve():
    assert losskit.get_spec("sparse_categorical_cross_entropy").fn is LF.cross_entropy
    assert losskit.get_spec("log_loss").fn is LF.cross_entropy
    assert losskit.get_spec("categorical_cross_entropy").fn is LF.soft_cross_entropy
    assert LF.sparse_categorical_cross_entropy is LF.cross_entropy
    assert LF.categorical_cross_entropy is LF.soft_cross_entropy
    assert losskit.get_spec("sigmoid_focal_loss").fn is LF.sigmoid_focal_loss
    assert isinstance(losskit.get("cross_entropy", label_smoothing=0.1), LN.CrossEntropyLoss)


def test_modules_store_tensor_options():
    x, y = _logits(6, 4), _labels(6, classes=4)
    mod = LN.CrossEntropyLoss(weight=WEIGHT, label_smoothing=0.1)
    torch.testing.assert_close(mod(x, y), F.cross_entropy(x, y, weight=WEIGHT, label_smoothing=0.1), **TOL)
    assert "weight" in dict(mod.named_buffers())


# --------------------------------------------------------------------------- nll / binary


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_loss_equals_torch(reduction):
    x = torch.log_softmax(_logits(2, 4, 3, seed=21), 1)
    y = _labels(2, 3, classes=4, seed=22)
    y[1, 0] = 2
    y[0, 2] = 2
    for kw in ({}, {"weight": WEIGHT}, {"weight": WEIGHT, "ignore_index": 2}):
        _assert_same(lambda z: LF.nll_loss(z, y, reduction=reduction, **kw),
                     lambda z: F.nll_loss(z, y, reduction=reduction, **kw), x, reduction)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_binary_cross_entropy_equals_torch_and_reference(reduction):
    p = torch.rand(4, 3, generator=_gen(23), dtype=D).clamp(0.01, 0.99)
    p[0, 0], p[1, 1] = 0.0, 1.0                                   # the −100 clamp
    t = (torch.rand(4, 3, generator=_gen(24), dtype=D) > 0.5).to(D)
    t[0, 0], t[1, 1] = 1.0, 0.0
    w = torch.tensor([0.5, 1.0, 2.0], dtype=D)
    for weight in (None, w):
        _assert_same(lambda z: LF.binary_cross_entropy(z, t, weight=weight, reduction=reduction),
                     lambda z: F.binary_cross_entropy(z, t, weight=weight, reduction=reduction), p, reduction)
        want = ref.binary_cross_entropy(p, t, weight, reduction)
        got = LF.binary_cross_entropy(p, t, weight=weight, reduction=reduction)
        torch.testing.assert_close(got, want, **TOL)
    assert LF.binary_cross_entropy(p, t, reduction="none")[0, 0].item() == 100.0


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_with_logits_equals_torch_and_reference(reduction):
    x = _logits(4, 3, seed=25)
    t = torch.rand(4, 3, generator=_gen(26), dtype=D)
    w = torch.tensor([0.5, 1.0, 2.0], dtype=D)
    pw = torch.tensor([3.0, 0.5, 1.5], dtype=D)
    for weight, pos_weight in itertools.product((None, w), (None, pw)):
        kw = dict(weight=weight, pos_weight=pos_weight, reduction=reduction)
        _assert_same(lambda z: LF.binary_cross_entropy_with_logits(z, t, **kw),
                     lambda z: F.binary_cross_entropy_with_logits(z, t, **kw), x, reduction)
        _assert_same(lambda z: LF.binary_cross_entropy_with_logits(z, t, **kw),
                     lambda z: ref.bce_with_logits(z, t, weight, pos_weight, reduction), x, reduction)


def test_pos_weight_follows_the_class_dim_and_rejects_a_wrong_length():
    """PITFALLS 28: pos_weight runs along an explicit class dim and is validated."""
    x = _logits(2, 3, 4, 4, seed=27)                         # (N, C, H, W)
    t = (torch.rand(2, 3, 4, 4, generator=_gen(28), dtype=D) > 0.5).to(D)
    pw = torch.tensor([1.0, 2.0, 4.0], dtype=D)
    got = LF.binary_cross_entropy_with_logits(x, t, pos_weight=pw, class_dim=1)
    want = F.binary_cross_entropy_with_logits(x, t, pos_weight=pw.reshape(3, 1, 1))
    torch.testing.assert_close(got, want, **TOL)
    with pytest.raises(LossInputError, match=r"pos_weight has shape \(3,\).*\(2, 3, 4, 4\).*4 classes"):
        LF.binary_cross_entropy_with_logits(x, t, pos_weight=pw)          # default class_dim=-1
    with pytest.raises(LossInputError, match="pos_weight"):
        LF.binary_cross_entropy_with_logits(_logits(4, 3), torch.zeros(4, 3, dtype=D),
                                            pos_weight=torch.ones(4, dtype=D))


# --------------------------------------------------------------------------- focal


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (None, 2.0), (0.7, 0.5), (0.25, 0.0), (None, 3.0)])
def test_sigmoid_focal_equals_paper_and_torchvision_formula(alpha, gamma):
    x = _logits(4, 3, seed=29)
    for t in ((torch.rand(4, 3, generator=_gen(30), dtype=D) > 0.5).to(D),
              torch.rand(4, 3, generator=_gen(31), dtype=D)):
        for reduction in ("none", "mean", "sum"):
            _assert_same(lambda z: LF.sigmoid_focal_loss(z, t, alpha=alpha, gamma=gamma, reduction=reduction),
                         lambda z: ref.torchvision_sigmoid_focal_loss(
                             z, t, -1.0 if alpha is None else alpha, gamma, reduction), x, reduction)
        _assert_same(lambda z: LF.sigmoid_focal_loss(z, t, alpha=alpha, gamma=gamma, reduction="none"),
                     lambda z: ref.sigmoid_focal_paper(z, t, alpha, gamma), x, "none")
    # torchvision's alpha = -1 disables the weighting here too
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, t, alpha=-1.0, gamma=gamma),
                               LF.sigmoid_focal_loss(x, t, alpha=None, gamma=gamma), **TOL)


def test_sigmoid_focal_gamma_zero_is_bce_with_logits():
    x = _logits(5, 4, seed=32)
    t = (torch.rand(5, 4, generator=_gen(33), dtype=D) > 0.5).to(D)
    x[0, 0] = 1e4
    t[0, 0] = 1.0                                             # p_t = 1: 0**0 must be 1, no NaN grad
    for reduction in ("none", "mean"):
        _assert_same(lambda z: LF.sigmoid_focal_loss(z, t, alpha=None, gamma=0.0, reduction=reduction),
                     lambda z: LF.binary_cross_entropy_with_logits(z, t, reduction=reduction), x, reduction)


@pytest.mark.parametrize("alpha", [None, "tensor"])
@pytest.mark.parametrize("gamma", [0.0, 2.0, 0.5])
def test_softmax_focal_equals_reference(alpha, gamma):
    x, y = _logits(6, 4, seed=34), _labels(6, classes=4, seed=35)
    y[2] = -100
    a = torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=D) if alpha else None
    for reduction in ("none", "mean", "sum"):
        for w in (None, WEIGHT):
            _assert_same(lambda z: LF.softmax_focal_loss(z, y, gamma=gamma, alpha=a, weight=w,
                                                         reduction=reduction),
                         lambda z: ref.softmax_focal(z, y, gamma, a, w, -100, reduction), x, reduction)


def test_softmax_focal_gamma_zero_is_cross_entropy_and_scalar_alpha_raises():
    x, y = _logits(2, 4, 3, seed=36), _labels(2, 3, classes=4, seed=37)
    y[0, 0] = -100
    for reduction in ("none", "mean", "sum"):
        _assert_same(lambda z: LF.softmax_focal_loss(z, y, gamma=0.0, weight=WEIGHT, reduction=reduction),
                     lambda z: LF.cross_entropy(z, y, weight=WEIGHT, reduction=reduction), x, reduction)
    with pytest.raises(LossInputError, match="per-class"):
        LF.softmax_focal_loss(x, y, alpha=0.25)
    with pytest.raises(LossInputError, match="per-class"):
        LF.softmax_focal_loss(x, y, alpha=torch.tensor(0.25))


# --------------------------------------------------------------------------- poly / hinge / margin


@pytest.mark.parametrize("epsilon", [1.0, -1.0, 2.5])
def test_poly1_equals_reference(epsilon):
    x, y = _logits(6, 4, seed=38), _labels(6, classes=4, seed=39)
    for reduction in ("none", "mean", "sum"):
        _assert_same(lambda z: LF.poly1_cross_entropy(z, y, epsilon=epsilon, reduction=reduction),
                     lambda z: ref.poly1(z, y, epsilon, reduction), x, reduction)
    t = F.one_hot(y, 4).to(D)
    _assert_same(lambda z: LF.poly1_cross_entropy(z, t, epsilon=epsilon),
                 lambda z: LF.poly1_cross_entropy(z, y, epsilon=epsilon), x)
    torch.testing.assert_close(LF.poly1_cross_entropy(x, y, epsilon=0.0), LF.cross_entropy(x, y), **TOL)


def test_hinge_losses_equal_reference_and_label_kinds():
    x = _logits(4, 3, seed=40)
    y01 = (torch.rand(4, 3, generator=_gen(41)) > 0.5).to(D)
    pm = 2 * y01 - 1
    for reduction in ("none", "mean", "sum"):
        _assert_same(lambda z: LF.hinge_loss(z, pm, reduction=reduction),
                     lambda z: ref.hinge(z, pm, False, reduction), x, reduction)
        _assert_same(lambda z: LF.squared_hinge_loss(z, pm, reduction=reduction),
                     lambda z: ref.hinge(z, pm, True, reduction), x, reduction)
        _assert_same(lambda z: LF.soft_margin_loss(z, pm, reduction=reduction),
                     lambda z: ref.soft_margin(z, pm, reduction), x, reduction)
    torch.testing.assert_close(LF.hinge_loss(x, y01, target_kind="01"), LF.hinge_loss(x, pm), **TOL)
    torch.testing.assert_close(LF.squared_hinge_loss(x, y01.long(), target_kind="01"),
                               LF.squared_hinge_loss(x, pm), **TOL)
    with pytest.raises(LossInputError, match="target_kind"):
        LF.hinge_loss(x, pm, target_kind="auto")


def test_multiclass_hinge_equals_crammer_singer():
    x, y = _logits(6, 4, seed=42), _labels(6, classes=4, seed=43)
    for reduction in ("none", "mean", "sum"):
        _assert_same(lambda z: LF.multiclass_hinge_loss(z, y, reduction=reduction),
                     lambda z: ref.crammer_singer(z, y, reduction), x, reduction)
    torch.testing.assert_close(LF.multiclass_hinge_loss(x, F.one_hot(y, 4).to(D)),
                               LF.multiclass_hinge_loss(x, y), **TOL)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_margin_losses_equal_torch(reduction):
    x, y = _logits(5, 4, seed=44), _labels(5, classes=4, seed=45)
    for p, margin, w in itertools.product((1, 2), (1.0, 0.5), (None, WEIGHT)):
        kw = dict(p=p, margin=margin, weight=w, reduction=reduction)
        _assert_same(lambda z: LF.multi_margin_loss(z, y, **kw),
                     lambda z: F.multi_margin_loss(z, y, **kw), x, reduction)
        _assert_same(lambda z: LF.multi_margin_loss(z, y, **kw),
                     lambda z: ref.multi_margin(z, y, p, margin, w, reduction), x, reduction)
    pm = torch.where(torch.rand(5, 4, generator=_gen(46)) > 0.5, 1.0, -1.0).to(D)
    _assert_same(lambda z: LF.soft_margin_loss(z, pm, reduction=reduction),
                 lambda z: F.soft_margin_loss(z, pm, reduction=reduction), x, reduction)
    t = (pm > 0).to(D)
    for w in (None, WEIGHT):
        _assert_same(lambda z: LF.multilabel_soft_margin_loss(z, t, weight=w, reduction=reduction),
                     lambda z: F.multilabel_soft_margin_loss(z, t, weight=w, reduction=reduction),
                     x, reduction)
        _assert_same(lambda z: LF.multilabel_soft_margin_loss(z, t, weight=w, reduction=reduction),
                     lambda z: ref.multilabel_soft_margin(z, t, w, reduction), x, reduction)
    lists = torch.tensor([[3, 0, -1, 1], [1, -1, 2, 2], [0, 1, 2, 3], [-1, 0, 0, 0], [2, 2, -1, -1]])
    _assert_same(lambda z: LF.multilabel_margin_loss(z, lists, reduction=reduction),
                 lambda z: F.multilabel_margin_loss(z, lists, reduction=reduction), x, reduction)
    _assert_same(lambda z: LF.multilabel_margin_loss(z, lists, reduction=reduction),
                 lambda z: ref.multilabel_margin(z, lists, reduction), x, reduction)


def test_multilabel_margin_keeps_no_pairs_and_differentiates_twice() -> None:
    # the eager path runs PyTorch's kernels (label lists, not (N, C, C) pairs): it saves the scores,
    # the lists and a label mask, and its gradient with create_graph comes from the composed form
    from losskit.bench.harness import saved_bytes

    gen = _gen(49)
    x = torch.randn(16, 300, generator=gen, dtype=D)
    x[0, 5] = -float("inf")                         # a non-label scored -inf: no margin term
    lists = torch.full((16, 300), -1)
    lists[:, :3] = torch.randint(0, 300, (16, 3), generator=gen)
    lists[0, :3] = torch.tensor([7, 7, 9])          # a label listed twice counts twice
    assert saved_bytes(lambda z: LF.multilabel_margin_loss(z, lists), [x.requires_grad_()]) \
        <= 3 * x.numel() * 8
    xg = x.detach().requires_grad_()
    (g1,) = torch.autograd.grad(LF.multilabel_margin_loss(xg, lists), xg)
    (g2,) = torch.autograd.grad(LF.multilabel_margin_loss(xg, lists), xg, create_graph=True)
    torch.testing.assert_close(g2.detach(), g1)
    (gg,) = torch.autograd.grad(g2.square().sum(), xg)   # piecewise linear: no curvature
    assert torch.equal(gg, torch.zeros_like(gg))
    want = ref.multilabel_margin(x.detach(), lists, "mean")
    torch.testing.assert_close(LF.multilabel_margin_loss(x.detach(), lists), torch.as_tensor(want, dtype=D))


def test_gradcheck_with_options():
    x = _logits(2, 4, 2, seed=47).requires_grad_(True)
    y = _labels(2, 2, classes=4, seed=48)
    y[0, 0] = -100
    t = torch.rand(2, 4, 2, generator=_gen(49), dtype=D)
    a = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=D)
    fns = [
        lambda z: LF.cross_entropy(z, y, weight=WEIGHT, label_smoothing=0.2),
        lambda z: LF.softmax_focal_loss(z, y, gamma=1.5, alpha=a, weight=WEIGHT),
        lambda z: LF.sigmoid_focal_loss(z, t, alpha=0.3, gamma=1.5),
        lambda z: LF.binary_cross_entropy_with_logits(z, t, pos_weight=a, class_dim=1),
        lambda z: LF.poly1_cross_entropy(z, y, epsilon=2.0),
    ]
    for i, fn in enumerate(fns):
        assert torch.autograd.gradcheck(fn, (x,))
        if i < 2:  # the contract gradgradchecks every loss at its defaults
            assert torch.autograd.gradgradcheck(fn, (x,))


# --------------------------------------------------------------------------- peers


def _optax():
    pytest.importorskip("optax")
    import jax

    jax.config.update("jax_enable_x64", False)
    import jax.numpy as jnp
    import optax

    return jax, jnp, optax


def _grad_jax(jax, jnp, f, x):
    v, g = jax.value_and_grad(lambda z: f(z).sum())(jnp.asarray(x.numpy()))
    return torch.tensor(float(v)), torch.from_numpy(__import__("numpy").asarray(g))


def test_optax_agrees():
    jax, jnp, optax = _optax()
    import numpy as np

    x = _logits(6, 4, seed=50, dtype=torch.float32)
    y = _labels(6, classes=4, seed=51)
    t = (torch.rand(6, 4, generator=_gen(52)) > 0.5).float()
    pm = 2 * t - 1
    onehot = F.one_hot(y, 4).float()
    jt, jpm, jy, jonehot = (jnp.asarray(a.numpy()) for a in (t, pm, y, onehot))
    cases = [
        (lambda z: LF.sigmoid_focal_loss(z, t, alpha=0.25, gamma=2.0, reduction="sum"),
         lambda z: optax.losses.sigmoid_focal_loss(z, jt, alpha=0.25, gamma=2.0)),
        (lambda z: LF.sigmoid_focal_loss(z, t, alpha=None, gamma=1.0, reduction="sum"),
         lambda z: optax.losses.sigmoid_focal_loss(z, jt, gamma=1.0)),
        (lambda z: LF.poly1_cross_entropy(z, y, epsilon=1.5, reduction="sum"),
         lambda z: optax.losses.poly_loss_cross_entropy(z, jonehot, epsilon=1.5)),
        (lambda z: LF.multiclass_hinge_loss(z, y, reduction="sum"),
         lambda z: optax.losses.multiclass_hinge_loss(z, jy)),
        (lambda z: LF.hinge_loss(z, pm, reduction="sum"),
         lambda z: optax.losses.hinge_loss(z, jpm)),
    ]
    # one jit for every case: compiling op by op costs more than the whole comparison
    theirs = jax.jit(lambda z: [jax.value_and_grad(lambda u, f=f: f(u).sum())(z) for _, f in cases])
    for (ours, _), (tv, tg) in zip(cases, theirs(jnp.asarray(x.numpy()))):
        v, g = _value_and_grad(ours, x, "sum")
        torch.testing.assert_close(v, torch.tensor(float(tv)), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(g, torch.from_numpy(np.asarray(tg)), rtol=1e-6, atol=1e-6)


def _keras():
    pytest.importorskip("keras")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("Keras is not on the torch backend")
    return keras


def test_keras_agrees():
    keras = _keras()
    x = _logits(6, 4, seed=53, dtype=torch.float32, scale=1.0)
    y = _labels(6, classes=4, seed=54)
    t = (torch.rand(6, 4, generator=_gen(55)) > 0.5).float()
    pm = 2 * t - 1
    onehot = F.one_hot(y, 4).float()
    scores = torch.rand(6, 4, generator=_gen(56))                     # non-negative scores
    cases = [
        (lambda z: LF.sigmoid_focal_loss(z, t, alpha=0.25, gamma=2.0), x,
         keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0,
                                              from_logits=True), t),
        (lambda z: LF.sigmoid_focal_loss(z, t, alpha=None, gamma=1.5), x,
         keras.losses.BinaryFocalCrossentropy(gamma=1.5, from_logits=True), t),
        (lambda z: LF.softmax_focal_loss(z, y, gamma=2.0, alpha=torch.full((4,), 0.25)), x,
         keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, from_logits=True), onehot),
        (lambda z: LF.cross_entropy(z, y, label_smoothing=0.1), x,
         keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), onehot),
        (lambda z: LF.cross_entropy(z, y), x,
         keras.losses.SparseCategoricalCrossentropy(from_logits=True), y),
        (lambda z: LF.hinge_loss(z, pm), x, keras.losses.Hinge(), pm),
        (lambda z: LF.hinge_loss(z, t, target_kind="01"), x, keras.losses.Hinge(), t),
        (lambda z: LF.squared_hinge_loss(z, pm), x, keras.losses.SquaredHinge(), pm),
        (lambda z: LF.multiclass_hinge_loss(z, y), scores, keras.losses.CategoricalHinge(), onehot),
    ]
    for ours, inp, loss, target in cases:
        v, g = _value_and_grad(ours, inp, "mean")
        z = inp.detach().clone().requires_grad_(True)
        kv = loss(target, z)
        kv.backward()
        torch.testing.assert_close(v, kv.detach().float(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g, z.grad, rtol=1e-5, atol=1e-6)


def test_keras_categorical_hinge_differs_only_when_all_wrong_scores_are_negative():
    keras = _keras()
    x = torch.tensor([[0.5, -1.0, -2.0]])
    y = torch.tensor([0])
    ours = LF.multiclass_hinge_loss(x, y)              # Crammer–Singer: 1 + (-1) - 0.5 = 0
    theirs = keras.losses.CategoricalHinge()(F.one_hot(y, 3).float(), x)   # max includes 0: 0.5
    assert ours.item() == 0.0 and abs(float(theirs) - 0.5) < 1e-6


# --------------------------------------------------------------------------- debug mode


def test_debug_mode_checks():
    x, y = _logits(4, 3), torch.tensor([0, 1, 3, 2])
    set_debug(True)
    try:
        with pytest.raises(LossInputError, match=r"outside \[0, 3\)"):
            LF.cross_entropy(x, y)
        with pytest.raises(LossInputError, match=r"outside \[0, 3\)"):
            LF.softmax_focal_loss(x, y)
        LF.cross_entropy(x, torch.tensor([0, 1, -100, 2]))           # ignore_index is allowed
        with pytest.warns(UserWarning, match="logits"):
            LF.cross_entropy(torch.softmax(x, 1), torch.tensor([0, 1, 2, 2]))
        with pytest.warns(UserWarning, match="logits"):
            LF.binary_cross_entropy_with_logits(torch.rand(4, 3, dtype=D), torch.zeros(4, 3, dtype=D))
        with pytest.raises(LossInputError, match=r"probabilities in \[0, 1\]"):
            LF.binary_cross_entropy(x, torch.zeros(4, 3, dtype=D))
        with pytest.raises(LossInputError, match="target_kind"):
            LF.hinge_loss(x, torch.zeros(4, 3, dtype=D))             # {0,1} labels with pm1
    finally:
        set_debug(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LF.cross_entropy(torch.softmax(x, 1), torch.tensor([0, 1, 2, 2]))   # no data reads by default


@pytest.mark.parametrize("name", [s.name for f in ("classification", "imbalance")
                                  for s in losskit.catalog(family=f)])
def test_default_path_never_reads_tensor_data_on_the_host(name: str) -> None:
    # On a device tensor any .item()/float()/bool() is a host sync; meta tensors have no data
    # and raise on every such read, so forward+backward on them shows the default path has none.
    spec = losskit.get_spec(name)
    sample = spec.sample(torch.Generator().manual_seed(0))
    args = [a.detach().to("meta").requires_grad_(i in sample.grad) if isinstance(a, torch.Tensor) else a
            for i, a in enumerate(sample.args)]
    kwargs = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in sample.kwargs.items()}
    out = spec.fn(*args, **kwargs)
    assert out.device.type == "meta"
    out.sum().backward()
    assert all(a.grad is not None for i, a in enumerate(args) if i in sample.grad)


def test_channels_last_equals_channels_first_for_every_class_dim_loss():
    x = _logits(2, 3, 4, seed=61)                                      # (N, L, C)
    y = _labels(2, 3, classes=4, seed=62)
    t = torch.softmax(_logits(2, 3, 4, seed=63), -1)
    first = x.movedim(-1, 1)
    a = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=D)
    pairs = [
        (lambda z, **k: LF.softmax_focal_loss(z, y, alpha=a, reduction="none", **k), x),
        (lambda z, **k: LF.poly1_cross_entropy(z, y, reduction="none", **k), x),
        (lambda z, **k: LF.multiclass_hinge_loss(z, y, reduction="none", **k), x),
        (lambda z, **k: LF.nll_loss(torch.log_softmax(z, 1 if not k else -1), y, reduction="none", **k), x),
        (lambda z, **k: LF.soft_cross_entropy(z, t if k else t.movedim(-1, 1), reduction="none", **k), x),
    ]
    for fn, z in pairs:
        torch.testing.assert_close(fn(z, class_dim=-1), fn(first), **TOL)
    # per-sample weights (N,) on an (N, L) unreduced loss weight whole samples
    s = torch.tensor([1.0, 3.0], dtype=D)
    per = LF.cross_entropy(first, y, reduction="none")
    torch.testing.assert_close(LF.cross_entropy(first, y, sample_weight=s),
                               (per * s[:, None]).sum() / (3 * s.sum()), **TOL)
