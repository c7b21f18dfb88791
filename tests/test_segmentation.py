"""Segmentation losses: float64 references (values and gradients), peers, the input-format and
empty-mask policies (PITFALLS 14–16, 30)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import losskit.functional as LF
import losskit.losses.segmentation as seg
from losskit import LossInputError
from losskit.nn import DiceLoss
from reference import segmentation_ref as ref

TOL = dict(rtol=1e-10, atol=1e-10)
PEER = dict(rtol=1e-6, atol=1e-6)  # float32 peers


def _inputs(mode: str, shape: tuple[int, ...] = (2, 3, 4, 5), seed: int = 0,
            ignore: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 1.5
    if mode == "multiclass":
        y = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=g)
        if ignore is not None:
            y = torch.where(torch.rand(y.shape, generator=g) < 0.2, ignore, y)
    else:
        if mode == "binary":
            x = x[:, 0].contiguous()
        y = (torch.rand(x.shape, generator=g) > 0.5).double()
        if ignore is not None:
            y = torch.where(torch.rand(y.shape, generator=g) < 0.2, float(ignore), y)
    return x, y


def _value_and_grad(fn, x: torch.Tensor, *args, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    out = fn(x, *args, **kw)
    w = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)  # non-uniform
    (out * w).sum().backward()
    return out.detach(), x.grad


def _compare(mine, theirs, x, y, my_kw, ref_kw) -> None:
    v1, g1 = _value_and_grad(mine, x, y, **my_kw)
    v2, g2 = _value_and_grad(theirs, x, y, **ref_kw)
    torch.testing.assert_close(v1, v2, **TOL)
    torch.testing.assert_close(g1, g2, **TOL)


CASES = [
    ("multiclass", dict()),
    ("multiclass", dict(batch=True)),
    ("multiclass", dict(include_background=False)),
    ("multiclass", dict(ignore_index=255)),
    ("multiclass", dict(ignore_index=-100, batch=True, include_background=False)),
    ("multiclass", dict(squared=True)),
    ("binary", dict()),
    ("binary", dict(batch=True, smooth_nr=0.0, smooth_dr=1.0)),
    ("binary", dict(ignore_index=255)),
    ("multilabel", dict()),
    ("multilabel", dict(include_background=False, squared=True)),
]


def _mine_kw(kw: dict) -> dict:
    out = dict(kw)
    out["reduce_over"] = "batch" if out.pop("batch", False) else "sample"
    if "squared" in out:
        out["squared_denominator"] = out.pop("squared")
    return out


@pytest.mark.parametrize(("mode", "kw"), CASES)
def test_dice_and_jaccard_match_reference(mode: str, kw: dict) -> None:
    x, y = _inputs(mode, ignore=kw.get("ignore_index"))
    _compare(LF.dice_loss, ref.dice, x, y, dict(mode=mode, reduction="none", **_mine_kw(kw)),
             dict(mode=mode, **kw))
    _compare(LF.jaccard_loss, ref.jaccard, x, y, dict(mode=mode, reduction="none", **_mine_kw(kw)),
             dict(mode=mode, **kw))


@pytest.mark.parametrize(("mode", "kw"), [c for c in CASES if "squared" not in c[1]])
def test_tversky_and_focal_tversky_match_reference(mode: str, kw: dict) -> None:
    x, y = _inputs(mode, ignore=kw.get("ignore_index"))
    mk = dict(mode=mode, reduction="none", **_mine_kw(kw))
    _compare(LF.tversky_loss, ref.tversky, x, y, dict(alpha=0.3, beta=0.7, **mk),
             dict(mode=mode, alpha=0.3, beta=0.7, **kw))
    # Abraham & Khan: (1 - TI)^(1/γ)
    _compare(LF.focal_tversky_loss, ref.tversky, x, y, dict(alpha=0.7, beta=0.3, gamma=4 / 3, **mk),
             dict(mode=mode, alpha=0.7, beta=0.3, gamma=4 / 3, **kw))


@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("batch", [False, True])
def test_generalized_dice_matches_reference(w_type: str, batch: bool) -> None:
    x, y = _inputs("multiclass", shape=(3, 4, 3, 3), seed=1)
    y[0] = torch.where(y[0] == 2, 0, y[0])  # class 2 absent from image 0: inf weight replaced
    mine = dict(mode="multiclass", weight_type=w_type, reduce_over="batch" if batch else "sample",
                reduction="none")
    v1, g1 = _value_and_grad(LF.generalized_dice_loss, x, y, **mine)
    v2, g2 = _value_and_grad(ref.generalized_dice, x, y, mode="multiclass", w_type=w_type, batch=batch)
    torch.testing.assert_close(v1, v2, **TOL)
    torch.testing.assert_close(g1, g2, **TOL)
    assert torch.isfinite(g1).all()


def test_probabilities_and_soft_targets_match_reference() -> None:
    g = torch.Generator().manual_seed(2)
    p = torch.softmax(torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64), 1)
    soft = torch.softmax(torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64), 1)
    _compare(LF.dice_loss, ref.dice, p, soft, dict(mode="multiclass", from_logits=False, reduction="none"),
             dict(mode="multiclass", from_logits=False))


def test_generalized_dice_no_class_present_is_finite() -> None:
    x = torch.randn(2, 3, 4, requires_grad=True, dtype=torch.float64)
    y = torch.zeros(2, 3, 4, dtype=torch.float64)  # multilabel, nothing present
    out = LF.generalized_dice_loss(x, y, mode="multilabel", reduction="none")
    out.sum().backward()
    torch.testing.assert_close(out, torch.zeros(2, dtype=torch.float64))  # 1 - s_nr / s_dr
    assert torch.isfinite(x.grad).all()


def test_three_d_volumes() -> None:
    x, y = _inputs("multiclass", shape=(2, 3, 3, 4, 2), seed=3)
    _compare(LF.dice_loss, ref.dice, x, y, dict(mode="multiclass", reduction="none"), dict(mode="multiclass"))
    kw = dict(mode="multiclass", alpha=0.2, beta=0.8)
    _compare(LF.tversky_loss, ref.tversky, x, y, dict(reduction="none", **kw), kw)
    assert LF.dice_loss(x, y, mode="multiclass", reduction="none").shape == (2, 3)
    assert LF.dice_loss(x, y, mode="multiclass", reduction="none", reduce_over="batch").shape == (3,)


def test_index_targets_equal_one_hot_targets() -> None:
    x, y = _inputs("multiclass", seed=4)
    onehot = F.one_hot(y, 3).movedim(-1, 1).double()
    for fn in (LF.dice_loss, LF.jaccard_loss, LF.tversky_loss, LF.generalized_dice_loss):
        for over in ("sample", "batch"):
            a, ga = _value_and_grad(fn, x, y, mode="multiclass", reduce_over=over, reduction="none")
            b, gb = _value_and_grad(fn, x, onehot, mode="multiclass", reduce_over=over, reduction="none")
            torch.testing.assert_close(a, b, **TOL)
            torch.testing.assert_close(ga, gb, **TOL)


def test_activation_before_background_removal() -> None:
    x, y = _inputs("multiclass", seed=5)
    got = LF.dice_loss(x, y, mode="multiclass", include_background=False, reduction="none")
    want = ref.dice(x, y, "multiclass", include_background=False)  # softmax over all 3 channels
    wrong = ref.dice(x[:, 1:], (y - 1).clamp_min(0), "multiclass")  # softmax after dropping
    torch.testing.assert_close(got, want, **TOL)
    assert not torch.allclose(got, wrong)


def test_softmax_over_one_channel_raises() -> None:
    with pytest.raises(LossInputError, match="softmax over one channel"):
        LF.dice_loss(torch.randn(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), mode="multiclass")
    with pytest.raises(LossInputError, match="include_background"):
        LF.dice_loss(torch.randn(2, 4), torch.zeros(2, 4), mode="binary", include_background=False)
    with pytest.raises(LossInputError, match="mode"):
        LF.dice_loss(torch.randn(2, 4), torch.zeros(2, 4), mode="softmax")
    with pytest.raises(TypeError):
        LF.dice_loss(torch.randn(2, 4), torch.zeros(2, 4))  # mode is required
    with pytest.raises(LossInputError, match="class_weight"):
        LF.dice_loss(*_inputs("multiclass"), mode="multiclass", class_weight=torch.ones(2))
    with pytest.raises(LossInputError, match="shape"):  # (N, 1, H, W) index target: no broadcasting
        LF.dice_loss(torch.randn(2, 3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long), mode="multiclass")


@pytest.mark.parametrize("over", ["sample", "batch"])
@pytest.mark.parametrize("fn", [LF.dice_loss, LF.jaccard_loss, LF.tversky_loss, LF.focal_tversky_loss,
                                LF.generalized_dice_loss])
def test_empty_ground_truth_policy(fn, over: str) -> None:
    """Empty GT × empty prediction → 0; empty GT × non-empty prediction → ≈ 1 with a gradient
    that shrinks the prediction; smooth_dr = 0 → finite. Never NaN. Generalized Dice with no class
    present has all weights 0 (MONAI's rule) and is 0 whatever the prediction (documented)."""
    y = torch.zeros(2, 8, dtype=torch.float64)
    gdl = fn is LF.generalized_dice_loss
    for logit, want in ((-60.0, 0.0), (5.0, 0.0 if gdl else 1.0)):
        x = torch.full((2, 8), logit, dtype=torch.float64, requires_grad=True)
        out = fn(x, y, mode="binary", reduce_over=over)
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(x.grad).all()
        assert abs(out.item() - want) < 1e-3, (out.item(), want)
        if want == 1.0:
            assert (x.grad >= 0).all() and (x.grad > 0).any()  # pushes the logits down
    for p in (0.0, 0.3):
        x = torch.full((2, 8), p, dtype=torch.float64, requires_grad=True)
        out = fn(x, y, mode="binary", from_logits=False, smooth_nr=0.0, smooth_dr=0.0, reduce_over=over)
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(x.grad).all()


def test_empty_ground_truth_matches_reference_and_mixed_batch() -> None:
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    y = torch.zeros(2, 3, 4, dtype=torch.float64)
    y[0, 0, :2] = 1.0  # only image 0, class 0 has foreground
    _compare(LF.dice_loss, ref.dice, x, y, dict(mode="multilabel", reduction="none"), dict(mode="multilabel"))
    _compare(LF.dice_loss, ref.dice, x, y, dict(mode="multilabel", reduction="none", reduce_over="batch"),
             dict(mode="multilabel", batch=True))


def test_focal_tversky_perfect_prediction_has_finite_gradient() -> None:
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    x = y.clone().requires_grad_(True)
    out = LF.focal_tversky_loss(x, y, mode="binary", from_logits=False)
    out.backward()
    assert out.item() < 1e-12 and torch.isfinite(x.grad).all()


def test_class_weight_and_module_repr() -> None:
    x, y = _inputs("multiclass", seed=6)
    w = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    base = LF.dice_loss(x, y, mode="multiclass", reduction="none")
    torch.testing.assert_close(LF.dice_loss(x, y, mode="multiclass", class_weight=w), (base * w).mean())
    mod = DiceLoss(mode="multiclass")
    assert "reduce_over='sample'" in repr(mod)  # the default is named (PITFALLS 14)
    torch.testing.assert_close(mod(x, y), base.mean())


# --------------------------------------------------------------------------- Lovász


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [None, 255])
def test_lovasz_hinge_matches_reference(per_image: bool, ignore: int | None) -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    y = (torch.rand(3, 4, 5, generator=g) > 0.5).long()
    if ignore is not None:
        y = torch.where(torch.rand(y.shape, generator=g) < 0.25, ignore, y)
        y[2] = ignore  # one image with nothing valid
    _compare(LF.lovasz_hinge_loss, ref.lovasz_hinge, x, y,
             dict(per_image=per_image, ignore_index=ignore, reduction="none"),
             dict(per_image=per_image, ignore=ignore))


