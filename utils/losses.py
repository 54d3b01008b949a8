"""Training losses, registered by name, and the head each one trains.

Every loss has the contract ``loss_fn(y_true, y_pred) -> per-example loss`` with
``y_true`` one-hot ``(batch, num_classes)`` and ``y_pred`` the model's logits
``(batch, num_classes)`` (float32); the training loop averages over the global batch.

    spec = LOSSES.get("mmc")             # head "mmc", loss ||z - mu_y||^2
    per_example = spec.loss_fn(y_onehot, logits)
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf

from utils.registry import Registry

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """A registered training loss.

    Attributes:
        name: registry name (``sce``, ``mmc``, ``mmlda``, ...).
        head: the output head it trains (``dense``: ``Wz + b`` logits; ``mmc``:
            ``-||z - mu_l||^2`` logits to fixed centers).
        loss_fn: per-example loss, see the module docstring.
        description: one line for ``--help`` and records.
    """

    name: str
    head: str
    loss_fn: LossFn
    description: str


LOSSES: Registry[LossSpec] = Registry("loss")


def register_loss(name: str, *, head: str, description: str) -> Callable[[LossFn], LossFn]:
    """Decorator: register ``fn`` as the loss ``name`` trained on ``head``."""

    def decorator(fn: LossFn) -> LossFn:
        LOSSES.register(name)(LossSpec(name, head, fn, description))
        return fn

    return decorator


@register_loss("sce", head="dense", description="softmax cross-entropy on Wz+b (baseline)")
def sce_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy, ``-log softmax(logits)_y``; shape ``(batch,)``."""
    return tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.cast(y_true, tf.float32), logits=tf.cast(logits, tf.float32)
    )


@register_loss("mmc", head="mmc", description="Max-Mahalanobis center loss ||z - mu_y||^2")
def mmc_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The original's ``dot_loss``: ``-sum_l y_l h_l = ||z - mu_y||^2`` on MMC logits.

    The paper writes half of it; the original code (and we) train on the full squared
    distance. Shape ``(batch,)``; zero exactly when ``z = mu_y``.
    """
    return -tf.reduce_sum(tf.cast(y_true, tf.float32) * tf.cast(logits, tf.float32), axis=-1)


@register_loss("mmlda", head="mmc", description="softmax cross-entropy on the MMC logits")
def mmlda_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy on ``h_l = -||z - mu_l||^2`` (``use_ball=False``)."""
    return sce_loss(y_true, logits)


def loss_name_from_flags(use_MMLDA: bool, use_ball: bool) -> str:
    """The loss the original's flags select: SCE, MMC (ball) or MMLDA (softmax)."""
    if not use_MMLDA:
        return "sce"
    return "mmc" if use_ball else "mmlda"
