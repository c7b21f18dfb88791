"""Metric-learning losses: pairs, triplets, mining from a labelled batch, and angular-margin
softmax losses with learnable class centres.

* PyTorch parity (same names, options and numbers): :func:`triplet_margin_loss`,
  :func:`triplet_margin_with_distance_loss`, :func:`margin_ranking_loss`,
  :func:`cosine_embedding_loss`, :func:`hinge_embedding_loss`.
* Pairs: :func:`contrastive_loss` (Hadsell et al. 2006).
* Mining from ``(embeddings (B, D), labels (B,))``: :func:`batch_hard_triplet_loss`,
  :func:`batch_all_triplet_loss`, :func:`semi_hard_triplet_loss`, :func:`circle_loss`,
  :func:`multi_similarity_loss`. All work from the ``B×B`` distance matrix and never build a
  ``B×B×B`` tensor: batch-all and semi-hard sort each anchor's negative distances once and
  count with ``searchsorted`` (O(B² log B) time, O(B²) memory, exact).
* Class centres: :func:`arcface_loss` / :class:`ArcFaceLoss`, :func:`cosface_loss` /
  :class:`CosFaceLoss`.

Mining statistics: the triplet-mining losses take ``stats=`` a dict, which they fill with
0-d tensors ``valid_triplets`` (triplets the loss averages over before thresholding),
``active_triplets`` (those with a positive loss) and ``fraction_active``; a loss of 0 can so be
told apart from a batch with no valid triplet. When nothing is valid, ``empty="zero"`` gives 0
with a zero gradient (still in the graph), ``empty="nan"`` gives NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losskit._core.checks import (
    LossInputError,
    check_class_index,
    check_floating,
    check_ndim,
    check_number,
    check_option,
    check_same_shape,
    check_tensor,
    shape_str,
)
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register
from losskit._core.samples import draw

__all__ = [
    "ArcFaceLoss",
    "BatchAllTripletLoss",
    "BatchHardTripletLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CosineEmbeddingLoss",
    "HingeEmbeddingLoss",
    "MarginRankingLoss",
    "MultiSimilarityLoss",
    "SemiHardTripletLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    "arcface_loss",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "circle_loss",
    "contrastive_loss",
    "cosface_loss",
    "cosine_embedding_loss",
    "distance_matrix",
    "hinge_embedding_loss",
    "margin_ranking_loss",
    "multi_similarity_loss",
    "semi_hard_triplet_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]

_TASKS = ("metric_learning",)
DISTANCES = ("euclidean", "squared", "cosine")


# --------------------------------------------------------------------------- helpers


def _safe_sqrt(x: Tensor) -> Tensor:
    # double where: sqrt'(0) = inf would give 0·inf = NaN; the subgradient at 0 is taken as 0.
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).sqrt(), 0.0)


def _pairwise_distance(x1: Tensor, x2: Tensor, p: float, eps: float) -> Tensor:
    # torch.nn.functional.pairwise_distance: ||x1 - x2 + eps||_p. eps keeps the norm away from
    # 0, so its gradient is finite when x1 == x2.
    return torch.linalg.vector_norm(x1 - x2 + eps, ord=p, dim=-1)


def _embeddings(x: Tensor, name: str = "embeddings") -> Tensor:
    check_floating(name, x)
    check_ndim(name, x, 2, "(B, D)")
    return as_float32(x)[0]


def _labels(labels: Tensor, batch: int) -> Tensor:
    check_tensor("labels", labels)
    if labels.ndim != 1 or labels.shape[0] != batch:
        raise LossInputError(
            f"labels has shape {shape_str(labels)} but embeddings hold {batch} rows; labels must "
            f"have shape ({batch},), one class id per row. Fix: labels.reshape(-1)."
        )
    if labels.is_floating_point():
        raise LossInputError(
            f"labels must hold integer class ids, got dtype {labels.dtype}. Fix: pass labels.long()."
        )
    return labels


def distance_matrix(x: Tensor, distance: str = "euclidean") -> Tensor:
    """The ``(B, B)`` matrix of distances between the rows of ``x``.

    ``"euclidean"``: :math:`\\|x_i - x_j\\|_2` from the Gram matrix of the centred rows (O(B²)
    memory, never ``B×B×D``), with an exact 0 on the diagonal and a zero (finite) gradient at distance 0;
    ``"squared"``: :math:`\\|x_i - x_j\\|_2^2`; ``"cosine"``: :math:`1 - \\cos(x_i, x_j)`.
    """
    check_option("distance", distance, DISTANCES)
    if distance == "cosine":
        xn = F.normalize(x, dim=1)
        return 1.0 - xn @ xn.T
    # Distances do not change under translation; centring first shrinks |x|² and with it the
    # cancellation error of |x_i|² + |x_j|² - 2 x_i·x_j (embeddings far from the origin).
    x = x - x.mean(0, keepdim=True)
    sq_norm = x.square().sum(1)
    sq = (sq_norm[:, None] + sq_norm[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
    eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    sq = torch.where(eye, 0.0, sq)
    return sq if distance == "squared" else _safe_sqrt(sq)


def _row_distance(x1: Tensor, x2: Tensor, distance: str) -> Tensor:
    """Distances between matching rows, with a zero (finite) gradient at distance 0."""
    if distance == "cosine":
        return 1.0 - F.cosine_similarity(x1, x2, dim=-1, eps=1e-12)
    sq = (x1 - x2).square().sum(-1)
    return sq if distance == "squared" else _safe_sqrt(sq)


def _label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _fill_stats(stats: dict[str, Tensor] | None, valid: Tensor, active: Tensor) -> None:
    if stats is None:
        return
    valid = valid.detach().to(torch.float32)
    active = active.detach().to(torch.float32)
    stats["valid_triplets"] = valid
    stats["active_triplets"] = active
    stats["fraction_active"] = active / valid.clamp_min(1.0)


def _sorted_negatives(dist: Tensor, neg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each anchor's negative distances sorted ascending (non-negatives pushed to the end as
    +inf), their prefix sums with a leading 0 (inf replaced by 0), and the negative counts."""
    y = torch.where(neg, dist, float("inf"))
    y_sorted = torch.sort(y, dim=1).values
    finite = torch.where(torch.isfinite(y_sorted), y_sorted, 0.0)
    prefix = torch.cat([finite.new_zeros(finite.shape[0], 1), finite.cumsum(1)], dim=1)
    return y_sorted, prefix, neg.sum(1)


# --------------------------------------------------------------------------- PyTorch parity


def _triplet_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    a, p, n = (draw("real", (6, 4), gen, dtype, extreme) for _ in range(3))
    return Sample((a, p, n), {}, grad=(0, 1, 2))


def _check_triplet(anchor: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, ...]:
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        check_floating(name, t)
    check_same_shape(anchor, positive, ("anchor", "positive"))
    check_same_shape(anchor, negative, ("anchor", "negative"))
    check_ndim("anchor", anchor, (1, 2), "(N, D) or (D,)")
    return as_float32(anchor, positive, negative)


