"""ℓ2 FGSM/BIM/PGD/MIM (utils/attacks/iterative.py with the ℓ2 ThreatModel) against known
answers on a 2-class linear model ``logits = x W + b``, whose margin is linear: the
boundary lies at ℓ2 distance ``d = |w.x + b'| / ||w||_2`` with ``w = W[:, 1] - W[:, 0]``."""
import numpy as np
import pytest
import tensorflow as tf

from utils.attacks.core import get_attack
from utils.attacks.iterative import ATTACKS
from utils.attacks.objectives import OBJECTIVES

CE = OBJECTIVES.get("ce").fn
DIM = 6
GRADIENT_ATTACKS = ("FastGradientMethod", "BasicIterativeMethod", "MadryEtAl",
                    "MomentumIterativeMethod")


def _linear(seed=0, n=40):
    rng = np.random.default_rng(seed)
    w_mat = rng.normal(size=(DIM, 2)).astype(np.float32)
    bias = rng.normal(size=2).astype(np.float32)

    def model(x):
        return tf.matmul(x, w_mat) + bias

    x = rng.uniform(-1, 1, size=(n, DIM)).astype(np.float32)
    y = np.asarray(model(x)).argmax(-1)
    w = w_mat[:, 1] - w_mat[:, 0]
    dist = np.abs(x @ w + bias[1] - bias[0]) / np.linalg.norm(w)
    return model, x, np.eye(2, dtype=np.float32)[y], w_mat, dist


def test_l2_fgsm_step_is_eps_along_the_normalised_gradient():
    model, x, labels, w_mat, _ = _linear()
    eps = 0.3
    x_adv = ATTACKS.get("FastGradientMethod")(model, x, labels, objective=CE, eps=eps,
                                              eps_iter=0.1, num_iter=1, clip_min=-100.0,
                                              clip_max=100.0, norm="l2").numpy()
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        total = tf.reduce_sum(CE(model(xt), labels))
    grad = -tape.gradient(total, xt).numpy()  # ascent on the loss = descent on CE's min
    expected = x + eps * grad / np.linalg.norm(grad, axis=1, keepdims=True)
    np.testing.assert_allclose(x_adv, expected, atol=1e-5)


def test_l2_pgd_reaches_the_analytic_boundary_distance():
    model, x, labels, _, dist = _linear(n=40)
    kw = dict(objective=CE, num_iter=200, clip_min=-100.0, clip_max=100.0, norm="l2", seed=0)
    for scale, fooled in ((1.05, True), (0.95, False)):
        eps = scale * dist
        # one ε per example: attack each alone at its own radius, batched by scale
        x_adv = np.concatenate([ATTACKS.get("MadryEtAl")(
            model, x[i:i + 1], labels[i:i + 1], eps=float(eps[i]), eps_iter=float(eps[i]) / 20,
            **kw).numpy() for i in range(0, len(x), 4)])
        picked = np.arange(0, len(x), 4)
        wrong = np.asarray(model(x_adv)).argmax(-1) != labels[picked].argmax(-1)
        assert np.all(wrong == fooled), (scale, wrong)
        size = np.linalg.norm(x_adv - x[picked], axis=1)
        assert np.all(size <= eps[picked] + 1e-5)


@pytest.mark.parametrize("name", GRADIENT_ATTACKS)
def test_l2_attacks_stay_in_the_ball_and_the_box(name):
    model, x, labels, _, _ = _linear(1)
    x = np.clip(x, -0.9, 0.9)
    kw = dict(objective=CE, eps_iter=0.2, num_iter=10, clip_min=-1.0, clip_max=1.0,
              norm="l2", seed=3)
    x_adv = ATTACKS.get(name)(model, x, labels, eps=0.5, **kw).numpy()
    assert np.linalg.norm(x_adv - x, axis=1).max() <= 0.5 + 1e-5
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0
    assert np.linalg.norm(x_adv - x, axis=1).max() > 0.1  # it moved
    np.testing.assert_array_equal(ATTACKS.get(name)(model, x, labels, eps=0.0, **kw), x)


def test_native_and_cleverhans_l2_pgd_agree(small_trained_model):
    model, x, labels = small_trained_model
    kw = dict(objective=CE, eps=2.0, eps_iter=0.1, num_iter=100, clip_min=-3.0, clip_max=3.0,
              norm="l2", seed=0)
    acc = {}
    for backend in ("native", "cleverhans"):
        x_adv = get_attack("MadryEtAl", backend)(model, x, labels, **kw)
        assert np.linalg.norm(np.reshape(x_adv - x, (len(x), -1)), axis=1).max() <= 2.0 + 1e-4
        acc[backend] = float(np.mean(np.asarray(model(x_adv)).argmax(-1) == labels.argmax(-1)))
    clean = float(np.mean(np.asarray(model(x)).argmax(-1) == labels.argmax(-1)))
    assert acc["native"] < clean - 0.1  # a non-trivial radius
    assert abs(acc["native"] - acc["cleverhans"]) <= 0.01 + 1e-9, acc  # within 1 point


@pytest.fixture(scope="module")
def small_trained_model():
    """A dense net fitted for a few epochs on separable 2-class Gaussian data in 8 dims."""
    import keras
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    x = (rng.normal(size=(600, 8)) * 0.7 + np.where(y[:, None] == 1, 1.0, -1.0) * 0.8)
    x = np.clip(x, -3, 3).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.02),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(x[:400], np.eye(2)[y[:400]], epochs=8, batch_size=64, verbose=0)
    return model, x[400:], np.eye(2, dtype=np.float32)[y[400:]]
