"""FAB-T: targeted Fast Adaptive Boundary attack (Croce & Hein 2020), ℓ∞ and ℓ2.

A minimum-norm attack. Each step linearises the decision boundary between the true
class ``y`` and the target ``t`` at the iterate ``x_k`` (``z_y - z_t`` and its gradient),
projects both ``x_k`` and the original ``x_0`` onto that hyperplane intersected with the
box ``[clip_min, clip_max]`` (giving ``d_1``, ``d_2``) and moves to

    x_{k+1} = clip((x_k + eta d_1)(1 - a) + (x_0 + eta d_2) a),
    a = min(|d_1| / (|d_1| + |d_2|), alpha_max),

``| |`` the attacked norm. Once ``x_{k+1}`` is misclassified it is recorded if it is the
closest so far and the iterate is pulled back, ``x_0 + beta (x_{k+1} - x_0)``.
AutoAttack's standard settings: 100 iterations, ``alpha_max 0.1``, ``eta 1.05``,
``beta 0.9``, one run without random start, the 9 top wrong classes as targets.

Box-constrained hyperplane projection (:func:`box_projection`): the minimal-norm ``d``
with ``w . d = r`` and ``lo <= p + d <= hi`` is ``d(lam) = clip(lam v, lo - p, hi - p)``
with ``v = sign(w)`` (ℓ∞) or ``v = w`` (ℓ2), ``lam >= 0`` (after orienting ``w`` so that
``r >= 0``) the smallest value with ``w . d(lam) >= r``. ``w . d(lam)`` is continuous,
piecewise linear and non-decreasing in ``lam``, so we find ``lam`` by bisection
(:data:`BISECTION_STEPS` halvings of ``[0, lam_max]``, then one linear interpolation
inside the final bracket) instead of AutoAttack's sort-based exact solver. Where the
hyperplane does not meet the box, ``lam = lam_max``: the box corner nearest to it.

FAB-T's success is being misclassified (not reaching ``t``); as in AutoAttack an
example counts as broken at radius ``eps`` only if the distance found is ``<= eps``.

    res = fab_run(model, x, y_onehot, t_onehot, clip_min=data.clip_min,
                  clip_max=data.clip_max, norm="linf")     # res.distance: (B,)
    x_adv = fab_targeted(model, x, y_onehot, eps=8 / 256, clip_min=..., clip_max=...)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Tuple

import numpy as np
import tensorflow as tf

from utils.attacks.core import (AttackSpec, ModelFn, Tensorish, attack_succeeded,
                                prepare_inputs, register_spec)
from utils.attacks.threat_model import check_norm, per_sample, threat_model
from utils.attacks.multitarget import (DEFAULT_TARGET_CLASSES, subset_clip,
                                       worst_case_over_targets)
from utils.errors import UsageError, check_count

N_ITER = 100
ALPHA_MAX = 0.1
ETA = 1.05
BETA = 0.9
BISECTION_STEPS = 40
_TINY = 1e-12


def distance(delta: tf.Tensor, norm: str) -> tf.Tensor:
    """Per-example ``norm`` of ``delta`` ``(B, ...)`` -> ``(B,)`` (the threat model's)."""
    return tf.reshape(threat_model(norm).size(delta), [-1])


def box_projection(p: tf.Tensor, w: tf.Tensor, r: tf.Tensor, low: tf.Tensor, high: tf.Tensor,
                   norm: str, steps: int = BISECTION_STEPS) -> tf.Tensor:
    """Minimal-``norm`` ``d`` ``(n, D)`` with ``w . d = r`` and ``low <= p + d <= high``
    (see the module docstring); ``p``, ``w``, ``low``, ``high`` ``(n, D)``, ``r`` ``(n,)``,
    ``p`` inside the box. Where no such ``d`` exists, the box point closest to it."""
    flip = tf.where(r >= 0, 1.0, -1.0)[:, None]
    w, r = w * flip, tf.abs(r)
    v = tf.sign(w) if norm == "linf" else w
    below, above = low - p, high - p
    reach = tf.maximum(-below, above) / tf.maximum(tf.abs(v), _TINY)
    lam_max = tf.reduce_max(tf.where(tf.equal(v, 0.0), 0.0, reach), axis=1)

    def gain(lam: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(w * tf.clip_by_value(lam[:, None] * v, below, above), axis=1)

    lo, hi = tf.zeros_like(lam_max), lam_max
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        enough = gain(mid) >= r
        lo, hi = tf.where(enough, lo, mid), tf.where(enough, mid, hi)
    g_lo, g_hi = gain(lo), gain(hi)
    lam = tf.where(g_hi > g_lo, lo + (r - g_lo) * (hi - lo) / (g_hi - g_lo + _TINY), hi)
    lam = tf.clip_by_value(lam, lo, hi)
    return tf.clip_by_value(lam[:, None] * v, below, above)


def _linearise(model_fn: ModelFn, x1: tf.Tensor, labels: tf.Tensor,
               targets: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """``z_y - z_t`` ``(B,)`` at ``x1`` and its gradient ``(B, D)``."""
    with tf.GradientTape() as tape:
        tape.watch(x1)
        logits = tf.cast(model_fn(x1), tf.float32)
        diff = tf.reduce_sum(logits * (labels - targets), axis=-1)
        total = tf.reduce_sum(diff)
    grad = tape.gradient(total, x1)
    return diff, tf.reshape(grad, [tf.shape(x1)[0], -1])


def _fab_step(model_fn: ModelFn, norm: str, x0: tf.Tensor, x1: tf.Tensor, labels: tf.Tensor,
              targets: tf.Tensor, low: tf.Tensor, high: tf.Tensor,
              hyper: Tuple[float, float]) -> tf.Tensor:
    """One FAB move from ``x1`` (unclipped by success); ``hyper = (alpha_max, eta)``."""
    alpha_max, eta = hyper
    batch = tf.shape(x0)[0]
    diff, w = _linearise(model_fn, x1, labels, targets)
    p1, p0 = tf.reshape(x1, [batch, -1]), tf.reshape(x0, [batch, -1])
    offset = tf.reduce_sum(w * p1, axis=1) - diff  # the hyperplane is w . x = offset
    both = tf.concat([p1, p0], 0)
    d = box_projection(both, tf.concat([w, w], 0),
                       tf.concat([offset, offset], 0) - tf.reduce_sum(tf.tile(w, [2, 1]) * both, 1),
                       tf.tile(tf.reshape(low, [batch, -1]), [2, 1]),
                       tf.tile(tf.reshape(high, [batch, -1]), [2, 1]), norm)
    size = tf.maximum(distance(d, norm), 1e-8)
    a1, a2 = size[:batch], size[batch:]
    alpha = tf.clip_by_value(a1 / (a1 + a2), 0.0, alpha_max)[:, None]
    moved = (p1 + eta * d[:batch]) * (1.0 - alpha) + (p0 + eta * d[batch:]) * alpha
    return tf.clip_by_value(tf.reshape(moved, tf.shape(x0)), low, high)


@tf.function(reduce_retracing=True)
def fab_graph(model_fn: ModelFn, norm: str, x: tf.Tensor, labels: tf.Tensor,
              targets: tf.Tensor, low: tf.Tensor, high: tf.Tensor, num_iter: tf.Tensor,
              alpha_max: tf.Tensor, eta: tf.Tensor, beta: tf.Tensor) -> Tuple[tf.Tensor, ...]:
    """``num_iter`` FAB-T steps of a batch (``low``/``high`` broadcast to ``x``). Returns
    ``(x_best, distance_best)``: the closest misclassified iterate (``x`` and ``inf``
    where none was found)."""
    inf = tf.fill([tf.shape(x)[0]], np.inf)

    def body(i, x1, best, dist_best):
        x1 = _fab_step(model_fn, norm, x, x1, labels, targets, low, high, (alpha_max, eta))
        adv = attack_succeeded(model_fn(x1), labels)
        dist = distance(x1 - x, norm)
        better = tf.logical_and(adv, dist < dist_best)
        best = tf.where(per_sample(better, x), x1, best)
        dist_best = tf.where(better, dist, dist_best)
        x1 = tf.where(per_sample(adv, x), x + (x1 - x) * beta, x1)
        return i + 1, x1, best, dist_best

    _, _, best, dist_best = tf.while_loop(lambda i, *_: i < num_iter, body,
                                          (tf.constant(0), x, x, inf))
    return best, dist_best


@dataclasses.dataclass(frozen=True)
class FABResult:
    """``x_adv`` ``(B, ...)`` the closest misclassified point found (else ``x``);
    ``success`` ``(B,)`` bool; ``distance`` ``(B,)`` its ``norm`` distance to ``x``
    (``inf`` where none was found), model units."""

    x_adv: tf.Tensor
    success: tf.Tensor
    distance: tf.Tensor


def check_fab(num_iter: int, alpha_max: float, eta: float, beta: float) -> None:
    check_count("FAB n_iter", num_iter)  # names the --fab_n_iter flag
    if not (0.0 <= alpha_max <= 1.0 and eta >= 1.0 and 0.0 < beta < 1.0):
        raise UsageError(f"FAB needs 0 <= alpha_max <= 1, eta >= 1, 0 < beta < 1; got "
                         f"{alpha_max}, {eta}, {beta}")


def fab_run(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish,
            targets_onehot: Tensorish, *, clip_min: Any, clip_max: Any, num_iter: int = N_ITER,
            norm: str = "linf", alpha_max: float = ALPHA_MAX, eta: float = ETA,
            beta: float = BETA) -> FABResult:
    """One FAB run toward ``targets_onehot`` ``(B, L)`` (see the module docstring).

    Args:
        model_fn: ``x -> logits`` ``(B, L)``, differentiable.
        x: ``(B, ...)`` float32 in model units within the clips; labels_onehot ``(B, L)``.
        clip_min: lower input bound: a scalar, per-pixel ``(H, W, C)`` or per-example array.
        clip_max: upper input bound, as ``clip_min``.
        num_iter: FAB's steps (AutoAttack's hyper-parameters by default, as the next three).
        alpha_max: FAB's hyper-parameter ``alpha_max``.
        eta: FAB's hyper-parameter ``eta``.
        beta: FAB's hyper-parameter ``beta``.
        norm: ``"linf"`` or ``"l2"``.

    Returns:
        :class:`FABResult`. Examples misclassified at ``x`` get distance 0.
    """
    check_norm(norm)
    check_fab(num_iter, alpha_max, eta, beta)
    x, labels, targets, _, _, _, low, high = prepare_inputs(
        x, labels_onehot, targets_onehot, 0.0, 1.0, num_iter, clip_min, clip_max)
    if targets is None:
        raise UsageError("FAB-T needs targets_onehot")
    shape = tuple(x.shape)
    best, dist = fab_graph(model_fn, norm, x, labels, targets, tf.broadcast_to(low, shape),
                           tf.broadcast_to(high, shape), tf.constant(int(num_iter)),
                           tf.constant(alpha_max, tf.float32), tf.constant(eta, tf.float32),
                           tf.constant(beta, tf.float32))
    clean_wrong = attack_succeeded(model_fn(x), labels)
    dist = tf.where(clean_wrong, 0.0, dist)
    best = tf.where(per_sample(clean_wrong, x), x, best)
    return FABResult(best, tf.math.is_finite(dist), dist)


def fab_targeted(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *, eps: float,
                 clip_min: Any, clip_max: Any, num_iter: int = N_ITER, norm: str = "linf",
                 n_target_classes: int = DEFAULT_TARGET_CLASSES, **hyper: float) -> tf.Tensor:
    """FAB-T at radius ``eps``: :func:`fab_run` toward each of the top
    ``n_target_classes`` wrong classes, on the examples no earlier target broke within
    ``eps``; a run's point counts only if its distance is ``<= eps`` (else ``x`` is kept).
    ``hyper``: alpha_max, eta, beta. Returns ``x_adv`` ``(B, ...)``, within ``eps``."""
    x = tf.convert_to_tensor(x, tf.float32)
    labels = tf.convert_to_tensor(labels_onehot, tf.float32)
    shape = tuple(x.shape)

    def run_target(idx: np.ndarray, targets: tf.Tensor, rank: int) -> tf.Tensor:
        sub = tf.gather(x, idx)
        res = fab_run(model_fn, sub, tf.gather(labels, idx), targets,
                      clip_min=subset_clip(clip_min, idx, shape),
                      clip_max=subset_clip(clip_max, idx, shape), num_iter=num_iter, norm=norm,
                      **hyper)
        return tf.where(per_sample(res.distance <= eps, sub), res.x_adv, sub)

    return worst_case_over_targets(model_fn, x, labels, n_target_classes, run_target)


register_spec(AttackSpec("FAB-T", targeted=False, objective_family="margin",
                         offered_by=frozenset({"ensemble member"})))
