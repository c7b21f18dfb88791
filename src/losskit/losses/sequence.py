"""Sequence losses: connectionist temporal classification (CTC) for unaligned sequences.

The CTC forward recursion is written in log space over a fixed number of frames, so it traces
with ``torch.compile(fullgraph=True)``, gives the exact gradient with respect to the
log-probabilities, and never produces NaN gradients: an infeasible alignment gives an infinite
loss (0 with ``zero_infinity=True``, the default) with a zero gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_floating,
    check_option,
    is_debug,
    shape_str,
)
from losskit._core.fused import use_fast_path
from losskit._core.module import LossModule
from losskit._core.reduction import as_float32
from losskit._core.registry import Properties, Sample, register

__all__ = ["CTCLoss", "ctc_loss"]

CTC_REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum", "batchmean", "mean_per_token")


def _lse2(a: Tensor, b: Tensor) -> Tensor:
    # log(e^a + e^b) that is −inf, with a zero (not NaN) gradient, when both are −inf.
    return _lse(torch.stack((a, b)))


def _lse3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return _lse(torch.stack((a, b, c)))


def _lse(x: Tensor) -> Tensor:
    m = x.amax(0)
    m = torch.where(torch.isfinite(m), m, 0.0).detach()
    s = (x - m).exp().sum(0)
    alive = s > 0
    return torch.where(alive, torch.where(alive, s, 1.0).log() + m, -math.inf)


def _as_lengths(name: str, value: Tensor | Sequence[int], n: int, device: torch.device,
                layout: str) -> Tensor:
    if not isinstance(value, Tensor):
        try:
            value = torch.as_tensor(list(value), dtype=torch.long)
        except (TypeError, ValueError) as e:
            raise LossInputError(f"{name} must be a sequence of ints or an integer tensor: {e}") from e
    if value.is_floating_point() or value.dtype == torch.bool or value.is_complex():
        raise LossInputError(
            f"{name} must hold integer lengths (dtype torch.long), got dtype {value.dtype}. "
            f"Fix: pass {name}.long()."
        )
    if value.shape != (n,):
        raise LossInputError(
            f"{name} has shape {shape_str(value)} but must have shape ({n},), one length per "
            f"sequence of the batch (log_probs is {layout})."
        )
    return value.to(device=device, dtype=torch.long)


def _python_ints(given: Tensor | Sequence[int], as_tensor: Tensor, debug: bool) -> list[int] | None:
    if not isinstance(given, Tensor):
        return [int(v) for v in given]
    return as_tensor.tolist() if debug else None


def _validate_values(in_len: list[int] | None, tgt_len: list[int] | None, n_targets: int,
                     padded: bool, t_max: int, s_max: int, layout: str) -> None:
    """Checks of the length values, on Python ints (lengths given as ints, or read from the
    tensors in debug mode); ``None`` skips one."""
    if in_len is not None and any(v < 0 or v > t_max for v in in_len):
        raise LossInputError(
            f"input_lengths must lie in [0, T={t_max}] (log_probs is {layout}), got "
            f"{in_len}. Fix: pass the number of valid frames of each sequence."
        )
    if tgt_len is None:
        return
    limit = f"S={s_max} (targets is (N, S) padded)" if padded else "the total of targets"
    if any(v < 0 or v > s_max for v in tgt_len):
        raise LossInputError(
            f"target_lengths must lie in [0, {limit}], got {tgt_len}. "
            "Fix: pass the number of labels of each target sequence."
        )
    if not padded and sum(tgt_len) != n_targets:
        raise LossInputError(
            f"targets is 1-D (concatenated) with {n_targets} labels but target_lengths sums "
            f"to {sum(tgt_len)}. Fix: concatenate exactly the target sequences, or pass "
            "them padded as (N, S)."
        )


def _ctc_recursion(lp: Tensor, labels: Tensor, in_len: Tensor, tgt_len: Tensor, blank: int
                   ) -> Tensor:
    """Per-sequence NLL by the alpha recursion in log space (inf where no alignment exists,
    with a zero gradient); traceable, twice differentiable."""
    t_max, n, _ = lp.shape
    s_max = labels.shape[1]
    # Extended sequence: blank, l1, blank, l2, ..., blank (length L = 2S + 1).
    ext_len = 2 * s_max + 1
    blanks = torch.full_like(labels, blank)
    ext = torch.cat((torch.stack((blanks, labels), 2).reshape(n, 2 * s_max), blanks[:, :1]
                     if s_max else labels.new_full((n, 1), blank)), 1)
    # The skip s-2 → s is allowed into a label that differs from the label two places before.
    prev2 = torch.cat((labels.new_full((n, 2), blank), ext[:, :-2]), 1)
    can_skip = (ext != blank) & (ext != prev2)
    lp_ext = lp.gather(2, ext[None].expand(t_max, n, ext_len))  # (T, N, L)

    neg_inf = lp.new_full((n, 1), -math.inf)
    # Start one step before frame 0 in state 0 with probability 1: the ordinary recursion then
    # gives the usual initialisation (and a loss of 0 for an empty input and target).
    alpha = torch.cat((lp.new_zeros((n, 1)), lp.new_full((n, ext_len - 1), -math.inf)), 1)
    for t in range(t_max):
        shift1 = torch.cat((neg_inf, alpha[:, :-1]), 1)
        shift2 = torch.cat((neg_inf, neg_inf, alpha[:, :-2]), 1)
        shift2 = torch.where(can_skip, shift2, -math.inf)
        new = _lse3(alpha, shift1, shift2) + lp_ext[t]
        alpha = torch.where((t < in_len)[:, None], new, alpha)

    last = alpha.gather(1, (2 * tgt_len)[:, None])[:, 0]
    before = alpha.gather(1, (2 * tgt_len - 1).clamp_min(0)[:, None])[:, 0]
    before = torch.where(tgt_len > 0, before, -math.inf)
    nll = -_lse2(last, before)
    return nll


def _ctc_torch(lp: Tensor, labels: Tensor, in_len: Tensor, tgt_len: Tensor, blank: int) -> Tensor:
    """Per-sequence NLL from PyTorch's CTC kernel (inf where no alignment exists), with the
    gradient made the exact derivative with respect to ``lp``: the kernel returns the gradient
    for log-softmax outputs, which has an extra exp(lp) on every valid frame of a feasible
    sequence; subtracting (m − m.detach()), m = Σ exp(lp) over those frames, removes it and
    leaves the value bit-for-bit unchanged. The infeasible sequences come from a second pass
    without ``zero_infinity``, run only where the first gave a 0 (on CPU in eager mode; always
    elsewhere, where reading the values would synchronise or break a trace)."""
    t_max = lp.shape[0]
    raw = F.ctc_loss(lp, labels, in_len, tgt_len, blank=blank, reduction="none", zero_infinity=True)
    if lp.device.type == "cpu" and use_fast_path() and bool((raw.detach() != 0).all()):
        # zero_infinity puts 0 where no alignment exists: with no 0 at all, every sequence is
        # feasible and the second pass is not needed (asking synchronises: on CPU only)
        infeasible = torch.zeros_like(raw, dtype=torch.bool)
    else:
        with torch.no_grad():
            infeasible = torch.isinf(F.ctc_loss(lp.detach(), labels, in_len, tgt_len, blank=blank,
                                                reduction="none", zero_infinity=False))
    frames = (torch.arange(t_max, device=lp.device)[:, None] < in_len[None, :]) & ~infeasible
    mass = torch.where(frames[:, :, None], lp.exp(), 0.0).sum((0, 2))
    nll = raw - (mass - mass.detach())
    return torch.where(infeasible, math.inf, nll)


def _ctc_sample(gen: torch.Generator, dtype: torch.dtype = torch.float64,
                extreme: bool = False) -> Sample:
    t, n, c = 10, 3, 5
    logits = torch.randn(t, n, c, generator=gen, dtype=torch.float64) * (1e4 if extreme else 1.0)
    log_probs = logits.log_softmax(-1).to(dtype)
    targets = torch.randint(1, c, (n, 4), generator=gen)
    input_lengths = torch.tensor([10, 8, 9])
    target_lengths = torch.tensor([4, 3, 2])
    return Sample((log_probs, targets, input_lengths, target_lengths))


@register(
    "ctc",
    family="sequence",
    tasks=("speech recognition", "handwriting recognition", "sequence labelling"),
    input_kind="log_probabilities",
    target_kind="label_sequence",
    aliases=("ctc_loss", "connectionist_temporal_classification"),
    properties=Properties(convex=False, smoothness="Cinf", robust=None, homogeneity=None,
                          units="nats per sequence", zero_at_perfect=True),
    formula=r"\ell = -\log \sum_{\pi \in \mathcal{B}^{-1}(y)} \prod_t p_t(\pi_t)",
    references=("Graves, Fernández, Gomez & Schmidhuber 2006 (ICML)",),
    peers={"torch": "torch.nn.functional.ctc_loss", "keras": "keras.losses.CTC",
           "optax": "optax.losses.ctc_loss"},
    sample=_ctc_sample,
    skip={"mean_of_none": "PyTorch's 'mean' divides each sequence's loss by its target length "
                          "before averaging (tested in test_sequence.py)",
          "gradgradcheck": "the eager path is PyTorch's CTC kernel, which has no double backward; "
                           "impl='recursion' is twice differentiable (tested in test_sequence.py)"},
)
def ctc_loss(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: Tensor | Sequence[int],
    target_lengths: Tensor | Sequence[int],
    *,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = True,
    batch_first: bool = False,
    impl: str = "auto",
) -> Tensor:
    r"""Connectionist temporal classification loss: the negative log-probability of all the
    frame alignments that collapse (merge repeats, drop blanks) to the target sequence.

    Same arguments and numbers as ``torch.nn.functional.ctc_loss``, with two differences in
    defaults: ``zero_infinity=True`` (an infeasible target — longer, with its repeats, than the
    input — gives 0 and a zero gradient instead of inf; ``zero_infinity=False`` gives inf, still
    with a zero, never NaN, gradient), and the gradient is the exact derivative with respect to
    ``log_probs`` (PyTorch's kernel returns the gradient for log-softmax outputs, which agrees
    once it has gone through the log-softmax).

    ``impl="auto"`` uses PyTorch's CTC kernel in eager mode (fast; its gradient corrected to
    the exact derivative) and, while ``torch.compile`` traces, a log-space alpha recursion over
    the T frames (O(T·N·S), traceable, twice differentiable, slower in eager mode for long
    inputs); ``"torch"`` and ``"recursion"`` force one of them. Both give the same numbers.
    Concatenated 1-D targets are laid out in a padded (N, ΣS) buffer.

    Lengths given as Python ints are always validated; tensors of lengths and label values
    (blank inside a target, labels out of range) are validated in debug mode
    (``losskit.set_debug(True)``).

    Args:
        log_probs: log-probabilities ``(T, N, C)``, or ``(N, T, C)`` with ``batch_first=True``
            (e.g. ``logits.log_softmax(-1)``).
        targets: padded ``(N, S)`` label indices, or the targets concatenated ``(ΣS_n,)``;
            never the blank.
        input_lengths: ``(N,)`` valid frames of each input (≤ T).
        target_lengths: ``(N,)`` labels of each target (≤ S).
        blank: the blank class index.
        reduction: ``"none"`` (``(N,)``) | ``"mean"`` (PyTorch's: each loss divided by its target
            length, clamped to ≥ 1, then averaged over the batch) | ``"sum"`` | ``"batchmean"``
            (sum / N, what Keras and optax users average) | ``"mean_per_token"`` (sum / total
            number of target labels).
        zero_infinity: infinite losses (infeasible alignments) become 0.
        batch_first: ``log_probs`` is ``(N, T, C)``.
        impl: ``"auto"`` | ``"torch"`` (PyTorch's kernel) | ``"recursion"`` (traceable, twice
            differentiable).

    Shape:
        ``(T, N, C)`` (or ``(N, T, C)``), ``(N, S)`` or ``(ΣS,)``, ``(N,)``, ``(N,)`` → scalar,
        or ``(N,)`` with ``reduction="none"``.

    Examples:
        >>> import torch, losskit.functional as LF
        >>> lp = torch.full((2, 1, 3), 1 / 3).log()             # T=2 frames, uniform over 3 classes
        >>> y = torch.tensor([[1]])
        >>> LF.ctc_loss(lp, y, [2], [1], reduction="sum")       # 3 of 9 paths give "1": -log(1/3)
        tensor(1.0986)
        >>> LF.ctc_loss(lp, torch.tensor([[1, 1]]), [2], [2])   # "11" needs 3 frames: infeasible
        tensor(0.)

    References:
        Graves, Fernández, Gomez & Schmidhuber, "Connectionist Temporal Classification:
        Labelling Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006.
    """
    check_option("reduction", reduction, CTC_REDUCTIONS)
    check_option("impl", impl, ("auto", "torch", "recursion"))
    check_floating("log_probs", log_probs)
    layout = "(N, T, C) (batch_first=True)" if batch_first else "(T, N, C)"
    if log_probs.ndim != 3:
        raise LossInputError(
            f"log_probs must be {layout}, got shape {shape_str(log_probs)} ({log_probs.ndim}-D). "
            "Fix: give it the layout above (set batch_first to match), e.g. "
            "logits.log_softmax(-1)."
        )
    lp = log_probs.transpose(0, 1) if batch_first else log_probs
    (lp,) = as_float32(lp)
    t_max, n, c = lp.shape
    if not isinstance(blank, int) or not 0 <= blank < c:
        raise LossInputError(f"blank={blank!r} must be a class index in [0, C={c}) (log_probs is {layout}).")
    if not isinstance(targets, Tensor) or targets.is_floating_point() or targets.dtype == torch.bool:
        got = targets.dtype if isinstance(targets, Tensor) else type(targets).__name__
        raise LossInputError(f"targets must be an integer tensor of label indices, got {got}.")
    if targets.ndim not in (1, 2) or (targets.ndim == 2 and targets.shape[0] != n):
        raise LossInputError(
            f"targets has shape {shape_str(targets)}; expected ({n}, S) padded or (ΣS,) "
            f"concatenated, for log_probs {shape_str(log_probs)} = {layout}."
        )
    in_len = _as_lengths("input_lengths", input_lengths, n, lp.device, layout)
    tgt_len = _as_lengths("target_lengths", target_lengths, n, lp.device, layout)
    padded = targets.ndim == 2
    targets = targets.to(device=lp.device, dtype=torch.long)
    s_max = targets.shape[1] if padded else targets.numel()
    # lengths given as Python ints are checked without reading a tensor; tensors in debug mode
    debug = is_debug()
    in_vals = _python_ints(input_lengths, in_len, debug)
    tgt_vals = _python_ints(target_lengths, tgt_len, debug)
    _validate_values(in_vals, tgt_vals, targets.numel(), padded, t_max, s_max, layout)
    pos = torch.arange(s_max, device=lp.device)
    if padded:
        labels = targets
    else:
        start = tgt_len.cumsum(0) - tgt_len
        labels = targets[(start[:, None] + pos[None, :]).clamp(0, max(s_max - 1, 0))]
    valid = pos[None, :] < tgt_len[:, None]
    if is_debug():
        bad = valid & ((labels == blank) | (labels < 0) | (labels >= c))
        if bool(bad.any()):
            raise LossInputError(
                f"targets hold the blank ({blank}) or labels outside [0, C={c}) inside the target "
                f"lengths (e.g. {labels[bad][:5].tolist()}). Fix: the blank must not appear in a "
                "target; pad after target_lengths only."
            )
    labels = torch.where(valid, labels, blank).clamp(0, c - 1)
    tgt_len = tgt_len.clamp(0, s_max)
    in_len = in_len.clamp(0, t_max)

    use_torch = impl == "torch" or (impl == "auto" and not torch.compiler.is_compiling())
    if use_torch:
        nll = _ctc_torch(lp, labels, in_len, tgt_len, blank)
    else:
        nll = _ctc_recursion(lp, labels, in_len, tgt_len, blank)
    if zero_infinity:
        nll = torch.where(torch.isinf(nll), 0.0, nll)

    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    if reduction == "batchmean":
        return nll.sum() / max(n, 1)
    if reduction == "mean_per_token":
        return nll.sum() / tgt_len.sum().clamp_min(1).to(nll.dtype)
    return (nll / tgt_len.clamp_min(1).to(nll.dtype)).mean()


class CTCLoss(LossModule):
    """Module form of :func:`ctc_loss`."""

    fn = staticmethod(ctc_loss)
