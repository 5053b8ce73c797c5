"""Reading and writing SMPL-format model files.

Official SMPL `.pkl` files are Python 2 pickles of chumpy objects, scipy sparse matrices
and numpy arrays. They are read as data by `smpl_jax.safe_pickle` (nothing in the file is
run; chumpy and scipy objects become records of their fields), then converted here:
a `Ch` is its `x`, a `Select` is `a.ravel()[idxs]`, a csc/csr matrix is made dense.
Neither chumpy nor scipy is needed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from smpl_jax import array_files, atomic_files, safe_pickle, skeleton
from smpl_jax.model import SMPL

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f")  # fmt: skip

_WHERE_FROM = (
    "SMPL model files are licensed and not shipped with this project: register at "
    "https://smpl.is.tue.mpg.de and download them there (SMPL_NEUTRAL.pkl, "
    "basicModel_{f,m}_lbs_10_207_0_v1.0.0.pkl), or use the built-in body, "
    "smpl_jax.synthetic.load_builtin()."
)


#: Dense float64 bytes that a file's sparse matrices may expand to, beyond 2 × its size.
SPARSE_SLACK_BYTES = 8 * 2**20

_SPARSE_CLASSES = {
    (f"scipy.sparse.{m}", f"{fmt}_{kind}"): safe_pickle.Admitted(f"scipy.sparse.{fmt}")
    for fmt in ("csc", "csr")
    for m in (fmt, f"_{fmt}")
    for kind in ("matrix", "array")
}


def _admit(module: str, name: str):
    """The globals of SMPL-family pickles: numpy, Python 2/3 data, chumpy, scipy.sparse."""
    if module == "chumpy" or module.startswith("chumpy."):
        return safe_pickle.Admitted(f"{module}.{name}")  # any chumpy object, as a record
    key = (module, name)
    return safe_pickle.NUMPY.get(key) or safe_pickle.BUILTINS.get(key) or _SPARSE_CLASSES.get(key)


class _Converter:
    """Turns the records of one SMPL pickle into dense numpy arrays, within a budget."""

    def __init__(self, source: str, file_size: int):
        self.source = source
        self.sparse_budget = 2 * file_size + SPARSE_SLACK_BYTES

    def state(self, record) -> dict:
        state = record.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (__dict__, slots)
        if not isinstance(state, dict):
            raise ValueError(f"a {record.name} record without its fields")
        return state

    def array(self, value, depth: int = 0) -> np.ndarray:
        if depth > safe_pickle.MAX_DEPTH:
            raise ValueError(f"chumpy objects nested deeper than {safe_pickle.MAX_DEPTH} levels")
        if safe_pickle.is_array(value):
            return safe_pickle.to_array(value, self.source)
        if isinstance(value, safe_pickle.Obj):
            if value.name.startswith("chumpy."):
                return self.chumpy(value, depth)
            if value.name.startswith("scipy.sparse."):
                return self.sparse(value)
            raise ValueError(f"unsupported object {value.name}")
        if isinstance(value, bool | int | float | str | bytes) or value is None:
            return np.asarray(value)
        raise ValueError(f"a {type(value).__name__} is not an array")

    def chumpy(self, record, depth: int) -> np.ndarray:
        state = self.state(record)
        if "x" in state:  # chumpy.ch.Ch: the array itself
            return self.array(state["x"], depth + 1)
        if {"a", "idxs"} <= state.keys():  # chumpy.reordering.Select: a.ravel()[idxs]
            values = self.array(state["a"], depth + 1).ravel()
            idxs = self.array(state["idxs"], depth + 1)
            inside = not idxs.size or 0 <= idxs.min() <= idxs.max() < values.size
            if idxs.dtype.kind not in "iu" or not inside:
                raise ValueError(f"a chumpy Select with indices outside its {values.size} values")
            out = values[idxs.ravel()]
            shape = state.get("preferred_shape")
            return out.reshape(tuple(shape)) if isinstance(shape, tuple | list) else out
        raise ValueError(f"unsupported chumpy object {record.name} with fields "
                         f"{sorted(map(str, state))[:8]}")  # fmt: skip

    def sparse(self, record) -> np.ndarray:
        s = self.state(record)
        shape = s.get("_shape", s.get("shape"))
        if not (isinstance(shape, tuple) and len(shape) == 2
                and all(isinstance(n, int) and n >= 0 for n in shape)):  # fmt: skip
            raise ValueError("a sparse matrix without a valid 2-D shape")
        data, indices, indptr = (self.array(s.get(k)) for k in ("data", "indices", "indptr"))
        fmt = s.get("format", record.name.rsplit(".", 1)[1])
        if fmt not in ("csc", "csr"):
            raise ValueError(f"unsupported sparse format {fmt!r}")
        n_major, n_minor = shape[::-1] if fmt == "csc" else shape
        nbytes = shape[0] * shape[1] * 8
        if nbytes > self.sparse_budget:
            raise ValueError(
                f"a sparse matrix of shape {shape} would take {nbytes / 2**20:.0f} MiB dense, "
                "more than a SMPL file of this size can hold"
            )
        self.sparse_budget -= nbytes
        if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
            raise ValueError("a sparse matrix with non-integer index arrays")
        indices, indptr = indices.astype(np.int64), indptr.astype(np.int64)
        inside = not indices.size or 0 <= indices.min() <= indices.max() < n_minor
        ordered = indptr.shape == (n_major + 1,) and indptr[0] == 0 and indptr[-1] == len(data)
        if (data.dtype.kind not in "biuf" or data.ndim != 1 or data.shape != indices.shape
                or not ordered or np.any(np.diff(indptr) < 0) or not inside):  # fmt: skip
            raise ValueError(f"the sparse matrix's index arrays do not fit its shape {shape}")
        major = np.repeat(np.arange(n_major), np.diff(indptr))
        rows, cols = (indices, major) if fmt == "csc" else (major, indices)
        dense = np.zeros(shape, dtype=np.result_type(data.dtype, np.float64))
        np.add.at(dense, (rows, cols), data)  # duplicates add up, as in scipy
        return dense


#: A pickle asked for behaviour: refused before anything in it ran.
UnsafePickleError = safe_pickle.UnsafePickleError


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    try:
        raw = safe_pickle.load(data, _admit, source=str(path))
    except safe_pickle.UnsafePickleError as e:
        raise UnsafePickleError(
            f"{e} A SMPL model file holds only numpy arrays, scipy sparse matrices and "
            "chumpy arrays; this file is not one (or was tampered with)."
        ) from None
    if not isinstance(raw, dict):
        raise ValueError(f"expected a dict of arrays, found {type(raw).__name__}")
    convert = _Converter(str(path), len(data))
    arrays = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        try:
            arrays[key] = convert.array(value)
        except ValueError as e:
            if key in REQUIRED_KEYS:
                raise ValueError(f"key '{key}': {e}") from None
    return arrays


def load_arrays(path) -> dict[str, np.ndarray]:
    """Read the arrays of a SMPL-format `.pkl` or `.npz` file, without validating them.

    `.pkl` files are read by `smpl_jax.safe_pickle` (no chumpy or scipy needed; nothing
    in the file is run); memory stays within a small multiple of the file's size.

    Returns:
      {key: np.ndarray}, sparse and chumpy values converted to dense numpy arrays (values
      that are not arrays, such as a dict of training information, are left out).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SMPL model file not found: {path}. {_WHERE_FROM}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            return array_files.load_npz(path)
        if suffix == ".pkl":
            return _read_pickle(path)
    except (UnsafePickleError, FileNotFoundError, array_files.ArrayFileError):
        raise
    except (safe_pickle.PickleDataError, EOFError, OSError, ValueError, KeyError, TypeError,
            IndexError, zipfile.BadZipFile) as e:  # fmt: skip
        detail = str(e).replace(f"{path}: ", "")
        raise ValueError(
            f"{path}: cannot read this SMPL model file ({detail}). The file may be truncated "
            "or corrupt; download it again."
        ) from None
    raise ValueError(f"{path}: unknown SMPL model file type '{suffix}'; expected .pkl or .npz.")


