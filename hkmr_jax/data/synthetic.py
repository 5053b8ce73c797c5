"""The built-in synthetic dataset: rendered people with exact SMPL and joint labels.

The project's default dataset (tests, CI and the README's main command train and evaluate
on it): every example is a person crop rendered on the fly from the built-in body
(`smpl_jax.synthetic`, or any `smpl_jax.SMPL` given with its Human3.6M regressor) in a
random plausible pose, shape, orientation, framing, lighting, clothing and background,
with the labels of `docs/CONTRACT_data.md`::

    ds = SyntheticDataset("train", size=128, seed=0)
    ex = ds[12345]           # dict of numpy arrays, a function of (seed, split, i) and the law
    exs = ds.render_batch(range(64))       # the same examples as ds[0], …, ds[63]

Determinism: example ``i`` of a split is a pure function of ``(seed, split, i)`` (and
of the pose law and `block_size`, below). Its random numbers come from
``np.random.default_rng([seed, split_id, i])`` (train 0, test 1: the splits draw from
disjoint seed streams), so examples can be read in any order, by any number of
workers, and are i.i.d.: there is nothing to gain from shuffling the indices.

Batching (`block_size` B): the SMPL forward pass is one jitted program of batch shape
[B] (compiled once; short batches are padded). B = 1 (the default) is the fastest for
random access; with B > 1, `render_batch` runs the forward for B requested examples at a
time (whatever the indices: a shuffled batch works too) and ``ds[i]`` computes examples
i … i + B − 1 at once and caches them, so sequential reads (evaluation, `cache`) are
~30 % faster, but a single random read pays a B-batch forward. XLA computes each row of a
batched program independently of the other rows, so an example is the same bit for bit
whichever batch or order it comes in (a test checks this); different B are different
programs, whose examples agree to float32 rounding (~1e-7), hence B is part of the
dataset's definition.

Labels (all in SPIN's camera frame: x right, y down, z away from the camera):

* ``pose`` [72]: the global orientation (axis-angle, camera frame) then the 23 body
  joints; the mesh is ``body(betas, pose)`` with no translation. ``has_smpl`` = 1.
* ``betas`` [10]: N(0, 1), clipped to ±2.5.
* ``joints_3d`` [24, 4]: J24 joints from the body's 17-joint Human3.6M regressor
  (`geometry.j24_joints`) on that mesh, centred on the pelvis (J24 slot 14), metres;
  confidence = the J24 mask (1 on the 17 slots with an H36M joint, whether visible in
  the image or not; the 7 other slots are all zeros). ``has_3d`` = 1.
* ``keypoints`` [24, 3]: ``geometry.weak_perspective`` of the (not centred) J24 joints
  with the example's camera, in the crop's [-1, 1] coordinates; confidence = mask ×
  visible (`render.keypoint_visibility`: not hidden behind the rendered surface) ×
  inside the crop. Slots without an H36M joint are all zeros. Keypoints with
  confidence 0 keep their projected position.
* ``camera`` float32 [3]: ``(s, tx, ty)``, the weak-perspective camera that rendered the
  image and projects the joints: **an extra key of the synthetic set only** (not in
  the data contract; useful to tests and the demo).
* ``seg_mask``, ``seg_parts`` uint8 [S, S] (only with ``segmentation=True``): the
  person's silhouette and six body parts (`hkmr_jax.segmentation`) rendered with SPIN's
  perspective camera (f = 5000) from the true mesh and ``camera``: the `lsp_seg`
  evaluator's ground truth. They follow the evaluator's renderer rather than the
  image's weak-perspective one; the two silhouettes differ by under a pixel at the
  body's edge.
* ``image`` uint8 [S, S, 3], ``dataset_id`` int32 [] (constructor argument),
  ``example_id`` int64 [] (= i).

The image is rendered with ``render.Camera.weak_perspective(s, tx, ty)`` (identity
rotation) from the mesh of the label pose, so the keypoints are the projections of the
3D joints under the very camera that drew the body.

Pose law (two dataset arguments, recorded in its `config`): each body-joint axis-angle
component is drawn as ``mode + σ·N(0, 1)`` with σ = ``pose_spread`` · (hi − lo) (default
1/6), and replaced by a uniform draw in [lo, hi] if it falls outside: every component
stays within the limits below (degrees; components of the axis-angle vector
in the parent's rest frame, SMPL axes: x the body's left, y up, z forward). Rows list
the left and centre joints; a right joint mirrors its left twin (x range unchanged; y
and z ranges negated, as in SPIN's pose flip).

===============  ===========  ===========  ===========  ================  =================
joint            x (°)        y (°)        z (°)        mode (x, y, z)    movement
===============  ===========  ===========  ===========  ================  =================
left_hip         -120 … 30    -35 … 35     -20 … 45     (-10, 0, 5)       flexion is −x
left_knee        0 … 140      0 … 0        0 … 0        (15, 0, 0)        hinge, flexion +x
left_ankle       -25 … 45     -20 … 20     -20 … 20     (0, 0, 0)         toes up is −x
left_foot        -20 … 20     0 … 0        0 … 0        (0, 0, 0)         toes
spine1           -15 … 30     -20 … 20     -15 … 15     (3, 0, 0)         bending forward +x
spine2           -15 … 30     -20 … 20     -15 … 15     (3, 0, 0)
spine3           -15 … 30     -20 … 20     -15 … 15     (3, 0, 0)
neck             -30 … 40     -40 … 40     -25 … 25     (5, 0, 0)         nodding +x
head             -20 … 25     -30 … 30     -15 … 15     (0, 0, 0)
left_collar      -10 … 10     -15 … 15     -10 … 20     (0, 0, 0)         shrug +z
left_shoulder    -60 … 60     -90 … 40     -80 … 70     (0, -10, -60)     arm down −z, fwd −y
left_elbow       -30 … 30     -145 … 0     0 … 0        (0, -25, 0)       flexion −y
left_wrist       -40 … 40     -20 … 30     -60 … 60     (0, 0, 0)
left_hand        -10 … 10     -10 … 10     -30 … 10     (0, 0, 0)
===============  ===========  ===========  ===========  ================  =================

Global orientation (``pose[:3]``): ``R = R_x(180°) · R_z(roll) · R_x(pitch) · R_y(yaw)``
in SMPL axes: yaw about the body's vertical (0: facing the camera) uniform in
[−``yaw_range``/2, ``yaw_range``/2) (default 120°: within ±60° of facing the camera),
pitch (camera elevation) N(0, 8°) clipped to ±20°, roll (in-plane tilt, like
real person crops) N(0, 5°) clipped to ±15°; the 180° about x is SPIN's camera
convention (upright people have the head at negative y).

Why the default law is narrow: with every view (``yaw_range=360``) and σ = (hi − lo)/3
(``pose_spread=1/3``, the full law, closer to Human3.6M's variety) the default CPU-sized
model (small CNN at 64 px, ~15 minutes on 2 cores) learns the framing but not the
articulation: its PA-MPJPE is no better than the law's mean pose's (README, "What
limits it"). On the default law the same model learns the pose (PA-MPJPE 104 mm
against the mean pose's 133). Every law draws the same random numbers in the same
order, so an example's shape, clothing, lighting, background and fill share do not
depend on the law; only its yaw and body pose do.

Camera: the person's larger image extent fills U(60 %, 95 %) of the crop
(``s = 2·fill / max(width, height)`` of the mesh in metres), its centre offset from the
crop's by U(−4 %, 4 %) of the crop in x and in y (``tx, ty``); at high fills and
offsets a hand or foot may leave the crop, and its keypoint confidence is then 0.

Appearance: per-part colours (the part of a vertex is the argmax of its skinning
weights; the head's crown and back are "hair"), grouped like clothing: skin (head, neck,
hands; forearms with short sleeves, shins with shorts), top, bottom, shoes and hair
colours drawn per example, each part jittered in hue and brightness so parts stay
distinguishable. Flat Lambert shading (a face covers about a pixel at crop resolution)
with a random light direction (from the camera's side, mostly from above), ambient
U(0.3, 0.6) and diffuse U(0.45, 0.8). Backgrounds: one of smooth colour noise, a linear
gradient, soft stripes or tiles, optionally with a floor of another colour, plus fine
grain noise over the whole image. No anti-aliasing (rendered at crop resolution) and no
self-collision handling (limbs may interpenetrate at extreme poses).

Reading the same examples many times (the test split, evaluated every few hundred
steps): `cache` renders them once into memory-mapped ``.npy`` files read by
`CachedDataset` (the same arrays, no rendering).

Speed: see `benchmarks/synthetic_data.py`.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import math
import os
import pathlib
import shutil
import sys
import threading
import uuid
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from hkmr_jax import geometry, render
from hkmr_jax.data import augment
from smpl_jax import skeleton

#: Split name → id in the seed stream (the examples of different splits are disjoint).
SPLITS: dict[str, int] = {"train": 0, "test": 1}
#: Default lengths: train is as long as any run asks for; test is a fixed benchmark.
DEFAULT_LENGTH: dict[str, int] = {"train": 2**31, "test": 1000}

#: Crop sizes accepted (pixels); 64-224 is the intended range.
MIN_SIZE, MAX_SIZE = 32, 1024

#: Per-joint limits of the body pose (degrees; axis-angle components in the parent's rest
#: frame): name → ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi), (mode_x, mode_y, mode_z)).
#: Left and centre joints; right joints mirror the left ones (`pose_limits`). The module
#: docstring's table shows the same numbers (a test checks that they agree).
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

#: The default pose law (module docstring): yaw uniform over this many degrees centred on
#: facing the camera (360: every view), and each body-pose component's σ as a share of
#: its limits' range (1/3: the full law).
YAW_RANGE_DEG = 120.0
POSE_SPREAD = 1 / 6
#: Global orientation: pitch and roll N(0, σ) clipped (degrees).
PITCH_SIGMA_DEG, PITCH_MAX_DEG = 8.0, 20.0
ROLL_SIGMA_DEG, ROLL_MAX_DEG = 5.0, 15.0
#: Camera: the person's larger extent fills this share of the crop; centre offset bound.
FILL_RANGE = (0.60, 0.95)
OFFSET_MAX = 0.04  # share of the crop width, i.e. ±0.08 in [-1, 1] coordinates
BETA_CLIP = 2.5

#: Parents of the J24 slots that carry an H36M joint, for drawing bones (-1: none).
J24_PARENTS: tuple[int, ...] = (
    1, 2, 14, 14, 3, 4, 7, 8, 12, 12, 9, 10, 16, -1, -1, -1, 14, 12, 17, -1, -1, -1, -1, -1,
)  # fmt: skip

_, _J24_MASK = geometry.j24_from_h36m(np.zeros((17, 3), np.float32))
_J24_MASK = np.asarray(_J24_MASK, np.float32)
_LEFT_J24 = np.array([n.startswith("left_") for n in skeleton.J24_NAMES])
_RIGHT_J24 = np.array([n.startswith("right_") for n in skeleton.J24_NAMES])

# Clothing groups; every SMPL part (skinning argmax) belongs to one, the hair is part 24.
_SKIN, _TOP, _BOTTOM, _SHOES, _HAIR = range(5)
_HAIR_PART = 24
_PART_GROUP = np.array([
    _BOTTOM, _BOTTOM, _BOTTOM, _TOP, _BOTTOM, _BOTTOM, _TOP, _SHOES, _SHOES, _TOP, _SHOES,
    _SHOES, _SKIN, _TOP, _TOP, _SKIN, _TOP, _TOP, _TOP, _TOP, _SKIN, _SKIN, _SKIN, _SKIN,
    _HAIR,
])  # fmt: skip
_FOREARMS, _SHINS = (18, 19), (4, 5)


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


def _hsv_to_rgb(hsv):
    """[..., 3] HSV in [0, 1] → RGB in [0, 1]."""
    h, s, v = hsv[..., 0] % 1.0, hsv[..., 1], hsv[..., 2]
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0, 1)


class _Draws:
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


def _truncated(draws: _Draws, mode, lo, hi, spread: float):
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
    from smpl_jax import rotation  # JAX, float32: ample for a mean

    poses = sample_body_poses(np.random.default_rng(0), 100_000, pose_spread)
    poses = poses.reshape(-1, 23, 3)
    mean = np.asarray(rotation.axis_angle_to_matrix(poses), np.float64).mean(axis=0)
    u, _, vt = np.linalg.svd(mean)
    nearest = u @ vt  # the closest rotations (each mean is near one: no reflection)
    return np.asarray(rotation.matrix_to_axis_angle(nearest.astype(np.float32)), np.float32)


def sample_parameters(
    rng: np.random.Generator,
    yaw_range: float = YAW_RANGE_DEG,
    pose_spread: float = POSE_SPREAD,
) -> dict[str, np.ndarray]:
    """Draw everything about one example except what depends on its mesh.

    The same numbers are drawn in the same order whatever their values (and whatever the
    pose law: `yaw_range` in degrees and `pose_spread`, see the module docstring), so
    each parameter depends only on the generator's seed and the law.

    Returns:
      dict: pose float32 [72], betas float32 [10], light [3] (unit, camera frame, towards
      the light), ambient, diffuse, fill, offset [2], colours [25, 3] (RGB per part),
      background dict, noise (grain amplitude, window offset [2]).
    """
    d = _Draws(rng)
    yaw_range, pose_spread = check_pose_law(yaw_range, pose_spread)
    body = _truncated(d, _MODE[1:], _LO[1:], _HI[1:], pose_spread)  # [23, 3]
    betas = np.clip(d.normal(10), -BETA_CLIP, BETA_CLIP)
    yaw = np.deg2rad(yaw_range) * d.uniform(-0.5, 0.5)
    pitch, roll = d.normal(2) * np.deg2rad([PITCH_SIGMA_DEG, ROLL_SIGMA_DEG])
    pitch = np.clip(pitch, -np.deg2rad(PITCH_MAX_DEG), np.deg2rad(PITCH_MAX_DEG))
    roll = np.clip(roll, -np.deg2rad(ROLL_MAX_DEG), np.deg2rad(ROLL_MAX_DEG))
    pose = np.concatenate([global_orientation(yaw, pitch, roll), body.reshape(-1)])

    # Light from the camera's side (−z), mostly from above (−y).
    lx, ly, lz = d.uniform([-1.0, -1.0, 0.3], [1.0, 0.3, 1.0])
    light = np.array([lx, ly, -lz])
    ambient, diffuse = d.uniform([0.3, 0.45], [0.6, 0.8])
    fill = d.uniform(*FILL_RANGE)
    offset = d.uniform(-2 * OFFSET_MAX, 2 * OFFSET_MAX, (2,))
    return {
        "pose": pose.astype(np.float32),
        "betas": betas.astype(np.float32),
        "light": (light / np.linalg.norm(light)).astype(np.float32),
        "ambient": float(ambient),
        "diffuse": float(diffuse),
        "fill": float(fill),
        "offset": offset,
        "colours": _sample_colours(d),
        "background": _sample_background(d),
        "noise": (float(d.uniform(0.004, 0.03)), d.uniform(shape=(2,))),
    }


def _sample_colours(d: _Draws) -> np.ndarray:
    """[25, 3] RGB in [0, 1]: a colour per SMPL part and the hair, clothing-like."""
    u = d.uniform(shape=(5, 3))
    flags = d.uniform(shape=(4,))
    jitter = d.uniform([-0.03, -0.08, 0.82], [0.03, 0.08, 1.12], (len(_PART_GROUP), 3))
    hsv = np.empty((5, 3))
    hsv[_SKIN] = [0.02 + 0.08 * u[0, 0], 0.25 + 0.4 * u[0, 1], 0.35 + 0.6 * u[0, 2]]
    hsv[_TOP] = [u[1, 0], 0.1 + 0.8 * u[1, 1], 0.15 + 0.8 * u[1, 2]]
    if flags[0] < 0.4:  # denim
        hsv[_BOTTOM] = [0.57 + 0.07 * u[2, 0], 0.3 + 0.4 * u[2, 1], 0.2 + 0.45 * u[2, 2]]
    else:
        hsv[_BOTTOM] = [u[2, 0], 0.05 + 0.7 * u[2, 1], 0.1 + 0.7 * u[2, 2]]
    hsv[_SHOES] = [u[3, 0], 0.6 * u[3, 1], 0.05 + 0.65 * u[3, 2]]
    hsv[_HAIR] = [0.02 + 0.1 * u[4, 0], 0.3 + 0.5 * u[4, 1], 0.06 + 0.55 * u[4, 2]]
    if flags[1] < 0.1:  # grey or white hair
        hsv[_HAIR, 1:] = [0.05, 0.55 + 0.4 * u[4, 2]]
    group = _PART_GROUP.copy()
    if flags[2] < 0.4:  # short sleeves
        group[list(_FOREARMS)] = _SKIN
    if flags[3] < 0.25:  # shorts
        group[list(_SHINS)] = _SKIN
    # Each part a little off its group's colour, so that parts stay distinguishable.
    part = hsv[group]
    part = np.stack([part[:, 0] + jitter[:, 0], np.clip(part[:, 1] + jitter[:, 1], 0, 1),
                     np.clip(part[:, 2] * jitter[:, 2], 0, 1)], axis=1)  # fmt: skip
    return _hsv_to_rgb(part).astype(np.float32)


_BG_BLOBS, _BG_GRADIENT, _BG_STRIPES, _BG_TILES = range(4)


def _sample_background(d: _Draws) -> dict:
    return {
        "kind": min(int(d.uniform(0, 4)), 3),
        "colours": _hsv_to_rgb(d.uniform([0.0, 0.0, 0.12], [1.0, 0.7, 1.0], (3, 3))),
        "grid": d.uniform(shape=(6, 6, 3)),
        "cells": min(int(d.uniform(2, 7)), 6),
        "angle": d.uniform(0, np.pi, (2,)),
        "frequency": d.uniform([1.5, 1.0], [7.0, 5.0]),
        "phase": d.uniform(0, 2 * np.pi, (2,)),
        "sharpness": float(d.uniform(1.0, 6.0)),
        "floor": bool(d.uniform() < 0.35),
        "horizon": float(d.uniform(0.0, 0.8)),
        "shade": float(d.uniform(0.15, 0.45)),
    }


def _bilinear_matrix(cells: int, size: int) -> np.ndarray:
    """[size, cells] weights that upsample `cells` samples to `size` pixels, bilinearly."""
    x = (np.arange(size) + 0.5) / size * (cells - 1)
    i = np.minimum(np.floor(x).astype(int), cells - 2)
    t = x - i
    m = np.zeros((size, cells), np.float32)
    m[np.arange(size), i] = 1 - t
    m[np.arange(size), i + 1] = t
    return m


@jax.jit
def _forward_block(body, regressor, betas, pose):
    """One batched SMPL forward: the mesh, its J24 joints and its image-plane extent.

    Args:
      body: `smpl_jax.SMPL`.
      regressor: [17, V] Human3.6M joint regressor.
      betas: [B, 10].
      pose: [B, 72] (global orientation in the camera frame).

    Returns:
      vertices [B, V, 3] (camera frame, metres), J24 joints [B, 24, 3] (not centred), and
      the bounding box of the vertices' x, y [B, 4] (x_min, y_min, x_max, y_max), metres.
    """
    v = body(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    joints, _ = geometry.j24_joints(v, regressor)
    box = jnp.concatenate([v[..., :2].min(axis=1), v[..., :2].max(axis=1)], axis=-1)
    return v, joints, box


class SyntheticDataset:
    """Rendered people with SMPL, 3D-joint and keypoint labels (see the module docstring).

    A random-access source (``len`` and ``ds[i]``), usable as
    ``grain.MapDataset.source(ds)``; picklable (worker processes rebuild their caches).

    Args:
      split: ``"train"`` or ``"test"`` (disjoint seed streams).
      size: crop size S in pixels (64-224 intended; 32-1024 accepted).
      seed: non-negative int; the whole dataset is a function of it.
      length: number of examples; None: 2**31 for train, 1000 for test.
      body: an `smpl_jax.SMPL` (float32, ≥ 10 betas); None: the built-in body.
      h36m_regressor: [17, V] Human3.6M regressor (SPIN's ``J_regressor_h36m.npy`` for
        SMPL); None: the built-in body's (only allowed with ``body=None``).
      dataset_id: the value of every example's ``dataset_id``.
      block_size: examples per batched SMPL forward (a fixed batch shape, compiled once);
        1 suits random access, 16 sequential reads (see the module docstring).
      yaw_range: degrees of yaw drawn, centred on facing the camera (360: every view).
      pose_spread: each body-pose component's σ as a share of its range (1/3: the full
        law; see the module docstring).
      segmentation: also give each example its true ``seg_mask`` uint8 [S, S] (1 on the
        body) and ``seg_parts`` uint8 [S, S] (SPIN's part labels 0…6), rendered by
        `hkmr_jax.segmentation.render_parts` from the true mesh and camera (the
        `lsp_seg` evaluator's ground truth; `with_segmentation()` turns it on).

    Raises:
      ValueError: an unknown split, or a size, seed, length, pose law or regressor out of
        range.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 128,
        seed: int = 0,
        length: int | None = None,
        body=None,
        h36m_regressor=None,
        *,
        dataset_id: int = 0,
        block_size: int = 1,
        yaw_range: float = YAW_RANGE_DEG,
        pose_spread: float = POSE_SPREAD,
        segmentation: bool = False,
    ):
        if split not in SPLITS:
            raise ValueError(
                f"unknown split {split!r} of the synthetic dataset; valid: {', '.join(SPLITS)}."
            )
        if not MIN_SIZE <= int(size) <= MAX_SIZE:
            raise ValueError(f"size must be {MIN_SIZE}-{MAX_SIZE} pixels, got {size}.")
        if int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}.")
        length = DEFAULT_LENGTH[split] if length is None else int(length)
        if length <= 0:
            raise ValueError(f"length must be positive, got {length}.")
        if int(block_size) < 1:
            raise ValueError(f"block_size must be positive, got {block_size}.")
        self.yaw_range, self.pose_spread = check_pose_law(yaw_range, pose_spread)
        self.builtin_body = body is None
        if body is None:
            from smpl_jax import synthetic as builtin

            body = builtin.load_builtin()
            if h36m_regressor is None:
                h36m_regressor = builtin.h36m_regressor()
        elif h36m_regressor is None:
            raise ValueError(
                "a custom body needs its Human3.6M regressor: pass h36m_regressor=[17, V] "
                "(for SMPL, SPIN's J_regressor_h36m.npy)."
            )
        regressor = np.asarray(h36m_regressor, np.float32)
        if regressor.shape != (17, body.num_vertices):
            raise ValueError(
                f"h36m_regressor must be [17, {body.num_vertices}] (17 Human3.6M joints × the "
                f"body's vertices), got {list(regressor.shape)}."
            )
        if body.num_betas < 10:
            raise ValueError(f"the body must have at least 10 betas, got {body.num_betas}.")
        self.split, self.size, self.seed = split, int(size), int(seed)
        self.length, self.dataset_id, self.block_size = length, int(dataset_id), int(block_size)
        self.body = body
        self.regressor = regressor
        self.segmentation = bool(segmentation)
        self._setup()

    def _setup(self):
        """Per-process derived state: tables, caches, the lock (not pickled)."""
        faces = np.asarray(self.body.faces, np.int64)
        self.faces = faces
        self._regressor_j = jnp.asarray(self.regressor)
        self.face_part = _vertex_parts(self.body)[faces[:, 0]]
        if self.segmentation:
            from hkmr_jax import segmentation

            self._seg_parts = segmentation.PartLabels.from_body(self.body)
        s = self.size
        self._grid_x = ((np.arange(s) + 0.5) / s * 2 - 1).astype(np.float32)
        self._upsample = {c: _bilinear_matrix(c, s) for c in range(2, 7)}
        # Grain: one fixed tile of N(0, 1) noise; each example adds a window of it.
        self._grain = np.random.default_rng(12345).standard_normal((2 * s, 2 * s, 3))
        self._grain = self._grain.astype(np.float32)
        # Forward outputs per example index, least recently used first.
        self._cache: collections.OrderedDict[int, tuple] = collections.OrderedDict()
        self._cache_size = 4 * self.block_size
        self._lock = threading.Lock()

    _STATE = ("split", "size", "seed", "length", "dataset_id", "block_size", "yaw_range",
              "pose_spread", "body", "regressor", "builtin_body", "segmentation")  # fmt: skip

    def __getstate__(self):
        # The definition only: workers rebuild tables, caches and the lock in `_setup`.
        return {k: self.__dict__[k] for k in self._STATE}

    def __setstate__(self, state):
        state.setdefault("segmentation", False)
        self.__dict__.update(state)
        self._setup()

    def with_segmentation(self) -> SyntheticDataset:
        """The same examples, each also with its true ``mask`` and ``parts`` maps."""
        state = self.__getstate__()
        state["segmentation"] = True
        other = SyntheticDataset.__new__(SyntheticDataset)
        other.__setstate__(state)
        return other

    def __len__(self) -> int:
        return self.length

    def config(self) -> dict:
        """What defines the examples (recorded by `cache`)."""
        return {
            "split": self.split,
            "size": self.size,
            "seed": self.seed,
            "block_size": self.block_size,
            "dataset_id": self.dataset_id,
            "yaw_range": self.yaw_range,
            "pose_spread": self.pose_spread,
            "body": "builtin" if self.builtin_body else "custom",
        }

    def __repr__(self) -> str:
        return (f"SyntheticDataset(split={self.split!r}, size={self.size}, seed={self.seed}, "
                f"length={self.length}, yaw_range={self.yaw_range:g}, "
                f"pose_spread={self.pose_spread:.4g})")  # fmt: skip

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        i = self._index(index)
        # Read-ahead: with block_size B > 1, the forward of i, …, i + B − 1 in one batch,
        # so that a sequential reader gets the next B − 1 for free (from the cache).
        ahead = range(i, min(i + self.block_size, self.length)) if i not in self._cache else [i]
        return self._render(i, *self._prepare(ahead)[0], False)

    def _getitems(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """grain's batched read (`SupportsBatchedReadRandomAccessDataSource`)."""
        return self.render_batch(indices)

    def rng(self, index: int) -> np.random.Generator:
        """The random generator of example `index` (its whole randomness)."""
        return np.random.default_rng([self.seed, SPLITS[self.split], index])

    def _index(self, index) -> int:
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise TypeError(f"example index must be an integer, got {index!r}.") from None
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"example {index} out of range for {self!r}.")
        return i

    def _prepare(self, indices: Sequence[int]) -> list[tuple]:
        """The parameters and forward outputs of `indices`, via the cache (thread-safe).

        The missing ones go through the jitted forward in chunks of `block_size`, the last
        chunk padded by repeating its last example, so that there is one program shape.
        """
        with self._lock:
            missing = list(dict.fromkeys(i for i in indices if i not in self._cache))
            b = self.block_size
            for start in range(0, len(missing), b):
                chunk = missing[start : start + b]
                params = [
                    sample_parameters(self.rng(i), self.yaw_range, self.pose_spread) for i in chunk
                ]
                padded = params + [params[-1]] * (b - len(chunk))
                outputs = _forward_block(
                    self.body,
                    self._regressor_j,
                    np.stack([p["betas"] for p in padded]),
                    np.stack([p["pose"] for p in padded]),
                )
                verts, joints, box = (np.asarray(o) for o in outputs)
                for k, (i, p) in enumerate(zip(chunk, params, strict=True)):
                    self._cache[i] = (p, verts[k], joints[k], box[k])
            entries = [self._cache[i] for i in indices]
            for i in indices:
                self._cache.move_to_end(i)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return entries

    def render_batch(
        self, indices: Iterable[int], *, debug: bool = False
    ) -> list[dict[str, np.ndarray]]:
        """Examples for `indices` (in that order); each is exactly ``self[i]``.

        With ``block_size`` B > 1, the forward passes of the requested examples run B at
        a time, whatever the indices (e.g. a shuffled batch).

        Args:
          indices: example indices (negative ones count from the end).
          debug: also return, per example, ``mask`` bool [S, S] (body pixels),
            ``joints_cam`` float32 [24, 3] (camera-frame J24 joints, not centred) and
            ``vertices`` float32 [V, 3] (camera frame) — not part of the data contract.

        Returns:
          list of dicts in the format of `docs/CONTRACT_data.md`, plus ``camera``.
        """
        indices = [self._index(i) for i in indices]
        entries = self._prepare(indices)
        return [self._render(i, *e, debug) for i, e in zip(indices, entries, strict=True)]

    def _render(self, index, p, verts, joints, box, debug):
        s = self.size
        # The camera: the person's larger extent fills `fill` of the crop, centred ± offset.
        extent = max(box[2] - box[0], box[3] - box[1])
        scale = 2.0 * p["fill"] / extent
        centre = np.array([box[0] + box[2], box[1] + box[3]]) / 2.0
        camera = np.array([scale, *(p["offset"] - scale * centre)], np.float32)
        # The float32 camera is the label; the image and the keypoints both use exactly it.
        cam = render.Camera.weak_perspective(*(float(c) for c in camera))
        points = verts.astype(np.float64)
        # `render.project(points, cam, (s, s))` written out: its identity rotation is an
        # exact no-op, so this is the same arithmetic (a test checks) without a [V, 3] GEMM.
        xy = (cam.scale * points[:, :2] + cam.translation[:2]) * (s / 2) + s / 2
        # Culling back faces halves the work and, on a closed outward-facing mesh such as
        # SMPL's, leaves the image unchanged.
        frags = render.rasterize(xy, points[:, 2], self.faces, (s, s), cull_backfaces=True)

        image = self._background(p["background"])
        covered = frags.face_id >= 0
        fid = frags.face_id[covered]
        image[covered] = p["colours"][self.face_part[fid]] * self._shade(verts, fid, p)[:, None]
        amplitude, (u, v) = p["noise"]
        r, c = int(u * s), int(v * s)
        image *= 255.0
        image += (255.0 * amplitude) * self._grain[r : r + s, c : c + s] + 0.5
        image = np.clip(image, 0, 255, out=image).astype(np.uint8)

        joints64 = joints.astype(np.float64)
        keypoints_xy = geometry.weak_perspective(joints64, camera.astype(np.float64))
        visible = render.keypoint_visibility(joints64, cam, frags.depth)
        keypoints = np.concatenate([keypoints_xy, (_J24_MASK * visible)[:, None]], axis=1)
        keypoints[_J24_MASK == 0] = 0.0
        joints_3d = np.concatenate([geometry.root_centred(joints64), _J24_MASK[:, None]], 1)
        joints_3d[_J24_MASK == 0] = 0.0
        example = {
            "image": image,
            "keypoints": keypoints.astype(np.float32),
            "joints_3d": joints_3d.astype(np.float32),
            "pose": p["pose"],
            "betas": p["betas"],
            "has_smpl": np.asarray(1.0, np.float32),
            "has_3d": np.asarray(1.0, np.float32),
            "dataset_id": np.asarray(self.dataset_id, np.int32),
            "example_id": np.asarray(index, np.int64),
            "camera": camera,
        }
        if self.segmentation:
            from hkmr_jax import segmentation

            # The lsp_seg evaluator's truth: the prediction's renderer (SPIN's perspective
            # camera, f = 5000) with the true mesh and camera, at the crop's size.
            mask, parts = segmentation.render_parts(verts, self.faces, camera, self._seg_parts, s)
            example.update(seg_mask=mask.astype(np.uint8), seg_parts=parts)
        if debug:
            example.update(mask=covered, joints_cam=joints, vertices=verts)
        return example

    def _shade(self, verts, fid, p) -> np.ndarray:
        """[P] Lambert + ambient intensity of faces `fid` [P] (flat: a normal per face).

        Only the faces that won a pixel are shaded; at crop resolution a face covers about
        a pixel, so flat shading looks smooth and costs a fraction of vertex normals.
        """
        tri = verts[self.faces[fid]]  # [P, 3, 3]
        a, b = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        n = np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
                      a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                      a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)  # fmt: skip
        cos = (n @ p["light"]) / np.maximum(np.linalg.norm(n, axis=1), 1e-12)
        return p["ambient"] + p["diffuse"] * np.maximum(cos, 0.0)

    def _background(self, b) -> np.ndarray:
        """[S, S, 3] float32 RGB in [0, 1] (see the module docstring)."""
        x = self._grid_x
        c0, c1, c2 = b["colours"].astype(np.float32)
        kind = b["kind"]
        if kind == _BG_BLOBS:
            m, n = self._upsample[b["cells"]], b["cells"]
            g = b["grid"][:n, :n].astype(np.float32) * 0.8 + c0 * 0.2
            # Bilinear upsampling is separable: two matrix products (rows, then columns).
            rows = (m @ g.reshape(n, n * 3)).reshape(-1, n, 3)  # [S, n, 3]
            return np.ascontiguousarray((rows.transpose(0, 2, 1) @ m.T).transpose(0, 2, 1))
        # Patterns along directions at angles a0 and a0 + 90° (or a1 + 90° for tiles); a
        # sine of a sum of x and y terms is two outer products: no [S, S] transcendental.
        a0, a1 = b["angle"]
        if kind == _BG_GRADIENT:
            t = (np.cos(a0) * x)[None, :] + (np.sin(a0) * x)[:, None]
            t = t * 0.5 + 0.5
        else:
            f0, f1 = np.pi * b["frequency"]
            t = _sine(x, f0 if kind == _BG_STRIPES else f1, a0, b["phase"][0])
            if kind == _BG_TILES:
                t *= _sine(x, f1, a1 + np.pi / 2, b["phase"][1])
            # A soft square wave: clip a steep multiple of the sine.
            t = np.clip(b["sharpness"] * t, -1.0, 1.0) * 0.5 + 0.5
        image = c0 + t.astype(np.float32)[..., None] * (c1 - c0)
        if b["floor"]:
            below = x >= b["horizon"]
            depth = np.clip((x[below] - b["horizon"]) * 2.0, 0, 1)[:, None, None]
            image[below] = c2 * (1.0 - b["shade"] * (1.0 - depth))
        return image.astype(np.float32)


