r"""Low-memory softmax cross-entropy with class-index targets (and, on the C kernels, with
probability targets).

``F.cross_entropy`` keeps the full ``log_softmax`` output (one logits-sized tensor) for backward
and its backward builds a second logits-sized tensor for the one-hot gradient of ``nll_loss``.
:class:`_IndexCrossEntropy` saves only its inputs (and, with label smoothing, one float per
position). Its forward runs PyTorch's fused ``log_softmax`` kernel over blocks of rows into one
reused block-sized buffer and gathers the target terms; its backward recomputes the softmax
block by block straight into the ONE gradient buffer and finishes it in place:

.. math::
    \partial\ell_i/\partial x_{ic} = s_i\Bigl(p_{ic}\bigl[(1-\varepsilon)w_{y_i}
        + \tfrac{\varepsilon}{K}\textstyle\sum_{c'\in F_i} w_{c'}\bigr]
        - (1-\varepsilon)w_{y_i}[c=y_i] - \tfrac{\varepsilon}{K}w_c[c\in F_i]\Bigr)

``s_i`` being the upstream gradient of position ``i`` (0 where the target is ignored) and
``F_i`` the classes with a finite logit (a −inf logit is outside the support: no smoothing mass,
zero gradient). Blocks hold up to 2**23 elements: on a shared 2-core machine every parallel
region pays a scheduling delay when the other thread is descheduled, and side by side with
``F.cross_entropy`` at 2048 × 32768 blocks of 2**20, 2**22 and 2**23 elements took 1.98×, 1.01×
and 0.86× its time (load average 11). The temporaries stay at most one block.

For contiguous ``(B, C)`` and ``(B, C, S)`` CPU logits the C kernels of :mod:`losskit._native`
do both directions instead (one ``exp`` per logit each way, the smoothing sums in the same
sweep); they keep each position's log-sum-exp, one float per position (and with label smoothing
Σ_c w_c over the finite classes), for backward.

Against probability targets, contiguous ``(B, C)`` CPU logits take the C row kernels too
(:func:`probability_cross_entropy`): per row ``lse·W − Σ_c w_c t_c x_c`` with
``W = Σ_c w_c t_c`` over the finite classes, and the gradient ``W·softmax − w·t``, recomputed
in backward from the logits, the targets and two floats per row.

The logits come as ``(B, C)`` or ``(B, C, S)`` with the class dimension at 1, which covers
``(N, C)``, channels-first ``(N, C, d1, ...)`` and channels-last ``(..., C)`` layouts without a
copy (the caller passes ``(B, C)`` when ``S`` is 1, the fastest layout for the row kernels).
The Function returns the per-position losses; the caller reduces them with the one
:func:`~losskit._core.reduction.reduce`.

Double backward (``create_graph=True``) differentiates the composed reference instead, so that
second derivatives are recorded by autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from losskit import _native
from losskit._core.checks import LossInputError
from losskit._core.fused import reference_grads, use_fast_path

__all__ = ["CHUNK", "index_cross_entropy", "probability_cross_entropy"]

# Elements per block of rows on CPU (32 MiB of float32); see the module docstring.
CHUNK = 2**23

_softmax = torch.ops.aten._softmax.out
_log_softmax = torch.ops.aten._log_softmax.out

Reference = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def _blocks(x: Tensor) -> range:
    b = x.shape[0]
    rows = max(1, CHUNK // max(x[:1].numel(), 1)) if x.device.type == "cpu" else max(b, 1)
    return range(0, b, rows)


def _class_weight_view(weight: Tensor | None, like: Tensor) -> Tensor | float:
    return 1.0 if weight is None else weight.view((1, -1) + (1,) * (like.ndim - 2)).to(like.dtype)


def _class_sum(v: Tensor, weight: Tensor) -> Tensor:
    """Σ_c weight_c·v[:, c, ...] without a block-sized temporary where a matrix product does it."""
    w = weight.to(v.dtype) if v.is_floating_point() else weight
    if v.ndim == 2:
        return v.to(w.dtype) @ w
    return (v * w.view(1, -1, 1)).sum(1)


def _blockwise_forward(x: Tensor, t: Tensor, weight: Tensor | None,
                       smoothing: float) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """NLL per position by PyTorch's ``log_softmax`` over blocks of rows, and with label
    smoothing Σ_c w_c·(−log p_c) and Σ_c w_c over the finite classes (for backward)."""
    c = x.shape[1]
    nll = torch.empty(t.shape, dtype=x.dtype, device=x.device)
    smooth = torch.empty_like(nll) if smoothing != 0.0 else None
    wfin = torch.empty_like(nll) if smoothing != 0.0 else None
    steps = _blocks(x)
    rows = steps.step
    buf = x.new_empty(x[:rows].shape)
    for r in steps:
        xr = x[r:r + rows]
        logp = buf[:xr.shape[0]]
        _log_softmax(xr, 1, False, out=logp)
        nll[r:r + rows] = logp.gather(1, t[r:r + rows].unsqueeze(1)).squeeze(1).neg()
        if smooth is not None and wfin is not None:
            ninf = torch.isneginf(logp)
            logp.masked_fill_(ninf, 0.0)
            if weight is None:
                smooth[r:r + rows] = logp.sum(1).neg_()
                wfin[r:r + rows] = ninf.sum(1).neg_().add_(c)
            else:
                smooth[r:r + rows] = _class_sum(logp, weight).neg_()
                wfin[r:r + rows] = _class_sum(ninf.logical_not_(), weight)
    return nll, smooth, wfin


def _differentiable_grad(ctx: Any, g: Tensor, x: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    """The backward under ``create_graph=True``: the composed reference differentiated, so that
    second derivatives are recorded (impossible once the logits were overwritten in place)."""
    if ctx.inplace:
        raise LossInputError(
            "cross_entropy(inplace_backward=True) cannot be differentiated twice: the "
            "logits are overwritten by the gradient. Fix: drop inplace_backward when "
            "using create_graph=True.")
    (gx,) = reference_grads(lambda x: ctx.reference(x, target, weight), g, (x,))
    return gx


class _IndexCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                smoothing: float, inplace: bool, reference: Reference) -> Tensor:
        valid = target != ignore_index
        t = torch.where(valid, target, 0)
        c = x.shape[1]
        nll, smooth, wfin = _blockwise_forward(x, t, weight, smoothing)
        wy = valid.to(x.dtype) if weight is None else torch.where(valid, weight.to(x.dtype)[t], 0.0)
        loss = nll * wy
        if smooth is not None:
            loss = (1.0 - smoothing) * loss + (smoothing / c) * torch.where(valid, smooth, 0.0)
        ctx.save_for_backward(x, target, weight, t, valid, wy, wfin)
        ctx.smoothing, ctx.inplace, ctx.reference = smoothing, inplace, reference
        return loss

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, target, weight, t, valid, wy, wfin = ctx.saved_tensors
        none = (None,) * 6
        if not ctx.needs_input_grad[0]:
            return (None,) + none
        if torch.is_grad_enabled():
            return (_differentiable_grad(ctx, g, x, target, weight),) + none
        eps = ctx.smoothing
        c = x.shape[1]
        s = torch.where(valid, g, 0.0)
        at_target = (s * wy * (1.0 - eps)).unsqueeze(1)
        on_p = at_target if eps == 0.0 else at_target + (s * wfin * (eps / c)).unsqueeze(1)
        uniform = (s * (eps / c)).unsqueeze(1)
        w = _class_weight_view(weight, x)
        out = x if ctx.inplace else torch.empty_like(x, memory_format=torch.contiguous_format)
        tt = t.unsqueeze(1)
        steps = _blocks(x)
        rows = steps.step
        for r in steps:
            xr, gr = x[r:r + rows], out[r:r + rows]
            # read xr before gr (the same memory when inplace) is written
            ninf = torch.isneginf(xr) if eps != 0.0 else None
            _softmax(xr, 1, False, out=gr)  # row by row, so gr may alias xr
            if ninf is None:
                gr.mul_(on_p[r:r + rows])
            elif weight is None:
                torch.addcmul(uniform[r:r + rows].neg(), gr, on_p[r:r + rows], out=gr)
            else:
                gr.mul_(on_p[r:r + rows]).addcmul_(uniform[r:r + rows], w, value=-1.0)
            if ninf is not None:
                gr.masked_fill_(ninf, 0.0)  # no smoothing mass on a −inf (masked) class
            gr.scatter_add_(1, tt[r:r + rows], at_target[r:r + rows].neg())
        return (out,) + none


class _RowsCrossEntropy(torch.autograd.Function):
    """The same loss through the C row kernels: contiguous ``(B, C)`` or ``(B, C, S)`` CPU logits.
    Ignored positions are left out in C (0 loss, zero gradient); the per-position factors are
    formed here."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                smoothing: float, inplace: bool, reference: Reference, kernel: _native.SoftmaxRows) -> Tensor:
        t = target.to(torch.int64).contiguous()
        w = None if weight is None else weight.to(x.dtype).contiguous()
        nll, lse, smooth, wfin, bad = kernel.forward(x, t, ignore_index, w, smoothing != 0.0)
        if bad:
            c = x.shape[1]
            raise LossInputError(
                f"target holds {bad} class index(es) outside [0, {c}) (ignore_index={ignore_index}). "
                f"Fix: use labels in 0…{c - 1}, or mark the positions to skip with ignore_index.")
        # w[target] per row (any value on ignored rows: their loss and gradient are 0 in C)
        wy = None if w is None else w[torch.where(t != ignore_index, t, 0)]
        loss = nll if wy is None else nll * wy
        if smooth is not None:
            loss = (1.0 - smoothing) * loss + (smoothing / x.shape[1]) * smooth
        ctx.save_for_backward(x, target, weight, t, w, wy, lse, wfin)
        ctx.ignore_index, ctx.smoothing, ctx.inplace = ignore_index, smoothing, inplace
        ctx.reference, ctx.kernel = reference, kernel
        return loss

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, target, weight, t, w, wy, lse, wfin = ctx.saved_tensors
        none = (None,) * 7
        if not ctx.needs_input_grad[0]:
            return (None,) + none
        if torch.is_grad_enabled():
            return (_differentiable_grad(ctx, g, x, target, weight),) + none
        g = g.to(x.dtype)
        at_target = g if wy is None else g * wy
        out = x if ctx.inplace else torch.empty_like(x, memory_format=torch.contiguous_format)
        eps = ctx.smoothing
        uniform = None
        on_p = at_target = at_target.contiguous()
        if eps != 0.0:
            at_target = at_target * (1.0 - eps)
            uniform = g * (eps / x.shape[1])
            on_p = (at_target + uniform * wfin).contiguous()
            uniform = uniform.contiguous()
        ctx.kernel.backward(x, t, ctx.ignore_index, w, lse, on_p, uniform, at_target, out)
        if ctx.inplace:  # written behind autograd's back: mark the logits as modified
            torch.autograd.graph.increment_version(x)
        return (out,) + none


