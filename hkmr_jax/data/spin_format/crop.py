"""SPIN's crop and keypoint normalisation, and bounded image reading (no TFDS needed).

The box is the square of side ``200 · scale`` centred on `center`; a point maps to
``2 (p − center) / (200 · scale)`` ∈ [-1, 1]; crops resample bilinearly, widened when
shrinking as PIL does. Images above `MAX_IMAGE_PIXELS` are refused from their header.
Details: docs/spin_format.md. Used by the builder, the demo and segmentation.
"""

from __future__ import annotations

import numpy as np
import PIL.Image

#: Side of the stored crops, pixels (SPIN's `constants.IMG_RES`).
IMG_RES = 224


def normalize_keypoints(points, center, scale):
    """Source-pixel keypoints → the crop's [-1, 1] coordinates; confidence kept.

    Args:
      points: [..., K, 3] x, y (continuous pixels), confidence.
      center: [2] box centre, pixels.
      scale: box side / 200.

    Returns:
      float32 [..., K, 3]: x, y as ``2 (p − center) / (200 · scale)``, confidence.
      All-zero rows (SPIN's marker for an unlabelled joint, and the default of an
      absent key) stay zero rather than becoming the image origin's coordinates.
    """
    points = np.asarray(points, np.float64)
    side = 200.0 * float(scale)
    xy = 2.0 * (points[..., :2] - np.asarray(center, np.float64)) / side
    xy = np.where(np.any(points != 0, axis=-1, keepdims=True), xy, 0.0)
    return np.concatenate([xy, points[..., 2:]], axis=-1).astype(np.float32)


def _triangle_sum(coords: np.ndarray, radius: float) -> np.ndarray:
    """Σ over all integers i of max(0, 1 − |i − c| / radius), for each c (closed form).

    The normaliser of `_taps`' weights over the whole integer grid, so that pixels
    outside the image count as black without being enumerated.
    """
    c = np.asarray(coords, np.float64)
    total = np.zeros_like(c)
    # Left half i ∈ (c − r, floor c], right half i ∈ (floor c, c + r): arithmetic series.
    for lo, hi, sign in ((np.floor(c - radius) + 1, np.floor(c), -1.0),
                         (np.floor(c) + 1, np.ceil(c + radius) - 1, 1.0)):  # fmt: skip
        n = np.maximum(hi - lo + 1, 0)
        sum_i = (lo + hi) * n / 2
        total += n - sign * (sum_i - n * c) / radius
    return total


def _taps(coords: np.ndarray, spacing: float, size: int):
    """Source pixels and weights, [len(coords), K] each, that resample to `coords`.

    A triangle filter of half-width max(1, spacing) source pixels: bilinear when
    enlarging, widened to the output spacing when shrinking (as PIL's bilinear resize),
    so that thin structures average instead of aliasing. Weights are normalised over
    the whole integer grid, so pixels outside the image count as black. Only pixels
    inside the image are listed: K ≤ `size` whatever the box, so memory follows the
    output and the image, never the box. `coords` are pixel-index coordinates (pixel
    i's centre at i).
    """
    radius = max(1.0, spacing)
    num_taps = min(int(np.ceil(2.0 * radius)) + 1, size)
    first = np.floor(coords - radius) + 1  # every i with |i - c| < radius is ≥ first
    # A window of num_taps pixels inside [0, size) that holds every such i in the image.
    start = np.clip(first, 0, size - num_taps).astype(np.int64)
    idx = start[:, None] + np.arange(num_taps)
    w = np.maximum(0.0, 1.0 - np.abs(idx - coords[:, None]) / radius)
    w /= _triangle_sum(coords, radius)[:, None]
    return idx, w.astype(np.float32)


#: A crop box may be at most this many times the image's larger side (SPIN's boxes are
#: about a person's height, and a whole-image box is 1×); larger ones are refused.
MAX_BOX_FACTOR = 8


def check_box(center, scale, image_size) -> None:
    """Raise ValueError unless the box (`center`, side ``200 · scale``) is a sane crop of
    an image of `image_size` (H, W): finite, side > 0 and ≤ `MAX_BOX_FACTOR` × max(H, W),
    and overlapping the image."""
    h, w = image_size
    cx, cy = (float(v) for v in np.asarray(center, np.float64).reshape(2))
    side = 200.0 * float(scale)
    what = f"crop box centre ({cx:g}, {cy:g}), scale {float(scale):g} (side {side:g} px)"
    if not (np.isfinite([cx, cy, side]).all() and side > 0):
        raise ValueError(f"{what}: centre and scale must be finite, scale > 0.")
    if side > MAX_BOX_FACTOR * max(h, w):
        raise ValueError(
            f"{what}: larger than {MAX_BOX_FACTOR}× the image's larger side ({w}×{h} px, "
            "W×H); the box is wrong (is it for another image, or in other units?)."
        )
    half = side / 2
    if not (cx - half < w and cy - half < h and cx + half > 0 and cy + half > 0):
        raise ValueError(
            f"{what}: does not overlap the image ({w}×{h} px, W×H); the box is wrong (is "
            "it for another image?)."
        )


