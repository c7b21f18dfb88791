"""Metric-learning losses: values and gradients against float64 loop references (1e-10) and
against PyTorch, pytorch-metric-learning, optax and Keras for equivalent options (1e-6), plus
the behaviours the issue pins: finite gradients at zero distance, the empty policy, mining
statistics and O(B²) memory (PITFALLS 2, 6, 24)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit
import losskit.functional as LF
import losskit.nn as LN
from losskit import LossInputError
from reference import metric_ref as ref

TOL = {"rtol": 1e-10, "atol": 1e-10}
PEER = {"rtol": 1e-6, "atol": 1e-6}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=_gen(seed), dtype=dtype)


def _grads(fn, *tensors):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    out.backward()
    return out.detach(), [leaf.grad for leaf in leaves]


def _close(a, b, **tol):
    torch.testing.assert_close(a, b.to(a.dtype), **(tol or TOL))


def _batch(b=10, d=4, seed=0, dtype=torch.float64, singleton=True):
    x = _randn(b, d, seed=seed, dtype=dtype)
    labels = torch.arange(b) % 3
    if singleton:
        labels[-1] = 7  # an anchor with no positive
    return x, labels


# ----------------------------------------------------------------------------- PyTorch parity


def _triplets(n=7, d=5, seed=0, dtype=torch.float64):
    return _randn(n, d, seed=seed, dtype=dtype), _randn(n, d, seed=seed + 1, dtype=dtype), \
        _randn(n, d, seed=seed + 2, dtype=dtype)


@pytest.mark.parametrize("kw", [{}, {"margin": 0.3, "swap": True}, {"p": 1.0, "eps": 1e-3},
                                {"p": 3.0, "margin": 2.0}])
def test_triplet_margin_matches_reference_value_and_all_gradients(kw):
    a, p, n = _triplets()
    rkw = {"margin": kw.get("margin", 1.0), "norm": kw.get("p", 2.0), "eps": kw.get("eps", 1e-6),
           "swap": kw.get("swap", False)}
    got, g = _grads(lambda *t: LF.triplet_margin_loss(*t, **kw), a, p, n)
    want, w = _grads(lambda *t: ref.triplet_margin(*t, **rkw).mean(), a, p, n)
    _close(got, want)
    for x, y in zip(g, w):
        _close(x, y)


PARITY = [
    (LF.triplet_margin_loss, F.triplet_margin_loss, "triplet", {"margin": 0.5, "p": 1.5, "swap": True}),
    (LF.triplet_margin_loss, F.triplet_margin_loss, "triplet", {"eps": 1e-3}),
    (LF.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss, "triplet",
     {"margin": 0.7, "swap": True}),
    (LF.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss, "triplet",
     {"distance_function": lambda x, y: 1 - F.cosine_similarity(x, y), "margin": 0.2}),
    (LF.margin_ranking_loss, F.margin_ranking_loss, "ranking", {"margin": 0.3}),
    (LF.cosine_embedding_loss, F.cosine_embedding_loss, "cosine", {"margin": 0.1}),
    (LF.hinge_embedding_loss, F.hinge_embedding_loss, "hinge", {"margin": 1.5}),
]


def _parity_inputs(kind, dtype=torch.float32):
    if kind == "triplet":
        return _triplets(dtype=dtype), (0, 1, 2)
    x1, x2 = _randn(8, 5, seed=3, dtype=dtype), _randn(8, 5, seed=4, dtype=dtype)
    if kind == "ranking":
        return (x1, x2, torch.where(_randn(8, 5, seed=5) > 0, 1.0, -1.0).to(dtype)), (0, 1)
    if kind == "cosine":
        return (x1, x2, torch.tensor([1, -1, 1, -1, 1, -1, 1, -1], dtype=dtype)), (0, 1)
    y = torch.tensor([1.0, -1.0, 0.0, 1.0, -1.0]).repeat(8, 1).to(dtype)  # 0: neither ±1
    return (x1.abs(), y), (0,)


@pytest.mark.parametrize("ours,peer,kind,kw", PARITY,
                         ids=["triplet", "triplet_eps", "tmwd", "tmwd_cosine", "margin_ranking",
                              "cosine_embedding", "hinge_embedding"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_parity_value_and_gradient_float32(ours, peer, kind, kw, reduction):
    """Same options, same numbers: the drop-in promise (value and every input's gradient)."""
    inputs, grad = _parity_inputs(kind)
    upstream = torch.linspace(0.5, 1.5, 40)

    def run(fn):
        xs = [t.clone().requires_grad_(i in grad) for i, t in enumerate(inputs)]
        out = fn(*xs, **kw, reduction=reduction)
        (out * upstream[: out.numel()].reshape(out.shape)).sum().backward()
        return out.detach(), [xs[i].grad for i in grad]

    got, g = run(ours)
    want, w = run(peer)
    _close(got, want, **PEER)
    for x, y in zip(g, w):
        _close(x, y, **PEER)


@pytest.mark.parametrize("kind,fn,rf", [
    ("ranking", LF.margin_ranking_loss, ref.margin_ranking),
    ("cosine", LF.cosine_embedding_loss, ref.cosine_embedding),
    ("hinge", LF.hinge_embedding_loss, ref.hinge_embedding),
])
def test_pair_losses_match_reference(kind, fn, rf):
    inputs, grad = _parity_inputs(kind, torch.float64)
    kw = {"margin": 0.3}
    fixed = [t for i, t in enumerate(inputs) if i not in grad]

    def call(f, **extra):
        return lambda *xs: f(*xs, *fixed, **kw, **extra)

    got, g = _grads(call(fn, reduction="sum"), *[inputs[i] for i in grad])
    want, w = _grads(lambda *xs: rf(*xs, *fixed, **kw).sum(), *[inputs[i] for i in grad])
    _close(got, want)
    for x, y in zip(g, w):
        _close(x, y)


def test_unbatched_triplet_and_cosine_follow_torch():
    a, p, n = (t[0] for t in _triplets(dtype=torch.float32))
    _close(LF.triplet_margin_loss(a, p, n), F.triplet_margin_loss(a, p, n), **PEER)
    y = torch.tensor(-1.0)
    _close(LF.cosine_embedding_loss(a, p, y, reduction="none"),
           F.cosine_embedding_loss(a[None], p[None], y[None], reduction="none")[0], **PEER)


def test_no_silent_broadcasting_of_pairs():
    """PITFALLS 2: (N, 1) against (N,) raises and says the fix."""
    x = torch.randn(5)
    with pytest.raises(LossInputError, match="squeeze"):
        LF.margin_ranking_loss(x[:, None], x, torch.ones(5))
    with pytest.raises(LossInputError, match="squeeze"):
        LF.hinge_embedding_loss(x[:, None], torch.ones(5))
    with pytest.raises(LossInputError, match="target"):
        LF.cosine_embedding_loss(torch.randn(5, 3), torch.randn(5, 3), torch.ones(5, 1))
    with pytest.raises(LossInputError, match="label"):
        LF.contrastive_loss(torch.randn(5, 3), torch.randn(5, 3), torch.ones(5, 1))


def test_micro_batches_with_global_normalizer_equal_the_full_batch():
    """PITFALLS 1: per-sample losses split into micro-batches with reduction="sum" and the
    global count as normalizer add up to the full-batch mean."""
    a, p, n = _triplets(n=8)
    x, labels, w = _centres()
    y = (torch.arange(8) % 2).double()
    cases = [
        (lambda s: LF.triplet_margin_loss(a[s], p[s], n[s], reduction="sum", normalizer=8),
         LF.triplet_margin_loss(a, p, n)),
        (lambda s: LF.contrastive_loss(a[s], p[s], y[s], reduction="sum", normalizer=8),
         LF.contrastive_loss(a, p, y)),
        (lambda s: LF.arcface_loss(x[s], labels[s], w, scale=8.0, reduction="sum", normalizer=9),
         LF.arcface_loss(x, labels, w, scale=8.0)),
    ]
    for part, full in cases:
        _close(part(slice(0, 3)) + part(slice(3, None)), full)


def test_triplet_with_distance_requires_positive_margin_like_torch():
    a, p, n = _triplets()
    with pytest.raises(LossInputError, match="margin"):
        LF.triplet_margin_with_distance_loss(a, p, n, margin=0.0)


# ----------------------------------------------------------------------------- contrastive


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_contrastive_matches_hadsell_reference(distance):
    x1, x2 = _randn(9, 4, seed=1), _randn(9, 4, seed=2)
    y = (torch.arange(9) % 2).double()
    margin = 2.5 if distance == "euclidean" else 1.2
    got, g = _grads(lambda a, b: LF.contrastive_loss(a, b, y, margin=margin, distance=distance), x1, x2)
    want, w = _grads(lambda a, b: ref.contrastive(a, b, y, margin, distance).mean(), x1, x2)
    assert 0 < got < 10
    _close(got, want)
    for a, b in zip(g, w):
        _close(a, b)


def test_contrastive_matches_pml_per_pair_losses():
    """PML ContrastiveLoss(pos_margin=0, neg_margin=m) with LpDistance(normalize_embeddings=False)
    gives per-pair d (similar) and max(0, m - d) (dissimilar); ours is ½·(that)². Compared per
    pair through PML's own pair pipeline (indices_tuple, DoNothingReducer), value and gradient."""
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import ContrastiveLoss
    from pytorch_metric_learning.reducers import DoNothingReducer

    n, m = 8, 3.0
    x1, x2 = _randn(n, 4, seed=1, dtype=torch.float32), _randn(n, 4, seed=2, dtype=torch.float32)
    y = torch.tensor([1, 0, 1, 0, 0, 1, 0, 0])
    pos, neg = torch.nonzero(y == 1)[:, 0], torch.nonzero(y == 0)[:, 0]
    loss_fn = ContrastiveLoss(pos_margin=0, neg_margin=m, distance=LpDistance(normalize_embeddings=False),
                              reducer=DoNothingReducer())

    def peer(a, b):
        out = loss_fn(torch.cat([a, b]), indices_tuple=(pos, pos + n, neg, neg + n))
        per = torch.zeros(n)
        per = per.index_put((pos,), 0.5 * out["pos_loss"]["losses"] ** 2)
        return per.index_put((neg,), 0.5 * out["neg_loss"]["losses"] ** 2)

    assert pml is not None
    got, g = _grads(lambda a, b: LF.contrastive_loss(a, b, y, margin=m, reduction="none").sum(), x1, x2)
    want, w = _grads(lambda a, b: peer(a, b).sum(), x1, x2)
    _close(got, want, **PEER)
    for a, b in zip(g, w):
        _close(a, b, **PEER)


# ----------------------------------------------------------------------------- mining


DISTANCES = ["euclidean", "squared", "cosine"]


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("margin", [0.5, "soft"])
def test_batch_hard_matches_loop_reference(distance, margin):
    x, labels = _batch()
    m = 0.3 if distance == "cosine" and margin != "soft" else margin
    got, (g,) = _grads(lambda e: LF.batch_hard_triplet_loss(e, labels, margin=m, distance=distance), x)
    want, (w,) = _grads(lambda e: ref.batch_hard(e, labels, 0.0 if m == "soft" else m, distance,
                                                 soft=m == "soft")[0].mean(), x)
    assert got > 0
    _close(got, want)
    _close(g, w)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("average", ["active", "valid"])
def test_batch_all_matches_loop_reference(distance, average):
    x, labels = _batch()
    margin = 0.2 if distance == "cosine" else 1.0
    stats: dict = {}

    def want_fn(e):
        losses, _ = ref.batch_all(e, labels, margin, distance)
        denom = int((losses > 0).sum()) if average == "active" else losses.numel()
        return losses.sum() / denom

    got, (g,) = _grads(lambda e: LF.batch_all_triplet_loss(e, labels, margin=margin, distance=distance,
                                                           average=average, stats=stats), x)
    want, (w,) = _grads(want_fn, x)
    _close(got, want)
    _close(g, w)
    losses, trip = ref.batch_all(x, labels, margin, distance)
    assert stats["valid_triplets"] == len(trip)
    assert stats["active_triplets"] == int((losses > 0).sum())
    assert 0 < stats["active_triplets"] < stats["valid_triplets"]  # the test exercises both
    # per-anchor sums under "none"
    per_anchor = LF.batch_all_triplet_loss(x, labels, margin=margin, distance=distance, reduction="none")
    for a in range(x.shape[0]):
        want_a = sum(float(v) for v, t in zip(losses, trip) if t[0] == a)
        assert abs(float(per_anchor[a]) - want_a) < 1e-10


@pytest.mark.parametrize("fn", [LF.batch_all_triplet_loss, LF.semi_hard_triplet_loss])
def test_float32_distances_survive_a_large_common_offset(fn):
    """Distances from the Gram matrix lose precision when embeddings sit far from the origin
    (|x|² ≫ d²); the rows are centred first, so a common offset of 1000 changes nothing."""
    x, labels = _batch(b=12, d=8)
    want = fn(x, labels, margin=0.5)
    got = fn((x + 1000.0).float(), labels, margin=0.5)
    assert abs(float(got) - float(want)) < 1e-4 * float(want)


def test_batch_all_ties_at_the_hinge_are_inactive():
    """A triplet exactly at the margin (d_an = d_ap + m) has loss 0 and is not counted active."""
    x = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    stats: dict = {}
    out = LF.batch_all_triplet_loss(x, torch.tensor([0, 0, 1]), margin=1.0, stats=stats,
                                    reduction="sum")
    # triplets (0,1,2): 1 + 1 - 2 = 0; (1,0,2): 1 + 1 - 1 = 1
    assert float(out) == 1.0 and float(stats["active_triplets"]) == 1.0


@pytest.mark.parametrize("distance", DISTANCES)
def test_semi_hard_matches_loop_reference(distance):
    x, labels = _batch(b=12, seed=3)
    margin = 0.3 if distance == "cosine" else 1.0
    stats: dict = {}
    got, (g,) = _grads(lambda e: LF.semi_hard_triplet_loss(e, labels, margin=margin, distance=distance,
                                                           stats=stats), x)
    want, (w,) = _grads(lambda e: ref.semi_hard(e, labels, margin, distance)[0].mean(), x)
    _close(got, want)
    _close(g, w)
    losses, pairs = ref.semi_hard(x, labels, margin, distance)
    assert stats["valid_triplets"] == len(pairs)
    assert stats["active_triplets"] == int((losses > 0).sum())


def test_semi_hard_uses_farthest_negative_when_none_is_farther():
    x = torch.tensor([[0.0], [3.0], [1.0], [2.0]], dtype=torch.float64)
    # (0, 1): d_ap = 3, negatives at 1 and 2, none farther -> farthest (2): 1 + 3 - 2 = 2
    out = LF.semi_hard_triplet_loss(x, torch.tensor([0, 0, 1, 1]), reduction="none")
    assert float(out[0]) == pytest.approx(2.0)


@pytest.mark.parametrize("distance", DISTANCES)
def test_batch_hard_ties_and_anchors_without_positives_match_reference(distance):
    """Validity is read off the mined columns: anchors without a positive (labels 2, 3) are 0
    under "none" and left out of "mean"; a tie between equally far positives goes to the first
    index (rows 1 and 2 coincide), as in the reference and PML."""
    x = _randn(7, 3, seed=5)
    x[2] = x[1]
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3])
    rows = LF.batch_hard_triplet_loss(x, labels, margin=1.0, distance=distance, reduction="none")
    want, anchors = ref.batch_hard(x, labels, 1.0, distance)
    assert anchors == [0, 1, 2, 3, 4] and bool((rows[5:] == 0).all())
    _close(rows[:5], want)
    w = torch.arange(1.0, 8.0, dtype=torch.float64)          # a non-uniform upstream gradient
    got, (g,) = _grads(lambda e: (LF.batch_hard_triplet_loss(e, labels, distance=distance,
                                                             reduction="none") * w).sum(), x)
    exp, (r,) = _grads(lambda e: (ref.batch_hard(e, labels, 1.0, distance)[0] * w[:5]).sum(), x)
    _close(got, exp)
    _close(g, r)


