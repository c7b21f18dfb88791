"""Float64 reference generative losses (never imports losskit), written element by element from
the papers; torch is used only as an array library and for autograd of these plain formulas.

* Gaussian KL (Kingma & Welling 2014, App. B): -1/2 Σ_d (1 + logσ² - μ² - σ²) per sample.
* Free bits (Kingma et al. 2016, eq. 15): Σ_d max(λ, mean_batch KL_d), a dimension below λ
  contributing the constant λ.
* ELBO: Σ_data -log p(x | x̂) + β·KL, with Bernoulli p = sigmoid(logit), a unit Gaussian, or
  squared error.
* GAN (Goodfellow 2014; Mao 2017; Lim & Ye 2017; Arjovsky 2017), written with log σ(x) as the
  textbook writes it (log(1/(1+e^-x))), valid for moderate logits.
* WGAN-GP (Gulrajani 2017) and R1 (Mescheder 2018) from their definitions with autograd.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor, free_bits: float = 0.0) -> Tensor:
    """Per-sample KL, shape (N,), for (N, D) inputs, by loops over samples and dimensions."""
    n, d = mu.shape
    per_dim = [[-0.5 * (1 + logvar[i, j] - mu[i, j] ** 2 - torch.exp(logvar[i, j]))
                for j in range(d)] for i in range(n)]
    if free_bits == 0.0:
        return torch.stack([sum(row) for row in per_dim])  # type: ignore[misc]
    out = []
    for i in range(n):
        total = 0.0
        for j in range(d):
            batch_mean = sum(per_dim[k][j] for k in range(n)) / n
            total = total + (per_dim[i][j] if batch_mean >= free_bits else free_bits)
        out.append(total if isinstance(total, Tensor) else torch.tensor(total, dtype=mu.dtype))
    return torch.stack(out)


def log_sigmoid(x: Tensor) -> Tensor:
    return torch.log(1.0 / (1.0 + torch.exp(-x)))


def elbo(recon: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float,
         reconstruction: str) -> tuple[Tensor, Tensor]:
    """Per-sample (reconstruction, KL)."""
    r = recon.reshape(recon.shape[0], -1)
    t = x.reshape(x.shape[0], -1)
    rows = []
    for i in range(r.shape[0]):
        total = 0.0
        for j in range(r.shape[1]):
            if reconstruction == "bce":
                p_log = t[i, j] * log_sigmoid(r[i, j]) + (1 - t[i, j]) * log_sigmoid(-r[i, j])
                total = total - p_log
            elif reconstruction == "mse":
                total = total + (r[i, j] - t[i, j]) ** 2
            else:
                total = total + 0.5 * (r[i, j] - t[i, j]) ** 2 + 0.5 * math.log(2 * math.pi)
        rows.append(total)
    return torch.stack(rows), gaussian_kl(mu, logvar)


def discriminator(real: Tensor, fake: Tensor, kind: str) -> Tensor:
    """Per-element D loss: (real term) + (fake term)."""
    if kind == "minimax":
        d_real, d_fake = 1 / (1 + torch.exp(-real)), 1 / (1 + torch.exp(-fake))
        return -torch.log(d_real) - torch.log(1 - d_fake)
    if kind == "lsgan":
        a, b = 0.0, 1.0
        return 0.5 * (real - b) ** 2 + 0.5 * (fake - a) ** 2
    if kind == "hinge":
        return torch.clamp(1 - real, min=0) + torch.clamp(1 + fake, min=0)
    return fake - real


def generator(fake: Tensor, kind: str) -> Tensor:
    d_fake = 1 / (1 + torch.exp(-fake))
    if kind == "minimax":
        return torch.log(1 - d_fake)
    if kind == "non_saturating":
        return -torch.log(d_fake)
    if kind == "lsgan":
        c = 1.0
        return 0.5 * (fake - c) ** 2
    return -fake


def gradient_penalty(critic, real: Tensor, fake: Tensor, eps: Tensor, weight: float,
                     center: float) -> Tensor:
    """Per-sample penalty: each interpolate's gradient is taken separately (one sample at a time)."""
    out = []
    for i in range(real.shape[0]):
        x_hat = eps[i] * real[i:i + 1] + (1 - eps[i]) * fake[i:i + 1]
        if not x_hat.requires_grad:
            x_hat = x_hat.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        norm = torch.sqrt((g ** 2).sum())
        out.append(weight * (norm - center) ** 2)
    return torch.stack(out)


def r1(critic, x: Tensor, gamma: float) -> Tensor:
    out = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        if not xi.requires_grad:
            xi = xi.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(xi).sum(), xi, create_graph=True)
        out.append(gamma / 2 * (g ** 2).sum())
    return torch.stack(out)
