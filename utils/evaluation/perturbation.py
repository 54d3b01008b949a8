"""Streaming evaluation of a per-batch perturbation on [0, 1] pixel images
(``advtest_others.py``): accuracy, success and distortion statistics.

Distortions are per example over all pixels and channels, in [0, 1] pixel units (equal to
the mean-subtracted model units: the mean is a translation): L1, L2, L-inf and the share
of features changed (``|x' - x| > 0``).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import numpy as np

from utils.attacks.iterative import attack_succeeded
from utils.attacks.perturbations import Perturb

NORMS = ("l1", "l2", "linf", "changed_fraction")


def pixel_model(model: Any, mean: np.ndarray) -> Callable[[Any], Any]:
    """``pixels -> model(pixels - mean)``: the model on [0, 1] images."""
    import tensorflow as tf
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
    import keras

    n = len(x)
    c: Dict[str, Any] = dict(clean_correct=0, adv_correct=0, success=0, already_adversarial=0,
                             l2_sum=0.0, l2_max=0.0, **{f"{k}_success_sum": 0.0 for k in NORMS})
    bar = keras.utils.Progbar(n, stateful_metrics=["adv_acc"], unit_name="example") \
        if progress else None
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        pixels, labels = to_pixels(x[start:stop], mean), np.asarray(y[start:stop])
        tb = None if targets is None else np.asarray(targets[start:stop])
        clean_logits = model_fn(pixels)
        clean_pred = np.asarray(clean_logits).argmax(axis=-1)
        already = attack_succeeded(clean_logits, labels, tb).numpy()
        adv = np.asarray(perturb(pixels, labels, tb), np.float32)
        if keep_already:
            adv[already] = pixels[already]
        adv_logits = model_fn(adv)
        adv_pred = np.asarray(adv_logits).argmax(axis=-1)
        success = attack_succeeded(adv_logits, labels, tb).numpy()
        dist = distortions(adv, pixels)
        c["clean_correct"] += int(np.sum(clean_pred == labels))
        c["adv_correct"] += int(np.sum(adv_pred == labels))
        c["success"] += int(np.sum(success))
        c["already_adversarial"] += int(np.sum(already))
        c["l2_sum"] += float(dist["l2"].sum())
        c["l2_max"] = max(c["l2_max"], float(dist["l2"].max()))
        for k in NORMS:
            c[f"{k}_success_sum"] += float(dist[k][success].sum())
        if bar is not None:
            bar.update(stop, values=[("adv_acc", c["adv_correct"] / stop)], finalize=False)
    if bar is not None:
        bar.update(n, finalize=True)
    return _summary(c, n, targets is not None)


def _summary(c: Dict[str, Any], n: int, targeted: bool) -> Dict[str, Any]:
    result = dict(n=n, targeted=targeted, clean_correct=c["clean_correct"],
                  clean_accuracy=c["clean_correct"] / n, adv_correct=c["adv_correct"],
                  adv_accuracy=c["adv_correct"] / n, success=c["success"],
                  success_rate=c["success"] / n, already_adversarial=c["already_adversarial"],
                  l2_mean=c["l2_sum"] / n, l2_max=c["l2_max"])
    for k in NORMS:
        result[f"{k}_mean_success"] = (c[f"{k}_success_sum"] / c["success"] if c["success"]
                                       else None)
    if targeted:
        result.update(target_hits=c["success"], target_success=c["success"] / n)
    return result
