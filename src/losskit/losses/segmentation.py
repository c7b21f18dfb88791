r"""Segmentation losses: region overlaps (Dice, Jaccard/soft IoU, Tversky, focal Tversky,
generalized Dice), the Lovász extensions of the Jaccard loss, and the usual compounds
(Dice + cross-entropy, Dice + focal).

Pixel-wise cross-entropy is ``losskit.functional.cross_entropy`` on ``(N, C, H, W)`` logits
(or any ``(N, C, *)``) with index targets ``(N, H, W)``; it is not repeated here.

Every region loss takes the same input description, made explicit (PITFALLS 14–16):

* ``mode`` (required keyword):

  - ``"binary"``: ``input`` ``(N, *)`` logits of one foreground class, ``target`` the same shape
    with values in [0, 1]; sigmoid activation.
  - ``"multilabel"``: ``input`` ``(N, C, *)``, ``target`` ``(N, C, *)`` in [0, 1]; a sigmoid per
    channel (classes may overlap).
  - ``"multiclass"``: ``input`` ``(N, C, *)`` with ``C >= 2``; softmax over ``C``. ``target``
    either class indices ``(N, *)`` (integer dtype) or one-hot / soft labels ``(N, C, *)``
    (floating dtype). A softmax over one channel is constantly 1 and raises. The softmax and the
    per-class sums run as one fused step with a closed-form backward (see
    :func:`region_statistics`).

* ``from_logits=True``: the activation above is applied first; ``False`` means ``input`` already
  holds probabilities. The activation is always applied *before* the background channel is
  dropped (``include_background=False`` drops channel 0 of the probabilities and the target).
* Any number of spatial dimensions: ``(N, C, H, W)``, ``(N, C, D, H, W)``, ...
* ``reduce_over="sample"`` (default) computes the overlap of each image and class, shape
  ``(N, C)``; ``"batch"`` sums the statistics over the whole batch first, shape ``(C,)``. This is
  MONAI's ``batch=False``/``True``.
* ``smooth_nr`` / ``smooth_dr`` are added to the numerator / denominator separately (default
  ``1e-5`` each, MONAI's). ``ignore_index``: pixels whose target equals it are left out of every
  sum (for ``"binary"``/``"multilabel"`` compared elementwise with the float target).

Empty-target policy (pinned by the tests): with the default equal smoothing, an empty ground
truth together with an empty prediction has a perfect score, loss 0, for the image (``"sample"``)
or for the batch (``"batch"``); an empty ground truth with a non-empty prediction has loss
``1 - s_nr / (ΣP + s_dr)``, close to 1, and a gradient that shrinks the prediction. With
``smooth_dr = 0`` the ratio's denominator is clamped at the smallest positive float, so nothing is
ever NaN: an all-zero ratio reads as overlap 0 (loss 1) with a finite gradient.

``reduction="none"`` returns the per-image-per-class losses ``(N, C')`` (``reduce_over="sample"``)
or per-class ``(C',)`` (``"batch"``), where ``C'`` is the number of classes kept (1 in binary
mode); ``"mean"`` is the mean over those entries (MONAI's ``"mean"``), and ``sample_weight`` /
``mask`` act on that matrix (``(N,)`` weights are per image).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit import _native
from losskit._core.checks import (
    LossInputError,
    check_class_index,
    check_floating,
    check_number,
    check_option,
    check_probabilities,
    check_tensor,
    did_you_mean,
    shape_str,
)
from losskit._core.fused import use_fast_path
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register

__all__ = [
    "DiceCELoss",
    "DiceFocalLoss",
    "DiceLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "TverskyLoss",
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_loss",
    "focal_tversky_loss",
    "generalized_dice_loss",
    "jaccard_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "region_statistics",
    "tversky_loss",
]

MODES: tuple[str, ...] = ("binary", "multiclass", "multilabel")
REDUCE_OVER: tuple[str, ...] = ("sample", "batch")
_TASKS = ("segmentation",)


# --------------------------------------------------------------------------- shared statistics


def region_statistics(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    from_logits: bool = True,
    ignore_index: int | None = None,
    include_background: bool = True,
    squared: bool = False,
    reduce_over: str = "sample",
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The three sums every region loss is made of, per image and class ``(N, C')`` (or per
    class ``(C',)`` with ``reduce_over="batch"``): the soft intersection :math:`I = \sum p\,y`,
    the prediction mass :math:`P = \sum p` (:math:`\sum p^2` with ``squared``) and the target mass
    :math:`Y = \sum y` (:math:`\sum y^2`). See the module docs for ``mode`` and the layouts.

    In ``"multiclass"`` mode (without ``squared``) the softmax and the sums are one fused step:
    :math:`I` and :math:`P` come from one batched product of the probabilities with the
    one-hot (or soft) target, and the backward is closed-form (the native softmax backward of
    :math:`g_P + g_I\,y`), keeping only the probabilities and the target for backward. Index
    targets are expanded to a float one-hot by a ``gather`` of an identity's columns (no
    scatter, deterministic), ignored pixels to a zero column, so :math:`P` counts valid pixels
    only. On CPU (contiguous float32/float64 logits) C kernels do the softmax and the sums in one
    sweep for index and for dense targets alike, keeping only the logits and the target.
    ``losskit.losses.segmentation.FUSED = False`` selects the composed path (``gather`` /
    ``scatter_add`` into ``(N, C)`` bins, autograd), which the tests use as a reference, and
    which ``torch.func`` transforms (``vmap``, ``grad``, ``jvp``) and ``squared`` always take.
    """
    check_floating("input", input)
    check_tensor("target", target)
    check_option("mode", mode, MODES)
    check_option("reduce_over", reduce_over, REDUCE_OVER)
    (input,) = as_float32(input)
    if input.ndim < 2:
        raise LossInputError(
            f"input must have a batch dimension and at least one more, got {shape_str(input)}. "
            "Fix: give (N, *) in binary mode or (N, C, *) otherwise."
        )
    n = input.shape[0]
    v = math.prod(input.shape[2:])  # pixels per image (not -1: N may be 0)
    if mode == "multiclass":
        c = input.shape[1]
        if c < 2:
            raise LossInputError(
                f"mode='multiclass' applies a softmax over the {c} channel of input {shape_str(input)}; "
                "a softmax over one channel is constantly 1, so the loss could not learn. "
                "Fix: use mode='binary' (sigmoid) for one foreground channel, or give C >= 2 logits."
            )
        if not from_logits:
            check_probabilities(input)
        x = input.reshape(n, c, v)
        if target.is_floating_point():
            if target.shape != input.shape:
                raise LossInputError(
                    f"target {shape_str(target)} is floating point, so it is read as one-hot / soft "
                    f"labels, which must have the shape of input {shape_str(input)}. Fix: give class "
                    f"indices of shape {shape_str(input.shape[:1] + input.shape[2:])} as a long "
                    "tensor, or one-hot labels of the input's shape."
                )
            if ignore_index is not None:
                raise LossInputError(
                    "ignore_index needs class-index targets in mode='multiclass'; got one-hot / soft "
                    "targets. Fix: pass the index target, or zero those pixels with a mask yourself."
                )
            (y,) = as_float32(target)
            y = y.to(x.dtype).reshape(n, c, v)
            kernel = None if y.requires_grad else _native_region_kernel(x, squared, from_logits)
            if kernel is not None:
                stats = _NativeRegionSums.apply(x, y.contiguous(), -1, kernel)
            elif _fused(squared) and not y.requires_grad:
                inter, mass = _SoftmaxRegionSums.apply(x, y, None, 0, from_logits)
                stats = (inter, mass, y.sum(-1))
            else:
                stats = _dense_stats(_activate(x, from_logits), y, None, squared)
        else:
            want = input.shape[:1] + input.shape[2:]
            if target.shape != want:
                raise LossInputError(
                    f"target has shape {shape_str(target)}; class-index targets for input "
                    f"{shape_str(input)} must have shape {shape_str(want)} (the input without its "
                    "class dim). Fix: squeeze the target's channel dim, or pass one-hot float "
                    "targets of the input's shape."
                )
            check_class_index(target, c, ignore_index=ignore_index)
            kernel = _native_region_kernel(x, squared, from_logits)
            if kernel is not None:
                cols, k = _index_columns(target.reshape(n, v), c, ignore_index)
                inter, mass, count = _NativeRegionSums.apply(x, cols.contiguous(), c if k > c else -1, kernel)
                stats = (inter, mass, count)
            elif _fused(squared):
                cols, k = _index_columns(target.reshape(n, v), c, ignore_index)
                eye = torch.eye(c, k, dtype=x.dtype, device=x.device)  # column C: zeros
                onehot = _pick_columns(eye.expand(n, c, k), cols)
                inter, mass = _SoftmaxRegionSums.apply(x, onehot, cols, k, from_logits)
                stats = (inter, mass, onehot.sum(-1))
            else:
                stats = _index_stats(_activate(x, from_logits), target.reshape(n, v), ignore_index,
                                     squared)
    else:
        if target.shape != input.shape:
            raise LossInputError(
                f"input has shape {shape_str(input)} but target has shape {shape_str(target)}; in "
                f"mode={mode!r} they must match (no silent broadcasting). Fix: give target the "
                "input's shape."
            )
        if target.dtype == torch.bool or not target.is_floating_point():
            target = target.to(input.dtype)
        (target,) = as_float32(target)
        c = 1 if mode == "binary" else input.shape[1]
        v = math.prod(input.shape[1:]) if mode == "binary" else v
        if from_logits:
            p = torch.sigmoid(input)
        else:
            check_probabilities(input)
            p = input
        p = p.reshape(n, c, v)
        y = target.to(p.dtype).reshape(n, c, v)
        valid = None
        if ignore_index is not None:
            valid = y != ignore_index
            y = torch.where(valid, y, 0.0)
        stats = _dense_stats(p, y, valid, squared)
    if not include_background:
        if c < 2:
            raise LossInputError(
                f"include_background=False drops channel 0, but mode={mode!r} with input "
                f"{shape_str(input)} has {c} channel. Fix: keep include_background=True."
            )
        stats = tuple(s[:, 1:] for s in stats)  # type: ignore[assignment]
    if reduce_over == "batch":
        stats = tuple(s.sum(0) for s in stats)  # type: ignore[assignment]
    return stats  # type: ignore[return-value]


