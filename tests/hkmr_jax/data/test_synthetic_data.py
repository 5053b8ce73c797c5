"""Tests of hkmr_jax.data.synthetic (the built-in rendered dataset) and its contact sheet."""

from __future__ import annotations

import collections
import pathlib
import pickle
import re

import numpy as np
import pytest

import smpl_jax
from hkmr_jax import geometry, render
from hkmr_jax.data import synthetic
from hkmr_jax.data.synthetic import CachedDataset, SyntheticDataset
from hkmr_jax.tools import synthetic_sheet
from smpl_jax import skeleton
from smpl_jax import synthetic as builtin
from tests.hkmr_jax.data.contract import example_contract

S = 64  # crop size of most tests: rendering cost grows with S², the checks do not

#: docs/CONTRACT_data.md's example, plus the synthetic `camera`.
CONTRACT = {**example_contract(S), "camera": (np.float32, (3,))}
MASK = np.zeros(24, bool)
MASK[list(skeleton.H36M_TO_J24)] = True


@pytest.fixture(scope="module")
def ds():
    return SyntheticDataset("train", size=S, seed=0)


@pytest.fixture(scope="module")
def examples(ds):
    """40 training examples with the debug extras (mask, camera-frame joints, vertices)."""
    return ds.render_batch(range(40), debug=True)


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def rotation_matrix(aa):
    """Rodrigues' formula, float64 (an independent reference)."""
    theta = np.linalg.norm(aa)
    k = aa / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def facing_z(pose) -> float:
    """Camera z of the body's forward direction (−1: facing the camera)."""
    return (rotation_matrix(pose[:3].astype(np.float64)) @ [0.0, 0.0, 1.0])[2]


# --- format -----------------------------------------------------------------------------


def test_keys_dtypes_and_shapes_follow_the_contract(ds):
    ex = ds[3]
    assert set(ex) == set(CONTRACT)
    for key, (dtype, shape) in CONTRACT.items():
        assert ex[key].dtype == dtype, key
        assert ex[key].shape == shape, key
    assert ex["has_smpl"] == 1 and ex["has_3d"] == 1
    assert ex["dataset_id"] == 0 and ex["example_id"] == 3


def test_defaults_size_lengths_and_dataset_id():
    train, test = SyntheticDataset(), SyntheticDataset("test", dataset_id=5)
    assert len(train) == 2**31 and len(test) == 1000
    ex = test[999]
    assert ex["image"].shape == (128, 128, 3)
    assert ex["dataset_id"] == 5 and ex["example_id"] == 999
    with pytest.raises(IndexError):
        test[1000]
    assert_same(test[-1], ex)


def test_unlabelled_j24_slots_are_zero(examples):
    for ex in examples:
        assert np.all(ex["keypoints"][~MASK] == 0)
        assert np.all(ex["joints_3d"][~MASK] == 0)
        np.testing.assert_array_equal(ex["joints_3d"][:, 3], MASK.astype(np.float32))
        assert set(np.unique(ex["keypoints"][:, 2])) <= {0.0, 1.0}


# --- determinism ------------------------------------------------------------------------


def test_same_index_same_example_in_any_order(ds):
    first = [ds[5], ds[3]]
    fresh = SyntheticDataset("train", size=S, seed=0)
    second = [fresh[3], fresh[5]]  # the other order, another instance
    assert_same(first[0], second[1])
    assert_same(first[1], second[0])
    assert_same(ds[5], first[0])
    assert_same(ds.render_batch([7, 5])[1], first[0])


def test_batched_forward_does_not_change_examples():
    # block_size B > 1: one forward per B examples. Each example's arithmetic must not
    # depend on which other examples share its batch or on its slot (XLA's batched ops are
    # row-independent): example 5 by sequential read-ahead (5 … 8) and inside an
    # unrelated batch (slot 1 of [100, 5, 7, 2]) must be identical, bit for bit.
    a = SyntheticDataset("train", size=S, block_size=4)
    b = SyntheticDataset("train", size=S, block_size=4)
    assert_same(a[5], b.render_batch([100, 5, 7, 2])[1])
    assert_same(a[6], b[6])  # a[6] comes from a's read-ahead cache
    # Another batch size is another XLA program: equal to float32 rounding.
    one = SyntheticDataset("train", size=S, block_size=1)[5]
    for key in ("keypoints", "joints_3d", "camera"):
        np.testing.assert_allclose(one[key], a[5][key], atol=1e-6, err_msg=key)


