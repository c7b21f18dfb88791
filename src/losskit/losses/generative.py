"""Generative losses: the VAE's Gaussian KL and ELBO (β-VAE, free bits), GAN objectives
(minimax, non-saturating, least-squares, hinge, Wasserstein) and the gradient penalties that
regularise critics (WGAN-GP, R1).

Logits are raw discriminator scores (no sigmoid); every log-probability is computed with
``softplus``/``log_sigmoid`` so logits of ±100 (or ±1e4) give finite values and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_floating,
    check_number,
    check_option,
    check_same_shape,
    shape_str,
)
from losskit._core.fused import ElementwiseKernel, elementwise_loss
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register
from losskit._core.samples import draw

__all__ = [
    "ELBOLoss",
    "ElboTerms",
    "GANDiscriminatorLoss",
    "GANGeneratorLoss",
    "GaussianKLDivergence",
    "GradientPenalty",
    "R1Penalty",
    "elbo_loss",
    "elbo_terms",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gaussian_kl_divergence",
    "gradient_penalty",
    "r1_penalty",
]

_LOG_2PI = math.log(2.0 * math.pi)
_RECONSTRUCTIONS = ("bce", "mse", "gaussian")
_D_KINDS = ("minimax", "lsgan", "hinge", "wgan")
_G_KINDS = ("minimax", "non_saturating", "lsgan", "hinge", "wgan")


# --------------------------------------------------------------------------- VAE


def _weights_like(lead: tuple[int, ...], like: Tensor, sample_weight: Tensor | None,
                  mask: Tensor | None) -> Tensor:
    """The effective weight m·w of each sample (shape ``lead``), for the free-bits batch mean."""
    w = torch.ones(lead, dtype=like.dtype, device=like.device)
    for name, value in (("sample_weight", sample_weight), ("mask", mask)):
        if value is None:
            continue
        v = value.to(like.dtype)
        if v.shape != w.shape:
            if v.ndim == 1 and len(lead) >= 1 and v.shape[0] == lead[0]:
                v = v.reshape((-1,) + (1,) * (len(lead) - 1))
            else:
                raise LossInputError(
                    f"{name} has shape {shape_str(v)}; expected {shape_str(lead)} (one per sample) "
                    f"or ({lead[0] if lead else 1},). Fix: reshape {name}."
                )
        w = w * v
    return w


def _gaussian_kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    # KL(N(mu, e^logvar) || N(0, 1)) per latent dimension; expm1 keeps it exact near logvar = 0.
    return 0.5 * (mu.square() + torch.expm1(logvar) - logvar)


def _free_bits_kl(kl_dims: Tensor, free_bits: float, sample_weight: Tensor | None,
                  mask: Tensor | None) -> Tensor:
    """Per-sample KL with free bits (Kingma et al. 2016): a latent dimension whose batch-mean
    KL is below ``free_bits`` contributes the constant ``free_bits`` (no gradient)."""
    if free_bits == 0.0:
        return kl_dims.sum(-1)
    lead = tuple(kl_dims.shape[:-1])
    w = _weights_like(lead, kl_dims, sample_weight, mask).unsqueeze(-1)
    flat_w = w.reshape(-1, 1)
    batch_mean = (kl_dims.reshape(-1, kl_dims.shape[-1]) * flat_w).sum(0) / flat_w.sum().clamp_min(
        torch.finfo(kl_dims.dtype).tiny)
    active = batch_mean >= free_bits
    return torch.where(active, kl_dims, kl_dims.new_full((), free_bits)).sum(-1)


def _check_latents(mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
    check_floating("mu", mu)
    check_floating("logvar", logvar)
    check_same_shape(mu, logvar, ("mu", "logvar"))
    if mu.ndim < 1:
        raise LossInputError("mu must have a latent dimension (shape (N, D)), got a 0-d tensor. "
                             "Fix: pass mu.reshape(1, -1).")
    return as_float32(mu, logvar)  # type: ignore[return-value]


def _latent_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                   extreme: bool = False) -> Sample:
    mu = draw("real", (6, 4), gen, dtype, extreme)
    logvar = draw("real", (6, 4), gen, torch.float64) * (8.0 if extreme else 1.0)
    return Sample((mu, logvar.to(dtype)), grad=(0, 1))


@register(
    "gaussian_kl_divergence",
    family="generative",
    tasks=("generative", "vae"),
    input_kind="gaussian_parameters",
    target_kind="none",
    aliases=("gaussian_kl", "vae_kl"),
    properties=Properties(convex=True, smoothness="Cinf", robust="none", homogeneity=None,
                          units="nats per sample", zero_at_perfect=None),
    formula=r"\ell = -\tfrac12 \sum_d \left(1 + \log\sigma_d^2 - \mu_d^2 - \sigma_d^2\right)",
    references=("Kingma & Welling 2014 (Auto-Encoding Variational Bayes), Appendix B",
                "Kingma et al. 2016 (Improved Variational Inference with IAF), free bits"),
    sample=_latent_sample,
)
def gaussian_kl_divergence(
    mu: Tensor,
    logvar: Tensor,
    *,
    free_bits: float = 0.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""KL divergence of a diagonal Gaussian posterior :math:`\mathcal N(\mu, e^{\log\sigma^2})`
    from the standard normal prior, in closed form, summed over the latent (last) dimension:

    .. math:: \mathrm{KL}_n = \tfrac12 \sum_d \left(\mu_{nd}^2 + \sigma_{nd}^2 - 1 - \log\sigma_{nd}^2\right)

    ``"mean"`` averages the per-sample KL over samples (the per-sample ELBO convention), not over
    latent dimensions. ``σ² − 1`` is computed with ``expm1`` so the KL is exact near σ = 1.

    Free bits (Kingma et al. 2016, eq. 15): with ``free_bits=λ > 0`` each latent dimension ``d``
    contributes :math:`\max(\lambda, \overline{\mathrm{KL}}_d)` where
    :math:`\overline{\mathrm{KL}}_d` is its (weighted, masked) *mean over the batch*, as in the
    paper; a dimension below λ contributes the constant λ per sample and gets no gradient. The
    per-sample values (``"none"``) average to that objective.

    Args:
        mu: posterior means ``(*, D)``.
        logvar: posterior log-variances, same shape as ``mu``.
        free_bits: λ ≥ 0 in nats per latent dimension (0 disables it).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*, D)`` and ``(*, D)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> LF.gaussian_kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3))   # posterior == prior
        tensor(0.)
        >>> LF.gaussian_kl_divergence(torch.ones(1, 3), torch.zeros(1, 3))    # ½·Σ μ² = 1.5
        tensor(1.5000)

    References:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, Appendix B.
        Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow",
        NeurIPS 2016 (free bits).
    """
    check_number("free_bits", free_bits, low=0.0)
    mu, logvar = _check_latents(mu, logvar)
    kl = _free_bits_kl(_gaussian_kl_per_dim(mu, logvar), free_bits, sample_weight, mask)
    return reduce(kl, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class GaussianKLDivergence(LossModule):
    """Module form of :func:`gaussian_kl_divergence`."""

    fn = staticmethod(gaussian_kl_divergence)


class ElboTerms(NamedTuple):
    """The two terms of the negative ELBO and their β-weighted total, reduced alike."""

    recon: Tensor
    kl: Tensor
    total: Tensor


def _reconstruction(recon: Tensor, x: Tensor, kind: str) -> Tensor:
    if kind == "bce":
        per = F.binary_cross_entropy_with_logits(recon, x, reduction="none")
    elif kind == "mse":
        per = (recon - x).square()
    else:  # unit-variance Gaussian negative log-likelihood
        per = 0.5 * (recon - x).square() + 0.5 * _LOG_2PI
    return per.reshape(per.shape[0], -1).sum(1)


def elbo_terms(
    recon: Tensor,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    *,
    beta: float = 1.0,
    reconstruction: str = "bce",
    free_bits: float = 0.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> ElboTerms:
    r"""The negative ELBO split into its terms, for logging: ``ElboTerms(recon, kl, total)``
    with ``total = recon + beta * kl``, each reduced as ``reduction`` says. The arguments are
    those of :func:`elbo_loss`, whose value is ``elbo_terms(...).total``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.rand(4, 6)
        >>> t = LF.elbo_terms(torch.zeros(4, 6), x, torch.ones(4, 2), torch.zeros(4, 2), beta=2.0)
        >>> torch.allclose(t.total, t.recon + 2.0 * t.kl), t.kl
        (True, tensor(1.))
    """
    check_option("reconstruction", reconstruction, _RECONSTRUCTIONS)
    check_number("beta", beta, low=0.0)
    check_number("free_bits", free_bits, low=0.0)
    check_floating("recon", recon)
    check_floating("x", x)
    check_same_shape(recon, x, ("recon", "x"))
    mu, logvar = _check_latents(mu, logvar)
    if recon.ndim < 1 or mu.ndim != 2 or mu.shape[0] != recon.shape[0]:
        raise LossInputError(
            f"recon {shape_str(recon)} must be (N, *) and mu/logvar (N, D) with the same N, got "
            f"mu {shape_str(mu)}. Fix: flatten extra latent dims with mu.flatten(1)."
        )
    recon, x = as_float32(recon, x)
    if not x.is_floating_point():
        x = x.to(recon.dtype)
    rec = _reconstruction(recon, x, reconstruction)
    kl = _free_bits_kl(_gaussian_kl_per_dim(mu, logvar), free_bits, sample_weight, mask)
    opts = dict(sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty)
    rec_r = reduce(rec, reduction, **opts)  # type: ignore[arg-type]
    kl_r = reduce(kl, reduction, **opts)  # type: ignore[arg-type]
    return ElboTerms(rec_r, kl_r, reduce(rec + beta * kl, reduction, **opts))  # type: ignore[arg-type]


def _elbo_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                 extreme: bool = False) -> Sample:
    recon = draw("real", (5, 2, 3), gen, dtype, extreme)
    x = draw("probability", (5, 2, 3), gen, dtype, extreme)
    mu = draw("real", (5, 4), gen, dtype, extreme)
    logvar = (draw("real", (5, 4), gen, torch.float64) * (8.0 if extreme else 1.0)).to(dtype)
    return Sample((recon, x, mu, logvar), grad=(0, 2, 3))


@register(
    "elbo",
    family="generative",
    tasks=("generative", "vae"),
    input_kind="logits",
    target_kind="real",
    aliases=("elbo_loss", "vae_loss", "beta_vae_loss"),
    properties=Properties(convex=True, smoothness="Cinf", robust="bounded_influence", homogeneity=None,
                          units="nats per sample", zero_at_perfect=None),
    formula=r"\ell_n = -\log p(x_n \mid \hat x_n) + \beta\,\mathrm{KL}(q(z\mid x_n)\,\|\,\mathcal N(0, I))",
    references=("Kingma & Welling 2014", "Higgins et al. 2017 (beta-VAE)",
                "Kingma et al. 2016 (free bits)"),
    sample=_elbo_sample,
)
def elbo_loss(
    recon: Tensor,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    *,
    beta: float = 1.0,
    reconstruction: str = "bce",
    free_bits: float = 0.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Negative evidence lower bound of a Gaussian VAE (β-VAE), per sample:

    .. math:: \ell_n = \sum_{\text{data dims}} r(\hat x_n, x_n) + \beta \cdot \mathrm{KL}_n

    The reconstruction term is summed over every data dimension and the KL (see
    :func:`gaussian_kl_divergence`, free bits included) over latent dimensions; ``"mean"``
    averages over samples: the conventional per-sample ELBO, not a per-pixel mean.
    ``reconstruction`` is

    * ``"bce"``: Bernoulli likelihood; ``recon`` are **logits** (no sigmoid), ``x`` in [0, 1];
      computed with ``binary_cross_entropy_with_logits``.
    * ``"mse"``: squared error :math:`(\hat x - x)^2` (a Gaussian up to scale and constant).
    * ``"gaussian"``: the exact unit-variance Gaussian NLL,
      :math:`\tfrac12(\hat x - x)^2 + \tfrac12\log 2\pi`.

    Use :func:`elbo_terms` for the reconstruction and KL terms separately (logging).

    Args:
        recon: decoder output ``(N, *)`` (logits for ``"bce"``).
        x: the data, same shape as ``recon``.
        mu: posterior means ``(N, D)``.
        logvar: posterior log-variances ``(N, D)``.
        beta: weight of the KL term (β-VAE; 1 is the ELBO).
        reconstruction: ``"bce"`` | ``"mse"`` | ``"gaussian"``.
        free_bits: λ ≥ 0, nats per latent dimension (batch-mean form of Kingma et al. 2016).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, *)``, ``(N, *)``, ``(N, D)``, ``(N, D)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.rand(3, 8)
        >>> z = torch.zeros(3, 2)      # posterior == prior: the loss is the reconstruction alone
        >>> torch.allclose(LF.elbo_loss(x, x, z, z, reconstruction="mse"), torch.tensor(0.0))
        True

    References:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
        Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
        Framework", ICLR 2017.
    """
    return elbo_terms(recon, x, mu, logvar, beta=beta, reconstruction=reconstruction,
                      free_bits=free_bits, reduction=reduction, sample_weight=sample_weight,
                      mask=mask, normalizer=normalizer, empty=empty).total


class ELBOLoss(LossModule):
    """Module form of :func:`elbo_loss`."""

    fn = staticmethod(elbo_loss)


# --------------------------------------------------------------------------- GAN

# The per-element terms of the GAN objectives as fused kernels (losskit._core.fused): a closed-
# form gradient, only the logits saved for backward, run over cache-sized chunks. Each term
# depends on one tensor of logits; the fused framework's second ("target") slot is unused.


def _softplus_neg_grad(x: Tensor, _: Tensor) -> Tensor:
    # d/dx softplus(-x) = -σ(-x), kept to float precision (σ(x) - 1 would round it to 0 from x ≈ 17)
    return torch.neg(x).sigmoid_().neg_()


def _half_square_grad(x: Tensor, _: Tensor) -> Tensor:
    return x


_SOFTPLUS_NEG = ElementwiseKernel(   # -log σ(x): the real term of minimax D, non-saturating G
    "gan_softplus_neg",
    native=True,
    reference=lambda x, _: F.softplus(-x),
    value=lambda x, _: F.softplus(torch.neg(x)),
    grad=_softplus_neg_grad,
)
_SOFTPLUS = ElementwiseKernel(       # -log(1 - σ(x)): the fake term of minimax D
    "gan_softplus",
    native=True,
    reference=lambda x, _: F.softplus(x),
    value=lambda x, _: F.softplus(x),
    grad=lambda x, _: torch.sigmoid(x),
)
_NEG_SOFTPLUS = ElementwiseKernel(   # log(1 - σ(x)): minimax G
    "gan_neg_softplus",
    native=True,
    reference=lambda x, _: -F.softplus(x),
    value=lambda x, _: F.softplus(x).neg_(),
    grad=lambda x, _: torch.sigmoid(x).neg_(),
)
_HALF_SQUARE_TO_ONE = ElementwiseKernel(   # ½(x - 1)²: the real term of LSGAN D, LSGAN G
    "gan_half_square_to_one",
    native=True,
    reference=lambda x, _: 0.5 * (x - 1.0).square(),
    value=lambda x, _: torch.sub(x, 1.0).square_().mul_(0.5),
    grad=lambda x, _: torch.sub(x, 1.0),
)
_HALF_SQUARE = ElementwiseKernel(    # ½x²: the fake term of LSGAN D
    "gan_half_square",
    native=True,
    reference=lambda x, _: 0.5 * x.square(),
    value=lambda x, _: torch.square(x).mul_(0.5),
    grad=_half_square_grad,
)
# The hinge kinks take relu's convention: derivative 0 where the argument is exactly 0.
_HINGE_REAL = ElementwiseKernel(     # max(0, 1 - x)
    "gan_hinge_real",
    native=True,
    reference=lambda x, _: F.relu(1.0 - x),
    value=lambda x, _: torch.rsub(x, 1.0).clamp_min_(0.0),
    grad=lambda x, _: torch.sub(x, 1.0).sign_().clamp_max_(0.0),   # -1 below the kink, else 0
)
_HINGE_FAKE = ElementwiseKernel(     # max(0, 1 + x)
    "gan_hinge_fake",
    native=True,
    reference=lambda x, _: F.relu(1.0 + x),
    value=lambda x, _: torch.add(x, 1.0).clamp_min_(0.0),
    grad=lambda x, _: torch.add(x, 1.0).sign_().clamp_min_(0.0),   # 1 above the kink, else 0
)
def _pair(kind: str, real: ElementwiseKernel, fake: ElementwiseKernel) -> ElementwiseKernel:
    """The discriminator's two terms as one kernel of (real, fake): one pass over both score
    tensors per direction, each differentiated by its own term."""
    return ElementwiseKernel(
        f"gan_d_{kind}",
        native=True,
        reference=lambda r, f: real.reference(r, r) + fake.reference(f, f),
        value=lambda r, f: real.value(r, r).add_(fake.value(f, f)),
        grad=lambda r, f: real.grad(r, r),
        grad_target=lambda r, f: fake.grad(f, f),
        target_grad="own",
    )


_D_MINIMAX = _pair("minimax", _SOFTPLUS_NEG, _SOFTPLUS)
_D_LSGAN = _pair("lsgan", _HALF_SQUARE_TO_ONE, _HALF_SQUARE)
_D_HINGE = _pair("hinge", _HINGE_REAL, _HINGE_FAKE)
_D_PAIRS = {"minimax": _D_MINIMAX, "lsgan": _D_LSGAN, "hinge": _D_HINGE}
_G_TERMS = {"non_saturating": _SOFTPLUS_NEG, "minimax": _NEG_SOFTPLUS, "lsgan": _HALF_SQUARE_TO_ONE}


def _term(kernel: ElementwiseKernel, logits: Tensor, reduction: str, opts: dict[str, object]) -> Tensor:
    """The reduced term ``kernel(logits)``, fused where losskit._core.fused allows."""
    return elementwise_loss(kernel, logits, logits.detach(), (), reduction, **opts)  # type: ignore[arg-type]


def _logit_pair_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                       extreme: bool = False) -> Sample:
    real = draw("real", (8,), gen, dtype, extreme)
    fake = draw("real", (8,), gen, dtype, extreme)
    return Sample((real, fake), grad=(0, 1))


def _logit_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                  extreme: bool = False) -> Sample:
    return Sample((draw("real", (6, 5), gen, dtype, extreme),))


@register(
    "gan_discriminator",
    family="generative",
    tasks=("generative", "gan"),
    input_kind="logits",
    target_kind="logits",
    aliases=("gan_discriminator_loss", "discriminator_loss"),
    properties=Properties(convex=True, smoothness="Cinf", robust="bounded_influence",
                          homogeneity=None, units="nats", zero_at_perfect=None),
    formula=r"\ell = -\log\sigma(D(x)) - \log(1 - \sigma(D(G(z))))",
    references=("Goodfellow et al. 2014", "Mao et al. 2017 (LSGAN)", "Lim & Ye 2017 (hinge)",
                "Arjovsky et al. 2017 (WGAN)"),
    peers={"monai": "monai.losses.PatchAdversarialLoss(for_discriminator=True)"},
    sample=_logit_pair_sample,
    elementwise=True,
)
def gan_discriminator_loss(
    real_logits: Tensor,
    fake_logits: Tensor,
    *,
    kind: str = "minimax",
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Discriminator (critic) loss on paired real and fake scores; per element, with
    :math:`r = D(x)` and :math:`f = D(G(z))`:

    * ``"minimax"`` (Goodfellow 2014): :math:`-\log\sigma(r) - \log(1-\sigma(f)) =
      \mathrm{softplus}(-r) + \mathrm{softplus}(f)` (the BCE with labels 1/0), stable at ±100.
    * ``"lsgan"`` (Mao 2017, a, b = 0, 1): :math:`\tfrac12 (r - 1)^2 + \tfrac12 f^2`.
    * ``"hinge"`` (Lim & Ye 2017; Miyato 2018): :math:`\max(0, 1 - r) + \max(0, 1 + f)`.
    * ``"wgan"`` (Arjovsky 2017 critic): :math:`f - r` (add :func:`gradient_penalty`).

    The mean of the per-element loss is :math:`\mathbb E[\ell_\text{real}] + \mathbb E[\ell_\text{fake}]`,
    the textbook objective (MONAI's ``PatchAdversarialLoss`` returns the two terms separately;
    its least-squares form has no ½).

    Speed and memory: ``"minimax"``, ``"lsgan"`` and ``"hinge"`` run a fused path (one kernel
    per term with its closed-form gradient, over cache-sized chunks) that saves nothing for
    backward but the logits; under ``torch.compile`` and for double backward the composed form
    above is used. At a kink of ``"hinge"`` the derivative is 0, as ``relu``'s is.

    Args:
        real_logits: raw scores on real data, any shape.
        fake_logits: raw scores on generated data, same shape.
        kind: ``"minimax"`` | ``"lsgan"`` | ``"hinge"`` | ``"wgan"``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> r, f = torch.tensor([100.0]), torch.tensor([-100.0])   # a perfect discriminator
        >>> LF.gan_discriminator_loss(r, f), LF.gan_discriminator_loss(r, f, kind="hinge")
        (tensor(0.), tensor(0.))
        >>> LF.gan_discriminator_loss(torch.zeros(1), torch.zeros(1))   # D = ½ everywhere: 2·log 2
        tensor(1.3863)

    References:
        Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
        Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017.
        Lim & Ye, "Geometric GAN", 2017; Miyato et al., "Spectral Normalization for GANs", ICLR 2018.
        Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017.
    """
    check_option("kind", kind, _D_KINDS)
    check_floating("real_logits", real_logits)
    check_floating("fake_logits", fake_logits)
    check_same_shape(real_logits, fake_logits, ("real_logits", "fake_logits"))
    r, f = as_float32(real_logits, fake_logits)
    opts: dict[str, object] = dict(sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                                   empty=empty)
    if kind == "wgan":
        return reduce(f - r, reduction, **opts)  # type: ignore[arg-type]
    return elementwise_loss(_D_PAIRS[kind], r, f, (), reduction, **opts)  # type: ignore[arg-type]


class GANDiscriminatorLoss(LossModule):
    """Module form of :func:`gan_discriminator_loss`."""

    fn = staticmethod(gan_discriminator_loss)


@register(
    "gan_generator",
    family="generative",
    tasks=("generative", "gan"),
    input_kind="logits",
    target_kind="none",
    aliases=("gan_generator_loss", "generator_loss"),
    properties=Properties(convex=True, smoothness="Cinf", robust="bounded_influence",
                          homogeneity=None, units="nats", zero_at_perfect=None),
    formula=r"\ell = -\log\sigma(D(G(z))) \ \text{(non-saturating)}",
    references=("Goodfellow et al. 2014", "Mao et al. 2017 (LSGAN)", "Lim & Ye 2017 (hinge)",
                "Arjovsky et al. 2017 (WGAN)"),
    peers={"monai": "monai.losses.PatchAdversarialLoss(for_discriminator=False)"},
    sample=_logit_sample,
    elementwise=True,
    skip={"bad_shape": "a single score tensor of any shape is valid (patch discriminators give "
                       "(N, 1, H, W)); there is no second argument to mismatch"},
)
def gan_generator_loss(
    fake_logits: Tensor,
    *,
    kind: str = "non_saturating",
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Generator loss on the discriminator's raw scores :math:`f = D(G(z))` of generated data:

    * ``"non_saturating"`` (default; Goodfellow 2014, §3): :math:`-\log\sigma(f) = \mathrm{softplus}(-f)`,
      the form everyone trains with: its gradient does not vanish when D rejects the fakes.
    * ``"minimax"``: :math:`\log(1 - \sigma(f)) = -\mathrm{softplus}(f)`, the literal minimax
      objective (saturates: the gradient → 0 as f → −∞); computed stably.
    * ``"lsgan"`` (Mao 2017, c = 1): :math:`\tfrac12 (f - 1)^2`.
    * ``"hinge"`` (Lim & Ye 2017) and ``"wgan"`` (Arjovsky 2017): :math:`-f`.

    The default is ``"non_saturating"`` rather than the literal minimax form because that is
    the objective the papers recommend for training. ``"non_saturating"``, ``"minimax"`` and
    ``"lsgan"`` run a fused path that saves nothing for backward but the logits (see
    :func:`gan_discriminator_loss`).

    Args:
        fake_logits: raw scores on generated data, any shape.
        kind: ``"non_saturating"`` | ``"minimax"`` | ``"lsgan"`` | ``"hinge"`` | ``"wgan"``.
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> f = torch.tensor([-10.0], requires_grad=True)    # D confidently rejects the fake
        >>> LF.gan_generator_loss(f, kind="minimax").backward()
        >>> f.grad                                           # minimax saturates: -σ(-10) ...
        tensor([-4.5398e-05])
        >>> f.grad = None; LF.gan_generator_loss(f).backward(); f.grad   # ... non-saturating does not
        tensor([-1.])

    References:
        Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
        Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017.
        Lim & Ye, "Geometric GAN", 2017.
        Arjovsky, Chintala & Bottou, "Wasserstein GAN", ICML 2017.
    """
    check_option("kind", kind, _G_KINDS)
    check_floating("fake_logits", fake_logits)
    (f,) = as_float32(fake_logits)
    opts: dict[str, object] = dict(sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                                   empty=empty)
    if kind in ("hinge", "wgan"):
        return reduce(-f, reduction, **opts)  # type: ignore[arg-type]
    return _term(_G_TERMS[kind], f, reduction, opts)


class GANGeneratorLoss(LossModule):
    """Module form of :func:`gan_generator_loss`."""

    fn = staticmethod(gan_generator_loss)


# --------------------------------------------------------------------------- gradient penalties


def _safe_norm(g: Tensor) -> Tensor:
    """Per-sample L2 norm over all but the first dim; gradient 0 (not NaN) at g = 0."""
    sq = g.reshape(g.shape[0], -1).square().sum(1)
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, 1.0).sqrt(), 0.0)


def _input_grad(scores: Tensor, inputs: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
    return grad


def _critic_grad_autograd(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """∇ₓ Σₙ D(x)ₙ by ``torch.autograd.grad(create_graph=True)``: works with every critic,
    including custom autograd Functions without ``setup_context`` (StyleGAN2's ops)."""
    with torch.enable_grad():  # the penalty needs a graph even when called under no_grad
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        return _input_grad(critic(x), x)


def _critic_grad_func(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The same gradient by ``torch.func.vjp``, which torch.compile(fullgraph=True) traces; the
    result stays differentiable w.r.t. ``x`` and the critic's parameters (outer autograd), and
    the transform ignores an outer ``no_grad``."""
    scores, vjp = torch.func.vjp(critic, x)
    (grad,) = vjp(torch.ones_like(scores))
    return grad


def _critic_grad(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    # Dynamo cannot trace torch.autograd.grad; torch.func can, but refuses autograd Functions
    # written without setup_context, which eager users' critics may contain.
    if torch.compiler.is_compiling():
        return _critic_grad_func(critic, x)
    return _critic_grad_autograd(critic, x)


def _tiny_critic(gen: torch.Generator, features: int) -> Callable[[Tensor], Tensor]:
    # A smooth two-layer critic with fixed weights, evaluated in the dtype of its input.
    w1 = torch.randn(features, 7, generator=gen, dtype=torch.float64) / math.sqrt(features)
    w2 = torch.randn(7, generator=gen, dtype=torch.float64)

    def critic(x: Tensor) -> Tensor:
        return torch.tanh(x.flatten(1) @ w1.to(x.dtype)) @ w2.to(x.dtype)

    return critic


def _penalty_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    critic = _tiny_critic(gen, 6)
    real = draw("real", (5, 2, 3), gen, dtype, extreme)
    fake = draw("real", (5, 2, 3), gen, dtype, extreme)
    eps = torch.rand(5, generator=gen, dtype=torch.float64).to(dtype)
    return Sample((critic, real, fake), {"eps": eps}, grad=(1, 2))


_PENALTY_SKIPS = {
    "bad_shape": "the first argument is the critic (a callable); real/fake shape mismatches "
                 "are tested in test_generative.py",
}


@register(
    "gradient_penalty",
    family="generative",
    tasks=("generative", "gan"),
    input_kind="critic",
    target_kind="real",
    aliases=("wgan_gp", "gradient_penalty_loss"),
    properties=Properties(convex=None, smoothness="C0", robust=None, homogeneity=None,
                          units="squared gradient norm", zero_at_perfect=None),
    formula=r"\lambda\,(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2,\ \hat x = \epsilon x + (1-\epsilon)\tilde x",
    references=("Gulrajani et al. 2017 (Improved Training of Wasserstein GANs)",),
    sample=_penalty_sample,
    skip=_PENALTY_SKIPS,
)
def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    weight: float = 10.0,
    center: float = 1.0,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""WGAN-GP gradient penalty (Gulrajani et al. 2017), per sample:

    .. math:: \ell_n = \lambda\,\big(\|\nabla_{\hat x} D(\hat x_n)\|_2 - c\big)^2, \qquad
              \hat x_n = \epsilon_n x_n + (1 - \epsilon_n)\,\tilde x_n,\ \epsilon_n \sim U[0, 1]

    The input gradient is itself differentiable, so backpropagating the penalty trains the
    critic (and reaches ``real``/``fake`` if they require grad). Eagerly it is taken with
    ``torch.autograd.grad(create_graph=True)``, which accepts any critic (custom autograd
    Functions included); under ``torch.compile`` it is taken with ``torch.func.vjp``, so the
    penalty traces with ``fullgraph=True`` together with the critic. The norm is over all
    but the first dimension; the critic must score each sample independently (no batch norm, as
    the paper says) and return ``(N,)`` or ``(N, 1)`` scores. With ``center > 0`` the penalty
    has a kink where the critic's input gradient vanishes (it is only C0 there); the norm's
    gradient at that point is taken as 0 (not NaN).

    Args:
        critic: the critic/discriminator, any callable ``(N, *) → (N,)`` or ``(N, 1)``.
        real: real samples ``(N, *)``.
        fake: generated samples, same shape (detach them when training the critic).
        weight: λ (10 in the paper).
        center: c, the target norm (1; 0 gives the zero-centred penalty).
        eps: optional interpolation weights ``(N,)`` in [0, 1], for reproducibility; by default
            drawn uniformly per sample (from ``generator`` if given).
        generator: ``torch.Generator`` for the random ε (eager only: under
            ``torch.compile(fullgraph=True)`` a generator cannot be traced; pass ``eps``).
        reduction: ``"none"`` (per sample) | ``"mean"`` | ``"sum"``.

    Shape:
        ``(N, *)`` and ``(N, *)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> critic = lambda x: 3.0 * x.sum(1)          # ‖∇D‖ = 3·√2 everywhere
        >>> real, fake = torch.randn(4, 2), torch.randn(4, 2)
        >>> torch.allclose(LF.gradient_penalty(critic, real, fake),
        ...                torch.tensor(10.0 * (3 * 2 ** 0.5 - 1) ** 2))
        True

    References:
        Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville, "Improved Training of Wasserstein
        GANs", NeurIPS 2017.
    """
    check_option("reduction", reduction, ("none", "mean", "sum"))
    if not callable(critic):
        raise LossInputError(f"critic must be callable (the critic network), got "
                             f"{type(critic).__name__}. Fix: pass the critic module itself.")
    check_floating("real", real)
    check_floating("fake", fake)
    check_same_shape(real, fake, ("real", "fake"))
    check_number("weight", weight)
    check_number("center", center)
    if real.ndim < 1:
        raise LossInputError("real must be (N, *) with a batch dimension, got a 0-d tensor.")
    real, fake = as_float32(real, fake)
    n = real.shape[0]
    if eps is None:
        eps = torch.rand(n, generator=generator, dtype=real.dtype, device=real.device)
    else:
        check_floating("eps", eps)
        if eps.shape != (n,):
            raise LossInputError(f"eps must have shape ({n},) (one weight per sample), got "
                                 f"{shape_str(eps)}. Fix: pass eps.reshape({n}).")
        eps = eps.to(real.dtype)
    eps = eps.reshape((n,) + (1,) * (real.ndim - 1))
    with torch.enable_grad():  # keep the graph to real/fake even when called under no_grad
        x_hat = eps * real + (1.0 - eps) * fake
    penalty = weight * (_safe_norm(_critic_grad(critic, x_hat)) - center).square()
    return reduce(penalty, reduction)


class GradientPenalty(LossModule):
    """Module form of :func:`gradient_penalty`: ``GradientPenalty(weight=10.0)(critic, real, fake)``."""

    fn = staticmethod(gradient_penalty)


def _r1_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
               extreme: bool = False) -> Sample:
    critic = _tiny_critic(gen, 6)
    real = draw("real", (5, 2, 3), gen, dtype, extreme)
    return Sample((critic, real), grad=(1,))


@register(
    "r1_penalty",
    family="generative",
    tasks=("generative", "gan"),
    input_kind="logits",
    target_kind="real",
    aliases=("r1", "r1_regularization"),
    properties=Properties(convex=None, smoothness="Cinf", robust=None, homogeneity=None,
                          units="squared gradient norm", zero_at_perfect=None),
    formula=r"\tfrac{\gamma}{2}\,\|\nabla_x D(x)\|_2^2,\ x \sim p_\text{data}",
    references=("Mescheder, Geiger & Nowozin 2018 (Which Training Methods for GANs do actually "
                "Converge?)",),
    sample=_r1_sample,
    skip={**_PENALTY_SKIPS,
          "bad_shape": "the logits come from the inputs through the discriminator, so their "
                       "shapes differ by design; shape errors are tested in test_generative.py"},
)
def r1_penalty(
    real_logits: Tensor | Callable[[Tensor], Tensor],
    real_inputs: Tensor,
    *,
    gamma: float = 10.0,
    reduction: str = "mean",
) -> Tensor:
    r"""R1 regulariser (Mescheder et al. 2018): the squared norm of the discriminator's input
    gradient on real data, per sample :math:`\ell_n = \tfrac{\gamma}{2}\|\nabla_{x} D(x_n)\|_2^2`.

    ``real_logits`` is either the discriminator's scores ``D(real_inputs)``, computed from a
    ``real_inputs`` that requires grad (call ``real_inputs.requires_grad_()`` before the
    forward pass), or the discriminator itself (a callable), which is then applied to
    ``real_inputs``. The gradient is differentiable, so the penalty trains D.
    ``"mean"`` is :math:`\tfrac{\gamma}{2}\mathbb E\|\nabla D\|^2`, the paper's form.

    Which form to pass:

    * **D itself** (``r1_penalty(D, real)``; a conditional D as ``lambda x: D(x, c)``): traces
      under ``torch.compile(fullgraph=True)`` (the input gradient is then taken with
      ``torch.func.vjp``; eagerly with ``torch.autograd.grad``, which accepts any D). The
      penalty runs its own forward pass of D on the reals, which costs nothing extra with
      StyleGAN's lazy regularisation, where the R1 step has a forward pass of its own anyway.
    * **The scores** (``r1_penalty(D(x), x)`` with ``x.requires_grad_()`` first): reuses a
      forward pass shared with the main loss, as StyleGAN2's non-lazy step does. Its graph
      starts outside the compiled region, so ``torch.compile`` runs this call eagerly after a
      graph break, and ``torch.compile(fullgraph=True)`` refuses it.

    Args:
        real_logits: ``D(real_inputs)`` of shape ``(N,)``/``(N, 1)``/``(N, *)``, or D itself.
        real_inputs: the real samples ``(N, *)``.
        gamma: γ (10 is common; the paper's value depends on the data set).
        reduction: ``"none"`` (per sample) | ``"mean"`` | ``"sum"``.

    Shape:
        ``(N, *)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.randn(4, 3, requires_grad=True)
        >>> LF.r1_penalty(2.0 * x.sum(1), x, gamma=1.0)   # ‖∇D‖² = 4·3 = 12, times γ/2
        tensor(6.)

    References:
        Mescheder, Geiger & Nowozin, "Which Training Methods for GANs do actually Converge?",
        ICML 2018.
    """
    check_option("reduction", reduction, ("none", "mean", "sum"))
    check_number("gamma", gamma, low=0.0)
    check_floating("real_inputs", real_inputs)
    if real_inputs.ndim < 1:
        raise LossInputError("real_inputs must be (N, *) with a batch dimension, got a 0-d tensor.")
    if callable(real_logits) and not isinstance(real_logits, Tensor):
        (x,) = as_float32(real_inputs)
        grad = _critic_grad(real_logits, x)
    else:
        check_floating("real_logits", real_logits)
        x, logits = real_inputs, real_logits
        if not (x.requires_grad and logits.requires_grad):
            raise LossInputError(
                "r1_penalty needs real_logits computed from real_inputs with requires_grad=True. "
                "Fix: call real_inputs.requires_grad_() before the discriminator's forward pass, "
                "or pass the discriminator itself as the first argument."
            )
        if logits.ndim < 1 or logits.shape[0] != x.shape[0]:
            raise LossInputError(
                f"real_logits {shape_str(logits)} and real_inputs {shape_str(x)} must share the "
                "batch dimension N. Fix: score each real sample once."
            )
        try:
            with torch.enable_grad():
                grad = _input_grad(logits, x)
        except RuntimeError as e:
            raise LossInputError(
                f"real_logits do not depend on real_inputs ({e}). Fix: compute real_logits = "
                "D(real_inputs) after real_inputs.requires_grad_()."
            ) from e
    (grad,) = as_float32(grad)
    penalty = 0.5 * gamma * grad.reshape(grad.shape[0], -1).square().sum(1)
    return reduce(penalty, reduction)


class R1Penalty(LossModule):
    """Module form of :func:`r1_penalty`: ``R1Penalty(gamma=10.0)(D, real)``."""

    fn = staticmethod(r1_penalty)
