"""Streaming white-box evaluation: clean and adversarial accuracy over a test set.

Batches are attacked one at a time and only counts are kept, so memory stays flat in
the number of examples. Targets are drawn uniformly among the wrong labels, as the
original ``advtest_iterative.py``.

    result = evaluate_attack(model, data.x_test, data.y_test, attack_name="MadryEtAl",
                             objective_name="mmc_un1", eps=8 / 256, eps_iter=2 / 256,
                             nb_iter=10, clip_min=data.clip_min, clip_max=data.clip_max,
                             batch_size=50)
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from utils.attacks.iterative import get_attack, worst_case_over_restarts
from utils.errors import UsageError
from utils.evaluation.masking_checks import probability_outputs
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
    y = _class_indices(y, "y")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise UsageError(f"labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    shift = np.random.default_rng(seed).integers(1, num_classes, size=y.shape)
    return ((y + shift) % num_classes).astype(np.int32)


def _class_indices(y: Any, name: str) -> np.ndarray:
    """``(N,)`` int64 class indices from indices or one-hot rows."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(axis=-1)
    if y.ndim != 1:
        raise UsageError(f"{name} must be class indices (N,) or one-hot (N, L), got {y.shape}")
    return y.astype(np.int64)


def _check_logits(logits: np.ndarray) -> None:
    """auto-attack's check (:func:`utils.evaluation.masking_checks.probability_outputs`): an output
    that looks like probabilities hides gradients; warned at run time."""
    for message in probability_outputs(logits):
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _validate(x: np.ndarray, y: np.ndarray, targets: Optional[np.ndarray], num_classes: int,
              batch_size: int, num_restarts: int, attack_name: str,
              objective_name: str, backend: str) -> None:
    get_attack(attack_name, backend)
    spec = OBJECTIVES.get(objective_name)
    if len(x) != len(y) or len(x) == 0:
        raise UsageError(f"need as many labels as images (> 0), got {len(x)} images and "
                         f"{len(y)} labels")
    if int(batch_size) != batch_size or batch_size < 1:
        raise UsageError(f"batch_size must be an integer >= 1, got {batch_size}")
    if int(num_restarts) != num_restarts or num_restarts < 1:
        raise UsageError(f"num_restarts must be an integer >= 1, got {num_restarts}")
    if y.min() < 0 or y.max() >= num_classes:
        raise UsageError(f"labels must lie in [0, {num_classes}) for this model")
    targeted = targets is not None
    if spec.targeted is not None and spec.targeted != targeted:
        mode = "targeted" if spec.targeted else "untargeted"
        raise UsageError(f"objective {objective_name} is {mode}; "
                         f"{'pass' if spec.targeted else 'drop'} targets or pick another")
    if targeted:
        if targets.shape != y.shape:
            raise UsageError(f"targets shape {targets.shape} != labels shape {y.shape}")
        if np.any(targets == y) or targets.min() < 0 or targets.max() >= num_classes:
            raise UsageError("every target must be a valid class other than the true label")


