"""Encoder + regressor: an image batch in, SMPL parameters of every iteration out.

`create` builds one from `config.model` (encoder, regressor, mean parameters, compute
dtype). The regressors: docs/hkmr.md; the encoders: docs/encoder.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from hkmr_jax.models import encoder as encoder_lib
from hkmr_jax.models import params as params_lib
from hkmr_jax.models.hkmr import HKMR
from hkmr_jax.models.hmr import HMR

REGRESSORS = {"hkmr": HKMR, "hmr": HMR}

#: `compute_dtype` names → the encoder's computation dtype (None: float32, as the inputs
#: and parameters are).
COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


class MeshRegressor(nnx.Module):
    """images [B, H, W, 3] → `params.RegressorOutput` (T iterations, B examples)."""

    def __init__(self, encoder: nnx.Module, regressor: nnx.Module):
        self.encoder = encoder
        self.regressor = regressor

    def __call__(self, images) -> params_lib.RegressorOutput:
        # The regressor always runs in float32 (a bfloat16 encoder's Φ is cast up).
        return self.regressor(self.encoder(images).astype(jnp.float32))


def mean_params_from_config(
    config: Mapping | None, num_betas: int = 10, *, body_pose=None
) -> params_lib.MeanParams:
    """`{'path': SPIN's smpl_mean_params.npz}` or `{'global_orient': (x, y, z),
    'camera_scale': s, 'body_pose': 'rest' | 'synthetic', 'pose_spread': σ share}`; None
    or {} gives `MeanParams.default`.

    Args:
      body_pose: optional [23, 3] (or [69]) mean body pose to start from instead of the
        rest pose, e.g. `data.synthetic.mean_body_pose` for `body_pose='synthetic'`.
        The model takes it as an array; without it, 'synthetic' is looked up by
        `_synthetic_body_pose` (an adapter for callers that pass only a config).
    """
    config = dict(config or {})
    known = {"path", "global_orient", "camera_scale", "num_betas", "body_pose", "pose_spread"}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown mean_params field(s) {sorted(unknown)}.")
    num_betas = config.get("num_betas", num_betas)
    if config.get("path"):
        return params_lib.MeanParams.from_spin_npz(config["path"], num_betas)
    mean = params_lib.MeanParams.default(
        num_betas, config.get("global_orient", (0.0, 0.0, 0.0)), config.get("camera_scale", 0.9)
    )
    name = config.get("body_pose", "rest")
    if name not in ("rest", "synthetic"):
        raise ValueError(f"unknown mean_params.body_pose {name!r}; choose 'rest' or 'synthetic'.")
    if body_pose is None and name == "synthetic":
        body_pose = _synthetic_body_pose(config.get("pose_spread"))
    if body_pose is not None:
        mean.pose[1:] = np.reshape(body_pose, (params_lib.NUM_JOINTS - 1, 3))
    return mean


def _synthetic_body_pose(pose_spread):
    """[23, 3] the built-in dataset's mean body pose (`data.synthetic.mean_body_pose`).

    An adapter for `train_lib.build_model`, which passes only the config: once callers
    pass ``body_pose=`` themselves it can go, and the models no longer reach into data
    code. Imported here, not at the top, so that `hkmr_jax.models` does not load the
    data package (and its dataset code) for a config option.
    """
    from hkmr_jax.data import synthetic  # lazy, heavy: runs JAX at import, loads the renderer

    return synthetic.mean_body_pose(pose_spread)


def create(config: Mapping, rngs: nnx.Rngs, *, body_pose=None) -> MeshRegressor:
    """Build a model from a config (a dict or an ml_collections.ConfigDict).

    Fields: `name` ('hkmr' | 'hmr'); `encoder` (`name` + keyword arguments of
    `encoder.create_encoder`); `regressor` (keyword arguments of `HKMR` / `HMR`);
    `mean_params` (see `mean_params_from_config`, which also takes `body_pose`);
    `compute_dtype` ('float32', the default, or 'bfloat16': the encoder computes in
    bfloat16 — convolutions, BatchNorm outputs — with float32 parameters and BatchNorm
    statistics; the regressor, whose share of the arithmetic is under 0.1% with
    ResNet-50, stays float32).
    """
    config = dict(config)
    name = config.get("name")
    if name not in REGRESSORS:
        raise ValueError(f"unknown model name {name!r}; choose one of {sorted(REGRESSORS)}.")
    compute_dtype = config.get("compute_dtype") or "float32"
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(
            f"unknown model.compute_dtype {compute_dtype!r}; choose one of {list(COMPUTE_DTYPES)}."
        )
    encoder_config = dict(config.get("encoder", {"name": "resnet50"}))
    if COMPUTE_DTYPES[compute_dtype] is not None:
        encoder_config["dtype"] = COMPUTE_DTYPES[compute_dtype]
    encoder = encoder_lib.create_encoder(encoder_config.pop("name"), rngs=rngs, **encoder_config)
    mean = mean_params_from_config(config.get("mean_params"), body_pose=body_pose)
    regressor = REGRESSORS[name](
        encoder.feature_dim, mean, rngs=rngs, **dict(config.get("regressor", {}))
    )
    return MeshRegressor(encoder, regressor)
