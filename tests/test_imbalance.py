"""Imbalance / noisy-label losses against float64 references written from the papers, PyTorch
and Keras, plus the edge cases of PITFALLS.md (ignored targets, -inf logits, ±1e4 logits,
no silent broadcasting, debug-mode label checks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit
import losskit.functional as LF
import losskit.nn as LN
from losskit._core.checks import LossInputError, set_debug
from reference import imbalance_ref as ref

N, C = 7, 5
PRIORS = [0.45, 0.25, 0.15, 0.1, 0.05]
COUNTS = [900.0, 300.0, 60.0, 12.0, 2.0]


def _logits(seed: int = 0, scale: float = 2.0, shape: tuple[int, ...] = (N, C)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).requires_grad_(True)


def _labels(seed: int = 1, shape: tuple[int, ...] = (N,)) -> torch.Tensor:
    return torch.randint(0, C, shape, generator=torch.Generator().manual_seed(seed))


def _check_sum(loss: torch.Tensor, z: torch.Tensor, ref_loss: np.ndarray, ref_grad: np.ndarray) -> None:
    np.testing.assert_allclose(loss.detach().numpy(), ref_loss, rtol=1e-10, atol=1e-12)
    (g,) = torch.autograd.grad(loss.sum(), z)
    np.testing.assert_allclose(g.numpy(), ref_grad, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("method", ["inverse", "inverse_sqrt", "effective_number"])
@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999])
def test_class_weights_match_closed_form(method: str, beta: float) -> None:
    counts = [1000, 100, 10, 3]
    got = LF.class_weights(torch.tensor(counts, dtype=torch.float64), method=method, beta=beta)
    np.testing.assert_allclose(got.numpy(), ref.class_weights(counts, method, beta), rtol=1e-10)
    assert math.isclose(float(got.sum()), 4.0, rel_tol=1e-12)


def test_class_weights_limits_and_validation() -> None:
    counts = torch.tensor([500.0, 50.0, 5.0], dtype=torch.float64)
    uniform = LF.class_weights(counts, "effective_number", beta=0.0)
    assert torch.allclose(uniform, torch.ones(3, dtype=torch.float64))
    near_one = LF.class_weights(counts, "effective_number", beta=1 - 1e-9)
    assert torch.allclose(near_one, LF.class_weights(counts, "inverse"), rtol=1e-5)
    assert LF.class_weights([3, 3, 3]).dtype == torch.float32
    with pytest.raises(LossInputError, match="positive"):
        LF.class_weights([10, 0, 3])
    with pytest.raises(LossInputError, match="method"):
        LF.class_weights([10, 3], method="inverse_square")
    with pytest.raises(LossInputError, match="beta"):
        LF.class_weights([10, 3], method="effective_number", beta=1.0)


def test_pos_weight_from_counts_feeds_bce() -> None:
    pos, neg = torch.tensor([10.0, 40.0, 5.0]), torch.tensor([90.0, 60.0, 95.0])
    pw = LF.pos_weight_from_counts(pos, neg)
    assert torch.equal(pw, neg / pos)
    # with this pos_weight, positives and negatives weigh the same in total (at zero logits).
    y = torch.cat([torch.ones(10, 3), torch.zeros(90, 3)])
    y[:, 1] = torch.cat([torch.ones(40), torch.zeros(60)])
    y[:, 2] = torch.cat([torch.ones(5), torch.zeros(95)])
    per = F.binary_cross_entropy_with_logits(torch.zeros(100, 3), y, pos_weight=pw, reduction="none")
    assert torch.allclose((per * y).sum(0), (per * (1 - y)).sum(0))
    with pytest.raises(LossInputError, match="num_pos"):
        LF.pos_weight_from_counts(torch.ones(3), torch.ones(3, 1))  # PITFALLS 28: explicit class dim
    with pytest.raises(LossInputError, match="positive"):
        LF.pos_weight_from_counts([0.0, 1.0], [1.0, 1.0])


# --------------------------------------------------------------------------- references (1e-10)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjusted_vs_reference(tau: float) -> None:
    z, y = _logits(), _labels()
    pri = np.array(PRIORS)
    loss = LF.logit_adjusted_cross_entropy(z, y, class_priors=torch.tensor(PRIORS, dtype=torch.float64),
                                           tau=tau, reduction="none")
    _check_sum(loss, z, *ref.logit_adjusted(z.detach().numpy(), y.numpy(), pri, tau))


def test_logit_adjusted_tau1_is_balanced_softmax() -> None:
    z, y = _logits(3), _labels(4)
    counts = np.array(COUNTS)
    loss = LF.logit_adjusted_cross_entropy(z, y, class_priors=torch.tensor(COUNTS, dtype=torch.float64),
                                           tau=1.0, reduction="none")
    _check_sum(loss, z, *ref.balanced_softmax(z.detach().numpy(), y.numpy(), counts))


@pytest.mark.parametrize(("max_m", "s"), [(0.5, 30.0), (0.3, 1.0), (0.0, 5.0)])
def test_ldam_vs_reference(max_m: float, s: float) -> None:
    z, y = _logits(scale=0.3), _labels()
    loss = LF.ldam_loss(z, y, class_counts=torch.tensor(COUNTS), max_margin=max_m, scale=s, reduction="none")
    _check_sum(loss, z, *ref.ldam(z.detach().numpy(), y.numpy(), np.array(COUNTS), max_m, s))


@pytest.mark.parametrize("q", [1e-4, 0.3, 0.7, 1.0])
def test_gce_vs_reference(q: float) -> None:
    z, y = _logits(), _labels()
    loss = LF.generalized_cross_entropy(z, y, q=q, reduction="none")
    _check_sum(loss, z, *ref.gce(z.detach().numpy(), y.numpy(), q))


@pytest.mark.parametrize(("alpha", "beta", "A"),
                         [(0.1, 1.0, -4.0), (1.0, 0.5, -6.0), (0.0, 1.0, math.log(1e-4))])
def test_sce_vs_reference(alpha: float, beta: float, A: float) -> None:
    z, y = _logits(), _labels()
    loss = LF.symmetric_cross_entropy(z, y, alpha=alpha, beta=beta, A=A, reduction="none")
    _check_sum(loss, z, *ref.sce(z.detach().numpy(), y.numpy(), alpha, beta, A))


@pytest.mark.parametrize(("gp", "gn", "clip"),
                         [(0.0, 4.0, 0.05), (1.0, 2.0, 0.0), (0.5, 0.5, 0.2), (0.0, 0.0, 0.1)])
def test_asymmetric_vs_reference(gp: float, gn: float, clip: float) -> None:
    x = _logits(5, scale=3.0, shape=(N, 6))
    y = (torch.rand(N, 6, generator=torch.Generator().manual_seed(6)) > 0.6).double()
    loss = LF.asymmetric_loss(x, y, gamma_pos=gp, gamma_neg=gn, clip=clip, reduction="none")
    _check_sum(loss, x, *ref.asymmetric(x.detach().numpy(), y.numpy(), gp, gn, clip))


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_asymmetric_equals_official_code_with_its_clamp(clip: float) -> None:
    """Including logits where the eps clamp of the reference code is active (p < 1e-8)."""
    x = torch.tensor([[25.0, -25.0, 0.3, -2.0], [-19.0, 19.0, 4.0, -0.1]], dtype=torch.float64)
    y = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    got = LF.asymmetric_loss(x, y, gamma_pos=1.0, gamma_neg=4.0, clip=clip, reduction="sum")
    want = ref.asl_official_sum(x.numpy(), y.numpy(), 1.0, 4.0, clip)
    assert math.isclose(float(got), want, rel_tol=1e-10)


# --------------------------------------------------------------------------- peers


def test_ldam_equals_official_construction_with_torch_cross_entropy() -> None:
    """The reference code: x - Δ at the target, times s, into F.cross_entropy(weight=)."""
    z = _logits(7, scale=0.5, shape=(N, C, 3)).detach().float().requires_grad_(True)
    y = _labels(8, (N, 3))
    y[0, 1] = -100
    w = torch.tensor([0.2, 0.5, 1.0, 2.0, 3.0])
    m = torch.tensor(COUNTS).pow(-0.25)
    m = m * (0.5 / m.max())
    safe = y.clamp_min(0)
    onehot = F.one_hot(safe, C).movedim(-1, 1).float()
    want = F.cross_entropy(30.0 * (z - onehot * m[safe].unsqueeze(1)), y, weight=w)
    got = LF.ldam_loss(z, y, class_counts=COUNTS, weight=w)
    gw, = torch.autograd.grad(want, z)
    gg, = torch.autograd.grad(got, z)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-6)
    assert torch.allclose(gg, gw, rtol=1e-5, atol=1e-7)


def test_asymmetric_reduces_to_bce_with_logits() -> None:
    x = _logits(9, scale=4.0, shape=(N, 6)).detach().float()
    y = (torch.rand(N, 6, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    got = LF.asymmetric_loss(x, y, gamma_pos=0.0, gamma_neg=0.0, clip=0.0, eps=0.0)
    assert torch.allclose(got, F.binary_cross_entropy_with_logits(x, y), rtol=1e-6, atol=1e-7)


def test_gce_matches_keras() -> None:
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras is not on the torch backend")
    z, y = _logits(11).detach().float(), _labels(12)
    for q in (0.3, 0.7):
        want = keras.losses.CategoricalGeneralizedCrossEntropy(q=q)(y, z.softmax(1))
        got = LF.generalized_cross_entropy(z, y, q=q)
        assert abs(float(got) - float(want)) <= 1e-6 * max(1.0, abs(float(want)))


def test_logit_adjusted_is_cross_entropy_of_shifted_logits() -> None:
    z, y = _logits(13).detach().float(), _labels(14)
    pri = torch.tensor(PRIORS)
    got = LF.logit_adjusted_cross_entropy(z, y, class_priors=pri, tau=1.5)
    assert torch.allclose(got, F.cross_entropy(z + 1.5 * pri.log(), y), rtol=1e-6)


# --------------------------------------------------------------------------- limits and identities


def test_gce_limits() -> None:
    z, y = _logits(15), _labels(16)
    ce = F.cross_entropy(z, y, reduction="none")
    assert torch.allclose(LF.generalized_cross_entropy(z, y, q=1e-9, reduction="none"), ce, rtol=1e-7)
    mae = 1 - z.softmax(1).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(LF.generalized_cross_entropy(z, y, q=1.0, reduction="none"), mae, rtol=1e-12)


def test_sce_parts() -> None:
    z, y = _logits(17), _labels(18)
    ce = F.cross_entropy(z, y, reduction="none")
    rce = 4.0 * (1 - z.softmax(1).gather(1, y[:, None]).squeeze(1))
    got = LF.symmetric_cross_entropy(z, y, alpha=0.3, beta=2.0, reduction="none")
    assert torch.allclose(got, 0.3 * ce + 2.0 * rce, rtol=1e-12)


# --------------------------------------------------------------------------- ignore_index, N-D, empty

_MULTICLASS = [
    ("logit_adjusted_cross_entropy", {"class_priors": torch.tensor(PRIORS, dtype=torch.float64)}),
    ("ldam_loss", {"class_counts": torch.tensor(COUNTS, dtype=torch.float64), "scale": 2.0}),
    ("generalized_cross_entropy", {"q": 0.5}),
    ("symmetric_cross_entropy", {}),
]


@pytest.mark.parametrize(("name", "kw"), _MULTICLASS)
def test_ignore_index_mean_counts_kept_targets_and_nd(name: str, kw: dict) -> None:
    fn = getattr(LF, name)
    z, y = _logits(19, shape=(3, C, 4)), _labels(20, (3, 4))
    y[0, 0] = y[2, 3] = -100
    per = fn(z, y, reduction="none", **kw)
    assert per.shape == (3, 4) and per[0, 0] == 0 and per[2, 3] == 0
    flat_z = z.movedim(1, -1).reshape(-1, C)
    flat_y = y.reshape(-1)
    kept = flat_y != -100
    want = fn(flat_z[kept], flat_y[kept], reduction="none", **kw)
    assert torch.allclose(per.reshape(-1)[kept], want, rtol=1e-12)
    assert torch.allclose(fn(z, y, **kw), want.mean(), rtol=1e-12)  # "mean" ÷ kept count
    g, = torch.autograd.grad(fn(z, y, **kw), z)
    assert torch.all(g[0, :, 0] == 0) and torch.all(g[2, :, 3] == 0)


@pytest.mark.parametrize(("name", "kw"), _MULTICLASS)
def test_all_ignored_is_zero_with_zero_grad(name: str, kw: dict) -> None:  # PITFALLS 6
    fn = getattr(LF, name)
    z = _logits(21)
    y = torch.full((N,), -100)
    out = fn(z, y, **kw)
    assert out.item() == 0.0
    g, = torch.autograd.grad(out, z)
    assert torch.all(g == 0)
    assert torch.isnan(fn(z, y, empty="nan", **kw))


@pytest.mark.parametrize(("name", "kw"), _MULTICLASS)
def test_inf_masked_and_huge_logits_are_finite(name: str, kw: dict) -> None:  # PITFALLS 5
    fn = getattr(LF, name)
    for dtype in (torch.float64, torch.float32):
        z = _logits(22).detach().to(dtype)
        y = _labels(23)
        z[0] = torch.tensor([1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype)
        z[torch.arange(N), (y + 1) % C] = -math.inf  # mask one non-target class per row
        z.requires_grad_(True)
        loss = fn(z, y, **kw)
        g, = torch.autograd.grad(loss, z)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), (name, dtype)


def test_asymmetric_extremes_and_zero_shifted_probability() -> None:
    for dtype in (torch.float64, torch.float32):
        x = torch.tensor([1e4, -1e4, 1e4, -1e4, -5.0, math.log(0.05 / 0.95)], dtype=dtype, requires_grad=True)
        y = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0], dtype=dtype)
        for gn in (4.0, 0.5):  # γ < 1: p^γ has an infinite slope at the exactly-0 shifted p
            per = LF.asymmetric_loss(x, y, gamma_pos=1.0, gamma_neg=gn, reduction="none")
            g, = torch.autograd.grad(per.sum(), x)
            assert torch.isfinite(per).all() and torch.isfinite(g).all()
            assert per[3] == 0 and per[4] == 0 and g[4] == 0  # easy negatives discarded
            assert math.isclose(float(per[1].detach()), -math.log(1e-8), rel_tol=1e-5)  # the eps clamp


def test_no_silent_broadcasting_and_layout_errors() -> None:  # PITFALLS 2, 25
    with pytest.raises(LossInputError, match=r"must match \(no silent broadcasting\)"):
        LF.asymmetric_loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(LossInputError, match="classes in dim 1"):
        LF.generalized_cross_entropy(torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(LossInputError, match="integer class indices"):
        LF.symmetric_cross_entropy(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(LossInputError, match=r"class_priors must have shape \(3,\)"):
        LF.logit_adjusted_cross_entropy(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long),
                                        class_priors=torch.ones(4))
    with pytest.raises(LossInputError, match="q must lie"):
        LF.generalized_cross_entropy(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), q=0.0)


def test_debug_mode_checks_labels_and_counts() -> None:
    z = torch.zeros(4, 3)
    set_debug(True)
    try:
        with pytest.raises(LossInputError, match="outside"):
            LF.generalized_cross_entropy(z, torch.tensor([0, 1, 3, 2]))
        LF.generalized_cross_entropy(z + 0.5, torch.tensor([0, 1, -100, 2]))  # ignore_index is fine
        with pytest.raises(LossInputError, match="positive"):
            LF.ldam_loss(z, torch.tensor([0, 1, 2, 2]), class_counts=torch.tensor([5.0, 0.0, 1.0]))
    finally:
        set_debug(False)


def test_modules_store_options_and_match_functions() -> None:
    z, y = _logits(24), _labels(25)
    pri = torch.tensor(PRIORS, dtype=torch.float64)
    mod = LN.LogitAdjustedCrossEntropyLoss(class_priors=pri, tau=0.5)
    assert "class_priors" in dict(mod.named_buffers())
    assert torch.equal(mod(z, y), LF.logit_adjusted_cross_entropy(z, y, class_priors=pri, tau=0.5))
    assert torch.equal(LN.LDAMLoss(class_counts=COUNTS)(z, y), LF.ldam_loss(z, y, class_counts=COUNTS))
    assert isinstance(losskit.get("gce", q=0.4), LN.GeneralizedCrossEntropyLoss)
    assert isinstance(losskit.get("asl"), LN.AsymmetricLoss)
    assert losskit.get_spec("sce").family == "imbalance"


def test_sample_weight_per_sample_with_nd_targets() -> None:
    z, y = _logits(26, shape=(3, C, 2)), _labels(27, (3, 2))
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    per = LF.generalized_cross_entropy(z, y, reduction="none")
    got = LF.generalized_cross_entropy(z, y, sample_weight=w)
    full = w[:, None].expand(3, 2)
    assert torch.allclose(got, (per * full).sum() / full.sum(), rtol=1e-12)


def test_ldam_class_weight_mean_divides_by_weight_sum() -> None:  # PITFALLS 7
    z, y = _logits(28), _labels(29)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    per = LF.ldam_loss(z, y, class_counts=COUNTS, reduction="none")
    got = LF.ldam_loss(z, y, class_counts=COUNTS, weight=w)
    assert torch.allclose(got, (w[y] * per).sum() / w[y].sum(), rtol=1e-12)
    assert torch.allclose(LF.ldam_loss(z, y, class_counts=COUNTS, weight=w, reduction="none"), w[y] * per)
