"""CTC: float64 forward–backward reference, PyTorch / Keras / optax parity, infeasible
alignments (PITFALLS 20), reductions, layouts and validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losskit
from losskit._core.checks import LossInputError
from losskit.losses.sequence import CTCLoss, ctc_loss
from reference import sequence_ref as ref

T, N, C = 9, 5, 5


def _batch(seed: int = 0, blank: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(T, N, C, generator=g, dtype=torch.float64).log_softmax(-1)
    labels = [c for c in range(C) if c != blank]
    targets = torch.tensor(labels)[torch.randint(0, C - 1, (N, 4), generator=g)]
    targets[0, 1] = targets[0, 0]  # a repeated label needs a blank between them
    input_lengths = [9, 7, 9, 5, 6]
    target_lengths = [4, 3, 0, 2, 4]
    return log_probs, targets, input_lengths, target_lengths


def _ref(log_probs: torch.Tensor, targets: torch.Tensor, il: list[int], tl: list[int],
         blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    lab = [targets[b, : tl[b]].tolist() for b in range(len(tl))]
    return ref.ctc_batch(log_probs.detach().numpy(), lab, il, blank)


IMPLS = ["torch", "recursion"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("blank", [0, 3])
def test_value_and_gradient_match_the_forward_backward_reference(blank: int, impl: str) -> None:
    lp, tg, il, tl = _batch(blank=blank)
    want, want_grad = _ref(lp, tg, il, tl, blank)
    x = lp.clone().requires_grad_(True)
    got = ctc_loss(x, tg, il, tl, blank=blank, reduction="none", impl=impl)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10, atol=1e-10)
    got.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), want_grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_concatenated_targets_and_batch_first_give_the_same_numbers(impl: str) -> None:
    lp, tg, il, tl = _batch(1)
    padded = ctc_loss(lp, tg, il, tl, reduction="none", impl=impl)
    flat = torch.cat([tg[b, : tl[b]] for b in range(N)])
    torch.testing.assert_close(ctc_loss(lp, flat, il, tl, reduction="none", impl=impl), padded,
                               rtol=1e-12, atol=0)
    bf = ctc_loss(lp.transpose(0, 1), tg, torch.tensor(il), torch.tensor(tl), reduction="none",
                  batch_first=True, impl=impl)
    torch.testing.assert_close(bf, padded, rtol=1e-12, atol=0)


def test_gradcheck_float64_and_gradgradcheck_of_the_recursion() -> None:
    lp, tg, _, _ = _batch(2)
    x = lp[:6, :3].clone().requires_grad_(True)
    for impl in IMPLS:
        assert torch.autograd.gradcheck(
            lambda v, impl=impl: ctc_loss(v, tg[:3], [6, 5, 6], [2, 2, 0], reduction="sum",
                                          impl=impl), (x,))
    assert torch.autograd.gradgradcheck(
        lambda v: ctc_loss(v, tg[:1], [3], [1], reduction="sum", impl="recursion"),
        (x[:3, :1].detach().clone().requires_grad_(True),))


def test_compiled_recursion_equals_eager_kernel() -> None:
    lp, tg, il, tl = _batch(13)
    il_t, tl_t = torch.tensor(il), torch.tensor(tl)
    fn = torch.compile(ctc_loss, backend="eager", fullgraph=True, dynamic=False)
    torch.testing.assert_close(fn(lp, tg, il_t, tl_t, reduction="none"),
                               ctc_loss(lp, tg, il_t, tl_t, reduction="none"), rtol=1e-12, atol=0)
    # lengths as Python ints are validated without reading a tensor, so they trace too
    torch.testing.assert_close(fn(lp, tg, il, tl, reduction="none"),
                               ctc_loss(lp, tg, il, tl, reduction="none"), rtol=1e-12, atol=0)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_matches_torch_ctc_loss_values_and_logit_gradients(reduction: str) -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(T, N, C, generator=g)
    _, tg, il, tl = _batch(3)
    il_t, tl_t = torch.tensor(il), torch.tensor(tl)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ours = ctc_loss(a.log_softmax(-1), tg, il_t, tl_t, reduction=reduction)
    theirs = F.ctc_loss(b.log_softmax(-1), tg, il_t, tl_t, reduction=reduction, zero_infinity=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    w = torch.rand(ours.shape, generator=g)  # non-uniform grad_output
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    # PyTorch's kernel returns the gradient for log-softmax outputs; through the log-softmax
    # the two agree.
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)


def test_reduction_names() -> None:
    lp, tg, il, tl = _batch(4)
    none = ctc_loss(lp, tg, il, tl, reduction="none")
    tl_t = torch.tensor(tl, dtype=torch.float64)
    torch.testing.assert_close(ctc_loss(lp, tg, il, tl, reduction="mean"),
                               (none / tl_t.clamp_min(1)).mean())
    torch.testing.assert_close(ctc_loss(lp, tg, il, tl, reduction="batchmean"), none.sum() / N)
    torch.testing.assert_close(ctc_loss(lp, tg, il, tl, reduction="mean_per_token"),
                               none.sum() / tl_t.sum())
    torch.testing.assert_close(ctc_loss(lp, tg, il, tl, reduction="sum"), none.sum())
    assert ctc_loss(lp, tg, il, tl).item() == ctc_loss(lp, tg, il, tl, reduction="mean").item()
    with pytest.raises(LossInputError, match="reduction"):
        ctc_loss(lp, tg, il, tl, reduction="avg")


@pytest.mark.parametrize("impl", IMPLS)
def test_infeasible_alignment_is_zero_by_default_inf_on_request_never_nan(impl: str) -> None:
    lp, tg, il, tl = _batch(5)
    tg = tg.clone()
    tg[1] = torch.tensor([1, 1, 1, 2])  # 1 1 1 needs 5 frames, input 0 has 3
    il = [9, 3, 9, 5, 6]
    tl = [4, 3, 0, 2, 4]
    for zero_infinity in (True, False):
        x = lp.clone().requires_grad_(True)
        out = ctc_loss(x, tg, il, tl, reduction="none", zero_infinity=zero_infinity, impl=impl)
        assert out[1].item() == (0.0 if zero_infinity else float("inf"))
        assert torch.isfinite(out[[0, 2, 3, 4]]).all()
        out[[0, 2, 3, 4]].sum().backward(retain_graph=True)
        feasible_grad = x.grad.clone()
        x.grad = None
        (out.sum() if zero_infinity else out[[0, 2, 3, 4]].sum() + out[1] * 0).backward()
        assert torch.isfinite(x.grad).all()
        assert (x.grad[:, 1] == 0).all()
        torch.testing.assert_close(x.grad, feasible_grad)
    # the infinite loss itself back-propagates a zero gradient, not NaN
    x = lp.clone().requires_grad_(True)
    ctc_loss(x[:, 1:2], tg[1:2], [3], [3], zero_infinity=False, reduction="sum", impl=impl).backward()
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()
    # PyTorch agrees on the values
    theirs = F.ctc_loss(lp, tg, torch.tensor(il), torch.tensor(tl), reduction="none")
    assert theirs[1].item() == float("inf")


def test_empty_input_and_empty_target_cost_nothing() -> None:
    lp, tg, _, _ = _batch(6)
    out = ctc_loss(lp[:, :1], tg[:1], [0], [0], reduction="none")
    assert out.item() == 0.0


def test_half_precision_computes_in_float32() -> None:
    lp, tg, il, tl = _batch(7)
    out = ctc_loss(lp.half(), tg, il, tl)
    assert out.dtype == torch.float32
    want = ctc_loss(lp.half().double(), tg, il, tl)
    assert abs(out.item() - want.item()) < 1e-5 * abs(want.item()) + 1e-6


def test_validation_messages_show_the_layout() -> None:
    lp, tg, il, tl = _batch(8)
    with pytest.raises(LossInputError, match=r"\(T, N, C\)"):
        ctc_loss(lp, tg, [10, 7, 9, 5, 6], tl)  # input length > T
    with pytest.raises(LossInputError, match=r"\(N, T, C\) \(batch_first=True\)"):
        ctc_loss(lp.transpose(0, 1), tg, [10, 7, 9, 5, 6], tl, batch_first=True)
    with pytest.raises(LossInputError, match="target_lengths"):
        ctc_loss(lp, tg, il, [5, 3, 0, 2, 4])  # longer than S = 4
    with pytest.raises(LossInputError, match=r"\(T, N, C\)"):
        ctc_loss(lp[..., None], tg, il, tl)  # 4-D
    with pytest.raises(LossInputError, match=r"shape \(5,\)"):
        ctc_loss(lp, tg, il[:4], tl)
    with pytest.raises(LossInputError, match="targets"):
        ctc_loss(lp, tg.double(), il, tl)
    with pytest.raises(LossInputError, match="targets"):
        ctc_loss(lp, tg[:3], il, tl)
    with pytest.raises(LossInputError, match="sums"):
        ctc_loss(lp, torch.cat([tg[0], tg[1]]), il, tl)


def test_blank_inside_a_target_and_tensor_lengths_are_checked_in_debug_mode() -> None:
    lp, tg, il, tl = _batch(9)
    bad = tg.clone()
    bad[0, 1] = 0
    il_bad = torch.tensor([10, 7, 9, 5, 6])
    ctc_loss(lp, bad, torch.tensor(il), torch.tensor(tl))  # not read outside debug mode
    losskit.set_debug(True)
    try:
        with pytest.raises(LossInputError, match="blank"):
            ctc_loss(lp, bad, torch.tensor(il), torch.tensor(tl))
        with pytest.raises(LossInputError, match=r"\(T, N, C\)"):
            ctc_loss(lp, tg, il_bad, torch.tensor(tl))
        padding_is_fine = tg.clone()
        padding_is_fine[3, 2:] = 0  # blank after the target length: padding
        ctc_loss(lp, padding_is_fine, torch.tensor(il), torch.tensor(tl))
    finally:
        losskit.set_debug(False)


def test_module_matches_function() -> None:
    lp, tg, il, tl = _batch(10)
    mod = CTCLoss(blank=0, reduction="sum")
    torch.testing.assert_close(mod(lp, tg, il, tl), ctc_loss(lp, tg, il, tl, reduction="sum"))


def test_keras_ctc_parity() -> None:
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("needs the torch backend")
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(N, T, C, generator=g)  # Keras: (batch, time, classes), blank = 0
    y_true = torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0], [2, 0, 0, 0], [3, 3, 0, 0], [1, 2, 3, 4]])
    theirs = keras.losses.CTC()(y_true, logits)
    ours = ctc_loss(logits.log_softmax(-1), y_true, [T] * N, (y_true != 0).sum(1),
                    batch_first=True, reduction="batchmean")
    np.testing.assert_allclose(ours.item(), float(theirs), rtol=1e-6)


def test_optax_ctc_parity() -> None:
    optax = pytest.importorskip("optax")
    g = torch.Generator().manual_seed(12)
    logits = torch.randn(N, T, C, generator=g)
    _, tg, il, tl = _batch(12)
    logit_pad = (torch.arange(T)[None] >= torch.tensor(il)[:, None]).float()
    label_pad = (torch.arange(4)[None] >= torch.tensor(tl)[:, None]).float()
    theirs = optax.losses.ctc_loss(logits.numpy(), logit_pad.numpy(), tg.numpy(),
                                   label_pad.numpy(), blank_id=0)
    ours = ctc_loss(logits.log_softmax(-1), tg, il, tl, batch_first=True, reduction="none")
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs), rtol=1e-6, atol=1e-5)
