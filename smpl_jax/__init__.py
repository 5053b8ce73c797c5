"""smpl_jax: a differentiable SMPL body layer in pure JAX.

import smpl_jax
body = smpl_jax.load("SMPL_NEUTRAL.pkl")          # or .npz, or synthetic.load_builtin()
out = body(betas=b, body_pose=p, global_orient=g, transl=t)
out.vertices  # [B, V, 3]
out.joints    # [B, 24, 3]
"""

from smpl_jax import rotation, skeleton
from smpl_jax.io import load, load_arrays, model_from_arrays, save_npz
from smpl_jax.model import SMPL, SMPLOutput, regress_joints

__all__ = [
    "SMPL",
    "SMPLOutput",
    "load",
    "load_arrays",
    "model_from_arrays",
    "regress_joints",
    "rotation",
    "save_npz",
    "skeleton",
]
