"""Tests for hkmr_jax.models.encoder and hkmr_jax.models.torchvision_import.

torch is not installed: the checkpoints are written here, byte for byte in torch's formats,
by pickling stand-in classes registered under the module names ``torch`` / ``torch._utils``
only while writing (`_fake_torch_modules`).
Reference values: parameter counts are torchvision's ``num_params`` metadata (ResNet-18
11,689,512; ResNet-34 21,797,672; ResNet-50 25,557,032; ResNet-101 44,549,160) minus
``fc`` (512·1000 + 1000 or 2048·1000 + 1000); the forward reference is float64 NumPy
written from torchvision's module definitions.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import pickle
import shlex
import struct
import sys
import tarfile
import types
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from numpy.lib.stride_tricks import sliding_window_view

from hkmr_jax.models.encoder import (
    ENCODER_NAMES,
    ResNet,
    SmallCNN,
    count_params,
    create_encoder,
)
from hkmr_jax.models.torchvision_import import (
    CheckpointFormatError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    encoder_to_torchvision_state_dict,
    load_torch_checkpoint,
    load_torchvision_resnet,
    torchvision_key_shapes,
)

# --------------------------------------------------------------------------------------
# Writing torch-format checkpoints without torch
# --------------------------------------------------------------------------------------

_STORAGE_NAMES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
}


@contextlib.contextmanager
def _fake_torch_modules():
    """Registers stand-in ``torch`` / ``torch._utils`` modules only while pickling.

    pickle stores a global by ``__module__`` + ``__qualname__`` and checks that importing
    it gives the same object, so the stand-ins must be in sys.modules during ``dump``.
    """
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def make_stub(name):
        def stub(*args):  # only its name is pickled
            raise AssertionError("stand-in called")

        stub.__module__, stub.__name__, stub.__qualname__ = "torch._utils", name, name
        setattr(utils, name, stub)

    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter"):
        make_stub(name)
    for name in _STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                del sys.modules[k]
            else:
                sys.modules[k] = v


class _FakeStorage:
    """A storage: a flat array with a key; pickled through ``persistent_id``."""

    def __init__(self, key: str, flat: np.ndarray):
        self.key, self.flat = key, np.ascontiguousarray(flat).reshape(-1)


class _FakeTensor:
    """Pickles like a torch tensor: ``_rebuild_tensor_v2(storage, offset, size, stride,
    requires_grad, backward_hooks)`` (``legacy``: torch 0.3's ``_rebuild_tensor``)."""

    def __init__(self, storage, offset, size, stride, legacy=False):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.legacy = legacy

    def __reduce_ex__(self, protocol):
        utils = sys.modules["torch._utils"]
        args = (self.storage, self.offset, tuple(self.size), tuple(self.stride))
        if self.legacy:
            return utils._rebuild_tensor, args
        return utils._rebuild_tensor_v2, (*args, False, collections.OrderedDict())


class _FakeParameter:
    """Pickles like ``torch.nn.Parameter``: ``_rebuild_parameter(data, requires_grad, hooks)``."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce_ex__(self, protocol):
        utils = sys.modules["torch._utils"]
        return utils._rebuild_parameter, (self.tensor, True, collections.OrderedDict())


def _c_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def _as_fake_tensors(state_dict, legacy=False):
    """{key: array} -> (OrderedDict of _FakeTensor, storages); one storage per array."""
    out, storages = collections.OrderedDict(), []
    for i, (key, array) in enumerate(state_dict.items()):
        array = np.asarray(array)
        storage = _FakeStorage(str(i), array)
        storages.append(storage)
        out[key] = _FakeTensor(storage, 0, array.shape, _c_strides(array.shape), legacy)
    # torch's state_dict carries a `_metadata` attribute: the pickle BUILDs it onto the
    # OrderedDict, which the reader must accept.
    out._metadata = collections.OrderedDict({"": {"version": 1}})
    return out, storages


def _dump(obj, persistent_id) -> bytes:
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=2)  # torch's DEFAULT_PROTOCOL
    pickler.persistent_id = persistent_id
    pickler.dump(obj)
    return buf.getvalue()


def write_torch_zip(path, obj, storages, *, pickle_bytes=None, byteorder="little"):
    """Writes ``obj`` as torch >= 1.6 does: ``archive/data.pkl``, ``archive/byteorder``,
    ``archive/data/<key>`` (raw storages), ``archive/version``."""
    with _fake_torch_modules() as torch:

        def persistent_id(o):
            if isinstance(o, _FakeStorage):
                name = _STORAGE_NAMES[o.flat.dtype]
                return ("storage", getattr(torch, name), o.key, "cpu", o.flat.size)
            return None

        data = pickle_bytes if pickle_bytes is not None else _dump(obj, persistent_id)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data)
        zf.writestr("archive/byteorder", byteorder)
        for s in storages:
            flat = s.flat if byteorder == sys.byteorder else s.flat.byteswap()
            zf.writestr(f"archive/data/{s.key}", flat.tobytes())
        zf.writestr("archive/version", "3\n")


def write_torch_legacy(path, obj, storages):
    """Writes ``obj`` as torch < 1.6 did: magic, protocol, sys_info, the object, the
    sorted storage keys, then each storage as int64 numel + raw little-endian bytes."""
    with _fake_torch_modules() as torch:

        def persistent_id(o):
            if isinstance(o, _FakeStorage):
                name = _STORAGE_NAMES[o.flat.dtype]
                return ("storage", getattr(torch, name), o.key, "cpu", o.flat.size, None)
            return None

        body = _dump(obj, persistent_id)
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 8}}
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
            f.write(pickle.dumps(header, protocol=2))
        f.write(body)
        keys = sorted(s.key for s in storages)
        f.write(pickle.dumps(keys, protocol=2))
        by_key = {s.key: s for s in storages}
        for key in keys:
            flat = by_key[key].flat
            f.write(
                struct.pack("<q", flat.size) + flat.astype(flat.dtype.newbyteorder("<")).tobytes()
            )


def random_torchvision_state_dict(encoder, seed=0, *, extras=True):
    """A torchvision-layout state dict of random values for ``encoder`` (+ fc, counters)."""
    rng = np.random.default_rng(seed)
    sd = collections.OrderedDict()
    for key, shape in torchvision_key_shapes(encoder).items():
        if key.endswith("running_var"):
            sd[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            sd[key] = rng.normal(0.0, 0.5, shape).astype(np.float32)
        if extras and key.endswith("running_var"):
            sd[key[: -len("running_var")] + "num_batches_tracked"] = np.array(7, np.int64)
    if extras:
        sd["fc.weight"] = rng.normal(size=(10, encoder.feature_dim)).astype(np.float32)
        sd["fc.bias"] = np.zeros(10, np.float32)
    return sd


def tiny_resnet(block="basic", layers=(2, 2, 2, 2), seed=0):
    # Same key layout as resnet18 (basic, 2-2-2-2), 16x fewer channels.
    return ResNet(block, layers, base_width=4, rngs=nnx.Rngs(seed))


def flat_vars(model):
    return {
        path: np.asarray(v[...])
        for path, v in nnx.to_flat_state(nnx.state(model, (nnx.Param, nnx.BatchStat)))
    }


# --------------------------------------------------------------------------------------
# Float64 NumPy reference of torchvision's ResNet (eval mode), NHWC, torch-layout weights
# --------------------------------------------------------------------------------------


def np_conv(x, w, stride):
    """torch Conv2d(bias=False, padding=(k-1)//2): x [B,H,W,I], w [O,I,kh,kw]."""
    pad = (w.shape[2] - 1) // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    win = sliding_window_view(xp, w.shape[2:], axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("bhwcij,ocij->bhwo", win, w)


def np_bn(x, sd, name):
    scale = sd[name + ".weight"] / np.sqrt(sd[name + ".running_var"] + 1e-5)
    return (x - sd[name + ".running_mean"]) * scale + sd[name + ".bias"]


def np_stem(x, sd):
    y = np.maximum(np_bn(np_conv(x, sd["conv1.weight"], 2), sd, "bn1"), 0.0)
    yp = np.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    return sliding_window_view(yp, (3, 3), axis=(1, 2))[:, ::2, ::2].max(axis=(-2, -1))


def np_resnet(x, sd, block, layers):
    x = np_stem(x, sd)
    relu = lambda v: np.maximum(v, 0.0)
    for i, n in enumerate(layers):
        for j in range(n):
            p = f"layer{i + 1}.{j}."
            stride = 2 if (i > 0 and j == 0) else 1
            if block == "basic":
                y = relu(np_bn(np_conv(x, sd[p + "conv1.weight"], stride), sd, p + "bn1"))
                y = np_bn(np_conv(y, sd[p + "conv2.weight"], 1), sd, p + "bn2")
            else:  # v1.5: stride on the 3x3 conv2
                y = relu(np_bn(np_conv(x, sd[p + "conv1.weight"], 1), sd, p + "bn1"))
                y = relu(np_bn(np_conv(y, sd[p + "conv2.weight"], stride), sd, p + "bn2"))
                y = np_bn(np_conv(y, sd[p + "conv3.weight"], 1), sd, p + "bn3")
            if p + "downsample.0.weight" in sd:
                x = np_bn(np_conv(x, sd[p + "downsample.0.weight"], stride), sd, p + "downsample.1")
            x = relu(y + x)
    return x.mean(axis=(1, 2))


# --------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------


def _abstract(name, **kwargs):
    return nnx.eval_shape(lambda: create_encoder(name, rngs=nnx.Rngs(0), **kwargs))


# torchvision num_params minus fc; see docs/encoder.md.
@pytest.mark.parametrize(
    "name, params, feature_dim",
    [
        ("resnet18", 11_689_512 - 513_000, 512),
        ("resnet34", 21_797_672 - 513_000, 512),
        ("resnet50", 25_557_032 - 2_049_000, 2048),
        ("resnet101", 44_549_160 - 2_049_000, 2048),
    ],
)
def test_resnet_param_count(name, params, feature_dim):
    enc = _abstract(name)
    assert count_params(enc) == params
    assert enc.feature_dim == feature_dim


@pytest.mark.parametrize("name, feature_dim", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_feature_shapes(name, feature_dim):
    enc = _abstract(name)
    # Shape inference only (no compilation), at the paper's 224 px and a non-square size.
    x224 = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32)
    x_rect = jax.ShapeDtypeStruct((1, 96, 64, 3), jnp.float32)
    phi, fmap = nnx.eval_shape(lambda m, a, b: (m(a), m.feature_map(b)), enc, x224, x_rect)
    assert phi.shape == (2, feature_dim) and phi.dtype == jnp.float32
    assert fmap.shape == (1, 3, 2, feature_dim)


def test_resnet50_torchvision_layout():
    enc = _abstract("resnet50")
    shapes = torchvision_key_shapes(enc)
    # torchvision's resnet50 state dict has 320 keys: 2 for fc and 53 num_batches_tracked.
    assert len(shapes) == 320 - 2 - 53
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer2.0.conv2.weight"] == (128, 128, 3, 3)
    assert shapes["layer3.5.bn3.running_var"] == (1024,)
    assert shapes["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert "layer4.0.downsample.1.running_mean" in shapes
    assert "layer4.1.downsample.0.weight" not in shapes
    # v1.5: the stride of a downsampling bottleneck is on the 3x3 conv.
    block = enc.layer2[0]
    assert block.conv1.strides == (1, 1) and block.conv2.strides == (2, 2)
    assert block.downsample[0].strides == (2, 2)
    r18 = torchvision_key_shapes(_abstract("resnet18"))
    assert len(r18) == 122 - 2 - 20  # torchvision resnet18: 122 keys
    assert r18["layer2.0.conv1.weight"] == (128, 64, 3, 3)


def test_small_cnn_and_tiny_resnet_forward_shapes():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 64, 96, 3)), jnp.float32)
    forward = nnx.jit(lambda m, x: m(x))
    cnn = create_encoder("small_cnn", rngs=nnx.Rngs(0))
    assert isinstance(cnn, SmallCNN) and cnn.feature_dim == 256
    phi = forward(cnn, x)
    chex.assert_shape(phi, (3, 256))
    chex.assert_tree_all_finite(phi)
    narrow = create_encoder("small_cnn", rngs=nnx.Rngs(0), widths=(8, 16), feature_dim=24)
    assert narrow.feature_dim == 24
    chex.assert_shape(forward(narrow, x[:, :32, :32]), (3, 24))
    tiny = tiny_resnet("bottleneck", (1, 1, 1, 1))
    assert tiny.feature_dim == 4 * 8 * 4
    chex.assert_shape(forward(tiny, x), (3, 128))


