"""The demo's inputs: images, the person's crop box (a given box, OpenPose keypoints or
the whole image, as SPIN's demo), and the crop itself; `DemoError` for bad ones.
Cropping rules: docs/demo.md.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import NamedTuple

import numpy as np
from PIL import Image

#: File name endings read in folder mode (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: SPIN's demo: OpenPose keypoints with confidence above this count.
OPENPOSE_THRESHOLD = 0.2
#: SPIN's demo: the keypoints' box is enlarged this much.
OPENPOSE_RESCALE = 1.2


class DemoError(ValueError):
    """A problem with the demo's inputs: the message names the thing and the fix."""


class Box(NamedTuple):
    """A square crop box in source pixels (continuous coordinates, x right, y down).

    Attributes:
      cx, cy: its centre.
      side: its side (> 0). SPIN's ``scale`` is ``side / 200``.
    """

    cx: float
    cy: float
    side: float

    @property
    def xywh(self) -> np.ndarray:
        """[4] float32 (x, y, w, h): top-left corner and size (w = h = side)."""
        half = self.side / 2
        return np.array([self.cx - half, self.cy - half, self.side, self.side], np.float32)


def _overlaps(x0, y0, x1, y1, image_size) -> bool:
    h, w = image_size
    return x0 < w and y0 < h and x1 > 0 and y1 > 0


def _check_side(side, image_size, what: str) -> None:
    """DemoError unless a box side is at most `spin_format.MAX_BOX_FACTOR` × the image's
    larger side (bigger boxes are mistakes, and cropping them would be mostly black)."""
    from hkmr_jax.data import spin_format  # lazily: it imports TFDS (~0.4 s)

    h, w = image_size
    if not side <= spin_format.MAX_BOX_FACTOR * max(h, w):
        raise DemoError(
            f"{what} is {side:g} px across, more than {spin_format.MAX_BOX_FACTOR}× the "
            f"image's larger side ({w}×{h} px, W×H); give a box around the person in this "
            "image's pixels."
        )


def box_from_bbox(bbox, image_size) -> Box:
    """SPIN's `bbox_from_json`: the square about a box's centre, side = max(w, h).

    Args:
      bbox: (x, y, w, h) in source pixels: top-left corner and size.
      image_size: (H, W) of the image.

    Raises:
      DemoError: not four finite numbers with w, h > 0, the box misses the image, or it
        is larger than `spin_format.MAX_BOX_FACTOR` × the image's larger side.
    """
    values = np.asarray(bbox, np.float64)
    if values.shape != (4,) or not np.isfinite(values).all() or values[2] <= 0 or values[3] <= 0:
        raise DemoError(
            f"bounding box must be x,y,w,h (top-left corner and size, pixels) with w, h > 0, "
            f"got {np.asarray(bbox).tolist()}."
        )
    x, y, w, h = values
    _check_side(max(w, h), image_size, f"bounding box {values.tolist()} (x, y, w, h)")
    if not _overlaps(x, y, x + w, y + h, image_size):
        raise DemoError(
            f"bounding box {values.tolist()} (x, y, w, h) lies outside the image "
            f"({image_size[1]}×{image_size[0]} px, W×H); give a box around the person in "
            "this image's pixels."
        )
    return Box(x + w / 2, y + h / 2, max(w, h))


