"""Streaming evaluation of a per-batch perturbation on [0, 1] pixel images
(``advtest_others.py``): accuracy, success and distortion statistics.

Distortions are per example over all pixels and channels, in [0, 1] pixel units (equal to
the mean-subtracted model units: the mean is a translation): L1, L2, L-inf and the share
of features changed (``|x' - x| > 0``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from utils.attacks.core import attack_succeeded
from utils.attacks.perturbations import Perturb
from utils.evaluation.stream import Accuracy, BatchOutcome, logits_outcome, stream

NORMS = ("l1", "l2", "linf", "changed_fraction")


def pixel_model(model: Any, mean: np.ndarray) -> Callable[[Any], Any]:
    """``pixels -> model(pixels - mean)``: the model on [0, 1] images."""
    mean_t = tf.constant(mean, dtype=tf.float32)
    return lambda pixels: model(tf.convert_to_tensor(pixels, tf.float32) - mean_t)


def to_pixels(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Mean-subtracted inputs back to [0, 1] pixels (clipped against rounding)."""
    return np.clip(np.asarray(x, np.float32) + mean, 0.0, 1.0).astype(np.float32)


def distortions(x_adv: np.ndarray, x: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-example ``(batch,)`` arrays: ``l1``, ``l2``, ``linf`` norms of ``x_adv - x`` and
    ``changed_fraction``, the share of features that differ."""
    diff = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(len(x), -1)
    return dict(l1=np.abs(diff).sum(axis=1), l2=np.sqrt(np.square(diff).sum(axis=1)),
                linf=np.abs(diff).max(axis=1, initial=0.0),
                changed_fraction=(diff != 0).mean(axis=1))


def l2_distortion(x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-example L2 norm of ``x_adv - x`` over all pixels and channels: ``(batch,)``."""
    return distortions(x_adv, x)["l2"]


def evaluate_perturbation(model_fn: Callable, x: np.ndarray, y: np.ndarray, mean: np.ndarray,
                          perturb: Perturb, *, batch_size: int,
                          targets: Optional[np.ndarray] = None, keep_already: bool = False,
                          progress: bool = False) -> Dict[str, Any]:
    """Clean and perturbed accuracy of ``model_fn`` (on [0,1] pixels), batch by batch.

    Args:
        model_fn: ``pixels -> logits`` (:func:`pixel_model`).
        x: ``(N, H, W, C)`` mean-subtracted float32 inputs; y: ``(N,)`` int labels.
        mean: ``(H, W, C)`` the dataset's pixel mean (``x + mean`` are the pixels).
        perturb: returns the perturbed pixels of a batch.
        batch_size: examples per batch; targets: ``(N,)`` for targeted attacks, else None.
        keep_already: inputs that already succeed stay unperturbed (distortion 0), as
            C&W defines its minimal distortion whatever ``confidence``.
        progress: show a ``keras.utils.Progbar``.

    Returns:
        dict: ``n``, ``clean_correct``/``clean_accuracy``, ``adv_correct``/``adv_accuracy``,
        ``success``/``success_rate`` (misclassified, or predicted as the target when
        targeted), ``already_adversarial`` (clean inputs that already succeed),
        ``l2_mean`` (over all; a failed minimal attack returns the input, distortion 0, as
        the original reported), ``l2_max``, and for each of :data:`NORMS` its mean over
        successes ``<norm>_mean_success`` (None if none); targeted also
        ``target_hits``/``target_success``. Rates are fractions in [0, 1].
    """
    n = len(x)
    targeted = targets is not None

    def attack_batch(b: int, part: slice) -> BatchOutcome:
        pixels, labels = to_pixels(x[part], mean), np.asarray(y[part])
        tb = None if targets is None else np.asarray(targets[part])
        clean_logits = np.asarray(model_fn(pixels))
        already = attack_succeeded(clean_logits, labels, tb).numpy()
        adv = np.asarray(perturb(pixels, labels, tb), np.float32)
        if keep_already:
            adv[already] = pixels[already]
        out = logits_outcome(part, labels, tb, clean_logits, np.asarray(model_fn(adv)))
        out.x, out.x_adv, out.extra["already"] = pixels, adv, already
        return out

    fields = stream(n, batch_size, attack_batch, [Accuracy(targeted), Distortion()],
                    progress=progress)
    return _reorder(fields, targeted)


@dataclasses.dataclass
class Distortion:
    """Success and distortion statistics of a perturbation (a metric hook of
    :func:`utils.evaluation.stream.stream`): success = misclassified, or predicted as the
    target when targeted; distortions per :func:`distortions` of ``out.x_adv - out.x`` in
    [0, 1] pixel units. Needs ``out.extra["already"]`` (clean inputs that already
    succeed)."""

    success: int = 0
    already_adversarial: int = 0
    l2_sum: float = 0.0
    l2_max: float = 0.0
    success_sums: Dict[str, float] = dataclasses.field(
        default_factory=lambda: {k: 0.0 for k in NORMS})

    def update(self, out: BatchOutcome) -> None:
        success = attack_succeeded(out.adv_logits, out.labels, out.targets).numpy()
        dist = distortions(out.x_adv, out.x)
        self.success += int(np.sum(success))
        self.already_adversarial += int(np.sum(out.extra["already"]))
        self.l2_sum += float(dist["l2"].sum())
        self.l2_max = max(self.l2_max, float(dist["l2"].max()))
        for k in NORMS:
            self.success_sums[k] += float(dist[k][success].sum())

    def fields(self, n: int) -> Dict[str, Any]:
        result: Dict[str, Any] = dict(success=self.success, success_rate=self.success / n,
                                      already_adversarial=self.already_adversarial,
                                      l2_mean=self.l2_sum / n, l2_max=self.l2_max)
        for k in NORMS:
            result[f"{k}_mean_success"] = (self.success_sums[k] / self.success
                                           if self.success else None)
        return result


def _reorder(fields: Dict[str, Any], targeted: bool) -> Dict[str, Any]:
    """The record's historical key order (n first, target fields last)."""
    first = ("n", "targeted", "clean_correct", "clean_accuracy", "adv_correct", "adv_accuracy")
    last = ("target_hits", "target_success") if targeted else ()
    middle = [k for k in fields if k not in first + last]
    return {k: fields[k] for k in first + tuple(middle) + last}
