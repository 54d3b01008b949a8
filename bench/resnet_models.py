"""The demo's ResNet-8 v1 classifiers (``scripts/demo.py``) for the benchmarks, cached.

``pixel_resnet(loss, ...)`` trains (or loads from ``bench/.cache``, git-ignored) a
ResNet-8 v1 with the ``sce`` or ``mmc`` (C_MM = 10) head as the demo does (Adam lr 1e-3,
batch 50, a seeded subset of Fashion-MNIST, the training pipeline of
:func:`utils.training.run.train`) and returns it wrapped as a model on ``[0, 1]`` pixels
(:func:`utils.models.keras_io.pixel_classifier`: the training pixel mean subtracted by a
``PixelMean`` layer), with the test images as pixels.

    model, x, y, info = pixel_resnet("mmc", epochs=3, train_size=10000, n_test=100)
"""
from __future__ import annotations

import pathlib
import tempfile
from typing import Any, Dict, Optional, Tuple

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
C_MM = 10.0


def model_config(loss: str) -> Any:
    from utils.runs.model_config import ModelConfig

    return ModelConfig(version=1, n=1, loss=loss, c_mm=C_MM)


def _train(loss: str, epochs: int, train_size: int, data_dir: Optional[str]) -> Any:
    """The demo's training run, in a temporary run directory; the trained classifier."""
    from utils.runs.spec import RunSpec
    from utils.training.run import RunConfig, train

    spec = RunSpec("fashion_mnist", model_config(loss), "Adam", 0.001, 50)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(RunConfig(run=spec, data_dir=data_dir, model_dir=tmp, epochs=epochs,
                                 train_size=train_size, test_size=1000, seed=0, verbose=0,
                                 flags={"loss": loss, "bench": "autoattack_vs_reference"}))
    return result.model


def classifier(loss: str, epochs: int, train_size: int, data_dir: Optional[str]) -> Any:
    """The trained classifier on mean-subtracted inputs, from the cache when there."""
    from utils.models.classifier import build_classifier
    from utils.models.weights import load_weights

    path = CACHE / f"resnet8_{loss}_e{epochs}_n{train_size}_seed0.weights.h5"
    if path.exists():
        model = build_classifier(model_config(loss), (28, 28, 3), 10)
        load_weights(model, path)
        return model
    model = _train(loss, epochs, train_size, data_dir)
    CACHE.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(path))
    return model


def pixel_resnet(loss: str, *, epochs: int, train_size: int, n_test: int,
                 data_dir: Optional[str] = None
                 ) -> Tuple[Any, np.ndarray, np.ndarray, Dict[str, Any]]:
    """``(pixel model, x, y, info)``: the classifier behind a ``PixelMean`` layer, the
    first ``n_test`` test images as ``(n, 28, 28, 3)`` float32 pixels in [0, 1] (the
    uint8 images / 255, grey repeated to 3 channels as the data pipeline does), their
    labels, and the clean accuracy / clip bounds of the mean-subtracted data."""
    from utils.data import load_raw_dataset, prepare
    from utils.models.keras_io import pixel_classifier

    raw = load_raw_dataset("fashion_mnist", data_dir)
    data = prepare(raw, test_size=n_test)
    model = pixel_classifier(classifier(loss, epochs, train_size, data_dir), data.mean)
    x = raw.x_test[:n_test].astype(np.float32) / 255
    y = data.y_test
    # The wrapped model sees x - mean: the data object's x_test up to rounding.
    gap = float(np.max(np.abs((x - data.mean) - data.x_test)))
    info = {"loss": loss, "epochs": epochs, "train_size": train_size,
            "pixel_mean_roundtrip_gap": gap,
            "clip_min_is_minus_mean": bool(np.array_equal(data.clip_min, -data.mean)),
            "clip_max_is_one_minus_mean": bool(np.allclose(data.clip_max, 1 - data.mean))}
    return model, x, y, info
