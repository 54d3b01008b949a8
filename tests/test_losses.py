"""Loss registry and the MMC loss' defining properties."""
import numpy as np
import pytest
import tensorflow as tf

from keras_layers import MMCLayer
from utils.errors import UsageError
from utils.losses import mmc_loss, mmlda_loss, sce_loss
from utils.loss_specs import LOSSES, loss_name_from_flags


def _setup(seed=0, num_classes=5, dim=4):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_classes, dim)) * 3
    z = rng.normal(size=(8, dim)).astype(np.float32)
    y = rng.integers(0, num_classes, size=8)
    return centers, z, y, np.eye(num_classes, dtype=np.float32)[y]


def test_registry_lists_the_three_losses_and_heads():
    assert {"sce", "mmc", "mmlda"} <= set(LOSSES.names())
    assert LOSSES.get("sce").head == "dense"
    assert LOSSES.get("mmc").head == LOSSES.get("mmlda").head == "mmc"
    with pytest.raises(UsageError, match="choose one of"):
        LOSSES.get("nope")


def test_every_declared_loss_has_its_function_and_no_function_is_undeclared():
    from utils.losses import LOSS_FUNCTIONS, register_loss
    assert LOSS_FUNCTIONS.names() == LOSSES.names()
    with pytest.raises(UsageError, match="unknown loss"):
        register_loss("undeclared")


@pytest.mark.parametrize("seed", range(5))
def test_mmc_loss_is_squared_distance_to_true_center(seed):
    centers, z, y, onehot = _setup(seed)
    loss = mmc_loss(onehot, MMCLayer(centers)(z)).numpy()
    expected = ((z - centers[y].astype(np.float32)) ** 2).sum(1)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert (loss >= 0).all()


@pytest.mark.parametrize("seed", range(5))
def test_mmc_loss_is_zero_at_the_center(seed):
    centers, _, y, onehot = _setup(seed)
    z = centers[y].astype(np.float32)
    np.testing.assert_array_equal(mmc_loss(onehot, MMCLayer(centers)(z)).numpy(), 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_mmc_gradient_points_to_the_center(seed):
    centers, z, y, onehot = _setup(seed)
    layer = MMCLayer(centers)
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        loss = tf.reduce_sum(mmc_loss(onehot, layer(zt)))
    grad = tape.gradient(loss, zt).numpy()
    # d/dz ||z - mu||^2 = 2 (z - mu): minus the gradient is parallel to mu - z.
    np.testing.assert_allclose(-grad, 2 * (centers[y].astype(np.float32) - z), rtol=1e-4,
                               atol=1e-4)


def test_mmlda_is_cross_entropy_on_mmc_logits():
    centers, z, y, onehot = _setup()
    logits = MMCLayer(centers)(z).numpy().astype(np.float64)
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    np.testing.assert_allclose(mmlda_loss(onehot, logits.astype(np.float32)).numpy(),
                               -log_softmax[np.arange(8), y], rtol=1e-4, atol=1e-6)


def test_sce_matches_keras():
    import keras
    _, _, _, onehot = _setup()
    logits = np.random.default_rng(3).normal(size=onehot.shape).astype(np.float32)
    ref = keras.losses.categorical_crossentropy(onehot, logits, from_logits=True).numpy()
    np.testing.assert_allclose(sce_loss(onehot, logits).numpy(), ref, rtol=1e-5)


def test_flag_mapping_matches_the_original():
    assert loss_name_from_flags(use_MMLDA=False, use_ball=True) == "sce"
    assert loss_name_from_flags(use_MMLDA=True, use_ball=True) == "mmc"
    assert loss_name_from_flags(use_MMLDA=True, use_ball=False) == "mmlda"
