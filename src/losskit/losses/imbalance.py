"""Class-imbalance and label-noise losses, and the helpers that turn class counts into weights.

Multi-class losses here take logits ``(N, C)`` or ``(N, C, d1, ...)`` and class indices
``(N,)`` or ``(N, d1, ...)`` (dtype long) with ``ignore_index`` (default -100), like
``torch.nn.functional.cross_entropy``; ``"mean"`` divides by the number of non-ignored targets
(by Σ weight[target] when class weights are given, as PyTorch does). ``asymmetric_loss`` is
multi-label: logits and {0, 1} targets of the same shape. All go through the one ``reduce``:
``sample_weight``, ``mask``, ``normalizer`` and ``empty`` behave as everywhere in losskit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_class_index,
    check_floating,
    check_logits_not_probabilities,
    check_number,
    check_option,
    check_same_shape,
    check_tensor,
    class_vector,
    is_debug,
    shape_str,
)
from losskit._core.fused import (
    ElementwiseKernel,
    elementwise_loss,
    logistic_parts,
    power_,
    sigmoid_from_parts,
    small_power,
)
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register
from losskit._core.samples import DEFAULT_SHAPE, draw, regression_sample

__all__ = [
    "AsymmetricLoss",
    "GeneralizedCrossEntropyLoss",
    "LDAMLoss",
    "LogitAdjustedCrossEntropyLoss",
    "SymmetricCrossEntropyLoss",
    "asymmetric_loss",
    "class_weights",
    "generalized_cross_entropy",
    "ldam_loss",
    "logit_adjusted_cross_entropy",
    "pos_weight_from_counts",
    "symmetric_cross_entropy",
]

_TASKS = ("classification", "imbalance")
_NOISY = ("classification", "noisy_labels")


# --------------------------------------------------------------------------- helpers


def _counts_tensor(name: str, counts: Tensor | Sequence[float] | float, validate: bool = True) -> Tensor:
    t = counts if isinstance(counts, Tensor) else torch.as_tensor(counts)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if validate and t.numel() and bool((t <= 0).any()):
        raise LossInputError(
            f"{name} must be positive, got {t.tolist() if t.numel() <= 8 else shape_str(t)}. "
            "Fix: a class with no samples has no defined weight; drop it or add 1 to every count."
        )
    return t


def class_weights(
    counts: Tensor | Sequence[float],
    method: str = "inverse",
    beta: float = 0.999,
) -> Tensor:
    r"""Per-class weights from class counts :math:`n_c`, normalised to sum to the number of
    classes :math:`C` (so uniform counts give weights of 1), for ``weight=`` of a cross-entropy.

    * ``"inverse"``: :math:`w_c \propto 1/n_c`;
    * ``"inverse_sqrt"``: :math:`w_c \propto 1/\sqrt{n_c}`;
    * ``"effective_number"`` (Cui et al. 2019): :math:`w_c \propto (1-\beta)/(1-\beta^{n_c})`,
      the inverse of the effective number of samples; β → 0 gives uniform weights and
      β → 1 gives ``"inverse"``.

    Args:
        counts: ``(C,)`` positive counts (a tensor or a sequence). A zero count raises.
        method: ``"inverse"`` | ``"inverse_sqrt"`` | ``"effective_number"``.
        beta: β in [0, 1) for ``"effective_number"``.

    Returns:
        ``(C,)`` weights, float (the dtype of a floating ``counts``, else the default dtype).

    Examples:
        >>> import torch
        >>> from losskit.functional import class_weights
        >>> w = class_weights([1000, 100, 10], method="effective_number", beta=0.999)
        >>> n = torch.tensor([1000.0, 100.0, 10.0])
        >>> closed_form = (1 - 0.999) / (1 - 0.999 ** n)        # Cui et al., eq. (4)
        >>> torch.allclose(w, 3 * closed_form / closed_form.sum())
        True
        >>> w
        tensor([0.0422, 0.2800, 2.6778])
        >>> class_weights([10, 10])
        tensor([1., 1.])

    References:
        Cui, Jia, Lin, Song, Belongie, "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019.
    """
    check_option("method", method, ("inverse", "inverse_sqrt", "effective_number"))
    check_number("beta", beta, low=0.0, high=1.0, high_open=True)
    n = _counts_tensor("counts", counts)
    if n.ndim != 1:
        raise LossInputError(
            f"counts must be 1-D (C,), got shape {shape_str(n)}. Fix: pass counts.flatten()."
        )
    n64 = n.double()
    if method == "inverse":
        raw = 1.0 / n64
    elif method == "inverse_sqrt":
        raw = n64.rsqrt()
    else:
        # 1 - β^n computed as -expm1(n·log β): no cancellation for β near 1 and small n.
        raw = (1.0 - beta) / -torch.expm1(n64 * math.log(beta)) if beta > 0 else torch.ones_like(n64)
    return (raw * (n64.numel() / raw.sum())).to(n.dtype)


def pos_weight_from_counts(num_pos: Tensor | Sequence[float] | float,
                           num_neg: Tensor | Sequence[float] | float) -> Tensor:
    r"""``pos_weight`` for ``binary_cross_entropy_with_logits``: :math:`n^-_c / n^+_c` per class,
    the ratio that makes positives and negatives weigh the same in total.

    Args:
        num_pos: positives per class, ``(C,)`` (or a scalar for one class); all > 0.
        num_neg: negatives per class, same shape as ``num_pos``.

    Returns:
        ``(C,)`` (or 0-d) float tensor, broadcasting along the class dimension of ``(N, C)`` logits.

    Examples:
        >>> from losskit.functional import pos_weight_from_counts
        >>> pos_weight_from_counts([10, 50], [90, 50])
        tensor([9., 1.])

    References:
        PyTorch ``BCEWithLogitsLoss`` documentation (``pos_weight = negatives / positives``).
    """
    pos = _counts_tensor("num_pos", num_pos)
    neg = num_neg if isinstance(num_neg, Tensor) else torch.as_tensor(num_neg)
    check_same_shape(pos, neg, ("num_pos", "num_neg"))
    if neg.numel() and bool((neg < 0).any()):
        raise LossInputError(f"num_neg must be non-negative, got {neg.tolist()}.")
    if pos.ndim > 1:
        raise LossInputError(f"num_pos must be (C,) or a scalar, got shape {shape_str(pos)}.")
    return neg.to(pos.dtype) / pos


# --------------------------------------------------------------------------- shared plumbing


def _class_index_sample(shape: tuple[int, ...] = DEFAULT_SHAPE, **kwargs: object) -> Callable[..., Sample]:
    """Sampler for ``fn(logits (N, C), target (N,), **kwargs)`` with integer class targets."""

    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64, extreme: bool = False) -> Sample:
        x = draw("real", shape, gen, dtype, extreme)
        y = torch.randint(0, shape[1], (shape[0],) + shape[2:], generator=gen)
        opts = {k: (v(dtype) if callable(v) else v) for k, v in kwargs.items()}
        return Sample((x, y), opts)

    return sample


def _check_class_layout(input: Tensor, target: Tensor, ignore_index: int) -> None:
    check_floating("input", input)
    check_tensor("target", target)
    if input.ndim < 2 or target.shape != input.shape[:1] + input.shape[2:]:
        raise LossInputError(
            f"input has shape {shape_str(input)} and target {shape_str(target)}; expected logits "
            "(N, C) or (N, C, d1, ...) and class indices (N,) or (N, d1, ...). Fix: put the "
            "classes in dim 1 (permute channels-last logits) and drop any size-1 class dim of target."
        )
    check_class_index(target, input.shape[1], ignore_index=ignore_index)
    check_logits_not_probabilities(input)


def _target_log_prob(logp: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """log p[target] along dim 1 (0 where ignored) and the keep mask."""
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros((), dtype=target.dtype, device=target.device))
    lp = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    return lp, keep


def _reduce_classes(
    per: Tensor,
    keep: Tensor,
    target: Tensor,
    *,
    class_weight: Tensor | None,
    reduction: str,
    sample_weight: Tensor | None,
    mask: Tensor | None,
    normalizer: float | Tensor | None,
    empty: str,
) -> Tensor:
    """Reduce per-target losses; ignored targets weigh 0 (so ``"mean"`` divides by the kept
    count, or Σ weight[target] with class weights, as in PyTorch)."""
    # where, not multiply: a loss of inf at an ignored target must not become NaN.
    per = torch.where(keep, per, per.new_zeros(()))
    den = keep.to(per.dtype)
    if class_weight is not None:
        safe = torch.where(keep, target, torch.zeros((), dtype=target.dtype, device=target.device))
        den = den * class_weight.to(per.dtype)[safe]
        per = per * den
    return reduce(per, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty, denominator=den)


# --------------------------------------------------------------------------- logit adjustment


@register(
    "logit_adjusted_cross_entropy",
    family="imbalance",
    tasks=_TASKS,
    input_kind="logits",
    target_kind="class_index",
    aliases=("logit_adjusted_ce", "logit_adjustment_loss"),
    properties=Properties(convex=True, smoothness="Cinf", robust=None, homogeneity=None,
                          units="nats", zero_at_perfect=False),
    formula=r"\ell = -\log \frac{e^{z_y + \tau\log\pi_y}}{\sum_k e^{z_k + \tau\log\pi_k}}",
    references=("Menon et al. 2021 (Long-tail learning via logit adjustment)",
                "Ren et al. 2020 (Balanced Meta-Softmax)"),
    peers={},
    sample=_class_index_sample(class_priors=lambda d: torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05], dtype=d)),
    elementwise=True,
)
def logit_adjusted_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    class_priors: Tensor | Sequence[float],
    tau: float = 1.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Logit-adjusted cross-entropy: the cross-entropy of :math:`z + \tau\log\pi`, where
    :math:`\pi` are the training class priors. Minimising it yields a classifier that is
    Fisher-consistent for the *balanced* error; predict with the plain logits :math:`z`.

    ``tau=1`` is the balanced softmax (Ren et al. 2020), ``tau=0`` the plain cross-entropy.
    Only the ratios of the priors matter (a common factor shifts every logit alike), so class
    counts may be passed instead of frequencies.

    Args:
        input: logits ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``(N,)`` or ``(N, d1, ...)``, dtype long.
        class_priors: ``(C,)`` positive class frequencies (or counts).
        tau: scale τ ≥ 0 of the adjustment.
        ignore_index: target value that contributes nothing (and is not counted by ``"mean"``).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, torch.nn.functional as F, losskit.functional as LF
        >>> z, y = torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([1])
        >>> prior = torch.tensor([0.7, 0.2, 0.1])
        >>> balanced = -torch.log(prior[1] * z[0, 1].exp() / (prior * z[0].exp()).sum())
        >>> torch.isclose(LF.logit_adjusted_cross_entropy(z, y, class_priors=prior), balanced)
        tensor(True)
        >>> LF.logit_adjusted_cross_entropy(z, y, class_priors=prior, tau=0.0) == F.cross_entropy(z, y)
        tensor(True)

    References:
        Menon, Jayasumana, Rawat, Jain, Veit, Kumar, "Long-tail learning via logit
        adjustment", ICLR 2021. Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual
        Recognition", NeurIPS 2020.
    """
    check_number("tau", tau, low=0.0)
    _check_class_layout(input, target, ignore_index)
    (input,) = as_float32(input)
    priors = class_vector("class_priors", class_priors, input.shape[1], input)
    if tau == 0:
        z = input
    else:
        shape = (1, -1) + (1,) * (input.ndim - 2)
        # a prior of 0 gives log π = -inf: that class is never predicted, which is what it says.
        z = input + tau * priors.log().reshape(shape)
    lp, keep = _target_log_prob(F.log_softmax(z, dim=1), target, ignore_index)
    return _reduce_classes(-lp, keep, target, class_weight=None, reduction=reduction,
                           sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


class LogitAdjustedCrossEntropyLoss(LossModule):
    """Module form of :func:`logit_adjusted_cross_entropy`."""

    fn = staticmethod(logit_adjusted_cross_entropy)


# --------------------------------------------------------------------------- LDAM


def ldam_margins(class_counts: Tensor | Sequence[float], max_margin: float) -> Tensor:
    """LDAM margins Δ_c ∝ n_c^(-1/4), scaled so the largest is ``max_margin`` (float64)."""
    # reading a tensor's values would sync the device: checked in debug mode only.
    validate = is_debug() or not isinstance(class_counts, Tensor)
    n = _counts_tensor("class_counts", class_counts, validate).double()
    m = n.pow(-0.25)
    return m * (max_margin / m.max())


@register(
    "ldam",
    family="imbalance",
    tasks=_TASKS,
    input_kind="logits",
    target_kind="class_index",
    aliases=("ldam_loss", "label_distribution_aware_margin"),
    properties=Properties(convex=True, smoothness="Cinf", robust=None, homogeneity=None,
                          units="nats", zero_at_perfect=False),
    formula=r"\ell = -\log\frac{e^{s(z_y-\Delta_y)}}{e^{s(z_y-\Delta_y)}+\sum_{k\ne y}e^{s z_k}},"
            r"\ \Delta_c = m_{\max}\,\frac{n_c^{-1/4}}{\max_k n_k^{-1/4}}",
    references=("Cao et al. 2019 (LDAM)",),
    peers={},
    sample=_class_index_sample(class_counts=lambda d: torch.tensor([500.0, 120.0, 40.0, 10.0, 3.0], dtype=d),
                              scale=3.0),
    elementwise=True,
)
def ldam_loss(
    input: Tensor,
    target: Tensor,
    *,
    class_counts: Tensor | Sequence[float],
    max_margin: float = 0.5,
    scale: float = 30.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Label-distribution-aware margin loss: a cross-entropy in which the true-class logit is
    lowered by a class margin :math:`\Delta_y \propto n_y^{-1/4}` (rare classes get larger
    margins), the largest margin being ``max_margin``, and every logit is then scaled by
    ``scale`` (the official code's ``s=30``, meant for normalised features/weights).

    ``weight`` are class weights with PyTorch's semantics (``"mean"`` divides by
    Σ weight[target]); LDAM-DRW passes ``class_weights(counts, "effective_number")`` here after
    the deferral epoch.

    Args:
        input: logits ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``(N,)`` or ``(N, d1, ...)``, dtype long.
        class_counts: ``(C,)`` positive training counts per class.
        max_margin: the largest margin (that of the rarest class), ≥ 0.
        scale: s > 0 multiplying the margin-adjusted logits.
        weight: ``(C,)`` class weights, or ``None``.
        ignore_index: target value that contributes nothing.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, torch.nn.functional as F, losskit.functional as LF
        >>> z, y = torch.tensor([[1.0, 0.2, -0.3]]), torch.tensor([2])
        >>> counts = torch.tensor([810.0, 160.0, 10.0])
        >>> LF.ldam_loss(z, y, class_counts=counts, max_margin=0.0, scale=1.0) == F.cross_entropy(z, y)
        tensor(True)
        >>> shifted = torch.tensor([[1.0, 0.2, -0.3 - 0.5]])       # the rarest class has margin 0.5
        >>> torch.isclose(LF.ldam_loss(z, y, class_counts=counts, scale=1.0), F.cross_entropy(shifted, y))
        tensor(True)

    References:
        Cao, Wei, Gaidon, Arechiga, Ma, "Learning Imbalanced Datasets with
        Label-Distribution-Aware Margin Loss", NeurIPS 2019.
    """
    check_number("max_margin", max_margin, low=0.0)
    check_number("scale", scale, low=0.0, low_open=True)
    _check_class_layout(input, target, ignore_index)
    (input,) = as_float32(input)
    num_classes = input.shape[1]
    margins = ldam_margins(class_counts, max_margin)
    margins = class_vector("class_counts", margins, num_classes, input)
    cw = None if weight is None else class_vector("weight", weight, num_classes, input)
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros((), dtype=target.dtype, device=target.device))
    onehot = F.one_hot(safe, num_classes).movedim(-1, 1).to(input.dtype)
    z = scale * (input - onehot * margins[safe].unsqueeze(1))
    lp, keep = _target_log_prob(F.log_softmax(z, dim=1), target, ignore_index)
    return _reduce_classes(-lp, keep, target, class_weight=cw, reduction=reduction,
                           sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


class LDAMLoss(LossModule):
    """Module form of :func:`ldam_loss`."""

    fn = staticmethod(ldam_loss)


# --------------------------------------------------------------------------- asymmetric (multi-label)


@register(
    "asymmetric",
    family="imbalance",
    tasks=("multilabel", "imbalance"),
    input_kind="logits",
    target_kind="binary",
    aliases=("asymmetric_loss", "asl"),
    properties=Properties(convex=False, smoothness="C0", robust=None, homogeneity=None,
                          units="nats", zero_at_perfect=False),
    formula=r"\ell = -y(1-p)^{\gamma_+}\log p - (1-y)\,p_m^{\gamma_-}\log(1-p_m),"
            r"\ p=\sigma(x),\ p_m=\max(p-m,0)",
    references=("Ridnik et al. 2021 (Asymmetric Loss For Multi-Label Classification)",),
    peers={},
    sample=regression_sample(target="binary"),
    elementwise=True,
)
def asymmetric_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Asymmetric loss (ASL) for multi-label logits: focal down-weighting with separate
    exponents for positives and negatives, and probability shifting
    :math:`p_m = \max(p - m, 0)` (``clip`` = m) that discards easy negatives outright.

    .. math::
        \ell = -y\,(1-p)^{\gamma_+}\log p \;-\; (1-y)\,p_m^{\gamma_-}\log(1-p_m)

    Numerics, stated exactly: :math:`\log p` is ``logsigmoid(x)``; :math:`\log(1-p_m)` is
    :math:`\log\min(\sigma(-x)+m, 1)` (``logsigmoid(-x)`` when m = 0); as in the paper's code,
    both logs are clamped from below at :math:`\log\varepsilon` (``eps=1e-8``; ``eps=0``
    turns the clamp off), so a positive with :math:`p < \varepsilon` costs
    :math:`-\log\varepsilon` with no gradient, exactly like the reference
    ``torch.log(p.clamp(min=eps))``. The focusing factors are
    :math:`\exp(\gamma_+\,\mathrm{logsigmoid}(-x))` and :math:`p_m^{\gamma_-}` with a
    double-``where`` at :math:`p_m = 0`, so logits of ±1e4 and exactly-zero shifted
    probabilities give finite gradients. The focusing factor is differentiated through (the
    reference's default, ``disable_torch_grad_focal_loss=False``). The paper's code returns the
    sum; here ``"mean"`` averages over elements (use ``reduction="sum"`` for the paper's value).

    Args:
        input: logits, any shape (typically ``(N, C)``).
        target: {0, 1} labels, same shape (soft labels interpolate the two terms linearly).
        gamma_pos: γ₊ ≥ 0, focusing exponent of positives.
        gamma_neg: γ₋ ≥ 0, focusing exponent of negatives.
        clip: probability margin m in [0, 1) shifting negatives.
        eps: lower clamp of the probabilities inside the logs (0 disables it).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, torch.nn.functional as F, losskit.functional as LF
        >>> x, y = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 0.0])
        >>> bce = F.binary_cross_entropy_with_logits(x, y)
        >>> torch.isclose(LF.asymmetric_loss(x, y, gamma_neg=0.0, clip=0.0, eps=0.0), bce)
        tensor(True)
        >>> LF.asymmetric_loss(torch.tensor([-3.0]), torch.tensor([0.0]), clip=0.05)  # σ(-3) < m
        tensor(0.)

    References:
        Ridnik, Ben-Baruch, Zamir, Noy, Friedman, Protter, Zelnik-Manor, "Asymmetric Loss For
        Multi-Label Classification", ICCV 2021 (github.com/Alibaba-MIIL/ASL).
    """
    check_number("gamma_pos", gamma_pos, low=0.0)
    check_number("gamma_neg", gamma_neg, low=0.0)
    check_number("clip", clip, low=0.0, high=1.0, high_open=True)
    check_number("eps", eps, low=0.0, high=1.0, high_open=True)
    check_floating("input", input)
    check_tensor("target", target)
    check_same_shape(input, target)
    if not target.is_floating_point():
        target = target.to(input.dtype)
    input, target = as_float32(input, target)

    return elementwise_loss(_ASYMMETRIC, input, target, (gamma_pos, gamma_neg, clip, eps), reduction,
                            sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


def _asymmetric_reference(input: Tensor, target: Tensor, gamma_pos: float, gamma_neg: float,
                          clip: float, eps: float) -> Tensor:
    """The per-element asymmetric loss composed of differentiable ops."""
    log_p = F.logsigmoid(input)
    if clip > 0:
        # 1 - p_m = min(σ(-x) + m, 1) ≥ m: its log is finite without any clamp.
        log_q = torch.log(torch.clamp(torch.sigmoid(-input) + clip, max=1.0))
    else:
        log_q = F.logsigmoid(-input)
    if eps > 0:
        floor = math.log(eps)
        log_p = log_p.clamp(min=floor)
        log_q = log_q.clamp(min=floor)

    pos = log_p if gamma_pos == 0 else torch.exp(gamma_pos * F.logsigmoid(-input)) * log_p
    if gamma_neg == 0:
        neg = log_q
    elif clip > 0:
        p_m = torch.clamp(torch.sigmoid(input) - clip, min=0.0)
        live = p_m > 0
        # double where: d/dp p^γ at p = 0 is infinite for γ < 1; the factor there is 0.
        factor = torch.where(live, torch.where(live, p_m, 1.0).pow(gamma_neg), 0.0)
        neg = factor * log_q
    else:
        neg = torch.exp(gamma_neg * F.logsigmoid(input)) * log_q
    return -(target * pos + (1.0 - target) * neg)


# [v ≥ floor] as 0./1. floats without a boolean mask (slow on CPU): (v - floor)·2⁶⁰ is exact near
# the floor and at least one ulp·2⁶⁰ ≫ 1 in magnitude elsewhere, so +1 and a clamp give the step.
_STEP = 2.0**60


def _at_least(v: Tensor, floor: float) -> Tensor:
    return torch.mul(v, _STEP).sub_(floor * _STEP).add_(1.0).clamp_(0.0, 1.0)


def _asymmetric_logs(x: Tensor, clip: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """For a chunk: σ(x), σ(-x), σ(x)σ(-x), logsigmoid(x), ``u = σ(-x) + m`` and log(1 - p_m) =
    log min(u, 1) (``logsigmoid(-x)`` when m = 0), from one exp and one log (two with m > 0)."""
    e, r, lg, s = logistic_parts(x)
    sn = sigmoid_from_parts(x, e, r, negate=True)
    ss = e.mul_(r).mul_(r)
    log_p = torch.clamp_max(x, 0.0).sub_(lg)
    if clip > 0:
        u = torch.add(sn, clip)
        log_q = torch.clamp_max(u, 1.0).log_()
    else:
        u = sn
        log_q = torch.clamp_min(x, 0.0).neg_().sub_(lg)
    return s, sn, ss, log_p, u, log_q


def _asymmetric_parts(x: Tensor, gamma_pos: float, gamma_neg: float, clip: float,
                      eps: float) -> tuple[Tensor, Tensor]:
    """The positive and negative terms ``(1-p)^γ₊ log p`` and ``p_m^γ₋ log(1 - p_m)``."""
    s, sn, _, log_p, _, log_q = _asymmetric_logs(x, clip)
    if eps > 0:
        log_p.clamp_min_(math.log(eps))
        if clip < eps:  # log(1 - p_m) ≥ log m otherwise
            log_q.clamp_min_(math.log(eps))
    pos = log_p if gamma_pos == 0 else log_p.mul_(power_(sn, gamma_pos))
    if gamma_neg == 0:
        return pos, log_q
    base = s.sub_(clip).clamp_min_(0.0) if clip > 0 else s
    return pos, log_q.mul_(power_(base, gamma_neg))


def _asymmetric_value(x: Tensor, t: Tensor, gamma_pos: float, gamma_neg: float, clip: float,
                      eps: float) -> Tensor:
    pos, neg = _asymmetric_parts(x, gamma_pos, gamma_neg, clip, eps)
    return torch.lerp(neg, pos, t).neg_()  # -(t·pos + (1-t)·neg), exact at t = 0 and t = 1


def _asymmetric_total(x: Tensor, t: Tensor, gamma_pos: float, gamma_neg: float, clip: float,
                      eps: float) -> Tensor:
    pos, neg = _asymmetric_parts(x, gamma_pos, gamma_neg, clip, eps)
    return -(neg.sum() + torch.dot(pos.sub_(neg), t))


def _asymmetric_grad(x: Tensor, t: Tensor, gamma_pos: float, gamma_neg: float, clip: float,
                     eps: float) -> Tensor:
    # ℓ = -(t·(1-p)^γ₊·log p + (1-t)·f(p)·log q): the product rule on each factor, each clamp
    # passing no gradient where it is active (as autograd does through the reference).
    s, sn, ss, log_p, u, log_q = _asymmetric_logs(x, clip)
    floor = math.log(eps) if eps > 0 else None
    dlog_p = sn
    if floor is not None:
        dlog_p = _at_least(log_p, floor).mul_(sn)
        log_p.clamp_min_(floor)
    if gamma_pos == 0:
        dpos = dlog_p
    else:
        dpos = torch.addcmul(dlog_p, s, log_p, value=-gamma_pos).mul_(power_(sn.clone(), gamma_pos))
    if clip > 0:
        dlog_q = torch.div(ss, u).neg_()              # d/dx log(σ(-x) + m) = -σσ'/u
        if gamma_neg == 0:                           # where u > 1 the clamp at 1 is active
            dlog_q.mul_(_at_least(u.neg(), -1.0))    # (with γ₋ > 0 the factor p_m^γ₋ is 0 there)
    else:
        dlog_q = s.neg()
    if floor is not None and clip < eps:
        dlog_q.mul_(_at_least(log_q, floor))
        log_q.clamp_min_(floor)
    if gamma_neg == 0:
        dneg = dlog_q
    elif clip > 0:
        p_m = torch.sub(s, clip).clamp_min_(0.0)
        factor = power_(p_m.clone(), gamma_neg)
        if gamma_neg > 1:   # d/dp p^γ = γ·p^(γ-1) is 0 at p_m = 0
            dfactor = power_(p_m, gamma_neg - 1.0)
        else:               # ... and 1 (γ = 1) or infinite (γ < 1) there: the reference's where
            live = torch.mul(p_m, 2.0**126).clamp_(0.0, 1.0)
            safe = torch.sub(1.0, live).add_(p_m)  # p_m where live, else 1 (exact either way)
            dfactor = power_(safe, gamma_neg - 1.0).mul_(live)
        dfactor.mul_(ss).mul_(gamma_neg)
        dneg = factor.mul_(dlog_q).addcmul_(dfactor, log_q)
    else:
        dneg = torch.addcmul(dlog_q, sn, log_q, value=gamma_neg).mul_(power_(s, gamma_neg))
    return torch.lerp(dneg, dpos, t).neg_()  # -(t·dpos + (1-t)·dneg)


def _asymmetric_native(gamma_pos: float, gamma_neg: float, clip: float,
                       eps: float) -> tuple[str, tuple[float, ...]]:
    floor = math.log(eps) if eps > 0 else -math.inf
    powers = small_power(gamma_pos)[0] + small_power(gamma_neg)[0]   # "ii", "ia", "ai" or "aa"
    variant = f"asymmetric_{powers}{'_clip' if clip > 0 else ''}"
    return variant, (gamma_pos, gamma_neg, clip, floor, floor if clip < eps else -math.inf,
                     math.log(clip) if clip > 0 else 0.0, eps)


_ASYMMETRIC = ElementwiseKernel(
    "asymmetric",
    reference=_asymmetric_reference,
    value=_asymmetric_value,
    grad=_asymmetric_grad,
    total=_asymmetric_total,
    examples=((0.0, 4.0, 0.05, 1e-8), (1.0, 2.0, 0.0, 1e-8), (0.5, 3.0, 0.2, 1e-8), (2.0, 1.0, 0.1, 0.0),
              (0.0, 0.5, 0.05, 1e-8), (1.5, 0.0, 0.1, 1e-8), (0.0, 2.5, 0.0, 0.0), (0.3, 0.7, 0.0, 1e-8)),
    target="binary",
    native=_asymmetric_native,
)


class AsymmetricLoss(LossModule):
    """Module form of :func:`asymmetric_loss`."""

    fn = staticmethod(asymmetric_loss)


# --------------------------------------------------------------------------- noisy labels


@register(
    "generalized_cross_entropy",
    family="imbalance",
    tasks=_NOISY,
    input_kind="logits",
    target_kind="class_index",
    aliases=("gce", "generalized_ce", "categorical_generalized_cross_entropy"),
    properties=Properties(convex=False, smoothness="Cinf", robust=None, homogeneity=None,
                          units="dimensionless", zero_at_perfect=False),
    formula=r"\ell = \frac{1 - p_y^{\,q}}{q},\ p = \mathrm{softmax}(z)",
    references=("Zhang & Sabuncu 2018 (Generalized Cross Entropy)",),
    peers={"keras": "keras.losses.CategoricalGeneralizedCrossEntropy"},
    sample=_class_index_sample(),
    elementwise=True,
)
def generalized_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    q: float = 0.7,
    ignore_index: int = -100,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Generalized cross-entropy :math:`(1 - p_y^q)/q` (the negative Box-Cox transform of
    :math:`p_y`), robust to label noise: as q → 0 it tends to the cross-entropy
    :math:`-\log p_y`; at q = 1 it is the mean absolute error on probabilities,
    :math:`1 - p_y`. The gradient of a sample is that of the cross-entropy times
    :math:`p_y^q`, so confidently mislabelled samples pull weakly.

    :math:`p_y^q` is computed as :math:`\exp(q\,\log\mathrm{softmax}(z)_y)`, finite with
    gradients for any finite (or −inf-masked non-target) logits. Keras'
    ``CategoricalGeneralizedCrossEntropy(q)`` takes probabilities; pass it ``softmax(z)``.

    Args:
        input: logits ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``(N,)`` or ``(N, d1, ...)``, dtype long.
        q: exponent in (0, 1].
        ignore_index: target value that contributes nothing.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, torch.nn.functional as F, losskit.functional as LF
        >>> z, y = torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64), torch.tensor([0])
        >>> LF.generalized_cross_entropy(z, y, q=1e-7), F.cross_entropy(z, y)   # q → 0: CE
        (tensor(1.3715, dtype=torch.float64), tensor(1.3715, dtype=torch.float64))
        >>> torch.isclose(LF.generalized_cross_entropy(z, y, q=1.0), 1 - z.softmax(1)[0, 0])  # MAE
        tensor(True)

    References:
        Zhang, Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural Networks
        with Noisy Labels", NeurIPS 2018.
    """
    check_number("q", q, low=0.0, high=1.0, low_open=True)
    _check_class_layout(input, target, ignore_index)
    (input,) = as_float32(input)
    lp, keep = _target_log_prob(F.log_softmax(input, dim=1), target, ignore_index)
    # (1 - e^{q·log p}) / q = -expm1(q·log p) / q: exact as q → 0.
    per = -torch.expm1(q * lp) / q
    return _reduce_classes(per, keep, target, class_weight=None, reduction=reduction,
                           sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


class GeneralizedCrossEntropyLoss(LossModule):
    """Module form of :func:`generalized_cross_entropy`."""

    fn = staticmethod(generalized_cross_entropy)


@register(
    "symmetric_cross_entropy",
    family="imbalance",
    tasks=_NOISY,
    input_kind="logits",
    target_kind="class_index",
    aliases=("sce", "symmetric_ce"),
    properties=Properties(convex=False, smoothness="Cinf", robust=None, homogeneity=None,
                          units="nats", zero_at_perfect=False),
    formula=r"\ell = -\alpha\log p_y - \beta A\,(1 - p_y)",
    references=("Wang et al. 2019 (Symmetric Cross Entropy)",),
    peers={},
    sample=_class_index_sample(),
    elementwise=True,
)
def symmetric_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.1,
    beta: float = 1.0,
    A: float = -4.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Symmetric cross-entropy :math:`\alpha\,\mathrm{CE} + \beta\,\mathrm{RCE}` for noisy
    labels. The reverse cross-entropy :math:`-\sum_k p_k \log q_k` of the one-hot label q,
    with :math:`\log 0 := A`, is :math:`-A\,(1 - p_y)`: a bounded, MAE-like term.

    Computed exactly from ``log_softmax`` (:math:`1 - p_y = -\mathrm{expm1}(\log p_y)`); the
    reference code instead clamps the one-hot label at 1e-4 (A = log 1e-4 ≈ −9.21) and the
    probabilities at 1e-7 — pass ``A=math.log(1e-4)`` for its RCE term.

    Args:
        input: logits ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``(N,)`` or ``(N, d1, ...)``, dtype long.
        alpha: weight α ≥ 0 of the cross-entropy.
        beta: weight β ≥ 0 of the reverse cross-entropy.
        A: the value standing for log 0 (< 0).
        ignore_index: target value that contributes nothing.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, torch.nn.functional as F, losskit.functional as LF
        >>> z, y = torch.tensor([[0.3, 1.2, -0.7]]), torch.tensor([1])
        >>> LF.symmetric_cross_entropy(z, y, alpha=1.0, beta=0.0) == F.cross_entropy(z, y)
        tensor(True)
        >>> torch.isclose(LF.symmetric_cross_entropy(z, y, alpha=0.0, beta=1.0),
        ...               4.0 * (1 - z.softmax(1)[0, 1]))                   # RCE = -A·(1 - p_y)
        tensor(True)

    References:
        Wang, Ma, Chen, Luo, Yi, Bailey, "Symmetric Cross Entropy for Robust Learning with
        Noisy Labels", ICCV 2019.
    """
    check_number("alpha", alpha, low=0.0)
    check_number("beta", beta, low=0.0)
    check_number("A", A, high=0.0, high_open=True)
    _check_class_layout(input, target, ignore_index)
    (input,) = as_float32(input)
    lp, keep = _target_log_prob(F.log_softmax(input, dim=1), target, ignore_index)
    per = -alpha * lp + (beta * -A) * -torch.expm1(lp)
    return _reduce_classes(per, keep, target, class_weight=None, reduction=reduction,
                           sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


class SymmetricCrossEntropyLoss(LossModule):
    """Module form of :func:`symmetric_cross_entropy`."""

    fn = staticmethod(symmetric_cross_entropy)
