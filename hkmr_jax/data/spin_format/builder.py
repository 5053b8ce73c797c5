"""The TFDS builder `spin_format`: SPIN's files → 224 × 224 crops and labels, as array_record.

One config per dataset, one split per npz file, no TensorFlow; `build` checks every
input before anything is written. Stored records: docs/spin_format.md.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import logging
import os
import pathlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import ClassVar

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds
import tqdm

from hkmr_jax.data import mpii_visibility
from hkmr_jax.data.spin_format.crop import (
    IMG_RES,
    check_box,
    crop_image,
    normalize_keypoints,
    open_image,
    read_image,
    read_label_png,
)
from hkmr_jax.data.spin_format.sources import (
    DATASETS,
    check_images,
    check_splits,
    expected_layout,
    find_npz,
    image_path,
    read_npz,
    segmentation_names,
)


def _quiet_opencv_notice(record) -> bool:
    """A logging filter: TFDS warns "OpenCV is not installed" when it decodes a JPEG with
    Pillow, which is this project's default (OpenCV is the optional extra `[opencv]`,
    used by TFDS when installed); the notice is dropped."""
    return not str(record.msg).startswith("OpenCV is not installed")


if _quiet_opencv_notice not in logging.getLogger("absl").filters:
    logging.getLogger("absl").addFilter(_quiet_opencv_notice)

#: Side of the stored crops, pixels (SPIN's `constants.IMG_RES`).
JPEG_QUALITY = 95
#: The TFDS dataset name; each entry of `DATASETS` is one of its configs.
TFDS_NAME = "spin_format"
#: Folder of `manual_dir` that holds SPIN's npz files.


#: Datasets whose records carry `visible` [24], and the version of their config (its
#: feature set differs from the others').
VISIBILITY_DATASETS: dict[str, str] = {"mpii": "1.1.0"}
#: `visible` of a dataset built without the annotation file that gives it.
UNKNOWN_VISIBILITY = -1.0
#: Datasets whose records carry the true silhouette and part map of the person (UP-3D's
#: annotations of LSP's test images, named by the npz's `maskname` / `partname`), and
#: the version of their config.
SEGMENTATION_DATASETS: dict[str, str] = {"lsp": "1.1.0"}


def _encode_png(labels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(np.asarray(labels, np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _segmentation_features(shape, segmentation) -> dict:
    """The stored segmentation features of a row (1 × 1 zeros, has_seg 0, without)."""
    if segmentation is None:
        empty = _encode_png(np.zeros((1, 1), np.uint8))
        masks, has_seg = (empty, empty), 0.0
    else:
        masks, has_seg = tuple(_encode_png(m) for m in segmentation), 1.0
    return {
        "orig_shape": np.asarray(shape, np.int32),
        "has_seg": np.float32(has_seg),
        "seg_mask": masks[0],
        "seg_parts": masks[1],
    }


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """uint8 [H, W, 3] → JPEG bytes (4:4:4, so thin coloured edges survive)."""
    buf = io.BytesIO()
    PIL.Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def make_record(
    records: Mapping[str, np.ndarray], i: int, image: np.ndarray, *, segmentation=None
) -> dict:
    """The stored record of row `i` of a `read_npz` result, given its source image
    (with `visible` when `records` has it, and the segmentation features when `records`
    has `mask_paths`: `segmentation` is then (mask, parts) uint8 [H, W], or None)."""
    center, scale = records["center"][i], records["scale"][i]
    crop = np.clip(np.rint(crop_image(image, center, scale)), 0, 255).astype(np.uint8)
    extra = {"visible": records["visible"][i]} if "visible" in records else {}
    if "mask_paths" in records:
        extra.update(_segmentation_features(image.shape[:2], segmentation))
    return {
        "image": encode_jpeg(crop),
        "keypoints": normalize_keypoints(records["part"][i], center, scale),
        "openpose": normalize_keypoints(records["openpose"][i], center, scale),
        "S": records["S"][i],
        "pose": records["pose"][i],
        "shape": records["shape"][i],
        "has_smpl": records["has_smpl"][i],
        "imgname": records["imgname"][i],
        "center": center,
        "scale": scale,
        "gender": records["gender"][i],
        "example_id": i,
        **extra,
    }


def _ordered_map(fn: Callable, items: Iterable, num_workers: int) -> Iterator:
    """`map(fn, items)` on a thread pool, in order, with a bounded look-ahead.

    Threads suffice: PIL's decoding and encoding and NumPy's array arithmetic release
    the GIL for most of the time they take.
    """
    if num_workers <= 1:
        yield from map(fn, items)
        return
    pool = concurrent.futures.ThreadPoolExecutor(num_workers)
    pending = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 4 * num_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _manual_instructions() -> str:
    return (
        "Download SPIN's preprocessed files (its data/dataset_extras folder) and the "
        "datasets' images, then pass their parent folder as manual_dir.\n" + expected_layout()
    )


def _features(name: str) -> tfds.features.FeaturesDict:
    f32 = np.float32
    extra = {}
    if name in VISIBILITY_DATASETS:
        extra["visible"] = tfds.features.Tensor(shape=(24,), dtype=f32)
    if name in SEGMENTATION_DATASETS:
        # The original image's size; masks in it, as single-channel PNGs (1 × 1 zeros and
        # has_seg = 0 for rows without masks, e.g. the training split).
        png = {"shape": (None, None, 1), "encoding_format": "png"}
        extra.update(
            orig_shape=tfds.features.Tensor(shape=(2,), dtype=np.int32),
            has_seg=tfds.features.Scalar(dtype=f32),
            seg_mask=tfds.features.Image(**png),
            seg_parts=tfds.features.Image(**png),
        )
    return tfds.features.FeaturesDict(
        {
            # Encoded here with PIL (TFDS would need TensorFlow to encode arrays itself);
            # decoding on read uses PIL or OpenCV, no TensorFlow.
            "image": tfds.features.Image(shape=(IMG_RES, IMG_RES, 3), encoding_format="jpeg"),
            "keypoints": tfds.features.Tensor(shape=(24, 3), dtype=f32),
            "openpose": tfds.features.Tensor(shape=(25, 3), dtype=f32),
            "S": tfds.features.Tensor(shape=(24, 4), dtype=f32),
            "pose": tfds.features.Tensor(shape=(72,), dtype=f32),
            "shape": tfds.features.Tensor(shape=(10,), dtype=f32),
            "has_smpl": tfds.features.Scalar(dtype=f32),
            "imgname": tfds.features.Text(),
            "center": tfds.features.Tensor(shape=(2,), dtype=f32),
            "scale": tfds.features.Scalar(dtype=f32),
            "gender": tfds.features.Text(),
            "example_id": tfds.features.Scalar(dtype=np.int64),
            **extra,
        }
    )


class SpinFormat(tfds.core.GeneratorBasedBuilder):
    """SPIN-format person crops; one config per entry of `DATASETS`.

    Args (beyond TFDS's `data_dir`, `config`, `version`):
      splits: the splits to build (default: all of the config's); the others' files
        need not exist. Adding a split later means deleting the built version folder
        and building again.
      num_workers: threads that decode, crop and encode images (≤ 1: none).
      progress: show a progress bar per split.
      mpii_annotations: MPII's `mpii_human_pose_v1_u12_1.mat`, for the `mpii` config's
        `visible` (without it: -1, unknown).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "224 × 224 JPEG crops, keypoints normalised to [-1, 1].",
        "1.1.0": "mpii: adds `visible` [24], MPII's visibility flags; lsp: adds the true "
        "silhouette and part map (`seg_mask`, `seg_parts`, `has_seg`) and `orig_shape`.",
    }
    BUILDER_CONFIGS: ClassVar[list[tfds.core.BuilderConfig]] = [
        tfds.core.BuilderConfig(
            name=n,
            description=f"{n}: splits {', '.join(t)}",
            version=VISIBILITY_DATASETS.get(n) or SEGMENTATION_DATASETS.get(n),
        )
        for n, t in DATASETS.items()
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = _manual_instructions()

    def __init__(
        self,
        *,
        splits: Sequence[str] | None = None,
        num_workers: int = 0,
        progress: bool = False,
        mpii_annotations=None,
        **kwargs,
    ):
        self._splits = splits
        self._num_workers = num_workers
        self._progress = progress
        self._mpii_annotations = mpii_annotations
        self._mpii_people = None  # read once, on first use, for all splits
        self._records: dict[str, tuple[pathlib.Path, dict]] = {}
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # Built directly: TFDS's `dataset_info_from_configs` looks for metadata files
        # beside the builder's module and fails outside a dataset package.
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Person crops and labels from SPIN's preprocessed dataset files "
                "(Kolotouros et al., ICCV 2019), cropped as SPIN does."
            ),
            features=_features(self.builder_config.name),
            homepage="https://github.com/nkolot/SPIN",
            # Rows keep the npz's order: source[i] is row i, as evaluation expects.
            disable_shuffling=True,
        )

    def load_sources(self, manual_dir) -> dict[str, tuple[pathlib.Path, dict]]:
        """Read and check every requested split's npz and image list before writing.

        Returns:
          split → (npz path, `read_npz` result); cached on the builder.

        Raises:
          FileNotFoundError: `manual_dir`, an npz file, images or the MPII annotation
            file are missing (named).
          ValueError: an npz is corrupt or malformed, or (mpii) a row does not match
            MPII's annotations (named).
        """
        name = self.builder_config.name
        manual_dir = pathlib.Path(manual_dir).expanduser()
        if not manual_dir.is_dir():
            raise FileNotFoundError(
                f"manual_dir {manual_dir} does not exist.\n{expected_layout(name)}"
            )
        for split in check_splits(name, self._splits):
            if split in self._records:
                continue
            path = find_npz(name, split, manual_dir)
            records = read_npz(path)
            check_images(records, manual_dir / DATASETS[name][split].image_root, path)
            if name in SEGMENTATION_DATASETS:
                segmentation_names(records, DATASETS[name][split], manual_dir, path)
            if name in VISIBILITY_DATASETS:
                records["visible"] = self._visibility(records, path)
            self._records[split] = (path, records)
        return self._records

    def _visibility(self, records, npz_path) -> np.ndarray:
        """`visible` [N, 24] of an MPII split: from the annotation file, else unknown."""
        if self._mpii_annotations is None:
            return np.full((len(records["imgname"]), 24), UNKNOWN_VISIBILITY, np.float32)
        if self._mpii_people is None:
            self._mpii_people = mpii_visibility.read_annotations(self._mpii_annotations)
        source = f"{npz_path} (matched against {self._mpii_annotations})"
        return mpii_visibility.spin_visibility(records, self._mpii_people, source=source)

    # TFDS announces a download ("Downloading and preparing dataset Unknown size ...") and
    # "downloaded and prepared": this builder reads local files only, so say that instead.
    def _log_download_bytes(self) -> None:
        print(f"Building {self.name}/{self.builder_config.name} from local files into "
              f"{self.data_dir} ...", flush=True)  # fmt: skip

    def _log_download_done(self) -> None:
        print(f"Built {self.name}/{self.builder_config.name} in {self.data_dir}.", flush=True)

    def _split_generators(self, dl_manager):
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as e:  # TFDS's way of saying manual_dir does not exist
            raise FileNotFoundError(f"{e}\n{expected_layout(self.builder_config.name)}") from None
        manual_dir = pathlib.Path(os.fspath(manual_dir))
        sources = self.load_sources(manual_dir)
        name = self.builder_config.name
        return {
            split: self._generate_examples(
                split, records, manual_dir / DATASETS[name][split].image_root, path
            )
            for split, (path, records) in sources.items()
        }

    def _generate_examples(self, split, records, image_dir, npz_path):
        def one(i):
            try:
                path = image_path(image_dir, records["imgname"][i], row=i, npz_path=npz_path)
                with open_image(path) as im:  # the box is checked before decoding
                    box_size = (im.height, im.width)
            except ValueError as e:
                raise ValueError(f"{e} (row {i} of {npz_path})") from e
            try:
                check_box(records["center"][i], records["scale"][i], box_size)
            except ValueError as e:
                raise ValueError(f"{npz_path}: row {i} (image {path}): {e}") from e
            try:
                image = read_image(path)
                segmentation = None
                if records.get("mask_paths") is not None and records["mask_paths"][i]:
                    segmentation = tuple(
                        read_label_png(p, image.shape[:2], path) for p in records["mask_paths"][i]
                    )
                return i, make_record(records, i, image, segmentation=segmentation)
            except ValueError as e:
                raise ValueError(f"{e} (row {i} of {npz_path})") from e

        n = len(records["imgname"])
        rows = _ordered_map(one, range(n), self._num_workers)
        desc = f"{self.builder_config.name}/{split}"
        yield from tqdm.tqdm(rows, total=n, desc=desc, unit=" crops", disable=not self._progress)


