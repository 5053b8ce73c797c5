"""Rotation conversions: axis-angle, rotation matrices, 6D (Zhou et al. 2019), quaternions.

All functions take arrays with any leading batch shape. Quaternions are (w, x, y, z).
Every conversion has a finite value *and gradient* everywhere, including the identity
(angle 0), where the textbook formulas divide by zero: those places use Taylor series
selected with the "double `where`" trick, so that the unused branch never produces a NaN
that would leak into the gradient.
"""

from __future__ import annotations

import jax.numpy as jnp


def _small_angle_threshold(dtype) -> float:
    """θ² below which 3-term Taylor series are exact to machine precision.

    The first dropped term is O(θ⁶)/5040 relative; with θ² < √eps it is below eps³ᐟ².
    """
    return float(jnp.finfo(dtype).eps) ** 0.5


def _sinc_and_versine(theta_sq):
    """Return sin(θ)/θ and (1 − cos θ)/θ² from θ², finite (with gradients) at θ = 0.

    (1 − cos θ)/θ² is computed as ½·(sin(θ/2)/(θ/2))², which does not cancel
    catastrophically for small θ as 1 − cos θ does in float32.
    """
    small = theta_sq < _small_angle_threshold(theta_sq.dtype)
    safe_sq = jnp.where(small, jnp.ones_like(theta_sq), theta_sq)
    theta = jnp.sqrt(safe_sq)
    half = 0.5 * theta
    sinc = jnp.where(small, 1.0 - theta_sq / 6.0 + theta_sq**2 / 120.0, jnp.sin(theta) / theta)
    half_sinc = jnp.sin(half) / half
    versine = jnp.where(
        small, 0.5 - theta_sq / 24.0 + theta_sq**2 / 720.0, 0.5 * half_sinc * half_sinc
    )
    return sinc, versine


