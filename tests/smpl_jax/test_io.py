"""smpl_jax.io: official chumpy pickles (without chumpy), .npz, validation, safety.

The chumpy-era pickles are written here, in the layout docs/CONTRACT_smpl_jax.md describes: stand-in
classes registered under the module names `chumpy.ch` (Ch), `chumpy.reordering` (Select)
and `scipy.sparse.csc` (csc_matrix) only while writing, a pickler that writes bytes and
ASCII strings as Python 2 `str` (BINSTRING), protocol 2, and numpy's old module path
`numpy.core.multiarray` (numpy 2 writes `numpy._core.multiarray`).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

import smpl_jax
from smpl_jax.io import load_arrays, model_from_arrays
from tests.pickle_payloads import Payload

# --------------------------------------------------------------------------------------
# Writing chumpy-era pickles


class Ch:
    """Stand-in for chumpy.ch.Ch: a Ch pickles its __dict__; the array is `x`."""

    def __init__(self, x):
        self.x = x
        self._parents = {}
        self._itr = None
        self._dirty_vars = []
        self.label = None


class Select:
    """Stand-in for chumpy.reordering.Select: a.ravel()[idxs], reshaped."""

    def __init__(self, a, idxs, preferred_shape):
        self.a = a
        self.idxs = idxs
        self.preferred_shape = preferred_shape


class csc_matrix:
    """Stand-in for an old scipy.sparse.csc.csc_matrix (its pickled __dict__)."""

    def __init__(self, dense):
        m = scipy.sparse.csc_matrix(dense)
        self._shape = m.shape
        self.data, self.indices, self.indptr = m.data, m.indices, m.indptr
        self.format = "csc"
        self.maxprint = 50


_STAND_INS = {"chumpy.ch": [Ch], "chumpy.reordering": [Select], "scipy.sparse.csc": [csc_matrix]}


@contextlib.contextmanager
def _fake_modules():
    """Register the stand-ins under chumpy's / old scipy's module names, only meanwhile."""
    saved = {}
    try:
        for name in ("chumpy", *_STAND_INS):  # pickle imports the parent package too
            saved[name] = sys.modules.get(name)
            module = types.ModuleType(name)
            for cls in _STAND_INS.get(name, []):
                cls.__module__ = name
                setattr(module, cls.__name__, cls)
            sys.modules[name] = module
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for classes in _STAND_INS.values():
            for cls in classes:
                cls.__module__ = __name__


class _Python2Pickler(pickle._Pickler):
    """Writes bytes and ASCII str as Python 2 `str` (SHORT_BINSTRING / BINSTRING), as a
    Python 2 pickler does; Python 3 reads them back as str with encoding='latin1'."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def _binstring(self, data):
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)

    def save_bytes(self, obj):
        self._binstring(obj)
        self.memoize(obj)

    def save_str(self, obj):
        if not obj.isascii():
            return pickle._Pickler.save_str(self, obj)
        self._binstring(obj.encode("ascii"))
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def python2_pickle(obj, old_numpy_path=True) -> bytes:
    buffer = io.BytesIO()
    with _fake_modules():
        _Python2Pickler(buffer, protocol=2).dump(obj)
    data = buffer.getvalue()
    if old_numpy_path:
        # GLOBAL opcodes of protocol 2 are text lines, so the module name can be swapped.
        data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    return data


