"""Classifiers in and out as standard Keras 3 files (``.keras``).

Export: :func:`pixel_classifier` wraps a classifier (mean-subtracted inputs -> logits)
into a model on ``[0, 1]`` pixels with the training pixel mean inside a registered
:class:`keras_layers.PixelMean` layer; :func:`save_keras` writes it atomically and checks
that it reloads with ``keras.saving.load_model(path, safe_mode=True)`` to identical logits.

Import: :func:`load_keras_classifier` loads any ``.keras`` model mapping ``(batch, H, W, C)``
pixels in ``[0, 1]`` to logits ``(batch, L)`` and returns it as the evaluation scripts
expect it (a model on mean-subtracted inputs), with its sha256 and head kind.

    save_keras(pixel_classifier(loaded.model, data.mean), "run.keras")
    model, sha256 = load_keras_classifier("run.keras", data.mean, data.input_shape, 10)
"""
from __future__ import annotations

import hashlib
import pathlib
from typing import Dict, Optional, Sequence, Tuple

import keras
import numpy as np

from keras_layers import MMCLayer, PixelMean
from utils.errors import UsageError
from utils.fileio import atomic_write


def pixel_classifier(model: keras.Model, mean: np.ndarray) -> keras.Model:
    """``pixels -> model(pixels - mean)``: ``(batch, H, W, C)`` in [0, 1] -> logits."""
    inputs = keras.Input(shape=tuple(int(s) for s in mean.shape), name="pixels")
    logits = model(PixelMean(mean, subtract=True, name="subtract_pixel_mean")(inputs))
    return keras.Model(inputs, logits, name="pixel_classifier")


def file_sha256(path: "str | pathlib.Path") -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_keras(model: keras.Model, path: "str | pathlib.Path",
               check_inputs: Optional[np.ndarray] = None) -> str:
    """Write ``model`` to ``path`` (``.keras``) atomically; reload it in safe mode and,
    given ``check_inputs``, require identical logits. Returns the file's sha256."""
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        raise UsageError(f"--out must end in .keras, got {path}")
    atomic_write(path, model.save, suffix=".keras")
    reloaded = keras.saving.load_model(path, safe_mode=True)
    if check_inputs is not None:
        want = np.asarray(model(check_inputs, training=False))
        got = np.asarray(reloaded(check_inputs, training=False))
        if not np.array_equal(want, got):
            path.unlink()
            raise UsageError(f"{path} does not reload to identical logits (max diff "
                             f"{np.abs(want - got).max():.3g}); nothing written")
    return file_sha256(path)


def export_classifier(model: keras.Model, path: "str | pathlib.Path", *,
                      mean: Optional[np.ndarray] = None,
                      check_inputs: Optional[np.ndarray] = None) -> str:
    """Export a classifier on mean-subtracted inputs to the ``.keras`` file ``path``.

    With the training pixel ``mean`` ``(H, W, C)`` (in [0, 1] units) the file maps
    ``[0, 1]`` pixels to logits (:func:`pixel_classifier`), else it is ``model`` itself.
    ``check_inputs``: ``(batch, H, W, C)`` mean-subtracted inputs on which the reloaded
    file must give identical logits (as pixels ``clip(x + mean, 0, 1)`` when ``mean`` is
    given). Returns the file's sha256 (:func:`save_keras`).
    """
    check = None if check_inputs is None else np.asarray(check_inputs, np.float32)
    if mean is not None:
        model = pixel_classifier(model, np.asarray(mean))
        check = None if check is None else np.clip(check + mean, 0, 1).astype(np.float32)
    return save_keras(model, path, check_inputs=check)


def output_head(model: keras.Model) -> keras.layers.Layer:
    """The layer producing ``model``'s output, looking inside nested models."""
    layer = model.layers[-1] if model.layers else model
    while isinstance(layer, keras.Model) and layer.layers:
        layer = layer.layers[-1]
    return layer


def head_kind(model: keras.Model) -> str:
    """``mmc`` when the output layer is an :class:`keras_layers.MMCLayer`, else ``unknown``."""
    return "mmc" if isinstance(output_head(model), MMCLayer) else "unknown"


_FILES: Dict[str, Tuple[keras.Model, str]] = {}


def read_keras_file(path: "str | pathlib.Path") -> Tuple[keras.Model, str]:
    """``(model, sha256)`` of a ``.keras`` file loaded in safe mode (cached per path);
    UsageError when it does not load."""
    key = str(pathlib.Path(path).resolve())
    if key not in _FILES:
        try:
            model = keras.saving.load_model(path, safe_mode=True)
        except Exception as exc:  # Keras raises ValueError/OSError/TypeError variants
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UsageError(f"cannot load {path} as a Keras model ({first[:140]})") from None
        _FILES[key] = (model, file_sha256(path))
    return _FILES[key]


def load_keras_classifier(path: "str | pathlib.Path", mean: np.ndarray,
                          input_shape: Sequence[int], num_classes: int
                          ) -> Tuple[keras.Model, str]:
    """Load a ``.keras`` pixel classifier (safe mode); ``(model on mean-subtracted inputs
    x -> file_model(x + mean), sha256)``, as :func:`utils.models.loading.load_run`'s models.

    Raises:
        UsageError: unreadable file, or not a classifier of this dataset (input shape
            other than ``input_shape``, output not ``(batch, num_classes)``).
    """
    file_model, digest = read_keras_file(path)
    shape_in = tuple(file_model.inputs[0].shape) if getattr(file_model, "inputs", None) \
        else None
    if shape_in is None or len(shape_in) != 4 or tuple(shape_in[1:]) != tuple(input_shape):
        raise UsageError(f"{path} takes inputs of shape {shape_in}, not (batch, "
                         f"{', '.join(map(str, input_shape))}) images of this dataset")
    shape_out = tuple(file_model.outputs[0].shape)
    if len(shape_out) != 2 or shape_out[1] != num_classes:
        raise UsageError(f"{path} outputs shape {shape_out}, not logits (batch, {num_classes})"
                         ": not a classifier of this dataset")
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    pixels = PixelMean(mean, subtract=False, name="add_pixel_mean")(inputs)
    return keras.Model(inputs, file_model(pixels), name="keras_file_classifier"), digest
