r"""Triton kernels for CUDA: cross-entropy over logits, sigmoid focal loss and the linear
(LM-head) cross-entropy, registered as ``torch.library`` custom ops so that they trace under
``torch.compile(fullgraph=True)``.

* :func:`triton_cross_entropy` — one program per row walks the row in blocks twice: an online
  log-sum-exp (running max and rescaled sum, as in Liger-Kernel's cross-entropy), then, when a
  gradient is needed, the gradient of the row written into one logits-sized buffer. That buffer
  is the only thing saved for backward; backward scales it by the incoming gradient.
* :func:`triton_sigmoid_focal_loss` — elementwise forward and closed-form backward kernels;
  nothing is saved but the inputs.
* :func:`triton_linear_cross_entropy` — rows in chunks: the chunk's logits by a torch matmul,
  the cross-entropy kernel on them (its gradient written over the chunk's logits), and the
  chunk's contributions to the gradients of ``hidden``, ``weight`` and ``bias`` accumulated in
  the forward (Liger's fused linear cross-entropy). With ``reduction="none"`` the forward keeps
  no gradient and backward recomputes each chunk's logits, so an arbitrary per-token incoming
  gradient is applied exactly.

Triton is optional: this module imports without it, and :func:`cuda_kernels_available` says
whether the kernels can run (CUDA and Triton both present). With ``TRITON_INTERPRET=1`` set
before this module is imported, Triton's interpreter runs the same kernels on CPU tensors
(slowly); the parity tests use that to check the kernel logic without a GPU.

Numerics: half inputs are computed in float32 and the loss is float32 (gradients come back in
the inputs' dtypes); float64 inputs are computed in float64. Logits of −inf (masked classes) are
outside the support, as in :func:`losskit.functional.cross_entropy`: their label-smoothing terms
are dropped, so the loss and gradient stay finite.
"""

# No ``from __future__ import annotations`` here: torch.library infers the custom ops' schemas
# from the real annotation objects.

import functools
from typing import Any

import torch
from torch import Tensor

from losskit._core.checks import (
    LossInputError,
    check_class_index,
    check_floating,
    check_number,
    check_option,
    check_probabilities,
    check_same_shape,
    check_tensor,
    class_vector,
    is_debug,
    shape_str,
)
from losskit._core.reduction import EMPTY_POLICIES, REDUCTIONS, reduce

try:  # Triton is optional: never a dependency of the package
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

__all__ = [
    "cuda_kernels_available",
    "triton_cross_entropy",
    "triton_linear_cross_entropy",
    "triton_sigmoid_focal_loss",
]

#: Largest block of a row one cross-entropy program loads at once (Liger's 65536 // 2).
MAX_BLOCK = 32768
#: Elements per program of the elementwise focal kernels.
FOCAL_BLOCK = 1024
#: Logits per linear cross-entropy chunk when ``chunk_size`` is not given (as linear_ce.py).
CHUNK_ELEMENTS = 1 << 22


def _interpreting() -> bool:
    # decided when the kernels were defined (TRITON_INTERPRET=1 at import), not by the
    # environment now
    return triton is not None and type(_ce_kernel).__name__ == "InterpretedFunction"


def cuda_kernels_available() -> bool:
    """True when the Triton kernels of this module can run on the GPU: Triton is importable and
    CUDA is available. (Under ``TRITON_INTERPRET=1`` they also run on CPU tensors, but that is
    for testing only, so it does not count here.)"""
    return triton is not None and torch.cuda.is_available()


def _check_runnable(*tensors: Tensor) -> None:
    if triton is None:
        raise RuntimeError(
            "the Triton kernels need the 'triton' package, which is not installed. Fix: use the "
            "losskit.functional losses, or install triton on a CUDA machine."
        )
    if not _interpreting() and any(not t.is_cuda for t in tensors):
        raise RuntimeError(
            "the Triton kernels run on CUDA tensors (or on CPU under TRITON_INTERPRET=1, for "
            "testing). Fix: move the inputs to the GPU, or use the losskit.functional losses."
        )


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tl_dtype(dtype: torch.dtype) -> Any:
    return tl.float64 if dtype == torch.float64 else tl.float32


def _row_block(n_cols: int, block_size: int | None) -> int:
    if block_size is not None:
        return triton.next_power_of_2(block_size)
    return min(MAX_BLOCK, triton.next_power_of_2(max(n_cols, 1)))