def test_train_and_test_are_different_streams():
    train = SyntheticDataset("train", size=S).render_batch(range(12))
    test = SyntheticDataset("test", size=S).render_batch(range(12))
    other_seed = SyntheticDataset("train", size=S, seed=1).render_batch(range(12))
    train_poses = np.stack([e["pose"] for e in train])
    for group in (test, other_seed):
        poses = np.stack([e["pose"] for e in group])
        # No pose of one stream equals (or is near) any pose of the other.
        distance = np.abs(train_poses[:, None] - poses[None]).max(axis=-1)
        assert distance.min() > 0.1


def test_pickled_dataset_renders_the_same(ds):
    clone = pickle.loads(pickle.dumps(ds))
    assert_same(clone[11], ds[11])


# --- labels -----------------------------------------------------------------------------


def test_labels_agree_with_an_independent_forward(examples):
    # The stored pose and betas through the body model, the H36M regressor and the stored
    # camera reproduce the 3D joints and the keypoints.
    body = builtin.load_builtin()
    regressor = builtin.h36m_regressor()
    poses = np.stack([e["pose"] for e in examples[:8]])
    betas = np.stack([e["betas"] for e in examples[:8]])
    out = body(betas=betas, body_pose=poses[:, 3:], global_orient=poses[:, :3])
    h36m = np.asarray(smpl_jax.regress_joints(out.vertices, regressor), np.float64)
    for ex, joints17 in zip(examples[:8], h36m, strict=True):
        j24 = np.zeros((24, 3))
        j24[list(skeleton.H36M_TO_J24)] = joints17
        camera = ex["camera"].astype(np.float64)
        xy = camera[0] * j24[:, :2] + camera[1:]
        np.testing.assert_allclose(ex["keypoints"][MASK, :2], xy[MASK], atol=1e-5)
        centred = j24 - j24[geometry.PELVIS_J24]
        np.testing.assert_allclose(ex["joints_3d"][MASK, :3], centred[MASK], atol=1e-5)


def test_keypoints_are_the_projected_joints(examples):
    for ex in examples:
        expected = geometry.weak_perspective(ex["joints_cam"].astype(np.float64), ex["camera"])
        np.testing.assert_allclose(ex["keypoints"][MASK, :2], expected[MASK], atol=1e-6)


def test_image_is_rendered_with_the_example_camera(examples):
    # Rasterising the mesh with render.project and the stored camera gives exactly the
    # silhouette of the image: the image, the camera and the keypoints agree.
    faces = np.asarray(builtin.load_builtin().faces)
    for ex in examples[:6]:
        cam = render.Camera.weak_perspective(*ex["camera"].tolist())
        xy, z = render.project(ex["vertices"], cam, (S, S))
        frags = render.rasterize(xy, z, faces, (S, S))
        np.testing.assert_array_equal(frags.face_id >= 0, ex["mask"])
        # ... and every visible keypoint passes the depth test against that rendering.
        seen = render.keypoint_visibility(ex["joints_cam"], cam, frags.depth)
        np.testing.assert_array_equal(ex["keypoints"][:, 2] > 0, seen & MASK)


def test_visible_keypoints_land_on_the_body(examples):
    on_body = total = 0
    for ex in examples:
        visible = ex["keypoints"][:, 2] > 0
        px = np.floor((ex["keypoints"][visible, :2] + 1) * S / 2).astype(int)
        assert np.all((px >= 0) & (px < S))  # confidence 1 only inside the crop
        on_body += ex["mask"][px[:, 1], px[:, 0]].sum()
        total += len(px)
    assert total > 0.7 * 17 * len(examples)  # most joints are visible
    assert on_body / total > 0.9  # joints sit inside the limbs (head top, ankles: edges)


def test_some_keypoints_are_hidden_or_outside(examples):
    hidden = sum(int(((ex["keypoints"][:, 2] == 0) & MASK).sum()) for ex in examples)
    assert 0 < hidden < 0.3 * 17 * len(examples)


def test_left_and_right_are_the_persons():
    # A person facing the camera has the left hip on the image's right (larger x), and
    # the other way round seen from behind: SMPL's left is the person's left. The full
    # pose law (every view) shows both.
    examples = SyntheticDataset("train", size=S, yaw_range=360).render_batch(range(40))
    left, right = skeleton.J24_NAMES.index("left_hip"), skeleton.J24_NAMES.index("right_hip")
    checked = collections.Counter()
    for ex in examples:
        forward_z = facing_z(ex["pose"])
        if abs(forward_z) < 0.5:  # side views: hips overlap
            continue
        facing_camera = forward_z < 0  # the camera looks along +z
        dx = ex["keypoints"][left, 0] - ex["keypoints"][right, 0]
        assert (dx > 0) == facing_camera
        checked[facing_camera] += 1
    assert checked[True] > 5 and checked[False] > 5, checked


# --- sampling ---------------------------------------------------------------------------


