"""Recover a body mesh from images with a trained run: crop, predict, render, write.

The library behind `hkmr-demo` / `python -m hkmr_jax.demo` (its command line:
`hkmr_jax.demo_cli`): `Predictor` restores a run; `crop_image` crops as SPIN's demo and
the training crops do; `render_views` draws the overlay and side view; `run_demo` writes
each image's .obj, .npz/.json and PNGs atomically. Outputs, cropping rules, errors and a
library example: docs/demo.md.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import sys
import uuid
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

#: File name endings read in folder mode (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: SPIN's demo: OpenPose keypoints with confidence above this count.
OPENPOSE_THRESHOLD = 0.2
#: SPIN's demo: the keypoints' box is enlarged this much.
OPENPOSE_RESCALE = 1.2
#: Turns the camera frame (x right, y down, z away) into a mesh viewer's (y up, z towards
#: the viewer): a 180° rotation about x.
CAMERA_TO_VIEWER = np.diag([1.0, -1.0, -1.0])

#: Largest `--render_size` (a 4096² picture is 50 MB as RGB, its float32 crop 200 MB).
MAX_RENDER_SIZE = 4096

PROG = "hkmr-demo"


class DemoError(ValueError):
    """A problem with the demo's inputs: the message names the thing and the fix."""


# ----------------------------------------------------------------------------- crops


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
    from hkmr_jax.data import spin_format

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
    """The crop box of OpenPose keypoints (SPIN's `bbox_from_openpose`; see the module
    docstring for the centre).

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
    from hkmr_jax.data import spin_format

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
    from PIL import Image

    from hkmr_jax.data import spin_format

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


# ----------------------------------------------------------------------------- the model


class Prediction(NamedTuple):
    """The model's final estimate for a batch, NumPy float32.

    Attributes:
      pose: [B, 24, 3] axis-angle (joint 0: global orientation, camera frame).
      betas: [B, NB].
      camera: [B, 3] (s, tx, ty), weak perspective in the crop's [-1, 1] coordinates.
      vertices: [B, V, 3] the mesh in the camera frame (x right, y down, z away), metres.
    """

    pose: np.ndarray
    betas: np.ndarray
    camera: np.ndarray
    vertices: np.ndarray


@jax.jit
def _mesh(body, betas, rotmat):
    """[B, NB], [B, 24, 3, 3] → vertices [B, V, 3] (a program of its own, so that another
    body does not recompile the regressor)."""
    return body(betas=betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1],
                pose2rot=False).vertices  # fmt: skip


def predict_images(model, body, crops) -> Prediction:
    """Run a model (eval mode) and the body on crops.

    Args:
      model: a `MeshRegressor`, e.g. from `inference.restore_model`.
      body: the `smpl_jax.SMPL` it was trained with (`bodies.load_body(config)[0]`).
      crops: uint8 [B, S, S, 3] at the model's `config.data.image_size`.

    Returns:
      `Prediction`. Compiled once per model structure and batch shape.
    """
    from flax import nnx

    from hkmr_jax import inference

    graphdef, variables = nnx.split(model)
    out = inference.predict_fn(graphdef)(variables, crops).final
    vertices = _mesh(body, out.betas, out.rotmat)
    return Prediction(*(np.asarray(x) for x in (out.pose, out.betas, out.camera, vertices)))


def load_run_config(workdir):
    """A run's config (an `ml_collections.ConfigDict`) from ``WORKDIR/config.json``
    (`hkmr_jax.inference.load_run_config`).

    Raises:
      cli.UserError: no such directory, or no readable config.json in it.
    """
    from hkmr_jax import inference

    return inference.load_run_config(workdir)


class Predictor:
    """A trained run, ready to predict: crops in, `Prediction` out, in batches.

    Attributes:
      config: the run's config.
      model: the restored model (eval mode).
      body: its `smpl_jax.SMPL`.
      faces: [F, 3] int32 of the body.
      step: the restored checkpoint's step.
      image_size: S, the crop size the model takes.
    """

    def __init__(self, config, model, body, step: int):
        self.config, self.model, self.body, self.step = config, model, body, int(step)
        self.faces = np.asarray(body.faces, np.int32)
        self.image_size = int(config.data.image_size)

    @classmethod
    def from_workdir(cls, workdir, step: int | None = None) -> Predictor:
        """Restore a run's latest (or `step`'s) checkpoint with its own config
        (`hkmr_jax.inference.restore`, the path eval.py takes too).

        Raises:
          cli.UserError: no run, no checkpoint (or no such step), or checkpoints that do
            not fit the config.
        """
        from hkmr_jax import inference

        run = inference.restore(workdir, step=step)
        return cls(run.config, run.model, run.body, run.step)

    def __call__(self, crops, batch_size: int = 8) -> Prediction:
        """uint8 crops [N, S, S, 3] → `Prediction` of N, `batch_size` at a time (the last
        batch padded, so that one program serves every batch)."""
        crops = np.asarray(crops, np.uint8)
        s = self.image_size
        if crops.ndim != 4 or crops.shape[1:] != (s, s, 3):
            raise ValueError(f"crops must be uint8 [N, {s}, {s}, 3], got {list(crops.shape)}.")
        n = len(crops)
        b = max(1, min(int(batch_size), n))
        parts = []
        for start in range(0, n, b):
            chunk = crops[start : start + b]
            padded = np.concatenate([chunk, np.zeros((b - len(chunk), s, s, 3), np.uint8)])
            pred = predict_images(self.model, self.body, padded)
            parts.append([x[: len(chunk)] for x in pred])
        return Prediction(*(np.concatenate(xs) for xs in zip(*parts, strict=True)))


# ----------------------------------------------------------------------------- pictures


def render_views(image, vertices, faces, camera, supersample: int = 2):
    """The mesh over the crop, and a side view.

    Args:
      image: uint8 [R, R, 3], the crop (any resolution: the camera is in [-1, 1] units).
      vertices: [V, 3] camera frame (x right, y down, z away), metres.
      faces: [F, 3] int.
      camera: [3] (s, tx, ty).
      supersample: anti-aliasing factor of `render.render_mesh`.

    Returns:
      (overlay, side): uint8 [R, R, 3] each. The side view turns the mesh 90° about the
      vertical axis through the middle of its bounding box, on white, with the same
      scale and vertical placement as the overlay.

    Raises:
      DemoError: a non-finite or zero camera scale, or non-finite vertices.
    """
    from hkmr_jax import render

    s, tx, ty = (float(c) for c in camera)
    vertices = np.asarray(vertices, np.float64)
    if not (np.isfinite([s, tx, ty]).all() and s != 0 and np.isfinite(vertices).all()):
        raise DemoError(
            f"the model predicted a degenerate camera {[s, tx, ty]} or non-finite vertices; "
            "is the checkpoint trained?"
        )
    size = image.shape[:2]
    overlay = render.render_mesh(vertices, faces, render.Camera.weak_perspective(s, tx, ty),
                                 size, background=image, supersample=supersample)  # fmt: skip
    # R·(X − c) + c with R a quarter turn about y: the turn adds s·(c − R·c) to the shift.
    turn = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    shift = s * (centre - turn @ centre)
    side_cam = render.Camera.weak_perspective(s, tx + shift[0], ty + shift[1], rotation=turn)
    side = render.render_mesh(vertices, faces, side_cam, size, supersample=supersample)
    return overlay, side


# ----------------------------------------------------------------------------- outputs


def output_names(name: str) -> dict[str, str]:
    """Output kind → file name for an image called `name`."""
    return {"obj": f"{name}.obj", "npz": f"{name}.npz", "json": f"{name}.json",
            "overlay": f"{name}_overlay.png", "side": f"{name}_side.png"}  # fmt: skip


def encode_outputs(name, vertices, faces, pose, betas, camera, box: Box, overlay, side,
                   info=None) -> dict[str, bytes]:  # fmt: skip
    """Every output file of one image, as file name → bytes (docs/demo.md).

    Args:
      name: the image's output name (file stem).
      vertices: [V, 3] camera frame; the .obj holds them turned upright (CAMERA_TO_VIEWER).
      faces: [F, 3].
      pose, betas, camera: [24, 3], [NB], [3].
      box: the crop box.
      overlay, side: uint8 images.
      info: extra JSON fields (image path, checkpoint step).
    """
    import imageio.v3 as iio
    import trimesh

    names = output_names(name)
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64) @ CAMERA_TO_VIEWER.T,
                           np.asarray(faces), process=False)  # fmt: skip
    obj = mesh.export(file_type="obj", include_normals=False, header=f"{PROG}: {name}")
    params = {
        "pose": np.asarray(pose, np.float32).reshape(24, 3),
        "betas": np.asarray(betas, np.float32).reshape(-1),
        "camera": np.asarray(camera, np.float32).reshape(3),
        "box": box.xywh,
    }
    npz = io.BytesIO()
    np.savez(npz, **params)
    # float32 → Python float is exact and JSON keeps every digit: reading the JSON back
    # as float32 gives the .npz's values bit for bit.
    record = {**(info or {}), **{k: v.astype(np.float64).tolist() for k, v in params.items()}}
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items())
    png = lambda image: iio.imwrite("<bytes>", np.asarray(image, np.uint8), extension=".png")
    return {
        names["obj"]: obj.encode(),
        names["npz"]: npz.getvalue(),
        names["json"]: (text + "\n}\n").encode(),
        names["overlay"]: png(overlay),
        names["side"]: png(side),
    }


def write_all(out_dir, files: dict[str, bytes]) -> list[pathlib.Path]:
    """Write files into `out_dir` all or nothing: each to a temporary name there, then
    renamed into place; on any failure the temporaries and the files already renamed
    are removed."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    temps = {out_dir / f".{n}.{tag}.tmp": out_dir / n for n in files}
    done: list[pathlib.Path] = []
    try:
        for (tmp, _), data in zip(temps.items(), files.values(), strict=True):
            tmp.write_bytes(data)
        for tmp, final in temps.items():
            os.replace(tmp, final)
            done.append(final)
    except BaseException:
        for path in [*temps, *done]:
            path.unlink(missing_ok=True)
        raise
    return done


