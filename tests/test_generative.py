"""Generative losses against float64 references (tests/reference/generative_ref.py), MONAI's
PatchAdversarialLoss, and the textbook forms at saturated logits."""

from __future__ import annotations

import math

import pytest
import torch
from tests.reference import generative_ref as ref

import losskit.functional as LF
from losskit._core.checks import LossInputError
from losskit.nn import ELBOLoss, GANDiscriminatorLoss, GradientPenalty, R1Penalty

TOL = dict(rtol=1e-10, atol=1e-10)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _leaf(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    x = torch.randn(*shape, generator=_gen(seed), dtype=torch.float64) * scale
    return x.requires_grad_(True)


def _value_and_grads(fn, leaves):
    out = fn(*leaves)
    grads = torch.autograd.grad(out.sum(), leaves)
    return out.detach(), grads


def _assert_same(fn_a, fn_b, leaves):
    va, ga = _value_and_grads(fn_a, leaves)
    vb, gb = _value_and_grads(fn_b, leaves)
    torch.testing.assert_close(va, vb, **TOL)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, **TOL)


# --------------------------------------------------------------------------- VAE


@pytest.mark.parametrize("free_bits", [0.0, 0.6])
def test_gaussian_kl_matches_reference(free_bits: float) -> None:
    mu, logvar = _leaf(5, 4, seed=1), _leaf(5, 4, seed=2)
    _assert_same(
        lambda m, v: LF.gaussian_kl_divergence(m, v, free_bits=free_bits, reduction="none"),
        lambda m, v: ref.gaussian_kl(m, v, free_bits),
        [mu, logvar],
    )


def test_free_bits_is_the_papers_batch_mean_objective() -> None:
    mu = torch.tensor([[0.1, 2.0], [0.2, 1.0], [-0.1, 1.5]], dtype=torch.float64, requires_grad=True)
    logvar = torch.zeros(3, 2, dtype=torch.float64)
    lam = 0.5
    loss = LF.gaussian_kl_divergence(mu, logvar, free_bits=lam)
    kl_dims = 0.5 * mu.detach() ** 2
    want = sum(max(lam, float(kl_dims[:, j].mean())) for j in range(2))
    assert math.isclose(float(loss.detach()), want, rel_tol=1e-12)
    loss.backward()
    assert torch.all(mu.grad[:, 0] == 0)          # dimension 0 is below λ: no gradient
    assert torch.all(mu.grad[:, 1] != 0)


def test_free_bits_batch_mean_respects_mask() -> None:
    mu, logvar = _leaf(6, 3, seed=3), _leaf(6, 3, seed=4, scale=0.3)
    keep = torch.tensor([True, False, True, True, False, True])
    got = LF.gaussian_kl_divergence(mu, logvar, free_bits=0.8, mask=keep)
    want = LF.gaussian_kl_divergence(mu[keep], logvar[keep], free_bits=0.8)
    torch.testing.assert_close(got, want, **TOL)


def test_gaussian_kl_is_zero_at_the_prior_and_exact_near_it() -> None:
    z = torch.zeros(2, 3, dtype=torch.float64)
    assert float(LF.gaussian_kl_divergence(z, z)) == 0.0
    tiny = torch.full((1, 1), 1e-9, dtype=torch.float64)     # KL ≈ logvar²/4 = 2.5e-19
    got = float(LF.gaussian_kl_divergence(torch.zeros(1, 1, dtype=torch.float64), tiny))
    assert math.isclose(got, 0.25e-18, rel_tol=1e-6)


