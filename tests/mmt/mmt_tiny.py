"""A tiny MMC classifier and data for the mmt tests (8 examples of 4x4x1 pixels, 5 classes)."""
from __future__ import annotations

import numpy as np

NUM_CLASSES, FEATURE_DIM, SHAPE = 5, 4, (4, 4, 1)


def tiny_model(seed: int = 0):
    """``[0, 1]`` pixels ``(batch, 4, 4, 1)`` -> MMC logits ``(batch, 5)``."""
    import keras

    import mmt
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    z = keras.layers.Dense(FEATURE_DIM)(keras.layers.Flatten()(inputs))
    centers = mmt.get_centers("mm", num_classes=NUM_CLASSES, feature_dim=FEATURE_DIM,
                              c_mm=1.0)
    return keras.Model(inputs, mmt.MMCLayer(centers, name="logits")(z))


def tiny_data(n: int = 8, seed: int = 0):
    """``(x (n, 4, 4, 1) float32 in [0, 1], y (n,) int64)``; y is the model's own
    prediction for half of them so that some points start correct."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n,) + SHAPE).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=n)
    return x, y


def predicted_labels(model, x):
    return np.asarray(model(x)).argmax(-1)
