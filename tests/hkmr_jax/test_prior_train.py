"""The pose VAE trains (configs/pose_prior.py) and HKMR's training loads it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from hkmr_jax import config_files, prior_train
from hkmr_jax.data import synthetic
from hkmr_jax.models import pose_prior
from smpl_jax import skeleton

ROOT = Path(__file__).resolve().parents[2]


def prior_config(variant="smoke"):
    return config_files.get_config(ROOT / "configs" / "pose_prior.py", variant)


@pytest.mark.parametrize("spread", [synthetic.POSE_SPREAD, 1 / 3])
def test_sample_body_poses_follow_the_dataset_law(spread):
    """The vectorised sampler and the per-example one draw from one distribution: every
    component within the limits, and matching means and spreads over many draws."""
    lo, hi, _ = synthetic.pose_limits()
    fast = synthetic.sample_body_poses(np.random.default_rng(0), 4000, spread)
    fast = fast.reshape(-1, 23, 3)
    assert fast.dtype == np.float32
    assert np.all(fast >= lo[1:] - 1e-6) and np.all(fast <= hi[1:] + 1e-6)
    slow = np.stack([
        synthetic.sample_parameters(np.random.default_rng([7, i]), pose_spread=spread)["pose"][3:]
        for i in range(4000)
    ]).reshape(-1, 23, 3)  # fmt: skip
    # Standard error of a mean of 4000 draws with σ ≤ range/3 (at either spread: at most
    # ~0.29·range, the uniform redraws): ≤ 0.016·range/3; 5 SE margin.
    bound = (hi[1:] - lo[1:]) / 3.0
    np.testing.assert_array_less(np.abs(fast.mean(0) - slow.mean(0)), 0.08 * bound + 1e-9)
    np.testing.assert_array_less(np.abs(fast.std(0) - slow.std(0)), 0.08 * bound + 1e-9)


def test_pose_spread_sets_sigma():
    """The neck's sideways turn (y, −40°…40°, mode 0): σ = spread·80°. At the default 1/6
    the limits are 3σ away, so the draws' std is σ to within 2 % (truncated normal); at 1/3
    they are 1.5σ away and the std is 0.76σ (truncation mixed with uniform redraws)."""
    neck = 3 * (skeleton.JOINT_NAMES.index("neck") - 1) + 1  # its y in the [69] body pose
    std = [
        synthetic.sample_body_poses(np.random.default_rng(1), 20_000, s)[:, neck].std()
        for s in (1 / 6, 1 / 3)
    ]
    np.testing.assert_allclose(np.rad2deg(std), [80 / 6 * 0.989, 80 / 3 * 0.76], rtol=0.03)


def test_vae_trains_on_synthetic_poses_and_hkmr_loads_it(tmp_path):
    config = prior_config()
    config.num_steps, config.log_every, config.batch_size = 150, 75, 64
    config.learning_rate = 3e-3
    config.prior_vae = dict(latent_dim=8, hidden_dim=64)
    poses = synthetic.sample_body_poses(np.random.default_rng(5), 512)
    untrained = pose_prior.PoseVAE(**config.prior_vae, rngs=nnx.Rngs(0))
    before = prior_train._validation_metrics(untrained, poses)["validation/geodesic_deg"]

    results = prior_train.train_pose_prior(config, tmp_path / "vae")
    assert (tmp_path / "vae" / "params").is_dir()
    assert not [p for p in (tmp_path / "vae").iterdir() if p.name.endswith(".tmp")]
    after = results["validation/geodesic_deg"]
    assert after < 0.7 * before, (before, after)

    # HKMR's config points at it: the restored VAE reproduces the trained one's metric.
    hkmr = train_lib_config()
    hkmr.prior, hkmr.prior_vae = "vae", dict(config.prior_vae)
    hkmr.prior_checkpoint = str(tmp_path / "vae" / "params")
    graphdef, state = prior_train.load_pose_prior(hkmr)
    restored = nnx.merge(graphdef, nnx.State(state))
    again = prior_train._validation_metrics(restored, prior_train._Poses(config).validation)
    assert again["validation/geodesic_deg"] == pytest.approx(after, rel=1e-5)

    # A second call keeps the trained prior instead of retraining.
    mtime = (tmp_path / "vae" / "params").stat().st_mtime_ns
    prior_train.train_pose_prior(config, tmp_path / "vae")
    assert (tmp_path / "vae" / "params").stat().st_mtime_ns == mtime

    hkmr.prior_vae = dict(latent_dim=16, hidden_dim=64)
    with pytest.raises(ValueError, match=r"does not match config\.prior_vae"):
        prior_train.load_pose_prior(hkmr)


def test_hkmr_without_prior_checkpoint_trains_one_in_the_workdir(tmp_path):
    hkmr = train_lib_config()
    hkmr.prior, hkmr.prior_vae = "vae", dict(latent_dim=8, hidden_dim=32)
    hkmr.prior_training = prior_config()
    hkmr.prior_training.prior_vae = dict(latent_dim=4, hidden_dim=16)  # not the run's: unused
    assert prior_train.load_pose_prior(hkmr, tmp_path) is not None
    assert (tmp_path / "pose_prior" / "params").is_dir()
    # The VAE trained in the workdir has the run's own architecture, config.prior_vae.
    trained = json.loads((tmp_path / "pose_prior" / "config.json").read_text())
    assert trained["prior_vae"] == {"latent_dim": 8, "hidden_dim": 32}
    assert dict(hkmr.prior_training.prior_vae) == {"latent_dim": 4, "hidden_dim": 16}
    # Real data: a prior of the built-in poses would be silently wrong; ask for AMASS.
    hkmr.data.datasets = [dict(name="h36m", ratio=1.0)]
    with pytest.raises(ValueError, match=r"Train one on AMASS"):
        prior_train.load_pose_prior(hkmr, tmp_path / "real")


def test_bad_prior_configs_are_named(tmp_path):
    config = prior_config()
    config.data.source = "mocap"
    with pytest.raises(ValueError, match=r"unknown data\.source 'mocap'"):
        prior_train.train_pose_prior(config, tmp_path / "a")
    config.data.source = "amass"
    with pytest.raises(ValueError, match="amass_glob"):
        prior_train.train_pose_prior(config, tmp_path / "b")
    config.data.amass_glob = str(tmp_path / "nothing" / "*.npz")
    with pytest.raises(FileNotFoundError, match="no AMASS files match"):
        prior_train.train_pose_prior(config, tmp_path / "c")
    assert not (tmp_path / "c" / "params").exists()


def test_vae_trains_on_amass_files(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        poses = np.zeros((40, 156))
        poses[:, 3:66] = 0.2 * rng.standard_normal((40, 63))
        np.savez(tmp_path / f"seq{i}_poses.npz", poses=poses)
    config = prior_config("amass")
    config.num_steps, config.log_every, config.batch_size = 4, 2, 8
    config.prior_vae = dict(latent_dim=4, hidden_dim=16)
    config.data.amass_glob = str(tmp_path / "*_poses.npz")
    results = prior_train.train_pose_prior(config, tmp_path / "vae")
    assert np.isfinite(results["validation/geodesic_deg"])
    assert (tmp_path / "vae" / "params").is_dir()


def train_lib_config():
    return config_files.get_config(ROOT / "configs" / "hkmr.py", "smoke")
