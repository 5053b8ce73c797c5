"""The built-in body: a procedurally generated, redistributable model in SMPL's format.

Real SMPL files are licensed and cannot be shipped, yet tests, examples, the demo and the
synthetic training data need a body. `generator` builds one from code (`generate`; it is
**not SMPL**, and numbers measured on it say nothing about SMPL); `builtin` caches
`generate(0)` as an `.npz` and loads it (`builtin_path`, `load_builtin`,
`h36m_regressor`); ``python -m smpl_jax.synthetic OUT.npz`` writes one. How the body is
made, its betas and stature: docs/synthetic_body.md.
"""

from smpl_jax.synthetic.builtin import builtin_path, h36m_regressor, load_builtin
from smpl_jax.synthetic.generator import GENERATOR_VERSION, NUM_BETAS, generate

__all__ = [
    "GENERATOR_VERSION",
    "NUM_BETAS",
    "builtin_path",
    "generate",
    "h36m_regressor",
    "load_builtin",
]
