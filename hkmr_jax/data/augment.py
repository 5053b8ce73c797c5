"""Training-time augmentation as in SPIN (Kolotouros et al. 2019), on one example.

``augment(example, rng, config)`` runs in a grain ``map`` on one data-contract example
whose image is the S × S crop, in NumPy (cheaper than JAX dispatch per example): one
similarity transform (scale, in-plane rotation, horizontal flip, SPIN's order) moves the
image, keypoints, 3D joints and pose; then per-channel colour noise. `rotate_pose` and
`flip_pose` also serve the JAX fit store (``xp=jax.numpy``). The maps, label rules and
random ranges (SPIN's `augm_params`) are in docs/augmentation.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from smpl_jax import rotation, skeleton

_J24_FLIP = np.asarray(skeleton.J24_FLIP_PERMUTATION)
_SMPL_FLIP = np.asarray(skeleton.FLIP_PERMUTATION)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Switches and ranges of the augmentation; the defaults are SPIN's.

    Attributes:
      flip: horizontal flips on/off.
      flip_prob: probability of a flip (SPIN 0.5).
      rotate: in-plane rotation on/off.
      rot_factor: σ of the rotation in degrees, clipped to ±2σ (SPIN `rot_factor` 30).
      rot_prob: probability that the rotation is applied at all (SPIN zeroes it with
        probability 0.6).
      scale: scale augmentation on/off.
      scale_factor: σ of the scale around 1, clipped to 1 ± σ (SPIN `scale_factor` 0.25).
      color_noise: per-channel multiplicative colour noise on/off.
      noise_factor: multipliers uniform in [1 − f, 1 + f] (SPIN `noise_factor` 0.4).
    """

    flip: bool = True
    flip_prob: float = 0.5
    rotate: bool = True
    rot_factor: float = 30.0
    rot_prob: float = 0.4
    scale: bool = True
    scale_factor: float = 0.25
    color_noise: bool = True
    noise_factor: float = 0.4

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> AugmentConfig:
        """Build from a dict / ml_collections ConfigDict; unknown keys raise ValueError."""
        fields = {f.name for f in dataclasses.fields(cls)}
        items = dict(mapping)
        unknown = sorted(set(items) - fields)
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {unknown}; valid: {sorted(fields)}.")
        return cls(**items)

    @classmethod
    def disabled(cls) -> AugmentConfig:
        """Every part off: `augment` returns the example's values unchanged."""
        return cls(flip=False, rotate=False, scale=False, color_noise=False)


class AugmentParams(NamedTuple):
    """One draw of the augmentation (SPIN's `flip, pn, rot, sc`).

    Attributes:
      flip: mirror horizontally.
      rotation: degrees; > 0 turns the picture counter-clockwise on screen.
      scale: the crop box grows by this factor (> 1: the person looks smaller).
      color: [3] per-channel multipliers.
    """

    flip: bool = False
    rotation: float = 0.0
    scale: float = 1.0
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


def sample_params(rng: np.random.Generator, config: AugmentConfig | None = None) -> AugmentParams:
    """Draw SPIN's augmentation parameters (the ranges: docs/augmentation.md)."""
    config = AugmentConfig() if config is None else config
    u_flip = rng.uniform()
    noise = rng.uniform(1.0 - config.noise_factor, 1.0 + config.noise_factor, 3)
    z_rot = rng.standard_normal()
    z_scale = rng.standard_normal()
    u_rot = rng.uniform()
    flip = config.flip and u_flip < config.flip_prob
    rotation = 0.0
    if config.rotate and u_rot < config.rot_prob:
        limit = 2.0 * config.rot_factor
        rotation = float(np.clip(z_rot * config.rot_factor, -limit, limit))
    scale = 1.0
    if config.scale:
        f = config.scale_factor
        scale = float(np.clip(1.0 + z_scale * f, 1.0 - f, 1.0 + f))
    color = tuple(float(c) for c in noise) if config.color_noise else (1.0, 1.0, 1.0)
    return AugmentParams(bool(flip), rotation, scale, color)


def _rot_z(rotation_deg: float) -> np.ndarray:
    """[3, 3] R_z(−rot): SPIN's in-plane rotation in camera coordinates (y down)."""
    phi = -np.deg2rad(rotation_deg)
    c, s = np.cos(phi), np.sin(phi)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def crop_matrix(params: AugmentParams) -> np.ndarray:
    """[2, 2] linear map of crop coordinates (about the centre): u' = A · u."""
    a = _rot_z(params.rotation)[:2, :2] / params.scale
    if params.flip:
        a = np.diag([-1.0, 1.0]) @ a
    return a


