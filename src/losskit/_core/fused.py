"""Fused elementwise losses: one autograd Function, a closed-form gradient, only the inputs saved.

Composed eagerly, an elementwise loss such as the focal loss runs a dozen full-size kernels and
autograd keeps most of their outputs for backward (several times the input size). A loss that
is elementwise in ``(input, target)`` can instead be written as an :class:`ElementwiseKernel`:

* ``reference(x, t, *params)``: the per-element loss composed from differentiable torch ops. It
  is the test oracle, the path taken under ``torch.compile`` (where inductor fuses it), and the
  path of double backward.
* ``value(x, t, *params)``: the per-element loss of a chunk; may work in place on its own
  temporaries (never on ``x`` or ``t``).
* ``grad(x, t, *params)``: :math:`\\partial \\ell / \\partial x` of a chunk, in closed form.
* ``total(x, t, *params)`` (optional): the sum of a chunk's losses, when it can be had in fewer
  passes than ``value(...).sum()`` (e.g. a per-element weight folded into a dot product).
* ``native`` (optional): the options → ``(variant, numbers)`` of the loss's C kernel in
  ``losskit/_native/elementwise.c``, or ``True`` for the variant named like the kernel taking
  the options as they are; used for contiguous float32/float64 CPU tensors when the kernels could
  be compiled (one pass over the inputs per direction instead of a dozen).
* ``target_grad``: ``"negate"`` when :math:`\\partial \\ell / \\partial t = -\\partial \\ell /
  \\partial x` (losses of the residual ``x - t``); ``"own"`` when ``grad_target(x, t, *params)``
  gives :math:`\\partial \\ell / \\partial t` (a loss of two inputs, such as a discriminator's
  real and fake scores; its C kernel has a ``<variant>_target`` twin); ``None`` when the target
  takes no gradient through the fast path (a target that requires grad then takes the reference
  path).

:func:`elementwise_loss` runs the kernel over cache-sized chunks (on CPU all temporaries of a
chunk stay in the L2/L3 cache, so a dozen cheap passes cost about one pass over memory), saves
only ``input`` and ``target`` for backward and recomputes in backward. With ``reduction`` mean or
sum and no weights, mask or normalizer the forward returns the sum directly, so no per-element
tensor is ever allocated; otherwise it returns the per-element losses and the one
:func:`~losskit._core.reduction.reduce` finishes the job. ``params`` are Python numbers; a
tensor-valued option takes the reference path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from losskit import _native
from losskit._core.checks import check_option
from losskit._core.reduction import EMPTY_POLICIES, REDUCTIONS, mean_over, reduce

__all__ = ["CHUNK", "ElementwiseKernel", "elementwise_loss", "fusable", "logistic_parts", "native_kernel",
           "reference_grads", "power_", "sigmoid_from_parts", "small_power", "use_fast_path"]

# Elements per chunk on CPU: with a handful of float32 temporaries per chunk, 2**18 elements keep
# the working set within the 8 MiB L3 while each op still splits across threads; side by side,
# 2**18 beat 2**15, 2**17, 2**19 and 2**20 on focal (131072×80) and at 1e6 elements.
CHUNK = 2**18

Fn = Callable[..., Tensor]
Native = tuple[_native.NativeKernel, tuple[float, ...]]   # a C kernel and its numeric options


@dataclass(frozen=True)
class ElementwiseKernel:
    """An elementwise loss with a closed-form gradient; see the module docstring."""

    name: str
    reference: Fn
    value: Fn
    grad: Fn
    target_grad: str | None = None
    total: Fn | None = None
    native: Callable[..., tuple[str, tuple[float, ...]]] | bool | None = None
    grad_target: Fn | None = None
    # For the parity test every kernel gets (tests/test_fused.py): option sets to try, the domain
    # of the target ("real", "unit" for [0, 1], "binary" for {0, 1}, "sign" for ±1,
    # "nonnegative" with exact zeros, "log_probability" for ≤ 0) and that of the input ("real"
    # or "positive").
    examples: tuple[tuple[float, ...], ...] = ((),)
    target: str = "real"
    input: str = "real"

    def chunk_sum(self, x: Tensor, t: Tensor, *params: float) -> Tensor:
        return self.value(x, t, *params).sum() if self.total is None else self.total(x, t, *params)


def native_kernel(kernel: ElementwiseKernel, params: tuple[float, ...], *tensors: Tensor,
                  of_target: bool = False) -> Native | None:
    """The compiled kernel of ``kernel`` for these (flat, contiguous) tensors and its numeric
    options, or ``None`` where the PyTorch chunks run instead; ``of_target``: the variant whose
    gradient is ``∂ℓ/∂t`` (``target_grad="own"``)."""
    if not kernel.native:
        return None
    name, numbers = (kernel.name, params) if kernel.native is True else kernel.native(*params)
    found = _native.kernel(f"{name}_target" if of_target else name, *tensors)
    return None if found is None else (found, numbers)


def _contiguous(t: Tensor) -> Tensor:
    return t if t.is_contiguous() else t.contiguous()


def _chunks(n: int, device: torch.device) -> range:
    step = CHUNK if device.type == "cpu" else max(n, 1)
    return range(0, n, step)


def _flat(t: Tensor) -> Tensor:
    return t.reshape(-1)


# x·2¹²⁶ is ≥ 1 for every positive normal float32/float64 and ≤ -1 for every negative one, so
# clamp(x·2¹²⁶, 0, 1) is the step [x > 0] except on subnormals, where e^-|x| rounds to 1.
_STEP_SCALE = 2.0**126


def logistic_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(e, r, lg, p)`` for a chunk of logits: ``e = e^-|x|``, ``r = σ(|x|) = 1/(1+e)``,
    ``lg = log(1+e)`` (so ``softplus(x) = max(x, 0) + lg`` and ``logsigmoid(x) = min(x, 0) - lg``)
    and ``p = σ(x)``, from one exp and one log, for losses that need several of σ(±x),
    logsigmoid(±x) and σ(x)σ(-x) (``= e·r²`` exactly), each of which torch would compute with a
    transcendental pass of its own. Four fresh tensors; ``x`` is not touched. ±inf give σ = 1/0
    and ``lg = 0``."""
    e = torch.abs(x).neg_().exp_()
    lg = torch.add(e, 1.0)
    r = torch.reciprocal(lg)
    lg.log_()
    return e, r, lg, sigmoid_from_parts(x, e, r)


