"""Knowledge distillation: the temperature-scaled KL to a teacher (with the T² factor) mixed
with the hard-label cross-entropy (Hinton et al. 2015), per token for sequence models.

The KL is summed over the classes and averaged over the samples/tokens — the "batchmean"
convention, never a mean over the classes — and masked or ignored positions leave both terms
and the count.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_class_index,
    check_floating,
    check_logits_not_probabilities,
    check_number,
    check_option,
    check_same_shape,
    shape_str,
)
from losskit._core.module import LossModule
from losskit._core.reduction import REDUCTIONS, as_float32, reduce
from losskit._core.registry import Properties, Sample, register
from losskit.losses.divergence import kl_divergence_with_logits

__all__ = ["DistillationLoss", "DistillationTerms", "distillation_loss", "distillation_terms"]


class DistillationTerms(NamedTuple):
    """The distillation loss and its two parts, each reduced the same way:
    ``loss == alpha * kd + (1 - alpha) * ce``."""

    loss: Tensor
    kd: Tensor
    """T²·KL(teacher_T ‖ student_T), before the α weight."""
    ce: Tensor
    """Cross-entropy of the student (at T = 1) with the hard labels, before the 1 − α weight."""


def _distillation_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                         extreme: bool = False) -> Sample:
    scale = 1e4 if extreme else 1.0
    student = torch.randn(6, 5, generator=gen, dtype=torch.float64) * scale
    teacher = torch.randn(6, 5, generator=gen, dtype=torch.float64) * scale
    target = torch.randint(0, 5, (6,), generator=gen)
    return Sample((student.to(dtype), teacher.to(dtype), target))


def _per_token(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor | None,
    temperature: float,
    alpha: float,
    ignore_index: int,
    mask: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    check_floating("student_logits", student_logits)
    check_floating("teacher_logits", teacher_logits)
    check_same_shape(student_logits, teacher_logits, ("student_logits", "teacher_logits"))
    check_number("temperature", temperature, low=0, low_open=True)
    check_number("alpha", alpha, low=0, high=1)
    if student_logits.ndim < 1:
        raise LossInputError("student_logits must have a class dimension (last): (*, C).")
    check_logits_not_probabilities(student_logits, "student_logits")
    s, t = as_float32(student_logits, teacher_logits)
    kd = temperature**2 * kl_divergence_with_logits(s, t, temperature=temperature, reduction="none")
    keep = mask
    if target is None:
        if alpha != 1:
            raise LossInputError(
                f"target=None leaves only the teacher term, so alpha must be 1, got alpha={alpha}. "
                "Fix: pass the hard labels as target, or alpha=1.0 for pure distillation."
            )
        return kd, torch.zeros_like(kd), keep
    if target.shape != s.shape[:-1]:
        raise LossInputError(
            f"target has shape {shape_str(target)} but student_logits has shape {shape_str(s)}; "
            f"target must be {shape_str(s.shape[:-1])} (one class index per row; classes are the "
            "last dimension of the logits)."
        )
    check_class_index(target, s.shape[-1], ignore_index=ignore_index)
    valid = target != ignore_index
    index = torch.where(valid, target, 0).clamp(0, s.shape[-1] - 1)
    ce = -torch.log_softmax(s, -1).gather(-1, index[..., None])[..., 0]
    ce = torch.where(valid, ce, 0.0)
    if keep is None:
        return kd, ce, valid
    if isinstance(keep, Tensor) and keep.dtype == torch.bool:
        if keep.ndim == 1 and valid.ndim > 1 and keep.shape[0] == valid.shape[0]:
            keep = keep.reshape((-1,) + (1,) * (valid.ndim - 1))  # one flag per sequence
        if keep.shape == valid.shape or keep.shape == (valid.shape[0],) + (1,) * (valid.ndim - 1):
            keep = keep & valid
    # anything else goes to reduce() unchanged, which raises with the expected shapes
    return kd, ce, keep


@register(
    "distillation",
    family="distillation",
    tasks=("knowledge distillation", "classification", "language modelling"),
    input_kind="logits",
    target_kind="teacher logits and class indices",
    aliases=("distillation_loss", "knowledge_distillation", "kd"),
    properties=Properties(convex=True, smoothness="Cinf", robust=None, homogeneity=None,
                          units="nats per token"),
    formula=(r"\ell = \alpha T^2\,\mathrm{KL}\big(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T)\big)"
             r" + (1-\alpha)\,\mathrm{CE}(s, y)"),
    references=("Hinton, Vinyals & Dean 2015 (Distilling the Knowledge in a Neural Network)",),
    peers={"torch": "F.kl_div(log_target=True, reduction='batchmean') · T² + F.cross_entropy (by hand)"},
    sample=_distillation_sample,
)
def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor | None,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = -100,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Knowledge-distillation loss of Hinton et al.: per sample or token,
    :math:`\alpha T^2\,\mathrm{KL}(\mathrm{softmax}(t/T) \,\|\, \mathrm{softmax}(s/T)) +
    (1-\alpha)\,\mathrm{CE}(s, y)`.

    The KL (teacher ‖ student) is summed over the classes (the last dimension) and the
    per-token losses are averaged over the tokens: "batchmean" semantics, never a mean over
    the classes. The T² factor keeps the soft term's gradient on the scale of the hard term's
    as T changes. The CE uses the student at T = 1. Positions whose label is ``ignore_index``,
    or where ``mask`` is False, are left out of both terms and of the count. The teacher
    logits are not detached: compute them under ``torch.no_grad()`` (or pass ``.detach()``)
    unless the teacher is trained too. :func:`distillation_terms` returns the two terms as
    well, for logging.

    Args:
        student_logits: ``(*, C)`` logits of the student, classes last (``(N, C)`` or
            ``(B, T, V)`` for a sequence model).
        teacher_logits: ``(*, C)`` logits of the teacher, same shape.
        target: ``(*)`` hard class indices, or ``None`` for pure distillation (then
            ``alpha`` must be 1); required positionally, e.g. ``distillation_loss(s, t, None,
            alpha=1.0)``.
        temperature: T > 0 dividing both logits in the KL term.
        alpha: weight in [0, 1] of the distillation term; 1 − α weights the CE.
        ignore_index: label marking positions to leave out (padding).
        $reduction
        $sample_weight
        $mask
        $normalizer
        $empty

    Shape:
        ``(*, C)``, ``(*, C)``, ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``
        (0 at left-out positions).

    Examples:
        >>> import torch, losskit.functional as LF
        >>> s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
        >>> t = torch.tensor([[2.0, 0.0, -2.0], [0.0, 1.0, 1.0]])
        >>> kd = LF.distillation_loss(s, t, None, alpha=1.0, temperature=1.0)  # α=1, T=1: KL
        >>> bool(torch.isclose(kd, LF.kl_div(s.log_softmax(-1), t.softmax(-1), reduction="batchmean")))
        True
        >>> y = torch.tensor([0, -100])                                  # second row ignored
        >>> LF.distillation_loss(s, t, y, alpha=0.0) == torch.nn.functional.cross_entropy(s, y)
        tensor(True)

    References:
        Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
        arXiv:1503.02531, 2015.
    """
    return distillation_terms(
        student_logits, teacher_logits, target, temperature=temperature, alpha=alpha,
        ignore_index=ignore_index, reduction=reduction, sample_weight=sample_weight, mask=mask,
        normalizer=normalizer, empty=empty,
    ).loss


