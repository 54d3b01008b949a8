r"""Export a trained run (ours or the original's ``model.NNN.h5``) as a Keras 3 ``.keras`` file.

Takes the evaluation scripts' model flags (they find the run the same way) plus ``--out``:

    python3 scripts/export_keras.py --dataset=fashion_mnist --version=1 --n=1 \
        --optimizer=Adam --lr=0.001 --use_advtrain=False --epoch=2 --out=mmc.keras

``--include_preprocessing=True`` (default): the file maps ``[0, 1]`` pixels
``(batch, H, W, C)`` to logits, with the training pixel mean inside a registered
``PixelMean`` layer; ``False``: the raw classifier on mean-subtracted inputs, as the
original's model. Either reloads with ``keras.saving.load_model(path, safe_mode=True)``
once ``keras_layers`` is imported (its registered layers); the export is checked to
reload to identical logits. Centers and the mean are weights, not config.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from absl import flags  # noqa: E402

from utils.cli.common import run_main  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """advtest_iterative.py's flags (the same run lookup), ``--out`` and
    ``--include_preprocessing``."""
    import advtest_iterative
    advtest_iterative.define_flags()
    flags.DEFINE_string("out", None, "The .keras file to write.")
    flags.DEFINE_bool(
        "include_preprocessing", True, "Model on [0, 1] pixels "
        "with the training pixel mean inside (True), or the raw classifier on "
        "mean-subtracted inputs (False).")


define_flags()


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What to export: the checkpoint ``model`` (an
    :class:`utils.evaluation.sources.ModelSource`) with the test ``data`` it is checked on,
    to the .keras file ``out``, with the pixel mean inside (``include_preprocessing``)."""

    out: str
    include_preprocessing: bool
    data: Any
    model: Any


def config_from_flags(values: Any) -> ExportConfig:
    """The validated flags (UsageError on a bad one)."""
    from utils.cli.flags import data_source, model_config_from_flags, model_source
    from utils.errors import UsageError

    if not values.out or not values.out.endswith(".keras"):
        raise UsageError(f"--out must name a .keras file, got {values.out!r}")
    if values.model_path:
        raise UsageError("--model_path is already a .keras file; export takes a run's flags")
    data = dataclasses.replace(data_source(values), num_examples=values.num_examples or 8)
    return ExportConfig(values.out, values.include_preprocessing, data,
                        model_source(values, model_config_from_flags(values)))


def export(config: ExportConfig) -> None:
    """Write ``config.out`` (checked on 8 test images) and print one line."""
    from utils.evaluation.sources import load_data, load_model
    from utils.models.keras_io import export_classifier

    data = load_data(config.data)
    loaded = load_model(config.model, data)
    digest = export_classifier(loaded.model, config.out,
                               mean=data.mean if config.include_preprocessing else None,
                               check_inputs=data.x_test[:8])
    print(f"wrote {config.out} (sha256 {digest}) from {loaded.checkpoint}; "
          f"{'[0, 1] pixels' if config.include_preprocessing else 'mean-subtracted inputs'}"
          " -> logits")


def main(argv: Sequence[str]) -> None:
    from utils.errors import UsageError

    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    export(config_from_flags(FLAGS))


if __name__ == "__main__":
    run_main(main)
