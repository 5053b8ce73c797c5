"""Table 1's floor: every person predicted as the model's starting point, the mean pose.

    python benchmarks/mean_pose.py [--config configs/hkmr.py] [--limit 300]
    python benchmarks/mean_pose.py --config.data.synthetic_yaw_range=360 \\
        --config.data.synthetic_pose_spread=0.3333   # the full pose law

The constant prediction of the config's `model.mean_params` (for the default configs:
the built-in data's mean body pose, upright and facing the camera, mean shape), scored
with `eval.py`'s protocol (14 LSP joints, pelvis-centred; MPJPE and PA-MPJPE in mm) on
the first `--limit` test people of the config's data. A model that does not beat it
has learnt nothing about the pose (PA-MPJPE) or the orientation (MPJPE).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from hkmr_jax import bodies, eval_lib
from hkmr_jax.data import pipeline
from hkmr_jax.models import mesh_regressor, params

_CONFIG = config_flags.DEFINE_config_file("config", "configs/hkmr.py", "Training config.")
_LIMIT = flags.DEFINE_integer("limit", 300, "Score the first LIMIT test examples.")
_DATASET = flags.DEFINE_string("dataset", "synthetic", "Dataset name (its test split).")


def mean_pose_baseline(config, dataset: str = "synthetic", limit: int | None = 300) -> dict:
    """`eval_lib.evaluate` of the constant mean-parameters prediction (see the docstring)."""
    body, h36m_regressor = bodies.load_body(config)
    mean = mesh_regressor.mean_params_from_config(config.model.get("mean_params"))
    batch_size = 64

    def predict(images):
        def constant(x):  # [...] → [1 iteration, B, ...]
            return jnp.broadcast_to(jnp.asarray(x), (1, images.shape[0], *x.shape))

        pose, betas, camera = constant(mean.pose), constant(mean.betas), constant(mean.camera)
        return params.stack_outputs(pose, betas, camera, "axis_angle")

    ctx = eval_lib.EvalContext(jax.jit(predict), body, h36m_regressor, batch_size)
    source = pipeline.make_source(dataset, "test", config.data)
    return eval_lib.evaluate(ctx, source, limit=limit)


def main(argv) -> None:
    del argv
    result = mean_pose_baseline(_CONFIG.value, _DATASET.value, _LIMIT.value)
    print(
        f"mean pose on {result['num_examples']} {_DATASET.value} test people: "
        f"MPJPE {result['mpjpe_mm']:.1f} mm, PA-MPJPE {result['pa_mpjpe_mm']:.1f} mm"
    )


if __name__ == "__main__":
    app.run(main)
