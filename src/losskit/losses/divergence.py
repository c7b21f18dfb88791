"""Divergences and distances between distributions: KL (PyTorch's ``kl_div`` and the
unambiguous two-logit form), Jensen–Shannon, the 1-D Wasserstein (EMD) distance between
histograms, cosine similarity/distance, the kernel MMD and entropic optimal transport
(Sinkhorn).

Row losses (one value per distribution along ``dim``) take the shared options
``reduction``, ``sample_weight``, ``mask``, ``normalizer`` and ``empty`` over the rows;
``"batchmean"`` (the sum divided by the size of the first dimension) is offered wherever it
is PyTorch's "true KL" convention. Set losses (MMD, Sinkhorn) compare two samples of points
and give one value per batch entry.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_floating,
    check_logits_not_probabilities,
    check_number,
    check_option,
    check_probabilities,
    check_same_shape,
    is_debug,
    shape_str,
)
from losskit._core.fused import ElementwiseKernel, elementwise_loss
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register

__all__ = [
    "CosineDistanceLoss",
    "CosineSimilarityLoss",
    "JSDivergence",
    "KLDivLoss",
    "KLDivergenceWithLogits",
    "MMDLoss",
    "SinkhornLoss",
    "Wasserstein1DLoss",
    "cosine_distance_loss",
    "cosine_similarity_loss",
    "js_divergence",
    "kl_div",
    "kl_divergence_with_logits",
    "mmd_loss",
    "sinkhorn_loss",
    "wasserstein_1d_loss",
]

_WITH_BATCHMEAN = ("none", "mean", "sum", "batchmean")
_SET_REDUCTIONS = ("none", "mean", "sum")
_SHAPE = (6, 5)


# --------------------------------------------------------------------------- helpers


def _kl_terms(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Elementwise p·(log p − log q) with p = exp(log p), and 0 wherever p = 0 — in the value
    and in the gradient, even when log p or log q is −inf there (double where)."""
    p = log_p.exp()
    keep = p > 0
    lp = torch.where(keep, log_p, 0.0)
    lq = torch.where(keep, log_q, 0.0)
    return torch.where(keep, p * (lp - lq), 0.0)


def _row_reduce(loss: Tensor, reduction: str, sample_weight: Tensor | None, mask: Tensor | None,
                normalizer: float | Tensor | None, empty: str) -> Tensor:
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty, allowed=_WITH_BATCHMEAN)


def _pair(input: Tensor, target: Tensor, names: tuple[str, str] = ("input", "target")
          ) -> tuple[Tensor, Tensor]:
    check_floating(names[0], input)
    check_floating(names[1], target)
    check_same_shape(input, target, names)
    a, b = as_float32(input, target)
    if a.dtype != b.dtype:
        dtype = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(dtype), b.to(dtype)
    return a, b


def _check_dim(dim: int, x: Tensor, name: str) -> None:
    if not isinstance(dim, int) or not -x.ndim <= dim < max(x.ndim, 1) or x.ndim == 0:
        raise LossInputError(
            f"dim={dim!r} is not a dimension of {name} with shape {shape_str(x)}. "
            f"Fix: pass the dimension that holds the distribution (default -1)."
        )


def _logits_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False) -> Sample:
    scale = 1e4 if extreme else 1.0
    x = torch.randn(_SHAPE, generator=gen, dtype=torch.float64) * scale
    y = torch.randn(_SHAPE, generator=gen, dtype=torch.float64) * scale
    return Sample((x.to(dtype), y.to(dtype)))


def _logprob_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    scale = 1e4 if extreme else 1.0
    x = torch.log_softmax(torch.randn(_SHAPE, generator=gen, dtype=torch.float64) * scale, -1)
    y = torch.softmax(torch.randn(_SHAPE, generator=gen, dtype=torch.float64) * scale, -1)
    return Sample((x.to(dtype), y.to(dtype)))


def _histogram_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                      extreme: bool = False) -> Sample:
    scale = 1e4 if extreme else 1.0
    x = torch.softmax(torch.randn(_SHAPE, generator=gen, dtype=torch.float64) * scale, -1)
    y = torch.softmax(torch.randn(_SHAPE, generator=gen, dtype=torch.float64) * scale, -1)
    return Sample((x.to(dtype), y.to(dtype)))


def _vector_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False) -> Sample:
    x = torch.randn(_SHAPE, generator=gen, dtype=torch.float64)
    y = torch.randn(_SHAPE, generator=gen, dtype=torch.float64)
    if extreme:
        x = x * 1e4
        y = y * 1e-4
        x[0] = 0.0  # a zero vector
    return Sample((x.to(dtype), y.to(dtype)))


def _points_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False, **kwargs: object) -> Sample:
    x = torch.randn(2, 7, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 6, 3, generator=gen, dtype=torch.float64) + 0.5
    if extreme:
        x, y = x * 1e4, y * 1e4
    return Sample((x.to(dtype), y.to(dtype)), dict(kwargs), grad=(0, 1))


