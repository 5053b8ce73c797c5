"""Tests for hkmr_jax.fitting.fit_store (SPIN's FitsDict as arrays).

Expected values are written out by hand from the update rule: a new fit replaces the
stored one only when its error is lower; among duplicates the lowest error wins, ties to
the earliest position; SPIN's supervision rule is ``(error < 100) | has_smpl``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hkmr_jax import checkpoint as checkpoint_lib
from hkmr_jax.fitting import fit_store


def _rows(values, width):
    """Distinguishable rows: row i is values[i] repeated."""
    return jnp.asarray(np.repeat(np.asarray(values, np.float32)[:, None], width, axis=1))


@pytest.fixture
def store():
    return fit_store.create({"coco": 4, "mpii": 3})


def test_create_and_lookup_empty(store):
    assert store.names == ("coco", "mpii")
    pose, betas, error, fitted = fit_store.lookup(store, jnp.array([0, 1, 2]), jnp.array([3, 0, 0]))
    assert pose.shape == (3, 72) and betas.shape == (3, 10)
    assert np.all(np.isinf(error)) and not np.any(fitted)


def test_update_only_improves_and_keeps_datasets_apart(store):
    # coco #1 ← error 50, mpii #1 ← error 20.
    store = fit_store.update(
        store, jnp.array([0, 1]), jnp.array([1, 1]), _rows([1, 2], 72), _rows([1, 2], 10),
        jnp.array([50.0, 20.0]),
    )  # fmt: skip
    # A worse fit for coco #1 (60) is refused, a better one for mpii #1 (10) taken.
    store = fit_store.update(
        store, jnp.array([0, 1]), jnp.array([1, 1]), _rows([3, 4], 72), _rows([3, 4], 10),
        jnp.array([60.0, 10.0]),
    )  # fmt: skip
    pose, betas, error, fitted = fit_store.lookup(store, jnp.array([0, 1, 0]), jnp.array([1, 1, 0]))
    np.testing.assert_array_equal(pose[:, 0], [1, 4, 0])
    np.testing.assert_array_equal(betas[:, 0], [1, 4, 0])
    np.testing.assert_array_equal(error, [50, 10, np.inf])
    np.testing.assert_array_equal(fitted, [True, True, False])
    # Other entries untouched.
    assert int(np.sum(store.fits[0].fitted)) == 1 and int(np.sum(store.fits[1].fitted)) == 1


def test_update_by_dataset_name_and_scalar_id(store):
    a = fit_store.update(store, "mpii", jnp.array([2]), _rows([7], 72), _rows([7], 10),
                         jnp.array([5.0]))  # fmt: skip
    b = fit_store.update(store, 1, jnp.array([2]), _rows([7], 72), _rows([7], 10),
                         jnp.array([5.0]))  # fmt: skip
    for s in (a, b):
        assert float(s.fits[1].error[2]) == 5.0 and float(s.fits[1].pose[2, 0]) == 7.0
    with pytest.raises(KeyError, match="'lsp'"):
        fit_store.update(store, "lsp", jnp.array([0]), _rows([1], 72), _rows([1], 10),
                         jnp.array([1.0]))  # fmt: skip


def test_duplicates_resolve_deterministically(store):
    ids = jnp.array([0, 0, 0, 0, 1])
    idx = jnp.array([2, 2, 2, 2, 2])
    # Candidates for coco #2: errors 30, 10, 10, 5 → 5 (position 3) wins.
    err = jnp.array([30.0, 10.0, 10.0, 5.0, 40.0])
    out = jax.jit(fit_store.update)(store, ids, idx, _rows(range(5), 72), _rows(range(5), 10), err)
    assert float(out.fits[0].pose[2, 0]) == 3 and float(out.fits[0].error[2]) == 5
    assert float(out.fits[1].pose[2, 0]) == 4  # mpii #2 is another target
    # Ties go to the earliest position: 10 at positions 1 and 2 → 1.
    err = jnp.array([30.0, 10.0, 10.0, 20.0, 40.0])
    out = fit_store.update(store, ids, idx, _rows(range(5), 72), _rows(range(5), 10), err)
    assert float(out.fits[0].pose[2, 0]) == 1
    # A duplicate that does not improve does not block one that does.
    stored = fit_store.update(store, 0, jnp.array([2]), _rows([9], 72), _rows([9], 10),
                              jnp.array([15.0]))  # fmt: skip
    err = jnp.array([30.0, 12.0, 20.0, 16.0, 40.0])
    out = fit_store.update(stored, ids, idx, _rows(range(5), 72), _rows(range(5), 10), err)
    assert float(out.fits[0].pose[2, 0]) == 1 and float(out.fits[0].error[2]) == 12


def test_nonfinite_and_out_of_range_are_ignored(store):
    out = fit_store.update(
        store, jnp.array([0, 0, 1, 5, 0]), jnp.array([0, 1, 3, 0, -1]),
        _rows(range(5), 72), _rows(range(5), 10), jnp.array([jnp.nan, jnp.inf, 1.0, 1.0, 1.0]),
    )  # fmt: skip
    for fits in out.fits:
        assert not np.any(fits.fitted) and np.all(np.isinf(fits.error))
    # A dataset kept without fits (size 0, e.g. an endless stream) reads as "no fit".
    empty = fit_store.create({"stream": 0, "coco": 2})
    out = fit_store.update(empty, jnp.array([0, 1]), jnp.array([0, 1]), _rows([1, 2], 72),
                           _rows([1, 2], 10), jnp.array([1.0, 2.0]))  # fmt: skip
    assert out.fits[0].error.shape == (0,) and float(out.fits[1].error[1]) == 2.0
    _, _, error, fitted = fit_store.lookup(out, jnp.array([0, 1]), jnp.array([0, 1]))
    np.testing.assert_array_equal(error, [np.inf, 2.0])
    np.testing.assert_array_equal(fitted, [False, True])


def test_current_error_baseline(store):
    """SPIN compares with the stored fit's error recomputed for this batch."""
    stored = fit_store.update(store, 0, jnp.array([0, 1]), _rows([1, 2], 72),
                              _rows([1, 2], 10), jnp.array([10.0, 10.0]))  # fmt: skip
    out = fit_store.update(
        stored, 0, jnp.array([0, 1]), _rows([3, 4], 72), _rows([3, 4], 10),
        jnp.array([20.0, 20.0]), current_error=jnp.array([30.0, 15.0]),
    )  # fmt: skip
    np.testing.assert_array_equal(out.fits[0].pose[:2, 0], [3, 2])


