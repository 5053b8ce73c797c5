"""SMPLify's Gaussian-mixture pose prior (SMPLify-X's ``MaxMixturePrior``), as used by SPIN.

`load_gmm_prior` reads SMPLify's ``gmm_08.pkl`` as data (`smpl_jax.safe_pickle`: numpy
arrays only, no pickled code runs); `gmm_from_arrays` validates arrays and precomputes the
precisions and offsets; a `GMMPrior` maps [B, 69] body poses to [B] negative
log-likelihoods (max-mixture approximation). See docs/smplify.md.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from smpl_jax import safe_pickle

__all__ = ["GMMPrior", "gmm_from_arrays", "load_gmm_prior"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GMMPrior:
    """SMPLify's mixture-of-Gaussians pose prior, max-mixture approximation (SMPLify-X's
    ``MaxMixturePrior.merged_log_likelihood``, which SPIN uses).

    nll(θ) = min_m [½ (θ − μ_m)ᵀ Σ_m⁻¹ (θ − μ_m) − log w̃_m],
    w̃_m = w_m / ((2π)^(D/2) · √det Σ_m / min_m' √det Σ_m').

    Attributes:
      means: [M, D] (D = 69: SMPL joints 1…23, axis-angle).
      precisions: [M, D, D] inverse covariances.
      offsets: [M] −log w̃_m.
    """

    means: jax.Array
    precisions: jax.Array
    offsets: jax.Array

    def __call__(self, body_pose):
        """[B, D] body poses → [B] negative log-likelihoods (max-mixture)."""
        diff = body_pose[:, None, :] - self.means  # [B, M, D]
        prec_diff = jnp.einsum(
            "mij,bmj->bmi", self.precisions, diff, precision=jax.lax.Precision.HIGHEST
        )
        quad = jnp.sum(prec_diff * diff, axis=-1)
        return jnp.min(0.5 * quad + self.offsets, axis=-1)


def gmm_from_arrays(means, covars, weights, *, dtype=jnp.float32, source: str = "<arrays>"):
    """Validate a GMM's arrays and precompute its precisions and offsets (in float64).

    Args:
      means: [M, D]; covars: [M, D, D] symmetric positive definite; weights: [M] > 0.
      source: where the arrays came from, for error messages.

    Returns:
      `GMMPrior`.
    """
    try:
        means, covars, weights = (np.asarray(a, np.float64) for a in (means, covars, weights))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: GMM arrays are not numeric ({e}).") from e
    if means.ndim != 2:
        raise ValueError(f"{source}: 'means' has shape {means.shape}, expected (M, D).")
    m, d = means.shape
    if not (1 <= m <= 256 and 1 <= d <= 1024):
        raise ValueError(f"{source}: a GMM of {m} components of {d} dimensions; SMPLify's has "
                         "8 of 69 (at most 256 of 1024 are accepted).")  # fmt: skip
    if covars.shape != (m, d, d):
        raise ValueError(f"{source}: 'covars' has shape {covars.shape}, expected {(m, d, d)}.")
    weights = weights.reshape(-1)
    if weights.shape != (m,):
        raise ValueError(f"{source}: 'weights' has {weights.size} entries, expected {m}.")
    for name, a in (("means", means), ("covars", covars), ("weights", weights)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{source}: '{name}' contains NaN or infinite values.")
    if not np.all(weights > 0):
        raise ValueError(f"{source}: 'weights' must be positive, got {weights}.")
    sign, logdet = np.linalg.slogdet(covars)
    if not np.all(sign > 0):
        raise ValueError(f"{source}: a covariance is not positive definite.")
    try:
        np.linalg.cholesky(covars)
    except np.linalg.LinAlgError as e:
        raise ValueError(f"{source}: a covariance is not positive definite ({e}).") from e
    precisions = np.linalg.inv(covars)
    half_logdet = 0.5 * logdet
    offsets = -np.log(weights) + 0.5 * d * np.log(2 * np.pi) + (half_logdet - half_logdet.min())
    return GMMPrior(*(jnp.asarray(a, dtype) for a in (means, precisions, offsets)))


def _read_gmm_pickle(path: str) -> dict:
    """The dict of a GMM pickle, read as data (`smpl_jax.safe_pickle`; numpy only)."""
    with open(path, "rb") as f:
        data = f.read()
    admitted = {**safe_pickle.NUMPY, **safe_pickle.BUILTINS}
    try:
        raw = safe_pickle.load(data, admitted, source=path)
    except safe_pickle.UnsafePickleError as e:
        raise safe_pickle.UnsafePickleError(
            f"{e} A GMM prior file holds only numpy arrays; this file is not one (or was "
            "tampered with)."
        ) from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of numpy arrays, found {type(raw).__name__}.")
    arrays = {}
    for key in ("means", "covars", "weights"):
        if key in raw:
            if not safe_pickle.is_array(raw[key]):
                raise ValueError(f"{path}: '{key}' is not a numpy array.")
            arrays[key] = safe_pickle.to_array(raw[key], path)
    return arrays


def load_gmm_prior(path, dtype=jnp.float32) -> GMMPrior:
    """Read SMPLify's ``gmm_08.pkl`` (a Python 2 pickle of a dict of numpy arrays 'means'
    [8, 69], 'covars' [8, 69, 69], 'weights' [8]) without running any pickled code.

    Raises:
      FileNotFoundError: no such file (with where to get it).
      pickle.UnpicklingError: the file names a global other than numpy's array
        reconstructors (refused before anything runs).
      ValueError: truncated/corrupt file, missing keys, wrong shapes, bad values.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"GMM pose prior not found: {path!r}. SMPLify's gmm_08.pkl comes with SPIN's "
            "data (data/gmm_08.pkl after its fetch_data.sh) or SMPLify's code release "
            "(http://smplify.is.tue.mpg.de); or use pose_prior='vae' / 'none'."
        )
    try:
        raw = _read_gmm_pickle(path)
    except safe_pickle.UnsafePickleError:
        raise
    except (ValueError, OSError) as e:
        detail = str(e).replace(f"{path}: ", "")
        raise ValueError(
            f"{path}: cannot read this GMM prior file ({detail}); it may be truncated or "
            "corrupt: download it again."
        ) from None
    missing = [k for k in ("means", "covars", "weights") if k not in raw]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; found {sorted(map(str, raw))}.")
    return gmm_from_arrays(raw["means"], raw["covars"], raw["weights"], dtype=dtype, source=path)
