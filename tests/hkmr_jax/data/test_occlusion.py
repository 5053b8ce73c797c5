"""Tests for hkmr_jax.data.occlusion.

Reference values and their origin:
* occluder sizes are the paper's (§4, "Robustness to Degree of Occlusions"): bar width and
  circle radius 10…50 px, rectangle area 3,000…15,000 px² for DoC 1…5 at 224 px.
* rasterised areas are compared with the exact areas π r², w·h, width × length; a pixel
  is counted when its centre is inside, so the count differs from the area by at most
  the pixels the boundary crosses, bounded here by the perimeter (in px) + 4.
* the circle mask is compared pixel for pixel with a float64 NumPy reference.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hkmr_jax.data import occlusion


def _pixel_centres(size):
    c = np.arange(size) + 0.5
    return np.meshgrid(c, c)  # x [S, S], y [S, S]


def _centroid(mask):
    x, y = _pixel_centres(mask.shape[0])
    m = np.asarray(mask, bool)
    return np.array([x[m].mean(), y[m].mean()])


@pytest.mark.parametrize("doc", [1, 3, 5])
def test_circle_matches_numpy_reference_and_area(doc):
    center = np.array([100.3, 90.7])
    mask = np.asarray(occlusion.occluder_mask("circle", doc, center, 224, jax.random.key(0)))
    r = 10.0 * doc
    x, y = _pixel_centres(224)
    reference = (x - center[0]) ** 2 + (y - center[1]) ** 2 <= r * r
    assert mask.dtype == bool and mask.shape == (224, 224)
    assert np.sum(mask != reference) <= 2  # float32 vs float64 on the boundary only
    assert abs(mask.sum() - math.pi * r * r) <= 2 * math.pi * r + 4


@pytest.mark.parametrize("doc", [1, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rectangle_area_and_aspect(doc, seed):
    mask = np.asarray(
        occlusion.occluder_mask("rectangle", doc, [112.0, 112.0], 224, jax.random.key(seed))
    )
    area = 3000.0 * doc
    rows, cols = np.any(mask, axis=1).sum(), np.any(mask, axis=0).sum()
    assert rows * cols == mask.sum()  # a full axis-aligned rectangle
    assert 0.5 - 0.05 <= cols / rows <= 2.0 + 0.1
    perimeter = 2 * (rows + cols)
    assert abs(mask.sum() - area) <= perimeter + 4


@pytest.mark.parametrize("doc", [1, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bar_area_extent_and_width(doc, seed):
    width, length = 10.0 * doc, occlusion.BAR_LENGTH_PX
    center = np.array([112.0, 112.0])
    mask = np.asarray(occlusion.occluder_mask("bar", doc, center, 224, jax.random.key(seed)))
    assert abs(mask.sum() - width * length) <= 2 * (width + length) + 4
    # The farthest covered pixel centre is near a corner of the bar.
    x, y = _pixel_centres(224)
    d = np.hypot(x - center[0], y - center[1])[mask]
    assert abs(d.max() - math.hypot(width / 2, length / 2)) <= 1.0
    # The bar's axis is the principal direction of its pixels; across it, it is `width`.
    pts = np.stack([x[mask], y[mask]], -1) - center
    _, vecs = np.linalg.eigh(pts.T @ pts)
    across = np.abs(pts @ vecs[:, 0])  # smallest-variance direction
    assert abs(2 * across.max() - width) <= 1.5


@pytest.mark.parametrize("kind", occlusion.KINDS)
def test_mask_is_centred_where_asked(kind):
    for center in ([100.25, 120.5], [130.0, 95.75]):
        mask = occlusion.occluder_mask(kind, 2, jnp.array(center), 224, jax.random.key(3))
        np.testing.assert_allclose(_centroid(mask), center, atol=0.5)


def test_sizes_scale_with_input_size():
    assert occlusion.occluder_geometry("circle", 5, 112) == {"radius": 25.0}
    assert occlusion.occluder_geometry("bar", 1, 448) == {"width": 20.0, "length": 320.0}
    assert occlusion.occluder_geometry("rectangle", 5, 112)["area"] == pytest.approx(3750.0)
    assert occlusion.occluder_geometry("circle", 3, 224) == {"radius": 30.0}
    mask = occlusion.occluder_mask("circle", 5, [56.0, 56.0], 112, jax.random.key(0))
    assert abs(int(mask.sum()) - math.pi * 25**2) <= 2 * math.pi * 25 + 4


def test_bad_kind_and_doc_raise():
    with pytest.raises(ValueError, match=r"bar.*circle.*rectangle"):
        occlusion.occluder_mask("square", 3, [10.0, 10.0], 64, jax.random.key(0))
    for doc in (0, 5.5, -1, True, "3", None):
        with pytest.raises(ValueError, match="degree of occlusion"):
            occlusion.occluder_mask("circle", doc, [10.0, 10.0], 64, jax.random.key(0))
    images = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="valid kinds"):
        occlusion.occlude(images, "triangle", 1, np.zeros((2, 2)), jax.random.key(0))
    with pytest.raises(ValueError, match="degree of occlusion"):
        occlusion.occlude(images, "bar", 6, np.zeros((2, 2)), jax.random.key(0))
    with pytest.raises(ValueError, match="centers_px"):
        occlusion.occlude(images, "bar", 2, np.zeros((3, 2)), jax.random.key(0))


def _images(batch=3, size=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), np.uint8)


@pytest.mark.parametrize("kind", occlusion.KINDS)
def test_occlude_changes_only_the_mask(kind):
    images = _images()
    centers = np.array([[20.0, 30.0], [32.0, 32.0], [50.5, 10.25]])
    key = jax.random.key(7)
    out = np.asarray(occlusion.occlude(images, kind, 2, centers, key))
    assert out.dtype == np.uint8 and out.shape == images.shape
    for b, k in enumerate(jax.random.split(key, 3)):
        mask = np.asarray(occlusion.occluder_mask(kind, 2, centers[b], 64, k))
        assert mask.any()
        np.testing.assert_array_equal(out[b][~mask], images[b][~mask])
        colours = np.unique(out[b][mask], axis=0)
        assert len(colours) == 1  # one solid colour


def test_same_key_same_occluder_different_key_different():
    images = np.zeros((2, 64, 64, 3), np.uint8)
    centers = np.full((2, 2), 32.0)
    a = occlusion.occlude(images, "bar", 3, centers, jax.random.key(0))
    b = occlusion.occlude(images, "bar", 3, centers, jax.random.key(0))
    c = occlusion.occlude(images, "bar", 3, centers, jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    for x, y in zip(np.asarray(a), np.asarray(c)):
        mask_x, mask_y = x.any(-1), y.any(-1)
        assert (mask_x != mask_y).sum() > 50  # another angle
        assert not np.array_equal(x[mask_x][0], y[mask_y][0])  # another colour
    # The two examples of one call get different occluders too.
    a = np.asarray(a)
    assert not np.array_equal(a[0], a[1])


def test_raw_and_batched_keys():
    images = _images(batch=2)
    centers = np.full((2, 2), 32.0)
    keys = jax.random.split(jax.random.PRNGKey(4), 2)  # raw uint32 keys, one per example
    out = occlusion.occlude(images, "circle", 1, centers, keys)
    single = occlusion.occlude(images, "circle", 1, centers, jax.random.PRNGKey(4))
    np.testing.assert_array_equal(out, single)
    with pytest.raises(ValueError, match="keys"):
        occlusion.occlude(images, "circle", 1, centers, jax.random.split(jax.random.key(0), 3))


def test_float_images_get_colours_in_unit_range():
    images = np.full((2, 32, 32, 3), 0.5, np.float32)
    out = np.asarray(
        occlusion.occlude(images, "circle", 5, np.full((2, 2), 16.0), jax.random.key(0))
    )
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 and (out != 0.5).any()


def test_jit():
    images = _images()
    centers = jnp.array([[20.0, 30.0], [32.0, 32.0], [50.5, 10.25]])
    key = jax.random.key(2)
    eager = occlusion.occlude(images, "rectangle", 4, centers, key)
    jitted = jax.jit(lambda im, c, k: occlusion.occlude(im, "rectangle", 4, c, k))(
        images, centers, key
    )
    np.testing.assert_array_equal(eager, jitted)
    mask = jax.jit(lambda c, k: occlusion.occluder_mask("bar", 2, c, 64, k))(centers[0], key)
    np.testing.assert_array_equal(mask, occlusion.occluder_mask("bar", 2, centers[0], 64, key))


def _keypoints(batch, visible_joints, seed=0):
    rng = np.random.default_rng(seed)
    kp = np.zeros((batch, 24, 3), np.float32)
    kp[..., :2] = rng.uniform(-0.9, 0.9, (batch, 24, 2))
    kp[:, visible_joints, 2] = 1.0
    return kp


def test_random_joint_centers_pick_visible_keypoints():
    visible = [2, 7, 19]
    kp = _keypoints(64, visible)
    kp[:, 5, :2] = 1.5  # confident but outside the crop: never picked
    kp[:, 5, 2] = 1.0
    centers = np.asarray(occlusion.random_joint_centers(kp, jax.random.key(0), 64))
    candidates = (kp[:, visible, :2] + 1) * 32  # [B, 3, 2]
    match = np.all(np.abs(candidates - centers[:, None]) < 1e-4, axis=-1)  # [B, 3]
    assert np.all(match.sum(-1) == 1)
    assert set(np.argmax(match, -1)) == {0, 1, 2}  # every visible joint gets drawn
    again = occlusion.random_joint_centers(kp, jax.random.key(0), 64)
    np.testing.assert_array_equal(centers, again)
    other = np.asarray(occlusion.random_joint_centers(kp, jax.random.key(1), 64))
    assert not np.array_equal(centers, other)


def test_random_joint_centers_fall_back_to_image_centre():
    kp = _keypoints(2, [])
    kp[1, 3, 2] = 1.0
    centers = np.asarray(occlusion.random_joint_centers(kp, jax.random.key(0), 96))
    np.testing.assert_allclose(centers[0], [48.0, 48.0])
    np.testing.assert_allclose(centers[1], (kp[1, 3, :2] + 1) * 48, rtol=1e-6)
    jitted = jax.jit(occlusion.random_joint_centers, static_argnums=2)(kp, jax.random.key(0), 96)
    np.testing.assert_array_equal(centers, jitted)


def test_joint_centers():
    kp = _keypoints(4, [0])
    for j in (0, 13):
        np.testing.assert_allclose(
            occlusion.joint_centers(kp, j, 224), (kp[:, j, :2] + 1) * 112, rtol=1e-6
        )
    traced = jax.jit(lambda k, j: occlusion.joint_centers(k, j, 224))(kp, 13)
    np.testing.assert_allclose(traced, (kp[:, 13, :2] + 1) * 112, rtol=1e-6)


def test_fixed_test_set_is_independent_of_batching():
    images = _images(batch=4)
    kp = _keypoints(4, [1, 4, 9, 14])
    ids = np.array([10, 11, 12, 13])
    whole = np.asarray(occlusion.occlude_test_set(images, kp, ids, "bar"))
    assert (whole != images).any(axis=(1, 2, 3)).all()
    # Reordering the batch reorders the output only.
    perm = [2, 0, 3, 1]
    shuffled = occlusion.occlude_test_set(images[perm], kp[perm], ids[perm], "bar")
    np.testing.assert_array_equal(whole[perm], shuffled)
    # Other batch mates (same batch shape, so no recompilation) change nothing.
    mates = occlusion.occlude_test_set(
        np.concatenate([images[:2], _images(2, seed=9)]),
        np.concatenate([kp[:2], _keypoints(2, [0], seed=9)]),
        np.array([10, 11, 40, 41]),
        "bar",
    )
    np.testing.assert_array_equal(whole[:2], np.asarray(mates)[:2])


def test_fixed_test_sets_share_centre_and_colour_across_kinds():
    images = np.zeros((4, 64, 64, 3), np.uint8)
    kp = _keypoints(4, [3, 8, 15, 20])
    kp[..., :2] *= 0.3 / 0.9  # keypoints near the middle: occluders clear of the border
    ids = np.array([10, 11, 12, 13])
    bar = np.asarray(occlusion.occlude_test_set(images, kp, ids, "bar"))
    circle = np.asarray(occlusion.occlude_test_set(images, kp, ids, "circle"))
    for b, c in zip(bar, circle):
        mb, mc = b.any(-1), c.any(-1)
        np.testing.assert_array_equal(b[mb][0], c[mc][0])  # the same colour
        np.testing.assert_allclose(_centroid(mb), _centroid(mc), atol=0.5)  # the same joint
        assert not (mb[0].any() or mb[-1].any() or mb[:, 0].any() or mb[:, -1].any())


def test_example_keys_streams_differ():
    ids = np.arange(3)
    a = jax.random.key_data(occlusion.example_keys(ids, stream=0))
    b = jax.random.key_data(occlusion.example_keys(ids, stream=1))
    np.testing.assert_array_equal(a, jax.random.key_data(occlusion.example_keys(ids, stream=0)))
    assert not np.array_equal(a, b)
    assert len({tuple(row) for row in np.asarray(a)}) == 3