@pytest.mark.parametrize("classes", ["present", "all"])
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [None, 255])
def test_lovasz_softmax_matches_reference(classes: str, per_image: bool, ignore: int | None) -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.randn(3, 4, 3, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (3, 3, 5), generator=g)  # class 3 never present
    if ignore is not None:
        y = torch.where(torch.rand(y.shape, generator=g) < 0.25, ignore, y)
    w = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64)
    _compare(LF.lovasz_softmax_loss, ref.lovasz_softmax, x, y,
             dict(classes=classes, per_image=per_image, ignore_index=ignore, class_weight=w,
                  reduction="none"),
             dict(classes=classes, per_image=per_image, ignore=ignore, class_weight=w))


def test_lovasz_compiles_fullgraph_with_ignore_index() -> None:
    x, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    y[0, 0] = 255
    fn = torch.compile(LF.lovasz_softmax_loss, backend="eager", fullgraph=True)
    torch.testing.assert_close(fn(x, y, ignore_index=255), LF.lovasz_softmax_loss(x, y, ignore_index=255))


# --------------------------------------------------------------------------- compounds


def test_dice_ce_is_the_sum_of_its_parts() -> None:
    x, y = _inputs("multiclass", ignore=255, seed=9)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    dk = dict(ignore_index=255, include_background=False)
    ck = dict(weight=w, ignore_index=255, label_smoothing=0.1)
    got = LF.dice_ce_loss(x, y, mode="multiclass", lambda_dice=0.6, lambda_ce=1.4, dice_kwargs=dk,
                          ce_kwargs=ck)
    want = (0.6 * LF.dice_loss(x, y, mode="multiclass", **dk)
            + 1.4 * F.cross_entropy(x, y, weight=w, ignore_index=255, label_smoothing=0.1))
    torch.testing.assert_close(got, want, **TOL)
    none = LF.dice_ce_loss(x, y, mode="multiclass", reduction="none", dice_kwargs=dk, ce_kwargs=ck)
    total = LF.dice_ce_loss(x, y, mode="multiclass", reduction="sum", dice_kwargs=dk, ce_kwargs=ck)
    assert none.shape == (2,)
    torch.testing.assert_close(none.sum(), total, **TOL)
    xb, yb = _inputs("binary", seed=9)
    pw = torch.tensor(3.0, dtype=torch.float64)
    got = LF.dice_ce_loss(xb, yb, mode="binary", ce_kwargs={"pos_weight": pw})
    want = LF.dice_loss(xb, yb, mode="binary") + F.binary_cross_entropy_with_logits(xb, yb, pos_weight=pw)
    torch.testing.assert_close(got, want, **TOL)