def model_from_arrays(
    arrays: Mapping[str, np.ndarray], num_betas: int = 10, dtype=jnp.float32, *,
    source: str = "<arrays>",
) -> SMPL:  # fmt: skip
    """Validate SMPL-format arrays (official keys and layouts) and build a model.

    Args:
      arrays: the official keys (docs/CONTRACT_smpl_jax.md); extra keys are ignored.
      num_betas: number of shape components to keep (v1.1.0 files have 300).
      dtype: float32 (default) or float64 (needs `jax_enable_x64`).
      source: where the arrays came from, for error messages.

    Raises:
      KeyError / ValueError: naming `source`, the key and the expected shape.
    """
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype=float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "first (otherwise JAX silently computes in float32)."
        )
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise KeyError(
            f"{source}: missing key(s) {missing}; a SMPL model file needs {list(REQUIRED_KEYS)}."
        )
    # Contiguous copies: a Fortran-ordered array would make the derived sums below add in
    # another order and a model not bit-identical after a save/load round trip.
    a = {k: np.ascontiguousarray(arrays[k]) for k in REQUIRED_KEYS}
    for key, value in a.items():
        if value.dtype.kind not in "biuf":
            raise ValueError(
                f"{source}: '{key}' holds {value.dtype} values; a SMPL model file holds "
                "numbers there (is it the right file?)."
            )

    def expect(key, shape):
        got = a[key].shape
        if len(got) != len(shape) or any(e is not None and e != g for e, g in zip(shape, got)):
            want = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
            raise ValueError(f"{source}: '{key}' has shape {got}, expected {want}.")

    expect("v_template", (None, 3))
    nv = a["v_template"].shape[0]
    expect("kintree_table", (2, None))
    nj = a["kintree_table"].shape[1]
    # The root's parent is stored as uint32 -1 (4294967295) in the official files.
    parents = a["kintree_table"][0].astype(np.int64)
    parents = np.where(parents >= nj, -1, parents)
    parents = skeleton.validate_parents(parents, source=f"{source}: 'kintree_table'")
    expect("shapedirs", (nv, 3, None))
    expect("posedirs", (nv, 3, 9 * (nj - 1)))
    expect("J_regressor", (nj, nv))
    expect("weights", (nv, nj))
    expect("f", (None, 3))
    available = a["shapedirs"].shape[2]
    if not 1 <= num_betas <= available:
        raise ValueError(
            f"{source}: num_betas={num_betas} requested, but the file has {available} shape "
            f"components; use 1 ≤ num_betas ≤ {available}."
        )
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        if not np.all(np.isfinite(a[key])):
            raise ValueError(f"{source}: '{key}' contains NaN or infinite values.")
    faces = a["f"].astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise ValueError(f"{source}: 'f' indexes vertices outside [0, {nv}).")

    # Derived quantities in float64, then cast once.
    v_template = a["v_template"].astype(np.float64)
    shapedirs = a["shapedirs"][:, :, :num_betas].astype(np.float64)
    regressor = a["J_regressor"].astype(np.float64)
    joint_template = regressor @ v_template
    joint_shapedirs = np.einsum("jv,vck->kjc", regressor, shapedirs)

    def cast(x):
        return jnp.asarray(x, dtype)

    return SMPL(
        v_template=cast(v_template),
        shapedirs=cast(shapedirs.transpose(2, 1, 0).reshape(num_betas, 3 * nv)),
        posedirs=cast(a["posedirs"].transpose(2, 1, 0).reshape(-1, 3 * nv)),
        J_regressor=cast(regressor),
        weights=cast(a["weights"]),
        faces=jnp.asarray(faces, jnp.int32),
        joint_template=cast(joint_template),
        joint_shapedirs=cast(joint_shapedirs.reshape(num_betas, nj * 3)),
        parents=parents,
    )


