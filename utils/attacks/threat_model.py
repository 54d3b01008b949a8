"""Threat models: the ℓ∞ and ℓ2 ε-balls as the gradient attacks use them.

One place for what every attack does with a norm: the steepest-ascent ``direction`` of
unit length, the ``project``-ion onto the ε-ball around ``x`` and into the clip box, the
``random_start`` of AutoAttack (noise rescaled to length ε) and its ``start_noise``, and
the per-sample helpers (``per_sample`` broadcasting, ``l2_norm``). Tensors are
``(batch, ...)`` float32 in model input units; ``eps`` is in the same units.
APGD, FAB-T and Square use these; the ℓ∞ iterative attacks (FGSM/BIM/PGD/MIM) use
:func:`utils.attacks.iterative.project_linf`, the ℓ∞ case of :func:`project` on ``delta``.
"""
from __future__ import annotations

from typing import Tuple

import tensorflow as tf

from utils.attacks.iterative import Seed, seed_tensor
from utils.errors import UsageError

NORMS = ("linf", "l2")
DIV_EPS = 1e-12  # keeps ℓ2 normalisations finite


def check_norm(norm: str) -> str:
    """``norm`` if it is one of :data:`NORMS`, else UsageError."""
    if norm not in NORMS:
        raise UsageError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")
    return norm


def per_sample(v: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """``(batch,)`` -> ``(batch, 1, ..., 1)`` broadcastable to ``like``."""
    return tf.reshape(v, tf.concat([tf.shape(v), tf.ones([tf.rank(like) - 1], tf.int32)], 0))


def l2_norm(t: tf.Tensor) -> tf.Tensor:
    """Per-sample ℓ2 norm, ``(batch, 1, ..., 1)``."""
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=tf.range(1, tf.rank(t)), keepdims=True))


def direction(grad: tf.Tensor, norm: str) -> tf.Tensor:
    """Steepest ascent direction of unit ``norm``-length for ``grad``."""
    if norm == "linf":
        return tf.sign(grad)
    return grad / (l2_norm(grad) + DIV_EPS)


def project(x_adv: tf.Tensor, x: tf.Tensor, eps: tf.Tensor, norm: str, clip_min: tf.Tensor,
            clip_max: tf.Tensor) -> tf.Tensor:
    """Onto the ``norm`` ε-ball around ``x``, then into ``[clip_min, clip_max]``. Exact
    for ℓ∞; for ℓ2 (AutoAttack's order) the box clip only shrinks ``|delta|``
    coordinate-wise, so the result stays in the ball."""
    delta = x_adv - x
    if norm == "linf":
        delta = tf.clip_by_value(delta, -eps, eps)
    else:
        delta = delta * tf.minimum(1.0, eps / (l2_norm(delta) + DIV_EPS))
    return tf.clip_by_value(x + delta, clip_min, clip_max)


def random_start(x: tf.Tensor, noise: tf.Tensor, eps: tf.Tensor, norm: str,
                 clip_min: tf.Tensor, clip_max: tf.Tensor) -> tf.Tensor:
    """AutoAttack's random start: ``noise`` scaled to ℓ∞ (or ℓ2) length ``eps``."""
    if norm == "linf":
        axes = tf.range(1, tf.rank(noise))
        scale = tf.reduce_max(tf.abs(noise), axis=axes, keepdims=True) + DIV_EPS
    else:
        scale = l2_norm(noise) + DIV_EPS
    return project(x + eps * noise / scale, x, eps, norm, clip_min, clip_max)


def start_noise(shape: Tuple[int, ...], seed: Seed, norm: str) -> tf.Tensor:
    """Random-start noise for ``shape``: uniform in [-1, 1] (ℓ∞) or standard normal
    (ℓ2), from a stateless seed; ``random_start`` rescales it to length ``eps``."""
    check_norm(norm)
    seed_t = seed_tensor(seed)
    if norm == "linf":
        return tf.random.stateless_uniform(shape, seed_t, -1.0, 1.0)
    return tf.random.stateless_normal(shape, seed_t)