def _sine(x, frequency, angle, phase) -> np.ndarray:
    """[S, S] sin(frequency · (cos(angle)·x_col + sin(angle)·y_row) + phase), separably."""
    px = frequency * np.cos(angle) * x + phase
    py = frequency * np.sin(angle) * x
    return np.outer(np.cos(py), np.sin(px)) + np.outer(np.sin(py), np.cos(px))


def _vertex_parts(body) -> np.ndarray:
    """[V] part per vertex: the argmax of its skinning weights; the hair is part 24.

    The hair: head-part vertices of the rest mesh in the upper 45 % of the head above its
    joint, or behind the joint's plane and above the chin.
    """
    parts = np.argmax(np.asarray(body.weights), axis=1)
    v = np.asarray(body.v_template)
    head = skeleton.JOINT_NAMES.index("head")
    on_head = parts == head
    if on_head.any():
        joint = np.asarray(body.joint_template)[head]
        rel = v - joint
        top = rel[on_head, 1].max()
        hair = on_head & (
            (rel[:, 1] > 0.45 * top) | ((rel[:, 2] < -0.01) & (rel[:, 1] > -0.2 * top))
        )
        parts[hair] = _HAIR_PART
    return parts


#: Bump when the cache layout changes: `CachedDataset` refuses other versions.
CACHE_VERSION = 2  # 2: the pose law in the metadata
_META = "meta.json"