def evaluate_attack(model: keras.Model, x: np.ndarray, y: np.ndarray, *, attack_name: str,
                    objective_name: str, eps: float, eps_iter: float, nb_iter: int,
                    clip_min: Any, clip_max: Any, batch_size: int,
                    targets: Optional[np.ndarray] = None, num_restarts: int = 1, seed: int = 0,
                    progress: bool = True, eval_model: Optional[keras.Model] = None,
                    score_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                    backend: str = "native") -> Dict[str, Any]:
    """Clean and adversarial accuracy of ``model`` under one attack, batch by batch.

    Args:
        model: ``x -> logits`` ``(batch, L)``.
        x: ``(N, H, W, C)`` float32 inputs in model units (mean-subtracted), within
            ``[clip_min, clip_max]``.
        y: ``(N,)`` integer labels (one-hot ``(N, L)`` is accepted too).
        attack_name: a name in :data:`utils.attacks.iterative.ATTACKS`.
        objective_name: a name in :data:`utils.attacks.objectives.OBJECTIVES` (minimised).
        eps, eps_iter: ℓ∞ radius and step in model units (ε in /256 units is converted
            by the caller: ``eps_256 / 256``).
        nb_iter: attack iterations (>= 1).
        clip_min, clip_max: scalars or per-pixel ``(H, W, C)`` arrays.
        batch_size: examples per attacked batch.
        targets: ``(N,)`` target labels for a targeted attack (see :func:`draw_targets`),
            else None.
        num_restarts: random restarts, per-example worst case
            (:func:`utils.attacks.iterative.worst_case_over_restarts`).
        seed: base seed; batch ``b`` uses the stateless seed ``(seed, b)``.
        progress: show a ``keras.utils.Progbar``.
        eval_model: the model that classifies the inputs (black-box transfer: ``model``
            crafts them); default ``model``. Same number of classes.
        score_fn: logits ``(batch, L)`` -> ``(batch,)`` detection score (higher = more
            clean, :data:`utils.evaluation.detection.SCORES`); adds ``auc`` of clean vs adversarial
            by ``eval_model``'s score. Only the 2 x ``N`` scores are kept.
        backend: ``native`` or ``cleverhans`` (:func:`utils.attacks.iterative.get_attack`).

    Returns:
        dict with ``n``, ``clean_correct``, ``clean_accuracy``, ``adv_correct``,
        ``adv_accuracy`` (share still classified as the true label) and, for a targeted
        attack, ``target_hits`` and ``target_success`` (share predicted as the target);
        rates are fractions in [0, 1]. Also echoes the attack settings.
    """
    x = np.asarray(x)
    y = _class_indices(y, "y")
    num_classes = int(model.output_shape[-1])
    targets = None if targets is None else _class_indices(targets, "targets")
    _validate(x, y, targets, num_classes, batch_size, num_restarts, attack_name,
              objective_name, backend)
    if eval_model is None:
        eval_model = model
    elif int(eval_model.output_shape[-1]) != num_classes:
        raise UsageError(f"eval_model has {eval_model.output_shape[-1]} classes, the attacked "
                         f"model {num_classes}")
    scores: Dict[str, List[np.ndarray]] = {"clean": [], "adv": []}
    objective = OBJECTIVES.get(objective_name).fn
    n = len(x)
    counts = {"clean_correct": 0, "adv_correct": 0, "target_hits": 0}
    bar = (keras.utils.Progbar(n, stateful_metrics=["adv_acc"], unit_name="example")
           if progress else None)
    for batch, start in enumerate(range(0, n, batch_size)):
        stop = min(start + batch_size, n)
        xb = tf.convert_to_tensor(x[start:stop], dtype=tf.float32)
        labels = tf.one_hot(y[start:stop], num_classes)
        tb = None if targets is None else tf.one_hot(targets[start:stop], num_classes)
        clean_logits = eval_model(xb).numpy()
        if batch == 0:
            _check_logits(clean_logits)
        x_adv = worst_case_over_restarts(
            attack_name, model, xb, labels, num_restarts=num_restarts, seed=(seed, batch),
            targets_onehot=tb, objective=objective, eps=eps, eps_iter=eps_iter,
            nb_iter=nb_iter, clip_min=clip_min, clip_max=clip_max, backend=backend)
        adv_logits = eval_model(x_adv).numpy()
        adv_pred = adv_logits.argmax(axis=-1)
        if score_fn is not None:
            scores["clean"].append(score_fn(clean_logits))
            scores["adv"].append(score_fn(adv_logits))
        counts["clean_correct"] += int(np.sum(clean_logits.argmax(axis=-1) == y[start:stop]))
        counts["adv_correct"] += int(np.sum(adv_pred == y[start:stop]))
        if targets is not None:
            counts["target_hits"] += int(np.sum(adv_pred == targets[start:stop]))
        if bar is not None:
            bar.update(stop, values=[("adv_acc", counts["adv_correct"] / stop)], finalize=False)
    if bar is not None:
        bar.update(n, finalize=True)
    result = _summary(counts, n, targets is not None, attack_name=attack_name,
                      objective_name=objective_name, eps=float(eps), eps_iter=float(eps_iter),
                      nb_iter=int(nb_iter), num_restarts=int(num_restarts), seed=int(seed),
                      attack_backend=backend)
    if score_fn is not None:
        from utils.evaluation.detection import roc_auc
        result["auc"] = roc_auc(np.concatenate(scores["clean"]), np.concatenate(scores["adv"]))
    return result


def _summary(counts: Dict[str, int], n: int, targeted: bool, **settings: Any) -> Dict[str, Any]:
    """Counts to the returned dict (rates as fractions)."""
    result: Dict[str, Any] = dict(settings, targeted=targeted, n=n,
                                  clean_correct=counts["clean_correct"],
                                  clean_accuracy=counts["clean_correct"] / n,
                                  adv_correct=counts["adv_correct"],
                                  adv_accuracy=counts["adv_correct"] / n)
    if targeted:
        result.update(target_hits=counts["target_hits"],
                      target_success=counts["target_hits"] / n)
    return result
