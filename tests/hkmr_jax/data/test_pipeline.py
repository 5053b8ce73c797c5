"""The training input pipeline: determinism, resume, mixing ratios, per-host sharding."""

from __future__ import annotations

import itertools

import ml_collections
import numpy as np
import pytest

from hkmr_jax.data import pipeline


class _Source:
    """A tiny random-access dataset of contract examples; example_id = 1000·tag + index."""

    def __init__(self, length: int, tag: int, size: int = 8):
        self.length, self.tag, self.size = length, tag, size

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        rng = np.random.default_rng([self.tag, i])
        return {
            "image": rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8),
            "keypoints": rng.uniform(-1, 1, (24, 3)).astype(np.float32),
            "joints_3d": rng.uniform(-1, 1, (24, 4)).astype(np.float32),
            "pose": rng.normal(0, 0.3, 72).astype(np.float32),
            "betas": rng.normal(0, 1, 10).astype(np.float32),
            "has_smpl": np.float32(1),
            "has_3d": np.float32(1),
            "dataset_id": np.int32(99),  # overwritten by the pipeline
            "example_id": np.int64(1000 * self.tag + i),
            "extra": np.zeros(2),  # not a contract key: dropped
        }


@pytest.fixture
def fake_datasets(monkeypatch):
    """Registers 'h36m_like' (40 examples), 'stream' (i.i.d., 2**31), 'small' (7), 'big'
    (21) and 'tiny_image' (16 px) for the duration of a test."""
    sources = {
        "h36m_like": _Source(40, 1),
        "stream": _Source(pipeline.STREAM_LENGTH, 2),
        "small": _Source(7, 3),
        "big": _Source(21, 4),
        "tiny_image": _Source(10, 5, size=16),
    }
    for name, src in sources.items():
        monkeypatch.setitem(pipeline._FACTORIES, name, lambda split, data, src=src: src)
    return sources


def _config(datasets, batch_size=10, augment=None, threads=2):
    c = ml_collections.ConfigDict()
    c.batch_size = batch_size
    c.data = ml_collections.ConfigDict(
        {"datasets": datasets, "seed": 3, "num_threads": threads, "prefetch": 16}
    )
    c.data.augment = augment
    return c


MIX = [
    {"name": "h36m_like", "ratio": 0.3},
    {"name": "stream", "ratio": 0.6},
    {"name": "small", "ratio": 0.1},
]


