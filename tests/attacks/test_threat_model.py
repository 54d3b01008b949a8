"""utils.attacks.threat_model: the ℓ∞ / ℓ2 ball as every gradient attack uses it."""
import numpy as np
import pytest
import tensorflow as tf

from utils.attacks.core import example_seeds
from utils.attacks.threat_model import check_norm, l2_norm, per_sample, threat_model
from utils.errors import UsageError


def _batch(seed=0, shape=(5, 4, 4, 2)):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(0, 1, shape), tf.float32)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_project_lands_in_the_ball_and_the_box(norm):
    x, far = _batch(0), _batch(1) * 5 - 2
    eps = tf.constant(0.1)
    out = threat_model(norm).project(far, x, eps, 0.0, 1.0).numpy()
    delta = out - x.numpy()
    size = np.abs(delta).reshape(5, -1).max(1) if norm == "linf" else \
        np.sqrt((delta ** 2).reshape(5, -1).sum(1))
    assert np.all(size <= 0.1 + 1e-6)
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_project_leaves_points_inside_alone(norm):
    x = _batch(0) * 0.5 + 0.25
    inside = x + 0.001
    np.testing.assert_allclose(threat_model(norm).project(inside, x, tf.constant(0.1), 0.0, 1.0),
                               inside,
                               atol=1e-7)


def test_direction_has_unit_length():
    g = _batch(2) - 0.5
    assert np.all(np.abs(threat_model("linf").direction(g).numpy()) <= 1.0)
    np.testing.assert_allclose(l2_norm(threat_model("l2").direction(g)).numpy().ravel(), 1.0,
                               rtol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_in_the_ball_and_seeded(norm):
    x = _batch(3) * 0.5 + 0.25
    tm, seeds = threat_model(norm), example_seeds((1, 2), np.arange(5))
    noise = tm.noise(x.shape, seeds)
    np.testing.assert_array_equal(noise, tm.noise(x.shape, seeds))
    # a row depends on its own seed only
    np.testing.assert_array_equal(noise[2:3], tm.noise((1,) + tuple(x.shape[1:]), seeds[2:3]))
    out = tm.init(x, noise, tf.constant(0.05), 0.0, 1.0).numpy() - x.numpy()
    size = np.abs(out).reshape(5, -1).max(1) if norm == "linf" else \
        np.sqrt((out ** 2).reshape(5, -1).sum(1))
    assert np.all(size <= 0.05 + 1e-6) and np.all(size > 0)


def test_per_sample_broadcasts_and_unknown_norm_is_refused():
    assert per_sample(tf.ones([5]), _batch()).shape == (5, 1, 1, 1)
    with pytest.raises(UsageError, match="unknown norm"):
        check_norm("l1")
