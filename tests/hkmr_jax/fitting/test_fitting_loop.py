"""SMPLify in the training loop (configs/hkmr_spin.py): the store fills, supervises,
survives a resume, and follows each batch's augmentation (SPIN's FitsDict)."""

from __future__ import annotations

import itertools
import json
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from hkmr_jax import bodies, checkpoint, config_files, inference, prior_train, train_lib
from hkmr_jax.data import augment, pipeline, synthetic
from hkmr_jax.data.augment import AugmentParams
from hkmr_jax.fitting import fit_store, smplify
from hkmr_jax.fitting import targets as fit_targets_lib
from smpl_jax import rotation

ROOT = Path(__file__).resolve().parents[3]


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
    # (It has the run's architecture, config.prior_vae, as load_pose_prior passes it in.)
    training = config.prior_training.copy_and_resolve_references()
    with training.unlocked():
        training.prior_vae = dict(config.prior_vae)
    prior_train.train_pose_prior(training, tmp_path / "vae")
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
    model, step = inference.restore_model(config, tmp_path / "full")
    assert step == 6 and not (tmp_path / "full" / "pose_prior").exists()
    restored_params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    jax.tree.map(np.testing.assert_array_equal, restored_params, jax.device_get(state["params"]))


@pytest.mark.filterwarnings("ignore:config.prior='vae' without")  # an untrained VAE will do
def test_fitting_refuses_a_missing_prior():
    config = spin_config()
    config.prior = "none"
    with pytest.raises(ValueError, match=r"needs config\.prior='vae'"):
        train_lib.Trainer.create(config)


