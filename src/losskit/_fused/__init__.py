"""Fused fast paths: custom autograd Functions with closed-form gradients."""