def test_kl_and_elbo_micro_batches_with_a_global_normalizer_equal_the_full_batch() -> None:
    recon, x = _leaf(6, 4, seed=20), torch.rand(6, 4, generator=_gen(21), dtype=torch.float64)
    mu, logvar = _leaf(6, 3, seed=22), _leaf(6, 3, seed=23)
    halves = [slice(0, 2), slice(2, 6)]
    kl = sum(LF.gaussian_kl_divergence(mu[h], logvar[h], reduction="sum", normalizer=6) for h in halves)
    torch.testing.assert_close(kl, LF.gaussian_kl_divergence(mu, logvar), **TOL)
    elbo = sum(LF.elbo_loss(recon[h], x[h], mu[h], logvar[h], reduction="sum", normalizer=6)
               for h in halves)
    torch.testing.assert_close(elbo, LF.elbo_loss(recon, x, mu, logvar), **TOL)


@pytest.mark.parametrize("reconstruction", ["bce", "mse", "gaussian"])
def test_elbo_matches_reference(reconstruction: str) -> None:
    recon, mu, logvar = _leaf(3, 2, 4, seed=5), _leaf(3, 2, seed=6), _leaf(3, 2, seed=7)
    x = torch.rand(3, 2, 4, generator=_gen(8), dtype=torch.float64)

    def ours(r, m, v):
        t = LF.elbo_terms(r, x, m, v, beta=0.7, reconstruction=reconstruction, reduction="none")
        return torch.stack([t.recon, t.kl, t.total])

    def theirs(r, m, v):
        rec, kl = ref.elbo(r, x, m, v, 0.7, reconstruction)
        return torch.stack([rec, kl, rec + 0.7 * kl])

    _assert_same(ours, theirs, [recon, mu, logvar])
    loss = LF.elbo_loss(recon, x, mu, logvar, beta=0.7, reconstruction=reconstruction)
    torch.testing.assert_close(loss, theirs(recon, mu, logvar)[2].mean(), **TOL)


def test_elbo_module_and_bad_inputs() -> None:
    recon, x = torch.zeros(2, 5), torch.rand(2, 5)
    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    assert torch.equal(ELBOLoss(beta=2.0)(recon, x, mu, logvar),
                       LF.elbo_loss(recon, x, mu, logvar, beta=2.0))
    with pytest.raises(LossInputError, match="reconstruction"):
        LF.elbo_loss(recon, x, mu, logvar, reconstruction="l2")
    with pytest.raises(LossInputError, match="same N"):
        LF.elbo_loss(recon, x, mu[:1], logvar[:1])
    with pytest.raises(LossInputError, match="logvar"):
        LF.elbo_loss(recon, x, mu, logvar[:, :2])


# --------------------------------------------------------------------------- GAN


@pytest.mark.parametrize("kind", ["minimax", "lsgan", "hinge", "wgan"])
def test_discriminator_matches_reference(kind: str) -> None:
    real, fake = _leaf(7, seed=9, scale=2.0), _leaf(7, seed=10, scale=2.0)
    _assert_same(lambda r, f: LF.gan_discriminator_loss(r, f, kind=kind, reduction="none"),
                 lambda r, f: ref.discriminator(r, f, kind), [real, fake])


@pytest.mark.parametrize("kind", ["minimax", "non_saturating", "lsgan", "hinge", "wgan"])
def test_generator_matches_reference(kind: str) -> None:
    fake = _leaf(2, 5, seed=11, scale=2.0)
    _assert_same(lambda f: LF.gan_generator_loss(f, kind=kind, reduction="none"),
                 lambda f: ref.generator(f, kind), [fake])


