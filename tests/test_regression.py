"""Regression losses: values and gradients against float64 references and the peers, plus the
behaviours the issue pins (shapes, weights, masks, normalizer, empty sets, extremes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit
import losskit.functional as LF
import losskit.nn as LN
from reference import regression_ref as ref

GEN = torch.Generator().manual_seed(1234)


def _data(shape=(7, 4), kind="real"):
    x = torch.randn(shape, generator=GEN, dtype=torch.float64)
    y = torch.randn(shape, generator=GEN, dtype=torch.float64)
    if kind == "positive":
        x, y = x.exp(), y.exp()
    elif kind == "count":
        y = torch.poisson(torch.full(shape, 3.0, dtype=torch.float64), generator=GEN)
    return x, y


def _value_and_grad(fn, x, *args, **kwargs):
    x = x.clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    out.backward()
    return out.detach(), x.grad


# (losskit function, reference, kwargs for losskit, kwargs for the reference, data kind)
CASES = [
    (LF.mse_loss, ref.mse, {}, {}, "real"),
    (LF.l1_loss, ref.l1, {}, {}, "real"),
    (LF.huber_loss, ref.huber, {"delta": 0.7}, {"delta": 0.7}, "real"),
    (LF.smooth_l1_loss, ref.smooth_l1, {"beta": 0.7}, {"beta": 0.7}, "real"),
    (LF.smooth_l1_loss, ref.smooth_l1, {"beta": 0.0}, {"beta": 0.0}, "real"),
    (LF.pseudo_huber_loss, ref.pseudo_huber, {"delta": 0.5}, {"delta": 0.5}, "real"),
    (LF.log_cosh_loss, ref.log_cosh, {}, {}, "real"),
    (LF.quantile_loss, ref.quantile, {"quantile": 0.8}, {"tau": 0.8}, "real"),
    (LF.mape_loss, ref.mape, {}, {}, "positive"),
    (LF.smape_loss, ref.smape, {}, {}, "real"),
    (LF.msle_loss, ref.msle, {}, {}, "positive"),
    (LF.poisson_nll_loss, ref.poisson_nll, {}, {}, "count"),
    (LF.poisson_nll_loss, ref.poisson_nll, {"full": True}, {"full": True}, "count"),
    (LF.general_robust_loss, ref.general_robust, {"alpha": 2.0}, {"alpha": 2.0}, "real"),
    (LF.general_robust_loss, ref.general_robust, {"alpha": 1.0, "scale": 0.5},
     {"alpha": 1.0, "scale": 0.5}, "real"),
    (LF.general_robust_loss, ref.general_robust, {"alpha": 0.0}, {"alpha": 0.0}, "real"),
    (LF.general_robust_loss, ref.general_robust, {"alpha": -2.0}, {"alpha": -2.0}, "real"),
    (LF.general_robust_loss, ref.general_robust, {"alpha": 0.5}, {"alpha": 0.5}, "real"),
    (LF.general_robust_loss, ref.general_robust, {"alpha": -math.inf}, {"alpha": -math.inf}, "real"),
    (LF.tweedie_deviance_loss, ref.tweedie, {"power": 0.0}, {"power": 0.0}, "positive"),
    (LF.tweedie_deviance_loss, ref.tweedie, {"power": 1.0}, {"power": 1.0}, "positive"),
    (LF.tweedie_deviance_loss, ref.tweedie, {"power": 1.5}, {"power": 1.5}, "positive"),
    (LF.tweedie_deviance_loss, ref.tweedie, {"power": 2.0}, {"power": 2.0}, "positive"),
    (LF.tweedie_deviance_loss, ref.tweedie, {"power": 3.0}, {"power": 3.0}, "positive"),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("fn", "rf", "kw", "rkw", "kind"), CASES,
                         ids=[f"{c[0].__name__}-{c[2]}" for c in CASES])
def test_value_and_gradient_match_float64_reference(fn, rf, kw, rkw, kind, reduction):
    x, y = _data(kind=kind)
    want_value, want_grad = rf(x.numpy(), y.numpy(), **rkw)
    xg = x.clone().requires_grad_(True)
    out = fn(xg, y, reduction=reduction, **kw)
    upstream = torch.rand(out.shape, generator=GEN, dtype=torch.float64) + 0.5
    out.backward(upstream)
    scale = {"mean": 1 / want_value.size, "sum": 1.0, "none": upstream.numpy()}[reduction]
    if reduction == "none":
        np.testing.assert_allclose(out.detach().numpy(), want_value, rtol=1e-10, atol=1e-12)
    else:
        agg = want_value.mean() if reduction == "mean" else want_value.sum()
        np.testing.assert_allclose(out.item(), agg, rtol=1e-10, atol=1e-12)
        scale = scale * upstream.item()
    np.testing.assert_allclose(xg.grad.numpy(), want_grad * scale, rtol=1e-10, atol=1e-12)


def test_gaussian_nll_value_and_both_gradients_match_reference():
    x, y = _data()
    var = torch.rand(x.shape, generator=GEN, dtype=torch.float64) + 0.2
    for full in (False, True):
        xg, vg = x.clone().requires_grad_(True), var.clone().requires_grad_(True)
        out = LF.gaussian_nll_loss(xg, y, vg, full=full, reduction="sum")
        out.backward()
        v, gx, gv = ref.gaussian_nll(x.numpy(), y.numpy(), var.numpy(), full=full)
        np.testing.assert_allclose(out.item(), v.sum(), rtol=1e-10)
        np.testing.assert_allclose(xg.grad.numpy(), gx, rtol=1e-10)
        np.testing.assert_allclose(vg.grad.numpy(), gv, rtol=1e-10)


def test_rmse_matches_reference_and_sklearn():
    x, y = _data(shape=(20,))
    value, grad = _value_and_grad(LF.rmse_loss, x, y)
    want, want_grad = ref.rmse(x.numpy(), y.numpy())
    np.testing.assert_allclose(value.item(), want, rtol=1e-10)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-10)
    metrics = pytest.importorskip("sklearn.metrics")
    np.testing.assert_allclose(value.item(), metrics.root_mean_squared_error(y, x), rtol=1e-10)


def test_rmse_weights_mask_and_zero_residual():
    x, y = _data(shape=(6, 3))
    w = torch.rand(6, 3, generator=GEN, dtype=torch.float64)
    m = torch.rand(6, 3, generator=GEN) > 0.3
    want = torch.sqrt(((x - y) ** 2 * w)[m].sum() / w[m].sum())
    torch.testing.assert_close(LF.rmse_loss(x, y, sample_weight=w, mask=m), want)
    per_sample = LF.rmse_loss(x, y, reduction="none")
    torch.testing.assert_close(per_sample, ((x - y) ** 2).mean(1).sqrt())
    z = x.clone().requires_grad_(True)
    LF.rmse_loss(z, x.detach()).backward()  # perfect fit: gradient 0, not NaN
    assert torch.equal(z.grad, torch.zeros_like(z))
    nothing = torch.zeros_like(m)
    assert LF.rmse_loss(x, y, mask=nothing).item() == 0.0
    assert torch.isnan(LF.rmse_loss(x, y, mask=nothing, empty="nan"))


def test_multi_quantile_scores_each_column_at_its_own_tau():
    x = torch.randn(8, 3, generator=GEN, dtype=torch.float64)
    y = torch.randn(8, generator=GEN, dtype=torch.float64)
    taus = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    got = LF.quantile_loss(x, y, quantile=taus, reduction="none")
    for j, tau in enumerate(taus.tolist()):
        torch.testing.assert_close(got[:, j], LF.quantile_loss(x[:, j], y, quantile=tau, reduction="none"))
    with pytest.raises(losskit.LossInputError, match="Q=3"):
        LF.quantile_loss(x[:, :2], y, quantile=taus)


# ----------------------------------------------------------------------------- peers


TORCH_PEERS = [
    (LF.mse_loss, F.mse_loss, {}),
    (LF.l1_loss, F.l1_loss, {}),
    (LF.huber_loss, F.huber_loss, {"delta": 0.3}),
    (LF.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.3}),
    (LF.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0}),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("fn", "peer", "kw"), TORCH_PEERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_torch_parity_float32(fn, peer, kw, reduction):
    x, y = (t.float() for t in _data())
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, want = fn(a, y, reduction=reduction, **kw), peer(b, y, reduction=reduction, **kw)
    up = torch.rand(out.shape, generator=GEN)
    out.backward(up)
    want.backward(up)
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-6)


def test_torch_weight_matches_sample_weight():
    x, y = (t.float() for t in _data())
    w = torch.rand(x.shape, generator=GEN)
    torch.testing.assert_close(LF.mse_loss(x, y, sample_weight=w), F.mse_loss(x, y, weight=w))
    # PyTorch's huber_loss(weight=) divides the weighted sum by N, unlike its mse_loss(weight=);
    # losskit's weighted mean is Σwℓ/Σw for every loss (documented in huber_loss).
    torch.testing.assert_close(LF.huber_loss(x, y, sample_weight=w),
                               F.huber_loss(x, y, weight=w, reduction="sum") / w.sum())
    torch.testing.assert_close(LF.huber_loss(x, y, sample_weight=w, reduction="none"),
                               F.huber_loss(x, y, weight=w, reduction="none"))


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [True, False])
def test_poisson_nll_torch_parity(log_input, full):
    x, y = _data(kind="count")
    x = x.float() if log_input else x.exp().float()
    y = y.float()
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = LF.poisson_nll_loss(a, y, log_input=log_input, full=full)
    want = F.poisson_nll_loss(b, y, log_input=log_input, full=full)
    out.backward()
    want.backward()
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("var_shape", ["same", "last1", "dropped"])
@pytest.mark.parametrize("full", [True, False])
def test_gaussian_nll_torch_parity(var_shape, full):
    x, y = (t.float() for t in _data())
    var = torch.rand(x.shape, generator=GEN) + 1e-7  # some entries below eps exercise the clamp
    var[0, 0] = 1e-9
    if var_shape == "last1":
        var = var[:, :1]
    elif var_shape == "dropped":
        var = var[:, 0]
    a, va = x.clone().requires_grad_(True), var.clone().requires_grad_(True)
    b, vb = x.clone().requires_grad_(True), var.clone().requires_grad_(True)
    out = LF.gaussian_nll_loss(a, y, va, full=full)
    want = F.gaussian_nll_loss(b, y, vb, full=full)
    out.backward()
    want.backward()
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(va.grad, vb.grad, rtol=1e-5, atol=1e-6)


def test_gaussian_nll_rejects_unrelated_var_shape():
    x, y = _data()
    with pytest.raises(losskit.LossInputError, match="var has shape"):
        LF.gaussian_nll_loss(x, y, torch.ones(3, 4, dtype=torch.float64))


def _keras():
    return pytest.importorskip("keras")


@pytest.mark.parametrize(
    ("ours", "peer_name", "kw", "kind"),
    [
        (lambda x, y: LF.log_cosh_loss(x, y), "LogCosh", {}, "real"),
        (lambda x, y: LF.msle_loss(x, y), "MeanSquaredLogarithmicError", {}, "positive"),
        (lambda x, y: LF.mape_loss(x, y, percent=True, eps=1e-7), "MeanAbsolutePercentageError", {},
         "positive"),
        (lambda x, y: LF.huber_loss(x, y, delta=0.6), "Huber", {"delta": 0.6}, "real"),
        (lambda x, y: LF.poisson_nll_loss(x, y, log_input=False, eps=1e-7), "Poisson", {}, "positive"),
        (lambda x, y: LF.mse_loss(x, y), "MeanSquaredError", {}, "real"),
        (lambda x, y: LF.l1_loss(x, y), "MeanAbsoluteError", {}, "real"),
    ],
    ids=["LogCosh", "MSLE", "MAPE", "Huber", "Poisson", "MSE", "MAE"],
)
def test_keras_parity(ours, peer_name, kw, kind):
    keras = _keras()
    x, y = (t.float() for t in _data(shape=(16,), kind=kind))
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = ours(a, y)
    want = getattr(keras.losses, peer_name)(**kw)(y, b)
    out.backward()
    want.backward()
    torch.testing.assert_close(out, want.float(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad.float(), rtol=1e-5, atol=1e-6)


def test_optax_parity_huber_and_log_cosh():
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    x, y = (t.float() for t in _data(shape=(16,)))
    xj, yj = jnp.asarray(x.numpy()), jnp.asarray(y.numpy())
    for ours, peer in [
        (lambda a: LF.huber_loss(a, y, delta=0.5, reduction="sum"),
         lambda a: optax.losses.huber_loss(a, yj, delta=0.5).sum()),
        (lambda a: LF.log_cosh_loss(a, y, reduction="sum"),
         lambda a: optax.losses.log_cosh(a, yj).sum()),
    ]:
        a = x.clone().requires_grad_(True)
        out = ours(a)
        out.backward()
        want, want_grad = jax.value_and_grad(peer)(xj)
        np.testing.assert_allclose(out.item(), float(want), rtol=1e-6)
        np.testing.assert_allclose(a.grad.numpy(), np.asarray(want_grad), rtol=1e-5, atol=1e-6)


def test_sklearn_parity():
    metrics = pytest.importorskip("sklearn.metrics")
    x, y = _data(shape=(50,), kind="positive")
    xn, yn = x.numpy(), y.numpy()
    for tau in (0.1, 0.5, 0.9):
        np.testing.assert_allclose(LF.quantile_loss(x, y, quantile=tau).item(),
                                   metrics.mean_pinball_loss(yn, xn, alpha=tau), rtol=1e-10)
    np.testing.assert_allclose(LF.mape_loss(x, y).item(),
                               metrics.mean_absolute_percentage_error(yn, xn), rtol=1e-10)
    np.testing.assert_allclose(LF.msle_loss(x, y).item(), metrics.mean_squared_log_error(yn, xn),
                               rtol=1e-10)
    for p in (0.0, 1.0, 1.5, 2.0, 3.0):
        np.testing.assert_allclose(LF.tweedie_deviance_loss(x, y, power=p).item(),
                                   metrics.mean_tweedie_deviance(yn, xn, power=p), rtol=1e-10)


def test_kornia_robust_losses_are_general_robust_limits():
    kornia = pytest.importorskip("kornia")
    kl = kornia.losses
    x, y = (t.float() for t in _data(shape=(2, 1, 4, 4)))
    pairs = [
        (1.0, kl.charbonnier_loss), (0.0, kl.cauchy_loss),
        (-2.0, kl.geman_mcclure_loss), (-math.inf, kl.welsch_loss),
    ]
    for alpha, peer in pairs:
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out = LF.general_robust_loss(a, y, alpha=alpha)
        want = peer(b, y, reduction="mean")
        out.backward()
        want.backward()
        torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.testing.assert_close(LF.pseudo_huber_loss(a, y), kl.charbonnier_loss(b, y, reduction="mean"))


def test_general_robust_tensor_alpha_is_continuous_and_learnable():
    x, y = _data()
    for a in (2.0, 1.0, 0.0, -2.0, 0.3):
        alpha = torch.tensor(a, dtype=torch.float64)
        torch.testing.assert_close(LF.general_robust_loss(x, y, alpha=alpha),
                                   LF.general_robust_loss(x, y, alpha=a))
    alpha = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda al: LF.general_robust_loss(x, y, alpha=al), (alpha,))


# ----------------------------------------------------------------------------- pinned behaviour


def test_log_cosh_at_residual_1e4_is_finite_with_tanh_gradient():
    for dtype in (torch.float32, torch.float64):
        r = torch.tensor([1e4, -1e4, 0.5], dtype=dtype, requires_grad=True)
        out = LF.log_cosh_loss(r, torch.zeros(3, dtype=dtype), reduction="none")
        out.sum().backward()
        want = torch.tensor([1e4 - math.log(2), 1e4 - math.log(2), math.log(math.cosh(0.5))],
                            dtype=torch.float64)
        torch.testing.assert_close(out.double(), want, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(r.grad.double(), torch.tanh(r.detach().double()))


def test_mse_with_n1_against_n_raises_with_both_shapes_and_the_fix():
    with pytest.raises(losskit.LossInputError) as err:
        LF.mse_loss(torch.randn(5, 1), torch.randn(5))
    msg = str(err.value)
    assert "(5, 1)" in msg and "(5,)" in msg and "squeeze(-1)" in msg
    assert isinstance(err.value, ValueError)
    out = LF.mse_loss(torch.randn(5, 1), torch.randn(5), broadcast=True, reduction="none")
    assert out.shape == (5, 5)  # only when asked for


def test_sample_weight_mean_is_weighted_sum_over_weight_sum():
    x, y = _data()
    w = torch.rand(x.shape, generator=GEN, dtype=torch.float64)
    per = (x - y) ** 2
    torch.testing.assert_close(LF.mse_loss(x, y, sample_weight=w), (w * per).sum() / w.sum())
    torch.testing.assert_close(LF.mse_loss(x, y, sample_weight=w, reduction="sum"), (w * per).sum())
    ws = torch.rand(x.shape[0], generator=GEN, dtype=torch.float64)  # one weight per sample
    torch.testing.assert_close(LF.mse_loss(x, y, sample_weight=ws),
                               (ws[:, None] * per).sum() / (ws.sum() * x.shape[1]))
    with pytest.raises(losskit.LossInputError, match="sample_weight has shape"):
        LF.mse_loss(x, y, sample_weight=torch.ones(3))


def test_mask_is_mean_over_kept_elements_and_equals_slicing():
    x, y = _data()
    x = x.clone()
    m = torch.rand(x.shape, generator=GEN) > 0.5
    x[~m] = 1e30  # masked-out garbage must not leak into the value or the gradient
    xg = x.clone().requires_grad_(True)
    out = LF.mse_loss(xg, y, mask=m)
    torch.testing.assert_close(out, LF.mse_loss(x[m], y[m]))
    out.backward()
    assert torch.isfinite(xg.grad).all() and (xg.grad[~m] == 0).all()
    with pytest.raises(losskit.LossInputError, match="bool"):
        LF.mse_loss(x, y, mask=m.float())


def test_normalizer_micro_batches_equal_the_full_batch():
    x, y = (t.float() for t in _data(shape=(64, 5)))
    for fn in (LF.mse_loss, LF.huber_loss, LF.log_cosh_loss, LF.quantile_loss):
        full = fn(x, y)
        parts = sum(fn(xc, yc, reduction="sum", normalizer=x.numel())
                    for xc, yc in zip(x.chunk(4), y.chunk(4)))
        torch.testing.assert_close(parts, full, rtol=1e-6, atol=1e-7)
    # masked: the global count of kept elements is the normalizer
    m = torch.rand(x.shape, generator=GEN) > 0.3
    count = m.sum()
    full = LF.mse_loss(x, y, mask=m)
    parts = sum(LF.mse_loss(xc, yc, mask=mc, reduction="sum", normalizer=count)
                for xc, yc, mc in zip(x.chunk(4), y.chunk(4), m.chunk(4)))
    torch.testing.assert_close(parts, full, rtol=1e-6, atol=1e-7)
    with pytest.raises(losskit.LossInputError, match="normalizer"):
        LF.mse_loss(x, y, normalizer=10)


def test_empty_policy_zero_with_zero_grad_or_nan():
    x, y = _data()
    nothing = torch.zeros(x.shape, dtype=torch.bool)
    xg = x.clone().requires_grad_(True)
    out = LF.huber_loss(xg, y, mask=nothing)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(xg.grad, torch.zeros_like(x))
    assert torch.isnan(LF.huber_loss(x, y, mask=nothing, empty="nan"))
    assert LF.mse_loss(x[:0], y[:0]).item() == 0.0  # zero elements
    assert torch.isnan(LF.mse_loss(x[:0], y[:0], empty="nan"))
    zero_w = torch.zeros_like(x)
    assert LF.mse_loss(x, y, sample_weight=zero_w).item() == 0.0
    with pytest.raises(losskit.LossInputError, match="empty"):
        LF.mse_loss(x, y, empty="skip")


def test_mape_at_zero_target_is_finite_and_documented_size():
    x = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 1.0], dtype=torch.float64)
    out = LF.mape_loss(x, y, reduction="none")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], torch.tensor(0.5 / 2.220446049250313e-16, dtype=torch.float64))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_msle_negative_prediction_is_clamped_not_nan():
    x = torch.tensor([-3.0, 2.0], requires_grad=True)
    out = LF.msle_loss(x, torch.tensor([1.0, 2.0]))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all() and x.grad[0] == 0


def test_invalid_options_raise_with_names():
    x, y = _data()
    with pytest.raises(losskit.LossInputError, match="delta"):
        LF.huber_loss(x, y, delta=0.0)
    with pytest.raises(losskit.LossInputError, match="quantile"):
        LF.quantile_loss(x, y, quantile=1.5)
    with pytest.raises(losskit.LossInputError, match="power"):
        LF.tweedie_deviance_loss(x.exp(), y.exp(), power=0.5)
    with pytest.raises(losskit.LossInputError, match=r"reduction='meen'.*Did you mean 'mean'"):
        LF.mse_loss(x, y, reduction="meen")
    with pytest.raises(losskit.LossInputError, match="floating-point"):
        LF.mse_loss(torch.ones(3, dtype=torch.long), torch.ones(3))


def test_half_precision_is_computed_and_returned_in_float32():
    x, y = (t.float() for t in _data())
    for dtype in (torch.float16, torch.bfloat16):
        xh, yh = x.to(dtype), y.to(dtype)
        for spec in losskit.catalog(family="regression"):
            sample = spec.sample(torch.Generator().manual_seed(0), dtype=dtype)
            out = spec.fn(*sample.args, **sample.kwargs)
            assert out.dtype == torch.float32, spec.name
        want = LF.mse_loss(xh.double(), yh.double())
        torch.testing.assert_close(LF.mse_loss(xh, yh).double(), want, rtol=1e-2, atol=0)


def test_module_stores_options_and_repr_names_them():
    m = LN.HuberLoss(delta=0.5)
    assert "delta=0.5" in repr(m) and "reduction='mean'" in repr(m)
    x, y = _data()
    torch.testing.assert_close(m(x, y), LF.huber_loss(x, y, delta=0.5))
    with pytest.raises(losskit.LossInputError, match="Did you mean 'delta'"):
        LN.HuberLoss(delt=0.5)
    q = LN.QuantileLoss(quantile=torch.tensor([0.1, 0.9]))
    assert "quantile" in dict(q.named_buffers())  # moves with .to(device)


def test_get_and_catalog():
    assert isinstance(losskit.get("pinball", quantile=0.3), LN.QuantileLoss)
    assert losskit.get_spec("mae").fn is LF.l1_loss
    assert LF.mae_loss is LF.l1_loss and LF.pinball_loss is LF.quantile_loss
    with pytest.raises(losskit.LossInputError, match="Did you mean 'huber'"):
        losskit.get("hubber")
    names = {s.name for s in losskit.catalog(family="regression")}
    assert {"mse", "l1", "rmse", "huber", "smooth_l1", "pseudo_huber", "log_cosh", "quantile",
            "mape", "smape", "msle", "poisson_nll", "gaussian_nll", "general_robust",
            "tweedie_deviance"} <= names
    assert all(s.properties.convex is not None for s in losskit.catalog(family="regression"))