def chumpy_dict(arrays):
    """The official .pkl dict: Ch / csc / ndarray values as in the released files."""
    return {
        "v_template": Ch(arrays["v_template"]),
        "shapedirs": Ch(arrays["shapedirs"]),
        "posedirs": arrays["posedirs"],
        "J_regressor": csc_matrix(arrays["J_regressor"]),
        "J_regressor_prior": csc_matrix(arrays["J_regressor"]),
        "weights": arrays["weights"],
        "weights_prior": arrays["weights"],
        "kintree_table": arrays["kintree_table"],
        "f": arrays["f"],
        "J": arrays["J_regressor"] @ arrays["v_template"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "vert_sym_idxs": np.arange(len(arrays["v_template"]))[::-1].copy(),
        # Some files hold chumpy expressions: a Select of a Ch.
        "J_select": Select(Ch(arrays["v_template"]), np.array([5, 4, 3, 2, 1, 0]), (2, 3)),
    }


def sparse_arrays(arrays):
    """The random arrays with a sparse-looking joint regressor (as in the real files)."""
    regressor = arrays["J_regressor"].copy()
    regressor[regressor < np.quantile(regressor, 0.9, axis=1, keepdims=True)] = 0.0
    return dict(arrays, J_regressor=regressor / regressor.sum(axis=1, keepdims=True))


def assert_models_identical(a, b):
    assert a.parents == b.parents
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------------------
# Official .pkl files


@pytest.mark.parametrize("old_numpy_path", [True, False], ids=["numpy.core", "numpy._core"])
def test_load_chumpy_pickle(tmp_path, smpl_arrays, old_numpy_path):
    arrays = sparse_arrays(smpl_arrays(seed=0))
    data = python2_pickle(chumpy_dict(arrays), old_numpy_path)
    # The file really is what an official one holds.
    for name in (b"cchumpy.ch\nCh\n", b"cchumpy.reordering\nSelect\n",
                 b"cscipy.sparse.csc\ncsc_matrix\n", b"U\nv_template"):  # fmt: skip
        assert name in data, name
    numpy_path = b"cnumpy.core.multiarray\n" if old_numpy_path else b"cnumpy._core.multiarray\n"
    assert numpy_path in data and b"codecs" not in data
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(data)
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules

    raw = load_arrays(path)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f"):
        assert raw[key].dtype == arrays[key].dtype, key
        np.testing.assert_array_equal(raw[key], arrays[key], key)
    np.testing.assert_array_equal(raw["kintree_table"], arrays["kintree_table"])
    assert raw["kintree_table"].dtype == np.uint32 and raw["kintree_table"][0, 0] == 4294967295
    np.testing.assert_array_equal(
        raw["J_select"], arrays["v_template"].ravel()[5::-1].reshape(2, 3)
    )
    assert str(raw["bs_style"]) == "lbs" and str(raw["bs_type"]) == "lrotmin"

    body = smpl_jax.load(path)
    assert_models_identical(body, model_from_arrays(arrays))
    np.testing.assert_array_equal(body.J_regressor, arrays["J_regressor"].astype(np.float32))
    assert body.num_vertices == 400 and body.num_betas == 10 and body.faces.dtype == jnp.int32


def test_load_pickle_written_by_python3_protocol_2(tmp_path, smpl_arrays):
    """A .pkl re-saved by Python 3 with protocol=2 (for Python 2 readers): bytes are then
    written as `_codecs.encode(str, 'latin1')`, a harmless global the loader must allow."""
    arrays = smpl_arrays(seed=1)
    plain = {k: arrays[k] for k in ("v_template", "shapedirs", "posedirs", "J_regressor",
                                    "weights", "kintree_table", "f")}  # fmt: skip
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(plain, protocol=2))
    assert b"c_codecs\nencode\n" in path.read_bytes()
    raw = load_arrays(path)
    for key, value in plain.items():
        np.testing.assert_array_equal(raw[key], value, key)


@pytest.mark.parametrize("sparse_format", ["csc", "csr"])
def test_load_pickle_without_chumpy_with_modern_scipy_sparse(tmp_path, smpl_arrays, sparse_format):
    """Files converted for chumpy-free use: plain ndarrays (protocol 5) and a regressor
    pickled by today's scipy (`scipy.sparse._csc.csc_matrix` / `_csr.csr_matrix`, whose
    pickled state no longer carries a 'format' entry)."""
    arrays = sparse_arrays(smpl_arrays(seed=2))
    matrix = {"csc": scipy.sparse.csc_matrix, "csr": scipy.sparse.csr_matrix}[sparse_format]
    data = pickle.dumps(dict(arrays, J_regressor=matrix(arrays["J_regressor"])), protocol=5)
    assert f"scipy.sparse._{sparse_format}".encode() in data
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(data)
    raw = load_arrays(path)
    np.testing.assert_array_equal(raw["J_regressor"], arrays["J_regressor"])
    assert_models_identical(smpl_jax.load(path), model_from_arrays(arrays))


