"""Square attack: the published schedule, the threat model, gradient-free success.

Linear and tiny models on generated 8x8x1 data; each test runs in about a second.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from utils.attacks.iterative import ATTACKS
from utils.attacks.objectives import OBJECTIVES
from utils.attacks.square import square_attack, square_run
from utils.attacks.square_schedule import p_schedule, pseudo_gaussian, window_sides
from utils.errors import UsageError

SHAPE, NUM_CLASSES = (8, 8, 1), 3


def _linear(seed: int = 0, n: int = 32):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(NUM_CLASSES)])
    model.layers[-1].set_weights([rng.normal(size=(64, NUM_CLASSES)).astype(np.float32),
                                  np.zeros(NUM_CLASSES, np.float32)])
    x = rng.uniform(0.2, 0.8, size=(n,) + SHAPE).astype(np.float32)
    y = np.asarray(model(x)).argmax(-1)
    return model, x, np.eye(NUM_CLASSES, dtype=np.float32)[y]


def test_p_schedule_is_the_published_one():
    p = p_schedule(10000)
    assert p[10] == 0.8 and p[11] == 0.4 and p[50] == 0.4 and p[51] == 0.2
    assert p[200] == 0.2 and p[201] == 0.1 and p[8000] == 0.8 / 256
    assert p[8001] == p[-1] == 0.8 / 512
    # AutoAttack's standard version does not rescale (resc_schedule=False) ...
    np.testing.assert_array_equal(p_schedule(5000)[:10001 // 2], p[:10001 // 2])
    assert p_schedule(5000)[-1] == 0.8 / 128
    # ... Square's own default reads the schedule at int(i / n * 10000)
    np.testing.assert_allclose(p_schedule(5000, rescale=True)[[5, 6]], [0.8, 0.4])
    assert window_sides(5000, (28, 28, 1), "linf")[0] == 25  # round(sqrt(0.8 * 784))
    l2 = window_sides(5000, (28, 28, 1), "l2")
    assert np.all(l2 % 2 == 1) and l2.min() >= 3
    patch = pseudo_gaussian(5)
    assert abs(np.sum(patch ** 2) - 1) < 1e-5 and patch[0].sum() > 0 > patch[-1].sum()


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.7)])
def test_never_exceeds_eps_and_respects_per_pixel_clips(norm, eps):
    model, x, labels = _linear()
    low = np.full(SHAPE, 0.0, np.float32)
    low[:4] = 0.3  # per-pixel bounds, some binding at the start
    x = np.maximum(x, low)
    # 60 queries: the schedule spread over them (AutoAttack's would stay at p = 0.8 / 2)
    res = square_run(model, x, labels, eps=eps, clip_min=low, clip_max=0.9, n_queries=60,
                     norm=norm, seed=1, rescale_schedule=True)
    delta = (res.x_adv.numpy() - x).reshape(len(x), -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert size.max() <= eps * (1 + 1e-5)
    assert np.all(res.x_adv.numpy() >= low - 1e-7) and res.x_adv.numpy().max() <= 0.9 + 1e-7
    assert res.success.numpy().any() and not res.success.numpy().all()
    # early stop: fooled examples spent fewer queries than the budget + the start
    q = res.queries.numpy()
    assert q.max() == 61 and q[res.success.numpy()].min() < 61
    fooled = np.asarray(model(res.x_adv)).argmax(-1) != labels.argmax(-1)
    np.testing.assert_array_equal(fooled, res.success.numpy())


def test_eps_zero_gives_clean_accuracy_and_bad_input_raises():
    model, x, labels = _linear()
    labels[:5] = np.roll(labels[:5], 1, axis=1)  # five clean mistakes
    res = square_run(model, x, labels, eps=0.0, clip_min=0.0, clip_max=1.0, seed=0)
    np.testing.assert_array_equal(res.x_adv.numpy(), x)
    assert res.success.numpy().sum() == 5
    for kw, match in ((dict(n_queries=0), "n_queries must be an integer >= 1"),
                      (dict(norm="l1"), "unknown norm"),
                      (dict(p_init=0.0), "p_init")):
        with pytest.raises(UsageError, match=match):
            square_run(model, x, labels, eps=0.1, clip_min=0.0, clip_max=1.0, **kw)


class QuantisedLinear(keras.Model):
    """A linear model on inputs rounded to 1/4: its gradient is zero everywhere."""

    def __init__(self, dense):
        super().__init__()
        self.dense = dense

    def call(self, x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        rounded = tf.stop_gradient(tf.round(flat * 4.0) / 4.0)
        return self.dense(rounded) + 0.0 * tf.reduce_sum(flat, axis=1, keepdims=True)


def test_gradient_free_success_where_pgd_fails():
    model, x, labels = _linear(n=32)
    quantised = QuantisedLinear(model.layers[-1])
    labels = tf.one_hot(np.asarray(quantised(x)).argmax(-1), NUM_CLASSES)
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        loss = tf.reduce_sum(quantised(xt))
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, xt)))) == 0.0
    eps = 0.15
    pgd = ATTACKS.get("MadryEtAl")(quantised, x, labels, objective=OBJECTIVES.get("ce").fn,
                                   eps=eps, eps_iter=eps / 4, num_iter=20, clip_min=0.0,
                                   clip_max=1.0, rand_init=False)
    pgd_rate = float(np.mean(np.asarray(quantised(pgd)).argmax(-1) != labels.numpy().argmax(-1)))
    x_adv = square_attack(quantised, x, labels, eps=eps, clip_min=0.0, clip_max=1.0,
                          n_queries=300, seed=0, rescale_schedule=True)
    sq_rate = float(np.mean(np.asarray(quantised(x_adv)).argmax(-1) !=
                            labels.numpy().argmax(-1)))
    assert np.abs(x_adv.numpy() - x).max() <= eps + 1e-6
    assert pgd_rate == 0.0 and sq_rate >= 0.8, (pgd_rate, sq_rate)


def test_fools_most_points_pgd_fools_on_a_small_model():
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(NUM_CLASSES, 64)) * 0.6
    y = rng.integers(0, NUM_CLASSES, 400)
    x = np.clip(protos[y] + rng.normal(scale=0.4, size=(400, 64)), -1, 1).astype(np.float32)
    x = x.reshape((400,) + SHAPE)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(NUM_CLASSES)])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(x[:336], np.eye(NUM_CLASSES)[y[:336]], epochs=10, batch_size=64, verbose=0)
    x, labels = x[336:], np.eye(NUM_CLASSES, dtype=np.float32)[y[336:]]
    eps = 0.38  # PGD fools about 60 % here (measured: 39 of 64; Square 37 of those)
    pgd = ATTACKS.get("MadryEtAl")(model, x, labels, objective=OBJECTIVES.get("ce").fn, eps=eps,
                                   eps_iter=eps / 10, num_iter=40, clip_min=-1.0, clip_max=1.0,
                                   rand_init=False)
    pgd_fooled = np.asarray(model(pgd)).argmax(-1) != y[336:]
    x_adv = square_attack(model, x, labels, eps=eps, clip_min=-1.0, clip_max=1.0,
                          n_queries=1000, seed=0, rescale_schedule=True)  # short budget
    sq_fooled = np.asarray(model(x_adv)).argmax(-1) != y[336:]
    assert 10 <= pgd_fooled.sum() < len(x)  # a non-trivial case
    assert (sq_fooled & pgd_fooled).sum() >= 0.9 * pgd_fooled.sum(), (sq_fooled.sum(),
                                                                      pgd_fooled.sum())