@functools.lru_cache(maxsize=64)
def _scalars(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """Kernel hyper-parameters as a device tensor of the compute dtype (a float kernel argument
    would be rounded to float32), made once per value set and device, not copied every call."""
    return torch.tensor(values, dtype=dtype, device=device)


def _num_warps(block: int) -> int:
    return 32 if block >= 32768 else 16 if block >= 8192 else 8 if block >= 2048 else 4


# --------------------------------------------------------------------------- kernels

if triton is not None:

    @triton.jit
    def _tanh(u):
        # tanh without libdevice: -expm1(-2|u|) / (1 + exp(-2|u|)), expm1 by Kahan's trick
        # (accurate near 0, where 1 - exp(-2|u|) alone would cancel)
        a2 = -2.0 * tl.abs(u)
        e = tl.exp(a2)
        ratio = a2 / tl.log(tl.where((e == 1.0) | (e == 0.0), 0.5, e))
        em1 = tl.where(e == 1.0, a2, tl.where(e - 1.0 == -1.0, -1.0, (e - 1.0) * ratio))
        t = -em1 / (1.0 + e)
        return tl.where(u < 0, -t, t)

    @triton.jit
    def _capped(x, cap, SOFTCAP: tl.constexpr):
        if SOFTCAP:
            x = cap * _tanh(x / cap)
        return x

    @triton.jit
    def _ce_kernel(x_ptr, x_stride, t_ptr, w_ptr, loss_ptr, g_ptr, g_stride, scale_ptr, scale_stride,
                   n_cols, ignore_index, hp_ptr,
                   HAS_GRAD: tl.constexpr, SMOOTH: tl.constexpr, HAS_WEIGHT: tl.constexpr,
                   Z_LOSS: tl.constexpr, SOFTCAP: tl.constexpr, CDT: tl.constexpr,
                   BLOCK: tl.constexpr):
        """One row of cross-entropy: loss_ptr[row], and (HAS_GRAD) scale[row] · ∂loss/∂x into
        g_ptr's row (which may be x's own row: each block is read before it is written). With
        class weights w: (1-ε) w_y (lse - x_y) + (ε/V) Σ_{c finite} w_c (lse - x_c), plus
        λ·lse² (Z_LOSS, PaLM's z-loss); with SOFTCAP the logits are c·tanh(x/c) first and the
        gradient is taken through the cap."""
        row = tl.program_id(0).to(tl.int64)
        # ε and λ come as a tensor of the compute dtype: float arguments would be rounded to float32
        eps = tl.load(hp_ptr).to(CDT)
        cap = tl.load(hp_ptr + 2).to(CDT)
        x_row = x_ptr + row * x_stride
        g_row = g_ptr + row * g_stride
        y = tl.load(t_ptr + row)
        if y == ignore_index:
            tl.store(loss_ptr + row, tl.zeros((), loss_ptr.dtype.element_ty))
            if HAS_GRAD:
                for off in range(0, n_cols, BLOCK):
                    cols = off + tl.arange(0, BLOCK)
                    tl.store(g_row + cols, tl.zeros((BLOCK,), g_ptr.dtype.element_ty),
                             mask=cols < n_cols)
            return
        neg_inf = float("-inf")
        m = tl.full((), neg_inf, CDT)          # running max
        d = tl.zeros((), CDT)                  # running Σ exp(x - m)
        s = tl.zeros((), CDT)                  # Σ w_c x_c over the finite logits (smoothing)
        nf = tl.zeros((), CDT)                 # Σ w_c over the finite logits
        for off in range(0, n_cols, BLOCK):
            cols = off + tl.arange(0, BLOCK)
            x = tl.load(x_row + cols, mask=cols < n_cols, other=neg_inf).to(CDT)
            if SOFTCAP:  # padding stays -inf (the cap would map it to -c)
                x = tl.where(cols < n_cols, _capped(x, cap, SOFTCAP), neg_inf)
            m_new = tl.maximum(m, tl.max(x, 0))
            # while every logit so far is -inf, shift by 0 instead (exp(-inf - -inf) is NaN)
            shift = tl.where(m_new == neg_inf, 0.0, m_new).to(CDT)
            d = d * tl.exp(m - shift) + tl.sum(tl.exp(x - shift), 0)
            m = m_new
            if SMOOTH:
                fin = x > neg_inf
                if HAS_WEIGHT:
                    wc = tl.load(w_ptr + cols, mask=cols < n_cols, other=0.0).to(CDT)
                    s += tl.sum(wc * tl.where(fin, x, 0.0).to(CDT), 0)
                    nf += tl.sum(tl.where(fin, wc, 0.0).to(CDT), 0)
                else:
                    s += tl.sum(tl.where(fin, x, 0.0).to(CDT), 0)
                    nf += tl.sum(fin.to(CDT), 0)
        lse = tl.where(m == neg_inf, 0.0, m).to(CDT) + tl.log(d)
        x_y = _capped(tl.load(x_row + y).to(CDT), cap, SOFTCAP)
        if HAS_WEIGHT:
            w_y = tl.load(w_ptr + y).to(CDT)
        else:
            w_y = tl.full((), 1.0, CDT)
        if SMOOTH:
            loss = (1.0 - eps) * w_y * (lse - x_y) + (eps / n_cols) * (nf * lse - s)
            coef = (1.0 - eps) * w_y + eps * nf / n_cols
        else:
            loss = w_y * (lse - x_y)
            coef = w_y
        if Z_LOSS:
            lam = tl.load(hp_ptr + 1).to(CDT)
            loss += lam * lse * lse
            coef += 2.0 * lam * lse
        tl.store(loss_ptr + row, loss.to(loss_ptr.dtype.element_ty))
        if HAS_GRAD:
            scale = tl.load(scale_ptr + row * scale_stride).to(CDT)
            for off in range(0, n_cols, BLOCK):
                cols = off + tl.arange(0, BLOCK)
                msk = cols < n_cols
                x = tl.load(x_row + cols, mask=msk, other=neg_inf).to(CDT)
                if SOFTCAP:
                    x = tl.where(msk, _capped(x, cap, SOFTCAP), neg_inf)
                grad = coef * tl.exp(x - lse)
                if SMOOTH:
                    if HAS_WEIGHT:
                        wc = tl.load(w_ptr + cols, mask=msk, other=0.0).to(CDT)
                        grad -= tl.where(x > neg_inf, wc * (eps / n_cols), 0.0).to(CDT)
                    else:
                        grad -= tl.where(x > neg_inf, eps / n_cols, 0.0).to(CDT)
                grad = tl.where(cols == y, grad - (1.0 - eps) * w_y, grad)
                if SOFTCAP:
                    grad *= 1.0 - (x / cap) * (x / cap)
                tl.store(g_row + cols, (grad * scale).to(g_ptr.dtype.element_ty), mask=msk)

    @triton.jit
    def _log1p(u):
        # log(1 + u) accurate for tiny u without libdevice (Goldberg's correction)
        w = 1.0 + u
        return tl.where(w == 1.0, u, tl.log(w) * (u / tl.where(w == 1.0, 1.0, w - 1.0)))

    @triton.jit
    def _focal_terms(x, t, alpha, gamma, bound, tiny, HAS_ALPHA: tl.constexpr):
        xc = tl.minimum(tl.maximum(x, -bound), bound)
        # one exp, never overflowing: e = exp(-|x|) gives σ(x), σ(-x) (not 1 - σ(x): no
        # cancellation) and softplus(x) = max(x, 0) + log1p(e)
        e = tl.exp(-tl.abs(xc))
        big = 1.0 / (1.0 + e)
        small = e / (1.0 + e)
        p = tl.where(xc >= 0, big, small)      # σ(x)
        pm = tl.where(xc >= 0, small, big)     # σ(-x)
        bce = tl.maximum(xc, 0.0) + _log1p(e) - t * xc
        q = t * pm + (1.0 - t) * p             # 1 - p_t as a sum of non-negative terms
        lq = tl.log(tl.maximum(q, tiny))
        w = tl.exp(gamma * lq)                 # q^γ (exactly 1 for γ = 0)
        if HAS_ALPHA:
            a = alpha * t + (1.0 - alpha) * (1.0 - t)
        else:
            a = tl.full(x.shape, 1.0, x.dtype)
        return xc, p, pm, bce, q, lq, w, a

    @triton.jit
    def _focal_params_load(hp_ptr, CDT: tl.constexpr):
        # α, γ, the logit bound and the clamp of 1 - p_t, in the compute dtype
        return (tl.load(hp_ptr).to(CDT), tl.load(hp_ptr + 1).to(CDT), tl.load(hp_ptr + 2).to(CDT),
                tl.load(hp_ptr + 3).to(CDT))

    @triton.jit
    def _focal_fwd_kernel(x_ptr, t_ptr, loss_ptr, n, hp_ptr,
                          HAS_ALPHA: tl.constexpr, PARTIAL: tl.constexpr, CDT: tl.constexpr,
                          BLOCK: tl.constexpr):
        """Per-element losses, or (PARTIAL) one partial sum per program: "mean"/"sum" then
        write no per-element buffer, and the partials are summed in a fixed order (no atomics)."""
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        msk = offs < n
        x = tl.load(x_ptr + offs, mask=msk, other=0.0).to(CDT)
        t = tl.load(t_ptr + offs, mask=msk, other=0.0).to(CDT)
        alpha, gamma, bound, tiny = _focal_params_load(hp_ptr, CDT)
        _, _, _, bce, _, _, w, a = _focal_terms(x, t, alpha, gamma, bound, tiny, HAS_ALPHA)
        loss = a * w * bce
        if PARTIAL:
            total = tl.sum(tl.where(msk, loss, 0.0).to(CDT), 0)
            tl.store(loss_ptr + tl.program_id(0), total.to(loss_ptr.dtype.element_ty))
        else:
            tl.store(loss_ptr + offs, loss.to(loss_ptr.dtype.element_ty), mask=msk)

    @triton.jit
    def _focal_bwd_kernel(x_ptr, t_ptr, g_ptr, g_stride, dx_ptr, dt_ptr, n, hp_ptr,
                          HAS_ALPHA: tl.constexpr, NEED_DT: tl.constexpr, CDT: tl.constexpr,
                          BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        msk = offs < n
        x = tl.load(x_ptr + offs, mask=msk, other=0.0).to(CDT)
        t = tl.load(t_ptr + offs, mask=msk, other=0.0).to(CDT)
        g = tl.load(g_ptr + offs * g_stride, mask=msk, other=0.0).to(CDT)
        alpha, gamma, bound, tiny = _focal_params_load(hp_ptr, CDT)
        xc, p, pm, bce, q, lq, w, a = _focal_terms(x, t, alpha, gamma, bound, tiny, HAS_ALPHA)
        # ∂q^γ/∂q = γ q^(γ-1), passed only where q was not clamped (as clamp_min's gradient)
        dw = tl.where(q >= tiny, gamma * tl.exp((gamma - 1.0) * lq), 0.0)
        dq_dx = p * pm * (1.0 - 2.0 * t)
        dldx = a * (dw * dq_dx * bce + w * (p - t))
        inside = (x >= -bound) & (x <= bound)
        tl.store(dx_ptr + offs, tl.where(inside, g * dldx, 0.0).to(dx_ptr.dtype.element_ty), mask=msk)
        if NEED_DT:
            dldt = a * (dw * (pm - p) * bce - w * xc)
            if HAS_ALPHA:
                dldt += (2.0 * alpha - 1.0) * w * bce
            tl.store(dt_ptr + offs, (g * dldt).to(dt_ptr.dtype.element_ty), mask=msk)


def _launch_ce(z: Tensor, t: Tensor, loss: Tensor, grad: Tensor | None, scale: Tensor | None,
               ignore_index: int, eps: float, block_size: int | None, weight: Tensor | None = None,
               z_loss: float = 0.0, softcap: float = 0.0) -> None:
    """Run the cross-entropy kernel over the rows of ``z`` (n, V); ``grad`` may be ``z``."""
    n, v = z.shape
    if n == 0:
        return
    block = _row_block(v, block_size)
    has_grad = grad is not None
    g = grad if has_grad else z
    sc = scale if scale is not None else loss
    _ce_kernel[(n,)](
        z, z.stride(0), t, loss if weight is None else weight, loss, g, g.stride(0), sc,
        0 if sc.numel() == 1 else 1, v, ignore_index,
        _scalars((eps, z_loss, softcap or 1.0), _acc_dtype(z.dtype), z.device),
        HAS_GRAD=has_grad, SMOOTH=eps != 0.0, HAS_WEIGHT=weight is not None, Z_LOSS=z_loss != 0.0,
        SOFTCAP=softcap != 0.0, CDT=_tl_dtype(z.dtype), BLOCK=block,
        num_warps=_num_warps(block),
    )


def _safe(count: Tensor) -> Tensor:
    return torch.where(count > 0, count, torch.ones_like(count))


def _grad_scale(count: Tensor, reduction: str) -> Tensor:
    # "mean" divides by the kept rows' count (or Σ w[y]), read on the device (no host sync)
    return 1.0 / _safe(count) if reduction == "mean" else torch.ones_like(count)


def _mean_or_sum(per: Tensor, count: Tensor, reduction: str, empty: str) -> Tensor:
    total = per.sum()
    if reduction == "sum":
        return total
    if empty == "nan":
        return total / count
    return torch.where(count > 0, total / _safe(count), total.new_zeros(()))


def _reduced(op: Any, reduction: str, sample_weight: Tensor | None, mask: Tensor | None,
             normalizer: float | Tensor | None, empty: str,
             denominator: Any = None) -> Tensor:
    """``op(kernel_reduction)``, reduced as :func:`losskit._core.reduction.reduce` would: the
    kernel reduces by itself when nothing but ``reduction`` is asked; with ``sample_weight`` or
    ``mask`` the per-element losses go through ``reduce`` (``denominator()`` gives the weighted
    mean's per-element denominator), and ``normalizer`` divides the kernel's sum."""
    if sample_weight is None and mask is None:
        out = op(reduction)
        return out if normalizer is None else reduce(out, reduction, normalizer=normalizer)
    per = op("none")
    return reduce(per, reduction, sample_weight=sample_weight, mask=mask, normalizer=normalizer,
                  empty=empty, denominator=None if denominator is None else denominator())


# --------------------------------------------------------------------------- cross-entropy op


@torch.library.custom_op("losskit::triton_cross_entropy", mutates_args=())
def _ce_op(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
           label_smoothing: float, reduction: str, empty: str, compute_grad: bool,
           block_size: int) -> tuple[Tensor, Tensor]:
    _check_runnable(input, target)
    # rows may be strided (e.g. a slice of wider logits); only the classes must be contiguous
    x = input if input.stride(1) == 1 else input.contiguous()
    t = target.contiguous()
    acc = _acc_dtype(x.dtype)
    per = torch.empty(x.shape[0], dtype=acc, device=x.device)
    keep = t != ignore_index
    w = None if weight is None else weight.to(acc).contiguous()
    if w is None:
        count = keep.sum().to(acc)
    else:  # PyTorch's weighted mean: Σ w[y] over the kept rows
        count = torch.where(keep, w[torch.where(keep, t, 0)], w.new_zeros(())).sum()
    grad = torch.empty(x.shape, dtype=x.dtype, device=x.device) if compute_grad else x.new_empty(0)
    scale = None
    if compute_grad:
        scale = _grad_scale(count, reduction)
    _launch_ce(x, t, per, grad if compute_grad else None, scale, ignore_index, label_smoothing,
               block_size or None, w)
    out = per if reduction == "none" else _mean_or_sum(per, count, reduction, empty)
    return out, grad


@_ce_op.register_fake
def _(input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, label_smoothing: float,
      reduction: str, empty: str, compute_grad: bool, block_size: int) -> tuple[Tensor, Tensor]:
    acc = _acc_dtype(input.dtype)
    out = input.new_empty((input.shape[0],) if reduction == "none" else (), dtype=acc)
    return out, input.new_empty(input.shape if compute_grad else (0,))


def _ce_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])
    ctx.none = inputs[5] == "none"


