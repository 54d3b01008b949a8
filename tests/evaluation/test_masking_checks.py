"""Gradient-masking checks: each fires on a model built to trip it and stays quiet on a
plain one (tiny Dense nets, random weights; no training)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from utils.evaluation import ensemble as evaluation

from utils.evaluation import masking_checks
from utils.evaluation.masking_checks import (accuracy_trend, batch_checks, blackbox_from_records,
                                             blackbox_stronger, input_gradients, nondeterminism,
                                             probability_outputs)
from utils.attacks.objectives import OBJECTIVES

SHAPE, NUM_CLASSES = (4, 4, 1), 4
CE = OBJECTIVES.get("ce").fn


def _dense(activation=None, kernel="glorot_uniform", dropout=False):
    layers = [keras.Input(SHAPE), keras.layers.Flatten()]
    if dropout:
        layers.append(keras.layers.Dropout(0.5))
    layers.append(keras.layers.Dense(NUM_CLASSES, activation=activation,
                                     kernel_initializer=kernel, bias_initializer="zeros"))
    keras.utils.set_random_seed(0)
    return keras.Sequential(layers)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(8,) + SHAPE).astype(np.float32)
    return x, np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, 8)]


def test_plain_logit_model_passes_every_batch_check(batch):
    assert batch_checks(_dense(), *batch, objective=CE) == []


def test_probability_outputs(batch):
    model = _dense("softmax")
    [message] = probability_outputs(model(batch[0]))
    assert "probabilities" in message
    assert probability_outputs(_dense()(batch[0])) == []
    assert any("probabilities" in m for m in batch_checks(model, *batch, objective=CE))


def test_evaluation_uses_the_same_probability_check():
    assert evaluation.probability_outputs is masking_checks.probability_outputs
    with pytest.warns(RuntimeWarning, match="probabilities"):
        evaluation._warn_probability_outputs(np.full((2, 4), 0.25))


def test_zero_gradients(batch):
    [message] = input_gradients(_dense(kernel="zeros"), *batch, objective=CE)
    assert message.startswith("zero input gradients on 8 of 8 examples")


def test_nan_gradients(batch):
    def broken(x):  # sqrt of negatives: NaN logits and gradients
        return tf.sqrt(tf.reshape(x, (-1, 16))[:, :NUM_CLASSES] - 2.0)
    found = input_gradients(broken, *batch, objective=CE)
    assert any(m.startswith("NaN/inf input gradients on 8 of 8") for m in found)


def test_disconnected_gradient(batch):
    found = input_gradients(lambda x: tf.zeros((tf.shape(x)[0], NUM_CLASSES)), *batch,
                            objective=CE)
    assert "no gradient" in found[0]


def test_nondeterministic_predictions(batch):
    model = _dense(dropout=True)
    [message] = nondeterminism(lambda x: model(x, training=True), batch[0])
    assert message.startswith("non-deterministic predictions")
    assert nondeterminism(model, batch[0]) == []  # inference mode: no dropout


def test_accuracy_rising_with_eps_or_steps():
    assert accuracy_trend([(8, 10, 0.5), (16, 10, 0.3), (8, 50, 0.45)]) == []
    [eps_msg] = accuracy_trend([(8, 10, 0.3), (16, 10, 0.35), (32, 10, 0.1)])
    assert "rises with eps at steps=10" in eps_msg and "0.3000 at eps=8" in eps_msg
    [steps_msg] = accuracy_trend([(8, 10, 0.3), (8, 100, 0.4)])
    assert "rises with steps at eps=8" in steps_msg
    assert accuracy_trend([(8, 10, 0.3), (16, 10, 0.305)], tol=0.01) == []


def test_blackbox_stronger_than_whitebox():
    assert blackbox_stronger(0.40, 0.45) == []
    [message] = blackbox_stronger(0.40, 0.30, black_box_name="SPSA")
    assert message.startswith("SPSA attack is stronger")
    white = dict(model="m", n=100, dataset="d", eps=0.03125, adv_accuracy=0.5)
    records = [dict(white, transfer=True, model_1="SCE", adv_accuracy=0.2),
               dict(white, attack_name="SPSA", adv_accuracy=0.6),
               dict(white, transfer=True, model_1="SCE", adv_accuracy=0.1, eps=0.0625),
               dict(white, transfer=False, adv_accuracy=0.1)]
    [message] = blackbox_from_records(records, white)
    assert message.startswith("transfer from SCE attack is stronger")


def _two_centers(x):
    """Logits ``-||x - mu_l||^2`` for centers (±1, 0) on 2-d inputs: an MMLDA-like head
    on the identity feature map, where pushing ``x`` away from ``mu_y`` (``mmc_un1``)
    mostly moves it sideways while ``ce`` moves it toward the other center."""
    mu = tf.constant([[1.0, 0.0], [-1.0, 0.0]])
    return -tf.reduce_sum(tf.square(x[:, None, :] - mu[None]), axis=-1)


def _near_center_0(n=64):
    rng = np.random.default_rng(1)
    x = np.stack([np.ones(n), rng.uniform(-0.2, 0.2, n)], axis=1).astype(np.float32)
    return x, np.eye(2, dtype=np.float32)[np.zeros(n, dtype=np.int64)]


def test_weaker_objective_fires_when_a_standard_objective_does_better():
    x, y = _near_center_0()
    found = masking_checks.weaker_objective(_two_centers, x, y, "mmc_un1", eps=1.2,
                                            eps_iter=0.2, clip_min=-5.0, clip_max=5.0)
    assert found and all("--objective=" in w for w in found)
    # ce breaks (nearly) every point; the exact share depends on the random starts
    [ce] = [w for w in found if "objective ce leaves" in w]
    assert float(ce.split("objective ce leaves ")[1].split("%")[0]) <= 5.0


def test_weaker_objective_quiet_when_the_objective_is_the_strongest():
    x, y = _near_center_0()
    assert masking_checks.weaker_objective(_two_centers, x, y, "ce", eps=1.2, eps_iter=0.2,
                                           clip_min=-5.0, clip_max=5.0) == []
