"""SMPL parameters as the regressors see them: representations, mean (initial) values, and
the output structure shared by HKMR and HMR so that everything downstream takes either.
Representations: 'axis_angle' or '6d'; the choices: docs/hkmr.md."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smpl_jax import array_files, rotation

NUM_JOINTS = 24

#: Size of one joint's rotation in each representation the regressors can predict in.
REPRESENTATION_SIZE = {"axis_angle": 3, "6d": 6}


def check_representation(name: str) -> int:
    """The per-joint size of representation `name`; a clear error for unknown names."""
    if name not in REPRESENTATION_SIZE:
        raise ValueError(
            f"unknown rotation representation {name!r}; choose one of "
            f"{sorted(REPRESENTATION_SIZE)}."
        )
    return REPRESENTATION_SIZE[name]


def to_matrix(theta, representation: str):
    """[..., P] joint rotations in `representation` → [..., 3, 3] rotation matrices."""
    if representation == "axis_angle":
        return rotation.axis_angle_to_matrix(theta)
    return rotation.rotation_6d_to_matrix(theta)


def from_axis_angle(axis_angle, representation: str):
    """[..., 3] axis-angle → [..., P] in `representation`."""
    if representation == "axis_angle":
        return axis_angle
    return rotation.matrix_to_rotation_6d(rotation.axis_angle_to_matrix(axis_angle))


class RegressorOutput(NamedTuple):
    """Every outer (HKMR) or feedback (HMR) iteration's estimate, iteration axis first.

    Attributes:
      pose: [T, B, 24, 3] axis-angle (SMPL's global orientation is joint 0).
      rotmat: [T, B, 24, 3, 3] the same rotations as matrices (feed SMPL with
        `pose2rot=False`: exact for either representation).
      betas: [T, B, NB] shape coefficients.
      camera: [T, B, 3] weak-perspective camera (s, tx, ty): x = s·Π(X) + (tx, ty), in
        the crop's normalised [-1, 1] coordinates.
    """

    pose: jax.Array
    rotmat: jax.Array
    betas: jax.Array
    camera: jax.Array

    @property
    def final(self) -> RegressorOutput:
        """The last iteration's estimate, without the iteration axis."""
        return RegressorOutput(*(x[-1] for x in self))


@dataclasses.dataclass(frozen=True)
class MeanParams:
    """Where the iterative regressors start: a pose, a shape and a camera.

    Attributes:
      pose: [24, 3] axis-angle.
      betas: [NB].
      camera: [3] (s, tx, ty).
    """

    pose: np.ndarray
    betas: np.ndarray
    camera: np.ndarray

    @classmethod
    def default(cls, num_betas: int = 10, global_orient=(0.0, 0.0, 0.0), scale: float = 0.9):
        """Rest pose with the given global orientation, mean shape, centred camera.

        0.9 is the camera scale of SPIN's `smpl_mean_params.npz` (a person filling ~90% of
        the crop).
        """
        pose = np.zeros((NUM_JOINTS, 3), np.float32)
        pose[0] = global_orient
        return cls(pose, np.zeros(num_betas, np.float32), np.array([scale, 0, 0], np.float32))

    @classmethod
    def from_data(cls, poses, betas, cameras):
        """Means of a dataset's labels: poses [N, 24, 3] (averaged as rotations), betas
        [N, NB], cameras [N, 3]."""
        quats = rotation.axis_angle_to_quaternion(jnp.asarray(poses, jnp.float32))
        # Average quaternions per joint after aligning their signs with the first sample.
        sign = jnp.sign(jnp.sum(quats * quats[:1], axis=-1, keepdims=True))
        mean_q = jnp.mean(quats * jnp.where(sign == 0, 1.0, sign), axis=0)
        pose = np.asarray(rotation.quaternion_to_axis_angle(mean_q), np.float32)
        return cls(
            pose, np.mean(betas, 0).astype(np.float32), np.mean(cameras, 0).astype(np.float32)
        )

    @classmethod
    def from_spin_npz(cls, path, num_betas: int = 10):
        """SPIN's `data/smpl_mean_params.npz`: pose (144,) in SPIN's 6D layout, shape (10,),
        cam (3,)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"mean-parameters file not found: {path}. SPIN ships it as "
                "data/smpl_mean_params.npz; or leave `mean_params` unset for the default."
            )
        f = array_files.load_npz(path)  # no pickle; headers checked before reading
        missing = {"pose", "shape", "cam"} - set(f)
        if missing:
            raise KeyError(f"{path}: missing key(s) {sorted(missing)} (SPIN's layout).")
        for key, size in (("pose", 144), ("shape", None), ("cam", 3)):
            array_files.numeric(f[key], f"{path} key {key!r}")
            if f[key].ndim != 1 or (size is not None and f[key].size != size):
                raise ValueError(
                    f"{path}: {key!r} has shape {f[key].shape}, expected "
                    f"({size or 'NB'},) as in SPIN's smpl_mean_params.npz."
                )
        pose6d, shape, cam = f["pose"], f["shape"], f["cam"]
        # SPIN reshapes each joint's 6 numbers to (3, 2), columns interleaved.
        ours = pose6d.reshape(NUM_JOINTS, 6)[:, [0, 2, 4, 1, 3, 5]]
        pose = rotation.matrix_to_axis_angle(rotation.rotation_6d_to_matrix(jnp.asarray(ours)))
        betas = np.zeros(num_betas, np.float32)
        betas[: min(num_betas, shape.size)] = shape[:num_betas]
        return cls(np.asarray(pose, np.float32), betas, np.asarray(cam, np.float32))


def stack_outputs(pose_p, betas, camera, representation: str) -> RegressorOutput:
    """Build a RegressorOutput from per-iteration [T, B, 24, P] poses."""
    rotmat = to_matrix(pose_p, representation)
    pose = pose_p if representation == "axis_angle" else rotation.matrix_to_axis_angle(rotmat)
    return RegressorOutput(pose, rotmat, betas, camera)