def _softplus_exact(x: float) -> float:
    # log(1 + e^x) in plain floats: e^100 and log1p are exact enough in double precision.
    return math.log1p(math.exp(x)) if x < 30 else x + math.log1p(math.exp(-x))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gan_losses_at_saturated_logits_equal_textbook_forms(dtype: torch.dtype) -> None:
    vals = [-100.0, 100.0]
    logits = torch.tensor(vals, dtype=dtype, requires_grad=True)
    # -log σ(x) = log(1 + e^-x); -log(1 - σ(x)) = log(1 + e^x); d/dx log(1+e^x) = σ(x).
    cases = {
        "non_saturating": ([_softplus_exact(-v) for v in vals], [-1 / (1 + math.exp(v)) for v in vals]),
        "minimax": ([-_softplus_exact(v) for v in vals], [-1 / (1 + math.exp(-v)) for v in vals]),
    }
    for kind, (value, grad) in cases.items():
        out = LF.gan_generator_loss(logits, kind=kind, reduction="none")
        (g,) = torch.autograd.grad(out.sum(), logits)
        assert torch.isfinite(out).all() and torch.isfinite(g).all()
        torch.testing.assert_close(out.double(), torch.tensor(value, dtype=torch.float64),
                                   rtol=1e-6, atol=1e-30)
        torch.testing.assert_close(g.double(), torch.tensor(grad, dtype=torch.float64),
                                   rtol=1e-6, atol=1e-30)
    real = torch.tensor(vals, dtype=dtype, requires_grad=True)
    fake = torch.tensor(vals[::-1], dtype=dtype, requires_grad=True)
    out = LF.gan_discriminator_loss(real, fake, reduction="none")
    want = [_softplus_exact(-r) + _softplus_exact(f) for r, f in zip(vals, vals[::-1])]
    torch.testing.assert_close(out.double(), torch.tensor(want, dtype=torch.float64), rtol=1e-6, atol=1e-30)
    gr, gf = torch.autograd.grad(out.sum(), [real, fake])
    assert torch.isfinite(gr).all() and torch.isfinite(gf).all()
    assert float(gr[0]) == pytest.approx(-1.0) and float(gf[0]) == pytest.approx(1.0)


def test_gan_against_monai_patch_adversarial_loss() -> None:
    monai_losses = pytest.importorskip("monai.losses")
    real = torch.randn(2, 1, 4, 4, generator=_gen(12))
    fake = torch.randn(2, 1, 4, 4, generator=_gen(13))
    bce = monai_losses.PatchAdversarialLoss(criterion="bce")
    hinge = monai_losses.PatchAdversarialLoss(criterion="hinge")
    ls = monai_losses.PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)

    def d(m):
        return m(real, target_is_real=True, for_discriminator=True) + \
            m(fake, target_is_real=False, for_discriminator=True)

    close = dict(rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(LF.gan_discriminator_loss(real, fake), d(bce), **close)
    # MONAI's hinge criterion applies tanh to the scores first
    torch.testing.assert_close(LF.gan_discriminator_loss(real.tanh(), fake.tanh(), kind="hinge"),
                               d(hinge), **close)
    torch.testing.assert_close(LF.gan_discriminator_loss(real, fake, kind="lsgan"), 0.5 * d(ls), **close)
    torch.testing.assert_close(LF.gan_generator_loss(fake),
                               bce(fake, target_is_real=True, for_discriminator=False), **close)
    torch.testing.assert_close(LF.gan_generator_loss(fake, kind="lsgan"),
                               0.5 * ls(fake, target_is_real=True, for_discriminator=False), **close)


def test_gan_shapes_and_options_validated() -> None:
    with pytest.raises(LossInputError, match="real_logits"):
        LF.gan_discriminator_loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(LossInputError, match="Did you mean 'non_saturating'"):
        LF.gan_generator_loss(torch.zeros(4), kind="nonsaturating")
    mod = GANDiscriminatorLoss(kind="wgan")
    assert float(mod(torch.ones(3), torch.zeros(3))) == -1.0


# --------------------------------------------------------------------------- penalties


class _Critic(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 5), torch.nn.Tanh(),
                                       torch.nn.Linear(5, 1)).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.mark.parametrize("center", [1.0, 0.0])