def _ce_backward(ctx: Any, g: Tensor, _g_grad: Tensor | None) -> tuple[Tensor | None, ...]:
    (grad,) = ctx.saved_tensors
    scale = g.unsqueeze(1) if ctx.none else g
    return (grad * scale).to(grad.dtype), None, None, None, None, None, None, None, None


_ce_op.register_autograd(_ce_backward, setup_context=_ce_setup)


def triton_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
    block_size: int | None = None,
) -> Tensor:
    r"""Cross-entropy of logits by a Triton kernel; the numbers of
    :func:`losskit.functional.cross_entropy` (and ``F.cross_entropy``) for these options.

    .. math::
        \ell_i = (1-\varepsilon)\,w_{y_i}(\mathrm{lse}(x_i) - x_{i,y_i})
                 + \tfrac{\varepsilon}{V}\textstyle\sum_{c:\,x_{ic} > -\infty}w_c(\mathrm{lse}(x_i) - x_{ic})

    The log-sum-exp is computed online over the row in blocks of ``block_size``; when ``input``
    requires a gradient the same launch writes it into one logits-sized buffer (the only tensor
    saved for backward). ``"mean"`` divides by Σ w[y] over the targets that are not
    ``ignore_index`` (their number without ``weight``), as PyTorch; with none left it is 0 with
    a zero gradient (``empty="zero"``) or NaN. With ``sample_weight`` or ``mask`` the kernel's
    per-row losses go through :func:`losskit._core.reduction.reduce` (``"mean"`` is then
    Σ m·s·ℓ / Σ m·s·w[y], as :func:`losskit.functional.cross_entropy`).

    Args:
        input: logits ``(..., V)`` (classes last), CUDA.
        target: class indices ``(...)``.
        weight: class weights ``(V,)`` (a constant: no gradient flows to it).
        ignore_index: target value that contributes nothing and is not counted.
        label_smoothing: ε in [0, 1].
        reduction: ``"none"`` (per row, the target's shape) | ``"mean"`` | ``"sum"``.
        sample_weight: per-row weights (the target's shape, or ``(N,)``).
        mask: bool, the target's shape (or ``(N,)``): rows to keep.
        normalizer: divides the ``"sum"`` (e.g. a global token count).
        empty: ``"zero"`` or ``"nan"``: the ``"mean"`` of nothing.
        block_size: columns loaded per step (a power of two; default ``min(32768, V)``).

    Shape:
        ``(..., V)`` and ``(...)`` → scalar, or ``(...)`` with ``reduction="none"``.
    """
    check_option("reduction", reduction, REDUCTIONS)
    check_option("empty", empty, EMPTY_POLICIES)
    check_floating("input", input)
    check_tensor("target", target)
    check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
    if input.ndim < 1 or target.shape != input.shape[:-1]:
        raise LossInputError(
            f"target has shape {shape_str(target)} but input {shape_str(input)} needs class indices "
            f"of shape {shape_str(input.shape[:-1])} (the kernel takes classes last). Fix: "
            "input.movedim(1, -1) for (N, C, ...) logits, or check that input and target belong together."
        )
    check_class_index(target, input.shape[-1], ignore_index=ignore_index)
    if weight is not None:
        # validated as a (V,) vector of the compute dtype: a half copy would round the weights
        acc_like = torch.empty(0, dtype=_acc_dtype(input.dtype), device=input.device)
        weight = class_vector("weight", weight, input.shape[-1], acc_like)
        if weight.requires_grad and torch.is_grad_enabled():
            raise LossInputError(
                "weight requires a gradient, which the kernel does not compute. Fix: pass "
                "weight.detach(), or use losskit.functional.cross_entropy."
            )
    _check_runnable(input, target)
    x = input.reshape(-1, input.shape[-1])
    compute_grad = torch.is_grad_enabled() and input.requires_grad
    t = target.reshape(-1)

    def op(red: str) -> Tensor:
        out, _ = _ce_op(x, t, weight, ignore_index, float(label_smoothing), red, empty, compute_grad,
                        block_size or 0)
        return out.reshape(target.shape) if red == "none" else out

    def denominator() -> Tensor:
        keep = target != ignore_index
        if weight is None:
            return keep.to(_acc_dtype(input.dtype))
        return torch.where(keep, weight[torch.where(keep, target, 0)], weight.new_zeros(()))

    return _reduced(op, reduction, sample_weight, mask, normalizer, empty, denominator)


