"""Float64 references for the metric-learning losses, written from the papers with plain
loops over rows, pairs and triplets (O(B³) where the paper's definition is).

Each function works on float64 torch tensors with scalar arithmetic only (no distance
matrices, no sorting, no masking tricks), so autograd of the obvious formula gives the
reference gradient. Nothing here imports losskit.
"""

from __future__ import annotations

import math

import torch


def _stack(values, like):
    return torch.stack(values) if values else like.new_zeros(0)


def dist(u, v, kind="euclidean"):
    if kind == "euclidean":
        return ((u - v) ** 2).sum().sqrt()
    if kind == "squared":
        return ((u - v) ** 2).sum()
    if kind == "cosine":
        return 1 - (u * v).sum() / ((u * u).sum().sqrt() * (v * v).sum().sqrt())
    raise ValueError(kind)


def cos_sim(u, v):
    return (u * v).sum() / ((u * u).sum().sqrt() * (v * v).sum().sqrt())


# ----------------------------------------------------------------------------- PyTorch parity


def triplet_margin(a, p, n, margin=1.0, norm=2.0, eps=1e-6, swap=False):
    """Per-row max(0, m + ||a-p+eps||_p - ||a-n+eps||_p) (PyTorch's definition)."""
    out = []
    for i in range(a.shape[0]):
        d_ap = ((a[i] - p[i] + eps).abs() ** norm).sum() ** (1 / norm)
        d_an = ((a[i] - n[i] + eps).abs() ** norm).sum() ** (1 / norm)
        if swap:
            d_pn = ((p[i] - n[i] + eps).abs() ** norm).sum() ** (1 / norm)
            d_an = d_pn if d_pn < d_an else d_an
        v = margin + d_ap - d_an
        out.append(v if v > 0 else v * 0)
    return _stack(out, a)


def margin_ranking(x1, x2, y, margin=0.0):
    out = []
    for a, b, t in zip(x1.reshape(-1), x2.reshape(-1), y.reshape(-1)):
        v = -t * (a - b) + margin
        out.append(v if v > 0 else v * 0)
    return _stack(out, x1).reshape(x1.shape)


def cosine_embedding(x1, x2, y, margin=0.0):
    out = []
    for i in range(x1.shape[0]):
        c = (x1[i] * x2[i]).sum() / (((x1[i] ** 2).sum() + 1e-12) * ((x2[i] ** 2).sum() + 1e-12)).sqrt()
        if y[i] == 1:
            out.append(1 - c)
        elif y[i] == -1:
            out.append(c - margin if c > margin else c * 0)
        else:
            out.append(c * 0)
    return _stack(out, x1)


def hinge_embedding(x, y, margin=1.0):
    out = []
    for v, t in zip(x.reshape(-1), y.reshape(-1)):
        if t == 1:
            out.append(v)
        elif t == -1:
            out.append(margin - v if v < margin else v * 0)
        else:
            out.append(v + (margin - v if v < margin else v * 0))
    return _stack(out, x).reshape(x.shape)


def contrastive(x1, x2, y, margin=1.0, distance="euclidean"):
    """Hadsell et al. 2006: 1/2 y d^2 + 1/2 (1 - y) max(0, m - d)^2."""
    out = []
    for i in range(x1.shape[0]):
        d = dist(x1[i], x2[i], distance)
        hinge = margin - d if d < margin else d * 0
        out.append(0.5 * y[i] * d**2 + 0.5 * (1 - y[i]) * hinge**2)
    return _stack(out, x1)


# ----------------------------------------------------------------------------- mining


