"""Image losses: total variation, SSIM and MS-SSIM (2-D and 3-D), PSNR, and the perceptual and
style losses over the activations of any user-supplied network (nothing is downloaded).

Images are ``(N, C, H, W)`` (or ``(N, C, D, H, W)`` for SSIM); every loss is computed per
sample, and ``reduction`` then acts over the batch (``"none"`` gives one value per sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losskit._core.checks import (
    LossInputError,
    check_floating,
    check_ndim,
    check_number,
    check_option,
    check_same_shape,
    shape_str,
)
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32, reduce
from losskit._core.registry import Properties, Sample, register
from losskit._core.samples import draw

__all__ = [
    "MSSSIMLoss",
    "PSNRLoss",
    "PerceptualLoss",
    "SSIMLoss",
    "StyleLoss",
    "TotalVariationLoss",
    "gram_matrix",
    "ms_ssim_loss",
    "perceptual_loss",
    "psnr_loss",
    "ssim_loss",
    "style_loss",
    "total_variation_loss",
]

_TASKS = ("image", "reconstruction")
_TV_KINDS = ("anisotropic", "squared", "isotropic")
_PADDINGS = ("valid", "same")
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _pair(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    check_floating("input", input)
    check_floating("target", target)
    check_same_shape(input, target)
    input, target = as_float32(input, target)
    return input, target


def _per_sample(x: Tensor) -> Tensor:
    """Mean over every dimension but the first."""
    return x.reshape(x.shape[0], -1).mean(1)


def _safe_sqrt(x: Tensor) -> Tensor:
    # double where: the gradient at 0 is 0 (a subgradient), not inf·0 = NaN.
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).sqrt(), 0.0)


# --------------------------------------------------------------------------- total variation


def _image_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                  extreme: bool = False) -> Sample:
    return Sample((draw("real", (3, 2, 5, 6), gen, dtype, extreme),))


@register(
    "total_variation",
    family="image",
    tasks=_TASKS,
    input_kind="image",
    target_kind="none",
    aliases=("total_variation_loss", "tv_loss", "tv"),
    properties=Properties(convex=True, smoothness="C0", robust="bounded_influence", homogeneity=1,
                          units="intensity × pixels", zero_at_perfect=None),
    formula=r"\sum_{c,i,j} |x_{c,i+1,j} - x_{c,i,j}| + |x_{c,i,j+1} - x_{c,i,j}|",
    references=("Rudin, Osher & Fatemi 1992", "Mahendran & Vedaldi 2015 (squared TV)"),
    peers={"kornia": "kornia.losses.total_variation"},
    sample=_image_sample,
    elementwise=False,
)
def total_variation_loss(
    input: Tensor,
    *,
    kind: str = "anisotropic",
    spatial_mean: bool = False,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Total variation of each image, summed over channels and pixels (kornia's ``"sum"``
    convention, channels added):

    * ``"anisotropic"`` (default): :math:`\sum |\Delta_y x| + \sum |\Delta_x x|` (L1, Rudin et al.).
    * ``"squared"``: :math:`\sum \Delta_y x^2 + \sum \Delta_x x^2` (Mahendran & Vedaldi, β = 2).
    * ``"isotropic"``: :math:`\sum_{i<H-1, j<W-1} \sqrt{\Delta_y x_{ij}^2 + \Delta_x x_{ij}^2}`
      on the common forward-difference grid; the gradient at a flat patch is 0 (not NaN).

    ``reduction`` acts over images: ``"none"`` gives ``(N,)`` and equals
    ``kornia.losses.total_variation(x).sum(-1)`` for ``"anisotropic"``. TV is not resolution
    invariant: ``spatial_mean=True`` averages each direction's term over its own number of
    differences, :math:`(H-1)W` and :math:`H(W-1)` (kornia's ``reduction="mean"``; the
    isotropic term over :math:`(H-1)(W-1)`), before adding channels.

    Args:
        input: images ``(N, C, H, W)``.
        kind: ``"anisotropic"`` | ``"squared"`` | ``"isotropic"``.
        spatial_mean: average over pixel differences instead of summing (per direction).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, H, W)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> step = torch.zeros(1, 1, 3, 4); step[..., 2:] = 1.0    # a vertical edge of height 3
        >>> LF.total_variation_loss(step), LF.total_variation_loss(torch.ones(1, 1, 3, 4))
        (tensor(3.), tensor(0.))

    References:
        Rudin, Osher & Fatemi, "Nonlinear total variation based noise removal algorithms",
        Physica D 1992.
        Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting Them",
        CVPR 2015.
    """
    check_option("kind", kind, _TV_KINDS)
    check_floating("input", input)
    check_ndim("input", input, 4, "(N, C, H, W)")
    (x,) = as_float32(input)
    dy = x[..., 1:, :] - x[..., :-1, :]
    dx = x[..., :, 1:] - x[..., :, :-1]
    if kind == "anisotropic":
        terms = [dy.abs(), dx.abs()]
    elif kind == "squared":
        terms = [dy.square(), dx.square()]
    else:
        terms = [_safe_sqrt(dy[..., :, :-1].square() + dx[..., :-1, :].square())]
    per = x.new_zeros(x.shape[0])
    for t in terms:
        # (N, C, h, w) -> per image; with spatial_mean, divided by h·w (an empty axis adds 0)
        size = t.shape[-2] * t.shape[-1]
        total = t.flatten(1).sum(1)
        per = per + (total / size if spatial_mean and size > 0 else total)
    return reduce(per, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class TotalVariationLoss(LossModule):
    """Module form of :func:`total_variation_loss`."""

    fn = staticmethod(total_variation_loss)


# --------------------------------------------------------------------------- SSIM


def _gaussian_window(size: int, sigma: float, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2.0 * sigma * sigma))
    return g / g.sum()