# ----------------------------------------------------------------------------- the run


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


def output_stems(images: Sequence[pathlib.Path]) -> list[str]:
    """Each image's output name (`NAME` in docs/demo.md), distinct by construction.

    An image is named by its stem (``ok.png`` → ``ok``) when no other image has that stem
    and no image's file name equals it; otherwise by its whole file name (``ok.png``).
    Proof of distinctness: two stem-named images have different stems (each stem is
    unique); two file-named images have different file names (one folder); a stem-named
    image's stem equals no image's file name (the rule). Comparisons ignore case, so this
    holds on case-insensitive file systems too; and each output kind has its own ending
    (``.obj``, ``_overlay.png``, ...), none a suffix of another, so distinct names give
    distinct files.
    """
    stems = [p.stem.casefold() for p in images]
    names = {p.name.casefold() for p in images}
    return [
        p.stem if stems.count(p.stem.casefold()) == 1 and p.stem.casefold() not in names
        else p.name
        for p in images
    ]  # fmt: skip


def run_demo(predictor: Predictor, images, out_dir, *, bbox=None, openpose=None,
             batch_size: int = 8, render_size: int = 224,
             progress: bool | None = None):  # fmt: skip
    """Crop, predict, render and write every image (docs/demo.md).

    Args:
      predictor: a `Predictor`.
      images: image paths.
      out_dir: output folder (created when the first image's files are written).
      bbox: (x, y, w, h) for every image, or None.
      openpose: an OpenPose JSON, or a folder of them (``<stem>_keypoints.json``), or None.
      batch_size: images per forward pass.
      render_size: side of the PNGs, pixels.
      progress: show a tqdm bar (None: when there is more than one image).

    Returns:
      (written: {image: [paths]}, failed: {image: error message}).
    """
    import tqdm

    images = [pathlib.Path(p) for p in images]
    names = dict(zip(images, output_stems(images), strict=True))
    written: dict[pathlib.Path, list[pathlib.Path]] = {}
    failed: dict[pathlib.Path, str] = {}
    show = len(images) > 1 if progress is None else progress
    bar = tqdm.tqdm(total=len(images), unit="image", disable=not show, dynamic_ncols=True)
    try:
        for start in range(0, len(images), batch_size):
            ready = []  # (path, box, model crop, picture crop)
            for path in images[start : start + batch_size]:
                try:
                    image = read_image(path)
                    box = find_box(image.shape[:2], path, bbox, openpose)
                    ready.append((path, box, crop_image(image, box, predictor.image_size),
                                  crop_image(image, box, render_size)))  # fmt: skip
                except DemoError as e:
                    failed[path] = _naming(path, e)
                    bar.update(1)
            if not ready:
                continue
            pred = predictor(np.stack([r[2] for r in ready]), batch_size)
            for i, (path, box, _, picture) in enumerate(ready):
                try:
                    overlay, side = render_views(picture, pred.vertices[i], predictor.faces,
                                                 pred.camera[i])  # fmt: skip
                    info = {"image": str(path), "checkpoint_step": predictor.step}
                    files = encode_outputs(names[path], pred.vertices[i], predictor.faces,
                                           pred.pose[i], pred.betas[i], pred.camera[i], box,
                                           overlay, side, info)  # fmt: skip
                    written[path] = write_all(out_dir, files)
                except (DemoError, OSError) as e:
                    failed[path] = _naming(path, e)
                bar.update(1)
    finally:
        bar.close()
    return written, failed


def _naming(path, error) -> str:
    """The error's message, prefixed with the image unless it names it already."""
    return str(error) if str(path) in str(error) else f"{path}: {error}"


if __name__ == "__main__":  # `python -m hkmr_jax.demo`: the command line
    from hkmr_jax import demo_cli

    sys.exit(demo_cli.main())
