"""Find a trained checkpoint from the training flags and load it into a fresh classifier.

What every ``advtest_*.py`` script does before attacking: the run's identity is a
:class:`utils.runs.spec.RunSpec` (the same one ``train_models.py`` wrote under),
looked up under both C_MM spellings (:meth:`RunSpec.candidate_directories`). In the run
directory ``model.NNN.weights.h5`` (ours) is loaded, else ``model.NNN.h5`` (the original
repository's Keras 2 weights, :mod:`utils.models.original_h5`).

    spec = RunSpec("mnist", cfg, "Adam", 0.001, 50)
    loaded = load_run(spec, data.input_shape, data.num_classes, model_dir=".", epoch=50)
    logits = loaded.model(data.x_test[:10])
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Dict, Optional, Sequence

import keras

from utils.errors import UsageError
from utils.models.classifier import build_classifier
from utils.models.keras_io import load_keras_classifier
from utils.models.original_h5 import load_original_weights
from utils.models.weights import load_weights
from utils.runs import checkpoints as ckpt
from utils.runs.model_config import ModelConfig, architecture_fingerprint
from utils.runs.spec import RunSpec


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A classifier with the weights of ``checkpoint`` (from run ``run_name``).

    ``spec`` is the run's identity (None for a ``--model_path`` file); ``sha256`` the
    digest of a ``--model_path`` file (None for runs)."""

    model: keras.Model
    run_name: str
    run_dir: pathlib.Path
    checkpoint: pathlib.Path
    spec: Optional[RunSpec] = None
    sha256: Optional[str] = None

    def record_fields(self) -> Dict[str, Any]:
        """What a result record says was evaluated: the run's identity, or the file."""
        if self.spec is not None:
            return {"run": self.spec.to_dict()}
        return {"run": None, "model_path": str(self.checkpoint), "model_sha256": self.sha256}


def load_run(spec: RunSpec, input_shape: Sequence[int], num_classes: int, *,
             model_dir: str, epoch: int) -> LoadedModel:
    """Build the classifier ``spec.model`` describes and load checkpoint ``epoch`` of run
    ``spec`` (ours, or the original's Keras 2 ``model.NNN.h5``).

    Returns:
        :class:`LoadedModel`; its model maps ``(batch, H, W, C)`` mean-subtracted float32
        images to logits ``(batch, L)``.

    Raises:
        UsageError: no such checkpoint (naming the epochs that exist), a run directory of
            another architecture, or a file that does not load completely.
    """
    run_dir, path = spec.find_checkpoint(model_dir, epoch)
    if not path.exists():
        have = sorted(set(ckpt.list_checkpoints(run_dir))
                      | set(ckpt.list_checkpoints(run_dir, ckpt.ORIGINAL_CHECKPOINT_RE)))
        raise UsageError(f"no checkpoint {path}" + (f" (epochs there: {have})" if have else
                         " (no such run directory)") + "; pass the training flags and --epoch")
    cfg = spec.model
    ckpt.check_architecture(run_dir, architecture_fingerprint(cfg, tuple(input_shape),
                                                              num_classes))
    model = load_checkpoint(cfg, path, input_shape, num_classes)
    return LoadedModel(model=model, run_name=run_dir.name, run_dir=run_dir, checkpoint=path,
                       spec=spec)


def load_checkpoint(cfg: ModelConfig, path: "str | pathlib.Path", input_shape: Sequence[int],
                    num_classes: int) -> keras.Model:
    """The classifier ``cfg`` describes with the weights of checkpoint file ``path``: ours
    (``model.NNN.weights.h5``) or, by its name ``model.NNN.h5``, the original's Keras 2 file.

    Returns a model on ``(batch, H, W, C)`` mean-subtracted float32 images -> logits
    ``(batch, L)``. Raises UsageError for a missing file or one of another architecture.
    """
    path = pathlib.Path(path)
    model = build_classifier(cfg, tuple(input_shape), num_classes)
    if ckpt.ORIGINAL_CHECKPOINT_RE.match(path.name):
        load_original_weights(model, cfg, path)
    else:
        load_weights(model, path)
    return model


def load_model_file(path: str, data: Any) -> LoadedModel:
    """A ``--model_path`` ``.keras`` pixel classifier on ``data``'s mean-subtracted inputs
    (:func:`utils.models.keras_io.load_keras_classifier`)."""
    model, digest = load_keras_classifier(path, data.mean, data.input_shape, data.num_classes)
    file = pathlib.Path(path)
    return LoadedModel(model=model, run_name=file.name, run_dir=file.parent, checkpoint=file,
                       sha256=digest)
