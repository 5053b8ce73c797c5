"""`hkmr-train` / `python train.py`: train and evaluate a config (flax examples style).

    hkmr-train --config configs/hkmr.py:smoke --workdir runs/smoke [--overwrite] \\
        [--config.num_steps=100 ...]

A config with `task='pose_prior'` (configs/pose_prior.py) trains the pose VAE instead
(`hkmr_jax.prior_train`).

Running it again with the same workdir resumes from the latest checkpoint. SIGTERM or
Ctrl-C saves a checkpoint and exits with status 0.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/hkmr.py:smoke.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, config.json.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Delete a previous run of another config in --workdir and start afresh."
)
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        # orbax and JAX log every checkpoint step at INFO; progress shows in the bar.
        logging.set_verbosity(logging.WARNING)
    config = _CONFIG.value
    if config.get("task") == "pose_prior":  # configs/pose_prior.py
        from hkmr_jax import prior_train

        prior_train.train_pose_prior(config, _WORKDIR.value)
        return
    from hkmr_jax import train_lib  # after flag parsing: --help stays fast

    train_lib.train_and_evaluate(config, _WORKDIR.value, overwrite=_OVERWRITE.value)


def main() -> None:
    """Console-script entry point."""
    app.run(_main)


if __name__ == "__main__":
    main()