def _dense_stats(p: Tensor, y: Tensor, valid: Tensor | None, squared: bool
                 ) -> tuple[Tensor, Tensor, Tensor]:
    if valid is not None:
        p = p * valid.to(p.dtype)
    inter = (p * y).sum(-1)
    if squared:
        return inter, p.square().sum(-1), y.square().sum(-1)
    return inter, p.sum(-1), y.sum(-1)


FUSED: bool = True
"""Use the fused multiclass region sums (:class:`_SoftmaxRegionSums`); ``False`` selects the
composed reference path (tests compare the two)."""


def _fused(squared: bool) -> bool:
    if not FUSED or squared:
        return False
    # torch.func transforms (vmap, jvp, grad) cannot see through the Function: composed path
    return torch.compiler.is_compiling() or not torch._C._are_functorch_transforms_active()


def _activate(x: Tensor, from_logits: bool) -> Tensor:
    return torch.softmax(x, 1) if from_logits else x


def _index_columns(y: Tensor, c: int, ignore_index: int | None) -> tuple[Tensor, int]:
    """Index targets ``(N, V)`` as long column numbers of a ``(C, K)`` table: the class itself,
    and ``C`` (an extra all-zero column, ``K = C + 1``) for an ignored pixel."""
    y = y.long()
    if ignore_index is None:
        return y, c
    return torch.where(y == ignore_index, c, y), c + 1


def _pick_columns(table: Tensor, y: Tensor) -> Tensor:
    """``out[n, c, v] = table[n, c, y[n, v]]`` for a table ``(N, C, K)`` (one parallel
    ``gather``: no scatter, deterministic)."""
    n, c, _ = table.shape
    return table.gather(2, y.unsqueeze(1).expand(n, c, y.shape[1]))


def _index_grad_p(grad_inter: Tensor, grad_mass: Tensor, cols: Tensor, columns: int) -> Tensor:
    """The gradient in the probabilities of the region sums with index targets: the ``(N, C, K)``
    table ``g_P 1ᵀ + diag(g_I)`` (a zero column C for ignored pixels when ``K = C + 1``) read at
    each pixel's column."""
    table = torch.diag_embed(grad_inter) + grad_mass.unsqueeze(-1)
    if columns > table.shape[-1]:
        table = torch.cat([table, table.new_zeros(table.shape[:-1] + (1,))], -1)
    return _pick_columns(table, cols)


def _softmax_grad_differentiable(x: Tensor, grad_p: Tensor) -> Tensor:
    """The softmax's backward over dim 1, recomputed from the logits in differentiable ops (for
    ``create_graph``)."""
    p = torch.softmax(x, 1)
    return p * (grad_p - (p * grad_p).sum(1, keepdim=True))