def test_dice_focal_is_the_sum_of_its_parts_and_focal_matches_reference() -> None:
    x, y = _inputs("multiclass", ignore=255, seed=10)
    alpha = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    fk = dict(gamma=1.5, alpha=alpha, ignore_index=255)
    v, g = _value_and_grad(LF.dice_focal_loss, x, y, mode="multiclass", lambda_dice=0.0,
                             dice_kwargs={"ignore_index": 255}, focal_kwargs=fk)
    rv, rg = _value_and_grad(ref.softmax_focal, x, y, 1.5, alpha, 255)
    torch.testing.assert_close(v, rv, **TOL)
    torch.testing.assert_close(g, rg, **TOL)
    both = LF.dice_focal_loss(x, y, mode="multiclass", lambda_focal=0.5, dice_kwargs={"ignore_index": 255},
                              focal_kwargs=fk)
    torch.testing.assert_close(both, LF.dice_loss(x, y, mode="multiclass", ignore_index=255) + 0.5 * v, **TOL)
    # γ = 0 is cross-entropy
    ce = LF.dice_focal_loss(x, y, mode="multiclass", lambda_dice=0.0, dice_kwargs={"ignore_index": 255},
                            focal_kwargs={"gamma": 0.0, "ignore_index": 255})
    torch.testing.assert_close(ce, F.cross_entropy(x, y, ignore_index=255), **TOL)
    # saturated logits: finite gradient of the focusing factor
    xs = (40.0 * F.one_hot(y.clamp_max(2), 3).movedim(-1, 1).double()).requires_grad_(True)
    LF.dice_focal_loss(xs, y.clamp_max(2), mode="multiclass", focal_kwargs={"gamma": 0.5}).backward()
    assert torch.isfinite(xs.grad).all()