# --------------------------------------------------------------------------- sigmoid focal op


def _focal_params(x: Tensor, alpha: float, gamma: float) -> Tensor:
    """[α, γ, bound, tiny] in the compute dtype (float kernel arguments would be float32). The
    composed loss clamps logits to ±sqrt(max) of the compute dtype and 1 - p_t at its tiny."""
    acc = _acc_dtype(x.dtype)
    info = torch.finfo(acc)
    return _scalars((alpha, gamma, float(info.max) ** 0.5, float(info.tiny)), acc, x.device)


@torch.library.custom_op("losskit::triton_sigmoid_focal", mutates_args=())
def _focal_op(input: Tensor, target: Tensor, alpha: float, gamma: float, reduction: str,
              empty: str) -> Tensor:
    _check_runnable(input, target)
    x = input.contiguous().view(-1)
    t = target.contiguous().view(-1)
    acc = _acc_dtype(x.dtype)
    n = x.numel()
    programs = triton.cdiv(n, FOCAL_BLOCK)
    partial = reduction != "none"
    per = torch.empty(programs if partial else n, dtype=acc, device=x.device)
    if n:
        _focal_fwd_kernel[(programs,)](
            x, t, per, n, _focal_params(x, alpha, gamma),
            HAS_ALPHA=alpha >= 0, PARTIAL=partial, CDT=_tl_dtype(x.dtype), BLOCK=FOCAL_BLOCK,
        )
    if not partial:
        return per.view(input.shape)
    total = per.sum()
    if reduction == "sum":
        return total
    # the mean of no elements follows the empty policy (n is a shape, not data)
    return total / n if n else torch.full((), 0.0 if empty == "zero" else float("nan"), dtype=acc,
                                          device=x.device)


