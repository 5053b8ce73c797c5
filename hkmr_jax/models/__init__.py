"""Models: encoders, the HKMR regressor, the HMR baseline, and their parameters.

Re-exports the regressors, `MeshRegressor` / `create` (encoder + regressor) and the
parameter types. The choices: docs/hkmr.md; the encoders: docs/encoder.md.
"""

from hkmr_jax.models.hkmr import HKMR
from hkmr_jax.models.hmr import HMR
from hkmr_jax.models.mesh_regressor import MeshRegressor, create
from hkmr_jax.models.params import MeanParams, RegressorOutput

__all__ = ["HKMR", "HMR", "MeanParams", "MeshRegressor", "RegressorOutput", "create"]