def test_sigmoid_focal_part_matches_reference_and_monai() -> None:
    x, y = _inputs("multilabel", seed=17)
    v, g = _value_and_grad(LF.dice_focal_loss, x, y, mode="multilabel", lambda_dice=0.0,
                           focal_kwargs={"gamma": 2.0, "alpha": 0.25})
    rv, rg = _value_and_grad(ref.sigmoid_focal, x, y, 2.0, 0.25)
    torch.testing.assert_close(v, rv, **TOL)
    torch.testing.assert_close(g, rg, **TOL)
    monai_losses = pytest.importorskip("monai.losses")
    xf, yf = _f32(x, y)
    m = monai_losses.DiceFocalLoss(sigmoid=True, lambda_dice=0.3, lambda_focal=0.7)(xf, yf)
    ours = LF.dice_focal_loss(xf, yf, mode="multilabel", lambda_dice=0.3, lambda_focal=0.7)
    torch.testing.assert_close(ours, m, **PEER)


def test_compound_unknown_keys_raise() -> None:
    x, y = _inputs("multiclass")
    with pytest.raises(LossInputError, match="smooth"):
        LF.dice_ce_loss(x, y, mode="multiclass", dice_kwargs={"smoth_nr": 1.0})
    with pytest.raises(LossInputError, match="label_smoothing"):
        LF.dice_ce_loss(x, y, mode="multiclass", ce_kwargs={"label_smooth": 0.1})
    with pytest.raises(LossInputError, match="ignore_index"):
        LF.dice_focal_loss(*_inputs("binary"), mode="binary", focal_kwargs={"ignore_index": 3})