def load(path, num_betas: int = 10, dtype=jnp.float32) -> SMPL:
    """Load an official SMPL `.pkl` (without chumpy) or a `.npz` with the same keys.

    Args:
      path: e.g. "SMPL_NEUTRAL.pkl", "basicModel_f_lbs_10_207_0_v1.0.0.pkl", "model.npz".
      num_betas: shape components to keep (≤ those in the file).
      dtype: float32 (default) or float64.

    Returns:
      An `SMPL` pytree; call it with poses and shapes.
    """
    return model_from_arrays(load_arrays(path), num_betas, dtype, source=str(path))


def to_arrays(body: SMPL) -> dict[str, np.ndarray]:
    """The official-layout arrays of a model (inverse of `model_from_arrays`)."""
    nv, nj = body.num_vertices, body.num_joints
    parents = np.array(body.parents, dtype=np.int64)
    return {
        "v_template": np.asarray(body.v_template),
        "shapedirs": np.ascontiguousarray(
            np.asarray(body.shapedirs).reshape(-1, 3, nv).transpose(2, 1, 0)
        ),
        "posedirs": np.ascontiguousarray(
            np.asarray(body.posedirs).reshape(-1, 3, nv).transpose(2, 1, 0)
        ),
        "J_regressor": np.asarray(body.J_regressor),
        "weights": np.asarray(body.weights),
        "kintree_table": np.stack([parents, np.arange(nj)]),
        "f": np.asarray(body.faces).astype(np.uint32),
        "J": np.asarray(body.joint_template),
    }


def save_npz(body_or_arrays: SMPL | Mapping[str, np.ndarray], path) -> Path:
    """Write a model (or a dict of official-key arrays, extras kept) as `.npz`, atomically.

    The file is written under a temporary name in the same folder and renamed
    (`smpl_jax.atomic_files`), so an interrupted write never leaves a file that reads as
    complete.
    """
    path = Path(path)
    if isinstance(body_or_arrays, SMPL):
        arrays = to_arrays(body_or_arrays)
    else:
        arrays = {k: np.asarray(v) for k, v in body_or_arrays.items()}
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise KeyError(f"cannot save {path}: missing key(s) {missing}.")
    with atomic_files.writing(path) as f:
        np.savez(f, **arrays)
    return path
