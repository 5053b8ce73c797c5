"""MPII's per-joint visibility flags for the people of SPIN's `mpii_train.npz`.

SPIN's MPII file keeps only whether a joint is annotated; whether it is *visible* is in
MPII's own `mpii_human_pose_v1_u12_1.mat`, which paper Table 4 (right) needs
(`eval_lib.invisible` reads it as the example key `visible`). `read_annotations` reads the
.mat (with scipy); `spin_visibility` matches every SPIN row to its MPII person by
pose-hg-train's box rule, or raises naming the row. The rule in full:
docs/CONTRACT_data.md ("MPII invisible joints").
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping

import numpy as np

from smpl_jax import skeleton

#: The annotation file of MPII's release.
MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
_DOWNLOAD = (
    f"{MAT_NAME} is in mpii_human_pose_v1_u12_2.zip from http://human-pose.mpi-inf.mpg.de/ "
    "(Download: annotations)"
)

#: MPII joint id (0…15) → SPIN's J24 slot (SPIN's `joints_idx` in its MPII preprocessing).
MPII_TO_J24: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 14, 15, 12, 13, 6, 7, 8, 9, 10, 11)
#: The names of MPII's joints, as their J24 slots are named.
MPII_NAMES: tuple[str, ...] = tuple(skeleton.J24_NAMES[j] for j in MPII_TO_J24)

#: Default tolerance (pixels) between a SPIN row's centre / keypoints and its MPII person.
TOLERANCE_PX = 2.0
#: The hourglass rule that SPIN's MPII boxes come from: y shift (× MPII scale) and scale.
CENTER_SHIFT_Y = 15.0
SCALE_FACTOR = 1.25


@dataclasses.dataclass(frozen=True)
class Person:
    """One annotated person of MPII, in SPIN's terms.

    Attributes:
      center: float64 [2], SPIN's box centre: (objpos.x, objpos.y + 15 · scale).
      scale: SPIN's box scale: 1.25 · MPII's scale.
      points: float64 [24, 2], the annotated points in J24 slots (pixels of the .mat),
        NaN where MPII has no point.
      visible: float32 [24], 1 annotated and visible, 0 annotated and hidden or not
        annotated.
      index: (annolist index, annorect index), 0-based, for messages.
    """

    center: np.ndarray
    scale: float
    points: np.ndarray
    visible: np.ndarray
    index: tuple[int, int]


def _items(value) -> list:
    """A MATLAB struct array read with `squeeze_me` → list of its elements.

    One element squeezes to the element itself, none to an empty numeric array.
    """
    if isinstance(value, np.ndarray):
        return list(value.ravel()) if value.dtype == object else []
    return [] if value is None else [value]


def _scalar(value) -> float | None:
    """A number read from the .mat, or None when empty."""
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "biuf":
        return None
    return float(array.reshape(()))


def _field(struct, name):
    return getattr(struct, name) if name in getattr(struct, "_fieldnames", ()) else None


def _is_visible(point, where: str) -> float:
    """MPII's `is_visible` as 1.0 / 0.0: empty or absent counts as visible."""
    value = _field(point, "is_visible")
    if value is None or (isinstance(value, np.ndarray) and value.size == 0):
        return 1.0
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and not value.strip():
        return 1.0
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: is_visible {value!r} is not 0, 1 or empty.") from None
    return 1.0 if number > 0 else 0.0


def _person(rect, index: tuple[int, int], where: str) -> Person | None:
    """The person of one `annorect` element; None when it has no objpos or scale."""
    objpos, scale = _field(rect, "objpos"), _scalar(_field(rect, "scale"))
    if objpos is None or isinstance(objpos, np.ndarray) or scale is None:
        return None
    x, y = _scalar(_field(objpos, "x")), _scalar(_field(objpos, "y"))
    if x is None or y is None:
        return None
    points = np.full((24, 2), np.nan)
    visible = np.zeros(24, np.float32)
    annopoints = _field(rect, "annopoints")
    for point in _items(_field(annopoints, "point") if annopoints is not None else None):
        joint, px, py = (_scalar(_field(point, k)) for k in ("id", "x", "y"))
        if joint is None or px is None or py is None:
            continue
        if joint != int(joint) or not 0 <= joint < 16:
            raise ValueError(f"{where}: joint id {joint:g} is not an MPII joint (0…15).")
        slot = MPII_TO_J24[int(joint)]
        points[slot] = px, py
        visible[slot] = _is_visible(point, f"{where}, joint {int(joint)}")
    center = np.array([x, y + CENTER_SHIFT_Y * scale])
    return Person(center, SCALE_FACTOR * scale, points, visible, index)