def read_openpose(path) -> np.ndarray:
    """The first person's `pose_keypoints_2d` of an OpenPose JSON as [K, 3] (x, y, conf).

    Raises:
      DemoError: unreadable file, no person, or not a list of (x, y, confidence) triples.
    """
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text())
        people = data["people"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DemoError(
            f"cannot read OpenPose keypoints from {path} ({type(e).__name__}: {e}); give "
            "OpenPose's --write_json output ({'people': [{'pose_keypoints_2d': [...]}]})."
        ) from None
    if not people:
        raise DemoError(f"{path}: OpenPose found no person (empty 'people'); use --bbox.")
    try:
        keypoints = np.asarray(people[0]["pose_keypoints_2d"], np.float64).reshape(-1, 3)
    except (KeyError, TypeError, ValueError) as e:
        raise DemoError(
            f"{path}: people[0]['pose_keypoints_2d'] must be a flat list of x, y, confidence "
            f"triples (BODY_25: 75 numbers) ({type(e).__name__}: {e})."
        ) from None
    return keypoints


def box_from_openpose(keypoints, image_size, threshold=OPENPOSE_THRESHOLD,
                      rescale=OPENPOSE_RESCALE) -> Box:  # fmt: skip
    """The crop box of OpenPose keypoints (SPIN's `bbox_from_openpose`; the centre is the
    middle of their box, not SPIN's mean: docs/demo.md).

    Args:
      keypoints: [K, 3] (x, y, confidence), e.g. BODY_25 from `read_openpose`, or the path
        of an OpenPose JSON.
      image_size: (H, W) of the image.
      threshold: keypoints with confidence > this count.
      rescale: side = rescale × the larger side of their bounding box.

    Raises:
      DemoError: fewer than two confident keypoints, all at one point, all outside
        the image, or spread over more than `spin_format.MAX_BOX_FACTOR` × the image's
        larger side (a keypoint far away).
    """
    source = ""
    if isinstance(keypoints, str | os.PathLike):
        source = f"{keypoints}: "
        keypoints = read_openpose(keypoints)
    keypoints = np.asarray(keypoints, np.float64)
    valid = keypoints[(keypoints[:, 2] > threshold) & np.isfinite(keypoints).all(axis=1), :2]
    lo, hi = valid.min(axis=0, initial=np.inf), valid.max(axis=0, initial=-np.inf)
    if len(valid) < 2 or not np.max(hi - lo) > 0:
        raise DemoError(
            f"{source}only {len(valid)} OpenPose keypoint(s) with confidence > {threshold} "
            "(at least two distinct ones are needed for a box); give --bbox instead."
        )
    h, w = image_size
    if not np.any((valid[:, 0] >= 0) & (valid[:, 0] < w) & (valid[:, 1] >= 0) & (valid[:, 1] < h)):
        raise DemoError(
            f"{source}the confident OpenPose keypoints all lie outside the image ({w}×{h} px); "
            "is this the keypoints file of another image?"
        )
    centre = (lo + hi) / 2
    side = float(rescale * np.max(hi - lo))
    far = valid[np.argmax(np.max(np.abs(valid - np.median(valid, axis=0)), axis=1))]
    _check_side(side, image_size, f"{source}the confident OpenPose keypoints' box (farthest "
                f"keypoint at ({far[0]:g}, {far[1]:g}))")  # fmt: skip
    return Box(float(centre[0]), float(centre[1]), side)


def box_from_image(image_size) -> Box:
    """The whole image (SPIN's demo without a box): centred, side = max(H, W)."""
    h, w = image_size
    return Box(w / 2, h / 2, float(max(h, w)))


def crop_image(image, box: Box, size: int) -> np.ndarray:
    """Resample `box` of `image` to a square crop, as the training crops are made.

    Args:
      image: uint8 [H, W, 3].
      box: the square box; the crop's corners are the box's corners (crop pixel (u, v)
        samples the source at ``(x + (u + ½)·side/size, y + (v + ½)·side/size)``).
      size: output side S, pixels.

    Returns:
      uint8 [S, S, 3]; black where the box reaches past the image.

    Raises:
      DemoError: the box is not finite, misses the image or is too large
        (`spin_format.check_box`).
    """
    from hkmr_jax.data import spin_format  # lazily: it imports TFDS (~0.4 s)

    try:
        crop = spin_format.crop_image(image, (box.cx, box.cy), box.side / 200.0, int(size))
    except ValueError as e:  # a box not made by box_from_*: refused by check_box
        raise DemoError(str(e)) from None
    return np.clip(np.rint(crop), 0, 255).astype(np.uint8)


def read_image(path) -> np.ndarray:
    """An image file (its first frame) as uint8 [H, W, 3] RGB, read with Pillow.

    Every 8-bit mode is converted as Pillow's ``Image.convert('RGB')`` converts it:
    greyscale repeated, 1-bit as 0/255, palette through its palette (transparency
    dropped), CMYK and YCbCr to RGB, alpha (LA, RGBA, PA) dropped. 16-bit greyscale
    (``I;16*``, or ``I`` as Pillow reads 16-bit PNGs) is scaled to 8 bits as
    ``round(v · 255 / 65535)`` and repeated; Pillow itself keeps 8 bits of 16-bit RGB.

    Raises:
      DemoError: the file cannot be read as an image, holds floating-point pixels, or
        has more than `spin_format.MAX_IMAGE_PIXELS` pixels (refused from its header,
        undecoded).
    """
    from hkmr_jax.data import spin_format  # lazily: it imports TFDS (~0.4 s)

    path = pathlib.Path(path)
    try:
        with spin_format.open_image(path) as im:  # refuses huge images from their header
            im.load()
            if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
                grey = np.clip(np.asarray(im, np.float64), 0, 65535) * (255 / 65535)
                image = np.repeat(np.rint(grey).astype(np.uint8)[..., None], 3, axis=2)
            elif im.mode == "F":
                raise DemoError(
                    f"cannot read image {path}: its pixels are floating point (mode F); give "
                    "an 8- or 16-bit image (PNG or JPEG)."
                )
            else:
                image = np.asarray(im.convert("RGB"))
    except DemoError:
        raise
    except spin_format.ImageTooLargeError as e:
        raise DemoError(str(e)) from None
    except Image.DecompressionBombError as e:
        raise DemoError(f"cannot read image {path}: {e}") from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's errors for bad files
        reason = "not an image file Pillow recognises" if "cannot identify" in str(e) else e
        raise DemoError(f"cannot read image {path} ({reason}); give a PNG or JPEG file.") from None
    if min(image.shape[:2]) < 1:
        raise DemoError(
            f"cannot read image {path}: it is empty ({image.shape[1]}×{image.shape[0]})."
        )
    return np.ascontiguousarray(image)


def list_images(path) -> list[pathlib.Path]:
    """`path` itself, or the images (by `IMAGE_SUFFIXES`) in the folder `path`, sorted.

    Raises:
      DemoError: `path` does not exist, or the folder holds no image.
    """
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        images = sorted(
            p for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )  # fmt: skip
        if not images:
            raise DemoError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder {path}.")
        return images
    if not path.exists():
        raise DemoError(f"image {path} does not exist.")
    return [path]


def _openpose_file(openpose, image: pathlib.Path) -> pathlib.Path:
    """The keypoints file of `image`: `openpose` itself, or in the folder `openpose`
    OpenPose's ``<stem>_keypoints.json`` (or ``<stem>.json``)."""
    openpose = pathlib.Path(openpose)
    if not openpose.is_dir():
        return openpose
    for candidate in (f"{image.stem}_keypoints.json", f"{image.stem}.json"):
        if (openpose / candidate).is_file():
            return openpose / candidate
    raise DemoError(
        f"no OpenPose file for {image.name} in {openpose} (looked for {image.stem}_keypoints.json "
        f"and {image.stem}.json)."
    )


def find_box(image_size, path, bbox=None, openpose=None) -> Box:
    """The crop box of the image at `path`: from `bbox`, else from `openpose` (a file, or
    a folder holding the image's), else the whole image."""
    if bbox is not None:
        return box_from_bbox(bbox, image_size)
    if openpose is not None:
        return box_from_openpose(_openpose_file(openpose, pathlib.Path(path)), image_size)
    return box_from_image(image_size)