def is_built(builder: tfds.core.DatasetBuilder) -> bool:
    # `is_prepared` alone logs a warning whenever the version folder does not exist yet.
    return builder.data_path.exists() and builder.is_prepared()


def build(
    name: str,
    manual_dir,
    data_dir,
    *,
    splits: Sequence[str] | None = None,
    num_workers: int | None = None,
    progress: bool = False,
    mpii_annotations=None,
) -> SpinFormat:
    """Build `spin_format/<name>` into `data_dir` (array_record files).

    Everything is checked before anything is written: an unknown name or split, a
    missing `manual_dir`, npz or image, and a corrupt npz raise here. A corrupt image
    fails mid-build; TFDS then deletes its temporary folder, so nothing reads as built
    (a killed process leaves an `incomplete.*` folder that readers ignore).

    Args:
      name: a key of `DATASETS`.
      manual_dir: folder laid out as `expected_layout(name)` says.
      data_dir: TFDS data directory; the result goes to
        `data_dir/spin_format/<name>/<version>/` (1.1.0 for mpii, 1.0.0 for the others).
      splits: subset of the dataset's splits to build (default: all).
      num_workers: image threads (default: the number of CPUs).
      progress: show progress bars.
      mpii_annotations: `mpii` only: MPII's `mpii_human_pose_v1_u12_1.mat`, whose
        visibility flags become the records' `visible` (without it, -1: unknown).

    Returns:
      The builder (`.as_data_source(split)` reads it). A version already built is
      reused as it is.

    Raises:
      FileExistsError: the version is built, but without a requested split, or without
        the visibility flags that `mpii_annotations` asks for.
    """
    splits = check_splits(name, splits)
    if mpii_annotations is not None and name not in VISIBILITY_DATASETS:
        raise ValueError(
            f"mpii_annotations (MPII's visibility flags) applies to dataset 'mpii' only, "
            f"not {name!r}."
        )
    builder = SpinFormat(
        config=name,
        data_dir=os.fspath(pathlib.Path(data_dir).expanduser()),
        splits=splits,
        num_workers=(os.cpu_count() or 1) if num_workers is None else num_workers,
        progress=progress,
        mpii_annotations=mpii_annotations,
    )
    if is_built(builder):
        absent = [s for s in splits if s not in builder.info.splits]
        if absent:
            raise FileExistsError(
                f"{builder.data_dir} is already built without split(s) {absent}; TFDS "
                "cannot add splits to a built version. Delete that folder and build again "
                "with every split you need."
            )
        if mpii_annotations is not None:
            unknown = [s for s in splits if _visibility_unknown(builder, s)]
            if unknown:
                raise FileExistsError(
                    f"{builder.data_dir} is already built without MPII's visibility flags "
                    f"(split(s) {unknown}); delete that folder and build again with "
                    "mpii_annotations."
                )
        return builder
    manual_dir = pathlib.Path(manual_dir).expanduser()
    builder.load_sources(manual_dir)
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)),
    )
    return builder


def _visibility_unknown(builder: SpinFormat, split: str) -> bool:
    source = builder.as_data_source(split)
    return len(source) > 0 and bool(np.all(source[0]["visible"] == UNKNOWN_VISIBILITY))
