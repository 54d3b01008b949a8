"""DeepFool (Moosavi-Dezfooli et al. 2016), batched, as cleverhans' ``DeepFool``.

Each step linearises the model at the current point and moves every example still
classified as its original class to the nearest linearised boundary among the top
``nb_candidate`` classes: ``r = (|f_k| + 1e-5) / ||w_k||^2 * w_k`` with ``f_k = z_k - z_0``,
``w_k = grad z_k - grad z_0`` (``0`` the current top class). Steps accumulate in ``r_tot``;
the result is ``clip(x + (1 + overshoot) r_tot)``. Untargeted, L2.

``nb_candidate=1`` (the original ``advtest_others.py``'s setting) leaves no class to move
toward: cleverhans computed ``inf * 0 / 0`` (NaN images) there; here the step is zero and the
input comes back unchanged. Use ``nb_candidate >= 2`` (cleverhans' default is 10).

    x_adv = deepfool(model, x, nb_candidate=10, clip_min=data.clip_min, clip_max=data.clip_max)
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from utils.attacks.core import ModelFn, Tensorish, prepare_batch
from utils.errors import UsageError, check_count

DIV_EPS = 1e-5  # cleverhans' guard against f_k = 0


def _flat_norm(t: tf.Tensor) -> tf.Tensor:
    return tf.norm(tf.reshape(t, [tf.shape(t)[0], -1]), axis=1)


@tf.function(reduce_retracing=True)
def deepfool_step(model_fn: ModelFn, x: tf.Tensor, r_tot: tf.Tensor, original: tf.Tensor,
                  clip_min: tf.Tensor, clip_max: tf.Tensor, nb_candidate: int) -> tuple:
    """One DeepFool step from ``clip(x + r_tot)``: returns ``(r_tot, active)``, ``active``
    ``(batch,)`` bool marking examples still at their original class before the step."""
    adv = tf.clip_by_value(x + r_tot, clip_min, clip_max)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(adv)
        logits = model_fn(adv)
        top = tf.math.top_k(logits, k=nb_candidate)
        picked = [tf.gather(logits, top.indices[:, k], batch_dims=1)
                  for k in range(nb_candidate)]
    grads = [tape.gradient(p, adv) for p in picked]
    del tape
    active = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), original)
    best = tf.fill(tf.shape(original), np.float32(np.inf))
    w = tf.zeros_like(x)
    ones = tf.concat([tf.shape(x)[:1], tf.ones([tf.rank(x) - 1], tf.int32)], 0)
    for k in range(1, nb_candidate):
        w_k = grads[k] - grads[0]
        pert_k = (tf.abs(picked[k] - picked[0]) + DIV_EPS) / tf.maximum(_flat_norm(w_k), 1e-12)
        closer = pert_k < best
        best = tf.where(closer, pert_k, best)
        w = tf.where(tf.reshape(closer, ones), w_k, w)
    scale = tf.where(tf.math.is_finite(best), best / tf.maximum(_flat_norm(w), 1e-12), 0.0)
    step = tf.reshape(scale * tf.cast(active, tf.float32), ones) * w
    return r_tot + step, active


def deepfool(model_fn: ModelFn, x: Tensorish, *, clip_min: Any, clip_max: Any,
             nb_candidate: int = 1, max_iter: int = 10, overshoot: float = 0.02) -> np.ndarray:
    """DeepFool on one batch.

    Args:
        model_fn: ``x -> logits`` ``(batch, L)``.
        x: ``(batch, ...)`` float32 inputs within ``[clip_min, clip_max]`` (model units).
        clip_min, clip_max: scalars or per-pixel ``(H, W, C)`` arrays.
        nb_candidate: top classes compared, ``1 <= nb_candidate <= L`` (1: no step, see
            the module docstring).
        max_iter: steps (>= 1); examples stop once their class changed.
        overshoot: final ``r_tot`` scale ``1 + overshoot`` (>= 0).

    Returns:
        float32 ``x_adv`` like ``x`` within the clip bounds.
    """
    check_count("DeepFool max_iter", max_iter)
    if not math.isfinite(overshoot) or overshoot < 0:
        raise UsageError(f"DeepFool overshoot must be >= 0, got {overshoot}")
    x0 = tf.convert_to_tensor(x, tf.float32)
    logits = model_fn(x0)
    num_classes = int(logits.shape[-1])
    if int(nb_candidate) != nb_candidate or not 1 <= nb_candidate <= num_classes:
        raise UsageError(f"DeepFool nb_candidate must be in [1, {num_classes}], "
                         f"got {nb_candidate}")
    original = tf.argmax(logits, axis=-1, output_type=tf.int32)
    x0, _, _, low, high = prepare_batch(x0, tf.one_hot(original, num_classes), None,
                                        clip_min, clip_max)
    r_tot = tf.zeros_like(x0)
    for _ in range(int(max_iter)):
        r_tot, active = deepfool_step(model_fn, x0, r_tot, original, low, high,
                                      int(nb_candidate))
        if not bool(tf.reduce_any(active)):
            break
    return tf.clip_by_value(x0 + (1.0 + overshoot) * r_tot, low, high).numpy()