class _SoftmaxRegionSums(torch.autograd.Function):
    r"""Multiclass region sums fused with the softmax: from logits ``x`` ``(N, C, V)`` (or
    probabilities with ``softmax=False``) and target weights ``t`` ``(N, C, V)`` (one-hot or soft
    labels), the intersection :math:`I_{nc} = \sum_v p_{ncv} t_{ncv}` and the mass
    :math:`P_{nc} = \sum_v p_{ncv}`. With index targets ``y`` (column numbers, see
    :func:`_index_columns`; ``t`` is then their one-hot, zero for an ignored pixel) the mass is over
    the valid pixels, :math:`\sum_v p_{ncv} \sum_k t_{nkv}`.

    Both come from one batched product :math:`M = p\,t^\top` (``(N, C, C)``): :math:`I` is its
    diagonal and, for index targets, :math:`P` its row sums. Backward in closed form: the
    gradient with respect to ``p`` is :math:`g_P + g_I\,t`, fed to the native softmax backward.
    For index targets it is read from the ``(N, C, K)`` table :math:`g_P 1^\top + diag(g_I)`
    (zero column for ignored pixels) at each pixel's column, so only ``p`` and the index targets
    are kept for backward, never the one-hot. Under ``create_graph`` the backward recomputes the
    softmax from ``x`` in differentiable ops, so double backward works."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, t: Tensor, y: Tensor | None,
                columns: int, softmax: bool) -> tuple[Tensor, Tensor]:
        p = torch.softmax(x, 1) if softmax else x
        m = torch.bmm(p, t.mT)
        inter = m.diagonal(dim1=1, dim2=2).contiguous()
        mass = p.sum(-1) if y is None else m.sum(-1)
        ctx.save_for_backward(x, p if softmax else None, t if y is None else y)
        ctx.flags = (softmax, y is not None, columns)  # type: ignore[attr-defined]
        return inter, mass

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_inter: Tensor,
                 grad_mass: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        x, p, t = ctx.saved_tensors  # type: ignore[attr-defined]
        softmax, index, columns = ctx.flags  # type: ignore[attr-defined]
        if index:  # t: column numbers; column C, if there, is an ignored pixel's (zero)
            grad_p = _index_grad_p(grad_inter, grad_mass, t, columns)
        else:
            grad_p = torch.addcmul(grad_mass.unsqueeze(-1), t, grad_inter.unsqueeze(-1))
        if not softmax:
            return grad_p, None, None, None, None
        if torch.is_grad_enabled():  # create_graph: differentiable in x for double backward
            return _softmax_grad_differentiable(x, grad_p), None, None, None, None
        return torch.ops.aten._softmax_backward_data(grad_p, p, 1, p.dtype), None, None, None, None


def _native_region_kernel(x: Tensor, squared: bool, from_logits: bool) -> _native.SoftmaxRows | None:
    """The C kernels of the softmax region sums, where they apply: logits (softmax), linear
    denominators, contiguous float32/float64 CPU ``(N, C, V)``, not under compile or a
    ``torch.func`` transform."""
    if squared or not from_logits or not FUSED or not use_fast_path():
        return None
    return _native.softmax_rows(x)


class _NativeRegionSums(torch.autograd.Function):
    """:class:`_SoftmaxRegionSums` through the C kernels of :mod:`losskit._native`: the softmax
    and the sums in one sweep (one ``exp`` per logit each way) against index columns (no one-hot)
    or dense targets (one-hot or soft labels, which take no gradient here), and only the logits
    and the target kept for backward (the softmax is recomputed). Returns ``(inter, mass,
    count)``; the count takes no gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, target: Tensor, ignored: int,
                kernel: _native.SoftmaxRows) -> tuple[Tensor, Tensor, Tensor]:
        inter, mass, count = kernel.region_forward(x, target, ignored)
        ctx.save_for_backward(x, target)
        ctx.ignored, ctx.kernel = ignored, kernel
        ctx.mark_non_differentiable(count)
        return inter, mass, count

    @staticmethod
    def backward(ctx: Any, g_inter: Tensor, g_mass: Tensor, _: Tensor) -> tuple[Tensor | None, ...]:
        x, target = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the softmax in differentiable ops
            if target.is_floating_point():
                grad_p = torch.addcmul(g_mass.unsqueeze(-1), target, g_inter.unsqueeze(-1))
            else:
                grad_p = _index_grad_p(g_inter, g_mass, target, x.shape[1] + (1 if ctx.ignored >= 0 else 0))
            return _softmax_grad_differentiable(x, grad_p), None, None, None
        out = torch.empty_like(x)
        ctx.kernel.region_backward(x, target, ctx.ignored, g_inter.contiguous(), g_mass.contiguous(), out)
        return out, None, None, None


def _index_stats(p: Tensor, y: Tensor, ignore_index: int | None, squared: bool
                 ) -> tuple[Tensor, Tensor, Tensor]:
    n, c, _ = p.shape
    y = y.long()
    q = p.square() if squared else p
    if ignore_index is None:
        pt = p.gather(1, y.unsqueeze(1)).squeeze(1)
        ones = torch.ones_like(pt)
        mass = q.sum(-1)
    else:
        keep = y != ignore_index
        y = torch.where(keep, y, 0)
        ones = keep.to(p.dtype)
        pt = p.gather(1, y.unsqueeze(1)).squeeze(1) * ones
        mass = torch.bmm(q, ones.unsqueeze(-1)).squeeze(-1)
    bins = p.new_zeros(n, c)
    inter = bins.scatter_add(1, y, pt)
    count = bins.scatter_add(1, y, ones)  # Σ y = Σ y² for hard labels
    return inter, mass, count


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    # smooth_dr = 0 with an empty image and an empty prediction: 0 / 0 → 0, finite gradient.
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)


def _class_weighted(loss: Tensor, class_weight: Tensor | None) -> Tensor:
    if class_weight is None:
        return loss
    check_tensor("class_weight", class_weight)
    k = loss.shape[-1]
    if class_weight.shape != (k,):
        raise LossInputError(
            f"class_weight has shape {shape_str(class_weight)}, but the loss has {k} classes "
            "(after include_background). Fix: one weight per kept class, shape "
            f"({k},); without the background its weight is left out too."
        )
    return loss * class_weight.to(loss.dtype)


def _reduce_region(loss: Tensor, reduction: str, sample_weight: Tensor | None, mask: Tensor | None,
                   normalizer: float | Tensor | None, empty: str) -> Tensor:
    return reduce(loss, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


def _check_smooth(smooth_nr: float, smooth_dr: float) -> None:
    check_number("smooth_nr", smooth_nr, low=0.0)
    check_number("smooth_dr", smooth_dr, low=0.0)


# --------------------------------------------------------------------------- samples


def _seg_sample(mode: str = "multiclass", shape: tuple[int, ...] = (2, 3, 4, 5),
                **kwargs: Any) -> Any:
    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * (1e4 if extreme else 1.5)
        if mode == "multiclass":
            y = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=gen)
        else:
            tshape = shape[:1] + shape[2:] if mode == "binary" else shape
            if mode == "binary":
                x = x[:, 0]
            y = (torch.rand(tshape, generator=gen, dtype=torch.float64) > 0.5).to(dtype)
        return Sample((x.to(dtype), y), {"mode": mode, **kwargs})

    return sample


def _props() -> Properties:
    return Properties(convex=False, smoothness="Cinf", robust=None, homogeneity=None,
                      units="dimensionless, in [0, 1]", symmetric=None, zero_at_perfect=False)


_REGION_DOC = """
    The inputs, the activation, ``reduce_over``, the smoothing and the empty-target policy are
    those of the family (module docs of :mod:`losskit.losses.segmentation`).

    Args:
        input: logits (or probabilities with ``from_logits=False``): ``(N, *)`` in binary mode,
            ``(N, C, *)`` otherwise.
        target: ``(N, *)`` class indices (multiclass) or the input's shape with values in [0, 1].
        mode: ``"binary"`` | ``"multiclass"`` | ``"multilabel"`` (required).
        from_logits: apply sigmoid / softmax first (default ``True``).
        smooth_nr: added to the numerator (default ``1e-5``).
        smooth_dr: added to the denominator (default ``1e-5``).
        reduce_over: ``"sample"`` (per image and class, default) or ``"batch"`` (per class over
            the whole batch).
        include_background: keep channel 0 (default ``True``); dropped after the activation.
        ignore_index: target value whose pixels are left out of every sum.
        class_weight: ``(C',)`` weights multiplying each class's loss (after background removal;
            ``"mean"`` still divides by the number of entries, as MONAI's ``weight``).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``reduction="none"``: ``(N, C')`` with ``reduce_over="sample"``, ``(C',)`` with
        ``"batch"``; ``C'`` is the number of classes kept (1 in binary mode). Otherwise a scalar.
"""


def _region_doc(fn: Any) -> Any:
    fn.__doc__ = (fn.__doc__ or "").replace("    <region-args>\n", _REGION_DOC)
    return fn


_COMMON = dict(family="segmentation", tasks=_TASKS, input_kind="logits",
               target_kind="class_index_or_mask")


# --------------------------------------------------------------------------- Dice / Jaccard