def transform_keypoints(keypoints: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Move 2D keypoints with the crop.

    Args:
      keypoints: [K, 3] (x, y in [-1, 1], confidence); K = 24 (J24 order) when flipping.
      params: the augmentation.

    Returns:
      [K, 3] same dtype; confidence 0 where the keypoint left the crop.
    """
    kp = np.asarray(keypoints)
    xy = kp[:, :2].astype(np.float64) @ crop_matrix(params).T
    conf = np.where(np.all(np.abs(xy) <= 1.0, axis=-1), kp[:, 2], 0.0)
    out = np.concatenate([xy, conf[:, None]], axis=-1)
    if params.flip:
        out = out[_flip_index(len(out), "keypoints")]
    return out.astype(kp.dtype)


def transform_joints_3d(joints: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Rotate 3D joints about the camera z axis and mirror them on flips.

    Args:
      joints: [K, 4] (x, y, z metres, confidence), K = 24 (J24) when flipping.
      params: the augmentation (scale does not apply to metric 3D).

    Returns:
      [K, 4] same dtype.
    """
    j = np.asarray(joints)
    xyz = j[:, :3].astype(np.float64) @ _rot_z(params.rotation).T
    if params.flip:
        xyz[:, 0] = -xyz[:, 0]
    out = np.concatenate([xyz, j[:, 3:].astype(np.float64)], axis=-1)
    if params.flip:
        out = out[_flip_index(len(out), "joints_3d")]
    return out.astype(j.dtype)


def _flip_index(n: int, name: str) -> np.ndarray:
    if n != len(_J24_FLIP):
        raise ValueError(f"{name}: flipping needs the 24 J24 joints, got {n}.")
    return _J24_FLIP


# float64 NumPy quaternions (w, x, y, z), also used by data/synthetic/pose_law.py: label arithmetic
# on the host, exact at the zero rotation and near the 180° rotations SPIN's camera frame
# is full of. They are not `smpl_jax.rotation`'s (JAX, float32 without x64, another
# small-angle series): switching would change the training labels' bits.
def axis_angle_to_quaternion(aa: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    # sin(θ/2)/θ = ½·sinc(θ/2π) with numpy's normalised sinc, which is exact at 0.
    return np.concatenate([np.cos(theta / 2), aa * 0.5 * np.sinc(theta / (2 * np.pi))], -1)


def quaternion_to_axis_angle(q: np.ndarray) -> np.ndarray:
    q = np.where(q[..., :1] < 0, -q, q)  # angle in [0, π]
    w, v = q[..., :1], q[..., 1:]
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    small = n < 1e-12
    scale = np.where(small, 2.0 / w, 2.0 * np.arctan2(n, w) / np.where(small, 1.0, n))
    return v * scale


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ])  # fmt: skip


def rotate_pose(pose, rotation_deg, xp=np):
    """Compose R_z(−rot) into the global orientation (SPIN's `rot_aa`).

    One definition for the NumPy labels (``xp=numpy``: float64 inside, this module's
    quaternions) and the JAX fit store (``xp=jax.numpy``: `smpl_jax.rotation`'s).

    Args:
      pose: [..., 72] SMPL axis-angle, global orientation first.
      rotation_deg: [...] or a scalar, SPIN's `rot`.

    Returns:
      [..., 72] same dtype; where rot ≠ 0 the global orientation's angle is brought into
      [0, π]; rows with rot = 0 are returned unchanged.
    """
    if xp is np:
        p = np.asarray(pose)
        out = p.astype(np.float64)  # a copy
        if np.all(np.asarray(rotation_deg) == 0):
            return out.astype(p.dtype)
        to_quaternion, to_axis_angle = axis_angle_to_quaternion, quaternion_to_axis_angle
    else:
        out = pose
        to_quaternion = rotation.axis_angle_to_quaternion
        to_axis_angle = rotation.quaternion_to_axis_angle
    rot = xp.broadcast_to(xp.asarray(rotation_deg, out.dtype), out.shape[:-1])
    half = -xp.deg2rad(rot) / 2
    c, s = xp.cos(half), xp.sin(half)
    w, x, y, z = xp.moveaxis(to_quaternion(out[..., :3]), -1, 0)
    # (c, 0, 0, s) ⊗ (w, x, y, z): the z rotation composed on the left.
    q = xp.stack([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w], axis=-1)
    turned = xp.where((rot == 0)[..., None], out[..., :3], to_axis_angle(q))
    out = xp.concatenate([turned, out[..., 3:]], axis=-1)
    return out.astype(p.dtype) if xp is np else out


def flip_pose(pose, xp=np):
    """Mirror SMPL poses in x (SPIN's `flip_pose`); NumPy or JAX arrays (``xp``).

    Mirroring conjugates every rotation by M = diag(−1, 1, 1): M·R(r)·M = R((r_x, −r_y,
    −r_z)), and left and right joints trade places.

    Args:
      pose: [..., 72] axis-angle.

    Returns:
      [..., 72] same dtype.
    """
    pose = xp.asarray(pose)
    joints = pose.reshape(*pose.shape[:-1], 24, 3)[..., _SMPL_FLIP, :]
    return (joints * xp.asarray([1, -1, -1], pose.dtype)).reshape(pose.shape)


