"""Image losses against float64 references (tests/reference/image_ref.py) and the peers:
kornia total_variation / ssim_loss / psnr_loss, MONAI SSIMLoss / MultiScaleSSIMMetric."""

from __future__ import annotations

import pytest
import torch
from tests.reference import image_ref as ref

import losskit.functional as LF
from losskit._core.checks import LossInputError
from losskit.nn import PerceptualLoss, StyleLoss, TotalVariationLoss

TOL = dict(rtol=1e-10, atol=1e-10)
PEER = dict(rtol=1e-6, atol=1e-6)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _img(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=_gen(seed), dtype=torch.float64).requires_grad_(True)


def _noisy(x: torch.Tensor, seed: int, scale: float = 0.15) -> torch.Tensor:
    n = torch.randn(x.shape, generator=_gen(seed), dtype=torch.float64)
    return (x.detach() + scale * n).clamp(0, 1).requires_grad_(True)


def _assert_same(fn_a, fn_b, leaves, tol=TOL):
    va, vb = fn_a(*leaves), fn_b(*leaves)
    torch.testing.assert_close(va, vb, **tol)
    for a, b in zip(torch.autograd.grad(va.sum(), leaves), torch.autograd.grad(vb.sum(), leaves)):
        torch.testing.assert_close(a, b, **tol)


# --------------------------------------------------------------------------- total variation


@pytest.mark.parametrize("kind", ["anisotropic", "squared", "isotropic"])
def test_total_variation_matches_reference(kind: str) -> None:
    x = torch.randn(2, 2, 4, 5, generator=_gen(1), dtype=torch.float64).requires_grad_(True)
    _assert_same(lambda t: LF.total_variation_loss(t, kind=kind, reduction="none"),
                 lambda t: ref.total_variation(t, kind), [x])


def test_total_variation_against_kornia() -> None:
    kornia = pytest.importorskip("kornia")
    x = torch.rand(3, 2, 6, 7, generator=_gen(2))
    want = kornia.losses.total_variation(x).sum(-1)   # kornia keeps (N, C); channels added here
    torch.testing.assert_close(LF.total_variation_loss(x, reduction="none"), want, **PEER)
    torch.testing.assert_close(TotalVariationLoss(reduction="sum")(x), want.sum(), **PEER)
    mean_conv = kornia.losses.total_variation(x, reduction="mean").sum(-1)
    torch.testing.assert_close(LF.total_variation_loss(x, spatial_mean=True, reduction="none"),
                               mean_conv, **PEER)


def test_total_variation_spatial_mean_divides_by_the_difference_counts() -> None:
    x = torch.randn(2, 3, 4, 6, generator=_gen(3), dtype=torch.float64)
    for kind in ("anisotropic", "squared", "isotropic"):
        got = LF.total_variation_loss(x, kind=kind, spatial_mean=True, reduction="none")
        if kind == "isotropic":
            want = ref.total_variation(x, kind) / (3 * 5)
        else:
            p = 1 if kind == "anisotropic" else 2
            dy = (x[..., 1:, :] - x[..., :-1, :]).abs() ** p
            dx = (x[..., :, 1:] - x[..., :, :-1]).abs() ** p
            want = dy.sum((1, 2, 3)) / (3 * 6) + dx.sum((1, 2, 3)) / (4 * 5)
        torch.testing.assert_close(got, want, **TOL)


def test_isotropic_total_variation_has_zero_gradient_on_flat_images() -> None:
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    out = LF.total_variation_loss(x, kind="isotropic")
    out.backward()
    assert float(out) == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_total_variation_needs_nchw() -> None:
    with pytest.raises(LossInputError, match=r"\(N, C, H, W\)"):
        LF.total_variation_loss(torch.zeros(4, 4))