def test_gradient_penalty_matches_float64_autograd_reference(center: float) -> None:
    critic = _Critic()
    real, fake = _leaf(4, 2, 3, seed=14), _leaf(4, 2, 3, seed=15)
    eps = torch.rand(4, generator=_gen(16), dtype=torch.float64)
    params = [p for n, p in critic.named_parameters() if n != "net.3.bias"]  # the bias has no ∇x
    ours = LF.gradient_penalty(critic, real, fake, eps=eps, weight=7.0, center=center, reduction="none")
    theirs = ref.gradient_penalty(critic, real, fake, eps, 7.0, center)
    torch.testing.assert_close(ours, theirs, **TOL)
    g_ours = torch.autograd.grad(ours.sum(), [real, fake, *params])
    g_theirs = torch.autograd.grad(theirs.sum(), [real, fake, *params])
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, **TOL)
    mean = LF.gradient_penalty(critic, real, fake, eps=eps, weight=7.0, center=center)
    torch.testing.assert_close(mean, theirs.mean(), **TOL)


def test_gradient_penalty_gradcheck_and_random_eps() -> None:
    critic = _Critic()
    real, fake = _leaf(3, 2, 3, seed=17), _leaf(3, 2, 3, seed=18)
    eps = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda r, f: LF.gradient_penalty(critic, r, f, eps=eps),
                                    (real, fake), eps=1e-6, atol=1e-6)
    a = LF.gradient_penalty(critic, real, fake, generator=_gen(3))
    b = LF.gradient_penalty(critic, real, fake, generator=_gen(3))
    want = LF.gradient_penalty(critic, real, fake,
                               eps=torch.rand(3, generator=_gen(3), dtype=torch.float64))
    assert torch.equal(a, b) and torch.equal(a, want)
    mod = GradientPenalty(weight=3.0)
    torch.testing.assert_close(mod(critic, real, fake, eps=eps),
                               LF.gradient_penalty(critic, real, fake, eps=eps, weight=3.0), **TOL)


def test_gradient_penalty_finite_when_the_critic_is_flat() -> None:
    real = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(3, 4, dtype=torch.float64)
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    out = LF.gradient_penalty(lambda x: x @ w, real, fake)     # ∇D = 0: ‖·‖ has no derivative there
    assert float(out.detach()) == 10.0
    gw, gr = torch.autograd.grad(out, [w, real], allow_unused=True)
    assert torch.isfinite(gw).all() and (gr is None or torch.isfinite(gr).all())


def test_penalties_evaluate_under_no_grad() -> None:
    critic = _Critic()
    x, y = torch.randn(3, 2, 3, dtype=torch.float64), torch.randn(3, 2, 3, dtype=torch.float64)
    eps = torch.full((3,), 0.5, dtype=torch.float64)
    want_gp = LF.gradient_penalty(critic, x, y, eps=eps).detach()
    want_r1 = LF.r1_penalty(critic, x).detach()
    with torch.no_grad():
        torch.testing.assert_close(LF.gradient_penalty(critic, x, y, eps=eps), want_gp, **TOL)
        torch.testing.assert_close(LF.r1_penalty(critic, x), want_r1, **TOL)


def test_gradient_penalty_bad_inputs() -> None:
    critic = _Critic()
    x = torch.zeros(2, 2, 3, dtype=torch.float64)
    with pytest.raises(LossInputError, match="fake"):
        LF.gradient_penalty(critic, x, x[:, :1])
    with pytest.raises(LossInputError, match="eps"):
        LF.gradient_penalty(critic, x, x, eps=torch.rand(3, dtype=torch.float64))
    with pytest.raises(LossInputError, match="critic"):
        LF.gradient_penalty(x, x, x)


def test_r1_matches_reference_in_both_forms() -> None:
    critic = _Critic()
    x = _leaf(4, 2, 3, seed=19)
    params = [p for n, p in critic.named_parameters() if n != "net.3.bias"]
    theirs = ref.r1(critic, x, 3.0)
    by_callable = LF.r1_penalty(critic, x, gamma=3.0, reduction="none")
    by_logits = LF.r1_penalty(critic(x), x, gamma=3.0, reduction="none")
    torch.testing.assert_close(by_callable, theirs, **TOL)
    torch.testing.assert_close(by_logits, theirs, **TOL)
    g_ours = torch.autograd.grad(by_logits.sum(), [x, *params])
    g_theirs = torch.autograd.grad(theirs.sum(), [x, *params])
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, **TOL)
    plain = x.detach()                                   # a callable D needs no grad on the data
    torch.testing.assert_close(R1Penalty(gamma=3.0)(critic, plain), theirs.mean(), **TOL)
    assert not plain.requires_grad