# --------------------------------------------------------------------------- peers


def _f32(*ts: torch.Tensor) -> list[torch.Tensor]:
    return [t.float() if t.is_floating_point() else t for t in ts]


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_monai_dice_tversky_jaccard(batch: bool, include_background: bool) -> None:
    monai_losses = pytest.importorskip("monai.losses")
    x, y = _f32(*_inputs("multiclass", seed=11))
    over = "batch" if batch else "sample"
    common = dict(softmax=True, to_onehot_y=True, include_background=include_background, batch=batch)
    yc = y.unsqueeze(1)
    for squared in (False, True):
        m = monai_losses.DiceLoss(squared_pred=squared, **common)(x, yc)
        ours = LF.dice_loss(x, y, mode="multiclass", reduce_over=over, include_background=include_background,
                            squared_denominator=squared)
        torch.testing.assert_close(ours, m, **PEER)
    m = monai_losses.DiceLoss(jaccard=True, **common)(x, yc)
    torch.testing.assert_close(LF.jaccard_loss(x, y, mode="multiclass", reduce_over=over,
                                               include_background=include_background), m, **PEER)
    m = monai_losses.TverskyLoss(alpha=0.3, beta=0.7, **common)(x, yc)
    torch.testing.assert_close(LF.tversky_loss(x, y, mode="multiclass", alpha=0.3, beta=0.7, reduce_over=over,
                                               include_background=include_background), m, **PEER)
    for w_type in ("square", "simple", "uniform"):
        m = monai_losses.GeneralizedDiceLoss(w_type=w_type, **common)(x, yc)
        torch.testing.assert_close(LF.generalized_dice_loss(x, y, mode="multiclass", weight_type=w_type,
                                                            reduce_over=over,
                                                            include_background=include_background),
                                   m, **PEER)


def test_monai_sigmoid_ignore_and_dice_ce() -> None:
    monai_losses = pytest.importorskip("monai.losses")
    x, y = _f32(*_inputs("multilabel", seed=12))
    m = monai_losses.DiceLoss(sigmoid=True, smooth_nr=0.1, smooth_dr=0.2)(x, y)
    torch.testing.assert_close(LF.dice_loss(x, y, mode="multilabel", smooth_nr=0.1, smooth_dr=0.2), m,
                               **PEER)
    xm, ym = _f32(*_inputs("multiclass", seed=13, ignore=255))
    m = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, ignore_index=255)(xm, ym.unsqueeze(1))
    torch.testing.assert_close(LF.dice_loss(xm, ym, mode="multiclass", ignore_index=255), m, **PEER)
    w = torch.tensor([0.5, 1.0, 2.0])
    xm, ym = _f32(*_inputs("multiclass", seed=13))
    m = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, weight=w)(xm, ym.unsqueeze(1))
    torch.testing.assert_close(LF.dice_loss(xm, ym, mode="multiclass", class_weight=w), m, **PEER)
    m = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0.4,
                                lambda_ce=0.6)(xm, ym.unsqueeze(1))
    torch.testing.assert_close(LF.dice_ce_loss(xm, ym, mode="multiclass", lambda_dice=0.4, lambda_ce=0.6), m,
                               **PEER)


