"""Bounded readers for `.npy` and `.npz` files a user hands in.

Every array's header (dtype, shape) is read and checked before its data is allocated:
plain numeric, bool or string dtypes only (no object or structured arrays, so never
pickle), and a declared size equal to the bytes the file holds. An `.npz` may also not
expand to more than ``NPZ_MAX_EXPANSION`` × its own size plus ``NPZ_SLACK_BYTES`` (a
deflate bomb): reading a file of N bytes allocates at most that much. Failures are
`ArrayFileError`, one message naming the file (and key) and the fix.
"""

from __future__ import annotations

import math
import pathlib
import zipfile

import numpy as np
from numpy.lib import format as npy_format

#: An `.npz` whose arrays would take more than this multiple of its own size (plus
#: `NPZ_SLACK_BYTES`) is refused: real data (SPIN's files, SMPL models) compresses a
#: few times at most, while a crafted deflate stream expands ~1000×.
NPZ_MAX_EXPANSION = 32
NPZ_SLACK_BYTES = 64 * 2**20
#: dtype kinds admitted: bool, integers, floats, complex, bytes, str.
_KINDS = "biufcSU"
_ZIP_MAGIC = b"PK\x03\x04"


class ArrayFileError(ValueError):
    """A `.npy`/`.npz` file that cannot be read safely; the message names it."""


def _header(fp, source: str):
    """(shape, dtype, header bytes) of the `.npy` stream `fp`, checked."""
    try:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = npy_format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as e:
        raise ArrayFileError(
            f"{source}: not a NumPy .npy array, or its header is corrupt ({e}); "
            "write it again with numpy.save."
        ) from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in _KINDS:
        raise ArrayFileError(
            f"{source}: dtype {dtype} is not a plain numeric or string array (object and "
            "structured arrays are refused: reading them could run code); save it as "
            "numbers, e.g. numpy.save(path, array.astype(numpy.float64))."
        )
    return shape, dtype, fp.tell()


def _check_size(shape, dtype, present: int, source: str) -> None:
    if dtype.itemsize == 0 and math.prod(shape) != 0:  # 10^12 empty strings cost no bytes
        raise ArrayFileError(
            f"{source}: {list(shape)} elements of zero-size dtype {dtype}; not a real "
            "array (the file is corrupt or crafted)."
        )
    declared = math.prod(shape) * dtype.itemsize
    if declared != present:
        raise ArrayFileError(
            f"{source}: the header declares {list(shape)} {dtype} ({declared} bytes) but the "
            f"file holds {present} bytes of data; it is truncated or corrupt: copy it again."
        )


def load_npy(path, *, what: str = "array") -> np.ndarray:
    """Read one `.npy` file after checking its header against its size.

    Args:
      path: the file.
      what: what the file should hold, for messages (e.g. "H36M regressor").

    Raises:
      ArrayFileError: not a `.npy` (an `.npz` archive is named as such), a refused dtype,
        a size that does not match, or truncated data.
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as fp:
            if fp.read(4) == _ZIP_MAGIC:
                raise ArrayFileError(
                    f"{path} is an .npz archive, but a single .npy {what} is expected here; "
                    "give the .npy file (numpy.save), or extract the array with "
                    "numpy.load(path)[key] and save it with numpy.save."
                )
            fp.seek(0)
            shape, dtype, offset = _header(fp, str(path))
            _check_size(shape, dtype, path.stat().st_size - offset, str(path))
            fp.seek(0)
            return npy_format.read_array(fp, allow_pickle=False)
    except ArrayFileError:
        raise
    except FileNotFoundError:
        raise ArrayFileError(f"{what} file not found: {path}.") from None
    except (OSError, ValueError, EOFError) as e:
        raise ArrayFileError(f"{path}: cannot read it ({type(e).__name__}: {e}).") from None


def load_npz(path) -> dict[str, np.ndarray]:
    """Every array of an `.npz` (keys without `.npy`), each header checked first.

    Members whose names do not end in `.npy` are ignored (numpy writes none).

    Raises:
      ArrayFileError: not a zip archive, truncated or corrupt, a refused dtype, declared
        sizes that the members do not hold, or more expansion than the bound above.
    """
    path = pathlib.Path(path)
    fix = "the file is truncated or corrupt: copy it again."
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if i.filename.endswith(".npy")]
            total = sum(i.file_size for i in members)
            limit = NPZ_MAX_EXPANSION * path.stat().st_size + NPZ_SLACK_BYTES
            if total > limit:
                raise ArrayFileError(
                    f"{path}: its arrays would take {total} bytes, more than "
                    f"{NPZ_MAX_EXPANSION}× the file's size plus {NPZ_SLACK_BYTES >> 20} MiB "
                    "(a decompression bomb, or a corrupt archive); refused."
                )
            out = {}
            for info in members:
                key = info.filename[: -len(".npy")]
                source = f"{path} (key {key!r})"
                with zf.open(info) as fp:
                    shape, dtype, offset = _header(fp, source)
                _check_size(shape, dtype, info.file_size - offset, source)
                with zf.open(info) as fp:
                    out[key] = npy_format.read_array(fp, allow_pickle=False)
            return out
    except ArrayFileError:
        raise
    except FileNotFoundError:
        raise ArrayFileError(f"file not found: {path}.") from None
    except zipfile.BadZipFile as e:
        raise ArrayFileError(f"{path}: not an .npz (zip) archive ({e}); {fix}") from None
    # RuntimeError: an encrypted member; NotImplementedError: an unknown compression.
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, NotImplementedError) as e:
        raise ArrayFileError(f"{path}: cannot read it ({type(e).__name__}: {e}); {fix}") from None


def load_array(path, *, what: str = "array") -> np.ndarray:
    """One array from a `.npy`, or from an `.npz` that holds exactly one array.

    An `.npz` with several arrays is refused, naming its keys: which one is meant is
    not ours to guess.
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as fp:
            is_zip = fp.read(4) == _ZIP_MAGIC
    except FileNotFoundError:
        raise ArrayFileError(f"{what} file not found: {path}.") from None
    except OSError as e:
        raise ArrayFileError(f"{path}: cannot read it ({e}).") from None
    if not is_zip:
        return load_npy(path, what=what)
    arrays = load_npz(path)
    if len(arrays) != 1:
        raise ArrayFileError(
            f"{path} is an .npz archive with {len(arrays)} arrays {sorted(arrays)}, but one "
            f"{what} is expected; give the .npy file, or an .npz holding only that array."
        )
    return next(iter(arrays.values()))


def numeric(array: np.ndarray, source: str, *, finite: bool = True) -> np.ndarray:
    """`array` unchanged if it holds numbers (bool, int, float) and, if `finite`, no NaN
    or infinity; else `ArrayFileError` naming `source`."""
    if array.dtype.kind not in "biuf":
        raise ArrayFileError(f"{source} holds {array.dtype} values; numbers are expected.")
    if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ArrayFileError(f"{source} contains NaN or infinite values.")
    return array