def test_r1_explains_a_missing_graph() -> None:
    critic = _Critic()
    x = torch.randn(2, 2, 3, dtype=torch.float64)
    with pytest.raises(LossInputError, match="requires_grad"):
        LF.r1_penalty(critic(x), x)
    y = x.clone().requires_grad_(True)
    with pytest.raises(LossInputError, match="batch"):
        LF.r1_penalty(critic(y)[:1], y)


# --------------------------------------------------------------------------- penalties under torch.compile


class _ConvCritic(torch.nn.Module):
    """A small convolutional critic (LeakyReLU as in DCGAN/StyleGAN discriminators)."""

    def __init__(self) -> None:
        super().__init__()
        gen = _gen(30)
        self.conv = torch.nn.Conv2d(2, 3, 3).double()
        self.head = torch.nn.Linear(3 * 2 * 2, 1).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.leaky_relu(self.conv(x), 0.2).flatten(1))


def _penalty_grads(out: torch.Tensor, leaves: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out.sum(), leaves, allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("center", [1.0, 0.0])
def test_func_input_gradient_equals_autograd_and_the_reference(center: float) -> None:
    from losskit.losses.generative import _critic_grad_autograd, _critic_grad_func, _safe_norm

    critic = _ConvCritic()
    real, fake = _leaf(3, 2, 4, 4, seed=31), _leaf(3, 2, 4, 4, seed=32)
    eps = torch.rand(3, generator=_gen(33), dtype=torch.float64)
    leaves = [real, fake, *critic.parameters()]
    e = eps.reshape(3, 1, 1, 1)
    theirs = ref.gradient_penalty(critic, real, fake, eps, 5.0, center)
    want = _penalty_grads(theirs, leaves)
    for grad_fn in (_critic_grad_autograd, _critic_grad_func):
        ours = 5.0 * (_safe_norm(grad_fn(critic, e * real + (1 - e) * fake)) - center).square()
        torch.testing.assert_close(ours, theirs, **TOL)
        for a, b in zip(_penalty_grads(ours, leaves), want):
            torch.testing.assert_close(a, b, **TOL)
    x = _leaf(3, 2, 4, 4, seed=34)
    r1_want = ref.r1(critic, x, 2.0)
    r1_func = 0.5 * 2.0 * _critic_grad_func(critic, x).flatten(1).square().sum(1)
    torch.testing.assert_close(r1_func, r1_want, **TOL)
    for a, b in zip(_penalty_grads(r1_func, [x, *critic.parameters()]),
                    _penalty_grads(r1_want, [x, *critic.parameters()])):
        torch.testing.assert_close(a, b, **TOL)


def test_penalties_trace_with_fullgraph_and_match_eager() -> None:
    critic = _ConvCritic()
    real, fake = _leaf(3, 2, 4, 4, seed=35), _leaf(3, 2, 4, 4, seed=36)
    eps = torch.rand(3, generator=_gen(37), dtype=torch.float64)
    params = list(critic.parameters())

    def losses(c: torch.nn.Module, r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return torch.stack([LF.gradient_penalty(c, r, f, eps=eps, reduction="sum"),
                            LF.r1_penalty(c, r, gamma=3.0, reduction="sum")])

    compiled = torch.compile(losses, backend="eager", fullgraph=True, dynamic=False)
    got, want = compiled(critic, real, fake), losses(critic, real, fake)
    torch.testing.assert_close(got, want, **TOL)
    upstream = torch.tensor([0.7, -1.3], dtype=torch.float64)     # a non-uniform upstream gradient
    opts = dict(allow_unused=True, materialize_grads=True)   # the head's bias has no input gradient
    g_got = torch.autograd.grad(got, [real, fake, *params], upstream, **opts)
    g_want = torch.autograd.grad(want, [real, fake, *params], upstream, **opts)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, **TOL)
    assert any(bool(g.abs().sum() > 0) for g in g_got[2:])          # the critic is trained


def test_r1_score_form_graph_breaks_under_default_compile() -> None:
    critic = _ConvCritic()
    x = _leaf(2, 2, 4, 4, seed=38)
    compiled = torch.compile(lambda s, x: LF.r1_penalty(s, x), backend="eager")
    got = compiled(critic(x), x)
    torch.testing.assert_close(got, ref.r1(critic, x, 10.0).mean(), **TOL)


class _OldStyleScale(torch.autograd.Function):
    """A custom Function without setup_context (as in StyleGAN2's ops): torch.func refuses it."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        return 2.0 * x

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def]
        return 2.0 * g


def test_eager_penalties_accept_critics_torch_func_refuses() -> None:
    critic = _Critic()

    def d(x: torch.Tensor) -> torch.Tensor:
        return critic(_OldStyleScale.apply(x))

    x = _leaf(3, 2, 3, seed=39)
    torch.testing.assert_close(LF.r1_penalty(d, x, reduction="none"), ref.r1(d, x, 10.0), **TOL)
    eps = torch.full((3,), 0.3, dtype=torch.float64)
    torch.testing.assert_close(LF.gradient_penalty(d, x, x.detach() + 1, eps=eps, reduction="none"),
                               ref.gradient_penalty(d, x, x.detach() + 1, eps, 10.0, 1.0), **TOL)


# --------------------------------------------------------------------------- GAN fused paths

D_FUSED = ["minimax", "lsgan", "hinge", "wgan"]
G_FUSED = ["non_saturating", "minimax", "lsgan", "hinge", "wgan"]


def _reduce_ref(per: torch.Tensor, reduction: str, weight: torch.Tensor | None,
                keep: torch.Tensor | None, normalizer: float | None) -> torch.Tensor:
    """The documented reduction written out: Σ m·w·ℓ, divided by Σ m·w (mean) or the normalizer."""
    w = torch.ones_like(per) if weight is None else weight.expand_as(per)
    m = torch.ones_like(per) if keep is None else keep.to(per.dtype).expand_as(per)
    weighted = per * w * m
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum() / (1.0 if normalizer is None else normalizer)
    return weighted.sum() / (w * m).sum()


_OPTIONS = {
    "none": dict(reduction="none"),
    "mean": dict(reduction="mean"),
    "sum": dict(reduction="sum"),
    "sum_normalizer": dict(reduction="sum", normalizer=11.0),
    "mean_weight": dict(reduction="mean", sample_weight="per_sample"),
    "none_mask": dict(reduction="none", mask=True),
    "mean_weight_mask": dict(reduction="mean", sample_weight="per_element", mask=True),
}


def _materialise(opt: dict, shape: tuple[int, ...]) -> tuple[dict, torch.Tensor | None, torch.Tensor | None]:
    kw = dict(opt)
    weight = keep = None
    if kw.get("sample_weight") == "per_sample":
        weight = torch.rand(shape[0], generator=_gen(40), dtype=torch.float64) + 0.1
        kw["sample_weight"] = weight
        weight = weight.reshape((-1,) + (1,) * (len(shape) - 1))
    elif kw.get("sample_weight") == "per_element":
        weight = torch.rand(shape, generator=_gen(41), dtype=torch.float64) + 0.1
        kw["sample_weight"] = weight
    if kw.pop("mask", False):
        keep = torch.rand(shape, generator=_gen(42)) > 0.3
        kw["mask"] = keep
    return kw, weight, keep


@pytest.mark.parametrize("option", list(_OPTIONS))
def test_gan_fast_paths_match_reference_for_every_option(option: str) -> None:
    shape = (2**17 // 3 + 5, 4)      # crosses the fused chunk boundary
    # (the hinge kinks, where the reference's clamp and relu pick different subgradients, are
    # pinned in test_gan_fast_paths_hinge_kinks_follow_relu)
    real, fake = _leaf(*shape, seed=43, scale=3.0), _leaf(*shape, seed=44, scale=3.0)
    kw, weight, keep = _materialise(_OPTIONS[option], shape)
    upstream = torch.randn(shape, generator=_gen(45), dtype=torch.float64)
    norm = kw.get("normalizer")

    def grads(out: torch.Tensor, leaves: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(out, leaves, upstream if out.ndim else None)

    for kind in D_FUSED:
        ours = LF.gan_discriminator_loss(real, fake, kind=kind, **kw)
        theirs = _reduce_ref(ref.discriminator(real, fake, kind), kw["reduction"], weight, keep, norm)
        torch.testing.assert_close(ours, theirs, **TOL)
        for a, b in zip(grads(ours, [real, fake]), grads(theirs, [real, fake])):
            torch.testing.assert_close(a, b, **TOL)
    for kind in G_FUSED:
        ours = LF.gan_generator_loss(fake, kind=kind, **kw)
        theirs = _reduce_ref(ref.generator(fake, kind), kw["reduction"], weight, keep, norm)
        torch.testing.assert_close(ours, theirs, **TOL)
        torch.testing.assert_close(grads(ours, [fake])[0], grads(theirs, [fake])[0], **TOL)


def _saved_beyond_inputs(fn, *inputs: torch.Tensor) -> int:
    seen = {t.untyped_storage().data_ptr() for t in inputs}
    extra = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal extra
        if t.untyped_storage().data_ptr() not in seen and t.numel() > 1:
            extra += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*inputs)
    return extra


def _graph_names(out: torch.Tensor) -> set[str]:
    names, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.add(type(node).__name__)
            stack.extend(fn for fn, _ in node.next_functions)
    return names


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gan_fast_paths_save_only_the_logits(reduction: str) -> None:
    real = torch.randn(1000, requires_grad=True)
    fake = torch.randn(1000, requires_grad=True)
    for kind in ("minimax", "lsgan", "hinge"):       # the kinds with a fused path
        out = LF.gan_discriminator_loss(real, fake, kind=kind, reduction=reduction)
        assert "_FusedBackward" in _graph_names(out)
    for kind in ("non_saturating", "minimax", "lsgan"):
        assert "_FusedBackward" in _graph_names(LF.gan_generator_loss(fake, kind=kind, reduction=reduction))
    for kind in D_FUSED:
        def d(r: torch.Tensor, f: torch.Tensor, k: str = kind) -> torch.Tensor:
            return LF.gan_discriminator_loss(r, f, kind=k, reduction=reduction)

        assert _saved_beyond_inputs(d, real, fake) == 0
    for kind in G_FUSED:
        assert _saved_beyond_inputs(
            lambda f, k=kind: LF.gan_generator_loss(f, kind=k, reduction=reduction), fake) == 0


def _composed_d(r: torch.Tensor, f: torch.Tensor, kind: str) -> torch.Tensor:
    # the textbook per-element forms, stable at any logit (the path torch.compile takes)
    return {"minimax": lambda: F.softplus(-r) + F.softplus(f),
            "lsgan": lambda: 0.5 * (r - 1).square() + 0.5 * f.square(),
            "hinge": lambda: F.relu(1 - r) + F.relu(1 + f),
            "wgan": lambda: f - r}[kind]()


def _composed_g(f: torch.Tensor, kind: str) -> torch.Tensor:
    return {"non_saturating": lambda: F.softplus(-f), "minimax": lambda: -F.softplus(f),
            "lsgan": lambda: 0.5 * (f - 1).square(), "hinge": lambda: -f, "wgan": lambda: -f}[kind]()


F = torch.nn.functional
EXTREMES = [-1e4, -100.0, -30.0, -1.0, -1e-7, 0.0, 1e-7, 1.0, 30.0, 100.0, 1e4]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gan_fast_paths_equal_composed_forms_at_extremes_and_half(dtype: torch.dtype, reduction: str) -> None:
    vals = torch.tensor(EXTREMES).clamp(-6e4, 6e4) if dtype == torch.float16 else torch.tensor(EXTREMES)
    r0, f0 = torch.cartesian_prod(vals, vals).T.contiguous()
    up = torch.linspace(-2.0, 3.0, r0.numel()) if reduction == "none" else None

    def compare(ours: torch.Tensor, theirs: torch.Tensor, leaves: list, ref_leaves: list) -> None:
        theirs = theirs if reduction == "none" else theirs.mean()
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
        for a, b in zip(torch.autograd.grad(ours, leaves, up), torch.autograd.grad(theirs, ref_leaves, up)):
            assert a.dtype == dtype and bool(torch.isfinite(a).all())
            torch.testing.assert_close(a.float(), b.to(dtype).float(), rtol=1e-6, atol=1e-6)

    def fresh() -> tuple[list, list]:
        leaves = [r0.to(dtype).requires_grad_(True), f0.to(dtype).requires_grad_(True)]
        return leaves, [t.detach().float().requires_grad_(True) for t in leaves]

    for kind in D_FUSED:
        leaves, ref_leaves = fresh()
        compare(LF.gan_discriminator_loss(*leaves, kind=kind, reduction=reduction),
                _composed_d(*ref_leaves, kind), leaves, ref_leaves)
    for kind in G_FUSED:
        leaves, ref_leaves = fresh()
        compare(LF.gan_generator_loss(leaves[1], kind=kind, reduction=reduction),
                _composed_g(ref_leaves[1], kind), leaves[1:], ref_leaves[1:])


def test_gan_fast_paths_hinge_kinks_follow_relu() -> None:
    r = torch.tensor([1.0, 0.5, 2.0], requires_grad=True)
    f = torch.tensor([-1.0, -0.5, -2.0], requires_grad=True)
    gr, gf = torch.autograd.grad(LF.gan_discriminator_loss(r, f, kind="hinge", reduction="sum"), [r, f])
    assert gr.tolist() == [0.0, -1.0, 0.0] and gf.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("kind", ["minimax", "lsgan"])
def test_gan_fast_paths_double_backward(kind: str) -> None:
    real, fake = _leaf(5, seed=46), _leaf(5, seed=47)
    assert torch.autograd.gradgradcheck(
        lambda r, f: LF.gan_discriminator_loss(r, f, kind=kind, reduction="none"), (real, fake))
    for g_kind in ("non_saturating", "minimax", "lsgan"):
        assert torch.autograd.gradgradcheck(lambda f, k=g_kind: LF.gan_generator_loss(f, kind=k), (fake,))


def test_gan_fused_kinds_trace_with_fullgraph_and_equal_the_fused_path() -> None:
    # under torch.compile the composed form runs; eagerly the fused path: same values and gradients
    real, fake = _leaf(6, 5, seed=48, scale=3.0), _leaf(6, 5, seed=49, scale=3.0)
    weight = torch.rand(6, generator=_gen(50), dtype=torch.float64)

    def every_kind(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        # (the contract compiles the default kinds, minimax D and non-saturating G)
        d = [LF.gan_discriminator_loss(r, f, kind=k, reduction="none") for k in ("lsgan", "hinge")]
        d.append(LF.gan_discriminator_loss(r, f, kind="hinge", sample_weight=weight).expand(6, 5))
        g = [LF.gan_generator_loss(f, kind=k, reduction="none") for k in ("minimax", "lsgan")]
        return torch.stack(d + g)

    compiled = torch.compile(every_kind, backend="eager", fullgraph=True, dynamic=False)
    got, want = compiled(real, fake), every_kind(real, fake)
    torch.testing.assert_close(got, want, **TOL)
    upstream = torch.randn(want.shape, generator=_gen(51), dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, [real, fake], upstream),
                    torch.autograd.grad(want, [real, fake], upstream)):
        torch.testing.assert_close(a, b, **TOL)
