"""The synthetic dataset's pose law: per-joint limits and how poses are drawn.

Each body-pose component is a truncated normal about its mode within `POSE_LIMITS_DEG`;
the global orientation is yaw, pitch and roll (docs/synthetic_data.md, "Pose law").
`sample_body_poses` draws many body poses at once (the pose VAE's training data);
`mean_body_pose` is the regressors' starting pose for this data.
"""

from __future__ import annotations

import functools

import numpy as np

from hkmr_jax.data import augment
from hkmr_jax.data.synthetic._draws import Draws
from smpl_jax import rotation, skeleton

#: Per-joint limits of the body pose (degrees; axis-angle components in the parent's rest
#: frame): name → ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi), (mode_x, mode_y, mode_z)).
#: Left and centre joints; right joints mirror the left ones (`pose_limits`). The table in
#: docs/synthetic_data.md shows the same numbers (a test checks that they agree).
POSE_LIMITS_DEG: dict[str, tuple[tuple[float, float], ...]] = {
    "left_hip": ((-120, 30), (-35, 35), (-20, 45), (-10, 0, 5)),
    "left_knee": ((0, 140), (0, 0), (0, 0), (15, 0, 0)),
    "left_ankle": ((-25, 45), (-20, 20), (-20, 20), (0, 0, 0)),
    "left_foot": ((-20, 20), (0, 0), (0, 0), (0, 0, 0)),
    "spine1": ((-15, 30), (-20, 20), (-15, 15), (3, 0, 0)),
    "spine2": ((-15, 30), (-20, 20), (-15, 15), (3, 0, 0)),
    "spine3": ((-15, 30), (-20, 20), (-15, 15), (3, 0, 0)),
    "neck": ((-30, 40), (-40, 40), (-25, 25), (5, 0, 0)),
    "head": ((-20, 25), (-30, 30), (-15, 15), (0, 0, 0)),
    "left_collar": ((-10, 10), (-15, 15), (-10, 20), (0, 0, 0)),
    "left_shoulder": ((-60, 60), (-90, 40), (-80, 70), (0, -10, -60)),
    "left_elbow": ((-30, 30), (-145, 0), (0, 0), (0, -25, 0)),
    "left_wrist": ((-40, 40), (-20, 30), (-60, 60), (0, 0, 0)),
    "left_hand": ((-10, 10), (-10, 10), (-30, 10), (0, 0, 0)),
}

#: The default pose law (docs/synthetic_data.md): yaw uniform over this many degrees centred on
#: facing the camera (360: every view), and each body-pose component's σ as a share of
#: its limits' range (1/3: the full law).
YAW_RANGE_DEG = 120.0
POSE_SPREAD = 1 / 6
#: Global orientation: pitch and roll N(0, σ) clipped (degrees).
PITCH_SIGMA_DEG, PITCH_MAX_DEG = 8.0, 20.0
ROLL_SIGMA_DEG, ROLL_MAX_DEG = 5.0, 15.0


