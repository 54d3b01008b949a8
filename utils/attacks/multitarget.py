"""Untargeted attacks built from targeted runs toward the top-k wrong classes.

For each of the ``k`` wrong classes with the largest clean logits (most likely first) a
targeted attack runs on the examples no earlier target has misclassified, and each
example keeps its worst case. Two such attacks:

* APGD-T (Croce & Hein 2020): targeted APGD with ``dlr_targeted`` (or an adaptive
  targeted objective such as ``mmc_tar1``), ``k = 9`` by default;
* MultiTargeted PGD (Gowal et al. 2019): targeted PGD with the ``margin`` objective.

Success means misclassified (``argmax != y``), not "reached the target": these are
untargeted attacks. ``eps`` is in model input units (``eps_256 / 256``).

    x_adv = apgd_targeted(model, x, y_onehot, eps=8 / 256, clip_min=data.clip_min,
                          clip_max=data.clip_max, num_iter=100, seed=0)
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from utils.attacks.apgd import apgd_run
from utils.attacks.core import (AttackSpec, ModelFn, Seed, Tensorish, attack_succeeded,
                                example_indices, fixed_seed, register_spec)
from utils.attacks.iterative import gradient_step, run_iterative
from utils.attacks.threat_model import check_norm
from utils.errors import UsageError, check_count
from utils.attacks.objectives import OBJECTIVES, Objective

DEFAULT_TARGET_CLASSES = 9  # AutoAttack's APGD-T default
# run_target(idx (m,) int64 into the batch, targets_onehot (m, L), rank) -> x_adv (m, ...)
TargetRun = Callable[[np.ndarray, tf.Tensor, int], tf.Tensor]


def check_target_classes(n_target_classes: int, num_classes: int) -> int:
    """``n_target_classes`` capped at ``L - 1``; UsageError below 1."""
    check_count("n_target_classes", n_target_classes)
    if num_classes < 2:
        raise UsageError(f"targeted sweeps need at least 2 classes, got {num_classes}")
    return min(int(n_target_classes), int(num_classes) - 1)


def top_k_targets(logits: Tensorish, labels_onehot: Tensorish, k: int) -> np.ndarray:
    """``(k, B)`` int64: per example the ``k`` wrong classes by decreasing logit."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    masked = tf.where(tf.convert_to_tensor(labels_onehot, tf.float32) > 0.5,
                      tf.fill(tf.shape(logits), -np.inf), logits)
    return tf.math.top_k(masked, k=k).indices.numpy().T.astype(np.int64)


