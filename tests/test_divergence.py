"""Divergences: float64 references (values and gradients), peers (PyTorch, SciPy, Keras,
optax, kornia), KL "mean" vs "batchmean" (PITFALLS 9), 0·log 0 and −inf logits (PITFALLS 5)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit
from losskit._core.checks import LossInputError
from losskit.losses.divergence import (
    CosineDistanceLoss,
    KLDivLoss,
    cosine_distance_loss,
    cosine_similarity_loss,
    js_divergence,
    kl_div,
    kl_divergence_with_logits,
    mmd_loss,
    sinkhorn_loss,
    wasserstein_1d_loss,
)
from reference import divergence_ref as ref


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(seed: int, shape: tuple[int, ...] = (5, 6)) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64),
            torch.randn(shape, generator=g, dtype=torch.float64))


def _grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = fn(x)
    out.backward()
    return out.detach(), x.grad


# ----------------------------------------------------------------------------- kl_div


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_reference_with_zero_targets(log_target: bool) -> None:
    x, y = _logits(0)
    inp = x.log_softmax(-1)
    tgt = y.softmax(-1)
    tgt[0, 2] = 0.0  # 0·log 0 = 0
    tgt_arg = tgt.log() if log_target else tgt
    want, want_grad = ref.kl_div_terms(inp.numpy(), tgt_arg.numpy(), log_target)
    got, grad = _grad(lambda v: kl_div(v, tgt_arg, log_target=log_target, reduction="sum"), inp)
    np.testing.assert_allclose(got.item(), want.sum(), rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-10, atol=1e-12)
    none = kl_div(inp, tgt_arg, log_target=log_target, reduction="none")
    np.testing.assert_allclose(none.numpy(), want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_equals_torch(reduction: str, log_target: bool) -> None:
    x, y = _logits(1)
    inp, tgt = x.float().log_softmax(-1), y.float().softmax(-1)
    if log_target:
        tgt = tgt.log()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = kl_div(inp, tgt, reduction=reduction, log_target=log_target)
        theirs = F.kl_div(inp, tgt, reduction=reduction, log_target=log_target)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_kl_div_mean_warns_and_batchmean_is_the_kl() -> None:
    x, y = _logits(2)
    inp, tgt = x.log_softmax(-1), y.softmax(-1)
    with pytest.warns(UserWarning, match="batchmean"):
        mean = kl_div(inp, tgt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batchmean = kl_div(inp, tgt, reduction="batchmean")
    # batchmean = KL per sample (scipy's rel_entr summed over classes, averaged over rows);
    # mean = that / number of classes.
    rel = pytest.importorskip("scipy.special").rel_entr(tgt.numpy(), inp.exp().numpy())
    np.testing.assert_allclose(batchmean.item(), rel.sum(-1).mean(), rtol=1e-10)
    np.testing.assert_allclose(mean.item(), rel.sum(-1).mean() / x.shape[1], rtol=1e-10)


def test_kl_div_zero_target_gives_zero_and_finite_gradients_even_at_minus_inf_input() -> None:
    inp = torch.tensor([[0.0, -float("inf")]], requires_grad=True)
    tgt = torch.tensor([[1.0, 0.0]], requires_grad=True)
    out = kl_div(inp, tgt, reduction="batchmean")
    out.backward()
    assert out.item() == 0.0
    assert torch.isfinite(inp.grad).all() and torch.isfinite(tgt.grad).all()
    assert F.kl_div(inp.detach(), tgt.detach(), reduction="sum").isnan()  # PyTorch: 0·−inf


def test_debug_mode_warns_about_swapped_or_wrong_kind_inputs() -> None:
    x, y = _logits(20)
    losskit.set_debug(True)
    try:
        with pytest.warns(UserWarning, match="log-probabilities"):
            kl_div(x.softmax(-1), y.softmax(-1), reduction="batchmean")  # probs, not log-probs
        with pytest.warns(UserWarning, match="logits"):
            kl_divergence_with_logits(x.softmax(-1), y)
        with pytest.raises(LossInputError, match="probabilities"):
            kl_div(x.log_softmax(-1), y, reduction="batchmean")  # target is not probabilities
    finally:
        losskit.set_debug(False)


def test_kl_div_module_and_peers() -> None:
    x, y = _logits(3)
    inp, tgt = x.float().log_softmax(-1), y.float().softmax(-1)
    mod = KLDivLoss(reduction="batchmean")
    want = kl_div(inp, tgt, reduction="batchmean")
    torch.testing.assert_close(mod(inp, tgt), want)
    optax = pytest.importorskip("optax")
    np.testing.assert_allclose(np.asarray(optax.losses.kl_divergence(inp.numpy(), tgt.numpy())).mean(),
                               want.item(), rtol=1e-6)
    keras = pytest.importorskip("keras")
    theirs = keras.losses.KLDivergence()(tgt, inp.exp())
    np.testing.assert_allclose(float(theirs), want.item(), rtol=1e-6)


# ----------------------------------------------------------------------------- KL / JS with logits


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_kl_with_logits_matches_reference(temperature: float) -> None:
    x, y = _logits(4)
    want, want_grad = ref.kl_rows(x.numpy(), y.numpy(), temperature)
    got, grad = _grad(lambda v: kl_divergence_with_logits(v, y, temperature=temperature,
                                                          reduction="sum"), x)
    np.testing.assert_allclose(got.item(), want.sum(), rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-10, atol=1e-12)
    none = kl_divergence_with_logits(x, y, temperature=temperature, reduction="none")
    np.testing.assert_allclose(none.numpy(), want, rtol=1e-10)


def test_kl_with_logits_direction_dim_and_peers() -> None:
    x, y = _logits(5, (3, 4, 5))
    # KL(target || input) == torch kl_div(log p_input, log p_target, log_target) batchmean on 2-D
    x2, y2 = x[0].float(), y[0].float()
    torch.testing.assert_close(
        kl_divergence_with_logits(x2, y2),
        F.kl_div(x2.log_softmax(-1), y2.log_softmax(-1), reduction="batchmean", log_target=True),
        rtol=1e-6, atol=1e-7)
    assert not torch.isclose(kl_divergence_with_logits(x2, y2), kl_divergence_with_logits(y2, x2))
    # dim=1 on (3, 4, 5) == moving that dim last
    torch.testing.assert_close(kl_divergence_with_logits(x, y, dim=1, reduction="none"),
                               kl_divergence_with_logits(x.transpose(1, 2), y.transpose(1, 2),
                                                         reduction="none"))
    torch.testing.assert_close(kl_divergence_with_logits(x, y, reduction="batchmean"),
                               kl_divergence_with_logits(x, y, reduction="sum") / 3)
    # the reduced forms sum the terms at once: each must still reduce one KL per distribution,
    # whichever dimension holds the classes
    for d in (0, 1, -1):
        none = kl_divergence_with_logits(x, y, dim=d, reduction="none")
        torch.testing.assert_close(kl_divergence_with_logits(x, y, dim=d, reduction="batchmean"),
                                   none.sum() / none.shape[0])
        torch.testing.assert_close(kl_divergence_with_logits(x, y, dim=d, reduction="mean"), none.mean())
        torch.testing.assert_close(kl_divergence_with_logits(x, y, dim=d, reduction="sum"), none.sum())
    optax = pytest.importorskip("optax")
    theirs = optax.losses.kl_divergence_with_log_targets(x2.log_softmax(-1).numpy(),
                                                         y2.log_softmax(-1).numpy())
    np.testing.assert_allclose(kl_divergence_with_logits(x2, y2, reduction="none").numpy(),
                               np.asarray(theirs), rtol=1e-6, atol=1e-7)


def test_kl_with_logits_masked_classes_are_safe() -> None:
    x = torch.tensor([[1.0, 0.5, -float("inf")]], requires_grad=True)
    y = torch.tensor([[0.0, 2.0, -float("inf")]], requires_grad=True)
    out = kl_divergence_with_logits(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    want, _ = ref.kl_rows(np.array([[1.0, 0.5]]), np.array([[0.0, 2.0]]))
    np.testing.assert_allclose(out.item(), want.item(), rtol=1e-6)


def test_js_matches_reference_and_is_symmetric_and_bounded() -> None:
    x, y = _logits(6)
    want, want_grad = ref.js_rows(x.numpy(), y.numpy())
    got, grad = _grad(lambda v: js_divergence(v, y, reduction="sum"), x)
    np.testing.assert_allclose(got.item(), want.sum(), rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(js_divergence(x, y), js_divergence(y, x))
    far = torch.tensor([[500.0, -500.0]], dtype=torch.float64, requires_grad=True)
    out = js_divergence(far, -far.detach())
    out.backward()
    assert abs(out.item() - np.log(2)) < 1e-12 and torch.isfinite(far.grad).all()


def test_js_matches_kornia_heatmaps() -> None:
    kornia = pytest.importorskip("kornia")
    g = _gen(7)
    pred = torch.randn(2, 3, 4, 5, generator=g).flatten(2).softmax(-1).reshape(2, 3, 4, 5)
    target = torch.randn(2, 3, 4, 5, generator=g).flatten(2).softmax(-1).reshape(2, 3, 4, 5)
    # kornia: probability heatmaps, JS per (B, N) over H·W, mean over B·N.
    theirs = kornia.losses.js_div_loss_2d(pred, target)
    ours = js_divergence(pred.flatten(2).log(), target.flatten(2).log())
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- 1-D EMD


@pytest.mark.parametrize("p", [1, 2])
def test_wasserstein_1d_matches_reference(p: int) -> None:
    x, y = _logits(8)
    px, py = x.softmax(-1), y.softmax(-1)
    want, want_grad = ref.emd_rows(px.numpy(), py.numpy(), p)
    got, grad = _grad(lambda v: wasserstein_1d_loss(v, py, p=p, reduction="sum"), px)
    np.testing.assert_allclose(got.item(), want.sum(), rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-10, atol=1e-12)


def test_wasserstein_1d_equals_scipy_for_p1() -> None:
    stats = pytest.importorskip("scipy.stats")
    x, y = _logits(9)
    px, py = x.float().softmax(-1), y.float().softmax(-1)
    bins = np.arange(px.shape[1])
    want = [stats.wasserstein_distance(bins, bins, px[i].numpy(), py[i].numpy())
            for i in range(px.shape[0])]
    got = wasserstein_1d_loss(px, py, reduction="none")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-7)


def test_wasserstein_1d_rejects_other_p() -> None:
    x, y = _logits(10)
    with pytest.raises(LossInputError, match="p="):
        wasserstein_1d_loss(x.softmax(-1), y.softmax(-1), p=3)


# ----------------------------------------------------------------------------- cosine


def test_cosine_losses_match_reference_with_a_zero_vector() -> None:
    x, y = _logits(11)
    x[1] = 0.0
    for fn, eps, sign, offset in ((cosine_similarity_loss, 1e-7, -1.0, 0.0),
                                  (cosine_distance_loss, 1e-8, -1.0, 1.0)):
        cos, dcos = ref.cosine_rows(x.numpy(), y.numpy(), eps)
        got, grad = _grad(lambda v, fn=fn: fn(v, y, reduction="sum"), x)
        np.testing.assert_allclose(got.item(), (offset + sign * cos).sum(), rtol=1e-10)
        np.testing.assert_allclose(grad.numpy(), sign * dcos, rtol=1e-10, atol=1e-12)
        assert torch.isfinite(grad).all()


def test_cosine_similarity_matches_keras() -> None:
    keras = pytest.importorskip("keras")
    x, y = _logits(12)
    x, y = x.float(), y.float()
    y[0] = 0.0
    theirs = keras.losses.CosineSimilarity(axis=-1)(y, x)
    np.testing.assert_allclose(cosine_similarity_loss(x, y).item(), float(theirs), rtol=1e-6, atol=1e-7)
    theirs_axis0 = keras.losses.cosine_similarity(y, x, axis=0)
    np.testing.assert_allclose(cosine_similarity_loss(x, y, dim=0, reduction="none").numpy(),
                               np.asarray(theirs_axis0), rtol=1e-6, atol=1e-7)


def test_cosine_distance_matches_optax_with_epsilon() -> None:
    optax = pytest.importorskip("optax")
    x, y = _logits(13)
    x, y = x.float(), y.float()
    x[2] = 0.0
    e = 1e-6  # optax clamps the squared norm at epsilon: losskit's eps = sqrt(epsilon)
    theirs = optax.losses.cosine_distance(x.numpy(), y.numpy(), epsilon=e)
    ours = cosine_distance_loss(x, y, eps=e**0.5, reduction="none")
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs), rtol=1e-6, atol=1e-7)
    assert ours[2].item() == 1.0
    torch.testing.assert_close(CosineDistanceLoss(eps=e**0.5)(x, y), ours.mean())


# ----------------------------------------------------------------------------- MMD


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_matches_reference(unbiased: bool) -> None:
    g = _gen(14)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.3
    sig = (0.5, 1.0, 3.0)
    want, gx_want, gy_want = ref.mmd(x.numpy(), y.numpy(), sig, unbiased)
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    got = mmd_loss(xr, yr, bandwidths=sig, unbiased=unbiased)
    got.backward()
    np.testing.assert_allclose(got.item(), want, rtol=1e-10)
    np.testing.assert_allclose(xr.grad.numpy(), gx_want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(yr.grad.numpy(), gy_want, rtol=1e-9, atol=1e-12)


def test_mmd_batches_and_validation() -> None:
    g = _gen(15)
    x = torch.randn(3, 6, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    none = mmd_loss(x, y, reduction="none")
    assert none.shape == (3,)
    torch.testing.assert_close(none[1], mmd_loss(x[1], y[1]))
    torch.testing.assert_close(mmd_loss(x, y), none.mean())
    with pytest.raises(LossInputError, match=r"\(\*, n, d\)"):
        mmd_loss(x, y[..., :1])
    with pytest.raises(LossInputError, match="at least 2"):
        mmd_loss(x[:, :1], y)


# ----------------------------------------------------------------------------- Sinkhorn


def test_sinkhorn_matches_log_domain_reference_value_and_gradient() -> None:
    g = _gen(16)
    x = torch.randn(5, 2, generator=g, dtype=torch.float64)
    y = torch.randn(4, 2, generator=g, dtype=torch.float64)
    a = torch.tensor([0.1, 0.3, 0.2, 0.25, 0.15], dtype=torch.float64)
    for p in (1, 2):
        def f(xx: np.ndarray, p: int = p) -> float:
            return ref.sinkhorn(xx, y.numpy(), 0.3, 30, p, a=a.numpy())

        xr = x.clone().requires_grad_(True)
        got = sinkhorn_loss(xr, y, epsilon=0.3, n_iters=30, p=p, a=a)
        got.backward()
        np.testing.assert_allclose(got.item(), f(x.numpy()), rtol=1e-10)
        # gradient of the reference by central differences (step 1e-6)
        np.testing.assert_allclose(xr.grad.numpy(), ref.numerical_grad(f, x.numpy()),
                                   rtol=1e-6, atol=1e-8)


def test_sinkhorn_tends_to_exact_ot_for_small_epsilon() -> None:
    optimize = pytest.importorskip("scipy.optimize")
    g = _gen(17)
    x = torch.randn(6, 2, generator=g, dtype=torch.float64)
    y = torch.randn(6, 2, generator=g, dtype=torch.float64)
    cost = ((x[:, None] - y[None]) ** 2).sum(-1).numpy()
    rows, cols = optimize.linear_sum_assignment(cost)
    exact = cost[rows, cols].mean()  # uniform weights 1/n: a permutation is optimal
    got = sinkhorn_loss(x, y, epsilon=0.01, n_iters=500)
    assert abs(got.item() - exact) < 0.02 * exact
    loose = sinkhorn_loss(x, y, epsilon=1.0, n_iters=500)
    assert loose.item() > got.item()  # more entropy, a more spread (costlier) plan


def test_sinkhorn_debias_is_zero_on_identical_clouds_and_positive_otherwise() -> None:
    g = _gen(18)
    x = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    assert sinkhorn_loss(x, x, debias=True, epsilon=0.5, n_iters=50).item() == 0.0
    assert sinkhorn_loss(x, x + 1.0, debias=True, epsilon=0.5, n_iters=50).item() > 0.0
    assert sinkhorn_loss(x, x, epsilon=0.5, n_iters=50).item() > 0.0  # the entropic bias
    assert sinkhorn_loss(x, x + 1.0, reduction="none", epsilon=0.5, n_iters=50).shape == (2,)


def test_sinkhorn_marginal_b_is_exact_and_bad_weights_raise() -> None:
    g = _gen(19)
    x = torch.randn(4, 2, generator=g, dtype=torch.float64)
    with pytest.raises(LossInputError, match="a has shape"):
        sinkhorn_loss(x, x, a=torch.ones(3, dtype=torch.float64) / 3)
    with pytest.raises(LossInputError, match="n_iters"):
        sinkhorn_loss(x, x, n_iters=0)
    # a zero weight removes the point: moving it changes nothing
    a = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    base = sinkhorn_loss(x, x + 0.5, a=a, epsilon=0.2)
    moved = x.clone()
    moved[3] += 10.0
    torch.testing.assert_close(sinkhorn_loss(moved, x + 0.5, a=a, epsilon=0.2), base)
