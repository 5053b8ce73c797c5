"""SPIN-format datasets as TFDS builders writing array_record (no TensorFlow needed).

SPIN's preprocessing (`dataset_extras/*.npz`, described in `shared/FORMATS.md`) lists,
for every person, an image path, a box (`center`, `scale`) and its labels. One builder,
`spin_format`, turns such a file and its image folder into 224 × 224 person crops with
their labels, one TFDS *config* per dataset (`spin_format/h36m`, `spin_format/lsp`, ...)
and one TFDS split per file. The table `DATASETS` is the single place that names the
files::

    python -m hkmr_jax.data.build --dataset h36m --manual_dir ~/spin_data \\
        --data_dir ~/tensorflow_datasets --splits valid_p1,valid_p2

    source = load_split("h36m", "valid_p1", data_dir="~/tensorflow_datasets")
    example = to_example(source[0], dataset_id=0)    # the format of CONTRACT_data.md

Stored record (one per row of the npz, in the npz's order, so `source[i]` has
`example_id == i`):

| key | dtype, shape | meaning |
|---|---|---|
| `image` | uint8 [224, 224, 3] | the crop, stored as JPEG (quality 95) |
| `keypoints` | float32 [24, 3] | `part`: x, y in the crop's [-1, 1] coordinates, visibility |
| `openpose` | float32 [25, 3] | `openpose`, normalised the same way |
| `S` | float32 [24, 4] | 3D joints (metres) + confidence, as in the file |
| `pose`, `shape` | float32 [72], [10] | SMPL axis-angle and betas |
| `has_smpl` | float32 [] | |
| `imgname` | bytes | image path relative to the image root |
| `center`, `scale` | float32 [2], [] | the box, source pixels and side / 200 |
| `gender` | bytes | b'm', b'f' (3DPW) or b'' when the file has none |
| `example_id` | int64 [] | row in the npz |
| `visible` | float32 [24] | mpii only: 1 visible, 0 hidden or not annotated; -1 unknown |
| `orig_shape` | int32 [2] | lsp only: the source image's (H, W) |
| `has_seg` | float32 [] | lsp only: 1 when the row has UP-3D's masks (the test split) |
| `seg_mask`, `seg_parts` | uint8 [H, W, 1] PNG | lsp only: silhouette, parts 0-6 (255 ignore) |

LSP's test file lists each person's silhouette and six-part map (`maskname`,
`partname`: UP-3D's annotations, single-channel PNGs in the image's size) under
`manual_dir/upi-s1h/` (SPIN's `UPI_S1H_ROOT`); the build reads them, checks their size
against the image, and stores them for the `lsp_seg` evaluator (paper Table 5). The lsp
config is version 1.1.0 for these features.

MPII's visibility flags (paper Table 4 right, "MPII invisible joints") are not in SPIN's
file; `build("mpii", ..., mpii_annotations=".../mpii_human_pose_v1_u12_1.mat")` (CLI:
`--mpii_annotations`) matches every row to its person in MPII's own annotation file and
stores them (`hkmr_jax.data.mpii_visibility` documents the matching rule); built
without that file, `visible` is -1 (unknown). The mpii config is version 1.1.0 (the
others 1.0.0), as its records have this extra feature.

Keys a file lacks get SPIN's defaults (its `BaseDataset`): zeros for `part`,
`openpose`, `S`, `pose`, `shape`; `has_smpl` is 1 when the file has `pose` and `shape`
but no `has_smpl` (3DPW's test file), else 0.

Crop geometry. Pixel coordinates are continuous (x right, y down): source pixel
``[i, j]`` covers ``[j, j + 1) × [i, i + 1)``, as in `hkmr_jax.render`. The box is the
square of side ``h = 200 · scale`` centred on `center`; a point ``p`` maps to
``2 (p − center) / h`` ∈ [-1, 1] (the box centre to (0, 0), its right edge to x = +1),
which is both how keypoints are normalised and where crop pixel centres sample the
source. Resampling is bilinear (a triangle filter) and, when shrinking, widened to the
output pixel spacing as PIL's bilinear resize does (SPIN resizes with PIL's bilinear);
the image outside the source is black. SPIN rounds keypoints to whole crop pixels and
crops at whole source pixels; here both are exact, a difference of under a pixel.

Bounds (hostile or corrupt input ends in one ValueError naming the file and row, never
in a huge allocation): npz headers are checked before their arrays are read
(`smpl_jax.array_files`); every `imgname` must stay inside its image root after
resolving ``..`` and links (checked for all rows before building); an image may have at
most `MAX_IMAGE_PIXELS` pixels (read from its header, before decoding); a row's box must
be finite, overlap its image and be at most `MAX_BOX_FACTOR` × the image's larger side,
and a crop costs memory in proportion to the output and the image, not the box.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
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
from smpl_jax import array_files, skeleton


def _quiet_opencv_notice(record) -> bool:
    """A logging filter: TFDS warns "OpenCV is not installed" when it decodes a JPEG with
    Pillow, which is this project's default (OpenCV is the optional extra `[opencv]`,
    used by TFDS when installed); the notice is dropped."""
    return not str(record.msg).startswith("OpenCV is not installed")


if _quiet_opencv_notice not in logging.getLogger("absl").filters:
    logging.getLogger("absl").addFilter(_quiet_opencv_notice)

#: Side of the stored crops, pixels (SPIN's `constants.IMG_RES`).
IMG_RES = 224
#: JPEG quality of the stored crops (~15-25 kB per crop rather than 147 kB raw).
JPEG_QUALITY = 95
#: The TFDS dataset name; each entry of `DATASETS` is one of its configs.
TFDS_NAME = "spin_format"
#: Folder of `manual_dir` that holds SPIN's npz files.
EXTRAS_DIR = "dataset_extras"

_PELVIS = skeleton.J24_NAMES.index("pelvis")

#: Datasets whose records carry `visible` [24], and the version of their config (its
#: feature set differs from the others').
VISIBILITY_DATASETS: dict[str, str] = {"mpii": "1.1.0"}
#: `visible` of a dataset built without the annotation file that gives it.
UNKNOWN_VISIBILITY = -1.0
#: Datasets whose records carry the true silhouette and part map of the person (UP-3D's
#: annotations of LSP's test images, named by the npz's `maskname` / `partname`), and
#: the version of their config.
SEGMENTATION_DATASETS: dict[str, str] = {"lsp": "1.1.0"}


@dataclasses.dataclass(frozen=True)
class SplitSource:
    """Where one split comes from, relative to `manual_dir`.

    Attributes:
      npz_files: candidate file names in `dataset_extras/`; the first that exists is used.
      image_root: folder of `manual_dir` that the npz's `imgname` paths are relative to.
      example_imgname: a typical `imgname` of that file, for the instructions.
      mask_root: folder of `manual_dir` that the npz's `maskname` / `partname` paths
        are relative to (SPIN's `UPI_S1H_ROOT`), for files that list them.
    """

    npz_files: tuple[str, ...]
    image_root: str
    example_imgname: str
    mask_root: str | None = None


#: dataset → split → source. File names are SPIN's (`config.DATASET_FILES`; its
#: preprocessing scripts write `h36m_train.npz` and `mpi_inf_3dhp_test.npz` under names
#: that its released files and config spell differently, so both are accepted). Image
#: roots follow SPIN's `config.DATASET_FOLDERS` (LSP's training file indexes the
#: original, full-size LSP images, its test file the 'lsp_dataset' release).
DATASETS: dict[str, dict[str, SplitSource]] = {
    "h36m": {
        "train": SplitSource(
            ("h36m_single_train_openpose.npz", "h36m_train.npz"),
            "h36m",
            "images/S1_Directions_1.54138969_000001.jpg",
        ),
        "valid_p1": SplitSource(
            ("h36m_valid_protocol1.npz",), "h36m", "images/S9_Directions_1.54138969_000001.jpg"
        ),
        "valid_p2": SplitSource(
            ("h36m_valid_protocol2.npz",), "h36m", "images/S9_Directions_1.60457274_000001.jpg"
        ),
    },
    "mpii": {"train": SplitSource(("mpii_train.npz",), "mpii", "images/015601864.jpg")},
    "lsp": {
        "train": SplitSource(
            ("lsp_dataset_original_train.npz",), "lsp_dataset_original", "images/im0001.jpg"
        ),
        "test": SplitSource(
            ("lsp_dataset_test.npz",), "lsp_dataset", "images/im1001.jpg", mask_root="upi-s1h"
        ),
    },
    "lspet": {"train": SplitSource(("hr-lspet_train.npz",), "hr-lspet", "im00001.png")},
    "coco2014": {
        "train": SplitSource(
            ("coco_2014_train.npz",), "coco", "train2014/COCO_train2014_000000000036.jpg"
        )
    },
    "mpi_inf_3dhp": {
        "train": SplitSource(
            ("mpi_inf_3dhp_train.npz",),
            "mpi_inf_3dhp",
            "S1/Seq1/imageFrames/video_0/frame_000001.jpg",
        ),
        "test": SplitSource(
            ("mpi_inf_3dhp_valid.npz", "mpi_inf_3dhp_test.npz"),
            "mpi_inf_3dhp",
            "mpi_inf_3dhp_test_set/TS1/imageSequence/img_000001.jpg",
        ),
    },
    "3dpw": {
        "test": SplitSource(
            ("3dpw_test.npz",), "3DPW", "imageFiles/downtown_arguing_00/image_00000.jpg"
        )
    },
}

# Per-row arrays of a SPIN npz: shape after the leading N, and the default when absent
# (None: required).
_NPZ_KEYS: dict[str, tuple[tuple[int, ...], float | None]] = {
    "center": ((2,), None),
    "scale": ((), None),
    "part": ((24, 3), 0.0),
    "openpose": ((25, 3), 0.0),
    "S": ((24, 4), 0.0),
    "pose": ((72,), 0.0),
    "shape": ((10,), 0.0),
    "has_smpl": ((), 0.0),  # but 1 when `pose` and `shape` are present: see read_npz
}


def _layout_lines(name: str) -> list[str]:
    lines = []
    for split, src in DATASETS[name].items():
        files = " or ".join(f"{EXTRAS_DIR}/{f}" for f in src.npz_files)
        lines.append(f"  {name}/{split}: {files}")
        lines.append(f"      images: {src.image_root}/<imgname>, e.g. {src.image_root}/"
                     f"{src.example_imgname}")  # fmt: skip
        if src.mask_root:
            lines.append(f"      masks (if the npz lists them): {src.mask_root}/<maskname> "
                         f"and {src.mask_root}/<partname>, e.g. {src.mask_root}/data/lsp/"
                         "im1001_segmentation.png")  # fmt: skip
    return lines


def expected_layout(name: str | None = None) -> str:
    """The `manual_dir` layout, for one dataset or (None) all of them, as text."""
    names = list(DATASETS) if name is None else [name]
    lines = [
        "manual_dir must hold SPIN's npz files in dataset_extras/ and each dataset's "
        "images under its image root, at the relative path that the npz's `imgname` "
        "gives (image roots may be symlinks to where the datasets already are):",
    ]
    for n in names:
        lines.extend(_layout_lines(n))
    return "\n".join(lines)


def _check_name(name: str) -> dict[str, SplitSource]:
    if name not in DATASETS:
        raise ValueError(
            f"Unknown SPIN-format dataset {name!r}; valid names: {', '.join(DATASETS)}."
        )
    return DATASETS[name]


def _check_splits(name: str, splits: Iterable[str] | None) -> tuple[str, ...]:
    table = _check_name(name)
    if splits is None:
        return tuple(table)
    splits = tuple(splits)
    unknown = [s for s in splits if s not in table]
    if unknown or not splits:
        raise ValueError(
            f"Unknown split(s) {unknown} of SPIN-format dataset {name!r}; "
            f"valid splits: {', '.join(table)}."
        )
    return splits


def available_splits(name: str, manual_dir) -> tuple[list[str], dict[str, str]]:
    """The splits of `name` whose npz file is in `manual_dir`, and why the others are not.

    Returns:
      (present splits, {absent split: the npz path(s) looked for}), in `DATASETS` order.
    """
    extras = pathlib.Path(manual_dir).expanduser() / EXTRAS_DIR
    present, absent = [], {}
    for split, src in _check_name(name).items():
        if any((extras / f).is_file() for f in src.npz_files):
            present.append(split)
        else:
            absent[split] = " or ".join(str(extras / f) for f in src.npz_files)
    return present, absent


# ---------------------------------------------------------------------------------------
# Geometry: SPIN's crop and keypoint normalisation.


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


# ---------------------------------------------------------------------------------------
# Reading SPIN's files.


def find_npz(name: str, split: str, manual_dir) -> pathlib.Path:
    """The npz file of `name/split` in `manual_dir`.

    Raises:
      FileNotFoundError: naming every candidate path and the expected layout.
    """
    src = _check_name(name)[_check_splits(name, [split])[0]]
    extras = pathlib.Path(manual_dir).expanduser() / EXTRAS_DIR
    for f in src.npz_files:
        if (extras / f).is_file():
            return extras / f
    missing = " or ".join(str(extras / f) for f in src.npz_files)
    raise FileNotFoundError(
        f"SPIN-format {name}/{split}: missing {missing}.\n{expected_layout(name)}"
    )


def read_npz(path) -> dict[str, np.ndarray]:
    """Load and check one SPIN npz; absent optional keys get SPIN's defaults.

    Args:
      path: the `.npz` file.

    Returns:
      dict with `imgname` (str [N]), `gender` (str [N], '' when absent) and every key of
      the record table as float32 arrays [N, ...]. Absent keys get SPIN's defaults
      (`BaseDataset`): zeros, except `has_smpl`, which is 1 when the file has `pose`
      and `shape` (as 3DPW's test file has) and 0 otherwise.

    Raises:
      ValueError: naming the file when it is not a readable npz (truncated, corrupt,
        object or structured arrays, sizes its data does not hold: see
        `smpl_jax.array_files`), a required key (`imgname`, `center`, `scale`) is
        missing, a key has the wrong shape or dtype, or a scale is not positive and
        finite.
    """
    path = pathlib.Path(path)
    # Headers checked before any array is allocated; no pickle (SPIN's files hold plain
    # string and number arrays).
    raw = array_files.load_npz(path)
    for key in ("imgname", "center", "scale"):
        if key not in raw:
            raise ValueError(f"{path} has no {key!r} key (keys: {sorted(raw)}).")
    imgname = raw["imgname"]
    if imgname.ndim != 1 or imgname.dtype.kind not in "US":
        raise ValueError(f"{path}: 'imgname' must be a 1-D string array, got {imgname.dtype}.")
    n = len(imgname)
    if n == 0:
        raise ValueError(f"{path} lists no examples ('imgname' is empty).")
    out = {"imgname": np.array([_as_str(s) for s in imgname], dtype=object)}
    for key, (shape, default) in _NPZ_KEYS.items():
        if key == "has_smpl" and key not in raw and "pose" in raw and "shape" in raw:
            # SPIN's BaseDataset: a file with SMPL parameters but no `has_smpl` (3DPW's)
            # has usable parameters for every row.
            default = 1.0
        if key not in raw:
            out[key] = np.full((n, *shape), default, np.float32)
            continue
        value = raw[key]
        if value.dtype.kind not in "fiub" or value.shape != (n, *shape):
            raise ValueError(
                f"{path}: {key!r} must be a numeric array of shape {(n, *shape)} "
                f"(N = {n} from 'imgname'), got {value.dtype} {value.shape}."
            )
        out[key] = value.astype(np.float32)
    bad = np.flatnonzero(~(np.isfinite(out["scale"]) & (out["scale"] > 0)))
    bad_center = np.flatnonzero(~np.isfinite(out["center"]).all(axis=1))
    if len(bad) or len(bad_center):
        raise ValueError(
            f"{path}: rows {sorted({*bad.tolist(), *bad_center.tolist()})[:10]} have a "
            "non-finite centre or a scale that is not positive; the crop is undefined."
        )
    gender = raw.get("gender")
    if gender is not None and (gender.shape != (n,) or gender.dtype.kind not in "US"):
        raise ValueError(f"{path}: 'gender' must be a string array [{n}], got {gender.dtype}.")
    out["gender"] = np.array([_as_str(g) for g in gender] if gender is not None else [""] * n,
                             dtype=object)  # fmt: skip
    if ("maskname" in raw) != ("partname" in raw):
        raise ValueError(f"{path} has one of 'maskname' / 'partname' but not the other.")
    for key in ("maskname", "partname"):
        if key in raw:
            names = raw[key]
            if names.shape != (n,) or names.dtype.kind not in "US":
                raise ValueError(
                    f"{path}: {key!r} must be a string array [{n}], got {names.dtype} "
                    f"{names.shape}."
                )
            out[key] = np.array([_as_str(v) for v in names], dtype=object)
    return out


def _as_str(s) -> str:
    return s.decode() if isinstance(s, bytes) else str(s)


def _realpath(path: str, cache: dict[str, str]) -> str:
    """`os.path.realpath(path)`, resolving each parent folder once (`cache`): SPIN's
    files list ~10^5 images in a few folders."""
    parent, name = os.path.split(path)
    if name in ("", ".", ".."):
        return os.path.realpath(path)
    if parent not in cache:
        cache[parent] = os.path.realpath(parent)
    full = os.path.join(cache[parent], name)
    return os.path.realpath(full) if os.path.islink(full) else full


def image_path(image_dir, imgname: str, *, row: int, npz_path, cache=None) -> pathlib.Path:
    """`image_dir / imgname`, resolved, refused unless it stays inside `image_dir`.

    Both are resolved first (`..`, symbolic links), so an absolute `imgname`, one with
    ``..`` that climbs out, or a link inside the image root that points out of it are
    refused; the image root itself may be a link (resolved before comparing). `cache`:
    a dict shared by calls over one file, to resolve each folder once.

    Raises:
      ValueError: naming the row, the value and `npz_path`.
    """
    cache = {} if cache is None else cache
    root = _realpath(os.fspath(image_dir), cache)
    if "\0" in imgname:
        where = "holds a NUL character"
    else:
        resolved = pathlib.Path(_realpath(os.path.join(root, imgname), cache))
        if resolved.is_relative_to(root):
            return resolved
        where = f"leads to {resolved}, outside the image root {root}"
    raise ValueError(
        f"{npz_path}: row {row} imgname {imgname!r} {where}; every image must lie under "
        "its image root (a link to the whole root is fine). Fix the npz, or link the image "
        "folder itself as the image root."
    )


def check_images(records: Mapping[str, np.ndarray], image_dir, npz_path, limit: int = 10):
    """Check every `imgname` before reading: inside `image_dir` (see `image_path`),
    and present.

    Raises:
      ValueError: an `imgname` leaves `image_dir` (the first such row, named).
      FileNotFoundError: naming the first `limit` images that are missing.
    """
    image_dir = pathlib.Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(
            f"Image folder {image_dir} (for {npz_path}) does not exist: its images must be "
            f"at {image_dir}/<imgname>, e.g. {image_dir / records['imgname'][0]}."
        )
    cache = {}
    paths = [image_path(image_dir, n, row=i, npz_path=npz_path, cache=cache)
             for i, n in enumerate(records["imgname"])]  # fmt: skip
    missing = [str(image_dir / n) for n, p in zip(records["imgname"], paths) if not p.is_file()]
    if missing:
        more = f"\n  ... and {len(missing) - limit} more" if len(missing) > limit else ""
        raise FileNotFoundError(
            f"{len(missing)} of {len(records['imgname'])} images listed in {npz_path} are "
            f"missing, e.g.:\n  " + "\n  ".join(missing[:limit]) + more +
            f"\nEach image must be at <image root>/<imgname>, here {image_dir}/<imgname>."
        )  # fmt: skip


#: Images with more pixels than this (8192 × 8192, 201 MB as RGB) are refused before
#: they are decoded. SPIN's datasets are ≤ ~2k × 2k; a 48-megapixel photo fits.
MAX_IMAGE_PIXELS = 8192 * 8192


def _inside(root: pathlib.Path, name: str, what: str, npz_path) -> pathlib.Path:
    """`root / name`, refusing names that leave `root` (absolute paths, '..', links),
    after resolving both."""
    resolved = pathlib.Path(os.path.realpath(root / name))
    if "\0" in name or not resolved.is_relative_to(os.path.realpath(root)):
        raise ValueError(
            f"{npz_path}: {what} {name!r} must be a path inside {root} (no absolute path, "
            "no '..', no link out of it)."
        )
    return root / name


def _segmentation_names(records: dict, src: SplitSource, manual_dir, npz_path) -> None:
    """Set `records['mask_paths']`: per row (mask PNG, part PNG) or None, checked to exist.

    Rows get paths when the npz lists `maskname` / `partname` and the split has a
    `mask_root`; a missing file raises FileNotFoundError naming it and the layout.
    """
    n = len(records["imgname"])
    paths = np.full(n, None, dtype=object)
    if "maskname" in records and src.mask_root:
        root = pathlib.Path(manual_dir) / src.mask_root
        missing = []
        for i, (mask, part) in enumerate(zip(records["maskname"], records["partname"])):
            if not mask and not part:
                continue
            pair = tuple(
                _inside(root, name, key, npz_path)
                for name, key in ((mask, "maskname"), (part, "partname"))
            )
            missing += [str(p) for p in pair if not p.is_file()]
            paths[i] = pair
        if missing:
            more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise FileNotFoundError(
                f"{len(missing)} segmentation files listed in {npz_path} are missing, e.g.:\n  "
                + "\n  ".join(missing[:10])
                + more
                + f"\nThey must be at {root}/<maskname> "
                f"and {root}/<partname> (UP-3D's LSP annotations, SPIN's UPI_S1H_ROOT)."
            )
    records["mask_paths"] = paths


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


# ---------------------------------------------------------------------------------------
# The TFDS builder.


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
        for split in _check_splits(name, self._splits):
            if split in self._records:
                continue
            path = find_npz(name, split, manual_dir)
            records = read_npz(path)
            check_images(records, manual_dir / DATASETS[name][split].image_root, path)
            if name in SEGMENTATION_DATASETS:
                _segmentation_names(records, DATASETS[name][split], manual_dir, path)
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


# ---------------------------------------------------------------------------------------
# Building and reading.


def _is_built(builder: tfds.core.DatasetBuilder) -> bool:
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
    splits = _check_splits(name, splits)
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
    if _is_built(builder):
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
    _check_splits(name, [split])
    builder = SpinFormat(config=name, data_dir=os.fspath(pathlib.Path(data_dir).expanduser()))
    hint = (
        f"Build it with: python -m hkmr_jax.data.build --dataset {name} --splits {split} "
        f"--manual_dir <SPIN data folder> --data_dir {data_dir}"
    )
    if not _is_built(builder):
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