def test_poses_are_within_the_documented_limits():
    lo, hi, _ = synthetic.pose_limits()
    for i in range(200):
        p = synthetic.sample_parameters(np.random.default_rng([0, 0, i]))
        body = p["pose"][3:].reshape(23, 3)
        assert np.all(body >= lo[1:] - 1e-6) and np.all(body <= hi[1:] + 1e-6)
        assert np.all(np.abs(p["betas"]) <= synthetic.BETA_CLIP)
        # Upright: the body's up axis (SMPL +y) points up in the image (camera −y) to
        # within the pitch and roll limits (20° and 15°: at most 25° together).
        up = rotation_matrix(p["pose"][:3].astype(np.float64)) @ [0.0, 1.0, 0.0]
        assert up[1] < -np.cos(np.deg2rad(25.5))
        assert synthetic.FILL_RANGE[0] <= p["fill"] <= synthetic.FILL_RANGE[1]


def test_pose_law_narrows_yaw_and_spread_and_keeps_everything_else():
    """One seed under the full law (every view, σ = range/3) and the default (±60°,
    σ = range/6): the same numbers are drawn, so only yaw and body pose differ."""
    _, _, mode = synthetic.pose_limits()
    assert (synthetic.YAW_RANGE_DEG, synthetic.POSE_SPREAD) == (120.0, 1 / 6)
    halved, total, seen_behind = 0, 0, False
    for i in range(100):
        narrow = synthetic.sample_parameters(np.random.default_rng([0, 0, i]))
        full = synthetic.sample_parameters(np.random.default_rng([0, 0, i]), 360.0, 1 / 3)
        for key in ("betas", "light", "colours", "offset"):
            np.testing.assert_array_equal(narrow[key], full[key], err_msg=key)
        assert narrow["fill"] == full["fill"]
        # forward_z = −cos(pitch)·cos(yaw): |yaw| ≤ 60° and |pitch| ≤ 20° bound it.
        z_narrow, z_full = facing_z(narrow["pose"]), facing_z(full["pose"])
        assert z_narrow < -np.cos(np.deg2rad(20)) * np.cos(np.deg2rad(60)) + 1e-6
        seen_behind |= z_full > 0
        # Body pose: the deviation from the mode is halved wherever the full law's draw
        # was not replaced by a uniform one (then the narrow draw is within the limits).
        dev_narrow = narrow["pose"][3:].reshape(23, 3) - mode[1:]
        dev_full = full["pose"][3:].reshape(23, 3) - mode[1:]
        same = np.isclose(dev_narrow, dev_full / 2, atol=1e-6)
        halved += same.sum()
        total += same.size
    assert seen_behind  # the full law shows people from behind; the default never does
    # Components with a zero range (hinges) count as halved; truncation touches < 25 %.
    assert halved > 0.75 * total, halved / total


def test_pose_law_is_part_of_the_dataset_definition(tmp_path):
    full = SyntheticDataset("test", size=32, yaw_range=360, pose_spread=1 / 3)
    assert full.config()["yaw_range"] == 360 and full.config()["pose_spread"] == 1 / 3
    assert "yaw_range=360" in repr(full)
    clone = pickle.loads(pickle.dumps(full))
    assert (clone.yaw_range, clone.pose_spread) == (360, 1 / 3)
    default = SyntheticDataset("test", size=32)
    assert not np.array_equal(full[0]["pose"], default[0]["pose"])
    path = synthetic.cache(tmp_path / "c", default, 2, progress=False)
    with pytest.raises(FileExistsError, match="pose_spread"):
        synthetic.cache(path, full, 2, progress=False)
    for bad in (dict(yaw_range=-1), dict(yaw_range=361), dict(pose_spread=0),
                dict(pose_spread=1.5)):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            SyntheticDataset(**bad)
    # The mean pose follows the law: the wider law's mean is further from the modes.
    _, _, mode = synthetic.pose_limits()
    gap = [np.abs(synthetic.mean_body_pose(s) - mode[1:]).mean() for s in (1 / 6, 1 / 3)]
    assert gap[0] < gap[1], gap


def test_knees_and_elbows_bend_the_anatomical_way():
    lo, hi, _ = synthetic.pose_limits()
    names = skeleton.JOINT_NAMES
    for side, sign in (("left", -1), ("right", 1)):
        knee, elbow = names.index(f"{side}_knee"), names.index(f"{side}_elbow")
        np.testing.assert_allclose([lo[knee, 0], hi[knee, 0]], np.deg2rad([0, 140]))
        np.testing.assert_allclose(
            sorted([0, sign * np.deg2rad(145)]), [lo[elbow, 1], hi[elbow, 1]]
        )
    # Right joints mirror the left ones: x unchanged, y and z negated.
    for name in ("hip", "shoulder", "wrist", "collar", "ankle"):
        left, right = names.index(f"left_{name}"), names.index(f"right_{name}")
        np.testing.assert_allclose(lo[right], [lo[left, 0], -hi[left, 1], -hi[left, 2]])
        np.testing.assert_allclose(hi[right], [hi[left, 0], -lo[left, 1], -lo[left, 2]])


