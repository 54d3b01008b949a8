"""Streaming white-box evaluation: clean and adversarial accuracy over a test set.

Batches are attacked one at a time and only counts are kept, so memory stays flat in
the number of examples. Targets are drawn uniformly among the wrong labels, as the
original ``advtest_iterative.py``.

    result = evaluate_attack(model, data.x_test, data.y_test, attack_name="MadryEtAl",
                             objective_name="mmc_un1", eps=8 / 256, eps_iter=2 / 256,
                             num_iter=10, clip_min=data.clip_min, clip_max=data.clip_max,
                             batch_size=50)
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from utils.attacks.core import get_attack
from utils.attacks.iterative import worst_case_over_restarts
from utils.errors import UsageError, check_count
from utils.evaluation.masking_checks import probability_outputs
from utils.evaluation.detection import DetectionAuc
from utils.evaluation.stream import (Accuracy, BatchOutcome, Metric, check_examples,
                                     class_indices, logits_outcome, stream)
from utils.attacks.objectives import OBJECTIVES


def draw_targets(y: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """Targets uniform among the ``num_classes - 1`` wrong labels of each example.

    Args:
        y: ``(N,)`` integer class indices in ``[0, num_classes)``.
        num_classes: ``L >= 2``.
        seed: NumPy seed; the same ``(y, num_classes, seed)`` gives the same targets.

    Returns:
        ``(N,)`` int32 targets with ``targets[i] != y[i]``.
    """
    if int(num_classes) < 2:
        raise UsageError(f"targeted attacks need at least 2 classes, got {num_classes}")
    y = class_indices(y, "y")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise UsageError(f"labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    shift = np.random.default_rng(seed).integers(1, num_classes, size=y.shape)
    return ((y + shift) % num_classes).astype(np.int32)


def _check_logits(logits: np.ndarray) -> None:
    """auto-attack's check (:func:`utils.evaluation.masking_checks.probability_outputs`): an output
    that looks like probabilities hides gradients; warned at run time."""
    for message in probability_outputs(logits):
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _validate(num_restarts: int, targeted: bool, attack_name: str, objective_name: str,
              backend: str) -> None:
    """What :func:`utils.evaluation.stream.check_examples` does not check: the attack,
    the restarts, and that the objective suits a (un)targeted attack."""
    get_attack(attack_name, backend)
    spec = OBJECTIVES.get(objective_name)
    check_count("num_restarts", num_restarts)
    if spec.targeted is not None and spec.targeted != targeted:
        mode = "targeted" if spec.targeted else "untargeted"
        raise UsageError(f"objective {objective_name} is {mode}; "
                         f"{'pass' if spec.targeted else 'drop'} targets or pick another")


def evaluate_attack(model: keras.Model, x: np.ndarray, y: np.ndarray, *, attack_name: str,
                    objective_name: str, eps: float, eps_iter: float, num_iter: int,
                    clip_min: Any, clip_max: Any, batch_size: int,
                    targets: Optional[np.ndarray] = None, num_restarts: int = 1, seed: int = 0,
                    progress: bool = True, eval_model: Optional[keras.Model] = None,
                    score_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                    backend: str = "native", norm: str = "linf") -> Dict[str, Any]:
    """Clean and adversarial accuracy of ``model`` under one attack, batch by batch.

    Args:
        model: ``x -> logits`` ``(batch, L)``.
        x: ``(N, H, W, C)`` float32 inputs in model units (mean-subtracted), within
            ``[clip_min, clip_max]``.
        y: ``(N,)`` integer labels (one-hot ``(N, L)`` is accepted too).
        attack_name: a name in :data:`utils.attacks.iterative.ATTACKS`.
        objective_name: a name in :data:`utils.attacks.objectives.OBJECTIVES` (minimised).
        eps, eps_iter: radius and step in model units in ``norm`` (ε in /256 units is
            converted by the caller: ``eps_256 / 256``; ℓ2 over the whole input).
        num_iter: attack iterations (>= 1).
        clip_min, clip_max: scalars or per-pixel ``(H, W, C)`` arrays.
        batch_size: examples per attacked batch.
        targets: ``(N,)`` target labels for a targeted attack (see :func:`draw_targets`),
            else None.
        num_restarts: random restarts, per-example worst case
            (:func:`utils.attacks.iterative.worst_case_over_restarts`).
        seed: base seed; example ``i``'s draws depend on ``(seed, i)`` only, not on the
            batch (:func:`utils.attacks.core.example_seeds`).
        progress: show a ``keras.utils.Progbar``.
        eval_model: the model that classifies the inputs (black-box transfer: ``model``
            crafts them); default ``model``. Same number of classes.
        score_fn: logits ``(batch, L)`` -> ``(batch,)`` detection score (higher = more
            clean, :data:`utils.evaluation.detection.SCORES`); adds ``auc`` of clean vs adversarial
            by ``eval_model``'s score. Only the 2 x ``N`` scores are kept.
        backend: ``native`` or ``cleverhans`` (:func:`utils.attacks.core.get_attack`).
        norm: threat model, ``linf`` or ``l2``.

    Returns:
        dict with ``n``, ``clean_correct``, ``clean_accuracy``, ``adv_correct``,
        ``adv_accuracy`` (share still classified as the true label) and, for a targeted
        attack, ``target_hits`` and ``target_success`` (share predicted as the target);
        rates are fractions in [0, 1]. Also echoes the attack settings.
    """
    x = np.asarray(x)
    y = class_indices(y, "y")
    num_classes = int(model.output_shape[-1])
    targets = None if targets is None else class_indices(targets, "targets")
    check_examples(x, y, targets, num_classes, batch_size)
    _validate(num_restarts, targets is not None, attack_name, objective_name, backend)
    if eval_model is None:
        eval_model = model
    elif int(eval_model.output_shape[-1]) != num_classes:
        raise UsageError(f"eval_model has {eval_model.output_shape[-1]} classes, the attacked "
                         f"model {num_classes}")
    objective = OBJECTIVES.get(objective_name).fn

    def attack_batch(b: int, part: slice) -> BatchOutcome:
        xb = tf.convert_to_tensor(x[part], dtype=tf.float32)
        tb = None if targets is None else tf.one_hot(targets[part], num_classes)
        clean_logits = eval_model(xb).numpy()
        if b == 0:
            _check_logits(clean_logits)
        x_adv = worst_case_over_restarts(
            attack_name, model, xb, tf.one_hot(y[part], num_classes),
            num_restarts=num_restarts, seed=seed, targets_onehot=tb,
            objective=objective, eps=eps, eps_iter=eps_iter, num_iter=num_iter,
            clip_min=clip_min, clip_max=clip_max, norm=norm, backend=backend,
            example_index=np.arange(part.start, part.stop))
        return logits_outcome(part, y[part], None if targets is None else targets[part],
                              clean_logits, eval_model(x_adv).numpy())

    metrics: List[Metric] = [Accuracy(targeted=targets is not None)]
    if score_fn is not None:
        metrics.append(DetectionAuc(score_fn))
    fields = stream(len(x), batch_size, attack_batch, metrics, progress=progress)
    return dict(attack_name=attack_name, objective_name=objective_name, eps=float(eps),
                eps_iter=float(eps_iter), nb_iter=int(num_iter),  # record key kept
                num_restarts=int(num_restarts), seed=int(seed), attack_backend=backend,
                norm=norm,
                **fields)