def batch_hard(x, labels, margin=1.0, distance="euclidean", soft=False):
    """Hermans 2017: per anchor, hardest positive and hardest negative. Returns the list of
    per-anchor losses of the anchors that have both (and their indices)."""
    labels = labels.tolist()
    out, anchors = [], []
    for a in range(len(labels)):
        pos = [dist(x[a], x[p], distance) for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        neg = [dist(x[a], x[n], distance) for n in range(len(labels)) if labels[n] != labels[a]]
        if not pos or not neg:
            continue
        hp = max(pos, key=float)
        hn = min(neg, key=float)
        if soft:
            out.append(torch.log1p(torch.exp(hp - hn)))
        else:
            v = margin + hp - hn
            out.append(v if v > 0 else v * 0)
        anchors.append(a)
    return _stack(out, x), anchors


def all_triplets(labels):
    labels = labels.tolist()
    b = len(labels)
    return [(a, p, n) for a in range(b) for p in range(b) for n in range(b)
            if a != p and labels[a] == labels[p] and labels[n] != labels[a]]


def batch_all(x, labels, margin=1.0, distance="euclidean"):
    """Every valid triplet's hinge; returns (losses, triplets)."""
    trip = all_triplets(labels)
    out = []
    for a, p, n in trip:
        v = margin + dist(x[a], x[p], distance) - dist(x[a], x[n], distance)
        out.append(v if v > 0 else v * 0)
    return _stack(out, x), trip


def semi_hard(x, labels, margin=1.0, distance="euclidean"):
    """Schroff 2015 / tfa.losses.triplet_semihard_loss: for each positive pair (a, p) the
    nearest negative with d_an > d_ap, else the farthest negative. Returns per-pair losses."""
    labels = labels.tolist()
    b = len(labels)
    out, pairs = [], []
    for a in range(b):
        negs = [n for n in range(b) if labels[n] != labels[a]]
        if not negs:
            continue
        for p in range(b):
            if p == a or labels[p] != labels[a]:
                continue
            d_ap = dist(x[a], x[p], distance)
            d_neg = [dist(x[a], x[n], distance) for n in negs]
            farther = [d for d in d_neg if float(d) > float(d_ap)]
            d_an = min(farther, key=float) if farther else max(d_neg, key=float)
            v = margin + d_ap - d_an
            out.append(v if v > 0 else v * 0)
            pairs.append((a, p))
    return _stack(out, x), pairs


# ----------------------------------------------------------------------------- pair weighting


def circle(x, labels, m=0.25, gamma=256.0, detach=True):
    """Sun et al. 2020, eq. (4)/(6): per anchor softplus(lse_n + lse_p) with
    alpha_p = [1 + m - s_p]_+, alpha_n = [s_n + m]_+, Delta_p = 1 - m, Delta_n = m."""
    labels = labels.tolist()
    b = len(labels)
    out, anchors = [], []
    for a in range(b):
        sp = [cos_sim(x[a], x[p]) for p in range(b) if p != a and labels[p] == labels[a]]
        sn = [cos_sim(x[a], x[n]) for n in range(b) if labels[n] != labels[a]]
        if not sp or not sn:
            continue
        terms_p, terms_n = [], []
        for s in sp:
            w = s.detach() if detach else s
            ap = 1 + m - w if 1 + m - w > 0 else w * 0
            terms_p.append(-gamma * ap * (s - (1 - m)))
        for s in sn:
            w = s.detach() if detach else s
            an = w + m if w + m > 0 else w * 0
            terms_n.append(gamma * an * (s - m))
        z = torch.logsumexp(torch.stack(terms_p), 0) + torch.logsumexp(torch.stack(terms_n), 0)
        out.append(torch.log1p(torch.exp(-z.abs())) + z.clamp_min(0))
        anchors.append(a)
    return _stack(out, x), anchors


def multi_similarity(x, labels, alpha=2.0, beta=50.0, base=0.5, epsilon=None):
    """Wang et al. 2019, eq. (12), per anchor; with epsilon, the pair mining of eq. (9)/(10)
    first (negatives with s + eps > min positive s, positives with s - eps < max negative s)."""
    labels = labels.tolist()
    b = len(labels)
    out = []
    for a in range(b):
        ps = [p for p in range(b) if p != a and labels[p] == labels[a]]
        ns = [n for n in range(b) if labels[n] != labels[a]]
        if epsilon is not None:
            sp = {p: float(cos_sim(x[a], x[p])) for p in ps}
            sn = {n: float(cos_sim(x[a], x[n])) for n in ns}
            ps2 = [p for p in ps if ns and sp[p] - epsilon < max(sn.values())]
            ns = [n for n in ns if ps and sn[n] + epsilon > min(sp.values())]
            ps = ps2
        pos = sum(torch.exp(-alpha * (cos_sim(x[a], x[p]) - base)) for p in ps)
        neg = sum(torch.exp(beta * (cos_sim(x[a], x[n]) - base)) for n in ns)
        out.append(torch.log(1 + pos * torch.ones((), dtype=x.dtype)) / alpha
                   + torch.log(1 + neg * torch.ones((), dtype=x.dtype)) / beta)
    return _stack(out, x)


# ----------------------------------------------------------------------------- class centres


def _margin_ce(x, labels, w, scale, target_logit):
    out = []
    for i in range(x.shape[0]):
        y = int(labels[i])
        logits = []
        for j in range(w.shape[0]):
            c = cos_sim(x[i], w[j])
            logits.append(scale * (target_logit(c) if j == y else c))
        z = torch.stack(logits)
        out.append(torch.logsumexp(z, 0) - z[y])
    return _stack(out, x)


def arcface(x, labels, w, margin=0.5, scale=64.0):
    """Deng et al. 2019 with the insightface fallback cos(theta) - m sin(m) past pi - m."""
    def target(c):
        theta = torch.acos(c)
        if float(theta) + margin <= math.pi:
            return torch.cos(theta + margin)
        return c - margin * math.sin(margin)
    return _margin_ce(x, labels, w, scale, target)


def cosface(x, labels, w, margin=0.35, scale=64.0):
    return _margin_ce(x, labels, w, scale, lambda c: c - margin)
