"""Hostile and corrupt files through every pickle-reading loader, in a child process.

Each file is hand-assembled from pickle opcodes so that every path of the interpreter
(`smpl_jax.safe_pickle`) is exercised: GLOBAL, STACK_GLOBAL, INST, OBJ, REDUCE, BUILD,
NEWOBJ, persistent ids, extension codes, out-of-band buffers; numpy internals (crafted
dtype states, object arrays); memory amplification (declared sizes far beyond the bytes
present); deep nesting, self-references, exponential sharing; truncation. The loaders
run in a child (`hostile_loader_worker.py`) so that a crash fails the test instead of
killing pytest. Every case must end in one exception of the project's kinds whose
message names the file; no marker file may appear (nothing ran); numpy must be unchanged;
peak memory must stay small.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

P = pickle
WORKER = Path(__file__).parents[1] / "hostile_loader_worker.py"
#: What a refusal may be: the project's messages are ValueErrors or UnpicklingErrors.
ALLOWED = {"ValueError", "UnsafePickleError", "PickleDataError", "UnsafeCheckpointError",
           "CheckpointFormatError"}  # fmt: skip


def g(module, name):  # GLOBAL
    return P.GLOBAL + f"{module}\n{name}\n".encode()


def s(text):  # BINUNICODE
    data = text.encode()
    return P.BINUNICODE + struct.pack("<I", len(data)) + data


def b(data):  # BINBYTES
    return P.BINBYTES + struct.pack("<I", len(data)) + data


def i(n):  # BININT, or LONG1 beyond 32 bits
    if -(2**31) <= n < 2**31:
        return P.BININT + struct.pack("<i", n)
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return P.LONG1 + bytes([len(data)]) + data


def tup(*parts):
    return P.MARK + b"".join(parts) + P.TUPLE


def proto(n):
    return P.PROTO + bytes([n])


def keyed(key, value_ops, protocol=2):
    """A pickle of {key: <value built by value_ops>}."""
    return proto(protocol) + P.EMPTY_DICT + s(key) + value_ops + P.SETITEM + P.STOP


def dtype(name, state=None):
    state = state or tup(i(3), s("<"), P.NONE, P.NONE, P.NONE, i(-1), i(-1), i(0))
    return g("numpy", "dtype") + tup(s(name), P.NEWFALSE, P.NEWTRUE) + P.REDUCE + state + P.BUILD


def ndarray(shape_ops, dtype_ops, raw_ops):
    return (g("numpy.core.multiarray", "_reconstruct") + tup(g("numpy", "ndarray"), tup(i(0)),
            b(b"b")) + P.REDUCE + tup(i(1), shape_ops, dtype_ops, P.NEWFALSE, raw_ops)
            + P.BUILD)  # fmt: skip


def nested_lists(depth):
    return P.EMPTY_LIST * depth + P.APPEND * (depth - 1)


def self_list():
    return P.EMPTY_LIST + P.BINPUT + b"\x00" + P.BINGET + b"\x00" + P.APPEND


def shared_tuples(width, depth):
    """A tuple of `width` references to a tuple of `width` references ... (width^depth)."""
    ops = i(1)
    for level in range(depth):
        ops += P.BINPUT + bytes([level]) + P.POP + P.MARK + (P.BINGET + bytes([level])) * width
        ops += P.TUPLE
    return ops


def ch(state_ops):
    return g("chumpy.ch", "Ch") + P.EMPTY_TUPLE + P.NEWOBJ + state_ops + P.BUILD


def pickle_cases(marker):
    """name -> pickle bytes; each must be refused (marker: a file nothing may create)."""
    cmd = f"touch {marker}"
    f8 = dtype("f8")
    return {
        "global_reduce": proto(2) + g("os", "system") + tup(s(cmd)) + P.REDUCE + P.STOP,
        "posix_reduce": proto(2) + g("posix", "system") + tup(s(cmd)) + P.REDUCE + P.STOP,
        "stack_global": proto(4) + s("builtins") + s("eval") + P.STACK_GLOBAL
        + tup(s(f"open({str(marker)!r}, 'w')")) + P.REDUCE + P.STOP,
        "inst": f"(S'{cmd}'\nios\nsystem\n.".encode(),
        "obj": proto(1) + P.MARK + g("os", "system") + s(cmd) + P.OBJ + P.STOP,
        "newobj": proto(2) + g("subprocess", "Popen") + tup(P.MARK + s("touch") + s(str(marker))
                                                             + P.LIST) + P.NEWOBJ + P.STOP,
        "newobj_ex": proto(4) + g("subprocess", "Popen") + tup(s("touch")) + P.EMPTY_DICT
        + P.NEWOBJ_EX + P.STOP,
        "newobj_of_admitted_function": proto(2) + g("numpy.core.multiarray", "_reconstruct")
        + P.EMPTY_TUPLE + P.NEWOBJ + P.STOP,
        "build_sets_function_defaults": proto(2) + g("numpy.core.multiarray", "_reconstruct")
        + P.EMPTY_DICT + s("__defaults__") + tup(i(1)) + P.SETITEM + P.BUILD + P.STOP,
        "build_slots_on_function": proto(2) + g("numpy.core.numeric", "_frombuffer")
        + tup(P.NONE, P.EMPTY_DICT + s("__kwdefaults__") + P.EMPTY_DICT + P.SETITEM)
        + P.BUILD + P.STOP,
        "build_on_dtype_class": proto(2) + g("numpy", "dtype") + P.EMPTY_DICT + s("names")
        + i(1) + P.SETITEM + P.BUILD + P.STOP,
        "build_on_a_dict": proto(2) + P.EMPTY_DICT + P.EMPTY_DICT + s("x") + i(1) + P.SETITEM
        + P.BUILD + P.STOP,
        "reduce_on_a_class_marker": proto(2) + g("numpy", "ndarray") + tup(i(3)) + P.REDUCE
        + P.STOP,
        "copyreg_reconstructor_of_os": proto(1) + g("copy_reg", "_reconstructor")
        + tup(g("os", "system"), g("__builtin__", "object"), P.NONE) + P.REDUCE + P.STOP,
        "dtype_with_fields": keyed("v_template", ndarray(tup(i(1)), dtype("V8", tup(
            i(3), s("|"), P.NONE, tup(s("a")), P.EMPTY_DICT + s("a") + tup(f8, i(0))
            + P.SETITEM, i(8), i(1), i(0))), b(b"\0" * 8))),
        "dtype_object": keyed("v_template", ndarray(tup(i(1)), dtype("O8"), b(b"\0" * 8))),
        "dtype_datetime": keyed("v_template", ndarray(tup(i(1)), dtype("M8"), b(b"\0" * 8))),
        "dtype_subarray": keyed("v_template", ndarray(tup(i(1)), dtype("V8", tup(
            i(3), s("|"), tup(f8, tup(i(1))), P.NONE, P.NONE, i(8), i(1), i(0))), b(b"\0" * 8))),
        "dtype_huge_itemsize": keyed("v_template", ndarray(tup(i(1)), dtype("S1", tup(
            i(3), s("|"), P.NONE, P.NONE, P.NONE, i(2**31 - 1), i(1), i(0))), b(b"x"))),
        "object_array": keyed("v_template", ndarray(tup(i(2)), f8, P.MARK + i(1) + i(2)
                                                    + P.LIST)),
        "ext1": proto(2) + P.EXT1 + b"\x01" + P.STOP,
        "persid": b"Pfoo\n.",
        "binpersid": proto(2) + s("foo") + P.BINPERSID + P.STOP,
        "next_buffer": proto(5) + P.NEXT_BUFFER + P.STOP,
        "binbytes8_2tb": proto(4) + P.BINBYTES8 + struct.pack("<Q", 2**41) + b"x" + P.STOP,
        "binunicode8_2tb": proto(4) + P.BINUNICODE8 + struct.pack("<Q", 2**41) + b"x" + P.STOP,
        "array_of_1e12_elements": keyed("v_template", ndarray(tup(i(10**6), i(10**6)), f8,
                                                              b(b"\0" * 8))),
        "array_of_2e19_elements": keyed("v_template", ndarray(
            tup(P.LONG1 + b"\x09" + (2**64 + 8).to_bytes(9, "little")), f8, b(b"\0" * 8))),
        "sparse_1e12_dense": keyed("J_regressor", g("scipy.sparse.csc", "csc_matrix")
                                   + P.EMPTY_TUPLE + P.NEWOBJ + P.EMPTY_DICT
                                   + s("_shape") + tup(i(10**6), i(10**6)) + P.SETITEM
                                   + P.BUILD),
        "deep_lists": keyed("v_template", nested_lists(100_000)),
        "deep_tuples": keyed("v_template", i(0) + P.TUPLE1 * 100_000),
        "deep_chumpy": keyed("v_template", b"".join(
            g("chumpy.ch", "Ch") + P.EMPTY_TUPLE + P.NEWOBJ + P.EMPTY_DICT + s("x")
            for _ in range(2_000)) + i(0) + (P.SETITEM + P.BUILD) * 2_000),
        "self_list": keyed("v_template", self_list()),
        "self_chumpy": keyed("v_template", g("chumpy.ch", "Ch") + P.EMPTY_TUPLE + P.NEWOBJ
                             + P.BINPUT + b"\x05" + P.EMPTY_DICT + s("x") + P.BINGET + b"\x05"
                             + P.SETITEM + P.BUILD),
        "self_select": keyed("v_template", g("chumpy.reordering", "Select") + P.EMPTY_TUPLE
                             + P.NEWOBJ + P.BINPUT + b"\x05" + P.EMPTY_DICT + s("a")
                             + P.BINGET + b"\x05" + s("idxs") + P.BINGET + b"\x05"
                             + P.SETITEMS[:0] + P.SETITEM + P.SETITEM + P.BUILD),
        "exponential_sharing": keyed("v_template", shared_tuples(40, 12)),
        "colliding_int_keys": proto(2) + P.EMPTY_DICT + P.MARK
        + b"".join(P.LONG1 + b"\x09" + (k * (2**61 - 1)).to_bytes(9, "little") + i(0)
                   for k in range(1, 2000)) + P.SETITEMS + P.STOP,
        "unhashable_key": proto(2) + P.EMPTY_DICT + P.EMPTY_LIST + i(1) + P.SETITEM + P.STOP,
        "not_a_dict": proto(2) + P.EMPTY_LIST + P.STOP,
        "garbage": b"\x80\x02\xff\xfe not a pickle",
        "empty": b"",
        "stack_underflow": proto(2) + P.APPEND + P.STOP,
        "unbalanced_stop": proto(2) + i(1) + i(2) + P.STOP,
        "memo_miss": proto(2) + P.BINGET + b"\x07" + P.STOP,
        "protocol_99": P.PROTO + b"\x63" + P.NONE + P.STOP,
        "huge_int_text": b"I" + b"9" * 100_000 + b"\n.",
        "bad_string_quote": b"S'abc\n.",
        "build_twice": keyed("v_template", ch(P.EMPTY_DICT) + P.EMPTY_DICT + P.BUILD),
        "select_out_of_range": keyed("v_template", g("chumpy.reordering", "Select")
                                     + P.EMPTY_TUPLE + P.NEWOBJ + P.EMPTY_DICT + s("a")
                                     + ndarray(tup(i(2)), f8, b(b"\0" * 16)) + P.SETITEM
                                     + s("idxs") + ndarray(tup(i(1)), dtype("i8"),
                                                           b(struct.pack("<q", 10**9)))
                                     + P.SETITEM + P.BUILD),
    }  # fmt: skip


def _model_pickle(rng):
    """A small valid SMPL-layout pickle (plain arrays, protocol 2) to truncate."""
    nv = 30
    weights = rng.random((nv, 24))
    return pickle.dumps({
        "v_template": rng.normal(size=(nv, 3)), "shapedirs": rng.normal(size=(nv, 3, 10)),
        "posedirs": rng.normal(size=(nv, 3, 207)), "J_regressor": rng.random((24, nv)),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.array([[2**32 - 1] + [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9,
                                                  12, 13, 14, 16, 17, 18, 19, 20, 21],
                                   list(range(24))], np.uint32),
        "f": rng.integers(0, nv, (40, 3)).astype(np.uint32)}, protocol=2)  # fmt: skip


def _torch_zip(path, pickled, records=(), compress=False):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", "little")
        for name, data in records:
            z.writestr(f"archive/data/{name}", data)


def _tensor(size, stride, numel=1, key="0"):
    """Pickle ops of torch._utils._rebuild_tensor_v2 over storage `key` of `numel` floats."""
    pid = tup(s("storage"), g("torch", "FloatStorage"), s(key), s("cpu"), i(numel))
    return (g("torch._utils", "_rebuild_tensor_v2") + tup(pid + P.BINPERSID, i(0),
            tup(*map(i, size)), tup(*map(i, stride)), P.NEWFALSE,
            g("collections", "OrderedDict") + P.EMPTY_TUPLE + P.REDUCE) + P.REDUCE)  # fmt: skip


def torch_cases(tmp_path, marker):
    """name -> path of a hostile or corrupt torch checkpoint."""
    out = {}

    def add(name, pickled, records=(), compress=False):
        out[name] = tmp_path / f"{name}.pth"
        _torch_zip(out[name], pickled, records, compress)

    add("torch_system", proto(2) + g("os", "system") + tup(s(f"touch {marker}")) + P.REDUCE
        + P.STOP)  # fmt: skip
    add("torch_zero_strides", keyed("w", _tensor((100_000, 100_000), (0, 0))), [("0", b"\0" * 4)])
    add("torch_deflated_bomb", keyed("w", _tensor((20 * 2**20,), (1,), numel=20 * 2**20)),
        [("0", bytes(80 * 2**20))], compress=True)  # fmt: skip
    add("torch_nested", keyed("w", nested_lists(100_000)))
    add("torch_self_list", keyed("w", self_list()))
    add("torch_exponential", keyed("w", shared_tuples(40, 12)))
    add("torch_build_on_storage_type", proto(2) + g("torch", "FloatStorage") + P.EMPTY_DICT
        + P.BUILD + P.STOP)  # fmt: skip
    add("torch_missing_record", keyed("w", _tensor((2,), (1,), numel=2)))
    good = tmp_path / "good.pth"
    _torch_zip(good, keyed("w", _tensor((2,), (1,), numel=2)), [("0", b"\0" * 8)])
    out["torch_truncated"] = tmp_path / "torch_truncated.pth"
    out["torch_truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    legacy = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        legacy.write(pickle.dumps(header, protocol=2))
    pid = tup(s("storage"), g("torch", "FloatStorage"), s("0"), s("cpu"), i(2**40), P.NONE)
    legacy.write(keyed("w", g("torch._utils", "_rebuild_tensor") + tup(
        pid + P.BINPERSID, i(0), tup(i(2**40)), tup(i(1))) + P.REDUCE))  # fmt: skip
    legacy.write(pickle.dumps(["0"], protocol=2) + struct.pack("<q", 2**40) + b"\0" * 64)
    out["torch_legacy_2tb_storage"] = tmp_path / "legacy.pth"
    out["torch_legacy_2tb_storage"].write_bytes(legacy.getvalue())
    return out


def _run_worker(tmp_path, cases):
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps([[loader, str(path)] for loader, path in cases]))
    done = subprocess.run([sys.executable, "-P", str(WORKER), str(cases_file)], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    started = [line for line in done.stderr.splitlines() if line.startswith("case ")]
    assert done.returncode == 0, f"the loader process died ({done.returncode}) in {started[-1:]}"
    return json.loads(done.stdout.splitlines()[-1])


def test_hostile_files_are_refused_without_running_crashing_or_allocating(tmp_path):
    marker = tmp_path / "pwned"
    cases = []
    for name, data in pickle_cases(marker).items():
        for loader, suffix in (("smpl", ".pkl"), ("gmm", ".pkl")):
            path = tmp_path / f"{name}_{loader}{suffix}"
            path.write_bytes(data)
            cases.append((loader, path))
    good = _model_pickle(np.random.default_rng(0))
    for cut in (1, 2, 3, 10, 100, len(good) // 2, len(good) - 1):
        path = tmp_path / f"truncated_{cut}.pkl"
        path.write_bytes(good[:cut])
        cases.append(("smpl", path))
    cases += [("torch", path) for path in torch_cases(tmp_path, marker).values()]
    # A control: the valid model loads in the same process.
    (tmp_path / "good.pkl").write_bytes(good)
    cases.append(("smpl", tmp_path / "good.pkl"))

    report = _run_worker(tmp_path, cases)
    *results, control = report["results"]
    assert control == ["ok", ""]
    # Shared references load (each converted once, costing nothing); all else is refused.
    wrong = {str(path.name): result for (_, path), result in zip(cases[:-1], results, strict=True)
             if (result[0] not in ALLOWED or str(path) not in result[1])
             and not (path.name == "torch_exponential.pth" and result[0] == "ok")}  # fmt: skip
    assert not wrong, json.dumps(wrong, indent=1)[:4000]
    assert not marker.exists()
    assert report["numpy_unchanged"]
    assert report["peak_growth_mib"] < 400, report["peak_growth_mib"]


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_plain_data_reads_back_through_every_protocol(protocol):
    """The interpreter reproduces pickle's own result for plain data and numpy arrays."""
    from smpl_jax import safe_pickle

    value = {"a": [1, 2.5, None, True, "text", b"bytes", (1, 2)], "s": {1, 2},
             "f": frozenset({"x"}), "n": -(2**70), "nested": {"k": [[1], [2, [3]]]},
             "arr": np.arange(6, dtype=">i4").reshape(2, 3),
             "farr": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
             "scalar": np.float32(1.5), "strs": np.array(["ab", "c"]),
             "od": collections.OrderedDict(z=1)}  # fmt: skip
    admitted = {**safe_pickle.NUMPY, **safe_pickle.BUILTINS,
                ("collections", "OrderedDict"): safe_pickle.Admitted("od")}  # fmt: skip
    raw = safe_pickle.load(pickle.dumps(value, protocol=protocol), admitted, source="x")
    out = safe_pickle.plain(raw, "x")
    for key in ("a", "s", "f", "n", "nested"):
        assert out[key] == value[key], key
    for key in ("arr", "farr", "scalar", "strs"):
        assert out[key].dtype == np.asarray(value[key]).dtype, key
        np.testing.assert_array_equal(out[key], value[key])
    assert out["od"].items == {"z": 1}
