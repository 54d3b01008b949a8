"""--steps_per_loop (issue 17): K steps per tf.function call give the weights of K=1, and
the NaN guard still names the first bad step inside a loop."""
from __future__ import annotations

import gc

import numpy as np
import pytest
import tensorflow as tf

from conftest import cluster_data

STEPS = 7  # not a multiple of 3: the epoch ends with a partial loop


@pytest.fixture(autouse=True, scope="module")
def _collect_this_modules_garbage():
    """This module's trainings (a NaN stop inside a loop, an XLA-compiled step) leave
    TensorFlow objects in reference cycles. In the full suite, after the distribution
    tests in the same worker, destroying them took 9 s when collected here and 30-40 s of
    a later test's wall time (no CPU; the worker's main thread waiting on a futex) when
    left to a garbage collection there (three of six full runs)."""
    yield
    gc.collect()


def _train(k, x, y, policy="stop", epochs=1, jit=False):
    """``(trainer, model, history)`` after ``epochs`` of ``STEPS`` steps of 10, one device."""
    import keras

    from utils.data import make_distributed_train_dataset
    from utils.models.classifier import build_classifier, training_loss
    from utils.runs.model_config import ModelConfig
    from utils.training.loop import Trainer, make_optimizer

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(version=1, n=1, loss="sce")
    with strategy.scope():
        model = build_classifier(cfg, (8, 8, 3), 4)
        optimizer = make_optimizer("mom", 0.01)
        optimizer.build(model.trainable_variables)
    trainer = Trainer(strategy, model, training_loss(cfg, model), optimizer, 10,
                      nan_policy=policy, steps_per_loop=k, jit_compile=jit)
    with strategy.scope():
        data = make_distributed_train_dataset(strategy, x, y, global_batch_size=10,
                                              num_classes=4, augment=False, repeat=True,
                                              steps=STEPS)
    history = trainer.fit(data, STEPS, None, epochs=epochs, initial_epoch=0, base_lr=0.01,
                          lr_boundaries=(), verbose=0)
    return trainer, model, history


@pytest.mark.slow
def test_steps_per_loop_3_is_bit_identical_to_1():
    x, y = cluster_data(10 * STEPS, 0, shape=(8, 8, 3), num_classes=4)
    _, one, h1 = _train(1, x, y)
    trainer, three, h3 = _train(3, x, y)
    assert trainer._train_loop.experimental_get_tracing_count() == 1  # 3, 3, then 1 step
    for a, b in zip(one.get_weights(), three.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1[0].loss == pytest.approx(h3[0].loss, rel=1e-6)
    assert h1[0].accuracy == h3[0].accuracy


@pytest.mark.slow
def test_nan_batch_inside_a_loop():
    """One NaN image: "stop" names the same (first bad) step with K=1 and K=3;
    "skip_batch" then gives the same weights with either K."""
    import re

    from utils.errors import NonFiniteError

    x, y = cluster_data(10 * STEPS, 0, shape=(8, 8, 3), num_classes=4)
    x[37] = np.nan
    steps = []
    for k in (1, 3):
        with pytest.raises(NonFiniteError, match=r"at epoch 1 step (\d); stopped") as info:
            _train(k, x, y)
        steps.append(re.search(r"step (\d)", str(info.value)).group(1))
    assert steps[0] == steps[1]
    t1, one, _ = _train(1, x, y, policy="skip_batch")
    t3, three, _ = _train(3, x, y, policy="skip_batch")
    assert int(t1.optimizer.iterations) == int(t3.optimizer.iterations) == STEPS - 1
    for a, b in zip(one.get_weights(), three.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert np.all(np.isfinite(b))


@pytest.mark.slow
def test_jit_compiled_training_matches_within_float_tolerance():
    x, y = cluster_data(10 * STEPS, 0, shape=(8, 8, 3), num_classes=4)
    _, plain, _ = _train(3, x, y)
    trainer, compiled, _ = _train(3, x, y, jit=True)
    assert int(trainer.optimizer.iterations) == STEPS
    for a, b in zip(plain.get_weights(), compiled.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
