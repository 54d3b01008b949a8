"""Adversarial training: craft examples inside the compiled training step.

The original ``advtrain.py`` built a cleverhans attack into the Keras graph and trained on
``(1 - adv_ratio) * L(x) + adv_ratio * L(x_adv)``; we do the same inside
:class:`utils.training.loop.Trainer`'s replica step, so it runs under every
``tf.distribute`` strategy. Examples are crafted from the current weights, with BatchNorm
in inference mode (crafting must not move the moving statistics), by the graph-safe core
of our attacks (:func:`utils.attacks.iterative.attack_graph`) and the adaptive objective of the
model's loss (:func:`utils.attacks.objectives.select_objective`: ``mmc_un1``/``mmc_tar1`` for MMC
heads, ``ce`` for SCE). Targeted training draws each target uniformly among the wrong
labels (the original drew among all labels, the true one included, which makes some
"targeted" examples no attack at all).

    cfg = AdvTrainConfig(attack_method="MadryEtAl", adv_ratio=1.0, use_target=False)
    adversary = make_adversary(model, "mmc", cfg, clip_min=data.clip_min,
                               clip_max=data.clip_max, seed=0)
    x_adv = adversary(x, y_onehot, step_counter)      # inside strategy.run
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from utils.attacks.core import ATTACK_SPECS, offered_by
from utils.attacks.iterative import attack_graph
from utils.attacks.objectives import OBJECTIVES, select_objective
from utils.attacks.threat_model import threat_model
from utils.errors import UsageError
from utils.runs.advtrain_config import AdvTrainConfig

# The attacks the original advtrain.py crafted with (their specs say "advtrain").
ADVTRAIN_ATTACKS = offered_by("advtrain")
Adversary = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


def check_advtrain_attack(name: str) -> str:
    """``name`` if it is an attack adversarial training can craft with, else UsageError."""
    if name not in ADVTRAIN_ATTACKS:
        raise UsageError(f"unknown adversarial-training attack_method {name!r}; use one of "
                         f"{', '.join(ADVTRAIN_ATTACKS)}")
    return name


def random_wrong_targets(labels_onehot: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """One-hot targets uniform among the wrong labels, ``(batch, L)`` float32.

    ``seed`` is a stateless-RNG seed ``(2,)`` int; graph-safe.
    """
    num_classes = tf.shape(labels_onehot)[-1]
    shift = tf.random.stateless_uniform(tf.shape(labels_onehot)[:1], seed, minval=1,
                                        maxval=num_classes, dtype=tf.int32)
    labels = tf.argmax(labels_onehot, axis=-1, output_type=tf.int32)
    return tf.one_hot((labels + shift) % num_classes, num_classes, dtype=tf.float32)


def make_adversary(model: Any, loss: str, cfg: AdvTrainConfig, *, clip_min: Any,
                   clip_max: Any, seed: int) -> Adversary:
    """A graph-safe ``adversary(x, y_onehot, step) -> x_adv`` for the training step.

    Args:
        model: the classifier being trained (``x -> logits``), called with
            ``training=False`` while crafting.
        loss: its training loss name (picks the adaptive objective).
        cfg: see :class:`AdvTrainConfig`.
        clip_min: lower end of the valid input range in model units, a scalar or
            ``(H, W, C)``.
        clip_max: upper end, as ``clip_min``.
        seed: run seed; the crafting seed of a batch is ``(seed, step * R + replica)``
            so replicas and steps never share random starts or targets.

    Returns:
        A function of per-replica ``x`` ``(b, H, W, C)`` float32, one-hot ``y``
        ``(b, L)`` and the global step (int64 scalar), returning ``x_adv`` (no
        gradient flows through it).
    """
    spec = ATTACK_SPECS.get(cfg.attack_method)
    step_fn, rand_init, single_step = spec.step, spec.random_start, spec.single_step
    objective = OBJECTIVES.get(select_objective(loss, cfg.attack_method, cfg.use_target)).fn
    eps = tf.constant(cfg.eps_256 / 256.0, tf.float32)
    eps_iter = eps if single_step else tf.constant(cfg.eps_iter_256 / 256.0, tf.float32)
    num_iter = tf.constant(1 if single_step else int(cfg.nb_iter), tf.int32)
    low = tf.constant(np.asarray(clip_min, np.float32)[None] if np.ndim(clip_min)
                      else np.float32(clip_min))
    high = tf.constant(np.asarray(clip_max, np.float32)[None] if np.ndim(clip_max)
                       else np.float32(clip_max))
    base_seed = int(seed)

    def model_fn(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(x, training=False), tf.float32)

    def adversary(x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        if cfg.eps_256 == 0:
            return tf.identity(x)
        ctx = tf.distribute.get_replica_context()
        replica = tf.cast(ctx.replica_id_in_sync_group if ctx is not None else 0, tf.int64)
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        word = tf.cast(step, tf.int64) * replicas + replica
        seed_t = tf.stack([tf.constant(base_seed, tf.int64), word])
        x = tf.cast(x, tf.float32)
        targets = (random_wrong_targets(y, seed_t + tf.constant([1, 0], tf.int64))
                   if cfg.use_target else None)
        # One draw for the batch: training needs no batch-size invariance, and a per-row
        # loop would slow every step.
        x_adv = attack_graph(model_fn, objective, step_fn, threat_model("linf"), x,
                             tf.cast(y, tf.float32), targets, eps, eps_iter, num_iter, low,
                             high, rand_init, seed_t, batch_draw=True)
        return tf.stop_gradient(x_adv)

    return adversary