@register(
    "triplet_margin",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="embedding",
    aliases=("triplet_margin_loss", "triplet"),
    properties=Properties(convex=False, smoothness="C0", homogeneity=None, zero_at_perfect=None),
    formula=r"\ell = \max(0,\ m + d(a, p) - d(a, n)),\ d(x, y) = \|x - y + \epsilon\|_p",
    references=("Balntas et al., BMVC 2016", "Schroff et al., CVPR 2015"),
    peers={"torch": "torch.nn.functional.triplet_margin_loss",
           "optax": "optax.losses.triplet_margin_loss"},
    sample=_triplet_sample,
)
def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Triplet margin loss :math:`\max(0, m + d(a,p) - d(a,n))`. Drop-in for
    ``torch.nn.functional.triplet_margin_loss`` (same options, same numbers).

    The distance is PyTorch's :math:`\|a - p + \epsilon\|_p`, so the gradient stays finite when
    ``anchor == positive``. ``swap=True`` uses :math:`\min(d(a,n), d(p,n))` (Balntas 2016).

    Args:
        anchor: ``(N, D)`` or ``(D,)``.
        positive: same shape as ``anchor``.
        negative: same shape as ``anchor``.
        margin: the margin m.
        p: the norm degree.
        eps: added to the differences inside the norm.
        swap: use the distance swap.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, D)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> a = torch.zeros(1, 3, requires_grad=True)
        >>> LF.triplet_margin_loss(a, a, torch.full((1, 3), 5.0))  # far negative: nothing to do
        tensor(0., grad_fn=<DivBackward0>)
        >>> loss = LF.triplet_margin_loss(a, a.detach(), a.detach() + 0.1)  # a == p: finite grad
        >>> loss.backward(); bool(torch.isfinite(a.grad).all())
        True

    References:
        Balntas, Riba, Ponsa, Mikolajczyk, "Learning local feature descriptors with triplets and
        shallow convolutional neural networks", BMVC 2016.
    """
    anchor, positive, negative = _check_triplet(anchor, positive, negative)
    check_number("p", p, low=0.0, low_open=True)
    d_ap = _pairwise_distance(anchor, positive, p, eps)
    d_an = _pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_an = torch.minimum(d_an, _pairwise_distance(positive, negative, p, eps))
    loss = (margin + d_ap - d_an).clamp_min(0.0)
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class TripletMarginLoss(LossModule):
    """Module form of :func:`triplet_margin_loss`."""

    fn = staticmethod(triplet_margin_loss)


@register(
    "triplet_margin_with_distance",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="embedding",
    aliases=("triplet_margin_with_distance_loss",),
    properties=Properties(convex=False, smoothness="C0", homogeneity=None, zero_at_perfect=None),
    formula=r"\ell = \max(0,\ m + d(a, p) - d(a, n))",
    references=("Balntas et al., BMVC 2016",),
    peers={"torch": "torch.nn.functional.triplet_margin_with_distance_loss"},
    sample=_triplet_sample,
)
def triplet_margin_with_distance_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    distance_function: Callable[[Tensor, Tensor], Tensor] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Triplet margin loss with any distance. Drop-in for
    ``torch.nn.functional.triplet_margin_with_distance_loss``.

    ``distance_function(x1, x2)`` returns one non-negative distance per row; the default is
    PyTorch's ``pairwise_distance`` (:math:`\|x_1 - x_2 + 10^{-6}\|_2`). ``margin`` must be
    positive, as in PyTorch.

    Args:
        anchor: ``(N, D)`` or ``(D,)``.
        positive: same shape as ``anchor``.
        negative: same shape as ``anchor``.
        distance_function: callable ``(x1, x2) -> (N,)``; default Euclidean (``pairwise_distance``).
        margin: the margin m (> 0).
        swap: use :math:`\min(d(a,n), d(p,n))`.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, D)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> a, p, n = torch.zeros(2, 3), torch.ones(2, 3), -torch.ones(2, 3)
        >>> LF.triplet_margin_with_distance_loss(a, p, n) == LF.triplet_margin_loss(a, p, n)
        tensor(True)

    References:
        Balntas et al., BMVC 2016; ``torch.nn.TripletMarginWithDistanceLoss``.
    """
    anchor, positive, negative = _check_triplet(anchor, positive, negative)
    check_number("margin", margin, low=0.0, low_open=True)
    dist = distance_function
    if dist is None:
        def dist(x1: Tensor, x2: Tensor) -> Tensor:
            return _pairwise_distance(x1, x2, 2.0, 1e-6)
    d_ap = dist(anchor, positive)
    d_an = dist(anchor, negative)
    if swap:
        d_an = torch.minimum(d_an, dist(positive, negative))
    loss = (margin + d_ap - d_an).clamp_min(0.0)
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class TripletMarginWithDistanceLoss(LossModule):
    """Module form of :func:`triplet_margin_with_distance_loss`."""

    fn = staticmethod(triplet_margin_with_distance_loss)


def _ranking_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    x1 = draw("real", (6, 5), gen, dtype, extreme)
    x2 = draw("real", (6, 5), gen, dtype, extreme)
    y = draw("pm1", (6, 5), gen, dtype)
    return Sample((x1, x2, y), {"margin": 0.3}, grad=(0, 1))


