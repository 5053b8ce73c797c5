"""Read PyTorch checkpoints without torch, and import torchvision ResNet weights.

`load_torch_checkpoint` reads a ``torch.save`` file (zip or legacy format) as data through
`smpl_jax.safe_pickle`, every tensor a NumPy array; `load_torchvision_resnet` copies such a
state dict into a `hkmr_jax.models.encoder.ResNet`, all keys and shapes checked, or changes
nothing. Formats, the admitted names, the weight files: docs/encoder.md.
"""

from __future__ import annotations

import collections
import io
import os
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

from hkmr_jax.models.encoder import ResNet
from smpl_jax import safe_pickle

__all__ = [
    "TORCHVISION_URLS",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "UnsafeCheckpointError",
    "encoder_to_torchvision_state_dict",
    "load_torch_checkpoint",
    "load_torchvision_resnet",
    "torchvision_key_shapes",
]

# torchvision's ImageNet weights, newest recipe last. Every URL is a plain HTTPS download.
TORCHVISION_URLS: dict[str, tuple[str, ...]] = {
    "resnet18": ("https://download.pytorch.org/models/resnet18-f37072fd.pth",),
    "resnet34": ("https://download.pytorch.org/models/resnet34-b627a593.pth",),
    "resnet50": (
        "https://download.pytorch.org/models/resnet50-0676ba61.pth",
        "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    ),
    "resnet101": (
        "https://download.pytorch.org/models/resnet101-63fe2227.pth",
        "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
    ),
}

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER (legacy format)
_PROTOCOL_VERSION = 1001  # torch.serialization.PROTOCOL_VERSION (legacy format)

# torch storage class name -> element dtype (native byte order; files are converted on read).
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
}


def _from_bytes(raw: bytes, dtype: np.dtype, byteorder: str) -> np.ndarray:
    """Raw storage bytes written in ``byteorder`` ('little' / 'big') -> owned array."""
    array = np.frombuffer(raw, dtype)
    return array.byteswap() if byteorder != sys.byteorder else array.copy()


class UnsafeCheckpointError(safe_pickle.UnsafePickleError):
    """The checkpoint's pickle names a global that is not part of a tensor checkpoint."""


class CheckpointFormatError(ValueError):
    """The file is not a readable torch checkpoint (or is malformed)."""


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes do not match the encoder."""


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc. (a marker: carries the element dtype)."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: np.dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage:
    """A typed storage: ``numel`` elements of ``dtype``, read on first use.

    ``view_of`` / ``view_offset`` describe legacy storage views (a slice of a root storage).
    """

    def __init__(self, dtype: np.dtype, numel: int, read, view_of=None, view_offset: int = 0):
        self.dtype = dtype
        self.numel = numel
        self._read = read  # () -> np.ndarray [numel], or None for a view
        self._array = None
        self.view_of = view_of
        self.view_offset = view_offset

    def array(self) -> np.ndarray:
        if self._array is None:
            if self.view_of is not None:
                root = self.view_of.array()
                self._array = root[self.view_offset : self.view_offset + self.numel]
            else:
                self._array = self._read()
        return self._array


class _TensorRef:
    """A tensor as rebuilt by the pickle: materialised after all storages are known."""

    __slots__ = ("offset", "size", "storage", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    # torch pickles sizes as tuples and strides as tuples (or torch.Size -> tuple).
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise CheckpointFormatError(f"tensor {what} must be a tuple of ints, got {value!r}")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Local ``torch._utils._rebuild_tensor``: validates and defers the array view."""
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError(f"tensor storage is {type(storage).__name__}, not a storage")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise CheckpointFormatError(f"bad tensor storage offset {storage_offset!r}")
    size = _int_tuple(size, "size")
    stride = _int_tuple(stride, "stride")
    if len(size) != len(stride) or min((*size, *stride, 0)) < 0:
        raise CheckpointFormatError(f"bad tensor size {size} / stride {stride}")
    count = 1
    for n in size:
        count *= n
    if count > storage.numel:
        # Only a broadcast (stride 0) view has more elements than its storage; copying it
        # would cost more memory than the file holds.
        raise CheckpointFormatError(
            f"tensor of size {size} has more elements than its storage ({storage.numel}): "
            "save tensors made contiguous (tensor.contiguous()) instead of expanded views"
        )
    if 0 not in size:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.numel:
            raise CheckpointFormatError(
                f"tensor (offset {storage_offset}, size {size}, stride {stride}) reaches "
                f"element {last} of a storage of {storage.numel}"
            )
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
):
    """Local ``torch._utils._rebuild_tensor_v2`` (grad flag, hooks, metadata ignored)."""
    del requires_grad, backward_hooks, metadata
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    """Local ``torch._utils._rebuild_parameter{,_with_state}``: a parameter is its data."""
    del requires_grad, backward_hooks, state
    if not isinstance(data, _TensorRef):
        raise CheckpointFormatError(f"parameter data is {type(data).__name__}, not a tensor")
    return data


