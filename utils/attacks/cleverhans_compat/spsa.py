"""SPSA through cleverhans' ``projected_optimization`` with a Keras 3 ``SPSAAdam``."""
from __future__ import annotations

from typing import Callable, Optional

import keras
import tensorflow as tf
from cleverhans.tf2.attacks.spsa import SPSAAdam, projected_optimization

from utils.errors import UsageError
from utils.attacks.objectives import Objective
from utils.attacks.cleverhans_compat.core import (Bound, Labels, ModelFn, ObjectiveLike,
                                                  Tensorish, check_inputs, prepare,
                                                  resolve_objective)


class KerasSPSAAdam(SPSAAdam):
    """cleverhans' ``SPSAAdam`` made constructible on Keras 3: its ``__init__`` passes
    ``lr=`` (rejected) and ``_apply_gradients`` reads ``self.lr`` (gone)."""

    def __init__(self, lr: float = 0.01, delta: float = 0.01, num_samples: int = 128,
                 num_iters: int = 1, compare_to_analytic_grad: bool = False) -> None:
        keras.optimizers.Adam.__init__(self, learning_rate=lr)  # skip SPSAAdam.__init__
        if num_samples < 2 or num_samples % 2:
            raise UsageError(f"spsa_samples must be even and >= 2, got {num_samples}")
        self._delta, self._num_iters, self._spsa_lr = delta, num_iters, float(lr)
        self._num_samples = num_samples // 2  # mirrored +-delta samples
        self._compare_to_analytic_grad = compare_to_analytic_grad

    @property
    def lr(self) -> float:  # read by SPSAAdam._apply_gradients
        return self._spsa_lr


def _spsa_loss(model_fn: ModelFn, fn: Objective,
               targets: Optional[tf.Tensor]) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """``loss_fn(x, label)`` for one example (``label``, ``targets``: one-hot ``(1, L)``),
    evaluated on the SPSA batch of its perturbed copies."""
    def loss_fn(x_batch: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
        copies = tf.shape(x_batch)[0]
        tiled_targets = None if targets is None else tf.repeat(targets, copies, axis=0)
        return fn(model_fn(x_batch), tf.repeat(label, copies, axis=0), targets=tiled_targets)
    return loss_fn


def spsa(model_fn: ModelFn, x: Tensorish, eps: float, nb_iter: int = 10, *, y: Labels = None,
         targets: Labels = None, objective: ObjectiveLike = "margin", spsa_samples: int = 128,
         spsa_iters: int = 1, learning_rate: float = 0.01, delta: float = 0.01,
         clip_min: float = 0.0, clip_max: float = 1.0,
         early_stop_loss_threshold: Bound = None) -> tf.Tensor:
    """SPSA (Uesato et al. 2018, cleverhans' ``projected_optimization``) minimising
    ``objective``, one example at a time; L-inf ball ``eps``. Returns float32 ``x_adv``."""
    x, labels, tars = prepare(model_fn, x, y, targets)
    check_inputs(x, eps, None, clip_min, clip_max)
    fn = resolve_objective(objective, tars is not None)
    rows = []
    for i in range(int(x.shape[0])):
        optimizer = KerasSPSAAdam(lr=learning_rate, delta=delta, num_samples=spsa_samples,
                                  num_iters=spsa_iters)
        loss_fn = _spsa_loss(model_fn, fn, None if tars is None else tars[i:i + 1])
        rows.append(projected_optimization(loss_fn, x[i:i + 1], labels[i:i + 1], eps, nb_iter,
                                           optimizer, clip_min, clip_max,
                                           early_stop_loss_threshold))
    return tf.concat(rows, axis=0)