def _blur(x: Tensor, window: Tensor, padding: str) -> Tensor:
    """Separable Gaussian filter over the spatial dims of ``(N, C, *S)``, each channel alone;
    ``"valid"`` keeps the interior only, ``"same"`` reflects at the borders (kornia)."""
    n, c, *spatial = x.shape
    dims = len(spatial)
    y = x.reshape(n * c, 1, *spatial)
    if padding == "same":
        r = window.shape[0] // 2
        y = F.pad(y, (r, r) * dims, mode="reflect")
    conv = F.conv2d if dims == 2 else F.conv3d
    for axis in range(dims):
        shape = [1, 1] + [1] * dims
        shape[2 + axis] = window.shape[0]
        y = conv(y, window.reshape(shape))
    return y.reshape(n, c, *y.shape[2:])


def _ssim_and_cs(x: Tensor, y: Tensor, window: Tensor, data_range: float, k1: float, k2: float,
                 padding: str) -> tuple[Tensor, Tensor]:
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu_x, mu_y = _blur(x, window, padding), _blur(y, window, padding)
    sxx = _blur(x * x, window, padding) - mu_x.square()
    syy = _blur(y * y, window, padding) - mu_y.square()
    sxy = _blur(x * y, window, padding) - mu_x * mu_y
    cs = (2.0 * sxy + c2) / (sxx + syy + c2)
    luminance = (2.0 * mu_x * mu_y + c1) / (mu_x.square() + mu_y.square() + c1)
    return luminance * cs, cs


def _check_ssim_args(input: Tensor, target: Tensor, window_size: int, sigma: float,
                     data_range: float, k1: float, k2: float, padding: str) -> tuple[Tensor, Tensor]:
    check_option("padding", padding, _PADDINGS)
    if not isinstance(window_size, int) or window_size < 1 or window_size % 2 == 0:
        raise LossInputError(f"window_size must be an odd positive int, got {window_size!r}. "
                             "Fix: use 11 (the paper's), 7, 5 or 3.")
    check_number("sigma", sigma, low=0.0, low_open=True)
    check_number("data_range", data_range, low=0.0, low_open=True)
    check_number("k1", k1, low=0.0, low_open=True)
    check_number("k2", k2, low=0.0, low_open=True)
    input, target = _pair(input, target)
    check_ndim("input", input, (4, 5), "(N, C, H, W) or (N, C, D, H, W)")
    return input, target


