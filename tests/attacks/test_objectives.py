"""Properties of the attack-objective registry (utils/attacks/objectives.py).

On an MMC head (``h_l = -||z - mu_l||^2``) every objective has a closed form in the squared
distances ``L_MMC(z, l) = ||z - mu_l||^2``; the tests compare with NumPy, check the signs
the attacker relies on (it MINIMISES every objective) and the name mapping per attack.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_layers import MMCLayer
from ts_centers import get_centers
from utils.errors import UsageError
from utils.losses import loss_function
from utils.attacks.objectives import (OBJECTIVES, check_objective, cross_entropy,
                                      select_objective)
from utils.evaluation.masking_checks import input_gradients

NUM_CLASSES, FEATURE_DIM, C_MM, BATCH = 5, 6, 2.0, 16


def call(name, logits, labels, targets=None, **context):
    return OBJECTIVES.get(name).fn(logits, labels, targets=targets, **context).numpy()


@pytest.fixture(scope="module")
def head():
    """Random features on an MM-center head: centers, z, logits, sq. distances, y, t."""
    rng = np.random.default_rng(0)
    centers = get_centers("mm", NUM_CLASSES, FEATURE_DIM, C_MM).astype(np.float32)
    z = rng.normal(scale=C_MM, size=(BATCH, FEATURE_DIM)).astype(np.float32)
    logits = MMCLayer(centers)(z)
    sqdist = ((z[:, None, :] - centers[None]) ** 2).sum(-1)
    y = rng.integers(0, NUM_CLASSES, BATCH)
    t = (y + rng.integers(1, NUM_CLASSES, BATCH)) % NUM_CLASSES
    return dict(centers=centers, z=z, logits=logits, sqdist=sqdist, y=y, t=t,
                y1=tf.one_hot(y, NUM_CLASSES), t1=tf.one_hot(t, NUM_CLASSES),
                layer=MMCLayer(centers))


def test_registry_names_and_output_contract(head):
    names = {"ce", "margin", "mmc_un1", "mmc_un2", "mmc_tar1", "mmc_tar2"}
    assert names <= set(OBJECTIVES.names())
    for name in names:
        targets = head["t1"] if OBJECTIVES.get(name).targeted else None
        value = OBJECTIVES.get(name).fn(head["logits"], head["y1"], targets=targets)
        assert value.shape == (BATCH,) and value.dtype == tf.float32


def test_mmc_un1_is_minus_l_mmc_of_the_label(head):
    rows = np.arange(BATCH)
    expected = -head["sqdist"][rows, head["y"]]
    np.testing.assert_allclose(call("mmc_un1", head["logits"], head["y1"]), expected, rtol=1e-5)
    # = h_y, and = -(the MMC training loss)
    mmc_loss = loss_function("mmc")(head["y1"], head["logits"]).numpy()
    np.testing.assert_allclose(call("mmc_un1", head["logits"], head["y1"]), -mmc_loss, rtol=1e-6)


def test_mmc_tar1_is_l_mmc_of_the_target_and_zero_at_its_center(head):
    rows = np.arange(BATCH)
    value = call("mmc_tar1", head["logits"], head["y1"], head["t1"])
    np.testing.assert_allclose(value, head["sqdist"][rows, head["t"]], rtol=1e-5)
    assert np.all(value >= 0)
    at_centers = head["layer"](head["centers"])  # z = mu_l for every class l
    eye = tf.eye(NUM_CLASSES)
    assert np.all(call("mmc_tar1", at_centers, tf.roll(eye, 1, axis=1), eye) == 0.0)


def test_mmc_un2_is_runner_up_minus_label_distance(head):
    rows, sq = np.arange(BATCH), head["sqdist"]
    others = np.where(np.eye(NUM_CLASSES)[head["y"]] > 0, np.inf, sq)
    expected = others.min(axis=1) - sq[rows, head["y"]]  # L_MMC(z, y~) - L_MMC(z, y)
    value = call("mmc_un2", head["logits"], head["y1"])
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-4)
    misclassified = sq.argmin(axis=1) != head["y"]
    np.testing.assert_array_equal(value < 0, misclassified)


def test_mmc_tar2_is_target_minus_label_distance(head):
    rows, sq = np.arange(BATCH), head["sqdist"]
    expected = sq[rows, head["t"]] - sq[rows, head["y"]]
    value = call("mmc_tar2", head["logits"], head["y1"], head["t1"])
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-4)


def test_margin_is_nonpositive_exactly_when_misclassified():
    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(size=(200, NUM_CLASSES)), tf.float32)
    pred = np.argmax(logits, axis=1)
    y = np.where(np.arange(200) % 2 == 0, pred, rng.integers(0, NUM_CLASSES, 200))
    value = call("margin", logits, tf.one_hot(y, NUM_CLASSES))
    np.testing.assert_array_equal(value <= 0, pred != y)
    assert np.all(value >= 0)  # confidence 0 clamps at 0
    t = (y + 1) % NUM_CLASSES
    value_t = call("margin", logits, tf.one_hot(y, NUM_CLASSES), tf.one_hot(t, NUM_CLASSES))
    np.testing.assert_array_equal(value_t <= 0, pred == t)
    clamped = call("margin", logits, tf.one_hot(y, NUM_CLASSES), confidence=0.5)
    assert clamped.min() == pytest.approx(-0.5)


def test_ce_matches_keras_cross_entropy(head):
    keras_ce = keras.losses.CategoricalCrossentropy(from_logits=True, reduction=None)
    np.testing.assert_allclose(call("ce", head["logits"], head["y1"]),
                               -keras_ce(head["y1"], head["logits"]).numpy(), rtol=1e-5)
    np.testing.assert_allclose(call("ce", head["logits"], head["y1"], head["t1"]),
                               keras_ce(head["t1"], head["logits"]).numpy(), rtol=1e-5)


@pytest.mark.parametrize("loss, attack, targeted, adaptive, expected", [
    ("sce", "MadryEtAl", False, True, "ce"),
    ("sce", "MadryEtAl", True, True, "ce"),
    ("sce", "CarliniWagnerL2", False, True, "margin"),
    ("sce", "CarliniWagnerL2", True, True, "margin"),
    ("mmc", "MadryEtAl", False, True, "mmc_un1"),
    ("mmc", "MomentumIterativeMethod", True, True, "mmc_tar1"),
    ("mmc", "SPSA", False, True, "mmc_un1"),
    ("mmc", "CarliniWagnerL2", False, True, "mmc_un2"),
    ("mmc", "CarliniWagnerL2", True, True, "mmc_tar2"),
    ("mmlda", "MadryEtAl", True, True, "ce"),
    ("mmlda", "CarliniWagnerL2", False, True, "margin"),
    ("mmc", "MadryEtAl", True, False, "ce"),
    ("mmc", "CarliniWagnerL2", False, False, "margin"),
])
def test_select_objective_mapping(loss, attack, targeted, adaptive, expected):
    assert select_objective(loss, attack, targeted, adaptive) == expected


def test_check_objective_refuses_bad_combinations():
    for name in ("mmc_un1", "mmc_un2"):
        with pytest.raises(UsageError, match="MM centers"):
            check_objective(name, "sce", targeted=False)
    with pytest.raises(UsageError, match="targeted"):
        check_objective("mmc_tar1", "mmc", targeted=False)
    with pytest.raises(UsageError, match="untargeted"):
        check_objective("mmc_un2", "mmc", targeted=True)
    with pytest.raises(UsageError, match="unknown objective"):
        check_objective("nope", "mmc", targeted=False)
    for targeted in (False, True):
        assert check_objective("ce", "sce", targeted).name == "ce"
        assert check_objective("margin", "mmc", targeted).name == "margin"
    assert check_objective("mmc_tar2", "mmlda", True).name == "mmc_tar2"


def test_targeted_mmc_objectives_require_targets(head):
    for name in ("mmc_tar1", "mmc_tar2"):
        with pytest.raises(UsageError, match="targets"):
            call(name, head["logits"], head["y1"])


def test_minimising_mmc_tar1_moves_z_to_the_target_center(head):
    z = tf.Variable(head["z"])
    with tf.GradientTape() as tape:
        value = OBJECTIVES.get("mmc_tar1").fn(head["layer"](z), head["y1"], targets=head["t1"])
    grad = tape.gradient(value, z).numpy()
    to_center = head["centers"][head["t"]] - head["z"]
    np.testing.assert_allclose(grad, -2.0 * to_center, rtol=1e-5, atol=1e-5)
    cosine = (-grad * to_center).sum(1) / np.linalg.norm(grad, axis=1) / np.linalg.norm(
        to_center, axis=1)
    np.testing.assert_allclose(cosine, 1.0, rtol=1e-5)
    # a gradient step of size 1/2 lands exactly on mu_t
    np.testing.assert_allclose(head["z"] - 0.5 * grad, head["centers"][head["t"]], atol=1e-5)


def test_targeted_counterpart_pairs_each_untargeted_objective():
    from utils.attacks.objectives import targeted_counterpart
    assert targeted_counterpart("ce") == "dlr_targeted"
    assert targeted_counterpart("dlr") == "dlr_targeted"
    assert targeted_counterpart("mmc_un1") == "mmc_tar1"
    assert targeted_counterpart("mmc_un2") == "mmc_tar2"
    for targeted in ("mmc_tar1", "dlr_targeted"):
        assert targeted_counterpart(targeted) == targeted
    with pytest.raises(UsageError, match="unknown objective"):
        targeted_counterpart("nope")


# ---------------------------------------------------------------- saturated heads
@pytest.fixture(scope="module")
def far_head():
    """An MMC head with margins of ~10^3 (centers of norm 30, z near its center): softmax
    puts e^-1000 on the other classes, below float32's range."""
    centers = 30.0 * np.eye(NUM_CLASSES, FEATURE_DIM, dtype=np.float32)
    model = keras.Sequential([keras.Input((FEATURE_DIM,)),
                              keras.layers.Dense(FEATURE_DIM, kernel_initializer="identity"),
                              MMCLayer(centers)])
    rng = np.random.default_rng(1)
    y = rng.integers(0, NUM_CLASSES, BATCH)
    x = (centers[y] + rng.normal(scale=0.5, size=(BATCH, FEATURE_DIM))).astype(np.float32)
    t = (y + 1 + rng.integers(0, NUM_CLASSES - 1, BATCH)) % NUM_CLASSES
    return model, x, tf.one_hot(y, NUM_CLASSES), tf.one_hot(t, NUM_CLASSES)