def test_bad_names_and_inputs():
    with pytest.raises(ValueError, match="unknown encoder 'resnet152'") as err:
        create_encoder("resnet152", rngs=nnx.Rngs(0))
    for name in ENCODER_NAMES:
        assert name in str(err.value)
    cnn = create_encoder("small_cnn", rngs=nnx.Rngs(0), widths=(4,))
    with pytest.raises(ValueError, match=r"NHWC images \[B, H, W, 3\], got shape \(2, 3, 64, 64\)"):
        cnn(jnp.zeros((2, 3, 64, 64)))
    with pytest.raises(ValueError, match="widths"):
        SmallCNN((), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="4 stages"):
        ResNet("basic", (2, 2, 2), rngs=nnx.Rngs(0))


# --------------------------------------------------------------------------------------
# Batch normalisation
# --------------------------------------------------------------------------------------


def test_batchnorm_matches_torch_momentum_and_eps():
    enc = tiny_resnet()
    assert enc.bn1.use_running_average is False  # modules start in training mode
    assert enc.bn1.momentum == 0.9 and enc.bn1.epsilon == 1e-5
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(4, 5, 5, 4)).astype(np.float32)
    y = np.asarray(enc.bn1(jnp.asarray(x)))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)
    # torch momentum 0.1: running = 0.9 * running + 0.1 * batch (from mean 0, var 1).
    np.testing.assert_allclose(np.asarray(enc.bn1.mean[...]), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(enc.bn1.var[...]), 0.9 + 0.1 * var, rtol=1e-5)