@_focal_op.register_fake
def _(input: Tensor, target: Tensor, alpha: float, gamma: float, reduction: str, empty: str) -> Tensor:
    shape = input.shape if reduction == "none" else ()
    return input.new_empty(shape, dtype=_acc_dtype(input.dtype))


@torch.library.custom_op("losskit::triton_sigmoid_focal_backward", mutates_args=())
def _focal_bwd_op(input: Tensor, target: Tensor, grad: Tensor, alpha: float, gamma: float,
                  need_target_grad: bool) -> tuple[Tensor, Tensor]:
    _check_runnable(input, target, grad)
    x = input.contiguous().view(-1)
    t = target.contiguous().view(-1)
    g = grad.contiguous().view(-1)
    dx = torch.empty_like(x)
    dt = torch.empty_like(t) if need_target_grad else t.new_empty(0)
    n = x.numel()
    if n:
        _focal_bwd_kernel[(triton.cdiv(n, FOCAL_BLOCK),)](
            x, t, g, 0 if g.numel() == 1 else 1, dx, dt if need_target_grad else dx, n,
            _focal_params(x, alpha, gamma), HAS_ALPHA=alpha >= 0, NEED_DT=need_target_grad,
            CDT=_tl_dtype(x.dtype), BLOCK=FOCAL_BLOCK,
        )
    return dx.view(input.shape), dt.view(target.shape) if need_target_grad else dt


