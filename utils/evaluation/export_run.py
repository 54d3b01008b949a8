"""One ``mmt-export`` (``scripts/export_keras.py``) run: a trained run's checkpoint written
as a Keras 3 ``.keras`` file, checked to reload to identical logits.

The command line becomes one :class:`ExportConfig`
(:func:`utils.cli.export_keras.config_from_flags`), which :func:`export` runs:

    export(config)   # writes config.out, prints one line
"""
from __future__ import annotations

import dataclasses

from utils.evaluation.sources import DataSource, ModelSource, load_data, load_model
from utils.models.keras_io import export_classifier

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
    digest = export_classifier(loaded.model, config.out,
                               mean=data.mean if config.include_preprocessing else None,
                               check_inputs=data.x_test[:CHECK_IMAGES])
    print(f"wrote {config.out} (sha256 {digest}) from {loaded.checkpoint}; "
          f"{'[0, 1] pixels' if config.include_preprocessing else 'mean-subtracted inputs'}"
          " -> logits")