def _min_size(window_size: int, padding: str, scale: int = 1) -> int:
    need = window_size if padding == "valid" else window_size // 2 + 1
    return need * scale


def _check_size(x: Tensor, window_size: int, padding: str, scales: int = 1) -> None:
    smallest = min(x.shape[2:])
    need = _min_size(window_size, padding, 2 ** (scales - 1))
    if smallest < need:
        what = f"{scales} scales of " if scales > 1 else ""
        raise LossInputError(
            f"input {shape_str(x)} is too small for {what}a {window_size}-wide window with "
            f"padding={padding!r}: every spatial size must be at least {need}. Fix: use a "
            "smaller window_size" + (" or fewer weights (scales)." if scales > 1 else
                                     " or padding='same'.")
        )


def _ssim_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                 extreme: bool = False) -> Sample:
    x = torch.rand(2, 1, 5, 6, generator=gen, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    if extreme:
        x, y = x * 1e4, torch.zeros_like(y)
    return Sample((x.to(dtype), y.to(dtype)), {"window_size": 3})


@register(
    "ssim",
    family="image",
    tasks=_TASKS,
    input_kind="image",
    target_kind="image",
    aliases=("ssim_loss", "dssim"),
    properties=Properties(convex=False, smoothness="Cinf", robust=None, homogeneity=None,
                          units="dimensionless, in [0, 2]", symmetric=False, zero_at_perfect=True),
    formula=r"1 - \overline{\frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}"
            r"{(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}}",
    references=("Wang, Bovik, Sheikh & Simoncelli 2004",),
    peers={"monai": "monai.losses.SSIMLoss", "kornia": "kornia.losses.ssim_loss (= (1 - SSIM)/2)"},
    sample=_ssim_sample,
)
def ssim_loss(
    input: Tensor,
    target: Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    padding: str = "valid",
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""One minus the structural similarity (Wang et al. 2004), per image:
    :math:`\ell_n = 1 - \overline{\mathrm{SSIM}}_n`, the SSIM map averaged over channels and
    positions. 2-D for ``(N, C, H, W)``, 3-D for ``(N, C, D, H, W)`` (inferred from ``ndim``).

    Local statistics use a normalised Gaussian window (``window_size`` taps, std ``sigma``)
    applied to each channel separately, :math:`C_1 = (k_1 L)^2`, :math:`C_2 = (k_2 L)^2`
    with :math:`L` = ``data_range`` (set it to 255 for 8-bit images). No ε is added.

    Conventions of the peers:

    * ``padding="valid"`` (default) is the paper's MATLAB code and MONAI's ``SSIMLoss``:
      ``ssim_loss(x, y, reduction=r)`` equals ``SSIMLoss(spatial_dims, data_range)(x, y)``.
    * ``padding="same"`` reflects at the borders like kornia. kornia's loss is the
      *dissimilarity* :math:`(1 - \mathrm{SSIM})/2` clamped to [0, 1], so
      ``ssim_loss(x, y, padding="same") == 2 * kornia.losses.ssim_loss(x, y, 11, eps=0.0)``
      (kornia adds ``eps=1e-12`` to the denominator by default).

    Args:
        input: images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)``.
        target: same shape.
        data_range: L, the range of the pixel values (max − min).
        window_size: odd number of taps of the Gaussian window.
        sigma: the window's standard deviation in pixels.
        k1: luminance constant.
        k2: contrast constant.
        padding: ``"valid"`` | ``"same"`` (reflect).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *S)`` with 2 or 3 spatial dims → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
        >>> LF.ssim_loss(x, x)                                   # identical images
        tensor(0., dtype=torch.float64)
        >>> bool(LF.ssim_loss(x, 1.0 - x) > 1.0)                 # inverted contrast: SSIM < 0
        True

    References:
        Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error Visibility to
        Structural Similarity", IEEE TIP 2004.
    """
    input, target = _check_ssim_args(input, target, window_size, sigma, data_range, k1, k2, padding)
    _check_size(input, window_size, padding)
    window = _gaussian_window(window_size, sigma, input)
    ssim_map, _ = _ssim_and_cs(input, target, window, data_range, k1, k2, padding)
    return reduce(1.0 - _per_sample(ssim_map), reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


class SSIMLoss(LossModule):
    """Module form of :func:`ssim_loss`."""

    fn = staticmethod(ssim_loss)


def _positive_pow(x: Tensor, w: float) -> Tensor:
    # relu(x)^w with a finite gradient: 0 (value and gradient) where x <= 0.
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).pow(w), 0.0)


def _ms_ssim_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    x = torch.rand(2, 1, 6, 7, generator=gen, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    if extreme:
        x = x * 1e4
    return Sample((x.to(dtype), y.to(dtype)), {"window_size": 3, "weights": (0.6, 0.4)})


@register(
    "ms_ssim",
    family="image",
    tasks=_TASKS,
    input_kind="image",
    target_kind="image",
    aliases=("ms_ssim_loss", "multiscale_ssim"),
    properties=Properties(convex=False, smoothness="C0", robust=None, homogeneity=None,
                          units="dimensionless, in [0, 1]", symmetric=False, zero_at_perfect=True),
    formula=r"1 - [\mathrm{SSIM}_M]_+^{w_M} \prod_{j<M} [\mathrm{CS}_j]_+^{w_j}",
    references=("Wang, Simoncelli & Bovik 2003 (Multi-scale structural similarity)",),
    peers={"monai": "monai.metrics.MultiScaleSSIMMetric (1 - it)"},
    sample=_ms_ssim_sample,
)
def ms_ssim_loss(
    input: Tensor,
    target: Tensor,
    *,
    data_range: float = 1.0,
    weights: Sequence[float] = _MS_SSIM_WEIGHTS,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    padding: str = "valid",
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""One minus multi-scale SSIM (Wang et al. 2003), per image:

    .. math:: \ell_n = 1 - [\overline{\mathrm{SSIM}}_{M}]_+^{w_M}
              \prod_{j=1}^{M-1} [\overline{\mathrm{CS}}_j]_+^{w_j}

    with :math:`M` = ``len(weights)`` scales; the images are average-pooled by 2 between
    scales, the contrast-structure term :math:`\mathrm{CS}_j` (and the full SSIM at the coarsest
    scale) is averaged over channels and positions per image. A negative mean CS (anti-
    correlated content) is clamped to 0 before the fractional power (as MONAI does), with a zero
    gradient there, so the loss and its gradient stay finite.

    The coarsest scale must still hold a window: every spatial size must be at least
    ``window_size · 2^(M-1)`` (176 for the defaults) with ``padding="valid"``; smaller images
    raise ``LossInputError`` stating the minimum. Equals ``1 - MultiScaleSSIMMetric`` of MONAI.

    Args:
        input: images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)``.
        target: same shape.
        data_range: L, the range of the pixel values.
        weights: exponents per scale, finest first (the paper's five by default).
        window_size: odd number of taps of the Gaussian window.
        sigma: the window's standard deviation.
        k1: luminance constant.
        k2: contrast constant.
        padding: ``"valid"`` | ``"same"`` (reflect).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, C, *S)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
        >>> LF.ms_ssim_loss(x, x, window_size=3, weights=(0.5, 0.5))   # identical images
        tensor(0., dtype=torch.float64)
        >>> y = 0.5 * x + 0.25
        >>> torch.allclose(LF.ms_ssim_loss(x, y, window_size=7, weights=(1.0,)),
        ...                LF.ssim_loss(x, y, window_size=7))           # one scale is SSIM
        True

    References:
        Wang, Simoncelli & Bovik, "Multiscale structural similarity for image quality
        assessment", Asilomar 2003.
    """
    input, target = _check_ssim_args(input, target, window_size, sigma, data_range, k1, k2, padding)
    weights = tuple(float(w) for w in weights)
    if not weights or any(w < 0 for w in weights):
        raise LossInputError(f"weights must be a non-empty sequence of non-negative exponents, "
                             f"got {weights!r}.")
    _check_size(input, window_size, padding, scales=len(weights))
    window = _gaussian_window(window_size, sigma, input)
    pool = F.avg_pool2d if input.ndim == 4 else F.avg_pool3d
    x, y = input, target
    value = input.new_ones(input.shape[0])
    for j, w in enumerate(weights):
        ssim_map, cs_map = _ssim_and_cs(x, y, window, data_range, k1, k2, padding)
        last = j == len(weights) - 1
        value = value * _positive_pow(_per_sample(ssim_map if last else cs_map), w)
        if not last:
            x, y = pool(x, kernel_size=2), pool(y, kernel_size=2)
    return reduce(1.0 - value, reduction, sample_weight=sample_weight, mask=mask,
                  normalizer=normalizer, empty=empty)