@register(
    "dice", **_COMMON, aliases=("dice_loss", "soft_dice"), properties=_props(),
    formula=r"1 - \frac{2\sum p y + s_{nr}}{\sum p + \sum y + s_{dr}}",
    references=("Milletari, Navab, Ahmadi, V-Net, 3DV 2016",),
    peers={"monai": "monai.losses.DiceLoss", "kornia": "kornia.losses.dice_loss",
           "keras": "keras.losses.Dice", "optax": "optax.losses.dice_loss",
           "smp": "segmentation_models_pytorch.losses.DiceLoss"},
    sample=_seg_sample(),
)
@_region_doc
def dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    from_logits: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    reduce_over: str = "sample",
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weight: Tensor | None = None,
    squared_denominator: bool = False,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Soft Dice loss, :math:`1 - (2 I + s_{nr}) / (P + Y + s_{dr})` per image (or batch) and
    class, with :math:`I = \sum p y`, :math:`P = \sum p`, :math:`Y = \sum y`
    (:math:`\sum p^2, \sum y^2` with ``squared_denominator=True``, V-Net's form).
    <region-args>
        squared_denominator: V-Net's :math:`\sum p^2 + \sum y^2` denominator (MONAI's
            ``squared_pred``).

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([[[0, 1], [1, 2]]])                    # (N, H, W) class indices
        >>> sure = 40.0 * torch.nn.functional.one_hot(y, 3).permute(0, 3, 1, 2).double()
        >>> LF.dice_loss(sure, y, mode="multiclass")               # confident and right → 0
        tensor(0., dtype=torch.float64)
        >>> empty = torch.zeros(1, 2, 2)                           # binary: no foreground at all
        >>> LF.dice_loss(torch.full((1, 2, 2), -40.0), empty, mode="binary")  # predicted empty
        tensor(0.)

    References:
        Milletari, Navab, Ahmadi, "V-Net: Fully Convolutional Neural Networks for Volumetric
        Medical Image Segmentation", 3DV 2016.
    """
    _check_smooth(smooth_nr, smooth_dr)
    i, p, y = region_statistics(input, target, mode=mode, from_logits=from_logits,
                                ignore_index=ignore_index, include_background=include_background,
                                squared=squared_denominator, reduce_over=reduce_over)
    loss = 1 - _ratio(2 * i + smooth_nr, p + y + smooth_dr)
    return _reduce_region(_class_weighted(loss, class_weight), reduction, sample_weight, mask,
                          normalizer, empty)


class DiceLoss(LossModule):
    """Module form of :func:`dice_loss`."""

    fn = staticmethod(dice_loss)


@register(
    "jaccard", **_COMMON, aliases=("jaccard_loss", "soft_iou", "soft_jaccard"), properties=_props(),
    formula=r"1 - \frac{\sum p y + s_{nr}}{\sum p + \sum y - \sum p y + s_{dr}}",
    references=("Rahman & Wang, ISVC 2016", "Jaccard 1912"),
    peers={"monai": "monai.losses.DiceLoss(jaccard=True)",
           "smp": "segmentation_models_pytorch.losses.JaccardLoss"},
    sample=_seg_sample(),
)
@_region_doc
def jaccard_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    from_logits: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    reduce_over: str = "sample",
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weight: Tensor | None = None,
    squared_denominator: bool = False,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Soft Jaccard (IoU) loss, :math:`1 - (I + s_{nr}) / (P + Y - I + s_{dr})`; for the same
    overlap it is larger than Dice (:math:`J = D / (2 - D)`).
    <region-args>
        squared_denominator: use :math:`\sum p^2 + \sum y^2 - I` (MONAI ``jaccard=True,
            squared_pred=True``).

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.tensor([[0.2, 0.9, 0.7, 0.1]])                 # probabilities
        >>> t = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
        >>> kw = dict(mode="binary", from_logits=False, smooth_nr=0.0, smooth_dr=0.0)
        >>> d = 1 - LF.dice_loss(x, t, **kw)
        >>> torch.allclose(1 - LF.jaccard_loss(x, t, **kw), d / (2 - d))   # J = D / (2 - D)
        True

    References:
        Rahman & Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
        Segmentation", ISVC 2016.
    """
    _check_smooth(smooth_nr, smooth_dr)
    i, p, y = region_statistics(input, target, mode=mode, from_logits=from_logits,
                                ignore_index=ignore_index, include_background=include_background,
                                squared=squared_denominator, reduce_over=reduce_over)
    loss = 1 - _ratio(i + smooth_nr, p + y - i + smooth_dr)
    return _reduce_region(_class_weighted(loss, class_weight), reduction, sample_weight, mask,
                          normalizer, empty)


class JaccardLoss(LossModule):
    """Module form of :func:`jaccard_loss`."""

    fn = staticmethod(jaccard_loss)


# --------------------------------------------------------------------------- Tversky


def _tversky_index(i: Tensor, p: Tensor, y: Tensor, alpha: float, beta: float, smooth_nr: float,
                   smooth_dr: float) -> Tensor:
    # FP = Σ p(1 - y) = P - I and FN = Σ (1 - p) y = Y - I, exactly, also for soft labels
    return _ratio(i + smooth_nr, i + alpha * (p - i) + beta * (y - i) + smooth_dr)


