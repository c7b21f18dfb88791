"""Float64 reference implementations of the segmentation losses, written from the papers with
explicit loops over images and classes (torch only for autograd; never imports losskit).

Milletari et al. 2016 (Dice), Rahman & Wang 2016 (Jaccard), Salehi et al. 2017 (Tversky),
Abraham & Khan 2019 (focal Tversky), Sudre et al. 2017 (generalized Dice), Berman et al. 2018
(Lovász hinge / softmax, following the authors' published reference code).
"""

from __future__ import annotations

import torch
from torch import Tensor


def probs_and_onehot(x: Tensor, y: Tensor, mode: str, from_logits: bool = True,
                     ignore_index: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(N, C, S) probabilities, (N, C, S) targets, (N, S) or (N, C, S) valid-pixel weights."""
    x = x.double()
    n = x.shape[0]
    if mode == "binary":
        p = torch.sigmoid(x) if from_logits else x
        p = p.reshape(n, 1, -1)
        t = y.double().reshape(n, 1, -1)
    elif mode == "multilabel":
        p = torch.sigmoid(x) if from_logits else x
        p = p.reshape(n, x.shape[1], -1)
        t = y.double().reshape(n, x.shape[1], -1)
    else:
        c = x.shape[1]
        # softmax written out: exp(x - max) / sum
        z = x - x.max(1, keepdim=True).values
        p = (z.exp() / z.exp().sum(1, keepdim=True)) if from_logits else x
        p = p.reshape(n, c, -1)
        if y.is_floating_point():
            t = y.double().reshape(n, c, -1)
        else:
            yi = y.reshape(n, -1)
            t = torch.zeros(n, c, yi.shape[1], dtype=torch.float64)
            for i in range(n):
                for s in range(yi.shape[1]):
                    k = int(yi[i, s])
                    if ignore_index is not None and k == ignore_index:
                        continue
                    t[i, k, s] = 1.0
            valid = torch.ones(n, 1, yi.shape[1], dtype=torch.float64)
            if ignore_index is not None:
                valid = (yi != ignore_index).double().unsqueeze(1)
            return p, t, valid.expand(p.shape)
    valid = torch.ones_like(p)
    if ignore_index is not None:
        valid = (t != ignore_index).double()
        t = torch.where(t != ignore_index, t, torch.zeros(()).double())
    return p, t, valid


def stats(p: Tensor, t: Tensor, valid: Tensor, *, include_background: bool = True,
          batch: bool = False, squared: bool = False) -> tuple[list[list[Tensor]], ...]:
    """Per (image, class) sums I, P, Y as nested lists (one "image" when batch=True)."""
    n, c, _ = p.shape
    first = 0 if include_background else 1
    I_, P_, Y_ = [], [], []
    images = [list(range(n))] if batch else [[i] for i in range(n)]
    for group in images:
        Ir, Pr, Yr = [], [], []
        for k in range(first, c):
            inter = sum((p[i, k] * t[i, k] * valid[i, k]).sum() for i in group)
            if squared:
                pm = sum(((p[i, k] * valid[i, k]) ** 2).sum() for i in group)
                ym = sum((t[i, k] ** 2).sum() for i in group)
            else:
                pm = sum((p[i, k] * valid[i, k]).sum() for i in group)
                ym = sum(t[i, k].sum() for i in group)
            Ir.append(inter)
            Pr.append(pm)
            Yr.append(ym)
        I_.append(Ir)
        P_.append(Pr)
        Y_.append(Yr)
    return I_, P_, Y_


def _matrix(rows: list[list[Tensor]]) -> Tensor:
    return torch.stack([torch.stack(r) for r in rows])


def dice(x: Tensor, y: Tensor, mode: str, *, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
         batch: bool = False, include_background: bool = True, ignore_index: int | None = None,
         squared: bool = False, from_logits: bool = True) -> Tensor:
    """Per-(image, class) Dice loss matrix (or per-class row when batch)."""
    p, t, v = probs_and_onehot(x, y, mode, from_logits, ignore_index)
    I_, P_, Y_ = stats(p, t, v, include_background=include_background, batch=batch, squared=squared)
    out = [[1 - (2 * i + smooth_nr) / (pp + yy + smooth_dr) for i, pp, yy in zip(a, b, c)]
           for a, b, c in zip(I_, P_, Y_)]
    m = _matrix(out)
    return m[0] if batch else m


def jaccard(x: Tensor, y: Tensor, mode: str, *, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5,
            batch: bool = False, include_background: bool = True, ignore_index: int | None = None,
            squared: bool = False) -> Tensor:
    p, t, v = probs_and_onehot(x, y, mode, True, ignore_index)
    I_, P_, Y_ = stats(p, t, v, include_background=include_background, batch=batch, squared=squared)
    out = [[1 - (i + smooth_nr) / (pp + yy - i + smooth_dr) for i, pp, yy in zip(a, b, c)]
           for a, b, c in zip(I_, P_, Y_)]
    m = _matrix(out)
    return m[0] if batch else m


def tversky(x: Tensor, y: Tensor, mode: str, *, alpha: float, beta: float, smooth_nr: float = 1e-5,
            smooth_dr: float = 1e-5, batch: bool = False, include_background: bool = True,
            ignore_index: int | None = None, gamma: float = 1.0) -> Tensor:
    """Salehi's index with FP = Σ p(1-y), FN = Σ (1-p) y, computed as written; focal Tversky
    (Abraham & Khan, Eq. 4) raises 1 - TI to 1/γ."""
    p, t, v = probs_and_onehot(x, y, mode, True, ignore_index)
    n, c, _ = p.shape
    first = 0 if include_background else 1
    groups = [list(range(n))] if batch else [[i] for i in range(n)]
    rows = []
    for g in groups:
        row = []
        for k in range(first, c):
            tp = sum((p[i, k] * t[i, k] * v[i, k]).sum() for i in g)
            fp = sum((p[i, k] * (1 - t[i, k]) * v[i, k]).sum() for i in g)
            fn = sum(((1 - p[i, k]) * t[i, k] * v[i, k]).sum() for i in g)
            ti = (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
            row.append((1 - ti) ** (1.0 / gamma))
        rows.append(row)
    m = _matrix(rows)
    return m[0] if batch else m


def generalized_dice(x: Tensor, y: Tensor, mode: str, *, w_type: str = "square",
                     smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = False,
                     include_background: bool = True) -> Tensor:
    """Sudre et al. Eq. 2 with weights 1/(Σ y)²; an absent class's infinite weight is replaced by
    the largest finite weight of the image (MONAI's rule)."""
    p, t, v = probs_and_onehot(x, y, mode)
    I_, P_, Y_ = stats(p, t, v, include_background=include_background, batch=batch)
    out = []
    for ir, pr, yr in zip(I_, P_, Y_):
        ws = []
        for yy in yr:
            yv = float(yy)
            if yv == 0:
                ws.append(None)
            elif w_type == "square":
                ws.append(1.0 / yv**2)
            elif w_type == "simple":
                ws.append(1.0 / yv)
            else:
                ws.append(1.0)
        finite = [w for w in ws if w is not None]
        big = max(finite) if finite else 0.0
        ws = [big if w is None else w for w in ws]
        num = 2 * sum(w * i for w, i in zip(ws, ir)) + smooth_nr
        den = sum(w * (pp + yy) for w, pp, yy in zip(ws, pr, yr)) + smooth_dr
        out.append(1 - num / den)
    return torch.stack(out)


# --------------------------------------------------------------------------- Lovász (Berman's code)


def lovasz_grad(gt_sorted: Tensor) -> Tensor:
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.float().cumsum(0).double()
    union = gts + (1 - gt_sorted).float().cumsum(0).double()
    jaccard = 1.0 - intersection / union
    if p > 1:
        jaccard = torch.cat((jaccard[:1], jaccard[1:p] - jaccard[0:-1]))
    return jaccard


def lovasz_hinge_flat(logits: Tensor, labels: Tensor) -> Tensor:
    if len(labels) == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels.double() - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    gt_sorted = labels[perm].double()
    grad = lovasz_grad(gt_sorted)
    return torch.dot(torch.relu(errors_sorted), grad)


def lovasz_hinge(logits: Tensor, labels: Tensor, per_image: bool = True,
                 ignore: int | None = None) -> Tensor:
    """Per-image losses (N,) or the batch loss (1,)."""
    def flat(lg: Tensor, lb: Tensor) -> tuple[Tensor, Tensor]:
        lg, lb = lg.reshape(-1), lb.reshape(-1)
        if ignore is None:
            return lg, lb
        keep = lb != ignore
        return lg[keep], lb[keep]

    if per_image:
        return torch.stack([lovasz_hinge_flat(*flat(lg, lb)) for lg, lb in zip(logits, labels)])
    return lovasz_hinge_flat(*flat(logits, labels)).reshape(1)


def lovasz_softmax_flat(probas: Tensor, labels: Tensor, classes: str = "present",
                        class_weight: Tensor | None = None) -> Tensor:
    if probas.numel() == 0:
        return probas.sum() * 0.0
    c = probas.size(1)
    losses = []
    for k in range(c):
        fg = (labels == k).double()
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probas[:, k]).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        term = torch.dot(errors_sorted, lovasz_grad(fg[perm]))
        if class_weight is not None:
            term = term * class_weight[k]
        losses.append(term)
    if not losses:
        return probas.sum() * 0.0
    return torch.stack(losses).mean()


def lovasz_softmax(logits: Tensor, labels: Tensor, classes: str = "present", per_image: bool = False,
                   ignore: int | None = None, class_weight: Tensor | None = None) -> Tensor:
    probas = torch.softmax(logits.double(), 1)

    def flat(pr: Tensor, lb: Tensor, one_image: bool) -> tuple[Tensor, Tensor]:
        c = pr.shape[0] if one_image else pr.shape[1]
        if one_image:  # (C, *) with (*)
            pr = pr.reshape(c, -1).t()
        else:  # batch (N, C, *) with (N, *)
            pr = pr.transpose(0, 1).reshape(c, -1).t()
        lb = lb.reshape(-1)
        if ignore is None:
            return pr, lb
        keep = lb != ignore
        return pr[keep], lb[keep]

    if per_image:
        return torch.stack([lovasz_softmax_flat(*flat(pr, lb, True), classes, class_weight)
                            for pr, lb in zip(probas, labels)])
    return lovasz_softmax_flat(*flat(probas, labels, False), classes, class_weight).reshape(1)


def softmax_focal(x: Tensor, y: Tensor, gamma: float, alpha: Tensor | None = None,
                  ignore_index: int | None = None) -> Tensor:
    """Lin et al. Eq. 5 for the softmax, pixel by pixel, averaged over the valid pixels."""
    x = x.double()
    n, c = x.shape[:2]
    xf = x.reshape(n, c, -1)
    yf = y.reshape(n, -1)
    terms = []
    for i in range(n):
        logp = torch.log_softmax(xf[i], 0)
        for s in range(yf.shape[1]):
            k = int(yf[i, s])
            if ignore_index is not None and k == ignore_index:
                continue
            pt = logp[k, s].exp()
            a = 1.0 if alpha is None else alpha[k]
            terms.append(-a * (1 - pt) ** gamma * logp[k, s])
    return torch.stack(terms).mean()


def sigmoid_focal(x: Tensor, y: Tensor, gamma: float, alpha: float | None = None) -> Tensor:
    """Lin et al. Eq. 5 for the sigmoid (torchvision's sigmoid_focal_loss), averaged over elements."""
    x, y = x.double().reshape(-1), y.double().reshape(-1)
    terms = []
    for xi, yi in zip(x, y):
        p = torch.sigmoid(xi)
        pt = p if yi == 1 else 1 - p
        ce = -(yi * torch.log(p) + (1 - yi) * torch.log(1 - p))
        a = 1.0 if alpha is None else (alpha if yi == 1 else 1 - alpha)
        terms.append(a * (1 - pt) ** gamma * ce)
    return torch.stack(terms).mean()