def sigmoid_from_parts(x: Tensor, e: Tensor, r: Tensor, negate: bool = False) -> Tensor:
    """σ(x) (σ(-x) with ``negate``) from :func:`logistic_parts`' ``e`` and ``r``: ``r`` on the
    positive side, ``e·r`` on the negative one (no cancellation on either), selected as
    ``r·max(e, [±x > 0])`` with float ops (on CPU a boolean mask and ``where`` cost more than
    the exp they would save)."""
    p = torch.mul(x, -_STEP_SCALE if negate else _STEP_SCALE).clamp_(0.0, 1.0)
    return torch.maximum(p, e, out=p).mul_(r)


def power_(q: Tensor, k: float) -> Tensor:
    """``q ← q^k`` in place for ``q ≥ 0``: products for k = 1, 2, 3, 4, else ``exp(k·log q)``
    (on CPU ``pow_`` with a float exponent is several times slower than an exp and a log).
    ``0^k`` stays 0 for k > 0; ``q^0`` is 1, as for ``torch.pow``."""
    if k == 0:
        return q.fill_(1.0)
    if k == 1:
        return q
    if k == 2:
        return q.square_()
    if k == 3:
        return q.mul_(q.square())
    if k == 4:
        return q.square_().square_()
    return q.log_().mul_(k).exp_()