def test_train_and_eval_modes_differ_and_eval_is_deterministic():
    cnn = create_encoder("small_cnn", rngs=nnx.Rngs(0), widths=(8, 16))
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(4, 32, 32, 3)), jnp.float32)
    x_other = x.at[1:].set(jnp.asarray(rng.normal(size=(3, 32, 32, 3)), jnp.float32))
    before = flat_vars(cnn)

    cnn.eval()
    assert all(
        m.use_running_average for _, m in nnx.iter_modules(cnn) if isinstance(m, nnx.BatchNorm)
    )
    e1, e2, e_other = cnn(x), cnn(x), cnn(x_other)
    np.testing.assert_array_equal(np.asarray(e1), np.asarray(e2))
    # Per-sample in eval mode: sample 0 does not see the rest of the batch.
    np.testing.assert_allclose(np.asarray(e1[0]), np.asarray(e_other[0]), rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_equal(flat_vars(cnn), before)  # running stats untouched

    cnn.train()
    t1 = cnn(x)
    after_one = flat_vars(cnn)
    t_other = cnn(x_other)
    # Batch statistics: sample 0 depends on the other samples; running stats move.
    assert np.abs(np.asarray(t1[0] - t_other[0])).max() > 1e-3
    assert np.abs(np.asarray(t1 - e1)).max() > 1e-3
    moved = [
        p for p in before if p[-1] in ("mean", "var") and not np.allclose(before[p], after_one[p])
    ]
    assert len(moved) == 2 * 4  # 4 BatchNorms, mean and var each
    assert all(
        np.array_equal(before[p], after_one[p]) for p in before if p[-1] not in ("mean", "var")
    )


def test_bn_axis_name_synchronises_batch_statistics():
    # vmap with a named axis stands in for the shard_map 'data' axis (pmean works on both).
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, 32, 32, 3)), jnp.float32)

    def sharded(model):
        graphdef, state = nnx.split(model)

        def per_device(state, xs):
            return nnx.merge(graphdef, state)(xs)

        xs = x.reshape(2, 2, 32, 32, 3)
        return jax.vmap(per_device, in_axes=(None, 0), axis_name="data")(state, xs).reshape(4, -1)

    full = create_encoder("small_cnn", rngs=nnx.Rngs(0), widths=(8, 16))(x)
    synced = sharded(
        create_encoder("small_cnn", rngs=nnx.Rngs(0), widths=(8, 16), bn_axis_name="data")
    )
    local = sharded(create_encoder("small_cnn", rngs=nnx.Rngs(0), widths=(8, 16)))
    np.testing.assert_allclose(np.asarray(synced), np.asarray(full), rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(local - full)).max() > 1e-3  # default: per-device statistics


