"""Learning-to-rank losses on padded lists: pairwise (RankNet) and listwise (ListNet, ListMLE).

Every loss takes ``scores`` and ``relevance`` of shape ``(N, L)`` (N lists of L items; higher
relevance = should rank higher) and an optional bool ``mask`` ``(N, L)`` marking the real items
(True) against padding. Padded items are ignored whatever their score or relevance (``-inf``
and NaN included) and get a zero gradient. The per-list losses are then reduced over lists:
``"mean"`` averages over the lists that have something to rank (at least one pair for RankNet,
one item for the listwise losses), ``sample_weight`` ``(N,)`` weights lists, and a batch with
no such list follows ``empty``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_floating,
    check_ndim,
    check_number,
    check_same_shape,
    check_tensor,
    shape_str,
)
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register
from losskit._core.samples import draw

__all__ = [
    "ListMLELoss",
    "ListNetLoss",
    "RankNetLoss",
    "listmle_loss",
    "listnet_loss",
    "ranknet_loss",
]

_TASKS = ("ranking",)
_SKIP = {
    "mask": "mask is the per-item padding mask (N, L), not a per-list mask; padding is tested in "
            "test_ranking.py",
    "empty": "tested in test_ranking.py with an all-padding item mask",
}
_PROPS = Properties(convex=True, smoothness="Cinf", homogeneity=None, zero_at_perfect=False)


def _lists(scores: Tensor, relevance: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Validate ``(N, L)`` lists; return float scores with padding replaced by 0, float
    relevance, and the item mask (all True when none is given)."""
    check_floating("scores", scores)
    check_tensor("relevance", relevance)
    check_same_shape(scores, relevance, ("scores", "relevance"))
    check_ndim("scores", scores, 2, "(N, L)")
    if mask is None:
        mask = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    elif not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != scores.shape:
        got = f"{mask.dtype} {shape_str(mask)}" if isinstance(mask, Tensor) else type(mask).__name__
        raise LossInputError(
            f"mask must be a bool tensor of shape {shape_str(scores)} (True = real item, False = "
            f"padding), got {got}. Fix: pass mask.bool() with the shape of scores."
        )
    (scores,) = as_float32(scores)
    relevance = relevance.to(scores.dtype)
    # where, not multiply: a -inf or NaN score at a padded item must not reach the result.
    scores = torch.where(mask, scores, 0.0)
    relevance = torch.where(mask, relevance, 0.0)
    return scores, relevance, mask