@pytest.mark.parametrize("fn", [LF.batch_hard_triplet_loss, LF.batch_all_triplet_loss,
                                LF.semi_hard_triplet_loss, LF.circle_loss])
def test_no_valid_triplet_gives_zero_with_zero_gradient_or_nan(fn):
    """PITFALLS 6/24: all labels distinct (no positive) -> 0 with a zero gradient, still in the
    graph; empty="nan" -> NaN."""
    x = _randn(5, 3).requires_grad_(True)
    labels = torch.arange(5)
    out = fn(x, labels)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.isnan(fn(x, labels, empty="nan"))
    # a single class: no negative either
    assert fn(x, torch.zeros(5, dtype=torch.long)).item() == 0.0


def test_batch_hard_stats_tell_empty_from_easy():
    x, labels = _batch()
    stats: dict = {}
    far = x + 100.0 * labels[:, None].double()
    LF.batch_hard_triplet_loss(far, labels, stats=stats)
    assert float(stats["valid_triplets"]) == 9 and float(stats["active_triplets"]) == 0
    assert float(stats["fraction_active"]) == 0.0
    LF.batch_hard_triplet_loss(x, torch.arange(10), stats=stats)
    assert float(stats["valid_triplets"]) == 0


def _saved_bytes(fn, *inputs):
    total = 0
    seen = {t.untyped_storage().data_ptr() for t in inputs}

    def pack(t):
        nonlocal total
        if t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*inputs)
    return total