# --------------------------------------------------------------------------------------
# Malicious pickles: refused before anything runs


def _payloads(marker):
    """name → (object whose unpickling runs a command, the global's name in protocols 2, 5).

    Protocol 2 writes Python 2 names (pickle's fix_imports): __builtin__, commands."""
    system = f"{os.system.__module__}.system"  # posix.system on Linux
    return {
        "os.system": (Payload(os.system, f"touch {marker}"), (system, system)),
        "builtins.eval": (Payload(eval, f"open({str(marker)!r}, 'w').close()"),
                          ("__builtin__.eval", "builtins.eval")),
        "subprocess.Popen": (Payload(subprocess.Popen, ["touch", str(marker)]),
                             ("commands.Popen", "subprocess.Popen")),
    }  # fmt: skip


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "subprocess.Popen"])
@pytest.mark.parametrize("protocol", [2, 5])
def test_malicious_pickle_is_refused(tmp_path, smpl_arrays, payload, protocol):
    marker = tmp_path / "pwned"
    obj, names = _payloads(marker)[payload]
    global_name = names[0] if protocol == 2 else names[1]
    # Hidden among real arrays, after them in the stream.
    content = dict(smpl_arrays(seed=3, num_vertices=20), pose_training_info=obj)
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    # Protocol 2 as Python 2 wrote it (Python 3's protocol 2 adds `_codecs.encode`).
    path.write_bytes(
        python2_pickle(content) if protocol == 2 else pickle.dumps(content, protocol=5)
    )
    with pytest.raises(pickle.UnpicklingError) as info:
        smpl_jax.load(path)
    message = str(info.value)
    assert f"'{global_name}'" in message and str(path) in message, message
    assert "refusing" in message
    assert not marker.exists()  # the payload did not run


def test_malicious_payloads_are_live(tmp_path):
    """The payloads above do run under a plain pickle.load (so their refusal means
    something)."""
    for name in ("os.system", "builtins.eval"):
        marker = tmp_path / f"pwned_{name}"
        obj, _ = _payloads(marker)[name]
        pickle.loads(pickle.dumps(obj, protocol=2))
        assert marker.exists(), name


def test_malicious_global_inside_a_chumpy_object_is_refused(tmp_path, smpl_arrays):
    marker = tmp_path / "pwned"
    content = chumpy_dict(smpl_arrays(seed=4, num_vertices=20))
    content["v_template"].label = Payload(os.system, f"touch {marker}")
    path = tmp_path / "model.pkl"
    path.write_bytes(python2_pickle(content))
    with pytest.raises(pickle.UnpicklingError, match=r"system"):
        smpl_jax.load(path)
    assert not marker.exists()


# --------------------------------------------------------------------------------------
# .npz


def float32_arrays(arrays):
    """A float32 model saved and loaded again is identical only if built from float32
    data (from float64 data, its derived joint arrays were rounded from exact values)."""
    return {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in arrays.items()}


def test_npz_round_trip_float32(tmp_path, smpl_arrays):
    arrays = float32_arrays(smpl_arrays(seed=5))
    with jax.enable_x64(False):
        body = model_from_arrays(arrays)
        path = smpl_jax.save_npz(body, tmp_path / "model.npz")
        assert path == tmp_path / "model.npz"
        again = smpl_jax.load(path)
        assert_models_identical(again, body)
        rng = np.random.default_rng(5)
        inputs = (rng.standard_normal((5, 10)), rng.uniform(-2, 2, (5, 69)),
                  rng.uniform(-2, 2, (5, 3)), rng.standard_normal((5, 3)))  # fmt: skip
        for x, y in zip(body(*inputs), again(*inputs), strict=True):
            np.testing.assert_array_equal(x, y)
    with np.load(path) as saved:
        assert set(saved.files) >= {"v_template", "shapedirs", "posedirs", "J_regressor",
                                     "weights", "kintree_table", "f"}  # fmt: skip
        for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f"):
            np.testing.assert_array_equal(saved[key], arrays[key], key)
        np.testing.assert_array_equal(saved["kintree_table"][0].astype(np.int64) % 2**32,
                                      arrays["kintree_table"][0])  # fmt: skip


