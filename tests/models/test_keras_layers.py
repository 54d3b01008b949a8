"""MMCLayer: distances, serialization round trip, .keras reload in safe mode."""
import keras
import numpy as np
import pytest

from keras_layers import MMCLayer


def _centers(num_classes=4, dim=3, seed=0):
    return np.random.default_rng(seed).normal(size=(num_classes, dim))


def test_logits_are_negative_squared_distances():
    centers = _centers()
    z = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    out = MMCLayer(centers)(z).numpy()
    expected = -((z[:, None, :] - centers[None].astype(np.float32)) ** 2).sum(-1)
    assert out.shape == (5, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-5)


def test_zero_at_center_and_argmax_is_nearest():
    centers = _centers().astype(np.float32)
    out = MMCLayer(centers)(centers).numpy()
    np.testing.assert_array_equal(np.diag(out), np.zeros(4, np.float32))
    assert (out.argmax(1) == np.arange(4)).all()


def test_normalize_output_gives_softmax():
    centers = _centers()
    z = np.zeros((2, 3), np.float32)
    out = MMCLayer(centers, normalize_output=True)(z).numpy()
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-6)
    logits = MMCLayer(centers)(z).numpy()
    np.testing.assert_allclose(out, np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               rtol=1e-5)


def test_centers_are_not_trainable():
    layer = MMCLayer(_centers())
    layer.build((None, 3))
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 1


def test_config_round_trip_keeps_centers_in_weights_and_old_configs_load():
    layer = MMCLayer(_centers(), normalize_output=True, name="mmc")
    layer.build((None, 3))
    config = layer.get_config()
    assert "centers" not in config  # the centers live in the weights
    clone = MMCLayer.from_config(config)
    clone.build((None, 3))
    assert clone.normalize_output is True and clone.centers.shape == _centers().shape
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone.centers), _centers().astype(np.float32))
    old = dict(config, centers=_centers().tolist())  # a config written before this change
    old.pop("num_classes"), old.pop("feature_dim")
    legacy = MMCLayer.from_config(old)
    legacy.build((None, 3))
    np.testing.assert_array_equal(np.asarray(legacy.centers), _centers().astype(np.float32))


def test_keras_file_reloads_in_safe_mode_with_identical_outputs(tmp_path):
    inputs = keras.Input((6,))
    z = keras.layers.Dense(3)(inputs)
    model = keras.Model(inputs, MMCLayer(_centers())(z))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).normal(size=(7, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in loaded.layers)


@pytest.mark.parametrize("bad", [np.zeros((1, 3)), np.zeros((3,)), np.full((2, 2), np.nan)])
def test_bad_centers_rejected(bad):
    with pytest.raises(ValueError):
        MMCLayer(bad)


def test_wrong_feature_dim_rejected():
    with pytest.raises(ValueError, match="dimension 3"):
        MMCLayer(_centers())(np.zeros((2, 5), np.float32))


def test_float32_output_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    inputs = keras.Input((6,))
    z = keras.layers.Dense(3)(inputs)
    out = MMCLayer(_centers())(z)
    assert out.dtype == "float32"
