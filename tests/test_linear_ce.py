"""linear_cross_entropy against an independent float64 reference (tests/reference/linear_ce_ref.py)
and the materialised logits (value and the gradients of hidden, weight and bias, every option,
non-uniform grad_output), PyTorch's own linear_cross_entropy, the three internal paths against each
other (gradients formed in forward and handed out in place, saved, recomputed), repeated backward
(retain_graph, create_graph), micro-batching with count_valid_targets, memory (no N×V tensor saved)
and input errors."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from tests.reference import linear_ce_ref as ref

import losskit.functional as LF
import losskit.losses.linear_ce as lce
import losskit.nn as LN
from losskit._core.checks import LossInputError

B, T, D, V = 3, 5, 6, 11


def _data(seed: int = 0, dtype: torch.dtype = torch.float64, bias: bool = True, ignore: bool = True):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(B, T, D, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True)
    w = (torch.randn(V, D, generator=g, dtype=torch.float64) * 0.7).to(dtype).requires_grad_(True)
    b = (torch.randn(V, generator=g, dtype=torch.float64) * 0.5).to(dtype).requires_grad_(True)
    y = torch.randint(0, V, (B, T), generator=g)
    if ignore:
        y[0, 2] = y[1, 0] = y[2, 4] = -100
    return h, w, (b if bias else None), y


def _reference(h, w, y, *, bias=None, ignore_index=-100, label_smoothing=0.0, reduction="mean",
               normalizer=None, z_loss=0.0, softcap=None, shift=False):
    """The materialised version, from F.cross_entropy on the full logits."""
    if shift:
        h, y = h[..., :-1, :], y[..., 1:]
    z = h @ w.T
    if bias is not None:
        z = z + bias
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    zf, yf = z.reshape(-1, w.shape[0]), y.reshape(-1)
    per = F.cross_entropy(zf, yf, ignore_index=ignore_index, label_smoothing=label_smoothing,
                          reduction="none")
    keep = yf != ignore_index
    per = per + z_loss * torch.where(keep, torch.logsumexp(zf, 1).square(), 0.0)
    if reduction == "none":
        return per.reshape(y.shape)
    if reduction == "sum":
        return per.sum() if normalizer is None else per.sum() / normalizer
    return per.sum() / keep.sum()


OPTIONS = [
    {},
    {"label_smoothing": 0.1},
    {"z_loss": 0.05},
    {"softcap": 1.5},
    {"shift": True},
    {"label_smoothing": 0.2, "z_loss": 0.01, "softcap": 2.0, "shift": True},
]


def _grads(out: torch.Tensor, leaves: list[torch.Tensor], seed: int) -> tuple[torch.Tensor, ...]:
    if out.ndim:  # non-uniform grad_output for reduction="none"
        go = torch.rand(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.5
        return torch.autograd.grad(out, leaves, go.to(out.dtype))
    return torch.autograd.grad(out, leaves)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("opts", "chunk"), list(itertools.product(OPTIONS, [4, None])),
                         ids=lambda v: str(v))
def test_equals_materialised_float64(reduction: str, opts: dict, chunk: int | None) -> None:
    h, w, b, y = _data()
    got = LF.linear_cross_entropy(h, w, y, bias=b, reduction=reduction, chunk_size=chunk, **opts)
    want = _reference(h, w, y, bias=b, reduction=reduction, **opts)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    for gg, gw in zip(_grads(got, [h, w, b], 1), _grads(want, [h, w, b], 1)):
        assert torch.allclose(gg, gw, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_equals_materialised_float32_no_bias(reduction: str) -> None:
    h, w, _, y = _data(2, torch.float32, bias=False)
    opts = {"label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 3.0}
    got = LF.linear_cross_entropy(h, w, y, reduction=reduction, chunk_size=2, **opts)
    want = _reference(h, w, y, reduction=reduction, **opts)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    for gg, gw in zip(_grads(got, [h, w], 3), _grads(want, [h, w], 3)):
        assert torch.allclose(gg, gw, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("red", ["none", "sum"])
def test_gradcheck_every_option(red: str) -> None:
    h, w, b, y = _data(4)
    h, w, b, y = h[:2, :3, :3].detach(), w[:5, :3].detach(), b[:5].detach(), y[:2, :3] % 5
    y[0, 1] = -100

    def f(h_: torch.Tensor, w_: torch.Tensor, b_: torch.Tensor) -> torch.Tensor:
        return LF.linear_cross_entropy(h_, w_, y, bias=b_, reduction=red, label_smoothing=0.1,
                                       z_loss=0.02, softcap=2.0, shift=True, chunk_size=2)

    leaves = tuple(t.clone().requires_grad_(True) for t in (h, w, b))
    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-6)


def test_matches_torch_linear_cross_entropy() -> None:
    if not hasattr(F, "linear_cross_entropy"):
        pytest.skip("torch has no linear_cross_entropy")
    h, w, b, y = _data(5, torch.float32)
    hf, yf = h.reshape(-1, D), y.reshape(-1)
    opts_cls = getattr(torch.nn, "LinearCrossEntropyOptions", None)
    cases = [({}, red, eps) for red, eps in (("mean", 0.0), ("sum", 0.1), ("none", 0.05))]
    if opts_cls is not None:  # torch's chunked path (no label smoothing there)
        cases += [({"options": opts_cls(batch_chunk_size=4)}, red, 0.0) for red in ("mean", "none")]
    for kw, red, eps in cases:
        want = F.linear_cross_entropy(hf, w, yf, linear_bias=b, reduction=red, ignore_index=-100,
                                      label_smoothing=eps, **kw)
        got = LF.linear_cross_entropy(hf, w, yf, bias=b, reduction=red, label_smoothing=eps, chunk_size=5)
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-6)
        for gg, gw in zip(_grads(got, [h, w, b], 6), _grads(want, [h, w, b], 6)):
            assert torch.allclose(gg, gw, rtol=1e-5, atol=1e-6)


def test_micro_batches_with_global_count_equal_full_batch() -> None:  # PITFALLS 1, 29
    h, w, b, y = _data(7, torch.float32)
    y[1, :] = -100  # a micro-batch with nothing to predict
    full = LF.linear_cross_entropy(h, w, y, bias=b, shift=True)
    g_full = torch.autograd.grad(full, [h, w, b])
    n = count_valid = LF.count_valid_targets(y, shift=True)
    assert count_valid == (y[:, 1:] != -100).sum()
    total = sum(LF.linear_cross_entropy(h[i:i + 1], w, y[i:i + 1], bias=b, shift=True, reduction="sum",
                                        normalizer=n) for i in range(B))
    g_parts = torch.autograd.grad(total, [h, w, b])
    assert torch.allclose(total, full, rtol=1e-6)
    for a, c in zip(g_parts, g_full):
        assert torch.allclose(a, c, rtol=1e-5, atol=1e-7)


def test_count_valid_targets_all_reduces_over_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_all_reduce(t: torch.Tensor, group: object) -> torch.Tensor:
        seen.append(group)
        return t * 4  # four ranks with the same batch

    monkeypatch.setattr(lce, "all_reduce_sum", fake_all_reduce)
    y = torch.tensor([[1, 2, -100], [3, -100, -100]])
    group = object()
    assert LF.count_valid_targets(y, process_group=group) == 12 and seen == [group]
    assert LF.count_valid_targets(y) == 3 and len(seen) == 1


def test_all_ignored_is_zero_with_zero_grad_or_nan() -> None:  # PITFALLS 6
    h, w, b, y = _data(8)
    y = torch.full_like(y, -100)
    out = LF.linear_cross_entropy(h, w, y, bias=b)
    assert out.item() == 0.0
    for g in torch.autograd.grad(out, [h, w, b]):
        assert torch.all(g == 0)
    assert torch.isnan(LF.linear_cross_entropy(h, w, y, bias=b, empty="nan"))
    with pytest.raises(LossInputError, match="normalizer"):
        LF.linear_cross_entropy(h, w, y, normalizer=3.0)


def test_half_inputs_compute_in_float32() -> None:  # PITFALLS 4
    h, w, b, y = _data(9, torch.float32)
    for dtype in (torch.bfloat16, torch.float16):
        hh, wh, bh = (t.detach().to(dtype).requires_grad_(True) for t in (h, w, b))
        out = LF.linear_cross_entropy(hh, wh, y, bias=bh, chunk_size=4)
        want = _reference(hh.double(), wh.double(), y, bias=bh.double())
        assert out.dtype == torch.float32
        assert torch.allclose(out.double(), want, rtol=1e-5)
        grads = torch.autograd.grad(out, [hh, wh, bh])
        assert all(g.dtype == dtype and torch.isfinite(g).all() for g in grads)


def test_no_logits_sized_tensor_is_saved() -> None:  # PITFALLS 10
    g = torch.Generator().manual_seed(10)
    n, d, v = 256, 8, 512
    h = torch.randn(n, d, generator=g, requires_grad=True)
    w = torch.randn(v, d, generator=g, requires_grad=True)
    y = torch.randint(0, v, (n,), generator=g)
    for red in ("mean", "none"):
        sizes: list[int] = []

        def pack(t: torch.Tensor, sizes: list[int] = sizes) -> torch.Tensor:
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            LF.linear_cross_entropy(h, w, y, reduction=red, chunk_size=32)
        assert sizes and max(sizes) <= max(n, v) * d, (red, max(sizes))


def test_extreme_logits_finite() -> None:
    h, w, b, y = _data(11, torch.float32)
    hx = (h.detach() * 1e3).requires_grad_(True)
    for red in ("mean", "none"):
        out = LF.linear_cross_entropy(hx, w, y, bias=b, reduction=red, z_loss=1e-4, softcap=30.0)
        grads = _grads(out, [hx, w, b], 12)
        assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)


def test_module_and_errors() -> None:
    h, w, b, y = _data(12)
    mod = LN.LinearCrossEntropyLoss(z_loss=0.01, shift=True)
    assert torch.equal(mod(h, w, y), LF.linear_cross_entropy(h, w, y, z_loss=0.01, shift=True))
    with pytest.raises(LossInputError, match="weight"):
        LF.linear_cross_entropy(h, w.T, y)  # transposed head
    with pytest.raises(LossInputError, match="target"):
        LF.linear_cross_entropy(h, w, y[:, :, None])  # PITFALLS 2: no broadcasting
    with pytest.raises(LossInputError, match="bias"):
        LF.linear_cross_entropy(h, w, y, bias=b[:-1])
    with pytest.raises(LossInputError, match="reduction"):
        LF.linear_cross_entropy(h, w, y, reduction="batchmean")


REF_OPTIONS = [
    {},
    {"label_smoothing": 0.15},
    {"z_loss": 0.05},
    {"softcap": 1.5},
    {"label_smoothing": 0.2, "z_loss": 0.01, "softcap": 2.0},
]


def _np(t: torch.Tensor | None):
    return None if t is None else t.detach().numpy()


@pytest.mark.parametrize("opts", REF_OPTIONS, ids=str)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_equals_independent_float64_reference(reduction: str, opts: dict) -> None:
    h, w, b, y = _data(13)
    hf, yf = h.reshape(-1, D), y.reshape(-1)
    go = torch.rand(B * T, generator=torch.Generator().manual_seed(14), dtype=torch.float64) + 0.5
    extra = {"normalizer": 7.0} if reduction == "sum" else {}
    got = LF.linear_cross_entropy(hf, w, yf, bias=b, reduction=reduction, chunk_size=4, **opts, **extra)
    grads = torch.autograd.grad(got, [h, w, b], go if reduction == "none" else None)
    value, dh, dw, db = ref.linear_cross_entropy(
        _np(hf), _np(w), yf.numpy(), _np(b), reduction=reduction,
        grad_output=go.numpy() if reduction == "none" else 1.0, **opts, **extra)
    assert torch.allclose(got, torch.as_tensor(value, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    for g, want in zip(grads, (dh.reshape(B, T, D), dw, db)):
        assert torch.allclose(g, torch.from_numpy(want), rtol=1e-10, atol=1e-12)


def test_reference_gradient_matches_finite_differences() -> None:
    """The closed-form gradient of the reference is checked against its own loss."""
    h, w, b, y = _data(15)
    hn, wn, bn, yn = _np(h.reshape(-1, D))[:4].copy(), _np(w).copy(), _np(b).copy(), y.reshape(-1)[:4].numpy()
    opts = {"label_smoothing": 0.1, "z_loss": 0.03, "softcap": 1.7, "reduction": "mean"}
    _, dh, dw, db = ref.linear_cross_entropy(hn, wn, yn, bn, **opts)
    step = 1e-6
    for arr, grad in ((hn, dh), (wn, dw), (bn, db)):
        flat, gflat = arr.reshape(-1), grad.reshape(-1)
        for j in range(0, flat.size, 3):
            old = flat[j]
            flat[j] = old + step
            up = ref.linear_cross_entropy(hn, wn, yn, bn, **opts)[0]
            flat[j] = old - step
            down = ref.linear_cross_entropy(hn, wn, yn, bn, **opts)[0]
            flat[j] = old
            assert abs((up - down) / (2 * step) - gflat[j]) < 1e-7


def _apply(h, w, b, y, *, fuse: bool, stash: bool, opts: dict, chunk: int = 4) -> torch.Tensor:
    keys = ("label_smoothing", "z_loss", "softcap")
    eps, zl, cap = (opts.get(k, d) for k, d in zip(keys, (0.0, 0.0, None)))
    need = (h.requires_grad, w.requires_grad, b is not None and b.requires_grad)
    return lce._LinearCrossEntropy.apply(h, w, b, y, -100, eps, zl, cap, chunk, fuse, stash, need)


@pytest.mark.parametrize("opts", REF_OPTIONS, ids=str)
def test_fast_paths_equal_recompute_path(opts: dict) -> None:
    """Gradients formed in forward (stashed and scaled in place, or saved and scaled out of place,
    as under torch.compile) == recomputed in backward, with the incoming gradient of a sum."""
    h, w, b, y = _data(16)
    hf, yf = h.reshape(-1, D), y.reshape(-1)
    keep = (yf != -100).double()
    outs = {}
    for fuse, stash in ((True, True), (True, False), (False, False)):
        per = _apply(hf, w, b, yf, fuse=fuse, stash=stash, opts=opts)
        total = (per * keep).sum() * 0.37
        outs[fuse, stash] = (per, torch.autograd.grad(total, [h, w, b]))
    base_per, base_grads = outs[False, False]
    for per, grads in outs.values():
        assert torch.equal(per, base_per)
        for g, want in zip(grads, base_grads):
            assert torch.allclose(g, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_backward_twice_with_retain_graph(reduction: str) -> None:
    h, w, b, y = _data(17)
    out = LF.linear_cross_entropy(h, w, y, bias=b, reduction=reduction, label_smoothing=0.1, z_loss=0.02)
    go = torch.rand(out.shape, generator=torch.Generator().manual_seed(18), dtype=out.dtype) + 0.5
    first = torch.autograd.grad(out, [h, w, b], go, retain_graph=True)
    second = torch.autograd.grad(out, [h, w, b], go * 2)  # the stashed gradients are gone by now
    ref_out = _reference(h, w, y, bias=b, reduction=reduction, label_smoothing=0.1, z_loss=0.02)
    want = torch.autograd.grad(ref_out, [h, w, b], go)
    for a, c, r in zip(first, second, want):
        assert torch.allclose(a, r, rtol=1e-10, atol=1e-12)
        assert torch.allclose(c, 2 * r, rtol=1e-10, atol=1e-12)


def test_gradients_accumulate_into_grad() -> None:
    h, w, b, y = _data(19)
    for _ in range(2):
        LF.linear_cross_entropy(h, w, y, bias=b, z_loss=0.01).backward()
    want = torch.autograd.grad(_reference(h, w, y, bias=b, z_loss=0.01), [h, w, b])
    for leaf, r in zip((h, w, b), want):
        assert torch.allclose(leaf.grad, 2 * r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_create_graph_raises_a_clear_error(reduction: str) -> None:
    """A gradient penalty through the chunked backward would silently miss its second-order
    terms; it raises instead (and the graph is still usable for a plain backward)."""
    h, w, b, y = _data(20)
    out = LF.linear_cross_entropy(h, w, y, bias=b, softcap=2.0, reduction=reduction).sum()
    with pytest.raises(RuntimeError, match="create_graph"):
        torch.autograd.grad(out, [h, w], create_graph=True)
    got = torch.autograd.grad(out, [h, w])
    want = torch.autograd.grad(_reference(h, w, y, bias=b, softcap=2.0, reduction=reduction).sum(), [h, w])
    assert all(torch.allclose(a, c, rtol=1e-10, atol=1e-12) for a, c in zip(got, want))


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("frozen", ["hidden", "weight", "bias"])
def test_only_the_gradients_asked_for(frozen: str, reduction: str) -> None:
    h, w, b, y = _data(21)
    leaves = {"hidden": h, "weight": w, "bias": b}
    leaves[frozen] = leaves[frozen].detach()
    h_, w_, b_ = leaves.values()
    out = LF.linear_cross_entropy(h_, w_, y, bias=b_, reduction=reduction, z_loss=0.01)
    live = [t for t in (h_, w_, b_) if t.requires_grad]
    want = _grads(_reference(h_, w_, y, bias=b_, reduction=reduction, z_loss=0.01), live, 22)
    for g, r in zip(_grads(out, live, 22), want):
        assert torch.allclose(g, r, rtol=1e-10, atol=1e-12)


def test_nothing_but_inputs_and_per_token_vectors_is_saved_for_mean() -> None:  # PITFALLS 10
    n, d, v = 64, 8, 512
    g = torch.Generator().manual_seed(23)
    h = torch.randn(n, d, generator=g, requires_grad=True)
    w = torch.randn(v, d, generator=g, requires_grad=True)
    y = torch.randint(0, v, (n,), generator=g)
    sizes: list[int] = []
    inputs = {h.data_ptr(), w.data_ptr()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in inputs:
            sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        LF.linear_cross_entropy(h, w, y, chunk_size=16)
    assert sizes and max(sizes) <= n  # the gradients formed in forward are not saved copies


def test_default_chunks_are_balanced() -> None:
    assert lce._chunk_rows(4096, 32768, None) == 512
    assert lce._chunk_rows(1000, 32768, None) == 500  # two chunks of 500, not 512 + 488
    assert lce._chunk_rows(100, 32768, None) == 100
    assert lce._chunk_rows(4096, 32768, 7) == 7


def test_extreme_and_half_inputs_on_every_path() -> None:  # PITFALLS 4, 5, 11
    h, w, b, y = _data(24, torch.float32)
    for dtype in (torch.float32, torch.bfloat16):
        hx = (h.detach() * 300).to(dtype).requires_grad_(True)
        wx, bx = (t.detach().to(dtype).requires_grad_(True) for t in (w, b))
        for red in ("mean", "sum", "none"):
            out = LF.linear_cross_entropy(hx, wx, y, bias=bx, reduction=red, label_smoothing=0.1,
                                          z_loss=1e-4, chunk_size=4)
            want = _reference(hx.double(), wx.double(), y, bias=bx.double(), reduction=red,
                              label_smoothing=0.1, z_loss=1e-4)
            assert torch.allclose(out.double(), want, rtol=1e-5, atol=1e-4)
            grads = _grads(out, [hx, wx, bx], 25)
            wants = _grads(want, [hx, wx, bx], 25)
            for g, r in zip(grads, wants):
                assert g.dtype == dtype and torch.isfinite(g).all()
                tol = 1e-4 if dtype == torch.float32 else 2e-2
                assert torch.allclose(g.double(), r.to(torch.float64), rtol=tol, atol=tol * r.abs().max())
