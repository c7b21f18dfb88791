"""Batch-contrastive losses: values and gradients against float64 loop references written from
the papers, the peers (pytorch-metric-learning, optax), chunked == dense, zero distance, the
empty policy of SupCon, and the option checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import losskit.functional as LF
import losskit.nn as LN
from losskit import LossInputError
from losskit.losses import contrastive as C
from reference import contrastive_ref as ref

TOL = dict(rtol=1e-10, atol=1e-10)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _leaves(*xs: torch.Tensor) -> list[torch.Tensor]:
    return [x.detach().clone().requires_grad_(True) for x in xs]


def _value_and_grads(fn, xs):
    xs = _leaves(*xs)
    out = fn(*xs)
    grads = torch.autograd.grad(out, xs)
    return out.detach(), grads


def _assert_same(fn_a, fn_b, xs, **tol):
    va, ga = _value_and_grads(fn_a, xs)
    vb, gb = _value_and_grads(fn_b, xs)
    tol = tol or TOL
    torch.testing.assert_close(va, vb, **tol)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, **tol)


# --------------------------------------------------------------------------- references, 1e-10


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("chunk", [None, 3])
def test_info_nce_in_batch_matches_reference(normalize: bool, chunk: int | None) -> None:
    q, p = _randn(7, 5, seed=1), _randn(7, 5, seed=2)
    _assert_same(
        lambda a, b: LF.info_nce_loss(a, b, temperature=0.3, normalize=normalize, chunk_size=chunk),
        lambda a, b: sum(ref.info_nce(a, b, temperature=0.3, normalize=normalize)) / 7,
        (q, p),
    )


@pytest.mark.parametrize("mode", ["unpaired", "paired"])
@pytest.mark.parametrize("chunk", [None, 2])
def test_info_nce_explicit_negatives_matches_reference(mode: str, chunk: int | None) -> None:
    if mode == "paired" and chunk is not None:
        pytest.skip("paired negatives have no B×B matrix; chunk_size raises (tested below)")
    q, p = _randn(5, 4, seed=3), _randn(5, 4, seed=4)
    n = _randn(6, 4, seed=5) if mode == "unpaired" else _randn(5, 3, 4, seed=5)
    _assert_same(
        lambda a, b, c: LF.info_nce_loss(a, b, negative_keys=c, negative_mode=mode, temperature=0.2,
                                         chunk_size=chunk, reduction="sum"),
        lambda a, b, c: sum(ref.info_nce(a, b, c, temperature=0.2, mode=mode)),
        (q, p, n),
    )


@pytest.mark.parametrize("chunk", [None, 1, 4, 100])
def test_nt_xent_matches_simclr_reference(chunk: int | None) -> None:
    z1, z2 = _randn(6, 5, seed=6), _randn(6, 5, seed=7)
    _assert_same(
        lambda a, b: LF.nt_xent_loss(a, b, temperature=0.5, chunk_size=chunk),
        lambda a, b: ref.nt_xent(a, b, temperature=0.5),
        (z1, z2),
    )
    rows = LF.nt_xent_loss(z1, z2, temperature=0.5, reduction="none", chunk_size=chunk)
    torch.testing.assert_close(rows, torch.stack(ref.nt_xent_rows(z1, z2, 0.5)), **TOL)


@pytest.mark.parametrize("chunk", [None, 3])
def test_clip_matches_reference_with_learnable_scale(chunk: int | None) -> None:
    x, y = _randn(7, 6, seed=8), _randn(7, 6, seed=9)
    t = torch.tensor(2.7, dtype=torch.float64)
    _assert_same(
        lambda a, b, s: LF.clip_loss(a, b, logit_scale=s, chunk_size=chunk),
        lambda a, b, s: sum(ref.clip(a, b, s)) / 7,
        (x, y, t),
    )


@pytest.mark.parametrize("chunk", [None, 2])
@pytest.mark.parametrize("normalize", [True, False])
def test_siglip_matches_reference_with_learnable_scale_and_bias(chunk: int | None,
                                                                normalize: bool) -> None:
    x, y = _randn(5, 4, seed=10), _randn(5, 4, seed=11)
    t, b = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-10.0, dtype=torch.float64)
    _assert_same(
        lambda a, c, s, d: LF.siglip_loss(a, c, logit_scale=s, logit_bias=d, normalize=normalize,
                                          chunk_size=chunk),
        lambda a, c, s, d: sum(ref.siglip(a, c, s, d, normalize=normalize)) / 5,
        (x, y, t, b),
    )


def _supcon_ref_mean(f, labels, **kw):
    rows = [r for (_, _, r) in ref.supcon(f, labels, **kw) if r is not None]
    return sum(rows) / len(rows)


@pytest.mark.parametrize("mode", ["all", "one"])
@pytest.mark.parametrize("chunk", [None, 4])
@pytest.mark.parametrize("with_labels", [True, False])
def test_supcon_matches_khosla_reference(mode: str, chunk: int | None, with_labels: bool) -> None:
    f = _randn(6, 3, 4, seed=12)
    labels = [0, 1, 0, 2, 1, 1] if with_labels else None
    y = torch.tensor(labels) if with_labels else None
    _assert_same(
        lambda a: LF.supcon_loss(a, y, temperature=0.2, base_temperature=0.07, contrast_mode=mode,
                                 chunk_size=chunk),
        lambda a: _supcon_ref_mean(a, labels, temperature=0.2, base_temperature=0.07,
                                   contrast_mode=mode),
        (f,),
    )


def test_supcon_none_layout_is_sample_by_view() -> None:
    f = _randn(4, 2, 3, seed=13)
    y = [0, 1, 1, 0]
    rows = LF.supcon_loss(f, torch.tensor(y), temperature=0.5, base_temperature=0.5,
                          reduction="none")
    assert rows.shape == (4, 2)
    for i, v, r in ref.supcon(f, y, temperature=0.5, base_temperature=0.5):
        torch.testing.assert_close(rows[i, v], r, **TOL)


# --------------------------------------------------------------------------- chunked == dense


def _weighted(fn, w):
    # a non-uniform grad_output through reduction="none" (PITFALLS 11)
    return lambda *xs: (fn(*xs) * w).sum()


@pytest.mark.parametrize("chunk", [1, 5, 16, 64])
def test_chunked_equals_dense_every_loss_with_nonuniform_grad(chunk: int) -> None:
    x, y = _randn(16, 8, seed=14), _randn(16, 8, seed=15)
    w = _randn(16, seed=16).abs()
    w2 = _randn(32, seed=17).abs()
    temp = torch.tensor(0.3, dtype=torch.float64)
    cases = [
        (lambda c: lambda a, b, t: LF.info_nce_loss(a, b, temperature=t, reduction="none",
                                                     chunk_size=c), w),
        (lambda c: lambda a, b, t: LF.nt_xent_loss(a, b, temperature=t, reduction="none",
                                                    chunk_size=c), w2),
        (lambda c: lambda a, b, t: LF.clip_loss(a, b, logit_scale=1 / t, reduction="none",
                                                 chunk_size=c), w),
        (lambda c: lambda a, b, t: LF.siglip_loss(a, b, logit_scale=1 / t, logit_bias=-t * 10,
                                                   reduction="none", chunk_size=c), w),
    ]
    for make, weight in cases:
        _assert_same(_weighted(make(chunk), weight), _weighted(make(None), weight), (x, y, temp))
    f = x.reshape(16, 2, 4)
    labels = torch.tensor([0, 1, 2, 3] * 4)
    _assert_same(
        lambda a, t: (LF.supcon_loss(a, labels, temperature=t, reduction="none", chunk_size=chunk)
                      * w[:, None]).sum(),
        lambda a, t: (LF.supcon_loss(a, labels, temperature=t, reduction="none") * w[:, None]).sum(),
        (f, temp),
    )
    n = _randn(9, 8, seed=18)
    _assert_same(
        lambda a, b, m: LF.info_nce_loss(a, b, negative_keys=m, chunk_size=chunk),
        lambda a, b, m: LF.info_nce_loss(a, b, negative_keys=m),
        (x, y, n),
    )


def test_chunked_path_saves_no_quadratic_tensor() -> None:
    b, d = 256, 16
    x, y = _randn(b, d, seed=19, dtype=torch.float32), _randn(b, d, seed=20, dtype=torch.float32)

    def saved(fn) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*_leaves(x, y))
        return total

    square = (2 * b) ** 2 * 4
    dense = saved(lambda a, c: LF.nt_xent_loss(a, c))
    chunked = saved(lambda a, c: LF.nt_xent_loss(a, c, chunk_size=64))
    assert dense >= square                           # the dense path keeps the (2B)² softmax,
    assert dense < square + 8 * (2 * b) * (d + 8) * 4  # and only that one quadratic buffer
    assert chunked < 8 * (2 * b) * (d + 8) * 4       # the chunked one O(B·D): embeddings + stats


def test_chunked_path_traces_fullgraph(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _randn(8, 4, seed=21), _randn(8, 4, seed=22)
    # the automatic choice (16 × 16 logits > 100 entries → chunks of 48 // 16 = 3 rows)
    monkeypatch.setattr(C, "AUTO_CHUNK_ABOVE", 100)
    monkeypatch.setattr(C, "AUTO_CHUNK_BLOCK", 48)
    fn = torch.compile(lambda a, b: LF.nt_xent_loss(a, b), backend="eager", fullgraph=True)
    _assert_same(fn, lambda a, b: LF.nt_xent_loss(a, b), (x, y))
    fs = torch.compile(lambda a, b: LF.siglip_loss(a, b, logit_scale=10.0, logit_bias=-10.0,
                                                   chunk_size=3), backend="eager", fullgraph=True)
    _assert_same(fs, lambda a, b: LF.siglip_loss(a, b, logit_scale=10.0, logit_bias=-10.0), (x, y))


def test_chunked_gradcheck() -> None:
    x, y = _leaves(_randn(5, 3, seed=23), _randn(5, 3, seed=24))
    t = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, s: LF.clip_loss(a, b, logit_scale=s, chunk_size=2), (x, y, t))
    assert torch.autograd.gradcheck(
        lambda a, b, s: LF.siglip_loss(a, b, logit_scale=s, logit_bias=s - 1, chunk_size=2),
        (x, y, t))
    f = _leaves(_randn(4, 2, 3, seed=25))[0]
    assert torch.autograd.gradcheck(
        lambda a: LF.supcon_loss(a, torch.tensor([0, 1, 0, 1]), chunk_size=3), (f,))


# --------------------------------------------------------------------------- chunk_size="auto"


def _uses_chunked(out: torch.Tensor) -> bool:
    """Whether the autograd graph of ``out`` runs through a chunked Function."""
    todo, seen = [out.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "Chunked" in type(node).__name__:
            return True
        todo += [nxt for nxt, _ in node.next_functions]
    return False


def test_auto_chunk_threshold_and_block() -> None:
    above, block = C.AUTO_CHUNK_ABOVE, C.AUTO_CHUNK_BLOCK
    assert (above, block) == (2**24, 2**22)                   # the documented figures
    assert C._resolve_chunk("auto", 4096, 4096) is None        # NT-Xent at B = 2048: dense
    assert C._resolve_chunk("auto", 4096, 4097) == block // 4097
    assert C._resolve_chunk("auto", 8192, 8192) == 512         # NT-Xent at B = 4096
    assert C._resolve_chunk("auto", 2, 2**23 + 1) == 1         # a huge key set: one row a time
    assert C._resolve_chunk(None, 10**6, 10**6) is None         # None disables it
    assert C._resolve_chunk(7, 3, 3) == 7                       # an explicit size is kept


# (name, fn(x, y, t, chunk_size), float64 reference of the "mean", logits rows × cols at B=8)
_AUTO_CASES = [
    ("info_nce", lambda a, b, t, c: LF.info_nce_loss(a, b, temperature=t, chunk_size=c,
                                                      reduction="none"),
     lambda a, b, t: sum(ref.info_nce(a, b, temperature=t)) / 8, 8 * 8),
    ("nt_xent", lambda a, b, t, c: LF.nt_xent_loss(a, b, temperature=t, chunk_size=c,
                                                    reduction="none"),
     lambda a, b, t: ref.nt_xent(a, b, temperature=t), 16 * 16),
    ("clip", lambda a, b, t, c: LF.clip_loss(a, b, logit_scale=1 / t, chunk_size=c,
                                              reduction="none"),
     lambda a, b, t: sum(ref.clip(a, b, 1 / t)) / 8, 8 * 8),
    ("siglip", lambda a, b, t, c: LF.siglip_loss(a, b, logit_scale=1 / t, logit_bias=-2.0,
                                                  chunk_size=c, reduction="none"),
     lambda a, b, t: sum(ref.siglip(a, b, 1 / t, -2.0)) / 8, 8 * 8),
    ("supcon", lambda a, b, t, c: LF.supcon_loss(torch.stack([a, b], 1), torch.arange(8) % 3,
                                                  temperature=t, base_temperature=0.07,
                                                  chunk_size=c, reduction="none"),
     lambda a, b, t: _supcon_ref_mean(torch.stack([a, b], 1), [i % 3 for i in range(8)],
                                      temperature=t, base_temperature=0.07), 16 * 16),
]


@pytest.mark.parametrize("name,fn,reference,entries", _AUTO_CASES, ids=[c[0] for c in _AUTO_CASES])
def test_auto_chunking_on_both_sides_of_the_threshold(monkeypatch: pytest.MonkeyPatch, name, fn,
                                                      reference, entries: int) -> None:
    x, y = _randn(8, 6, seed=40), _randn(8, 6, seed=41)
    t = torch.tensor(0.3, dtype=torch.float64)
    monkeypatch.setattr(C, "AUTO_CHUNK_BLOCK", 3 * 16)         # 3 rows per chunk at 16 columns
    for threshold, chunked in ((entries, False), (entries - 1, True)):
        monkeypatch.setattr(C, "AUTO_CHUNK_ABOVE", threshold)
        a, b, s = _leaves(x, y, t)
        assert _uses_chunked(fn(a, b, s, "auto")) is chunked
        assert not _uses_chunked(fn(a, b, s, None))           # None never chunks
        # reduction="none" with a non-uniform upstream gradient (PITFALLS 11)
        w = _randn(8 if name != "nt_xent" else 16, seed=42).abs()
        w = w[:, None] if name == "supcon" else w
        _assert_same(_weighted(lambda p, q, r: fn(p, q, r, "auto"), w),
                     _weighted(lambda p, q, r: fn(p, q, r, None), w), (x, y, t))
        # the mean against the float64 reference, value and gradients
        _assert_same(lambda p, q, r: fn(p, q, r, "auto").mean(), reference, (x, y, t))



def test_auto_chunked_half_precision_and_extremes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "AUTO_CHUNK_ABOVE", 10)
    monkeypatch.setattr(C, "AUTO_CHUNK_BLOCK", 40)
    x, y = _randn(10, 4, seed=43), _randn(10, 4, seed=44)
    # half in, float32 out, close to float64 on the same (rounded) inputs
    out = LF.nt_xent_loss(*_leaves(x.half(), y.half()))
    assert out.dtype == torch.float32 and _uses_chunked(out)
    want = ref.nt_xent(x.half().double(), y.half().double(), temperature=0.5)
    assert abs(out.item() - want.item()) < 1e-3
    # huge unnormalised embeddings: logits ~1e8, still a finite value and finite gradients,
    # equal to the dense path's
    big = (x * 1e4, y * 1e4)
    for make in (lambda c: lambda a, b: LF.nt_xent_loss(a, b, normalize=False, chunk_size=c),
                 lambda c: lambda a, b: LF.siglip_loss(a, b, logit_scale=10.0, logit_bias=-10.0,
                                                       normalize=False, chunk_size=c)):
        value, grads = _value_and_grads(make("auto"), big)
        assert torch.isfinite(value) and all(torch.isfinite(g).all() for g in grads)
        _assert_same(make("auto"), make(None), big, rtol=1e-12, atol=1e-8)


@pytest.mark.parametrize("normalize", [True, False])
def test_second_order_gradients_through_the_chunked_path_equal_dense(normalize: bool) -> None:
    """create_graph=True through a chunked Function: Hessian-vector products, not silently
    first-order (the dense path is the oracle, and gradgradcheck checks it in float64)."""
    x, y = _randn(6, 3, seed=48), _randn(6, 3, seed=49)
    t = torch.tensor(0.4, dtype=torch.float64)
    v = [_randn(6, 3, seed=50), _randn(6, 3, seed=51), torch.tensor(0.7, dtype=torch.float64)]
    makes = [
        lambda c: lambda a, b, s: LF.nt_xent_loss(a, b, temperature=s, normalize=normalize,
                                                  chunk_size=c),
        lambda c: lambda a, b, s: LF.clip_loss(a, b, logit_scale=1 / s, normalize=normalize,
                                               chunk_size=c),
        lambda c: lambda a, b, s: LF.siglip_loss(a, b, logit_scale=1 / s, logit_bias=-s,
                                                 normalize=normalize, chunk_size=c),
        lambda c: lambda a, b, s: LF.info_nce_loss(a, b, negative_keys=a.flip(0), temperature=s,
                                                   normalize=normalize, chunk_size=c),
    ]

    def hvp(fn):
        leaves = _leaves(x, y, t)
        grads = torch.autograd.grad(fn(*leaves), leaves, create_graph=True)
        return torch.autograd.grad(sum((g * w).sum() for g, w in zip(grads, v)), leaves)

    for make in makes:
        for a, b in zip(hvp(make(2)), hvp(make(None))):
            torch.testing.assert_close(a, b, **TOL)
    assert torch.autograd.gradgradcheck(makes[0](None), tuple(_leaves(x[:3], y[:3], t)))


@pytest.mark.parametrize("chunk", [None, 3])
def test_backward_twice_with_retain_graph_gives_the_same_gradients(chunk: int | None) -> None:
    # the dense Function keeps its softmax for backward: it must not be consumed in place
    x, y = _leaves(_randn(6, 4, seed=52), _randn(6, 4, seed=53))
    out = LF.nt_xent_loss(x, y, chunk_size=chunk, reduction="none")
    w = _randn(12, seed=54)
    (first,) = torch.autograd.grad(out, x, w, retain_graph=True)
    (second,) = torch.autograd.grad(out, x, w)
    assert torch.equal(first, second)


def test_paired_negatives_accept_the_default_auto() -> None:
    q, p, n = _randn(5, 4, seed=45), _randn(5, 4, seed=46), _randn(5, 3, 4, seed=47)
    torch.testing.assert_close(
        LF.info_nce_loss(q, p, negative_keys=n, negative_mode="paired"),
        LF.info_nce_loss(q, p, negative_keys=n, negative_mode="paired", chunk_size=None), **TOL)


# --------------------------------------------------------------------------- peers, 1e-6 float32


def test_nt_xent_matches_pytorch_metric_learning() -> None:
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    z1, z2 = _randn(8, 6, seed=26, dtype=torch.float32), _randn(8, 6, seed=27, dtype=torch.float32)
    labels = torch.cat([torch.arange(8), torch.arange(8)])   # labels mark the positive pairs
    peer = pml.NTXentLoss(temperature=0.2)
    _assert_same(lambda a, b: LF.nt_xent_loss(a, b, temperature=0.2),
                 lambda a, b: peer(torch.cat([a, b]), labels), (z1, z2), rtol=1e-6, atol=1e-6)


def test_supcon_matches_pytorch_metric_learning() -> None:
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    f = _randn(8, 2, 6, seed=28, dtype=torch.float32)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])
    peer = pml.SupConLoss(temperature=0.1)
    # PML takes (embeddings, labels); our views, view-major, are its embeddings.
    _assert_same(
        lambda a: LF.supcon_loss(a, labels, temperature=0.1, base_temperature=0.1),
        lambda a: peer(torch.cat([a[:, 0], a[:, 1]]), labels.repeat(2)),
        (f,), rtol=1e-6, atol=1e-6,
    )


def test_nt_xent_matches_optax() -> None:
    optax = pytest.importorskip("optax")
    jnp = pytest.importorskip("jax.numpy")
    jax = pytest.importorskip("jax")
    z1, z2 = _randn(8, 6, seed=29, dtype=torch.float32), _randn(8, 6, seed=30, dtype=torch.float32)
    emb = np.concatenate([z1.numpy(), z2.numpy()])
    labels = jnp.asarray(np.concatenate([np.arange(8), np.arange(8)]))
    value, grad = jax.value_and_grad(lambda e: optax.losses.ntxent(e, labels, temperature=0.07))(
        jnp.asarray(emb))
    ours, (g1, g2) = _value_and_grads(lambda a, b: LF.nt_xent_loss(a, b, temperature=0.07), (z1, z2))
    assert math.isclose(float(ours), float(value), rel_tol=1e-6, abs_tol=1e-6)
    np.testing.assert_allclose(torch.cat([g1, g2]).numpy(), np.asarray(grad), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("chunk", [None, 2])
def test_identical_views_give_finite_gradients(chunk: int | None) -> None:
    z = _randn(4, 3, seed=31)
    z = torch.cat([z, z[:1]])          # a duplicate sample: zero distance to a negative, too
    for fn in (
        lambda a, b: LF.info_nce_loss(a, b, chunk_size=chunk),
        lambda a, b: LF.nt_xent_loss(a, b, chunk_size=chunk),
        lambda a, b: LF.clip_loss(a, b, logit_scale=100.0, chunk_size=chunk),
        lambda a, b: LF.siglip_loss(a, b, logit_scale=10.0, logit_bias=-10.0, chunk_size=chunk),
        lambda a, b: LF.supcon_loss(torch.stack([a, b], 1), None, chunk_size=chunk),
    ):
        value, grads = _value_and_grads(fn, (z, z))
        assert torch.isfinite(value)
        assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("chunk", [None, 2])
def test_supcon_anchors_without_positives_follow_the_empty_policy(chunk: int | None) -> None:
    f = _randn(4, 1, 3, seed=32)
    distinct = torch.tensor([0, 1, 2, 3])        # one view, all labels distinct: no positive
    (leaf,) = _leaves(f)
    out = LF.supcon_loss(leaf, distinct, chunk_size=chunk)
    out.backward()
    assert out.item() == 0.0 and bool((leaf.grad == 0).all())
    assert torch.isnan(LF.supcon_loss(f, distinct, empty="nan", chunk_size=chunk))
    # anchors without a positive are left out of the mean, and are 0 under "none"
    some = torch.tensor([0, 1, 0, 3])
    rows = LF.supcon_loss(f, some, reduction="none", chunk_size=chunk)
    assert rows[1] == 0 and rows[3] == 0
    want = _supcon_ref_mean(f, some.tolist())
    torch.testing.assert_close(LF.supcon_loss(f, some, chunk_size=chunk), want, **TOL)


def test_siglip_paper_initialisation_starts_near_the_prior() -> None:
    # t = 10, b = -10 (Zhai et al. 2023 §3.3): with random embeddings the negatives' terms are
    # ≈ log(1 + e^{-10}) each, so the loss is dominated by the B positives' ≈ 10 nats / B each.
    x, y = _randn(64, 32, seed=33), _randn(64, 32, seed=34)
    at_init = LF.siglip_loss(x, y, logit_scale=10.0, logit_bias=-10.0)
    no_bias = LF.siglip_loss(x, y, logit_scale=10.0, logit_bias=0.0)
    assert 8.0 < at_init < 12.0 < 10 * at_init < no_bias * 10


def test_temperature_scaling_of_supcon() -> None:
    f = _randn(6, 2, 4, seed=35)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    a = LF.supcon_loss(f, y, temperature=0.1, base_temperature=0.1)
    b = LF.supcon_loss(f, y, temperature=0.1, base_temperature=0.05)
    torch.testing.assert_close(b, 2 * a, **TOL)


def test_supcon_without_labels_is_nt_xent() -> None:
    f = _randn(5, 2, 4, seed=36)
    torch.testing.assert_close(
        LF.supcon_loss(f, None, temperature=0.3, base_temperature=0.3),
        LF.nt_xent_loss(f[:, 0], f[:, 1], temperature=0.3), **TOL)


def test_modules_and_half_precision() -> None:
    x, y = _randn(6, 4, seed=37), _randn(6, 4, seed=38)
    assert torch.equal(LN.CLIPLoss(logit_scale=3.0)(x, y), LF.clip_loss(x, y, logit_scale=3.0))
    out = LF.nt_xent_loss(x.half(), y.half(), chunk_size=4)
    assert out.dtype == torch.float32
    assert abs(out.item() - LF.nt_xent_loss(x.half().double(), y.half().double()).item()) < 1e-3


@pytest.mark.parametrize(
    "call",
    [
        lambda x: LF.nt_xent_loss(x, x, local_loss=True),
        lambda x: LF.nt_xent_loss(x, x, process_group=object()),
        lambda x: LF.nt_xent_loss(x, x, chunk_size=0),
        lambda x: LF.nt_xent_loss(x, x, chunk_size="big"),
        lambda x: LF.nt_xent_loss(x, x, chunk_size=True),
        lambda x: LF.nt_xent_loss(x, x[:3]),
        lambda x: LF.nt_xent_loss(x, x, temperature=0.0),
        lambda x: LF.info_nce_loss(x, x, negative_keys=x[None], negative_mode="paired",
                                   chunk_size=2),
        lambda x: LF.info_nce_loss(x, x, negative_keys=torch.ones(3, 7)),
        lambda x: LF.info_nce_loss(x, x, negative_mode="pairs"),
        lambda x: LF.supcon_loss(x[:, None], torch.ones(x.shape[0])),
        lambda x: LF.supcon_loss(x[:, None], torch.zeros(2, dtype=torch.long)),
        lambda x: LF.supcon_loss(x[:, None], None, contrast_mode="both"),
        lambda x: LF.clip_loss(x, x, logit_scale=torch.ones(2)),
    ],
)
def test_bad_options_raise(call) -> None:
    with pytest.raises(LossInputError):
        call(_randn(4, 5, seed=39))
