"""Image encoders: torchvision-layout ResNets and a small CPU-sized CNN, in `flax.nnx`.

Every encoder maps NHWC float images ``[B, H, W, 3]`` (RGB) to the globally average-pooled
feature Φ ``[B, feature_dim]`` that the HKMR and HMR regressors consume. The ResNets
(18/34/50/101, no ``fc``) match torchvision's module tree and parameter shapes, so ImageNet
weights import one to one (`torchvision_import`). BatchNorm matches torch's; its batch
statistics are per device unless ``bn_axis_name`` is given. Details: docs/encoder.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "ENCODER_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "SmallCNN",
    "count_params",
    "create_encoder",
]

# torchvision's ImageNet preprocessing (RGB, applied to images scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torch BatchNorm2d(momentum=0.1) mixes 0.1 of the batch statistic into the running one;
# flax's momentum is the weight of the old value.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def _conv_init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    """torchvision's conv init: ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``.

    An untruncated normal with variance 2 / (kh * kw * out_channels) for an HWIO kernel.
    Outside a trace the draw is made by NumPy's PCG64 seeded with the JAX key's bits: still
    a deterministic function of the explicit key, but with no XLA compilation per kernel
    shape, which otherwise dominates model construction on CPU (0.3-1.5 s per distinct
    shape measured on 2 cores; a test-sized ResNet took 16 s to build, now under 1 s).
    Under ``jit`` / ``eval_shape`` (the key is a tracer) it is ``jax.random.normal``:
    traced and eager construction give different, equally distributed values.
    """
    shape = tuple(shape)
    std = math.sqrt(2.0 / (math.prod(shape[:-2]) * shape[-1]))
    if isinstance(key, jax.core.Tracer):
        return jax.random.normal(key, shape, dtype) * jnp.asarray(std, dtype)
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    seed = np.asarray(key, dtype=np.uint32).reshape(-1).tolist()
    rng = np.random.Generator(np.random.PCG64(seed))
    return jnp.asarray(rng.standard_normal(shape, dtype=np.float32) * np.float32(std), dtype)


# name -> (block type, blocks per stage), as in torchvision.models.resnet.
_RESNET_SPECS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}

ENCODER_NAMES: tuple[str, ...] = (*_RESNET_SPECS, "small_cnn")


def _conv(
    in_features: int,
    out_features: int,
    kernel_size: int,
    stride: int,
    *,
    dtype: Any,
    param_dtype: Any,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """Bias-free conv with torch's symmetric padding ``(k - 1) // 2``.

    Explicit padding rather than ``'SAME'``: for stride 2 on an even input, 'SAME' pads
    (k // 2 - 1, k // 2) instead of torch's (k // 2, k // 2), which shifts every feature
    map by one pixel and breaks the weight import.
    """
    pad = (kernel_size - 1) // 2
    return nnx.Conv(
        in_features,
        out_features,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        kernel_init=_conv_init,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def _batch_norm(
    num_features: int,
    *,
    axis_name: str | None,
    dtype: Any,
    param_dtype: Any,
    rngs: nnx.Rngs,
    zero_scale: bool = False,
) -> nnx.BatchNorm:
    """torch ``BatchNorm2d`` defaults (momentum 0.1, eps 1e-5), in training mode."""
    return nnx.BatchNorm(
        num_features,
        use_running_average=False,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        axis_name=axis_name,
        use_fast_variance=False,
        scale_init=nnx.initializers.zeros_init() if zero_scale else nnx.initializers.ones_init(),
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


def _check_images(x: jax.Array, in_channels: int, who: str) -> None:
    # Shapes are static under jit, so this costs nothing in a compiled step.
    if x.ndim != 4 or x.shape[-1] != in_channels:
        raise ValueError(
            f"{who} expects NHWC images [B, H, W, {in_channels}], got shape {tuple(x.shape)}; "
            "transpose NCHW batches with x.transpose(0, 2, 3, 1)"
        )


class BasicBlock(nnx.Module):
    """torchvision ``BasicBlock``: two 3x3 convs and an identity (or 1x1) shortcut.

    Attributes mirror torchvision: ``conv1, bn1, conv2, bn2`` and ``downsample`` (an
    ``nnx.List([conv, bn])`` or None).
    """

    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        *,
        bn_axis_name: str | None = None,
        zero_init_residual: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.conv1 = _conv(in_planes, planes, 3, stride, **kw)
        self.bn1 = _batch_norm(planes, axis_name=bn_axis_name, **kw)
        self.conv2 = _conv(planes, planes, 3, 1, **kw)
        self.bn2 = _batch_norm(planes, axis_name=bn_axis_name, zero_scale=zero_init_residual, **kw)
        self.downsample = _shortcut(in_planes, planes, stride, bn_axis_name, kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """[B, H, W, in_planes] -> [B, ceil(H / stride), ceil(W / stride), planes]."""
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return jax.nn.relu(y + _apply_shortcut(self.downsample, x))


class Bottleneck(nnx.Module):
    """torchvision ``Bottleneck`` (v1.5): 1x1 -> 3x3 (strided) -> 1x1 (x4 channels).

    The stride is on the 3x3 conv (``conv2``), as in torchvision since 2017 and unlike the
    original paper's 1x1; the ImageNet weights were trained that way.
    """

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        *,
        bn_axis_name: str | None = None,
        zero_init_residual: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        out_planes = planes * self.expansion
        self.conv1 = _conv(in_planes, planes, 1, 1, **kw)
        self.bn1 = _batch_norm(planes, axis_name=bn_axis_name, **kw)
        self.conv2 = _conv(planes, planes, 3, stride, **kw)
        self.bn2 = _batch_norm(planes, axis_name=bn_axis_name, **kw)
        self.conv3 = _conv(planes, out_planes, 1, 1, **kw)
        self.bn3 = _batch_norm(
            out_planes, axis_name=bn_axis_name, zero_scale=zero_init_residual, **kw
        )
        self.downsample = _shortcut(in_planes, out_planes, stride, bn_axis_name, kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """[B, H, W, in_planes] -> [B, ceil(H / stride), ceil(W / stride), 4 * planes]."""
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = jax.nn.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return jax.nn.relu(y + _apply_shortcut(self.downsample, x))


def _shortcut(
    in_planes: int, out_planes: int, stride: int, bn_axis_name: str | None, kw: dict
) -> nnx.List | None:
    # torchvision adds the 1x1 projection only when the shape changes; an nnx.List keeps
    # the key layout `downsample.0.weight` / `downsample.1.*` of its nn.Sequential.
    if stride == 1 and in_planes == out_planes:
        return None
    return nnx.List(
        [
            _conv(in_planes, out_planes, 1, stride, **kw),
            _batch_norm(out_planes, axis_name=bn_axis_name, **kw),
        ]
    )


def _apply_shortcut(downsample: nnx.List | None, x: jax.Array) -> jax.Array:
    if downsample is None:
        return x
    conv, bn = downsample
    return bn(conv(x))


def _global_average_pool(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, C], accumulated in at least float32 (bf16 sums lose digits)."""
    return jnp.mean(x, axis=(1, 2), dtype=jnp.promote_types(x.dtype, jnp.float32))


class ResNet(nnx.Module):
    """torchvision ResNet without ``fc``: images -> pooled feature Φ.

    Args:
        block: ``'basic'`` (ResNet-18/34) or ``'bottleneck'`` (ResNet-50/101).
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)``.
        base_width: channels of the stem and of stage 1; stages have ``base_width *
            (1, 2, 4, 8)`` planes. 64 is torchvision; smaller values give test-sized
            variants with the same key layout.
        in_channels: image channels (3 for the ImageNet weights).
        bn_axis_name: mesh axis over which BatchNorm averages batch statistics (sync BN),
            e.g. ``'data'``; None (default) keeps them per device. See docs/encoder.md.
        zero_init_residual: initialise the last BN scale of every block to zero
            (torchvision's option; off by default, as there).
        dtype: computation dtype (e.g. ``jnp.bfloat16``); None follows the inputs/params.
        param_dtype: parameter dtype.
        arch: the torchvision name this instance reproduces (set by `create_encoder`),
            used in messages and to find the download URL of its ImageNet weights.
        rngs: parameter initialisation keys.

    Attributes:
        feature_dim: size of Φ: ``8 * base_width * expansion`` (512 or 2048 at width 64).
    """

    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        *,
        base_width: int = 64,
        in_channels: int = 3,
        bn_axis_name: str | None = None,
        zero_init_residual: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        arch: str | None = None,
        rngs: nnx.Rngs,
    ):
        blocks = {"basic": BasicBlock, "bottleneck": Bottleneck}
        if block not in blocks:
            raise ValueError(f"unknown ResNet block {block!r}; valid: 'basic', 'bottleneck'")
        layers = tuple(int(n) for n in layers)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"ResNet needs 4 stages of >= 1 block each, got layers={layers}")
        if base_width < 1:
            raise ValueError(f"base_width must be positive, got {base_width}")
        block_cls = blocks[block]
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)

        self.arch = arch
        self.block = block
        self.layers = layers
        self.in_channels = in_channels
        self.conv1 = _conv(in_channels, base_width, 7, 2, **kw)
        self.bn1 = _batch_norm(base_width, axis_name=bn_axis_name, **kw)
        in_planes = base_width
        stages = []
        for i, num_blocks in enumerate(layers):
            planes = base_width * 2**i
            stage = []
            for j in range(num_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(
                    block_cls(
                        in_planes,
                        planes,
                        stride,
                        bn_axis_name=bn_axis_name,
                        zero_init_residual=zero_init_residual,
                        **kw,
                    )
                )
                in_planes = planes * block_cls.expansion
            stages.append(nnx.List(stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.feature_dim = in_planes

    def stem(self, x: jax.Array) -> jax.Array:
        """conv1 (7x7/2) -> bn1 -> ReLU -> max-pool 3x3/2: [B, H, W, C] -> [B, H/4, W/4, w]."""
        _check_images(x, self.in_channels, type(self).__name__)
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        # torch's MaxPool2d(3, 2, padding=1) pads with -inf; so does reduce_window here.
        return nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))

    def feature_map(self, x: jax.Array) -> jax.Array:
        """Last-stage feature map: [B, H, W, C] -> [B, ceil(H/32), ceil(W/32), feature_dim]."""
        x = self.stem(x)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        """Φ: [B, H, W, C] images -> [B, feature_dim] (float32 or wider)."""
        return _global_average_pool(self.feature_map(x))


class _ConvBNReLU(nnx.Module):
    def __init__(self, in_features, out_features, kernel_size, stride, *, bn_axis_name, **kw):
        self.conv = _conv(in_features, out_features, kernel_size, stride, **kw)
        self.bn = _batch_norm(out_features, axis_name=bn_axis_name, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(self.bn(self.conv(x)))


class SmallCNN(nnx.Module):
    """A CPU-sized encoder: per stage a strided 3x3 conv and a 3x3 conv, each +BN+ReLU.

    Stage i halves the resolution and has ``widths[i]`` channels; four stages take a
    64x64 image to 4x4 (128x128 to 8x8) before global average pooling. At the default
    widths: 1,173,216 parameters and about 53M multiply-adds per 64x64 image (ResNet-50:
    23.5M and about 4.1G at 224x224).

    Args:
        widths: channels per stage.
        feature_dim: channels of the last feature map. None (default) means
            ``widths[-1]``; another value adds a 1x1 conv+BN+ReLU head to that many
            channels before pooling.
        flatten: None (default): Φ is the global average of the last feature map. An int
            s: the map must be s × s (s = image size / 2**len(widths)) and Φ is the map
            flattened, s·s·channels numbers: where each part of the body is stays in Φ,
            which a 4 × 4 map's average mostly loses (ResNet-50 averages a 7 × 7 map of
            2048 channels).
        in_channels: image channels.
        bn_axis_name: see `ResNet`.
        dtype: computation dtype.
        param_dtype: parameter dtype.
        rngs: parameter initialisation keys.

    Attributes:
        feature_dim: size of Φ.
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128, 256),
        *,
        feature_dim: int | None = None,
        flatten: int | None = None,
        in_channels: int = 3,
        bn_axis_name: str | None = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        widths = tuple(int(w) for w in widths)
        if flatten is not None and int(flatten) < 1:
            raise ValueError(f"flatten must be a positive map size or None, got {flatten}")
        self.flatten = None if flatten is None else int(flatten)
        if not widths or min(widths) < 1:
            raise ValueError(f"SmallCNN widths must be a non-empty list of positive ints: {widths}")
        if feature_dim is not None and feature_dim < 1:
            raise ValueError(f"feature_dim must be positive, got {feature_dim}")
        kw = dict(bn_axis_name=bn_axis_name, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.in_channels = in_channels
        self.widths = widths
        stages = []
        prev = in_channels
        for w in widths:
            stages.append(
                nnx.List([_ConvBNReLU(prev, w, 3, 2, **kw), _ConvBNReLU(w, w, 3, 1, **kw)])
            )
            prev = w
        self.stages = nnx.List(stages)
        if feature_dim is None or feature_dim == prev:
            self.head = None
            channels = prev
        else:
            self.head = _ConvBNReLU(prev, feature_dim, 1, 1, **kw)
            channels = feature_dim
        self.feature_dim = channels if self.flatten is None else channels * self.flatten**2

    def feature_map(self, x: jax.Array) -> jax.Array:
        """[B, H, W, C] -> [B, H / 2**len(widths), W / 2**len(widths), feature_dim]."""
        _check_images(x, self.in_channels, type(self).__name__)
        for stage in self.stages:
            for layer in stage:
                x = layer(x)
        if self.head is not None:
            x = self.head(x)
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        """Φ: [B, H, W, C] images -> [B, feature_dim]."""
        x = self.feature_map(x)
        if self.flatten is None:
            return _global_average_pool(x)
        if x.shape[1:3] != (self.flatten, self.flatten):
            raise ValueError(
                f"SmallCNN(flatten={self.flatten}) expects a {self.flatten}x{self.flatten} "
                f"feature map, got {x.shape[1]}x{x.shape[2]}: the images must be "
                f"{self.flatten * 2 ** len(self.widths)} px (set flatten to image size / "
                f"{2 ** len(self.widths)})."
            )
        return x.reshape(x.shape[0], -1)


def create_encoder(name: str, *, rngs: nnx.Rngs, **kwargs: Any) -> ResNet | SmallCNN:
    """Builds an encoder by name.

    Args:
        name: one of `ENCODER_NAMES`: ``'resnet18'``, ``'resnet34'``, ``'resnet50'``,
            ``'resnet101'``, ``'small_cnn'``.
        rngs: parameter initialisation keys.
        **kwargs: forwarded to `ResNet` (``bn_axis_name``, ``base_width``, ``dtype``, ...)
            or `SmallCNN` (``widths``, ``feature_dim``, ``bn_axis_name``, ``dtype``, ...).

    Returns:
        The encoder, in training mode; ``encoder.feature_dim`` is the size of Φ.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name in _RESNET_SPECS:
        block, layers = _RESNET_SPECS[name]
        return ResNet(block, layers, arch=name, rngs=rngs, **kwargs)
    if name == "small_cnn":
        return SmallCNN(rngs=rngs, **kwargs)
    raise ValueError(f"unknown encoder {name!r}; valid names: {', '.join(ENCODER_NAMES)}")


def count_params(model: nnx.Module, variable_type: Callable | type = nnx.Param) -> int:
    """Number of scalars in ``model``'s variables of ``variable_type`` (an nnx filter).

    Works on abstract models from ``nnx.eval_shape`` too (nothing is materialised).
    """
    leaves = jax.tree.leaves(nnx.state(model, variable_type))
    return sum(int(x.size) for x in leaves)
