"""Float64 loop references for the batch-contrastive losses, written from the papers.

Plain Python loops over anchors and candidates on float64 torch scalars (so autograd gives the
reference gradient); no vectorised tricks and nothing from losskit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _unit(x: Tensor) -> Tensor:
    return x / torch.sqrt((x * x).sum(-1, keepdim=True))


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum()


def _neg_log_softmax_of_first(logits: list[Tensor]) -> Tensor:
    """-log(exp(l0) / Σ exp(l)), with the max subtracted for range."""
    m = max(float(v) for v in logits)
    den = sum(torch.exp(v - m) for v in logits)
    return -(logits[0] - m - torch.log(den))


def info_nce(q: Tensor, p: Tensor, negatives: Tensor | None = None, temperature: float = 0.1,
             mode: str = "unpaired", normalize: bool = True) -> list[Tensor]:
    """van den Oord 2018: -log e^{q·k+/τ} / (e^{q·k+/τ} + Σ_neg e^{q·k-/τ}) per query."""
    if normalize:
        q, p = _unit(q), _unit(p)
        negatives = None if negatives is None else _unit(negatives)
    out = []
    b = q.shape[0]
    for i in range(b):
        logits = [_dot(q[i], p[i]) / temperature]
        if negatives is None:
            logits += [_dot(q[i], p[j]) / temperature for j in range(b) if j != i]
        elif mode == "unpaired":
            logits += [_dot(q[i], n) / temperature for n in negatives]
        else:
            logits += [_dot(q[i], n) / temperature for n in negatives[i]]
        out.append(_neg_log_softmax_of_first(logits))
    return out


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5, normalize: bool = True) -> Tensor:
    """SimCLR (Chen et al. 2020, Algorithm 1): views interleaved as 2k-1, 2k (0-based 2k, 2k+1);
    L = 1/(2N) Σ_k [ℓ(2k, 2k+1) + ℓ(2k+1, 2k)], ℓ(i, j) = -log e^{s_ij/τ} / Σ_{m≠i} e^{s_im/τ}."""
    n = z1.shape[0]
    z = []
    for k in range(n):
        z += [z1[k], z2[k]]
    if normalize:
        z = [v / torch.sqrt(_dot(v, v)) for v in z]

    def ell(i: int, j: int) -> Tensor:
        logits = [_dot(z[i], z[j]) / temperature]
        logits += [_dot(z[i], z[m]) / temperature for m in range(2 * n) if m not in (i, j)]
        return _neg_log_softmax_of_first(logits)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


def nt_xent_rows(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> list[Tensor]:
    """Per anchor, z1 anchors first then z2 anchors (normalised)."""
    n = z1.shape[0]
    z = [_unit(v) for v in list(z1) + list(z2)]
    out = []
    for i in range(2 * n):
        j = i + n if i < n else i - n
        logits = [_dot(z[i], z[j]) / temperature]
        logits += [_dot(z[i], z[m]) / temperature for m in range(2 * n) if m not in (i, j)]
        out.append(_neg_log_softmax_of_first(logits))
    return out


def clip(image: Tensor, text: Tensor, logit_scale: Tensor | float,
         normalize: bool = True) -> list[Tensor]:
    """Radford et al. 2021 (pseudocode): (CE over texts for each image + CE over images for each
    text) / 2, per pair."""
    if normalize:
        image, text = _unit(image), _unit(text)
    b = image.shape[0]
    out = []
    for i in range(b):
        to_text = [logit_scale * _dot(image[i], text[i])]
        to_text += [logit_scale * _dot(image[i], text[j]) for j in range(b) if j != i]
        to_image = [logit_scale * _dot(text[i], image[i])]
        to_image += [logit_scale * _dot(text[i], image[j]) for j in range(b) if j != i]
        out.append(0.5 * (_neg_log_softmax_of_first(to_text) + _neg_log_softmax_of_first(to_image)))
    return out


def siglip(image: Tensor, text: Tensor, t: Tensor | float, b: Tensor | float,
           normalize: bool = True) -> list[Tensor]:
    """Zhai et al. 2023, Algorithm 1: -Σ_j log σ(z_ij (t x_i·y_j + b)) per image i, z = ±1;
    the loss is the sum over i divided by |B|."""
    if normalize:
        image, text = _unit(image), _unit(text)
    n = image.shape[0]
    out = []
    for i in range(n):
        row = 0.0
        for j in range(n):
            z = 1.0 if i == j else -1.0
            u = z * (t * _dot(image[i], text[j]) + b)
            row = row + torch.log1p(torch.exp(-u))  # -log σ(u)
        out.append(row)
    return out


def supcon(features: Tensor, labels: list[int] | None, temperature: float = 0.07,
           base_temperature: float = 0.07, contrast_mode: str = "all",
           normalize: bool = True) -> list[tuple[int, int, Tensor | None]]:
    """Khosla et al. 2020, eq. 2 (L_out), per anchor (sample i, view v): -(τ/τ_b)/|P| Σ_p log
    e^{z·z_p/τ} / Σ_{a≠anchor} e^{z·z_a/τ}; None for an anchor without a positive."""
    b, v = features.shape[0], features.shape[1]
    if normalize:
        features = _unit(features)
    if labels is None:
        labels = list(range(b))
    views = [(i, w) for i in range(b) for w in range(v)]
    out = []
    anchor_views = range(v) if contrast_mode == "all" else range(1)
    for i in range(b):
        for w in anchor_views:
            z = features[i, w]
            others = [(j, u) for (j, u) in views if (j, u) != (i, w)]
            logits = [_dot(z, features[j, u]) / temperature for (j, u) in others]
            m = max(float(x) for x in logits)
            log_den = m + math.log(sum(math.exp(float(x) - m) for x in logits))
            log_den_t = m + torch.log(sum(torch.exp(x - m) for x in logits))
            assert abs(float(log_den_t) - log_den) < 1e-9
            pos = [lg for lg, (j, _) in zip(logits, others) if labels[j] == labels[i]]
            if not pos:
                out.append((i, w, None))
                continue
            mean_log_prob = sum(lg - log_den_t for lg in pos) / len(pos)
            out.append((i, w, -(temperature / base_temperature) * mean_log_prob))
    return out