# --------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_ssim_2d_matches_explicit_window_reference(padding: str) -> None:
    x = _img(2, 2, 9, 10, seed=3)
    y = _noisy(x, 4)
    opts = dict(window_size=5, sigma=1.2, data_range=1.0, padding=padding)
    _assert_same(lambda a, b: LF.ssim_loss(a, b, reduction="none", **opts),
                 lambda a, b: ref.ssim_loss(a, b, **opts), [x, y])


def test_ssim_3d_matches_explicit_window_reference() -> None:
    x = _img(1, 2, 5, 6, 5, seed=5)
    y = _noisy(x, 6)
    opts = dict(window_size=3, sigma=1.5, data_range=2.0, k1=0.02, k2=0.05)
    _assert_same(lambda a, b: LF.ssim_loss(a, b, reduction="none", **opts),
                 lambda a, b: ref.ssim_loss(a, b, **opts), [x, y])


@pytest.mark.parametrize("dims", [2, 3])
def test_ssim_against_monai(dims: int) -> None:
    monai_losses = pytest.importorskip("monai.losses")
    shape = (2, 2, 16, 17) if dims == 2 else (1, 2, 12, 13, 12)
    x = torch.rand(shape, generator=_gen(7))
    y = (x + 0.2 * torch.randn(shape, generator=_gen(8))).clamp(0, 1)
    win = 11 if dims == 2 else 7
    peer = monai_losses.SSIMLoss(spatial_dims=dims, data_range=1.0, win_size=win)
    torch.testing.assert_close(LF.ssim_loss(x, y, window_size=win), peer(x, y), **PEER)


def test_ssim_is_twice_kornias_dissimilarity_with_same_padding() -> None:
    kornia = pytest.importorskip("kornia")
    x = torch.rand(2, 3, 16, 16, generator=_gen(9))
    y = (x + 0.1 * torch.randn(x.shape, generator=_gen(10))).clamp(0, 1)
    want = 2.0 * kornia.losses.ssim_loss(x, y, 11, eps=0.0)   # kornia: (1 - SSIM)/2, reflect borders
    torch.testing.assert_close(LF.ssim_loss(x, y, padding="same"), want, **PEER)
    valid = 2.0 * kornia.losses.ssim_loss(x, y, 7, eps=0.0, padding="valid")
    torch.testing.assert_close(LF.ssim_loss(x, y, window_size=7), valid, **PEER)


def test_ssim_rejects_small_images_and_even_windows() -> None:
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(LossInputError, match="at least 11"):
        LF.ssim_loss(x, x)
    with pytest.raises(LossInputError, match="odd"):
        LF.ssim_loss(x, x, window_size=4)
    with pytest.raises(LossInputError, match="target"):
        LF.ssim_loss(x, x[0])


def test_ssim_half_precision_is_computed_in_float32() -> None:
    x = torch.rand(1, 1, 12, 12, generator=_gen(11))
    y = (x + 0.1).clamp(0, 1)
    out = LF.ssim_loss(x.half(), y.half())
    assert out.dtype == torch.float32
    want = LF.ssim_loss(x.half().double(), y.half().double())
    assert abs(float(out) - float(want)) < 1e-4


# --------------------------------------------------------------------------- MS-SSIM


@pytest.mark.parametrize("shape,weights", [((2, 1, 13, 12), (0.2, 0.3, 0.5)),
                                            ((1, 2, 6, 7, 6), (0.4, 0.6))])
def test_ms_ssim_matches_reference(shape: tuple[int, ...], weights: tuple[float, ...]) -> None:
    x = _img(*shape, seed=12)
    y = _noisy(x, 13, 0.1)
    opts = dict(window_size=3, sigma=1.0, weights=weights)
    _assert_same(lambda a, b: LF.ms_ssim_loss(a, b, reduction="none", **opts),
                 lambda a, b: ref.ms_ssim_loss(a, b, **opts), [x, y])


