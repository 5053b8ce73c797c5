"""Fitting SMPL to 2D keypoints in the training loop (SPIN's SMPLify and its fit store).

`smplify` is the batched, jitted fitter; `gmm` SMPLify's mixture pose prior; `fit_store`
the per-example best fits (SPIN's ``FitsDict``) as arrays; `targets` one training
step's targets from them (imported on its own: it reads the data pipeline). Camera
maths lives in `hkmr_jax.geometry`. The choices are written down in docs/smplify.md.
"""

from hkmr_jax.fitting import fit_store, gmm, smplify
from hkmr_jax.fitting.fit_store import SMPLIFY_THRESHOLD, FitStore
from hkmr_jax.fitting.gmm import GMMPrior, gmm_from_arrays, load_gmm_prior
from hkmr_jax.fitting.smplify import SMPLify, SMPLifyConfig, SMPLifyResult

__all__ = [
    "SMPLIFY_THRESHOLD",
    "FitStore",
    "GMMPrior",
    "SMPLify",
    "SMPLifyConfig",
    "SMPLifyResult",
    "fit_store",
    "gmm",
    "gmm_from_arrays",
    "load_gmm_prior",
    "smplify",
]