def test_npz_round_trip_float64(x64, tmp_path, smpl_arrays):
    arrays = smpl_arrays(seed=6)
    body = model_from_arrays(arrays, dtype=jnp.float64)
    path = smpl_jax.save_npz(body, tmp_path / "model.npz")
    raw = load_arrays(path)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        np.testing.assert_array_equal(raw[key], arrays[key], key)  # the data survives...
    # ...and so must the model built from it, derived arrays included (joint_shapedirs =
    # einsum(J_regressor, shapedirs)): bit for bit, as a float64 model has nothing to round.
    assert_models_identical(smpl_jax.load(path, dtype=jnp.float64), body)


def test_save_npz_from_arrays_keeps_extras(tmp_path, smpl_arrays):
    arrays = dict(smpl_arrays(seed=7), J_regressor_h36m=np.ones((17, 400)))
    path = smpl_jax.save_npz(arrays, tmp_path / "model.npz")
    raw = load_arrays(path)
    assert set(raw) == set(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(raw[key], value, key)
    with pytest.raises(KeyError, match=r"missing key\(s\) \['weights'\]"):
        smpl_jax.save_npz({k: v for k, v in arrays.items() if k != "weights"},
                          tmp_path / "other.npz")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_save_npz_replaces_atomically(tmp_path, smpl_arrays, monkeypatch):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old contents " * 100_000)
    body = model_from_arrays(float32_arrays(smpl_arrays(seed=8)))
    smpl_jax.save_npz(body, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temp files
    assert_models_identical(smpl_jax.load(path), body)
    good = path.read_bytes()

    # A write that dies half-way leaves the previous file whole and no temp file behind.
    def savez_then_fail(file, **arrays):
        file.write(good[: len(good) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="No space left"):
        smpl_jax.save_npz(model_from_arrays(smpl_arrays(seed=9)), path)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


# --------------------------------------------------------------------------------------
# num_betas, dtype


def test_file_with_300_betas(tmp_path, smpl_arrays):
    arrays = smpl_arrays(seed=10, num_betas=300)  # SMPL v1.1.0 layout
    path = tmp_path / "SMPL_NEUTRAL_v1.1.0.npz"
    np.savez(path, **arrays)
    with jax.enable_x64(True):
        ten = smpl_jax.load(path, num_betas=10, dtype=jnp.float64)
        full = smpl_jax.load(path, num_betas=300, dtype=jnp.float64)
    assert ten.num_betas == 10 and full.num_betas == 300
    for k in (0, 9, 299):
        body = full if k >= 10 else ten
        # Planar layout: row k is shape component k as (x-plane, y-plane, z-plane).
        np.testing.assert_array_equal(body.shapedirs[k], arrays["shapedirs"][:, :, k].T.ravel())
    np.testing.assert_array_equal(ten.shapedirs, full.shapedirs[:10])
    np.testing.assert_allclose(full.joint_shapedirs[299],
                               (arrays["J_regressor"] @ arrays["shapedirs"][:, :, 299]).ravel(),
                               rtol=1e-12, atol=1e-15)  # fmt: skip
    for bad in (301, 0):
        with pytest.raises(ValueError, match=rf"num_betas={bad}.*300 shape components"):
            smpl_jax.load(path, num_betas=bad)


def test_float64_without_x64_is_a_clear_error(smpl_arrays):
    with jax.enable_x64(False), pytest.raises(ValueError, match="jax_enable_x64"):
        model_from_arrays(smpl_arrays(seed=11, num_vertices=20), dtype=jnp.float64)
    with pytest.raises(ValueError, match="float32 or float64"):
        model_from_arrays(smpl_arrays(seed=11, num_vertices=20), dtype=jnp.float16)


# --------------------------------------------------------------------------------------
# Validation: messages name the file, the key and the expected shape


def test_missing_file_says_where_to_get_smpl(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    with pytest.raises(FileNotFoundError) as info:
        smpl_jax.load(path)
    message = str(info.value)
    assert str(path) in message
    assert "licensed" in message and "https://smpl.is.tue.mpg.de" in message
    assert "load_builtin" in message  # and the redistributable alternative


def _with(arrays, **changes):
    out = dict(arrays)
    for key, value in changes.items():
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


def _parents(*edits):
    table = np.stack([np.array([4294967295, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13,
                                14, 16, 17, 18, 19, 20, 21], np.uint32),
                      np.arange(24, dtype=np.uint32)])  # fmt: skip
    for joint, parent in edits:
        table[0, joint] = parent
    return table


def _bad_cases(a):
    nan_v = a["v_template"].copy()
    nan_v[7, 1] = np.nan
    inf_w = a["weights"].copy()
    inf_w[3, 2] = np.inf
    faces_high = a["f"].copy()
    faces_high[10, 2] = 400
    faces_negative = a["f"].astype(np.int64)
    faces_negative[0, 0] = -1
    return {
        "missing_posedirs": (KeyError, _with(a, posedirs=None), r"missing key\(s\) \['posedirs'\]"),
        "v_template_2d": (ValueError, _with(a, v_template=a["v_template"][:, :2]),
                          r"'v_template' has shape \(400, 2\), expected \(\*, 3\)"),
        "weights_23": (ValueError, _with(a, weights=a["weights"][:, :23]),
                       r"'weights' has shape \(400, 23\), expected \(400, 24\)"),
        "posedirs_206": (ValueError, _with(a, posedirs=a["posedirs"][:, :, :206]),
                         r"'posedirs' has shape \(400, 3, 206\), expected \(400, 3, 207\)"),
        "shapedirs_vertices": (ValueError, _with(a, shapedirs=a["shapedirs"][:399]),
                               r"'shapedirs' has shape \(399, 3, 10\), expected \(400, 3, \*\)"),
        "regressor_transposed": (ValueError, _with(a, J_regressor=a["J_regressor"].T),
                                 r"'J_regressor' has shape \(400, 24\), expected \(24, 400\)"),
        "faces_4": (ValueError, _with(a, f=np.zeros((5, 4), np.uint32)),
                    r"'f' has shape \(5, 4\), expected \(\*, 3\)"),
        "parent_after_child": (ValueError, _with(a, kintree_table=_parents((5, 7))),
                               r"joint 5 has parent 7"),
        "two_roots": (ValueError, _with(a, kintree_table=_parents((5, 4294967295))),
                      r"joint 5 has parent -1"),
        "root_not_first": (ValueError, _with(a, kintree_table=_parents((0, 1))),
                           r"joint 0 must be the root"),
        "nan_v_template": (ValueError, _with(a, v_template=nan_v), r"'v_template' contains NaN"),
        "inf_weights": (ValueError, _with(a, weights=inf_w), r"'weights' contains NaN or inf"),
        "faces_out_of_range": (ValueError, _with(a, f=faces_high),
                               r"'f' indexes vertices outside \[0, 400\)"),
        "faces_negative": (ValueError, _with(a, f=faces_negative),
                           r"'f' indexes vertices outside \[0, 400\)"),
    }  # fmt: skip


BAD_CASES = ["missing_posedirs", "v_template_2d", "weights_23", "posedirs_206",
             "shapedirs_vertices", "regressor_transposed", "faces_4", "parent_after_child",
             "two_roots", "root_not_first", "nan_v_template", "inf_weights",
             "faces_out_of_range", "faces_negative"]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_invalid_model_file(tmp_path, smpl_arrays, case):
    error, arrays, pattern = _bad_cases(smpl_arrays(seed=12))[case]
    path = tmp_path / "bad_model.npz"
    np.savez(path, **arrays)
    with pytest.raises(error, match=pattern) as info:
        smpl_jax.load(path)
    assert str(path) in str(info.value)


def _truncated(data):
    return data[: len(data) // 2]


def _flipped(data):
    """Bytes in the middle overwritten: an array's payload, CRC-checked in a zip."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


@pytest.mark.parametrize(
    "suffix, damage",
    [
        (".npz", _truncated),
        (".npz", _flipped),
        (".npz", lambda data: b"this is not a zip file"),
        (".npz", lambda data: b""),
        (".pkl", _truncated),
        (".pkl", lambda data: data[:-1]),  # lost the STOP opcode
        (".pkl", lambda data: b"this is not a pickle"),
        (".pkl", lambda data: b""),
        (".pkl", lambda data: pickle.dumps([1, 2, 3], protocol=2)),  # a pickle, not a dict
    ],
    ids=["npz_truncated", "npz_flipped", "npz_garbage", "npz_empty", "pkl_truncated",
         "pkl_no_stop", "pkl_garbage", "pkl_empty", "pkl_list"],
)  # fmt: skip
def test_corrupt_file_is_a_value_error_naming_it(tmp_path, smpl_arrays, suffix, damage):
    arrays = smpl_arrays(seed=13)
    good = tmp_path / ("good" + suffix)
    if suffix == ".npz":
        np.savez(good, **arrays)
    else:
        good.write_bytes(python2_pickle(chumpy_dict(arrays)))
    path = tmp_path / ("bad" + suffix)
    path.write_bytes(damage(good.read_bytes()))
    with pytest.raises(ValueError) as info:
        smpl_jax.load(path)
    assert str(path) in str(info.value)


def test_unknown_suffix(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF")
    with pytest.raises(ValueError, match=r"unknown SMPL model file type '\.h5'.*\.pkl or \.npz"):
        smpl_jax.load(path)


def test_npz_with_pickled_object_arrays_is_refused(tmp_path, smpl_arrays):
    """np.load(allow_pickle=False): an object array in a .npz cannot run code."""
    path = tmp_path / "model.npz"
    np.savez(path, **smpl_arrays(seed=14, num_vertices=20), extra=np.array([{}], dtype=object))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        smpl_jax.load(path)
    assert zipfile.is_zipfile(path)


# --------------------------------------------------------------------------------------
# Pickles written by chumpy itself (tests/fixtures/make_chumpy_fixtures.py)

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.mark.parametrize("num_betas", [10, 300])
def test_pickle_written_by_chumpy_equals_its_npz_twin(num_betas):
    """The official layout as chumpy wrote it (`Ch` with a pickled set, `Select`, csc under
    scipy's old and new paths) loads without chumpy, array for array equal to its twin."""
    pkl, npz = (FIXTURES / f"chumpy_smpl_{num_betas}{ext}" for ext in (".pkl", ".npz"))
    data = pkl.read_bytes()
    assert b"chumpy.ch\nCh\n" in data and b"__builtin__\nset\n" in data
    assert "chumpy" not in sys.modules
    from_pickle, from_npz = load_arrays(pkl), load_arrays(npz)
    assert sorted(from_pickle) == sorted(from_npz)
    for key, value in from_npz.items():
        assert from_pickle[key].dtype == value.dtype, key
        np.testing.assert_array_equal(from_pickle[key], value, key)
    assert_models_identical(smpl_jax.load(pkl, num_betas), smpl_jax.load(npz, num_betas))


@pytest.mark.parametrize("num_betas", [10, 300])
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-6), ("float32", 2e-5)])
def test_pickle_written_by_chumpy_gives_smplx_vertices_and_joints(num_betas, dtype, rtol):
    """Golden values: smplx 0.1.28 (with real chumpy) on the same file, float64."""
    golden = np.load(FIXTURES / f"chumpy_smpl_{num_betas}_smplx_golden.npz")
    with jax.enable_x64(dtype == "float64"):
        body = smpl_jax.load(FIXTURES / f"chumpy_smpl_{num_betas}.pkl", num_betas, dtype)
        out = body(**{k: jnp.asarray(golden[k], dtype)
                      for k in ("betas", "body_pose", "global_orient", "transl")})  # fmt: skip
        for key in ("vertices", "joints"):
            got, want = np.asarray(getattr(out, key), np.float64), golden[key]
            scale = np.abs(want).max()
            assert np.abs(got - want).max() <= rtol * scale, (key, np.abs(got - want).max())
