"""The demo's model: a trained run restored (`Predictor`, with its config and body), crops
in, `Prediction` out (pose, betas, weak-perspective camera and the mesh in the camera
frame), in padded batches so that one compiled program serves every batch.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class Prediction(NamedTuple):
    """The model's final estimate for a batch, NumPy float32.

    Attributes:
      pose: [B, 24, 3] axis-angle (joint 0: global orientation, camera frame).
      betas: [B, NB].
      camera: [B, 3] (s, tx, ty), weak perspective in the crop's [-1, 1] coordinates.
      vertices: [B, V, 3] the mesh in the camera frame (x right, y down, z away), metres.
    """

    pose: np.ndarray
    betas: np.ndarray
    camera: np.ndarray
    vertices: np.ndarray


@jax.jit
def _mesh(body, betas, rotmat):
    """[B, NB], [B, 24, 3, 3] → vertices [B, V, 3] (a program of its own, so that another
    body does not recompile the regressor)."""
    return body(betas=betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1],
                pose2rot=False).vertices  # fmt: skip


def predict_images(model, body, crops) -> Prediction:
    """Run a model (eval mode) and the body on crops.

    Args:
      model: a `MeshRegressor`, e.g. from `inference.restore_model`.
      body: the `smpl_jax.SMPL` it was trained with (`bodies.load_body(config)[0]`).
      crops: uint8 [B, S, S, 3] at the model's `config.data.image_size`.

    Returns:
      `Prediction`. Compiled once per model structure and batch shape.
    """
    # Lazily, here and below: flax and inference (orbax) take ~1 s to import, which the
    # command's --help and its checks of the inputs need not wait for.
    from flax import nnx

    from hkmr_jax import inference

    graphdef, variables = nnx.split(model)
    out = inference.predict_fn(graphdef)(variables, crops).final
    vertices = _mesh(body, out.betas, out.rotmat)
    return Prediction(*(np.asarray(x) for x in (out.pose, out.betas, out.camera, vertices)))


def load_run_config(workdir):
    """A run's config (an `ml_collections.ConfigDict`) from ``WORKDIR/config.json``
    (`hkmr_jax.inference.load_run_config`).

    Raises:
      cli.UserError: no such directory, or no readable config.json in it.
    """
    from hkmr_jax import inference  # lazily: see predict_images

    return inference.load_run_config(workdir)


class Predictor:
    """A trained run, ready to predict: crops in, `Prediction` out, in batches.

    Attributes:
      config: the run's config.
      model: the restored model (eval mode).
      body: its `smpl_jax.SMPL`.
      faces: [F, 3] int32 of the body.
      step: the restored checkpoint's step.
      image_size: S, the crop size the model takes.
    """

    def __init__(self, config, model, body, step: int):
        self.config, self.model, self.body, self.step = config, model, body, int(step)
        self.faces = np.asarray(body.faces, np.int32)
        self.image_size = int(config.data.image_size)

    @classmethod
    def from_workdir(cls, workdir, step: int | None = None) -> Predictor:
        """Restore a run's latest (or `step`'s) checkpoint with its own config
        (`hkmr_jax.inference.restore`, the path eval.py takes too).

        Raises:
          cli.UserError: no run, no checkpoint (or no such step), or checkpoints that do
            not fit the config.
        """
        from hkmr_jax import inference  # lazily: see predict_images

        run = inference.restore(workdir, step=step)
        return cls(run.config, run.model, run.body, run.step)

    def __call__(self, crops, batch_size: int = 8) -> Prediction:
        """uint8 crops [N, S, S, 3] → `Prediction` of N, `batch_size` at a time (the last
        batch padded, so that one program serves every batch)."""
        crops = np.asarray(crops, np.uint8)
        s = self.image_size
        if crops.ndim != 4 or crops.shape[1:] != (s, s, 3):
            raise ValueError(f"crops must be uint8 [N, {s}, {s}, 3], got {list(crops.shape)}.")
        n = len(crops)
        b = max(1, min(int(batch_size), n))
        parts = []
        for start in range(0, n, b):
            chunk = crops[start : start + b]
            padded = np.concatenate([chunk, np.zeros((b - len(chunk), s, s, 3), np.uint8)])
            pred = predict_images(self.model, self.body, padded)
            parts.append([x[: len(chunk)] for x in pred])
        return Prediction(*(np.concatenate(xs) for xs in zip(*parts, strict=True)))