@register(
    "margin_ranking",
    family="metric",
    tasks=("ranking", "metric_learning"),
    input_kind="score",
    target_kind="pm1",
    aliases=("margin_ranking_loss",),
    properties=Properties(convex=True, smoothness="C0", homogeneity=None, zero_at_perfect=None),
    formula=r"\ell = \max(0,\ -y (x_1 - x_2) + m)",
    references=("torch.nn.MarginRankingLoss", "Herbrich et al. 1999 (ordinal regression)"),
    peers={"torch": "torch.nn.functional.margin_ranking_loss"},
    sample=_ranking_sample,
    elementwise=True,
)
def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    *,
    margin: float = 0.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Pairwise margin ranking loss :math:`\max(0, -y(x_1 - x_2) + m)`, ``y = 1`` when ``x1``
    should rank higher. Drop-in for ``torch.nn.functional.margin_ranking_loss``.

    Args:
        input1: scores, any shape.
        input2: same shape as ``input1``.
        target: ±1, same shape.
        margin: the margin m.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x1, x2 = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
        >>> LF.margin_ranking_loss(x1, x2, torch.tensor([1.0, 1.0]), reduction="none")
        tensor([0., 2.])

    References:
        ``torch.nn.MarginRankingLoss``; Herbrich, Graepel, Obermayer, "Support vector learning
        for ordinal regression", ICANN 1999.
    """
    check_floating("input1", input1)
    check_floating("input2", input2)
    check_tensor("target", target)
    check_same_shape(input1, input2, ("input1", "input2"))
    check_same_shape(input1, target, ("input1", "target"))
    input1, input2 = as_float32(input1, input2)
    target = target.to(input1.dtype)
    loss = (-target * (input1 - input2) + margin).clamp_min(0.0)
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class MarginRankingLoss(LossModule):
    """Module form of :func:`margin_ranking_loss`."""

    fn = staticmethod(margin_ranking_loss)


def _cosine_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False) -> Sample:
    x1 = draw("real", (6, 4), gen, dtype, extreme)
    x2 = draw("real", (6, 4), gen, dtype, extreme)
    y = draw("pm1", (6,), gen, dtype)
    return Sample((x1, x2, y), {"margin": 0.1}, grad=(0, 1))


@register(
    "cosine_embedding",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="pm1",
    aliases=("cosine_embedding_loss",),
    properties=Properties(convex=False, smoothness="C0", homogeneity=0, zero_at_perfect=True),
    formula=r"\ell = 1 - \cos(x_1, x_2)\ (y = 1);\quad \max(0, \cos(x_1, x_2) - m)\ (y = -1)",
    references=("torch.nn.CosineEmbeddingLoss",),
    peers={"torch": "torch.nn.functional.cosine_embedding_loss"},
    sample=_cosine_sample,
)
def cosine_embedding_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    *,
    margin: float = 0.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Cosine embedding loss: :math:`1 - \cos` for similar pairs (``y = 1``),
    :math:`\max(0, \cos - m)` for dissimilar ones (``y = -1``); other target values give 0.
    Drop-in for ``torch.nn.functional.cosine_embedding_loss``: the cosine is
    :math:`x_1\cdot x_2 / \sqrt{(\|x_1\|^2 + 10^{-12})(\|x_2\|^2 + 10^{-12})}` as in PyTorch, so
    zero vectors give a finite value and gradient.

    Args:
        input1: ``(N, D)`` or ``(D,)``.
        input2: same shape as ``input1``.
        target: ±1, ``(N,)`` or ``()``.
        margin: the margin m for dissimilar pairs.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, D)``, ``(N,)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> LF.cosine_embedding_loss(x, 3 * x, torch.tensor([1.0, -1.0]), reduction="none")
        tensor([0., 1.])

    References:
        ``torch.nn.CosineEmbeddingLoss`` (PyTorch documentation).
    """
    check_floating("input1", input1)
    check_floating("input2", input2)
    check_tensor("target", target)
    check_same_shape(input1, input2, ("input1", "input2"))
    check_ndim("input1", input1, (1, 2), "(N, D) or (D,)")
    if tuple(target.shape) != tuple(input1.shape[:-1]):
        raise LossInputError(
            f"target has shape {shape_str(target)} but input1 has shape {shape_str(input1)}; "
            f"target must have shape {shape_str(input1.shape[:-1])} (one ±1 per pair). "
            "Fix: reshape target."
        )
    input1, input2 = as_float32(input1, input2)
    target = target.to(input1.dtype)
    prod = (input1 * input2).sum(-1)
    mag1 = input1.square().sum(-1) + 1e-12
    mag2 = input2.square().sum(-1) + 1e-12
    cos = prod / (mag1 * mag2).sqrt()
    zero = cos.new_zeros(())
    loss = torch.where(target == 1, 1.0 - cos, zero) + torch.where(
        target == -1, (cos - margin).clamp_min(0.0), zero
    )
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class CosineEmbeddingLoss(LossModule):
    """Module form of :func:`cosine_embedding_loss`."""

    fn = staticmethod(cosine_embedding_loss)


def _hinge_embedding_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                            extreme: bool = False) -> Sample:
    x = draw("nonnegative", (6, 5), gen, dtype, extreme)
    y = draw("pm1", (6, 5), gen, dtype)
    return Sample((x, y), {"margin": 1.5})


@register(
    "hinge_embedding",
    family="metric",
    tasks=_TASKS,
    input_kind="distance",
    target_kind="pm1",
    aliases=("hinge_embedding_loss",),
    properties=Properties(convex=True, smoothness="C0", homogeneity=None, zero_at_perfect=None),
    formula=r"\ell = x\ (y = 1);\quad \max(0, m - x)\ (y = -1)",
    references=("torch.nn.HingeEmbeddingLoss", "Hadsell et al., CVPR 2006"),
    peers={"torch": "torch.nn.functional.hinge_embedding_loss"},
    sample=_hinge_embedding_sample,
    elementwise=True,
)
def hinge_embedding_loss(
    input: Tensor,
    target: Tensor,
    *,
    margin: float = 1.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Hinge embedding loss on distances: :math:`x` for similar pairs (``y = 1``),
    :math:`\max(0, m - x)` for dissimilar ones (``y = -1``). Drop-in for
    ``torch.nn.functional.hinge_embedding_loss`` (a target that is neither ±1 gets both terms,
    as in PyTorch).

    Args:
        input: distances (or any scores), any shape.
        target: ±1, same shape as ``input``.
        margin: the margin m.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> d = torch.tensor([0.5, 0.5, 2.0])
        >>> LF.hinge_embedding_loss(d, torch.tensor([1.0, -1.0, -1.0]), reduction="none")
        tensor([0.5000, 0.5000, 0.0000])

    References:
        ``torch.nn.HingeEmbeddingLoss``; Hadsell, Chopra, LeCun, CVPR 2006.
    """
    check_floating("input", input)
    check_tensor("target", target)
    check_same_shape(input, target)
    (input,) = as_float32(input)
    target = target.to(input.dtype)
    zero = input.new_zeros(())
    loss = torch.where(target != 1, (margin - input).clamp_min(0.0), zero) + torch.where(
        target != -1, input, zero
    )
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class HingeEmbeddingLoss(LossModule):
    """Module form of :func:`hinge_embedding_loss`."""

    fn = staticmethod(hinge_embedding_loss)


# --------------------------------------------------------------------------- contrastive pairs


def _contrastive_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                        extreme: bool = False) -> Sample:
    x1 = draw("real", (6, 4), gen, dtype, extreme)
    x2 = draw("real", (6, 4), gen, dtype, extreme)
    y = draw("binary", (6,), gen, dtype)
    return Sample((x1, x2, y), {"margin": 2.0}, grad=(0, 1))


@register(
    "contrastive",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="binary",
    aliases=("contrastive_loss", "siamese"),
    properties=Properties(convex=False, smoothness="C1", homogeneity=None, zero_at_perfect=True),
    formula=r"\ell = \tfrac12 y\, d^2 + \tfrac12 (1 - y) \max(0, m - d)^2,\ d = \|x_1 - x_2\|_2",
    references=("Hadsell, Chopra, LeCun, CVPR 2006",),
    peers={"pytorch_metric_learning": "pytorch_metric_learning.losses.ContrastiveLoss"},
    sample=_contrastive_sample,
    skip={"gradgradcheck": "max(0, m - d)² has a second-derivative jump at d = m"},
)
def contrastive_loss(
    x1: Tensor,
    x2: Tensor,
    label: Tensor,
    *,
    margin: float = 1.0,
    distance: str = "euclidean",
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Contrastive (siamese) loss of Hadsell et al. 2006, with their ½ convention:
    :math:`\ell = \tfrac12 y d^2 + \tfrac12 (1-y)\max(0, m - d)^2`, ``label`` 1 = similar.

    ``distance="euclidean"`` uses :math:`d = \|x_1 - x_2\|_2` with a safe square root: at
    ``x1 == x2`` the loss is 0 for a similar pair and :math:`m^2/2` for a dissimilar one, with
    a finite gradient. ``distance="cosine"`` uses :math:`d = 1 - \cos(x_1, x_2)`.

    pytorch-metric-learning's ``ContrastiveLoss(pos_margin=0, neg_margin=m)`` computes the
    per-pair terms :math:`d` and :math:`\max(0, m - d)` (not squared, no ½) and averages over
    the non-zero ones; our per-pair loss is half the square of its per-pair loss.

    Args:
        x1: ``(N, D)``.
        x2: ``(N, D)``.
        label: ``(N,)``, 1 (or True) for similar pairs, 0 for dissimilar ones; values in between
            interpolate.
        margin: the margin m for dissimilar pairs.
        distance: ``"euclidean"`` or ``"cosine"``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, D)``, ``(N, D)``, ``(N,)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.zeros(2, 3, requires_grad=True)
        >>> loss = LF.contrastive_loss(x, x.detach(), torch.tensor([1.0, 0.0]), margin=2.0,
        ...                            reduction="none")
        >>> loss                             # similar & equal: 0; dissimilar & equal: m²/2
        tensor([0., 2.], grad_fn=<AddBackward0>)
        >>> loss.sum().backward(); bool(torch.isfinite(x.grad).all())
        True

    References:
        Hadsell, Chopra, LeCun, "Dimensionality reduction by learning an invariant mapping",
        CVPR 2006.
    """
    check_floating("x1", x1)
    check_floating("x2", x2)
    check_tensor("label", label)
    check_same_shape(x1, x2, ("x1", "x2"))
    check_ndim("x1", x1, 2, "(N, D)")
    if tuple(label.shape) != (x1.shape[0],):
        raise LossInputError(
            f"label has shape {shape_str(label)} but x1 has shape {shape_str(x1)}; label must be "
            f"({x1.shape[0]},), one 0/1 per pair. Fix: label.reshape(-1)."
        )
    check_option("distance", distance, ("euclidean", "cosine"))
    x1, x2 = as_float32(x1, x2)
    y = label.to(x1.dtype)
    if distance == "euclidean":
        sq = (x1 - x2).square().sum(-1)
        d = _safe_sqrt(sq)
    else:
        d = 1.0 - F.cosine_similarity(x1, x2, dim=-1, eps=1e-12)
        sq = d.square()
    loss = 0.5 * y * sq + 0.5 * (1.0 - y) * (margin - d).clamp_min(0.0).square()
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class ContrastiveLoss(LossModule):
    """Module form of :func:`contrastive_loss`."""

    fn = staticmethod(contrastive_loss)


# --------------------------------------------------------------------------- mining


def _batch_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                  extreme: bool = False, **kwargs: object) -> Sample:
    x = draw("real", (12, 5), gen, dtype, extreme)
    labels = torch.arange(12) % 3
    return Sample((x, labels), dict(kwargs))


