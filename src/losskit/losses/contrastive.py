"""Batch-contrastive losses: InfoNCE, NT-Xent (SimCLR), CLIP, SigLIP and SupCon.

Each compares every row of a batch with every other (a ``B×B`` similarity matrix). Shared
options:

* ``normalize=True`` L2-normalises the embeddings first (cosine similarity).
* ``chunk_size="auto" | None | int``: with an int, rows are processed ``chunk_size`` at a time
  by a custom autograd Function that keeps only the embeddings and ``O(B)`` per-row statistics
  (log-sum-exp, positive counts) for backward and recomputes each block of similarities there:
  the same value and gradient without holding the ``B×B`` matrix (PITFALLS 13). ``None``
  always builds the whole matrix (fastest while it fits), in one fused Function that keeps only
  its softmax (one ``M×N`` buffer) for backward. ``"auto"`` (the default) is ``None``
  while a similarity matrix has at most :data:`AUTO_CHUNK_ABOVE` entries (``2**24``: 64 MiB of
  float32, e.g. NT-Xent up to B = 2048) and above that chunks of ``AUTO_CHUNK_BLOCK // N`` rows
  (``2**22`` entries, 16 MiB per block, for ``N`` columns). The choice depends on shapes only,
  so it traces under ``torch.compile``. Higher-order gradients (``create_graph=True``) through
  the chunked path are exact: its backward then recomputes the block densely and
  differentiably (dense memory for that backward).
* ``gather=False | True``, ``process_group``, ``local_loss``: across processes (PITFALLS 12).
  With ``gather=True`` the embeddings of every rank are gathered with
  :func:`losskit.distributed.all_gather_with_grad`. Without ``local_loss`` every rank computes
  the full global loss; with ``local_loss=True`` each rank computes only its own rows against
  the global keys and returns ``world_size × (its share of the global reduction)``, so the mean
  over ranks is the global loss. Either way, DDP's gradient averaging then gives exactly the
  gradients of one process holding the whole batch. See ``docs/distributed.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_floating,
    check_ndim,
    check_number,
    check_option,
    check_tensor,
    shape_str,
)
from losskit._core.fused import reference_grads
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register
from losskit.distributed import (
    all_gather_no_grad,
    all_gather_with_grad,
    all_reduce_sum,
    get_rank,
    get_world_size,
)

__all__ = [
    "CLIPLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "SigLIPLoss",
    "SupConLoss",
    "clip_loss",
    "info_nce_loss",
    "nt_xent_loss",
    "siglip_loss",
    "supcon_loss",
]

_TASKS = ("contrastive", "self_supervised", "retrieval")
_REDUCTIONS = ("none", "mean", "sum")

#: ``chunk_size="auto"`` chunks a similarity matrix with more entries than this (64 MiB of
#: float32). Below it the dense path is faster on CPU (the chunked one recomputes the logits in
#: backward: docs/benchmarks/contrastive.md) and its memory is small.
AUTO_CHUNK_ABOVE = 2**24
#: ...into blocks of about this many entries (16 MiB of float32): ``AUTO_CHUNK_BLOCK // N`` rows.
AUTO_CHUNK_BLOCK = 2**22


def _resolve_chunk(chunk_size: int | Literal["auto"] | None, rows: int, cols: int) -> int | None:
    """The chunk size to use for a ``rows × cols`` similarity matrix (None: dense)."""
    if chunk_size != "auto":
        return chunk_size  # type: ignore[return-value]
    if rows * cols <= AUTO_CHUNK_ABOVE:
        return None
    return max(1, AUTO_CHUNK_BLOCK // max(cols, 1))


# --------------------------------------------------------------------------- the shared core
#
# Rows q (M, D) against keys k (N, D); logits L = s · q kᵀ. Column j is excluded from row i when
# row_id[i] == col_id[j] (an anchor against itself). Row i's positives are the kept columns with
# col_label[j] == row_label[i], or, when ``extra`` is given, the extra logit extra[i] (InfoNCE
# with explicit negatives; then no column is positive). The row loss is
#     ℓ_i = logsumexp_j L_ij − mean_{j ∈ P(i)} L_ij
# and ``count[i] = |P(i)|``.


def _masks(extra: Tensor | None, row_label: Tensor | None, col_label: Tensor | None,
           row_id: Tensor | None, col_id: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """The excluded (anchor against itself) and positive masks of a block of rows."""
    excluded = None
    if row_id is not None and col_id is not None:
        excluded = row_id[:, None] == col_id[None, :]
    positive = None
    if extra is None and row_label is not None and col_label is not None:
        positive = row_label[:, None] == col_label[None, :]
        if excluded is not None:
            positive = positive & ~excluded
    return excluded, positive


def _block(
    q: Tensor, k: Tensor, scale: Tensor, extra: Tensor | None, row_label: Tensor | None,
    col_label: Tensor | None, row_id: Tensor | None, col_id: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Masked logits, and the positive mask of a block of rows."""
    logits = scale * (q @ k.T)
    excluded, positive = _masks(extra, row_label, col_label, row_id, col_id)
    if excluded is not None:
        logits = logits.masked_fill(excluded, -math.inf)
    return logits, logits.new_zeros(()), positive