class MSSSIMLoss(LossModule):
    """Module form of :func:`ms_ssim_loss`."""

    fn = staticmethod(ms_ssim_loss)


# --------------------------------------------------------------------------- PSNR


def _psnr_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                 extreme: bool = False) -> Sample:
    x = torch.rand(4, 3, 5, generator=gen, dtype=torch.float64)
    y = torch.rand(4, 3, 5, generator=gen, dtype=torch.float64)
    if extreme:
        y = x.clone()
        y[0] = 1e4
    return Sample((x.to(dtype), y.to(dtype)))


@register(
    "psnr",
    family="image",
    tasks=_TASKS,
    input_kind="image",
    target_kind="image",
    aliases=("psnr_loss",),
    properties=Properties(convex=False, smoothness="Cinf", robust="bounded_influence",
                          homogeneity=None, units="decibels", symmetric=True,
                          zero_at_perfect=False),
    formula=r"-10\log_{10}\frac{L^2}{\mathrm{MSE} + \epsilon}",
    references=("Huynh-Thu & Ghanbari 2008 (scope of validity of PSNR)",),
    peers={"kornia": "kornia.losses.psnr_loss (per image)"},
    sample=_psnr_sample,
)
def psnr_loss(
    input: Tensor,
    target: Tensor,
    *,
    data_range: float = 1.0,
    eps: float = 1e-10,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Negative peak signal-to-noise ratio in dB, per image:

    .. math:: \ell_n = -10 \log_{10} \frac{L^2}{\mathrm{MSE}_n + \epsilon}

    with :math:`\mathrm{MSE}_n` the mean squared error over every non-batch element and
    :math:`L` = ``data_range``. PSNR is +∞ at a perfect prediction; ``eps`` (default 1e-10)
    caps it at :math:`10\log_{10}(L^2/\epsilon)` = 100 dB for L = 1, so the loss and its
    gradient stay finite (``eps=0`` gives −∞ there, like kornia).

    kornia's ``psnr_loss`` pools the MSE over the whole batch; here ``"mean"`` averages the
    per-image values (the usual PSNR report). With one image, or per image (``"none"``), the
    two agree: ``psnr_loss(x, y, reduction="none")[i] == kornia.losses.psnr_loss(x[i], y[i], 1.0)``
    up to ``eps``.

    Args:
        input: images ``(N, *)``.
        target: same shape.
        data_range: L, the peak value (max − min of the pixel range).
        eps: added to each MSE (≥ 0).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(N, *)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> x = torch.zeros(1, 4)
        >>> LF.psnr_loss(x + 0.1, x)             # MSE 0.01 → 20 dB
        tensor(-20.0000)
        >>> LF.psnr_loss(x, x)                   # a perfect prediction: capped at 100 dB
        tensor(-100.)

    References:
        Huynh-Thu & Ghanbari, "Scope of validity of PSNR in image/video quality assessment",
        Electronics Letters 2008.
    """
    check_number("data_range", data_range, low=0.0, low_open=True)
    check_number("eps", eps, low=0.0)
    input, target = _pair(input, target)
    if input.ndim < 1:
        raise LossInputError("input must be (N, *) with a batch dimension, got a 0-d tensor. "
                             "Fix: pass input.reshape(1, -1).")
    mse = _per_sample((input - target).square())
    per = (10.0 / math.log(10.0)) * (torch.log(mse + eps) - 2.0 * math.log(data_range))
    return reduce(per, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty)


class PSNRLoss(LossModule):
    """Module form of :func:`psnr_loss`."""

    fn = staticmethod(psnr_loss)


# --------------------------------------------------------------------------- perceptual / style


def _extract(extractor: nn.Module, x: Tensor, layers: Sequence[str]) -> list[Tensor]:
    """Activations of the named submodules of ``extractor`` on ``x``, in the order of
    ``layers``. An ``nn.Sequential`` whose top-level children are named runs only up to the
    deepest requested layer (traceable by torch.compile); other networks use forward hooks."""
    wanted = set(layers)
    if isinstance(extractor, nn.Sequential) and wanted <= {n for n, _ in extractor.named_children()}:
        found: dict[str, Tensor] = {}
        h = x
        for name, child in extractor.named_children():
            h = child(h)
            if name in wanted:
                found[name] = h
                if len(found) == len(wanted):
                    break
        return [found[name] for name in layers]
    modules = dict(extractor.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        known = [n for n in modules if n]
        raise LossInputError(
            f"layers {missing} are not submodules of the feature extractor; its submodules are "
            f"{known[:20]}{' ...' if len(known) > 20 else ''}. Fix: pass names from "
            "dict(feature_extractor.named_modules())."
        )
    captured: dict[str, Tensor] = {}

    def hook(name: str) -> Callable[..., None]:
        def store(_m: nn.Module, _args: object, out: Tensor) -> None:
            captured[name] = out
        return store

    handles = [modules[name].register_forward_hook(hook(name)) for name in dict.fromkeys(layers)]
    try:
        extractor(x)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[name] for name in layers]


def _features(input: Tensor, target: Tensor, extractor: nn.Module, layers: Sequence[str],
              normalize_input: tuple[Sequence[float], Sequence[float]] | None
              ) -> tuple[list[Tensor], list[Tensor], torch.dtype]:
    if not isinstance(extractor, nn.Module):
        raise LossInputError(f"feature_extractor must be an nn.Module, got "
                             f"{type(extractor).__name__}.")
    if isinstance(layers, str) or not layers:
        raise LossInputError(f"layers must be a non-empty list of submodule names, got {layers!r}. "
                             "Fix: e.g. layers=['3', '8'] for an nn.Sequential.")
    check_floating("input", input)
    check_floating("target", target)
    check_same_shape(input, target)
    out_dtype = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    param = next(extractor.parameters(), None)
    net_dtype = param.dtype if param is not None else out_dtype
    x, y = input.to(net_dtype), target.to(net_dtype)
    if normalize_input is not None:
        mean, std = normalize_input
        shape = (1, -1) + (1,) * (x.ndim - 2)
        m = torch.as_tensor(mean, dtype=net_dtype, device=x.device).reshape(shape)
        s = torch.as_tensor(std, dtype=net_dtype, device=x.device).reshape(shape)
        x, y = (x - m) / s, (y - m) / s
    n = x.shape[0]
    both = _extract(extractor, torch.cat([x, y]), layers)
    fx = [f[:n].to(out_dtype) if f.dtype != out_dtype else f[:n] for f in both]
    fy = [f[n:].to(out_dtype) if f.dtype != out_dtype else f[n:] for f in both]
    return fx, fy, out_dtype


def _layer_weights(layers: Sequence[str], layer_weights: Sequence[float] | None) -> list[float]:
    if layer_weights is None:
        return [1.0] * len(layers)
    if len(layer_weights) != len(layers):
        raise LossInputError(f"layer_weights has {len(layer_weights)} entries for {len(layers)} "
                             "layers. Fix: give one weight per layer.")
    return [float(w) for w in layer_weights]


def _criterion(diff: Tensor, criterion: str) -> Tensor:
    return _per_sample(diff.abs() if criterion == "l1" else diff.square())


class _TinyCNN(nn.Sequential):
    def __init__(self, gen: torch.Generator) -> None:
        super().__init__(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Conv2d(3, 4, 3), nn.Tanh())
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.double()


def _feature_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                    extreme: bool = False) -> Sample:
    net = _TinyCNN(gen)
    x = draw("real", (2, 2, 5, 5), gen, dtype, extreme)
    y = draw("real", (2, 2, 5, 5), gen, dtype, extreme)
    return Sample((x, y), {"feature_extractor": net, "layers": ["1", "3"]})


@register(
    "perceptual",
    family="image",
    tasks=_TASKS,
    input_kind="image",
    target_kind="image",
    aliases=("perceptual_loss", "feature_reconstruction_loss", "content_loss"),
    properties=Properties(convex=None, smoothness="C0", robust=None, homogeneity=None,
                          units="feature units", symmetric=None, zero_at_perfect=True),
    formula=r"\sum_l w_l\, \overline{|\phi_l(x) - \phi_l(y)|}",
    references=("Johnson, Alahi & Fei-Fei 2016 (Perceptual losses)",
                "Gatys, Ecker & Bethge 2016 (content loss)"),
    peers={"monai": "monai.losses.PerceptualLoss (downloads fixed networks)"},
    sample=_feature_sample,
)
def perceptual_loss(
    input: Tensor,
    target: Tensor,
    *,
    feature_extractor: nn.Module,
    layers: Sequence[str],
    layer_weights: Sequence[float] | None = None,
    criterion: str = "l1",
    normalize_input: tuple[Sequence[float], Sequence[float]] | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Perceptual (feature reconstruction) loss with any network as the feature extractor:

    .. math:: \ell_n = \sum_l w_l \cdot \operatorname{mean}_{c,h,w}\, \rho\big(\phi_l(x_n) - \phi_l(y_n)\big)

    with :math:`\phi_l` the output of the submodule named ``layers[l]`` (names as in
    ``feature_extractor.named_modules()``, e.g. ``"features.8"`` for a torchvision VGG built
    without weights, or ``"3"`` for an ``nn.Sequential``) and :math:`\rho` = ``|·|`` (``"l1"``)
    or ``(·)²`` (``"mse"``, Johnson et al.). Input and target go through the network once,
    concatenated; the network is used as given (put it in ``eval()`` mode and freeze it with
    ``requires_grad_(False)`` yourself). Nothing is downloaded: bring your own weights.
    Inputs are cast to the network's dtype; half inputs give a float32 loss.

    Args:
        input: images ``(N, C, *)``.
        target: same shape.
        feature_extractor: any ``nn.Module``.
        layers: names of the submodules whose outputs are compared.
        layer_weights: one weight per layer (default 1 each).
        criterion: ``"l1"`` | ``"mse"``.
        normalize_input: optional ``(mean, std)`` per channel applied before the network (e.g.
            the ImageNet statistics).
        reduction: ``"none"`` (per image) | ``"mean"`` | ``"sum"``.

    Shape:
        ``(N, C, *)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        >>> x = torch.rand(2, 3, 8, 8)
        >>> float(LF.perceptual_loss(x, x, feature_extractor=net, layers=["1"]))  # same features
        0.0
        >>> ident = torch.nn.Sequential(torch.nn.Identity())          # identity features: plain L1
        >>> y = torch.rand(2, 3, 8, 8)
        >>> torch.allclose(LF.perceptual_loss(x, y, feature_extractor=ident, layers=["0"]),
        ...                (x - y).abs().mean())
        True

    References:
        Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
        Super-Resolution", ECCV 2016.
    """
    check_option("criterion", criterion, ("l1", "mse"))
    check_option("reduction", reduction, ("none", "mean", "sum"))
    weights = _layer_weights(layers, layer_weights)
    fx, fy, _ = _features(input, target, feature_extractor, layers, normalize_input)
    per = sum(w * _criterion(a - b, criterion) for w, a, b in zip(weights, fx, fy))
    return reduce(per, reduction)  # type: ignore[arg-type]


class _FeatureLossModule(LossModule):
    """Holds the feature extractor as a submodule, so ``.to()``/``.eval()`` reach it."""

    def __init__(self, feature_extractor: nn.Module, layers: Sequence[str], **options: object) -> None:
        super().__init__(feature_extractor=feature_extractor, layers=layers, **options)
        self.feature_extractor = self._options.pop("feature_extractor")

    @property
    def options(self) -> dict[str, object]:
        opts = dict(super().options)
        opts["feature_extractor"] = self.feature_extractor
        return opts

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._options.items())


