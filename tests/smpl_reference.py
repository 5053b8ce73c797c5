"""An independent float64 NumPy reference of SMPL, written from the paper's equations.

Loper, Mahmood, Romero, Pons-Moll, Black, "SMPL: A Skinned Multi-Person Linear Model",
SIGGRAPH Asia 2015, §3 (Eqs. 1-9). Nothing here imports `smpl_jax`: the arrays are taken in
the official file layouts (docs/CONTRACT_smpl_jax.md) and every step is a plain loop
over joints, so that a disagreement with the layer points at one of the two, never at shared code.

  T_S   = T̄ + Σ_k β_k S_k                       shape blend (Eq. 8), S = shapedirs (V,3,NB)
  J     = 𝒥 T_S                                 joint regressor (Eq. 10), 𝒥 (24,V)
  f(θ)  = concat_{j=1..23} vec_rowmajor(R_j − I) pose feature (Eq. 9), 207 values
  T_P   = T_S + Σ_n f_n P_n                      pose correctives, P = posedirs (V,3,207)
  G_k   = Π_{j ∈ A(k)} [R_j | J_j − J_parent(j)] world transform of joint k (Eq. 4)
  G'_k  = G_k · [I | −J_k]                       "remove the rest transform" (Eq. 3)
  v_i   = Σ_k w_ik G'_k [t_i; 1] + transl        linear blend skinning (Eq. 2)
"""

from __future__ import annotations

import numpy as np

ROOT_SENTINEL = 4294967295  # uint32 −1, the root's parent in the official kintree_table


def rodrigues(rotvec) -> np.ndarray:
    """Axis-angle (3,) → rotation matrix (3, 3): R = I + sin θ K̂ + (1 − cos θ) K̂².

    Near θ = 0 the coefficients sin θ / θ and (1 − cos θ)/θ² are replaced by their Taylor
    series (error below 1e-20 for θ < 1e-5), which also makes θ = 0 give exactly I.
    """
    r = np.asarray(rotvec, dtype=np.float64).reshape(3)
    theta = float(np.sqrt(r @ r))
    k = np.array([[0.0, -r[2], r[1]], [r[2], 0.0, -r[0]], [-r[1], r[0], 0.0]])
    if theta < 1e-5:
        a = 1.0 - theta**2 / 6.0
        b = 0.5 - theta**2 / 24.0
    else:
        a = np.sin(theta) / theta
        b = (1.0 - np.cos(theta)) / theta**2
    return np.eye(3) + a * k + b * (k @ k)


def parents_from_kintree(kintree_table) -> list[int]:
    """Row 0 of the official (2, J) kintree_table, with the root's 4294967295 as −1."""
    row = np.asarray(kintree_table)[0].astype(np.int64)
    return [-1 if int(p) == ROOT_SENTINEL or int(p) < 0 else int(p) for p in row]


def smpl_forward(arrays, betas=None, pose=None, transl=None, rotations=None):
    """One body, float64.

    Args:
      arrays: official-layout dict: v_template (V,3), shapedirs (V,3,NB), posedirs
        (V,3,207), J_regressor (24,V), weights (V,24), kintree_table (2,24).
      betas: (NB',) with NB' ≤ NB (the rest are zero); None for zeros.
      pose: (72,) or (24,3) axis-angle, root first; None for zeros.
      transl: (3,); None for zeros.
      rotations: (24,3,3) local rotation matrices, used instead of `pose` if given.

    Returns:
      dict with vertices (V,3), joints (24,3) posed (+ transl), rest_joints (24,3),
      rotations (24,3,3) local, transforms (24,4,4) world G_k with translation + transl,
      v_shaped (V,3).
    """
    v_template = np.asarray(arrays["v_template"], np.float64)
    shapedirs = np.asarray(arrays["shapedirs"], np.float64)
    posedirs = np.asarray(arrays["posedirs"], np.float64)
    regressor = np.asarray(arrays["J_regressor"], np.float64)
    weights = np.asarray(arrays["weights"], np.float64)
    parents = parents_from_kintree(arrays["kintree_table"])
    nv, nj = v_template.shape[0], len(parents)

    # Shape blend: T_S = T̄ + Σ_k β_k S_k.
    v_shaped = v_template.copy()
    if betas is not None:
        betas = np.asarray(betas, np.float64).reshape(-1)
        for k, beta in enumerate(betas):
            v_shaped += beta * shapedirs[:, :, k]

    # Joints in the rest pose: J = 𝒥 T_S.
    rest_joints = np.zeros((nj, 3))
    for j in range(nj):
        for c in range(3):
            rest_joints[j, c] = regressor[j] @ v_shaped[:, c]

    # Local rotations.
    if rotations is None:
        pose = np.zeros((nj, 3)) if pose is None else np.asarray(pose, np.float64)
        pose = pose.reshape(nj, 3)
        rotations = np.stack([rodrigues(pose[j]) for j in range(nj)])
    rotations = np.asarray(rotations, np.float64).reshape(nj, 3, 3)

    # Pose blend: feature (R_j − I) row-major for joints 1..J−1, joint-major.
    feature = []
    for j in range(1, nj):
        d = rotations[j] - np.eye(3)
        for r in range(3):
            for c in range(3):
                feature.append(d[r, c])
    feature = np.array(feature)
    v_posed = v_shaped.copy()
    for n, f_n in enumerate(feature):
        v_posed += f_n * posedirs[:, :, n]

    # World transforms down the chain: G_k = G_parent · [R_k | J_k − J_parent].
    world = np.zeros((nj, 4, 4))
    for k in range(nj):
        local = np.eye(4)
        local[:3, :3] = rotations[k]
        p = parents[k]
        local[:3, 3] = rest_joints[k] - (rest_joints[p] if p >= 0 else 0.0)
        world[k] = local if p < 0 else world[p] @ local

    # Skinning: v_i = Σ_k w_ik G'_k [t_i; 1], G'_k = G_k · [I | −J_k].
    vertices = np.zeros((nv, 3))
    homogeneous = np.concatenate([v_posed, np.ones((nv, 1))], axis=1)
    for k in range(nj):
        remove_rest = np.eye(4)
        remove_rest[:3, 3] = -rest_joints[k]
        g = world[k] @ remove_rest
        vertices += weights[:, k : k + 1] * (homogeneous @ g[:3].T)

    transl = np.zeros(3) if transl is None else np.asarray(transl, np.float64).reshape(3)
    vertices = vertices + transl
    transforms = world.copy()
    transforms[:, :3, 3] += transl
    return {
        "vertices": vertices,
        "joints": transforms[:, :3, 3].copy(),
        "rest_joints": rest_joints,
        "rotations": rotations,
        "transforms": transforms,
        "v_shaped": v_shaped,
    }


def smpl_forward_batch(arrays, betas=None, pose=None, transl=None, rotations=None):
    """`smpl_forward` for each row of a batch; returns the same keys with a batch axis."""
    inputs = [x for x in (betas, pose, transl, rotations) if x is not None]
    batch = len(inputs[0]) if inputs else 1

    def row(x, b):
        return None if x is None else np.asarray(x)[b]

    outs = [
        smpl_forward(arrays, row(betas, b), row(pose, b), row(transl, b), row(rotations, b))
        for b in range(batch)
    ]
    return {k: np.stack([o[k] for o in outs]) for k in outs[0]}
