"""SPIN's preprocessed files: which files make each dataset, and reading them safely.

The table `DATASETS`, the `manual_dir` layout (`expected_layout`), reading and checking
an npz (`read_npz`), and the image and mask paths it lists, refused when they leave
their root. No TFDS needed.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterable, Mapping

import numpy as np

from smpl_jax import array_files

#: Folder of `manual_dir` that holds SPIN's npz files.
EXTRAS_DIR = "dataset_extras"


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


def check_name(name: str) -> dict[str, SplitSource]:
    if name not in DATASETS:
        raise ValueError(
            f"Unknown SPIN-format dataset {name!r}; valid names: {', '.join(DATASETS)}."
        )
    return DATASETS[name]


def check_splits(name: str, splits: Iterable[str] | None) -> tuple[str, ...]:
    table = check_name(name)
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
    for split, src in check_name(name).items():
        if any((extras / f).is_file() for f in src.npz_files):
            present.append(split)
        else:
            absent[split] = " or ".join(str(extras / f) for f in src.npz_files)
    return present, absent


def find_npz(name: str, split: str, manual_dir) -> pathlib.Path:
    """The npz file of `name/split` in `manual_dir`.

    Raises:
      FileNotFoundError: naming every candidate path and the expected layout.
    """
    src = check_name(name)[check_splits(name, [split])[0]]
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


def segmentation_names(records: dict, src: SplitSource, manual_dir, npz_path) -> None:
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
