"""Reading and writing SMPL-format model files.

Official SMPL `.pkl` files are Python 2 pickles of chumpy objects, scipy sparse matrices
and numpy arrays. Unpickling runs whatever callables a file names, so they are read with a
restricted unpickler: only numpy's array/dtype reconstructors and local stand-ins for the
chumpy and scipy.sparse classes are admitted; any other global is refused before anything
from the file runs. Neither chumpy nor scipy is needed.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from smpl_jax import array_files, skeleton
from smpl_jax.model import SMPL

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f")  # fmt: skip

_WHERE_FROM = (
    "SMPL model files are licensed and not shipped with this project: register at "
    "https://smpl.is.tue.mpg.de and download them there (SMPL_NEUTRAL.pkl, "
    "basicModel_{f,m}_lbs_10_207_0_v1.0.0.pkl), or use the built-in body, "
    "smpl_jax.synthetic.load_builtin()."
)


class _ChumpyStandIn:
    """Holds the pickled `__dict__` of any chumpy object; `to_array` reads its value."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"_raw": state}

    def to_array(self) -> np.ndarray:
        state = self.state
        if "x" in state:  # chumpy.ch.Ch: the array itself
            return _to_array(state["x"])
        if {"a", "idxs"} <= state.keys():  # chumpy.reordering.Select: a.ravel()[idxs]
            out = _to_array(state["a"]).ravel()[np.asarray(state["idxs"])]
            shape = state.get("preferred_shape")
            return out.reshape(shape) if shape is not None else out
        raise ValueError(f"unsupported chumpy object with fields {sorted(state)}")


class _SparseStandIn:
    """Holds a pickled scipy.sparse csc/csr matrix; `to_array` makes it dense."""

    default_format = "csc"  # recent scipy no longer pickles 'format': the class says it

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state

    def to_array(self) -> np.ndarray:
        s = self.state
        shape = tuple(s.get("_shape", s.get("shape")))
        data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
        fmt = s.get("format", self.default_format)
        if fmt not in ("csc", "csr"):
            raise ValueError(f"unsupported sparse format {fmt!r}")
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        rows, cols = (indices, major) if fmt == "csc" else (major, indices)
        dense = np.zeros(shape, dtype=np.result_type(data.dtype, np.float64))
        try:
            np.add.at(dense, (rows, cols), data)  # duplicates add up, as in scipy
        except IndexError as e:
            raise ValueError(f"sparse matrix indices do not fit its shape {shape}") from e
        return dense


class _CsrStandIn(_SparseStandIn):
    default_format = "csr"


def _latin1_encode(text, encoding="latin1"):
    """Python 3 pickles bytes at protocol 2 as `_codecs.encode(str, 'latin1')`; allow only that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is allowed only to turn str into latin-1 bytes")
    return text.encode("latin1")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global that its kind of file never needs: refused, nothing run."""


def _numpy_global(name):
    from numpy._core import multiarray, numeric  # numpy ≥ 2

    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar,
            "_frombuffer": numeric._frombuffer}[name]  # fmt: skip


#: (module, name) → factory of the globals that pickled numpy arrays (and Python 3's
#: protocol-2 bytes) need: all a pickle of plain arrays may name. Shared with
#: `hkmr_jax.smplify`'s GMM loader.
NUMPY_PICKLE_GLOBALS = {
    **{(m, n): (lambda n=n: _numpy_global(n))
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")
       for n in ("_reconstruct", "scalar")},
    **{(m, "_frombuffer"): (lambda: _numpy_global("_frombuffer"))
       for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}  # fmt: skip

_ALLOWED = {
    **NUMPY_PICKLE_GLOBALS,
    ("copy_reg", "_reconstructor"): lambda: __import__("copyreg")._reconstructor,
    ("copyreg", "_reconstructor"): lambda: __import__("copyreg")._reconstructor,
    ("__builtin__", "object"): lambda: object,
    ("builtins", "object"): lambda: object,
    **{(f"scipy.sparse.{m}", "csc_matrix"): (lambda: _SparseStandIn) for m in ("csc", "_csc")},
    **{(f"scipy.sparse.{m}", "csr_matrix"): (lambda: _CsrStandIn) for m in ("csr", "_csr")},
}  # fmt: skip


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module, name):
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]()
        raise UnsafePickleError(
            f"{self._path}: refusing to load global '{module}.{name}'. A SMPL model file "
            "holds only numpy arrays, scipy sparse matrices and chumpy arrays; this file "
            "is not one (or was tampered with), and nothing in it has been run."
        )


def _to_array(value) -> np.ndarray:
    if isinstance(value, _ChumpyStandIn | _SparseStandIn):
        return value.to_array()
    return np.asarray(value)


def load_arrays(path) -> dict[str, np.ndarray]:
    """Read the arrays of a SMPL-format `.pkl` or `.npz` file, without validating them.

    Returns:
      {key: np.ndarray}, sparse and chumpy values converted to dense numpy arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SMPL model file not found: {path}. {_WHERE_FROM}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            return array_files.load_npz(path)
        if suffix == ".pkl":
            with open(path, "rb") as f:
                raw = _RestrictedUnpickler(f, path).load()
            if not isinstance(raw, dict):
                raise ValueError(f"expected a dict of arrays, found {type(raw).__name__}")
            arrays = {}
            for key, value in raw.items():
                try:
                    arrays[key] = _to_array(value)
                except ValueError as e:
                    if key in REQUIRED_KEYS:
                        raise ValueError(f"key '{key}': {e}") from e
            return arrays
    except (UnsafePickleError, FileNotFoundError, array_files.ArrayFileError):
        raise
    except (
        pickle.UnpicklingError, EOFError, OSError, ValueError, KeyError, TypeError,
        IndexError, AttributeError, zipfile.BadZipFile,
    ) as e:  # fmt: skip
        raise ValueError(
            f"{path}: cannot read this SMPL model file ({type(e).__name__}: {e}). The file "
            "may be truncated or corrupt; download it again."
        ) from e
    raise ValueError(f"{path}: unknown SMPL model file type '{suffix}'; expected .pkl or .npz.")


def model_from_arrays(
    arrays: Mapping[str, np.ndarray], num_betas: int = 10, dtype=jnp.float32, *,
    source: str = "<arrays>",
) -> SMPL:  # fmt: skip
    """Validate SMPL-format arrays (official keys and layouts) and build a model.

    Args:
      arrays: the official keys (FORMATS.md); extra keys are ignored.
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

    The file is written under a temporary name in the same folder and renamed, so an
    interrupted write never leaves a file that reads as complete.
    """
    path = Path(path)
    if isinstance(body_or_arrays, SMPL):
        arrays = to_arrays(body_or_arrays)
    else:
        arrays = {k: np.asarray(v) for k, v in body_or_arrays.items()}
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise KeyError(f"cannot save {path}: missing key(s) {missing}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
