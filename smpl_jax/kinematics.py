"""Forward kinematics over a joint tree, and the rigid transforms used for skinning.

`forward_kinematics`, `skinning_transforms` and `linear_blend_skinning` are the steps of
`smpl_jax.model`'s forward pass; the model's conventions: docs/CONTRACT_smpl_jax.md.
"""

from __future__ import annotations

import jax.numpy as jnp

from smpl_jax import skeleton

_HIGHEST = "highest"  # exact float32 GEMMs on GPU/TPU too (no TF32 / bf16 passes)


def _matmul3(a, b):
    """[..., 3, 3] @ [..., 3, n] as three explicit multiply-adds.

    No dot_general on purpose: jax/jaxlib 0.10.2 on CPU miscompiles a batched
    dot_general fed by gathers once `vmap` adds batch dimensions ("hlo verifier:
    Expected instruction to have shape ..."); tests/smpl_jax/test_model.py covers jit(vmap(...)).
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

    x'_v = Σ_j w_vj · A_j(x_v). For each output coordinate i, one GEMM blends row i of
    all joints' 3×4 transforms for every point of every body, then a multiply-add
    applies it. Working row by row keeps the temporaries small and lets the backward
    pass stay elementwise: blending all 12 entries at once and slicing them apart was
    measured 2.5× slower for forward+backward on CPU (every slice's cotangent is padded
    back to the full 12-entry array).

    Args:
      transforms: [B, J, 3, 4] rigid transforms (from `skinning_transforms`).
      weights: [V, J] skinning weights.
      points: [B, 3, V] rest-pose points, planar (x, y, z rows).

    Returns:
      [B, 3, V] skinned points, planar.
    """
    batch, nj = transforms.shape[:2]
    nv = weights.shape[0]
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    rows = []
    for i in range(3):  # output coordinates, not joints: three GEMMs
        row = transforms[:, :, i].transpose(0, 2, 1).reshape(batch * 4, nj)
        b = jnp.matmul(row, weights.T, precision=_HIGHEST).reshape(batch, 4, nv)
        rows.append(b[:, 0] * x + b[:, 1] * y + b[:, 2] * z + b[:, 3])
    return jnp.stack(rows, axis=1)
