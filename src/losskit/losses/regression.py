"""Regression losses: squared, absolute and robust errors, quantiles, relative errors and the
likelihoods of counts and heteroscedastic Gaussians.

All take ``(input, target)`` of the same shape (no silent broadcasting; ``broadcast=True`` opts
in) and the shared options ``reduction``, ``sample_weight``, ``mask``, ``normalizer`` and
``empty`` (see :func:`losskit._core.reduction.reduce`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_floating,
    check_number,
    check_option,
    check_same_shape,
    check_tensor,
    is_debug,
    shape_str,
)
from losskit._core.fused import ElementwiseKernel, elementwise_loss
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, per_sample_or_element, plain_reduction, reduce
from losskit._core.registry import Properties, Sample, register
from losskit._core.samples import DEFAULT_SHAPE, draw, regression_sample

__all__ = [
    "GaussianNLLLoss",
    "GeneralRobustLoss",
    "HuberLoss",
    "L1Loss",
    "LogCoshLoss",
    "MAPELoss",
    "MSELoss",
    "MSLELoss",
    "PoissonNLLLoss",
    "PseudoHuberLoss",
    "QuantileLoss",
    "RMSELoss",
    "SMAPELoss",
    "SmoothL1Loss",
    "TweedieDevianceLoss",
    "gaussian_nll_loss",
    "general_robust_loss",
    "huber_loss",
    "l1_loss",
    "log_cosh_loss",
    "mape_loss",
    "mse_loss",
    "msle_loss",
    "poisson_nll_loss",
    "pseudo_huber_loss",
    "quantile_loss",
    "rmse_loss",
    "smape_loss",
    "smooth_l1_loss",
    "tweedie_deviance_loss",
]

_TASKS = ("regression",)


def _pair(input: Tensor, target: Tensor, broadcast: bool = False) -> tuple[Tensor, Tensor]:
    """Validate a prediction/target pair and upcast half precision to float32."""
    check_floating("input", input)
    check_tensor("target", target)
    check_same_shape(input, target, broadcast=broadcast)
    if not target.is_floating_point():
        target = target.to(input.dtype)
    if broadcast and input.shape != target.shape:
        input, target = torch.broadcast_tensors(input, target)
    input, target = as_float32(input, target)
    return input, target


_ONE = torch.ones(())  # the "1 +" of addcmul, broadcast to the chunk

# --------------------------------------------------------------------------- squared / absolute


@register(
    "mse",
    family="regression",
    tasks=_TASKS,
    input_kind="prediction",
    target_kind="real",
    aliases=("mse_loss", "l2", "mean_squared_error"),
    properties=Properties(convex=True, smoothness="Cinf", robust="none", homogeneity=2,
                          minimizer="mean", units="target units squared", symmetric=True,
                          zero_at_perfect=True),
    formula=r"\ell = (\hat y - y)^2",
    references=("Gauss 1809; Legendre 1805 (least squares)",),
    peers={"torch": "torch.nn.functional.mse_loss", "keras": "keras.losses.MeanSquaredError",
           "optax": "optax.losses.squared_error", "sklearn": "sklearn.metrics.mean_squared_error"},
    sample=regression_sample(),
    elementwise=True,
)
def mse_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Mean squared error, :math:`(\hat y - y)^2`. Drop-in for ``torch.nn.functional.mse_loss``
    (its ``weight=`` is ``sample_weight`` here; ``"mean"`` divides by Σw in both).

    The loss induces the conditional mean; one outlier of size r costs r², so it is not robust.

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast (off: shapes must match).

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([1.0, 2.0, 4.0])
        >>> LF.mse_loss(y + 2.0, y)        # a constant error c costs c²
        tensor(4.)
        >>> LF.mse_loss(y, y)
        tensor(0.)

    References:
        Legendre, *Nouvelles méthodes pour la détermination des orbites des comètes*, 1805.
    """
    input, target = _pair(input, target, broadcast)
    if plain_reduction(input, reduction, empty, sample_weight, mask, normalizer):
        return F.mse_loss(input, target, reduction=reduction)
    return reduce((input - target).square(), reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


class MSELoss(LossModule):
    """Module form of :func:`mse_loss`."""

    fn = staticmethod(mse_loss)


@register(
    "l1",
    family="regression",
    tasks=_TASKS,
    input_kind="prediction",
    target_kind="real",
    aliases=("mae", "mae_loss", "l1_loss", "mean_absolute_error"),
    properties=Properties(convex=True, smoothness="C0", robust="bounded_influence", homogeneity=1,
                          minimizer="median", units="target units", symmetric=True,
                          zero_at_perfect=True),
    formula=r"\ell = |\hat y - y|",
    references=("Laplace 1774; Boscovich 1757 (least absolute deviations)",),
    peers={"torch": "torch.nn.functional.l1_loss", "keras": "keras.losses.MeanAbsoluteError",
           "sklearn": "sklearn.metrics.mean_absolute_error"},
    sample=regression_sample(),
    elementwise=True,
)
def l1_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Mean absolute error, :math:`|\hat y - y|` (alias ``mae_loss``). Drop-in for
    ``torch.nn.functional.l1_loss``.

    It induces the conditional median and bounds each sample's gradient by 1. The gradient at
    a zero residual is 0 (a subgradient).

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
        >>> LF.l1_loss(x, torch.tensor([1.0, -1.0, 100.0]))  # an outlier of 100 costs 100/3
        tensor(34., grad_fn=<DivBackward0>)
        >>> LF.l1_loss(x, torch.tensor([1.0, -1.0, 100.0]), reduction="sum").backward()
        >>> x.grad                                             # but pulls no harder than ±1
        tensor([-1.,  1., -1.])

    References:
        Laplace, *Mémoire sur la probabilité des causes par les événements*, 1774.
    """
    input, target = _pair(input, target, broadcast)
    return reduce((input - target).abs(), reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


class L1Loss(LossModule):
    """Module form of :func:`l1_loss`."""

    fn = staticmethod(l1_loss)


def _safe_sqrt(x: Tensor) -> Tensor:
    # double where: sqrt'(0) = inf would give 0·inf = NaN; the subgradient at 0 is taken as 0.
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).sqrt(), 0.0)


@register(
    "rmse",
    family="regression",
    tasks=_TASKS,
    input_kind="prediction",
    target_kind="real",
    aliases=("root_mean_squared_error",),
    properties=Properties(convex=True, smoothness="C0", robust="none", homogeneity=1,
                          minimizer="mean", units="target units", symmetric=True,
                          zero_at_perfect=True),
    formula=r"\sqrt{\textstyle\sum_i w_i (\hat y_i - y_i)^2 / \sum_i w_i}",
    references=("sklearn.metrics.root_mean_squared_error",),
    peers={"sklearn": "sklearn.metrics.root_mean_squared_error"},
    sample=regression_sample(),
    skip={
        "mean_of_none": "the mean is the root of the mean square over all elements, "
                        "not the mean of per-sample roots",
        "sample_weight": "weights enter under the root (tested in test_regression.py)",
        "mask": "masked elements are dropped under the root (tested in test_regression.py)",
        "empty": "tested in test_regression.py",
        "gradgradcheck": "the root has an unbounded second derivative near 0",
    },
)
def rmse_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Root mean squared error, :math:`\sqrt{\sum_i w_i r_i^2 / \sum_i w_i}`.

    ``"mean"`` is the RMSE over every element (weighted and masked like the mean of
    :func:`mse_loss`, then rooted), matching ``sklearn.metrics.root_mean_squared_error`` on 1-D
    data. ``"none"`` gives one RMSE per sample (over all dims but the first, shape ``(N,)``) and
    ``"sum"`` their sum. At a perfect fit the gradient is 0, not NaN.

    Args:
        input: predictions ``(N, *)``.
        target: same shape as ``input``.
        reduction: ``"mean"`` (RMSE of all elements), ``"none"`` (per-sample RMSE) or ``"sum"``.
        $sample_weight
        $mask
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(N, *)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.tensor([3.0, -4.0]), torch.zeros(2)
        >>> LF.rmse_loss(x, y) ** 2 == LF.mse_loss(x, y)    # the square is the MSE
        tensor(True)

    References:
        Hyndman & Koehler, "Another look at measures of forecast accuracy", IJF 2006.
    """
    input, target = _pair(input, target, broadcast)
    check_option("reduction", reduction, ("none", "mean", "sum"))
    if reduction == "mean":
        # through mse_loss: PyTorch's one kernel for the plain mean, no squared errors kept
        mean_square = mse_loss(input, target, sample_weight=sample_weight, mask=mask, empty=empty)
        return torch.where(mean_square.isnan(), mean_square, _safe_sqrt(mean_square))
    sq = (input - target).square()
    per_sample = sq.reshape(sq.shape[0], -1) if sq.ndim else sq.reshape(1, 1)
    w = None if sample_weight is None else _as_per_sample(sample_weight, sq, per_sample, "sample_weight")
    m = None if mask is None else _as_per_sample(mask, sq, per_sample, "mask")
    num = reduce(per_sample, "none", sample_weight=w, mask=m).sum(1)
    ones = torch.ones_like(per_sample)
    den = reduce(ones, "none", sample_weight=w, mask=m).sum(1)
    rmse = _safe_sqrt(num / den.clamp_min(torch.finfo(den.dtype).tiny))
    if empty == "nan":
        rmse = torch.where(den > 0, rmse, float("nan"))
    return rmse if reduction == "none" else rmse.sum()


def _as_per_sample(value: Tensor, like: Tensor, rows: Tensor, name: str) -> Tensor:
    return per_sample_or_element(name, value, like).expand(like.shape).reshape_as(rows)


class RMSELoss(LossModule):
    """Module form of :func:`rmse_loss`."""

    fn = staticmethod(rmse_loss)


# --------------------------------------------------------------------------- robust


@register(
    "huber",
    family="regression",
    tasks=_TASKS,
    input_kind="prediction",
    target_kind="real",
    aliases=("huber_loss",),
    properties=Properties(convex=True, smoothness="C1", robust="bounded_influence",
                          homogeneity=None, minimizer="huber_center", units="target units squared",
                          symmetric=True, zero_at_perfect=True),
    formula=r"\tfrac12 r^2 \text{ if } |r|\le\delta \text{ else } \delta(|r|-\tfrac12\delta)",
    references=("Huber 1964",),
    peers={"torch": "torch.nn.functional.huber_loss", "keras": "keras.losses.Huber",
           "optax": "optax.losses.huber_loss"},
    sample=regression_sample(),
    elementwise=True,
)
def huber_loss(
    input: Tensor,
    target: Tensor,
    *,
    delta: float = 1.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Huber loss: quadratic for :math:`|r| \le \delta`, linear beyond.

    .. math:: \ell = \tfrac12 r^2 \ (|r|\le\delta), \quad \delta(|r| - \tfrac12\delta) \ (|r|>\delta)

    Drop-in for ``torch.nn.functional.huber_loss(delta=)``; with weights, PyTorch's
    ``huber_loss(weight=w)`` divides Σwℓ by N while losskit's ``sample_weight`` mean divides by
    Σw (as PyTorch's own ``mse_loss(weight=)`` does). As δ → ∞ it tends to ½·MSE; as
    δ → 0, ``huber_loss / δ`` tends to L1 (that rescaled form is :func:`smooth_l1_loss`).

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        delta: the residual where the loss turns linear (> 0).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.tensor([0.5, 3.0]), torch.zeros(2)
        >>> LF.huber_loss(x, y, delta=1.0, reduction="none")   # ½·0.25 and 1·(3 - ½)
        tensor([0.1250, 2.5000])
        >>> torch.isclose(LF.huber_loss(x, y, delta=1e6), 0.5 * LF.mse_loss(x, y))
        tensor(True)

    References:
        Huber, "Robust Estimation of a Location Parameter", Ann. Math. Statist. 1964.
    """
    check_number("delta", delta, low=0, low_open=True)
    input, target = _pair(input, target, broadcast)
    if plain_reduction(input, reduction, empty, sample_weight, mask, normalizer):
        return F.huber_loss(input, target, reduction=reduction, delta=delta)
    r = (input - target).abs()
    quad = r.clamp(max=delta)  # min(|r|, δ): one expression, so the gradient is not doubled at |r| = δ
    return reduce(0.5 * quad.square() + delta * (r - quad), reduction, sample_weight=sample_weight,
                  mask=mask, normalizer=normalizer, empty=empty)


class HuberLoss(LossModule):
    """Module form of :func:`huber_loss`."""

    fn = staticmethod(huber_loss)


@register(
    "smooth_l1",
    family="regression",
    tasks=_TASKS,
    input_kind="prediction",
    target_kind="real",
    aliases=("smooth_l1_loss",),
    properties=Properties(convex=True, smoothness="C1", robust="bounded_influence",
                          homogeneity=None, minimizer="huber_center", units="target units",
                          symmetric=True, zero_at_perfect=True),
    formula=r"\tfrac{1}{2\beta} r^2 \text{ if } |r|<\beta \text{ else } |r|-\tfrac12\beta",
    references=("Girshick 2015 (Fast R-CNN)",),
    peers={"torch": "torch.nn.functional.smooth_l1_loss"},
    sample=regression_sample(),
    elementwise=True,
)
def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    *,
    beta: float = 1.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Smooth L1: :math:`r^2/(2\beta)` for :math:`|r| < \beta`, :math:`|r| - \beta/2` beyond.

    Equal to ``huber_loss(delta=beta) / beta``: its slope is bounded by 1 whatever β, so it
    tends to L1 as β → 0 (β = 0 *is* L1, as in PyTorch). Drop-in for
    ``torch.nn.functional.smooth_l1_loss(beta=)``.

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        beta: the residual where the loss turns linear (≥ 0).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.tensor([0.1, 2.0]), torch.zeros(2)
        >>> torch.isclose(LF.smooth_l1_loss(x, y, beta=0.5), LF.huber_loss(x, y, delta=0.5) / 0.5)
        tensor(True)
        >>> LF.smooth_l1_loss(x, y, beta=0.0) == LF.l1_loss(x, y)
        tensor(True)

    References:
        Girshick, "Fast R-CNN", ICCV 2015.
    """
    check_number("beta", beta, low=0)
    input, target = _pair(input, target, broadcast)
    if plain_reduction(input, reduction, empty, sample_weight, mask, normalizer):
        return F.smooth_l1_loss(input, target, reduction=reduction, beta=beta)
    r = (input - target).abs()
    if beta == 0:
        per = r
    else:
        quad = r.clamp(max=beta)
        per = 0.5 * quad.square() / beta + (r - quad)
    return reduce(per, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class SmoothL1Loss(LossModule):
    """Module form of :func:`smooth_l1_loss`."""

    fn = staticmethod(smooth_l1_loss)


def _pseudo_huber(x: Tensor, t: Tensor, delta: float) -> Tensor:
    z = (x - t) / delta
    # sqrt(1+z²)-1 = z²/(sqrt(1+z²)+1): no cancellation for small z.
    return delta**2 * z.square() / (torch.sqrt(1 + z.square()) + 1)


def _pseudo_huber_value(x: Tensor, t: Tensor, delta: float) -> Tensor:
    r2 = torch.sub(x, t).square_()
    root = (r2 / delta**2).add_(1.0).sqrt_().add_(1.0)   # sqrt(1+z²) + 1
    return r2.div_(root)


def _pseudo_huber_grad(x: Tensor, t: Tensor, delta: float) -> Tensor:
    r = torch.sub(x, t)
    return torch.addcmul(_ONE, r, r, value=delta**-2).rsqrt_().mul_(r)   # r / sqrt(1+z²)


_PSEUDO_HUBER = ElementwiseKernel("pseudo_huber", _pseudo_huber, _pseudo_huber_value,
                                  _pseudo_huber_grad, target_grad="negate", examples=((1.0,), (0.3,)),
                                  native=lambda delta: ("pseudo_huber", (delta**-2,)))


@register(
    "pseudo_huber",
    family="regression",
    tasks=_TASKS,
    input_kind="prediction",
    target_kind="real",
    aliases=("pseudo_huber_loss", "charbonnier", "charbonnier_loss"),
    properties=Properties(convex=True, smoothness="Cinf", robust="bounded_influence",
                          homogeneity=None, minimizer="pseudo_huber_center",
                          units="target units squared", symmetric=True, zero_at_perfect=True),
    formula=r"\delta^2\left(\sqrt{1 + (r/\delta)^2} - 1\right)",
    references=("Charbonnier et al. 1994", "Hartley & Zisserman 2003 (pseudo-Huber)"),
    peers={"kornia": "kornia.losses.charbonnier_loss (delta=1)"},
    sample=regression_sample(),
    elementwise=True,
)
def pseudo_huber_loss(
    input: Tensor,
    target: Tensor,
    *,
    delta: float = 1.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Pseudo-Huber (Charbonnier) loss, a smooth Huber:
    :math:`\delta^2(\sqrt{1 + (r/\delta)^2} - 1)`.

    ≈ r²/2 for small residuals and ≈ δ|r| for large ones, with every derivative continuous; its
    gradient :math:`r/\sqrt{1 + (r/\delta)^2}` is bounded by δ. With δ = 1 it is kornia's
    ``charbonnier_loss``.

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        delta: the scale where the loss turns from quadratic to linear (> 0).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> r = torch.tensor([1e-3, 1e4], dtype=torch.float64)
        >>> LF.pseudo_huber_loss(r, torch.zeros(2, dtype=torch.float64), reduction="none") / \
        ...     torch.stack([r[0] ** 2 / 2, r[1] - 1])           # quadratic near 0, linear far
        tensor([1.0000, 1.0000], dtype=torch.float64)

    References:
        Charbonnier et al., "Two deterministic half-quadratic regularization algorithms for
        computed imaging", ICIP 1994; Hartley & Zisserman, *Multiple View Geometry*, 2003.
    """
    check_number("delta", delta, low=0, low_open=True)
    input, target = _pair(input, target, broadcast)
    return elementwise_loss(_PSEUDO_HUBER, input, target, (delta,), reduction,
                            sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


class PseudoHuberLoss(LossModule):
    """Module form of :func:`pseudo_huber_loss`."""

    fn = staticmethod(pseudo_huber_loss)


def _log_cosh(x: Tensor, t: Tensor) -> Tensor:
    # |r| + softplus(-2|r|) - log 2 (softplus of a non-positive argument: F.softplus drops its
    # log1p term above 20) holds at any r but, below |r| = 1, loses the small result to the
    # rounding of its terms (12 % relative error at r = 1e-3 in float32); there
    # log1p(2·sinh²(r/2)) = log(1 + (cosh r - 1)) is accurate, and r is zeroed in the branch not
    # taken so that its overflow cannot reach the gradient
    r = x - t
    a = r.abs()
    near = a < 1.0
    half = torch.where(near, r, 0.0) * 0.5
    small = torch.log1p(2.0 * torch.sinh(half) ** 2)
    return torch.where(near, small, a + F.softplus(-2.0 * a) - math.log(2.0))


def _log_cosh_grad(x: Tensor, t: Tensor) -> Tensor:
    return torch.sub(x, t).tanh_()


_LOG_COSH = ElementwiseKernel("log_cosh", _log_cosh, _log_cosh, _log_cosh_grad, target_grad="negate",
                              native=True)


@register(
    "log_cosh",
    family="regression",
    tasks=_TASKS,
    input_kind="prediction",
    target_kind="real",
    aliases=("log_cosh_loss", "logcosh"),
    properties=Properties(convex=True, smoothness="Cinf", robust="bounded_influence",
                          homogeneity=None, minimizer="log_cosh_center", units="target units",
                          symmetric=True, zero_at_perfect=True),
    formula=r"\log\cosh(\hat y - y)",
    references=("Chen et al. 2019 (log-cosh)",),
    peers={"keras": "keras.losses.LogCosh", "optax": "optax.losses.log_cosh"},
    sample=regression_sample(),
    elementwise=True,
)
def log_cosh_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Log-cosh loss, :math:`\log\cosh(r)`: ≈ r²/2 near 0 and ≈ |r| − log 2 far away; gradient
    :math:`\tanh r`.

    Computed as :math:`r + \operatorname{softplus}(-2r) - \log 2`, which equals
    :math:`\log\cosh r` exactly and never evaluates cosh, so a residual of 1e4 gives
    1e4 − log 2 instead of inf.

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import math, torch, losskit.functional as LF
        >>> x = torch.tensor([1e4], dtype=torch.float64, requires_grad=True)
        >>> loss = LF.log_cosh_loss(x, torch.zeros(1, dtype=torch.float64))
        >>> math.isclose(loss.item(), 1e4 - math.log(2)), loss.backward(), x.grad  # |r| − log 2, tanh r
        (True, None, tensor([1.], dtype=torch.float64))
        >>> small = LF.log_cosh_loss(torch.tensor([1e-3]), torch.zeros(1))   # float32: r²/2 − r⁴/12
        >>> math.isclose(small.item(), 5e-7 - 1e-12 / 12, rel_tol=1e-6)
        True

    References:
        Chen, Tong, Zhang & Li, "Log Hyperbolic Cosine Loss Improves Variational Auto-Encoder",
        2019; Keras ``LogCosh``.
    """
    input, target = _pair(input, target, broadcast)
    return elementwise_loss(_LOG_COSH, input, target, (), reduction, sample_weight=sample_weight,
                            mask=mask, normalizer=normalizer, empty=empty)


class LogCoshLoss(LossModule):
    """Module form of :func:`log_cosh_loss`."""

    fn = staticmethod(log_cosh_loss)


def _robust_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False) -> Sample:
    x = draw("real", DEFAULT_SHAPE, gen, dtype, extreme)
    y = draw("real", DEFAULT_SHAPE, gen, dtype, extreme)
    return Sample((x, y), {"alpha": 1.0, "scale": 1.0})


def _robust_of_z2(z2: Tensor, alpha: float) -> Tensor:
    if alpha == 2:
        return 0.5 * z2
    if alpha == 0:
        return torch.log1p(0.5 * z2)
    if alpha == float("-inf"):
        return -torch.expm1(-0.5 * z2)
    b = abs(alpha - 2)
    return b / alpha * torch.expm1(0.5 * alpha * torch.log1p(z2 / b))


def _general_robust(x: Tensor, t: Tensor, alpha: float, scale: float) -> Tensor:
    return _robust_of_z2(((x - t) / scale).square(), alpha)


def _general_robust_value(x: Tensor, t: Tensor, alpha: float, scale: float) -> Tensor:
    z2 = torch.sub(x, t).square_()
    if alpha == 2:
        return z2.mul_(0.5 / scale**2)
    if alpha == 0:
        return z2.mul_(0.5 / scale**2).log1p_()
    if alpha == float("-inf"):
        return z2.mul_(-0.5 / scale**2).expm1_().neg_()
    if alpha == 1:  # sqrt(z²+1) - 1 = z²/(sqrt(z²+1) + 1): one sqrt, no cancellation
        z2.mul_(1.0 / scale**2)
        return z2.div_(z2.add(1.0).sqrt_().add_(1.0))
    b = abs(alpha - 2)
    return z2.mul_(1.0 / (b * scale**2)).log1p_().mul_(0.5 * alpha).expm1_().mul_(b / alpha)


def _general_robust_grad(x: Tensor, t: Tensor, alpha: float, scale: float) -> Tensor:
    # dρ/dr = r/c² · (z²/b + 1)^(α/2 - 1), and its limits at α = 2, 0, -inf.
    r = torch.sub(x, t)
    c2 = scale**2
    if alpha == 2:
        return r.mul_(1.0 / c2)
    if alpha == float("-inf"):
        return torch.mul(r, r).mul_(-0.5 / c2).exp_().mul_(r).mul_(1.0 / c2)
    b = 2.0 if alpha == 0 else abs(alpha - 2)
    base = torch.addcmul(_ONE, r, r, value=1.0 / (b * c2))
    if alpha == 0:
        base.reciprocal_()
    elif alpha == 1:
        base.rsqrt_()
    else:  # log then exp: Tensor.pow_ with a float exponent is several times slower on CPU
        base.log_().mul_(0.5 * alpha - 1.0).exp_()
    return base.mul_(r).mul_(1.0 / c2)


def _general_robust_native(alpha: float, scale: float) -> tuple[str, tuple[float, ...]]:
    closed = {2.0: "a2", 0.0: "a0", float("-inf"): "welsch", 1.0: "a1"}
    # other multiples of ½ in [-2, 2): powers of a fourth root (two square roots, no exp/log)
    halves = {k / 2: f"half_{'m' if k < 0 else ''}{abs(k)}" for k in (-4, -3, -2, -1, 1, 3)}
    variant = closed.get(alpha) or halves.get(alpha, "any")
    b = abs(alpha - 2)
    return f"general_robust_{variant}", (scale**-2, b, alpha, 1.0 / (b * scale**2) if b else 0.0)


_GENERAL_ROBUST = ElementwiseKernel("general_robust", _general_robust, _general_robust_value,
                                    _general_robust_grad, target_grad="negate",
                                    native=_general_robust_native,
                                    examples=((1.0, 1.0), (0.5, 0.7), (2.0, 1.5), (0.0, 1.0),
                                              (-2.0, 1.0), (float("-inf"), 0.8), (3.0, 1.0),
                                              (1.5, 1.2), (-0.5, 0.9), (-1.0, 1.0), (-1.5, 2.0),
                                              (0.75, 1.0)))


@register(
    "general_robust",
    family="regression",
    tasks=_TASKS,
    input_kind="prediction",
    target_kind="real",
    aliases=("general_robust_loss", "barron", "adaptive_robust_loss"),
    properties=Properties(convex=True, smoothness="Cinf", robust="bounded_influence",
                          homogeneity=None, minimizer="robust_center", units="dimensionless",
                          symmetric=True, zero_at_perfect=True),
    formula=(r"\frac{|\alpha-2|}{\alpha}\left(\left(\frac{(r/c)^2}{|\alpha-2|}+1\right)^{\alpha/2}"
             r"-1\right)"),
    references=("Barron 2019",),
    peers={"kornia": "kornia.losses.cauchy_loss (α=0), geman_mcclure_loss (α=−2), "
                     "welsch_loss (α=−∞), charbonnier_loss (α=1)"},
    sample=_robust_sample,
    elementwise=True,
)
def general_robust_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor = 1.0,
    scale: float | Tensor = 1.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Barron's general and adaptive robust loss with shape α and scale c:

    .. math:: \rho(r, \alpha, c) = \frac{|\alpha-2|}{\alpha}\Big(\big(\tfrac{(r/c)^2}{|\alpha-2|}
              + 1\big)^{\alpha/2} - 1\Big)

    Its limits are the classic robust losses: α = 2 → ½(r/c)² (L2); α = 1 →
    :math:`\sqrt{(r/c)^2+1}-1` (pseudo-Huber/Charbonnier); α = 0 → :math:`\log(\tfrac12(r/c)^2+1)`
    (Cauchy/Lorentzian); α = −2 → :math:`2(r/c)^2/((r/c)^2+4)` (Geman–McClure); α → −∞ →
    :math:`1-\exp(-\tfrac12(r/c)^2)` (Welsch). The limits are evaluated in closed form. ``alpha``
    and ``scale`` may be 0-d tensors (learned, as in Barron's adaptive loss); α ≤ 2 keeps the loss
    finite at any residual. The declared properties are those of the default α = 1; for α < 1 the
    loss is not convex and for α ≤ 0 it is redescending.

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        alpha: shape parameter (float in [−inf, inf), or a 0-d tensor).
        scale: c > 0, the residual scale of the quadratic bowl.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.tensor([0.3, 2.0, -5.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        >>> torch.allclose(LF.general_robust_loss(x, y, alpha=2.0), 0.5 * LF.mse_loss(x, y))
        True
        >>> near = LF.general_robust_loss(x, y, alpha=1e-7)          # continuous at α = 0
        >>> torch.allclose(near, torch.log1p(0.5 * x**2).mean(), atol=1e-6)
        True

    References:
        Barron, "A General and Adaptive Robust Loss Function", CVPR 2019.
    """
    input, target = _pair(input, target, broadcast)
    if not isinstance(scale, Tensor):
        check_number("scale", scale, low=0, low_open=True)
    if not isinstance(alpha, Tensor):
        check_number("alpha", alpha)
        if alpha == float("inf"):
            raise LossInputError("alpha=inf is not supported: the loss is infinite for any r ≠ 0.")
    if not isinstance(alpha, Tensor) and not isinstance(scale, Tensor):
        return elementwise_loss(_GENERAL_ROBUST, input, target, (alpha, scale), reduction,
                                sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                                empty=empty)
    z2 = ((input - target) / scale).square()
    if not isinstance(alpha, Tensor):
        per = _robust_of_z2(z2, alpha)
    else:
        a = alpha.to(z2.dtype)
        tiny = torch.finfo(z2.dtype).eps
        b = (a - 2).abs().clamp_min(tiny)
        a_safe = torch.where(a >= 0, 1.0, -1.0) * a.abs().clamp_min(tiny)
        general = b / a_safe * torch.expm1(0.5 * a * torch.log1p(z2 / b))
        per = torch.where(a == 0, torch.log1p(0.5 * z2), torch.where(a == 2, 0.5 * z2, general))
    return reduce(per, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class GeneralRobustLoss(LossModule):
    """Module form of :func:`general_robust_loss`."""

    fn = staticmethod(general_robust_loss)


# --------------------------------------------------------------------------- quantiles


def _quantile_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                     extreme: bool = False) -> Sample:
    x = draw("real", DEFAULT_SHAPE, gen, dtype, extreme)
    y = draw("real", DEFAULT_SHAPE, gen, dtype, extreme)
    return Sample((x, y), {"quantile": 0.8})


def _quantile(x: Tensor, t: Tensor, tau: float | Tensor) -> Tensor:
    r = t - x
    return r * (tau - (r < 0).to(r.dtype))


def _quantile_value(x: Tensor, t: Tensor, tau: float) -> Tensor:
    over = torch.sub(x, t)                                   # -r
    return torch.clamp_min(over, 0.0).sub_(over, alpha=tau)  # τr + max(-r, 0)


def _quantile_total(x: Tensor, t: Tensor, tau: float) -> Tensor:
    return tau * (t.sum() - x.sum()) + torch.sub(x, t).clamp_min_(0.0).sum()


def _quantile_grad(x: Tensor, t: Tensor, tau: float) -> Tensor:
    return torch.gt(x, t).to(x.dtype).sub_(tau)            # -τ + 1[r < 0]


_QUANTILE = ElementwiseKernel("quantile", _quantile, _quantile_value, _quantile_grad,
                              target_grad="negate", total=_quantile_total,
                              native=True,
                              examples=((0.5,), (0.9,), (0.1,)))


@register(
    "quantile",
    family="regression",
    tasks=("regression", "quantile_regression"),
    input_kind="prediction",
    target_kind="real",
    aliases=("quantile_loss", "pinball", "pinball_loss"),
    properties=Properties(convex=True, smoothness="C0", robust="bounded_influence", homogeneity=1,
                          minimizer="quantile", units="target units", symmetric=False,
                          zero_at_perfect=True),
    formula=r"\max(\tau (y-\hat y), (\tau-1)(y-\hat y))",
    references=("Koenker & Bassett 1978",),
    peers={"sklearn": "sklearn.metrics.mean_pinball_loss(alpha=τ)",
           "tfa": "tfa.losses.PinballLoss(tau)"},
    sample=_quantile_sample,
    elementwise=True,
)
def quantile_loss(
    input: Tensor,
    target: Tensor,
    *,
    quantile: float | Tensor = 0.5,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Quantile (pinball) loss for the τ-quantile, with :math:`r = y - \hat y`:

    .. math:: \rho_\tau(r) = \max(\tau r, (\tau - 1) r)

    Under-prediction costs τ per unit, over-prediction 1 − τ, so the minimiser is the
    τ-quantile (τ = 0.5: half the absolute error). Equal to scikit-learn's
    ``mean_pinball_loss(alpha=τ)``.

    Several quantiles at once: pass ``quantile`` as a tensor of shape ``(Q,)`` and ``input`` of
    shape ``(*, Q)``; ``target`` is then ``(*)`` (or ``(*, Q)``) and each column is scored at
    its own τ. The gradient at a zero residual is −τ (a subgradient).

    Args:
        input: predictions ``(*)``, or ``(*, Q)`` with a tensor of quantiles.
        target: ``(*)``; with several quantiles ``(*)`` or ``(*, Q)``.
        quantile: τ in (0, 1), or a ``(Q,)`` tensor of them.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` → scalar, or ``(*)`` (``(*, Q)`` with several quantiles) for ``"none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.zeros(1)
        >>> LF.quantile_loss(torch.tensor([-1.0]), y, quantile=0.9)  # under-predicting costs τ
        tensor(0.9000)
        >>> LF.quantile_loss(torch.tensor([1.0]), y, quantile=0.9)   # over-predicting 1 − τ
        tensor(0.1000)

    References:
        Koenker & Bassett, "Regression Quantiles", Econometrica 1978.
    """
    check_floating("input", input)
    if isinstance(quantile, Tensor):
        if quantile.ndim != 1:
            raise LossInputError(
                f"quantile as a tensor must have shape (Q,), got {shape_str(quantile)}. "
                "Fix: pass a float for one quantile or a 1-D tensor of quantiles."
            )
        q_count = quantile.shape[0]
        if input.ndim == 0 or input.shape[-1] != q_count:
            raise LossInputError(
                f"input has shape {shape_str(input)} but {q_count} quantiles were given; the "
                f"last dim of input must be Q={q_count}. Fix: predict one column per quantile."
            )
        if target.shape == input.shape[:-1]:
            target = target.unsqueeze(-1).expand(input.shape)
        if is_debug() and not bool(((quantile > 0) & (quantile < 1)).all()):
            raise LossInputError(f"every quantile must lie in (0, 1), got {quantile.tolist()}.")
        tau: float | Tensor = quantile.to(input.dtype if input.dtype == torch.float64 else
                                          torch.float32)
    else:
        check_number("quantile", quantile, low=0, high=1, low_open=True, high_open=True)
        tau = quantile
    input, target = _pair(input, target, broadcast)
    return elementwise_loss(_QUANTILE, input, target, (tau,), reduction, sample_weight=sample_weight,
                            mask=mask, normalizer=normalizer, empty=empty)


class QuantileLoss(LossModule):
    """Module form of :func:`quantile_loss`."""

    fn = staticmethod(quantile_loss)


# --------------------------------------------------------------------------- relative errors


@register(
    "mape",
    family="regression",
    tasks=("regression", "relative_error"),
    input_kind="prediction",
    target_kind="nonzero real",
    aliases=("mape_loss", "mean_absolute_percentage_error"),
    properties=Properties(convex=True, smoothness="C0", robust="bounded_influence", homogeneity=0,
                          minimizer="weighted_median", units="fraction of the target",
                          symmetric=True, zero_at_perfect=True),
    formula=r"|\hat y - y| / \max(|y|, \epsilon)",
    references=("de Myttenaere et al. 2016",),
    peers={"sklearn": "sklearn.metrics.mean_absolute_percentage_error",
           "keras": "keras.losses.MeanAbsolutePercentageError (percent=True, eps=1e-7)"},
    sample=regression_sample(target="positive", input="positive"),
    elementwise=True,
    skip={"extremes": "at target 0 the loss is |ŷ|/ε by definition (finite, huge); "
                      "tested in test_regression.py"},
)
def mape_loss(
    input: Tensor,
    target: Tensor,
    *,
    eps: float = 2.220446049250313e-16,
    percent: bool = False,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Mean absolute percentage error, :math:`|\hat y - y| / \max(|y|, \epsilon)`.

    Scale-free (homogeneous of degree 0). At ``target == 0`` the denominator is ε, so the loss is
    the finite but huge :math:`|\hat y|/\epsilon` (scikit-learn's behaviour with its default ε, the
    float64 machine epsilon): mask such targets out, or use :func:`smape_loss`. ``percent=True``
    multiplies by 100 (Keras' ``MeanAbsolutePercentageError``, which uses ε = 1e-7).

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        eps: lower bound of the denominator.
        percent: report percent (×100) instead of a fraction.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([1.0, 10.0, 100.0])
        >>> LF.mape_loss(1.1 * y, y)            # 10 % off everywhere, whatever the scale
        tensor(0.1000)

    References:
        de Myttenaere, Golden, Le Grand & Rossi, "Mean Absolute Percentage Error for regression
        models", Neurocomputing 2016.
    """
    check_number("eps", eps, low=0, low_open=True)
    input, target = _pair(input, target, broadcast)
    return elementwise_loss(_MAPE, input, target, (eps, 100.0 if percent else 1.0), reduction,
                            sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


def _mape(x: Tensor, t: Tensor, eps: float, scale: float) -> Tensor:
    return scale * (x - t).abs() / t.abs().clamp_min(eps)


_MAPE = ElementwiseKernel(
    "mape",
    reference=_mape,
    value=lambda x, t, eps, scale: torch.sub(x, t).abs_().div_(t.abs().clamp_min_(eps)).mul_(scale),
    grad=lambda x, t, eps, scale: torch.sub(x, t).sign_().div_(t.abs().clamp_min_(eps)).mul_(scale),
    examples=((2.220446049250313e-16, 1.0), (0.5, 100.0)),
    native=True,
)


class MAPELoss(LossModule):
    """Module form of :func:`mape_loss`."""

    fn = staticmethod(mape_loss)


@register(
    "smape",
    family="regression",
    tasks=("regression", "relative_error"),
    input_kind="prediction",
    target_kind="real",
    aliases=("smape_loss", "symmetric_mape"),
    properties=Properties(convex=False, smoothness="C0", robust="redescending", homogeneity=0,
                          minimizer=None, units="fraction in [0, 2]", symmetric=False,
                          zero_at_perfect=True),
    formula=r"2|\hat y - y| / \max(|y| + |\hat y|, \epsilon)",
    references=("Makridakis 1993", "Hyndman & Koehler 2006"),
    sample=regression_sample(),
    elementwise=True,
)
def smape_loss(
    input: Tensor,
    target: Tensor,
    *,
    eps: float = 1e-12,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Symmetric MAPE, :math:`2|\hat y - y| / (|y| + |\hat y|)`, bounded in [0, 2].

    Defined (as 0) where prediction and target are both 0; the denominator is floored at ε.
    Not convex, and its gradient vanishes for huge errors (redescending).

    Args:
        input: predictions, any shape.
        target: same shape as ``input``.
        eps: lower bound of the denominator.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> LF.smape_loss(torch.tensor([0.0, 1e9]), torch.tensor([0.0, 1.0]), reduction="none")
        tensor([0., 2.])

    References:
        Makridakis, "Accuracy measures: theoretical and practical concerns", IJF 1993;
        Hyndman & Koehler, "Another look at measures of forecast accuracy", IJF 2006.
    """
    check_number("eps", eps, low=0, low_open=True)
    input, target = _pair(input, target, broadcast)
    return elementwise_loss(_SMAPE, input, target, (eps,), reduction, sample_weight=sample_weight,
                            mask=mask, normalizer=normalizer, empty=empty)


def _smape(x: Tensor, t: Tensor, eps: float) -> Tensor:
    return 2.0 * (x - t).abs() / (x.abs() + t.abs()).clamp_min(eps)


def _smape_grad(x: Tensor, t: Tensor, eps: float) -> Tensor:
    # 2·sign(r)/D - 2|r|·sign(x)/D², D = max(|x| + |t|, ε); the floor passes no gradient below ε
    total = torch.abs(x).add_(t.abs())
    live = torch.ge(total, eps).to(x.dtype)
    denom = total.clamp_min_(eps).reciprocal_()
    r = torch.sub(x, t)
    quotient = torch.abs(r).mul_(denom).mul_(live).mul_(torch.sign(x))
    return r.sign_().sub_(quotient).mul_(denom).mul_(2.0)


_SMAPE = ElementwiseKernel(
    "smape",
    reference=_smape,
    value=lambda x, t, eps: torch.sub(x, t).abs_().mul_(2.0).div_(torch.abs(x).add_(t.abs()).clamp_min_(eps)),
    grad=_smape_grad,
    examples=((1e-12,), (0.5,)),
    native=True,
)


class SMAPELoss(LossModule):
    """Module form of :func:`smape_loss`."""

    fn = staticmethod(smape_loss)


@register(
    "msle",
    family="regression",
    tasks=("regression", "relative_error"),
    input_kind="prediction",
    target_kind="nonnegative",
    aliases=("msle_loss", "mean_squared_log_error"),
    properties=Properties(convex=False, smoothness="Cinf", robust="redescending",
                          homogeneity=None, minimizer="log1p_mean", units="log units squared",
                          symmetric=False, zero_at_perfect=True),
    formula=r"(\log(1 + \hat y) - \log(1 + y))^2",
    references=("Keras MeanSquaredLogarithmicError",),
    peers={"keras": "keras.losses.MeanSquaredLogarithmicError",
           "sklearn": "sklearn.metrics.mean_squared_log_error"},
    sample=regression_sample(target="nonnegative", input="nonnegative"),
    elementwise=True,
)
def msle_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Mean squared logarithmic error, :math:`(\log(1+\hat y) - \log(1+y))^2`.

    Penalises relative rather than absolute error for non-negative quantities. Negative values
    are clamped to 0 before the log (as Keras does), so a prediction below −1 gives a finite
    loss with zero gradient instead of NaN.

    Args:
        input: non-negative predictions, any shape.
        target: non-negative targets, same shape as ``input``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([1e2, 1e5], dtype=torch.float64)
        >>> LF.msle_loss(2 * y + 1, y, reduction="none")      # ×2 costs (log 2)² at any scale
        tensor([0.4805, 0.4805], dtype=torch.float64)

    References:
        Keras ``MeanSquaredLogarithmicError``; scikit-learn ``mean_squared_log_error``.
    """
    input, target = _pair(input, target, broadcast)
    return elementwise_loss(_MSLE, input, target, (), reduction, sample_weight=sample_weight, mask=mask,
                            normalizer=normalizer, empty=empty)


def _msle(x: Tensor, t: Tensor) -> Tensor:
    return (torch.log1p(x.clamp_min(0)) - torch.log1p(t.clamp_min(0))).square()


def _msle_log_ratio(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(log1p(x⁺) - log1p(t⁺), 1/(1 + x⁺))`` of a chunk, the first as ``log u`` for the quotient
    ``u = (1 + x⁺)/(1 + t⁺)`` plus, where ``u`` is in [1/2, 2], the rounding ``v - (u - 1)`` of
    ``v = (x⁺ - t⁺)/(1 + t⁺)``: one log, no cancellation when x ≈ t (where ``log1p(v)`` alone would
    do) nor when t ≫ x (where ``v`` rounds to -1 and ``log1p(v)`` to -inf)."""
    xp, tp = torch.clamp_min(x, 0.0), torch.clamp_min(t, 0.0)
    q = torch.add(tp, 1.0).reciprocal_()
    v = tp.neg_().add_(xp).mul_(q)
    one_plus_x = xp.add_(1.0)
    u = torch.mul(one_plus_x, q)
    exact = (u >= 0.5) & (u <= 2.0)
    d = torch.where(exact, v.sub_(torch.sub(u, 1.0)), 0.0).add_(u.log_())
    return d, one_plus_x.reciprocal_()


def _msle_grad(x: Tensor, t: Tensor) -> Tensor:
    d, inv = _msle_log_ratio(x, t)
    return torch.where(x >= 0, d.mul_(inv).mul_(2.0), 0.0)   # clamp_min(0) passes at x ≥ 0 only


_MSLE = ElementwiseKernel(
    "msle",
    reference=_msle,
    value=lambda x, t: _msle_log_ratio(x, t)[0].square_(),
    grad=_msle_grad,
    target="nonnegative",
    native=True,
)


class MSLELoss(LossModule):
    """Module form of :func:`msle_loss`."""

    fn = staticmethod(msle_loss)


# --------------------------------------------------------------------------- likelihoods


def _poisson_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    n = torch.randn(DEFAULT_SHAPE, generator=gen, dtype=torch.float64)
    log_rate = n * (30.0 if extreme else 1.0)
    counts = draw("count", DEFAULT_SHAPE, gen, torch.float64)
    if extreme:
        counts = torch.where(n > 0, counts * 1e4, torch.zeros(()))
    return Sample((log_rate.to(dtype), counts.to(dtype)), {})


@register(
    "poisson_nll",
    family="regression",
    tasks=("regression", "count_regression"),
    input_kind="log_rate",
    target_kind="count",
    aliases=("poisson_nll_loss", "poisson"),
    properties=Properties(convex=True, smoothness="Cinf", robust="none", homogeneity=None,
                          minimizer="mean", units="nats", symmetric=False,
                          zero_at_perfect=False),
    formula=r"e^{\hat x} - y\,\hat x \quad (+\ \text{Stirling}(y) \text{ if full})",
    references=("McCullagh & Nelder 1989 (GLMs)",),
    peers={"torch": "torch.nn.functional.poisson_nll_loss",
           "keras": "keras.losses.Poisson (log_input=False, eps=1e-7)",
           "sklearn": "sklearn.metrics.mean_poisson_deviance (deviance form)"},
    sample=_poisson_sample,
    elementwise=True,
)
def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Poisson negative log-likelihood of counts ``target`` given a rate.

    With ``log_input=True`` (default) ``input`` is the log-rate and
    :math:`\ell = e^{x} - y x`; otherwise ``input`` is the rate λ and
    :math:`\ell = \lambda - y\log(\lambda + \epsilon)`. ``full=True`` adds the Stirling
    approximation of :math:`\log y!` for ``y > 1``. Drop-in for
    ``torch.nn.functional.poisson_nll_loss`` (same numbers).

    Args:
        input: log-rates (or rates with ``log_input=False``), any shape.
        target: counts, same shape as ``input``.
        log_input: whether ``input`` is a log-rate.
        full: add :math:`y\log y - y + \tfrac12\log(2\pi y)` for y > 1.
        eps: added to the rate inside the log when ``log_input=False``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([0.0, 1.0, 4.0, 9.0])
        >>> x = torch.zeros(4, requires_grad=True)
        >>> LF.poisson_nll_loss(x, y, reduction="sum").backward()
        >>> x.grad.sum()                      # the optimal constant log-rate is log(mean(y))
        tensor(-10.)

    References:
        McCullagh & Nelder, *Generalized Linear Models*, 1989.
    """
    check_number("eps", eps, low=0)
    input, target = _pair(input, target, broadcast)
    if log_input:
        per = torch.exp(input) - target * input
    else:
        per = input - target * torch.log(input + eps)
    if full:
        big = target > 1
        safe = torch.where(big, target, 2.0)
        stirling = safe * torch.log(safe) - safe + 0.5 * torch.log(2 * math.pi * safe)
        per = per + torch.where(big, stirling, 0.0)
    return reduce(per, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class PoissonNLLLoss(LossModule):
    """Module form of :func:`poisson_nll_loss`."""

    fn = staticmethod(poisson_nll_loss)


def _gaussian_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                     extreme: bool = False) -> Sample:
    x = draw("real", DEFAULT_SHAPE, gen, dtype, extreme)
    y = draw("real", DEFAULT_SHAPE, gen, dtype, extreme)
    var = draw("variance", DEFAULT_SHAPE, gen, dtype, extreme)
    return Sample((x, y, var), {}, grad=(0, 2))


@register(
    "gaussian_nll",
    family="regression",
    tasks=("regression", "heteroscedastic_regression"),
    input_kind="prediction",
    target_kind="real",
    aliases=("gaussian_nll_loss", "heteroscedastic"),
    properties=Properties(convex=True, smoothness="Cinf", robust="none", homogeneity=None,
                          minimizer="mean", units="nats", symmetric=True, zero_at_perfect=False),
    formula=r"\tfrac12\left(\log\max(\sigma^2,\epsilon) + (\hat y - y)^2/\max(\sigma^2,\epsilon)\right)",
    references=("Nix & Weigend 1994",),
    peers={"torch": "torch.nn.functional.gaussian_nll_loss"},
    sample=_gaussian_sample,
    elementwise=True,
    skip={"bad_shape": "var may legitimately have one dim less (PyTorch's convention); "
                       "shape errors tested in test_regression.py"},
)
def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var: Tensor | float,
    *,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Gaussian negative log-likelihood with a predicted variance (heteroscedastic regression):

    .. math:: \ell = \tfrac12\big(\log v + (\hat y - y)^2 / v\big), \quad v = \max(\sigma^2, \epsilon)

    plus ½·log 2π when ``full``. Drop-in for ``torch.nn.functional.gaussian_nll_loss``: ``var``
    has the shape of ``input``, or that shape with the last dim 1 or dropped (one variance shared
    over the last dim); the clamp at ε passes the gradient straight through, as in PyTorch.

    Args:
        input: predicted means ``(N, *)``.
        target: same shape as ``input``.
        var: predicted variances (positive): ``input``'s shape, ``(N, *, 1)``, ``(N, *[:-1])``,
            or a float.
        full: include the constant ½·log 2π.
        eps: lower clamp of the variance.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.zeros(3), torch.tensor([1.0, -1.0, 2.0])
        >>> LF.mse_loss(x, y)                                    # the best variance is the MSE
        tensor(2.)
        >>> [round(LF.gaussian_nll_loss(x, y, torch.full((3,), v)).item(), 4) for v in (1., 2., 4.)]
        [1.0, 0.8466, 0.9431]

    References:
        Nix & Weigend, "Estimating the mean and variance of the target probability
        distribution", ICNN 1994.
    """
    check_number("eps", eps, low=0, low_open=True)
    input, target = _pair(input, target, broadcast)
    if not isinstance(var, Tensor):
        check_number("var", var, low=0, low_open=True)
        var = torch.full_like(input, float(var))
    check_floating("var", var)
    (var,) = as_float32(var)
    if var.shape != input.shape:
        if var.shape == input.shape[:-1]:
            var = var.unsqueeze(-1)
        elif not (var.ndim == input.ndim and var.shape[:-1] == input.shape[:-1]
                  and var.shape[-1] == 1):
            raise LossInputError(
                f"var has shape {shape_str(var)} but input has shape {shape_str(input)}; var must "
                f"have input's shape, {shape_str(input.shape[:-1] + (1,))} or "
                f"{shape_str(input.shape[:-1])}. Fix: predict one variance per element or per row."
            )
        var = var.expand(input.shape)
    if is_debug() and bool((var < 0).any()):
        raise LossInputError("var has negative entries; variances must be positive.")
    per = _GaussianNLL.apply(input, target, var, eps)
    if full:
        per = per + 0.5 * math.log(2 * math.pi)
    return reduce(per, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class _GaussianNLL(torch.autograd.Function):
    """½(log v + r²/v) with v = max(var, eps); saves only its inputs. The clamp passes the
    gradient straight through, as PyTorch's clamp under no_grad does. Temporaries are updated
    in place; under ``create_graph`` the backward uses out-of-place ops, so double backward
    works."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, input: Tensor, target: Tensor,
                var: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(input, target, var)
        ctx.eps = eps  # type: ignore[attr-defined]
        v = var.clamp_min(eps)
        quad = (input - target).square_().div_(v)
        return v.log_().add_(quad).mul_(0.5)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: Tensor) -> tuple[Tensor | None, ...]:
        input, target, var = ctx.saved_tensors  # type: ignore[attr-defined]
        v = var.clamp_min(ctx.eps)  # type: ignore[attr-defined]
        if torch.is_grad_enabled():  # create_graph: keep every op differentiable
            z = (input - target) / v
            grad_input = grad * z
            return grad_input, -grad_input, 0.5 * grad * (1.0 / v - z.square()), None
        z = (input - target).div_(v)
        grad_var = v.reciprocal_().sub_(z.square()).mul_(0.5 * grad)
        grad_input = z.mul_(grad)
        return grad_input, -grad_input, grad_var, None


class GaussianNLLLoss(LossModule):
    """Module form of :func:`gaussian_nll_loss`."""

    fn = staticmethod(gaussian_nll_loss)


def _tweedie_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    mu = draw("positive", DEFAULT_SHAPE, gen, dtype, extreme)
    y = draw("count", DEFAULT_SHAPE, gen, dtype)
    if extreme:
        y = y * 1e3
    return Sample((mu, y), {"power": 1.5})


@register(
    "tweedie_deviance",
    family="regression",
    tasks=("regression", "count_regression", "positive_regression"),
    input_kind="mean",
    target_kind="nonnegative",
    aliases=("tweedie_deviance_loss", "tweedie"),
    properties=Properties(convex=False, smoothness="Cinf", robust=None, homogeneity=0.5,
                          minimizer="mean", units="deviance", symmetric=False,
                          zero_at_perfect=True),
    formula=(r"2\left(\frac{y^{2-p}}{(1-p)(2-p)} - \frac{y\mu^{1-p}}{1-p} + "
             r"\frac{\mu^{2-p}}{2-p}\right)"),
    references=("Jørgensen 1987", "Tweedie 1984"),
    peers={"sklearn": "sklearn.metrics.mean_tweedie_deviance(power=p)"},
    sample=_tweedie_sample,
    elementwise=True,
)
def tweedie_deviance_loss(
    input: Tensor,
    target: Tensor,
    *,
    power: float = 1.5,
    log_input: bool = False,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    broadcast: bool = False,
) -> Tensor:
    r"""Tweedie deviance of a predicted mean μ for power p (p = 0 squared error, p = 1 Poisson,
    p = 2 Gamma, 1 < p < 2 compound Poisson–Gamma for zero-inflated positive data):

    .. math:: d_p(y, \mu) = 2\Big(\frac{y^{2-p}}{(1-p)(2-p)} - \frac{y\mu^{1-p}}{1-p}
              + \frac{\mu^{2-p}}{2-p}\Big)

    with the closed forms at p = 1 (:math:`2(y\log(y/\mu) - y + \mu)`, 0·log 0 = 0) and p = 2
    (:math:`2(\log(\mu/y) + y/\mu - 1)`). Equal to scikit-learn's ``mean_tweedie_deviance``.
    ``log_input=True`` takes ``input`` as log μ (the usual log link, convex in it).
    Homogeneous of degree 2 − p (the declared 0.5 is for the default p = 1.5).

    Args:
        input: predicted means μ > 0 (or log μ with ``log_input``), any shape.
        target: y ≥ 0 (y > 0 for p ≥ 2), same shape as ``input``.
        power: p ≤ 0 or p ≥ 1.
        log_input: whether ``input`` is log μ.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty
        broadcast: allow ``input`` and ``target`` to broadcast.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> mu, y = torch.tensor([2.0, 3.0]), torch.tensor([1.0, 5.0])
        >>> LF.tweedie_deviance_loss(mu, y, power=0) == LF.mse_loss(mu, y)
        tensor(True)
        >>> LF.tweedie_deviance_loss(y, y, power=1.5)           # zero at a perfect prediction
        tensor(0.)

    References:
        Jørgensen, "Exponential dispersion models", JRSS-B 1987; Tweedie, "An index which
        distinguishes between some important exponential families", 1984.
    """
    check_number("power", power)
    if 0 < power < 1:
        raise LossInputError(
            f"power={power!r}: no Tweedie distribution has 0 < p < 1. Fix: use p ≤ 0 or p ≥ 1 "
            "(0 squared error, 1 Poisson, 2 Gamma, 1 < p < 2 compound Poisson–Gamma)."
        )
    input, target = _pair(input, target, broadcast)
    return elementwise_loss(_TWEEDIE, input, target, (float(power), float(log_input)), reduction,
                            sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


def _tweedie(x: Tensor, y: Tensor, p: float, log_input: float) -> Tensor:
    mu = torch.exp(x) if log_input else x
    if p == 0:
        return (y - mu).square()
    if p == 1:
        return 2 * (torch.xlogy(y, y) - y * torch.log(mu) - y + mu)
    if p == 2:
        return 2 * (torch.log(mu / y) + y / mu - 1)
    return 2 * (y.clamp_min(0).pow(2 - p) / ((1 - p) * (2 - p))
                - y * mu.pow(1 - p) / (1 - p) + mu.pow(2 - p) / (2 - p))


def _tweedie_grad(x: Tensor, y: Tensor, p: float, log_input: float) -> Tensor:
    # dD/dμ = 2·μ^(-p)·(μ - y) for every p, times dμ/dx = μ with log_input
    mu = torch.exp(x) if log_input else x
    if p == 0:
        d = torch.sub(mu, y).mul_(2.0)
    elif p == 1:
        d = torch.div(y, mu).neg_().add_(1.0).mul_(2.0)
    elif p == 2:
        d = torch.sub(mu, y).div_(mu).div_(mu).mul_(2.0)
    else:
        d = torch.pow(mu, -p).mul_(torch.sub(mu, y)).mul_(2.0)
    return d.mul_(mu) if log_input else d


# Powers with a closed form of their own in the C kernels (p = 1.5: square roots).
_TWEEDIE_FORMS = {0.0: "p0", 1.0: "p1", 1.5: "p15", 2.0: "p2"}

_TWEEDIE = ElementwiseKernel(
    "tweedie_deviance",
    reference=_tweedie,
    value=_tweedie,
    grad=_tweedie_grad,
    examples=((1.5, 0.0), (1.5, 1.0), (0.0, 0.0), (1.0, 0.0), (2.0, 1.0), (3.0, 0.0), (1.2, 1.0),
              (-1.0, 0.0)),
    target="positive",
    input="positive",
    native=lambda p, log_input: (
        f"tweedie_{_TWEEDIE_FORMS.get(p, 'any')}{'_log' if log_input else ''}",
        (p, log_input, 1 / ((1 - p) * (2 - p)) if p not in (1, 2) else 0.0)),
)


class TweedieDevianceLoss(LossModule):
    """Module form of :func:`tweedie_deviance_loss`."""

    fn = staticmethod(tweedie_deviance_loss)