def cache(
    path,
    split: str | SyntheticDataset = "test",
    n: int | None = None,
    *,
    size: int = 128,
    seed: int = 0,
    chunk: int = 64,
    progress: bool = True,
) -> pathlib.Path:
    """Render examples 0 … n − 1 once into a folder of ``.npy`` files (see `CachedDataset`).

    For data read many times (the test split, evaluated every few hundred steps; a small
    training set on a busy CPU): rendering is then paid once. The folder holds one
    ``KEY.npy`` per example key, stacked along a first axis of n, and ``meta.json``. It is
    written under a temporary name beside `path` and renamed into place, so a reader
    never sees a partial cache; an existing cache of the same dataset is reused as is.

    Args:
      path: the cache folder.
      split: ``"train"``/``"test"`` (the built-in body and the default pose law, with
        `size` and `seed`), or a `SyntheticDataset` to cache (any body or law).
      n: number of examples; None: the whole split (test: 1000; train needs an n).
      size, seed: of the dataset when `split` is a name.
      chunk: examples rendered per `render_batch` call.
      progress: show a tqdm progress bar.

    Returns:
      The cache folder, as a `pathlib.Path`.

    Raises:
      FileExistsError: `path` holds something else (another dataset, another version).
      ValueError: bad split, size, seed or n.
    """
    dataset = split if isinstance(split, SyntheticDataset) else SyntheticDataset(
        split, size=size, seed=seed
    )  # fmt: skip
    n = dataset.length if n is None else int(n)
    if not 0 < n <= dataset.length or n > 10**8:
        raise ValueError(f"n must be 1…{min(dataset.length, 10**8)} for {dataset!r}, got {n}.")
    meta = {"version": CACHE_VERSION, **dataset.config(), "length": n}
    path = pathlib.Path(path)
    if path.exists():
        _check_cache(path, meta)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    try:
        arrays = None
        with tqdm.tqdm(total=n, desc=f"caching {dataset.split}", unit=" img",
                       disable=not progress) as bar:  # fmt: skip
            for start in range(0, n, chunk):
                examples = dataset.render_batch(range(start, min(start + chunk, n)))
                if arrays is None:  # memory-mapped outputs: the cache never sits in memory
                    arrays = {
                        k: np.lib.format.open_memmap(
                            tmp / f"{k}.npy", mode="w+", dtype=v.dtype, shape=(n, *v.shape)
                        )
                        for k, v in examples[0].items()
                    }
                for k, a in arrays.items():
                    a[start : start + len(examples)] = np.stack([e[k] for e in examples])
                bar.update(len(examples))
        for a in arrays.values():
            a.flush()
        del arrays
        (tmp / _META).write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, path)
        except OSError:  # a concurrent writer finished first: keep theirs if it matches
            if not path.exists():
                raise
            _check_cache(path, meta)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _check_cache(path: pathlib.Path, meta: dict) -> dict:
    try:
        found = json.loads((path / _META).read_text())
    except (OSError, ValueError):
        found = None
    if found != meta:
        raise FileExistsError(
            f"{path} exists but is not a cache of this dataset (found {found}, want {meta}); "
            "delete it or choose another path."
        )
    return found


