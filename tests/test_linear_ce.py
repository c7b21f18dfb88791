"""linear_cross_entropy against the materialised logits (value and the gradients of hidden,
weight and bias, every option, non-uniform grad_output), PyTorch's own linear_cross_entropy,
micro-batching with count_valid_targets, memory (no N×V tensor saved) and input errors."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

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
        go = torch.rand(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype) + 0.5
        return torch.autograd.grad(out, leaves, go)
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
