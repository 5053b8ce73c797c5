"""Shared test fixtures.

64-bit JAX is never switched on for the whole process: a test that needs float64 runs
inside `jax.enable_x64(True)` (a context manager in jax 0.10), directly or through the
`x64` fixture, so float32 tests elsewhere keep JAX's default dtypes.
"""

from __future__ import annotations

import os

# The suite checks the maths against references and the plumbing around it, not XLA's
# optimiser: compiling without most optimisations takes a third less time, and every
# numeric check holds (they compare with tolerances). Training, benchmarks/ and the
# README's numbers run optimised. HKMR_TEST_OPTIMIZED=1 runs the suite optimised too.
if not os.environ.get("HKMR_TEST_OPTIMIZED"):
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"  # also the tests' subprocesses

import jax  # after the environment it reads
import numpy as np
import pytest

#: SMPL's parents (docs/CONTRACT_smpl_jax.md), root first.
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)


def make_smpl_arrays(seed=0, num_vertices=400, num_betas=10, num_faces=600):
    """A random model in the official SMPL layouts (float64 numpy arrays).

    v_template (V,3) in a ~1 m box, shapedirs (V,3,NB) and posedirs (V,3,207) of a few
    cm, J_regressor (24,V) and weights (V,24) positive with rows summing to 1,
    kintree_table (2,24) uint32 with the root stored as 4294967295, f (F,3) uint32.
    """
    rng = np.random.default_rng(seed)
    nj = len(SMPL_PARENTS)
    regressor = rng.uniform(0.01, 1.0, (nj, num_vertices))
    weights = rng.uniform(0.01, 1.0, (num_vertices, nj)) ** 4  # a few dominant joints
    parents = np.array(SMPL_PARENTS, dtype=np.int64).astype(np.uint32)  # -1 → 4294967295
    return {
        "v_template": rng.uniform(-0.5, 0.5, (num_vertices, 3)) * [0.6, 1.7, 0.3],
        "shapedirs": 0.03 * rng.standard_normal((num_vertices, 3, num_betas)),
        "posedirs": 0.01 * rng.standard_normal((num_vertices, 3, 207)),
        "J_regressor": regressor / regressor.sum(axis=1, keepdims=True),
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "kintree_table": np.stack([parents, np.arange(nj, dtype=np.uint32)]),
        "f": rng.integers(0, num_vertices, (num_faces, 3)).astype(np.uint32),
    }


@pytest.fixture
def smpl_arrays():
    """Factory: `smpl_arrays(seed=0, num_vertices=400, num_betas=10)` → dict of arrays."""
    return make_smpl_arrays


@pytest.fixture
def x64():
    """Run the test with 64-bit JAX (float64 arrays), restoring the setting afterwards."""
    with jax.enable_x64(True):
        yield
