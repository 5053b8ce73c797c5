"""The demo's run over images (`run_demo`): crop, predict in batches, render, and write
each image's files all or nothing (`smpl_jax.atomic_files.write_files`). An image that
fails is reported by name and the others still run (docs/demo.md).
"""

from __future__ import annotations

import pathlib

import numpy as np
import tqdm

from hkmr_jax.demo.inputs import DemoError, crop_image, find_box, read_image
from hkmr_jax.demo.outputs import encode_outputs, output_stems, render_views
from hkmr_jax.demo.predict import Predictor
from smpl_jax import atomic_files


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
                    written[path] = atomic_files.write_files(out_dir, files)
                except (DemoError, OSError) as e:
                    failed[path] = _naming(path, e)
                bar.update(1)
    finally:
        bar.close()
    return written, failed


def _naming(path, error) -> str:
    """The error's message, prefixed with the image unless it names it already."""
    return str(error) if str(path) in str(error) else f"{path}: {error}"
