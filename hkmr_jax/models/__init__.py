"""Models: encoders, the HKMR regressor, the HMR baseline, and their parameters."""

from hkmr_jax.models.hkmr import HKMR
from hkmr_jax.models.hmr import HMR
from hkmr_jax.models.mesh_regressor import MeshRegressor, create
from hkmr_jax.models.params import MeanParams, RegressorOutput

__all__ = ["HKMR", "HMR", "MeanParams", "MeshRegressor", "RegressorOutput", "create"]
