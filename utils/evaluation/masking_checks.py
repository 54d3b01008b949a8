"""Gradient-masking checks (after auto-attack's ``checks.py``), as warning strings.

Each check returns a list of human-readable warnings (empty: nothing suspicious);
evaluation records carry them in ``masking_warnings``. None of them proves robustness;
each one flags a way an evaluation is known to over-state it (Athalye et al. 2018,
Carlini et al. 2019, Croce & Hein 2020).

    warnings = batch_checks(model, x[:50], y_onehot[:50], objective=OBJECTIVES.get("ce").fn)
    warnings += accuracy_trend([(8 / 256, 10, 0.41), (16 / 256, 10, 0.45)])
    warnings += weaker_objective(model, x[:50], y_onehot[:50], "mmc_un1", eps=8 / 256,
                                 clip_min=0.0, clip_max=1.0)
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from utils.attacks.core import attack_succeeded
from utils.attacks.iterative import ATTACKS
from utils.attacks.objectives import OBJECTIVES, Objective

ModelFn = Any  # x -> logits (batch, L); a keras.Model works


def probability_outputs(logits: Any) -> List[str]:
    """Outputs that look like probabilities (non-negative rows summing to 1): a softmax
    at the output saturates and hides gradients from logit-based objectives.

    Args:
        logits: ``(batch, L)`` model outputs.
    """
    logits = np.asarray(logits)
    if logits.size and np.all(logits >= 0) and np.allclose(logits.sum(axis=-1), 1.0,
                                                           atol=1e-4):
        return ["the model's outputs look like probabilities (non-negative, rows sum to 1); "
                "attacks need logits (build the MMC head without normalize_output)"]
    return []


def input_gradients(model_fn: ModelFn, x: Any, labels_onehot: Any, objective: Objective,
                    targets_onehot: Optional[Any] = None) -> List[str]:
    """Zero or NaN input gradients of ``objective`` on a batch.

    Args:
        x: ``(batch, ...)`` float32 inputs in model units; labels_onehot: ``(batch, L)``.
        objective: the attack's objective (minimised; its gradient is what attacks use).
        targets_onehot: ``(batch, L)`` for a targeted objective.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    labels = tf.convert_to_tensor(labels_onehot, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model_fn(x)
        value = (objective(logits, labels) if targets_onehot is None else
                 objective(logits, labels, tf.convert_to_tensor(targets_onehot, tf.float32)))
        total = tf.reduce_sum(tf.cast(value, tf.float32))
    grad = tape.gradient(total, x)
    n = int(x.shape[0])
    if grad is None:
        return ["the objective has no gradient with respect to the input (disconnected "
                "graph); gradient attacks cannot work on this model"]
    grad = grad.numpy().reshape(n, -1)
    found = []
    nan = int(np.sum(~np.all(np.isfinite(grad), axis=1)))
    if nan:
        found.append(f"NaN/inf input gradients on {nan} of {n} examples")
    zero = int(np.sum(np.all(grad == 0, axis=1)))
    if zero:
        found.append(f"zero input gradients on {zero} of {n} examples (saturated or "
                     "masked objective; try an adaptive or margin objective)")
    return found


def nondeterminism(model_fn: ModelFn, x: Any, atol: float = 1e-5) -> List[str]:
    """Two forward passes of the same batch that differ (randomised defence, dropout or
    batch-norm statistics at inference): attacks then need EOT.

    Args:
        x: ``(batch, ...)`` float32; atol: tolerance relative to the largest |logit|.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    first, second = np.asarray(model_fn(x)), np.asarray(model_fn(x))
    scale = max(float(np.max(np.abs(first))), 1.0) if first.size else 1.0
    diff = float(np.max(np.abs(first - second))) if first.size else 0.0
    if diff > atol * scale:
        flips = int(np.sum(first.argmax(-1) != second.argmax(-1)))
        return [f"non-deterministic predictions: two forward passes differ by up to "
                f"{diff:.3g} in the logits ({flips} of {len(first)} predictions changed); "
                "use expectation over transformation"]
    return []


def accuracy_trend(points: Iterable[Tuple[float, int, float]], tol: float = 0.0) -> List[str]:
    """Robust accuracy that rises with ε (same steps) or with steps (same ε).

    Args:
        points: ``(eps, steps, accuracy)`` triples, accuracy a fraction in [0, 1], eps in
            any one unit.
        tol: allowed rise (fraction) before warning (sampling noise of restarts).
    """
    points = [(float(e), int(s), float(a)) for e, s, a in points]
    found: List[str] = []
    for key, vary, unit in ((1, 0, "eps"), (0, 1, "steps")):
        groups: Dict[float, List[Tuple[float, float]]] = {}
        for p in points:
            groups.setdefault(p[key], []).append((p[vary], p[2]))
        for fixed, series in sorted(groups.items()):
            series.sort()
            for (v0, a0), (v1, a1) in zip(series, series[1:]):
                if v1 > v0 and a1 > a0 + tol:
                    other = "steps" if unit == "eps" else "eps"
                    found.append(f"accuracy rises with {unit} at {other}={fixed:g}: "
                                 f"{a0:.4f} at {unit}={v0:g} -> {a1:.4f} at {unit}={v1:g} "
                                 "(the attack is not converging; gradient masking?)")
    return found


def blackbox_stronger(white_box_accuracy: float, black_box_accuracy: float,
                      tol: float = 0.0, black_box_name: str = "black-box") -> List[str]:
    """A black-box (transfer, SPSA) attack leaving LOWER accuracy than the white-box one:
    the white-box gradients are not informative (masking)."""
    if float(black_box_accuracy) < float(white_box_accuracy) - tol:
        return [f"{black_box_name} attack is stronger than the white-box one "
                f"({black_box_accuracy:.4f} < {white_box_accuracy:.4f} accuracy): "
                "the gradients mislead the white-box attack"]
    return []


def blackbox_from_records(records: Sequence[Dict[str, Any]], white: Dict[str, Any],
                          tol: float = 0.0) -> List[str]:
    """:func:`blackbox_stronger` against earlier records of the same target model, ε and
    number of examples: transfer records (``transfer``) and SPSA (``attack_name``)."""
    found: List[str] = []
    for r in records:
        black = r.get("transfer") is True or r.get("attack_name") == "SPSA"
        if not black or r.get("model") != white.get("model") or r.get("n") != white.get("n"):
            continue
        if r.get("dataset") != white.get("dataset") or "adv_accuracy" not in r:
            continue
        if not np.isclose(float(r.get("eps", -1)), float(white.get("eps", -2))):
            continue
        name = (f"transfer from {r.get('model_1')}" if r.get("transfer")
                else str(r.get("attack_name")))
        found += blackbox_stronger(white["adv_accuracy"], r["adv_accuracy"], tol, name)
    return found


# Objectives every untargeted evaluation is compared with by :func:`weaker_objective`.
REFERENCE_OBJECTIVES = ("ce", "margin")


def weaker_objective(model_fn: ModelFn, x: Any, labels_onehot: Any, objective: str, *,
                     eps: float, clip_min: Any, clip_max: Any,
                     alternatives: Sequence[str] = REFERENCE_OBJECTIVES, num_iter: int = 10,
                     eps_iter: float = 2.0 / 256, tol: float = 0.10,
                     seed: int = 0) -> List[str]:
    """An untargeted objective that a standard one beats on the same batch.

    Runs PGD-``num_iter`` (random start, same seed) with ``objective`` and with each of
    ``alternatives`` and warns when an alternative leaves a robust accuracy lower by more
    than ``tol`` (a fraction): the evaluation's objective is then not the strongest
    cheap choice, as ``mmc_un1`` was on MMLDA models (68 % where ``ce`` left 1 %).

    Args:
        x: ``(batch, ...)`` float32 inputs in model units; labels_onehot: ``(batch, L)``.
        objective: name in :data:`utils.attacks.objectives.OBJECTIVES`, untargeted.
        eps: radius in model units (``eps_256 / 256``).
        eps_iter: step in model units.
        clip_min: lower input bound (a scalar or per-pixel).
        clip_max: upper input bound (a scalar or per-pixel).
    """

    x = tf.convert_to_tensor(x, tf.float32)
    labels = tf.convert_to_tensor(labels_onehot, tf.float32)
    names = [objective] + [name for name in alternatives if name != objective]
    robust = dict(zip(names, _pgd_robust_accuracies(
        model_fn, x, labels, names, eps=eps, eps_iter=eps_iter, num_iter=num_iter,
        clip_min=clip_min, clip_max=clip_max, seed=seed)))
    used, found = robust[objective], []
    for name in names[1:]:
        if robust[name] < used - tol:
            found.append(f"on the first batch, PGD-{num_iter} (ε {eps * 256:g}/256) with "
                         f"objective {name} leaves {robust[name]:.1%} where {objective} "
                         f"leaves {used:.1%}: the objective in use is weaker than a standard "
                         f"one; rerun with --objective={name} (or APGD-T / AutoAttack)")
    return found


def _pgd_robust_accuracies(model_fn: ModelFn, x: tf.Tensor, labels: tf.Tensor,
                           names: Sequence[str], *, seed: int, **pgd_kwargs: Any
                           ) -> List[float]:
    """Robust accuracy (a fraction) of the ``(B, ...)`` batch ``x`` under PGD with each
    objective of ``names``, in ONE compiled attack: the batch is stacked once per objective
    and block ``k`` of the logits goes to objective ``k``. Example ``i`` of every block
    starts from the same point as a separate run of that objective would (its seed depends
    on ``(seed, i)`` only), and each row's gradient is its own objective's, so this equals
    one PGD run per objective, traced once instead of once per objective."""
    functions = [OBJECTIVES.get(name).fn for name in names]
    n, copies = int(x.shape[0]), len(names)

    def stacked(logits: tf.Tensor, labels_onehot: tf.Tensor) -> tf.Tensor:
        blocks = zip(functions, tf.split(logits, copies), tf.split(labels_onehot, copies))
        return tf.concat([tf.cast(fn(z, y), tf.float32) for fn, z, y in blocks], axis=0)

    def tiled(value: Any) -> Any:  # per-example arrays (x, labels, clips) repeat per block
        value = np.asarray(value) if not tf.is_tensor(value) else value
        if len(value.shape) == x.shape.rank and value.shape[0] == n and n > 1:
            return tf.tile(value, [copies] + [1] * (len(value.shape) - 1))
        return value

    clips = {k: tiled(pgd_kwargs.pop(k)) for k in ("clip_min", "clip_max")}
    x_all, labels_all = tiled(x), tf.tile(labels, [copies, 1])
    x_adv = ATTACKS.get("MadryEtAl")(
        model_fn, x_all, labels_all, objective=stacked, rand_init=True, seed=(seed, 0),
        example_index=np.tile(np.arange(n), copies), **clips, **pgd_kwargs)
    broken = attack_succeeded(model_fn(x_adv), labels_all).numpy().reshape(copies, n)
    return [1.0 - float(np.mean(row)) for row in broken]


def batch_checks(model_fn: ModelFn, x: Any, labels_onehot: Any, objective: Objective,
                 targets_onehot: Optional[Any] = None) -> List[str]:
    """Probabilities, zero/NaN gradients and non-determinism on one batch."""
    x = tf.convert_to_tensor(x, tf.float32)
    return (probability_outputs(model_fn(x))
            + input_gradients(model_fn, x, labels_onehot, objective, targets_onehot)
            + nondeterminism(model_fn, x))
