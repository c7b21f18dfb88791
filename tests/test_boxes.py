"""Box losses: float64 references with torchvision's eps placement (values and gradients), box
formats, degenerate / inverted / disjoint boxes (PITFALLS 19)."""

from __future__ import annotations

import pytest
import torch

import losskit.functional as LF
from losskit import LossInputError
from reference import boxes_ref as ref

TOL = dict(rtol=1e-10, atol=1e-10)
KINDS = ("iou", "giou", "diou", "ciou", "eiou")
FNS = {k: getattr(LF, f"{k}_loss") for k in KINDS}


def _boxes(n: int = 8, seed: int = 0, disjoint: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 4
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 3 + 0.2
    xyg = xy + torch.randn(n, 2, generator=g, dtype=torch.float64) + (10.0 if disjoint else 0.0)
    whg = torch.rand(n, 2, generator=g, dtype=torch.float64) * 3 + 0.2
    return torch.cat((xy, xy + wh), 1), torch.cat((xyg, xyg + whg), 1)


def _vg(fn, p: torch.Tensor, g: torch.Tensor, **kw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p = p.detach().clone().requires_grad_(True)
    g = g.detach().clone().requires_grad_(True)
    out = fn(p, g, **kw)
    (out * torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype)).sum().backward()
    return out.detach(), p.grad, g.grad


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("disjoint", [False, True])
def test_matches_reference(kind: str, disjoint: bool) -> None:
    p, g = _boxes(disjoint=disjoint)
    mine = _vg(FNS[kind], p, g, box_format="xyxy", reduction="none")
    want = _vg(lambda a, b: ref.box_loss(a, b, kind), p, g)
    for a, b in zip(mine, want):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize(("alias", "kind"), [("generalized_box_iou_loss", "giou"),
                                              ("distance_box_iou_loss", "diou"),
                                              ("complete_box_iou_loss", "ciou")])
def test_torchvision_names(alias: str, kind: str) -> None:
    p, g = _boxes(seed=1)
    fn = getattr(LF, alias)
    torch.testing.assert_close(fn(p, g), ref.box_loss(p, g, kind), **TOL)  # default reduction 'none'
    torch.testing.assert_close(fn(p, g, reduction="sum", eps=1e-3), ref.box_loss(p, g, kind, eps=1e-3).sum(),
                               **TOL)


def test_torchvision_peer() -> None:
    try:
        from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss
    except Exception:  # torchvision absent, or its C extension does not load here
        pytest.skip("torchvision.ops not importable")
    p, g = (t.float() for t in _boxes(seed=2))
    for tv, ours in ((generalized_box_iou_loss, LF.giou_loss), (distance_box_iou_loss, LF.diou_loss),
                     (complete_box_iou_loss, LF.ciou_loss)):
        torch.testing.assert_close(ours(p, g, box_format="xyxy", reduction="none"), tv(p, g),
                                   rtol=1e-6, atol=1e-6)


def test_monai_giou_peer() -> None:
    monai_losses = pytest.importorskip("monai.losses")
    p, g = (t.float() for t in _boxes(seed=3))
    torch.testing.assert_close(LF.giou_loss(p, g, box_format="xyxy"), monai_losses.BoxGIoULoss()(p, g),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_identical_boxes_give_zero(kind: str) -> None:
    p, _ = _boxes(seed=4)
    out = FNS[kind](p, p.clone(), box_format="xyxy", reduction="none")
    torch.testing.assert_close(out, torch.zeros_like(out), atol=1e-6, rtol=0)


def test_disjoint_boxes_still_get_a_gradient() -> None:
    p, g = _boxes(seed=5, disjoint=True)
    for kind in ("giou", "diou", "ciou", "eiou"):
        _, gp, _ = _vg(FNS[kind], p, g, box_format="xyxy")
        assert (gp.abs().sum(1) > 0).all(), kind
    _, gp, _ = _vg(FNS["iou"], p, g, box_format="xyxy")
    assert (gp == 0).all()  # the plain IoU loss is flat there (why GIoU exists)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_degenerate_and_inverted_boxes_are_finite(kind: str, dtype: torch.dtype) -> None:
    p = torch.tensor([[1.0, 1.0, 1.0, 3.0],    # zero width
                      [1.0, 1.0, 3.0, 1.0],    # zero height (NaN gradient in torchvision's CIoU)
                      [2.0, 2.0, 2.0, 2.0],    # a point
                      [3.0, 1.0, 1.0, 3.0],    # inverted in x
                      [1.0, 3.0, 3.0, 1.0],    # inverted in y
                      [2.0, 2.0, 2.0, 2.0]], dtype=dtype)
    g = torch.tensor([[0.0, 0.0, 2.0, 2.0],
                      [0.0, 0.0, 2.0, 2.0],
                      [0.0, 0.0, 4.0, 4.0],
                      [0.0, 0.0, 2.0, 2.0],
                      [0.0, 0.0, 2.0, 0.0],    # zero-height target too
                      [2.0, 2.0, 2.0, 2.0]], dtype=dtype)  # point vs the same point
    out, gp, gg = _vg(FNS[kind], p, g, box_format="xyxy", reduction="none")
    assert torch.isfinite(out).all() and torch.isfinite(gp).all() and torch.isfinite(gg).all()
    if kind == "iou":  # inverted boxes are empty: IoU 0
        assert out[3] == 1.0 and out[4] == 1.0


def test_ciou_zero_height_matches_reference_value() -> None:
    p = torch.tensor([[0.0, 0.0, 2.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[0.0, 0.0, 1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(LF.ciou_loss(p, g, box_format="xyxy", reduction="none"),
                               ref.box_loss(p, g, "ciou"), **TOL)  # atan(2/0) = π/2 in both


@pytest.mark.parametrize("kind", KINDS)
def test_formats_agree(kind: str) -> None:
    p, g = _boxes(seed=6)

    def xywh(b: torch.Tensor) -> torch.Tensor:
        return torch.cat((b[:, :2], b[:, 2:] - b[:, :2]), 1)

    def cxcywh(b: torch.Tensor) -> torch.Tensor:
        return torch.cat(((b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]), 1)

    a = FNS[kind](p, g, box_format="xyxy", reduction="none")
    torch.testing.assert_close(FNS[kind](xywh(p), xywh(g), box_format="xywh", reduction="none"), a)
    torch.testing.assert_close(FNS[kind](cxcywh(p), cxcywh(g), box_format="cxcywh", reduction="none"), a)
    torch.testing.assert_close(ref.box_loss(cxcywh(p), cxcywh(g), kind, fmt="cxcywh"), a)


def test_half_is_computed_in_float32() -> None:
    p, g = _boxes(seed=7)
    out = LF.ciou_loss(p.half(), g.half(), box_format="xyxy")
    assert out.dtype == torch.float32
    want = ref.box_loss(p.half(), g.half(), "ciou").mean()
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise() -> None:
    p, g = _boxes()
    with pytest.raises(LossInputError, match="box_format"):
        LF.giou_loss(p, g, box_format="xyhw")
    with pytest.raises(TypeError):
        LF.giou_loss(p, g)  # box_format is required
    with pytest.raises(LossInputError, match=r"\(N, 4\)"):
        LF.giou_loss(p[:, :3], g[:, :3], box_format="xyxy")
    with pytest.raises(LossInputError, match="target"):
        LF.giou_loss(p, g[:3], box_format="xyxy")


def test_ciou_alpha_has_no_gradient() -> None:
    """The analytic gradient equals the one of DIoU + α·v with α a constant (paper, Eq. 11)."""
    p, g = _boxes(seed=8)
    _, gp, _ = _vg(LF.ciou_loss, p, g, box_format="xyxy", reduction="none")
    _, rp, _ = _vg(lambda a, b: ref.box_loss(a, b, "ciou"), p, g)
    torch.testing.assert_close(gp, rp, **TOL)
    pp = p.clone().requires_grad_(True)
    LF.ciou_loss(pp, g, box_format="xyxy", reduction="sum").backward()
    num = torch.autograd.functional.jacobian(
        lambda a: LF.ciou_loss(a, g, box_format="xyxy", reduction="sum"), p)
    torch.testing.assert_close(pp.grad, num)  # same autograd path; finite differences would differ
