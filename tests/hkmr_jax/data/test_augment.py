"""Tests for hkmr_jax.data.augment.

Reference values and their origin:
* SPIN's augmentation parameters (flip 0.5, noise 0.4, rotation σ 30° clipped at ±60° and
  zeroed with probability 0.6, scale σ 0.25 clipped at 1 ± 0.25) are from SPIN's
  `BaseDataset.augm_params` and its default options.
* the image resampling is compared with scipy.ndimage.map_coordinates (order 1,
  mode 'grid-constant'), an independent bilinear implementation, and a 90° rotation
  with np.rot90 (exact).
* pose rotations are compared with an independent float64 Rodrigues formula.
* mirror symmetry is checked with the SMPL layer on a random model built to be exactly
  left/right symmetric (see `_symmetric_model`).
"""

from __future__ import annotations

import numpy as np
import pytest

import smpl_jax
from hkmr_jax.data import augment
from hkmr_jax.data.augment import AugmentConfig, AugmentParams
from smpl_jax import skeleton

SIZE = 64
MIRROR = np.array([-1.0, 1.0, 1.0])


def _example(seed=0, size=SIZE, spread=0.7):
    rng = np.random.default_rng(seed)
    kp = np.ones((24, 3), np.float32)
    kp[:, :2] = rng.uniform(-spread, spread, (24, 2))
    joints = np.ones((24, 4), np.float32)
    joints[:, :3] = rng.normal(0, 0.4, (24, 3))
    pose = (rng.normal(0, 0.3, 72)).astype(np.float32)
    pose[:3] = rng.normal(0, 1.0, 3)  # any global orientation (angle < π here)
    pose[:3] *= min(1.0, 2.5 / np.linalg.norm(pose[:3]))
    return {
        "image": rng.integers(0, 256, (size, size, 3), np.uint8),
        "keypoints": kp,
        "joints_3d": joints,
        "pose": pose,
        "betas": rng.normal(0, 1, 10).astype(np.float32),
        "has_smpl": np.float32(1),
        "has_3d": np.float32(1),
        "dataset_id": np.int32(2),
        "example_id": np.int64(17),
    }


def _rodrigues(r):
    theta = np.linalg.norm(r)
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def _rot_z(deg):
    """R_z(−deg), SPIN's in-plane rotation (written out independently of the module)."""
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])


# --- flips and inverses -------------------------------------------------------------------


def test_flip_twice_is_identity():
    ex = _example()
    flip = AugmentParams(flip=True)
    once = augment.apply_params(ex, flip)
    twice = augment.apply_params(once, flip)
    for key in ex:
        np.testing.assert_array_equal(twice[key], ex[key], err_msg=key)
    assert twice["image"].dtype == np.uint8
    # A flip alone is an exact mirror of the image.
    np.testing.assert_array_equal(once["image"], ex["image"][:, ::-1])
    # ...and of the labels, with left and right swapped.
    perm = list(skeleton.J24_FLIP_PERMUTATION)
    np.testing.assert_array_equal(once["keypoints"][:, 0], -ex["keypoints"][perm, 0])
    np.testing.assert_array_equal(once["joints_3d"][:, 1:], ex["joints_3d"][perm, 1:])


@pytest.mark.parametrize("flip", [False, True])
def test_transform_then_inverse_is_identity(flip):
    # u' = F R(−r) u / s is undone by the same flip and rotation with scale 1/s, since
    # F R(−r) F = R(r); for a pure rotation, by −r.
    ex = _example(seed=1, spread=0.55)  # stays inside the crop at s = 0.8 and 45°
    for rot, scale in ((25.0, 0.8), (-40.0, 1.2), (45.0, 1.0)):
        fwd = AugmentParams(flip, rot, scale)
        inv = AugmentParams(flip, rot, 1 / scale) if flip else AugmentParams(False, -rot, 1 / scale)
        back = augment.apply_params(augment.apply_params(ex, fwd), inv)
        np.testing.assert_allclose(back["keypoints"], ex["keypoints"], atol=1e-6)
        np.testing.assert_allclose(back["joints_3d"], ex["joints_3d"], atol=1e-6)
        np.testing.assert_allclose(
            _rodrigues(back["pose"][:3]), _rodrigues(ex["pose"][:3]), atol=1e-6
        )
        np.testing.assert_array_equal(back["pose"][3:], ex["pose"][3:])
        np.testing.assert_array_equal(back["betas"], ex["betas"])