def transform_pose(pose: np.ndarray, params: AugmentParams) -> np.ndarray:
    """[72] SMPL pose after the augmentation's rotation, then its flip."""
    out = rotate_pose(pose, params.rotation)
    return flip_pose(out) if params.flip else out


def transform_image(image: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Resample the crop through the similarity transform, then apply the colour noise.

    Args:
      image: [S, S, C] uint8 (or float in 0…255).
      params: the augmentation.

    Returns:
      [S, S, C] same dtype; uint8 is rounded once, after geometry and colour.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[0] != img.shape[1]:
        raise ValueError(f"image must be a square crop [S, S, C], got {img.shape}.")
    # Channel-planar [C, S, S] inside: NumPy's elementwise loops are several times slower
    # when the innermost axis has length 3.
    planes = np.moveaxis(img, -1, 0)
    if params.rotation == 0 and params.scale == 1:
        # Pure flip / identity: an exact copy, no interpolation.
        out = (planes[:, :, ::-1] if params.flip else planes).astype(np.float32)
    else:
        out = _warp(planes, np.linalg.inv(crop_matrix(params)))
    color = np.asarray(params.color, np.float32)
    if np.any(color != 1):
        out *= color[:, None, None]
    np.clip(out, 0, 255, out=out)
    if np.issubdtype(img.dtype, np.integer):
        np.rint(out, out=out)
    return np.ascontiguousarray(np.moveaxis(out, 0, -1)).astype(img.dtype)


def _warp(planes: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Bilinear samples of [C, S, S] `planes` at inverse(output pixel centre), zero outside.

    Returns:
      [C, S, S] float32.
    """
    channels, size = planes.shape[0], planes.shape[1]
    c = size / 2.0
    # Crop and pixel coordinates differ by a scale S/2 and a shift only, so the linear
    # part acts on pixel offsets from the centre unchanged.
    offsets = np.arange(size, dtype=np.float32) + np.float32(0.5 - c)
    inv = inverse.astype(np.float32)
    src_x = inv[0, 0] * offsets[None, :] + inv[0, 1] * offsets[:, None] + np.float32(c - 0.5)
    src_y = inv[1, 0] * offsets[None, :] + inv[1, 1] * offsets[:, None] + np.float32(c - 0.5)
    # A one-pixel zero border, and sources clipped to it: a source beyond the border then
    # has all its weight on border pixels, so outside reads as black without masks.
    padded = np.zeros((channels, size + 2, size + 2), np.float32)
    padded[:, 1:-1, 1:-1] = planes
    flat = padded.reshape(channels, -1)
    src_x = np.clip(src_x, -1.0, size) + 1.0
    src_y = np.clip(src_y, -1.0, size) + 1.0
    # Kept in float32 (float32 − int32 would promote to float64); x0 + 1 ≤ S + 1.
    x0 = np.minimum(np.floor(src_x), np.float32(size))
    y0 = np.minimum(np.floor(src_y), np.float32(size))
    fx, fy = src_x - x0, src_y - y0
    x0, y0 = x0.astype(np.int32), y0.astype(np.int32)
    top = y0 * (size + 2) + x0
    bottom = top + (size + 2)
    upper = np.take(flat, top, axis=1)
    upper += (np.take(flat, top + 1, axis=1) - upper) * fx
    lower = np.take(flat, bottom, axis=1)
    lower += (np.take(flat, bottom + 1, axis=1) - lower) * fx
    upper += (lower - upper) * fy
    return upper


def apply_params(example: Mapping[str, Any], params: AugmentParams) -> dict[str, Any]:
    """Apply one augmentation to an example of the data contract (a new dict).

    `image`, `keypoints`, `joints_3d` and `pose` are transformed when present; other keys
    are passed through. Labels that are flagged unusable (`has_smpl`, `has_3d` = 0) are
    transformed like the others: the losses mask them.
    """
    out = dict(example)
    if "image" in out:
        out["image"] = transform_image(out["image"], params)
    if "keypoints" in out:
        out["keypoints"] = transform_keypoints(out["keypoints"], params)
    if "joints_3d" in out:
        out["joints_3d"] = transform_joints_3d(out["joints_3d"], params)
    if "pose" in out:
        out["pose"] = transform_pose(out["pose"], params)
    return out


def augment(
    example: Mapping[str, Any],
    rng: np.random.Generator,
    config: AugmentConfig | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """SPIN's training augmentation of one example (deterministic given `rng`'s state).

    Args:
      example: a data-contract example (`image` [S, S, 3] uint8, `keypoints` [24, 3],
        `joints_3d` [24, 4], `pose` [72], ...).
      rng: the example's generator, e.g. the one grain passes to a `RandomMapTransform`.
      config: `AugmentConfig`, a mapping of its fields, or None for SPIN's defaults.

    Returns:
      A new dict with the same keys, shapes and dtypes.
    """
    if config is None:
        config = AugmentConfig()
    elif not isinstance(config, AugmentConfig):
        config = AugmentConfig.from_mapping(config)
    return apply_params(example, sample_params(rng, config))