def test_ms_ssim_against_monai() -> None:
    regression = pytest.importorskip("monai.metrics.regression")
    x = torch.rand(2, 2, 24, 26, generator=_gen(14))
    y = (x + 0.1 * torch.randn(x.shape, generator=_gen(15))).clamp(0, 1)
    weights = (0.3, 0.3, 0.4)
    peer = regression.compute_ms_ssim(x, y, spatial_dims=2, kernel_size=3, weights=weights)
    ours = LF.ms_ssim_loss(x, y, window_size=3, weights=weights, reduction="none")
    torch.testing.assert_close(ours, 1.0 - peer.reshape(-1), **PEER)


def test_ms_ssim_minimum_size_and_negative_contrast() -> None:
    x = torch.rand(1, 1, 175, 175)
    with pytest.raises(LossInputError, match="at least 176"):
        LF.ms_ssim_loss(x, x)
    a = torch.rand(1, 1, 16, 16, generator=_gen(16), dtype=torch.float64, requires_grad=True)
    out = LF.ms_ssim_loss(a, 1.0 - a.detach(), window_size=3, weights=(0.5, 0.5))  # cs < 0: clamped
    out.backward()
    assert float(out) == 1.0 and torch.isfinite(a.grad).all()


# --------------------------------------------------------------------------- PSNR


def test_psnr_matches_reference_and_kornia() -> None:
    x = _img(3, 2, 4, 4, seed=17)
    y = _img(3, 2, 4, 4, seed=18)
    _assert_same(lambda a, b: LF.psnr_loss(a, b, data_range=2.0, reduction="none"),
                 lambda a, b: ref.psnr_loss(a, b, data_range=2.0), [x, y])
    kornia = pytest.importorskip("kornia")
    xf, yf = x.detach().float(), y.detach().float()
    want = torch.stack([kornia.losses.psnr_loss(xf[i], yf[i], 2.0) for i in range(3)])
    torch.testing.assert_close(LF.psnr_loss(xf, yf, data_range=2.0, reduction="none"), want, **PEER)
    torch.testing.assert_close(LF.psnr_loss(xf[:1], yf[:1], eps=0.0),
                               kornia.losses.psnr_loss(xf[:1], yf[:1], 1.0), **PEER)


def test_psnr_is_finite_at_a_perfect_prediction() -> None:
    x = torch.rand(2, 5, dtype=torch.float64, requires_grad=True)
    out = LF.psnr_loss(x, x.detach().clone())
    out.backward()
    assert float(out) == pytest.approx(-100.0) and torch.equal(x.grad, torch.zeros_like(x))


# --------------------------------------------------------------------------- perceptual / style


