"""mmt's Keras loss classes: sparse == one-hot, bad label shapes refused, .keras round trip."""
from __future__ import annotations

import numpy as np
import pytest

import mmt
from mmt_tiny import NUM_CLASSES, SHAPE, tiny_data, tiny_model
from utils.loss_specs import LOSSES


def _logits(batch=6, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, NUM_CLASSES)).astype(np.float32)


def test_every_registered_loss_has_a_keras_class():
    assert sorted(mmt.KERAS_LOSSES) == LOSSES.names()
    for name, cls in mmt.KERAS_LOSSES.items():
        assert issubclass(cls, mmt.RegisteredLoss)
        assert LOSSES.get(cls.loss_name).head == LOSSES.get(name).head


@pytest.mark.parametrize("cls", [mmt.MMCLoss, mmt.SCELoss, mmt.MMLDALoss, mmt.LGMLoss,
                                 mmt.LabelSmoothingLoss])
def test_sparse_and_onehot_labels_give_the_same_value(cls):
    logits, y = _logits(), np.array([0, 1, 2, 3, 4, 0])
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[y]
    loss = cls()
    want = float(loss(onehot, logits))
    assert float(loss(y, logits)) == pytest.approx(want, rel=1e-6)
    assert float(loss(y[:, None], logits)) == pytest.approx(want, rel=1e-6)
    assert float(loss(y.astype(np.float32), logits)) == pytest.approx(want, rel=1e-6)


def test_mmc_loss_is_the_registered_function_and_refuses_other_label_shapes():
    from utils.losses import mmc_loss
    logits, y = _logits(), np.array([0, 1, 2, 3, 4, 0])
    per_example = np.asarray(mmc_loss(y, logits))
    assert per_example.shape == (6,)
    np.testing.assert_allclose(per_example, -logits[np.arange(6), y], rtol=1e-6)
    assert float(mmt.MMCLoss()(y, logits)) == pytest.approx(per_example.mean(), rel=1e-6)
    bad = np.zeros((6, 2), np.int64)
    with pytest.raises(ValueError, match=r"one-hot \(batch, 5\) or class indices \(batch,\)"):
        mmt.MMCLoss()(bad, logits)
    with pytest.raises(ValueError, match="class indices"):
        mmc_loss(bad, logits)


def test_config_round_trip_and_hyper_parameters_checked():
    loss = mmt.LGMLoss(lgm_margin=0.2, name="lgm")
    again = mmt.LGMLoss.from_config(loss.get_config())
    assert again.params == {"lgm_margin": 0.2, "lgm_lambda": 0.01} and again.name == "lgm"
    with pytest.raises(TypeError, match="hyper-parameters"):
        mmt.MMCLoss(lgm_margin=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        mmt.LabelSmoothingLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="head="):
        mmt.CenterLoss()


def test_compiled_model_saves_and_reloads_in_safe_mode(tmp_path):
    import keras
    model = tiny_model()
    x, y = tiny_data(16)
    model.compile(keras.optimizers.Adam(0.01), loss=mmt.MMCLoss(), metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "mmc.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(reloaded.loss, mmt.MMCLoss)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(model(x)))
    assert reloaded.evaluate(x, y, verbose=0)[0] == pytest.approx(
        model.evaluate(x, y, verbose=0)[0], rel=1e-6)


def test_head_loss_trains_through_the_head():
    import keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    z = keras.layers.Dense(3)(keras.layers.Flatten()(inputs))
    head = mmt.CenterLossDense(NUM_CLASSES, name="logits")
    model = keras.Model(inputs, {"logits": head(z), "features": z})
    model.compile("adam", loss={"features": mmt.CenterLoss(head=head), "logits": None})
    x, y = tiny_data(8)
    before = head.kernel.numpy().copy()
    model.fit(x, {"features": y, "logits": y}, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(before, head.kernel.numpy())
