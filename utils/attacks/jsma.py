"""JSMA: the Jacobian saliency map attack (Papernot et al. 2016), cleverhans'
``SaliencyMapMethod`` with ``increase=True``, batched.

Each iteration scores every pair of features ``(p, q)`` still in the search domain by
``-(a_p + a_q)(b_p + b_q)`` where ``a = d z_t / dx`` and ``b = d (sum_{j != t} z_j) / dx``,
keeping pairs with ``a_p + a_q > 0`` and ``b_p + b_q < 0``; the best pair is raised by
``theta`` (clipped to ``clip_max``) and leaves the domain. Examples stop once predicted as
their target; at most ``floor(gamma * F / 2)`` iterations, so at most a ``gamma`` share of
the ``F`` features ever changes. Features already at ``clip_max`` are never in the domain.

Memory and time grow as ``F^2`` per example: batches are cut into chunks of at most
:data:`PAIR_BUDGET` pairwise scores (3-channel 28x28 images: 6 examples per chunk).

    x_adv = saliency_map(model, x, targets_onehot, clip_min=data.clip_min,
                         clip_max=data.clip_max)
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from utils.attacks.core import ModelFn, Tensorish, prepare_batch
from utils.errors import UsageError

PAIR_BUDGET = 2 ** 25  # pairwise scores per chunk of examples (128 MB of float32)


def _pair_sums(v: tf.Tensor) -> tf.Tensor:
    """``(batch, F)`` -> ``(batch, F, F)`` with ``[b, p, q] = v[b, p] + v[b, q]``."""
    return v[:, :, None] + v[:, None, :]


@tf.function(jit_compile=True, reduce_retracing=True)
def best_pair(grad_t: tf.Tensor, grad_o: tf.Tensor, domain: tf.Tensor) -> tuple:
    """The feature pair ``(p, q)`` ``(batch,)`` int32 of highest saliency (XLA fuses the
    ``(batch, F, F)`` scores into one pass). Features out of the domain get an offset that
    fails the sign conditions (cleverhans); the diagonal is excluded."""
    features = tf.shape(domain)[1]
    off = 2.0 * (1.0 - domain)
    a = _pair_sums(grad_t - off * tf.reduce_max(tf.abs(grad_t), axis=1, keepdims=True))
    b = _pair_sums(grad_o + off * tf.reduce_max(tf.abs(grad_o), axis=1, keepdims=True))
    index = tf.range(features)
    valid = (a > 0) & (b < 0) & (index[:, None] != index[None, :])[None]
    scores = tf.where(valid, -a * b, 0.0)
    best = tf.argmax(tf.reshape(scores, [tf.shape(domain)[0], -1]), axis=1,
                     output_type=tf.int32)
    return best // features, best % features


@tf.function(reduce_retracing=True)
def jsma_step(model_fn: ModelFn, x: tf.Tensor, domain: tf.Tensor, targets: tf.Tensor,
              clip_max: tf.Tensor, theta: tf.Tensor) -> tuple:
    """One iteration: returns ``(x, domain, still_running)`` (``domain`` ``(batch, F)``
    float 0/1; ``still_running`` ``(batch,)`` bool: not yet at the target and >= 2
    features left before this step)."""
    batch, features = tf.shape(x)[0], tf.shape(domain)[1]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits = model_fn(x)
        target_logit = tf.reduce_sum(logits * targets, axis=-1)
        all_logits = tf.reduce_sum(logits, axis=-1)
    grad_t = tf.reshape(tape.gradient(target_logit, x), [batch, features])
    grad_o = tf.reshape(tape.gradient(all_logits, x), [batch, features]) - grad_t
    del tape
    p, q = best_pair(grad_t, grad_o, domain)
    at_target = tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                         tf.argmax(targets, -1, output_type=tf.int32))
    running = tf.logical_and(tf.logical_not(at_target), tf.reduce_sum(domain, axis=1) >= 2)
    change = (tf.one_hot(p, features) + tf.one_hot(q, features)) \
        * tf.cast(running, tf.float32)[:, None]
    x_new = tf.minimum(clip_max, x + theta * tf.reshape(change, tf.shape(x)))
    return x_new, domain - change, running


def saliency_map(model_fn: ModelFn, x: Tensorish, targets_onehot: Tensorish, *,
                 clip_min: Any, clip_max: Any, theta: float = 1.0,
                 gamma: float = 0.1) -> np.ndarray:
    """Targeted JSMA (increasing features) on one batch.

    Args:
        model_fn: ``x -> logits`` ``(batch, L)``.
        x: ``(batch, ...)`` float32 inputs within ``[clip_min, clip_max]`` (model units).
        targets_onehot: ``(batch, L)`` targets.
        clip_min, clip_max: scalars or per-pixel ``(H, W, C)`` arrays.
        theta: amount added to each chosen feature (> 0, model units; 1 = full pixel range).
        gamma: largest share of features changed, in (0, 1].

    Returns:
        float32 ``x_adv`` like ``x`` within the clip bounds, differing from ``x`` in at
        most ``floor(gamma * F / 2) * 2`` features per example.
    """
    if not math.isfinite(theta) or theta <= 0:
        raise UsageError(f"JSMA theta must be > 0, got {theta}")
    if not math.isfinite(gamma) or not 0 < gamma <= 1:
        raise UsageError(f"JSMA gamma must be in (0, 1], got {gamma}")
    if targets_onehot is None:
        raise UsageError("JSMA is a targeted attack; pass targets")
    x0, targets, _, low, high = prepare_batch(x, targets_onehot, None, clip_min, clip_max)
    features = int(np.prod(x0.shape[1:]))
    chunk = max(1, PAIR_BUDGET // features ** 2)
    parts = []
    for start in range(0, int(x0.shape[0]), chunk):
        part = slice(start, start + chunk)
        parts.append(_attack_chunk(model_fn, x0[part], targets[part],
                                   low if low.shape[0] == 1 else low[part],
                                   high if high.shape[0] == 1 else high[part], theta,
                                   int(math.floor(features * gamma / 2))))
    return np.concatenate(parts, axis=0)


def _attack_chunk(model_fn: ModelFn, x0: tf.Tensor, targets: tf.Tensor, low: tf.Tensor,
                  high: tf.Tensor, theta: float, max_iters: int) -> np.ndarray:
    domain = tf.reshape(tf.cast(x0 < high, tf.float32), [x0.shape[0], -1])
    adv = x0
    for _ in range(max_iters):
        adv, domain, running = jsma_step(model_fn, adv, domain, targets, high,
                                         tf.constant(theta, tf.float32))
        if not bool(tf.reduce_any(running)):
            break
    return tf.clip_by_value(adv, low, high).numpy()
