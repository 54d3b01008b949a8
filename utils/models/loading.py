"""Find a trained checkpoint from the training flags and load it into a fresh classifier.

What every ``advtest_*.py`` script does before attacking: the run directory is named
from the architecture and training flags as ``train_models.py`` names it
(:func:`utils.training.checkpoints.run_name`), under ``trained_models/`` or, for adversarially
trained models, ``advtrained_models/`` with the ``advtrain.py`` suffix.

    loaded = load_checkpoint_model(cfg, data.input_shape, data.num_classes, model_dir=".",
                                   dataset="mnist", optimizer="Adam", lr=0.001,
                                   batch_size=50, epoch=50)
    logits = loaded.model(data.x_test[:10])
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Sequence

import keras

from utils.training import checkpoints as ckpt
from utils.models.classifier import ModelConfig, architecture_fingerprint, build_classifier
from utils.errors import UsageError
from utils.training.run import load_weights


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A classifier with the weights of ``checkpoint`` (from run ``run_name``)."""

    model: keras.Model
    run_name: str
    run_dir: pathlib.Path
    checkpoint: pathlib.Path


def checkpoint_location(cfg: ModelConfig, *, model_dir: str, dataset: str, optimizer: str,
                        lr: float, batch_size: int, epoch: int, use_advtrain: bool = False,
                        attack_method_for_advtrain: str = "FastGradientMethod",
                        adv_ratio: float = 1.0, use_target: bool = False
                        ) -> "tuple[str, pathlib.Path, pathlib.Path]":
    """``(run_name, run_dir, checkpoint_path)`` the original scripts would load.

    ``attack_method_for_advtrain``, ``adv_ratio`` and ``use_target`` only matter with
    ``use_advtrain`` (they name the adversarial-training run).
    """
    suffix = (ckpt.advtrain_suffix(attack_method_for_advtrain, adv_ratio, use_target)
              if use_advtrain else "")
    name = ckpt.run_name(cfg, optimizer, lr, batch_size, suffix)
    run_dir = ckpt.run_directory(model_dir, dataset, cfg, optimizer, lr, batch_size, suffix)
    return name, run_dir, ckpt.checkpoint_path(run_dir, epoch)


def load_checkpoint_model(cfg: ModelConfig, input_shape: Sequence[int], num_classes: int, *,
                          model_dir: str, dataset: str, optimizer: str, lr: float,
                          batch_size: int, epoch: int, use_advtrain: bool = False,
                          attack_method_for_advtrain: str = "FastGradientMethod",
                          adv_ratio: float = 1.0, use_target: bool = False) -> LoadedModel:
    """Build the classifier ``cfg`` describes and load checkpoint ``epoch`` of its run.

    Args:
        cfg: architecture and loss (``utils.cli.flags.model_config_from_flags``).
        input_shape: ``(H, W, C)`` of the dataset; num_classes: its ``L``.
        model_dir: root holding ``trained_models/`` and ``advtrained_models/``.
        dataset, optimizer, lr, batch_size: the training run's flags (they name it).
        epoch: which ``model.NNN.weights.h5`` to load.
        use_advtrain, attack_method_for_advtrain, adv_ratio, use_target: see
            :func:`checkpoint_location`.

    Returns:
        :class:`LoadedModel`; its model maps ``(batch, H, W, C)`` mean-subtracted float32
        images to logits ``(batch, L)``.

    Raises:
        UsageError: no such checkpoint (naming the epochs that exist), a run directory of
        another architecture, or a file that does not load completely.
    """
    name, run_dir, path = checkpoint_location(
        cfg, model_dir=model_dir, dataset=dataset, optimizer=optimizer, lr=lr,
        batch_size=batch_size, epoch=epoch, use_advtrain=use_advtrain,
        attack_method_for_advtrain=attack_method_for_advtrain, adv_ratio=adv_ratio,
        use_target=use_target)
    if not path.exists():
        have = ckpt.list_checkpoints(run_dir)
        raise UsageError(f"no checkpoint {path}" + (f" (epochs there: {have})" if have else
                         " (no such run directory)") + "; pass the training flags and --epoch")
    ckpt.check_architecture(run_dir, architecture_fingerprint(cfg, tuple(input_shape),
                                                              num_classes))
    model = build_classifier(cfg, tuple(input_shape), num_classes)
    load_weights(model, path)
    return LoadedModel(model=model, run_name=name, run_dir=run_dir, checkpoint=path)