def pose_limits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Limits of every SMPL joint's axis-angle components, right joints mirrored.

    Returns:
      (lo [24, 3], hi [24, 3], mode [24, 3]) in radians; row 0 (the global orientation,
      drawn separately) is zeros.
    """
    lo, hi, mode = (np.zeros((skeleton.NUM_JOINTS, 3)) for _ in range(3))
    for name, (x, y, z, m) in POSE_LIMITS_DEG.items():
        left = skeleton.JOINT_NAMES.index(name)
        rows = [(left, np.array([x, y, z], float), np.array(m, float))]
        if name.startswith("left_"):
            right = skeleton.JOINT_NAMES.index("right_" + name[5:])
            # Mirroring x → −x maps an axis-angle (a, b, c) to (a, −b, −c) (SPIN's flip).
            sign = np.array([1.0, -1.0, -1.0])
            bounds = np.array([x, y, z], float) * sign[:, None]
            rows.append((right, np.sort(bounds, axis=1), np.array(m, float) * sign))
        for j, b, m_ in rows:
            lo[j], hi[j], mode[j] = np.deg2rad(b[:, 0]), np.deg2rad(b[:, 1]), np.deg2rad(m_)
    return lo, hi, mode


_LO, _HI, _MODE = pose_limits()


def global_orientation(yaw, pitch, roll) -> np.ndarray:
    """Camera-frame axis-angle [3] of ``R_x(π) · R_z(roll) · R_x(pitch) · R_y(yaw)`` (radians).

    Composed as quaternions so that the result is exact near the 180° rotation, where a
    rotation matrix → axis-angle conversion loses the axis.
    """
    eye = np.eye(3)
    q = augment.axis_angle_to_quaternion(np.pi * eye[0])
    for axis, angle in ((2, roll), (0, pitch), (1, yaw)):
        q = augment.quaternion_multiply(q, augment.axis_angle_to_quaternion(angle * eye[axis]))
    return augment.quaternion_to_axis_angle(q)


def check_pose_law(yaw_range=None, pose_spread=None) -> tuple[float, float]:
    """`yaw_range` (degrees) and `pose_spread` as floats, None meaning the default law's,
    or a ValueError naming the bad one."""
    yaw_range = YAW_RANGE_DEG if yaw_range is None else float(yaw_range)
    pose_spread = POSE_SPREAD if pose_spread is None else float(pose_spread)
    if not 0.0 <= yaw_range <= 360.0:
        raise ValueError(f"yaw_range must be 0-360 degrees, got {yaw_range}.")
    if not 0.0 < pose_spread <= 1.0:
        raise ValueError(
            f"pose_spread must be in (0, 1] (σ as a share of each joint's range; "
            f"{POSE_SPREAD:.4g} by default, 1/3 the full law), got {pose_spread}."
        )
    return yaw_range, pose_spread


def _truncated(draws: Draws, mode, lo, hi, spread: float):
    """mode + σ·N(0, 1) with σ = spread·(hi − lo); draws outside [lo, hi] become uniform there."""
    x = mode + spread * (hi - lo) * draws.normal(mode.shape)
    u = draws.uniform(lo, hi)
    return np.where((x < lo) | (x > hi), u, x)


def sample_body_poses(
    rng: np.random.Generator, n: int, pose_spread: float | None = POSE_SPREAD
) -> np.ndarray:
    """[n, 69] body poses (joints 1…23, axis-angle) from the dataset's pose distribution.

    The same law as the ``pose[3:]`` of `sample_parameters` with the same `pose_spread`
    (each component truncated normal around its mode, out-of-range draws uniform within
    the limits), drawn for many poses at once: the pose VAE's training data
    (`configs/pose_prior.py`). None: the default spread.
    """
    _, pose_spread = check_pose_law(pose_spread=pose_spread)
    shape = (n, *_MODE[1:].shape)
    x = _MODE[1:] + pose_spread * (_HI[1:] - _LO[1:]) * rng.standard_normal(shape)
    u = _LO[1:] + (_HI[1:] - _LO[1:]) * rng.random(shape)
    body = np.where((x < _LO[1:]) | (x > _HI[1:]), u, x)
    return body.reshape(n, -1).astype(np.float32)


@functools.cache
def mean_body_pose(pose_spread: float | None = POSE_SPREAD) -> np.ndarray:
    """[23, 3] the mean body pose (axis-angle per joint) of the dataset's pose law with
    `pose_spread` (None: the default): the chordal mean (element-wise mean of 100,000
    drawn rotation matrices projected back onto SO(3)) of each joint. The regressors'
    starting pose for this data, as SPIN's `smpl_mean_params.npz` is the mean of its
    training poses."""
    poses = sample_body_poses(np.random.default_rng(0), 100_000, pose_spread)
    poses = poses.reshape(-1, 23, 3)
    mean = np.asarray(rotation.axis_angle_to_matrix(poses), np.float64).mean(axis=0)
    u, _, vt = np.linalg.svd(mean)
    nearest = u @ vt  # the closest rotations (each mean is near one: no reflection)
    return np.asarray(rotation.matrix_to_axis_angle(nearest.astype(np.float32)), np.float32)


def sample_body_pose(d: Draws, pose_spread: float) -> np.ndarray:
    """[23, 3] one body pose (joints 1…23, axis-angle) drawn from `d` (`sample_parameters`)."""
    return _truncated(d, _MODE[1:], _LO[1:], _HI[1:], pose_spread)


def sample_global_orientation(d: Draws, yaw_range: float) -> np.ndarray:
    """[3] camera-frame axis-angle: yaw uniform over `yaw_range` degrees, pitch and roll
    clipped normals (`PITCH_*`, `ROLL_*`), drawn from `d`."""
    yaw = np.deg2rad(yaw_range) * d.uniform(-0.5, 0.5)
    pitch, roll = d.normal(2) * np.deg2rad([PITCH_SIGMA_DEG, ROLL_SIGMA_DEG])
    pitch = np.clip(pitch, -np.deg2rad(PITCH_MAX_DEG), np.deg2rad(PITCH_MAX_DEG))
    roll = np.clip(roll, -np.deg2rad(ROLL_MAX_DEG), np.deg2rad(ROLL_MAX_DEG))
    return global_orientation(yaw, pitch, roll)
