"""Float64 reference box losses (never imports losskit), box by box, from the papers and with
torchvision's eps placement (torchvision.ops.{giou,diou,ciou}_loss, pure PyTorch):

* IoU  = inter / (union + eps)                                 (Yu et al. 2016, linear form)
* GIoU = 1 - IoU + (area_C - union) / (area_C + eps)           (Rezatofighi et al. 2019, Alg. 2)
* DIoU = 1 - IoU + rho² / (c² + eps)                           (Zheng et al. 2020, Eq. 6)
* CIoU = DIoU + alpha·v, v = 4/π² (atan(wg/hg) - atan(w/h))², alpha = v / (1 - IoU + v + eps)
  under no_grad                                                 (Zheng et al. 2020, Eq. 9–11)
* EIoU = DIoU + (w - wg)² / (Cw² + eps) + (h - hg)² / (Ch² + eps)   (Zhang et al. 2022, Eq. 9)

Boxes are (x1, y1, x2, y2) with x1 <= x2, y1 <= y2 (valid boxes).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def to_xyxy(b: Tensor, fmt: str) -> Tensor:
    rows = []
    for box in b:
        a, c, d, e = box
        if fmt == "xyxy":
            rows.append(torch.stack((a, c, d, e)))
        elif fmt == "xywh":
            rows.append(torch.stack((a, c, a + d, c + e)))
        else:
            rows.append(torch.stack((a - d / 2, c - e / 2, a + d / 2, c + e / 2)))
    return torch.stack(rows)


def _one(p: Tensor, g: Tensor, kind: str, eps: float) -> Tensor:
    x1, y1, x2, y2 = p
    a1, b1, a2, b2 = g
    iw = torch.minimum(x2, a2) - torch.maximum(x1, a1)
    ih = torch.minimum(y2, b2) - torch.maximum(y1, b1)
    inter = iw * ih if (iw > 0 and ih > 0) else torch.zeros((), dtype=p.dtype)
    union = (x2 - x1) * (y2 - y1) + (a2 - a1) * (b2 - b1) - inter
    iou = inter / (union + eps)
    if kind == "iou":
        return 1 - iou
    cx1, cy1 = torch.minimum(x1, a1), torch.minimum(y1, b1)
    cx2, cy2 = torch.maximum(x2, a2), torch.maximum(y2, b2)
    if kind == "giou":
        area_c = (cx2 - cx1) * (cy2 - cy1)
        return 1 - iou + (area_c - union) / (area_c + eps)
    c2 = (cx2 - cx1) ** 2 + (cy2 - cy1) ** 2 + eps
    rho2 = ((x1 + x2) / 2 - (a1 + a2) / 2) ** 2 + ((y1 + y2) / 2 - (b1 + b2) / 2) ** 2
    diou = 1 - iou + rho2 / c2
    if kind == "diou":
        return diou
    w, h, wg, hg = x2 - x1, y2 - y1, a2 - a1, b2 - b1
    if kind == "ciou":
        v = (4 / math.pi**2) * (torch.atan(wg / hg) - torch.atan(w / h)) ** 2
        with torch.no_grad():
            alpha = v / (1 - iou + v + eps)
        return diou + alpha * v
    if kind == "eiou":
        return diou + (w - wg) ** 2 / ((cx2 - cx1) ** 2 + eps) + (h - hg) ** 2 / ((cy2 - cy1) ** 2 + eps)
    raise ValueError(kind)


def box_loss(pred: Tensor, gt: Tensor, kind: str, eps: float = 1e-7, fmt: str = "xyxy") -> Tensor:
    """Per-box losses (N,)."""
    p, g = to_xyxy(pred.double(), fmt), to_xyxy(gt.double(), fmt)
    return torch.stack([_one(p[i], g[i], kind, eps) for i in range(p.shape[0])])