class PerceptualLoss(_FeatureLossModule):
    """Module form of :func:`perceptual_loss`:
    ``PerceptualLoss(feature_extractor, layers, layer_weights=None, criterion="l1")``."""

    fn = staticmethod(perceptual_loss)


def gram_matrix(features: Tensor) -> Tensor:
    r"""Gram matrix of ``(N, C, *)`` features normalised by :math:`C \cdot H \cdot W`:
    :math:`G_{cc'} = \sum_{p} F_{cp} F_{c'p} / (C \cdot HW)`, shape ``(N, C, C)``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> LF.gram_matrix(torch.ones(1, 2, 3, 3))       # each entry 9 / (2·9)
        tensor([[[0.5000, 0.5000],
                 [0.5000, 0.5000]]])
    """
    flat = features.reshape(features.shape[0], features.shape[1], -1)
    return flat @ flat.transpose(1, 2) / (flat.shape[1] * flat.shape[2])


@register(
    "style",
    family="image",
    tasks=_TASKS,
    input_kind="image",
    target_kind="image",
    aliases=("style_loss", "gram_loss"),
    properties=Properties(convex=None, smoothness="Cinf", robust=None, homogeneity=None,
                          units="squared feature units", symmetric=None, zero_at_perfect=True),
    formula=r"\sum_l w_l\, \overline{(G_l(x) - G_l(y))^2},\ G = F F^\top / (C H W)",
    references=("Gatys, Ecker & Bethge 2016 (Image Style Transfer Using CNNs)",),
    sample=_feature_sample,
)
def style_loss(
    input: Tensor,
    target: Tensor,
    *,
    feature_extractor: nn.Module,
    layers: Sequence[str],
    layer_weights: Sequence[float] | None = None,
    criterion: str = "mse",
    normalize_input: tuple[Sequence[float], Sequence[float]] | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Style loss (Gatys et al. 2016): distance between the Gram matrices of the features,

    .. math:: \ell_n = \sum_l w_l \cdot \operatorname{mean}_{c,c'} \rho\big(G_l(x_n) - G_l(y_n)\big),
              \qquad G_l = F_l F_l^\top / (C_l H_l W_l)

    (:func:`gram_matrix`), :math:`\rho` = ``(·)²`` (``"mse"``, default) or ``|·|``. Gatys'
    :math:`E_l = \frac{1}{4 N_l^2 M_l^2}\sum (G - A)^2` with un-normalised Grams equals
    :math:`C_l^2/4` times this layer term. Features come from ``feature_extractor`` exactly as
    in :func:`perceptual_loss`.

    Args:
        input: images ``(N, C, *)``.
        target: style images, same shape.
        feature_extractor: any ``nn.Module``.
        layers: names of the submodules whose outputs are compared.
        layer_weights: one weight per layer (default 1 each).
        criterion: ``"mse"`` | ``"l1"``.
        normalize_input: optional ``(mean, std)`` per channel.
        reduction: ``"none"`` (per image) | ``"mean"`` | ``"sum"``.

    Shape:
        ``(N, C, *)`` → scalar, or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> ident = torch.nn.Sequential(torch.nn.Identity())
        >>> x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
        >>> loss = LF.style_loss(x, x.flip(-1).flip(-2), feature_extractor=ident, layers=["0"])
        >>> bool(loss < 1e-15)                   # a Gram matrix ignores where each pixel is
        True

    References:
        Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks",
        CVPR 2016.
    """
    check_option("criterion", criterion, ("l1", "mse"))
    check_option("reduction", reduction, ("none", "mean", "sum"))
    weights = _layer_weights(layers, layer_weights)
    fx, fy, _ = _features(input, target, feature_extractor, layers, normalize_input)
    per = sum(w * _criterion(gram_matrix(a) - gram_matrix(b), criterion)
              for w, a, b in zip(weights, fx, fy))
    return reduce(per, reduction)  # type: ignore[arg-type]


class StyleLoss(_FeatureLossModule):
    """Module form of :func:`style_loss`:
    ``StyleLoss(feature_extractor, layers, layer_weights=None, criterion="mse")``."""

    fn = staticmethod(style_loss)