def _mining_sample(**kwargs: object) -> Callable[..., Sample]:
    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
        return _batch_sample(gen, dtype, extreme, **kwargs)

    return sample


_MINING_PROPS = Properties(convex=False, smoothness="C0", homogeneity=None, zero_at_perfect=None)


@register(
    "batch_hard_triplet",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="class_index",
    aliases=("batch_hard_triplet_loss", "batch_hard"),
    properties=_MINING_PROPS,
    formula=r"\ell_a = \max(0,\ m + \max_{p: y_p = y_a} d_{ap} - \min_{n: y_n \ne y_a} d_{an})",
    references=("Hermans, Beyer, Leibe, arXiv:1703.07737 (2017)",),
    peers={"pytorch_metric_learning": "TripletMarginLoss + miners.BatchHardMiner",
           "tensorflow_addons": "tfa.losses.TripletHardLoss"},
    sample=_mining_sample(margin=0.5),
)
def batch_hard_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float | str = 1.0,
    distance: str = "euclidean",
    reduction: str = "mean",
    empty: str = "zero",
    stats: dict[str, Tensor] | None = None,
) -> Tensor:
    r"""Batch-hard triplet loss (Hermans et al. 2017): for every anchor, its farthest positive
    and nearest negative in the batch, :math:`\max(0, m + d_{ap}^{\max} - d_{an}^{\min})`.

    ``margin="soft"`` is Hermans' soft margin :math:`\log(1 + e^{d_{ap} - d_{an}})`. Anchors
    without a positive or a negative in the batch are excluded: ``"none"`` gives them 0 and
    ``"mean"`` averages over the anchors that have both (the number of mined triplets, as
    pytorch-metric-learning's ``BatchHardMiner`` + ``MeanReducer``). Mining runs on a detached
    ``B×B`` distance matrix; only the chosen ``2B`` distances are differentiated, computed
    directly from the rows (so autograd keeps O(B·D); ties go to the first index, as PML).

    Args:
        embeddings: ``(B, D)``.
        labels: ``(B,)`` integer class ids.
        margin: the margin m, or ``"soft"``.
        distance: ``"euclidean"``, ``"squared"`` or ``"cosine"`` (``1 - cos``).
        reduction: ``"mean"`` (over anchors with a valid triplet), ``"sum"`` or ``"none"`` (``(B,)``).
        $empty
        stats: optional dict, filled with 0-d tensors ``valid_triplets`` (anchors with a
            positive and a negative), ``active_triplets`` (those with a positive loss) and
            ``fraction_active``.

    Shape:
        ``(B, D)``, ``(B,)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.2]])
        >>> stats = {}
        >>> LF.batch_hard_triplet_loss(x, torch.tensor([0, 0, 1, 1]), stats=stats)
        tensor(0.)
        >>> stats["valid_triplets"], stats["active_triplets"]    # a zero loss, but not empty
        (tensor(4.), tensor(0.))
        >>> LF.batch_hard_triplet_loss(x, torch.tensor([0, 1, 2, 3]))  # no positive anywhere
        tensor(0.)

    References:
        Hermans, Beyer, Leibe, "In defense of the triplet loss for person re-identification",
        arXiv:1703.07737, 2017.
    """
    x = _embeddings(embeddings)
    labels = _labels(labels, x.shape[0])
    soft = margin == "soft"
    if not soft:
        check_number("margin", margin)
    check_option("distance", distance, DISTANCES)
    # Mine on a detached distance matrix, then differentiate only the 2·B chosen distances,
    # computed directly from the rows: autograd keeps O(B·D), not the B×B matrix. For
    # "euclidean" the squared distances give the same order without B² square roots.
    same = labels[:, None] == labels[None, :]
    dist = distance_matrix(x.detach(), "squared" if distance == "euclidean" else distance)
    hardest_pos = torch.where(same, dist, float("-inf")).fill_diagonal_(float("-inf")).argmax(1)
    hardest_neg = dist.masked_fill_(same, float("inf")).argmin(1)
    # A row without a positive (negative) has every entry ∓inf: argmax/argmin then return a
    # column that is not one, so validity is read off the chosen columns in O(B).
    rows = torch.arange(x.shape[0], device=x.device)
    valid = same[rows, hardest_pos] & (hardest_pos != rows) & ~same[rows, hardest_neg]
    gap = _row_distance(x, x[hardest_pos], distance) - _row_distance(x, x[hardest_neg], distance)
    loss = F.softplus(gap) if soft else (gap + margin).clamp_min(0.0)  # type: ignore[operator]
    loss = torch.where(valid, loss, 0.0)
    _fill_stats(stats, valid.sum(), (loss > 0).sum())
    return reduce(loss, reduction, mask=valid, empty=empty)