@pytest.mark.parametrize("fn", [LF.batch_hard_triplet_loss, LF.batch_all_triplet_loss,
                                LF.semi_hard_triplet_loss, LF.circle_loss, LF.multi_similarity_loss])
def test_mining_memory_is_quadratic_not_cubic(fn):
    """No B×B×B tensor: what autograd saves stays a small multiple of B² (B³ would be 128×)."""
    b = 128
    x = torch.randn(b, 16, requires_grad=True)
    labels = torch.arange(b) % 16
    saved = _saved_bytes(lambda e: fn(e, labels), x)
    assert saved < 40 * b * b * 4, saved / (b * b * 4)


# ----------------------------------------------------------------------------- mining peers


def _pml():
    return pytest.importorskip("pytorch_metric_learning")


@pytest.mark.parametrize("distance", ["euclidean", "squared", "cosine"])
def test_batch_hard_matches_pml_triplet_with_batch_hard_miner(distance):
    """PML TripletMarginLoss + BatchHardMiner, with LpDistance(normalize_embeddings=False) (PML
    normalises by default), power=2 for "squared", CosineSimilarity for "cosine" (PML's margin
    on similarities s_an - s_ap + m equals ours on 1 - s), and MeanReducer (the mean over mined
    anchors; PML's default AvgNonZeroReducer would drop the inactive ones)."""
    _pml()
    from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner
    from pytorch_metric_learning.reducers import MeanReducer

    x, labels = _batch(b=16, d=6, dtype=torch.float32)
    dist = {"euclidean": LpDistance(normalize_embeddings=False),
            "squared": LpDistance(normalize_embeddings=False, power=2),
            "cosine": CosineSimilarity()}[distance]
    margin = 0.3
    miner = BatchHardMiner(distance=dist)
    loss_fn = TripletMarginLoss(margin=margin, distance=dist, reducer=MeanReducer())
    got, (g,) = _grads(lambda e: LF.batch_hard_triplet_loss(e, labels, margin=margin, distance=distance), x)
    want, (w,) = _grads(lambda e: loss_fn(e, labels, miner(e, labels)), x)
    _close(got, want, **PEER)
    _close(g, w, rtol=1e-5, atol=1e-6)