@_focal_bwd_op.register_fake
def _(input: Tensor, target: Tensor, grad: Tensor, alpha: float, gamma: float,
      need_target_grad: bool) -> tuple[Tensor, Tensor]:
    return torch.empty_like(input), torch.empty_like(target) if need_target_grad else target.new_empty(0)


def _focal_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    input, target, alpha, gamma, reduction, _ = inputs
    ctx.save_for_backward(input, target)
    ctx.hp = (alpha, gamma, reduction, input.numel())


def _focal_backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
    input, target = ctx.saved_tensors
    alpha, gamma, reduction, n = ctx.hp
    if reduction == "mean":
        g = g / max(n, 1)
    need_t = bool(ctx.needs_input_grad[1])
    dx, dt = _focal_bwd_op(input, target, g, alpha, gamma, need_t)
    return dx, dt if need_t else None, None, None, None, None


_focal_op.register_autograd(_focal_backward, setup_context=_focal_setup)


def triton_sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    sample_weight: Tensor | None = None,
    mask: Tensor | None = None,
    normalizer: float | Tensor | None = None,
    empty: str = "zero",
) -> Tensor:
    r"""Sigmoid focal loss by Triton kernels; the numbers of
    :func:`losskit.functional.sigmoid_focal_loss` (and ``torchvision.ops.sigmoid_focal_loss``).

    .. math::
        \ell = \alpha_t\,(1 - p_t)^\gamma\,\mathrm{BCE}(x, t), \quad
        1 - p_t = t\,\sigma(-x) + (1-t)\,\sigma(x)

    The forward kernel writes the per-element loss; the backward kernel recomputes the terms from
    the saved inputs and applies the closed-form gradient (to ``input``, and to a soft
    ``target`` when it requires one), so nothing beyond the inputs is saved. Logits are clamped
    to ±sqrt(float max) as in the composed loss, and ``1 - p_t`` at the smallest normal number
    before the power, so saturated logits and γ < 1 keep finite gradients.

    Args:
        input: logits, any shape, CUDA.
        target: same shape, in [0, 1].
        alpha: weight of the positives in [0, 1], or ``None``/negative (no weighting).
        gamma: focusing exponent γ ≥ 0.
        reduction: ``"none"`` | ``"mean"`` (over all elements) | ``"sum"``.
        sample_weight: per-element weights (the input's shape, or ``(N,)``), through
            :func:`losskit._core.reduction.reduce`.
        mask: bool, the input's shape (or ``(N,)``): elements to keep.
        normalizer: divides the ``"sum"`` (e.g. the number of positives in detection).
        empty: ``"zero"`` or ``"nan"``: the ``"mean"`` of no elements.

    Shape:
        ``(*)`` and ``(*)`` → scalar, or ``(*)`` with ``reduction="none"``.
    """
    check_option("reduction", reduction, REDUCTIONS)
    check_option("empty", empty, EMPTY_POLICIES)
    check_floating("input", input)
    check_tensor("target", target)
    check_same_shape(input, target)
    check_number("gamma", gamma, low=0.0)
    if alpha is not None:
        check_number("alpha", alpha, high=1.0)
    if is_debug():
        check_probabilities(target, "target")
    if not target.is_floating_point():
        target = target.to(input.dtype)
    _check_runnable(input, target)
    a = -1.0 if alpha is None else float(alpha)
    return _reduced(lambda red: _focal_op(input, target, a, float(gamma), red, empty), reduction,
                    sample_weight, mask, normalizer, empty)


# --------------------------------------------------------------------------- linear cross-entropy op


