"""bench.common.gradient_floor runs k chained passes (not one hoisted forward pass), and
separate_passes runs k separate forward+backward calls."""
import numpy as np
import tensorflow as tf

from bench.common import gradient_floor, separate_passes

W = tf.constant([[1.0, -2.0], [-3.0, 0.5], [0.0, 1.0]])   # 3 features, 2 classes


def _objective(logits, onehot):   # linear in x: the gradient is constant
    return tf.reduce_sum(logits * onehot, axis=-1)


def test_floor_chains_k_passes_through_the_gradient():
    x = tf.constant([[0.1, 0.2, 0.3]])
    onehot = tf.constant([[1.0, 0.0]])
    for k in (1, 4):
        got = gradient_floor(lambda t: tf.matmul(t, W), _objective, k)(x, onehot).numpy()
        # grad = w[:, 0] = (1, -3, 0); sign = (1, -1, 0); each pass adds 1e-3 * sign
        np.testing.assert_allclose(got, x.numpy() + k * 1e-3 * np.array([[1, -1, 0]]),
                                   atol=1e-7)


def test_separate_passes_calls_the_model_k_times():
    executed = tf.Variable(0)

    def model_fn(t):
        executed.assign_add(1)  # runs in the graph: counts executions, not traces
        return tf.matmul(t, W)

    separate_passes(model_fn, _objective, 3)(tf.constant([[0.1, 0.2, 0.3]]),
                                             tf.constant([[1.0, 0.0]]))
    assert int(executed.numpy()) == 3