def _take(iterator, n):
    return list(itertools.islice(iterator, n))


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_batches_have_the_contract_keys_and_shapes(fake_datasets):
    (batch,) = _take(pipeline.train_iterator(_config(MIX), 0, process_index=0, process_count=1), 1)
    assert set(batch) == set(pipeline.CONTRACT_KEYS) | set(pipeline.AUGMENT_KEYS)
    # Not augmented: no rotation, no flip (the same keys as augmented batches).
    for key in pipeline.AUGMENT_KEYS:
        assert batch[key].dtype == np.float32
        np.testing.assert_array_equal(batch[key], np.zeros(10, np.float32), err_msg=key)
    assert batch["image"].shape == (10, 8, 8, 3) and batch["image"].dtype == np.uint8
    assert batch["keypoints"].shape == (10, 24, 3)
    assert batch["joints_3d"].shape == (10, 24, 4)
    assert batch["pose"].shape == (10, 72) and batch["betas"].shape == (10, 10)
    assert batch["has_smpl"].shape == (10,) and batch["dataset_id"].dtype == np.int32
    assert batch["example_id"].dtype == np.int64
    # dataset_id is the position in config.data.datasets; example ids name the source.
    np.testing.assert_array_equal(batch["example_id"] // 1000, batch["dataset_id"] + 1)


@pytest.mark.parametrize("augment", [None, {}])
def test_resume_gives_the_uninterrupted_batches(fake_datasets, augment):
    config = _config(MIX, augment=augment)
    full = _take(pipeline.train_iterator(config, 0, process_index=0, process_count=1), 8)
    # A different number of reader threads must not change anything either.
    resumed_config = _config(MIX, augment=augment, threads=0)
    resumed = _take(pipeline.train_iterator(resumed_config, 5, process_index=0, process_count=1), 3)
    _assert_batches_equal(full[5:], resumed)
    again = _take(pipeline.train_iterator(config, 0, process_index=0, process_count=1), 8)
    _assert_batches_equal(full, again)
    # Consecutive steps differ.
    assert not np.array_equal(full[0]["example_id"], full[1]["example_id"])


def test_augmentation_changes_the_images_deterministically(fake_datasets):
    plain = _take(pipeline.train_iterator(_config(MIX), 0, process_index=0, process_count=1), 2)
    aug = _take(
        pipeline.train_iterator(_config(MIX, augment={}), 0, process_index=0, process_count=1), 2
    )
    np.testing.assert_array_equal(plain[1]["example_id"], aug[1]["example_id"])
    assert not np.array_equal(plain[1]["image"], aug[1]["image"])


def test_augmented_examples_record_their_rotation_and_flip(fake_datasets):
    """The recorded rotation and flip are the ones applied: the augmented pose is the
    plain example's pose moved by them (the SMPLify fit store relies on it)."""
    from hkmr_jax.data import augment

    config = _config(MIX, augment={})
    plain = _take(pipeline.train_iterator(_config(MIX), 0, process_index=0, process_count=1), 3)
    aug = _take(pipeline.train_iterator(config, 0, process_index=0, process_count=1), 3)
    flips, rotations = [], []
    for p, a in zip(plain, aug):
        assert set(a) == set(p)
        np.testing.assert_array_equal(p["example_id"], a["example_id"])
        for key in pipeline.AUGMENT_KEYS:
            assert a[key].shape == (10,) and a[key].dtype == np.float32
        for i in range(10):
            flip, rot = bool(a["augment_flip"][i]), float(a["augment_rotation"][i])
            want = augment.transform_pose(p["pose"][i], augment.AugmentParams(flip, rot))
            np.testing.assert_allclose(a["pose"][i], want, atol=1e-6)
            flips.append(flip)
            rotations.append(rot)
    np.testing.assert_array_equal(np.unique(np.asarray(flips, np.float32)), [0.0, 1.0])
    rotations = np.asarray(rotations)
    assert np.any(rotations != 0) and np.any(rotations == 0)
    assert np.all(np.abs(rotations) <= 60.0)


def test_mixing_ratios_are_exact_per_batch(fake_datasets):
    # 30/60/10 of a batch of 10: grain's interleave is exact on every window of 10.
    batches = _take(pipeline.train_iterator(_config(MIX), 0, process_index=0, process_count=1), 20)
    for batch in batches:
        np.testing.assert_array_equal(np.bincount(batch["dataset_id"], minlength=3), [3, 6, 1])


def test_finite_datasets_are_reshuffled_every_epoch(fake_datasets):
    config = _config([{"name": "small", "ratio": 1.0}], batch_size=7)
    first, second = _take(pipeline.train_iterator(config, 0, process_index=0, process_count=1), 2)
    ids = [b["example_id"] - 3000 for b in (first, second)]
    for epoch in ids:  # every epoch is a permutation of the 7 examples
        np.testing.assert_array_equal(np.sort(epoch), np.arange(7))
    assert not np.array_equal(ids[0], ids[1])


def test_streams_are_read_in_order(fake_datasets):
    config = _config([{"name": "stream", "ratio": 1.0}], batch_size=4)
    batches = _take(pipeline.train_iterator(config, 2, process_index=0, process_count=1), 2)
    np.testing.assert_array_equal(
        np.concatenate([b["example_id"] for b in batches]) - 2000, np.arange(8, 16)
    )


def test_hosts_take_their_slices_of_the_global_batch(fake_datasets):
    config = _config(MIX, batch_size=12)
    whole = _take(pipeline.train_iterator(config, 2, process_index=0, process_count=1), 3)
    parts = [
        _take(pipeline.train_iterator(config, 2, process_index=p, process_count=3), 3)
        for p in range(3)
    ]
    for step, batch in enumerate(whole):
        for key in batch:
            joined = np.concatenate([parts[p][step][key] for p in range(3)])
            np.testing.assert_array_equal(joined, batch[key], err_msg=key)
    with pytest.raises(ValueError, match="not divisible by the 5 processes"):
        pipeline.train_iterator(config, 0, process_index=0, process_count=5)


def test_grouped_names_share_a_ratio_by_size(fake_datasets):
    entries = pipeline.expand_datasets(
        [{"name": "h36m_like", "ratio": 0.5}, {"name": "small+big", "ratio": 0.5}],
        lambda name, split: len(fake_datasets[name]),
    )
    assert [e.name for e in entries] == ["h36m_like", "small", "big"]
    np.testing.assert_allclose([e.ratio for e in entries], [0.5, 0.5 * 7 / 28, 0.5 * 21 / 28])


def test_bad_dataset_specs_are_clear_errors(fake_datasets):
    with pytest.raises(ValueError, match=r"unknown dataset 'h36n'.*valid names: synthetic"):
        pipeline.mixed_dataset(_config([{"name": "h36n", "ratio": 1.0}]))
    with pytest.raises(ValueError, match="ratios must be > 0"):
        pipeline.mixed_dataset(_config([{"name": "small", "ratio": 0.0}]))
    with pytest.raises(ValueError, match="unknown field"):
        pipeline.mixed_dataset(_config([{"name": "small", "weight": 1.0}]))
    with pytest.raises(ValueError, match="same image size"):
        pipeline.mixed_dataset(_config([{"name": "small"}, {"name": "tiny_image"}]))
    with pytest.raises(ValueError, match="empty"):
        pipeline.mixed_dataset(_config([]))


def test_synthetic_2d_truth_is_synthetic_2d_with_its_labels():
    data = {"image_size": 32, "synthetic_seed": 3, "synthetic_2d_length": 10}
    two_d = pipeline.make_source("synthetic_2d", "train", data)
    truth = pipeline.make_source("synthetic_2d_truth", "train", data)
    assert len(two_d) == len(truth) == 10
    for i in (0, 7):
        a, b = two_d[i], truth[i]
        for key in ("image", "keypoints", "example_id"):
            np.testing.assert_array_equal(a[key], b[key])
        for key in ("pose", "betas", "joints_3d", "has_smpl", "has_3d"):
            assert not np.any(a[key]) and np.any(b[key]), key


def test_the_synthetic_dataset_feeds_the_pipeline():
    config = _config([{"name": "synthetic", "ratio": 1.0}], batch_size=4)
    config.data.image_size = 32
    a = _take(pipeline.train_iterator(config, 1, process_index=0, process_count=1), 1)
    b = _take(pipeline.train_iterator(config, 1, process_index=1, process_count=2), 1)
    assert a[0]["image"].shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(a[0]["example_id"], [4, 5, 6, 7])
    np.testing.assert_array_equal(b[0]["example_id"], [6, 7])
    np.testing.assert_array_equal(b[0]["image"], a[0]["image"][2:])
    np.testing.assert_array_equal(a[0]["dataset_id"], 0)