@register(
    "tversky", **_COMMON, aliases=("tversky_loss",), properties=_props(),
    formula=r"1 - \frac{I + s_{nr}}{I + \alpha\,FP + \beta\,FN + s_{dr}}",
    references=("Salehi, Erdogmus, Gholipour, MLMI 2017",),
    peers={"monai": "monai.losses.TverskyLoss", "kornia": "kornia.losses.tversky_loss",
           "keras": "keras.losses.Tversky", "optax": "optax.losses.dice_loss(alpha, beta)",
           "smp": "segmentation_models_pytorch.losses.TverskyLoss"},
    sample=_seg_sample(alpha=0.3, beta=0.7),
)
@_region_doc
def tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    alpha: float = 0.5,
    beta: float = 0.5,
    from_logits: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    reduce_over: str = "sample",
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weight: Tensor | None = None,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Tversky loss, :math:`1 - (I + s_{nr}) / (I + \alpha FP + \beta FN + s_{dr})` with
    :math:`FP = \sum p(1-y)`, :math:`FN = \sum (1-p) y`. ``alpha`` weighs false positives and
    ``beta`` false negatives (Salehi's, MONAI's, kornia's and Keras's convention);
    :math:`\alpha = \beta = 0.5` is Dice, :math:`\alpha = \beta = 1` is Jaccard. Salehi et al.
    recommend ``alpha=0.3, beta=0.7`` for small lesions (recall matters more).
    <region-args>
        alpha: weight of the false positives (default 0.5).
        beta: weight of the false negatives (default 0.5).

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, t = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
        >>> torch.allclose(LF.tversky_loss(x, t, mode="multiclass", alpha=0.5, beta=0.5),
        ...                LF.dice_loss(x, t, mode="multiclass", smooth_nr=2e-5, smooth_dr=2e-5))
        True

    References:
        Salehi, Erdogmus, Gholipour, "Tversky loss function for image segmentation using 3D fully
        convolutional deep networks", MLMI 2017.
    """
    _check_smooth(smooth_nr, smooth_dr)
    check_number("alpha", alpha, low=0.0)
    check_number("beta", beta, low=0.0)
    i, p, y = region_statistics(input, target, mode=mode, from_logits=from_logits,
                                ignore_index=ignore_index, include_background=include_background,
                                reduce_over=reduce_over)
    loss = 1 - _tversky_index(i, p, y, alpha, beta, smooth_nr, smooth_dr)
    return _reduce_region(_class_weighted(loss, class_weight), reduction, sample_weight, mask,
                          normalizer, empty)


class TverskyLoss(LossModule):
    """Module form of :func:`tversky_loss`."""

    fn = staticmethod(tversky_loss)


@register(
    "focal_tversky", **_COMMON, aliases=("focal_tversky_loss",),
    properties=_props(),
    formula=r"\Big(1 - \frac{I + s_{nr}}{I + \alpha\,FP + \beta\,FN + s_{dr}}\Big)^{1/\gamma}",
    references=("Abraham & Khan, ISBI 2019",),
    peers={"smp": "segmentation_models_pytorch.losses.TverskyLoss(gamma=1/γ)"},
    sample=_seg_sample(),
)
@_region_doc
def focal_tversky_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 4 / 3,
    from_logits: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    reduce_over: str = "sample",
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weight: Tensor | None = None,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Focal Tversky loss, :math:`(1 - TI)^{1/\gamma}` per image and class (Abraham & Khan's
    exponent convention: :math:`\gamma \in [1, 3]`, default :math:`4/3`, their recommended
    :math:`\alpha = 0.3, \beta = 0.7` in this module's FP/FN naming; their paper's
    :math:`\alpha = 0.7` multiplies the false negatives). ``gamma=1`` is :func:`tversky_loss`.
    segmentation_models_pytorch raises to the power ``gamma`` instead: its ``gamma=g`` is
    ``gamma=1/g`` here. The paper sums over classes; ``"mean"`` averages over images and classes
    (``"sum"`` over one image is the paper's value).

    At a perfect score (:math:`TI = 1`) :math:`x^{1/\gamma}` has an infinite slope for
    :math:`\gamma > 1`; the base is clamped at the smallest positive float, so the gradient there is 0.
    <region-args>
        alpha: weight of the false positives (default 0.3).
        beta: weight of the false negatives (default 0.7).
        gamma: focal exponent; the loss is :math:`(1 - TI)^{1/\gamma}` (default 4/3).

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, t = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
        >>> torch.allclose(LF.focal_tversky_loss(x, t, mode="multiclass", gamma=1.0),
        ...                LF.tversky_loss(x, t, mode="multiclass", alpha=0.3, beta=0.7))
        True

    References:
        Abraham & Khan, "A Novel Focal Tversky Loss Function with Improved Attention U-Net for
        Lesion Segmentation", ISBI 2019.
    """
    _check_smooth(smooth_nr, smooth_dr)
    check_number("alpha", alpha, low=0.0)
    check_number("beta", beta, low=0.0)
    check_number("gamma", gamma, low=0.0, low_open=True)
    i, p, y = region_statistics(input, target, mode=mode, from_logits=from_logits,
                                ignore_index=ignore_index, include_background=include_background,
                                reduce_over=reduce_over)
    base = 1 - _tversky_index(i, p, y, alpha, beta, smooth_nr, smooth_dr)
    loss = base.clamp_min(torch.finfo(base.dtype).tiny).pow(1.0 / gamma)
    return _reduce_region(_class_weighted(loss, class_weight), reduction, sample_weight, mask,
                          normalizer, empty)


class FocalTverskyLoss(LossModule):
    """Module form of :func:`focal_tversky_loss`."""

    fn = staticmethod(focal_tversky_loss)


# --------------------------------------------------------------------------- generalized Dice

WEIGHT_TYPES: tuple[str, ...] = ("square", "simple", "uniform")


