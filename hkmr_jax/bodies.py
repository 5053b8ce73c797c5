"""The body a run uses: its SMPL model and the [17, V] Human3.6M joint regressor that
evaluation (and the losses' 3D joints) read its mesh with (`load_body`). Without
`config.body_model`, the built-in body and its own regressor; see docs/training.md."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import smpl_jax
from smpl_jax import array_files, synthetic


def load_body(config):
    """(SMPL body, Human3.6M regressor [17, V]) from `config.body_model` and
    `config.h36m_regressor` (paths; None: the built-in body and its regressor)."""
    body_path, regressor_path = config.get("body_model"), config.get("h36m_regressor")
    if not body_path:
        if regressor_path:
            raise ValueError(
                "config.h36m_regressor is set but config.body_model is not: the built-in "
                "body has its own regressor; set both (SMPL + SPIN's J_regressor_h36m.npy)."
            )
        return synthetic.load_builtin(), jnp.asarray(synthetic.h36m_regressor())
    body = smpl_jax.load(body_path)
    if not regressor_path:
        raise ValueError(
            f"config.body_model = {body_path!r} needs config.h36m_regressor: the [17, V] "
            "Human3.6M regressor of that body (SPIN's data/J_regressor_h36m.npy for SMPL)."
        )
    # A .npy (SPIN's file), or an .npz holding that one array; numbers only, no pickle.
    source = f"config.h36m_regressor {regressor_path}"
    regressor = array_files.load_array(regressor_path, what="[17, V] H36M regressor")
    regressor = array_files.numeric(regressor, source).astype(np.float32)
    if regressor.shape != (17, body.num_vertices):
        raise ValueError(
            f"{regressor_path}: expected a [17, {body.num_vertices}] regressor, got "
            f"{list(regressor.shape)}."
        )
    return body, jnp.asarray(regressor)


__all__ = ["load_body"]
