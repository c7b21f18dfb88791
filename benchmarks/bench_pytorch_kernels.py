"""Losses PyTorch has a kernel for, against that kernel (forward+backward, float32, CPU), at
training-sized shapes and with the options people pass: class weights, ``pos_weight``, label
smoothing, ``ignore_index``, small batches where the Python around a call is most of its time.
A drop-in loss should not be slower than the call it replaces; the ratio is losskit's time over
PyTorch's, timed round-robin in one process under the steady allocator.

Run: ``.venv/bin/python -m benchmarks.bench_pytorch_kernels [--repeats N]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

import losskit.functional as LF
from benchmarks._harness import compare, format_rows, machine
from losskit.bench.harness import steady_allocator

Case = tuple[tuple[Tensor, ...], Callable[..., Tensor], Callable[..., Tensor]]


def cases() -> dict[str, Case]:
    g = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g)

    def labels(n: int, c: int) -> Tensor:
        return torch.randint(0, c, (n,), generator=g)

    def binary(*shape: int) -> Tensor:
        return (torch.rand(*shape, generator=g) < 0.3).float()

    out: dict[str, Case] = {}
    for n, c in ((128, 10), (256, 1000), (16384, 64)):
        x, y = randn(n, c), labels(n, c)
        out[f"cross_entropy {n}x{c}"] = ((x, y), F.cross_entropy, LF.cross_entropy)
    x, y, w = randn(16384, 64), labels(16384, 64), torch.rand(64, generator=g) + 0.5
    out["cross_entropy 16384x64 weight"] = (
        (x, y), lambda a, b: F.cross_entropy(a, b, weight=w), lambda a, b: LF.cross_entropy(a, b, weight=w))
    out["cross_entropy 16384x64 label_smoothing=0.1"] = (
        (x, y), lambda a, b: F.cross_entropy(a, b, label_smoothing=0.1),
        lambda a, b: LF.cross_entropy(a, b, label_smoothing=0.1))
    lp = torch.log_softmax(x, 1)
    out["nll 16384x64"] = ((lp, y), F.nll_loss, LF.nll_loss)
    out["nll 16384x64 weight"] = (
        (lp, y), lambda a, b: F.nll_loss(a, b, weight=w), lambda a, b: LF.nll_loss(a, b, weight=w))
    out["multi_margin 16384x64"] = ((x, y), F.multi_margin_loss, LF.multi_margin_loss)
    b = binary(16384, 64)
    out["multilabel_soft_margin 16384x64"] = ((x, b), F.multilabel_soft_margin_loss,
                                              LF.multilabel_soft_margin_loss)

    xb, tb = randn(256, 80), binary(256, 80)
    out["bce_with_logits 256x80"] = ((xb, tb), F.binary_cross_entropy_with_logits,
                                     LF.binary_cross_entropy_with_logits)
    xb, tb = randn(8192, 128), binary(8192, 128)
    pw, wc = torch.rand(128, generator=g) + 0.5, torch.rand(128, generator=g)
    out["bce_with_logits 8192x128 pos_weight"] = (
        (xb, tb), lambda a, t: F.binary_cross_entropy_with_logits(a, t, pos_weight=pw),
        lambda a, t: LF.binary_cross_entropy_with_logits(a, t, pos_weight=pw))
    out["bce_with_logits 8192x128 weight"] = (
        (xb, tb), lambda a, t: F.binary_cross_entropy_with_logits(a, t, weight=wc),
        lambda a, t: LF.binary_cross_entropy_with_logits(a, t, weight=wc))
    out["bce 8192x128 weight"] = (
        (torch.sigmoid(xb), tb), lambda a, t: F.binary_cross_entropy(a, t, weight=wc),
        lambda a, t: LF.binary_cross_entropy(a, t, weight=wc))

    t_max, n, c, s = 100, 32, 28, 30
    logp = torch.log_softmax(randn(t_max, n, c), 2)
    targets = torch.randint(1, c, (n, s), generator=g)
    in_len, tgt_len = torch.full((n,), t_max), torch.randint(10, s, (n,), generator=g)
    out[f"ctc T={t_max} N={n} C={c}"] = (
        (logp, targets), lambda a, t: F.ctc_loss(a, t, in_len, tgt_len),
        lambda a, t: LF.ctc_loss(a, t, in_len, tgt_len))

    e1, e2, e3 = randn(8192, 128), randn(8192, 128), randn(8192, 128)
    sign = torch.where(torch.rand(8192, generator=g) < 0.5, 1.0, -1.0)
    out["cosine_embedding 8192x128"] = (
        (e1, e2), lambda a, p: F.cosine_embedding_loss(a, p, sign),
        lambda a, p: LF.cosine_embedding_loss(a, p, sign))
    out["triplet_margin 8192x128"] = (
        (e1, e2), lambda a, p: F.triplet_margin_loss(a, p, e3), lambda a, p: LF.triplet_margin_loss(a, p, e3))

    v1, v2 = randn(262144), randn(262144)
    out["kl_div 16384x64 batchmean log_target"] = (
        (lp, lp.flip(0)), lambda a, t: F.kl_div(a, t, reduction="batchmean", log_target=True),
        lambda a, t: LF.kl_div(a, t, reduction="batchmean", log_target=True))
    out["poisson_nll 262144 full"] = (
        (v1.exp(), v2.exp().round()), lambda a, t: F.poisson_nll_loss(a, t, log_input=False, full=True),
        lambda a, t: LF.poisson_nll_loss(a, t, log_input=False, full=True))
    var = torch.rand(262144, generator=g) + 0.1
    out["gaussian_nll 262144 full"] = (
        (v1, v2), lambda a, t: F.gaussian_nll_loss(a, t, var, full=True),
        lambda a, t: LF.gaussian_nll_loss(a, t, var, full=True))
    out["smooth_l1 8192x128 beta=0.5"] = (
        (e1, e2), lambda a, t: F.smooth_l1_loss(a, t, beta=0.5),
        lambda a, t: LF.smooth_l1_loss(a, t, beta=0.5))
    out["mse 256x10"] = ((randn(256, 10), randn(256, 10)), F.mse_loss, LF.mse_loss)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    steady_allocator()
    rows = []
    for name, (inputs, theirs, ours) in cases().items():
        rows += compare(name, {"torch": theirs, "losskit": ours}, list(inputs), repeats=args.repeats)
    print(f"Machine: {machine()}\n")
    print(format_rows(rows))


if __name__ == "__main__":
    main()
