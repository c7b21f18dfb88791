r"""Classification losses: binary and softmax cross-entropy, focal losses, PolyLoss, hinge and
margin losses.

Inputs are logits unless the name says otherwise (``binary_cross_entropy`` takes
probabilities, ``nll_loss`` log-probabilities). Class-index targets are integer tensors with the
class dimension removed; probability targets are float tensors of the input's shape. The class
dimension is ``1`` (PyTorch's ``(N, C, d1, ...)`` layout); ``class_dim=-1`` accepts
channels-last logits such as ``(N, H, W, C)``.

Per-position losses take the shared options ``reduction``, ``sample_weight``, ``mask``,
``normalizer`` and ``empty`` (see :func:`losskit._core.reduction.reduce`); ``weight`` always
means what it means in PyTorch for the same loss (class weights for cross-entropy, NLL and
multi-margin; a broadcast element weight for the binary losses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit import _native
from losskit._core.checks import (
    LossInputError,
    check_class_index,
    check_floating,
    check_logits_not_probabilities,
    check_ndim,
    check_number,
    check_option,
    check_probabilities,
    check_same_shape,
    check_tensor,
    class_vector,
    is_debug,
    shape_str,
)
from losskit._core.fused import (
    ElementwiseKernel,
    elementwise_loss,
    power_,
    reference_grads,
    small_power,
    use_fast_path,
)
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, plain_reduction, reduce
from losskit._core.registry import Properties, Sample, register
from losskit._core.samples import draw
from losskit._fused.cross_entropy import index_cross_entropy, probability_cross_entropy

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HingeLoss",
    "MultiClassHingeLoss",
    "MultiLabelMarginLoss",
    "MultiLabelSoftMarginLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "Poly1CrossEntropyLoss",
    "SigmoidFocalLoss",
    "SoftCrossEntropyLoss",
    "SoftMarginLoss",
    "SoftmaxFocalLoss",
    "SquaredHingeLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "hinge_loss",
    "multi_margin_loss",
    "multiclass_hinge_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "poly1_cross_entropy",
    "sigmoid_focal_loss",
    "soft_cross_entropy",
    "soft_margin_loss",
    "softmax_focal_loss",
    "squared_hinge_loss",
]

_TASKS = ("classification",)
_NUM_CLASSES = 5
_N = 6


# --------------------------------------------------------------------------- samples


def _logits(gen: torch.Generator, dtype: torch.dtype, extreme: bool,
            shape: tuple[int, ...] = (_N, _NUM_CLASSES)) -> Tensor:
    return draw("real", shape, gen, dtype, extreme)


def _index_sample(log_probs: bool = False, **kwargs: object) -> Callable[..., Sample]:
    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
        x = _logits(gen, dtype, extreme)
        if log_probs:
            x = torch.log_softmax(x.double(), 1).to(dtype)
        y = torch.randint(0, _NUM_CLASSES, (_N,), generator=gen)
        return Sample((x, y), dict(kwargs))

    return sample


def _prob_target_sample(**kwargs: object) -> Callable[..., Sample]:
    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
        x = _logits(gen, dtype, extreme)
        t = torch.softmax(torch.randn(_N, _NUM_CLASSES, generator=gen, dtype=torch.float64), 1)
        return Sample((x, t.to(dtype)), dict(kwargs))

    return sample


def _binary_sample(input: str = "real", target: str = "binary",
                   **kwargs: object) -> Callable[..., Sample]:
    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
        shape = (_N, _NUM_CLASSES)
        return Sample((draw(input, shape, gen, dtype, extreme), draw(target, shape, gen, dtype)),
                      dict(kwargs))

    return sample


def _multilabel_index_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                             extreme: bool = False) -> Sample:
    x = _logits(gen, dtype, extreme)
    rows = []
    for _ in range(_N):
        k = int(torch.randint(1, _NUM_CLASSES, (1,), generator=gen))
        classes = torch.randperm(_NUM_CLASSES, generator=gen)[:k]
        rows.append(torch.cat([classes, torch.full((_NUM_CLASSES - k,), -1)]))
    return Sample((x, torch.stack(rows)))


# --------------------------------------------------------------------------- shared helpers


def _class_dim(input: Tensor, class_dim: int) -> int:
    """The class dimension as a non-negative index (a 1-D input is one unbatched sample)."""
    if input.ndim == 0:
        raise LossInputError("input must have a class dimension, got a 0-d tensor. Fix: pass (N, C) logits.")
    if input.ndim == 1:
        return 0
    if not -input.ndim <= class_dim < input.ndim:
        raise LossInputError(
            f"class_dim={class_dim} is out of range for input of shape {shape_str(input)}. "
            f"Fix: class_dim=1 for (N, C, ...) logits, class_dim=-1 for channels-last."
        )
    return class_dim % input.ndim


def _to_channels_first(input: Tensor, class_dim: int) -> Tensor:
    """``input`` with its class dimension at 1 (a leading batch dim added for 1-D input)."""
    if input.ndim == 1:
        return input.unsqueeze(0)
    return input if class_dim == 1 else input.movedim(class_dim, 1)


def _index_target(input: Tensor, target: Tensor, dim: int, ignore_index: int | None) -> Tensor:
    """Validate class indices against ``input`` (class dim ``dim``); return them batched."""
    expected = input.shape[:dim] + input.shape[dim + 1:]
    if target.shape != expected:
        raise LossInputError(
            f"target has shape {shape_str(target)} but input {shape_str(input)} with class_dim={dim} "
            f"needs class indices of shape {shape_str(expected)} (the input's shape without the "
            "class dimension). Fix: pass class_dim=-1 for channels-last logits, or check that "
            "input and target belong together."
        )
    check_class_index(target, input.shape[dim], ignore_index=ignore_index)
    return target.unsqueeze(0) if input.ndim == 1 else target


def _class_vector(name: str, value: Tensor | None, num_classes: int, like: Tensor) -> Tensor | None:
    return None if value is None else class_vector(name, value, num_classes, like)


def _per_class_view(value: Tensor, ndim: int) -> Tensor:
    """(C,) → (1, C, 1, ...) to broadcast against channels-first (N, C, d1, ...) tensors."""
    return value.reshape((1, -1) + (1,) * (ndim - 2))


def _restore(loss: Tensor, unbatched: bool) -> Tensor:
    return loss.squeeze(0) if unbatched else loss


def _finite(logp: Tensor) -> Tensor:
    # a class with a −inf logit is outside the support: its term is dropped (0·log 0 = 0), in
    # the forward value and in the gradient (nan_to_num passes no gradient to replaced entries).
    return torch.nan_to_num(logp, nan=float("nan"), neginf=0.0)


def _hard_ce(
    x: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    log_probs: bool = False,
) -> tuple[Tensor, Tensor]:
    """Per-position cross-entropy with class-index targets (channels-first ``x``), and the
    per-position denominator of PyTorch's ``"mean"`` (w[target], or 1; 0 where ignored)."""
    valid = target != ignore_index
    if weight is None:
        den = valid.to(x.dtype)
    else:
        den = torch.where(valid, weight[torch.where(valid, target, 0)], weight.new_zeros(()))
    if label_smoothing == 0.0:
        if log_probs:
            loss = F.nll_loss(x, target, weight=weight, ignore_index=ignore_index, reduction="none")
        else:
            loss = F.cross_entropy(x, target, weight=weight, ignore_index=ignore_index,
                                   reduction="none")
        return loss, den
    logp = x if log_probs else torch.log_softmax(x, 1)
    nll = F.nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction="none")
    finite = _finite(logp)
    if weight is not None:
        finite = finite * _per_class_view(weight, x.ndim)
    smooth = torch.where(valid, -finite.sum(1), finite.new_zeros(()))
    k = x.shape[1]
    return (1.0 - label_smoothing) * nll + (label_smoothing / k) * smooth, den


def _soft_ce(x: Tensor, target: Tensor, weight: Tensor | None, label_smoothing: float,
             log_probs: bool = False) -> Tensor:
    """Per-position cross-entropy with probability targets (channels-first)."""
    k = x.shape[1]
    if label_smoothing != 0.0:
        target = (1.0 - label_smoothing) * target + label_smoothing / k
    logp = x if log_probs else torch.log_softmax(x, 1)
    term = target * _finite(logp)
    if weight is not None:
        term = term * _per_class_view(weight, x.ndim)
    return -term.sum(1)


def _prob_target(input: Tensor, target: Tensor) -> Tensor:
    check_same_shape(input, target)
    if is_debug():
        check_probabilities(target, "target")
    return target.to(input.dtype)


def _bce_logits(x: Tensor, target: Tensor, pos_weight: Tensor | None = None, weight: Tensor | None = None,
                reduction: str = "none") -> Tensor:
    """BCE of logits with PyTorch's stable kernel, on logits clamped to ±sqrt(max): a logit of
    ±inf whose target weight is 0 then costs exactly 0 with a zero gradient instead of NaN
    (0·inf); with a positive target weight it costs about 1.8e19 (float32), not inf. Where every
    logit is within the bound (:func:`_logits_within_bound`) the clamp is the identity, and its
    pass and the mask it keeps for backward are skipped."""
    if not _logits_within_bound(x):
        bound = math.sqrt(torch.finfo(x.dtype).max)
        x = x.clamp(-bound, bound)
    return F.binary_cross_entropy_with_logits(x, target, weight=weight, pos_weight=pos_weight,
                                              reduction=reduction)


