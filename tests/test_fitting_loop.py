"""SMPLify in the training loop (configs/hkmr_spin.py): the store fills, supervises, and
survives a resume."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from hkmr_jax import checkpoint, config_files, prior_train, train_lib
from hkmr_jax.data import pipeline

ROOT = Path(__file__).resolve().parents[1]


def spin_config(variant="smoke"):
    c = config_files.get_config(ROOT / "configs" / "hkmr_spin.py", variant)
    c.progress_bar = False
    c.evals = []
    return c


def restore(workdir, config):
    trainer = train_lib.Trainer.create(config, workdir=workdir)
    ckpt = checkpoint.Checkpointer(Path(workdir) / "checkpoints")
    try:
        return ckpt.restore(checkpoint.abstract_like(trainer.init_state()))
    finally:
        ckpt.close()


def test_fits_are_stored_used_and_resumed(tmp_path):
    config = spin_config()  # 6 steps of 8: half 'synthetic' (id 0), half 'synthetic_2d' (id 1)
    # One small VAE for the three runs below (without a checkpoint each would train one).
    prior_train.train_pose_prior(config.prior_training, tmp_path / "vae")
    config.prior_checkpoint = str(tmp_path / "vae" / "params")
    full = train_lib.train_and_evaluate(config, tmp_path / "full")
    assert 0.0 <= full["train/fit/valid_fraction"] <= 1.0
    assert np.isfinite(full["train/fit/pixel_error"])
    _, state = restore(tmp_path / "full", config)
    fits = state["fits"]
    # The synthetic train split is a stream: no stored fits; the 16 2D-only people are.
    assert "0" not in fits
    assert fits["1"]["pose"].shape == (16, 72)
    fitted = np.asarray(fits["1"]["fitted"])
    assert fitted.any()
    assert np.all(np.isfinite(np.asarray(fits["1"]["error"])[fitted]))
    assert np.all(np.isinf(np.asarray(fits["1"]["error"])[~fitted]))

    # 3 steps + resume + 3 steps: the same store as 6 uninterrupted steps.
    train_lib.train_and_evaluate(config, tmp_path / "split", stop_after=3)
    _, half = restore(tmp_path / "split", config)
    train_lib.train_and_evaluate(config, tmp_path / "split")
    _, resumed = restore(tmp_path / "split", config)
    assert int(np.asarray(half["fits"]["1"]["fitted"]).sum()) <= int(fitted.sum())
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 resumed["fits"], fits)  # fmt: skip

    # Evaluation (restore_model: eval.py, the demo) needs the state's layout only: no
    # prior, no fitter, nothing trained, and not the training data (the store's layout
    # comes from the checkpoint: here the data config names a dataset that is not there).
    config.prior_checkpoint = None
    config.data.datasets = [dict(name="coco", ratio=1.0)]
    config.data.data_dir = str(tmp_path / "no_data_here")
    with pytest.raises(Exception, match="coco"):
        pipeline.dataset_sizes(config)
    model, step = train_lib.restore_model(config, tmp_path / "full")
    assert step == 6 and not (tmp_path / "full" / "pose_prior").exists()
    restored_params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    jax.tree.map(np.testing.assert_array_equal, restored_params, jax.device_get(state["params"]))


@pytest.mark.filterwarnings("ignore:config.prior='vae' without")  # an untrained VAE will do
def test_fitting_refuses_pose_augmentation_and_a_missing_prior():
    config = spin_config()
    config.data.augment = {}
    with pytest.raises(ValueError, match=r"augment"):
        train_lib.Trainer.create(config)
    config = spin_config()
    config.prior = "none"
    with pytest.raises(ValueError, match=r"needs config\.prior='vae'"):
        train_lib.Trainer.create(config)
