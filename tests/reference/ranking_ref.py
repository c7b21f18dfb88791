"""Float64 references for the ranking losses, written from the papers with loops over lists,
items and pairs on float64 torch scalars (autograd of the obvious formula gives the reference
gradient). Padded items (mask False) are simply skipped. Nothing here imports losskit.
"""

from __future__ import annotations

import torch


def _items(mask, i):
    return [j for j in range(mask.shape[1]) if bool(mask[i, j])]


def ranknet(s, r, mask, sigma=1.0):
    """Burges 2005: per list, mean over pairs r_i > r_j of log(1 + exp(-sigma (s_i - s_j)));
    returns (per-list losses, whether the list has a pair)."""
    out, has = [], []
    for i in range(s.shape[0]):
        items = _items(mask, i)
        terms = [torch.log1p(torch.exp(-sigma * (s[i, a] - s[i, b])))
                 for a in items for b in items if float(r[i, a]) > float(r[i, b])]
        out.append(sum(terms) / len(terms) if terms else s[i, 0] * 0)
        has.append(bool(terms))
    return torch.stack(out), has


def listnet(s, r, mask):
    """Cao 2007 top-one: -sum_j softmax(r)_j log softmax(s)_j over the real items."""
    out, has = [], []
    for i in range(s.shape[0]):
        items = _items(mask, i)
        if not items:
            out.append(s[i, 0] * 0)
            has.append(False)
            continue
        zr = sum(torch.exp(r[i, j]) for j in items)
        zs = sum(torch.exp(s[i, j]) for j in items)
        out.append(-sum(torch.exp(r[i, j]) / zr * (s[i, j] - torch.log(zs)) for j in items))
        has.append(True)
    return torch.stack(out), has


def listmle(s, r, mask):
    """Xia 2008: -log P(pi | s) under Plackett-Luce, pi = real items by decreasing relevance
    (ties kept in list order)."""
    out, has = [], []
    for i in range(s.shape[0]):
        items = _items(mask, i)
        order = sorted(items, key=lambda j: (-float(r[i, j]), j))
        total = s[i, 0] * 0
        for k, j in enumerate(order):
            total = total + torch.log(sum(torch.exp(s[i, t]) for t in order[k:])) - s[i, j]
        out.append(total)
        has.append(bool(items))
    return torch.stack(out), has