def test_batch_hard_soft_margin_matches_pml_smooth_loss():
    """Hermans' soft margin = PML TripletMarginLoss(margin=0, smooth_loss=True)."""
    _pml()
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner
    from pytorch_metric_learning.reducers import MeanReducer

    x, labels = _batch(b=16, d=6, dtype=torch.float32)
    dist = LpDistance(normalize_embeddings=False)
    loss_fn = TripletMarginLoss(margin=0.0, smooth_loss=True, distance=dist, reducer=MeanReducer())
    got, (g,) = _grads(lambda e: LF.batch_hard_triplet_loss(e, labels, margin="soft"), x)
    want, (w,) = _grads(lambda e: loss_fn(e, labels, BatchHardMiner(distance=dist)(e, labels)), x)
    _close(got, want, **PEER)
    _close(g, w, rtol=1e-5, atol=1e-6)


def test_batch_all_matches_pml_all_triplets_avg_nonzero():
    """PML TripletMarginLoss without a miner uses every triplet and AvgNonZeroReducer: ours
    with average="active"."""
    _pml()
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss

    x, labels = _batch(b=16, d=6, dtype=torch.float32)
    loss_fn = TripletMarginLoss(margin=0.8, distance=LpDistance(normalize_embeddings=False))
    got, (g,) = _grads(lambda e: LF.batch_all_triplet_loss(e, labels, margin=0.8), x)
    want, (w,) = _grads(lambda e: loss_fn(e, labels), x)
    _close(got, want, **PEER)
    _close(g, w, rtol=1e-5, atol=1e-6)


