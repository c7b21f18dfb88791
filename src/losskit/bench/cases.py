"""The fixed benchmark presets of ``losskit bench``: one :class:`Case` per row group.

Each case builds its inputs (seeded, so a child process that measures peak memory rebuilds the
same ones) and its candidates: PyTorch's own loss or the yardstick, each installed peer, and
losskit. A peer that is not installed is an :class:`Unavailable` candidate and shows up as a
row saying so. Shapes are those of the acceptance rows of issue 9 and issue 3's linear
cross-entropy row; ``quick=True`` gives tiny shapes of the same structure (for tests).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

import losskit.functional as LF

__all__ = ["CASES", "Built", "Case", "Goal", "NotTimed", "Unavailable", "peer"]


@dataclass(frozen=True)
class Unavailable:
    """A candidate that cannot run here (a peer that is not installed, a layout it lacks)."""

    reason: str


@dataclass(frozen=True)
class NotTimed:
    """A candidate too large to time here: only its memory is measured, in the peak process,
    under a cap (``cap_gib`` above what that process has mapped); an allocation refused by the
    cap is reported as what the candidate asks for (a lower bound on what it needs)."""

    fn: Callable[..., Tensor]
    cap_gib: float = 4.0


Candidate = Callable[..., Tensor] | Unavailable | NotTimed


@dataclass
class Built:
    candidates: dict[str, Candidate]
    inputs: tuple[Tensor, ...]
    grad: tuple[int, ...] = (0,)
    # the label ratios are taken against; default: the first candidate
    baseline: str | None = None


@dataclass(frozen=True)
class Goal:
    """An acceptance target: ``ours``'s ``metric`` over ``other``'s (or over the first input's
    bytes for ``unit="input0"``, or in ms / MiB for ``unit="absolute"``) at most ``limit``."""

    text: str
    ours: str
    metric: Literal["time", "saved", "peak"]
    limit: float
    other: str | None = None
    unit: Literal["ratio", "input0", "absolute"] = "ratio"


@dataclass(frozen=True)
class Case:
    id: str
    losses: tuple[str, ...]
    build: Callable[[bool, torch.device], Built]
    repeats: int = 5
    warmup: int = 1
    gpu: bool = False
    goals: tuple[Goal, ...] = ()
    note: str = ""
    tags: tuple[str, ...] = field(default=())


def peer(module: str) -> ModuleType | None:
    """The peer module, or ``None`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _to(device: torch.device, *ts: Tensor, dtype: torch.dtype | None = None) -> tuple[Tensor, ...]:
    return tuple(t.to(device=device, dtype=dtype if (dtype and t.is_floating_point()) else t.dtype)
                 for t in ts)


LK = "losskit"
MSE = "F.mse_loss (yardstick)"
BCE = "F.binary_cross_entropy_with_logits"

# --------------------------------------------------------------------------- sigmoid focal


def torchvision_formula(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """torchvision.ops.sigmoid_focal_loss written in PyTorch ops, with reduction="mean"."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * loss).mean()


def _focal(n: int, c: int, dtype: torch.dtype | None = None) -> Callable[[bool, torch.device], Built]:
    def build(quick: bool, device: torch.device) -> Built:
        nn_, cc = (256, 8) if quick else (n, c)
        g = _gen()
        x = torch.randn(nn_, cc, generator=g)
        t = (torch.rand(nn_, cc, generator=g) < 0.05).float()
        x, t = _to(device, x, t, dtype=dtype)
        tv = peer("torchvision.ops")
        cands: dict[str, Candidate] = {
            BCE: lambda z, y: F.binary_cross_entropy_with_logits(z, y),
            "torchvision.ops.sigmoid_focal_loss": (
                (lambda z, y: tv.sigmoid_focal_loss(z, y, reduction="mean")) if tv is not None
                else Unavailable("not installed: torchvision")),
            "torchvision formula (PyTorch ops)": torchvision_formula,
            f"{LK} sigmoid_focal_loss": lambda z, y: LF.sigmoid_focal_loss(z, y),
        }
        return Built(cands, (x, t))

    return build


_FOCAL_GOALS = (
    Goal("time ≤ 1.3× BCE-with-logits", f"{LK} sigmoid_focal_loss", "time", 1.3, BCE),
    Goal("saves nothing beyond the inputs (≤ 1 KiB)", f"{LK} sigmoid_focal_loss", "saved", 2**-10,
         unit="absolute"),
)

# --------------------------------------------------------------------------- elementwise at 1e6

N_ELEM = 1_000_000
# A forward+backward at 1e6 elements takes about a millisecond: enough repeats for a median that
# a few scheduling hiccups of a shared 2-core machine do not move.
_ELEMENTWISE_REPEATS = 25


def _elementwise(
    loss: str,
    fn: Callable[..., Tensor],
    data: str,
    *,
    native: tuple[str, Callable[..., Tensor]] | None = None,
    grad: tuple[int, ...] = (0,),
) -> Callable[[bool, torch.device], Built]:
    """1e6 elements; ``data`` picks the inputs: ``"real"`` (x, y ~ N(0, 1)), ``"positive"``
    (exp of those), ``"pm1"`` / ``"01"`` (labels), ``"counts"`` (Poisson), ``"prob"`` (x a
    probability), ``"pair"`` (two score tensors)."""

    def build(quick: bool, device: torch.device) -> Built:
        n = 1000 if quick else N_ELEM
        g = _gen()
        x = torch.randn(n, generator=g)
        y = torch.randn(n, generator=g)
        if data == "positive":
            x, y = x.exp(), y.exp()
        elif data == "pm1":
            y = torch.where(y > 0, 1.0, -1.0)
        elif data == "01":
            y = (y > 1.0).float()
        elif data == "counts":
            y = torch.poisson(torch.full((n,), 3.0), generator=g)
        elif data == "prob":
            x = torch.sigmoid(x).clamp(1e-3, 1 - 1e-3)
            y = (y > 0).float()
        x, y = _to(device, x, y)
        cands: dict[str, Candidate] = {}
        if native is not None:
            cands[native[0]] = native[1]
        else:
            cands[MSE] = lambda a, b: F.mse_loss(a, b)
        cands[f"{LK} {loss}"] = fn
        return Built(cands, (x, y), grad=grad)

    return build


def _class_elementwise(loss: str, fn: Callable[..., Tensor]) -> Callable[[bool, torch.device], Built]:
    """Losses over class logits at 15625 × 64 = 1e6 logits, with ``F.mse_loss`` on the same
    number of elements as the yardstick and ``F.cross_entropy`` for reference."""

    def build(quick: bool, device: torch.device) -> Built:
        n, c = (50, 20) if quick else (15625, 64)
        g = _gen()
        x = torch.randn(n, c, generator=g)
        t = torch.randn(n, c, generator=g)
        y = torch.randint(0, c, (n,), generator=g)
        x, t, y = _to(device, x, t, y)
        cands: dict[str, Candidate] = {
            MSE: lambda a, b, k: F.mse_loss(a, b),
            "F.cross_entropy": lambda a, b, k: F.cross_entropy(a, k),
            f"{LK} {loss}": lambda a, b, k: fn(a, k),
        }
        return Built(cands, (x, t, y))

    return build


def _elementwise_cases() -> list[Case]:
    def yard(name: str, loss: str, fn: Callable[..., Tensor], data: str = "real",
             grad: tuple[int, ...] = (0,)) -> Case:
        return Case(f"{name} 1e6", (loss,), _elementwise(name, fn, data, grad=grad),
                    repeats=_ELEMENTWISE_REPEATS, tags=("elementwise",),
                    goals=(Goal("time ≤ 1.5× mse_loss", f"{LK} {name}", "time", 1.5, MSE),))

    out = [
        yard("log_cosh", "log_cosh", lambda a, b: LF.log_cosh_loss(a, b)),
        yard("pseudo_huber", "pseudo_huber", lambda a, b: LF.pseudo_huber_loss(a, b)),
        yard("general_robust", "general_robust", lambda a, b: LF.general_robust_loss(a, b, alpha=0.5)),
        yard("quantile", "quantile", lambda a, b: LF.quantile_loss(a, b, quantile=0.9)),
        yard("mape", "mape", lambda a, b: LF.mape_loss(a, b), "positive"),
        yard("smape", "smape", lambda a, b: LF.smape_loss(a, b)),
        yard("msle", "msle", lambda a, b: LF.msle_loss(a, b), "positive"),
        yard("tweedie_deviance", "tweedie_deviance",
             lambda a, b: LF.tweedie_deviance_loss(a, b, power=1.5), "positive"),
        yard("hinge", "hinge", lambda a, b: LF.hinge_loss(a, b), "pm1"),
        yard("squared_hinge", "squared_hinge", lambda a, b: LF.squared_hinge_loss(a, b), "pm1"),
        yard("asymmetric", "asymmetric", lambda a, b: LF.asymmetric_loss(a, b), "01"),
    ]
    # the focal loss's own goal is against BCE-with-logits at 131072×80 (above); at 1e6 elements
    # it is shown beside mse_loss for comparison with the other losses, without a goal
    out.append(Case("sigmoid_focal 1e6", ("sigmoid_focal",),
                    _elementwise("sigmoid_focal", lambda a, b: LF.sigmoid_focal_loss(a, b), "01"),
                    repeats=_ELEMENTWISE_REPEATS, tags=("elementwise",)))
    for kind in ("minimax", "lsgan", "hinge", "wgan"):
        out.append(yard(f"gan_discriminator kind={kind}", "gan_discriminator",
                        lambda a, b, k=kind: LF.gan_discriminator_loss(a, b, kind=k), grad=(0, 1)))
    for kind in ("non_saturating", "minimax", "lsgan", "hinge", "wgan"):
        out.append(yard(f"gan_generator kind={kind}", "gan_generator",
                        lambda a, b, k=kind: LF.gan_generator_loss(a, kind=k)))
    for name, fn in (("poly1_cross_entropy", LF.poly1_cross_entropy),
                     ("softmax_focal", LF.softmax_focal_loss)):
        out.append(Case(f"{name} 15625x64", (name,), _class_elementwise(name, fn),
                        repeats=_ELEMENTWISE_REPEATS, tags=("elementwise",),
                        goals=(Goal("time ≤ 1.5× mse_loss", f"{LK} {name}", "time", 1.5, MSE),)))
    return out


def _native_cases() -> list[Case]:
    """Losses PyTorch has a kernel for, against that kernel."""

    def nat(name: str, loss: str, ours: Callable[..., Tensor], theirs: tuple[str, Callable[..., Tensor]],
            data: str = "real", grad: tuple[int, ...] = (0,)) -> Case:
        return Case(f"{name} 1e6", (loss,), _elementwise(name, ours, data, native=theirs, grad=grad),
                    repeats=_ELEMENTWISE_REPEATS, tags=("elementwise", "native"))

    return [
        nat("mse", "mse", LF.mse_loss, ("F.mse_loss", F.mse_loss)),
        nat("l1", "l1", LF.l1_loss, ("F.l1_loss", F.l1_loss)),
        nat("huber", "huber", lambda a, b: LF.huber_loss(a, b, delta=0.5),
            ("F.huber_loss", lambda a, b: F.huber_loss(a, b, delta=0.5))),
        nat("smooth_l1", "smooth_l1", lambda a, b: LF.smooth_l1_loss(a, b, beta=0.5),
            ("F.smooth_l1_loss", lambda a, b: F.smooth_l1_loss(a, b, beta=0.5))),
        nat("poisson_nll", "poisson_nll", LF.poisson_nll_loss, ("F.poisson_nll_loss", F.poisson_nll_loss),
            "counts"),
        nat("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits",
            LF.binary_cross_entropy_with_logits, (BCE, F.binary_cross_entropy_with_logits), "01"),
        nat("binary_cross_entropy", "binary_cross_entropy", LF.binary_cross_entropy,
            ("F.binary_cross_entropy", F.binary_cross_entropy), "prob"),
        nat("soft_margin", "soft_margin", LF.soft_margin_loss, ("F.soft_margin_loss", F.soft_margin_loss),
            "pm1"),
        nat("hinge_embedding", "hinge_embedding", LF.hinge_embedding_loss,
            ("F.hinge_embedding_loss", F.hinge_embedding_loss), "pm1"),
        nat("kl_div", "kl_div", lambda a, b: LF.kl_div(a, b, reduction="batchmean"),
            ("F.kl_div", lambda a, b: F.kl_div(a, b, reduction="batchmean")), "prob"),
        Case("gaussian_nll 1e6", ("gaussian_nll",), _gaussian_nll, tags=("elementwise", "native")),
        Case("margin_ranking 1e6", ("margin_ranking",), _margin_ranking, tags=("elementwise", "native")),
    ]


def _gaussian_nll(quick: bool, device: torch.device) -> Built:
    n = 1000 if quick else N_ELEM
    g = _gen()
    x, y = torch.randn(n, generator=g), torch.randn(n, generator=g)
    var = torch.rand(n, generator=g) + 0.1
    x, y, var = _to(device, x, y, var)
    return Built({"F.gaussian_nll_loss": lambda a, b, v: F.gaussian_nll_loss(a, b, v),
                  f"{LK} gaussian_nll": lambda a, b, v: LF.gaussian_nll_loss(a, b, v)},
                 (x, y, var), grad=(0, 2))


def _margin_ranking(quick: bool, device: torch.device) -> Built:
    n = 1000 if quick else N_ELEM
    g = _gen()
    a, b = torch.randn(n, generator=g), torch.randn(n, generator=g)
    y = torch.where(torch.randn(n, generator=g) > 0, 1.0, -1.0)
    a, b, y = _to(device, a, b, y)
    return Built({"F.margin_ranking_loss": lambda p, q, t: F.margin_ranking_loss(p, q, t, margin=0.1),
                  f"{LK} margin_ranking": lambda p, q, t: LF.margin_ranking_loss(p, q, t, margin=0.1)},
                 (a, b, y), grad=(0, 1))


# --------------------------------------------------------------------------- cross-entropy


def _cross_entropy(n: int, v: int, dtype: torch.dtype | None = None) -> Callable[[bool, torch.device], Built]:
    def build(quick: bool, device: torch.device) -> Built:
        nn_, vv = (16, 64) if quick else (n, v)
        g = _gen()
        x = torch.randn(nn_, vv, generator=g)
        y = torch.randint(0, vv, (nn_,), generator=g)
        x, y = _to(device, x, y, dtype=dtype)
        return Built({"F.cross_entropy": lambda z, k: F.cross_entropy(z, k),
                      f"{LK} cross_entropy": lambda z, k: LF.cross_entropy(z, k)}, (x, y))

    return build


Builder = Callable[[bool, torch.device], Built]


def _linear_ce(n: int, d: int, v: int, dtype: torch.dtype | None = None) -> Builder:
    def build(quick: bool, device: torch.device) -> Built:
        nn_, dd, vv = (64, 16, 256) if quick else (n, d, v)
        g = _gen()
        h = torch.randn(nn_, dd, generator=g) * 0.05
        w = torch.randn(vv, dd, generator=g) * 0.05
        y = torch.randint(0, vv, (nn_,), generator=g)
        h, w, y = _to(device, h, w, y, dtype=dtype)
        torch_lce = getattr(F, "linear_cross_entropy", None)
        cands: dict[str, Candidate] = {
            "materialised F.cross_entropy(h @ W.T)": lambda a, b, k: F.cross_entropy(a @ b.T, k),
            "F.linear_cross_entropy": (
                (lambda a, b, k: torch_lce(a, b, k)) if torch_lce is not None
                else Unavailable(f"not in torch {torch.__version__}")),
            f"{LK} linear_cross_entropy": lambda a, b, k: LF.linear_cross_entropy(a, b, k),
        }
        return Built(cands, (h, w, y), grad=(0, 1))

    return build


# --------------------------------------------------------------------------- contrastive / metric

PML_NTXENT = "pytorch-metric-learning NTXentLoss"


def _pml_ntxent(temperature: float) -> Candidate:
    losses = peer("pytorch_metric_learning.losses")
    if losses is None:
        return Unavailable("not installed: pytorch-metric-learning")
    loss = losses.NTXentLoss(temperature=temperature)

    def fn(z1: Tensor, z2: Tensor) -> Tensor:
        b = z1.shape[0]
        labels = torch.arange(b, device=z1.device).repeat(2)
        return loss(torch.cat([z1, z2]), labels)

    return fn


def _nt_xent(b: int, memory: bool) -> Callable[[bool, torch.device], Built]:
    def build(quick: bool, device: torch.device) -> Built:
        bb, d = (16, 8) if quick else (b, 128)
        g = _gen()
        z1, z2 = _to(device, torch.randn(bb, d, generator=g), torch.randn(bb, d, generator=g))
        pml = _pml_ntxent(0.1)
        cands: dict[str, Candidate] = {
            PML_NTXENT: NotTimed(pml) if memory and not isinstance(pml, Unavailable) else pml,
            f"{LK} nt_xent_loss": lambda a, c: LF.nt_xent_loss(a, c, temperature=0.1),
        }
        if memory:
            cands[f"{LK} nt_xent_loss chunk_size=256"] = (
                lambda a, c: LF.nt_xent_loss(a, c, temperature=0.1, chunk_size=256))
        return Built(cands, (z1, z2), grad=(0, 1),
                     baseline=f"{LK} nt_xent_loss" if memory else None)

    return build


PML_HARD = "PML TripletMarginLoss + BatchHardMiner"


def _batch_hard(b: int) -> Callable[[bool, torch.device], Built]:
    def build(quick: bool, device: torch.device) -> Built:
        bb, d = (16, 8) if quick else (b, 128)
        g = _gen()
        x = torch.randn(bb, d, generator=g).to(device)
        labels = (torch.arange(bb) // 4).to(device)
        cands: dict[str, Candidate] = {}
        pml = peer("pytorch_metric_learning")
        if pml is None:
            cands[PML_HARD] = Unavailable("not installed: pytorch-metric-learning")
        else:
            from pytorch_metric_learning.distances import LpDistance
            from pytorch_metric_learning.losses import TripletMarginLoss
            from pytorch_metric_learning.miners import BatchHardMiner
            from pytorch_metric_learning.reducers import MeanReducer

            dist = LpDistance(normalize_embeddings=False)
            miner = BatchHardMiner(distance=dist)
            loss = TripletMarginLoss(margin=0.2, distance=dist, reducer=MeanReducer())
            cands[PML_HARD] = lambda e, y: loss(e, y, miner(e, y))
        cands[f"{LK} batch_hard_triplet_loss"] = lambda e, y: LF.batch_hard_triplet_loss(e, y, margin=0.2)
        return Built(cands, (x, labels))

    return build


# --------------------------------------------------------------------------- segmentation


def _dice(shape: tuple[int, ...], quick_shape: tuple[int, ...]) -> Callable[[bool, torch.device], Built]:
    def build(quick: bool, device: torch.device) -> Built:
        s = quick_shape if quick else shape
        g = _gen()
        x = torch.randn(s, generator=g)
        y = torch.randint(0, s[1], s[:1] + s[2:], generator=g)
        x, y = _to(device, x, y)
        cands: dict[str, Candidate] = {}
        monai = peer("monai.losses")
        if monai is None:
            cands["MONAI DiceLoss"] = Unavailable("not installed: monai")
        else:
            mon = monai.DiceLoss(softmax=True, to_onehot_y=True)
            cands["MONAI DiceLoss"] = lambda z, k: mon(z, k.unsqueeze(1))
        kornia = peer("kornia.losses")
        if kornia is None:
            cands["kornia dice_loss"] = Unavailable("not installed: kornia")
        elif len(s) != 4:
            cands["kornia dice_loss"] = Unavailable("not applicable: kornia's dice_loss takes (B, C, H, W)")
        else:
            cands["kornia dice_loss"] = lambda z, k: kornia.dice_loss(z, k, average="macro")
        cands[f"{LK} dice_loss"] = lambda z, k: LF.dice_loss(z, k, mode="multiclass")
        return Built(cands, (x, y))

    return build


# --------------------------------------------------------------------------- the presets


def _cases() -> list[Case]:
    ours_ce = f"{LK} cross_entropy"
    ours_lce = f"{LK} linear_cross_entropy"
    mat = "materialised F.cross_entropy(h @ W.T)"
    ours_nt = f"{LK} nt_xent_loss"
    ours_bh = f"{LK} batch_hard_triplet_loss"
    ours_dice = f"{LK} dice_loss"
    cases = [
        Case("sigmoid_focal 131072x80", ("sigmoid_focal",), _focal(131072, 80), goals=_FOCAL_GOALS),
        *_elementwise_cases(),
        *_native_cases(),
        Case("cross_entropy 2048x32768", ("cross_entropy",), _cross_entropy(2048, 32768), goals=(
            Goal("time ≤ 1.0× F.cross_entropy", ours_ce, "time", 1.0, "F.cross_entropy"),
            Goal("saved ≤ one logits-sized tensor", ours_ce, "saved", 1.0, unit="input0"),
        )),
        Case("linear_cross_entropy N=4096 D=1024 V=32768", ("linear_cross_entropy",),
             _linear_ce(4096, 1024, 32768), repeats=3, goals=(
                 Goal("peak ≤ 20% of materialised", ours_lce, "peak", 0.20, mat),
                 Goal("time ≤ 1.0× materialised", ours_lce, "time", 1.0, mat),
             ), note="peak includes the gradients of h and W (144 MiB at this shape)"),
        Case("nt_xent B=256 D=128", ("nt_xent",), _nt_xent(256, memory=False), repeats=3, goals=(
            Goal("≥ 10× faster than PML", ours_nt, "time", 0.1, PML_NTXENT),
        )),
        Case("nt_xent memory B=1024 D=128", ("nt_xent",), _nt_xent(1024, memory=True), repeats=3, goals=(
            Goal("peak within 5% of what PML asks for", ours_nt, "peak", 0.05, PML_NTXENT),
        ), note="PML is not timed at B=1024; its memory is the allocation it asks for under a 4 GiB cap"),
        Case("batch_hard_triplet B=256 D=128", ("batch_hard_triplet",), _batch_hard(256), goals=(
            Goal("time ≤ 1.0× PML", ours_bh, "time", 1.0, PML_HARD),)),
        Case("batch_hard_triplet B=1024 D=128", ("batch_hard_triplet",), _batch_hard(1024), goals=(
            Goal("time ≤ 1.0× PML", ours_bh, "time", 1.0, PML_HARD),)),
        Case("dice multiclass 8x4x128x128", ("dice",), _dice((8, 4, 128, 128), (2, 3, 8, 8)), goals=(
            Goal("time ≤ 1.0× MONAI", ours_dice, "time", 1.0, "MONAI DiceLoss"),
            Goal("time ≤ 1.0× kornia", ours_dice, "time", 1.0, "kornia dice_loss"),
        )),
        Case("dice multiclass 2x4x64x64x64", ("dice",), _dice((2, 4, 64, 64, 64), (1, 3, 4, 4, 4)), goals=(
            Goal("time ≤ 1.0× MONAI", ours_dice, "time", 1.0, "MONAI DiceLoss"),
        )),
        # GPU rows: measured only on a CUDA device
        Case("GPU cross_entropy 8192x131072 bf16", ("cross_entropy",),
             _cross_entropy(8192, 131072, torch.bfloat16), gpu=True, repeats=10, warmup=3, goals=(
                 Goal("≤ 2.2 ms forward+backward (H100)", ours_ce, "time", 2.2, unit="absolute"),)),
        Case("GPU linear_cross_entropy N=8192 D=4096 V=131072 bf16", ("linear_cross_entropy",),
             _linear_ce(8192, 4096, 131072, torch.bfloat16), gpu=True, repeats=5, warmup=2, goals=(
                 Goal("peak ≤ 15% of materialised", ours_lce, "peak", 0.15, mat),
                 Goal("time ≤ 1.1× materialised", ours_lce, "time", 1.1, mat),
             )),
        Case("GPU sigmoid_focal 131072x80", ("sigmoid_focal",), _focal(131072, 80), gpu=True,
             repeats=10, warmup=3, goals=_FOCAL_GOALS[:1]),
    ]
    return cases


CASES: tuple[Case, ...] = tuple(_cases())


def case(case_id: str) -> Case:
    """The case with this id."""
    for c in CASES:
        if c.id == case_id:
            return c
    raise KeyError(case_id)


def describe(c: Case) -> dict[str, Any]:
    return {"case": c.id, "losses": list(c.losses), "gpu": c.gpu, "repeats": c.repeats}
