"""JSMA: the Jacobian saliency map attack (Papernot et al. 2016), targeted, increasing
features, batched, in three variants (:data:`VARIANTS`):

- ``"logprob"`` (default): each iteration raises the one feature still in the search
  domain with the largest gradient of the target's log-probability ``log softmax(z)_t``;
  at most ``floor(gamma * F)`` iterations. This is ART's rule (below) on the softmax
  output (``d p_t = p_t d log p_t``: the same ranking) one feature at a time.
- ``"art"``: ART's ``SaliencyMapMethod``: the two features with the largest gradient of the
  model output's target entry (here the target logit ``z_t``); ``floor(gamma * F / 2)``
  iterations.
- ``"cleverhans"``: cleverhans' ``SaliencyMapMethod`` (the original repository's): every
  pair ``(p, q)`` scored by ``-(a_p + a_q)(b_p + b_q)`` with ``a = d z_t / dx`` and
  ``b = d (sum_{j != t} z_j) / dx``, only pairs with ``a_p + a_q > 0`` and
  ``b_p + b_q < 0``; ``floor(gamma * F / 2)`` iterations. When no pair qualifies the
  argmax of all-zero scores is pair ``(0, 0)`` (cleverhans does the same).

A chosen feature is raised by ``theta`` (clipped to ``clip_max``) and leaves the domain;
features already at ``clip_max`` never enter it. Examples stop once predicted as their
target, so at most a ``gamma`` share of the ``F`` features ever changes, and a larger
``gamma`` only extends the same path (success never falls with ``gamma``).

Why ``"cleverhans"`` is weaker than ART (``bench/others_vs_art.py``, tiny Fashion-MNIST CNN,
theta 1, gamma 0.1: 47.3 % vs ART's 62.2 %): not a bug (no iteration ran out of qualifying
pairs there) but the saliency rule. The pair score rewards lowering the *sum* of the other
nine logits as much as raising the target's, and its sign conditions drop pixels that raise
the target a lot but the other logits a little; success needs the target above the
*largest* other logit, which that sum says little about. ART ranks by the target gradient
alone (our ``"art"`` rule: 60.8 %); Papernot's single-feature ``a_p |b_p|`` rule gave 50 %.
The remaining 1.4 points are ART's budget count: it goes on while ``changed / F <= gamma``
after each pair, so it may change ``gamma * F + 2`` features (80 of 784 at gamma 0.1); with
that budget our ``"art"`` reproduces ART exactly. The log-probability saliency weighs every
other class by its probability, so it pushes the target past the classes that compete:
72.9 % at the same budget (gamma 0.02 / 0.05 / 0.2: 21.6 / 56.8 / 83.8 % vs ART's rule at
14.9 / 39.2 / 78.4 %).

``"cleverhans"`` scores ``F^2`` pairs per example: its batches are cut into chunks of at
most :data:`PAIR_BUDGET` scores (3-channel 28x28 images: 6 examples per chunk).

    x_adv = saliency_map(model, x, targets_onehot, clip_min=data.clip_min,
                         clip_max=data.clip_max)                # variant="logprob"
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from utils.attacks.core import ModelFn, Tensorish, attack_succeeded, prepare_batch
from utils.attacks.settings import Rule
from utils.errors import UsageError

PAIR_BUDGET = 2 ** 25  # pairwise scores per chunk of examples (128 MB of float32)


class Variant(NamedTuple):
    """``per_step`` features raised per iteration; ``log_prob``: rank by the target's
    log-probability (else its logit); ``pairs``: cleverhans' pair score."""

    per_step: int
    log_prob: bool = False
    pairs: bool = False


VARIANTS = {"logprob": Variant(1, log_prob=True), "art": Variant(2),
            "cleverhans": Variant(2, pairs=True)}
VARIANT_RULE = Rule(f"must be one of {', '.join(VARIANTS)}", lambda v: v in VARIANTS)


def _pair_sums(v: tf.Tensor) -> tf.Tensor:
    """``(batch, F)`` -> ``(batch, F, F)`` with ``[b, p, q] = v[b, p] + v[b, q]``."""
    return v[:, :, None] + v[:, None, :]


