"""The SMPL body model as a JAX pytree, and its forward pass (Loper et al. 2015).

`SMPL` holds the model's arrays (a registered dataclass) and is called like smplx's layer;
`regress_joints` applies a joint regressor. The API contract: docs/CONTRACT_smpl_jax.md.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from smpl_jax import kinematics, rotation

_HIGHEST = kinematics._HIGHEST


class SMPLOutput(NamedTuple):
    """What a forward pass returns; every field has the batch axis B first.

    Attributes:
      vertices: [B, V, 3] posed mesh, metres (+ transl).
      joints: [B, J, 3] posed kinematic-chain joints (+ transl), as smplx's first 24.
      rest_joints: [B, J, 3] joints regressed from the shaped rest mesh.
      rotations: [B, J, 3, 3] local joint rotations (relative to the parent).
      transforms: [B, J, 4, 4] world frame of each joint: global rotation and the posed
        joint position (+ transl).
      v_shaped: [B, V, 3] rest mesh after the shape blend, before pose correctives.
    """

    vertices: jax.Array
    joints: jax.Array
    rest_joints: jax.Array
    rotations: jax.Array
    transforms: jax.Array
    v_shaped: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SMPL:
    """A SMPL-format body model. Build it with `smpl_jax.load` or `io.model_from_arrays`.

    Arrays are pytree leaves (so a model can be passed to `jit`, `vmap`, `grad`); the
    kinematic tree is static. The blend shapes are stored in the layout the forward pass
    multiplies with, so that a batch of bodies is one GEMM per blend:

    Attributes:
      v_template: [V, 3] rest mesh of the mean shape, metres.
      shapedirs: [NB, 3*V] shape blend shapes, planar: entry [k, c·V + v] is coordinate c
        of vertex v (the official (V, 3, NB) array, transposed to (NB, 3, V)).
      posedirs: [P, 3*V] pose-corrective blend shapes, planar likewise; P = 9·(J−1)
        features of (R − I).
      J_regressor: [J, V] dense joint regressor.
      weights: [V, J] linear-blend-skinning weights.
      faces: [F, 3] int32 triangle indices.
      joint_template: [J, 3] = J_regressor @ v_template (precomputed).
      joint_shapedirs: [NB, J*3] = J_regressor applied to each shape direction, so joints
        come from betas directly instead of a [J, V] product per body.
      parents: static tuple of J parent indices, -1 for the root.
    """

    v_template: jax.Array
    shapedirs: jax.Array
    posedirs: jax.Array
    J_regressor: jax.Array
    weights: jax.Array
    faces: jax.Array
    joint_template: jax.Array
    joint_shapedirs: jax.Array
    parents: tuple[int, ...] = dataclasses.field(metadata=dict(static=True))

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[0]

    @property
    def dtype(self):
        return self.v_template.dtype

    def __call__(
        self, betas=None, body_pose=None, global_orient=None, transl=None, pose2rot=True
    ) -> SMPLOutput:
        """Pose and shape the body.

        Args:
          betas: [B, NB'] shape coefficients, NB' ≤ NB (missing ones are zero).
          body_pose: axis-angle [B, (J−1)·3] or [B, J−1, 3]; with `pose2rot=False`,
            rotation matrices [B, J−1, 3, 3].
          global_orient: axis-angle [B, 3] or [B, 1, 3]; with `pose2rot=False`
            [B, 3, 3] or [B, 1, 3, 3].
          transl: [B, 3] translation added to vertices and joints.
          pose2rot: whether poses are axis-angle (True) or rotation matrices (False).

        Omitted inputs are zeros (rest pose, mean shape); B is taken from the given
        inputs, 1 if none is given.

        Returns:
          SMPLOutput.
        """
        nj, dtype = self.num_joints, self.dtype
        rot_tail = (3,) if pose2rot else (3, 3)
        batch = _batch_size(
            betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl
        )

        betas = _check("betas", betas, batch, (None,), dtype, default_width=self.num_betas)
        if betas.shape[1] > self.num_betas:
            raise ValueError(
                f"betas has {betas.shape[1]} columns but this model was loaded with "
                f"num_betas={self.num_betas}; load it with a larger num_betas or pass fewer."
            )
        betas = jnp.pad(betas, ((0, 0), (0, self.num_betas - betas.shape[1])))
        body_pose = _check("body_pose", body_pose, batch, (nj - 1, *rot_tail), dtype, pose2rot)
        global_orient = _check("global_orient", global_orient, batch, (1, *rot_tail), dtype)

        transl = (
            jnp.zeros((batch, 3), dtype) if transl is None
            else _check("transl", transl, batch, (3,), dtype)
        )  # fmt: skip
        # Validation stays outside (shapes are static, messages need Python); the
        # arithmetic is one jitted program, so even eager calls run compiled.
        return _forward(self, betas, global_orient, body_pose, transl, pose2rot=pose2rot)


@functools.partial(jax.jit, static_argnames="pose2rot")
def _forward(body: SMPL, betas, global_orient, body_pose, transl, pose2rot) -> SMPLOutput:
    """The SMPL function on validated inputs (see `SMPL.__call__`)."""
    batch, nj, nv, dtype = betas.shape[0], body.num_joints, body.num_vertices, body.dtype
    if pose2rot:
        rotations = rotation.axis_angle_to_matrix(
            jnp.concatenate([global_orient, body_pose], axis=1)
        )
    else:
        rotations = jnp.concatenate([global_orient, body_pose], axis=1)

    # Inside, meshes are planar, [B, 3, V] (x, y, z planes): each blend is one GEMM
    # for the whole batch, [B, K] @ [K, 3·V], and skinning is then elementwise along
    # V. Measured on CPU, this is ~3× faster than [B, V, 3] (whose 3-wide minor axis
    # makes XLA reduce and broadcast over tiny strided axes).
    v_shaped = body.v_template.T.reshape(1, -1) + jnp.matmul(
        betas, body.shapedirs, precision=_HIGHEST
    )
    rest_joints = body.joint_template + jnp.matmul(
        betas, body.joint_shapedirs, precision=_HIGHEST
    ).reshape(batch, nj, 3)

    pose_feature = (rotations[:, 1:] - jnp.eye(3, dtype=dtype)).reshape(batch, -1)
    v_posed = v_shaped + jnp.matmul(pose_feature, body.posedirs, precision=_HIGHEST)

    global_rot, posed_joints = kinematics.forward_kinematics(rotations, rest_joints, body.parents)
    skin = kinematics.skinning_transforms(global_rot, posed_joints, rest_joints)
    vertices = kinematics.linear_blend_skinning(
        skin, body.weights, v_posed.reshape(batch, 3, nv)
    ).transpose(0, 2, 1)
    v_shaped = v_shaped.reshape(batch, 3, nv).transpose(0, 2, 1)

    vertices = vertices + transl[:, None]
    posed_joints = posed_joints + transl[:, None]
    transforms = jnp.concatenate(
        [
            jnp.concatenate([global_rot, posed_joints[..., None]], axis=-1),
            jnp.broadcast_to(jnp.array([0, 0, 0, 1], dtype), (batch, nj, 1, 4)),
        ],
        axis=-2,
    )
    return SMPLOutput(vertices, posed_joints, rest_joints, rotations, transforms, v_shaped)


def regress_joints(vertices, regressor):
    """Joints as fixed linear combinations of vertices (e.g. Human3.6M's 17).

    Args:
      vertices: [B, V, 3].
      regressor: [J, V], e.g. SPIN's `J_regressor_h36m.npy` (17 × 6890).

    Returns:
      [B, J, 3].
    """
    regressor = jnp.asarray(regressor, dtype=vertices.dtype)
    if regressor.ndim != 2 or regressor.shape[1] != vertices.shape[-2]:
        raise ValueError(
            f"regressor has shape {tuple(regressor.shape)}, expected (J, {vertices.shape[-2]}) "
            "for vertices of shape " + str(tuple(vertices.shape))
        )
    return jnp.einsum("jv,...vc->...jc", regressor, vertices, precision=_HIGHEST)


def _batch_size(**inputs) -> int:
    rows = {k: np.shape(a)[0] for k, a in inputs.items() if a is not None and np.ndim(a) > 0}
    if len(set(rows.values())) > 1:
        said = ", ".join(f"{k} has {n} rows" for k, n in rows.items())
        raise ValueError(
            f"inputs disagree on the batch size: {said}; give every input the same "
            "leading batch axis."
        )
    return next(iter(rows.values()), 1)


def _check(name, value, batch, tail, dtype, allow_flat=False, default_width=None):
    """Validate one input's shape (with a message naming it), default it to zeros."""
    if value is None:
        shape = (batch, default_width) if default_width is not None else (batch, *tail)
        return jnp.zeros(shape, dtype)
    if not isinstance(value, jax.core.Tracer) and not np.isfinite(np.asarray(value)).all():
        # Only for concrete inputs (NumPy: also a constant closed over inside jit, where a
        # jnp test would be traced); a traced input would need a host round trip.
        raise ValueError(f"{name} contains NaN or infinite values.")
    value = jnp.asarray(value, dtype)
    if tail == (None,):
        if value.ndim != 2:
            raise ValueError(f"{name} must have shape [B, N], got {tuple(value.shape)}.")
    elif value.shape[1:] != tail:
        flat = int(np.prod(tail))
        squeezable = tail[0] == 1 and value.shape[1:] == tail[1:]  # [B, 3] for [B, 1, 3]
        if (value.shape[1:] == (flat,) and (allow_flat or tail[0] == 1)) or squeezable:
            value = value.reshape(batch, *tail)
        else:
            expected = f"[B, {', '.join(map(str, tail))}]"
            if allow_flat:
                expected += f" or [B, {flat}]"
            raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}.")
    return value
