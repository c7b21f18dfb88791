"""Test set-up: peers run on CPU; Keras uses the torch backend; one torch thread per test
process (pytest -n 2 already uses both cores, and tiny ops are slower when oversubscribed)."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)
