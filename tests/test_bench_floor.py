"""bench.common.gradient_floor runs k chained passes (not one hoisted forward pass)."""
import numpy as np
import tensorflow as tf

from bench.common import gradient_floor, separate_passes


def test_floor_chains_k_passes_through_the_gradient():
    w = tf.constant([[1.0, -2.0], [-3.0, 0.5], [0.0, 1.0]])   # 3 features, 2 classes
    calls = []

    def model_fn(x):
        calls.append(1)  # traced once per graph, not per pass
        return tf.matmul(x, w)

    def objective(logits, onehot):   # linear in x: the gradient is constant
        return tf.reduce_sum(logits * onehot, axis=-1)

    x = tf.constant([[0.1, 0.2, 0.3]])
    onehot = tf.constant([[1.0, 0.0]])
    for k in (1, 4):
        got = gradient_floor(model_fn, objective, k)(x, onehot).numpy()
        # grad = w[:, 0] = (1, -3, 0); sign = (1, -1, 0); each pass adds 1e-3 * sign
        np.testing.assert_allclose(got, x.numpy() + k * 1e-3 * np.array([[1, -1, 0]]),
                                   atol=1e-7)
    separate_passes(model_fn, objective, 3)(x, onehot)  # runs; returns nothing
