"""Layers and initialisers shared by the regressors (`hkmr.HKMR`, `hmr.HMR`).

`small_init` starts residual outputs near zero, so the first estimate stays near the mean
parameters (docs/hkmr.md).
"""

from __future__ import annotations

from flax import nnx


def small_init(scale=0.01):
    """Kernel initialiser of residual outputs: truncated-normal variance scaling
    (fan_avg) times `scale`, so that the first estimate stays near the mean params."""
    return nnx.initializers.variance_scaling(scale, "fan_avg", "truncated_normal")
