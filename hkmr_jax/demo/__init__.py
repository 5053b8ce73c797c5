"""Recover a body mesh from images with a trained run: crop, predict, render, write.

The library behind `hkmr-demo` / `python -m hkmr_jax.demo` (its command line:
`hkmr_jax.demo_cli`): `inputs` reads images and crops them as SPIN's demo and the
training crops do; `predict` restores a run (`Predictor`); `outputs` draws the overlay
and side view and encodes each image's .obj, .npz/.json and PNGs; `run` (`run_demo`)
does it all, writing each image's files all or nothing. Outputs, cropping rules, errors
and a library example: docs/demo.md.
"""

from hkmr_jax.demo.inputs import (
    IMAGE_SUFFIXES,
    OPENPOSE_RESCALE,
    OPENPOSE_THRESHOLD,
    Box,
    DemoError,
    box_from_bbox,
    box_from_image,
    box_from_openpose,
    crop_image,
    find_box,
    list_images,
    read_image,
    read_openpose,
)
from hkmr_jax.demo.outputs import (
    CAMERA_TO_VIEWER,
    MAX_RENDER_SIZE,
    PROG,
    encode_outputs,
    output_names,
    output_stems,
    render_views,
)
from hkmr_jax.demo.predict import Prediction, Predictor, load_run_config, predict_images
from hkmr_jax.demo.run import run_demo

__all__ = [
    "CAMERA_TO_VIEWER",
    "IMAGE_SUFFIXES",
    "MAX_RENDER_SIZE",
    "OPENPOSE_RESCALE",
    "OPENPOSE_THRESHOLD",
    "PROG",
    "Box",
    "DemoError",
    "Prediction",
    "Predictor",
    "box_from_bbox",
    "box_from_image",
    "box_from_openpose",
    "crop_image",
    "encode_outputs",
    "find_box",
    "list_images",
    "load_run_config",
    "output_names",
    "output_stems",
    "predict_images",
    "read_image",
    "read_openpose",
    "render_views",
    "run_demo",
]