def distillation_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor | None,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = -100,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> DistillationTerms:
    """:func:`distillation_loss` and its two terms, ``(loss, kd, ce)``, each reduced the same
    way (``loss == alpha * kd + (1 - alpha) * ce``); ``kd`` includes the T² factor.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> s, t = torch.zeros(2, 3), torch.zeros(2, 3)
        >>> out = LF.distillation_terms(s, t, torch.tensor([0, 1]))
        >>> out.kd, out.ce                                # equal logits: no KL; CE = log 3
        (tensor(0.), tensor(1.0986))
    """
    check_option("reduction", reduction, REDUCTIONS)
    kd, ce, keep = _per_token(student_logits, teacher_logits, target, temperature, alpha,
                              ignore_index, mask)
    opts = dict(sample_weight=sample_weight, mask=keep, normalizer=normalizer, empty=empty)
    total = alpha * kd + (1.0 - alpha) * ce
    return DistillationTerms(
        loss=reduce(total, reduction, **opts),  # type: ignore[arg-type]
        kd=reduce(kd, reduction, **opts),  # type: ignore[arg-type]
        ce=reduce(ce, reduction, **opts),  # type: ignore[arg-type]
    )


class DistillationLoss(LossModule):
    """Module form of :func:`distillation_loss`."""

    fn = staticmethod(distillation_loss)