def test_update_with_axis_name_matches_flat_update(store):
    """Under a mapped axis (here vmap; shard_map alike) every replica gathers all fits
    and applies the same update as one flat call would."""
    ids = jnp.array([[0, 1], [0, 0]])
    idx = jnp.array([[2, 0], [2, 3]])
    err = jnp.array([[8.0, 3.0], [4.0, 6.0]])
    pose, betas = _rows(range(4), 72).reshape(2, 2, 72), _rows(range(4), 10).reshape(2, 2, 10)
    mapped = jax.vmap(
        lambda i, x, p, b, e: fit_store.update(store, i, x, p, b, e, axis_name="data"),
        axis_name="data",
    )(ids, idx, pose, betas, err)
    flat = fit_store.update(store, ids.reshape(-1), idx.reshape(-1), pose.reshape(4, 72),
                            betas.reshape(4, 10), err.reshape(-1))  # fmt: skip
    for replica in range(2):
        got = jax.tree.map(lambda x, r=replica: x[r], mapped)
        jax.tree.map(np.testing.assert_array_equal, got, flat)
    assert float(flat.fits[0].pose[2, 0]) == 2  # error 4 beats 8 across replicas


_SHARD_MAP_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from hkmr_jax.fitting import fit_store
    assert jax.device_count() == 2
    mesh = jax.make_mesh((2,), ("data",))
    store = jax.device_put(fit_store.create({"coco": 4, "mpii": 3}), NamedSharding(mesh, P()))
    ids, idx = jnp.array([0, 1, 0, 0]), jnp.array([2, 0, 2, 3])  # coco #2 on both devices
    err = jnp.array([8.0, 3.0, 4.0, 6.0])
    pose = jnp.repeat(jnp.arange(4.0)[:, None], 72, 1)
    betas = pose[:, :10]
    step = jax.jit(jax.shard_map(
        lambda *a: fit_store.update(*a, axis_name="data"), mesh=mesh,
        in_specs=(P(),) + (P("data"),) * 5, out_specs=P()), donate_argnums=0)
    sharded = [jax.device_put(x, NamedSharding(mesh, P("data")))
               for x in (ids, idx, pose, betas, err)]
    out = step(store, *sharded)
    flat = fit_store.update(fit_store.create({"coco": 4, "mpii": 3}), ids, idx, pose, betas, err)
    jax.tree.map(np.testing.assert_array_equal, out, flat)
    assert float(out.fits[0].pose[2, 0]) == 2.0  # error 4 (device 1) beats 8 (device 0)
    print("ok")
