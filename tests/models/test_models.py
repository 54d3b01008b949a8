"""Tests of utils.models.resnet: ResNet v1/v2 feature extractors (tiny n=1 builds)."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from utils.errors import UsageError
from utils.models.resnet import (
    DEFAULT_FEATURE_DIM, FEATURE_LAYER_NAME, build_feature_extractor, depth_of, describe)


def _images(shape, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(batch,) + tuple(shape)).astype("float32")


def _of_type(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


@pytest.fixture(scope="module")
def tiny():
    """One n=1 build per version on (8, 8, 3), shared by the read-only tests."""
    return {v: build_feature_extractor((8, 8, 3), version=v, n=1) for v in (1, 2)}


def test_depth_of_and_describe():
    assert depth_of(1, 5) == 32
    assert depth_of(1, 18) == 110
    assert depth_of(2, 5) == 47
    assert depth_of(2, 12) == 110
    assert describe(1, 5) == "ResNet-32 v1"
    assert describe(2, 12) == "ResNet-110 v2"


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("shape", [(8, 8, 3), (28, 28, 3)])
def test_output_shape(version, shape):
    model = build_feature_extractor(shape, version=version, n=1)
    z = model(_images(shape), training=False)
    assert tuple(z.shape) == (2, DEFAULT_FEATURE_DIM[version])
    assert model.get_layer(FEATURE_LAYER_NAME).output.shape[-1] == DEFAULT_FEATURE_DIM[version]
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(z)))


def test_explicit_feature_dim():
    model = build_feature_extractor((8, 8, 3), version=1, n=1, feature_dim=10)
    assert model.output.shape[-1] == 10


@pytest.mark.parametrize("version,dim", [(1, 64), (2, 256)])
def test_no_dense_gives_pooled_channels(version, dim):
    model = build_feature_extractor((8, 8, 3), version=version, n=1, use_dense=False)
    assert model.output.shape[-1] == dim
    assert not _of_type(model, keras.layers.Dense)
    assert isinstance(model.get_layer(FEATURE_LAYER_NAME), keras.layers.GlobalAveragePooling2D)
    # An explicit feature_dim equal to the channel count is accepted.
    build_feature_extractor((8, 8, 3), version=version, n=1, use_dense=False, feature_dim=dim)


@pytest.mark.parametrize("version", [1, 2])
def test_2d_demo(version):
    model = build_feature_extractor((8, 8, 3), version=version, n=1, is_2d_demo=True,
                                    feature_dim=64)
    assert model.output.shape[-1] == 2


@pytest.mark.parametrize("version", [1, 2])
def test_depth_counts_weighted_layers(tiny, version):
    """Depth = convs on the main path + the dense layer (projections not counted)."""
    model = tiny[version]
    convs = _of_type(model, keras.layers.Conv2D)
    main = [c for c in convs if not c.name.endswith("_proj_conv")]
    assert len(main) + len(_of_type(model, keras.layers.Dense)) == depth_of(version, 1)
    assert len(convs) - len(main) == (2 if version == 1 else 3)


@pytest.mark.parametrize("version", [1, 2])
def test_l2_on_convs_and_he_normal(tiny, version):
    model = tiny[version]
    convs = _of_type(model, keras.layers.Conv2D)
    assert len(model.losses) == len(convs) > 0
    for conv in convs:
        assert conv.padding == "same"
        assert isinstance(conv.kernel_initializer, keras.initializers.HeNormal)
        assert isinstance(conv.kernel_regularizer, keras.regularizers.L2)
        assert conv.kernel_regularizer.l2 == pytest.approx(1e-4)
    dense = model.get_layer(FEATURE_LAYER_NAME)
    assert isinstance(dense.kernel_initializer, keras.initializers.HeNormal)
    assert dense.kernel_regularizer is None


@pytest.mark.parametrize("version", [1, 2])
def test_no_lambda_and_default_relu(tiny, version):
    model = tiny[version]
    assert not _of_type(model, keras.layers.Lambda)
    assert not _of_type(model, keras.layers.LeakyReLU)
    assert _of_type(model, keras.layers.BatchNormalization)


@pytest.mark.parametrize("version", [1, 2])
def test_without_bn(version):
    model = build_feature_extractor((8, 8, 3), version=version, n=1, use_BN=False)
    assert not _of_type(model, keras.layers.BatchNormalization)
    assert model.output.shape[-1] == DEFAULT_FEATURE_DIM[version]


@pytest.mark.parametrize("version", [1, 2])
def test_leaky(version):
    model = build_feature_extractor((8, 8, 3), version=version, n=1, use_leaky=True)
    leaky = _of_type(model, keras.layers.LeakyReLU)
    assert leaky and all(layer.negative_slope == pytest.approx(0.2) for layer in leaky)
    acts = _of_type(model, keras.layers.Activation)
    assert not [a for a in acts if a.activation is keras.activations.relu]


@pytest.mark.parametrize("version", [1, 2])
def test_weights_round_trip_between_builds(tmp_path, version):
    kwargs = dict(version=version, n=1, feature_dim=8)
    first = build_feature_extractor((8, 8, 3), **kwargs)
    second = build_feature_extractor((8, 8, 3), **kwargs)
    assert [layer.name for layer in first.layers] == [layer.name for layer in second.layers]
    assert [w.shape for w in first.weights] == [w.shape for w in second.weights]
    x = _images((8, 8, 3))
    # A training step moves BN statistics away from their initial values first.
    first(x, training=True)
    path = str(tmp_path / "x.weights.h5")
    first.save_weights(path)
    second.load_weights(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(first(x, training=False)),
        keras.ops.convert_to_numpy(second(x, training=False)), rtol=1e-5, atol=1e-6)


def test_resnet32_param_count():
    model = build_feature_extractor((32, 32, 3), version=1, n=5)
    assert 450_000 <= model.count_params() <= 480_000


@pytest.mark.parametrize("kwargs", [
    dict(version=3),
    dict(version=0),
    dict(n=0),
    dict(n=-1),
    dict(n=1.5),
    dict(feature_dim=0),
    dict(feature_dim=-3),
    dict(version=1, use_dense=False, feature_dim=32),
    dict(version=2, use_dense=False, feature_dim=64),
    dict(use_dense=False, is_2d_demo=True),
    dict(l2_weight=-1e-4),
])
def test_bad_args_raise_usage_error(kwargs):
    with pytest.raises(UsageError):
        build_feature_extractor((8, 8, 3), **kwargs)


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 0), (8, 8, 3, 1)])
def test_bad_input_shape(shape):
    with pytest.raises(UsageError):
        build_feature_extractor(shape, n=1)


def test_bad_args_helpers():
    with pytest.raises(UsageError):
        depth_of(4, 5)
    with pytest.raises(UsageError):
        describe(1, 0)


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("version", [1, 2])
def test_builds_under_mixed_float16(mixed_precision, version):
    model = build_feature_extractor((8, 8, 3), version=version, n=1)
    z = model(_images((8, 8, 3)), training=False)
    assert tuple(z.shape) == (2, DEFAULT_FEATURE_DIM[version])
    assert keras.backend.standardize_dtype(z.dtype) == "float16"
    assert all(w.dtype == "float32" for w in model.weights)
