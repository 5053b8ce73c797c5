"""Tests for hkmr_jax.geometry's keypoint units (its cameras: fitting/test_smplify.py)."""

import jax.numpy as jnp
import numpy as np

from hkmr_jax import geometry


def test_keypoint_conversion_round_trip():
    kp = jnp.array([[[-1.0, 1.0, 0.5], [0.0, 0.25, 1.0]]])
    px = geometry.keypoints_to_pixels(kp)
    np.testing.assert_allclose(px, [[[0.0, 224.0, 0.5], [112.0, 140.0, 1.0]]])
    np.testing.assert_allclose(geometry.keypoints_to_normalised(px), kp)


def test_keypoints_to_pixels_takes_xy_alone():
    # The occluders pass [..., 2]; a confidence column is optional, not required.
    xy = jnp.array([[-1.0, 1.0], [0.0, 0.25]])
    np.testing.assert_allclose(geometry.keypoints_to_pixels(xy, 64), [[0.0, 64.0], [32.0, 40.0]])