def test_kornia_dice_tversky_lovasz() -> None:
    kl = pytest.importorskip("kornia.losses")
    g = torch.Generator().manual_seed(14)
    x = torch.randn(2, 3, 6, 6, generator=g)
    y = torch.randint(0, 3, (2, 6, 6), generator=g)
    y[:, 0, :3] = torch.tensor([0, 1, 2])  # every class in every image (kornia averages present ones)
    kw = dict(mode="multiclass", smooth_nr=0.0, smooth_dr=1e-8)
    torch.testing.assert_close(LF.dice_loss(x, y, **kw), kl.dice_loss(x, y, average="macro"), **PEER)
    # kornia's "micro" Dice pools the classes: generalized Dice with uniform weights
    torch.testing.assert_close(LF.generalized_dice_loss(x, y, weight_type="uniform", **kw),
                               kl.dice_loss(x, y, average="micro"), **PEER)
    torch.testing.assert_close(LF.tversky_loss(x, y, alpha=0.3, beta=0.7, **kw),
                               kl.tversky_loss(x, y, alpha=0.3, beta=0.7), **PEER)
    torch.testing.assert_close(LF.lovasz_softmax_loss(x, y, classes="all", per_image=True),
                               kl.lovasz_softmax_loss(x, y), **PEER)
    xb = torch.randn(2, 1, 6, 6, generator=g)
    yb = (torch.rand(2, 6, 6, generator=g) > 0.5).long()
    torch.testing.assert_close(LF.lovasz_hinge_loss(xb[:, 0], yb), kl.lovasz_hinge_loss(xb, yb),
                               **PEER)


def test_keras_dice_tversky() -> None:
    keras = pytest.importorskip("keras")
    g = torch.Generator().manual_seed(15)
    p = torch.rand(3, 5, 4, generator=g)
    y = (torch.rand(3, 5, 4, generator=g) > 0.5).float()
    eps = keras.backend.epsilon()
    kw = dict(mode="binary", from_logits=False, smooth_nr=0.0, smooth_dr=eps)
    k = keras.losses.Dice(axis=(1, 2))(y, p)  # per-sample Dice, mean over the batch
    torch.testing.assert_close(LF.dice_loss(p, y, **kw), torch.as_tensor(k).float(), **PEER)
    # Keras's code weighs Σ(1-p)·y (false negatives) by alpha and Σ p·(1-y) by beta: swapped names
    k = keras.losses.Tversky(alpha=0.3, beta=0.7, axis=(1, 2))(y, p)
    torch.testing.assert_close(LF.tversky_loss(p, y, alpha=0.7, beta=0.3, **kw), torch.as_tensor(k).float(),
                               **PEER)


def test_optax_dice() -> None:
    optax = pytest.importorskip("optax")
    jnp = pytest.importorskip("jax.numpy")
    g = torch.Generator().manual_seed(16)
    x = torch.randn(2, 3, 4, 5, generator=g)
    y = torch.randint(0, 3, (2, 4, 5), generator=g)
    onehot = F.one_hot(y, 3).float()
    o = optax.losses.dice_loss(jnp.asarray(x.movedim(1, -1).numpy()), jnp.asarray(onehot.numpy()), smooth=0.5,
                               alpha=0.3, beta=0.7)  # per image: mean over classes
    ours = LF.tversky_loss(x, y, mode="multiclass", alpha=0.3, beta=0.7, smooth_nr=0.5, smooth_dr=0.5,
                           reduction="none").mean(1)
    torch.testing.assert_close(ours, torch.tensor(o.tolist()).float(), **PEER)
    o = optax.losses.dice_loss(jnp.asarray(x.movedim(1, -1).numpy()), jnp.asarray(onehot.numpy()), smooth=0.5)
    ours = LF.dice_loss(x, y, mode="multiclass", smooth_nr=1.0, smooth_dr=1.0, reduction="none").mean(1)
    torch.testing.assert_close(ours, torch.tensor(o.tolist()).float(), **PEER)


# --------------------------------------------------------------------------- fused multiclass path


def _composed(monkeypatch: pytest.MonkeyPatch, fn, *args, **kw):
    with monkeypatch.context() as m:
        m.setattr(seg, "FUSED", False)
        return _value_and_grad(fn, *args, **kw)


