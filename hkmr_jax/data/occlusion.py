"""Synthetic occluders for the occlusion experiments of the paper (§4), test time only.

An oriented bar, a circle or an axis-aligned rectangle whose size follows the degree of
occlusion (DoC 1…5), centred on a keypoint; pure JAX, deterministic given its key::

    centers = random_joint_centers(batch["keypoints"], k1, size=224)
    occluded = occlude(batch["image"], "bar", 3, centers, k2)

Sizes, the choices the paper leaves open and the pixel convention: docs/occlusion.md.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp

from hkmr_jax import geometry

#: The three occluder shapes of the paper.
KINDS: tuple[str, ...] = ("bar", "circle", "rectangle")
#: The paper's input size; occluder sizes are defined on it.
REFERENCE_SIZE = 224
#: Degrees of occlusion of the paper's sweep.
DOC_LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
#: (DoC 1, DoC 5) values at 224 px, from the paper; linear in between.
BAR_WIDTH_PX = (10.0, 50.0)
CIRCLE_RADIUS_PX = (10.0, 50.0)
RECTANGLE_AREA_PX2 = (3000.0, 15000.0)
#: Our choices (docs/occlusion.md).
BAR_LENGTH_PX = 160.0
RECTANGLE_ASPECT_RANGE = (0.5, 2.0)
TEST_SET_DOC = 3
TEST_SET_SEED = 2020


def _check_kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown occluder kind {kind!r}; valid kinds are {list(KINDS)}.")
    return kind


def _check_doc(doc) -> float:
    if isinstance(doc, bool) or not isinstance(doc, numbers.Real) or not 1 <= doc <= 5:
        raise ValueError(
            f"degree of occlusion must be a number in [1, 5] (the paper's levels are "
            f"{list(DOC_LEVELS)}), got {doc!r}."
        )
    return float(doc)


def occluder_geometry(kind: str, doc, size: int) -> dict[str, float]:
    """The occluder's size in pixels of an S × S input.

    Args:
      kind: 'bar', 'circle' or 'rectangle'.
      doc: degree of occlusion in [1, 5] (the paper uses 1, 2, 3, 4, 5).
      size: S, the side of the square input in pixels.

    Returns:
      bar: {'width', 'length'}; circle: {'radius'}; rectangle: {'area'} (px, px²).

    Raises:
      ValueError: unknown kind or DoC outside [1, 5].
    """
    kind, doc = _check_kind(kind), _check_doc(doc)
    t = (doc - 1.0) / 4.0
    lin = size / REFERENCE_SIZE

    def level(lo_hi):
        return lo_hi[0] + t * (lo_hi[1] - lo_hi[0])

    if kind == "bar":
        return {"width": level(BAR_WIDTH_PX) * lin, "length": BAR_LENGTH_PX * lin}
    if kind == "circle":
        return {"radius": level(CIRCLE_RADIUS_PX) * lin}
    return {"area": level(RECTANGLE_AREA_PX2) * lin * lin}


def _geometry_arrays(kind: str, doc, size: int) -> dict[str, jax.Array]:
    """`occluder_geometry` as float32 scalars: traced data, not part of the program."""
    return {k: jnp.float32(v) for k, v in occluder_geometry(kind, doc, size).items()}


def _mask_and_colour(kind: str, geometry: dict, center, size: int, key):
    """One occluder: bool mask [S, S] and uint8-valued colour [3] (int32)."""
    k_shape, k_colour = jax.random.split(key)
    coords = jnp.arange(size, dtype=jnp.float32) + 0.5  # pixel centres
    dx = coords[None, :] - center[0]
    dy = coords[:, None] - center[1]
    if kind == "circle":
        mask = dx * dx + dy * dy <= geometry["radius"] ** 2
    elif kind == "rectangle":
        lo, hi = (math.log(a) for a in RECTANGLE_ASPECT_RANGE)
        aspect = jnp.exp(jax.random.uniform(k_shape, (), jnp.float32, lo, hi))
        half_w = 0.5 * jnp.sqrt(geometry["area"] * aspect)
        half_h = 0.5 * jnp.sqrt(geometry["area"] / aspect)
        mask = (jnp.abs(dx) <= half_w) & (jnp.abs(dy) <= half_h)
    else:
        angle = jax.random.uniform(k_shape, (), jnp.float32, 0.0, math.pi)
        c, s = jnp.cos(angle), jnp.sin(angle)
        along = dx * c + dy * s
        across = dy * c - dx * s
        mask = (jnp.abs(along) <= 0.5 * geometry["length"]) & (
            jnp.abs(across) <= 0.5 * geometry["width"]
        )
    colour = jax.random.randint(k_colour, (3,), 0, 256)
    return mask, colour


def _is_single_key(key) -> bool:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.ndim == 0
    return key.ndim == 1  # a raw uint32 key, jax.random.PRNGKey


def _per_example_keys(key, batch: int):
    """A single key is split into one per example; a batch of keys is used as given."""
    key = key if isinstance(key, jax.Array) else jnp.asarray(key)
    if _is_single_key(key):
        return jax.random.split(key, batch)
    if key.shape[0] != batch:
        raise ValueError(f"got {key.shape[0]} keys for a batch of {batch}; pass one or B keys.")
    return key


def occluder_mask(kind: str, doc, center_px, size: int, key) -> jax.Array:
    """Where an occluder covers an S × S image.

    Args:
      kind: 'bar', 'circle' or 'rectangle' (static).
      doc: degree of occlusion in [1, 5], a Python number.
      center_px: [2] occluder centre (x, y) in continuous pixel coordinates.
      size: S (static).
      key: a PRNG key; it draws the bar's angle / the rectangle's aspect ratio (and the
        colour that `occlude` uses with the same key).

    Returns:
      bool [S, S]: True where the pixel centre is inside the occluder.

    Raises:
      ValueError: unknown kind, or DoC outside [1, 5].
    """
    geometry = _geometry_arrays(kind, doc, size)
    return _occluder_mask(jnp.asarray(center_px, jnp.float32), key, geometry, kind, int(size))


@functools.partial(jax.jit, static_argnames=("kind", "size"))
def _occluder_mask(center_px, key, geometry, kind, size):
    return _mask_and_colour(kind, geometry, center_px, size, key)[0]


def _occlude(images, centers_px, keys, geometry, kind):
    size = images.shape[1]
    masks, colours = jax.vmap(lambda c, k: _mask_and_colour(kind, geometry, c, size, k))(
        centers_px, keys
    )
    if jnp.issubdtype(images.dtype, jnp.integer):
        fill = colours.astype(images.dtype)
    else:  # float images are taken to be in [0, 1]
        fill = (colours / 255.0).astype(images.dtype)
    return jnp.where(masks[..., None], fill[:, None, None, :], images)


_occlude_jit = jax.jit(_occlude, static_argnames="kind")


def _check_images(images):
    images = jnp.asarray(images)
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 3:
        raise ValueError(f"images must be [B, S, S, 3], got shape {tuple(images.shape)}.")
    return images


def occlude(images, kind: str, doc, centers_px, key) -> jax.Array:
    """Paste one solid-colour occluder on each image.

    Args:
      images: [B, S, S, 3] uint8 (0…255) or float (taken to be in [0, 1]).
      kind: 'bar', 'circle' or 'rectangle' (static).
      doc: degree of occlusion in [1, 5], a Python number.
      centers_px: [B, 2] occluder centres (x, y), continuous pixel coordinates.
      key: one PRNG key (split into B; example b uses `jax.random.split(key, B)[b]`) or
        B keys (one per example, e.g. from `example_keys`). Example b's occluder is
        `occluder_mask(kind, doc, centers_px[b], S, key_b)`.

    Returns:
      [B, S, S, 3], same dtype; pixels outside the occluder are unchanged.

    Raises:
      ValueError: unknown kind, DoC outside [1, 5], or inputs of the wrong shape.
    """
    images = _check_images(images)
    geometry = _geometry_arrays(kind, doc, images.shape[1])
    centers_px = jnp.asarray(centers_px, jnp.float32)
    if centers_px.shape != (images.shape[0], 2):
        raise ValueError(
            f"centers_px must be [B, 2] = [{images.shape[0]}, 2], got {tuple(centers_px.shape)}."
        )
    keys = _per_example_keys(key, images.shape[0])
    return _occlude_jit(images, centers_px, keys, geometry, kind)


def _check_keypoints(keypoints):
    keypoints = jnp.asarray(keypoints, jnp.float32)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be [B, K, 3], got shape {tuple(keypoints.shape)}.")
    return keypoints


def random_joint_centers(keypoints, key, size: int) -> jax.Array:
    """A uniformly drawn visible keypoint per example, in pixels (occluder placement).

    Args:
      keypoints: [B, 24, 3] (x, y in the crop's [-1, 1], confidence), the data contract's
        `keypoints`.
      key: one PRNG key (split into B) or B keys.
      size: S, the image side in pixels (static).

    Returns:
      [B, 2] (x, y) pixels. A keypoint is visible when its confidence is > 0 and it lies
      inside the crop; an example with none gets the crop centre (S/2, S/2).
    """
    keypoints = _check_keypoints(keypoints)
    keys = _per_example_keys(key, keypoints.shape[0])
    return _random_joint_centers_jit(keypoints, keys, int(size))


def _random_joint_centers(keypoints, keys, size):
    xy, conf = keypoints[..., :2], keypoints[..., 2]
    visible = (conf > 0) & jnp.all(jnp.abs(xy) <= 1.0, axis=-1)
    logits = jnp.where(visible, 0.0, -jnp.inf)
    # With no visible keypoint every logit is -inf; the draw is then replaced below.
    index = jax.vmap(jax.random.categorical)(keys, logits)
    chosen = jnp.take_along_axis(xy, index[:, None, None], axis=1)[:, 0]
    centre = jnp.zeros_like(chosen)
    xy = jnp.where(visible.any(-1, keepdims=True), chosen, centre)
    return geometry.keypoints_to_pixels(xy, size)


_random_joint_centers_jit = jax.jit(_random_joint_centers, static_argnames="size")


def joint_centers(keypoints, joint_index, size: int) -> jax.Array:
    """Keypoint `joint_index` of every example, in pixels (the per-joint DoC sweep).

    The paper centres the occluder on one joint at a time and averages MPJPE over the
    joints. The keypoint is used whatever its confidence: choosing which joints to sweep
    (e.g. those a dataset annotates) is the caller's.

    Args:
      keypoints: [B, K, 3] crop coordinates in [-1, 1] + confidence.
      joint_index: int (may be traced), index into K.
      size: S.

    Returns:
      [B, 2] (x, y) pixels.
    """
    keypoints = jnp.asarray(keypoints, jnp.float32)
    return geometry.keypoints_to_pixels(jnp.take(keypoints[..., :2], joint_index, axis=1), size)


def _example_keys(example_ids, seed, stream):
    base = jax.random.fold_in(jax.random.key(seed), stream)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(example_ids.astype(jnp.uint32))


def example_keys(example_ids, seed: int = TEST_SET_SEED, stream: int = 0) -> jax.Array:
    """One key per example from its stable `example_id`: fold_in(fold_in(key(seed), stream), id).

    Keys that depend on the example only (not on its batch, host or position) make an
    occluded test set the same however it is batched or sharded. Use a different
    `stream` for each independent use (e.g. 1 + joint index in the DoC sweep).

    Args:
      example_ids: [B] int, below 2³¹.
      seed, stream: Python ints.

    Returns:
      [B] typed PRNG keys.
    """
    return _example_keys_jit(jnp.asarray(example_ids), seed, stream)


_example_keys_jit = jax.jit(_example_keys, static_argnames=("seed", "stream"))


@functools.partial(jax.jit, static_argnames=("kind", "seed"))
def _occlude_test_set(images, keypoints, example_ids, geometry, kind, seed):
    keys = _example_keys(example_ids, seed, 0)
    pairs = jax.vmap(jax.random.split)(keys)  # [B, 2]: centre key, occluder key
    centers = _random_joint_centers(keypoints, pairs[:, 0], images.shape[1])
    return _occlude(images, centers, pairs[:, 1], geometry, kind)


def occlude_test_set(
    images, keypoints, example_ids, kind: str, doc=TEST_SET_DOC, seed: int = TEST_SET_SEED
) -> jax.Array:
    """The fixed "Bar / Circle / Rectangle" test sets of the paper's Tables 1 and 4.

    Each example gets one occluder of `kind` at DoC 3, centred on a visible keypoint drawn
    with a key folded from its `example_id` (so the set is the same however it is batched):
    with `keys = example_keys(example_ids, seed)` and `c, o = split(keys[b])`, example b
    is `occlude(..., random_joint_centers(keypoints, c), o)`. The centre and the colour do
    not depend on `kind`: the three sets hide the same joint.

    Args:
      images: [B, S, S, 3] uint8 (or float in [0, 1]).
      keypoints: [B, 24, 3] crop coordinates + confidence.
      example_ids: [B] int, the contract's `example_id`.
      kind: 'bar', 'circle' or 'rectangle'.
      doc: degree of occlusion (default `TEST_SET_DOC`).
      seed: default `TEST_SET_SEED`.

    Returns:
      [B, S, S, 3] occluded images.
    """
    images = _check_images(images)
    keypoints = _check_keypoints(keypoints)
    geometry = _geometry_arrays(kind, doc, images.shape[1])
    example_ids = jnp.asarray(example_ids)
    if example_ids.shape != (images.shape[0],) or keypoints.shape[0] != images.shape[0]:
        raise ValueError(
            f"images {tuple(images.shape)}, keypoints {tuple(keypoints.shape)} and "
            f"example_ids {tuple(example_ids.shape)} must share the batch size."
        )
    return _occlude_test_set(images, keypoints, example_ids, geometry, kind, seed)
