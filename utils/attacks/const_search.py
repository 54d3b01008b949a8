"""Per-example search over the constant ``c`` that weighs distortion against the attack
objective (C&W-L2, EAD and L-BFGS share it, after Carlini's ``l2_attack.py``).

Tensors: ``logits``, ``labels``, ``targets`` ``(batch, L)`` (one-hot); ``success``,
``const``, ``lower``, ``upper`` ``(batch,)``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import tensorflow as tf


def is_adversarial(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor],
                   confidence: float) -> tf.Tensor:
    """C&W's success test with margin ``confidence`` (cleverhans adds it to every logit,
    which leaves the argmax unchanged): bool ``(batch,)``."""
    if targets is None:
        return tf.argmax(logits + confidence * labels, -1) != tf.argmax(labels, -1)
    return tf.argmax(logits - confidence * targets, -1) == tf.argmax(targets, -1)


def update_const(success: tf.Tensor, const: tf.Tensor, lower: tf.Tensor,
                 upper: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One binary-search update of C&W's per-example constant (Carlini's ``l2_attack.py``):
    success lowers the upper bound, failure raises the lower one; bisect once an upper
    bound exists, else multiply by 10. Returns ``(const, lower, upper)``."""
    upper = tf.where(success, tf.minimum(upper, const), upper)
    lower = tf.where(success, lower, tf.maximum(lower, const))
    const = tf.where(upper < 1e9, (lower + upper) / 2.0, const * 10.0)
    return const, lower, upper
