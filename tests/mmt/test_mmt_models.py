"""mmt.load_run / load_checkpoint / export_keras: a run's checkpoint in, a .keras file out."""
from __future__ import annotations

import numpy as np
import pytest

import mmt

SHAPE, CLASSES = (8, 8, 1), 10


def test_run_checkpoint_loads_on_pixels_and_exports(tmp_path):
    import keras

    from utils.models.classifier import build_classifier
    from utils.runs.checkpoints import checkpoint_path
    cfg = mmt.ModelConfig(version=1, n=1, loss="mmc", c_mm=10.0, feature_dim=8)
    spec = mmt.RunSpec("mnist", cfg, "Adam", 0.001, 50)
    trained = build_classifier(cfg, SHAPE, CLASSES)
    run_dir = spec.directory(str(tmp_path))
    run_dir.mkdir(parents=True)
    trained.save_weights(checkpoint_path(run_dir, 3))
    mean = np.full(SHAPE, 0.25, np.float32)
    model = mmt.load_run(spec, input_shape=SHAPE, num_classes=CLASSES, epoch=3,
                         model_dir=str(tmp_path), pixel_mean=mean)
    pixels = np.random.default_rng(0).uniform(0, 1, (2,) + SHAPE).astype(np.float32)
    want = np.asarray(trained(pixels - mean))
    np.testing.assert_allclose(np.asarray(model(pixels)), want, rtol=1e-6)
    same = mmt.load_checkpoint(checkpoint_path(run_dir, 3), cfg, input_shape=SHAPE,
                               num_classes=CLASSES)
    np.testing.assert_array_equal(np.asarray(same(pixels - mean)), np.asarray(trained(
        pixels - mean)))
    digest = mmt.export_keras(same, tmp_path / "run.keras", pixel_mean=mean,
                              check_inputs=pixels - mean)
    assert len(digest) == 64
    np.testing.assert_allclose(np.asarray(mmt.load_keras(tmp_path / "run.keras")(pixels)),
                               want, rtol=1e-6)
    with pytest.raises(ValueError, match="no checkpoint"):
        mmt.load_run(spec, input_shape=SHAPE, num_classes=CLASSES, epoch=4,
                     model_dir=str(tmp_path))
    assert isinstance(model, keras.Model)
