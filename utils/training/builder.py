"""The one place a training step is wired: model, loss, optimizer, adversary, Trainer.

``train_models.py`` (:func:`utils.training.run.train`), the training-time analysis
(:func:`utils.reporting.analyses.time_training`) and ``bench/train_step.py`` all build their
compiled step here, so what is timed is what is trained.

    trainer = build_trainer(strategy, ModelConfig(version=1, n=5, loss="mmc"), (32, 32, 3),
                            10, TrainerConfig(optimizer="mom", lr=0.01, batch_size=50))
    trainer.fit(dist_dataset, steps, eval_dataset, epochs=..., ...)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import keras
import tensorflow as tf

from utils.errors import UsageError
from utils.models.classifier import build_classifier, training_loss
from utils.runs.advtrain_config import AdvTrainConfig
from utils.runs.model_config import ModelConfig
from utils.training.advtrain import check_advtrain_attack, make_adversary
from utils.training.loop import NAN_POLICIES, OPTIMIZERS, Trainer, make_optimizer


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """How the step trains (the model itself is a :class:`ModelConfig`).

    Attributes:
        optimizer, lr: the original's optimizer name (``mom``, ``Adam``) and base rate.
        batch_size: global batch (examples per step over all replicas).
        mixed_float16: wrap the optimizer for loss scaling (policy ``mixed_float16``).
        advtrain: adversarial training settings, or None.
        seed: seeds Keras/NumPy/Python before the model is built (initial weights) and
            the adversary's random starts and targets.
        nan_policy, steps_per_loop, jit_compile: see :class:`utils.training.loop.Trainer`.
    """

    optimizer: str = "mom"
    lr: float = 0.01
    batch_size: int = 50
    mixed_float16: bool = False
    advtrain: Optional[AdvTrainConfig] = None
    seed: int = 0
    nan_policy: str = "stop"
    steps_per_loop: int = 1
    jit_compile: bool = False

    def __post_init__(self) -> None:
        """Validated once, here (UsageError): optimizer name, NaN policy, steps per loop,
        the adversarial-training attack (rates and batch size: :class:`RunSpec`)."""
        OPTIMIZERS.get(self.optimizer)
        if self.nan_policy not in NAN_POLICIES:
            raise UsageError(f"--nan_policy must be one of {', '.join(NAN_POLICIES)}, "
                             f"got {self.nan_policy!r}")
        if int(self.steps_per_loop) < 1:
            raise UsageError(f"--steps_per_loop must be >= 1, got {self.steps_per_loop}")
        if self.advtrain is not None:
            check_advtrain_attack(self.advtrain.attack_method)


def build_trainer(strategy: tf.distribute.Strategy, model_cfg: ModelConfig,
                  input_shape: Sequence[int], num_classes: int, cfg: TrainerConfig, *,
                  clip_min: Any = 0.0, clip_max: Any = 1.0) -> Trainer:
    """A :class:`Trainer` with a fresh model and built optimizer (both in ``strategy.scope()``).

    Args:
        strategy: the ``tf.distribute`` strategy to train under.
        model_cfg: the classifier (``build_classifier``); its loss is ``model_cfg.loss``
            bound to the model's head (``training_loss``).
        input_shape: ``(H, W, C)``; num_classes: number of labels.
        cfg: see :class:`TrainerConfig`.
        clip_min: lower end of the valid input range in model units (a scalar or
            ``(H, W, C)``); only adversarial training reads it.
        clip_max: upper end, as ``clip_min``.

    Returns:
        The trainer; ``trainer.model`` and ``trainer.optimizer`` are what to checkpoint.
    """
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        model = build_classifier(model_cfg, input_shape, num_classes)
        optimizer = make_optimizer(cfg.optimizer, cfg.lr, cfg.mixed_float16)
        optimizer.build(model.trainable_variables)
    adversary = None
    if cfg.advtrain is not None:
        adversary = make_adversary(model, model_cfg.loss, cfg.advtrain, clip_min=clip_min,
                                   clip_max=clip_max, seed=cfg.seed)
    return Trainer(strategy, model, training_loss(model_cfg, model), optimizer, cfg.batch_size,
                   adversary=adversary,
                   adv_ratio=cfg.advtrain.adv_ratio if cfg.advtrain is not None else 1.0,
                   nan_policy=cfg.nan_policy, steps_per_loop=cfg.steps_per_loop,
                   jit_compile=cfg.jit_compile)
