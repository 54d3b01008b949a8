"""C&W-L2 (cleverhans' algorithm, rewritten around its Keras 3 / batching breakages)."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.carlini_wagner_l2 import clip_tanh, l2 as squared_l2

from utils.attacks.objectives import Objective
from utils.attacks.const_search import is_adversarial, update_const
from utils.attacks.cleverhans_compat.core import (Labels, ModelFn, ObjectiveLike, Tensorish,
                                                  check_inputs, prepare, resolve_objective)


@dataclasses.dataclass(frozen=True)
class CWConfig:
    """C&W-L2 hyper-parameters (paper defaults; Carlini & Wagner 2017)."""
    confidence: float = 0.0
    binary_search_steps: int = 9
    max_iterations: int = 1000
    learning_rate: float = 5e-3
    initial_const: float = 1e-2
    abort_early: bool = True
    clip_min: float = 0.0
    clip_max: float = 1.0


class _CWRunner:
    """C&W-L2 state for batches of one shape, all reset in :meth:`load` and per binary-search
    step (nothing leaks between batches); one compiled step serves every such batch."""

    def __init__(self, model_fn: ModelFn, fn: Objective, shape: tf.TensorShape,
                 num_classes: int, targeted: bool, cfg: CWConfig) -> None:
        self.model_fn, self.fn, self.cfg, self.targeted = model_fn, fn, cfg, targeted
        zeros, batch, var = tf.zeros(shape), int(shape[0]), tf.Variable
        self.w0, self.x0, self.modifier, self.m, self.v, self.best_attack = (
            var(zeros) for _ in range(6))
        self.labels, self.targets = (var(tf.zeros((batch, num_classes))) for _ in range(2))
        self.t, self.best_l2 = var(0.0), var(tf.zeros(batch))
        self.success = var(tf.zeros(batch, tf.bool))

    def load(self, x: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor]) -> None:
        """Reset all state for the batch ``x`` (inputs already adversarial: distortion 0)."""
        cfg = self.cfg
        unit = tf.clip_by_value((x - cfg.clip_min) / (cfg.clip_max - cfg.clip_min), 0.0, 1.0)
        self.w0.assign(tf.atanh((unit * 2.0 - 1.0) * 0.999999))
        self.x0.assign(clip_tanh(self.w0, cfg.clip_min, cfg.clip_max))
        self.labels.assign(labels)
        self.targets.assign(labels if targets is None else targets)  # unused if untargeted
        already = is_adversarial(self.model_fn(x), labels, targets, cfg.confidence)
        self.best_l2.assign(tf.where(already, 0.0, 1e10))
        self.best_attack.assign(x)

    @tf.function
    def step(self, const: tf.Tensor) -> tf.Tensor:
        """Adam step (TF1 form, as the original); keeps the evaluated point if better."""
        cfg, targets = self.cfg, self.targets if self.targeted else None
        with tf.GradientTape() as tape:
            tape.watch(self.modifier)
            x_new = clip_tanh(self.modifier + self.w0, cfg.clip_min, cfg.clip_max)
            logits = self.model_fn(x_new)
            dist = squared_l2(x_new, self.x0)
            value = self.fn(logits, self.labels, targets=targets, confidence=cfg.confidence)
            loss = tf.reduce_sum(dist) + tf.reduce_sum(
                const * tf.maximum(tf.cast(value, tf.float32), -cfg.confidence))
        grad = tape.gradient(loss, self.modifier)
        self.t.assign_add(1.0)
        self.m.assign(0.9 * self.m + 0.1 * grad)
        self.v.assign(0.999 * self.v + 0.001 * tf.square(grad))
        lr_t = cfg.learning_rate * tf.sqrt(1.0 - 0.999 ** self.t) / (1.0 - 0.9 ** self.t)
        self.modifier.assign_sub(lr_t * self.m / (tf.sqrt(self.v) + 1e-8))
        success = is_adversarial(logits, self.labels, targets, cfg.confidence)
        better = tf.logical_and(success, dist < self.best_l2)
        self.best_l2.assign(tf.where(better, dist, self.best_l2))
        mask = tf.reshape(better, [-1] + [1] * (len(x_new.shape) - 1))
        self.best_attack.assign(tf.where(mask, x_new, self.best_attack))
        self.success.assign(tf.logical_or(self.success, success))
        return loss

    def run(self) -> tf.Tensor:
        """The binary search over the constant; returns the best adversarial per example."""
        cfg, batch = self.cfg, int(self.best_l2.shape[0])
        lower, upper = tf.zeros(batch), tf.fill([batch], 1e10)
        const = tf.fill([batch], float(cfg.initial_const))
        check_every = max(cfg.max_iterations // 10, 1)
        for outer in range(cfg.binary_search_steps):
            for variable in (self.modifier, self.m, self.v, self.t, self.success):
                variable.assign(tf.zeros_like(variable))
            if cfg.binary_search_steps >= 10 and outer == cfg.binary_search_steps - 1:
                const = upper
            prev = np.inf
            for iteration in range(cfg.max_iterations):
                loss = self.step(const)
                if cfg.abort_early and iteration % check_every == 0:
                    if float(loss) > prev * 0.9999:
                        break
                    prev = float(loss)
            const, lower, upper = update_const(self.success, const, lower, upper)
        return tf.identity(self.best_attack)


def carlini_wagner_l2(model_fn: ModelFn, x: Tensorish, y: Labels = None, *,
                      targets: Labels = None, objective: ObjectiveLike = "margin",
                      batch_size: int = 128, **config: Any) -> np.ndarray:
    """Carlini & Wagner L2: minimise ``||x' - x||^2 + c * max(objective, -confidence)``
    over the tanh-boxed ``x'``, binary-searching ``c`` per example.

    ``x``: any shape ``(batch, ...)``, in ``[clip_min, clip_max]``; ``y``: true labels
    (default: the predictions); ``targets`` make it targeted; ``objective``: ``margin``
    (C&W's f6), ``mmc_un2`` / ``mmc_tar2`` on MMC heads, or a callable taking
    ``confidence=``; ``config``: :class:`CWConfig` fields. With ``abort_early`` off the
    result does not depend on ``batch_size``. Returns float32 like ``x``: unchanged where
    no adversarial was found, exactly ``x`` (distortion 0) where it already is one.
    """
    cfg = CWConfig(**config)
    x_t, labels, tars = prepare(model_fn, x, y, targets)
    check_inputs(x_t, 0.0, None, cfg.clip_min, cfg.clip_max)
    fn = resolve_objective(objective, tars is not None)
    out, runner = np.array(x_t.numpy(), copy=True), None
    for start in range(0, int(x_t.shape[0]), batch_size):
        part = slice(start, start + batch_size)
        if runner is None or runner.best_attack.shape != x_t[part].shape:
            runner = _CWRunner(model_fn, fn, x_t[part].shape, int(labels.shape[-1]),
                               tars is not None, cfg)
        runner.load(x_t[part], labels[part], None if tars is None else tars[part])
        out[part] = runner.run().numpy()
    return out