FUSED_CASES = [
    dict(),
    dict(reduce_over="batch", include_background=False),
    dict(ignore_index=255),
    dict(ignore_index=0, reduce_over="batch"),  # an ignored value that is also a class id
    dict(from_logits=False),
    dict(from_logits=False, ignore_index=-100, include_background=False),
    dict(target="onehot"),
    dict(target="soft", reduce_over="batch"),
    dict(target="soft", from_logits=False),
]


@pytest.mark.usefixtures("fused_backend")   # the C kernels (index targets) and PyTorch's
@pytest.mark.parametrize("kw", FUSED_CASES,
                         ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_fused_path_equals_composed_and_reference(monkeypatch: pytest.MonkeyPatch, kw: dict) -> None:
    """The fused softmax + region sums give the composed path's values and gradients (every
    option; reduction="none" under a non-uniform upstream gradient) and the float64 reference's."""
    kw = dict(kw)
    target = kw.pop("target", "index")
    ignore = kw.get("ignore_index")
    x, y = _inputs("multiclass", shape=(2, 4, 3, 5), seed=20, ignore=ignore)
    if not kw.get("from_logits", True):
        x = torch.softmax(x, 1)
    if target == "onehot":
        y = F.one_hot(y, 4).movedim(-1, 1).double()
    elif target == "soft":
        y = torch.softmax(torch.randn(x.shape, generator=torch.Generator().manual_seed(21),
                                      dtype=torch.float64), 1)
    from_logits = kw.get("from_logits", True)
    ref_kw = dict(mode="multiclass", include_background=kw.get("include_background", True),
                  batch=kw.get("reduce_over") == "batch", ignore_index=ignore)
    for fn, rfn, extra in ((LF.dice_loss, ref.dice, dict(from_logits=from_logits)),
                           (LF.jaccard_loss, ref.jaccard, {}),
                           (LF.tversky_loss, ref.tversky, dict(alpha=0.3, beta=0.7))):
        mine = dict(kw, **extra)
        v, g = _value_and_grad(fn, x, y, mode="multiclass", reduction="none", **mine)
        cv, cg = _composed(monkeypatch, fn, x, y, mode="multiclass", reduction="none", **mine)
        torch.testing.assert_close(v, cv, **TOL)
        torch.testing.assert_close(g, cg, **TOL)
        if from_logits or "from_logits" in extra:  # the Jaccard / Tversky references take logits
            rv, rg = _value_and_grad(rfn, x, y, **ref_kw, **extra)
            torch.testing.assert_close(v, rv, **TOL)
            torch.testing.assert_close(g, rg, **TOL)


@pytest.mark.usefixtures("fused_backend")
@pytest.mark.parametrize("target", ["index", "onehot"])
def test_fused_path_half_extreme_double_backward_and_compile(monkeypatch: pytest.MonkeyPatch,
                                                              target: str) -> None:
    g = torch.Generator().manual_seed(22)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 4, 4), generator=g)
    y[0, 0, 0] = 255
    kw: dict = dict(mode="multiclass", ignore_index=255)
    if target == "onehot":
        y, kw = F.one_hot(y.clamp_max(2), 3).movedim(-1, 1).double(), dict(mode="multiclass")
    # half precision: computed in float32, close to float64 (value and gradient)
    for dt in (torch.float16, torch.bfloat16):
        xh = x.to(dt).requires_grad_(True)
        yh = y.to(dt) if y.is_floating_point() else y
        out = LF.dice_loss(xh, yh, reduction="none", **kw)
        assert out.dtype == torch.float32
        (out * torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)).sum().backward()
        v, gr = _value_and_grad(LF.dice_loss, xh.detach().double(), y, reduction="none", **kw)
        torch.testing.assert_close(out.double(), v, rtol=0, atol=1e-2)
        torch.testing.assert_close(xh.grad.double(), gr, rtol=0, atol=1e-2)
    # extreme logits: finite, and equal to the composed path
    xe = x * 1e4
    v, gr = _value_and_grad(LF.tversky_loss, xe, y, reduction="none", alpha=0.3, beta=0.7, **kw)
    cv, cg = _composed(monkeypatch, LF.tversky_loss, xe, y, reduction="none", alpha=0.3, beta=0.7, **kw)
    assert torch.isfinite(v).all() and torch.isfinite(gr).all()
    torch.testing.assert_close(v, cv, **TOL)
    torch.testing.assert_close(gr, cg, **TOL)
    # double backward of the fused Function
    xs = x[:1, :, :2].clone().requires_grad_(True)
    ys = y[:1, :, :2] if y.is_floating_point() else y[:1, :2]
    assert torch.autograd.gradgradcheck(lambda a: LF.dice_loss(a, ys, reduction="none", **kw), (xs,))
    # ... whose differentiable first derivative is the plain one
    (plain,) = torch.autograd.grad(LF.dice_loss(xs, ys, **kw), xs)
    (graph,) = torch.autograd.grad(LF.dice_loss(xs, ys, **kw), xs, create_graph=True)
    torch.testing.assert_close(graph, plain, **TOL)
    # torch.compile traces the fused path in one graph
    fn = torch.compile(lambda a, b: LF.dice_loss(a, b, **kw), backend="eager", fullgraph=True)
    xc = x.clone().requires_grad_(True)
    fn(xc, y).backward()
    xe = x.clone().requires_grad_(True)
    LF.dice_loss(xe, y, **kw).backward()
    torch.testing.assert_close(xc.grad, xe.grad, **TOL)