def worst_case_over_targets(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish,
                            n_target_classes: int, run_target: TargetRun) -> tf.Tensor:
    """Sweep the top-k targets, attacking only examples not yet misclassified.

    Args:
        model_fn: ``x -> logits`` ``(B, L)`` (also ranks the targets on the clean ``x``).
        x: ``(B, ...)`` float32 inputs; labels_onehot: ``(B, L)``.
        n_target_classes: ``k``, capped at ``L - 1``.
        run_target: one targeted attack of a subset (see :data:`TargetRun`).

    Returns:
        ``(B, ...)`` float32: the first misclassified result per example, else the last
        target's result (``x`` itself where the clean input is already misclassified).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    labels = tf.convert_to_tensor(labels_onehot, tf.float32)
    num_classes = int(labels.shape[-1])
    k = check_target_classes(n_target_classes, num_classes)
    logits = model_fn(x)
    targets = top_k_targets(logits, labels, k)
    x_adv = x.numpy().copy()
    fooled = attack_succeeded(logits, labels).numpy()
    for rank in range(k):
        idx = np.flatnonzero(~fooled)
        if idx.size == 0:
            break
        adv = np.asarray(run_target(idx, tf.one_hot(targets[rank, idx], num_classes), rank))
        x_adv[idx] = adv
        fooled[idx] |= attack_succeeded(model_fn(tf.constant(adv)),
                                        tf.gather(labels, idx)).numpy()
    return tf.constant(x_adv)


def subset_clip(clip: Any, idx: np.ndarray, x_shape: Tuple[int, ...]) -> Any:
    """A clip bound for the subset ``idx`` of a batch of shape ``x_shape``: per-example
    ``(B, ...)`` arrays are gathered; scalars and per-pixel ``(H, W, C)`` arrays (even
    with ``H == B``) pass unchanged."""
    arr = np.asarray(clip)
    if arr.ndim == len(x_shape) and arr.shape[0] == x_shape[0] and x_shape[0] > 1:
        return arr[idx]
    return clip


def apgd_targeted(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *, eps: float,
                  clip_min: Any, clip_max: Any, num_iter: int = 100, norm: str = "linf",
                  objective: Optional[Objective] = None,
                  n_target_classes: int = DEFAULT_TARGET_CLASSES, seed: Seed = None,
                  example_index: Optional[Tensorish] = None) -> tf.Tensor:
    """APGD-T: targeted APGD (``num_iter`` steps per target) toward each top-k class.

    ``objective`` must be targeted (default ``dlr_targeted``; ``mmc_tar1`` on MMC
    models). Target rank ``r`` of example ``i`` starts from the seed of ``(seed, i,
    restart=r)`` (:func:`utils.attacks.core.example_seeds`): it never depends on which
    others are still robust or on the batch. Other arguments as
    :func:`utils.attacks.apgd.apgd_run`. Returns ``x_adv`` ``(B, ...)``.
    """
    check_norm(norm)
    x = tf.convert_to_tensor(x, tf.float32)
    labels = tf.convert_to_tensor(labels_onehot, tf.float32)
    objective = objective or OBJECTIVES.get("dlr_targeted").fn
    seed, index = fixed_seed(seed), example_indices(example_index, int(x.shape[0]))
    shape = tuple(x.shape)

    def run_target(idx: np.ndarray, targets: tf.Tensor, rank: int) -> tf.Tensor:
        return apgd_run(model_fn, tf.gather(x, idx), tf.gather(labels, idx),
                        objective=objective, eps=eps, clip_min=subset_clip(clip_min, idx, shape),
                        clip_max=subset_clip(clip_max, idx, shape), num_iter=num_iter, norm=norm,
                        targets_onehot=targets, seed=seed, example_index=tf.gather(index, idx),
                        restart=rank).x_adv

    return worst_case_over_targets(model_fn, x, labels, n_target_classes, run_target)


def multi_targeted_pgd(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
                       eps: float, eps_iter: float, num_iter: int, clip_min: Any, clip_max: Any,
                       objective: Optional[Objective] = None, norm: str = "linf",
                       n_target_classes: int = DEFAULT_TARGET_CLASSES, seed: Seed = None,
                       rand_init: bool = True,
                       example_index: Optional[Tensorish] = None) -> tf.Tensor:
    """MultiTargeted: PGD (:func:`utils.attacks.iterative.run_iterative`, steps of
    ``eps_iter`` in ``norm``, ``num_iter`` per target, random start) toward each top-k
    class with the targeted ``margin`` objective ``max_{i!=t} z_i - z_t`` (or
    ``objective``); rank ``r`` is restart ``r`` of each example's seed (as
    :func:`apgd_targeted`). Returns ``x_adv`` ``(B, ...)``."""
    x = tf.convert_to_tensor(x, tf.float32)
    labels = tf.convert_to_tensor(labels_onehot, tf.float32)
    objective = objective or OBJECTIVES.get("margin").fn
    seed, index = fixed_seed(seed), example_indices(example_index, int(x.shape[0]))
    shape = tuple(x.shape)

    def run_target(idx: np.ndarray, targets: tf.Tensor, rank: int) -> tf.Tensor:
        return run_iterative(model_fn, tf.gather(x, idx), tf.gather(labels, idx),
                             objective=objective, step=gradient_step, eps=eps,
                             eps_iter=eps_iter, num_iter=num_iter, norm=norm,
                             clip_min=subset_clip(clip_min, idx, shape),
                             clip_max=subset_clip(clip_max, idx, shape), targets_onehot=targets,
                             rand_init=rand_init, seed=seed,
                             example_index=tf.gather(index, idx), restart=rank)

    return worst_case_over_targets(model_fn, x, labels, n_target_classes, run_target)


register_spec(AttackSpec("APGD-T", random_start=True, targeted=False,
                         objective_family="dlr_targeted",
                         offered_by=frozenset({"ensemble member"})))
register_spec(AttackSpec("MultiTargeted", gradient_step, random_start=True, targeted=False,
                         objective_family="margin", offered_by=frozenset({"ensemble member"})))