# --------------------------------------------------------------------------------------
# torchvision import
# --------------------------------------------------------------------------------------


def test_resnet18_zip_checkpoint_imports_exactly(tmp_path):
    # The real resnet18 layout, loaded into an abstract encoder (no random init needed).
    enc = _abstract("resnet18")
    sd = random_torchvision_state_dict(enc, seed=4)
    # One non-contiguous tensor (a transposed view) and two tensors sharing a storage at
    # different offsets, as torch writes views; both must be read through their strides.
    obj, storages = _as_fake_tensors(sd)
    w = sd["conv1.weight"]  # [64, 3, 7, 7]
    t_storage = _FakeStorage("t", np.ascontiguousarray(w.transpose(1, 0, 2, 3)))
    obj["conv1.weight"] = _FakeTensor(t_storage, 0, w.shape, (49, 64 * 49, 7, 1))
    shared = _FakeStorage(
        "s",
        np.concatenate([[9.0], sd["bn1.running_mean"], sd["bn1.running_var"]]).astype(np.float32),
    )
    obj["bn1.running_mean"] = _FakeTensor(shared, 1, (64,), (1,))
    obj["bn1.running_var"] = _FakeTensor(shared, 65, (64,), (1,))
    path = tmp_path / "resnet18-test.pth"
    write_torch_zip(path, obj, [*storages, t_storage, shared])
    # The stand-ins are gone again (a real torch, if one were imported, has a __file__).
    assert "torch" not in sys.modules or hasattr(sys.modules["torch"], "__file__")

    raw = load_torch_checkpoint(path)
    assert isinstance(raw, collections.OrderedDict) and list(raw) == list(sd)
    assert raw["layer1.0.bn1.num_batches_tracked"].dtype == np.int64
    for key, value in sd.items():
        np.testing.assert_array_equal(raw[key], value, err_msg=key)

    skipped = load_torchvision_resnet(path, enc)
    assert skipped == sorted(k for k in sd if k.startswith("fc.") or "num_batches" in k)
    got = encoder_to_torchvision_state_dict(enc)
    assert set(got) == set(sd) - set(skipped)
    for key, value in got.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, sd[key], err_msg=key)
    np.testing.assert_array_equal(
        np.asarray(enc.layer2[0].conv1.kernel[...]),
        sd["layer2.0.conv1.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(
        np.asarray(enc.layer3[1].bn2.var[...]), sd["layer3.1.bn2.running_var"]
    )


@pytest.mark.parametrize("block, layers", [("basic", (2, 2, 2, 2)), ("bottleneck", (1, 1, 1, 1))])
def test_imported_forward_matches_float64_numpy_reference(tmp_path, block, layers):
    enc = tiny_resnet(block, layers)
    sd = random_torchvision_state_dict(enc, seed=5)
    write_torch_zip(tmp_path / "w.pth", *_as_fake_tensors(sd))
    load_torchvision_resnet(tmp_path / "w.pth", enc)
    enc.eval()
    # 36 px: even sizes are where 'SAME' padding would differ from torch's at stride 2.
    x = np.random.default_rng(6).normal(size=(2, 36, 36, 3))
    sd64 = {k: v.astype(np.float64) for k, v in sd.items()}
    # A single conv+bn (the stem, with ReLU and the -inf padded max-pool) ...
    np.testing.assert_allclose(
        np.asarray(enc.stem(jnp.asarray(x, jnp.float32))), np_stem(x, sd64), rtol=1e-4, atol=1e-4
    )
    # ... and the whole network.
    phi = nnx.jit(lambda m, x: m(x))(enc, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(
        np.asarray(phi), np_resnet(x, sd64, block, layers), rtol=1e-4, atol=1e-4
    )


def test_legacy_format_checkpoint_imports_exactly(tmp_path):
    enc = tiny_resnet()
    sd = random_torchvision_state_dict(enc, seed=7)
    sd["bn1.running_mean"] = sd["bn1.running_mean"].astype(np.float64)  # DoubleStorage
    write_torch_legacy(tmp_path / "legacy.pth", *_as_fake_tensors(sd, legacy=True))
    raw = load_torch_checkpoint(tmp_path / "legacy.pth")
    assert raw["bn1.running_mean"].dtype == np.float64
    for key, value in sd.items():
        np.testing.assert_array_equal(raw[key], value, err_msg=key)
    load_torchvision_resnet(tmp_path / "legacy.pth", enc)
    got = encoder_to_torchvision_state_dict(enc)
    for key, value in got.items():
        np.testing.assert_array_equal(value, sd[key].astype(np.float32), err_msg=key)


def test_half_storage_big_endian_parameter_and_prefix(tmp_path):
    enc = tiny_resnet()
    sd = random_torchvision_state_dict(enc, seed=8, extras=False)
    sd = collections.OrderedDict(
        (f"module.{k}", v.astype(np.float16) if "conv" in k else v) for k, v in sd.items()
    )
    sd["other.head.weight"] = np.ones(3, np.float32)  # outside the prefix: ignored
    obj, storages = _as_fake_tensors(sd)
    obj["module.bn1.weight"] = _FakeParameter(obj["module.bn1.weight"])
    write_torch_zip(tmp_path / "h.pth", obj, storages, byteorder="big")
    assert load_torch_checkpoint(tmp_path / "h.pth")["module.conv1.weight"].dtype == np.float16
    load_torchvision_resnet(tmp_path / "h.pth", enc, prefix="module.")
    got = encoder_to_torchvision_state_dict(enc)
    for key, value in got.items():
        np.testing.assert_array_equal(value, sd["module." + key].astype(np.float32), err_msg=key)


def _write_checkpoint(tmp_path, sd, name="ckpt.pth"):
    path = tmp_path / name
    write_torch_zip(path, *_as_fake_tensors(sd))
    return path


def test_shape_mismatch_and_missing_keys_are_named(tmp_path):
    enc = tiny_resnet()
    before = flat_vars(enc)
    good = random_torchvision_state_dict(enc, seed=9)

    bad = collections.OrderedDict(good)
    bad["layer1.0.conv1.weight"] = np.zeros((8, 4, 3, 3), np.float32)
    with pytest.raises(CheckpointMismatchError) as err:
        load_torchvision_resnet(_write_checkpoint(tmp_path, bad, "shape.pth"), enc)
    msg = str(err.value)
    assert "layer1.0.conv1.weight: expected (4, 4, 3, 3), found shape (8, 4, 3, 3)" in msg
    assert "shape.pth" in msg

    bad = collections.OrderedDict(good)
    del bad["layer4.1.bn2.running_var"]
    bad["layer5.0.conv1.weight"] = np.zeros(3, np.float32)
    with pytest.raises(CheckpointMismatchError) as err:
        load_torchvision_resnet(_write_checkpoint(tmp_path, bad, "keys.pth"), enc)
    assert "missing keys: layer4.1.bn2.running_var" in str(err.value)
    assert "unexpected keys: layer5.0.conv1.weight" in str(err.value)

    # A ResNet-50-layout checkpoint into a basic-block encoder: refused, too.
    r50 = tiny_resnet("bottleneck", (1, 1, 1, 1))
    with pytest.raises(
        CheckpointMismatchError, match=r"unexpected keys: .*layer1\.0\.conv3\.weight"
    ):
        load_torchvision_resnet(
            _write_checkpoint(tmp_path, random_torchvision_state_dict(r50), "r50.pth"), enc
        )
    chex.assert_trees_all_equal(flat_vars(enc), before)  # nothing was half-written


def test_missing_file_names_path_and_download_url(tmp_path):
    enc = _abstract("resnet50")
    missing = tmp_path / "resnet50-0676ba61.pth"
    with pytest.raises(FileNotFoundError) as err:
        load_torchvision_resnet(missing, enc)
    msg = str(err.value)
    assert str(missing) in msg
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in msg
    assert "internet" in msg
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd"):
        load_torch_checkpoint(tmp_path / "nothing.pth")


class _Payload:
    """Unpickling this runs ``touch MARKER`` through os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    # Control: the payload is live — plain pickle runs it and creates the file.
    control = tmp_path / "control-ran"
    pickle.loads(pickle.dumps(_Payload(control), protocol=2))
    assert control.exists()

    marker = tmp_path / "payload-ran"
    payload = pickle.dumps({"conv1.weight": _Payload(marker)}, protocol=2)
    zip_path = tmp_path / "evil.pth"
    write_torch_zip(zip_path, None, [], pickle_bytes=payload)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_torch_checkpoint(zip_path)
    message = str(err.value)
    assert f"{zip_path}: refusing to load global '{os.system.__module__}.system'" in message
    assert "Not a tensor checkpoint" in message
    with pytest.raises(UnsafeCheckpointError):
        load_torchvision_resnet(zip_path, tiny_resnet())

    legacy_path = tmp_path / "evil-legacy.pth"
    with open(legacy_path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            f.write(pickle.dumps(header, protocol=2))
        f.write(payload)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_torch_checkpoint(legacy_path)
    assert not marker.exists()

    # Other globals, including unlisted names of the admitted modules, are refused too.
    for module, name in (("builtins", "eval"), ("torch._utils", "_rebuild_from_type_v2")):
        evil = pickle.PROTO + b"\x02" + b"c" + f"{module}\n{name}\n".encode() + b"."
        write_torch_zip(zip_path, None, [], pickle_bytes=evil)
        with pytest.raises(UnsafeCheckpointError, match=f"global '{module}.{name}'"):
            load_torch_checkpoint(zip_path)


def test_out_of_bounds_strides_and_non_checkpoints_are_refused(tmp_path):
    storage = _FakeStorage("0", np.arange(6, dtype=np.float32))
    obj = collections.OrderedDict(w=_FakeTensor(storage, 2, (2, 3), (3, 1)))  # needs 8 > 6
    write_torch_zip(tmp_path / "oob.pth", obj, [storage])
    with pytest.raises(CheckpointFormatError, match="reaches element 7 of a storage of 6"):
        load_torch_checkpoint(tmp_path / "oob.pth")

    (tmp_path / "text.pth").write_bytes(b"hello, not a checkpoint")
    with pytest.raises(CheckpointFormatError, match="re-save it with a recent PyTorch"):
        load_torch_checkpoint(tmp_path / "text.pth")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointFormatError, match="not a torch checkpoint"):
        load_torch_checkpoint(tmp_path / "other.zip")
    with zipfile.ZipFile(tmp_path / "script.pt", "w") as zf:
        zf.writestr("archive/data.pkl", b"")
        zf.writestr("archive/constants.pkl", b"")
    with pytest.raises(CheckpointFormatError, match="TorchScript archive"):
        load_torch_checkpoint(tmp_path / "script.pt")
    with tarfile.open(tmp_path / "ancient.pth", "w") as tar:
        tar.add(tmp_path / "text.pth", arcname="storages")
    with pytest.raises(CheckpointFormatError, match="tar-based format"):
        load_torch_checkpoint(tmp_path / "ancient.pth")
