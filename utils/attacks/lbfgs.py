"""L-BFGS (Szegedy et al. 2014), targeted, as cleverhans' ``LBFGS``.

Minimises ``c * objective(x', y, t) + ||x' - x||_2^2`` over the per-pixel box with
``scipy.optimize.minimize(method="L-BFGS-B")`` (at most ``max_iterations`` iterations),
value and gradient from one compiled TF function; ``binary_search_steps`` rounds adjust
``c`` per example (:func:`utils.attacks.const_search.update_const`) and the
successful result of least L2 is kept. The objective is a registered targeted one
(``ce``: cleverhans' cross-entropy to the target; ``mmc_tar1`` on MMC heads). Each example
is its own L-BFGS problem (the original ran batch size 1), so results do not depend on
the batch.

    x_adv = lbfgs(model, x, labels_onehot, targets_onehot, objective=OBJECTIVES.get("ce").fn,
                  clip_min=data.clip_min, clip_max=data.clip_max)
"""
from __future__ import annotations

import math
from typing import Any, Callable, Tuple

import numpy as np
import scipy.optimize
import tensorflow as tf

from utils.attacks.const_search import update_const
from utils.attacks.core import ModelFn, Tensorish, attack_succeeded, prepare_batch
from utils.attacks.objectives import Objective
from utils.errors import UsageError, check_count


@tf.function(reduce_retracing=True)
def lbfgs_value_and_grad(model_fn: ModelFn, objective: Objective, x_adv: tf.Tensor,
                         x0: tf.Tensor, labels: tf.Tensor, targets: tf.Tensor,
                         const: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """``sum(c * objective) + ||x_adv - x0||^2`` (scalar) and its gradient in ``x_adv``."""
    with tf.GradientTape() as tape:
        tape.watch(x_adv)
        value = objective(model_fn(x_adv), labels, targets=targets)
        loss = tf.reduce_sum(const * tf.cast(value, tf.float32)) \
            + tf.reduce_sum(tf.square(x_adv - x0))
    return loss, tape.gradient(loss, x_adv)


def _scipy_fn(model_fn: ModelFn, objective: Objective, x0: tf.Tensor, labels: tf.Tensor,
              targets: tf.Tensor, const: float) -> Callable[[np.ndarray], tuple]:
    c = tf.constant([const], tf.float32)

    def fn(flat: np.ndarray) -> tuple:
        point = tf.constant(flat.reshape(x0.shape), tf.float32)
        loss, grad = lbfgs_value_and_grad(model_fn, objective, point, x0, labels, targets, c)
        return float(loss), grad.numpy().ravel().astype(np.float64)
    return fn


def _solve(model_fn: ModelFn, objective: Objective, x0: tf.Tensor, labels: tf.Tensor,
           targets: tf.Tensor, low: np.ndarray, high: np.ndarray, const: float,
           max_iterations: int) -> np.ndarray:
    """One L-BFGS-B run for one example (``x0`` ``(1, ...)``); returns ``x_adv`` ``(1, ...)``."""
    start = x0.numpy().ravel().astype(np.float64)
    bounds = list(zip(low.ravel().astype(np.float64), high.ravel().astype(np.float64)))
    out = scipy.optimize.minimize(_scipy_fn(model_fn, objective, x0, labels, targets, const),
                                  start, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options=dict(maxiter=int(max_iterations)))
    return np.clip(out.x, low.ravel(), high.ravel()).reshape(x0.shape).astype(np.float32)


def lbfgs(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish,
          targets_onehot: Tensorish, *, objective: Objective, clip_min: Any, clip_max: Any,
          binary_search_steps: int = 1, max_iterations: int = 100,
          initial_const: float = 1.0) -> np.ndarray:
    """Targeted L-BFGS on one batch (defaults: the original ``advtest_others.py``'s).

    Args:
        model_fn: ``x -> logits`` ``(batch, L)``.
        x: ``(batch, ...)`` float32 inputs within ``[clip_min, clip_max]`` (model units).
        labels_onehot, targets_onehot: ``(batch, L)`` true labels and targets.
        objective: registered targeted objective (``ce``, ``mmc_tar1``), minimised.
        clip_min, clip_max: scalars or per-pixel ``(H, W, C)`` arrays.
        binary_search_steps, max_iterations: >= 1; initial_const > 0.

    Returns:
        float32 ``x_adv`` like ``x``: the least-L2 example that hit its target, else ``x``.
    """
    if targets_onehot is None:
        raise UsageError("L-BFGS is a targeted attack; pass targets")
    for name, value in (("binary_search_steps", binary_search_steps),
                        ("max_iterations", max_iterations)):
        check_count(f"L-BFGS {name}", value)
    if not math.isfinite(initial_const) or initial_const <= 0:
        raise UsageError(f"L-BFGS initial_const must be > 0, got {initial_const}")
    x0, labels, targets, low, high = prepare_batch(x, labels_onehot, targets_onehot,
                                                   clip_min, clip_max)
    best = x0.numpy().copy()
    for i in range(int(x0.shape[0])):
        low_i = np.broadcast_to(low.numpy()[min(i, low.shape[0] - 1)], x0.shape[1:])
        high_i = np.broadcast_to(high.numpy()[min(i, high.shape[0] - 1)], x0.shape[1:])
        one = (x0[i:i + 1], labels[i:i + 1], targets[i:i + 1])
        const, lower, upper = tf.constant([float(initial_const)]), tf.zeros(1), tf.fill([1], 1e10)
        best_l2 = np.inf
        for _ in range(int(binary_search_steps)):
            adv = _solve(model_fn, objective, *one, low_i, high_i, float(const[0]),
                         max_iterations)
            hit = attack_succeeded(model_fn(adv), one[1], one[2])
            l2 = float(np.sum(np.square(adv - x0[i:i + 1].numpy())))
            if bool(hit[0]) and l2 < best_l2:
                best[i], best_l2 = adv[0], l2
            const, lower, upper = update_const(hit, const, lower, upper)
    return best
