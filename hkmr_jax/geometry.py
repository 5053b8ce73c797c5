"""Cameras and joint sets: weak-perspective projection, and SPIN's J24 joints from a mesh."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import smpl_jax
from smpl_jax import skeleton

PELVIS_J24 = skeleton.J24_NAMES.index("pelvis")


def weak_perspective(points, camera):
    """x = s·Π(X) + ρ (paper §3.2; HMR's camera).

    Args:
      points: [..., J, 3].
      camera: [..., 3] = (s, ρ_x, ρ_y).

    Returns:
      [..., J, 2] in the crop's normalised [-1, 1] coordinates.
    """
    return camera[..., None, :1] * points[..., :2] + camera[..., None, 1:]


def j24_from_h36m(h36m_joints):
    """Put H36M-17 joints [..., 17, 3] into SPIN's J24 slots → ([..., 24, 3], mask [24]).

    Slots without an H36M counterpart are zero and masked out (as in SPIN's H36M files).
    """
    index = np.asarray(skeleton.H36M_TO_J24)
    shape = (*h36m_joints.shape[:-2], len(skeleton.J24_NAMES), h36m_joints.shape[-1])
    joints = jnp.zeros(shape, h36m_joints.dtype).at[..., index, :].set(h36m_joints)
    mask = np.zeros(len(skeleton.J24_NAMES), np.float32)
    mask[index] = 1.0
    return joints, mask


def j24_joints(vertices, h36m_regressor):
    """J24 joints of meshes through a 17-joint Human3.6M regressor.

    Args:
      vertices: [..., V, 3].
      h36m_regressor: [17, V].

    Returns:
      (joints [..., 24, 3], mask [24]).
    """
    return j24_from_h36m(smpl_jax.regress_joints(vertices, h36m_regressor))


def root_centred(joints_j24):
    """Subtract the pelvis (J24 slot 14): [..., 24, D] → [..., 24, D]."""
    return joints_j24 - joints_j24[..., PELVIS_J24 : PELVIS_J24 + 1, :]