def test_optax_triplet_margin_per_triplet_and_batch_all_sum():
    """optax.losses.triplet_margin_loss puts eps under the root (sqrt(Σ(a-p)² + eps)) while
    PyTorch adds it to the differences; with eps=0 both are the plain Euclidean distance.
    Per-triplet parity, then the batch-all sum equals optax summed over every valid triplet
    (value and gradient via jax.grad)."""
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    a, p, n = _triplets(dtype=torch.float32)
    got = LF.triplet_margin_loss(a, p, n, margin=0.5, eps=0.0, reduction="none")
    want = optax.losses.triplet_margin_loss(*(jnp.asarray(t.numpy()) for t in (a, p, n)), margin=0.5,
                                            eps=0.0)
    np.testing.assert_allclose(got.numpy(), np.asarray(want), **PEER)

    x, labels = _batch(b=12, d=5, dtype=torch.float32)
    idx = np.array(ref.all_triplets(labels))

    def peer(e):
        return optax.losses.triplet_margin_loss(e[idx[:, 0]], e[idx[:, 1]], e[idx[:, 2]], margin=0.7,
                                                eps=0.0).sum()

    value, grad = jax.value_and_grad(peer)(jnp.asarray(x.numpy()))
    out, (g,) = _grads(lambda e: LF.batch_all_triplet_loss(e, labels, margin=0.7, reduction="sum"), x)
    np.testing.assert_allclose(out.item(), float(value), rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), np.asarray(grad), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- circle, MS


