"""One ``mmt-export`` (``scripts/export_keras.py``) run: a trained run's checkpoint written
as a Keras 3 ``.keras`` file, checked to reload to identical logits.

The command line becomes one :class:`ExportConfig`
(:func:`utils.cli.export_keras.config_from_flags`), which :func:`export` runs:

    export(config)   # writes config.out, prints one line
"""
from __future__ import annotations

import dataclasses

import numpy as np

from utils.evaluation.sources import DataSource, ModelSource, load_data, load_model
from utils.models.keras_io import pixel_classifier, save_keras

#: Test images the export is checked on (logits before == after reloading).
CHECK_IMAGES = 8


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What to export: the checkpoint ``model`` with the test ``data`` it is checked on,
    to the .keras file ``out``, with the pixel mean inside (``include_preprocessing``)."""

    out: str
    include_preprocessing: bool
    data: DataSource
    model: ModelSource


def export(config: ExportConfig) -> None:
    """Write ``config.out`` (checked on :data:`CHECK_IMAGES` test images) and print one line."""
    data = load_data(config.data)
    loaded = load_model(config.model, data)
    x = data.x_test[:CHECK_IMAGES]
    if config.include_preprocessing:
        model, check = pixel_classifier(loaded.model, data.mean), np.clip(x + data.mean, 0, 1)
    else:
        model, check = loaded.model, x
    digest = save_keras(model, config.out, check_inputs=check.astype(np.float32))
    print(f"wrote {config.out} (sha256 {digest}) from {loaded.checkpoint}; "
          f"{'[0, 1] pixels' if config.include_preprocessing else 'mean-subtracted inputs'}"
          " -> logits")
