"""Reading a built SPIN-format split, without TensorFlow.

`load_split` gives random access to the stored records; `to_example` turns a record into
the example format of docs/CONTRACT_data.md (what the input pipeline and the evaluators
read).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping

import numpy as np

from hkmr_jax.data.spin_format.builder import TFDS_NAME, SpinFormat, is_built
from hkmr_jax.data.spin_format.sources import check_splits
from smpl_jax import skeleton

_PELVIS = skeleton.J24_NAMES.index("pelvis")


def _segmentation_example(record) -> dict:
    """Example keys of a record with masks: seg_mask / seg_parts uint8 [H, W] in the
    original image, and the crop box (center [2], scale [], orig_shape [2])."""
    return {
        "seg_mask": np.asarray(record["seg_mask"], np.uint8).reshape(record["seg_mask"].shape[:2]),
        "seg_parts": np.asarray(record["seg_parts"], np.uint8).reshape(
            record["seg_parts"].shape[:2]
        ),
        "center": np.asarray(record["center"], np.float32).reshape(2),
        "scale": np.asarray(record["scale"], np.float32).reshape(()),
        "orig_shape": np.asarray(record["orig_shape"], np.int32).reshape(2),
    }


def load_split(name: str, split: str, data_dir):
    """Random-access source over a built split: `len(src)`, `src[i]` → stored record.

    Works without TensorFlow (array_record, images decoded with PIL or OpenCV).

    Args:
      name: a key of `DATASETS`.
      split: one of its splits, e.g. 'valid_p1'.
      data_dir: the TFDS data directory given to `build`.

    Raises:
      ValueError: unknown name or split.
      FileNotFoundError: the dataset or split was not built in `data_dir`.
    """
    check_splits(name, [split])
    builder = SpinFormat(config=name, data_dir=os.fspath(pathlib.Path(data_dir).expanduser()))
    hint = (
        f"Build it with: python -m hkmr_jax.data.build --dataset {name} --splits {split} "
        f"--manual_dir <SPIN data folder> --data_dir {data_dir}"
    )
    if not is_built(builder):
        raise FileNotFoundError(f"{TFDS_NAME}/{name} is not built in {data_dir}. {hint}")
    if split not in builder.info.splits:
        raise FileNotFoundError(
            f"{TFDS_NAME}/{name} in {data_dir} was built without split {split!r} (it has "
            f"{', '.join(builder.info.splits)}). Delete {builder.data_dir} and rebuild "
            f"with every split you need. {hint}"
        )
    return builder.as_data_source(split)


def to_example(record: Mapping[str, np.ndarray], dataset_id: int) -> dict[str, np.ndarray]:
    """A stored record → the example format of `docs/CONTRACT_data.md`.

    `joints_3d` is `S` centred on the pelvis (J24 slot 14) when the pelvis is labelled
    (SPIN's files are already root-centred, so this changes nothing there), with
    unlabelled joints zeroed; `has_3d` is 1 when any joint is labelled. Records with
    `visible` (mpii) keep it: the `invisible` evaluator reads it (-1, unknown, makes it
    raise).

    Args:
      record: a record from `load_split(...)[i]` (or `make_record` with a decoded image).
      dataset_id: index into the pipeline's dataset-name table.

    Returns:
      dict of numpy arrays: image uint8 [224, 224, 3], keypoints [24, 3], joints_3d
      [24, 4], pose [72], betas [10], has_smpl [], has_3d [], dataset_id int32 [],
      example_id int64 [], and visible float32 [24] when the record has it; records with
      masks (`has_seg` = 1: LSP's test split) add seg_mask, seg_parts uint8 [H, W] (the
      original image's size), center float32 [2], scale float32 [] and orig_shape
      int32 [2], which the `lsp_seg` evaluator needs.
    """
    joints = np.array(record["S"], np.float32).reshape(24, 4)
    labelled = joints[:, 3] > 0
    if labelled[_PELVIS]:
        joints[:, :3] -= joints[_PELVIS, :3]
    joints[~labelled] = 0.0
    extra = {}
    if "visible" in record:
        extra["visible"] = np.asarray(record["visible"], np.float32).reshape(24)
    if float(record.get("has_seg", 0.0)) > 0:
        extra.update(_segmentation_example(record))
    return {
        "image": np.asarray(record["image"], np.uint8),
        "keypoints": np.asarray(record["keypoints"], np.float32).reshape(24, 3),
        "joints_3d": joints,
        "pose": np.asarray(record["pose"], np.float32).reshape(72),
        "betas": np.asarray(record["shape"], np.float32).reshape(10),
        "has_smpl": np.asarray(record["has_smpl"], np.float32).reshape(()),
        "has_3d": np.asarray(labelled.any(), np.float32),
        "dataset_id": np.asarray(dataset_id, np.int32),
        "example_id": np.asarray(record["example_id"], np.int64),
        **extra,
    }