""")


def test_update_under_shard_map_on_two_devices():
    """A real 2-device `shard_map` (CPU devices, in a subprocess: the device count is
    fixed at start-up): the replicated store leaves with out_specs=P(), as one flat
    update would make it."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", _SHARD_MAP_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_select_targets():
    pose, betas, valid = fit_store.select_targets(
        _rows([1, 2, 3], 72), _rows([1, 2, 3], 10), jnp.array([50.0, 150.0, jnp.inf]),
        _rows([7, 8, 9], 72), _rows([7, 8, 9], 10), jnp.array([0.0, 0.0, 1.0]),
    )  # fmt: skip
    np.testing.assert_array_equal(pose[:, 0], [1, 2, 9])
    np.testing.assert_array_equal(betas[:, 0], [1, 2, 9])
    np.testing.assert_array_equal(valid, [True, False, True])


def test_set_fits_and_spin_static_fits(tmp_path, store):
    fits = np.concatenate([np.full((3, 72), 0.5), np.full((3, 10), 0.25)], axis=1)
    np.save(tmp_path / "mpii_fits.npy", fits)
    pose, betas = fit_store.load_spin_static_fits(tmp_path / "mpii_fits.npy")
    out = fit_store.set_fits(store, "mpii", pose, betas)
    assert np.all(out.fits[1].fitted) and np.all(np.isinf(out.fits[1].error))
    np.testing.assert_array_equal(out.fits[1].betas, 0.25)
    with pytest.raises(ValueError, match=r"\[3, 72\]"):
        fit_store.set_fits(store, "mpii", pose[:2], betas[:2])
    with pytest.raises(FileNotFoundError, match="static_fits"):
        fit_store.load_spin_static_fits(tmp_path / "missing.npy")
    np.save(tmp_path / "bad.npy", np.zeros((3, 70)))
    with pytest.raises(ValueError, match=r"\[N, 82\]"):
        fit_store.load_spin_static_fits(tmp_path / "bad.npy")


def test_arrays_round_trip_through_a_checkpoint(tmp_path, store):
    store = fit_store.update(store, jnp.array([0, 1]), jnp.array([3, 2]), _rows([1, 2], 72),
                             _rows([1, 2], 10), jnp.array([5.0, 6.0]))  # fmt: skip
    arrays = fit_store.to_arrays(store)
    assert set(arrays) == {"coco", "mpii"}
    checkpoint_lib.save_tree(tmp_path / "fits", arrays)
    restored = checkpoint_lib.restore_tree(tmp_path / "fits", checkpoint_lib.abstract_like(arrays))
    back = fit_store.from_arrays(restored, store.names)
    jax.tree.map(np.testing.assert_array_equal, back, store)
    assert back.names == store.names
    with pytest.raises(KeyError, match="'lsp'"):
        fit_store.from_arrays(arrays, ["coco", "lsp"])


# --- frames: stored fits follow each batch's augmentation (SPIN's FitsDict) ---------------


def _matrices(pose):
    """[..., 72] axis-angle → [..., 24, 3, 3] float64 rotation matrices (independent of
    the code under test: scipy-free Rodrigues in NumPy)."""
    r = np.asarray(pose, np.float64).reshape(*np.shape(pose)[:-1], 24, 3)
    theta = np.linalg.norm(r, axis=-1, keepdims=True)
    k = r / np.where(theta > 1e-12, theta, 1.0)
    zero = np.zeros_like(k[..., 0])
    kx = np.stack([
        np.stack([zero, -k[..., 2], k[..., 1]], -1),
        np.stack([k[..., 2], zero, -k[..., 0]], -1),
        np.stack([-k[..., 1], k[..., 0], zero], -1),
    ], -2)  # fmt: skip
    theta = theta[..., None]
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * (kx @ kx)


