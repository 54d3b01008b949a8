"""ResNet feature extractors ``z = Z(x)`` of the original MMC code, on Keras 3.

Mirrors ``utils/model.py`` of P2333/Max-Mahalanobis-Training (the keras-team CIFAR-10
ResNet example): v1 is depth ``6n+2`` with basic blocks (n=5: ResNet-32, n=18:
ResNet-110), v2 is depth ``9n+2`` with pre-activation bottlenecks. Both end in global
average pooling and a ``Dense(feature_dim)`` layer named ``"features"``; the class head
(softmax or :class:`keras_layers.MMCLayer`) is built by the caller on top.

    extractor = build_feature_extractor((32, 32, 3), version=1, n=5)  # ResNet-32, d=64
    z = extractor(x)                       # x: (batch, 32, 32, 3) -> z: (batch, 64)

Layer names depend only on the architecture (not on Keras' global name counters), so
weights saved from one build load into any other build with the same arguments.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import keras
from keras import layers

from utils.errors import UsageError
from utils.runs.model_config import DEFAULT_FEATURE_DIM, check_version_and_n, depth_of

#: L2 weight on every convolution kernel (the original's ``l2(1e-4)``).
L2_WEIGHT = 1e-4
#: Negative slope of LeakyReLU when ``use_leaky`` (tf.nn.leaky_relu's default; Keras' is 0.3).
LEAKY_SLOPE = 0.2
#: Name of the layer whose output is the feature vector z.
FEATURE_LAYER_NAME = "features"
_BASE_FILTERS = 16


def describe(version: int, n: int) -> str:
    """Short human-readable name, e.g. ``describe(1, 5) == "ResNet-32 v1"``."""
    return f"ResNet-{depth_of(version, n)} v{version}"


def build_feature_extractor(
    input_shape: Tuple[int, int, int],
    *,
    version: int = 1,
    n: int = 5,
    feature_dim: Optional[int] = None,
    use_BN: bool = True,
    use_dense: bool = True,
    use_leaky: bool = False,
    is_2d_demo: bool = False,
    l2_weight: float = L2_WEIGHT,
    name: str = "features",
) -> keras.Model:
    """Build the ResNet that maps images to features ``z``.

    Args:
        input_shape: ``(height, width, channels)`` of one image, e.g. ``(32, 32, 3)``.
            Inputs are float pixels /255 with the training pixel mean subtracted
            (about ``[-1, 1]``).
        version: 1 (``6n+2`` basic blocks, 16/32/64 filters) or 2 (``9n+2`` bottleneck,
            64/128/256 output filters).
        n: residual blocks per stage (n=5 -> ResNet-32 v1, n=18 -> ResNet-110 v1).
        feature_dim: units ``d`` of the final ``Dense`` layer; None -> 64 (v1) / 256 (v2).
        use_BN: BatchNormalization wherever the original has it.
        use_dense: if True, ``z = Dense(feature_dim, he_normal)(pooled)`` (the original);
            if False, ``z`` is the pooled vector itself (64 for v1, 256 for v2), and an
            explicit ``feature_dim`` must equal that.
        use_leaky: LeakyReLU(``LEAKY_SLOPE``) instead of ReLU everywhere in the backbone.
        is_2d_demo: ``d = 2`` for the 2-D feature plots (overrides ``feature_dim``;
            needs ``use_dense``).
        l2_weight: L2 factor on every conv kernel (not on the dense layer), >= 0.
        name: name of the returned model (distinct names let two extractors share one
            outer model).

    Returns:
        A functional ``keras.Model``: ``(batch, H, W, C)`` float32 ->
        ``(batch, d)`` in the global dtype policy's compute dtype. The layer producing
        ``z`` is named ``"features"``; ``model.losses`` holds one L2 term per conv.

    Raises:
        UsageError: unknown version, ``n < 1``, bad ``input_shape``, ``feature_dim < 1``,
            ``feature_dim`` inconsistent with ``use_dense=False``, or ``l2_weight < 0``.
    """
    check_version_and_n(version, n)
    _check_input_shape(input_shape)
    dim = _resolve_feature_dim(version, feature_dim, use_dense, is_2d_demo)
    if not l2_weight >= 0:
        raise UsageError(f"l2_weight must be >= 0, got {l2_weight!r}")
    cfg = _Cfg(use_BN=bool(use_BN), use_leaky=bool(use_leaky), l2_weight=float(l2_weight))

    inputs = keras.Input(shape=tuple(int(s) for s in input_shape), name="image")
    trunk = _resnet_v1 if version == 1 else _resnet_v2
    x = trunk(inputs, n, cfg)
    if use_dense:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        z = layers.Dense(dim, kernel_initializer="he_normal", name=FEATURE_LAYER_NAME)(x)
    else:
        z = layers.GlobalAveragePooling2D(name=FEATURE_LAYER_NAME)(x)
    return keras.Model(inputs=inputs, outputs=z, name=name)


@dataclasses.dataclass(frozen=True)
class _Cfg:
    """Options shared by every conv unit of one build."""

    use_BN: bool
    use_leaky: bool
    l2_weight: float


def _check_input_shape(input_shape: Tuple[int, int, int]) -> None:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(shape) != 3 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise UsageError(
            f"input_shape must be (height, width, channels) of positive ints, "
            f"got {input_shape!r}")


def _resolve_feature_dim(version: int, feature_dim: Optional[int], use_dense: bool,
                         is_2d_demo: bool) -> int:
    """Feature dimension d after defaults, overrides and consistency checks."""
    if feature_dim is not None and (
            isinstance(feature_dim, bool) or not isinstance(feature_dim, int)
            or feature_dim < 1):
        raise UsageError(f"feature_dim must be an int >= 1 or None, got {feature_dim!r}")
    pooled = DEFAULT_FEATURE_DIM[version]
    if not use_dense:
        if is_2d_demo:
            raise UsageError("is_2d_demo needs use_dense=True (a 2-unit feature layer)")
        if feature_dim is not None and feature_dim != pooled:
            raise UsageError(
                f"use_dense=False gives the {pooled} pooled channels of ResNet v{version} "
                f"as features, but feature_dim={feature_dim}; drop feature_dim or use "
                f"use_dense=True")
        return pooled
    if is_2d_demo:
        return 2
    return pooled if feature_dim is None else feature_dim


def _act(x, cfg: _Cfg, name: str):
    if cfg.use_leaky:
        return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=name)(x)
    return layers.Activation("relu", name=name)(x)


def _conv_unit(x, cfg: _Cfg, prefix: str, num_filters: int, *, kernel_size: int = 3,
               strides: int = 1, activation: bool = True, batch_norm: bool = True,
               conv_first: bool = True):
    """The original ``resnet_layer``: conv-BN-act (``conv_first``) or BN-act-conv.

    ``batch_norm`` is ANDed with ``cfg.use_BN``; layers are named ``{prefix}_conv``,
    ``{prefix}_bn`` and ``{prefix}_act``.
    """
    conv = layers.Conv2D(
        num_filters, kernel_size=kernel_size, strides=strides, padding="same",
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(cfg.l2_weight) if cfg.l2_weight else None,
        name=f"{prefix}_conv")
    if conv_first:
        x = conv(x)
    if batch_norm and cfg.use_BN:
        x = layers.BatchNormalization(name=f"{prefix}_bn")(x)
    if activation:
        x = _act(x, cfg, f"{prefix}_act")
    if not conv_first:
        x = conv(x)
    return x


def _resnet_v1(x, n: int, cfg: _Cfg):
    """ResNet v1 trunk: ``(batch, H, W, C) -> (batch, ceil(H/4), ceil(W/4), 64)``."""
    x = _conv_unit(x, cfg, "conv1", _BASE_FILTERS)
    num_filters = _BASE_FILTERS
    for stack in range(3):
        for block in range(n):
            p = f"s{stack}_b{block}"
            downsample = stack > 0 and block == 0
            strides = 2 if downsample else 1
            y = _conv_unit(x, cfg, f"{p}_a", num_filters, strides=strides)
            y = _conv_unit(y, cfg, f"{p}_b", num_filters, activation=False)
            if downsample:
                x = _conv_unit(x, cfg, f"{p}_proj", num_filters, kernel_size=1,
                               strides=strides, activation=False, batch_norm=False)
            x = layers.Add(name=f"{p}_add")([x, y])
            x = _act(x, cfg, f"{p}_out_act")
        num_filters *= 2
    return x


def _resnet_v2(x, n: int, cfg: _Cfg):
    """ResNet v2 trunk: ``(batch, H, W, C) -> (batch, ceil(H/4), ceil(W/4), 256)``."""
    filters_in = _BASE_FILTERS
    x = _conv_unit(x, cfg, "conv1", filters_in)
    for stage in range(3):
        filters_out = filters_in * (4 if stage == 0 else 2)
        for block in range(n):
            p = f"s{stage}_b{block}"
            # The very first unit follows conv1's BN-ReLU, so it skips its own.
            pre_act = not (stage == 0 and block == 0)
            strides = 2 if stage > 0 and block == 0 else 1
            y = _conv_unit(x, cfg, f"{p}_a", filters_in, kernel_size=1, strides=strides,
                           activation=pre_act, batch_norm=pre_act, conv_first=False)
            y = _conv_unit(y, cfg, f"{p}_b", filters_in, conv_first=False)
            y = _conv_unit(y, cfg, f"{p}_c", filters_out, kernel_size=1, conv_first=False)
            if block == 0:
                x = _conv_unit(x, cfg, f"{p}_proj", filters_out, kernel_size=1,
                               strides=strides, activation=False, batch_norm=False)
            x = layers.Add(name=f"{p}_add")([x, y])
        filters_in = filters_out
    if cfg.use_BN:
        x = layers.BatchNormalization(name="post_bn")(x)
    return _act(x, cfg, "post_act")
