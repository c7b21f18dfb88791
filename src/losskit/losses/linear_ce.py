"""Cross-entropy of a linear head, ``hidden @ weight.T + bias``, without materialising the
N×V logits: the tokens are processed in chunks of ``chunk_size`` rows through one reused
``V × chunk`` buffer (softmax and gradient formed in place in it), so one chunk of logits
exists at any time.

* ``reduction="mean"``/``"sum"`` with gradients wanted (the training case): one pass. Each
  chunk's logits give its losses and, at once, its contributions to the gradients of
  ``hidden``, ``weight`` and ``bias`` (three matrix products in all, as for the materialised
  version). Those gradient buffers are the gradients: backward scales them in place by the
  incoming gradient and hands them to autograd, so nothing N×V is ever allocated and nothing
  is copied. A second backward (``retain_graph=True``) runs the same pass again.
* ``reduction="none"``, or no gradient wanted: the forward keeps only the per-token
  log-sum-exp (O(N)); backward recomputes each chunk's logits and applies the arbitrary
  per-token incoming gradient (four matrix products in all).

The gradients are formed outside autograd, so the loss is differentiable once: backward with
``create_graph=True`` raises (PyTorch's chunked ``linear_cross_entropy`` is once-differentiable
too).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_class_index,
    check_floating,
    check_number,
    check_option,
    check_tensor,
    shape_str,
)
from losskit._core.module import LossModule
from losskit._core.reduction import EMPTY_POLICIES, REDUCTIONS, as_float32, reduce
from losskit._core.registry import Properties, Sample, register
from losskit.distributed import all_reduce_sum

__all__ = ["LinearCrossEntropyLoss", "count_valid_targets", "linear_cross_entropy"]

#: Logits per chunk when ``chunk_size`` is not given (16 Mi floats = 64 MiB in float32): chunks of
#: a few hundred tokens keep each matrix product as efficient as the full one.
CHUNK_ELEMENTS = 1 << 24


def _chunk_rows(n: int, vocab: int, chunk_size: int | None) -> int:
    """Rows per chunk: ``chunk_size``, or 2²⁴ / V balanced so the last chunk is not a sliver."""
    if chunk_size is not None:
        return chunk_size
    rows = max(1, CHUNK_ELEMENTS // max(vocab, 1))
    if n <= rows:
        return max(n, 1)
    parts = -(-n // rows)
    return -(-n // parts)


def _logits_into(z: Tensor, th: Tensor | None, x: Tensor, w: Tensor, b: Tensor | None,
                 softcap: float | None) -> None:
    """``z ← W xᵀ + b`` in place, one column per token (soft-capped, with ``th ← tanh(z/c)``
    kept for the gradient)."""
    if b is None:
        z.addmm_(w, x.T, beta=0)  # beta=0: z's old contents are ignored, NaN included
    else:
        z.copy_(b.unsqueeze(1).expand_as(z)).addmm_(w, x.T)
    if th is not None and softcap is not None:
        th.copy_(z).div_(softcap).tanh_()
        z.copy_(th).mul_(softcap)


def _grad_columns(z: Tensor, th: Tensor | None, t: Tensor, s: Tensor, eps: float, c: Tensor | None) -> None:
    """Turn ``z = s·softmax`` (column sums ``s``) in place into ``s·∂ℓ/∂z_pre`` of the unit loss
    ``(1-ε)·nll + ε·smooth + λ·lse²``: ``c·e - s·ε/V - s·(1-ε)·onehot(t)`` with ``c = 1 + 2λ·lse``,
    times ``1 - tanh²`` when soft-capped. The caller scales column i by ``rᵢ`` (through the
    matrix products, not here)."""
    if c is not None:
        z.mul_(c)
    if eps != 0:
        z.sub_(s * (eps / z.shape[0]))
    z.scatter_add_(0, t.unsqueeze(0), (s * -(1.0 - eps)).unsqueeze(0))
    if th is not None:
        z.mul_(th.square_().neg_().add_(1.0))


def _accumulate(z: Tensor, r: Tensor, x: Tensor, w: Tensor, gx: Tensor | None, gw: Tensor | None,
                gb: Tensor | None, first: bool) -> None:
    """Add one chunk's gradient, ``z·diag(r)`` with respect to the pre-softcap logits (one
    column per token), into ``gx`` (the chunk's rows), ``gw`` and ``gb``: two matrix products
    and a matrix-vector one."""
    beta = 0.0 if first else 1.0
    if gx is not None:
        gx.addmm_(z.T, w, beta=0).mul_(r.unsqueeze(1))
    if gw is not None:
        gw.addmm_(z, x * r.unsqueeze(1), beta=beta)
    if gb is not None:
        gb.addmv_(z, r, beta=beta)


def _chunk_stats(z: Tensor, t: Tensor, keep: Tensor, eps: float,
                 z_loss: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token loss, log-sum-exp and column sum ``s`` of one chunk of logits (V × tokens);
    leaves ``z ← exp(z - max)`` (so ``z / s`` is the softmax)."""
    zy = z.gather(0, t.unsqueeze(0)).squeeze(0)
    zbar = z.mean(dim=0) if eps != 0 else None
    m = z.amax(dim=0)
    z.sub_(m).exp_()
    s = z.sum(dim=0)
    lse = m + s.log()
    loss = lse - zy
    if zbar is not None:
        loss = (1.0 - eps) * loss + eps * (lse - zbar)
    if z_loss != 0:
        loss = loss + z_loss * lse.square()
    return torch.where(keep, loss, loss.new_zeros(())), lse, s


def _buffers(xa: Tensor, wa: Tensor, ba: Tensor | None, rows: int, softcap: float | None,
             need: tuple[bool, bool, bool]) -> tuple[Tensor, Tensor | None, Tensor | None,
                                                     Tensor | None, Tensor | None]:
    """The flat logits buffer (``softcap``: and its tanh twin) and the gradient outputs."""
    n, vocab = xa.shape[0], wa.shape[0]
    z_buf = xa.new_empty(vocab * min(rows, n))
    th_buf = None if softcap is None else torch.empty_like(z_buf)
    gx = torch.empty_like(xa) if need[0] else None
    gw = (torch.empty_like(wa) if n else torch.zeros_like(wa)) if need[1] else None
    gb = None if ba is None or not need[2] else (torch.empty_like(ba) if n else torch.zeros_like(ba))
    return z_buf, th_buf, gx, gw, gb


def _columns(buf: Tensor, vocab: int, k: int) -> Tensor:
    # V × k logits of a k-token chunk, contiguous, in the front of the flat buffer: the matrix
    # products then see V as their long dimension, which measured faster on CPU than k × V.
    return buf[: vocab * k].view(vocab, k)


def _chunked_pass(xa: Tensor, wa: Tensor, ba: Tensor | None, ts: Tensor, keep: Tensor, eps: float,
                  z_loss: float, softcap: float | None, rows: int, need: tuple[bool, bool, bool]
                  ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """One pass over the token chunks: per-token losses and log-sum-exps and, for each ``need``
    that is set, the gradient of ``Σ_kept ℓ`` with respect to hidden, weight and bias (three
    matrix products per chunk in all, one chunk of logits alive)."""
    n, vocab = xa.shape[0], wa.shape[0]
    z_buf, th_buf, gx, gw, gb = _buffers(xa, wa, ba, rows, softcap, need)
    losses, lses = [], []
    for s0 in range(0, n, rows):
        e0 = min(s0 + rows, n)
        z = _columns(z_buf, vocab, e0 - s0)
        th = None if th_buf is None else _columns(th_buf, vocab, e0 - s0)
        _logits_into(z, th, xa[s0:e0], wa, ba, softcap)
        loss, lse, s = _chunk_stats(z, ts[s0:e0], keep[s0:e0], eps, z_loss)
        losses.append(loss)
        lses.append(lse)
        if any(need):
            _grad_columns(z, th, ts[s0:e0], s, eps, None if z_loss == 0 else 1.0 + 2.0 * z_loss * lse)
            r = keep[s0:e0].to(s.dtype) / s
            _accumulate(z, r, xa[s0:e0], wa, None if gx is None else gx[s0:e0], gw, gb, s0 == 0)
    out = torch.cat(losses) if losses else xa.new_zeros((0,))
    lse_all = torch.cat(lses) if lses else xa.new_zeros((0,))
    return out, lse_all, gx, gw, gb


def _recompute_grads(xa: Tensor, wa: Tensor, ba: Tensor | None, ts: Tensor, keep: Tensor, lse: Tensor,
                     g: Tensor, eps: float, z_loss: float, softcap: float | None, rows: int,
                     need: tuple[bool, bool, bool]) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Gradients of ``Σ gᵢ ℓᵢ`` for an arbitrary per-token ``g`` (``reduction="none"``): each
    chunk's logits are recomputed from the saved log-sum-exp (four matrix products in all)."""
    n, vocab = xa.shape[0], wa.shape[0]
    z_buf, th_buf, gx, gw, gb = _buffers(xa, wa, ba, rows, softcap, need)
    ga = g.to(lse.dtype) * keep.to(lse.dtype)
    c = None if z_loss == 0 else 1.0 + 2.0 * z_loss * lse
    ones = lse.new_ones(())
    for s0 in range(0, n, rows):
        e0 = min(s0 + rows, n)
        z = _columns(z_buf, vocab, e0 - s0)
        th = None if th_buf is None else _columns(th_buf, vocab, e0 - s0)
        _logits_into(z, th, xa[s0:e0], wa, ba, softcap)
        z.sub_(lse[s0:e0]).exp_()
        _grad_columns(z, th, ts[s0:e0], ones.expand(e0 - s0), eps, None if c is None else c[s0:e0])
        _accumulate(z, ga[s0:e0], xa[s0:e0], wa, None if gx is None else gx[s0:e0], gw, gb, s0 == 0)
    return gx, gw, gb


class _LinearCrossEntropy(torch.autograd.Function):
    """Per-token losses of the chunked linear cross-entropy (see the module docstring).

    ``fuse``: form the gradients of ``Σ_kept ℓ`` in the forward pass; valid only because the
    per-token losses go straight into ``reduce`` with ``"mean"``/``"sum"``, which gives every
    kept token the same incoming gradient. ``stash``: keep those gradients on ``ctx`` rather
    than saving them, and hand them to autograd scaled in place (no copy); a second backward
    (``retain_graph=True``) forms them again with the same pass, so it returns the same bits.
    Under ``torch.compile`` they are saved and scaled out of place instead."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor | None, t: Tensor, ignore_index: int,
                eps: float, z_loss: float, softcap: float | None, rows: int, fuse: bool,
                stash: bool, need: tuple[bool, bool, bool]) -> Tensor:
        xa, wa = as_float32(x, w)
        ba = None if b is None else as_float32(b)[0]
        keep = t != ignore_index
        ts = torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))
        out, lse, gx, gw, gb = _chunked_pass(xa, wa, ba, ts, keep, eps, z_loss, softcap, rows,
                                             need if fuse else (False, False, False))
        ctx.hp = (eps, z_loss, softcap, rows, need, x.dtype, w.dtype, None if b is None else b.dtype)
        ctx.mode, ctx.stashed = ("stash" if stash else "saved") if fuse else "recompute", None
        if fuse and stash:
            ctx.stashed = (gx, gw, gb)
            ctx.save_for_backward(x, w, b, ts, keep, lse)
        elif fuse:
            ctx.save_for_backward(x, w, b, ts, keep, lse, gx, gw, gb)
        else:
            ctx.save_for_backward(x, w, b, ts, keep, lse)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():  # backward(create_graph=True): no second-order terms here
            raise RuntimeError(
                "linear_cross_entropy is differentiable once: its gradients are formed chunk by chunk "
                "outside autograd, so backward with create_graph=True (gradient penalties, "
                "double backward) is not supported. Fix: use F.cross_entropy(hidden @ weight.T + bias, "
                "target) for that term.")
        eps, z_loss, softcap, rows, need, xdt, wdt, bdt = ctx.hp
        x, w, b, ts, keep, lse = ctx.saved_tensors[:6]
        xa, wa = as_float32(x, w)
        ba = None if b is None else as_float32(b)[0]
        if ctx.mode == "recompute":
            grads = _recompute_grads(xa, wa, ba, ts, keep, lse, g, eps, z_loss, softcap, rows, need)
        else:
            if ctx.mode == "saved":
                gx, gw, gb = ctx.saved_tensors[6:]
                gx, gw, gb = (None if t_ is None else t_.clone() for t_ in (gx, gw, gb))
            elif ctx.stashed is not None:
                (gx, gw, gb), ctx.stashed = ctx.stashed, None
            else:  # backward again after the stashed gradients were handed out
                gx, gw, gb = _chunked_pass(xa, wa, ba, ts, keep, eps, z_loss, softcap, rows, need)[2:]
            # Every kept token has the same incoming gradient (that of "mean"/"sum"), ignored
            # ones 0: the gradients formed in forward scale by its mean over kept tokens.
            kept = keep.to(g.dtype)
            gbar = (g * kept).sum() / kept.sum().clamp_min(1.0)
            grads = (None if gx is None else gx.mul_(g.unsqueeze(1).to(gx.dtype)),
                     None if gw is None else gw.mul_(gbar.to(gw.dtype)),
                     None if gb is None else gb.mul_(gbar.to(gb.dtype)))
        dx, dw, db = grads
        return (None if dx is None else dx.to(xdt), None if dw is None else dw.to(wdt),
                None if db is None else db.to(bdt), *(None,) * 9)


def _shifted(hidden: Tensor, target: Tensor, shift: bool) -> tuple[Tensor, Tensor]:
    if not shift:
        return hidden, target
    if target.ndim < 1:
        raise LossInputError("shift=True needs a sequence dimension: target (..., T), hidden (..., T, D).")
    return hidden[..., :-1, :], target[..., 1:]


def _sample(gen: torch.Generator, dtype: torch.dtype = torch.float64, extreme: bool = False) -> Sample:
    scale = 1e2 if extreme else 1.0  # logits of ~1e4
    h = (torch.randn(6, 4, generator=gen, dtype=torch.float64) * scale).to(dtype)
    w = (torch.randn(5, 4, generator=gen, dtype=torch.float64) * scale).to(dtype)
    y = torch.randint(0, 5, (6,), generator=gen)
    return Sample((h, w, y), {"chunk_size": 4}, grad=(0, 1))


@register(
    "linear_cross_entropy",
    family="classification",
    tasks=("classification", "language_modeling"),
    input_kind="hidden_states",
    target_kind="class_index",
    aliases=("linear_ce", "fused_linear_cross_entropy"),
    properties=Properties(convex=True, smoothness="Cinf", robust=None, homogeneity=None,
                          units="nats", zero_at_perfect=False),
    formula=r"\ell = (1-\varepsilon)(\mathrm{lse}(z) - z_y) + \varepsilon(\mathrm{lse}(z) - \bar z)"
            r" + \lambda_z\,\mathrm{lse}(z)^2,\ z = h W^\top + b",
    references=("Wijmans et al. 2025 (Cut Your Losses in Large-Vocabulary Language Models)",
                "Chowdhery et al. 2022 (PaLM, z-loss)", "Gemma Team 2024 (logit soft-capping)"),
    peers={"torch": "torch.nn.functional.linear_cross_entropy",
           "cut_cross_entropy": "cut_cross_entropy.linear_cross_entropy",
           "liger": "liger_kernel.transformers.LigerFusedLinearCrossEntropyLoss"},
    sample=_sample,
    skip={"gradgradcheck": "differentiable once: the gradients are formed chunk by chunk outside "
                           "autograd (as in torch's chunked path); create_graph=True raises"},
)
def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    bias: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    normalizer: float | Tensor | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    shift: bool = False,
    chunk_size: int | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Cross-entropy of the linear head :math:`z = hW^\top + b` computed in chunks of tokens,
    never holding the N×V logits: the same numbers as
    ``F.cross_entropy(hidden @ weight.T + bias, target, ...)`` with a fraction of the memory.

    Per token (ε = ``label_smoothing``, PyTorch's formula, i.e. the target
    :math:`(1-\varepsilon)\,\mathrm{onehot} + \varepsilon/V`):

    .. math::
        \ell = (1-\varepsilon)(\mathrm{lse}(z) - z_y)
               + \varepsilon(\mathrm{lse}(z) - \tfrac1V\textstyle\sum_k z_k)
               + \lambda_z\,\mathrm{lse}(z)^2

    with ``z_loss`` = :math:`\lambda_z` (PaLM's auxiliary :math:`\log^2 Z`), and with
    ``softcap`` = c the logits replaced by :math:`c\tanh(z/c)` (Gemma 2) before everything,
    gradient included. ``"mean"`` divides by the number of non-ignored targets (after the
    shift); with micro-batches or data parallelism use ``reduction="sum"`` and
    ``normalizer=count_valid_targets(full_target)`` (PITFALLS 1).

    Differentiable once: backward with ``create_graph=True`` raises a ``RuntimeError``.
    Half-precision inputs are computed in float32 (the loss is float32; gradients come back
    in the inputs' dtypes). ``torch.nn.functional.linear_cross_entropy`` (torch ≥ 2.13) is
    not dispatched to: its chunked path has no z-loss, softcap, shift, normalizer or empty
    policy and is not traceable by ``torch.compile(fullgraph=True)``; tests compare against it.

    Args:
        hidden: ``(..., D)`` features (e.g. ``(B, T, D)``).
        weight: ``(V, D)`` output projection (``nn.Linear(D, V).weight``).
        target: ``(...)`` class indices (e.g. ``(B, T)``), dtype long.
        bias: ``(V,)`` or ``None``.
        ignore_index: target value that contributes nothing and is not counted.
        label_smoothing: ε in [0, 1].
        reduction: ``"none"`` (per token, shape of the (shifted) target) | ``"mean"`` |
            ``"sum"`` (divided by ``normalizer`` when given).
        $normalizer
        z_loss: λ ≥ 0 of the log-partition penalty (0 disables it).
        softcap: c > 0 to soft-cap the logits, or ``None``.
        shift: causal-LM labels: position t predicts ``target[..., t+1]`` (drops the last
            position of ``hidden`` and the first of ``target`` along the sequence dim).
        chunk_size: tokens per chunk (default: about 2²⁴ / V, i.e. 64 MiB of float32 logits,
            balanced so the last chunk is not a sliver); only memory and speed depend on it.
        $empty

    Shape:
        ``(..., D)``, ``(V, D)``, ``(...)`` → scalar, or ``(...)`` with ``reduction="none"``
        (the sequence dim one shorter with ``shift=True``).

    Examples:
        >>> import torch, torch.nn.functional as F, losskit.functional as LF
        >>> g = torch.Generator().manual_seed(0)
        >>> h, W = torch.randn(8, 16, generator=g), torch.randn(100, 16, generator=g)
        >>> y = torch.randint(0, 100, (8,), generator=g)
        >>> torch.isclose(LF.linear_cross_entropy(h, W, y, chunk_size=3), F.cross_entropy(h @ W.T, y))
        tensor(True)
        >>> LF.linear_cross_entropy(h, W, torch.full((8,), -100))   # nothing to predict
        tensor(0.)

    References:
        Wijmans, Huval, Hertzberg, Koltun, Krähenbühl, "Cut Your Losses in Large-Vocabulary
        Language Models", ICLR 2025. Chowdhery et al., "PaLM: Scaling Language Modeling with
        Pathways", 2022 (z-loss). Gemma Team, "Gemma 2", 2024 (logit soft-capping).
    """
    check_option("reduction", reduction, REDUCTIONS)
    check_option("empty", empty, EMPTY_POLICIES)
    check_floating("hidden", hidden)
    check_floating("weight", weight)
    check_tensor("target", target)
    check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
    check_number("z_loss", z_loss, low=0.0)
    if softcap is not None:
        check_number("softcap", softcap, low=0.0, low_open=True)
    if weight.ndim != 2 or hidden.ndim < 1 or hidden.shape[-1] != weight.shape[1]:
        raise LossInputError(
            f"hidden has shape {shape_str(hidden)} and weight {shape_str(weight)}; expected hidden "
            "(..., D) and weight (V, D) with the same D. Fix: pass nn.Linear(D, V).weight, not its "
            "transpose, and keep the features in hidden's last dim."
        )
    if target.shape != hidden.shape[:-1]:
        raise LossInputError(
            f"target has shape {shape_str(target)} but hidden {shape_str(hidden)} needs target "
            f"{shape_str(hidden.shape[:-1])} (one class index per row of hidden). Fix: reshape target."
        )
    vocab = weight.shape[0]
    if bias is not None:
        check_floating("bias", bias)
        if bias.shape != (vocab,):
            raise LossInputError(f"bias must have shape ({vocab},), got {shape_str(bias)}.")
    check_class_index(target, vocab, ignore_index=ignore_index)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise LossInputError(f"chunk_size must be a positive int, got {chunk_size!r}.")

    hidden, target = _shifted(hidden, target, shift)
    out_shape = target.shape
    x = hidden.reshape(-1, hidden.shape[-1])
    t = target.reshape(-1)
    chunk = _chunk_rows(x.shape[0], vocab, chunk_size)
    need = (hidden.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
    fuse = reduction != "none" and torch.is_grad_enabled() and any(need)
    stash = not torch.compiler.is_compiling()
    per = _LinearCrossEntropy.apply(x, weight, bias, t, ignore_index, float(label_smoothing),
                                    float(z_loss), None if softcap is None else float(softcap),
                                    chunk, fuse, stash, need)
    per = per.reshape(out_shape)
    return reduce(per, reduction, mask=target != ignore_index, normalizer=normalizer, empty=empty)


class LinearCrossEntropyLoss(LossModule):
    """Module form of :func:`linear_cross_entropy` (pass the head's ``weight`` at call time)."""

    fn = staticmethod(linear_cross_entropy)


def count_valid_targets(
    target: Tensor,
    ignore_index: int = -100,
    shift: bool = False,
    process_group: object | None = None,
) -> Tensor:
    """The number of targets that are not ``ignore_index`` (after the causal shift when
    ``shift=True``), as a 0-d int64 tensor, summed over the ranks of ``process_group`` when
    one is given (and torch.distributed is initialised). Pass it as ``normalizer=`` with
    ``reduction="sum"`` so micro-batches or ranks give exactly the full-batch mean.

    Examples:
        >>> import torch
        >>> from losskit.functional import count_valid_targets
        >>> y = torch.tensor([[5, 3, -100], [7, -100, -100]])
        >>> count_valid_targets(y), count_valid_targets(y, shift=True)
        (tensor(3), tensor(1))
    """
    check_tensor("target", target)
    if shift:
        target = target[..., 1:]
    count = (target != ignore_index).sum()
    if process_group is not None:
        count = all_reduce_sum(count, process_group)
    return count