def crop_image(image, center, scale, res: int = IMG_RES) -> np.ndarray:
    """SPIN's person crop: the square of side ``200 · scale`` at `center`, resized.

    Memory and time follow the output and the part of the image the box covers: at
    most ``res × W`` and ``res × H`` float32 intermediates, whatever the box's size.

    Args:
      image: [H, W, C] (or [H, W]) array, any numeric dtype.
      center: [2] box centre (x, y), continuous pixels.
      scale: box side / 200.
      res: output side, pixels.

    Returns:
      float32 [res, res, C] (or [res, res]): crop pixel (u, v) samples the source at
      ``center + ((u + 0.5) / res − 0.5) · 200 · scale`` (and likewise v); black outside
      the source image. Round and clip to get uint8.

    Raises:
      ValueError: the box fails `check_box` (non-finite, not positive, larger than
        `MAX_BOX_FACTOR` × the image, or off the image).
    """
    image = np.asarray(image)
    squeeze = image.ndim == 2
    if squeeze:
        image = image[..., None]
    check_box(center, scale, image.shape[:2])
    side = 200.0 * float(scale)
    offsets = ((np.arange(res) + 0.5) / res - 0.5) * side
    # Continuous coordinate c lies at pixel-index coordinate c - 0.5.
    ix, wx = _taps(float(center[0]) + offsets - 0.5, side / res, image.shape[1])
    iy, wy = _taps(float(center[1]) + offsets - 0.5, side / res, image.shape[0])
    # Separable, a few taps per output pixel: rows first, then columns. (Dense
    # resampling matrices cost ~100× more multiplications for a 1000-px box.)
    x_lo, x_hi = ix.min(), ix.max() + 1
    rows = np.zeros((res, x_hi - x_lo, image.shape[2]), np.float32)
    for k in range(iy.shape[1]):
        rows += wy[:, k, None, None] * image[iy[:, k], x_lo:x_hi]
    out = np.zeros((res, res, image.shape[2]), np.float32)
    for k in range(ix.shape[1]):
        out += wx[None, :, k, None] * rows[:, ix[:, k] - x_lo]
    return out[..., 0] if squeeze else out


#: Images with more pixels than this (8192 × 8192, 201 MB as RGB) are refused before
#: they are decoded. SPIN's datasets are ≤ ~2k × 2k; a 48-megapixel photo fits.
MAX_IMAGE_PIXELS = 8192 * 8192


def read_label_png(path, shape, image_path) -> np.ndarray:
    """A single-channel PNG (mask or part labels) as uint8 [H, W], checked to be the
    size `shape` (H, W) of the image `image_path` it annotates; ValueError naming it."""
    try:
        with open_image(path) as im:  # refuses huge images from their header
            if im.size != (shape[1], shape[0]):
                raise ValueError(
                    f"{path} is {im.size[0]}×{im.size[1]} px but its image {image_path} is "
                    f"{shape[1]}×{shape[0]}: masks must be in the original image's size."
                )
            if im.mode not in ("L", "1"):
                raise ValueError(
                    f"{path} has PIL mode {im.mode!r}; masks and part maps must be "
                    "single-channel 8-bit images (mode 'L'), the label in the pixel value."
                )
            return np.array(im.convert("L"), np.uint8)
    except (OSError, SyntaxError) as e:  # PIL's errors for bad image data
        raise ValueError(f"Cannot decode {path}: {type(e).__name__}: {e}") from e


def read_image(path) -> np.ndarray:
    """uint8 [H, W, 3] RGB; ValueError naming `path` when it cannot be decoded, and
    `ImageTooLargeError` when it has more than `MAX_IMAGE_PIXELS` pixels (checked from
    its header, before decoding).

    EXIF orientation is not applied: the datasets' annotations refer to the stored
    pixel grid.
    """
    with open_image(path) as im:
        try:
            return np.asarray(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for bad image data
            raise ValueError(f"Cannot decode image {path}: {type(e).__name__}: {e}") from e


class ImageTooLargeError(ValueError):
    """An image with more than `MAX_IMAGE_PIXELS` pixels; the message names it."""


def open_image(path) -> PIL.Image.Image:
    """The image at `path` opened lazily (its header read, nothing decoded), refused
    with `ImageTooLargeError` above `MAX_IMAGE_PIXELS` and ValueError when unreadable."""
    limit = f"the limit of {MAX_IMAGE_PIXELS} pixels (8192 × 8192); it is not decoded"
    fix = "Downscale it (and its annotations) first."
    try:
        im = PIL.Image.open(path)
    except PIL.Image.DecompressionBombError as e:  # PIL's own limit, above ours
        raise ImageTooLargeError(f"Image {path} has more pixels than {limit} ({e}). {fix}") from e
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for bad image data
        raise ValueError(f"Cannot decode image {path}: {type(e).__name__}: {e}") from e
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        im.close()
        raise ImageTooLargeError(f"Image {path} is {w}×{h} pixels, more than {limit}. {fix}")
    return im