@tf.function(jit_compile=True, reduce_retracing=True)
def best_pair(grad_t: tf.Tensor, grad_o: tf.Tensor, domain: tf.Tensor) -> tf.Tensor:
    """cleverhans' feature pair of highest saliency, ``(batch, 2)`` int32 (XLA fuses the
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
    return tf.stack([best // features, best % features], axis=1)


def top_features(grad: tf.Tensor, domain: tf.Tensor, count: int) -> tf.Tensor:
    """The ``count`` in-domain features of largest ``grad``, ``(batch, count)`` int32
    (an index out of the domain only when fewer than ``count`` are left)."""
    return tf.math.top_k(tf.where(domain > 0, grad, -np.inf), k=count).indices


def _gradients(model_fn: ModelFn, x: tf.Tensor, targets: tf.Tensor, variant: Variant):
    """``(logits, grads)``: ``grads`` the ``(batch, F)`` gradients that rank features
    (``pairs``: the target's and the other logits' sum, else one)."""
    batch = tf.shape(x)[0]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits = model_fn(x)
        scores = tf.nn.log_softmax(logits) if variant.log_prob else logits
        target = tf.reduce_sum(scores * targets, axis=-1)
        total = tf.reduce_sum(logits, axis=-1)
    grad_t = tf.reshape(tape.gradient(target, x), [batch, -1])
    if not variant.pairs:
        return logits, (grad_t,)
    grad_o = tf.reshape(tape.gradient(total, x), [batch, -1]) - grad_t
    return logits, (grad_t, grad_o)


@tf.function(reduce_retracing=True)
def jsma_step(model_fn: ModelFn, x: tf.Tensor, domain: tf.Tensor, targets: tf.Tensor,
              clip_max: tf.Tensor, theta: tf.Tensor, variant: Variant) -> tuple:
    """One iteration: returns ``(x, domain, still_running)`` (``domain`` ``(batch, F)``
    float 0/1; ``still_running`` ``(batch,)`` bool: not yet at the target and at least
    ``variant.per_step`` features left before this step)."""
    features = tf.shape(domain)[1]
    logits, grads = _gradients(model_fn, x, targets, variant)
    chosen = best_pair(*grads, domain) if variant.pairs else \
        top_features(grads[0], domain, variant.per_step)
    running = tf.logical_and(tf.logical_not(attack_succeeded(logits, None, targets)),
                             tf.reduce_sum(domain, axis=1) >= variant.per_step)
    change = tf.reduce_sum(tf.one_hot(chosen, features), axis=1) \
        * tf.cast(running, tf.float32)[:, None]
    x_new = tf.minimum(clip_max, x + theta * tf.reshape(change, tf.shape(x)))
    return x_new, domain - change, running


def saliency_map(model_fn: ModelFn, x: Tensorish, targets_onehot: Tensorish, *,
                 clip_min: Any, clip_max: Any, theta: float = 1.0, gamma: float = 0.1,
                 variant: str = "logprob") -> np.ndarray:
    """Targeted JSMA (increasing features) on one batch.

    Args:
        model_fn: ``x -> logits`` ``(batch, L)``.
        x: ``(batch, ...)`` float32 inputs within ``[clip_min, clip_max]`` (model units).
        targets_onehot: ``(batch, L)`` targets.
        clip_min: scalar or per-pixel ``(H, W, C)`` lower bound.
        clip_max: scalar or per-pixel ``(H, W, C)`` upper bound.
        theta: amount added to each chosen feature (> 0, model units; 1 = full pixel range).
        gamma: largest share of features changed, in (0, 1].
        variant: a :data:`VARIANTS` key (``"cleverhans"``: the original's rule).

    Returns:
        float32 ``x_adv`` like ``x`` within the clip bounds, differing from ``x`` in at
        most ``floor(gamma * F / per_step) * per_step <= gamma * F`` features per example.
    """
    if not math.isfinite(theta) or theta <= 0:
        raise UsageError(f"JSMA theta must be > 0, got {theta}")
    if not math.isfinite(gamma) or not 0 < gamma <= 1:
        raise UsageError(f"JSMA gamma must be in (0, 1], got {gamma}")
    if not VARIANT_RULE.ok(variant):
        raise UsageError(f"JSMA variant {VARIANT_RULE.text}, got {variant!r}")
    if targets_onehot is None:
        raise UsageError("JSMA is a targeted attack; pass targets")
    x0, targets, _, low, high = prepare_batch(x, targets_onehot, None, clip_min, clip_max)
    rule = VARIANTS[variant]
    features = int(np.prod(x0.shape[1:]))
    chunk = max(1, PAIR_BUDGET // features ** 2) if rule.pairs else int(x0.shape[0])
    parts = []
    for start in range(0, int(x0.shape[0]), chunk):
        part = slice(start, start + chunk)
        parts.append(_attack_chunk(model_fn, rule, x0[part], targets[part],
                                   low if low.shape[0] == 1 else low[part],
                                   high if high.shape[0] == 1 else high[part], theta,
                                   int(math.floor(features * gamma / rule.per_step))))
    return np.concatenate(parts, axis=0)


def _attack_chunk(model_fn: ModelFn, rule: Variant, x0: tf.Tensor, targets: tf.Tensor,
                  low: tf.Tensor, high: tf.Tensor, theta: float, max_iters: int) -> np.ndarray:
    domain = tf.reshape(tf.cast(x0 < high, tf.float32), [x0.shape[0], -1])
    adv = x0
    for _ in range(max_iters):
        adv, domain, running = jsma_step(model_fn, adv, domain, targets, high,
                                         tf.constant(theta, tf.float32), rule)
        if not bool(tf.reduce_any(running)):
            break
    return tf.clip_by_value(adv, low, high).numpy()