def read_annotations(path) -> dict[str, list[Person]]:
    """Read MPII's `mpii_human_pose_v1_u12_1.mat`: image name → its annotated people.

    Args:
      path: the .mat file.

    Returns:
      {image name, e.g. '015601864.jpg': [Person, ...]} over all images, people without
      `objpos` or `scale` left out (no SPIN row can come from them).

    Raises:
      FileNotFoundError: `path` does not exist (the message says where to get it).
      ImportError: scipy is not installed.
      ValueError: naming `path`, when it is not a MATLAB file, holds no `RELEASE` struct
        with `annolist`, or a joint's id or `is_visible` is malformed.
    """
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"MPII annotation file {path} does not exist. {_DOWNLOAD}.")
    try:
        import scipy.io  # lazy: scipy is optional (not a dependency); only the .mat needs it
    except ImportError as e:
        raise ImportError(
            f"Reading {path} needs scipy (scipy.io.loadmat): pip install scipy"
        ) from e
    # NotImplementedError: a MATLAB v7.3 (HDF5) file.
    errors = (scipy.io.matlab.MatReadError, NotImplementedError, ValueError, TypeError, OSError)
    try:
        mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except errors as e:
        raise ValueError(
            f"Cannot read {path} as a MATLAB file ({type(e).__name__}: {e}); expected MPII's "
            f"{MAT_NAME}. {_DOWNLOAD}."
        ) from e
    release = mat.get("RELEASE")
    annolist = _field(release, "annolist")
    if annolist is None:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(
            f"{path} has no struct RELEASE with a field annolist (variables: {found}); "
            f"expected MPII's {MAT_NAME}. {_DOWNLOAD}."
        )
    people: dict[str, list[Person]] = {}
    for i, entry in enumerate(_items(annolist)):
        image = _field(entry, "image")
        name = _field(image, "name") if image is not None else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}: RELEASE.annolist({i + 1}) has no image.name.")
        found = people.setdefault(name, [])
        for r, rect in enumerate(_items(_field(entry, "annorect"))):
            where = f"{path}: RELEASE.annolist({i + 1}).annorect({r + 1}) ({name})"
            person = _person(rect, (i, r), where)
            if person is not None:
                found.append(person)
    return people


def _disagreement(person: Person, part: np.ndarray) -> float:
    """Largest distance (px) between the row's labelled keypoints and the person's points
    (inf where the person lacks a labelled joint; 0 when the row labels none)."""
    labelled = part[:, 2] > 0
    if not labelled.any():
        return 0.0
    d = np.linalg.norm(person.points[labelled] - part[labelled, :2], axis=-1)
    return float(np.max(np.where(np.isnan(d), np.inf, d)))


def spin_visibility(
    records: Mapping[str, np.ndarray],
    annotations: Mapping[str, list[Person]],
    *,
    tolerance_px: float = TOLERANCE_PX,
    source: str = "the SPIN file",
) -> np.ndarray:
    """MPII's visibility flags for each row of a SPIN-format MPII file.

    Args:
      records: `spin_format.read_npz` of SPIN's `mpii_train.npz` (uses `imgname`,
        `center` [N, 2] and `part` [N, 24, 3]).
      annotations: `read_annotations` of MPII's .mat.
      tolerance_px: how far (pixels) a row's centre and labelled keypoints may be from
        its MPII person's (SPIN-rule centre, points).
      source: the file `records` came from, for messages.

    Returns:
      float32 [N, 24] in J24 order: 1 annotated and visible, 0 annotated and not visible,
      0 not annotated (the matching rule: docs/CONTRACT_data.md).

    Raises:
      ValueError: naming the row, its image and the fix, when a row's image is not in the
        annotations, no person of it lies within `tolerance_px` of the row's centre, or
        the matched person's points disagree with the row's labelled keypoints.
    """
    names, centers = records["imgname"], np.asarray(records["center"], np.float64)
    parts = np.asarray(records["part"], np.float64)
    out = np.zeros((len(names), 24), np.float32)
    for i, imgname in enumerate(names):
        name = pathlib.PurePosixPath(str(imgname)).name
        where = f"row {i} of {source} (imgname {imgname!r})"
        people = annotations.get(name)
        if not people:
            raise ValueError(
                f"{where}: MPII's annotations have no person in image {name!r}. Is the .mat "
                f"MPII's {MAT_NAME}, and the npz SPIN's mpii_train.npz?"
            )
        dist = np.array([np.linalg.norm(p.center - centers[i]) for p in people])
        close = [p for p, d in zip(people, dist) if d <= tolerance_px]
        if not close:
            nearest = people[int(np.argmin(dist))]
            raise ValueError(
                f"{where}: no MPII person of {name!r} has its box centre within "
                f"{tolerance_px:g} px of the row's centre {centers[i].tolist()} (nearest: "
                f"{nearest.center.tolist()}, {dist.min():.1f} px away; SPIN's centre is "
                f"(objpos.x, objpos.y + {CENTER_SHIFT_Y:g} · scale)). A file made by another "
                "preprocessing does not match; a small offset can be allowed with a larger "
                "tolerance_px."
            )
        person = min(close, key=lambda p: (_disagreement(p, parts[i]),
                                           np.linalg.norm(p.center - centers[i])))  # fmt: skip
        off = _disagreement(person, parts[i])
        if off > tolerance_px:
            raise ValueError(
                f"{where}: the keypoints it labels are up to {off:.1f} px from those of MPII "
                f"person {person.index[1] + 1} of {name!r} (annolist({person.index[0] + 1}); "
                f"tolerance {tolerance_px:g} px), or that person lacks some of them. Is the "
                f"npz SPIN's mpii_train.npz and the .mat MPII's {MAT_NAME}?"
            )
        out[i] = person.visible
    return out