def index_cross_entropy(
    x: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    reference: Reference,
    *,
    inplace: bool = False,
) -> Tensor:
    """Per-position cross-entropy of ``x`` ``(B, C)`` or ``(B, C, S)`` (class dim 1) against
    indices ``target`` ``(B,)`` or ``(B, S)``, of the target's shape. ``reference(x, target,
    weight)`` is the same loss composed of differentiable ops (used for double backward)."""
    kernel = _native.softmax_rows(x)
    if kernel is not None:
        return _RowsCrossEntropy.apply(x, target, weight, ignore_index, float(label_smoothing), inplace,
                                       reference, kernel)
    return _IndexCrossEntropy.apply(x, target, weight, ignore_index, float(label_smoothing), inplace,
                                    reference)


class _RowsSoftCrossEntropy(torch.autograd.Function):
    """Cross-entropy of contiguous ``(B, C)`` CPU logits against probabilities, through the C row
    kernels: per row ``lse·W − Σ_c w_c t_c x_c`` over the finite classes, W = Σ_c w_c t_c there;
    saves the logits, the targets and two floats per row; the gradient of the logits only (a
    target that requires grad takes the composed form)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, target: Tensor, weight: Tensor | None, smoothing: float,
                reference: Reference, kernel: _native.SoftmaxRows) -> Tensor:
        w = None if weight is None else weight.to(x.dtype).contiguous()
        loss, lse, mass = kernel.soft_forward(x, target, w, smoothing)
        ctx.save_for_backward(x, target, weight, w, lse, mass)
        ctx.smoothing, ctx.reference, ctx.kernel, ctx.inplace = smoothing, reference, kernel, False
        return loss

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, target, weight, w, lse, mass = ctx.saved_tensors
        none = (None,) * 5
        if torch.is_grad_enabled():
            return (_differentiable_grad(ctx, g, x, target, weight),) + none
        out = torch.empty_like(x)
        ctx.kernel.soft_backward(x, target, w, ctx.smoothing, lse, mass, g.to(x.dtype).contiguous(), out)
        return (out,) + none


def probability_cross_entropy(x: Tensor, target: Tensor, weight: Tensor | None, label_smoothing: float,
                              reference: Reference) -> Tensor | None:
    """Per-row cross-entropy of ``(B, C)`` logits against probabilities ``target`` on the C
    kernels, or ``None`` where they do not apply (then the caller composes it): not a
    contiguous CPU float32/float64 pair, a target or weight that requires grad, or under
    ``torch.compile``/``torch.func``. ``reference(x, target, weight)`` is the composed form."""
    if x.ndim != 2 or target.requires_grad or (weight is not None and weight.requires_grad):
        return None
    if not use_fast_path() or target.dtype != x.dtype or not target.is_contiguous():
        return None
    kernel = _native.softmax_rows(x)
    if kernel is None:
        return None
    return _RowsSoftCrossEntropy.apply(x, target, weight, float(label_smoothing), reference, kernel)