class CachedDataset:
    """Examples written by `cache`, read from memory-mapped ``.npy`` files.

    ``CachedDataset(path)[i]`` equals the cached dataset's ``[i]`` array for array (a
    copy, so it can be modified); random access, picklable (workers reopen the files).

    Args:
      path: a folder written by `cache`.

    Raises:
      FileNotFoundError: `path` is not a complete cache (run `cache` first).
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        try:
            self.meta = json.loads((self.path / _META).read_text())
        except (OSError, ValueError) as e:
            raise FileNotFoundError(
                f"{self.path} is not a synthetic-data cache ({e}); write one with "
                "hkmr_jax.data.synthetic.cache(path, split, n)."
            ) from None
        if self.meta.get("version") != CACHE_VERSION:
            raise FileNotFoundError(
                f"{self.path} is a cache of version {self.meta.get('version')}, this code "
                f"reads version {CACHE_VERSION}: delete it and write it again."
            )
        self._arrays = None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Key → memory-mapped [n, ...] array (opened on first use, per process)."""
        if self._arrays is None:
            self._arrays = {
                f.stem: np.load(f, mmap_mode="r") for f in sorted(self.path.glob("*.npy"))
            }
        return self._arrays

    def __getstate__(self):
        return {"path": self.path, "meta": self.meta, "_arrays": None}

    def __len__(self) -> int:
        return int(self.meta["length"])

    def __repr__(self) -> str:
        return f"CachedDataset({str(self.path)!r}, {len(self)} examples)"

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"example {index} out of range for {self!r}.")
        return {k: np.array(a[i]) for k, a in self.arrays.items()}

    def _getitems(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
        return [self[i] for i in indices]


def contact_sheet(
    dataset: SyntheticDataset,
    n: int = 32,
    path=None,
    *,
    columns: int = 8,
    start: int = 0,
    colors: int | None = None,
) -> np.ndarray:
    """Examples ``start … start + n − 1`` with their keypoints, as one image.

    Visible keypoints are dots (the person's left side green, right side red, centre
    orange) joined by blue bones; hidden ones (occluded or outside the crop) are grey.

    Args:
      dataset: a `SyntheticDataset`.
      n: number of examples.
      path: if given, the sheet is written there as PNG (atomically).
      columns: examples per row.
      start: first example index.
      colors: if given, the PNG is written with a palette of this many colours (the
        images' grain makes a full-colour PNG ~4× larger); the returned array is not.

    Returns:
      [rows · (S + 2), columns · (S + 2), 3] uint8.
    """
    s, gap = dataset.size, 2
    rows = -(-n // columns)
    sheet = np.full((rows * (s + gap), columns * (s + gap), 3), 255, np.uint8)
    parents = np.array(J24_PARENTS)
    radius = max(1.0, s / 64)
    for k, ex in enumerate(dataset.render_batch(range(start, start + n))):
        kp = ex["keypoints"]
        px = (kp[:, :2].astype(np.float64) + 1.0) * s / 2.0
        px[_J24_MASK == 0] = np.nan
        visible = kp[:, 2] > 0
        image = render.draw_keypoints(ex["image"], px, visible, parents, radius=radius,
                                      color=(255, 150, 0))  # fmt: skip
        for side, colour in ((_LEFT_J24, (40, 220, 40)), (_RIGHT_J24, (230, 30, 30))):
            only = np.where(side[:, None], px, np.nan)
            image = render.draw_keypoints(image, only, visible, radius=radius, color=colour)
        r, c = divmod(k, columns)
        sheet[r * (s + gap) : r * (s + gap) + s, c * (s + gap) : c * (s + gap) + s] = image
    if path is not None and colors is None:
        render.write_png(path, sheet)
    elif path is not None:
        _write_palette_png(path, sheet, colors)
    return sheet


def _write_palette_png(path, image, colors: int) -> None:
    """`image` as a palette PNG of `colors` colours, written atomically (tmp + rename)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    quantized = Image.fromarray(image).quantize(colors, method=Image.Quantize.MEDIANCUT)
    quantized.save(buffer, format="PNG", optimize=True)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv=None) -> int:
    """``python -m hkmr_jax.data.synthetic OUT.png``: a contact sheet of the dataset."""
    parser = argparse.ArgumentParser(
        prog="python -m hkmr_jax.data.synthetic",
        description="Write a contact sheet of the built-in synthetic dataset.",
    )
    parser.add_argument("out", help="output PNG, e.g. docs/synthetic_data.png")
    parser.add_argument("--split", default="train", choices=list(SPLITS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--yaw_range", type=float, default=YAW_RANGE_DEG, help="degrees")
    parser.add_argument("--pose_spread", type=float, default=POSE_SPREAD)
    parser.add_argument("-n", type=int, default=32, help="number of examples")
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument(
        "--colors", type=int, default=256, help="PNG palette size (0: full colour, lossless)"
    )
    args = parser.parse_args(argv)
    try:
        dataset = SyntheticDataset(
            args.split,
            size=args.size,
            seed=args.seed,
            yaw_range=args.yaw_range,
            pose_spread=args.pose_spread,
        )
    except ValueError as e:
        parser.error(str(e))
    colors = args.colors if args.colors > 0 else None
    sheet = contact_sheet(dataset, args.n, args.out, columns=args.columns, colors=colors)
    print(f"wrote {args.out} ({sheet.shape[1]}×{sheet.shape[0]} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