class BatchHardTripletLoss(LossModule):
    """Module form of :func:`batch_hard_triplet_loss`."""

    fn = staticmethod(batch_hard_triplet_loss)


@register(
    "batch_all_triplet",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="class_index",
    aliases=("batch_all_triplet_loss", "batch_all"),
    properties=_MINING_PROPS,
    formula=r"\ell = \frac{1}{|T|}\sum_{(a,p,n)\in T} \max(0,\ m + d_{ap} - d_{an})",
    references=("Hermans, Beyer, Leibe, arXiv:1703.07737 (2017)",),
    peers={"pytorch_metric_learning": "TripletMarginLoss (all triplets, AvgNonZeroReducer)",
           "optax": "optax.losses.triplet_margin_loss (per triplet)"},
    sample=_mining_sample(margin=0.5),
    skip={"mean_of_none": "'none' gives per-anchor sums over triplets; 'mean' divides the total "
                          "by the number of active (or valid) triplets, not by B"},
)
def batch_all_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 1.0,
    distance: str = "euclidean",
    average: str = "active",
    reduction: str = "mean",
    empty: str = "zero",
    stats: dict[str, Tensor] | None = None,
) -> Tensor:
    r"""Batch-all triplet loss (Hermans et al. 2017): every valid triplet of the batch
    (``y_a = y_p``, ``a ≠ p``, ``y_n ≠ y_a``), :math:`\max(0, m + d_{ap} - d_{an})`.

    ``average="active"`` (default, Hermans' BA≠0 and pytorch-metric-learning's
    ``AvgNonZeroReducer``) divides the sum by the number of triplets with a positive loss;
    ``average="valid"`` by the number of valid triplets. No ``B×B×B`` tensor is formed: each
    anchor's negative distances are sorted once, and for each positive the hinge sum over
    negatives is :math:`c\,(d_{ap} + m) - \sum_{k<c} d_{(k)}` with :math:`c` the number of
    negatives closer than :math:`d_{ap} + m` (``searchsorted``): exact, O(B² log B) time,
    O(B²) memory.

    Args:
        embeddings: ``(B, D)``.
        labels: ``(B,)`` integer class ids.
        margin: the margin m.
        distance: ``"euclidean"``, ``"squared"`` or ``"cosine"``.
        average: ``"active"`` or ``"valid"``: what ``"mean"`` divides by.
        reduction: ``"mean"`` (see ``average``), ``"sum"`` (over all triplets) or ``"none"``
            (per-anchor sums, ``(B,)``).
        $empty
        stats: optional dict, filled with 0-d tensors ``valid_triplets``, ``active_triplets``
            and ``fraction_active``.

    Shape:
        ``(B, D)``, ``(B,)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.tensor([[0.0], [1.0], [5.0], [6.0]]), torch.tensor([0, 0, 1, 1])
        >>> stats = {}
        >>> LF.batch_all_triplet_loss(x, y, margin=1.0, stats=stats)   # separated by more than m
        tensor(0.)
        >>> stats["valid_triplets"], stats["active_triplets"]
        (tensor(8.), tensor(0.))
        >>> LF.batch_all_triplet_loss(x, y, margin=4.0, stats=stats)   # 2 of 8 active, each 1
        tensor(1.)
        >>> stats["active_triplets"]
        tensor(2.)

    References:
        Hermans, Beyer, Leibe, "In defense of the triplet loss for person re-identification",
        arXiv:1703.07737, 2017.
    """
    x = _embeddings(embeddings)
    labels = _labels(labels, x.shape[0])
    check_number("margin", margin)
    check_option("average", average, ("active", "valid"))
    dist = distance_matrix(x, distance)
    pos, neg = _label_masks(labels)
    y_sorted, prefix, n_neg = _sorted_negatives(dist, neg)
    threshold = dist + margin
    count = torch.searchsorted(y_sorted.detach(), threshold.detach().contiguous(), side="left")
    per_pair = count.to(dist.dtype) * threshold - prefix.gather(1, count)
    per_pair = torch.where(pos, per_pair, 0.0)
    per_anchor = per_pair.sum(1)
    n_valid = pos.sum(1) * n_neg
    n_active = torch.where(pos, count, 0).sum(1)
    _fill_stats(stats, n_valid.sum(), n_active.sum())
    count_used = (n_active if average == "active" else n_valid).to(dist.dtype)
    # Σ_a w_a·(S_a / w_a) / Σ_a w_a = Σ S / Σ w: the one reduction divides by the triplet count.
    return reduce(per_anchor / count_used.clamp_min(1.0), reduction, sample_weight=count_used,
                  empty=empty)


class BatchAllTripletLoss(LossModule):
    """Module form of :func:`batch_all_triplet_loss`."""

    fn = staticmethod(batch_all_triplet_loss)


