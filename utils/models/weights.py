"""Load a weights file into a built Keras model, or fail with one line.

    load_weights(model, run_dir / "model.005.weights.h5")
"""
from __future__ import annotations

import pathlib
import warnings

import keras

from utils.errors import UsageError


def load_weights(model: keras.Model, path: pathlib.Path) -> None:
    """``model.load_weights`` with a one-line UsageError for missing/foreign/broken files."""
    if not path.exists():
        raise UsageError(f"checkpoint {path} does not exist; train it first or check the flags")
    try:
        # Keras only *warns* when parts of a file do not match ("Skipping nested
        # container ... retain their freshly-initialized weights"): that would evaluate a
        # half-random model, so any warning while loading is an error here.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/OSError/KeyError variants
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot load {path} into this model ({first[:160]}); it was written by another "
            "architecture or is truncated: use the flags it was trained with or retrain"
        ) from None