def test_rotate_pose_matches_matrix_reference():
    rng = np.random.default_rng(3)
    for rot in (-60.0, -7.5, 30.0, 59.0):
        for scale in (0.0, 1.0, 3.1):  # identity, moderate, near π
            pose = rng.normal(0, 0.2, 72)
            axis = rng.normal(size=3)
            pose[:3] = axis / np.linalg.norm(axis) * scale
            out = augment.rotate_pose(pose, rot)
            np.testing.assert_allclose(
                _rodrigues(out[:3]), _rot_z(rot) @ _rodrigues(pose[:3]), atol=1e-12
            )
            np.testing.assert_array_equal(out[3:], pose[3:])
            assert np.linalg.norm(out[:3]) <= np.pi + 1e-12


# --- the SMPL layer: flips mirror the mesh, rotations turn it about the camera z axis ------


def _symmetric_model(seed=0, pairs=150, middle=20):
    """A random SMPL-format model that is exactly mirror-symmetric in x.

    Vertex v and its mirror σ(v) (pairs, plus `middle` vertices on x = 0 with σ(v) = v),
    joint j and its mirror π(j) = FLIP_PERMUTATION[j]. With M = diag(−1, 1, 1) and s = the
    diagonal of M, mirror symmetry of the mesh function requires
      v_template[v] = M v_template[σv]
      shapedirs[v, c, k] = s_c shapedirs[σv, c, k]
      posedirs[v, c, (j, a, b)] = s_c s_a s_b posedirs[σv, c, (πj, a, b)]
        (the pose feature of joint j is R_j − I, and mirroring maps R_j to M R_πj M)
      J_regressor[j, v] = J_regressor[πj, σv],   weights[v, j] = weights[σv, πj]
    Each is an involution T; a random array A is made symmetric as (A + T A) / 2.
    """
    rng = np.random.default_rng(seed)
    nv = 2 * pairs + middle
    sigma = np.concatenate(
        [np.arange(pairs, 2 * pairs), np.arange(pairs), 2 * pairs + np.arange(middle)]
    )
    perm = np.asarray(skeleton.FLIP_PERMUTATION)
    sym = lambda a, t: (a + t(a)) / 2
    v_template = sym(rng.uniform(-0.5, 0.5, (nv, 3)) * [0.6, 1.7, 0.3], lambda a: a[sigma] * MIRROR)
    shapedirs = sym(0.03 * rng.normal(size=(nv, 3, 10)), lambda a: a[sigma] * MIRROR[None, :, None])
    sign_ab = MIRROR[:, None] * MIRROR[None, :]
    posedirs = sym(
        0.02 * rng.normal(size=(nv, 3, 23, 3, 3)),
        lambda a: a[sigma][:, :, perm[1:] - 1] * MIRROR[None, :, None, None, None] * sign_ab,
    ).reshape(nv, 3, 207)
    regressor = sym(rng.uniform(0.01, 1.0, (24, nv)), lambda a: a[perm][:, sigma])
    weights = sym(rng.uniform(0.01, 1.0, (nv, 24)) ** 4, lambda a: a[sigma][:, perm])
    parents = np.array(skeleton.PARENTS, np.int64).astype(np.uint32)
    arrays = {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": regressor / regressor.sum(1, keepdims=True),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.stack([parents, np.arange(24, dtype=np.uint32)]),
        "f": rng.integers(0, nv, (100, 3)).astype(np.uint32),
    }
    return smpl_jax.model_from_arrays(arrays, source="symmetric test model"), sigma


@pytest.fixture(scope="module")
def symmetric_body():
    return _symmetric_model()


def _pose_body(body, pose, betas):
    pose = np.asarray(pose, np.float32).reshape(-1, 72)
    out = body(betas=np.broadcast_to(betas, (len(pose), 10)), body_pose=pose[:, 3:],
               global_orient=pose[:, :3])  # fmt: skip
    return np.asarray(out.vertices, np.float64), np.asarray(out.joints, np.float64)


def test_flipped_pose_mirrors_the_mesh(symmetric_body):
    body, sigma = symmetric_body
    rng = np.random.default_rng(5)
    poses = rng.normal(0, 0.4, (2, 72))
    betas = rng.normal(0, 1, 10)
    flipped = np.stack([augment.flip_pose(p) for p in poses])
    # One batch of 4 for every call to the layer in this file: one compilation.
    verts, joints = _pose_body(body, np.concatenate([poses, flipped]), betas)
    verts, verts_f = verts[:2], verts[2:]
    joints, joints_f = joints[:2], joints[2:]
    np.testing.assert_allclose(verts_f, verts[:, sigma] * MIRROR, atol=1e-5)
    perm = list(skeleton.FLIP_PERMUTATION)
    np.testing.assert_allclose(joints_f, joints[:, perm] * MIRROR, atol=1e-5)
    # The check has teeth: the mesh is not mirror-symmetric in any pose by itself.
    assert np.abs(verts[:, sigma] * MIRROR - verts).max() > 0.05