@register(
    "semi_hard_triplet",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="class_index",
    aliases=("semi_hard_triplet_loss", "triplet_semihard"),
    properties=_MINING_PROPS,
    formula=(r"\ell = \frac{1}{|P|}\sum_{(a,p)\in P} \max(0,\ m + d_{ap} - d_{an^*}),\ "
             r"n^* = \arg\min_{n: d_{an} > d_{ap}} d_{an}\ (\text{else } \arg\max_n d_{an})"),
    references=("Schroff, Kalenichenko, Philbin, CVPR 2015",),
    peers={"tensorflow_addons": "tfa.losses.TripletSemiHardLoss"},
    sample=_mining_sample(margin=0.5),
    skip={"mean_of_none": "'none' gives per-anchor sums over positive pairs; 'mean' divides the "
                          "total by the number of positive pairs"},
)
def semi_hard_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 1.0,
    distance: str = "euclidean",
    reduction: str = "mean",
    empty: str = "zero",
    stats: dict[str, Tensor] | None = None,
) -> Tensor:
    r"""Semi-hard triplet loss (FaceNet, Schroff et al. 2015), as ``tfa.losses.TripletSemiHardLoss``:
    for every positive pair :math:`(a, p)` the nearest negative farther than the positive
    (:math:`d_{an} > d_{ap}`); where there is none, the farthest negative.
    :math:`\max(0, m + d_{ap} - d_{an^*})`, averaged over positive pairs.

    Each anchor's negative distances are sorted once and the semi-hard one is found with
    ``searchsorted``: O(B² log B) time, O(B²) memory, no ``B×B×B`` tensor.

    Args:
        embeddings: ``(B, D)``.
        labels: ``(B,)`` integer class ids.
        margin: the margin m.
        distance: ``"euclidean"``, ``"squared"`` or ``"cosine"``.
        reduction: ``"mean"`` (over positive pairs that have a negative), ``"sum"`` or
            ``"none"`` (per-anchor sums, ``(B,)``).
        $empty
        stats: optional dict, filled with 0-d tensors ``valid_triplets`` (positive pairs with a
            negative), ``active_triplets`` and ``fraction_active``.

    Shape:
        ``(B, D)``, ``(B,)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[0.0], [1.0], [1.5], [0.5]])   # anchors 0, 2 have a farther negative
        >>> LF.semi_hard_triplet_loss(x, torch.tensor([0, 0, 1, 1]), reduction="none")
        tensor([0.5000, 1.5000, 0.5000, 1.5000])

    References:
        Schroff, Kalenichenko, Philbin, "FaceNet: a unified embedding for face recognition and
        clustering", CVPR 2015.
    """
    x = _embeddings(embeddings)
    labels = _labels(labels, x.shape[0])
    check_number("margin", margin)
    dist = distance_matrix(x, distance)
    pos, neg = _label_masks(labels)
    y_sorted, _, n_neg = _sorted_negatives(dist, neg)
    last = y_sorted.shape[1] - 1
    first_farther = torch.searchsorted(y_sorted.detach(), dist.detach().contiguous(), side="right")
    has_farther = first_farther < n_neg[:, None]
    farthest = (n_neg - 1).clamp(0, last)[:, None].expand_as(first_farther)
    index = torch.where(has_farther, first_farther.clamp(max=last), farthest)
    valid = pos & (n_neg > 0)[:, None]
    d_an = torch.where(valid, y_sorted.gather(1, index), 0.0)
    per_pair = torch.where(valid, (margin + dist - d_an).clamp_min(0.0), 0.0)
    _fill_stats(stats, valid.sum(), (per_pair > 0).sum())
    n_pairs = valid.sum(1).to(dist.dtype)
    return reduce(per_pair.sum(1) / n_pairs.clamp_min(1.0), reduction, sample_weight=n_pairs,
                  empty=empty)


class SemiHardTripletLoss(LossModule):
    """Module form of :func:`semi_hard_triplet_loss`."""

    fn = staticmethod(semi_hard_triplet_loss)


# --------------------------------------------------------------------------- pair weighting


