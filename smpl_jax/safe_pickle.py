"""Read a pickle as data: an interpreter of pickle opcodes that never runs file code.

`load` executes a pickle's opcodes on a stack machine of its own (no `pickle.Unpickler`,
so no C `__setstate__`, `__reduce__` or import is ever reached). A global is looked up in
the caller's allow-list of `Admitted` names: a class stand-in that becomes an `Obj` record,
or a function of this project's that validates its arguments; everything else is plain
data. Memory and time are linear in the file's size. Details: docs/safe_loading.md.
"""

from __future__ import annotations

import codecs
import io
import pickle
import pickletools
import struct
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

#: Nesting deeper than this (containers in containers, objects in objects) is refused.
MAX_DEPTH = 32

#: Array dtypes a file may declare: bool, integers, floats, complex, bytes and str.
_DTYPE_KINDS = "biufcSU"


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asks for behaviour (a global outside the allow-list, BUILD on a function,
    ...): refused before anything from the file has run."""


class PickleDataError(ValueError):
    """A pickle is corrupt, truncated, too deep, self-referencing or too large."""


class Admitted:
    """An allowed global: a class stand-in (`call` None) or a validating function."""

    __slots__ = ("call", "name")

    def __init__(self, name: str, call: Callable | None = None):
        self.name, self.call = name, call

    def __repr__(self) -> str:
        return f"<admitted {self.name}>"


class Obj:
    """An object a pickle asked for, as data: class name, arguments, BUILD state, and the
    items SETITEM(S) / APPEND(S) added to it (an OrderedDict's entries)."""

    __slots__ = ("appended", "args", "items", "name", "state")

    def __init__(self, name: str, args: tuple = ()):
        self.name, self.args, self.state = name, args, None
        self.items: dict = {}
        self.appended: list = []

    def __repr__(self) -> str:
        return f"<{self.name} record>"


_OPS = {op.code.encode("latin-1"): op for op in pickletools.opcodes}


def _key_ok(key) -> bool:
    """Keys whose hashes a file cannot make collide (ints are hashed by value)."""
    if isinstance(key, str | bytes | Obj | bool | type(None)):
        return True
    if isinstance(key, int):
        return -(2**31) <= key < 2**31
    if isinstance(key, tuple):
        return len(key) <= 8 and all(_key_ok(k) for k in key)
    return False


class _Machine:
    """One pickle's stack machine; `run` returns the object STOP leaves on the stack."""

    def __init__(self, stream, admit, source, persistent_load):
        self.f, self.admit, self.source = stream, admit, source
        self.persistent_load = persistent_load
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def refuse(self, what: str):
        raise UnsafePickleError(f"{self.source}: {what}; nothing from the file has been run.")

    def bad(self, what: str):
        raise PickleDataError(f"{self.source}: {what}")

    def pop_mark(self) -> list:
        if not self.marks:
            self.bad("the pickle is corrupt (an opcode expects a MARK)")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def pop(self, n: int = 1):
        if len(self.stack) - (self.marks[-1] if self.marks else 0) < n:
            self.bad("the pickle is corrupt (stack underflow)")
        if n == 1:
            return self.stack.pop()
        items = self.stack[-n:]
        del self.stack[-n:]
        return items

    def find(self, module: str, name: str):
        found = self.admit(module, name)
        if found is None:
            self.refuse(f"refusing to load global '{module}.{name}'")
        return found

    def make(self, cls, args, how: str) -> Obj:
        if not (isinstance(cls, Admitted) and cls.call is None):
            self.refuse(f"{how} of {_kind(cls)} (only data records may be created)")
        if not isinstance(args, tuple):
            self.bad(f"{how} arguments are {type(args).__name__}, not a tuple")
        return Obj(cls.name, args)

    def call(self, func, args):
        if not isinstance(func, Admitted):
            self.refuse(f"REDUCE calls {_kind(func)}")
        if not isinstance(args, tuple):
            self.bad("REDUCE arguments are not a tuple")
        if func.call is None:
            return Obj(func.name, args)
        return func.call(*args)

    def add_items(self, target, pairs):
        if isinstance(target, Obj):
            target = target.items
        if not isinstance(target, dict):
            self.refuse(f"SETITEM on {_kind(target)}")
        for k, v in pairs:
            if not _key_ok(k):
                self.bad(f"a dict key of type {type(k).__name__} is not allowed")
            target[k] = v

    def run(self):
        f, stack = self.f, self.stack
        while True:
            pos = f.tell()
            code = f.read(1)
            op = _OPS.get(code)
            if op is None:
                if not code:
                    self.bad("the pickle is truncated (no STOP)")
                self.bad(f"unknown pickle opcode {code!r} at byte {pos}")
            name = op.name
            if name == "STRING":  # Python 2 str, escaped: bytes read as latin-1, as pickle does
                line = f.readline()
                if not line.endswith(b"\n") or len(line) < 3 or line[:1] not in b"'\"":
                    self.bad(f"bad STRING at byte {pos}")
                arg = codecs.escape_decode(line[1:-2])[0].decode("latin-1")
            elif op.arg is not None:
                arg = op.arg.reader(f)
            else:
                arg = None
            if name in ("SHORT_BINSTRING", "BINSTRING") and isinstance(arg, bytes):
                arg = arg.decode("latin-1")  # Python 2 str, read as pickle's encoding='latin1'
            if name == "STOP":
                if len(stack) != 1 or self.marks:
                    self.bad("the pickle is corrupt (STOP with an unbalanced stack)")
                return stack.pop()
            if name == "PROTO":
                if arg > pickle.HIGHEST_PROTOCOL:
                    self.bad(f"unsupported pickle protocol {arg}")
            elif name == "FRAME":
                pass
            elif name == "MARK":
                self.marks.append(len(stack))
            elif name == "POP":
                if self.marks and len(stack) == self.marks[-1]:
                    self.marks.pop()  # POP of a MARK discards the mark
                elif stack:
                    stack.pop()
                else:
                    self.bad("the pickle is corrupt (POP of an empty stack)")
            elif name == "POP_MARK":
                self.pop_mark()
            elif name == "DUP":
                stack.append(self.pop())
                stack.append(stack[-1])
            elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
                          "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING",
                          "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
                          "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):  # fmt: skip
                stack.append(arg)
            elif name == "BYTEARRAY8":
                stack.append(bytearray(arg))
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                stack.append(tuple(self.pop(n)) if n > 1 else (self.pop(),))
            elif name == "TUPLE":
                stack.append(tuple(self.pop_mark()))
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "LIST":
                stack.append(self.pop_mark())
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "DICT":
                items = self.pop_mark()
                d: dict = {}
                self.add_items(d, zip(items[::2], items[1::2], strict=False))
                stack.append(d)
            elif name == "EMPTY_SET":
                stack.append(set())
            elif name == "FROZENSET":
                items = self.pop_mark()
                stack.append(frozenset(self.keys(items)))
            elif name == "ADDITEMS":
                items = self.pop_mark()
                target = self.top()
                if not isinstance(target, set):
                    self.refuse(f"ADDITEMS on {_kind(target)}")
                target.update(self.keys(items))
            elif name == "APPEND":
                value = self.pop()
                self.append(self.top(), [value])
            elif name == "APPENDS":
                items = self.pop_mark()
                self.append(self.top(), items)
            elif name == "SETITEM":
                k, v = self.pop(2)
                self.add_items(self.top(), [(k, v)])
            elif name == "SETITEMS":
                items = self.pop_mark()
                if len(items) % 2:
                    self.bad("the pickle is corrupt (SETITEMS with an odd count)")
                self.add_items(self.top(), zip(items[::2], items[1::2], strict=True))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                if not stack or (self.marks and len(stack) == self.marks[-1]):
                    self.bad("the pickle is corrupt (memoize of an empty stack)")
                self.memo[len(self.memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                try:
                    stack.append(self.memo[int(arg)])
                except KeyError:
                    self.bad(f"the pickle is corrupt (memo key {arg} not found)")
            elif name in ("GLOBAL", "INST"):
                module, _, qualname = arg.partition(" ")
                found = self.find(module, qualname)
                if name == "INST":
                    stack.append(self.make(found, tuple(self.pop_mark()), "INST"))
                else:
                    stack.append(found)
            elif name == "STACK_GLOBAL":
                module, qualname = self.pop(2)
                if not (isinstance(module, str) and isinstance(qualname, str)):
                    self.bad("STACK_GLOBAL names are not strings")
                stack.append(self.find(module, qualname))
            elif name == "OBJ":
                items = self.pop_mark()
                if not items:
                    self.bad("the pickle is corrupt (OBJ without a class)")
                stack.append(self.make(items[0], tuple(items[1:]), "OBJ"))
            elif name == "NEWOBJ":
                cls, args = self.pop(2)
                stack.append(self.make(cls, args, "NEWOBJ"))
            elif name == "NEWOBJ_EX":
                cls, args, kwargs = self.pop(3)
                if kwargs:
                    self.refuse("NEWOBJ_EX with keyword arguments")
                stack.append(self.make(cls, args, "NEWOBJ_EX"))
            elif name == "REDUCE":
                func, args = self.pop(2)
                stack.append(self.call(func, args))
            elif name == "BUILD":
                state = self.pop()
                target = self.top()
                if not isinstance(target, Obj):
                    self.refuse(f"BUILD (setting the state) of {_kind(target)}")
                if target.state is not None:
                    self.bad(f"BUILD of a {target.name} record twice")
                target.state = state
            elif name in ("PERSID", "BINPERSID"):
                pid = arg if name == "PERSID" else self.pop()
                if self.persistent_load is None:
                    self.refuse("a persistent id (this kind of file has none)")
                stack.append(self.persistent_load(pid))
            else:  # EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER: never in these files
                self.refuse(f"opcode {name} (not used by this kind of file)")

    def top(self):
        if not self.stack or (self.marks and len(self.stack) == self.marks[-1]):
            self.bad("the pickle is corrupt (empty stack)")
        return self.stack[-1]

    def keys(self, items):
        for k in items:
            if not _key_ok(k):
                self.bad(f"a set member of type {type(k).__name__} is not allowed")
        return items

    def append(self, target, items):
        if isinstance(target, Obj):
            target = target.appended
        if not isinstance(target, list):
            self.refuse(f"APPEND on {_kind(target)}")
        target.extend(items)


def _kind(x) -> str:
    if isinstance(x, Admitted):
        return x.name
    if isinstance(x, Obj):
        return f"a {x.name} record"
    return f"a {type(x).__name__}"


def load(stream, admit: Mapping | Callable, *, source: str, persistent_load=None):
    """Run one pickle from `stream` (bytes or a seekable binary file) as data.

    Args:
      admit: {(module, name): Admitted | marker}, or a function (module, name) -> one or
        None; every other global is refused.
      source: names the file in every message.
      persistent_load: pid -> object, for files with persistent ids (torch); else refused.

    Raises:
      UnsafePickleError (behaviour asked for) or PickleDataError (corrupt data).
    """
    if isinstance(stream, bytes | bytearray | memoryview):
        stream = io.BytesIO(stream)
    lookup = admit if callable(admit) else (lambda m, n: admit.get((m, n)))
    machine = _Machine(stream, lookup, source, persistent_load)
    try:
        return machine.run()
    except (UnsafePickleError, PickleDataError):
        raise
    except (ValueError, TypeError, KeyError, IndexError, EOFError, OverflowError,
            UnicodeError, struct.error) as e:  # fmt: skip
        raise PickleDataError(
            f"{source}: the pickle is truncated or corrupt ({type(e).__name__}: {e})"
        ) from None


# --------------------------------------------------------------------------------------
# numpy arrays, dtypes and scalars as records


def _dtype_record(name, align=False, copy=True):
    return Obj("numpy.dtype", (name, align, copy))


def _reconstruct(cls, shape=(0,), code=b"b"):
    if not (isinstance(cls, Admitted) and cls.name == "numpy.ndarray"):
        raise PickleDataError(f"numpy _reconstruct of {_kind(cls)}, not numpy.ndarray")
    return Obj("numpy.ndarray")


def _scalar(dtype, raw=None):
    return Obj("numpy.scalar", (dtype, raw))


def _frombuffer(buf, dtype, shape, order="C"):
    rec = Obj("numpy.ndarray")
    rec.state = (1, shape, dtype, order == "F", buf)
    return rec


def _latin1_encode(text, encoding="latin1"):
    """Python 3 writes bytes at protocol 2 as `_codecs.encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is admitted only to turn str into latin-1 bytes")
    return text.encode("latin-1")


#: The globals of pickled numpy arrays, dtypes and scalars (numpy 1 and 2 module paths),
#: and of Python 3's protocol-2 bytes: all that a pickle of plain arrays names.
NUMPY: dict[tuple[str, str], Admitted] = {
    **{(m, "_reconstruct"): Admitted("numpy._reconstruct", _reconstruct)
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): Admitted("numpy.scalar", _scalar)
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): Admitted("numpy._frombuffer", _frombuffer)
       for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): Admitted("numpy.ndarray"),
    ("numpy", "dtype"): Admitted("numpy.dtype", _dtype_record),
    ("_codecs", "encode"): Admitted("_codecs.encode", _latin1_encode),
}  # fmt: skip


def _reconstructor(cls, base, state=None):
    """copy_reg._reconstructor(cls, object, None): how protocols 0/1 make an instance."""
    if not (isinstance(cls, Admitted) and cls.call is None):
        raise UnsafePickleError(f"copyreg._reconstructor of {_kind(cls)}")
    if not (isinstance(base, Admitted) and base.name == "builtins.object") or state is not None:
        raise UnsafePickleError("copyreg._reconstructor with a base other than object")
    return Obj(cls.name)


def _collection(kind):
    def make(items=()):
        if not isinstance(items, list | tuple | set | frozenset):
            raise PickleDataError(f"{kind.__name__}() of a {type(items).__name__}")
        if not all(_key_ok(k) for k in items):
            raise PickleDataError(f"a {kind.__name__} member of a type that is not allowed")
        return kind(items)

    return make


#: Python's own data globals under their Python 2 and 3 names.
BUILTINS: dict[tuple[str, str], Admitted] = {
    **{(m, n): Admitted(f"builtins.{n}", _collection({"set": set, "frozenset": frozenset}[n]))
       for m in ("__builtin__", "builtins") for n in ("set", "frozenset")},
    **{(m, "object"): Admitted("builtins.object") for m in ("__builtin__", "builtins")},
    **{(m, "_reconstructor"): Admitted("copyreg._reconstructor", _reconstructor)
       for m in ("copy_reg", "copyreg")},
}  # fmt: skip


def to_dtype(record, source: str) -> np.dtype:
    """A pickled `numpy.dtype` record → a plain dtype (bool, int, float, complex, bytes,
    str; any byte order). Object, structured, sub-array and datetime dtypes are refused."""
    if not (isinstance(record, Obj) and record.name == "numpy.dtype" and record.args):
        raise PickleDataError(f"{source}: an array's dtype is {_kind(record)}")
    name = record.args[0]
    state = record.state if record.state is not None else (3, "=", None, None, None, -1, -1, 0)
    if not isinstance(name, str) or not isinstance(state, tuple) or len(state) not in (8, 9):
        raise PickleDataError(f"{source}: malformed numpy dtype record")
    _, order, sub, names, fields, elsize = state[:6]
    if sub is not None or names is not None or fields is not None or (state[8:] or (None,))[0]:
        raise PickleDataError(f"{source}: structured or sub-array dtype {name!r} refused")
    if len(name) > 8 or name[:1] not in _DTYPE_KINDS or not name[1:].isdigit():
        raise PickleDataError(f"{source}: array dtype {name!r} refused (only plain numbers, "
                              "bytes and str)")  # fmt: skip
    if order not in ("<", ">", "|", "="):
        raise PickleDataError(f"{source}: bad byte order {order!r} in dtype {name!r}")
    if name[0] in "SU":
        if not isinstance(elsize, int) or not 0 <= elsize <= 2**20:
            raise PickleDataError(f"{source}: bad item size in dtype {name!r}")
        dtype = np.dtype(f"{name[0]}{elsize // (4 if name[0] == 'U' else 1)}")
    else:
        dtype = np.dtype(name)
    return dtype.newbyteorder(order) if order in "<>" and dtype.itemsize > 1 else dtype


def _int_tuple(shape, source) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not (isinstance(shape, tuple | list) and len(shape) <= 32
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**48
                    for n in shape)):  # fmt: skip
        raise PickleDataError(f"{source}: bad array shape")
    return tuple(shape)


def is_array(value) -> bool:
    """Whether `to_array` can convert `value` (a numpy array or scalar record)."""
    return isinstance(value, Obj) and value.name in ("numpy.ndarray", "numpy.scalar")


def to_array(record, source: str) -> np.ndarray:
    """A pickled numpy array or scalar record → a read-only array over the file's bytes.

    The declared shape × item size must equal the bytes present, so an array costs no more
    than the file holds.
    """
    if isinstance(record, Obj) and record.name == "numpy.scalar":
        dtype_rec, raw = record.args if len(record.args) == 2 else (None, None)
        dtype = to_dtype(dtype_rec, source)
        raw = raw.encode("latin-1") if isinstance(raw, str) else raw
        if not isinstance(raw, bytes | bytearray) or len(raw) != dtype.itemsize:
            raise PickleDataError(f"{source}: a numpy scalar's bytes do not fit its dtype")
        return np.frombuffer(bytes(raw), dtype).reshape(())
    if not (isinstance(record, Obj) and record.name == "numpy.ndarray"):
        raise PickleDataError(f"{source}: expected a numpy array, found {_kind(record)}")
    state = record.state
    if isinstance(state, tuple) and len(state) == 5:
        state = state[1:]
    if not (isinstance(state, tuple) and len(state) == 4):
        raise PickleDataError(f"{source}: malformed numpy array state")
    shape, dtype_rec, fortran, raw = state
    shape = _int_tuple(shape, source)
    dtype = to_dtype(dtype_rec, source)
    if isinstance(raw, str):
        raw = raw.encode("latin-1")  # a Python 2 str read with encoding='latin1'
    if not isinstance(raw, bytes | bytearray):
        raise PickleDataError(f"{source}: an array of {type(raw).__name__} (object arrays are "
                              "refused)")  # fmt: skip
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw):
        raise PickleDataError(
            f"{source}: an array declares shape {shape} of {dtype} ({count * dtype.itemsize} "
            f"bytes) but holds {len(raw)} bytes"
        )
    return np.frombuffer(bytes(raw), dtype).reshape(shape, order="F" if fortran else "C")


def walk(value, source: str, convert: Callable = lambda node, recurse: node):
    """`value` with its containers (list, tuple, dict, set, frozenset) copied and every other
    node replaced by ``convert(node, recurse)``; `recurse(child)` walks a node's children.

    Refuses self-references and nesting deeper than `MAX_DEPTH` (`PickleDataError`). Each
    object is converted once, so shared references cost no more than the file.
    """
    done: dict[int, Any] = {}

    def visit(value, depth: int, active: frozenset):
        if depth > MAX_DEPTH:
            raise PickleDataError(f"{source}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str | bytes | int | float | type(None)):
            return value
        if id(value) in done:
            return done[id(value)]
        if id(value) in active:
            raise PickleDataError(f"{source}: a value contains itself (self-reference)")
        active = active | {id(value)}
        if isinstance(value, dict):
            out = {k: visit(v, depth + 1, active) for k, v in value.items()}
        elif isinstance(value, list | tuple | set | frozenset):
            out = type(value)(visit(v, depth + 1, active) for v in value)
        else:
            out = convert(value, lambda child: visit(child, depth + 1, active))
        done[id(value)] = out
        return out

    return visit(value, 0, frozenset())


def plain(value, source: str):
    """`value` with numpy records converted (`to_array`), see `walk`; other records stay."""
    return walk(value, source, lambda node, _: to_array(node, source) if is_array(node) else node)