def _input_grad(model, x, fn, labels, targets=None):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x)
        value = fn(logits, labels) if targets is None else fn(logits, labels, targets)
        total = tf.reduce_sum(value)
    return value.numpy(), tape.gradient(total, x).numpy(), logits


def test_every_objective_keeps_an_input_gradient_on_a_saturated_head(far_head):
    model, x, y1, t1 = far_head
    margins = -np.sort(-model(x).numpy(), axis=1)
    assert (margins[:, 0] - margins[:, 1] > 500).all()
    for name in OBJECTIVES.names():
        targets = t1 if OBJECTIVES.get(name).targeted else None
        _, grad, _ = _input_grad(model, x, OBJECTIVES.get(name).fn, y1, targets)
        assert np.isfinite(grad).all(), name
        assert (np.abs(grad).max(axis=1) > 0).all(), name
    # TF's own cross-entropy loses it there (the masking check's warning).
    plain = lambda logits, labels: -tf.nn.softmax_cross_entropy_with_logits(  # noqa: E731
        labels=labels, logits=logits)
    assert "zero input gradients" in " ".join(input_gradients(model, x, y1, plain))
    assert input_gradients(model, x, y1, OBJECTIVES.get("ce").fn) == []


def test_ce_keeps_tfs_value_and_gradient_direction(far_head):
    model, x, y1, t1 = far_head
    ce = OBJECTIVES.get("ce").fn
    for targets, sign in ((None, -1.0), (t1, 1.0)):
        value, grad, logits = _input_grad(model, x, ce, y1, targets)
        plain = sign * tf.nn.softmax_cross_entropy_with_logits(
            labels=y1 if targets is None else targets, logits=logits).numpy()
        np.testing.assert_array_equal(value, plain)
    # Untargeted, the label far ahead: softmax - e_y is 1 - p_y (~e^-1000) times r - e_y,
    # r the softmax over the other classes; through h_l = -||x - mu_l||^2 (identity
    # layer) the input gradient of -CE points along -sum_l (r - e_y)_l (-2)(x - mu_l).
    _, grad, logits = _input_grad(model, x, ce, y1)
    h = logits.numpy().astype(np.float64)
    on_y = y1.numpy() > 0.5
    r = np.where(on_y, 0.0, np.exp(np.where(on_y, -np.inf, h) - h[~on_y].reshape(
        BATCH, -1).max(1, keepdims=True)))
    g = r / r.sum(1, keepdims=True) - on_y
    centers = 30.0 * np.eye(NUM_CLASSES, FEATURE_DIM)
    expected = np.einsum("bl,bld->bd", g, 2.0 * (x[:, None, :] - centers[None]))
    cosine = np.sum(grad * expected, 1) / np.linalg.norm(grad, axis=1) / np.linalg.norm(
        expected, axis=1)
    assert (cosine > 0.999).all()


def test_ce_gradient_is_tfs_exact_gradient_on_ordinary_logits():
    rng = np.random.default_rng(2)
    logits = tf.constant(rng.normal(scale=3.0, size=(BATCH, NUM_CLASSES)).astype(np.float32))
    labels = tf.one_hot(rng.integers(0, NUM_CLASSES, BATCH), NUM_CLASSES)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ours = cross_entropy(logits, labels)
        plain = tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    np.testing.assert_array_equal(ours.numpy(), plain.numpy())
    np.testing.assert_allclose(tape.gradient(ours, logits).numpy(),
                               tape.gradient(plain, logits).numpy(), rtol=1e-5, atol=1e-7)
