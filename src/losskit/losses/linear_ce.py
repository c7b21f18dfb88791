"""Cross-entropy of a linear head, ``hidden @ weight.T + bias``, without materialising the
N×V logits: the tokens are processed in chunks of ``chunk_size`` rows, so at most
``chunk_size × V`` logits exist at any time.

* ``reduction="mean"``/``"sum"`` (the training case): one pass. Each chunk's logits give its
  log-sum-exp, its losses and, at once, its contributions to the gradients of ``hidden``,
  ``weight`` and ``bias``, which are kept (O(N·D + V·D), the size of the inputs) and scaled by
  the incoming gradient in backward. Three matrix products in all, as for the materialised
  version.
* ``reduction="none"``: the forward keeps only the per-token log-sum-exp (O(N)); backward
  recomputes each chunk's logits and applies the (arbitrary) per-token incoming gradient.

Both paths are once-differentiable (no double backward), like PyTorch's own chunked
``linear_cross_entropy``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

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
from losskit._core.reduction import EMPTY_POLICIES, REDUCTIONS, reduce
from losskit._core.registry import Properties, Sample, register
from losskit.distributed import all_reduce_sum

__all__ = ["LinearCrossEntropyLoss", "count_valid_targets", "linear_cross_entropy"]

#: Logits per chunk when ``chunk_size`` is not given (4 Mi floats = 16 MiB in float32).
CHUNK_ELEMENTS = 1 << 22


def _chunk_logits(x: Tensor, w: Tensor, b: Tensor | None, softcap: float | None) -> Tensor:
    z = x @ w.T
    if b is not None:
        z = z + b
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return z


def _chunk_loss(z: Tensor, t: Tensor, keep: Tensor, eps: float, z_loss: float) -> tuple[Tensor, Tensor]:
    """Per-token loss and log-sum-exp of one chunk of logits ``z`` (n, V)."""
    lse = torch.logsumexp(z, dim=1)
    nll = lse - z.gather(1, t.unsqueeze(1)).squeeze(1)
    loss = nll if eps == 0 else (1.0 - eps) * nll + eps * (lse - z.mean(dim=1))
    if z_loss != 0:
        loss = loss + z_loss * lse.square()
    return torch.where(keep, loss, loss.new_zeros(())), lse


def _chunk_dlogits(z: Tensor, lse: Tensor, t: Tensor, keep: Tensor, g: Tensor, eps: float,
                   z_loss: float, softcap: float | None) -> Tensor:
    """∂(Σ g·loss)/∂(pre-softcap logits) for one chunk (written into ``z``'s buffer's copy)."""
    p = torch.exp(z - lse.unsqueeze(1))
    scale = g if z_loss == 0 else g * (1.0 + 2.0 * z_loss * lse)
    d = p * scale.unsqueeze(1)
    if eps != 0:
        d = d - (g * (eps / z.shape[1])).unsqueeze(1)
    d = d.scatter_add(1, t.unsqueeze(1), (-(1.0 - eps) * g).unsqueeze(1))
    d = d * keep.unsqueeze(1).to(d.dtype)
    if softcap is not None:
        d = d * (1.0 - (z / softcap).square())
    return d


class _LinearCrossEntropy(torch.autograd.Function):
    """Per-token losses of the chunked linear cross-entropy (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor | None, t: Tensor, ignore_index: int,
                eps: float, z_loss: float, softcap: float | None, chunk: int,
                fused: bool) -> Tensor:
        acc = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        xa, wa = x.to(acc), w.to(acc)
        ba = None if b is None else b.to(acc)
        keep = t != ignore_index
        ts = torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))
        n = x.shape[0]
        losses, lses = [], []
        gx = torch.zeros_like(xa) if fused else None
        gw = torch.zeros_like(wa) if fused else None
        gb = None if ba is None or not fused else torch.zeros_like(ba)
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            z = _chunk_logits(xa[s:e], wa, ba, softcap)
            loss, lse = _chunk_loss(z, ts[s:e], keep[s:e], eps, z_loss)
            losses.append(loss)
            lses.append(lse)
            if fused:
                ones = torch.ones_like(lse)
                d = _chunk_dlogits(z, lse, ts[s:e], keep[s:e], ones, eps, z_loss, softcap)
                gx[s:e] = d @ wa  # type: ignore[index]
                gw.addmm_(d.T, xa[s:e])  # type: ignore[union-attr]
                if gb is not None:
                    gb.add_(d.sum(0))
        out = torch.cat(losses) if losses else xa.new_zeros((0,))
        ctx.hp = (eps, z_loss, softcap, chunk, fused, b is not None, x.dtype, w.dtype,
                  None if b is None else b.dtype)
        if fused:
            ctx.save_for_backward(keep, gx, gw, gb)
        else:
            lse_all = torch.cat(lses) if lses else xa.new_zeros((0,))
            ctx.save_for_backward(x, w, b, ts, keep, lse_all)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        eps, z_loss, softcap, chunk, fused, _, xdt, wdt, bdt = ctx.hp
        if fused:
            keep, gx, gw, gb = ctx.saved_tensors
            # The fused path only backs a "mean"/"sum" reduction, whose incoming gradient is the
            # same for every kept token (and 0 for ignored ones): its mean over kept tokens.
            kept = keep.to(g.dtype)
            gbar = (g * kept).sum() / kept.sum().clamp_min(1.0)
            dx = (gx * g.unsqueeze(1).to(gx.dtype)).to(xdt)
            dw = (gw * gbar.to(gw.dtype)).to(wdt)
            db = None if gb is None else (gb * gbar.to(gb.dtype)).to(bdt)
            return dx, dw, db, None, None, None, None, None, None, None
        x, w, b, ts, keep, lse = ctx.saved_tensors
        acc = lse.dtype
        xa, wa = x.to(acc), w.to(acc)
        ba = None if b is None else b.to(acc)
        ga = g.to(acc)
        dx = torch.zeros_like(xa)
        dw = torch.zeros_like(wa)
        db = None if ba is None else torch.zeros_like(ba)
        n = x.shape[0]
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            z = _chunk_logits(xa[s:e], wa, ba, softcap)
            d = _chunk_dlogits(z, lse[s:e], ts[s:e], keep[s:e], ga[s:e], eps, z_loss, softcap)
            dx[s:e] = d @ wa
            dw.addmm_(d.T, xa[s:e])
            if db is not None:
                db.add_(d.sum(0))
        return (dx.to(xdt), dw.to(wdt), None if db is None else db.to(bdt),
                None, None, None, None, None, None, None)


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
    skip={"gradgradcheck": "the chunked backward is once-differentiable: gradients are formed "
                           "chunk by chunk from recomputed logits (as in torch's chunked path)"},
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
        chunk_size: tokens per chunk (default: 2²² / V, at least 1); only memory and speed
            depend on it.
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
    chunk = chunk_size if chunk_size is not None else max(1, CHUNK_ELEMENTS // max(vocab, 1))
    needs_grad = torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    fused = reduction != "none" and needs_grad
    per = _LinearCrossEntropy.apply(x, weight, bias, t, ignore_index, float(label_smoothing),
                                    float(z_loss), None if softcap is None else float(softcap),
                                    chunk, fused)
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