def _skew(v):
    """[..., 3] → [..., 3, 3] cross-product matrix: skew(v) @ u = v × u."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = jnp.zeros_like(x)
    return jnp.stack([o, -z, y, z, o, -x, -y, x, o], axis=-1).reshape(v.shape[:-1] + (3, 3))


def axis_angle_to_matrix(axis_angle):
    """Rodrigues' formula: R = I + sinc(θ)·K + versine(θ)·K², K = skew(r), θ = |r|.

    Args:
      axis_angle: [..., 3] rotation vectors (axis × angle, radians).

    Returns:
      [..., 3, 3] rotation matrices.
    """
    theta_sq = jnp.sum(axis_angle * axis_angle, axis=-1)
    sinc, versine = _sinc_and_versine(theta_sq)
    k = _skew(axis_angle)
    eye = jnp.eye(3, dtype=axis_angle.dtype)
    return eye + sinc[..., None, None] * k + versine[..., None, None] * (k @ k)


def matrix_to_quaternion(matrix):
    """[..., 3, 3] rotation matrices → [..., 4] unit quaternions (w, x, y, z), w ≥ 0.

    Shepperd's method: of the four algebraically equal candidates, use the one whose
    denominator is largest, so that the result stays accurate at every angle (near π too).
    """
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4·q_i² for i = w, x, y, z; each is ≥ 1 for the largest component.
    four_sq = jnp.stack(
        [
            1.0 + m00 + m11 + m22,
            1.0 + m00 - m11 - m22,
            1.0 - m00 + m11 - m22,
            1.0 - m00 - m11 + m22,
        ],
        axis=-1,
    )
    # Row i: 4·q_i·(w, x, y, z) computed from the matrix entries.
    candidates = jnp.stack(
        [
            jnp.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], axis=-1),
            jnp.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], axis=-1),
            jnp.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], axis=-1),
            jnp.stack([m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]], axis=-1),
        ],
        axis=-2,
    )
    best = jnp.argmax(four_sq, axis=-1)
    chosen = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    # The chosen row has 4·q_i² ≥ 1, so the norm is never 0.
    quat = chosen / jnp.linalg.norm(chosen, axis=-1, keepdims=True)
    return jnp.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_matrix(quaternion):
    """[..., 4] quaternions (w, x, y, z), normalised here → [..., 3, 3] rotation matrices."""
    q = quaternion / jnp.linalg.norm(quaternion, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return jnp.stack(rows, axis=-1).reshape(q.shape[:-1] + (3, 3))


def axis_angle_to_quaternion(axis_angle):
    """[..., 3] rotation vectors → [..., 4] unit quaternions (w, x, y, z)."""
    theta_sq = jnp.sum(axis_angle * axis_angle, axis=-1)
    small = theta_sq < _small_angle_threshold(theta_sq.dtype)
    safe_sq = jnp.where(small, jnp.ones_like(theta_sq), theta_sq)
    half = 0.5 * jnp.sqrt(safe_sq)
    # sin(θ/2)/θ, with its Taylor series 1/2 − θ²/48 + θ⁴/3840 near 0.
    scale = jnp.where(
        small, 0.5 - theta_sq / 48.0 + theta_sq**2 / 3840.0, jnp.sin(half) / (2 * half)
    )
    w = jnp.where(small, 1.0 - theta_sq / 8.0 + theta_sq**2 / 384.0, jnp.cos(half))
    return jnp.concatenate([w[..., None], axis_angle * scale[..., None]], axis=-1)


def quaternion_to_axis_angle(quaternion):
    """[..., 4] quaternions (w, x, y, z) → [..., 3] rotation vectors with angle in [0, π].

    θ = 2·atan2(|v|, w) is accurate at every angle (unlike acos(w) near 0 or asin near π).
    """
    q = quaternion / jnp.linalg.norm(quaternion, axis=-1, keepdims=True)
    q = jnp.where(q[..., :1] < 0, -q, q)  # the same rotation, with angle ≤ π
    w, v = q[..., 0], q[..., 1:]
    v_sq = jnp.sum(v * v, axis=-1)
    small = v_sq < _small_angle_threshold(v_sq.dtype)
    safe_norm = jnp.sqrt(jnp.where(small, jnp.ones_like(v_sq), v_sq))
    # θ/|v|; near |v| = 0 (w ≈ 1): 2/w · (1 − |v|²/(3w²) + |v|⁴/(5w⁴)), from atan's series.
    r = v_sq / (w * w)
    near_zero = 2.0 / w * (1.0 - r / 3.0 + r * r / 5.0)
    scale = jnp.where(small, near_zero, 2.0 * jnp.arctan2(safe_norm, w) / safe_norm)
    return v * scale[..., None]


def matrix_to_axis_angle(matrix):
    """[..., 3, 3] rotation matrices → [..., 3] rotation vectors, angle in [0, π]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rotation_6d_to_matrix(rot6d):
    """Zhou et al. (CVPR 2019) continuous 6D representation → rotation matrices.

    Args:
      rot6d: [..., 6] = (a1, a2), the first two *columns* of the matrix before
        Gram–Schmidt (Zhou et al., pytorch3d). SPIN's `rot6d_to_rotmat` instead reshapes
        to (3, 2), i.e. interleaves the columns: its x equals ours at [0, 2, 4, 1, 3, 5].

    Returns:
      [..., 3, 3] with columns b1, b2, b3 = b1 × b2.
    """
    a1, a2 = rot6d[..., 0:3], rot6d[..., 3:6]
    b1 = a1 / jnp.linalg.norm(a1, axis=-1, keepdims=True)
    a2 = a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2 / jnp.linalg.norm(a2, axis=-1, keepdims=True)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-1)


def matrix_to_rotation_6d(matrix):
    """[..., 3, 3] rotation matrices → [..., 6]: the first two columns, column-major."""
    return jnp.concatenate([matrix[..., :, 0], matrix[..., :, 1]], axis=-1)