def _logits_within_bound(x: Tensor) -> bool:
    """Whether every logit is known to lie within ±sqrt(max) (the clamp of :func:`_bce_logits`
    is then the identity): measured by one pass (``aminmax``) for CPU tensors in eager mode;
    ``False`` elsewhere (a GPU would have to synchronise; a traced or transformed function
    cannot branch on data). NaN compares false and keeps the clamp, which passes it on."""
    if x.device.type != "cpu" or x.numel() == 0 or not use_fast_path():
        return False
    bound = math.sqrt(torch.finfo(x.dtype).max)
    lo, hi = torch.aminmax(x.detach())
    return -bound <= float(lo) and float(hi) <= bound


def _logits_input(input: Tensor) -> Tensor:
    check_floating("input", input)
    check_logits_not_probabilities(input)
    (input,) = as_float32(input)
    return input


# Below this many CPU logits cross_entropy and binary_cross_entropy_with_logits are PyTorch's one
# C++ call where that gives the same numbers: what it saves for backward is then under 1 MiB, and
# the Python around the low-memory and C-kernel paths costs more than they save (cross_entropy
# 3× F.cross_entropy at 128×10 and 1.2× at 256×1000 that way; BCE 1.5× at 256×80).
_SMALL_LOGITS = 2**18


# --------------------------------------------------------------------------- cross-entropy

_CE_PROPS = Properties(convex=True, smoothness="Cinf", units="nats", zero_at_perfect=False)