# --------------------------------------------------------------------------- KL


@register(
    "kl_div",
    family="divergence",
    tasks=("distribution matching", "distillation"),
    input_kind="log_probabilities",
    target_kind="probabilities",
    aliases=("kl_div_loss", "kld"),
    properties=Properties(convex=True, smoothness="Cinf", robust=None, homogeneity=None,
                          units="nats", zero_at_perfect=True),
    formula=r"\ell = y\,(\log y - x)\quad(0\log 0 = 0)",
    references=("Kullback & Leibler 1951",),
    peers={"torch": "torch.nn.functional.kl_div", "keras": "keras.losses.KLDivergence",
           "optax": "optax.losses.kl_divergence", "scipy": "scipy.special.rel_entr"},
    sample=_logprob_sample,
    elementwise=True,
)
def kl_div(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    log_target: bool = False,
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Pointwise Kullback–Leibler terms :math:`y(\log y - x)`, a drop-in for
    ``torch.nn.functional.kl_div``: ``input`` holds log-probabilities, ``target`` probabilities
    (or log-probabilities with ``log_target=True``); summed over the classes this is
    :math:`\mathrm{KL}(\text{target} \,\|\, \text{input})`.

    ``reduction="batchmean"`` (sum / batch size) is the KL averaged over the samples.
    ``reduction="mean"`` divides by the number of *elements* (batch × classes), exactly as
    PyTorch does; that is not the KL, so it warns (use ``"batchmean"``, or
    :func:`kl_divergence_with_logits` which is unambiguous). :math:`0\log 0 = 0`: zero target
    entries contribute nothing to the value or to either gradient, even where ``input`` is
    −inf.

    Args:
        input: log-probabilities, any shape (classes usually last).
        target: probabilities (log-probabilities with ``log_target=True``), same shape.
        reduction: ``"none"`` | ``"batchmean"`` (Σ / ``input.shape[0]``, the KL per sample) |
            ``"sum"`` | ``"mean"`` (Σ / number of elements, PyTorch's; warns). With weights or a
            mask, ``"mean"`` is Σ m·w·ℓ / Σ m·w and ``"batchmean"`` is Σ m·w·ℓ / N.
        log_target: ``target`` holds log-probabilities.
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> p = torch.tensor([[0.5, 0.5, 0.0]])
        >>> q = torch.tensor([[0.25, 0.25, 0.5]])
        >>> LF.kl_div(q.log(), p, reduction="batchmean")     # KL(p || q) = log 2
        tensor(0.6931)
        >>> LF.kl_div(p.log(), p, reduction="batchmean")     # 0·log 0 = 0
        tensor(0.)

    References:
        Kullback & Leibler, "On Information and Sufficiency", Ann. Math. Statist. 1951.
    """
    check_option("reduction", reduction, _WITH_BATCHMEAN)
    input, target = _pair(input, target)
    if reduction == "mean" and not torch.compiler.is_compiling():
        warnings.warn(
            "kl_div(reduction='mean') divides by the number of elements (batch × classes), "
            "which is not the KL divergence (PyTorch's behaviour, kept for compatibility). "
            "Use reduction='batchmean' for the KL per sample.",
            UserWarning,
            stacklevel=2,
        )
    if is_debug() and input.numel() > 1 and bool((input >= 0).all()):
        warnings.warn(
            "kl_div: input holds only non-negative values but must hold log-probabilities "
            "(e.g. logits.log_softmax(-1)); the arguments are (input log-probs, target probs).",
            stacklevel=2,
        )
    if not log_target:
        check_probabilities(target, "target")
    return elementwise_loss(_KL_LOG_TARGET if log_target else _KL, input, target, (), reduction,
                            sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty,
                            allowed=_WITH_BATCHMEAN)


def _kl_probability_terms(x: Tensor, y: Tensor) -> Tensor:
    """y·(log y − x), and 0 wherever y ≤ 0 — in the value and both gradients (double where)."""
    keep = y > 0
    return torch.where(keep, y * (torch.where(keep, y, 1.0).log() - torch.where(keep, x, 0.0)), 0.0)


def _kl_probability_grad_target(x: Tensor, y: Tensor) -> Tensor:
    keep = y > 0
    return torch.where(keep, torch.where(keep, y, 1.0).log().sub_(x).add_(1.0), 0.0)


def _kl_log_target_grad(x: Tensor, t: Tensor) -> Tensor:
    p = torch.exp(t)
    return torch.where(p > 0, p.neg(), 0.0)


def _kl_log_target_grad_target(x: Tensor, t: Tensor) -> Tensor:
    p = torch.exp(t)
    return torch.where(p > 0, (t - x).add_(1.0).mul_(p), 0.0)


# Fused forms (losskit._core.fused): the terms, -y for the input's gradient and log y - x + 1 for
# the target's, each 0 where y ≤ 0 (a NaN target included, as through the reference's where);
# with log_target the same of y = e^t.
_KL = ElementwiseKernel(
    "kl_div",
    reference=_kl_probability_terms,
    value=_kl_probability_terms,
    grad=lambda x, y: torch.where(y > 0, y.neg(), 0.0),
    grad_target=_kl_probability_grad_target,
    target_grad="own",
    target="unit",
    native=True,
)
_KL_LOG_TARGET = ElementwiseKernel(
    "kl_div_log",
    reference=lambda x, t: _kl_terms(t, x),
    value=lambda x, t: _kl_terms(t, x),
    grad=_kl_log_target_grad,
    grad_target=_kl_log_target_grad_target,
    target_grad="own",
    target="log_probability",
    native=True,
)


class KLDivLoss(LossModule):
    """Module form of :func:`kl_div`."""

    fn = staticmethod(kl_div)


@register(
    "kl_divergence_with_logits",
    family="divergence",
    tasks=("distribution matching", "distillation"),
    input_kind="logits",
    target_kind="logits",
    aliases=("kl_with_logits",),
    properties=Properties(convex=True, smoothness="Cinf", robust=None, homogeneity=None,
                          units="nats", zero_at_perfect=True),
    formula=(r"\ell = \sum_c q_c(\log q_c - \log p_c),\ p = \mathrm{softmax}(x/T),\ "
             r"q = \mathrm{softmax}(y/T)"),
    references=("Kullback & Leibler 1951",),
    peers={"torch": "torch.nn.functional.kl_div(log_target=True, reduction='batchmean')",
           "optax": "optax.losses.kl_divergence_with_log_targets"},
    sample=_logits_sample,
)
def kl_divergence_with_logits(
    input_logits: Tensor,
    target_logits: Tensor,
    *,
    dim: int = -1,
    temperature: float = 1.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r""":math:`\mathrm{KL}(\text{target} \,\|\, \text{input})` between the softmax distributions
    of two logit tensors, summed over ``dim``: one value per distribution.

    The direction is fixed by the name: the *target* distribution weights the log-ratio
    (the forward KL used for distillation and for fitting a model to a data distribution).
    ``temperature`` divides both logits before the softmax; there is no T² factor here (see
    :func:`~losskit.losses.distillation.distillation_loss`). Logits of −inf (masked classes)
    are allowed; a class the target gives zero probability contributes nothing.

    Args:
        input_logits: logits of the model distribution p, classes along ``dim``.
        target_logits: logits of the target distribution q, same shape.
        dim: the class dimension.
        temperature: T > 0 dividing both logits.
        reduction: ``"none"`` (one KL per distribution) | ``"mean"`` (mean over the
            distributions: the KL per sample, PyTorch's ``"batchmean"`` for 2-D input) |
            ``"sum"`` | ``"batchmean"`` (Σ / ``input_logits.shape[0]``). With weights or a mask
            ``"mean"`` is Σ m·w·ℓ / Σ m·w.
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*, C, *)`` and the same → scalar, or the shape without ``dim`` with
        ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> z = torch.tensor([[2.0, 0.0, -1.0]])
        >>> LF.kl_divergence_with_logits(z, z)                # equal distributions
        tensor(0.)
        >>> LF.kl_divergence_with_logits(z, z + 5.0)          # logits are shift-invariant
        tensor(0.)

    References:
        Kullback & Leibler, "On Information and Sufficiency", Ann. Math. Statist. 1951.
    """
    check_option("reduction", reduction, _WITH_BATCHMEAN)
    check_number("temperature", temperature, low=0, low_open=True)
    x, y = _pair(input_logits, target_logits, ("input_logits", "target_logits"))
    _check_dim(dim, x, "input_logits")
    check_logits_not_probabilities(x, "input_logits")
    log_p = torch.log_softmax(x / temperature, dim)
    log_q = torch.log_softmax(y / temperature, dim)
    per_shape = x.shape[:dim % x.ndim] + x.shape[dim % x.ndim + 1:]   # one KL per distribution
    if sample_weight is None and mask is None and normalizer is None and reduction != "none" \
            and x.numel():
        # the terms' sum straight from kl_div's fused kernel: no per-element tensor
        total = elementwise_loss(_KL_LOG_TARGET, log_p, log_q, (), "sum")
        if reduction == "mean":
            return total / math.prod(per_shape)
        return total / max(per_shape[0], 1) if reduction == "batchmean" and per_shape else total
    per = elementwise_loss(_KL_LOG_TARGET, log_p, log_q, (), "none").sum(dim)
    return _row_reduce(per, reduction, sample_weight, mask, normalizer, empty)


class KLDivergenceWithLogits(LossModule):
    """Module form of :func:`kl_divergence_with_logits`."""

    fn = staticmethod(kl_divergence_with_logits)


@register(
    "js_divergence",
    family="divergence",
    tasks=("distribution matching", "distillation"),
    input_kind="logits",
    target_kind="logits",
    aliases=("jsd", "jensen_shannon"),
    properties=Properties(convex=False, smoothness="Cinf", robust="redescending",
                          homogeneity=None, units="nats (at most log 2)", symmetric=False,
                          zero_at_perfect=True),
    formula=r"\ell = \tfrac12\mathrm{KL}(p\,\|\,m) + \tfrac12\mathrm{KL}(q\,\|\,m),\ m = \tfrac12(p+q)",
    references=("Lin 1991",),
    peers={"kornia": "kornia.losses.js_div_loss_2d"},
    sample=_logits_sample,
)
def js_divergence(
    input_logits: Tensor,
    target_logits: Tensor,
    *,
    dim: int = -1,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Jensen–Shannon divergence between the softmax distributions of two logit tensors,
    summed over ``dim``: symmetric, in nats, between 0 and :math:`\log 2`.

    Computed in log space: :math:`\log m = \mathrm{logaddexp}(\log p, \log q) - \log 2`, so it
    stays finite and its gradient stays finite for saturated or −inf logits.

    Args:
        input_logits: logits of p, classes along ``dim``.
        target_logits: logits of q, same shape.
        dim: the class dimension.
        reduction: ``"none"`` | ``"mean"`` (over the distributions) | ``"sum"`` |
            ``"batchmean"`` (Σ / ``input_logits.shape[0]``).
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*, C, *)`` and the same → scalar, or the shape without ``dim`` with
        ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> a = torch.tensor([[100.0, -100.0]])
        >>> b = torch.tensor([[-100.0, 100.0]])
        >>> LF.js_divergence(a, b)                       # disjoint supports: log 2
        tensor(0.6931)
        >>> float(torch.tensor(2.0).log() / 2)
        0.34657359...

    References:
        Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 1991.
    """
    check_option("reduction", reduction, _WITH_BATCHMEAN)
    x, y = _pair(input_logits, target_logits, ("input_logits", "target_logits"))
    _check_dim(dim, x, "input_logits")
    check_logits_not_probabilities(x, "input_logits")
    log_p = torch.log_softmax(x, dim)
    log_q = torch.log_softmax(y, dim)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    per = 0.5 * (_kl_terms(log_p, log_m) + _kl_terms(log_q, log_m)).sum(dim)
    return _row_reduce(per, reduction, sample_weight, mask, normalizer, empty)


class JSDivergence(LossModule):
    """Module form of :func:`js_divergence`."""

    fn = staticmethod(js_divergence)


# --------------------------------------------------------------------------- 1-D EMD


@register(
    "wasserstein_1d",
    family="divergence",
    tasks=("ordinal regression", "distribution matching"),
    input_kind="probabilities",
    target_kind="probabilities",
    aliases=("wasserstein_1d_loss", "emd_1d", "squared_emd"),
    properties=Properties(convex=True, smoothness="C0", robust="bounded_influence",
                          homogeneity=1, units="bins × mass", symmetric=True,
                          zero_at_perfect=True),
    formula=r"\ell = \sum_{k=1}^{C-1} |F_x(k) - F_y(k)|^p,\ F(k) = \sum_{i\le k} h_i",
    references=("Hou, Yu & Samaras 2016 (squared EMD loss)", "Vallender 1974"),
    peers={"scipy": "scipy.stats.wasserstein_distance (p=1, unit-spaced bins)"},
    sample=_histogram_sample,
)
def wasserstein_1d_loss(
    input: Tensor,
    target: Tensor,
    *,
    p: int = 1,
    dim: int = -1,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Earth mover's distance between 1-D histograms on ordered, unit-spaced bins, through
    their cumulative sums: :math:`\sum_{k=1}^{C-1} |F_x(k) - F_y(k)|^p` along ``dim`` (one term
    per gap between neighbouring bins).

    ``p=1`` is the exact EMD (Wasserstein-1) between two histograms of equal mass, the
    number ``scipy.stats.wasserstein_distance(range(C), range(C), x, y)`` gives for
    normalised histograms. ``p=2`` is the *squared EMD* loss of Hou et al. (2016),
    :math:`\sum_k (F_x(k) - F_y(k))^2` (no root, no 1/C; the k = C term, 0 for equal
    masses, is left out), which is smooth and penalises
    far-off mass more; NIMA's :math:`(\tfrac1C\sum_k|\cdot|^2)^{1/2}` is
    ``(loss / C).sqrt()``. The histograms are not renormalised: pass probabilities
    (e.g. ``softmax(logits)``) of equal total mass.

    Args:
        input: predicted histogram (non-negative, sums to 1 along ``dim``).
        target: target histogram, same shape (a one-hot ordinal label works).
        p: 1 (EMD) or 2 (Hou et al.'s squared EMD).
        dim: the bin dimension (bins in their natural order).
        reduction: ``"none"`` | ``"mean"`` (over the histograms) | ``"sum"`` | ``"batchmean"``.
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*, C, *)`` and the same → scalar, or the shape without ``dim`` with
        ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([[1.0, 0.0, 0.0, 0.0]])     # ordinal label 0
        >>> near = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
        >>> far = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
        >>> LF.wasserstein_1d_loss(near, y), LF.wasserstein_1d_loss(far, y)   # mass moved 1 and 3 bins
        (tensor(1.), tensor(3.))
        >>> LF.wasserstein_1d_loss(far, y, p=2)
        tensor(3.)

    References:
        Hou, Yu & Samaras, "Squared Earth Mover's Distance-based Loss for Training Deep Neural
        Networks", arXiv:1611.05916, 2016. Vallender, "Calculation of the Wasserstein distance
        between probability distributions on the line", Theory Probab. Appl. 1974.
    """
    check_option("reduction", reduction, _WITH_BATCHMEAN)
    check_option("p", p, (1, 2))
    x, y = _pair(input, target)
    _check_dim(dim, x, "input")
    check_probabilities(x, "input")
    check_probabilities(y, "target")
    # the last cumulative sum is the difference of the total masses (0 for distributions); it
    # is left out: the C − 1 gaps between bins are what the mass travels across.
    diff = (x - y).cumsum(dim).narrow(dim, 0, x.shape[dim] - 1)
    per = (diff.abs() if p == 1 else diff.square()).sum(dim)
    return _row_reduce(per, reduction, sample_weight, mask, normalizer, empty)


class Wasserstein1DLoss(LossModule):
    """Module form of :func:`wasserstein_1d_loss`."""

    fn = staticmethod(wasserstein_1d_loss)


# --------------------------------------------------------------------------- cosine


def _cosine(x: Tensor, y: Tensor, dim: int, eps: float) -> Tensor:
    # x / max(‖x‖, eps): the clamp acts on the squared norm before rsqrt, so a zero vector has
    # a finite gradient (the cosine with it is 0).
    floor = eps * eps
    ux = x * x.square().sum(dim, keepdim=True).clamp_min(floor).rsqrt()
    uy = y * y.square().sum(dim, keepdim=True).clamp_min(floor).rsqrt()
    return (ux * uy).sum(dim)


@register(
    "cosine_similarity",
    family="divergence",
    tasks=("embedding regression", "distillation"),
    input_kind="prediction",
    target_kind="real",
    aliases=("cosine_similarity_loss",),
    properties=Properties(convex=False, smoothness="Cinf", robust="redescending",
                          homogeneity=0, units="cosine (−1 best, 1 worst)", symmetric=None,
                          zero_at_perfect=False),
    formula=r"\ell = -\frac{\langle x, y\rangle}{\max(\|x\|,\epsilon)\max(\|y\|,\epsilon)}",
    references=("Keras keras.losses.CosineSimilarity",),
    peers={"keras": "keras.losses.CosineSimilarity"},
    sample=_vector_sample,
)
def cosine_similarity_loss(
    input: Tensor,
    target: Tensor,
    *,
    dim: int = -1,
    eps: float = 1e-7,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Negative cosine similarity along ``dim`` (Keras semantics): −1 when the vectors point
    the same way (the best value), 0 when orthogonal, 1 when opposite.

    Each vector is divided by :math:`\max(\|v\|, \epsilon)`; ``eps=1e-7`` is Keras's
    ``backend.epsilon()``, so the numbers match ``keras.losses.CosineSimilarity(axis=dim)``.
    A zero vector gives 0 with a finite gradient. For a loss that is 0 at the optimum use
    :func:`cosine_distance_loss` (= 1 + this).

    Args:
        input: predicted vectors, features along ``dim``.
        target: target vectors, same shape.
        dim: the feature dimension.
        eps: the smallest norm a vector is divided by.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*, D, *)`` and the same → scalar, or the shape without ``dim`` with
        ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
        >>> x = torch.tensor([[1.0, 0.0], [2.0, 2.0], [-1.0, -1.0]])
        >>> LF.cosine_similarity_loss(x, y, reduction="none").round(decimals=4)  # ⊥, same way, opposite
        tensor([-0., -1.,  1.])
        >>> LF.cosine_similarity_loss(torch.zeros(1, 2), y[:1])   # zero vector: 0, not NaN
        tensor(0.)

    References:
        Keras, ``keras.losses.cosine_similarity`` (keras.io/api/losses).
    """
    check_number("eps", eps, low=0, low_open=True)
    check_option("reduction", reduction, _WITH_BATCHMEAN[:3])
    x, y = _pair(input, target)
    _check_dim(dim, x, "input")
    return reduce(-_cosine(x, y, dim, eps), reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


class CosineSimilarityLoss(LossModule):
    """Module form of :func:`cosine_similarity_loss`."""

    fn = staticmethod(cosine_similarity_loss)


@register(
    "cosine_distance",
    family="divergence",
    tasks=("embedding regression", "distillation"),
    input_kind="prediction",
    target_kind="real",
    aliases=("cosine_distance_loss",),
    properties=Properties(convex=False, smoothness="Cinf", robust="redescending",
                          homogeneity=0, units="1 − cosine, in [0, 2]", symmetric=None,
                          zero_at_perfect=True),
    formula=r"\ell = 1 - \frac{\langle x, y\rangle}{\max(\|x\|,\epsilon)\max(\|y\|,\epsilon)}",
    references=("optax.losses.cosine_distance",),
    peers={"optax": "optax.losses.cosine_distance (epsilon = eps²)"},
    sample=_vector_sample,
)
def cosine_distance_loss(
    input: Tensor,
    target: Tensor,
    *,
    dim: int = -1,
    eps: float = 1e-8,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Cosine distance :math:`1 - \cos(x, y)` along ``dim``: 0 for vectors pointing the same
    way, 2 for opposite ones.

    Each vector is divided by :math:`\max(\|v\|, \epsilon)`, so a zero vector gives 1 with a
    finite gradient. ``optax.losses.cosine_distance(epsilon=e)`` clamps the *squared* norm at
    ``e``: it equals this loss with ``eps = sqrt(e)`` (its default ``e = 0`` is NaN at a zero
    vector).

    Args:
        input: predicted vectors, features along ``dim``.
        target: target vectors, same shape.
        dim: the feature dimension.
        eps: the smallest norm a vector is divided by.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*, D, *)`` and the same → scalar, or the shape without ``dim`` with
        ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([[3.0, 4.0]])
        >>> LF.cosine_distance_loss(10.0 * y, y), LF.cosine_distance_loss(-y, y)   # scale-free
        (tensor(0.), tensor(2.))

    References:
        optax, ``optax.losses.cosine_distance`` (optax.readthedocs.io).
    """
    check_number("eps", eps, low=0, low_open=True)
    check_option("reduction", reduction, _WITH_BATCHMEAN[:3])
    x, y = _pair(input, target)
    _check_dim(dim, x, "input")
    return reduce(1.0 - _cosine(x, y, dim, eps), reduction, sample_weight=sample_weight,
                  mask=mask, normalizer=normalizer, empty=empty)


class CosineDistanceLoss(LossModule):
    """Module form of :func:`cosine_distance_loss`."""

    fn = staticmethod(cosine_distance_loss)


# --------------------------------------------------------------------------- point sets


def _point_sets(x: Tensor, y: Tensor, min_points: int = 1) -> tuple[Tensor, Tensor]:
    check_floating("x", x)
    check_floating("y", y)
    for name, t in (("x", x), ("y", y)):
        if t.ndim < 2:
            raise LossInputError(
                f"{name} must have shape (*, n, d) (points in rows), got {shape_str(t)}. "
                f"Fix: use {name}.unsqueeze(-1) for scalar samples."
            )
    if x.shape[:-2] != y.shape[:-2] or x.shape[-1] != y.shape[-1]:
        raise LossInputError(
            f"x has shape {shape_str(x)} and y has shape {shape_str(y)}; expected (*, n, d) and "
            f"(*, m, d) with the same batch dims * and the same feature size d. "
            "Fix: reshape so the points are the second-to-last dimension."
        )
    if x.shape[-2] < min_points or y.shape[-2] < min_points:
        raise LossInputError(
            f"x and y need at least {min_points} points each, got n={x.shape[-2]}, m={y.shape[-2]}."
        )
    a, b = as_float32(x, y)
    if a.dtype != b.dtype:
        dtype = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(dtype), b.to(dtype)
    return a, b


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    # ‖a‖² + ‖b‖² − 2⟨a, b⟩: no sqrt, so no infinite gradient at a zero distance.
    d = a.square().sum(-1)[..., :, None] + b.square().sum(-1)[..., None, :] - 2.0 * a @ b.mT
    return d.clamp_min(0.0)


@register(
    "mmd",
    family="divergence",
    tasks=("domain adaptation", "two-sample test", "distribution matching"),
    input_kind="samples",
    target_kind="samples",
    aliases=("mmd_loss", "maximum_mean_discrepancy"),
    properties=Properties(convex=False, smoothness="Cinf", robust="redescending",
                          homogeneity=None, units="squared RKHS norm", symmetric=True,
                          zero_at_perfect=None),
    formula=(r"\widehat{\mathrm{MMD}}^2_u = \tfrac{1}{n(n-1)}\sum_{i\ne j}k(x_i,x_j) + "
             r"\tfrac{1}{m(m-1)}\sum_{i\ne j}k(y_i,y_j) - \tfrac{2}{nm}\sum_{i,j}k(x_i,y_j)"),
    references=("Gretton et al. 2012 (JMLR, A Kernel Two-Sample Test)",),
    peers={},
    sample=_points_sample,
)
def mmd_loss(
    x: Tensor,
    y: Tensor,
    *,
    bandwidths: Sequence[float] | Tensor = (0.5, 1.0, 2.0, 4.0, 8.0),
    unbiased: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Squared maximum mean discrepancy between the samples ``x`` and ``y`` with a sum of
    Gaussian (RBF) kernels :math:`k(a, b) = \sum_\sigma \exp(-\|a-b\|^2 / 2\sigma^2)`.

    ``unbiased=True`` is Gretton et al.'s U-statistic :math:`\mathrm{MMD}^2_u` (Lemma 6: the
    diagonal terms k(x_i, x_i) left out; it can be slightly negative); ``unbiased=False`` is
    the biased V-statistic :math:`\mathrm{MMD}^2_b` (diagonals in, ≥ 0). The bandwidths are in
    the units of the data; standardise features or pass your own.

    Args:
        x: samples ``(*, n, d)``.
        y: samples ``(*, m, d)`` (same batch dims and d; m may differ from n).
        bandwidths: the σ of each Gaussian kernel in the sum (a sequence or a 1-D tensor).
        unbiased: the U-statistic (needs n, m ≥ 2) or the V-statistic.
        reduction: over the batch dims ``*``: ``"none"`` (one value per batch entry) |
            ``"mean"`` | ``"sum"``. With 2-D inputs every reduction is the single value.

    Shape:
        ``(*, n, d)`` and ``(*, m, d)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 2, generator=g, dtype=torch.float64)
        >>> y = torch.randn(200, 2, generator=g, dtype=torch.float64)
        >>> same, shifted = LF.mmd_loss(x, y), LF.mmd_loss(x, y + 2.0)
        >>> bool(same.abs() < 0.05), bool(shifted > 1.0)    # same law ≈ 0, shifted law > 0
        (True, True)
        >>> LF.mmd_loss(x, x, unbiased=False)               # the V-statistic is 0 at x = y
        tensor(0., dtype=torch.float64)

    References:
        Gretton, Borgwardt, Rasch, Schölkopf & Smola, "A Kernel Two-Sample Test", JMLR 13, 2012.
    """
    check_option("reduction", reduction, _SET_REDUCTIONS)
    a, b = _point_sets(x, y, min_points=2 if unbiased else 1)
    sig = torch.as_tensor(bandwidths, dtype=a.dtype, device=a.device).reshape(-1)
    if sig.numel() == 0:
        raise LossInputError("bandwidths is empty. Fix: pass at least one kernel width σ > 0.")
    if not isinstance(bandwidths, Tensor):
        for s in bandwidths:
            check_number("bandwidths", s, low=0, low_open=True)
    gamma = 0.5 / sig.square()

    def kernel(u: Tensor, v: Tensor) -> Tensor:
        return torch.exp(-_sq_dists(u, v)[..., None] * gamma).sum(-1)

    n, m = a.shape[-2], b.shape[-2]
    kxx, kyy, kxy = kernel(a, a), kernel(b, b), kernel(a, b)
    sxx, syy = kxx.sum((-2, -1)), kyy.sum((-2, -1))
    if unbiased:
        sxx = sxx - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)
        syy = syy - kyy.diagonal(dim1=-2, dim2=-1).sum(-1)
        value = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * kxy.sum((-2, -1)) / (n * m)
    else:
        value = sxx / (n * n) + syy / (m * m) - 2.0 * kxy.sum((-2, -1)) / (n * m)
    return reduce(value, reduction)


class MMDLoss(LossModule):
    """Module form of :func:`mmd_loss`."""

    fn = staticmethod(mmd_loss)


def _sinkhorn_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                     extreme: bool = False) -> Sample:
    return _points_sample(gen, dtype, extreme, n_iters=20, epsilon=0.5)


def _sinkhorn_cost(a: Tensor, b: Tensor, p: int) -> Tensor:
    sq = _sq_dists(a, b)
    if p == 2:
        return sq
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, 1.0).sqrt(), 0.0)