def small_power(k: float) -> str:
    """``"int"`` for the exponents the C kernels raise to by products (0 to 4), else ``"any"``
    (``exp(k·log q)``): the name of the kernel variant to use."""
    return "int" if k in (0, 1, 2, 3, 4) else "any"


class _Fused(torch.autograd.Function):
    # forward(ctx, ...) rather than a separate setup_context: Function.apply then skips binding
    # its arguments through inspect.signature (about 50 µs a call). torch.func transforms never
    # reach this Function (use_fast_path), so the functorch-compatible form is not needed.
    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor, kernel: ElementwiseKernel, params: tuple[float, ...],
                total: float) -> Tensor:
        # total: 0 for the per-element losses, else the factor of their sum (1, or 1/n for a mean)
        ctx.save_for_backward(x, t)
        ctx.kernel, ctx.params, ctx.total = kernel, params, total
        xf, tf = _contiguous(_flat(x)), _contiguous(_flat(t))
        native = ctx.native = native_kernel(kernel, params, xf, tf)
        if native is not None:
            # outputs allocated before the kernel: torch ops after it run with cold caches
            fn, numbers = native
            if total:
                return fn.sum_into(xf.new_empty(()), xf, tf, numbers, total)
            return fn.value(xf, tf, numbers, torch.empty(x.shape, dtype=x.dtype, device=x.device))
        n = xf.numel()
        steps = _chunks(n, x.device)
        step = steps.step
        if total:
            acc = xf.new_zeros(())
            for s in steps:
                acc += kernel.chunk_sum(xf[s:s + step], tf[s:s + step], *params)
            return acc.mul_(total)
        out = torch.empty_like(xf)
        for s in steps:
            out[s:s + step] = kernel.value(xf[s:s + step], tf[s:s + step], *params)
        return out.view(x.shape)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, t = ctx.saved_tensors
        kernel: ElementwiseKernel = ctx.kernel
        need_x, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():
            def reference(x: Tensor, t: Tensor) -> Tensor:
                loss = kernel.reference(x, t, *ctx.params)
                return loss.sum() * ctx.total if ctx.total else loss

            return (*reference_grads(reference, g, (x, t)), None, None, None)
        xf, tf = _contiguous(_flat(x)), _contiguous(_flat(t))
        gf = None if ctx.total else _contiguous(_flat(g))
        own = kernel.target_grad == "own"
        gx = None
        if need_x or not own:
            # the forward's C kernel, unless a per-element upstream gradient rules it out
            native = ctx.native if gf is None else native_kernel(kernel, ctx.params, xf, tf, gf)
            gx = _chunked_grad(kernel, ctx.params, xf, tf, g, ctx.total, gf, x.shape, native)
        if not need_t:
            gt = None
        elif own:
            native = native_kernel(kernel, ctx.params, xf, tf, *(() if gf is None else (gf,)), of_target=True)
            gt = _chunked_grad(kernel, ctx.params, xf, tf, g, ctx.total, gf, t.shape, native, of_target=True)
        else:
            gt = -gx  # type: ignore[operator]
        return (gx if need_x else None, None if gt is None else gt.view(t.shape), None, None, None)


def _chunked_grad(kernel: ElementwiseKernel, params: tuple[float, ...], xf: Tensor, tf: Tensor, g: Tensor,
                  total: float, gf: Tensor | None, shape: torch.Size,
                  native: Native | None, *, of_target: bool = False) -> Tensor:
    """``g·∂ℓ/∂x`` (``∂ℓ/∂t`` with ``of_target``) over flat contiguous inputs, in ``shape``: the
    C kernel ``native`` (:func:`native_kernel`) where there is one, else the PyTorch chunks.
    ``gf`` is ``g`` flattened, or ``None`` when ``g`` is the upstream gradient of the sum of the
    losses times ``total``."""
    out = torch.empty(shape, dtype=xf.dtype, device=xf.device)
    if native is not None:
        fn, numbers = native
        return fn.grad(xf, tf, numbers, g.item() * total if gf is None else gf, out)
    grad = kernel.grad_target if of_target else kernel.grad
    assert grad is not None
    gs = g * total if gf is None else gf    # the upstream gradient of each element's loss
    flat = out.view(-1)
    steps = _chunks(xf.numel(), xf.device)
    step = steps.step
    for s in steps:
        d = grad(xf[s:s + step], tf[s:s + step], *params)
        torch.mul(d, gs if gf is None else gf[s:s + step], out=flat[s:s + step])
    return out