def _flce_chunks(x: Tensor, w: Tensor, b: Tensor | None, t: Tensor, scale: Tensor,
                 per: Tensor | None, ignore_index: int, eps: float, z_loss: float, softcap: float,
                 chunk: int, block_size: int | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Loop over row chunks: logits by matmul, the CE kernel (gradient over the logits), then the
    chunk's parts of dX, dW, db. ``scale`` is 0-d (mean/sum) or per row (the incoming gradient)."""
    acc = _acc_dtype(x.dtype)
    dx = torch.empty_like(x)
    dw = torch.zeros(w.shape, dtype=acc, device=w.device)
    db = None if b is None else torch.zeros(b.shape, dtype=acc, device=w.device)
    scratch = torch.empty(min(chunk, x.shape[0]), dtype=acc, device=x.device)
    for s in range(0, x.shape[0], chunk):
        e = min(s + chunk, x.shape[0])
        xc = x[s:e]
        z = xc @ w.T if b is None else torch.addmm(b, xc, w.T)
        loss = per[s:e] if per is not None else scratch[: e - s]
        sc = scale if scale.numel() == 1 else scale[s:e].contiguous()
        _launch_ce(z, t[s:e], loss, z, sc, ignore_index, eps, block_size, z_loss=z_loss,
                   softcap=softcap)  # z now holds dL/dz
        dx[s:e] = z @ w
        # one chunk's product in the input dtype, summed over chunks in float32 or wider
        dw += (z.T @ xc).to(acc)
        if db is not None:
            db += z.sum(0, dtype=acc)
    return dx, dw, db


@torch.library.custom_op("losskit::triton_linear_cross_entropy", mutates_args=())
def _flce_op(hidden: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, ignore_index: int,
             label_smoothing: float, z_loss: float, softcap: float, reduction: str, empty: str,
             chunk_size: int, fused: bool, block_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    tensors = (hidden, weight, target) if bias is None else (hidden, weight, bias, target)
    _check_runnable(*tensors)
    x, w, t = hidden.contiguous(), weight.contiguous(), target.contiguous()
    b = None if bias is None else bias.to(x.dtype).contiguous()
    acc = _acc_dtype(x.dtype)
    per = torch.empty(x.shape[0], dtype=acc, device=x.device)
    count = (t != ignore_index).sum().to(acc)
    if fused:
        scale = _grad_scale(count, reduction)
        dx, dw, db = _flce_chunks(x, w, b, t, scale, per, ignore_index, label_smoothing, z_loss,
                                  softcap, chunk_size, block_size or None)
        dw = dw.to(weight.dtype)
        db = x.new_empty(0) if db is None else db.to(bias.dtype)  # type: ignore[union-attr]
    else:  # three distinct placeholders: custom-op outputs may not alias one another
        dx, dw, db = x.new_empty(0), x.new_empty(0), x.new_empty(0)
        for s in range(0, x.shape[0], chunk_size):
            e = min(s + chunk_size, x.shape[0])
            z = x[s:e] @ w.T if b is None else torch.addmm(b, x[s:e], w.T)
            _launch_ce(z, t[s:e], per[s:e], None, None, ignore_index, label_smoothing, block_size or None,
                       z_loss=z_loss, softcap=softcap)
    out = per if reduction == "none" else _mean_or_sum(per, count, reduction, empty)
    return out, dx, dw, db


@_flce_op.register_fake
def _(hidden: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, ignore_index: int,
      label_smoothing: float, z_loss: float, softcap: float, reduction: str, empty: str, chunk_size: int,
      fused: bool, block_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    acc = _acc_dtype(hidden.dtype)
    out = hidden.new_empty((hidden.shape[0],) if reduction == "none" else (), dtype=acc)
    if not fused:
        return out, hidden.new_empty(0), hidden.new_empty(0), hidden.new_empty(0)
    db = hidden.new_empty(0) if bias is None else torch.empty_like(bias)
    return out, torch.empty_like(hidden), torch.empty_like(weight), db


@torch.library.custom_op("losskit::triton_linear_cross_entropy_backward", mutates_args=())
def _flce_bwd_op(hidden: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, grad: Tensor,
                 ignore_index: int, label_smoothing: float, z_loss: float, softcap: float,
                 chunk_size: int, block_size: int) -> tuple[Tensor, Tensor, Tensor]:
    tensors = (hidden, weight, target, grad) if bias is None else (hidden, weight, bias, target, grad)
    _check_runnable(*tensors)
    x, w, t = hidden.contiguous(), weight.contiguous(), target.contiguous()
    b = None if bias is None else bias.to(x.dtype).contiguous()
    dx, dw, db = _flce_chunks(x, w, b, t, grad.to(_acc_dtype(x.dtype)), None, ignore_index,
                              label_smoothing, z_loss, softcap, chunk_size, block_size or None)
    return dx, dw.to(weight.dtype), x.new_empty(0) if db is None else db.to(bias.dtype)  # type: ignore[union-attr]


@_flce_bwd_op.register_fake
def _(hidden: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, grad: Tensor,
      ignore_index: int, label_smoothing: float, z_loss: float, softcap: float, chunk_size: int,
      block_size: int) -> tuple[Tensor, Tensor, Tensor]:
    db = hidden.new_empty(0) if bias is None else torch.empty_like(bias)
    return torch.empty_like(hidden), torch.empty_like(weight), db


def _flce_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    hidden, weight, bias, target, ignore_index, eps, z_loss, cap, _, _, chunk, fused, block = inputs
    ctx.mark_non_differentiable(*output[1:])
    ctx.hp = (fused, bias is not None, ignore_index, eps, z_loss, cap, chunk, block)
    if fused:
        ctx.save_for_backward(*output[1:])
    else:
        ctx.save_for_backward(hidden, weight, bias, target)


def _flce_backward(ctx: Any, g: Tensor, *_: Tensor | None) -> tuple[Tensor | None, ...]:
    fused, has_bias, ignore_index, eps, z_loss, cap, chunk, block = ctx.hp
    if fused:
        dx, dw, db = ctx.saved_tensors
        dx, dw = (dx * g).to(dx.dtype), (dw * g).to(dw.dtype)
        db_out = (db * g).to(db.dtype) if has_bias else None
    else:
        hidden, weight, bias, target = ctx.saved_tensors
        dx, dw, db = _flce_bwd_op(hidden, weight, bias, target, g, ignore_index, eps, z_loss, cap, chunk,
                                  block)
        db_out = db if has_bias else None
    return dx, dw, db_out, None, None, None, None, None, None, None, None, None, None


_flce_op.register_autograd(_flce_backward, setup_context=_flce_setup)


def triton_linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    bias: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    normalizer: float | Tensor | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    shift: bool = False,
    chunk_size: int | None = None,
    empty: str = "zero",
    block_size: int | None = None,
) -> Tensor:
    r"""Cross-entropy of the linear head :math:`z = hW^\top + b` without materialising the N×V
    logits: rows in chunks of ``chunk_size``, each chunk's logits by a torch matmul in the
    inputs' dtype and its loss and logit gradient by the cross-entropy Triton kernel. The
    numbers of :func:`losskit.functional.linear_cross_entropy` for these options.

    With ``reduction="mean"``/``"sum"`` and a gradient needed, the gradients of ``hidden``,
    ``weight`` and ``bias`` are accumulated during the forward (the weight's in float32 for half
    inputs) and backward scales them by the incoming scalar. With ``reduction="none"`` the
    forward keeps nothing but the inputs and backward recomputes each chunk's logits with the
    per-token incoming gradient. Once-differentiable (no double backward).

    Args:
        hidden: ``(..., D)`` features, CUDA.
        weight: ``(V, D)`` (``nn.Linear(D, V).weight``).
        target: ``(...)`` class indices.
        bias: ``(V,)`` or ``None``.
        ignore_index: target value that contributes nothing and is not counted.
        label_smoothing: ε in [0, 1].
        reduction: ``"none"`` (per token) | ``"mean"`` (over kept tokens) | ``"sum"``.
        normalizer: divides the ``"sum"`` (e.g. ``count_valid_targets`` over all micro-batches).
        z_loss: λ ≥ 0 of PaLM's log-partition penalty λ·lse² (0 disables it).
        softcap: c > 0 to soft-cap the logits to c·tanh(z/c) (Gemma 2) inside the kernel, or
            ``None``.
        shift: causal-LM labels: position t predicts ``target[..., t+1]``.
        chunk_size: rows per chunk (default 2²² / V, at least 1).
        empty: ``"zero"`` or ``"nan"``: the ``"mean"`` of nothing.
        block_size: columns per step of the kernel (default ``min(32768, V)``).

    Shape:
        ``(..., D)``, ``(V, D)``, ``(...)`` → scalar, or ``(...)`` with ``reduction="none"``.
    """
    check_option("reduction", reduction, REDUCTIONS)
    check_option("empty", empty, EMPTY_POLICIES)
    check_floating("hidden", hidden)
    check_floating("weight", weight)
    check_tensor("target", target)
    check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
    check_number("z_loss", z_loss, low=0.0)
    if softcap is not None:
        check_number("softcap", softcap, low=0.0, low_open=True)
    if weight.ndim != 2 or hidden.ndim < 1 or hidden.shape[-1] != weight.shape[1]:
        raise LossInputError(
            f"hidden has shape {shape_str(hidden)} and weight {shape_str(weight)}; expected hidden "
            "(..., D) and weight (V, D) with the same D. Fix: pass nn.Linear(D, V).weight."
        )
    if target.shape != hidden.shape[:-1]:
        raise LossInputError(
            f"target has shape {shape_str(target)} but hidden {shape_str(hidden)} needs target "
            f"{shape_str(hidden.shape[:-1])}. Fix: reshape target."
        )
    if weight.dtype != hidden.dtype:
        raise LossInputError(f"hidden is {hidden.dtype} but weight is {weight.dtype}. Fix: cast one of them.")
    vocab = weight.shape[0]
    if bias is not None:
        check_floating("bias", bias)
        if bias.shape != (vocab,):
            raise LossInputError(f"bias must have shape ({vocab},), got {shape_str(bias)}.")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise LossInputError(f"chunk_size must be a positive int, got {chunk_size!r}.")
    check_class_index(target, vocab, ignore_index=ignore_index)
    _check_runnable(hidden, weight, target)
    if shift:
        if target.ndim < 1:
            raise LossInputError("shift=True needs a sequence dimension: target (..., T), "
                                 "hidden (..., T, D).")
        hidden, target = hidden[..., :-1, :], target[..., 1:]
    x = hidden.reshape(-1, hidden.shape[-1])
    chunk = chunk_size if chunk_size is not None else max(1, CHUNK_ELEMENTS // max(vocab, 1))
    needs_grad = torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    fused = reduction != "none" and needs_grad
    out, *_ = _flce_op(x, weight, bias, target.reshape(-1), ignore_index, float(label_smoothing),
                       float(z_loss), 0.0 if softcap is None else float(softcap), reduction, empty, chunk,
                       fused, block_size or 0)
    out = out.reshape(target.shape) if reduction == "none" else out
    return out if normalizer is None else reduce(out, reduction, normalizer=normalizer)