_ORDERED_DICT = safe_pickle.Admitted("collections.OrderedDict")
_TORCH_GLOBALS = {
    ("collections", "OrderedDict"): _ORDERED_DICT,
    **{("torch._utils", n): safe_pickle.Admitted(n, f) for n, f in (
        ("_rebuild_tensor", _rebuild_tensor), ("_rebuild_tensor_v2", _rebuild_tensor_v2),
        ("_rebuild_parameter", _rebuild_parameter),
        ("_rebuild_parameter_with_state", _rebuild_parameter))},
    **{(m, n): _StorageType(n, dtype) for m in ("torch", "torch.cuda")
       for n, dtype in _STORAGE_DTYPES.items()},
}  # fmt: skip


def _unpickle(stream, path: str, persistent_load=None) -> Any:
    """One pickle of a checkpoint, read as data by `smpl_jax.safe_pickle`."""
    try:
        return safe_pickle.load(stream, _TORCH_GLOBALS, source=path,
                                persistent_load=persistent_load)  # fmt: skip
    except safe_pickle.UnsafePickleError as e:
        raise UnsafeCheckpointError(f"{e} Not a tensor checkpoint.") from None
    except safe_pickle.PickleDataError as e:
        raise CheckpointFormatError(str(e)) from None


def _storage_type(value: Any, path: str) -> _StorageType:
    if not isinstance(value, _StorageType):
        raise CheckpointFormatError(f"{path}: storage type {value!r} is not a torch storage class")
    return value


def _as_str(value: Any) -> str:
    # Legacy files written by Python 2 may carry these fields as bytes.
    return value.decode("ascii") if isinstance(value, bytes) else value