def _rows(
    q: Tensor, k: Tensor, scale: Tensor, extra: Tensor | None, row_label: Tensor | None,
    col_label: Tensor | None, row_id: Tensor | None, col_id: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(ℓ, log-sum-exp, positive count) of a block of rows, differentiable."""
    logits, zero, positive = _block(q, k, scale, extra, row_label, col_label, row_id, col_id)
    if extra is not None:
        lse = torch.logsumexp(torch.cat([extra[:, None], logits], 1), 1)
        return lse - extra, lse, torch.ones_like(lse)
    lse = torch.logsumexp(logits, 1)
    assert positive is not None
    count = positive.sum(1).to(logits.dtype)
    pos = torch.where(positive, logits, zero).sum(1) / count.clamp_min(1.0)
    return lse - pos, lse, count


class _ChunkedSoftmaxRows(torch.autograd.Function):
    """:func:`_rows` chunk by chunk; saves the inputs and O(rows) statistics, recomputes the
    logits of each chunk in backward."""

    @staticmethod
    def forward(ctx: Any, q: Tensor | None, k: Tensor, scale: Tensor, extra: Tensor | None,
                row_label: Tensor | None, col_label: Tensor | None, row_id: Tensor | None,
                col_id: Tensor | None, chunk: int) -> tuple[Tensor, Tensor]:
        # q / row_label / row_id = None mean "the same as k / col_label / col_id" (torch.compile
        # cannot trace a Function given one tensor twice).
        ctx.rows_are_keys = q is None
        q = k if q is None else q
        row_label = col_label if row_label is None else row_label
        row_id = col_id if row_id is None else row_id
        if chunk == 0:
            # dense: one block, and its softmax kept for backward (no recomputation)
            logits, zero, positive = _block(q, k, scale, extra, row_label, col_label, row_id,
                                            col_id)
            if extra is not None:
                lse = torch.logsumexp(torch.cat([extra[:, None], logits], 1), 1)
                loss, count = lse - extra, torch.ones_like(lse)
            else:
                assert positive is not None
                lse = torch.logsumexp(logits, 1)
                count = positive.sum(1).to(logits.dtype)
                loss = lse - torch.where(positive, logits, zero).sum(1) / count.clamp_min(1.0)
            # in place: the logits are our own temporary; a fully excluded row gives 0, not NaN
            prob = logits.sub_(torch.where(torch.isfinite(lse), lse, 0.0)[:, None]).exp_()
            ctx.save_for_backward(None if ctx.rows_are_keys else q, k, scale, extra, row_label,
                                  col_label, row_id, col_id, lse, count, prob)
            ctx.chunk = q.shape[0]
            ctx.mark_non_differentiable(count)
            return loss, count
        losses, lses, counts = [], [], []
        for r in range(0, q.shape[0], chunk):
            sl = slice(r, r + chunk)
            loss, lse, count = _rows(
                q[sl], k, scale, None if extra is None else extra[sl],
                None if row_label is None else row_label[sl], col_label,
                None if row_id is None else row_id[sl], col_id,
            )
            losses.append(loss)
            lses.append(lse)
            counts.append(count)
        lse, count = torch.cat(lses), torch.cat(counts)
        ctx.save_for_backward(None if ctx.rows_are_keys else q, k, scale, extra, row_label,
                              col_label, row_id, col_id, lse, count, None)
        ctx.chunk = chunk
        ctx.mark_non_differentiable(count)
        return torch.cat(losses), count

    @staticmethod
    def backward(ctx: Any, grad: Tensor, _grad_count: Tensor | None) -> tuple[Tensor | None, ...]:
        (q, k, scale, extra, row_label, col_label, row_id, col_id, lse, count,
         prob) = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: a differentiable (dense) recomputation, so that higher-order
            # gradients are exact rather than silently missing this Function's terms.
            def dense(q: Tensor | None, k: Tensor, scale: Tensor, extra: Tensor | None) -> Tensor:
                return _rows(k if q is None else q, k, scale, extra, row_label, col_label, row_id,
                             col_id)[0]

            return (*reference_grads(dense, grad, (q, k, scale, extra)), None, None, None, None, None)
        q = k if q is None else q
        chunk = ctx.chunk
        # Gradients with respect to the unscaled products q kᵀ, scaled once at the end:
        # dq = s·(D k), dk = s·(Dᵀ q), ds = Σ D ∘ (q kᵀ) = Σ_i q_i · (D k)_i (no extra matmul).
        dq = torch.empty_like(q)
        dk = torch.zeros_like(k)
        ds = torch.zeros((), dtype=q.dtype, device=q.device)
        de = None if extra is None else torch.empty_like(extra)
        # A row whose every column is excluded has lse = -inf; its gradient is 0, not NaN.
        lse = torch.where(torch.isfinite(lse), lse, 0.0)
        inv_count = count.clamp_min(1.0).reciprocal()
        for r in range(0, q.shape[0], chunk):
            sl = slice(r, r + chunk)
            if prob is not None:  # dense: the kept softmax (copied: retain_graph may reuse it)
                d = prob.clone()
                positive = _masks(extra, row_label, col_label, row_id, col_id)[1]
            else:
                logits, _, positive = _block(
                    q[sl], k, scale, None if extra is None else extra[sl],
                    None if row_label is None else row_label[sl], col_label,
                    None if row_id is None else row_id[sl], col_id,
                )
                # in place on our own temporaries: one live (chunk × N) buffer plus the mask
                d = logits.sub_(lse[sl, None]).exp_()
            if positive is not None:
                d.sub_(positive.to(d.dtype).mul_(inv_count[sl, None]))
            d.mul_(grad[sl, None])
            if de is not None and extra is not None:
                de[sl] = grad[sl] * (torch.exp(extra[sl] - lse[sl]) - 1.0)
            dq_rows = d @ k
            dq[sl] = dq_rows
            dk.addmm_(d.T, q[sl])
            if ctx.needs_input_grad[2]:
                ds = ds + (q[sl] * dq_rows).sum()
        dq.mul_(scale)
        dk.mul_(scale)
        ds = ds.reshape(scale.shape)
        if ctx.rows_are_keys:
            return None, dk.add_(dq), ds, de, None, None, None, None, None
        return dq, dk, ds, de, None, None, None, None, None


class _DenseSoftmaxRows(_ChunkedSoftmaxRows):
    """The dense path (``chunk = 0``): one block, fused; keeps the ``M×N`` softmax for backward
    instead of autograd's logits and intermediates (fewer passes over the matrix)."""


def _softmax_rows(
    q: Tensor, k: Tensor, scale: Tensor, *, extra: Tensor | None = None,
    row_label: Tensor | None = None, col_label: Tensor | None = None,
    row_id: Tensor | None = None, col_id: Tensor | None = None,
    chunk_size: int | Literal["auto"] | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-row softmax-contrastive loss and positive count, dense or chunked."""
    chunk_size = _resolve_chunk(chunk_size, q.shape[0], k.shape[0])
    fn = _ChunkedSoftmaxRows if chunk_size is not None else _DenseSoftmaxRows
    return fn.apply(
        None if q is k else q, k, scale, extra, None if row_label is col_label else row_label,
        col_label, None if row_id is col_id else row_id, col_id,
        0 if chunk_size is None else chunk_size,
    )


def _sigmoid_block(q: Tensor, k: Tensor, scale: Tensor, bias: Tensor, row_label: Tensor,
                   col_label: Tensor) -> tuple[Tensor, Tensor]:
    """Signed logits z·(s qkᵀ + b) of a block of rows (z = +1 on positives, −1 elsewhere)."""
    sign = torch.where(row_label[:, None] == col_label[None, :], 1.0, -1.0).to(q.dtype)
    return sign * (scale * (q @ k.T) + bias), sign


class _ChunkedSigmoidRows(torch.autograd.Function):
    """Row sums of −log σ(z·(s qkᵀ + b)) chunk by chunk; backward recomputes each chunk."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, scale: Tensor, bias: Tensor,
                row_label: Tensor | None, col_label: Tensor, chunk: int) -> Tensor:
        row_label = col_label if row_label is None else row_label
        out = []
        for r in range(0, q.shape[0], chunk):
            sl = slice(r, r + chunk)
            signed, _ = _sigmoid_block(q[sl], k, scale, bias, row_label[sl], col_label)
            out.append(-F.logsigmoid(signed).sum(1))
        ctx.save_for_backward(q, k, scale, bias, row_label, col_label)
        ctx.chunk = chunk
        return torch.cat(out)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        q, k, scale, bias, row_label, col_label = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: as in _ChunkedSoftmaxRows.backward
            rows = col_label if row_label is None else row_label

            def dense(q: Tensor, k: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
                return -F.logsigmoid(_sigmoid_block(q, k, scale, bias, rows, col_label)[0]).sum(1)

            return (*reference_grads(dense, grad, (q, k, scale, bias)), None, None, None)
        # as in _ChunkedSoftmaxRows.backward: products unscaled, scaled once at the end
        dq, dk = torch.empty_like(q), torch.zeros_like(k)
        ds = torch.zeros((), dtype=q.dtype, device=q.device)
        db = torch.zeros((), dtype=q.dtype, device=q.device)
        for r in range(0, q.shape[0], ctx.chunk):
            sl = slice(r, r + ctx.chunk)
            signed, sign = _sigmoid_block(q[sl], k, scale, bias, row_label[sl], col_label)
            # d/dx −log σ(z x) = −z σ(−z x)
            d = signed.neg_().sigmoid_().mul_(sign).mul_(grad[sl, None]).neg_()
            dq_rows = d @ k
            dq[sl] = dq_rows
            dk.addmm_(d.T, q[sl])
            if ctx.needs_input_grad[2]:
                ds = ds + (q[sl] * dq_rows).sum()
            db = db + d.sum()
        dq.mul_(scale)
        dk.mul_(scale)
        return dq, dk, ds.reshape(scale.shape), db.reshape(bias.shape), None, None, None


def _sigmoid_rows(q: Tensor, k: Tensor, scale: Tensor, bias: Tensor, row_label: Tensor,
                  col_label: Tensor, chunk_size: int | Literal["auto"] | None) -> Tensor:
    chunk_size = _resolve_chunk(chunk_size, q.shape[0], k.shape[0])
    if chunk_size is None:
        signed, _ = _sigmoid_block(q, k, scale, bias, row_label, col_label)
        return -F.logsigmoid(signed).sum(1)
    return _ChunkedSigmoidRows.apply(q, k, scale, bias, None if row_label is col_label else row_label,
                                     col_label, chunk_size)


# --------------------------------------------------------------------------- shared plumbing


def _embedding(name: str, x: Any, layout: str = "(B, D)", ndim: int = 2) -> None:
    check_floating(name, x)
    check_ndim(name, x, ndim, layout)


def _same_shape(a_name: str, a: Tensor, b_name: str, b: Tensor) -> None:
    if a.shape != b.shape:
        raise LossInputError(
            f"{a_name} has shape {shape_str(a)} but {b_name} has shape {shape_str(b)}; row i of "
            f"{a_name} is paired with row i of {b_name}, so they must match. "
            f"Fix: pass the same number of rows and the same embedding size."
        )


def _options(reduction: str, chunk_size: int | Literal["auto"] | None, gather: bool,
             process_group: object | None, local_loss: bool) -> None:
    check_option("reduction", reduction, _REDUCTIONS)
    if chunk_size is not None and chunk_size != "auto" and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise LossInputError(f"chunk_size must be 'auto', None or a positive int, got {chunk_size!r}. "
                             f"Fix: chunk_size='auto' (default), None (never chunk) or e.g. 256.")
    if not gather and (local_loss or process_group is not None):
        raise LossInputError(
            "local_loss/process_group only apply when gathering across processes. "
            "Fix: pass gather=True (or drop local_loss/process_group)."
        )


def _scale(value: float | Tensor, like: Tensor, name: str, *, inverse: bool = False) -> Tensor:
    """A 0-d tensor multiplier (``1/value`` for a temperature), keeping a tensor's gradient."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise LossInputError(f"{name} must be a number or a 1-element tensor, got shape "
                                 f"{shape_str(value)}.")
        t = value.reshape(()).to(like.dtype)
    else:
        check_number(name, value, low=0.0, low_open=inverse)
        t = torch.tensor(float(value), dtype=like.dtype, device=like.device)
    return 1.0 / t if inverse else t


def _norm(x: Tensor, normalize: bool) -> Tensor:
    return F.normalize(x, dim=-1) if normalize else x


def _world(gather: bool, process_group: object | None) -> tuple[int, int]:
    if not gather:
        return 0, 1
    return get_rank(process_group), get_world_size(process_group)


def _gather(x: Tensor, world: int, process_group: object | None) -> Tensor:
    return x if world == 1 else all_gather_with_grad(x, process_group)


def _finish(rows: Tensor, reduction: str, *, world: int, local: bool, process_group: object | None,
            valid: Tensor | None = None, empty: str = "zero") -> Tensor:
    """Reduce per-row losses. With ``local`` rows on ``world`` > 1 ranks: ``"sum"`` is
    ``world · Σ_local`` and ``"mean"`` is ``world · Σ_local / global count``, so that the
    mean over ranks is the loss of the whole batch."""
    if not local or world == 1 or reduction == "none":
        return reduce(rows, reduction, mask=valid, empty=empty)
    total = reduce(rows, "sum", mask=valid)
    if reduction == "sum":
        return world * total
    count = (valid.sum() if valid is not None else rows.new_tensor(rows.numel())).to(rows.dtype)
    count = all_reduce_sum(count, process_group)
    mean = world * total / count.clamp_min(1.0)
    if empty == "nan":
        mean = torch.where(count > 0, mean, mean.new_full((), math.nan))
    return mean


def _arange(n: int, like: Tensor, start: int = 0) -> Tensor:
    return torch.arange(start, start + n, device=like.device)


def _pair_sample(shape: tuple[int, int] = (6, 5), **kwargs: Any) -> Callable[..., Sample]:
    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
        a = torch.randn(shape, generator=gen, dtype=torch.float64)
        b = a + 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)
        if extreme:
            a, b = a * 1e4, b * 1e4
        return Sample((a.to(dtype), b.to(dtype)), dict(kwargs), grad=(0, 1))

    return sample


_PROPS = Properties(convex=False, smoothness="Cinf", robust=None, homogeneity=0, minimizer=None,
                    units="nats", symmetric=None, zero_at_perfect=False)


# --------------------------------------------------------------------------- InfoNCE


@register(
    "info_nce",
    family="contrastive",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="paired embedding",
    aliases=("infonce", "info_nce_loss", "multiple_negatives_ranking"),
    properties=_PROPS,
    formula=r"\ell_i = -\log \frac{e^{q_i\cdot k_i^+/\tau}}{e^{q_i\cdot k_i^+/\tau}"
            r" + \sum_j e^{q_i\cdot k_j^-/\tau}}",
    references=("van den Oord, Li & Vinyals 2018, arXiv:1807.03748",),
    peers={"info-nce-pytorch": "info_nce.InfoNCE"},
    sample=_pair_sample(),
)
def info_nce_loss(
    query: Tensor,
    positive_key: Tensor,
    *,
    negative_keys: Tensor | None = None,
    temperature: float | Tensor = 0.1,
    negative_mode: str = "unpaired",
    normalize: bool = True,
    reduction: str = "mean",
    chunk_size: int | Literal["auto"] | None = "auto",
    gather: bool = False,
    process_group: object | None = None,
    local_loss: bool = False,
) -> Tensor:
    r"""InfoNCE: cross-entropy of each query's positive key against its negatives.

    .. math::
        \ell_i = \operatorname{logsumexp}_j(q_i\cdot k_j/\tau) - q_i\cdot k_i^+/\tau

    Without ``negative_keys`` the negatives of query ``i`` are the other rows' positive keys
    (in-batch negatives, the ``B×B`` logits). With ``negative_keys`` (the layout of
    ``info_nce.InfoNCE``): ``negative_mode="unpaired"`` takes ``(M, D)`` negatives shared by
    every query; ``"paired"`` takes ``(B, M, D)``, ``M`` negatives per query. The other rows'
    positives are then not negatives.

    Args:
        query: ``(B, D)`` embeddings.
        positive_key: ``(B, D)``; row ``i`` is the positive of query ``i``.
        negative_keys: ``None``, ``(M, D)`` (unpaired) or ``(B, M, D)`` (paired).
        temperature: τ > 0 (number or a learnable 1-element tensor).
        negative_mode: ``"unpaired"`` or ``"paired"``.
        normalize: L2-normalise the embeddings first (cosine similarity).
        reduction: ``"none"`` (``(B,)``), ``"mean"`` (over queries) or ``"sum"``.
        chunk_size: process this many queries at a time without storing the logits for
            backward (same value and gradient); ``None`` never chunks; ``"auto"`` (default)
            chunks only above ``2**24`` logits (see the module doc). Not used with paired
            negatives, whose logits are no larger than ``negative_keys`` itself (an int there
            raises).
        gather: gather keys (and, without ``local_loss``, queries) from every rank.
        process_group: the group to gather over (default: the world).
        local_loss: only this rank's queries against the global keys (see the module doc).

    Shape:
        ``(B, D)``, ``(B, D)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> q = torch.eye(4)
        >>> # positives at cosine 1, three negatives at cosine 0: log(1 + 3·e^{-1/τ}) at τ = 1
        >>> LF.info_nce_loss(q, q, temperature=1.0), torch.log(1 + 3 * torch.exp(torch.tensor(-1.0)))
        (tensor(0.7437), tensor(0.7437))

    References:
        van den Oord, Li & Vinyals, "Representation Learning with Contrastive Predictive
        Coding", arXiv:1807.03748, 2018.
    """
    _options(reduction, chunk_size, gather, process_group, local_loss)
    check_option("negative_mode", negative_mode, ("unpaired", "paired"))
    _embedding("query", query)
    _embedding("positive_key", positive_key)
    _same_shape("query", query, "positive_key", positive_key)
    query, positive_key = as_float32(query, positive_key)
    scale = _scale(temperature, query, "temperature", inverse=True)
    rank, world = _world(gather, process_group)
    q, p = _norm(query, normalize), _norm(positive_key, normalize)
    b = q.shape[0]
    local = local_loss and world > 1

    if negative_keys is None:
        keys = _gather(p, world, process_group)
        rows = q if local else _gather(q, world, process_group)
        start = rank * b if local else 0
        loss, _ = _softmax_rows(rows, keys, scale, row_label=_arange(rows.shape[0], q, start),
                                col_label=_arange(keys.shape[0], q), chunk_size=chunk_size)
        return _finish(loss, reduction, world=world, local=local, process_group=process_group)

    if negative_mode == "unpaired":
        _embedding("negative_keys", negative_keys, "(M, D) for negative_mode='unpaired'")
    else:
        _embedding("negative_keys", negative_keys, "(B, M, D) for negative_mode='paired'", 3)
    if negative_keys.shape[-1] != q.shape[-1] or (negative_mode == "paired"
                                                  and negative_keys.shape[0] != b):
        raise LossInputError(
            f"negative_keys has shape {shape_str(negative_keys)}, which does not fit query "
            f"{shape_str(query)}; expected (M, {q.shape[1]}) unpaired or ({b}, M, {q.shape[1]}) paired."
        )
    (n,) = as_float32(negative_keys)
    n = _norm(n, normalize)
    if not local:
        q, p = _gather(q, world, process_group), _gather(p, world, process_group)
    positive_logit = scale * (q * p).sum(-1)
    if negative_mode == "paired":
        if chunk_size is not None and chunk_size != "auto":
            raise LossInputError(
                "chunk_size does not apply to negative_mode='paired': its logits (B, M) are no "
                "larger than negative_keys (B, M, D). Fix: drop chunk_size (or pass 'auto')."
            )
        if not local:
            n = _gather(n, world, process_group)
        negative = scale * torch.einsum("bd,bmd->bm", q, n)
        full = torch.cat([positive_logit[:, None], negative], 1)
        loss = torch.logsumexp(full, 1) - positive_logit
    else:
        n = _gather(n, world, process_group)
        loss, _ = _softmax_rows(q, n, scale, extra=positive_logit, chunk_size=chunk_size)
    return _finish(loss, reduction, world=world, local=local, process_group=process_group)


class InfoNCELoss(LossModule):
    """Module form of :func:`info_nce_loss`."""

    fn = staticmethod(info_nce_loss)


# --------------------------------------------------------------------------- NT-Xent


@register(
    "nt_xent",
    family="contrastive",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="second view",
    aliases=("ntxent", "nt_xent_loss", "simclr"),
    properties=_PROPS,
    formula=r"\ell_i = -\log \frac{e^{s(z_i, z_{j(i)})/\tau}}{\sum_{k \ne i} e^{s(z_i, z_k)/\tau}}",
    references=("Chen, Kornblith, Norouzi & Hinton 2020 (SimCLR), ICML",),
    peers={"pytorch-metric-learning": "pytorch_metric_learning.losses.NTXentLoss",
           "optax": "optax.losses.ntxent"},
    sample=_pair_sample(),
)
def nt_xent_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    temperature: float | Tensor = 0.5,
    normalize: bool = True,
    reduction: str = "mean",
    chunk_size: int | Literal["auto"] | None = "auto",
    gather: bool = False,
    process_group: object | None = None,
    local_loss: bool = False,
) -> Tensor:
    r"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR.

    The ``2B`` views ``z = [z1; z2]`` are each an anchor: its positive is the other view of
    the same sample, its negatives the other ``2B − 2`` views; the anchor itself is excluded.

    .. math::
        \ell_i = \operatorname{logsumexp}_{k\ne i}(s_{ik}/\tau) - s_{i,j(i)}/\tau,
        \qquad L = \tfrac{1}{2B}\textstyle\sum_i \ell_i

    Args:
        z1: ``(B, D)`` first views.
        z2: ``(B, D)`` second views; row ``i`` pairs with row ``i`` of ``z1``.
        temperature: τ > 0 (SimCLR's default 0.5).
        normalize: L2-normalise first (cosine similarity, as in SimCLR).
        reduction: ``"none"`` (``(2B,)``: the anchors of ``z1`` then those of ``z2``),
            ``"mean"`` (over the ``2B`` anchors) or ``"sum"``.
        chunk_size: process this many anchors at a time without storing the logits; ``None``
            never chunks; ``"auto"`` (default) chunks only above ``2**24`` logits (module doc).
        gather: gather the views of every rank.
        process_group: the group to gather over (default: the world).
        local_loss: only this rank's anchors against the global views.

    Shape:
        ``(B, D)``, ``(B, D)`` → scalar, or ``(2B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> z = torch.eye(3)
        >>> # identical views of orthogonal samples: -log(e^{1/τ} / (e^{1/τ} + 4)) at τ = 1
        >>> LF.nt_xent_loss(z, z, temperature=1.0), torch.log1p(4 * torch.exp(torch.tensor(-1.0)))
        (tensor(0.9048), tensor(0.9048))

    References:
        Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of
        Visual Representations", ICML 2020.
    """
    _options(reduction, chunk_size, gather, process_group, local_loss)
    _embedding("z1", z1)
    _embedding("z2", z2)
    _same_shape("z1", z1, "z2", z2)
    z1, z2 = as_float32(z1, z2)
    scale = _scale(temperature, z1, "temperature", inverse=True)
    rank, world = _world(gather, process_group)
    a, b = _norm(z1, normalize), _norm(z2, normalize)
    n = a.shape[0]
    local = local_loss and world > 1
    ga, gb = _gather(a, world, process_group), _gather(b, world, process_group)
    big = ga.shape[0]
    keys = torch.cat([ga, gb])
    sample = _arange(big, a)
    col_label, col_id = torch.cat([sample, sample]), _arange(2 * big, a)
    if local:
        rows = torch.cat([a, b])
        own = _arange(n, a, rank * n)
        row_label, row_id = torch.cat([own, own]), torch.cat([own, own + big])
    else:
        rows, row_label, row_id = keys, col_label, col_id
    loss, _ = _softmax_rows(rows, keys, scale, row_label=row_label, col_label=col_label,
                            row_id=row_id, col_id=col_id, chunk_size=chunk_size)
    return _finish(loss, reduction, world=world, local=local, process_group=process_group)


class NTXentLoss(LossModule):
    """Module form of :func:`nt_xent_loss`."""

    fn = staticmethod(nt_xent_loss)


# --------------------------------------------------------------------------- CLIP


@register(
    "clip",
    family="contrastive",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="paired embedding",
    aliases=("clip_loss", "symmetric_info_nce"),
    properties=_PROPS,
    formula=r"\tfrac12\big[\mathrm{CE}(tXY^\top, I) + \mathrm{CE}(tYX^\top, I)\big]",
    references=("Radford et al. 2021 (CLIP), ICML",),
    peers={"open_clip": "open_clip.loss.ClipLoss"},
    sample=_pair_sample(logit_scale=5.0),
)
def clip_loss(
    image: Tensor,
    text: Tensor,
    *,
    logit_scale: float | Tensor,
    normalize: bool = True,
    reduction: str = "mean",
    chunk_size: int | Literal["auto"] | None = "auto",
    gather: bool = False,
    process_group: object | None = None,
    local_loss: bool = False,
) -> Tensor:
    r"""CLIP's symmetric InfoNCE: image→text and text→image cross-entropy over the ``B×B``
    logits ``t · X Yᵀ``, averaged.

    ``logit_scale`` is the **multiplier** ``t`` itself (already exponentiated), as
    ``open_clip.loss.ClipLoss`` takes it: with a learnable log-scale ``t'`` pass
    ``logit_scale=t_prime.exp()`` (CLIP initialises ``t' = log(1/0.07)`` and clamps ``t ≤ 100``).

    Args:
        image: ``(B, D)`` image embeddings.
        text: ``(B, D)`` text embeddings; row ``i`` matches image ``i``.
        logit_scale: ``t > 0`` (number or 1-element tensor, learnable).
        normalize: L2-normalise first.
        reduction: ``"none"`` (``(B,)``, pair ``i``'s two cross-entropies averaged), ``"mean"``
            or ``"sum"``.
        chunk_size: process this many rows at a time without storing the logits; ``None``
            never chunks; ``"auto"`` (default) chunks only above ``2**24`` logits (module doc).
        gather: gather both embeddings from every rank.
        process_group: the group to gather over (default: the world).
        local_loss: only this rank's rows against the global keys (open_clip's ``local_loss``).

    Shape:
        ``(B, D)``, ``(B, D)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.randn(8, 16)
        >>> # symmetric: swapping the modalities changes nothing
        >>> torch.allclose(LF.clip_loss(x, x.flip(1), logit_scale=10.0),
        ...                LF.clip_loss(x.flip(1), x, logit_scale=10.0))
        True

    References:
        Radford et al., "Learning Transferable Visual Models From Natural Language
        Supervision", ICML 2021.
    """
    _options(reduction, chunk_size, gather, process_group, local_loss)
    _embedding("image", image)
    _embedding("text", text)
    _same_shape("image", image, "text", text)
    image, text = as_float32(image, text)
    scale = _scale(logit_scale, image, "logit_scale")
    rank, world = _world(gather, process_group)
    x, y = _norm(image, normalize), _norm(text, normalize)
    local = local_loss and world > 1
    gx, gy = _gather(x, world, process_group), _gather(y, world, process_group)
    cols = _arange(gx.shape[0], x)
    if local:
        qx, qy, rows = x, y, _arange(x.shape[0], x, rank * x.shape[0])
    else:
        qx, qy, rows = gx, gy, cols
    to_text, _ = _softmax_rows(qx, gy, scale, row_label=rows, col_label=cols, chunk_size=chunk_size)
    to_image, _ = _softmax_rows(qy, gx, scale, row_label=rows, col_label=cols,
                                chunk_size=chunk_size)
    loss = 0.5 * (to_text + to_image)
    return _finish(loss, reduction, world=world, local=local, process_group=process_group)


class CLIPLoss(LossModule):
    """Module form of :func:`clip_loss`."""

    fn = staticmethod(clip_loss)


# --------------------------------------------------------------------------- SigLIP


@register(
    "siglip",
    family="contrastive",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="paired embedding",
    aliases=("siglip_loss", "sigmoid_contrastive"),
    properties=Properties(convex=False, smoothness="Cinf", robust=None, homogeneity=0,
                          minimizer=None, units="nats", symmetric=None, zero_at_perfect=False),
    formula=r"-\tfrac1B\sum_{i,j}\log\sigma\big(z_{ij}(t\,x_i\cdot y_j + b)\big),"
            r"\ z_{ij}=\pm1",
    references=("Zhai, Mustafa, Kolesnikov & Beyer 2023 (SigLIP), ICCV",),
    peers={"open_clip": "open_clip.loss.SigLipLoss", "big_vision": "siglip sigmoid loss"},
    sample=_pair_sample(logit_scale=10.0, logit_bias=-10.0),
)
def siglip_loss(
    image: Tensor,
    text: Tensor,
    *,
    logit_scale: float | Tensor,
    logit_bias: float | Tensor,
    normalize: bool = True,
    reduction: str = "mean",
    chunk_size: int | Literal["auto"] | None = "auto",
    gather: bool = False,
    process_group: object | None = None,
    local_loss: bool = False,
) -> Tensor:
    r"""SigLIP's pairwise sigmoid loss: every image–text pair is a binary problem, matching
    (diagonal, ``z = +1``) or not (``z = −1``).

    .. math::
        L = -\frac1B \sum_{i=1}^B \sum_{j=1}^B \log \sigma\big(z_{ij}\,(t\, x_i\cdot y_j + b)\big)

    ``logit_scale`` is the multiplier ``t`` (already exponentiated, as in open_clip) and
    ``logit_bias`` is ``b``. Initialise them as the paper does, ``t = exp(t')`` with
    ``t' = log 10`` and ``b = −10``: with ``B − 1`` negatives per positive the bias starts the
    model near the prior instead of with a huge loss from the negatives (PITFALLS 13).

    Args:
        image: ``(B, D)`` image embeddings.
        text: ``(B, D)`` text embeddings; row ``i`` matches image ``i``.
        logit_scale: ``t > 0`` (number or learnable 1-element tensor).
        logit_bias: ``b`` (number or learnable 1-element tensor).
        normalize: L2-normalise first.
        reduction: ``"none"`` (``(B,)``: image ``i``'s sum over all texts), ``"mean"`` (the
            formula above) or ``"sum"``.
        chunk_size: process this many images at a time without storing the logits; ``None``
            never chunks; ``"auto"`` (default) chunks only above ``2**24`` logits (module doc).
        gather: gather the texts (and, without ``local_loss``, the images) from every rank.
        process_group: the group to gather over (default: the world).
        local_loss: only this rank's images against every text.

    Shape:
        ``(B, D)``, ``(B, D)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.eye(4)
        >>> # t = 0: every logit is b, so the loss is -log σ(b) - (B-1)·log σ(-b) = 4·log 2 at b = 0
        >>> LF.siglip_loss(x, x, logit_scale=0.0, logit_bias=0.0), 4 * torch.log(torch.tensor(2.0))
        (tensor(2.7726), tensor(2.7726))

    References:
        Zhai, Mustafa, Kolesnikov & Beyer, "Sigmoid Loss for Language Image Pre-Training",
        ICCV 2023.
    """
    _options(reduction, chunk_size, gather, process_group, local_loss)
    _embedding("image", image)
    _embedding("text", text)
    _same_shape("image", image, "text", text)
    image, text = as_float32(image, text)
    scale = _scale(logit_scale, image, "logit_scale")
    if isinstance(logit_bias, Tensor):
        bias = _scale(logit_bias, image, "logit_bias")
    else:
        check_number("logit_bias", logit_bias)
        bias = torch.tensor(float(logit_bias), dtype=image.dtype, device=image.device)
    rank, world = _world(gather, process_group)
    x, y = _norm(image, normalize), _norm(text, normalize)
    local = local_loss and world > 1
    gy = _gather(y, world, process_group)
    cols = _arange(gy.shape[0], x)
    if local:
        rows, qx = _arange(x.shape[0], x, rank * x.shape[0]), x
    else:
        rows, qx = cols, _gather(x, world, process_group)
    loss = _sigmoid_rows(qx, gy, scale, bias, rows, cols, chunk_size)
    return _finish(loss, reduction, world=world, local=local, process_group=process_group)


class SigLIPLoss(LossModule):
    """Module form of :func:`siglip_loss`."""

    fn = staticmethod(siglip_loss)


# --------------------------------------------------------------------------- SupCon


def _supcon_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False) -> Sample:
    f = torch.randn(6, 2, 5, generator=gen, dtype=torch.float64)
    if extreme:
        f = f * 1e4
    labels = torch.tensor([0, 1, 0, 2, 1, 2])
    return Sample((f.to(dtype), labels), {"temperature": 0.5, "base_temperature": 0.5})


@register(
    "supcon",
    family="contrastive",
    tasks=_TASKS + ("classification",),
    input_kind="embedding",
    target_kind="class label (optional)",
    aliases=("supcon_loss", "supervised_contrastive"),
    properties=_PROPS,
    formula=r"\ell_i = -\frac{\tau}{\tau_b}\frac{1}{|P(i)|}\sum_{p\in P(i)}"
            r"\log\frac{e^{z_i\cdot z_p/\tau}}{\sum_{a\ne i} e^{z_i\cdot z_a/\tau}}",
    references=("Khosla et al. 2020 (Supervised Contrastive Learning), NeurIPS",),
    peers={"pytorch-metric-learning": "pytorch_metric_learning.losses.SupConLoss",
           "SupContrast": "losses.SupConLoss"},
    sample=_supcon_sample,
)
def supcon_loss(
    features: Tensor,
    labels: Tensor | None,
    *,
    temperature: float | Tensor = 0.07,
    base_temperature: float = 0.07,
    contrast_mode: str = "all",
    normalize: bool = True,
    reduction: str = "mean",
    empty: str = "zero",
    chunk_size: int | Literal["auto"] | None = "auto",
    gather: bool = False,
    process_group: object | None = None,
    local_loss: bool = False,
) -> Tensor:
    r"""Supervised contrastive loss (:math:`\mathcal L^{sup}_{out}` of Khosla et al.).

    ``features`` holds ``V`` views of ``B`` samples. Every view (``contrast_mode="all"``) or
    only the first view of each sample (``"one"``) is an anchor; its positives are all other
    views with the same label, its contrast set every view but itself. ``labels=None`` makes
    each sample its own class (SimCLR's NT-Xent over ``V`` views).

    An anchor without a positive (a label seen once with ``V = 1``) has no defined loss: it is
    left out of ``"mean"`` (which averages over anchors that have a positive) and is 0 under
    ``"none"``; when no anchor has one the result is 0 with a zero gradient (``empty="zero"``)
    or NaN (``empty="nan"``), never a NaN gradient. The reference implementation instead
    counts such anchors as 0 in its mean; the two agree whenever every anchor has a positive.

    Args:
        features: ``(B, V, D)`` embeddings, ``V`` views per sample.
        labels: ``(B,)`` integer class labels, or ``None``.
        temperature: τ > 0.
        base_temperature: τ_b; the loss is scaled by τ/τ_b (1 when they are equal).
        contrast_mode: ``"all"`` or ``"one"``.
        normalize: L2-normalise first (the reference implementation expects normalised
            features).
        reduction: ``"none"`` (``(B, V)`` for ``"all"``, ``(B,)`` for ``"one"``), ``"mean"``
            or ``"sum"``.
        $empty
        chunk_size: process this many anchors at a time without storing the logits; ``None``
            never chunks; ``"auto"`` (default) chunks only above ``2**24`` logits (module doc).
        gather: gather features and labels from every rank.
        process_group: the group to gather over (default: the world).
        local_loss: only this rank's anchors against the global contrast set.

    Shape:
        ``(B, V, D)``, ``(B,)`` → scalar, or as above with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> f = torch.nn.functional.normalize(torch.randn(5, 2, 8), dim=-1)
        >>> # without labels it is NT-Xent over the two views
        >>> torch.allclose(LF.supcon_loss(f, None, temperature=0.5, base_temperature=0.5),
        ...                LF.nt_xent_loss(f[:, 0], f[:, 1], temperature=0.5))
        True

    References:
        Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.
    """
    _options(reduction, chunk_size, gather, process_group, local_loss)
    check_option("contrast_mode", contrast_mode, ("all", "one"))
    check_number("base_temperature", base_temperature, low=0.0, low_open=True)
    _embedding("features", features, "(B, V, D)", 3)
    bsz, views = features.shape[0], features.shape[1]
    if labels is not None:
        check_tensor("labels", labels)
        if labels.is_floating_point() or labels.shape != (bsz,):
            raise LossInputError(
                f"labels must be ({bsz},) integer class labels, got {shape_str(labels)} of "
                f"{labels.dtype}. Fix: pass one integer label per sample (labels.long())."
            )
    (features,) = as_float32(features)
    scale = _scale(temperature, features, "temperature", inverse=True)
    rank, world = _world(gather, process_group)
    local = local_loss and world > 1
    f = _norm(features, normalize)
    g = _gather(f, world, process_group)
    big = g.shape[0]
    if labels is None:
        own_label, all_label = _arange(bsz, f, rank * bsz), _arange(big, f)
    else:
        own_label = labels.to(f.device)
        all_label = own_label if world == 1 else all_gather_no_grad(own_label, process_group)
    # view-major contrast set: index v·B + i is view v of sample i
    contrast = g.transpose(0, 1).reshape(views * big, -1)
    col_label, col_id = all_label.repeat(views), _arange(views * big, f)
    anchor_views = views if contrast_mode == "all" else 1
    if local:
        anchors = f[:, :anchor_views].transpose(0, 1).reshape(anchor_views * bsz, -1)
        row_label = own_label.repeat(anchor_views)
        row_id = (_arange(anchor_views, f)[:, None] * big + _arange(bsz, f, rank * bsz)).reshape(-1)
    else:
        anchors = contrast[: anchor_views * big]
        row_label, row_id = col_label[: anchor_views * big], col_id[: anchor_views * big]
    loss, count = _softmax_rows(anchors, contrast, scale, row_label=row_label, col_label=col_label,
                                row_id=row_id, col_id=col_id, chunk_size=chunk_size)
    factor = _scale(temperature, features, "temperature") / base_temperature
    n = anchors.shape[0] // anchor_views
    loss = (factor * loss).reshape(anchor_views, n).T
    valid = (count > 0).reshape(anchor_views, n).T
    if contrast_mode == "one":
        loss, valid = loss[:, 0], valid[:, 0]
    return _finish(loss, reduction, world=world, local=local, process_group=process_group,
                   valid=valid, empty=empty)


class SupConLoss(LossModule):
    """Module form of :func:`supcon_loss`."""

    fn = staticmethod(supcon_loss)