class _Branchy(torch.nn.Module):
    """Not an nn.Sequential: features must come from forward hooks on nested names."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Tanh())
        self.head = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.stem(x)))


def _cnn() -> torch.nn.Sequential:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Tanh(),
                               torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh()).double()


def _ref_features(net: torch.nn.Sequential, x: torch.Tensor, wanted: list[str]) -> list[torch.Tensor]:
    names = [n for n, _ in net.named_children()]
    return ref.sequential_features(list(net.children()), names, x, wanted)


@pytest.mark.parametrize("criterion", ["l1", "mse"])
def test_perceptual_matches_reference(criterion: str) -> None:
    net = _cnn()
    x, y = _img(2, 2, 7, 7, seed=19), _img(2, 2, 7, 7, seed=20)
    weights = [0.3, 2.0]
    mean, std = (0.5, 0.4), (0.2, 0.3)

    def theirs(a, b):
        m = torch.tensor(mean, dtype=torch.float64).reshape(1, 2, 1, 1)
        s = torch.tensor(std, dtype=torch.float64).reshape(1, 2, 1, 1)
        fa, fb = _ref_features(net, (a - m) / s, ["1", "3"]), _ref_features(net, (b - m) / s, ["1", "3"])
        rho = (lambda d: d.abs()) if criterion == "l1" else (lambda d: d ** 2)
        return sum(w * rho(p - q).reshape(2, -1).mean(1) for w, p, q in zip(weights, fa, fb))

    _assert_same(lambda a, b: LF.perceptual_loss(a, b, feature_extractor=net, layers=["1", "3"],
                                                 layer_weights=weights, criterion=criterion,
                                                 normalize_input=(mean, std), reduction="none"),
                 theirs, [x, y])


def test_perceptual_with_hooks_on_nested_names() -> None:
    net = _Branchy().double()
    x, y = _img(2, 2, 6, 6, seed=21), _img(2, 2, 6, 6, seed=22)

    def theirs(a, b):
        fa = [net.stem(a), net.head(net.stem(a))]
        fb = [net.stem(b), net.head(net.stem(b))]
        return sum((p - q).abs().reshape(2, -1).mean(1) for p, q in zip(fa, fb))

    _assert_same(lambda a, b: LF.perceptual_loss(a, b, feature_extractor=net, layers=["stem.1", "head"],
                                                 reduction="none"), theirs, [x, y])
    assert not net._forward_hooks and not net.head._forward_hooks   # hooks removed afterwards
    with pytest.raises(LossInputError, match=r"stem\.1"):
        LF.perceptual_loss(x, y, feature_extractor=net, layers=["stem.7"])


def test_style_matches_reference_and_module_holds_the_network() -> None:
    net = _cnn()
    x, y = _img(2, 2, 7, 7, seed=23), _img(2, 2, 7, 7, seed=24)

    def theirs(a, b):
        fa, fb = _ref_features(net, a, ["1", "3"]), _ref_features(net, b, ["1", "3"])
        return sum(w * ((ref.gram(p) - ref.gram(q)) ** 2).reshape(2, -1).mean(1)
                   for w, p, q in zip([1.0, 0.5], fa, fb))

    _assert_same(lambda a, b: LF.style_loss(a, b, feature_extractor=net, layers=["1", "3"],
                                            layer_weights=[1.0, 0.5], reduction="none"),
                 theirs, [x, y])
    mod = StyleLoss(net, ["1", "3"], layer_weights=[1.0, 0.5])
    assert any(m is net for m in mod.modules())                      # .to()/.eval() reach it
    torch.testing.assert_close(mod(x, y), theirs(x, y).mean(), **TOL)
    p = PerceptualLoss(net, ["3"], criterion="mse")
    torch.testing.assert_close(p(x, y), LF.perceptual_loss(x, y, feature_extractor=net, layers=["3"],
                                                           criterion="mse"), **TOL)
    assert "criterion='mse'" in repr(p)


def test_style_layer_term_is_gatys_e_l_scaled_by_four_over_c_squared() -> None:
    ident = torch.nn.Sequential(torch.nn.Identity())
    x = torch.rand(1, 3, 4, 5, generator=_gen(27), dtype=torch.float64)
    y = torch.rand(1, 3, 4, 5, generator=_gen(28), dtype=torch.float64)
    n_l, m_l = 3, 20                                      # Gatys: N_l filters, M_l = H·W positions
    fx, fy = x.reshape(3, 20), y.reshape(3, 20)
    e_l = ((fx @ fx.T - fy @ fy.T) ** 2).sum() / (4 * n_l ** 2 * m_l ** 2)
    ours = LF.style_loss(x, y, feature_extractor=ident, layers=["0"])
    torch.testing.assert_close(ours * n_l ** 2 / 4, e_l, **TOL)


def test_feature_losses_cast_half_inputs_to_the_network_dtype() -> None:
    net = _cnn().float()
    x, y = torch.rand(1, 2, 6, 6, generator=_gen(25)), torch.rand(1, 2, 6, 6, generator=_gen(26))
    out = LF.perceptual_loss(x.half(), y.half(), feature_extractor=net, layers=["3"])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, LF.perceptual_loss(x.half().float(), y.half().float(),
                                                       feature_extractor=net, layers=["3"]))