def _random_poses(rng, n):
    """Poses with global orientations of every angle up to π (SPIN's camera frame is full
    of ~180° ones) and small body rotations."""
    pose = rng.normal(0, 0.4, (n, 72))
    axis = rng.normal(size=(n, 3))
    angle = np.concatenate([[0.0, np.pi - 1e-3, 3.0], rng.uniform(0, np.pi, n - 3)])
    pose[:, :3] = axis / np.linalg.norm(axis, axis=1, keepdims=True) * angle[:, None]
    return pose.astype(np.float32)


def test_frames_agree_with_the_numpy_augmentation_and_invert():
    from hkmr_jax.data import augment

    rng = np.random.default_rng(7)
    n = 48
    pose = _random_poses(rng, n)
    rot = rng.uniform(-60, 60, n).astype(np.float32)
    rot[::5] = 0.0  # SPIN leaves 60% unrotated
    flip = (rng.uniform(size=n) < 0.5).astype(np.float32)
    flip[:2] = (0.0, 1.0)
    to_batch = jax.jit(fit_store.to_batch_frame)
    to_original = jax.jit(fit_store.to_original_frame)
    batch = np.asarray(to_batch(pose, rot, flip))
    expected = np.stack([
        augment.transform_pose(pose[i], augment.AugmentParams(bool(flip[i]), float(rot[i])))
        for i in range(n)
    ])  # fmt: skip
    np.testing.assert_allclose(_matrices(batch), _matrices(expected), atol=1e-5)
    # Body joints are permuted and sign-flipped only: exact.
    np.testing.assert_array_equal(batch[:, 3:], expected[:, 3:])
    # The way back, and the way there again: exact inverses (as rotations).
    back = np.asarray(to_original(batch, rot, flip))
    np.testing.assert_allclose(_matrices(back), _matrices(pose), atol=1e-5)
    np.testing.assert_array_equal(back[:, 3:], pose[:, 3:])
    again = np.asarray(to_batch(to_original(pose, rot, flip), rot, flip))
    np.testing.assert_allclose(_matrices(again), _matrices(pose), atol=1e-5)
    # No augmentation leaves poses bit-identical (unaugmented batches do not disturb fits).
    unmoved = np.asarray(to_batch(pose, np.zeros(n, np.float32), np.zeros(n, np.float32)))
    np.testing.assert_array_equal(unmoved, pose)
    # Something did move: a flip is not the identity.
    assert not np.allclose(_matrices(batch[flip > 0]), _matrices(pose[flip > 0]), atol=1e-2)
    # Scalars broadcast over the batch.
    np.testing.assert_array_equal(
        to_batch(pose[:3], 30.0, True), to_batch(pose[:3], [30.0] * 3, [1, 1, 1])
    )
    with pytest.raises(ValueError, match=r"\[\.\.\., 72\]"):
        fit_store.to_batch_frame(pose[:, :69], rot, flip)


def test_frames_match_augment_end_to_end():
    """The pose labels `augment.augment` makes for an example (random draws) are the
    example's pose moved by `to_batch_frame` with the draw's rotation and flip."""
    from hkmr_jax.data import augment

    rng = np.random.default_rng(11)
    pose = _random_poses(rng, 24)
    seen = set()
    for i, p in enumerate(pose):
        example = {"pose": p, "betas": np.zeros(10, np.float32)}
        params = augment.sample_params(np.random.default_rng(i))
        out = augment.augment(example, np.random.default_rng(i))
        got = np.asarray(fit_store.to_batch_frame(p[None], params.rotation, params.flip))[0]
        np.testing.assert_allclose(_matrices(got), _matrices(out["pose"]), atol=1e-5)
        seen.add((params.flip, params.rotation != 0))
    assert seen == {(False, False), (False, True), (True, False), (True, True)}
