"""Per-batch perturbations on [0, 1] pixel images, one builder per ``advtest_others.py``
attack: each returns a :data:`Perturb` ``(pixels, labels, targets) -> pixels'`` with
``pixels`` ``(b, H, W, C)`` in [0, 1], ``labels`` ``(b,)`` int and ``targets`` ``(b,)`` int
or None. The model is seen as ``model_fn(pixels)``
(:func:`utils.evaluation.perturbation.pixel_model`),
so the clip bounds are [0, 1] and distortions are in [0, 1] pixel units (equal to those
in the mean-subtracted model units: the mean is a translation).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from utils.attacks.corruptions import gaussian_noise, random_rotation
from utils.attacks.deepfool import deepfool as deepfool_attack
from utils.attacks.ead import elastic_net
from utils.attacks.jsma import saliency_map
from utils.attacks.lbfgs import lbfgs as lbfgs_attack
from utils.attacks.objectives import OBJECTIVES

Perturb = Callable[[np.ndarray, np.ndarray, Optional[np.ndarray]], np.ndarray]


def _onehot(model_fn: Callable, pixels: np.ndarray, labels: Optional[np.ndarray]) -> Any:
    if labels is None:
        return None
    return tf.one_hot(np.asarray(labels), int(model_fn(pixels[:1]).shape[-1]))


def cw_perturbation(model_fn: Callable, objective: str, cw: Dict[str, Any]) -> Perturb:
    """C&W-L2 per batch (``cw``: :class:`utils.attacks.cleverhans_compat.CWConfig` fields)."""
    from utils.attacks.cleverhans_compat import carlini_wagner_l2  # heavy optional dependency

    def perturb(pixels, labels, targets):
        return carlini_wagner_l2(model_fn, pixels, labels, targets=targets, objective=objective,
                                 batch_size=len(pixels), clip_min=0.0, clip_max=1.0, **cw)
    return perturb


def spsa_perturbation(model_fn: Callable, objective: str, eps: float,
                      spsa: Dict[str, Any]) -> Perturb:
    """SPSA (L-inf ``eps`` in [0,1] pixel units) per batch, one example at a time."""
    from utils.attacks.cleverhans_compat import spsa as spsa_attack  # heavy optional dependency

    def perturb(pixels, labels, targets):
        return spsa_attack(model_fn, pixels, eps, y=labels, targets=targets,
                           objective=objective, clip_min=0.0, clip_max=1.0, **spsa).numpy()
    return perturb


def noise_perturbation(sigma: float, rng: np.random.Generator) -> Perturb:
    return lambda pixels, labels, targets: gaussian_noise(pixels, sigma, rng)


def rotation_perturbation(max_degrees: float, rng: np.random.Generator) -> Perturb:
    return lambda pixels, labels, targets: random_rotation(pixels, max_degrees, rng)


def ead_perturbation(model_fn: Callable, objective: str, ead: Dict[str, Any]) -> Perturb:
    """EAD (:func:`utils.attacks.ead.elastic_net`; ``ead``: :class:`EADConfig` fields)."""
    fn = OBJECTIVES.get(objective).fn

    def perturb(pixels, labels, targets):
        return elastic_net(model_fn, pixels, _onehot(model_fn, pixels, labels), objective=fn,
                           targets_onehot=_onehot(model_fn, pixels, targets), clip_min=0.0,
                           clip_max=1.0, **ead)
    return perturb


def deepfool_perturbation(model_fn: Callable, deepfool: Dict[str, Any]) -> Perturb:
    """DeepFool (:func:`utils.attacks.deepfool.deepfool`), untargeted."""
    return lambda pixels, labels, targets: deepfool_attack(model_fn, pixels, clip_min=0.0,
                                                           clip_max=1.0, **deepfool)


def lbfgs_perturbation(model_fn: Callable, objective: str, lbfgs: Dict[str, Any]) -> Perturb:
    """Targeted L-BFGS (:func:`utils.attacks.lbfgs.lbfgs`)."""
    fn = OBJECTIVES.get(objective).fn

    def perturb(pixels, labels, targets):
        return lbfgs_attack(model_fn, pixels, _onehot(model_fn, pixels, labels),
                            _onehot(model_fn, pixels, targets), objective=fn, clip_min=0.0,
                            clip_max=1.0, **lbfgs)
    return perturb


def jsma_perturbation(model_fn: Callable, jsma: Dict[str, Any]) -> Perturb:
    """Targeted JSMA (:func:`utils.attacks.jsma.saliency_map`)."""
    return lambda pixels, labels, targets: saliency_map(
        model_fn, pixels, _onehot(model_fn, pixels, targets), clip_min=0.0, clip_max=1.0,
        **jsma)
