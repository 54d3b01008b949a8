"""Find a trained checkpoint from the training flags and load it into a fresh classifier.

What every ``advtest_*.py`` script does before attacking: the run's identity is a
:class:`utils.training.runspec.RunSpec` (the same one ``train_models.py`` wrote under),
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
from utils.models.classifier import ModelConfig, architecture_fingerprint, build_classifier
from utils.training import checkpoints as ckpt
from utils.training.advtrain import AdvTrainConfig
from utils.training.runspec import RunSpec


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


def run_spec(cfg: ModelConfig, *, dataset: str, optimizer: str, lr: float, batch_size: int,
             use_advtrain: bool = False, attack_method_for_advtrain: str = "FastGradientMethod",
             adv_ratio: float = 1.0, use_target: bool = False, advtrain_eps_256: float = 8.0,
             advtrain_eps_iter_256: float = 2.0, advtrain_num_iter: int = 10) -> RunSpec:
    """The :class:`RunSpec` the evaluation flags name (the ``attack_method_for_advtrain``
    and crafting settings only matter with ``use_advtrain``)."""
    adv = None
    if use_advtrain:
        adv = AdvTrainConfig(attack_method=attack_method_for_advtrain, adv_ratio=adv_ratio,
                             use_target=use_target, eps_256=advtrain_eps_256,
                             eps_iter_256=advtrain_eps_iter_256, nb_iter=advtrain_num_iter)
    return RunSpec(dataset, cfg, optimizer, lr, batch_size, adv)


def find_checkpoint(spec: RunSpec, model_dir: str, epoch: int
                    ) -> "tuple[pathlib.Path, pathlib.Path]":
    """``(run_dir, checkpoint)``: ours (``.weights.h5``) first, then the original's
    ``.h5``, in each candidate directory; a missing file is named by our spelling."""
    for run_dir in spec.candidate_directories(model_dir):
        for path in (ckpt.checkpoint_path(run_dir, epoch),
                     ckpt.original_checkpoint_path(run_dir, epoch)):
            if path.exists():
                return run_dir, path
    run_dir = spec.find_directory(model_dir)
    return run_dir, ckpt.checkpoint_path(run_dir, epoch)


def checkpoint_location(cfg: ModelConfig, *, model_dir: str, epoch: int, **run: Any
                        ) -> "tuple[str, pathlib.Path, pathlib.Path]":
    """``(run_name, run_dir, checkpoint_path)`` the original scripts would load; ``run``
    are :func:`run_spec`'s keyword arguments."""
    run_dir, path = find_checkpoint(run_spec(cfg, **run), model_dir, epoch)
    return run_dir.name, run_dir, path


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
    from utils.training.resume import load_weights

    run_dir, path = find_checkpoint(spec, model_dir, epoch)
    if not path.exists():
        have = sorted(set(ckpt.list_checkpoints(run_dir))
                      | set(ckpt.list_checkpoints(run_dir, ckpt.ORIGINAL_CHECKPOINT_RE)))
        raise UsageError(f"no checkpoint {path}" + (f" (epochs there: {have})" if have else
                         " (no such run directory)") + "; pass the training flags and --epoch")
    cfg = spec.model
    ckpt.check_architecture(run_dir, architecture_fingerprint(cfg, tuple(input_shape),
                                                              num_classes))
    model = build_classifier(cfg, tuple(input_shape), num_classes)
    if ckpt.ORIGINAL_CHECKPOINT_RE.match(path.name):
        from utils.models.original_h5 import load_original_weights
        load_original_weights(model, cfg, path)
    else:
        load_weights(model, path)
    return LoadedModel(model=model, run_name=run_dir.name, run_dir=run_dir, checkpoint=path,
                       spec=spec)


def load_checkpoint_model(cfg: ModelConfig, input_shape: Sequence[int], num_classes: int, *,
                          model_dir: str, epoch: int, **run: Any) -> LoadedModel:
    """:func:`load_run` of the run that ``cfg`` and :func:`run_spec`'s keyword
    arguments ``run`` (dataset, optimizer, lr, batch_size, use_advtrain, ...) name."""
    return load_run(run_spec(cfg, **run), input_shape, num_classes, model_dir=model_dir,
                    epoch=epoch)


def load_model_file(path: str, data: Any) -> LoadedModel:
    """A ``--model_path`` ``.keras`` pixel classifier on ``data``'s mean-subtracted inputs
    (:func:`utils.models.keras_io.load_keras_classifier`)."""
    from utils.models.keras_io import load_keras_classifier

    model, digest = load_keras_classifier(path, data.mean, data.input_shape, data.num_classes)
    file = pathlib.Path(path)
    return LoadedModel(model=model, run_name=file.name, run_dir=file.parent, checkpoint=file,
                       sha256=digest)
