"""Bounding-box regression losses on paired boxes ``(N, 4)``: IoU, GIoU, DIoU, CIoU and EIoU.

Every loss takes a required ``box_format`` keyword: ``"xyxy"`` (corners ``x1, y1, x2, y2``),
``"xywh"`` (top-left corner, width, height) or ``"cxcywh"`` (centre, width, height). Boxes are
converted to corners first, so the three formats give the same numbers for the same boxes.

Conventions (shared by every loss here):

* ``eps`` (default ``1e-7``) is added where torchvision adds it: to the union in the IoU, to the
  enclosing area in GIoU, and to the squared enclosing diagonal in DIoU/CIoU (and to the squared
  enclosing width and height in EIoU), so for valid boxes the values are torchvision's.
* Degenerate boxes (zero width or height) give finite values and finite gradients: the aspect
  term of CIoU uses a guarded ``atan2`` instead of ``atan(w / h)`` (which is NaN in torchvision's
  gradient at ``h = 0``).
* Inverted boxes (``x2 < x1`` or ``y2 < y1``) are taken as given, but their width and height
  count as 0 in every area (an inverted box is empty), so the IoU is 0 and every value stays
  finite; the centre-distance and aspect terms use the coordinates as given.
* No data-dependent checks or host syncs: nothing reads the box values to validate them.
* Half-precision boxes are computed in float32 (like torchvision's ``_upcast_non_float``).

Elementwise: ``reduction="none"`` gives one loss per box pair, shape ``(N,)``; the shared options
``sample_weight``, ``mask``, ``normalizer`` and ``empty`` act on that vector. The default
reduction is ``"mean"`` (torchvision's default is ``"none"``); the torchvision-named functions
:func:`generalized_box_iou_loss`, :func:`distance_box_iou_loss` and
:func:`complete_box_iou_loss` keep torchvision's signature and default.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from losskit._core.checks import LossInputError, check_floating, check_option, shape_str
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register

__all__ = [
    "CIoULoss",
    "DIoULoss",
    "EIoULoss",
    "GIoULoss",
    "IoULoss",
    "box_convert",
    "ciou_loss",
    "complete_box_iou_loss",
    "diou_loss",
    "distance_box_iou_loss",
    "eiou_loss",
    "generalized_box_iou_loss",
    "giou_loss",
    "iou_loss",
]

BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "cxcywh")
_TASKS = ("detection", "boxes")


def box_convert(boxes: Tensor, box_format: str) -> Tensor:
    """Boxes in ``box_format`` → corners ``(x1, y1, x2, y2)`` (no validation of the values)."""
    check_option("box_format", box_format, BOX_FORMATS)
    a, b, c, d = boxes.unbind(-1)
    if box_format == "xyxy":
        return boxes
    if box_format == "xywh":
        return torch.stack((a, b, a + c, b + d), -1)
    return torch.stack((a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d), -1)


def _boxes(input: Tensor, target: Tensor, box_format: str) -> tuple[Tensor, Tensor]:
    check_floating("input", input)
    check_floating("target", target)
    check_option("box_format", box_format, BOX_FORMATS)
    if input.ndim != 2 or input.shape[-1] != 4:
        raise LossInputError(
            f"input must hold boxes of shape (N, 4), got {shape_str(input)}. "
            f"Fix: reshape to (-1, 4); the four numbers are in box_format={box_format!r}."
        )
    if target.shape != input.shape:
        raise LossInputError(
            f"target has shape {shape_str(target)} but input has shape {shape_str(input)}; "
            "box losses pair input[i] with target[i] (no broadcasting). Fix: give both (N, 4)."
        )
    input, target = as_float32(input, target)
    return box_convert(input, box_format), box_convert(target, box_format)


def _geometry(p: Tensor, g: Tensor, eps: float) -> dict[str, Tensor]:
    """IoU and the enclosing-box quantities of corner boxes ``p`` and ``g``."""
    x1, y1, x2, y2 = p.unbind(-1)
    x1g, y1g, x2g, y2g = g.unbind(-1)
    # an inverted box is empty: widths/heights count as 0 in areas
    area_p = (x2 - x1).clamp_min(0) * (y2 - y1).clamp_min(0)
    area_g = (x2g - x1g).clamp_min(0) * (y2g - y1g).clamp_min(0)
    iw = (torch.minimum(x2, x2g) - torch.maximum(x1, x1g)).clamp_min(0)
    ih = (torch.minimum(y2, y2g) - torch.maximum(y1, y1g)).clamp_min(0)
    inter = iw * ih
    union = area_p + area_g - inter
    iou = inter / (union + eps)
    cw = (torch.maximum(x2, x2g) - torch.minimum(x1, x1g)).clamp_min(0)
    ch = (torch.maximum(y2, y2g) - torch.minimum(y1, y1g)).clamp_min(0)
    centre2 = (0.5 * (x1 + x2 - x1g - x2g)).square() + (0.5 * (y1 + y2 - y1g - y2g)).square()
    return {"iou": iou, "union": union, "cw": cw, "ch": ch, "centre2": centre2,
            "w": x2 - x1, "h": y2 - y1, "wg": x2g - x1g, "hg": y2g - y1g}


def _atan_ratio(w: Tensor, h: Tensor) -> Tensor:
    """``atan(w / h)`` (torchvision's CIoU aspect angle) as a guarded ``atan2``: equal values for
    every ``h != 0`` and ``π/2·sign(w)`` at ``h = 0``, with finite gradients everywhere (0 at
    ``w = h = 0``)."""
    flip = torch.where(h < 0, -1.0, 1.0).to(w.dtype)
    wf, hf = w * flip, h * flip
    zero = (wf == 0) & (hf == 0)
    safe = torch.atan2(torch.where(zero, 1.0, wf), torch.where(zero, 1.0, hf))
    return torch.where(zero, 0.0, safe)


def _finish(per_box: Tensor, reduction: str, sample_weight: Tensor | None, mask: Tensor | None,
            normalizer: float | Tensor | None, empty: str) -> Tensor:
    return reduce(per_box, reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


def _box_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                extreme: bool = False) -> Sample:
    n = 6
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 4
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 3 + 0.5
    xyg = xy + torch.randn(n, 2, generator=gen, dtype=torch.float64)
    whg = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 3 + 0.5
    if extreme:
        # degenerate (zero width / height), inverted and far-apart boxes
        wh = wh * torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, -1.0]],
                               dtype=torch.float64)
        xyg = xyg * 1e3
    p = torch.cat((xy, xy + wh), 1).to(dtype)
    g = torch.cat((xyg, xyg + whg), 1).to(dtype)
    return Sample((p, g), {"box_format": "xyxy"})


_PEERS_IOU = {"tfa": "tensorflow_addons.losses.giou_loss(mode='iou')"}
_COMMON = dict(family="boxes", tasks=_TASKS, input_kind="boxes", target_kind="boxes",
               sample=_box_sample, elementwise=True)


def _props(smooth: str = "C0") -> Properties:
    return Properties(convex=False, smoothness=smooth, robust=None,  # type: ignore[arg-type]
                      homogeneity=0, units="dimensionless, in [0, 2] (IoU, GIoU) or [0, 3)",
                      symmetric=None, zero_at_perfect=True)


_DOC_ARGS = """    Args:
        input: predicted boxes ``(N, 4)`` in ``box_format``.
        target: ground-truth boxes ``(N, 4)``, same format.
        box_format: ``"xyxy"`` | ``"xywh"`` | ``"cxcywh"`` (required).
        eps: added to the denominators (see the module docs; torchvision's placement).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, 4)`` and ``(N, 4)`` → scalar, or ``(N,)`` with ``reduction="none"``.
"""


def _box_doc(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Put the shared Args/Shape sections in place of ``<box-args>`` (before ``@register``
    fills the ``$`` fragments)."""
    fn.__doc__ = (fn.__doc__ or "").replace("    <box-args>\n", "\n" + _DOC_ARGS + "\n")
    return fn


@register(
    "iou", **_COMMON, aliases=("iou_loss", "box_iou_loss"), properties=_props(),
    formula=r"1 - \frac{|B \cap B^{gt}|}{|B \cup B^{gt}| + \epsilon}",
    references=("Yu et al., UnitBox, ACM MM 2016",), peers=_PEERS_IOU,
)
@_box_doc
def iou_loss(input: Tensor, target: Tensor, *, box_format: str, eps: float = 1e-7,
             reduction: str = "mean", sample_weight: Tensor | None = None,
             mask: Tensor | None = None, normalizer: float | Tensor | None = None,
             empty: str = "zero") -> Tensor:
    r"""IoU loss, :math:`1 - \mathrm{IoU}` (the linear form; UnitBox uses :math:`-\ln \mathrm{IoU}`).

    Non-overlapping boxes have IoU 0 and therefore a zero gradient: use GIoU/DIoU/CIoU when the
    prediction may miss the target.
    <box-args>
    Examples:
        >>> import torch, losskit.functional as LF
        >>> b = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> LF.iou_loss(b, b, box_format="xyxy")                     # identical boxes
        tensor(0.)
        >>> LF.iou_loss(b, torch.tensor([[1.0, 0.0, 3.0, 2.0]]), box_format="xyxy")  # IoU 2/6
        tensor(0.6667)

    References:
        Yu, Jiang, Wang, Cao, Huang, "UnitBox: An Advanced Object Detection Network", ACM MM 2016.
    """
    p, g = _boxes(input, target, box_format)
    geo = _geometry(p, g, eps)
    return _finish(1 - geo["iou"], reduction, sample_weight, mask, normalizer, empty)


class IoULoss(LossModule):
    """Module form of :func:`iou_loss`."""

    fn = staticmethod(iou_loss)


@register(
    "giou", **_COMMON, aliases=("giou_loss",), properties=_props(),
    formula=r"1 - \mathrm{IoU} + \frac{|C| - |B \cup B^{gt}|}{|C| + \epsilon}",
    references=("Rezatofighi et al., CVPR 2019",),
    peers={"torchvision": "torchvision.ops.generalized_box_iou_loss", "monai": "monai.losses.BoxGIoULoss",
           "tfa": "tensorflow_addons.losses.GIoULoss"},
)
@_box_doc
def giou_loss(input: Tensor, target: Tensor, *, box_format: str, eps: float = 1e-7,
              reduction: str = "mean", sample_weight: Tensor | None = None,
              mask: Tensor | None = None, normalizer: float | Tensor | None = None,
              empty: str = "zero") -> Tensor:
    r"""Generalized IoU loss, :math:`1 - \mathrm{IoU} + (|C| - |U|)/|C|`, with :math:`C` the
    smallest box enclosing both. In :math:`[0, 2)`; disjoint boxes still get a gradient pulling
    them together. Same numbers as ``torchvision.ops.generalized_box_iou_loss`` for valid boxes.
    <box-args>
    Examples:
        >>> import torch, losskit.functional as LF
        >>> a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        >>> far = torch.tensor([[0.0, 0.0, 1.0, 1.0]]) + torch.tensor([100.0, 0.0, 100.0, 0.0])
        >>> LF.giou_loss(a, far, box_format="xyxy")     # disjoint and far apart → close to 2
        tensor(1.9802)

    References:
        Rezatofighi, Tsoi, Gwak, Sadeghian, Reid, Savarese, "Generalized Intersection over Union:
        A Metric and a Loss for Bounding Box Regression", CVPR 2019.
    """
    p, g = _boxes(input, target, box_format)
    geo = _geometry(p, g, eps)
    area_c = geo["cw"] * geo["ch"]
    per = 1 - geo["iou"] + (area_c - geo["union"]) / (area_c + eps)
    return _finish(per, reduction, sample_weight, mask, normalizer, empty)


class GIoULoss(LossModule):
    """Module form of :func:`giou_loss`."""

    fn = staticmethod(giou_loss)


def _diou_terms(p: Tensor, g: Tensor, eps: float) -> tuple[Tensor, dict[str, Tensor]]:
    geo = _geometry(p, g, eps)
    diag2 = geo["cw"].square() + geo["ch"].square() + eps
    return 1 - geo["iou"] + geo["centre2"] / diag2, geo


@register(
    "diou", **_COMMON, aliases=("diou_loss",), properties=_props(),
    formula=r"1 - \mathrm{IoU} + \frac{\rho^2(b, b^{gt})}{c^2 + \epsilon}",
    references=("Zheng et al., AAAI 2020",),
    peers={"torchvision": "torchvision.ops.distance_box_iou_loss"},
)
@_box_doc
def diou_loss(input: Tensor, target: Tensor, *, box_format: str, eps: float = 1e-7,
              reduction: str = "mean", sample_weight: Tensor | None = None,
              mask: Tensor | None = None, normalizer: float | Tensor | None = None,
              empty: str = "zero") -> Tensor:
    r"""Distance-IoU loss, :math:`1 - \mathrm{IoU} + \rho^2 / c^2`: :math:`\rho` is the distance
    between the box centres and :math:`c` the diagonal of the enclosing box. Same numbers as
    ``torchvision.ops.distance_box_iou_loss`` for valid boxes.
    <box-args>
    Examples:
        >>> import torch, losskit.functional as LF
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> inner = torch.tensor([[0.5, 0.5, 1.5, 1.5]])   # same centre: DIoU = IoU loss
        >>> bool(LF.diou_loss(inner, a, box_format="xyxy") == LF.iou_loss(inner, a, box_format="xyxy"))
        True

    References:
        Zheng, Wang, Liu, Li, Ye, Ren, "Distance-IoU Loss: Faster and Better Learning for Bounding
        Box Regression", AAAI 2020.
    """
    p, g = _boxes(input, target, box_format)
    per, _ = _diou_terms(p, g, eps)
    return _finish(per, reduction, sample_weight, mask, normalizer, empty)


class DIoULoss(LossModule):
    """Module form of :func:`diou_loss`."""

    fn = staticmethod(diou_loss)


@register(
    "ciou", **_COMMON, aliases=("ciou_loss",), properties=_props(),
    formula=(r"1 - \mathrm{IoU} + \frac{\rho^2}{c^2 + \epsilon} + \alpha v,\ "
             r"v = \tfrac{4}{\pi^2}(\arctan\tfrac{w^{gt}}{h^{gt}} - \arctan\tfrac{w}{h})^2,\ "
             r"\alpha = \mathrm{sg}\big[\tfrac{v}{1 - \mathrm{IoU} + v + \epsilon}\big]"),
    references=("Zheng et al., AAAI 2020",),
    peers={"torchvision": "torchvision.ops.complete_box_iou_loss"},
    skip={"gradcheck": "alpha is a stop-gradient constant by design (paper, torchvision), so the "
                       "analytic gradient deliberately differs from finite differences; the gradient "
                       "is tested against the float64 reference with alpha detached in test_boxes.py"},
)
@_box_doc
def ciou_loss(input: Tensor, target: Tensor, *, box_format: str, eps: float = 1e-7,
              reduction: str = "mean", sample_weight: Tensor | None = None,
              mask: Tensor | None = None, normalizer: float | Tensor | None = None,
              empty: str = "zero") -> Tensor:
    r"""Complete-IoU loss: DIoU plus an aspect-ratio term :math:`\alpha v` with the trade-off
    :math:`\alpha = v / (1 - \mathrm{IoU} + v)` treated as a constant (computed without gradient,
    as in the paper and in torchvision). Same numbers as ``torchvision.ops.complete_box_iou_loss``
    for boxes of non-zero height; at zero height torchvision's gradient is NaN and this one is
    finite.
    <box-args>
    Examples:
        >>> import torch, losskit.functional as LF
        >>> a = torch.tensor([[0.0, 0.0, 4.0, 2.0]])
        >>> same_shape = torch.tensor([[1.0, 1.0, 5.0, 3.0]])     # equal aspect: v = 0, CIoU = DIoU
        >>> c = LF.ciou_loss(same_shape, a, box_format="xyxy")
        >>> bool(c == LF.diou_loss(same_shape, a, box_format="xyxy"))
        True

    References:
        Zheng, Wang, Liu, Li, Ye, Ren, "Distance-IoU Loss: Faster and Better Learning for Bounding
        Box Regression", AAAI 2020 (Eq. 9–11); Zheng et al., "Enhancing Geometric Factors in Model
        Learning and Inference for Object Detection and Instance Segmentation", TCYB 2021.
    """
    p, g = _boxes(input, target, box_format)
    per, geo = _diou_terms(p, g, eps)
    v = (4 / math.pi**2) * (_atan_ratio(geo["wg"], geo["hg"]) - _atan_ratio(geo["w"], geo["h"])).square()
    with torch.no_grad():
        alpha = v / (1 - geo["iou"] + v + eps)
    return _finish(per + alpha * v, reduction, sample_weight, mask, normalizer, empty)


class CIoULoss(LossModule):
    """Module form of :func:`ciou_loss`."""

    fn = staticmethod(ciou_loss)


@register(
    "eiou", **_COMMON, aliases=("eiou_loss",), properties=_props(),
    formula=(r"1 - \mathrm{IoU} + \frac{\rho^2(b, b^{gt})}{c^2 + \epsilon} + "
             r"\frac{(w - w^{gt})^2}{C_w^2 + \epsilon} + \frac{(h - h^{gt})^2}{C_h^2 + \epsilon}"),
    references=("Zhang et al., Neurocomputing 2022",),
)
@_box_doc
def eiou_loss(input: Tensor, target: Tensor, *, box_format: str, eps: float = 1e-7,
              reduction: str = "mean", sample_weight: Tensor | None = None,
              mask: Tensor | None = None, normalizer: float | Tensor | None = None,
              empty: str = "zero") -> Tensor:
    r"""Efficient-IoU loss: DIoU plus the squared width and height differences, each divided by
    the squared width / height of the enclosing box (:math:`C_w, C_h`). The focal re-weighting of
    the paper (Focal-EIoU, :math:`\mathrm{IoU}^\gamma \cdot L_{EIoU}`) is not applied.
    <box-args>
    Examples:
        >>> import torch, losskit.functional as LF
        >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
        >>> LF.eiou_loss(a, a, box_format="xyxy")
        tensor(0.)
        >>> inner = torch.tensor([[0.5, 0.5, 1.5, 1.5]])   # IoU 1/4, same centre, Δw = Δh = 1
        >>> LF.eiou_loss(inner, a, box_format="xyxy")       # 3/4 + 1/4 + 1/4
        tensor(1.2500)

    References:
        Zhang, Ren, Zhang, Jia, Wang, Tan, "Focal and Efficient IOU Loss for Accurate Bounding Box
        Regression", Neurocomputing 506, 2022.
    """
    p, g = _boxes(input, target, box_format)
    per, geo = _diou_terms(p, g, eps)
    per = (per + (geo["w"] - geo["wg"]).square() / (geo["cw"].square() + eps)
           + (geo["h"] - geo["hg"]).square() / (geo["ch"].square() + eps))
    return _finish(per, reduction, sample_weight, mask, normalizer, empty)


class EIoULoss(LossModule):
    """Module form of :func:`eiou_loss`."""

    fn = staticmethod(eiou_loss)


# --------------------------------------------------------------------------- torchvision names


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                             eps: float = 1e-7) -> Tensor:
    """Drop-in for ``torchvision.ops.generalized_box_iou_loss``: ``xyxy`` boxes, default
    ``reduction="none"``; the same as :func:`giou_loss` with ``box_format="xyxy"``."""
    return giou_loss(boxes1, boxes2, box_format="xyxy", eps=eps, reduction=reduction)


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                          eps: float = 1e-7) -> Tensor:
    """Drop-in for ``torchvision.ops.distance_box_iou_loss``; see :func:`diou_loss`."""
    return diou_loss(boxes1, boxes2, box_format="xyxy", eps=eps, reduction=reduction)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none",
                          eps: float = 1e-7) -> Tensor:
    """Drop-in for ``torchvision.ops.complete_box_iou_loss``; see :func:`ciou_loss`."""
    return ciou_loss(boxes1, boxes2, box_format="xyxy", eps=eps, reduction=reduction)