@pytest.mark.parametrize("detach", [True, False])
def test_circle_matches_paper_reference(detach):
    x, labels = _batch(seed=2)
    kw = {"m": 0.25, "gamma": 32.0}
    got, (g,) = _grads(lambda e: LF.circle_loss(e, labels, **kw, detach_weights=detach), x)
    want, (w,) = _grads(lambda e: ref.circle(e, labels, kw["m"], kw["gamma"], detach)[0].mean(), x)
    _close(got, want)
    _close(g, w)


def test_circle_true_gradient_passes_gradcheck():
    x, labels = _batch(b=8, seed=2)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda e: LF.circle_loss(e, labels, gamma=16.0, detach_weights=False), (x,), atol=1e-6)


@pytest.mark.parametrize("m,gamma", [(0.4, 80.0), (0.25, 256.0)])
def test_circle_matches_pml(m, gamma):
    _pml()
    from pytorch_metric_learning.losses import CircleLoss

    x, labels = _batch(b=16, d=6, dtype=torch.float32)
    got, (g,) = _grads(lambda e: LF.circle_loss(e, labels, m=m, gamma=gamma), x)
    want, (w,) = _grads(lambda e: CircleLoss(m=m, gamma=gamma)(e, labels), x)
    _close(got, want, **PEER)
    _close(g, w, rtol=1e-5, atol=1e-5)


def test_circle_matches_keras_values_and_its_undetached_gradient():
    """keras.losses.circle takes pre-normalised embeddings and differentiates through the
    weights α: equal per-anchor values, and equal gradients with detach_weights=False. Its
    defaults are margin=0.4, gamma=80 and remove_diagonal=True (our positives exclude self)."""
    pytest.importorskip("keras")
    import keras

    x, labels = _batch(b=12, d=5, dtype=torch.float32)
    got, (g,) = _grads(lambda e: LF.circle_loss(e, labels, m=0.4, gamma=80.0, detach_weights=False,
                                                reduction="none").sum(), x)
    want, (w,) = _grads(lambda e: keras.losses.circle(labels, F.normalize(e), gamma=80, margin=0.4).sum(), x)
    _close(got, want.float(), **PEER)
    _close(g, w.float(), rtol=1e-5, atol=1e-5)


def test_multi_similarity_matches_reference_and_pml():
    x, labels = _batch(seed=4)
    kw = {"alpha": 2.0, "beta": 40.0, "base": 0.4}
    got, (g,) = _grads(lambda e: LF.multi_similarity_loss(e, labels, **kw), x)
    want, (w,) = _grads(lambda e: ref.multi_similarity(e, labels, **kw).mean(), x)
    _close(got, want)
    _close(g, w)

    _pml()
    from pytorch_metric_learning.losses import MultiSimilarityLoss

    xf = x.float()
    got, (g,) = _grads(lambda e: LF.multi_similarity_loss(e, labels, **kw), xf)
    want, (w,) = _grads(lambda e: MultiSimilarityLoss(**kw)(e, labels), xf)
    _close(got, want, **PEER)
    _close(g, w, rtol=1e-5, atol=1e-6)


def test_multi_similarity_with_mining_matches_pml_miner_and_loss():
    """epsilon=ε is the paper's pair mining: equal to the loop reference (1e-10) and to PML's
    MultiSimilarityMiner(epsilon=ε) feeding MultiSimilarityLoss (1e-6)."""
    _pml()
    from pytorch_metric_learning.losses import MultiSimilarityLoss
    from pytorch_metric_learning.miners import MultiSimilarityMiner

    x, labels = _batch(b=16, d=3, seed=5)
    kw = {"alpha": 2.0, "beta": 50.0, "base": 0.5}
    got, (g,) = _grads(lambda e: LF.multi_similarity_loss(e, labels, **kw, epsilon=0.1), x)
    want, (w,) = _grads(lambda e: ref.multi_similarity(e, labels, **kw, epsilon=0.1).mean(), x)
    _close(got, want)
    _close(g, w)

    x = x.float()
    miner, loss_fn = MultiSimilarityMiner(epsilon=0.1), MultiSimilarityLoss(**kw)
    got, (g,) = _grads(lambda e: LF.multi_similarity_loss(e, labels, **kw, epsilon=0.1), x)
    want, (w,) = _grads(lambda e: loss_fn(e, labels, miner(e, labels)), x)
    unmined = LF.multi_similarity_loss(x, labels, **kw)
    assert abs(float(got) - float(unmined)) > 1e-3          # the mining changes the loss here
    _close(got, want, **PEER)
    _close(g, w, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- class centres


def _centres(dtype=torch.float64):
    x = _randn(9, 6, seed=5, dtype=dtype)
    w = _randn(4, 6, seed=6, dtype=dtype)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0])
    return x, labels, w