def _pad_below(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with padded entries replaced by a finite value far enough below the row's lowest
    real entry that ``exp`` of it, relative to any real entry, underflows to exactly 0. Used
    instead of ``-inf`` (whose softmax/logcumsumexp gradients are NaN) or the dtype's minimum
    (whose ``exp`` takes a slow path)."""
    lowest = torch.where(mask, x.detach(), float("inf")).amin(1, keepdim=True)
    lowest = torch.where(torch.isfinite(lowest), lowest, 0.0)
    return torch.where(mask, x, lowest - lowest.abs() - 1e4)


def _ranking_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    scores = draw("real", (4, 6), gen, dtype, extreme)
    relevance = torch.randint(0, 4, (4, 6), generator=gen).to(dtype)
    return Sample((scores, relevance), {})


@register(
    "ranknet",
    family="ranking",
    tasks=_TASKS,
    input_kind="score",
    target_kind="relevance",
    aliases=("ranknet_loss", "pairwise_logistic"),
    properties=_PROPS,
    formula=r"\ell = \frac{1}{|P|}\sum_{(i,j): r_i > r_j} \log(1 + e^{-\sigma (s_i - s_j)})",
    references=("Burges et al., ICML 2005",),
    peers={"tensorflow_ranking": "tfr.keras.losses.PairwiseLogisticLoss"},
    sample=_ranking_sample,
    skip=_SKIP,
)
def ranknet_loss(
    scores: Tensor,
    relevance: Tensor,
    *,
    mask: Tensor | None = None,
    sigma: float = 1.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""RankNet (pairwise logistic) loss: for every pair of real items with
    :math:`r_i > r_j` in a list, :math:`\log(1 + e^{-\sigma(s_i - s_j)})` (a stable softplus),
    averaged over the list's pairs. Ties in relevance make no pair.

    Args:
        scores: ``(N, L)`` model scores.
        relevance: ``(N, L)`` graded relevance (any real values; only their order counts).
        mask: bool ``(N, L)``, True = real item, False = padding; default all real.
        sigma: the logistic slope σ.
        reduction: ``"mean"`` over lists with at least one pair, ``"sum"`` or ``"none"`` (``(N,)``).
        sample_weight: per-list weights ``(N,)``.
        $normalizer
        $empty

    Shape:
        ``(N, L)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> s, r = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])
        >>> LF.ranknet_loss(s, r)                     # equal scores: log 2
        tensor(0.6931)
        >>> LF.ranknet_loss(torch.tensor([[9.0, -9.0, float("-inf")]]), torch.tensor([[1.0, 0.0, 5.0]]),
        ...                 mask=torch.tensor([[True, True, False]]))   # padding ignored
        tensor(1.5230e-08)

    References:
        Burges et al., "Learning to rank using gradient descent", ICML 2005.
    """
    check_number("sigma", sigma, low=0.0, low_open=True)
    s, r, m = _lists(scores, relevance, mask)
    pairs = (r[:, :, None] > r[:, None, :]) & m[:, :, None] & m[:, None, :]
    per_pair = F.softplus(-sigma * (s[:, :, None] - s[:, None, :]))
    n_pairs = pairs.sum((1, 2)).to(s.dtype)
    per_list = torch.where(pairs, per_pair, 0.0).sum((1, 2)) / n_pairs.clamp_min(1.0)
    return reduce(per_list, reduction, sample_weight=sample_weight, mask=n_pairs > 0,
                  normalizer=normalizer, empty=empty)


class RankNetLoss(LossModule):
    """Module form of :func:`ranknet_loss`."""

    fn = staticmethod(ranknet_loss)


@register(
    "listnet",
    family="ranking",
    tasks=_TASKS,
    input_kind="score",
    target_kind="relevance",
    aliases=("listnet_loss",),
    properties=_PROPS,
    formula=r"\ell = -\sum_i \mathrm{softmax}(r)_i \log \mathrm{softmax}(s)_i",
    references=("Cao et al., ICML 2007",),
    peers={"optax": "optax.losses.ranking_softmax_loss (with softmax labels)"},
    sample=_ranking_sample,
    skip=_SKIP,
)
def listnet_loss(
    scores: Tensor,
    relevance: Tensor,
    *,
    mask: Tensor | None = None,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""ListNet (top-one) loss: the cross-entropy between the top-one probabilities of the
    relevance, :math:`\mathrm{softmax}(r)`, and of the scores, :math:`\mathrm{softmax}(s)`,
    over the real items of each list (padding gets probability 0 on both sides).

    Args:
        scores: ``(N, L)`` model scores.
        relevance: ``(N, L)`` graded relevance.
        mask: bool ``(N, L)``, True = real item; default all real.
        reduction: ``"mean"`` over lists with at least one real item, ``"sum"`` or ``"none"``
            (``(N,)``).
        sample_weight: per-list weights ``(N,)``.
        $normalizer
        $empty

    Shape:
        ``(N, L)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> r = torch.tensor([[2.0, 1.0, 0.0]])
        >>> p = torch.softmax(r, -1)
        >>> LF.listnet_loss(r, r), -(p * p.log()).sum()   # scores = relevance: the entropy
        (tensor(0.8324), tensor(0.8324))

    References:
        Cao, Qin, Liu, Tsai, Li, "Learning to rank: from pairwise approach to listwise
        approach", ICML 2007.
    """
    s, r, m = _lists(scores, relevance, mask)
    # Padded items get probability exactly 0 on both sides, without 0·inf = NaN.
    target = torch.softmax(_pad_below(r, m), dim=1)
    log_q = torch.log_softmax(_pad_below(s, m), dim=1)
    per_list = -torch.where(m, target * log_q, 0.0).sum(1)
    return reduce(per_list, reduction, sample_weight=sample_weight, mask=m.any(1),
                  normalizer=normalizer, empty=empty)


class ListNetLoss(LossModule):
    """Module form of :func:`listnet_loss`."""

    fn = staticmethod(listnet_loss)


@register(
    "listmle",
    family="ranking",
    tasks=_TASKS,
    input_kind="score",
    target_kind="relevance",
    aliases=("listmle_loss", "plackett_luce"),
    properties=_PROPS,
    formula=r"\ell = \sum_{k} \big(\log \textstyle\sum_{j \ge k} e^{s_{\pi(j)}} - s_{\pi(k)}\big)",
    references=("Xia et al., ICML 2008",),
    peers={},
    sample=_ranking_sample,
    skip=_SKIP,
)
def listmle_loss(
    scores: Tensor,
    relevance: Tensor,
    *,
    mask: Tensor | None = None,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""ListMLE loss: the negative Plackett–Luce log-likelihood of the permutation :math:`\pi`
    that sorts the real items by decreasing relevance,
    :math:`\sum_k (\log\sum_{j\ge k} e^{s_{\pi(j)}} - s_{\pi(k)})` (a sum over the list's
    items, computed with a reversed ``logcumsumexp``). Ties in relevance keep the items' order
    in the list (a stable sort).

    Args:
        scores: ``(N, L)`` model scores.
        relevance: ``(N, L)`` graded relevance.
        mask: bool ``(N, L)``, True = real item; default all real.
        reduction: ``"mean"`` over lists with at least one real item, ``"sum"`` or ``"none"``
            (``(N,)``).
        sample_weight: per-list weights ``(N,)``.
        $normalizer
        $empty

    Shape:
        ``(N, L)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> s, r = torch.zeros(1, 3), torch.tensor([[3.0, 2.0, 1.0]])
        >>> LF.listmle_loss(s, r)       # equal scores: every order has probability 1/3!
        tensor(1.7918)
        >>> torch.tensor(6.0).log()
        tensor(1.7918)

    References:
        Xia, Liu, Wang, Zhang, Li, "Listwise approach to learning to rank: theory and
        algorithm", ICML 2008.
    """
    s, r, m = _lists(scores, relevance, mask)
    # Real items first, by decreasing relevance; padding last.
    key = torch.where(m, r, float("-inf"))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    s_sorted = s.gather(1, order)
    m_sorted = m.gather(1, order)
    # Padding sits after every real item, so it enters every suffix sum: push it far enough
    # below the real scores that it adds exactly 0.
    suffix_lse = torch.logcumsumexp(_pad_below(s_sorted, m_sorted).flip(1), dim=1).flip(1)
    per_list = torch.where(m_sorted, suffix_lse - s_sorted, 0.0).sum(1)
    return reduce(per_list, reduction, sample_weight=sample_weight, mask=m.any(1),
                  normalizer=normalizer, empty=empty)


class ListMLELoss(LossModule):
    """Module form of :func:`listmle_loss`."""

    fn = staticmethod(listmle_loss)