def test_docs_table_shows_the_limits():
    doc = (pathlib.Path(__file__).parents[3] / "docs" / "synthetic_data.md").read_text()
    for name, (x, y, z, mode) in synthetic.POSE_LIMITS_DEG.items():
        cells = [f"{a} … {b}" for a, b in (x, y, z)] + [f"({', '.join(map(str, mode))})"]
        sep = r"\s*\|\s*"
        row = re.compile(r"^\|\s*" + re.escape(name) + sep + sep.join(map(re.escape, cells)), re.M)
        assert row.search(doc), f"docs/synthetic_data.md's row for {name} should read {cells}"


def test_global_orientation_is_spins_convention():
    np.testing.assert_allclose(synthetic.global_orientation(0.0, 0.0, 0.0), [np.pi, 0, 0])
    # Yaw 90° about the body's vertical: R = R_x(π) R_y(90°) turns SMPL's forward (+z)
    # to the camera's +x (the person faces the image's right) and SMPL's up to camera −y.
    r = rotation_matrix(synthetic.global_orientation(np.pi / 2, 0.0, 0.0))
    np.testing.assert_allclose(r @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(r @ [0, 1, 0], [0, -1, 0], atol=1e-12)


def test_images_vary(examples):
    images = np.stack([ex["image"] for ex in examples]).astype(np.float64)
    assert images.std(axis=(1, 2)).min() > 5  # never a flat image
    # Backgrounds differ between examples (the corners are background in most crops).
    corners = images[:, :4, :4].reshape(len(images), -1).mean(axis=1)
    assert np.unique(np.round(corners)).size > len(images) // 2
    coverage = np.array([ex["mask"].mean() for ex in examples])
    assert 0.03 < coverage.min() and coverage.max() < 0.6


# --- inputs -----------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="train, test"):
        SyntheticDataset("valid")
    with pytest.raises(ValueError, match="size"):
        SyntheticDataset(size=8)
    with pytest.raises(ValueError, match="seed"):
        SyntheticDataset(seed=-1)
    with pytest.raises(ValueError, match="length"):
        SyntheticDataset(length=0)
    body = builtin.load_builtin()
    with pytest.raises(ValueError, match="h36m_regressor"):
        SyntheticDataset(body=body)
    with pytest.raises(ValueError, match=r"\[17, 6786\]"):
        SyntheticDataset(body=body, h36m_regressor=np.zeros((17, 10)))
    with pytest.raises(IndexError):
        SyntheticDataset("test", length=3)[3]


def test_a_given_body_is_used():
    body, regressor = builtin.load_builtin(), builtin.h36m_regressor()
    given = SyntheticDataset("train", size=S, body=body, h36m_regressor=regressor)
    assert given.config()["body"] == "custom"
    assert_same(given[2], SyntheticDataset("train", size=S)[2])


# --- cache, contact sheet, grain --------------------------------------------------------


def test_cache_round_trip(tmp_path):
    path = synthetic.cache(tmp_path / "test64", "test", 5, size=S, progress=False)
    cached = CachedDataset(path)
    assert len(cached) == 5
    reference = SyntheticDataset("test", size=S)
    for i in (0, 4):
        assert_same(cached[i], reference[i])
    mtime = (path / "image.npy").stat().st_mtime_ns
    assert synthetic.cache(path, "test", 5, size=S, progress=False) == path  # reused
    assert (path / "image.npy").stat().st_mtime_ns == mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no tmp left
    with pytest.raises(FileExistsError, match="delete it"):
        synthetic.cache(path, "test", 6, size=S, progress=False)
    with pytest.raises(FileNotFoundError, match="cache"):
        CachedDataset(tmp_path / "nothing")
    assert_same(pickle.loads(pickle.dumps(cached))[1], cached[1])


def test_contact_sheet(ds, tmp_path):
    sheet = synthetic_sheet.contact_sheet(ds, 3, tmp_path / "sheet.png", columns=2, colors=64)
    assert sheet.shape == (2 * (S + 2), 2 * (S + 2), 3)
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "sheet.png").shape[:2] == sheet.shape[:2]


def test_usable_as_a_grain_source(ds):
    grain = pytest.importorskip("grain")
    batch = grain.MapDataset.source(ds).batch(2)[1]
    np.testing.assert_array_equal(batch["example_id"], [2, 3])
    np.testing.assert_array_equal(batch["image"][0], ds[2]["image"])