def use_fast_path() -> bool:
    """Whether a hand-written autograd Function may run: not under ``torch.compile`` (which
    fuses the composed form itself) nor under a ``torch.func`` transform (vmap/grad/jvp need a
    composable form)."""
    return not (torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active())


def reference_grads(fn: Fn, grad: Tensor, inputs: tuple[Tensor | None, ...]) -> list[Tensor | None]:
    """Differentiable gradients of ``(fn(*inputs) * grad).sum()``, for the backward of a fast
    path run with ``create_graph=True``: differentiating the composed form keeps second
    derivatives exact. Each input is differentiated through an alias (``view_as``), so that only
    the paths inside ``fn`` count: an input computed from another one is not counted twice."""
    alias = [t.view_as(t) if t is not None and t.requires_grad else t for t in inputs]
    total = (fn(*alias) * grad).sum()
    need = [a for a in alias if a is not None and a.requires_grad]
    got = iter(torch.autograd.grad(total, need, create_graph=True, allow_unused=True) if need else ())
    return [next(got) if a is not None and a.requires_grad else None for a in alias]


def fusable(kernel: ElementwiseKernel, input: Tensor, target: Tensor, params: tuple[Any, ...]) -> bool:
    """Whether the fused path applies (all decided from shapes, dtypes and flags: no sync)."""
    if not use_fast_path():
        return False
    if input.shape != target.shape or input.dtype != target.dtype:
        return False
    if input.dtype not in (torch.float32, torch.float64) or input.numel() == 0:
        return False
    if target.requires_grad and kernel.target_grad is None:
        return False
    return not any(isinstance(p, Tensor) for p in params)


def elementwise_loss(
    kernel: ElementwiseKernel,
    input: Tensor,
    target: Tensor,
    params: tuple[Any, ...],
    reduction: str,
    *,
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    denominator: Tensor | None = None,
    allowed: tuple[str, ...] = REDUCTIONS,
) -> Tensor:
    """``reduce(kernel.reference(input, target, *params), reduction, ...)``, computed by the fused
    path where :func:`fusable` allows; ``allowed`` as for ``reduce`` (e.g. with ``"batchmean"``)."""
    check_option("reduction", reduction, allowed)
    check_option("empty", empty, EMPTY_POLICIES)
    opts = dict(sample_weight=sample_weight, mask=mask, normalizer=normalizer, empty=empty,
                denominator=denominator, allowed=allowed)
    if not fusable(kernel, input, target, params):
        return reduce(kernel.reference(input, target, *params), reduction, **opts)  # type: ignore[arg-type]
    if sample_weight is None and mask is None and normalizer is None:
        # the sum straight from the kernel: no per-element tensor
        if reduction == "sum":
            return _Fused.apply(input, target, kernel, tuple(params), 1.0)
        if reduction == "batchmean":
            per_row = 1.0 / max(input.shape[0], 1) if input.ndim else 1.0
            return _Fused.apply(input, target, kernel, tuple(params), per_row)
        if reduction == "mean" and denominator is None:
            return _Fused.apply(input, target, kernel, tuple(params), 1.0 / input.numel())
        if reduction == "mean" and denominator is not None and denominator.shape == input.shape:
            count = denominator.to(input.dtype).sum()
            return mean_over(_Fused.apply(input, target, kernel, tuple(params), 1.0), count, empty)
    loss = _Fused.apply(input, target, kernel, tuple(params), 0.0)
    return reduce(loss, reduction, **opts)  # type: ignore[arg-type]
