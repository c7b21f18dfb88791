"""Test set-up: peers run on CPU; Keras uses the torch backend; one torch thread per test
process (pytest -n 2 already uses both cores, and tiny ops are slower when oversubscribed)."""

import contextlib
import os
from collections.abc import Iterator

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(params=["native", "torch"])
def fused_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test once with the compiled C kernels of the fused path and once with its PyTorch
    chunks (the path taken where no C compiler is available)."""
    from losskit import _native

    if request.param == "native" and _native.library() is None:
        pytest.skip(f"native kernels unavailable: {_native.status()}")
    with _native.enabled(request.param == "native"), _low_memory_cross_entropy():
        yield request.param


@contextlib.contextmanager
def _low_memory_cross_entropy() -> Iterator[None]:
    from losskit.losses import classification

    before = classification._SMALL_LOGITS
    classification._SMALL_LOGITS = 0
    try:
        yield
    finally:
        classification._SMALL_LOGITS = before


@pytest.fixture
def low_memory_cross_entropy() -> Iterator[None]:
    """``cross_entropy`` on its low-memory path whatever the size (small CPU inputs otherwise
    take PyTorch's kernel), for tests of that path on small tensors."""
    with _low_memory_cross_entropy():
        yield