@register(
    "generalized_dice", **_COMMON, aliases=("generalized_dice_loss", "gdl"), properties=_props(),
    formula=r"1 - \frac{2\sum_c w_c I_c + s_{nr}}{\sum_c w_c (P_c + Y_c) + s_{dr}},\ w_c = 1/Y_c^2",
    references=("Sudre et al., DLMIA 2017", "Crum, Camara, Hill, IEEE TMI 2006"),
    peers={"monai": "monai.losses.GeneralizedDiceLoss",
           "optax": "optax.losses.multiclass_generalized_dice_loss"},
    sample=_seg_sample(),
    skip={"mask": "one loss per image (the classes are already summed); tested in "
                  "test_segmentation.py"},
)
def generalized_dice_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    weight_type: str = "square",
    from_logits: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    reduce_over: str = "sample",
    include_background: bool = True,
    ignore_index: int | None = None,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Generalized Dice loss (Sudre et al.), one ratio per image summing over classes with
    weights :math:`w_c = 1/Y_c^2` (``weight_type="square"``), :math:`1/Y_c` (``"simple"``) or 1
    (``"uniform"``), :math:`Y_c` the class's target mass in the image (or batch).

    A class absent from the target would get an infinite weight; as in MONAI, such a weight is
    replaced by the largest finite weight of the same image (of the batch with
    ``reduce_over="batch"``); when no class is present all weights are 0 and the loss is
    :math:`1 - s_{nr}/s_{dr}` (0 with the default smoothing). The weights are computed without
    gradient (they depend on the target only).

    Args:
        input: logits (probabilities with ``from_logits=False``), ``(N, C, *)`` (``(N, *)`` in
            binary mode).
        target: class indices ``(N, *)`` or the input's shape with values in [0, 1].
        mode: ``"binary"`` | ``"multiclass"`` | ``"multilabel"`` (required).
        weight_type: ``"square"`` (Sudre, default) | ``"simple"`` | ``"uniform"`` (MONAI's ``w_type``).
        from_logits: apply sigmoid / softmax first.
        smooth_nr: added to the numerator.
        smooth_dr: added to the denominator.
        reduce_over: ``"sample"`` (one ratio per image) or ``"batch"`` (one ratio for the batch).
        include_background: keep channel 0.
        ignore_index: target value whose pixels are left out.
        $reduction
        sample_weight: per-image weights ``(N,)``.
        mask: bool ``(N,)``, True = keep the image.
        $normalizer
        $empty

    Shape:
        ``reduction="none"``: ``(N,)`` with ``reduce_over="sample"``, ``(1,)`` with ``"batch"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, t = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
        >>> uniform = LF.generalized_dice_loss(x, t, mode="multiclass", weight_type="uniform",
        ...                                    smooth_nr=0.0, smooth_dr=0.0, reduction="none")
        >>> micro = LF.dice_loss(x.softmax(1).flatten(1), torch.nn.functional.one_hot(t, 3)
        ...                      .permute(0, 3, 1, 2).flatten(1).float(), mode="binary",
        ...                      from_logits=False, smooth_nr=0.0, smooth_dr=0.0, reduction="none")
        >>> torch.allclose(uniform, micro.squeeze(1))     # uniform weights: Dice over all classes
        True

    References:
        Sudre, Li, Vercauteren, Ourselin, Cardoso, "Generalised Dice overlap as a deep learning
        loss function for highly unbalanced segmentations", DLMIA 2017.
        Crum, Camara, Hill, "Generalized overlap measures for evaluation and validation in medical
        image analysis", IEEE TMI 2006.
    """
    _check_smooth(smooth_nr, smooth_dr)
    check_option("weight_type", weight_type, WEIGHT_TYPES)
    i, p, y = region_statistics(input, target, mode=mode, from_logits=from_logits,
                                ignore_index=ignore_index, include_background=include_background,
                                reduce_over=reduce_over)
    if reduce_over == "batch":
        i, p, y = i.unsqueeze(0), p.unsqueeze(0), y.unsqueeze(0)
    with torch.no_grad():
        present = y > 0
        safe = torch.where(present, y, 1.0)
        if weight_type == "square":
            w = safe.square().reciprocal()
        elif weight_type == "simple":
            w = safe.reciprocal()
        else:
            w = torch.ones_like(safe)
        w = torch.where(present, w, 0.0)
        w = torch.where(present, w, w.amax(1, keepdim=True))
    loss = 1 - _ratio(2 * (w * i).sum(1) + smooth_nr, (w * (p + y)).sum(1) + smooth_dr)
    return _reduce_region(loss, reduction, sample_weight, mask, normalizer, empty)


class GeneralizedDiceLoss(LossModule):
    """Module form of :func:`generalized_dice_loss`."""

    fn = staticmethod(generalized_dice_loss)


# --------------------------------------------------------------------------- Lovász


def _lovasz_weights(gt_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (Berman et al.,
    Alg. 1), along the last dim; rows may be batched."""
    gts = gt_sorted.sum(-1, keepdim=True)
    inter = gts - gt_sorted.cumsum(-1)
    union = gts + (1 - gt_sorted).cumsum(-1)  # ≥ 1 at every position with a real pixel
    jac = 1 - inter / union.clamp_min(1.0)
    return torch.cat((jac[..., :1], jac[..., 1:] - jac[..., :-1]), -1)


def _lovasz_sample(kind: str) -> Any:
    def sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
        shape = (2, 3, 4, 5) if kind == "softmax" else (2, 4, 5)
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * (1e4 if extreme else 1.5)
        if kind == "softmax":
            y = torch.randint(0, 3, (2, 4, 5), generator=gen)
        else:
            y = (torch.rand(shape, generator=gen) > 0.5).long()
        return Sample((x.to(dtype), y))

    return sample


@register(
    "lovasz_hinge", **{**_COMMON, "target_kind": "binary_mask"}, aliases=("lovasz_hinge_loss",),
    properties=Properties(convex=True, smoothness="C0", robust="bounded_influence",
                          homogeneity=None, units="surrogate of 1 - IoU", zero_at_perfect=True),
    formula=r"\overline{\Delta_J}(m),\ m_i = \max(0, 1 - x_i s_i)",
    references=("Berman, Rannen Triki, Blaschko, CVPR 2018",),
    peers={"kornia": "kornia.losses.lovasz_hinge_loss",
           "smp": "segmentation_models_pytorch.losses.LovaszLoss(mode='binary')"},
    sample=_lovasz_sample("hinge"),
)
def lovasz_hinge_loss(
    input: Tensor,
    target: Tensor,
    *,
    per_image: bool = True,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Lovász hinge loss (binary): the Lovász extension of the Jaccard loss applied to the hinge
    errors :math:`m_i = \max(0, 1 - x_i s_i)`, :math:`s_i = 2 y_i - 1` (Berman et al., Eq. 13):
    the errors sorted in decreasing order, dotted with the Jaccard-loss increments.

    ``per_image=True`` (Berman's default for the hinge, and kornia's) computes one loss per image;
    ``False`` one over all pixels of the batch. Pixels whose target equals ``ignore_index`` are
    moved behind all others in the sort, so they contribute nothing; no boolean indexing, no data-
    dependent branch (traces with ``torch.compile(fullgraph=True)``).

    Args:
        input: logits ``(N, *)``.
        target: ``(N, *)`` labels in {0, 1} (or ``ignore_index``).
        per_image: one loss per image (default) or one over the batch.
        ignore_index: target value whose pixels are left out.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the per-image losses.

    Shape:
        ``reduction="none"``: ``(N,)`` with ``per_image=True``, ``(1,)`` otherwise.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([[1, 0, 1, 0]])
        >>> LF.lovasz_hinge_loss(4.0 * (2 * y - 1).float(), y)      # every margin ≥ 1 → 0
        tensor(0.)
        >>> LF.lovasz_hinge_loss(torch.zeros(1, 4), y)              # all errors 1 → 1 - IoU(∅) = 1
        tensor(1.)

    References:
        Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: A tractable surrogate for the
        optimization of the intersection-over-union measure in neural networks", CVPR 2018.
    """
    check_floating("input", input)
    check_tensor("target", target)
    check_option("reduction", reduction, ("none", "mean", "sum"))
    if input.ndim < 1 or target.shape != input.shape:
        raise LossInputError(
            f"input has shape {shape_str(input)} but target has shape {shape_str(target)}; the "
            "binary Lovász hinge pairs logits (N, *) with labels of the same shape. Fix: give both "
            "the same shape (squeeze a channel dim of size 1)."
        )
    (input,) = as_float32(input)
    n = input.shape[0]
    x = input.reshape(n, -1) if per_image else input.reshape(1, -1)
    t = target.reshape(x.shape)
    valid = torch.ones_like(x, dtype=torch.bool) if ignore_index is None else t != ignore_index
    gt = torch.where(valid, t, 0).to(x.dtype)
    errors = 1 - x * (2 * gt - 1)
    errors = torch.where(valid, errors, float("-inf"))
    errors_sorted, perm = torch.sort(errors, dim=-1, descending=True)
    gt_sorted = gt.gather(-1, perm)
    per = (errors_sorted.relu() * _lovasz_weights(gt_sorted)).sum(-1)
    return reduce(per, reduction)


class LovaszHingeLoss(LossModule):
    """Module form of :func:`lovasz_hinge_loss`."""

    fn = staticmethod(lovasz_hinge_loss)


@register(
    "lovasz_softmax", **{**_COMMON, "target_kind": "class_index"}, aliases=("lovasz_softmax_loss",),
    properties=Properties(convex=False, smoothness="C0", robust="redescending",
                          homogeneity=None, units="surrogate of 1 - mIoU", zero_at_perfect=False),
    formula=r"\frac{1}{|\mathcal C|}\sum_{c\in\mathcal C} \overline{\Delta_{J_c}}(|y_c - p_c|)",
    references=("Berman, Rannen Triki, Blaschko, CVPR 2018",),
    peers={"kornia": "kornia.losses.lovasz_softmax_loss",
           "smp": "segmentation_models_pytorch.losses.LovaszLoss(mode='multiclass')"},
    sample=_lovasz_sample("softmax"),
)
def lovasz_softmax_loss(
    input: Tensor,
    target: Tensor,
    *,
    classes: str = "present",
    per_image: bool = False,
    from_logits: bool = True,
    ignore_index: int | None = None,
    class_weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Lovász-softmax loss (multiclass): for each class, the errors :math:`|[y = c] - p_c|` sorted in
    decreasing order and dotted with the Jaccard-loss increments of that class (Berman et al.,
    Eq. 12), averaged over the classes.

    ``classes="present"`` (Berman's default) averages over the classes present in the target
    (of each image with ``per_image=True``, of the batch otherwise); ``"all"`` over every class
    (kornia's choice). An image with no valid pixel (everything ignored) has loss 0.
    ``class_weight`` multiplies each class's term (kornia's ``weight``; the average still
    divides by the number of classes). Sorting replaces the data-dependent selection of the
    reference code: ignored pixels are sorted behind all others with zero error, so the loss
    traces with ``torch.compile(fullgraph=True)``.

    Args:
        input: logits ``(N, C, *)`` (probabilities with ``from_logits=False``).
        target: class indices ``(N, *)``.
        classes: ``"present"`` | ``"all"``.
        per_image: one loss per image (default ``False``: one over the batch, Berman's default).
        from_logits: apply the softmax first.
        ignore_index: target value whose pixels are left out.
        class_weight: ``(C,)`` per-class multipliers.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the per-image losses.

    Shape:
        ``reduction="none"``: ``(N,)`` with ``per_image=True``, ``(1,)`` otherwise.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> y = torch.tensor([[[0, 1], [2, 1]]])
        >>> sure = 50.0 * torch.nn.functional.one_hot(y, 3).permute(0, 3, 1, 2).double()
        >>> LF.lovasz_softmax_loss(sure, y)                  # confident and right → 0
        tensor(0., dtype=torch.float64)

    References:
        Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: A tractable surrogate for the
        optimization of the intersection-over-union measure in neural networks", CVPR 2018.
    """
    check_floating("input", input)
    check_tensor("target", target)
    check_option("classes", classes, ("present", "all"))
    check_option("reduction", reduction, ("none", "mean", "sum"))
    if input.ndim < 2 or input.shape[1] < 2:
        raise LossInputError(
            f"input must be (N, C, *) logits with C >= 2, got {shape_str(input)}; a softmax over one "
            "channel is constantly 1. Fix: use lovasz_hinge_loss for a single foreground channel."
        )
    want = input.shape[:1] + input.shape[2:]
    if target.shape != want:
        raise LossInputError(
            f"target has shape {shape_str(target)}; class indices for input {shape_str(input)} must "
            f"have shape {shape_str(want)}. Fix: squeeze the target's channel dim."
        )
    c = input.shape[1]
    check_class_index(target, c, ignore_index=ignore_index)
    (input,) = as_float32(input)
    p = torch.softmax(input, 1) if from_logits else input
    n = p.shape[0]
    if per_image:
        p = p.reshape(n, c, -1)
        t = target.reshape(n, 1, -1)
    else:
        p = p.transpose(0, 1).reshape(1, c, -1)
        t = target.reshape(1, 1, -1)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    classes_idx = torch.arange(c, device=p.device).view(1, c, 1)
    fg = ((t == classes_idx) & valid).to(p.dtype)  # (B, C, S): per-class indicator, sorted below
    errors = torch.where(valid, (fg - p).abs(), -1.0)  # ignored pixels sort last
    errors_sorted, perm = torch.sort(errors, dim=-1, descending=True)
    fg_sorted = fg.gather(-1, perm)
    per_class = (errors_sorted.clamp_min(0) * _lovasz_weights(fg_sorted)).sum(-1)  # (B, C)
    if class_weight is not None:
        check_tensor("class_weight", class_weight)
        if class_weight.shape != (c,):
            raise LossInputError(
                f"class_weight has shape {shape_str(class_weight)}; expected ({c},), one per class."
            )
        per_class = per_class * class_weight.to(per_class.dtype)
    if classes == "all":
        per = per_class.mean(-1)
    else:
        present = (fg.sum(-1) > 0).to(per_class.dtype)
        per = (per_class * present).sum(-1) / present.sum(-1).clamp_min(1.0)
    return reduce(per, reduction)


class LovaszSoftmaxLoss(LossModule):
    """Module form of :func:`lovasz_softmax_loss`."""

    fn = staticmethod(lovasz_softmax_loss)


# --------------------------------------------------------------------------- compounds


def _region_options(fn: Any, given: dict[str, Any] | None, owner: str) -> dict[str, Any]:
    given = dict(given or {})
    allowed = [n for n, p in inspect.signature(fn).parameters.items()
               if p.kind is p.KEYWORD_ONLY and n not in ("mode", "reduction", "sample_weight", "mask",
                                                          "normalizer", "empty")]
    for key in given:
        if key not in allowed:
            raise LossInputError(
                f"{owner} got an unknown key {key!r}.{did_you_mean(key, allowed)} "
                f"Allowed: {', '.join(allowed)}."
            )
    return given


_CE_KEYS = {"multiclass": ("weight", "ignore_index", "label_smoothing"),
            "binary": ("weight", "pos_weight"), "multilabel": ("weight", "pos_weight")}
_FOCAL_KEYS = {"multiclass": ("gamma", "alpha", "ignore_index"),
               "binary": ("gamma", "alpha"), "multilabel": ("gamma", "alpha")}


def _check_keys(given: dict[str, Any] | None, allowed: tuple[str, ...], owner: str) -> dict[str, Any]:
    given = dict(given or {})
    for key in given:
        if key not in allowed:
            raise LossInputError(
                f"{owner} got an unknown key {key!r}.{did_you_mean(key, allowed)} "
                f"Allowed in this mode: {', '.join(allowed)}."
            )
    return given


def _per_sample(dense: Tensor, n: int) -> Tensor:
    return dense.reshape(n, -1).sum(1)


def _dice_part(input: Tensor, target: Tensor, mode: str, dice_kwargs: dict[str, Any],
               reduction: str) -> Tensor:
    if reduction == "none":
        if dice_kwargs.get("reduce_over", "sample") != "sample":
            raise LossInputError(
                "reduction='none' gives one value per image, which needs dice "
                "reduce_over='sample'. Fix: use reduction='mean'/'sum', or reduce_over='sample'."
            )
        return dice_loss(input, target, mode=mode, reduction="none", **dice_kwargs).sum(-1)
    return dice_loss(input, target, mode=mode, reduction=reduction, **dice_kwargs)


def _ce_part(input: Tensor, target: Tensor, mode: str, ce: dict[str, Any], reduction: str) -> Tensor:
    (x,) = as_float32(input)
    red = "none" if reduction == "none" else reduction
    if mode == "multiclass":
        tgt = target if not target.is_floating_point() else as_float32(target)[0]
        ign = ce.get("ignore_index")
        out = F.cross_entropy(x, tgt, weight=ce.get("weight"),
                              ignore_index=-100 if ign is None else ign,
                              label_smoothing=ce.get("label_smoothing", 0.0), reduction=red)
    else:
        t = target.to(x.dtype)
        pw = ce.get("pos_weight")
        if pw is not None and mode == "multilabel":
            pw = pw.reshape((-1,) + (1,) * (x.ndim - 2))
        out = F.binary_cross_entropy_with_logits(x, t, weight=ce.get("weight"), pos_weight=pw,
                                                 reduction=red)
    return _per_sample(out, x.shape[0]) if reduction == "none" else out


def _focal_part(input: Tensor, target: Tensor, mode: str, fk: dict[str, Any], reduction: str) -> Tensor:
    (x,) = as_float32(input)
    gamma = float(fk.get("gamma", 2.0))
    alpha = fk.get("alpha")
    tiny = torch.finfo(x.dtype).tiny
    if mode == "multiclass":
        ign = fk.get("ignore_index")
        if target.is_floating_point():
            raise LossInputError("dice_focal_loss in mode='multiclass' needs class-index targets "
                                 "(N, *) for the focal term.")
        keep = torch.ones_like(target, dtype=torch.bool) if ign is None else target != ign
        t = torch.where(keep, target, 0).long()
        logp = torch.log_softmax(x, 1).gather(1, t.unsqueeze(1)).squeeze(1)
        one_minus = (-torch.expm1(logp)).clamp_min(tiny)  # 1 - p_t, finite pow gradient at p_t = 1
        per = -one_minus.pow(gamma) * logp
        if alpha is not None:
            check_tensor("alpha", alpha)
            per = per * alpha.to(x.dtype)[t]
        per = torch.where(keep, per, 0.0)
        count = keep.sum().to(x.dtype)
    else:
        t = target.to(x.dtype)
        logp = F.logsigmoid(x)
        lognp = F.logsigmoid(-x)
        ce = -(t * logp + (1 - t) * lognp)
        p = torch.sigmoid(x)
        one_minus_pt = (p * (1 - t) + (1 - p) * t).clamp_min(tiny)
        per = one_minus_pt.pow(gamma) * ce
        if alpha is not None:
            check_number("alpha", alpha, low=0.0, high=1.0)
            per = per * (alpha * t + (1 - alpha) * (1 - t))
        count = torch.tensor(float(per.numel()), dtype=x.dtype)
    if reduction == "none":
        return _per_sample(per, x.shape[0])
    total = per.sum()
    return total if reduction == "sum" else total / count.clamp_min(1.0)


def _compound_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                     extreme: bool = False) -> Sample:
    s = _seg_sample()(gen, dtype, extreme)
    return Sample(s.args, {"mode": "multiclass"})


_COMPOUND_SKIP = {
    "mean_of_none": "'mean' is the weighted sum of the parts' means (MONAI's convention: Dice "
                    "averages over images and classes, the pixel term over pixels), while 'none' "
                    "gives per-image sums whose total is 'sum'; tested in test_segmentation.py",
}


@register(
    "dice_ce", **_COMMON, aliases=("dice_ce_loss", "dice_cross_entropy"), properties=_props(),
    formula=r"\lambda_{dice}\,\mathrm{Dice} + \lambda_{ce}\,\mathrm{CE}",
    references=("Isensee et al., nnU-Net, Nature Methods 2021",),
    peers={"monai": "monai.losses.DiceCELoss"},
    sample=_compound_sample,
    skip=_COMPOUND_SKIP,
)
def dice_ce_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    dice_kwargs: dict[str, Any] | None = None,
    ce_kwargs: dict[str, Any] | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Dice + cross-entropy, :math:`\lambda_{dice} \cdot` :func:`dice_loss` :math:`+
    \lambda_{ce} \cdot \mathrm{CE}`, exactly the sum of its parts. Each part's options are passed
    explicitly and separately (PITFALLS 30): ``dice_kwargs`` go to :func:`dice_loss` (any of its
    options but ``mode``/``reduction``), ``ce_kwargs`` to the pixel term. Unknown keys raise.

    The pixel term is ``torch.nn.functional.cross_entropy`` (keys ``weight``, ``ignore_index``,
    ``label_smoothing``) in multiclass mode and ``binary_cross_entropy_with_logits`` (keys
    ``weight``, ``pos_weight``) otherwise — the same numbers as ``losskit.functional.cross_entropy``.
    An ``ignore_index`` is *not* shared between the parts: give it to both if both should skip
    those pixels.

    Args:
        input: logits (see :func:`dice_loss` for the layouts).
        target: class indices ``(N, *)`` or the input's shape.
        mode: ``"binary"`` | ``"multiclass"`` | ``"multilabel"`` (required; shared by both parts).
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the cross-entropy term.
        dice_kwargs: options of :func:`dice_loss`.
        ce_kwargs: options of the cross-entropy term (see above).
        reduction: ``"mean"``: each part's own mean (Dice over images × classes, CE over pixels,
            weighted like PyTorch) then the weighted sum (MONAI's ``DiceCELoss``); ``"sum"``: the
            weighted sum of the parts' sums; ``"none"``: per image ``(N,)``, the weighted sum of
            the image's Dice terms and pixel terms (summing to ``"sum"``).

    Shape:
        scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x, t = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> both = LF.dice_ce_loss(x, t, mode="multiclass", lambda_dice=0.7, lambda_ce=0.3)
        >>> ce = torch.nn.functional.cross_entropy(x, t)
        >>> parts = 0.7 * LF.dice_loss(x, t, mode="multiclass") + 0.3 * ce
        >>> torch.allclose(both, parts)
        True

    References:
        Isensee, Jaeger, Kohl, Petersen, Maier-Hein, "nnU-Net: a self-configuring method for deep
        learning-based biomedical image segmentation", Nature Methods 2021.
    """
    check_option("reduction", reduction, ("none", "mean", "sum"))
    check_option("mode", mode, MODES)
    dk = _region_options(dice_loss, dice_kwargs, "dice_kwargs")
    ck = _check_keys(ce_kwargs, _CE_KEYS[mode], "ce_kwargs")
    dice = _dice_part(input, target, mode, dk, reduction)
    ce = _ce_part(input, target, mode, ck, reduction)
    return lambda_dice * dice + lambda_ce * ce


class DiceCELoss(LossModule):
    """Module form of :func:`dice_ce_loss`."""

    fn = staticmethod(dice_ce_loss)


@register(
    "dice_focal", **_COMMON, aliases=("dice_focal_loss",), properties=_props(),
    formula=r"\lambda_{dice}\,\mathrm{Dice} + \lambda_{focal}\,\mathrm{FL}_\gamma",
    references=("Zhu et al., AnatomyNet, Medical Physics 2019", "Lin et al., ICCV 2017"),
    peers={"monai": "monai.losses.DiceFocalLoss"},
    sample=_compound_sample,
    skip=_COMPOUND_SKIP,
)
def dice_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    lambda_dice: float = 1.0,
    lambda_focal: float = 1.0,
    dice_kwargs: dict[str, Any] | None = None,
    focal_kwargs: dict[str, Any] | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Dice + focal loss, :math:`\lambda_{dice} \cdot` :func:`dice_loss` :math:`+
    \lambda_{focal} \cdot \mathrm{FL}`, exactly the sum of its parts, each configured explicitly.

    The focal term (Lin et al.) is, in multiclass mode, the softmax focal loss
    :math:`-\alpha_{y}(1 - p_y)^\gamma \log p_y` per pixel (``focal_kwargs`` keys ``gamma``
    (default 2), ``alpha`` (a ``(C,)`` tensor or ``None``), ``ignore_index``; the mean is over
    the valid pixels), and otherwise the sigmoid focal loss of torchvision
    (keys ``gamma``, ``alpha`` a float in [0, 1] or ``None``; mean over elements). The focusing
    factor :math:`(1 - p_t)^\gamma` is computed from ``-expm1(log p_t)`` so that it stays exact
    and its gradient finite at :math:`p_t \to 1`; :math:`\gamma = 0` gives cross-entropy.

    Args:
        input: logits (see :func:`dice_loss` for the layouts).
        target: class indices ``(N, *)`` (multiclass) or the input's shape.
        mode: ``"binary"`` | ``"multiclass"`` | ``"multilabel"`` (required).
        lambda_dice: weight of the Dice term.
        lambda_focal: weight of the focal term.
        dice_kwargs: options of :func:`dice_loss`.
        focal_kwargs: options of the focal term (see above).
        reduction: as in :func:`dice_ce_loss`.

    Shape:
        scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, torch.nn.functional as F, losskit.functional as LF
        >>> x, t = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> a = LF.dice_focal_loss(x, t, mode="multiclass", focal_kwargs={"gamma": 0.0})
        >>> torch.allclose(a, LF.dice_ce_loss(x, t, mode="multiclass"))   # γ = 0: focal = CE
        True

    References:
        Lin, Goyal, Girshick, He, Dollár, "Focal Loss for Dense Object Detection", ICCV 2017.
        Zhu et al., "AnatomyNet: Deep learning for fast and fully automated whole-volume
        segmentation of head and neck anatomy", Medical Physics 2019.
    """
    check_option("reduction", reduction, ("none", "mean", "sum"))
    check_option("mode", mode, MODES)
    dk = _region_options(dice_loss, dice_kwargs, "dice_kwargs")
    fk = _check_keys(focal_kwargs, _FOCAL_KEYS[mode], "focal_kwargs")
    if "gamma" in fk:
        check_number("gamma", fk["gamma"], low=0.0)
    dice = _dice_part(input, target, mode, dk, reduction)
    focal = _focal_part(input, target, mode, fk, reduction)
    return lambda_dice * dice + lambda_focal * focal


class DiceFocalLoss(LossModule):
    """Module form of :func:`dice_focal_loss`."""

    fn = staticmethod(dice_focal_loss)