def test_rotated_pose_turns_the_body_about_camera_z(symmetric_body):
    body, _ = symmetric_body
    rng = np.random.default_rng(6)
    pose = rng.normal(0, 0.4, 72)
    betas = rng.normal(0, 1, 10)
    cases = (AugmentParams(False, 35.0), AugmentParams(True, -20.0, 1.2),
             AugmentParams(False, -59.0, 0.8))  # fmt: skip
    batch = np.stack([pose] + [augment.transform_pose(pose, p) for p in cases])
    all_verts, all_joints = _pose_body(body, batch, betas)
    verts, joints = all_verts[:1], all_joints[:1]
    for params, verts_t, joints_t in zip(cases, all_verts[1:, None], all_joints[1:, None]):
        # Rotation and mirroring act about the pelvis (SMPL's root joint, which stays put).
        root, root_t = joints[:, :1], joints_t[:, :1]
        np.testing.assert_allclose(root_t, root, atol=1e-6)
        expected = (joints - root) @ _rot_z(params.rotation).T
        if params.flip:
            expected = expected[:, list(skeleton.FLIP_PERMUTATION)] * MIRROR
        np.testing.assert_allclose(joints_t - root_t, expected, atol=1e-5)
        if not params.flip:
            expected_v = (verts - root) @ _rot_z(params.rotation).T
            np.testing.assert_allclose(verts_t - root_t, expected_v, atol=1e-5)


def test_2d_and_3d_labels_stay_consistent():
    # Weak perspective keypoints = s · X_xy: after any augmentation the new keypoints
    # are the projection of the new 3D joints, with s divided by the augmentation scale.
    ex = _example(seed=2)
    s = 0.9
    ex["keypoints"][:, :2] = s * ex["joints_3d"][:, :2]
    ex["keypoints"][:, 2] = 1
    for params in (AugmentParams(True, 30.0, 1.1), AugmentParams(False, -50.0, 0.9)):
        out = augment.apply_params(ex, params)
        np.testing.assert_allclose(
            out["keypoints"][:, :2], s / params.scale * out["joints_3d"][:, :2], atol=1e-6
        )


# --- keypoints and image -----------------------------------------------------------------


def test_keypoints_leaving_the_crop_lose_their_confidence():
    kp = np.array(
        [[0.95, 0.0, 1.0], [0.5, 0.0, 1.0], [0.0, -0.9, 1.0], [0.3, 0.3, 0.0]]
        + [[0.0, 0.0, 1.0]] * 20,
        np.float32,
    )
    zoom_in = augment.transform_keypoints(kp, AugmentParams(scale=0.8))  # u / 0.8
    np.testing.assert_array_equal(zoom_in[:4, 2], [0, 1, 0, 0])
    np.testing.assert_allclose(zoom_in[0, :2], [0.95 / 0.8, 0.0], rtol=1e-6)  # kept
    corner = np.array([[0.9, 0.9, 1.0]] + [[0.0, 0.0, 1.0]] * 23, np.float32)
    turned = augment.transform_keypoints(corner, AugmentParams(rotation=45.0))
    assert turned[0, 2] == 0 and turned[1, 2] == 1
    np.testing.assert_allclose(np.hypot(*turned[0, :2]), 0.9 * np.sqrt(2), rtol=1e-6)


def _blob(size, center_px, sigma=1.5):
    c = np.arange(size) + 0.5
    x, y = np.meshgrid(c, c)
    g = np.exp(-((x - center_px[0]) ** 2 + (y - center_px[1]) ** 2) / (2 * sigma**2))
    return np.repeat(np.rint(255 * g)[..., None], 3, -1).astype(np.uint8)


def _centroid(image):
    w = image[..., 0].astype(np.float64)
    c = np.arange(image.shape[0]) + 0.5
    x, y = np.meshgrid(c, c)
    return np.array([(w * x).sum(), (w * y).sum()]) / w.sum()


@pytest.mark.parametrize(
    "params",
    [
        AugmentParams(False, 25.0, 1.0),
        AugmentParams(True, -35.0, 0.8),
        AugmentParams(True, 0.0, 1.25),
        AugmentParams(False, 60.0, 1.1),
    ],
)
def test_image_moves_with_the_keypoints(params):
    kp = np.zeros((24, 3), np.float32)
    kp[:, 2] = 1
    kp[14, :2] = [0.31, -0.43]  # pelvis, J24 slot 14: its own mirror
    image = _blob(SIZE, (kp[14, :2] + 1) * SIZE / 2)
    out = augment.transform_image(image, params)
    kp_out = augment.transform_keypoints(kp, params)
    target = (kp_out[14, :2] + 1) * SIZE / 2
    assert np.linalg.norm(_centroid(out) - target) < 0.25  # the brief asks for 1 px