def _masked_logsumexp(x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise logsumexp over the kept entries, and whether a row has any; rows with none
    give 0 with a zero (not NaN) gradient."""
    any_kept = keep.any(1)
    masked = torch.where(keep, x, float("-inf"))
    safe = torch.where(any_kept[:, None], masked, 0.0)
    return torch.where(any_kept, torch.logsumexp(safe, 1), 0.0), any_kept


def _cosine_matrix(x: Tensor) -> Tensor:
    xn = F.normalize(x, dim=1)
    return xn @ xn.T


@register(
    "circle",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="class_index",
    aliases=("circle_loss",),
    properties=Properties(convex=False, smoothness="C0", homogeneity=0, zero_at_perfect=None),
    formula=(r"\ell_a = \log\big(1 + \sum_{n} e^{\gamma \alpha_n (s_{an} - m)}"
             r"\sum_{p} e^{-\gamma \alpha_p (s_{ap} - 1 + m)}\big),\ "
             r"\alpha_p = [1 + m - s_{ap}]_+,\ \alpha_n = [s_{an} + m]_+"),
    references=("Sun et al., CVPR 2020",),
    peers={"pytorch_metric_learning": "pytorch_metric_learning.losses.CircleLoss",
           "keras": "keras.losses.Circle"},
    sample=_mining_sample(),
    skip={"gradcheck": "the paper's weights α are constants in the gradient (stop-gradient), so the "
                       "gradient is not the finite difference by design; detach_weights=False is "
                       "gradchecked in test_metric.py"},
)
def circle_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    m: float = 0.25,
    gamma: float = 256.0,
    detach_weights: bool = True,
    reduction: str = "mean",
    empty: str = "zero",
) -> Tensor:
    r"""Circle loss (Sun et al. 2020) on the cosine similarities of a labelled batch, per
    anchor: :math:`\mathrm{softplus}(\mathrm{lse}_n\,\gamma\alpha_n(s_n - \Delta_n) +
    \mathrm{lse}_p\,(-\gamma\alpha_p(s_p - \Delta_p)))` with :math:`O_p = 1 + m`,
    :math:`O_n = -m`, :math:`\Delta_p = 1 - m`, :math:`\Delta_n = m`.

    Embeddings are L2-normalised inside. The weights :math:`\alpha` are treated as constants
    in the gradient (``detach_weights=True``, the paper's and pytorch-metric-learning's
    ``CircleLoss``); ``keras.losses.Circle`` differentiates through them
    (``detach_weights=False``). Values equal both (Keras on pre-normalised embeddings). Defaults
    m = 0.25, γ = 256 are the paper's face-recognition setting (PML and Keras use 0.4 and 80).
    ``"mean"`` averages over anchors with at least one positive and one negative (PML's
    ``AvgNonZeroReducer``); others give 0.

    Args:
        embeddings: ``(B, D)``.
        labels: ``(B,)`` integer class ids.
        m: the relaxation margin.
        gamma: the scale γ.
        detach_weights: stop the gradient through α (paper) or not (Keras).
        reduction: ``"mean"`` (over valid anchors), ``"sum"`` or ``"none"`` (``(B,)``).
        $empty

    Shape:
        ``(B, D)``, ``(B,)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> loss = LF.circle_loss(x, torch.tensor([0, 0, 1, 1]), m=0.25, gamma=256.0)
        >>> # s_p = 1, s_n = 0: -γ·α_p·(1 - Δ_p) + γ·α_n·(0 - Δ_n) = -256·m² - 256·m² = -32
        >>> torch.isclose(loss, torch.nn.functional.softplus(torch.tensor(-32.0)))
        tensor(True)

    References:
        Sun et al., "Circle loss: a unified perspective of pair similarity optimization",
        CVPR 2020.
    """
    x = _embeddings(embeddings)
    labels = _labels(labels, x.shape[0])
    check_number("m", m)
    check_number("gamma", gamma, low=0.0, low_open=True)
    s = _cosine_matrix(x)
    pos, neg = _label_masks(labels)
    sw = s.detach() if detach_weights else s
    alpha_p = (1.0 + m - sw).clamp_min(0.0)
    alpha_n = (sw + m).clamp_min(0.0)
    lse_p, has_p = _masked_logsumexp(-gamma * alpha_p * (s - (1.0 - m)), pos)
    lse_n, has_n = _masked_logsumexp(gamma * alpha_n * (s - m), neg)
    valid = has_p & has_n
    loss = torch.where(valid, F.softplus(lse_p + lse_n), 0.0)
    return reduce(loss, reduction, mask=valid, empty=empty)


class CircleLoss(LossModule):
    """Module form of :func:`circle_loss`."""

    fn = staticmethod(circle_loss)


@register(
    "multi_similarity",
    family="metric",
    tasks=_TASKS,
    input_kind="embedding",
    target_kind="class_index",
    aliases=("multi_similarity_loss", "ms_loss"),
    properties=Properties(convex=False, smoothness="Cinf", homogeneity=0, zero_at_perfect=None),
    formula=(r"\ell_a = \tfrac1\alpha \log(1 + \sum_p e^{-\alpha(s_{ap} - \lambda)}) + "
             r"\tfrac1\beta \log(1 + \sum_n e^{\beta(s_{an} - \lambda)})"),
    references=("Wang et al., CVPR 2019",),
    peers={"pytorch_metric_learning": "pytorch_metric_learning.losses.MultiSimilarityLoss"},
    sample=_mining_sample(),
)
def multi_similarity_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    epsilon: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Multi-similarity loss (Wang et al. 2019) on cosine similarities:
    :math:`\tfrac1\alpha\log(1 + \sum_p e^{-\alpha(s_{ap} - \lambda)}) +
    \tfrac1\beta\log(1 + \sum_n e^{\beta(s_{an} - \lambda)})` per anchor, λ = ``base``.

    With ``epsilon=None`` every positive and negative pair of the batch is used, as
    pytorch-metric-learning's ``MultiSimilarityLoss`` alone. With a number, the paper's pair
    mining comes first (as PML's ``MultiSimilarityMiner(epsilon)`` feeding the loss): a
    negative is kept if :math:`s_{an} + \epsilon > \min_p s_{ap}`, a positive if
    :math:`s_{ap} - \epsilon < \max_n s_{an}` (on detached similarities). ``"mean"`` averages
    over all B anchors, as PML's ``MeanReducer`` (an anchor with no pair left contributes 0
    for that term). Computed with a stable logsumexp.

    Args:
        embeddings: ``(B, D)``, L2-normalised inside.
        labels: ``(B,)`` integer class ids.
        alpha: positive-pair scale α.
        beta: negative-pair scale β.
        base: the similarity offset λ.
        epsilon: the mining margin ε (paper: 0.1), or ``None`` for no mining.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).

    Shape:
        ``(B, D)``, ``(B,)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0]])   # one positive pair at s = 1
        >>> LF.multi_similarity_loss(x, torch.tensor([0, 0]), alpha=2.0, base=0.5)
        tensor(0.1566)
        >>> torch.log1p(torch.exp(torch.tensor(-1.0))) / 2
        tensor(0.1566)

    References:
        Wang, Han, Huang, Dong, Scott, "Multi-similarity loss with general pair weighting for
        deep metric learning", CVPR 2019.
    """
    x = _embeddings(embeddings)
    labels = _labels(labels, x.shape[0])
    check_number("alpha", alpha, low=0.0, low_open=True)
    check_number("beta", beta, low=0.0, low_open=True)
    s = _cosine_matrix(x)
    pos, neg = _label_masks(labels)
    if epsilon is not None:
        check_number("epsilon", epsilon)
        sd = s.detach()
        max_neg = torch.where(neg, sd, float("-inf")).amax(1, keepdim=True)
        min_pos = torch.where(pos, sd, float("inf")).amin(1, keepdim=True)
        pos = pos & (sd - epsilon < max_neg)
        neg = neg & (sd + epsilon > min_pos)

    def log1p_sum_exp(z: Tensor, keep: Tensor) -> Tensor:
        # log(1 + Σ_keep e^z) = logsumexp([z_keep, 0]); rows with nothing kept give 0.
        masked = torch.where(keep, z, float("-inf"))
        return torch.logsumexp(torch.cat([masked, masked.new_zeros(masked.shape[0], 1)], 1), 1)

    loss = (log1p_sum_exp(-alpha * (s - base), pos) / alpha
            + log1p_sum_exp(beta * (s - base), neg) / beta)
    return reduce(loss, reduction)


class MultiSimilarityLoss(LossModule):
    """Module form of :func:`multi_similarity_loss`."""

    fn = staticmethod(multi_similarity_loss)


# --------------------------------------------------------------------------- class centres


def _centre_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False) -> Sample:
    x = draw("real", (6, 4), gen, dtype, extreme)
    w = draw("real", (3, 4), gen, dtype, extreme)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    return Sample((x, labels, w), {"scale": 8.0}, grad=(0, 2))


def _centre_cosines(embeddings: Tensor, labels: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    check_floating("embeddings", embeddings)
    check_ndim("embeddings", embeddings, 2, "(B, D)")
    check_floating("weight", weight)
    check_ndim("weight", weight, 2, "(num_classes, D)")
    if weight.shape[1] != embeddings.shape[1]:
        raise LossInputError(
            f"weight has shape {shape_str(weight)} but embeddings have D = {embeddings.shape[1]}; "
            f"weight must be (num_classes, {embeddings.shape[1]}) (one centre per row, as "
            "nn.Linear). Fix: pass W.T if it is stored as (D, num_classes)."
        )
    labels = _labels(labels, embeddings.shape[0])
    check_class_index(labels, weight.shape[0], name="labels")
    embeddings, weight = as_float32(embeddings, weight)
    cos = F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).T
    return cos, F.one_hot(labels, weight.shape[0]).bool()


_ANGULAR_PROPS = Properties(convex=False, smoothness="C0", homogeneity=0, zero_at_perfect=None)


