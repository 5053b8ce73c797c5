"""Cameras and joint sets: weak-perspective and SPIN's perspective camera, keypoint units,
and SPIN's J24 joints from a mesh.

Keypoints live in the crop's normalised [-1, 1] coordinates; `keypoints_to_pixels` gives
pixels of an S-pixel crop (SMPLify's virtual 224-px crop, the occluders' input). The
perspective camera is SPIN's (focal length 5000 px, principal point at the crop centre,
identity rotation); docs/smplify.md explains the weak-perspective ↔ translation mapping.
"""

from __future__ import annotations

import jax
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


def keypoints_to_pixels(keypoints, img_res: float = 224):
    """Normalised [-1, 1] crop coordinates → continuous pixel coordinates of an
    ``img_res`` crop, in [0, img_res] (SPIN's ``0.5·img_res·(x + 1)``). Any columns after
    x, y (a confidence) pass through.

    Args:
      keypoints: [..., D], D ≥ 2.

    Returns:
      [..., D].
    """
    keypoints = jnp.asarray(keypoints)
    xy = 0.5 * img_res * (keypoints[..., :2] + 1.0)
    if keypoints.shape[-1] == 2:
        return xy
    return jnp.concatenate([xy, keypoints[..., 2:]], axis=-1)


def keypoints_to_normalised(keypoints, img_res: float = 224):
    """Pixels of an ``img_res`` crop → normalised [-1, 1] (inverse of `keypoints_to_pixels`)."""
    keypoints = jnp.asarray(keypoints)
    xy = keypoints[..., :2] / (0.5 * img_res) - 1.0
    return jnp.concatenate([xy, keypoints[..., 2:]], axis=-1)


def weak_perspective_to_translation(camera, focal_length: float = 5000.0, img_res: float = 224):
    """The camera translation that projects like the weak-perspective camera ``camera``.

    The project's weak perspective is ``x = s·X_xy + (tx, ty)`` in [-1, 1] crop units
    (`geometry.weak_perspective`, `RegressorOutput.camera`). The perspective camera of
    `perspective_projection` gives ``x = (2f/img_res)·(X + t)_xy / (Z + t_z)``; with
    ``t_z = 2f/(img_res·s)`` and ``t_xy = (tx, ty)/s`` it agrees to first order in Z/t_z.
    SPIN's formula ``[tx, ty, 2f/(img_res·s + 1e-9)]`` is the same for HMR's camera
    ``s·(X + t)``, whose offsets are inside the scale.

    Args:
      camera: [..., 3] (s, tx, ty).

    Returns:
      [..., 3] translation in metres.
    """
    camera = jnp.asarray(camera)
    s = camera[..., :1]
    tz = 2.0 * focal_length / (img_res * s + 1e-9)
    return jnp.concatenate([camera[..., 1:] / (s + 1e-9), tz], axis=-1)


def translation_to_weak_perspective(cam_t, focal_length: float = 5000.0, img_res: float = 224):
    """Inverse of `weak_perspective_to_translation`: [..., 3] t → [..., 3] (s, tx, ty)."""
    cam_t = jnp.asarray(cam_t)
    s = 2.0 * focal_length / (img_res * cam_t[..., 2:] + 1e-9)
    return jnp.concatenate([s, s * cam_t[..., :2]], axis=-1)


def perspective_projection(points, cam_t, focal_length: float = 5000.0, img_res: float = 224):
    """SPIN's ``perspective_projection`` with identity rotation, centre at the crop's centre.

    Args:
      points: [B, J, 3] metres.
      cam_t: [B, 3] metres.

    Returns:
      [B, J, 2] pixels of the ``img_res`` crop.
    """
    p = points + cam_t[:, None, :]
    return focal_length * p[..., :2] / p[..., 2:] + 0.5 * img_res


def estimate_translation(
    joints, keypoints, focal_length: float = 5000.0, img_res: float = 224, weights=None
):
    """Camera translation that best projects ``joints`` onto ``keypoints`` (SPIN's
    ``estimate_translation``): the confidence-weighted linear least squares of
    ``f·(X + t_x) − (u − c)(Z + t_z) = 0`` (and likewise for y), solved per example.

    Args:
      joints: [B, J, 3] model joints, metres.
      keypoints: [B, J, 3] normalised [-1, 1] x, y and a confidence (SPIN weights the
        equations by √confidence).
      weights: optional [J] multipliers of the confidence (e.g. the model joints' mask).

    Returns:
      [B, 3]. Examples with fewer than two usable keypoints get a finite but meaningless
      translation (a tiny ridge keeps the 3×3 system solvable).
    """
    kp = keypoints_to_pixels(keypoints, img_res)
    conf = kp[..., 2] if weights is None else kp[..., 2] * jnp.asarray(weights)
    w = jnp.sqrt(jnp.maximum(conf, 0.0))  # [B, J]
    c = 0.5 * img_res
    du, dv = kp[..., 0] - c, kp[..., 1] - c
    zeros, f = jnp.zeros_like(du), jnp.full_like(du, focal_length)
    # Rows per joint: [f, 0, −du]·t = du·Z − f·X and [0, f, −dv]·t = dv·Z − f·Y.
    q = jnp.concatenate(
        [jnp.stack([f, zeros, -du], -1), jnp.stack([zeros, f, -dv], -1)], axis=1
    )  # [B, 2J, 3]
    rhs = jnp.concatenate(
        [du * joints[..., 2] - f * joints[..., 0], dv * joints[..., 2] - f * joints[..., 1]],
        axis=1,
    )
    ww = jnp.concatenate([w, w], axis=1)
    q, rhs = q * ww[..., None], rhs * ww
    hi = jax.lax.Precision.HIGHEST
    a = jnp.einsum("bki,bkj->bij", q, q, precision=hi)
    b = jnp.einsum("bki,bk->bi", q, rhs, precision=hi)
    ridge = 1e-9 * focal_length**2 * jnp.eye(3, dtype=a.dtype)
    return jnp.linalg.solve(a + ridge, b[..., None])[..., 0]
