"""Trained classifiers in and out: our runs, the original repository's ``model.NNN.h5`` files
and standard Keras 3 ``.keras`` files, through the loaders the scripts use.

A run's classifier takes MEAN-SUBTRACTED images (the original's preprocessing); pass the
training ``pixel_mean`` ``(H, W, C)`` (in [0, 1] units) to get a model on ``[0, 1]``
pixels, which is what :func:`mmt.evaluate` and the attacks' default clip range expect.

    cfg = mmt.ModelConfig(version=1, n=5, loss="mmc", c_mm=10.0)
    model = mmt.load_checkpoint("runs/model.180.h5", cfg, input_shape=(32, 32, 3),
                                num_classes=10, pixel_mean=mean)
    mmt.export_keras(model, "mmc.keras")     # reloads with safe_mode=True
"""
from __future__ import annotations

import pathlib
from typing import Optional, Sequence

import keras
import numpy as np

import keras_layers  # noqa: F401  (registers the layers a .keras file may name)
from mmt import losses as _losses  # noqa: F401  (registers the loss classes likewise)
from utils.models import loading
from utils.models.keras_io import export_classifier, pixel_classifier
from utils.runs.model_config import ModelConfig
from utils.runs.spec import RunSpec


def _on_pixels(model: keras.Model, pixel_mean: Optional[np.ndarray]) -> keras.Model:
    return model if pixel_mean is None else pixel_classifier(model, np.asarray(pixel_mean))


def load_run(spec: RunSpec, *, input_shape: Sequence[int], num_classes: int, epoch: int,
             model_dir: str = ".", pixel_mean: Optional[np.ndarray] = None) -> keras.Model:
    """Checkpoint ``epoch`` of training run ``spec`` under ``model_dir`` (ours, or the
    original's ``model.NNN.h5`` in the run directory the original names the same way),
    as :func:`utils.models.loading.load_run` finds it.

    Returns a model on mean-subtracted ``(batch, *input_shape)`` float32 inputs, or on
    ``[0, 1]`` pixels given ``pixel_mean``, to logits ``(batch, num_classes)``. Raises
    UsageError (a ValueError) for a missing checkpoint or another architecture.
    """
    loaded = loading.load_run(spec, input_shape, num_classes, model_dir=model_dir,
                              epoch=epoch)
    return _on_pixels(loaded.model, pixel_mean)


def load_checkpoint(path: "str | pathlib.Path", model: ModelConfig, *,
                    input_shape: Sequence[int], num_classes: int,
                    pixel_mean: Optional[np.ndarray] = None) -> keras.Model:
    """The classifier ``model`` describes with the weights of the file ``path``: ours
    (``*.weights.h5``) or the original repository's Keras 2 ``model.NNN.h5`` (SCE, MMC or
    MMLDA; its centers are rebuilt from ``model``'s center set). Inputs and outputs as
    :func:`load_run`."""
    return _on_pixels(loading.load_checkpoint(model, path, input_shape, num_classes),
                      pixel_mean)


def load_keras(path: "str | pathlib.Path") -> keras.Model:
    """A ``.keras`` file loaded in safe mode (no ``Lambda`` code runs); the mmt layers and
    losses are registered on import."""
    return keras.saving.load_model(path, safe_mode=True)


def export_keras(model: keras.Model, path: "str | pathlib.Path", *,
                 pixel_mean: Optional[np.ndarray] = None,
                 check_inputs: Optional[np.ndarray] = None) -> str:
    """Write ``model`` to the ``.keras`` file ``path`` (atomically) and check that it
    reloads in safe mode, as ``scripts/export_keras.py`` does
    (:func:`utils.models.keras_io.export_classifier`).

    Args:
        model: a classifier on mean-subtracted inputs (``pixel_mean`` given: the file maps
            ``[0, 1]`` pixels to logits with the mean inside) or any Keras model.
        pixel_mean: ``(H, W, C)`` training pixel mean in [0, 1] units, or None.
        check_inputs: ``(batch, H, W, C)`` inputs of ``model`` on which the reloaded file
            must give identical logits, or None.

    Returns:
        The file's sha256 (hex).
    """
    return export_classifier(model, path, mean=pixel_mean, check_inputs=check_inputs)
