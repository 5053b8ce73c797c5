"""Forward kinematics over a joint tree, and the rigid transforms used for skinning."""

from __future__ import annotations

import jax.numpy as jnp

from smpl_jax import skeleton

_HIGHEST = "highest"  # exact float32 GEMMs on GPU/TPU too (no TF32 / bf16 passes)


def _matmul3(a, b):
    """[..., 3, 3] @ [..., 3, n] as three explicit multiply-adds.

    No dot_general on purpose: jax/jaxlib 0.10.2 on CPU miscompiles a batched
    dot_general fed by gathers once `vmap` adds batch dimensions ("hlo verifier:
    Expected instruction to have shape ..."); tests/test_model.py covers jit(vmap(...)).
    The operands are tiny, so nothing is lost.
    """
    return (
        a[..., :, 0:1] * b[..., 0:1, :]
        + a[..., :, 1:2] * b[..., 1:2, :]
        + (a[..., :, 2:3] * b[..., 2:3, :])
    )


def forward_kinematics(rotations, rest_joints, parents):
    """Compose local joint rotations down the tree.

    The tree is walked level by level (SMPL: 9 levels), each level one batched
    matrix product over all of its joints, instead of joint by joint.

    Args:
      rotations: [B, J, 3, 3] local rotation of each joint relative to its parent.
      rest_joints: [B, J, 3] joint positions in the rest pose.
      parents: static sequence of J ints, -1 for the root, parents before children.

    Returns:
      global_rotations: [B, J, 3, 3] rotation of each joint's frame in the world.
      posed_joints: [B, J, 3] joint positions after posing (root stays at its rest place).
    """
    parents = tuple(parents)
    # Bone vectors: where each joint sits in its parent's (unrotated) frame.
    offsets = rest_joints - rest_joints[:, [max(p, 0) for p in parents]]
    offsets = offsets.at[:, 0].set(rest_joints[:, 0])
    global_rot = rotations
    posed = offsets
    for level in skeleton.tree_levels(parents)[1:]:
        idx = list(level)
        par = [parents[j] for j in idx]
        parent_rot = global_rot[:, par]
        global_rot = global_rot.at[:, idx].set(_matmul3(parent_rot, rotations[:, idx]))
        moved = _matmul3(parent_rot, offsets[:, idx][..., None])[..., 0]
        posed = posed.at[:, idx].set(moved + posed[:, par])
    return global_rot, posed


def skinning_transforms(global_rotations, posed_joints, rest_joints):
    """Rigid transforms that carry rest-pose points to the posed body, one per joint.

    A_j(x) = R_j (x − J_j) + J'_j, with R_j the global rotation, J_j the rest and J'_j
    the posed joint position; this is the "relative" transform of SMPL/smplx.

    Args:
      global_rotations: [B, J, 3, 3].
      posed_joints: [B, J, 3].
      rest_joints: [B, J, 3].

    Returns:
      [B, J, 3, 4]: rotation and translation stacked column-wise.
    """
    rotated_rest = _matmul3(global_rotations, rest_joints[..., None])[..., 0]
    translation = posed_joints - rotated_rest
    return jnp.concatenate([global_rotations, translation[..., None]], axis=-1)


def linear_blend_skinning(transforms, weights, points):
    """Move rest-pose points with a per-point blend of the joints' rigid transforms.

    x'_v = Σ_j w_vj · A_j(x_v), computed as one GEMM for the blended transforms of all
    points of all bodies, then an explicit 3×4 product per point. The product is written
    out coordinate by coordinate on purpose: broadcasting over the 3-long axes instead
    makes the backward pass reduce over tiny strided axes, measured ~5× slower on CPU.

    Args:
      transforms: [B, J, 3, 4] rigid transforms (from `skinning_transforms`).
      weights: [V, J] skinning weights.
      points: [B, 3, V] rest-pose points, planar (x, y, z rows).

    Returns:
      [B, 3, V] skinned points, planar.
    """
    batch, nj = transforms.shape[:2]
    nv = weights.shape[0]
    # [B·3·4, J] @ [J, V]: blended transform entries per point, [B, 3, 4, V].
    flat = transforms.transpose(0, 2, 3, 1).reshape(-1, nj)
    blended = jnp.matmul(flat, weights.T, precision=_HIGHEST).reshape(batch, 3, 4, nv)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    rows = [blended[:, i, 0] * x + blended[:, i, 1] * y + blended[:, i, 2] * z + blended[:, i, 3]
            for i in range(3)]  # fmt: skip
    return jnp.stack(rows, axis=1)