@pytest.mark.parametrize("name", ["arcface", "cosface"])
def test_margin_softmax_matches_reference(name):
    x, labels, w = _centres()
    fn, rf = (LF.arcface_loss, ref.arcface) if name == "arcface" else (LF.cosface_loss, ref.cosface)
    kw = {"margin": 0.4, "scale": 16.0}
    got, g = _grads(lambda e, c: fn(e, labels, c, **kw), x, w)
    want, wg = _grads(lambda e, c: rf(e, labels, c, **kw).mean(), x, w)
    _close(got, want)
    for a, b in zip(g, wg):
        _close(a, b)


def test_arcface_fallback_branch_past_pi_minus_margin():
    """θ + m > π: the target logit is cos θ - m·sin m (insightface, PML)."""
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    x = torch.tensor([[-1.0, 0.05]], dtype=torch.float64)   # θ ≈ π - 0.05 from class 0
    got, g = _grads(lambda e, c: LF.arcface_loss(e, torch.tensor([0]), c, margin=0.5, scale=4.0), x, w)
    want, wg = _grads(lambda e, c: ref.arcface(e, torch.tensor([0]), c, 0.5, 4.0).mean(), x, w)
    _close(got, want)
    for a, b in zip(g, wg):
        _close(a, b)


@pytest.mark.parametrize("name", ["arcface", "cosface"])
def test_margin_softmax_matches_pml_given_the_same_centres(name):
    """PML stores W as (embedding_size, num_classes) and ArcFace's margin in degrees: pass W.T
    and radians(margin). Compared in float64 (PML's acos route and our cos(θ+m) identity round
    differently in float32 at scale 64)."""
    _pml()
    from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss

    x, labels, w = _centres()
    if name == "arcface":
        peer = ArcFaceLoss(num_classes=4, embedding_size=6, margin=28.6, scale=64)
        ours = lambda e, c: LF.arcface_loss(e, labels, c, margin=math.radians(28.6), scale=64.0)  # noqa: E731
    else:
        peer = CosFaceLoss(num_classes=4, embedding_size=6, margin=0.35, scale=64)
        ours = lambda e, c: LF.cosface_loss(e, labels, c, margin=0.35, scale=64.0)  # noqa: E731
    peer = peer.double()
    peer.W = torch.nn.Parameter(w.T.clone())
    got, g = _grads(ours, x, w)
    want, (wx,) = _grads(lambda e: peer(e, labels), x)
    _close(got, want, **PEER)
    _close(g[0], wx, **PEER)
    _close(g[1], peer.W.grad.T, **PEER)
    # float32 agrees to float32 rounding at scale 64
    got32 = ours(x.float(), w.float())
    _close(got32, want.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,fn", [(LN.ArcFaceLoss, LF.arcface_loss), (LN.CosFaceLoss, LF.cosface_loss)])
def test_centre_modules_own_learnable_weight(cls, fn):
    torch.manual_seed(0)
    mod = cls(4, 6, scale=16.0)
    assert isinstance(mod.weight, torch.nn.Parameter) and mod.weight.shape == (4, 6)
    assert [n for n, _ in mod.named_parameters()] == ["weight"]
    x, labels, _ = _centres(torch.float32)
    out = mod(x, labels)
    _close(out, fn(x, labels, mod.weight, scale=16.0, margin=mod.margin), rtol=0, atol=0)
    out.backward()
    assert mod.weight.grad is not None and torch.isfinite(mod.weight.grad).all()
    assert "num_classes=4" in repr(mod)
    assert isinstance(losskit.get(fn.__losskit_spec__.name, num_classes=3, embedding_size=2), cls)
    assert mod(x, labels, reduction="none").shape == (9,)


def test_centre_weight_layout_is_checked():
    x, labels, w = _centres()
    with pytest.raises(LossInputError, match=r"W\.T"):
        LF.arcface_loss(x, labels, w.T)


# ----------------------------------------------------------------------------- zero distance


def _zero_distance_cases(dtype=torch.float64):
    e = _randn(6, 4, seed=9, dtype=dtype)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    dup = e.clone()
    dup[1], dup[3] = dup[0], dup[2]          # anchor == positive inside the batch
    w = _randn(3, 4, seed=10, dtype=dtype)
    w[0] = e[0]                              # an embedding exactly on its class centre
    y = torch.ones(6, dtype=dtype)
    return [
        ("triplet_margin", lambda a: LF.triplet_margin_loss(a, a.detach().clone(), e)),
        ("triplet_swap", lambda a: LF.triplet_margin_loss(a, a.detach().clone(), e, swap=True)),
        ("tmwd", lambda a: LF.triplet_margin_with_distance_loss(a, a.detach().clone(), e)),
        ("cosine_embedding", lambda a: LF.cosine_embedding_loss(a, a.detach().clone(), y)),
        ("cosine_embedding_zero_vector", lambda a: LF.cosine_embedding_loss(a * 0, a, y)),
        ("contrastive_sim", lambda a: LF.contrastive_loss(a, a.detach().clone(), y)),
        ("contrastive_dis", lambda a: LF.contrastive_loss(a, a.detach().clone(), 0 * y)),
        ("contrastive_cos", lambda a: LF.contrastive_loss(a, a.detach().clone(), 0 * y, distance="cosine")),
        ("margin_ranking", lambda a: LF.margin_ranking_loss(a, a.detach().clone(), torch.ones(6, 4))),
        ("hinge_embedding", lambda a: LF.hinge_embedding_loss(a * 0, torch.ones(6, 4))),
        *[(f"batch_hard_{d}", lambda a, d=d: LF.batch_hard_triplet_loss(a + (dup - e), labels, distance=d))
          for d in DISTANCES],
        *[(f"batch_all_{d}", lambda a, d=d: LF.batch_all_triplet_loss(a + (dup - e), labels, distance=d))
          for d in DISTANCES],
        *[(f"semi_hard_{d}", lambda a, d=d: LF.semi_hard_triplet_loss(a + (dup - e), labels, distance=d))
          for d in DISTANCES],
        ("circle", lambda a: LF.circle_loss(a + (dup - e), labels)),
        ("multi_similarity", lambda a: LF.multi_similarity_loss(a + (dup - e), labels)),
        ("arcface", lambda a: LF.arcface_loss(a, labels // 2, w)),
        ("cosface", lambda a: LF.cosface_loss(a, labels // 2, w)),
    ]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_zero_distance_gives_finite_gradient(dtype):
    """PITFALLS 24: anchor == positive (sqrt'(0) = ∞ in the naive formula) gives a finite loss
    and a finite gradient for every loss here."""
    for name, fn in _zero_distance_cases(dtype):
        a = _randn(6, 4, seed=9, dtype=dtype).requires_grad_(True)
        out = fn(a)
        assert torch.isfinite(out).all(), name
        out.sum().backward()
        assert torch.isfinite(a.grad).all(), name


def test_pml_arcface_at_the_centre_has_no_finite_gradient_but_ours_does():
    """Documents why the arccos is avoided: PML's acos(clamp(cos, -1, 1)) has an infinite
    derivative when an embedding sits on its centre."""
    _pml()
    from pytorch_metric_learning.losses import ArcFaceLoss

    w = torch.eye(3, 4, dtype=torch.float64)
    x = w[:2].clone().requires_grad_(True)
    labels = torch.tensor([0, 1])
    peer = ArcFaceLoss(num_classes=3, embedding_size=4).double()
    peer.W = torch.nn.Parameter(w.T.clone())
    peer(x, labels).backward()
    assert not torch.isfinite(x.grad).all()
    x.grad = None
    LF.arcface_loss(x, labels, w, margin=math.radians(28.6)).backward()
    assert torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- input errors


@pytest.mark.parametrize("fn", [LF.batch_hard_triplet_loss, LF.batch_all_triplet_loss,
                                LF.semi_hard_triplet_loss, LF.circle_loss, LF.multi_similarity_loss])
def test_mining_input_errors_name_the_argument(fn):
    x = torch.randn(6, 3)
    with pytest.raises(LossInputError, match="labels"):
        fn(x, torch.zeros(5, dtype=torch.long))
    with pytest.raises(LossInputError, match="labels"):
        fn(x, torch.zeros(6))
    with pytest.raises(LossInputError, match="embeddings"):
        fn(x[None], torch.zeros(6, dtype=torch.long))


def test_bad_distance_and_average_raise_with_did_you_mean():
    x, labels = _batch()
    with pytest.raises(LossInputError, match="euclidean"):
        LF.batch_hard_triplet_loss(x, labels, distance="euclidian")
    with pytest.raises(LossInputError, match="active"):
        LF.batch_all_triplet_loss(x, labels, average="nonzero")
    with pytest.raises(LossInputError, match="margin"):
        LF.batch_hard_triplet_loss(x, labels, margin="hard")


def test_compile_fullgraph_with_stats_dict():
    """The stats out-dict does not break fullgraph tracing."""
    x, labels = _batch(dtype=torch.float32)

    def f(e):
        stats: dict = {}
        out = LF.batch_all_triplet_loss(e, labels, stats=stats)
        return out, stats["active_triplets"]

    compiled = torch.compile(f, fullgraph=True, backend="eager")
    got, active = compiled(x)
    want, want_active = f(x)
    _close(got, want, **PEER)
    assert active == want_active
