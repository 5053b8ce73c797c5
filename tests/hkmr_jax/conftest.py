"""Fixtures shared by the hkmr_jax tests."""

from pathlib import Path

import jax
import pytest

from hkmr_jax import checkpoint, config_files, train_lib
from hkmr_jax import workdir as workdir_lib

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory) -> Path:
    """A workdir as train.py writes it for `configs/hkmr.py:smoke` (no progress bar, no
    evals): config.json and an untrained checkpoint at step 0. One per test module."""
    config = config_files.get_config(ROOT / "configs" / "hkmr.py", "smoke")
    config.progress_bar = False
    config.evals = []
    workdir = tmp_path_factory.mktemp("untrained") / "run"
    workdir_lib.prepare_workdir(config, workdir, overwrite=False)
    trainer = train_lib.Trainer.create(config, train_lib.make_mesh(jax.devices()[:1]))
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints")
    ckpt.save(0, trainer.init_state())
    ckpt.close()
    return workdir