@register(
    "cross_entropy",
    family="classification",
    tasks=_TASKS,
    input_kind="logits",
    target_kind="class_index",
    aliases=("cross_entropy_loss", "ce", "sparse_categorical_cross_entropy", "log_loss",
             "softmax_cross_entropy"),
    properties=_CE_PROPS,
    formula=r"\ell = -\sum_c w_c\,\tilde y_c \log\operatorname{softmax}(x)_c,\quad "
            r"\tilde y = (1-\varepsilon)\,\mathrm{onehot}(y) + \varepsilon/K",
    references=("Cox 1958 (multinomial logistic regression)",
                "Szegedy et al. 2016 (label smoothing)"),
    peers={"torch": "torch.nn.functional.cross_entropy",
           "keras": "keras.losses.SparseCategoricalCrossentropy",
           "optax": "optax.losses.softmax_cross_entropy_with_integer_labels",
           "sklearn": "sklearn.metrics.log_loss"},
    sample=_index_sample(),
    elementwise=True,
)
def cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    class_dim: int = 1,
    weighted_mean: bool = True,
    inplace_backward: bool = False,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Softmax cross-entropy of logits; drop-in for ``torch.nn.functional.cross_entropy``.

    .. math::
        \ell_i = -\sum_c w_c\,\tilde y_{ic} \log p_{ic}, \quad p_i = \operatorname{softmax}(x_i),
        \quad \tilde y_i = (1-\varepsilon)\,\mathrm{onehot}(y_i) + \varepsilon / K

    With class-index targets the smoothed term is ``(1-ε)·w[y]·(-log p_y) + (ε/K)·Σ_c w_c·(-log p_c)``,
    exactly PyTorch's, and both terms are zero at ``ignore_index`` positions. ``"mean"`` divides
    by ``Σ w[y_i]`` over non-ignored positions (PyTorch; the number of them without ``weight``);
    ``weighted_mean=False`` divides by the number of non-ignored positions instead. When nothing
    is left (every target ignored) the result is 0 with a zero gradient, or NaN (PyTorch) with
    ``empty="nan"``.

    A float ``target`` of the input's shape holds class probabilities, as in PyTorch
    (``"mean"`` then divides by the number of positions); :func:`soft_cross_entropy` is the
    explicit form. Logits of −inf (masked classes) are outside the support: their terms are
    dropped (0·log 0 = 0, no smoothing mass), so the loss and its gradient stay finite where
    PyTorch's smoothed loss is inf.

    With class-index targets (in eager mode) a low-memory path computes the loss from the
    log-sum-exp of each position and a gather: it saves only its inputs and one float per
    position for backward (``F.cross_entropy`` keeps the logits-sized ``log_softmax``) and its
    backward writes ``softmax − smoothed one-hot``, scaled by the upstream gradient, into one
    logits-sized buffer. Under ``torch.compile`` and ``torch.func`` transforms, with probability
    targets, or with a ``weight`` that requires grad, the loss is composed of PyTorch ops instead
    (same values and gradients; double backward differentiates that composition). CPU logits of
    fewer than 2**18 elements take ``F.cross_entropy`` itself for the plain reductions, where its
    result is finite (an all-ignored mean, smoothing on a −inf class, or an index out of range
    go the low-memory way): its saved ``log_softmax`` is then under 1 MiB, and one C++ call costs
    less than the Python around the low-memory path.

    Args:
        input: logits ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``; the class dim is ``class_dim``.
        target: class indices (integer, the input's shape without the class dim) or class
            probabilities (float, the input's shape).
        weight: class weights ``(C,)``.
        ignore_index: target value that contributes neither to the loss nor to the mean's
            denominator (class-index targets only).
        label_smoothing: ε in [0, 1].
        class_dim: the class dimension of ``input`` (1, or -1 for channels-last).
        weighted_mean: ``"mean"`` divides by Σ w[target] (True, PyTorch) or by the number of
            non-ignored targets (False).
        inplace_backward: opt in to writing the gradient into the logits' own memory during
            backward, so that backward needs no second logits-sized buffer (Liger-Kernel's
            saving, but the logits keep their values until ``backward()`` runs, so metrics can
            still be computed from them after the loss). After backward the logits hold
            ∂loss/∂logits: their content is overwritten. Autograd's version counter then makes
            any other node that saved the logits and runs its backward later raise
            ("modified by an inplace operation") instead of reading the gradient. Raises
            :class:`LossInputError` for logits that are a leaf requiring grad (a parameter's
            storage would be overwritten), with probability targets, under ``torch.compile`` or
            ``torch.func``, and in double backward. Float16/bfloat16 or non-contiguous logits
            are upcast/copied first: the copy is overwritten and the logits stay intact.
        reduction: ``"none"`` (per position, the target's shape) | ``"mean"`` (see above; with
            ``sample_weight``/``mask`` it is Σ m·s·ℓ / Σ m·s·w[y]) | ``"sum"`` (divided by
            ``normalizer`` when given).
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` logits and ``(N, *)`` indices (or ``(N, C, *)`` probabilities) → scalar, or
        ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.zeros(2, 4)                       # uniform over K = 4 classes
        >>> LF.cross_entropy(x, torch.tensor([0, 3]))    # log 4
        tensor(1.3863)
        >>> LF.cross_entropy(x, torch.tensor([-100, -100]))   # all ignored: 0, not NaN
        tensor(0.)
        >>> masked = torch.tensor([[2.0, float("-inf"), 0.0]])
        >>> LF.cross_entropy(masked, torch.tensor([0]), label_smoothing=0.1).isfinite()
        tensor(True)

    References:
        Cox, "The regression analysis of binary sequences", JRSS B 1958.
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016.
    """
    original = input
    input = _logits_input(input)
    check_tensor("target", target)
    check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
    dim = _class_dim(input, class_dim)
    x = _to_channels_first(input, dim)
    weight = _class_vector("weight", weight, input.shape[dim], input)
    unbatched = input.ndim == 1
    if target.is_floating_point():
        if inplace_backward:
            raise LossInputError(
                "inplace_backward=True applies to class-index targets only; this target holds "
                "probabilities (float). Fix: drop inplace_backward, or pass class indices."
            )
        if ignore_index != -100:
            raise LossInputError(
                f"ignore_index={ignore_index} was given with a probability target (float, the "
                "input's shape); it only applies to class indices. Fix: pass integer class "
                "indices, or drop ignore_index and use mask= for positions to skip."
            )
        t = _prob_target(input, target)
        t = _to_channels_first(t, dim)
        rows = probability_cross_entropy(x, t, weight, label_smoothing,
                                         lambda a, b, w: _soft_ce(a, b, w, label_smoothing))
        loss = _restore(_soft_ce(x, t, weight, label_smoothing) if rows is None else rows, unbatched)
        return reduce(loss, reduction, sample_weight=sample_weight, mask=mask,
                      normalizer=normalizer, empty=empty)
    t = _index_target(input, target, dim, ignore_index)
    fast = use_fast_path() and not (weight is not None and weight.requires_grad)
    if inplace_backward:
        _check_inplace_backward(original, fast)
    elif fast and weighted_mean and input.device.type == "cpu" and input.numel() < _SMALL_LOGITS and \
            plain_reduction(input, reduction, empty, sample_weight, mask, normalizer):
        out = _pytorch_cross_entropy(x, t, weight, ignore_index, label_smoothing, reduction)
        if out is not None:
            return _restore(out, unbatched and reduction == "none")
    loss, den = _index_ce(input, target, dim, weight, ignore_index, label_smoothing, fast,
                          inplace_backward)
    if not weighted_mean and weight is not None:
        den = (target != ignore_index).to(input.dtype)
    return reduce(loss, reduction, denominator=den, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


def _pytorch_cross_entropy(x: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                           label_smoothing: float, reduction: str) -> Tensor | None:
    """``F.cross_entropy`` of channels-first logits where it is this loss, else ``None``: a class
    index out of range (the low-memory path names it), and a result that is not finite — an
    all-ignored mean (NaN there, 0 here), smoothing mass on a −inf class (inf there, dropped
    here), or a NaN input, for which the low-memory path gives the same NaN."""
    try:
        out = F.cross_entropy(x, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                              label_smoothing=label_smoothing)
    except (IndexError, RuntimeError):
        return None
    finite = math.isfinite(out.item()) if out.ndim == 0 else bool(torch.isfinite(out.detach()).all())
    return out if finite else None


def _index_ce(input: Tensor, target: Tensor, dim: int, weight: Tensor | None, ignore_index: int,
              label_smoothing: float, fast: bool, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """Per-position cross-entropy with class-index targets (validated, ``target``'s shape) and the
    per-position denominator of ``"mean"`` (w[target], or 1; 0 where ignored): the low-memory
    path when ``fast``, else the composed one."""
    if not fast:
        loss, den = _hard_ce(_to_channels_first(input, dim), _index_target(input, target, dim, ignore_index),
                             weight, ignore_index, label_smoothing)
        unbatched = input.ndim == 1
        return _restore(loss, unbatched), _restore(den, unbatched)
    lead, k, trail = math.prod(input.shape[:dim]), input.shape[dim], math.prod(input.shape[dim + 1:])
    # the row kernels (and out= buffers) need a contiguous layout: a view when it already is
    x3 = (input.reshape(lead, k) if trail == 1 else input.reshape(lead, k, trail)).contiguous()
    t3 = target.reshape(x3.shape[:1] + x3.shape[2:])

    def composed(a: Tensor, b: Tensor, w: Tensor | None) -> Tensor:
        return _hard_ce(a, b, w, ignore_index, label_smoothing)[0]

    # the denominator first: torch ops right after the kernel's pass over the logits run with
    # cold caches
    valid = target != ignore_index
    den = valid.to(input.dtype) if weight is None else torch.where(
        valid, weight[torch.where(valid, target, 0)], weight.new_zeros(()))
    loss = index_cross_entropy(x3, t3, weight, ignore_index, label_smoothing, composed,
                               inplace=inplace).reshape(target.shape)
    return loss, den


def _check_inplace_backward(input: Tensor, fast: bool) -> None:
    base = input if input._base is None else input._base
    if input.requires_grad and base.is_leaf:
        raise LossInputError(
            "inplace_backward=True would overwrite the logits with their gradient, but the logits "
            f"{shape_str(input)} are (a view of) a leaf that requires grad (a parameter or an "
            "input you differentiate); its values would be lost. Fix: pass logits computed by the model "
            "(e.g. the output of the last layer), or drop inplace_backward."
        )
    if not fast:
        raise LossInputError(
            "inplace_backward=True needs the eager low-memory path, which does not run under "
            "torch.compile or torch.func transforms, nor with a weight that requires grad. Fix: "
            "drop inplace_backward there (the compiler plans the memory itself)."
        )


class CrossEntropyLoss(LossModule):
    """Module form of :func:`cross_entropy`."""

    fn = staticmethod(cross_entropy)


@register(
    "soft_cross_entropy",
    family="classification",
    tasks=_TASKS,
    input_kind="logits",
    target_kind="probabilities",
    aliases=("categorical_cross_entropy", "soft_target_cross_entropy"),
    properties=_CE_PROPS,
    formula=r"\ell = -\sum_c w_c\,\tilde t_c \log\operatorname{softmax}(x)_c,\quad "
            r"\tilde t = (1-\varepsilon)\,t + \varepsilon/K",
    references=("Hinton, Vinyals & Dean 2015 (soft targets)",),
    peers={"torch": "torch.nn.functional.cross_entropy (probability targets)",
           "keras": "keras.losses.CategoricalCrossentropy",
           "optax": "optax.losses.softmax_cross_entropy"},
    sample=_prob_target_sample(),
    elementwise=True,
)
def soft_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    class_dim: int = 1,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Cross-entropy of logits against class-probability (or one-hot) targets.

    .. math:: \ell_i = -\sum_c w_c\,\tilde t_{ic} \log \operatorname{softmax}(x_i)_c, \quad
              \tilde t = (1-\varepsilon)\,t + \varepsilon/K

    The same numbers as ``torch.nn.functional.cross_entropy`` with a probability target
    (``"mean"`` divides by the number of positions, not by the weights). Terms with a zero target
    probability are 0, even at a −inf logit (0·log 0 = 0), in the value and the gradient.

    Args:
        input: logits ``(N, C, *)`` (class dim ``class_dim``).
        target: probabilities of the input's shape (rows summing to 1; one-hot allowed).
        weight: class weights ``(C,)``.
        label_smoothing: ε in [0, 1].
        class_dim: the class dimension (1, or -1 for channels-last).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, C, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[1.0, 2.0, float("-inf")]])
        >>> t = torch.softmax(x, 1)                  # the loss at t = softmax(x) is the entropy
        >>> LF.soft_cross_entropy(x, t)
        tensor(0.5822)
        >>> LF.cross_entropy(x, t)                   # cross_entropy accepts probabilities too
        tensor(0.5822)

    References:
        Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015.
    """
    input = _logits_input(input)
    check_floating("target", target)
    check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
    dim = _class_dim(input, class_dim)
    weight = _class_vector("weight", weight, input.shape[dim], input)
    t = _to_channels_first(_prob_target(input, target), dim)
    loss = _restore(_soft_ce(_to_channels_first(input, dim), t, weight, label_smoothing),
                    input.ndim == 1)
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class SoftCrossEntropyLoss(LossModule):
    """Module form of :func:`soft_cross_entropy`."""

    fn = staticmethod(soft_cross_entropy)


@register(
    "nll",
    family="classification",
    tasks=_TASKS,
    input_kind="log_probabilities",
    target_kind="class_index",
    aliases=("nll_loss", "negative_log_likelihood"),
    properties=Properties(convex=True, smoothness="Cinf", units="nats"),
    formula=r"\ell = -w_y\,\log p_y",
    references=("Fisher 1922 (maximum likelihood)",),
    peers={"torch": "torch.nn.functional.nll_loss"},
    sample=_index_sample(log_probs=True),
    elementwise=True,
)
def nll_loss(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    class_dim: int = 1,
    weighted_mean: bool = True,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Negative log-likelihood of log-probabilities, :math:`-w_y \log p_y`; drop-in for
    ``torch.nn.functional.nll_loss``.

    ``"mean"`` divides by Σ w[y] over non-ignored targets (PyTorch), or by their number with
    ``weighted_mean=False``; an all-ignored batch gives 0 with a zero gradient (``empty="nan"``:
    PyTorch's NaN). ``nll_loss(log_softmax(x), y)`` is :func:`cross_entropy`.

    Args:
        input: log-probabilities ``(N, C, *)`` or ``(C,)``.
        target: class indices, the input's shape without the class dim.
        weight: class weights ``(C,)``.
        ignore_index: target value to skip.
        class_dim: the class dimension (1, or -1 for channels-last).
        weighted_mean: divide ``"mean"`` by Σ w[target] (True) or by the count (False).
        reduction: ``"none"`` | ``"mean"`` (as above) | ``"sum"``.
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.randn(3, 5), torch.tensor([0, 4, 2])
        >>> torch.allclose(LF.nll_loss(torch.log_softmax(x, 1), y), LF.cross_entropy(x, y))
        True

    References:
        Fisher, "On the mathematical foundations of theoretical statistics", 1922.
    """
    check_floating("input", input)
    check_tensor("target", target)
    (input,) = as_float32(input)
    dim = _class_dim(input, class_dim)
    weight = _class_vector("weight", weight, input.shape[dim], input)
    t = _index_target(input, target, dim, ignore_index)
    x = _to_channels_first(input, dim)
    if plain_reduction(input, reduction, empty, sample_weight, mask, normalizer) and weighted_mean and (
            reduction != "mean" or (input.device.type == "cpu" and use_fast_path())):
        # PyTorch's kernel reduces as asked, except that its mean over no kept target is NaN: a
        # NaN mean (that, or a NaN input) is computed again below. Reading it synchronises
        # (free on CPU only) and cannot be traced.
        out = F.nll_loss(x, t, weight=weight, ignore_index=ignore_index, reduction=reduction)
        if reduction != "mean" or not math.isnan(out.item()):
            return _restore(out, input.ndim == 1 and reduction == "none")
    loss, den = _hard_ce(x, t, weight, ignore_index, 0.0, log_probs=True)
    if not weighted_mean and weight is not None:
        den = (t != ignore_index).to(input.dtype)
    unbatched = input.ndim == 1
    return reduce(_restore(loss, unbatched), reduction, denominator=_restore(den, unbatched),
                         sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


class NLLLoss(LossModule):
    """Module form of :func:`nll_loss`."""

    fn = staticmethod(nll_loss)


# --------------------------------------------------------------------------- binary


def _element_weight(weight: Tensor | None, input: Tensor) -> Tensor | None:
    """PyTorch's ``weight`` of the binary losses: broadcast to the input, never enlarging it."""
    if weight is None:
        return None
    check_tensor("weight", weight)
    try:
        out = torch.broadcast_shapes(weight.shape, input.shape)
    except RuntimeError:
        out = None
    if out != input.shape:
        raise LossInputError(
            f"weight has shape {shape_str(weight)} which does not broadcast to the input's shape "
            f"{shape_str(input)}. Fix: give weight the input's shape or a shape that broadcasts "
            "to it (e.g. (C,) for (N, C) input)."
        )
    return weight.to(input.dtype)


@register(
    "binary_cross_entropy",
    family="classification",
    tasks=("classification", "binary", "multilabel"),
    input_kind="probabilities",
    target_kind="probabilities",
    aliases=("bce", "bce_loss"),
    properties=Properties(convex=True, smoothness="Cinf", units="nats"),
    formula=r"\ell = -w\,[\,t\,\max(\log p, -100) + (1-t)\max(\log(1-p), -100)\,]",
    references=("Cox 1958 (logistic regression)",),
    peers={"torch": "torch.nn.functional.binary_cross_entropy",
           "keras": "keras.losses.BinaryCrossentropy",
           "sklearn": "sklearn.metrics.log_loss"},
    sample=_binary_sample(input="probability"),
    elementwise=True,
)
def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Binary cross-entropy of probabilities; drop-in for
    ``torch.nn.functional.binary_cross_entropy``.

    .. math:: \ell = -w\,[\,t \max(\log p, -100) + (1 - t) \max(\log(1 - p), -100)\,]

    The logs are clamped at −100 as in PyTorch, so p = 0 or 1 gives at most 100 per element and
    a finite gradient (PyTorch's kernel is used: ``(p - t) / max(p(1-p), 1e-12)``). ``weight`` is
    PyTorch's broadcast element weight, and ``"mean"`` then still divides by the number of
    elements (PyTorch); ``sample_weight`` is the weighted mean Σ s·ℓ / Σ s. Prefer
    :func:`binary_cross_entropy_with_logits` on raw scores: it is exact where this clamps.

    Args:
        input: probabilities in [0, 1] (checked in debug mode), any shape.
        target: same shape, in [0, 1].
        weight: element weight broadcast to the input's shape (PyTorch's ``weight``).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> p, t = torch.tensor([0.0, 1.0, 0.5]), torch.tensor([1.0, 1.0, 1.0])
        >>> LF.binary_cross_entropy(p, t, reduction="none")    # log 0 clamped at -100
        tensor([100.0000,   0.0000,   0.6931])

    References:
        Cox, "The regression analysis of binary sequences", JRSS B 1958.
    """
    check_floating("input", input)
    check_tensor("target", target)
    check_same_shape(input, target)
    check_probabilities(input)
    input, target = as_float32(input, target)
    target = target.to(input.dtype)
    weight = _element_weight(weight, input)
    loss = F.binary_cross_entropy(input, target, weight=weight, reduction="none")
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class BCELoss(LossModule):
    """Module form of :func:`binary_cross_entropy`."""

    fn = staticmethod(binary_cross_entropy)


def _pos_weight(pos_weight: Tensor | None, input: Tensor, class_dim: int) -> Tensor | None:
    """``pos_weight`` as a tensor broadcasting along the input's class dimension only."""
    if pos_weight is None:
        return None
    check_tensor("pos_weight", pos_weight)
    pw = pos_weight.to(input.dtype)
    if pw.ndim == 0 or pw.shape == input.shape:
        return pw
    if input.ndim == 0 or not -input.ndim <= class_dim < input.ndim:
        raise LossInputError(
            f"class_dim={class_dim} is out of range for input of shape {shape_str(input)}."
        )
    dim = class_dim % input.ndim
    num_classes = input.shape[dim]
    if pw.shape != (num_classes,):
        raise LossInputError(
            f"pos_weight has shape {shape_str(pw)} but input {shape_str(input)} has {num_classes} "
            f"classes along class_dim={class_dim}; pos_weight must have shape ({num_classes},) "
            "(one weight per class), be a scalar, or have the input's shape. Fix: pass one "
            "weight per class, or set class_dim to the input's class dimension."
        )
    view = [1] * input.ndim
    view[dim] = num_classes
    return pw.reshape(view)


@register(
    "binary_cross_entropy_with_logits",
    family="classification",
    tasks=("classification", "binary", "multilabel"),
    input_kind="logits",
    target_kind="probabilities",
    aliases=("bce_with_logits", "sigmoid_binary_cross_entropy", "bce_with_logits_loss"),
    properties=Properties(convex=True, smoothness="Cinf", units="nats"),
    formula=r"\ell = -w\,[\,\mathrm{pw}\; t \log\sigma(x) + (1-t) \log\sigma(-x)\,]",
    references=("Cox 1958 (logistic regression)",),
    peers={"torch": "torch.nn.functional.binary_cross_entropy_with_logits",
           "keras": "keras.losses.BinaryCrossentropy(from_logits=True)",
           "optax": "optax.losses.sigmoid_binary_cross_entropy"},
    sample=_binary_sample(),
    elementwise=True,
)
def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    pos_weight: Tensor | None = None,
    class_dim: int = -1,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Binary cross-entropy of logits, computed stably (no exp overflow: finite at logits of
    ±1e4); drop-in for ``torch.nn.functional.binary_cross_entropy_with_logits``.

    .. math:: \ell = -w\,[\,\mathrm{pw}\; t \log\sigma(x) + (1 - t) \log\sigma(-x)\,]

    ``pos_weight`` multiplies the positive term, one value per class along ``class_dim`` (the
    last dim by default, which is how PyTorch broadcasts a ``(C,)`` pos_weight): ``pw_c =
    negatives_c / positives_c`` balances class c. A pos_weight whose length is not the number of
    classes raises instead of broadcasting against another dimension. ``weight`` is PyTorch's
    broadcast element weight (``"mean"`` still divides by the element count);
    ``sample_weight`` gives the weighted mean Σ s·ℓ / Σ s. It is computed on logits clamped to
    ±sqrt(max float), so a −inf logit with target 0 costs 0 with a zero gradient (PyTorch: NaN):
    on CPU without ``weight`` and ``pos_weight`` from 2**18 elements by the C kernel of
    :func:`sigmoid_focal_loss` at γ = 0 (which saves only the inputs), else by PyTorch's kernel
    (``(1-t)·x + (1 + (pw-1)·t)·log(1 + e^{-x})`` in its overflow-free form, with its own
    reduction for the plain ones; on CPU the clamp is skipped when one ``aminmax`` shows every
    logit within it).

    Args:
        input: logits, any shape (multi-label: ``(N, C)`` or ``(N, C, *)`` with ``class_dim=1``).
        target: same shape, in [0, 1].
        weight: element weight broadcast to the input's shape.
        pos_weight: positive-class weights ``(C,)`` along ``class_dim``, a scalar, or the input's shape.
        class_dim: the dimension ``pos_weight`` runs along (default -1, PyTorch's broadcasting).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([1e4, -1e4, 0.0])
        >>> LF.binary_cross_entropy_with_logits(x, torch.tensor([0.0, 1.0, 1.0]), reduction="none")
        tensor([1.0000e+04, 1.0000e+04, 6.9315e-01])

    References:
        Cox, "The regression analysis of binary sequences", JRSS B 1958.
    """
    input = _logits_input(input)
    check_tensor("target", target)
    check_same_shape(input, target)
    (target,) = as_float32(target)
    target = target.to(input.dtype)
    weight = _element_weight(weight, input)
    pw = _pos_weight(pos_weight, input, class_dim)
    if weight is None and pw is None and use_fast_path() and input.numel() >= _SMALL_LOGITS and \
            _native.kernel("sigmoid_focal_int", input, target) is not None:
        # the sigmoid focal loss at γ = 0 without α is this loss, clamp included: its C kernel
        # (elsewhere PyTorch's one kernel beats the focal loss's PyTorch chunks)
        return elementwise_loss(_SIGMOID_FOCAL, input, target, (-1.0, 0.0, 0.0), reduction,
                                sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)
    if plain_reduction(input, reduction, empty, sample_weight, mask, normalizer):
        return _bce_logits(input, target, pw, weight, reduction)
    loss = _bce_logits(input, target, pw)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class BCEWithLogitsLoss(LossModule):
    """Module form of :func:`binary_cross_entropy_with_logits`."""

    fn = staticmethod(binary_cross_entropy_with_logits)


# --------------------------------------------------------------------------- focal


@register(
    "sigmoid_focal",
    family="classification",
    tasks=("classification", "binary", "multilabel", "detection", "imbalanced"),
    input_kind="logits",
    target_kind="probabilities",
    aliases=("sigmoid_focal_loss", "binary_focal_loss", "binary_focal_cross_entropy"),
    properties=Properties(convex=False, smoothness="Cinf", units="nats"),
    formula=r"\ell = -\alpha_t (1 - p_t)^\gamma \log p_t,\quad p_t = p\,t + (1-p)(1-t)",
    references=("Lin et al. 2017 (focal loss, RetinaNet)",),
    peers={"torchvision": "torchvision.ops.sigmoid_focal_loss",
           "keras": "keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, from_logits=True)",
           "optax": "optax.losses.sigmoid_focal_loss"},
    sample=_binary_sample(),
    elementwise=True,
)
def sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Sigmoid focal loss (Lin et al. 2017); the numbers of ``torchvision.ops.sigmoid_focal_loss``.

    .. math::
        \ell = \alpha_t\,(1 - p_t)^\gamma\,\mathrm{BCE}(x, t), \quad p = \sigma(x), \quad
        p_t = p\,t + (1-p)(1-t), \quad \alpha_t = \alpha\,t + (1-\alpha)(1-t)

    ``alpha`` weights the positives (``None`` disables the weighting; torchvision's ``alpha=-1``
    does the same here). Note torchvision's default ``reduction`` is ``"none"``; ours is
    ``"mean"`` (over all elements), and detection normalises by the number of positives:
    ``reduction="sum", normalizer=num_pos``. The BCE term comes from log-sigmoids and
    ``1 - p_t = t·σ(-x) + (1-t)·σ(x)`` is a sum of non-negative terms, so saturated logits
    (±1e4) and any γ ≥ 0 give finite values and gradients; γ = 0 gives exactly
    :func:`binary_cross_entropy_with_logits` (no 0**0).

    Args:
        input: logits, any shape.
        target: same shape, in [0, 1] (binary labels or soft targets).
        alpha: weight of the positive class in [0, 1], or ``None`` (no weighting).
        gamma: focusing exponent γ ≥ 0.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, t = torch.tensor([3.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 0.0])
        >>> torch.allclose(LF.sigmoid_focal_loss(x, t, alpha=None, gamma=0.0),
        ...                LF.binary_cross_entropy_with_logits(x, t))     # γ = 0: plain BCE
        True
        >>> fl = LF.sigmoid_focal_loss(x, t, alpha=None, gamma=2.0, reduction="none")
        >>> bce = LF.binary_cross_entropy_with_logits(x, t, reduction="none")
        >>> p_t = torch.where(t == 1, torch.sigmoid(x), 1 - torch.sigmoid(x))
        >>> torch.allclose(fl, (1 - p_t) ** 2 * bce)   # BCE scaled by (1 - p_t)^γ
        True

    References:
        Lin, Goyal, Girshick, He & Dollár, "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    input = _logits_input(input)
    check_tensor("target", target)
    check_same_shape(input, target)
    check_number("gamma", gamma, low=0.0)
    if alpha is not None:
        check_number("alpha", alpha, high=1.0)
    if is_debug():
        check_probabilities(target, "target")
    (target,) = as_float32(target)
    target = target.to(input.dtype)
    a = -1.0 if alpha is None else float(alpha)
    return elementwise_loss(_SIGMOID_FOCAL, input, target, (a, float(gamma), _within_bce_bound(input)),
                            reduction,
                            sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


def _sigmoid_focal_reference(x: Tensor, t: Tensor, alpha: float, gamma: float,
                             bounded: float = 0.0) -> Tensor:
    """The per-element sigmoid focal loss composed of differentiable ops (``alpha < 0``: none;
    ``bounded`` is the fused kernel's hint, see :func:`_within_bce_bound`, and changes nothing)."""
    loss = _bce_logits(x, t)
    if gamma != 0:
        # 1 - p_t = t·σ(-x) + (1-t)·σ(x): a sum of non-negative terms, so no cancellation (unlike
        # 1 - p_t written out). The clamp at the smallest normal number keeps the gradient of
        # q^γ finite where q underflows to 0 (saturated logits, γ < 1); the value there is
        # tiny^γ·BCE with BCE ≈ 0.
        q = t * torch.sigmoid(-x) + (1.0 - t) * torch.sigmoid(x)
        loss = loss * q.clamp_min(torch.finfo(q.dtype).tiny) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1.0 - alpha) * (1.0 - t)) * loss
    return loss


def _within_bce_bound(x: Tensor) -> float:
    """1.0 when every logit is within the ±sqrt(max) clamp of :func:`_bce_logits`, so the fused
    focal kernel can skip the clamp and its gradient mask (three passes per chunk); measured once
    per call, on CPU only, and only where the fused path runs (elsewhere 0.0: clamp)."""
    if not use_fast_path() or _native.kernel("sigmoid_focal_int", x) is not None:
        return 0.0   # traced (no data-dependent branch), or the C kernel, which clamps by itself
    return float(_logits_within_bound(x))


def _focal_parts(x: Tensor, t: Tensor, bounded: float) -> tuple[Tensor, Tensor, Tensor, bool]:
    """For a chunk: the logits clamped as in :func:`_bce_logits` (unless ``bounded``), BCE, σ(x),
    and whether the clamp was applied."""
    clamped = not bounded
    bound = math.sqrt(torch.finfo(x.dtype).max)
    xc = x.clamp(-bound, bound) if clamped else x
    p = torch.sigmoid(xc)
    # BCE = max(x, 0) - t·x + log(1 + e^-|x|) with 1 + e^-|x| = 1/σ(|x|) = 1/max(σ(x), 1 - σ(x)):
    # the first two terms are exact (0 when t = 1 and x > 0), the last is within an ulp of 1 in
    # absolute terms, and no exp is spent beyond σ's (PyTorch's kernel goes through log_sigmoid,
    # twice the cost of a log on CPU).
    log_r = torch.rsub(p, 1.0)
    torch.maximum(log_r, p, out=log_r).log_()
    bce = torch.clamp_min(xc, 0.0).addcmul_(t, xc, value=-1.0).sub_(log_r)
    return xc, bce, p, clamped


def _focal_q(t: Tensor, p: Tensor, gamma: float) -> Tensor:
    # 1 - p_t = σ(x) + t - 2t·σ(x); for γ < 1 clamped as in the reference (q^(γ-1) stays finite)
    q = torch.addcmul(p, t, p, value=-2.0).add_(t)
    return q.clamp_min_(torch.finfo(p.dtype).tiny) if gamma < 1 else q


def _alpha_t(t: Tensor, alpha: float) -> Tensor:
    return torch.mul(t, 2.0 * alpha - 1.0).add_(1.0 - alpha)


def _focal_scaled_bce(x: Tensor, t: Tensor, gamma: float, bounded: float) -> Tensor:
    _, loss, p, _ = _focal_parts(x, t, bounded)
    if gamma != 0:
        q = _focal_q(t, p, gamma)
        loss.mul_(power_(q, gamma))
    return loss


def _sigmoid_focal_value(x: Tensor, t: Tensor, alpha: float, gamma: float, bounded: float) -> Tensor:
    loss = _focal_scaled_bce(x, t, gamma, bounded)
    return loss.mul_(_alpha_t(t, alpha)) if alpha >= 0 else loss


def _sigmoid_focal_total(x: Tensor, t: Tensor, alpha: float, gamma: float, bounded: float) -> Tensor:
    loss = _focal_scaled_bce(x, t, gamma, bounded)
    if alpha < 0:
        return loss.sum()
    # Σ α_t·ℓ with α_t = (1 - α) + (2α - 1)·t: a sum and a dot product, no α_t tensor
    return (1.0 - alpha) * loss.sum() + (2.0 * alpha - 1.0) * torch.dot(loss, t)


def _sigmoid_focal_grad(x: Tensor, t: Tensor, alpha: float, gamma: float, bounded: float) -> Tensor:
    # dℓ/dx = α_t·(γ·q^(γ-1)·q'·BCE + q^γ·(σ(x) - t)), q' = σ(x)σ(-x)(1 - 2t); the BCE part
    # passes no gradient where the clamp of _bce_logits is active (|x| beyond sqrt(max)).
    xc, bce, p, clamped = _focal_parts(x, t, bounded)
    d = torch.sub(p, t)
    if clamped:
        d.masked_fill_(xc != x, 0.0)
    if gamma != 0:
        q = _focal_q(t, p, gamma)
        dq = torch.ops.aten.sigmoid_backward(bce, p)            # BCE·σ(x)σ(-x), one pass
        dq.addcmul_(t, dq, value=-2.0)                          # q'·BCE
        if gamma == 2:
            d.mul_(q).add_(dq, alpha=2.0).mul_(q)
        elif gamma == 1:
            d.mul_(q).add_(dq)
        else:
            d.mul_(q).add_(dq, alpha=gamma).mul_(power_(q, gamma - 1.0))
    if alpha < 0:
        return d
    # α_t·d = (1 - α)·d + (2α - 1)·t·d
    return torch.mul(d, 1.0 - alpha).addcmul_(t, d, value=2.0 * alpha - 1.0)


_SIGMOID_FOCAL = ElementwiseKernel(
    "sigmoid_focal",
    reference=_sigmoid_focal_reference,
    value=_sigmoid_focal_value,
    grad=_sigmoid_focal_grad,
    total=_sigmoid_focal_total,
    # (-1, 0, ·): no α, γ = 0, binary_cross_entropy_with_logits
    examples=((0.25, 2.0, 1.0), (-1.0, 0.5, 1.0), (0.7, 1.0, 0.0), (0.25, 0.0, 1.0), (0.4, 3.0, 0.0),
              (-1.0, 0.0, 0.0)),
    target="unit",
    # the C kernel clamps every logit itself: the ``bounded`` hint is not needed there
    native=lambda alpha, gamma, bounded: (f"sigmoid_focal_{small_power(gamma)}", (alpha, gamma)),
)


class SigmoidFocalLoss(LossModule):
    """Module form of :func:`sigmoid_focal_loss`."""

    fn = staticmethod(sigmoid_focal_loss)


@register(
    "softmax_focal",
    family="classification",
    tasks=("classification", "imbalanced", "segmentation"),
    input_kind="logits",
    target_kind="class_index",
    aliases=("softmax_focal_loss", "categorical_focal_loss", "categorical_focal_cross_entropy"),
    properties=Properties(convex=False, smoothness="Cinf", units="nats"),
    formula=r"\ell = -\alpha_y\,w_y\,(1 - p_y)^\gamma \log p_y",
    references=("Lin et al. 2017 (focal loss)",),
    peers={"keras": "keras.losses.CategoricalFocalCrossentropy",
           "monai": "monai.losses.FocalLoss(use_softmax=True)"},
    sample=_index_sample(),
    elementwise=True,
)
def softmax_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    class_dim: int = 1,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Softmax (multi-class) focal loss, :math:`-\alpha_y w_y (1-p_y)^\gamma \log p_y`.

    ``alpha`` is a per-class tensor ``(C,)`` or ``None``. A scalar alpha raises: under a softmax
    it would multiply every class alike, i.e. only rescale the loss (the sigmoid focal loss's
    α/(1-α) positive/negative balance has no softmax counterpart). ``weight`` and
    ``ignore_index`` behave as in :func:`cross_entropy`, and so does ``"mean"`` (÷ Σ w[y] over
    non-ignored positions; alpha is a focal factor and does not enter the denominator), so
    γ = 0 with ``alpha=None`` is exactly :func:`cross_entropy`. The loss depends on the logits
    only through the NLL ``u = -log p_y``: it is computed as ``w_y α_y (-expm1(-u))^γ u`` from
    the low-memory cross-entropy's ``u`` (nothing logits-sized saved for backward), with ``u``
    clamped at the smallest normal inside the focal factor, so saturated (``u = 0``) and
    −inf-masked logits give finite gradients for every γ ≥ 0.

    Args:
        input: logits ``(N, C, *)`` (class dim ``class_dim``).
        target: class indices, the input's shape without the class dim.
        gamma: focusing exponent γ ≥ 0.
        alpha: per-class factors ``(C,)``, or ``None``.
        weight: class weights ``(C,)`` (also the mean's denominator, as in cross_entropy).
        ignore_index: target value to skip.
        class_dim: the class dimension (1, or -1 for channels-last).
        reduction: ``"none"`` | ``"mean"`` (÷ Σ w[y] over non-ignored) | ``"sum"``.
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.tensor([[4.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 2])
        >>> torch.allclose(LF.softmax_focal_loss(x, y, gamma=0.0), LF.cross_entropy(x, y))
        True
        >>> LF.softmax_focal_loss(x, y, reduction="none") < LF.cross_entropy(x, y, reduction="none")
        tensor([True, True])

    References:
        Lin, Goyal, Girshick, He & Dollár, "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    input = _logits_input(input)
    check_tensor("target", target)
    check_number("gamma", gamma, low=0.0)
    if alpha is not None and (not isinstance(alpha, Tensor) or alpha.ndim == 0):
        raise LossInputError(
            f"softmax_focal_loss got a scalar alpha={alpha!r}. Under a softmax a single alpha "
            "multiplies every class alike, so it only rescales the loss (the sigmoid focal "
            "loss's positive/negative balance does not carry over). Fix: pass a per-class "
            "tensor alpha of shape (C,), or use sigmoid_focal_loss for alpha-balanced binary focal."
        )
    dim = _class_dim(input, class_dim)
    num_classes = input.shape[dim]
    weight = _class_vector("weight", weight, num_classes, input)
    alpha = _class_vector("alpha", alpha, num_classes, input)
    _index_target(input, target, dim, ignore_index)
    # ℓ is a function of the position's unweighted NLL u = -log p_y alone: -w_y α_y (1-p_y)^γ log p_y
    # = w_y α_y (-expm1(-u))^γ u, so the low-memory cross-entropy gives u and its gradient
    # (softmax - onehot) and autograd scales it per position by h'(u): nothing logits-sized is
    # saved. u is clamped at the smallest normal inside the focal factor, so that the gradient of
    # the γ < 1 power stays finite where p_y rounds to 1 (u = 0, e.g. a logit of 1e4).
    u, den = _index_ce(input, target, dim, None, ignore_index, 0.0, use_fast_path())
    if weight is None and alpha is None and gamma != 0:
        return elementwise_loss(_NLL_FOCAL, u, u.detach(), (float(gamma),), reduction, denominator=den,
                                sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)
    loss = u
    if gamma != 0:
        loss = elementwise_loss(_NLL_FOCAL, u, u.detach(), (float(gamma),), "none")
    safe_t = torch.where(target != ignore_index, target, 0)
    for per_class in (weight, alpha):
        if per_class is not None:
            loss = loss * per_class[safe_t]
    if weight is not None:
        den = den * weight[safe_t]
    return reduce(loss, reduction, denominator=den, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


def _nll_focal(u: Tensor, _: Tensor, gamma: float) -> Tensor:
    return u * (-torch.expm1(-u.clamp_min(torch.finfo(u.dtype).tiny))) ** gamma


def _nll_focal_grad(u: Tensor, _: Tensor, gamma: float) -> Tensor:
    # q^γ + γ·u·q^(γ-1)·(1 - q), q = -expm1(-max(u, tiny)); the clamp passes nothing below tiny
    q = torch.clamp_min(u, torch.finfo(u.dtype).tiny).neg_().expm1_().neg_()
    inner = torch.rsub(q, 1.0).mul_(u).mul_(gamma).mul_(power_(q.clone(), gamma - 1.0))
    inner.mul_(torch.ge(u, torch.finfo(u.dtype).tiny).to(u.dtype))
    return power_(q, gamma).add_(inner)


# The focal factor of a position's NLL u (per position, after the low-memory cross-entropy).
_NLL_FOCAL = ElementwiseKernel(
    "nll_focal",
    reference=_nll_focal,
    value=lambda u, _, gamma: torch.mul(u, power_(torch.clamp_min(u, torch.finfo(u.dtype).tiny)
                                                  .neg_().expm1_().neg_(), gamma)),
    grad=_nll_focal_grad,
    examples=((2.0,), (0.5,), (1.0,), (3.5,)),
    input="positive",
    native=lambda gamma: (f"nll_focal_{small_power(gamma)}", (gamma,)),
)


class SoftmaxFocalLoss(LossModule):
    """Module form of :func:`softmax_focal_loss`."""

    fn = staticmethod(softmax_focal_loss)


# --------------------------------------------------------------------------- PolyLoss


@register(
    "poly1_cross_entropy",
    family="classification",
    tasks=_TASKS,
    input_kind="logits",
    target_kind="class_index",
    aliases=("poly1_loss", "poly_loss", "poly_loss_cross_entropy"),
    properties=Properties(convex=None, smoothness="Cinf", units="nats"),
    formula=r"\ell = -\log p_y + \varepsilon\,(1 - p_y)",
    references=("Leng et al. 2022 (PolyLoss)",),
    peers={"optax": "optax.losses.poly_loss_cross_entropy"},
    sample=_index_sample(),
    elementwise=True,
)
def poly1_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    ignore_index: int = -100,
    class_dim: int = 1,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Poly-1 cross-entropy (PolyLoss), :math:`-\log p_y + \varepsilon (1 - p_y)`.

    The first term of the polynomial expansion of CE, :math:`\sum_j (1-p_y)^j / j`, re-weighted by
    ε (ε = 0 is cross-entropy; ε = -1 removes the first polynomial term). With probability
    targets ``t`` (float, the input's shape), ``p_y`` becomes :math:`\sum_c t_c p_c` as in optax.
    ``"mean"`` divides by the number of non-ignored positions.

    Args:
        input: logits ``(N, C, *)`` (class dim ``class_dim``).
        target: class indices (integer) or probabilities (float, the input's shape).
        epsilon: ε ≥ -1, the weight of the first polynomial term.
        ignore_index: target value to skip (class-index targets).
        class_dim: the class dimension (1, or -1 for channels-last).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.zeros(1, 4), torch.tensor([1])     # p_y = 1/4
        >>> LF.poly1_cross_entropy(x, y, epsilon=1.0) - LF.cross_entropy(x, y)   # ε·(1 - p_y)
        tensor(0.7500)

    References:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
        Functions", ICLR 2022.
    """
    input = _logits_input(input)
    check_tensor("target", target)
    check_number("epsilon", epsilon, low=-1.0)
    dim = _class_dim(input, class_dim)
    if target.is_floating_point():
        logp = torch.log_softmax(_to_channels_first(input, dim), 1)
        t = _to_channels_first(_prob_target(input, target), dim)
        ce = -(t * _finite(logp)).sum(1)
        pt = (t * logp.exp()).sum(1)
        loss = _restore(ce + epsilon * (1.0 - pt), input.ndim == 1)
        return reduce(loss, reduction, sample_weight=sample_weight, mask=mask,
                      normalizer=normalizer, empty=empty)
    _index_target(input, target, dim, ignore_index)
    # with class indices ℓ = u + ε(1 - e^{-u}) of the position's NLL u alone: the low-memory
    # cross-entropy gives u (0 where ignored, where ℓ is then 0 too) and nothing logits-sized is saved
    u, den = _index_ce(input, target, dim, None, ignore_index, 0.0, use_fast_path())
    return elementwise_loss(_NLL_POLY1, u, u.detach(), (float(epsilon),), reduction, denominator=den,
                            sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)


# Poly-1 of a position's NLL u: u + ε(1 - e^-u).
_NLL_POLY1 = ElementwiseKernel(
    "nll_poly1",
    reference=lambda u, _, eps: u - eps * torch.expm1(-u),
    value=lambda u, _, eps: torch.neg(u).expm1_().mul_(-eps).add_(u),
    grad=lambda u, _, eps: torch.neg(u).exp_().mul_(eps).add_(1.0),
    examples=((1.0,), (-1.0,), (2.5,)),
    input="positive",
    native=True,
)


class Poly1CrossEntropyLoss(LossModule):
    """Module form of :func:`poly1_cross_entropy`."""

    fn = staticmethod(poly1_cross_entropy)


# --------------------------------------------------------------------------- hinge / margin


def _signed_target(input: Tensor, target: Tensor, target_kind: str) -> Tensor:
    check_floating("input", input)
    check_tensor("target", target)
    check_same_shape(input, target)
    check_option("target_kind", target_kind, ("pm1", "01"))
    (input,) = as_float32(input)
    if is_debug() and target.numel():
        allowed = (-1.0, 1.0) if target_kind == "pm1" else (0.0, 1.0)
        if not bool(((target == allowed[0]) | (target == allowed[1])).all()):
            raise LossInputError(
                f"target must hold only {allowed[0]:g} and {allowed[1]:g} with "
                f"target_kind={target_kind!r}, got values {target.unique()[:6].tolist()}. Fix: "
                "pass target_kind='01' for {0, 1} labels or map the labels to ±1."
            )
    y = target.to(input.dtype)
    return 2.0 * y - 1.0 if target_kind == "01" else y


@register(
    "hinge",
    family="classification",
    tasks=("classification", "binary"),
    input_kind="scores",
    target_kind="pm1",
    aliases=("hinge_loss",),
    properties=Properties(convex=True, smoothness="C0", units="margin units"),
    formula=r"\ell = \max(0,\, 1 - y\,x)",
    references=("Cortes & Vapnik 1995 (support-vector networks)",),
    peers={"keras": "keras.losses.Hinge", "optax": "optax.losses.hinge_loss",
           "sklearn": "sklearn.metrics.hinge_loss"},
    sample=_binary_sample(target="pm1"),
    elementwise=True,
)
def hinge_loss(
    input: Tensor,
    target: Tensor,
    *,
    target_kind: str = "pm1",
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Binary hinge loss, :math:`\max(0, 1 - y x)` with labels y = ±1.

    Keras's ``Hinge`` maps {0, 1} labels to ±1 by looking at the data; here that is explicit,
    ``target_kind="01"``. The gradient at the kink (y·x = 1) is 0.

    Args:
        input: scores (logits), any shape.
        target: labels, same shape.
        target_kind: ``"pm1"`` (labels ±1, default) or ``"01"`` (labels {0, 1}, mapped to
            2t - 1); never inferred from the data.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([2.0, 0.5, -1.0])
        >>> LF.hinge_loss(x, torch.tensor([1.0, 1.0, 1.0]), reduction="none")  # 0 beyond the margin
        tensor([0.0000, 0.5000, 2.0000])
        >>> LF.hinge_loss(x, torch.tensor([1, 1, 1]), target_kind="01", reduction="none")
        tensor([0.0000, 0.5000, 2.0000])

    References:
        Cortes & Vapnik, "Support-vector networks", Machine Learning 1995.
    """
    y = _signed_target(input, target, target_kind)
    (input,) = as_float32(input)
    return elementwise_loss(_HINGE, input, y, (), reduction, sample_weight=sample_weight, mask=mask,
                            normalizer=normalizer, empty=empty)


def _hinge_reference(x: Tensor, y: Tensor) -> Tensor:
    return torch.relu(1.0 - y * x)


def _hinge_grad(x: Tensor, y: Tensor) -> Tensor:
    # -y where the margin 1 - y·x is positive, else 0 (relu's convention: 0 at the kink)
    return torch.mul(y, x).neg_().add_(1.0).sign_().clamp_min_(0.0).mul_(y).neg_()


_HINGE = ElementwiseKernel(
    "hinge",
    reference=_hinge_reference,
    value=lambda x, y: torch.mul(y, x).neg_().add_(1.0).clamp_min_(0.0),
    grad=_hinge_grad,
    target="sign",
    native=True,
)


class HingeLoss(LossModule):
    """Module form of :func:`hinge_loss`."""

    fn = staticmethod(hinge_loss)


@register(
    "squared_hinge",
    family="classification",
    tasks=("classification", "binary"),
    input_kind="scores",
    target_kind="pm1",
    aliases=("squared_hinge_loss",),
    properties=Properties(convex=True, smoothness="C1", units="margin units squared"),
    formula=r"\ell = \max(0,\, 1 - y\,x)^2",
    references=("Rennie & Srebro 2005; Lee & Lin 2013 (L2-SVM)",),
    peers={"keras": "keras.losses.SquaredHinge"},
    sample=_binary_sample(target="pm1"),
    elementwise=True,
)
def squared_hinge_loss(
    input: Tensor,
    target: Tensor,
    *,
    target_kind: str = "pm1",
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Squared hinge loss, :math:`\max(0, 1 - y x)^2` with labels ±1 (L2-SVM); continuously
    differentiable, unlike :func:`hinge_loss`.

    Args:
        input: scores (logits), any shape.
        target: labels, same shape.
        target_kind: ``"pm1"`` (labels ±1, default) or ``"01"`` (labels {0, 1}, mapped to
            2t - 1); never inferred from the data.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, y = torch.tensor([2.0, 0.5, -1.0]), torch.ones(3)
        >>> torch.equal(LF.squared_hinge_loss(x, y, reduction="none"),
        ...             LF.hinge_loss(x, y, reduction="none") ** 2)
        True

    References:
        Lee & Lin, "A Study on L2-Loss (Squared Hinge-Loss) Multiclass SVM", Neural Computation 2013.
    """
    y = _signed_target(input, target, target_kind)
    (input,) = as_float32(input)
    return elementwise_loss(_SQUARED_HINGE, input, y, (), reduction, sample_weight=sample_weight,
                            mask=mask, normalizer=normalizer, empty=empty)


_SQUARED_HINGE = ElementwiseKernel(
    "squared_hinge",
    reference=lambda x, y: torch.relu(1.0 - y * x).square(),
    value=lambda x, y: torch.mul(y, x).neg_().add_(1.0).clamp_min_(0.0).square_(),
    grad=lambda x, y: torch.mul(y, x).neg_().add_(1.0).clamp_min_(0.0).mul_(y).mul_(-2.0),
    target="sign",
    native=True,
)


class SquaredHingeLoss(LossModule):
    """Module form of :func:`squared_hinge_loss`."""

    fn = staticmethod(squared_hinge_loss)


@register(
    "multiclass_hinge",
    family="classification",
    tasks=_TASKS,
    input_kind="scores",
    target_kind="class_index",
    aliases=("multiclass_hinge_loss", "crammer_singer_loss", "categorical_hinge"),
    properties=Properties(convex=True, smoothness="C0", units="margin units"),
    formula=r"\ell = \max(0,\, 1 + \max_{j\ne y} x_j - x_y)",
    references=("Crammer & Singer 2001 (multiclass SVM)",),
    peers={"optax": "optax.losses.multiclass_hinge_loss", "keras": "keras.losses.CategoricalHinge"},
    sample=_index_sample(),
    elementwise=True,
)
def multiclass_hinge_loss(
    input: Tensor,
    target: Tensor,
    *,
    class_dim: int = 1,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Crammer–Singer multiclass hinge, :math:`\max(0, 1 + \max_{j\ne y} x_j - x_y)`.

    Equal to optax's :math:`\max_j (x_j + 1 - t_j) - \sum_j t_j x_j` (``t`` one-hot), computed
    with the true class taken out of the max so that infinite scores stay finite; a float
    ``target`` of the input's shape is taken as that one-hot matrix. Keras's
    ``CategoricalHinge`` takes ``max_j (1 - t_j) x_j``, which includes a 0 for the true class:
    it equals this loss whenever some wrong-class score is ≥ 0 (e.g. for probabilities) and is
    larger when all wrong-class scores are negative.

    Args:
        input: scores ``(N, C, *)`` (class dim ``class_dim``).
        target: class indices (integer, the input's shape without the class dim) or one-hot
            (float, the input's shape).
        class_dim: the class dimension (1, or -1 for channels-last).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *)`` and ``(N, *)`` → scalar, or ``(N, *)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[3.0, 1.0, 0.0], [0.5, 1.0, 0.0]])
        >>> LF.multiclass_hinge_loss(x, torch.tensor([0, 0]), reduction="none")  # margin met; 1 + 1 - 0.5
        tensor([0.0000, 1.5000])

    References:
        Crammer & Singer, "On the Algorithmic Implementation of Multiclass Kernel-based Vector
        Machines", JMLR 2001.
    """
    check_floating("input", input)
    check_tensor("target", target)
    (input,) = as_float32(input)
    dim = _class_dim(input, class_dim)
    x = _to_channels_first(input, dim)
    if target.is_floating_point():
        onehot = _to_channels_first(_prob_target(input, target), dim)
    else:
        t = _index_target(input, target, dim, None)
        classes = torch.arange(x.shape[1], device=x.device).reshape((1, -1) + (1,) * (x.ndim - 2))
        onehot = (t.unsqueeze(1) == classes).to(x.dtype)
    # where, not products: 0·(±inf) at an infinite score would be NaN
    is_true = onehot != 0
    true_score = torch.where(is_true, onehot * x, x.new_zeros(())).sum(1)
    best_other = torch.where(is_true, torch.finfo(x.dtype).min, x).amax(1)
    loss = torch.relu(1.0 + best_other - true_score)
    return reduce(_restore(loss, input.ndim == 1), reduction, sample_weight=sample_weight,
                  mask=mask, normalizer=normalizer, empty=empty)


class MultiClassHingeLoss(LossModule):
    """Module form of :func:`multiclass_hinge_loss`."""

    fn = staticmethod(multiclass_hinge_loss)


def _two_d(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor, bool]:
    """PyTorch's (N, C) / (C,) layouts of the margin losses; returns batched tensors."""
    check_floating("input", input)
    check_tensor("target", target)
    check_ndim("input", input, (1, 2), "(N, C) or (C,)")
    (input,) = as_float32(input)
    unbatched = input.ndim == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    return input, target, unbatched


@register(
    "multi_margin",
    family="classification",
    tasks=_TASKS,
    input_kind="scores",
    target_kind="class_index",
    aliases=("multi_margin_loss", "weston_watkins_loss"),
    properties=Properties(convex=True, smoothness="C0", units="margin units"),
    formula=r"\ell = \frac{w_y}{C}\sum_{j\ne y}\max(0,\, m - x_y + x_j)^p",
    references=("Weston & Watkins 1999 (multi-class SVM)",),
    peers={"torch": "torch.nn.functional.multi_margin_loss"},
    sample=_index_sample(),
    elementwise=True,
)
def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Multi-class margin loss (Weston–Watkins); drop-in for
    ``torch.nn.functional.multi_margin_loss``.

    .. math:: \ell_i = \frac{w_{y_i}}{C} \sum_{j \ne y_i} \max(0, m - x_{i y_i} + x_{ij})^p

    The class weight multiplies the powered hinge, as PyTorch's kernel does (its docs put it
    inside the power). ``"mean"`` divides by N, also with ``weight`` (PyTorch).

    Args:
        input: scores ``(N, C)`` or ``(C,)``.
        target: class indices ``(N,)`` or ``()``.
        p: 1 or 2.
        margin: m.
        weight: class weights ``(C,)``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C)`` and ``(N,)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[0.1, 0.2, 0.4, 0.8]])
        >>> LF.multi_margin_loss(x, torch.tensor([3]))   # (0.3 + 0.4 + 0.6) / 4
        tensor(0.3250)

    References:
        Weston & Watkins, "Support vector machines for multi-class pattern recognition", ESANN 1999.
    """
    x, t, unbatched = _two_d(input, target)
    check_option("p", p, (1, 2))
    check_number("margin", margin)
    if t.shape != x.shape[:1]:
        raise LossInputError(
            f"target has shape {shape_str(target)} but input {shape_str(input)} needs class "
            f"indices of shape {shape_str(input.shape[:-1])}."
        )
    num_classes = x.shape[1]
    check_class_index(t, num_classes)
    weight = _class_vector("weight", weight, num_classes, x)
    x_y = x.gather(1, t.unsqueeze(1))
    z = torch.relu(margin - x_y + x)
    if p == 2:
        z = z.square()
    others = t.unsqueeze(1) != torch.arange(num_classes, device=x.device)
    loss = torch.where(others, z, z.new_zeros(())).sum(1) / num_classes
    if weight is not None:
        loss = loss * weight[t]
    return reduce(_restore(loss, unbatched), reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


class MultiMarginLoss(LossModule):
    """Module form of :func:`multi_margin_loss`."""

    fn = staticmethod(multi_margin_loss)


@register(
    "soft_margin",
    family="classification",
    tasks=("classification", "binary"),
    input_kind="scores",
    target_kind="pm1",
    aliases=("soft_margin_loss", "logistic_loss"),
    properties=Properties(convex=True, smoothness="Cinf", units="nats"),
    formula=r"\ell = \log(1 + e^{-y x})",
    references=("Logistic loss; PyTorch SoftMarginLoss",),
    peers={"torch": "torch.nn.functional.soft_margin_loss"},
    sample=_binary_sample(target="pm1"),
    elementwise=True,
)
def soft_margin_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Logistic (soft-margin) loss with labels ±1, :math:`\log(1 + e^{-y x}) = -\log\sigma(y x)`;
    the numbers of ``torch.nn.functional.soft_margin_loss``.

    Computed as ``-logsigmoid(y·x)``, so it stays finite where PyTorch's ``log1p(exp(-y x))``
    overflows (y·x ≲ -89 in float32). The smooth counterpart of :func:`hinge_loss`.

    Args:
        input: scores, any shape.
        target: labels ±1, same shape.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> LF.soft_margin_loss(torch.tensor([0.0, -1e4]), torch.tensor([1.0, 1.0]), reduction="none")
        tensor([6.9315e-01, 1.0000e+04])

    References:
        Bishop, *Pattern Recognition and Machine Learning*, 2006, §4.3.2 (logistic regression).
    """
    y = _signed_target(input, target, "pm1")
    (input,) = as_float32(input)
    return reduce(-F.logsigmoid(y * input), reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


class SoftMarginLoss(LossModule):
    """Module form of :func:`soft_margin_loss`."""

    fn = staticmethod(soft_margin_loss)


@register(
    "multilabel_soft_margin",
    family="classification",
    tasks=("classification", "multilabel"),
    input_kind="logits",
    target_kind="multi_hot",
    aliases=("multilabel_soft_margin_loss",),
    properties=Properties(convex=True, smoothness="Cinf", units="nats"),
    formula=r"\ell_i = -\frac1C \sum_c w_c\,[\,t_c \log\sigma(x_c) + (1-t_c)\log\sigma(-x_c)\,]",
    references=("PyTorch MultiLabelSoftMarginLoss",),
    peers={"torch": "torch.nn.functional.multilabel_soft_margin_loss"},
    sample=_binary_sample(),
    elementwise=True,
)
def multilabel_soft_margin_loss(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Multi-label one-vs-all logistic loss, averaged over the classes (last dim) per sample;
    drop-in for ``torch.nn.functional.multilabel_soft_margin_loss``.

    .. math:: \ell_i = -\frac1C \sum_c w_c\,[\,t_{ic}\log\sigma(x_{ic}) + (1-t_{ic})\log\sigma(-x_{ic})\,]

    It is :func:`binary_cross_entropy_with_logits` with ``reduction="none"`` averaged over the
    class dimension.

    Args:
        input: logits ``(N, C)`` (the last dim holds the classes).
        target: multi-hot labels, same shape.
        weight: element weight broadcast to the input (usually ``(C,)``), as in PyTorch.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C)`` and ``(N, C)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, t = torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[1.0, 0.0, 1.0]])
        >>> torch.allclose(LF.multilabel_soft_margin_loss(x, t),
        ...                LF.binary_cross_entropy_with_logits(x, t))
        True

    References:
        PyTorch documentation, ``torch.nn.MultiLabelSoftMarginLoss``.
    """
    per = binary_cross_entropy_with_logits(input, target, weight=weight, reduction="none")
    if per.ndim == 0:
        raise LossInputError("input must have a class dimension (N, C), got a 0-d tensor.")
    return reduce(per.mean(-1), reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


class MultiLabelSoftMarginLoss(LossModule):
    """Module form of :func:`multilabel_soft_margin_loss`."""

    fn = staticmethod(multilabel_soft_margin_loss)


@register(
    "multilabel_margin",
    family="classification",
    tasks=("classification", "multilabel"),
    input_kind="scores",
    target_kind="class_index_list",
    aliases=("multilabel_margin_loss",),
    properties=Properties(convex=True, smoothness="C0", units="margin units"),
    formula=r"\ell_i = \frac1C \sum_{j \in Y_i} \sum_{k \notin Y_i} \max(0,\, 1 - (x_j - x_k))",
    references=("PyTorch MultiLabelMarginLoss; Weston et al. (rank-based multi-label hinge)",),
    peers={"torch": "torch.nn.functional.multilabel_margin_loss"},
    sample=_multilabel_index_sample,
    elementwise=True,
)
def multilabel_margin_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Multi-label margin (ranking hinge) loss; drop-in for
    ``torch.nn.functional.multilabel_margin_loss``.

    .. math:: \ell_i = \frac1C \sum_{j \in Y_i} \sum_{k \notin Y_i} \max(0, 1 - (x_{ij} - x_{ik}))

    ``target`` holds the label indices of each sample, padded after the last one with -1 (only
    the entries before the first -1 count; a repeated index counts again, as in PyTorch). Eager
    calls run PyTorch's kernels (label by label, O(N·L·C) for L labels, saving the scores and a
    label mask); under ``torch.compile`` and for a second derivative it is composed from the
    ``(N, C, C)`` pair matrix, which needs C² floats per sample.

    Args:
        input: scores ``(N, C)`` or ``(C,)``.
        target: integer label lists, the input's shape, -1-terminated.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C)`` and ``(N, C)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[0.1, 0.2, 0.4, 0.8]])
        >>> LF.multilabel_margin_loss(x, torch.tensor([[3, 0, -1, 1]]))  # labels {3, 0} vs {1, 2}
        tensor(0.8500)

    References:
        PyTorch documentation, ``torch.nn.MultiLabelMarginLoss``.
    """
    x, t, unbatched = _two_d(input, target)
    check_same_shape(x, t)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise LossInputError(
            f"target must hold integer label indices padded with -1, got dtype {target.dtype}. "
            "Fix: pass the label lists as torch.long."
        )
    check_class_index(t, x.shape[1], ignore_index=-1)
    t = t.to(torch.int64)
    fast = (use_fast_path() and x.device.type in ("cpu", "cuda") and x.numel() > 0
            and x.dtype in (torch.float32, torch.float64))
    loss = _MultilabelMargin.apply(x, t) if fast else _multilabel_margin(x, t)
    return reduce(_restore(loss, unbatched), reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


def _multilabel_margin(x: Tensor, t: Tensor) -> Tensor:
    """Per-sample multi-label margin loss composed over all (label, non-label) pairs: O(N·C²)
    memory, the reference (and the form under ``torch.compile`` and in double backward)."""
    num_classes = x.shape[1]
    listed = torch.cumprod((t >= 0).to(torch.int64), 1).bool()  # entries before the first -1
    classes = torch.arange(num_classes, device=x.device)
    hits = ((t.unsqueeze(-1) == classes) & listed.unsqueeze(-1)).sum(1)  # (N, C) label counts
    pair = torch.relu(1.0 - x.unsqueeze(2) + x.unsqueeze(1))  # [n, j, k] = max(0, 1 - x_j + x_k)
    counted = (hits > 0).unsqueeze(2) & (hits == 0).unsqueeze(1)  # j a label, k not
    # where, not a product: a pair built from a -inf score is inf and must not give 0·inf
    pair = torch.where(counted, hits.to(x.dtype).unsqueeze(2) * pair, x.new_zeros(()))
    return pair.sum((1, 2)) / num_classes


class _MultilabelMargin(torch.autograd.Function):
    """The same per-sample loss through PyTorch's kernels, O(N·L·C) for L listed labels instead
    of the composed form's (N, C, C) pairs (gigabytes at C = 1000), saving what PyTorch's own
    autograd saves (the scores and the label mask); a second derivative differentiates the
    composed form."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor) -> Tensor:
        loss, is_target = torch.ops.aten.multilabel_margin_loss_forward(x, t, 0)   # 0: per sample
        ctx.save_for_backward(x, t, is_target)
        return loss

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None]:
        x, t, is_target = ctx.saved_tensors
        if torch.is_grad_enabled():
            return reference_grads(lambda v: _multilabel_margin(v, t), g, (x,))[0], None
        return torch.ops.aten.multilabel_margin_loss_backward(g.contiguous(), x, t, 0, is_target), None


class MultiLabelMarginLoss(LossModule):
    """Module form of :func:`multilabel_margin_loss`."""

    fn = staticmethod(multilabel_margin_loss)