def _sinkhorn_plan_cost(a: Tensor, b: Tensor, log_wa: Tensor, log_wb: Tensor, epsilon: float,
                        n_iters: int, p: int) -> Tensor:
    cost = _sinkhorn_cost(a, b, p)
    f = torch.zeros_like(log_wa)
    g = torch.zeros_like(log_wb)
    for _ in range(n_iters):
        f = -epsilon * torch.logsumexp(log_wb[..., None, :] + (g[..., None, :] - cost) / epsilon, -1)
        g = -epsilon * torch.logsumexp(log_wa[..., :, None] + (f[..., :, None] - cost) / epsilon, -2)
    log_plan = (log_wa[..., :, None] + log_wb[..., None, :]
                + (f[..., :, None] + g[..., None, :] - cost) / epsilon)
    return (log_plan.exp() * cost).sum((-2, -1))


def _log_weights(w: Tensor | None, like: Tensor, name: str) -> Tensor:
    n = like.shape[-2]
    if w is None:
        return like.new_full(like.shape[:-2] + (n,), -math.log(n))
    check_floating(name, w)
    if w.shape != like.shape[:-2] + (n,):
        raise LossInputError(
            f"{name} has shape {shape_str(w)} but must have shape "
            f"{shape_str(like.shape[:-2] + (n,))}: one non-negative weight per point, summing to 1."
        )
    check_probabilities(w, name)
    w = w.to(like.dtype)
    positive = w > 0
    return torch.where(positive, torch.where(positive, w, 1.0).log(), -math.inf)


