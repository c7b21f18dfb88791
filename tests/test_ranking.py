"""Ranking losses: values and gradients against float64 loop references (1e-10), optax's
ranking_softmax_loss (ListNet) and PyTorch's BCE-with-logits on enumerated pairs (RankNet) at
1e-6, and the padding behaviour: padded items are ignored whatever they hold (-inf, NaN), get a
zero gradient, and a batch with nothing to rank follows the empty policy (PITFALLS 5, 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit.functional as LF
import losskit.nn as LN
from losskit import LossInputError
from reference import ranking_ref as ref

TOL = {"rtol": 1e-10, "atol": 1e-10}
PEER = {"rtol": 1e-6, "atol": 1e-6}

LOSSES = [
    (LF.ranknet_loss, ref.ranknet),
    (LF.listnet_loss, ref.listnet),
    (LF.listmle_loss, ref.listmle),
]
IDS = ["ranknet", "listnet", "listmle"]


def _lists(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(5, 7, generator=g, dtype=torch.float64).to(dtype)
    r = torch.randint(0, 4, (5, 7), generator=g).to(dtype)   # graded, with ties
    mask = torch.rand(5, 7, generator=g) > 0.25
    mask[0] = True                 # a full list
    mask[3] = False                # an all-padding list
    mask[4] = False
    mask[4, 2] = True              # a single real item: no pair
    return s, r, mask


@pytest.mark.parametrize("fn,rf", LOSSES, ids=IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_float64_reference_with_padding(fn, rf, reduction):
    s, r, mask = _lists()
    weight = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    want_lists, has = rf(s, r, mask)
    keep = torch.tensor(has)

    def want_fn(x):
        per, _ = rf(x, r, mask)
        per = per * weight
        if reduction == "none":
            return per
        if reduction == "sum":
            return per.sum()
        return per[keep].sum() / weight[keep].sum()

    a = s.clone().requires_grad_(True)
    b = s.clone().requires_grad_(True)
    got = fn(a, r, mask=mask, sample_weight=weight, reduction=reduction)
    want = want_fn(b)
    torch.testing.assert_close(got, want, **TOL)
    upstream = torch.linspace(1.0, 2.0, got.numel(), dtype=torch.float64).reshape(got.shape)
    (got * upstream).sum().backward()
    (want * upstream).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, **TOL)
    assert torch.all(a.grad[~mask] == 0)
    assert want_lists.shape == (5,)


@pytest.mark.parametrize("fn,rf", LOSSES, ids=IDS)
def test_gradcheck_with_padding(fn, rf):
    s, r, mask = _lists()
    s.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fn(x, r, mask=mask), (s,))


@pytest.mark.parametrize("fn", [f for f, _ in LOSSES], ids=IDS)
@pytest.mark.parametrize("fill", [float("-inf"), float("inf"), float("nan"), 1e30])
def test_padding_is_ignored_whatever_it_holds(fn, fill):
    """Padded items (any score and relevance, -inf and NaN included) change nothing and get a
    zero, finite gradient: the loss equals the loss on the real items alone."""
    s, r, _ = _lists()
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[:, 5:] = False
    padded_s = torch.where(mask, s, fill).requires_grad_(True)
    padded_r = torch.where(mask, r, fill)
    out = fn(padded_s, padded_r, mask=mask, reduction="none")
    sliced = fn(s[:, :5], r[:, :5], reduction="none")
    torch.testing.assert_close(out, sliced, **TOL)
    out.sum().backward()
    assert torch.isfinite(padded_s.grad).all() and torch.all(padded_s.grad[:, 5:] == 0)


@pytest.mark.parametrize("fn", [f for f, _ in LOSSES], ids=IDS)
def test_nothing_to_rank_gives_zero_with_zero_gradient_or_nan(fn):
    s, r, _ = _lists()
    s.requires_grad_(True)
    nothing = torch.zeros(5, 7, dtype=torch.bool)
    out = fn(s, r, mask=nothing)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))
    assert torch.isnan(fn(s, r, mask=nothing, empty="nan"))


def test_ranknet_ties_make_no_pair_and_all_ties_is_empty():
    s = torch.randn(2, 4, dtype=torch.float64)
    r = torch.ones(2, 4, dtype=torch.float64)
    assert LF.ranknet_loss(s, r).item() == 0.0
    assert torch.isnan(LF.ranknet_loss(s, r, empty="nan"))


def test_ranknet_equals_bce_with_logits_on_enumerated_pairs():
    """A RankNet pair is BCE-with-logits on σ(s_i - s_j) with target 1 (PyTorch as the peer)."""
    s, r, _ = _lists(torch.float32)
    sigma = 1.7
    pairs = [(n, i, j) for n in range(5) for i in range(7) for j in range(7) if r[n, i] > r[n, j]]
    idx = torch.tensor(pairs)

    def peer(x):
        logits = sigma * (x[idx[:, 0], idx[:, 1]] - x[idx[:, 0], idx[:, 2]])
        per = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
        counts = torch.bincount(idx[:, 0], minlength=5).float()
        return (torch.zeros(5).index_add(0, idx[:, 0], per) / counts).mean()

    a, b = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    got, want = LF.ranknet_loss(a, r, sigma=sigma), peer(b)
    got.backward()
    want.backward()
    torch.testing.assert_close(got, want, **PEER)
    torch.testing.assert_close(a.grad, b.grad, **PEER)


def test_listnet_matches_optax_ranking_softmax_loss():
    """optax.losses.ranking_softmax_loss normalises the labels to sum to 1; given labels =
    softmax(relevance) over the real items it is ListNet. ``where`` is its padding mask; its
    default reduce_fn averages over lists."""
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    s, r, mask = _lists(torch.float32)
    mask[3:] = True   # optax averages over every list; keep each list non-empty
    target = torch.softmax(torch.where(mask, r, float("-inf")), dim=1)
    where = jnp.asarray(mask.numpy())

    def peer(x):
        return optax.losses.ranking_softmax_loss(x, jnp.asarray(target.numpy()), where=where)

    value, grad = jax.value_and_grad(peer)(jnp.asarray(s.numpy()))
    a = s.clone().requires_grad_(True)
    out = LF.listnet_loss(a, r, mask=mask)
    out.backward()
    np.testing.assert_allclose(out.item(), float(value), rtol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), np.asarray(grad), rtol=1e-5, atol=1e-6)


def test_listmle_sorted_scores_and_extremes():
    r = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    good = torch.tensor([[30.0, 20.0, 10.0, 0.0]], requires_grad=True)
    assert LF.listmle_loss(good, r).item() < 1e-3            # the right order is near-certain
    bad = torch.tensor([[0.0, 10.0, 20.0, 30.0]])
    assert LF.listmle_loss(bad, r).item() > 50
    huge = (torch.randn(3, 6, dtype=torch.float64) * 1e4).requires_grad_(True)
    for fn, _ in LOSSES:
        out = fn(huge, torch.randint(0, 3, (3, 6)).double())
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(huge.grad).all()


def test_listnet_single_item_list_is_zero_and_modules_match():
    s, r = torch.randn(2, 3), torch.randn(2, 3)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    assert LF.listnet_loss(s, r, mask=mask, reduction="none")[0].item() == pytest.approx(0.0, abs=1e-7)
    for mod, (fn, _) in zip((LN.RankNetLoss(sigma=2.0), LN.ListNetLoss(), LN.ListMLELoss()), LOSSES):
        kw = {"sigma": 2.0} if fn is LF.ranknet_loss else {}
        torch.testing.assert_close(mod(s, r, mask=mask), fn(s, r, mask=mask, **kw), rtol=0, atol=0)


def test_bad_mask_and_shapes_raise():
    s, r = torch.randn(2, 3), torch.randn(2, 3)
    with pytest.raises(LossInputError, match="mask"):
        LF.listmle_loss(s, r, mask=torch.ones(2, 3))
    with pytest.raises(LossInputError, match="mask"):
        LF.listnet_loss(s, r, mask=torch.ones(2, dtype=torch.bool))
    with pytest.raises(LossInputError, match="relevance"):
        LF.ranknet_loss(s, r[:, :2])
    with pytest.raises(LossInputError, match="scores"):
        LF.ranknet_loss(s[0], r[0])
