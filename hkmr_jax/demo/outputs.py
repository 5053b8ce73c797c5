"""What the demo writes for an image: the overlay and side-view pictures (`render_views`),
and every output file as bytes (`encode_outputs`: .obj, .npz, .json, PNGs) under
distinct names (`output_stems`). Formats: docs/demo.md.
"""

from __future__ import annotations

import io
import json
import pathlib
from collections.abc import Sequence

import imageio.v3 as iio
import numpy as np

from hkmr_jax import render
from hkmr_jax.demo.inputs import Box, DemoError

#: Turns the camera frame (x right, y down, z away) into a mesh viewer's (y up, z towards
#: the viewer): a 180° rotation about x.
CAMERA_TO_VIEWER = np.diag([1.0, -1.0, -1.0])

#: Largest `--render_size` (a 4096² picture is 50 MB as RGB, its float32 crop 200 MB).
MAX_RENDER_SIZE = 4096

#: The command's name, in its messages and in the .obj header.
PROG = "hkmr-demo"


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
    import trimesh  # lazily: ~0.5 s to import, needed only when writing meshes

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
