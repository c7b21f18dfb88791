"""Float64 reference image losses (never imports losskit), from the definitions; torch is used
as an array library (and for autograd of these plain formulas).

* Total variation: loops over pixels of forward differences (anisotropic L1, squared, isotropic).
* SSIM (Wang et al. 2004): an explicit 2-D (or 3-D) Gaussian window w = g ⊗ g (⊗ g), the local
  moments as window-weighted sums over every offset of the window ("valid" positions only, or
  after reflect padding for "same"), then the SSIM formula, averaged per image.
* MS-SSIM (Wang et al. 2003): 2×2(×2) block means between scales, relu(cs)^w products.
* PSNR: 10·log10(L² / (MSE + eps)) per image.
* Perceptual/style: features by calling the layers one after another, Gram = F Fᵀ / (C·H·W).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor


def total_variation(x: Tensor, kind: str) -> Tensor:
    n, c, h, w = x.shape
    out = []
    for b in range(n):
        total = x.new_zeros(())
        for ch in range(c):
            img = x[b, ch]
            if kind == "isotropic":
                for i in range(h - 1):
                    for j in range(w - 1):
                        dy = img[i + 1, j] - img[i, j]
                        dx = img[i, j + 1] - img[i, j]
                        total = total + torch.sqrt(dy ** 2 + dx ** 2)
                continue
            p = 1 if kind == "anisotropic" else 2
            for i in range(h):
                for j in range(w):
                    if i + 1 < h:
                        total = total + (img[i + 1, j] - img[i, j]).abs() ** p
                    if j + 1 < w:
                        total = total + (img[i, j + 1] - img[i, j]).abs() ** p
        out.append(total)
    return torch.stack(out)


def gaussian_1d(size: int, sigma: float) -> Tensor:
    g = torch.tensor([math.exp(-((i - (size - 1) / 2) ** 2) / (2 * sigma ** 2)) for i in range(size)],
                     dtype=torch.float64)
    return g / g.sum()


def _window(size: int, sigma: float, dims: int) -> Tensor:
    g = gaussian_1d(size, sigma)
    w = g
    for _ in range(dims - 1):
        w = w.unsqueeze(-1) * g
    return w


def _reflect(x: Tensor, r: int, dims: int) -> Tensor:
    # reflect (mirror without repeating the edge): index -k -> k, (n-1)+k -> (n-1)-k
    for axis in range(2, 2 + dims):
        n = x.shape[axis]
        idx = [r - k for k in range(r)] + list(range(n)) + [n - 2 - k for k in range(r)]
        x = x.index_select(axis, torch.tensor(idx))
    return x


def _local_mean(x: Tensor, w: Tensor) -> Tensor:
    """Σ_offset w[offset] · x[position + offset] over every valid position (explicit window)."""
    k = w.shape[0]
    dims = w.ndim
    spatial = x.shape[2:]
    out_shape = [s - k + 1 for s in spatial]
    acc = x.new_zeros(x.shape[:2] + tuple(out_shape))
    for offset in itertools.product(range(k), repeat=dims):
        sl = tuple(slice(o, o + m) for o, m in zip(offset, out_shape))
        acc = acc + w[offset] * x[(Ellipsis,) + sl]
    return acc


def ssim_maps(x: Tensor, y: Tensor, window_size: int = 11, sigma: float = 1.5,
              data_range: float = 1.0, k1: float = 0.01, k2: float = 0.03,
              padding: str = "valid") -> tuple[Tensor, Tensor]:
    dims = x.ndim - 2
    w = _window(window_size, sigma, dims)
    if padding == "same":
        x, y = _reflect(x, window_size // 2, dims), _reflect(y, window_size // 2, dims)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mx, my = _local_mean(x, w), _local_mean(y, w)
    vx = _local_mean(x * x, w) - mx ** 2
    vy = _local_mean(y * y, w) - my ** 2
    cov = _local_mean(x * y, w) - mx * my
    ssim = (2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    cs = (2 * cov + c2) / (vx + vy + c2)
    return ssim, cs


def ssim_loss(x: Tensor, y: Tensor, **kw: object) -> Tensor:
    ssim, _ = ssim_maps(x, y, **kw)  # type: ignore[arg-type]
    return 1 - ssim.reshape(ssim.shape[0], -1).mean(1)


def _halve(x: Tensor) -> Tensor:
    dims = x.ndim - 2
    sl = tuple(slice(0, (s // 2) * 2) for s in x.shape[2:])
    x = x[(Ellipsis,) + sl]
    acc = 0
    for offset in itertools.product(range(2), repeat=dims):
        acc = acc + x[(Ellipsis,) + tuple(slice(o, None, 2) for o in offset)]
    return acc / 2 ** dims


def ms_ssim_loss(x: Tensor, y: Tensor, weights: tuple[float, ...], **kw: object) -> Tensor:
    value = torch.ones(x.shape[0], dtype=x.dtype)
    for j, wj in enumerate(weights):
        ssim, cs = ssim_maps(x, y, **kw)  # type: ignore[arg-type]
        m = (ssim if j == len(weights) - 1 else cs).reshape(x.shape[0], -1).mean(1)
        value = value * torch.relu(m) ** wj
        x, y = _halve(x), _halve(y)
    return 1 - value


def psnr_loss(x: Tensor, y: Tensor, data_range: float = 1.0, eps: float = 1e-10) -> Tensor:
    out = []
    for i in range(x.shape[0]):
        mse = ((x[i] - y[i]) ** 2).mean()
        out.append(-10 * torch.log10(data_range ** 2 / (mse + eps)))
    return torch.stack(out)


def sequential_features(layers_in_order: list[torch.nn.Module], names: list[str], x: Tensor,
                        wanted: list[str]) -> list[Tensor]:
    feats = {}
    h = x
    for name, layer in zip(names, layers_in_order):
        h = layer(h)
        feats[name] = h
    return [feats[n] for n in wanted]


def gram(f: Tensor) -> Tensor:
    n, c = f.shape[:2]
    flat = f.reshape(n, c, -1)
    out = torch.zeros(n, c, c, dtype=f.dtype)
    rows = []
    for b in range(n):
        rows.append(torch.stack([torch.stack([(flat[b, i] * flat[b, j]).sum() for j in range(c)])
                                 for i in range(c)]) / (c * flat.shape[2]))
    return torch.stack(rows) if rows else out