def _load_zip(path: str) -> Any:
    file_size = os.path.getsize(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        # torch.load tells TorchScript archives apart by their constants.pkl record.
        if any(n.endswith("/constants.pkl") and n.count("/") == 1 for n in names):
            raise CheckpointFormatError(
                f"{path} is a TorchScript archive (torch.jit.save), not a state dict: "
                "save model.state_dict() with torch.save instead"
            )
        if len(pickles) != 1:
            raise CheckpointFormatError(
                f"{path} is a zip file but not a torch checkpoint: expected one "
                f"'<name>/data.pkl', found {pickles or 'none'}"
            )
        prefix = pickles[0][: -len("data.pkl")]
        # torch stores records uncompressed; a compressed one may inflate to at most this
        # much in all, so a small file cannot make us allocate much more than its size.
        budget = [4 * file_size + 2**20]

        def read(record: str, nbytes: int | None = None) -> bytes:
            try:
                info = zf.getinfo(record)
            except KeyError:
                raise CheckpointFormatError(f"{path}: record {record} is missing") from None
            if nbytes is not None and info.file_size != nbytes:
                raise CheckpointFormatError(
                    f"{path}: record {record} has {info.file_size} bytes, its tensors "
                    f"expect {nbytes}"
                )
            if info.file_size > budget[0]:
                raise CheckpointFormatError(
                    f"{path}: record {record} declares {info.file_size} bytes, more than a "
                    f"file of {file_size} bytes can hold"
                )
            budget[0] -= info.file_size
            return zf.read(info)

        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = read(prefix + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointFormatError(f"{path}: unknown byteorder record {byteorder!r}")
        storages: dict[str, _Storage] = {}

        def read_record(key: str, dtype: np.dtype, numel: int):
            def read_storage():
                raw = read(f"{prefix}data/{key}", numel * dtype.itemsize)
                return _from_bytes(raw, dtype, byteorder)

            return read_storage

        def persistent_load(pid):
            if not (isinstance(pid, tuple) and len(pid) == 5 and _as_str(pid[0]) == "storage"):
                raise CheckpointFormatError(f"{path}: unexpected persistent id")
            _, storage_type, key, _location, numel = pid
            storage_type = _storage_type(storage_type, path)
            key = _as_str(key)
            if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
                raise CheckpointFormatError(f"{path}: malformed storage id")
            if key not in storages:
                storages[key] = _Storage(
                    storage_type.dtype, numel, read_record(key, storage_type.dtype, numel)
                )
            return storages[key]

        obj = _unpickle(read(pickles[0]), path, persistent_load)
        # Materialise while the zip is open (storages are read lazily).
        return _materialise(obj, path)


def _load_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        data = f.read()
    f = io.BytesIO(data)

    def load_plain():
        # Header pickles hold ints and a dict only: no globals, no persistent ids.
        return _unpickle(f, path)

    try:
        magic = load_plain()
    except UnsafeCheckpointError:
        raise
    except CheckpointFormatError as e:
        raise CheckpointFormatError(
            f"{path} is neither a zip-format nor a legacy torch checkpoint ({e}); "
            "re-save it with a recent PyTorch: torch.save(torch.load(p), p2)"
        ) from None
    if magic != _MAGIC_NUMBER:
        raise CheckpointFormatError(
            f"{path} is not a torch checkpoint (bad magic number); re-save it with a "
            "recent PyTorch (torch >= 1.6 writes the zip format): torch.save(torch.load(p), p2)"
        )
    protocol = load_plain()
    if protocol != _PROTOCOL_VERSION:
        raise CheckpointFormatError(f"{path}: unsupported legacy protocol version")
    sys_info = load_plain()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise CheckpointFormatError(
            f"{path} was written on a big-endian machine; re-save it with a recent "
            "PyTorch (zip format): torch.save(torch.load(p), p2)"
        )

    roots: dict[str, _Storage] = {}
    views: dict[str, _Storage] = {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and _as_str(pid[0]) == "storage"):
            raise CheckpointFormatError(f"{path}: unexpected persistent id")
        _, storage_type, root_key, _location, numel, view_metadata = pid
        storage_type = _storage_type(storage_type, path)
        root_key = _as_str(root_key)
        if not isinstance(root_key, str) or not isinstance(numel, int) or numel < 0:
            raise CheckpointFormatError(f"{path}: malformed storage id")
        if root_key not in roots:
            roots[root_key] = _Storage(storage_type.dtype, numel, read=None)
        root = roots[root_key]
        if view_metadata is None:
            return root
        if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3):
            raise CheckpointFormatError(f"{path}: malformed storage view")
        view_key, offset, view_size = view_metadata
        view_key = _as_str(view_key)
        if (
            not (isinstance(offset, int) and isinstance(view_size, int) and offset >= 0)
            or view_size < 0 or offset + view_size > root.numel
        ):  # fmt: skip
            raise CheckpointFormatError(f"{path}: storage view out of range")
        if view_key not in views:
            views[view_key] = _Storage(
                root.dtype, view_size, read=None, view_of=root, view_offset=offset
            )
        return views[view_key]

    obj = _unpickle(f, path, persistent_load)
    keys = load_plain()
    if not isinstance(keys, list):
        raise CheckpointFormatError(f"{path}: storage key list missing")
    # The raw storages follow in the order of `keys`, each as an int64 element count
    # (little-endian) and the elements.
    for key in keys:
        key = _as_str(key)
        if key not in roots:
            raise CheckpointFormatError(f"{path}: data for unknown storage {key!r:.40}")
        storage = roots[key]
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointFormatError(f"{path}: truncated before storage {key}")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise CheckpointFormatError(
                f"{path}: storage {key} holds {numel} elements, its tensors expect {storage.numel}"
            )
        nbytes = numel * storage.dtype.itemsize
        if nbytes > len(data) - f.tell():
            raise CheckpointFormatError(f"{path}: truncated in storage {key}")
        # torch < 1.6 wrote storages in the host's order; every such file is little-endian
        # (big-endian ones are refused above from their sys_info).
        storage._array = _from_bytes(f.read(nbytes), storage.dtype, "little")
    for key, storage in roots.items():
        if storage._array is None:
            raise CheckpointFormatError(f"{path}: no data for storage {key}")
    return _materialise(obj, path)


def _materialise(obj: Any, path: str) -> Any:
    """Replaces every `_TensorRef` in nested dicts / lists / tuples by a NumPy array; an
    OrderedDict record becomes an OrderedDict (its BUILD state, torch's `_metadata`, is
    dropped). Self-references and deep nesting are refused (`safe_pickle.walk`)."""

    def convert(node, recurse):
        if isinstance(node, _TensorRef):
            return _tensor_array(node)
        if isinstance(node, safe_pickle.Obj):
            if node.name != _ORDERED_DICT.name or node.args not in ((), ([],)) or node.appended:
                raise CheckpointFormatError(f"{path}: unexpected {node.name} in a checkpoint")
            return collections.OrderedDict(recurse(node.items))
        return node

    try:
        return safe_pickle.walk(obj, path, convert)
    except safe_pickle.PickleDataError as e:
        raise CheckpointFormatError(str(e)) from None


def _tensor_array(ref: _TensorRef) -> np.ndarray:
    """A tensor's own, contiguous copy (bounds were checked in `_rebuild_tensor`)."""
    base = ref.storage.array()
    if 0 in ref.size:
        return np.zeros(ref.size, base.dtype)
    view = np.lib.stride_tricks.as_strided(
        base[ref.offset :],
        shape=ref.size,
        strides=tuple(s * base.dtype.itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view)


def _download_hint(arch: str | None) -> str:
    archs = [arch] if arch in TORCHVISION_URLS else list(TORCHVISION_URLS)
    urls = "; ".join(f"{a}: {' or '.join(TORCHVISION_URLS[a])}" for a in archs)
    return (
        "torchvision ImageNet weights come from the torchvision model zoo: download the file "
        f"on a machine with internet access ({urls}), e.g. with `curl -LO URL`, and pass its "
        "path (torchvision also caches them in ~/.cache/torch/hub/checkpoints/)"
    )


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Reads a ``torch.save`` file without torch and without executing pickled code.

    Args:
        path: a zip-format (torch ≥ 1.6) or legacy-format (torch < 1.6) checkpoint.

    Returns:
        The saved object (typically an ``OrderedDict`` state dict) with every tensor
        replaced by a C-contiguous NumPy array of its dtype (float32 for FloatStorage,
        int64 for LongStorage, ``ml_dtypes.bfloat16`` for BFloat16Storage, ...).

    Raises:
        FileNotFoundError: no file at ``path``; the message says where torchvision
            weights come from.
        UnsafeCheckpointError: the pickle names a global other than the tensor-rebuild
            functions, ``OrderedDict`` and storage types (nothing is executed).
        CheckpointFormatError: not a torch checkpoint, a TorchScript archive, the ancient
            tar format, or malformed storages.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no torch checkpoint at {path!r}. {_download_hint(None)}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        try:
            return _load_zip(path)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
            raise CheckpointFormatError(
                f"{path}: a damaged zip archive ({e}); the file may be truncated: download it again"
            ) from None
    if tarfile.is_tarfile(path):
        raise CheckpointFormatError(
            f"{path} uses the tar-based format of the earliest torch releases, which this "
            "reader does not support; re-save it with a recent PyTorch: "
            "torch.save(torch.load(p), p2)"
        )
    return _load_legacy(path)


def _torch_key(path: tuple) -> tuple[str, str]:
    """nnx state path -> (torch key, kind); e.g. ('layer1', 0, 'conv1', 'kernel')."""
    *module, leaf = path
    prefix = ".".join(str(p) for p in module)
    name = {
        "kernel": "weight",
        "scale": "weight",
        "bias": "bias",
        "mean": "running_mean",
        "var": "running_var",
    }.get(leaf)
    if name is None:
        raise CheckpointMismatchError(f"encoder variable {path} has no torchvision counterpart")
    return f"{prefix}.{name}", leaf


def _encoder_variables(encoder: ResNet) -> list[tuple[tuple, str, str, tuple[int, ...]]]:
    """[(nnx path, torch key, leaf kind, torch-layout shape)] for Params and BatchStats."""
    out = []
    for path, var in nnx.to_flat_state(nnx.state(encoder, (nnx.Param, nnx.BatchStat))):
        key, leaf = _torch_key(path)
        shape = tuple(var.shape)
        if leaf == "kernel":
            shape = (shape[3], shape[2], shape[0], shape[1])  # HWIO -> OIHW
        out.append((path, key, leaf, shape))
    return out


def torchvision_key_shapes(encoder: ResNet) -> dict[str, tuple[int, ...]]:
    """The torchvision state-dict keys (without ``fc`` and ``num_batches_tracked``) and
    their torch-layout shapes that `load_torchvision_resnet` expects for ``encoder``."""
    return {key: shape for _, key, _, shape in _encoder_variables(encoder)}


def encoder_to_torchvision_state_dict(encoder: ResNet) -> dict[str, np.ndarray]:
    """The inverse of the import: ``encoder``'s variables as a torchvision state dict.

    Returns:
        ``{key: array}`` with conv weights in OIHW, BN ``weight/bias/running_mean/
        running_var``; no ``fc`` and no ``num_batches_tracked``.
    """
    flat = dict(nnx.to_flat_state(nnx.state(encoder, (nnx.Param, nnx.BatchStat))))
    out = {}
    for path, key, leaf, _ in _encoder_variables(encoder):
        value = np.asarray(flat[path][...])
        out[key] = value.transpose(3, 2, 0, 1) if leaf == "kernel" else value
    return out


def _find_state_dict(obj: Any, path: str, prefix: str) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]  # training checkpoints: {'state_dict': ..., 'epoch': ...}
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of names to "
            "tensors); save model.state_dict()"
        )
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        out[key[len(prefix) :]] = value
    return out