def test_image_matches_scipy_bilinear_reference():
    ndimage = pytest.importorskip("scipy.ndimage")
    image = _example()["image"]
    params = AugmentParams(True, 17.0, 1.15)
    out = augment.transform_image(image, params)
    # Output pixel centre q ↦ source pixel coordinate A⁻¹ (q − c) + c − ½, c = S/2.
    inverse = np.linalg.inv(augment.crop_matrix(params))
    q = np.stack(np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5), -1) - SIZE / 2
    src = q @ inverse.T + SIZE / 2 - 0.5  # (x, y)
    ref = np.stack(
        [
            ndimage.map_coordinates(image[..., ch].astype(np.float64), [src[..., 1], src[..., 0]],
                                    order=1, mode="grid-constant", cval=0.0)
            for ch in range(3)
        ],
        -1,
    )  # fmt: skip
    assert np.abs(out.astype(np.float64) - ref).max() <= 0.5 + 1e-3  # uint8 rounding only


def test_quarter_turn_is_rot90():
    image = _example()["image"]
    out = augment.transform_image(image, AugmentParams(rotation=90.0))
    np.testing.assert_array_equal(out, np.rot90(image))  # counter-clockwise on screen


def test_colour_noise_saturates_within_uint8():
    image = np.full((8, 8, 3), 250, np.uint8)
    image[0, 0] = [0, 100, 255]
    out = augment.transform_image(image, AugmentParams(color=(1.4, 0.6, 1.0)))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[1, 1], [255, 150, 250])
    np.testing.assert_array_equal(out[0, 0], [0, 60, 255])
    rng = np.random.default_rng(0)
    for _ in range(5):
        out = augment.augment(_example(), rng)["image"]
        assert out.dtype == np.uint8 and out.shape == (SIZE, SIZE, 3)


# --- randomness and configuration ----------------------------------------------------------


def test_determinism_given_the_seed():
    ex = _example()
    a = augment.augment(ex, np.random.default_rng(11))
    b = augment.augment(ex, np.random.default_rng(11))
    for key in ex:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    draws = {augment.sample_params(np.random.default_rng(s)) for s in range(20)}
    assert len(draws) == 20


def test_parameter_distribution_is_spins():
    rng = np.random.default_rng(0)
    draws = [augment.sample_params(rng) for _ in range(4000)]
    flips = np.mean([d.flip for d in draws])
    rots = np.array([d.rotation for d in draws])
    scales = np.array([d.scale for d in draws])
    colours = np.array([d.color for d in draws])
    assert abs(flips - 0.5) < 0.03
    assert abs(np.mean(rots != 0) - 0.4) < 0.03
    assert np.abs(rots).max() <= 60.0 and np.abs(rots).max() == 60.0  # clipped at 2σ
    assert scales.min() == 0.75 and scales.max() == 1.25
    assert colours.min() >= 0.6 and colours.max() <= 1.4


def test_switches_and_their_independence():
    base = augment.sample_params(np.random.default_rng(3))
    no_rot = augment.sample_params(np.random.default_rng(3), AugmentConfig(rotate=False))
    assert no_rot._replace(rotation=base.rotation) == base  # other draws unchanged
    off = AugmentConfig.disabled()
    for seed in range(10):
        assert augment.sample_params(np.random.default_rng(seed), off) == AugmentParams()
    ex = _example()
    out = augment.augment(ex, np.random.default_rng(0), off)
    for key in ex:
        np.testing.assert_array_equal(out[key], ex[key], err_msg=key)
        assert out[key].dtype == np.asarray(ex[key]).dtype
    only_flip = augment.augment(
        ex, np.random.default_rng(1), {"rotate": False, "scale": False, "color_noise": False,
                                       "flip_prob": 1.0}
    )  # fmt: skip
    np.testing.assert_array_equal(only_flip["image"], ex["image"][:, ::-1])
    with pytest.raises(ValueError, match="rot_facter"):
        augment.augment(ex, np.random.default_rng(0), {"rot_facter": 10})


def test_flip_needs_j24():
    with pytest.raises(ValueError, match="24"):
        augment.transform_keypoints(np.zeros((17, 3), np.float32), AugmentParams(flip=True))
