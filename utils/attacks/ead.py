"""EAD: the elastic-net attack (Chen et al. 2018, cleverhans' ``ElasticNetMethod``).

Minimises ``c * max(objective + kappa, 0) + ||x' - x||_2^2 + beta ||x' - x||_1`` over
``x'`` in the per-pixel box by ISTA/FISTA: a gradient step on the smooth part (learning
rate decayed as ``lr * sqrt(1 - k / max_iterations)``), then the shrinkage-thresholding
projection :func:`shrink`. The best successful iterate per example (by the EN distance
``L2^2 + beta L1``, or ``L1`` with ``decision_rule="L1"``) is kept; ``binary_search_steps``
rounds adjust ``c`` per example (:func:`utils.attacks.const_search.update_const`).

The objective is a registered margin-type one (minimised, success at ``<= -kappa``):
``margin`` on SCE models, ``mmc_un2`` / ``mmc_tar2`` on MMC heads. One binary-search
round of one batch runs as one compiled graph.

    x_adv = elastic_net(model, x, labels_onehot, objective=OBJECTIVES.get("margin").fn,
                        clip_min=data.clip_min, clip_max=data.clip_max)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from utils.attacks.const_search import is_adversarial, update_const
from utils.attacks.core import ModelFn, Tensorish, prepare_batch
from utils.attacks.objectives import Objective
from utils.attacks.settings import (BOOL, COUNT, NONNEGATIVE, POSITIVE, AttackSettings, Rule,
                                    setting)

DECISION_RULES = ("EN", "L1")
DECISION_RULE = Rule("must be EN or L1", lambda v: v in DECISION_RULES)


@dataclasses.dataclass(frozen=True)
class EADConfig(AttackSettings):
    """EAD hyper-parameters, validated when built; defaults are the original
    ``advtest_others.py``'s."""

    confidence: float = setting(0.1, NONNEGATIVE)
    learning_rate: float = setting(0.01, POSITIVE)
    binary_search_steps: int = setting(1, COUNT)
    max_iterations: int = setting(1000, COUNT)
    initial_const: float = setting(1.0, POSITIVE)
    beta: float = setting(1e-2, NONNEGATIVE)
    fista: bool = setting(True, BOOL)
    decision_rule: str = setting("EN", DECISION_RULE)


def shrink(y: tf.Tensor, x0: tf.Tensor, beta: tf.Tensor, clip_min: tf.Tensor,
           clip_max: tf.Tensor) -> tf.Tensor:
    """The ISTA projection: soft-threshold ``y - x0`` by ``beta``, then clip to the box."""
    diff = y - x0
    up = tf.minimum(y - beta, clip_max)
    down = tf.maximum(y + beta, clip_min)
    return tf.where(diff > beta, up, tf.where(diff < -beta, down, x0))


def _per_example(t: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.reshape(t, [tf.shape(t)[0], -1]), axis=1)


@tf.function(reduce_retracing=True)
def ead_round(model_fn: ModelFn, objective: Objective, x0: tf.Tensor, labels: tf.Tensor,
              targets: Optional[tf.Tensor], const: tf.Tensor, clip_min: tf.Tensor,
              clip_max: tf.Tensor, max_iterations: tf.Tensor, learning_rate: tf.Tensor,
              beta: tf.Tensor, kappa: tf.Tensor, fista: bool, en_rule: bool,
              best_dist: tf.Tensor, best_adv: tf.Tensor) -> tuple:
    """One binary-search round (``max_iterations`` ISTA/FISTA steps) on one batch.

    Returns ``(best_adv, best_dist, success)``: the best successful iterate so far per
    example, its decision distance, and whether this round found any success.
    """
    adv, slack = x0, x0
    success = tf.zeros(tf.shape(x0)[:1], tf.bool)
    n = tf.cast(max_iterations, tf.float32)
    mask_shape = tf.concat([tf.shape(x0)[:1], tf.ones([tf.rank(x0) - 1], tf.int32)], 0)
    for k in tf.range(max_iterations):
        with tf.GradientTape() as tape:
            tape.watch(slack)
            value = objective(model_fn(slack), labels, targets=targets, confidence=kappa)
            loss = tf.reduce_sum(const * tf.maximum(tf.cast(value, tf.float32) + kappa, 0.0)) \
                + tf.reduce_sum(tf.square(slack - x0))
        kf = tf.cast(k, tf.float32)
        step = learning_rate * tf.sqrt(tf.maximum(1.0 - kf / n, 0.0))
        new_adv = shrink(slack - step * tape.gradient(loss, slack), x0, beta, clip_min, clip_max)
        slack = new_adv + (kf + 1.0) / (kf + 4.0) * (new_adv - adv) if fista else new_adv
        adv = new_adv
        hit = is_adversarial(model_fn(adv), labels, targets, kappa)
        l1 = _per_example(tf.abs(adv - x0))
        dist = _per_example(tf.square(adv - x0)) + beta * l1 if en_rule else l1
        better = tf.logical_and(hit, dist < best_dist)
        best_dist = tf.where(better, dist, best_dist)
        best_adv = tf.where(tf.reshape(better, mask_shape), adv, best_adv)
        success = tf.logical_or(success, hit)
    return best_adv, best_dist, success


def elastic_net(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
                objective: Objective, clip_min: Any, clip_max: Any,
                targets_onehot: Optional[Tensorish] = None, config: Optional[EADConfig] = None,
                **fields: Any) -> np.ndarray:
    """EAD on one batch.

    Args:
        model_fn: ``x -> logits`` ``(batch, L)``; reuse one callable across batches.
        x: ``(batch, ...)`` float32 inputs within ``[clip_min, clip_max]`` (model units).
        labels_onehot: ``(batch, L)`` true labels; targets_onehot: ``(batch, L)`` or None.
        objective: registered margin-type objective (``margin``, ``mmc_un2``/``mmc_tar2``),
            called with ``confidence=``; minimised.
        clip_min, clip_max: scalars or per-pixel ``(H, W, C)`` arrays.
        config: the :class:`EADConfig` (validated when built), or its ``fields`` given as
            keyword arguments (default: the original's settings).

    Returns:
        float32 ``x_adv`` like ``x``: the best adversarial found, else ``x`` itself.
    """
    cfg = config if config is not None else EADConfig(**fields)
    x0, labels, targets, low, high = prepare_batch(x, labels_onehot, targets_onehot,
                                                   clip_min, clip_max)
    batch = int(x0.shape[0])
    best_adv, best_dist = x0, tf.fill([batch], np.float32(np.inf))
    lower, upper = tf.zeros(batch), tf.fill([batch], 1e10)
    const = tf.fill([batch], float(cfg.initial_const))
    f32 = lambda v: tf.constant(v, tf.float32)  # noqa: E731
    for _ in range(cfg.binary_search_steps):
        best_adv, best_dist, success = ead_round(
            model_fn, objective, x0, labels, targets, const, low, high,
            tf.constant(cfg.max_iterations, tf.int32), f32(cfg.learning_rate), f32(cfg.beta),
            f32(cfg.confidence), bool(cfg.fista), cfg.decision_rule == "EN", best_dist,
            best_adv)
        const, lower, upper = update_const(success, const, lower, upper)
    return best_adv.numpy()
