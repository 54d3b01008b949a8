r"""``mmt-export`` / ``scripts/export_keras.py``: export a trained run (ours or the
original's ``model.NNN.h5``) as a Keras 3 ``.keras`` file.

Takes the evaluation scripts' model flags (they find the run the same way) plus ``--out``:

    mmt-export --dataset=fashion_mnist --version=1 --n=1 --optimizer=Adam --lr=0.001 \
        --use_advtrain=False --epoch=2 --out=mmc.keras
    python3 scripts/export_keras.py ...      # the same, from a checkout

``--include_preprocessing=True`` (default): the file maps ``[0, 1]`` pixels
``(batch, H, W, C)`` to logits, with the training pixel mean inside a registered
``PixelMean`` layer; ``False``: the raw classifier on mean-subtracted inputs, as the
original's model. Either reloads with ``keras.saving.load_model(path, safe_mode=True)``
once ``keras_layers`` is imported (its registered layers); the export is checked to
reload to identical logits (:mod:`utils.evaluation.export_run`). Centers and the mean are
weights, not config.

This module is the console script's entry point, so importing it defines no flags and
loads no TensorFlow: :func:`console_main` starts TensorFlow quietly first.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from absl import flags

from utils.cli.common import refuse_arguments, start_script
from utils.errors import UsageError

FLAGS = flags.FLAGS


def define_flags() -> None:
    """advtest_iterative.py's flags (the same run lookup), ``--out`` and
    ``--include_preprocessing``."""
    # Imported when called: utils.cli.iterative loads TensorFlow (see the module docstring).
    from utils.cli import iterative as cli_iterative
    cli_iterative.define_flags()
    flags.DEFINE_string("out", None, "The .keras file to write.")
    flags.DEFINE_bool(
        "include_preprocessing", True, "Model on [0, 1] pixels "
        "with the training pixel mean inside (True), or the raw classifier on "
        "mean-subtracted inputs (False).")


def config_from_flags(values: Any) -> Any:
    """The validated :class:`utils.evaluation.export_run.ExportConfig` of the parsed flags
    ``values`` (UsageError on a bad one)."""
    from utils.cli.flags import data_source, model_config_from_flags, model_source
    from utils.evaluation.export_run import CHECK_IMAGES, ExportConfig

    if not values.out or not values.out.endswith(".keras"):
        raise UsageError(f"--out must name a .keras file, got {values.out!r}")
    if values.model_path:
        raise UsageError("--model_path is already a .keras file; export takes a run's flags")
    data = dataclasses.replace(data_source(values),
                               num_examples=values.num_examples or CHECK_IMAGES)
    return ExportConfig(values.out, values.include_preprocessing, data,
                        model_source(values, model_config_from_flags(values)))


def main(argv: Sequence[str]) -> None:
    """Validate the flags into one config, then export."""
    from utils.evaluation.export_run import export

    refuse_arguments(argv)
    export(config_from_flags(FLAGS))


def console_main() -> None:
    """The ``mmt-export`` console script and ``python3 scripts/export_keras.py``."""
    start_script(define_flags, main)
