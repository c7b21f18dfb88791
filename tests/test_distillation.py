"""Distillation (Hinton 2015): float64 reference, T² scaling and batchmean semantics
(PITFALLS 9), per-token masking / ignore_index, terms for logging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit
from losskit._core.checks import LossInputError
from losskit.losses.distillation import DistillationLoss, distillation_loss, distillation_terms
from losskit.losses.divergence import kl_div
from reference import divergence_ref as ref


def _data(seed: int = 0, n: int = 7, c: int = 5):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, c, generator=g, dtype=torch.float64)
    t = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, c, (n,), generator=g)
    return s, t, y


@pytest.mark.parametrize(("temperature", "alpha"), [(1.0, 0.5), (2.0, 0.5), (4.0, 0.9), (3.0, 0.0)])
def test_matches_reference_value_and_gradient(temperature: float, alpha: float) -> None:
    s, t, y = _data(1)
    y[2] = -100
    loss, kd, ce, keep = ref.distillation_rows(s.numpy(), t.numpy(), y.numpy(), temperature, alpha)
    x = s.clone().requires_grad_(True)
    out = distillation_loss(x, t, y, temperature=temperature, alpha=alpha)
    out.backward()
    np.testing.assert_allclose(out.item(), loss[keep].mean(), rtol=1e-10)
    np.testing.assert_allclose(
        x.grad.numpy(), ref.distillation_grad(s.numpy(), t.numpy(), y.numpy(), temperature, alpha),
        rtol=1e-10, atol=1e-12)
    none = distillation_loss(s, t, y, temperature=temperature, alpha=alpha, reduction="none")
    np.testing.assert_allclose(none.numpy(), np.where(keep, loss, 0.0), rtol=1e-10, atol=1e-15)
    terms = distillation_terms(s, t, y, temperature=temperature, alpha=alpha)
    np.testing.assert_allclose(terms.kd.item(), kd[keep].mean(), rtol=1e-10)
    np.testing.assert_allclose(terms.ce.item(), ce[keep].mean(), rtol=1e-10)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")
def test_alpha_one_at_t_one_is_the_batchmean_kl() -> None:
    s, t, _ = _data(2)
    want = kl_div(s.log_softmax(-1), t.softmax(-1), reduction="batchmean")
    torch.testing.assert_close(distillation_loss(s, t, None, alpha=1.0, temperature=1.0), want)
    # and it is not the (class-averaged) "mean" that PyTorch's default would give
    assert not torch.isclose(distillation_loss(s, t, None, alpha=1.0, temperature=1.0),
                             F.kl_div(s.log_softmax(-1), t.softmax(-1), reduction="mean"))


def test_t_squared_scaling_keeps_the_soft_gradient_scale() -> None:
    s, t, _ = _data(3)
    T = 5.0
    kd = distillation_loss(s, t, None, alpha=1.0, temperature=T)
    plain = F.kl_div((s / T).log_softmax(-1), (t / T).softmax(-1), reduction="batchmean")
    torch.testing.assert_close(kd, T * T * plain)


def test_alpha_zero_is_cross_entropy_with_ignore_index() -> None:
    s, t, y = _data(4)
    y[[0, 3]] = -100
    torch.testing.assert_close(distillation_loss(s, t, y, alpha=0.0),
                               F.cross_entropy(s, y, ignore_index=-100))
    y[[0, 3]] = 7
    torch.testing.assert_close(distillation_loss(s, t, y, alpha=0.0, ignore_index=7),
                               F.cross_entropy(s, y, ignore_index=7))


def test_sequence_logits_mask_and_ignore_index_leave_both_terms_and_the_count() -> None:
    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
    t = torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (2, 4), generator=g)
    y[0, 3] = -100  # padding label
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, 0] = False  # e.g. a prompt token
    kept = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]
    s2 = torch.stack([s[i, j] for i, j in kept])
    t2 = torch.stack([t[i, j] for i, j in kept])
    y2 = torch.stack([y[i, j] for i, j in kept])
    want = distillation_loss(s2, t2, y2, temperature=2.0, alpha=0.3)
    got = distillation_loss(s, t, y, temperature=2.0, alpha=0.3, mask=mask)
    torch.testing.assert_close(got, want)
    none = distillation_loss(s, t, y, temperature=2.0, alpha=0.3, mask=mask, reduction="none")
    assert none.shape == (2, 4) and none[0, 3] == 0 and none[1, 0] == 0
    # per-sequence mask (B,) also works
    seq = torch.tensor([True, False])
    torch.testing.assert_close(distillation_loss(s, t, y, mask=seq),
                               distillation_loss(s[:1], t[:1], y[:1]))
    # reduction="sum" + normalizer: micro-batches with the global token count == full batch
    count = int(((y != -100) & mask).sum())
    parts = sum(distillation_loss(s[i:i + 1], t[i:i + 1], y[i:i + 1], mask=mask[i:i + 1],
                                  reduction="sum", normalizer=count) for i in range(2))
    torch.testing.assert_close(parts, distillation_loss(s, t, y, mask=mask))


def test_everything_ignored_gives_zero_with_zero_gradient() -> None:
    s, t, y = _data(6)
    y[:] = -100
    x = s.clone().requires_grad_(True)
    out = distillation_loss(x, t, y)
    out.backward()
    assert out.item() == 0.0 and (x.grad == 0).all()
    assert distillation_loss(s, t, y, empty="nan").isnan()


def test_terms_for_logging() -> None:
    s, t, y = _data(7)
    terms = distillation_terms(s, t, y, temperature=3.0, alpha=0.25)
    torch.testing.assert_close(terms.loss, 0.25 * terms.kd + 0.75 * terms.ce)
    torch.testing.assert_close(terms.loss, distillation_loss(s, t, y, temperature=3.0, alpha=0.25))
    torch.testing.assert_close(terms.ce, F.cross_entropy(s, y))
    torch.testing.assert_close(terms.kd, distillation_loss(s, t, None, temperature=3.0, alpha=1.0))
    assert losskit.functional.distillation_terms is distillation_terms


def test_validation() -> None:
    s, t, y = _data(8)
    with pytest.raises(LossInputError, match="alpha must be 1"):
        distillation_loss(s, t, None)
    with pytest.raises(LossInputError, match="target must be"):
        distillation_loss(s, t, y[:, None])
    with pytest.raises(LossInputError, match="student_logits"):
        distillation_loss(s, t[:, :4], y)
    with pytest.raises(LossInputError, match="alpha"):
        distillation_loss(s, t, y, alpha=1.5)
    with pytest.raises(LossInputError, match="temperature"):
        distillation_loss(s, t, y, temperature=0.0)
    with pytest.raises(LossInputError, match="integer"):
        distillation_loss(s, t, y.double())


def test_module_and_half_precision() -> None:
    s, t, y = _data(9)
    torch.testing.assert_close(DistillationLoss(temperature=3.0, alpha=0.7)(s, t, y),
                               distillation_loss(s, t, y, temperature=3.0, alpha=0.7))
    out = distillation_loss(s.half(), t.half(), y)
    assert out.dtype == torch.float32
    want = distillation_loss(s.half().double(), t.half().double(), y)
    assert abs(out.item() - want.item()) < 1e-5
