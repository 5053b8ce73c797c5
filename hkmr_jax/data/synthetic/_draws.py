"""An example's random numbers, drawn in two generator calls and handed out in a fixed order.

Shared by the pose law and the appearance samplers of `hkmr_jax.data.synthetic`.
"""

from __future__ import annotations

import math

import numpy as np


class Draws:
    """An example's random numbers, drawn in two calls and handed out in a fixed order.

    Two generator calls instead of ~30 small ones (the per-call overhead dominated the
    sampling); every value keeps its place in the sequence whatever branch is taken.
    """

    NUM_UNIFORM, NUM_NORMAL = 320, 96

    def __init__(self, rng: np.random.Generator):
        self._u, self._z = rng.random(self.NUM_UNIFORM), rng.standard_normal(self.NUM_NORMAL)
        self._iu = self._iz = 0

    def uniform(self, lo=0.0, hi=1.0, shape=None):
        """U(lo, hi) of `shape` (default: the shape of `lo`, else of `hi`, else a scalar)."""
        lo, hi = np.asarray(lo), np.asarray(hi)
        shape = (lo.shape or hi.shape) if shape is None else shape
        n = math.prod(shape)
        u = self._u[self._iu : self._iu + n]
        self._iu += n
        return lo + (hi - lo) * (u.reshape(shape) if shape else u[0])

    def normal(self, shape):
        """N(0, 1) of `shape`."""
        shape = (shape,) if isinstance(shape, int) else shape
        n = math.prod(shape)
        z = self._z[self._iz : self._iz + n]
        self._iz += n
        return z.reshape(shape)
