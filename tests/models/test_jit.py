"""--jit_compile (issue 17): the XLA-compiled forward pass the attacks call gives the same
logits and the same PGD step as the plain model, within float tolerance."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from conftest import cluster_data


@pytest.fixture(scope="module")
def models():
    import keras

    from utils.models.classifier import build_classifier
    from utils.runs.model_config import ModelConfig
    from utils.models.jit import jit_model

    keras.utils.set_random_seed(0)
    model = build_classifier(ModelConfig(version=1, n=1, loss="sce"), (8, 8, 3), 4)
    jitted = jit_model(model)
    x, _ = cluster_data(6, 0, shape=(8, 8, 3), num_classes=4)
    try:
        jitted(x)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
            tf.errors.NotFoundError) as exc:  # a TF build without XLA for this device
        pytest.skip(f"XLA unavailable here: {str(exc).splitlines()[0][:200]}")
    return model, jitted


def test_jit_logits_match(models):
    model, jitted = models
    x, _ = cluster_data(6, 1, shape=(8, 8, 3), num_classes=4)
    assert jitted.output_shape == model.output_shape
    np.testing.assert_allclose(jitted(x).numpy(), model(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_jit_one_pgd_step_matches(models):
    from utils.attacks.iterative import ATTACKS
    from utils.attacks.objectives import OBJECTIVES

    model, jitted = models
    x, y = cluster_data(6, 2, shape=(8, 8, 3), num_classes=4)
    onehot = tf.one_hot(y, 4)
    kwargs = dict(objective=OBJECTIVES.get("ce").fn, eps=8 / 256, eps_iter=2 / 256,
                  num_iter=1, clip_min=-1.0, clip_max=1.0, rand_init=False, seed=0)
    pgd = ATTACKS.get("MadryEtAl")
    plain = pgd(model, tf.constant(x), onehot, **kwargs).numpy()
    compiled = pgd(jitted, tf.constant(x), onehot, **kwargs).numpy()
    assert np.abs(plain - x).max() > 0  # the step moved the inputs
    np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=1e-6)