@register(
    "arcface",
    family="metric",
    tasks=("metric_learning", "classification"),
    input_kind="embedding",
    target_kind="class_index",
    aliases=("arcface_loss", "additive_angular_margin"),
    properties=_ANGULAR_PROPS,
    formula=(r"\ell = -\log\frac{e^{s\cos(\theta_y + m)}}"
             r"{e^{s\cos(\theta_y + m)} + \sum_{j\ne y} e^{s\cos\theta_j}}"),
    references=("Deng et al., CVPR 2019",),
    peers={"pytorch_metric_learning": "pytorch_metric_learning.losses.ArcFaceLoss"},
    sample=_centre_sample,
    skip={"module": "ArcFaceLoss owns the class-centre weight (built from num_classes, "
                    "embedding_size); Module == function with the same weight is tested in "
                    "test_metric.py"},
)
def arcface_loss(
    embeddings: Tensor,
    labels: Tensor,
    weight: Tensor,
    *,
    margin: float = 0.5,
    scale: float = 64.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""ArcFace (additive angular margin) loss: cross-entropy over the scaled cosines to the
    class centres, with the target's angle increased by ``margin`` (radians).

    Where :math:`\theta_y + m > \pi` the target logit is :math:`\cos\theta_y - m\sin m` (keeps
    it decreasing, as insightface and pytorch-metric-learning). The arccos is never taken:
    :math:`\cos(\theta + m) = \cos\theta\cos m - \sin\theta\sin m` with
    :math:`\sin\theta = \sqrt{1 - \cos^2\theta}` clamped away from :math:`\cos\theta = \pm1`,
    so the gradient is finite when an embedding coincides with its centre.
    pytorch-metric-learning's margin is in degrees (default 28.6° ≈ 0.499 rad) and its ``W`` is
    ``(embedding_size, num_classes)``: pass ``W.T`` here.

    Args:
        embeddings: ``(B, D)``, normalised inside.
        labels: ``(B,)`` class ids in ``[0, num_classes)``.
        weight: the class centres ``(num_classes, D)``, normalised inside.
        margin: the angular margin m in radians (paper: 0.5).
        scale: the logit scale s (paper: 64).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(B, D)``, ``(B,)``, ``(C, D)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, w, y = torch.randn(4, 8), torch.randn(3, 8), torch.tensor([0, 1, 2, 0])
        >>> ce = torch.nn.functional.cross_entropy
        >>> xn, wn = torch.nn.functional.normalize(x), torch.nn.functional.normalize(w)
        >>> torch.allclose(LF.arcface_loss(x, y, w, margin=0.0, scale=5.0), ce(5 * xn @ wn.T, y))
        True

    References:
        Deng, Guo, Xue, Zafeiriou, "ArcFace: additive angular margin loss for deep face
        recognition", CVPR 2019.
    """
    check_number("scale", scale, low=0.0, low_open=True)
    check_number("margin", margin, low=0.0, high=math.pi)
    cos, onehot = _centre_cosines(embeddings, labels, weight)
    eps = 1e-7 if cos.dtype == torch.float64 else 1e-6
    clamped = cos.clamp(-1.0 + eps, 1.0 - eps)
    sin = (1.0 - clamped.square()).sqrt()
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    with_margin = torch.where(cos >= -cos_m, cos * cos_m - sin * sin_m, cos - margin * sin_m)
    logits = scale * torch.where(onehot, with_margin, cos)
    loss = F.cross_entropy(logits, labels, reduction="none")
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


@register(
    "cosface",
    family="metric",
    tasks=("metric_learning", "classification"),
    input_kind="embedding",
    target_kind="class_index",
    aliases=("cosface_loss", "large_margin_cosine", "am_softmax"),
    properties=_ANGULAR_PROPS,
    formula=(r"\ell = -\log\frac{e^{s(\cos\theta_y - m)}}"
             r"{e^{s(\cos\theta_y - m)} + \sum_{j\ne y} e^{s\cos\theta_j}}"),
    references=("Wang et al., CVPR 2018",),
    peers={"pytorch_metric_learning": "pytorch_metric_learning.losses.CosFaceLoss"},
    sample=_centre_sample,
    skip={"module": "CosFaceLoss owns the class-centre weight (built from num_classes, "
                    "embedding_size); Module == function with the same weight is tested in "
                    "test_metric.py"},
)
def cosface_loss(
    embeddings: Tensor,
    labels: Tensor,
    weight: Tensor,
    *,
    margin: float = 0.35,
    scale: float = 64.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""CosFace (large margin cosine) loss: cross-entropy over :math:`s\cos\theta_j`, with
    ``margin`` subtracted from the target cosine. Same numbers as pytorch-metric-learning's
    ``CosFaceLoss`` given ``weight = W.T``.

    Args:
        embeddings: ``(B, D)``, normalised inside.
        labels: ``(B,)`` class ids in ``[0, num_classes)``.
        weight: the class centres ``(num_classes, D)``, normalised inside.
        margin: the cosine margin m (paper: 0.35).
        scale: the logit scale s (paper: 64).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(B, D)``, ``(B,)``, ``(C, D)`` → scalar, or ``(B,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> w = torch.eye(2)
        >>> x = torch.tensor([[1.0, 0.0]])      # on its centre: logits s(1 - m) and 0
        >>> LF.cosface_loss(x, torch.tensor([0]), w, margin=0.35, scale=2.0)
        tensor(0.2410)
        >>> torch.nn.functional.softplus(torch.tensor(-2.0 * 0.65))
        tensor(0.2410)

    References:
        Wang et al., "CosFace: large margin cosine loss for deep face recognition", CVPR 2018.
    """
    check_number("scale", scale, low=0.0, low_open=True)
    check_number("margin", margin)
    cos, onehot = _centre_cosines(embeddings, labels, weight)
    logits = scale * torch.where(onehot, cos - margin, cos)
    loss = F.cross_entropy(logits, labels, reduction="none")
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class _CentreLoss(LossModule):
    """A loss Module that owns learnable class centres ``weight`` ``(num_classes, D)``."""

    _fn: Callable[..., Tensor]

    def __init__(self, num_classes: int, embedding_size: int, *, margin: float, scale: float,
                 reduction: str = "mean") -> None:
        super().__init__()
        check_number("num_classes", num_classes, low=1)
        check_number("embedding_size", embedding_size, low=1)
        self.num_classes, self.embedding_size = int(num_classes), int(embedding_size)
        self.margin, self.scale, self.reduction = margin, scale, reduction
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.embedding_size))
        nn.init.xavier_normal_(self.weight)

    @property
    def options(self) -> dict[str, object]:
        return {"margin": self.margin, "scale": self.scale, "reduction": self.reduction}

    def forward(self, embeddings: Tensor, labels: Tensor, **kwargs: object) -> Tensor:  # type: ignore[override]
        return type(self)._fn(embeddings, labels, self.weight, **{**self.options, **kwargs})

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, embedding_size={self.embedding_size}, "
                f"margin={self.margin}, scale={self.scale}, reduction={self.reduction!r}")


class ArcFaceLoss(_CentreLoss):
    """:func:`arcface_loss` with learnable class centres ``weight`` ``(num_classes,
    embedding_size)`` (Xavier-normal init). ``margin`` is in radians (0.5, the paper's; PML's
    default 28.6° is 0.499 rad). Call as ``loss(embeddings, labels)``."""

    _fn = staticmethod(arcface_loss)

    def __init__(self, num_classes: int, embedding_size: int, *, margin: float = 0.5,
                 scale: float = 64.0, reduction: str = "mean") -> None:
        super().__init__(num_classes, embedding_size, margin=margin, scale=scale,
                         reduction=reduction)


class CosFaceLoss(_CentreLoss):
    """:func:`cosface_loss` with learnable class centres ``weight`` ``(num_classes,
    embedding_size)`` (Xavier-normal init). Call as ``loss(embeddings, labels)``."""

    _fn = staticmethod(cosface_loss)

    def __init__(self, num_classes: int, embedding_size: int, *, margin: float = 0.35,
                 scale: float = 64.0, reduction: str = "mean") -> None:
        super().__init__(num_classes, embedding_size, margin=margin, scale=scale,
                         reduction=reduction)


arcface_loss.__losskit_spec__.module = ArcFaceLoss  # type: ignore[attr-defined]
cosface_loss.__losskit_spec__.module = CosFaceLoss  # type: ignore[attr-defined]