@pytest.mark.usefixtures("fused_backend")
@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 3, 0)])
def test_empty_batch_or_image_is_zero_with_zero_gradient(shape: tuple[int, ...]) -> None:
    """No images (N = 0) or no pixels: "mean" over nothing is 0 (empty="zero"), or NaN on request;
    the fused path and the composed one agree (PITFALLS 6)."""
    y = torch.zeros(shape[:1] + shape[2:], dtype=torch.long)
    for target in (y, F.one_hot(y, 3).movedim(-1, 1).double()):
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        out = LF.dice_loss(x, target, mode="multiclass")
        out.backward()
        assert out.item() == 0.0 and torch.count_nonzero(x.grad) == 0
    x = torch.randn(shape, dtype=torch.float64)
    nan = LF.dice_loss(x, y, mode="multiclass", empty="nan")
    assert torch.isnan(nan) if shape[0] == 0 else nan.item() == 0.0  # (2, 3, 0): 6 losses of 0


def test_soft_target_that_requires_grad_gets_its_gradient() -> None:
    """A soft target in the graph (e.g. a teacher's probabilities) takes the composed path, so its
    gradient is there too; the input's gradient is the fused path's."""
    x, _ = _inputs("multiclass", seed=23)
    soft = torch.softmax(torch.randn(x.shape, generator=torch.Generator().manual_seed(24),
                                     dtype=torch.float64), 1).requires_grad_(True)
    xg = x.clone().requires_grad_(True)
    LF.dice_loss(xg, soft, mode="multiclass").backward()
    p = torch.softmax(x, 1)  # the float64 reference, differentiated with respect to the target
    yg = soft.detach().clone().requires_grad_(True)
    ref.dice(p, yg, "multiclass", from_logits=False).mean().backward()
    torch.testing.assert_close(soft.grad, yg.grad, **TOL)
    xd = x.clone().requires_grad_(True)
    LF.dice_loss(xd, soft.detach(), mode="multiclass").backward()
    torch.testing.assert_close(xg.grad, xd.grad, **TOL)


@pytest.mark.parametrize("target", ["index", "onehot"])
def test_torch_func_transforms_take_the_composed_path(target: str) -> None:
    """vmap / grad / jvp cannot see through the fused autograd.Function, so under them the
    region losses take the composed path and agree with a loop over the batch."""
    g = torch.Generator().manual_seed(25)
    x = torch.randn(3, 2, 3, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 4), generator=g)
    t = y if target == "index" else F.one_hot(y, 3).movedim(-1, 1).double()

    def f(a: torch.Tensor) -> torch.Tensor:
        return LF.tversky_loss(a, t, mode="multiclass", alpha=0.3, beta=0.7)

    grads = torch.stack([torch.autograd.grad(f(a.requires_grad_(True)), a)[0] for a in x.clone()])
    torch.testing.assert_close(torch.func.vmap(f)(x), torch.stack([f(a) for a in x]), **TOL)
    torch.testing.assert_close(torch.func.vmap(torch.func.grad(f))(x), grads, **TOL)
    _, tangent = torch.func.jvp(f, (x[0],), (torch.ones_like(x[0]),))
    torch.testing.assert_close(tangent, grads[0].sum(), **TOL)