@register(
    "sinkhorn",
    family="divergence",
    tasks=("optimal transport", "distribution matching", "point clouds"),
    input_kind="samples",
    target_kind="samples",
    aliases=("sinkhorn_loss", "entropic_ot"),
    properties=Properties(convex=None, smoothness="Cinf", robust=None, homogeneity=None,
                          units="cost units (‖·‖^p)", symmetric=None, zero_at_perfect=None),
    formula=(r"\ell = \langle P_\epsilon, C\rangle,\ P_\epsilon = \arg\min_{P\in U(a,b)} "
             r"\langle P, C\rangle - \epsilon H(P),\ C_{ij} = \|x_i - y_j\|^p"),
    references=("Cuturi 2013 (NeurIPS, Sinkhorn Distances)",
                "Genevay, Peyré & Cuturi 2018 (AISTATS, debiased Sinkhorn)"),
    peers={},
    sample=_sinkhorn_sample,
)
def sinkhorn_loss(
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float = 0.1,
    n_iters: int = 100,
    p: int = 2,
    a: Tensor | None = None,
    b: Tensor | None = None,
    debias: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Entropic optimal-transport cost between the point clouds ``x`` and ``y`` (Cuturi's
    Sinkhorn distance): :math:`\langle P_\epsilon, C\rangle`, the transport cost of the
    entropy-regularised optimal plan, with :math:`C_{ij} = \|x_i - y_j\|_2^p`.

    The plan is found by ``n_iters`` Sinkhorn iterations in the log domain (dual potentials
    updated with logsumexp, so small ε neither underflows nor overflows); the count is fixed,
    so the loss traces with ``torch.compile`` and is differentiated through the unrolled
    iterations. After the last (column) update, :math:`P` has exactly the marginal ``b``; the
    row marginal is ``a`` up to the convergence of the iterations. As ε → 0 (with enough
    iterations) the value tends to the exact OT cost (the Wasserstein-p distance to the power
    p); ε is in the units of C, so scale it with your data. ``debias=True`` returns the
    Sinkhorn divergence :math:`S = \mathrm{OT}_\epsilon(x, y) - \tfrac12\mathrm{OT}_\epsilon(x, x)
    - \tfrac12\mathrm{OT}_\epsilon(y, y)`, built from the same quantity, which removes the
    entropic bias (S(x, x) = 0).

    Args:
        x: points ``(*, n, d)``.
        y: points ``(*, m, d)``.
        epsilon: entropic regularisation ε > 0 (cost units).
        n_iters: number of Sinkhorn iterations (each updates both potentials).
        p: cost exponent, 1 (Euclidean distance) or 2 (squared Euclidean distance).
        a: weights of the points of ``x``, ``(*, n)``, non-negative, summing to 1; default
            uniform.
        b: weights of the points of ``y``, ``(*, m)``; default uniform.
        debias: return the debiased Sinkhorn divergence.
        reduction: over the batch dims ``*``: ``"none"`` | ``"mean"`` | ``"sum"``. With 2-D
            inputs every reduction is the single value.

    Shape:
        ``(*, n, d)`` and ``(*, m, d)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
        >>> y = x + 3.0                                     # every point moves by 3
        >>> LF.sinkhorn_loss(x, y, epsilon=0.01, p=1)       # W1 = 3
        tensor(3.0000, dtype=torch.float64)
        >>> LF.sinkhorn_loss(x, x, epsilon=0.5, debias=True)
        tensor(0., dtype=torch.float64)

    References:
        Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013.
        Genevay, Peyré & Cuturi, "Learning Generative Models with Sinkhorn Divergences",
        AISTATS 2018.
    """
    check_option("reduction", reduction, _SET_REDUCTIONS)
    check_number("epsilon", epsilon, low=0, low_open=True)
    check_option("p", p, (1, 2))
    if not isinstance(n_iters, int) or isinstance(n_iters, bool) or n_iters < 1:
        raise LossInputError(f"n_iters must be a positive int, got {n_iters!r}.")
    u, v = _point_sets(x, y)
    log_a = _log_weights(a, u, "a")
    log_b = _log_weights(b, v, "b")
    value = _sinkhorn_plan_cost(u, v, log_a, log_b, epsilon, n_iters, p)
    if debias:
        value = (value - 0.5 * _sinkhorn_plan_cost(u, u, log_a, log_a, epsilon, n_iters, p)
                 - 0.5 * _sinkhorn_plan_cost(v, v, log_b, log_b, epsilon, n_iters, p))
    return reduce(value, reduction)


class SinkhornLoss(LossModule):
    """Module form of :func:`sinkhorn_loss`."""

    fn = staticmethod(sinkhorn_loss)