def test_the_spin_mix_variants_are_default_with_spin_s_mix_and_iterations():
    def flat(config):
        return dict(_flat(json.loads(config.to_json_best_effort())))

    default, mix, nofit = (flat(spin_config(v)) for v in ("default", "spin_mix", "spin_mix_nofit"))
    changed = {k for k in default.keys() | mix.keys() if default.get(k) != mix.get(k)}
    assert changed == {"data.datasets", "fitting.smplify.num_iters"}
    assert mix["fitting.smplify.num_iters"] == 100
    entries = pipeline.expand_datasets(mix["data.datasets"], sizes=None)
    assert [(e.name, e.ratio) for e in entries] == [("synthetic", 0.25), ("synthetic_2d", 0.75)]
    assert {k for k in mix if mix[k] != nofit.get(k)} == {"fitting.enabled"}
    assert mix["fitting.enabled"] and not nofit["fitting.enabled"]


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flat(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


# --- stored fits follow each batch's augmentation (SPIN's FitsDict) -----------------------


def _as_matrices(pose):
    return np.asarray(rotation.axis_angle_to_matrix(jnp.asarray(pose).reshape(-1, 24, 3)))


class _FakeFitter:
    """SMPLify as `_fit_targets` uses it, with set answers: this batch's new fits (in the
    batch's frame) and their errors; re-scoring a stored fit gives 10 for the pose
    `expected_old` (in the batch's frame) and grows fast away from it."""

    def __init__(self, new_pose, new_betas, new_error, expected_old):
        self.new_pose, self.new_betas, self.new_error = new_pose, new_betas, new_error
        self.expected_old = expected_old

    def fit_from_regressor(self, final, keypoints):
        del final, keypoints
        return types.SimpleNamespace(
            pose=jnp.asarray(self.new_pose), betas=jnp.asarray(self.new_betas),
            reprojection_error=jnp.asarray(self.new_error),
            pixel_error=jnp.zeros(len(self.new_error)),
        )  # fmt: skip

    def refit_error(self, pose, betas, keypoints):
        del betas, keypoints
        got = rotation.axis_angle_to_matrix(pose.reshape(-1, 24, 3))
        want = rotation.axis_angle_to_matrix(jnp.asarray(self.expected_old).reshape(-1, 24, 3))
        return 10.0 + 1e4 * jnp.sum((got - want) ** 2, axis=(1, 2, 3))


def _fit_targets_on_one_device(fitter, fits, batch, threshold=100.0):
    mesh = train_lib.make_mesh(jax.devices()[:1])
    step = jax.shard_map(
        lambda f, b: fit_targets_lib.fit_targets(fitter, f, None, b, threshold),
        mesh=mesh, in_specs=(P(), P()), out_specs=P(), check_vma=False,
    )  # fmt: skip
    return jax.device_get(jax.jit(step)(fits, batch))


def test_stored_fits_are_moved_to_and_from_the_batch_frame():
    rng = np.random.default_rng(0)
    stored_pose = rng.normal(0, 0.3, 72).astype(np.float32)
    stored_pose[:3] = (2.5, 0.3, -0.4)  # a camera-frame-like global orientation
    stored_betas = rng.normal(0, 1, 10).astype(np.float32)
    store = fit_store.create({"0": 5})
    store = fit_store.update(store, 0, jnp.array([2]), stored_pose[None], stored_betas[None],
                             jnp.array([30.0]))  # fmt: skip
    fits = fit_store.to_arrays(store)
    # Example 2 (stored) and example 3 (no fit yet), both flipped and rotated in this batch.
    a = AugmentParams(flip=True, rotation=30.0)
    b = AugmentParams(flip=True, rotation=-25.0)
    batch = {
        "dataset_id": np.zeros(2, np.int32),
        "example_id": np.array([2, 3], np.int64),
        "keypoints": np.zeros((2, 24, 3), np.float32),
        "pose": np.zeros((2, 72), np.float32),
        "betas": np.zeros((2, 10), np.float32),
        "has_smpl": np.zeros(2, np.float32),
        pipeline.AUGMENT_ROTATION: np.array([a.rotation, b.rotation], np.float32),
        pipeline.AUGMENT_FLIP: np.array([a.flip, b.flip], np.float32),
    }
    # The stored fit as this batch sees it: the augmentation's label transform of it.
    expected_old = augment.transform_pose(stored_pose, a)
    new_pose = rng.normal(0, 0.3, (2, 72)).astype(np.float32)  # this batch's fits
    new_betas = rng.normal(0, 1, (2, 10)).astype(np.float32)
    fitter = _FakeFitter(new_pose, new_betas, np.array([50.0, 20.0], np.float32),
                         np.stack([expected_old, expected_old]))  # fmt: skip
    targets, (out, metrics) = _fit_targets_on_one_device(fitter, fits, batch)

    # Example 2: re-scored in the batch's frame (10, beating the new fit's 50), so the
    # target is the stored fit flipped and rotated like the batch's labels; the store
    # keeps it as it was.
    np.testing.assert_allclose(_as_matrices(targets["pose"][0]), _as_matrices(expected_old),
                               atol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(targets["betas"][0], stored_betas)
    np.testing.assert_array_equal(out["0"]["pose"][2], stored_pose)
    assert float(out["0"]["error"][2]) == 30.0
    # Example 3: the new fit (batch frame) is the target, and is stored un-flipped and
    # un-rotated: SPIN's inverse (flip back, then rotate by −rot) of the batch's pose.
    np.testing.assert_array_equal(targets["pose"][1], new_pose[1])
    np.testing.assert_array_equal(targets["has_smpl"], [1.0, 1.0])
    stored_new = out["0"]["pose"][3]
    spin_inverse = augment.rotate_pose(augment.flip_pose(new_pose[1]), -b.rotation)
    np.testing.assert_allclose(_as_matrices(stored_new), _as_matrices(spin_inverse), atol=1e-5)
    np.testing.assert_array_equal(out["0"]["betas"][3], new_betas[1])
    assert bool(out["0"]["fitted"][3]) and float(out["0"]["error"][3]) == 20.0
    # Read back in another batch's frame (rotated, not flipped): the original-frame fit
    # moved by that augmentation, not the flipped pose it was made as.
    other = AugmentParams(flip=False, rotation=10.0)
    read = fit_store.to_batch_frame(stored_new[None], other.rotation, other.flip)
    np.testing.assert_allclose(_as_matrices(read),
                               _as_matrices(augment.transform_pose(spin_inverse, other)),
                               atol=1e-5)  # fmt: skip
    assert not np.allclose(_as_matrices(stored_new), _as_matrices(new_pose[1]), atol=1e-2)
    assert float(metrics["fit/improved_fraction"]) == 0.5

    # Without the augmentation keys (a hand-made batch) nothing is moved: the stored fit
    # is then re-scored as it is and loses to the new one.
    plain = {k: v for k, v in batch.items() if k not in pipeline.AUGMENT_KEYS}
    targets, (out, _) = _fit_targets_on_one_device(fitter, fits, plain)
    np.testing.assert_array_equal(targets["pose"], new_pose)
    np.testing.assert_array_equal(out["0"]["pose"][2:4], new_pose)


def test_moved_fits_reproject_onto_the_augmented_keypoints():
    """With SMPLify's own re-scoring (built-in body): a person's true pose, stored in the
    original frame and moved to a flipped / rotated / scaled batch's frame, fits that
    batch's augmented keypoints as well as it fits the original ones; not moved, it
    does not."""
    body, regressor = bodies.load_body(spin_config())
    fitter = smplify.SMPLify.create(body, regressor, smplify.SMPLifyConfig(pose_prior="none"))
    source = synthetic.SyntheticDataset(split="train", size=64, seed=0)
    examples = [source[i] for i in range(6)]
    rng = np.random.default_rng(0)
    params = [
        AugmentParams(flip=bool(i % 2), rotation=float(rng.choice([-1, 1]) * rng.uniform(20, 50)),
                      scale=1.1)
        for i in range(6)
    ]  # fmt: skip
    augmented = [augment.apply_params(e, p) for e, p in zip(examples, params)]
    pose, betas = (np.stack([e[k] for e in examples]) for k in ("pose", "betas"))
    keypoints = np.stack([e["keypoints"] for e in examples])
    moved_keypoints = np.stack([e["keypoints"] for e in augmented])
    rot = np.array([p.rotation for p in params], np.float32)
    flip = np.array([p.flip for p in params], np.float32)
    original = np.asarray(fitter.refit_error(pose, betas, keypoints))
    moved = np.asarray(
        fitter.refit_error(fit_store.to_batch_frame(pose, rot, flip), betas, moved_keypoints)
    )
    unmoved = np.asarray(fitter.refit_error(pose, betas, moved_keypoints))
    assert np.all(original < 1.0)  # the labels are exact: a near-perfect fit
    np.testing.assert_allclose(moved, original, atol=0.5)
    assert np.all(unmoved > 20.0), unmoved


@pytest.mark.filterwarnings("ignore:config.prior='vae' without")  # an untrained VAE will do
def test_fitting_trains_with_augmentation(tmp_path):
    config = spin_config()  # batches of 8, half of them 2D-only people with stored fits
    config.data.augment = {}  # SPIN's: flips and rotations of the examples with fits
    # An untrained VAE. The step program is the first test's (compiled once per process:
    # neither the prior's values nor the augmentation are part of it).
    config.prior_training = None
    steps = 3
    batches = itertools.islice(pipeline.train_iterator(config, 0, process_index=0,
                                                       process_count=1), steps)  # fmt: skip
    flips = np.concatenate([b[pipeline.AUGMENT_FLIP] for b in batches])
    assert 0 < np.mean(flips) < 1  # the run below sees flipped and unflipped examples
    results = train_lib.train_and_evaluate(config, tmp_path / "aug", stop_after=steps)
    assert results["step"] == steps and np.isfinite(results["train/loss"])
    assert np.isfinite(results["train/fit/pixel_error"])
    _, state = restore(tmp_path / "aug", config)
    fits = jax.device_get(state["fits"]["1"])
    assert fits["fitted"].any()
    assert np.all(np.isfinite(fits["pose"])) and np.all(np.isfinite(fits["betas"]))
    assert np.all(np.isfinite(fits["error"][fits["fitted"]]))