def _listing(items: list[str], sep: str = ", ", limit: int = 12) -> str:
    # A ResNet-50 file loaded into a ResNet-18 would otherwise list hundreds of keys.
    shown = sep.join(items[:limit])
    return shown if len(items) <= limit else f"{shown}{sep}... ({len(items) - limit} more)"


def load_torchvision_resnet(
    path: str | os.PathLike, encoder: ResNet, *, prefix: str = ""
) -> list[str]:
    """Copies torchvision ResNet weights from a checkpoint into ``encoder`` in place.

    Args:
        path: a torchvision ResNet checkpoint (any format `load_torch_checkpoint` reads),
            e.g. ``resnet50-0676ba61.pth``; a dict with a ``'state_dict'`` entry works too.
        encoder: a `ResNet` of the same architecture (``create_encoder('resnet50', ...)``);
            may be abstract (``nnx.eval_shape``), it is fully concrete afterwards.
        prefix: only keys starting with it are used, with it removed (e.g. ``'module.'``
            for ``DataParallel`` checkpoints, ``'backbone.'`` for a detector's).

    Returns:
        The checkpoint keys that were deliberately skipped (``fc.*``,
        ``*.num_batches_tracked``), sorted.

    Raises:
        FileNotFoundError: no file at ``path``; the message gives the download URL.
        CheckpointMismatchError: a missing key, an unexpected key, or a shape mismatch
            (each named with the expected and the found shape); ``encoder`` is unchanged.
        UnsafeCheckpointError, CheckpointFormatError: see `load_torch_checkpoint`.
    """
    if not isinstance(encoder, ResNet):
        raise TypeError(f"load_torchvision_resnet needs a ResNet encoder, got {type(encoder)}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no torchvision checkpoint at {path!r}. {_download_hint(encoder.arch)}"
        )
    state_dict = _find_state_dict(load_torch_checkpoint(path), path, prefix)
    arch = encoder.arch or f"ResNet({encoder.block}, {encoder.layers})"

    skipped = sorted(
        k for k in state_dict if k.startswith("fc.") or k.endswith(".num_batches_tracked")
    )
    used = set(skipped)
    missing, mismatched, updates = [], [], []
    for var_path, key, leaf, expected in _encoder_variables(encoder):
        if key not in state_dict:
            missing.append(key)
            continue
        used.add(key)
        value = state_dict[key]
        found = tuple(np.shape(value))
        if not isinstance(value, np.ndarray) or found != expected:
            what = f"shape {found}" if isinstance(value, np.ndarray) else type(value).__name__
            mismatched.append(f"{key}: expected {expected}, found {what}")
            continue
        if leaf == "kernel":
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        updates.append((var_path, value))
    unexpected = sorted(set(state_dict) - used)
    if missing or mismatched or unexpected:
        parts = []
        if mismatched:
            parts.append(
                "shape mismatch (torch layout, conv weights OIHW): " + _listing(mismatched, "; ")
            )
        if missing:
            parts.append("missing keys: " + _listing(missing))
        if unexpected:
            parts.append("unexpected keys: " + _listing(unexpected))
        hint = (
            f" Is it a checkpoint of {encoder.arch}?"
            if encoder.arch
            else " Is the architecture right?"
        )
        raise CheckpointMismatchError(
            f"checkpoint {path} does not match {arch}: " + " | ".join(parts) + "." + hint
        )

    # All checks passed: write every variable at once, cast to the encoder's dtypes.
    state = nnx.state(encoder, (nnx.Param, nnx.BatchStat))
    flat = dict(nnx.to_flat_state(state))
    new_values = {}
    for var_path, value in updates:
        dtype = flat[var_path].dtype
        new_values[var_path] = flat[var_path].replace(jnp.asarray(value, dtype=dtype))
    nnx.update(encoder, nnx.from_flat_state(new_values))
    return skipped
