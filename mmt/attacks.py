"""Attacks as functions on any Keras model or callable ``x -> logits``.

Thin wrappers over :mod:`utils.attacks` (no attack is reimplemented here). Every wrapper is

    x_adv = attack(model, x, y, *, eps, norm="linf", objective=..., clip_min=0.0,
                   clip_max=1.0, seed=0, example_index=None, ...)

* ``model``: a ``keras.Model`` or any callable mapping ``(batch, ...)`` float32 inputs to
  LOGITS ``(batch, L)`` (not probabilities: a softmax output hides the gradients).
* ``x``: ``(batch, H, W, C)`` float32 inputs in the model's input range
  ``[clip_min, clip_max]`` (default ``[0, 1]`` pixels; per-pixel ``(H, W, C)`` arrays for a
  model on mean-subtracted inputs).
* ``y``: class indices ``(batch,)`` / ``(batch, 1)`` or one-hot ``(batch, L)``.
* ``eps``: the radius IN THE MODEL'S INPUT UNITS (``8 / 255`` for ``[0, 1]`` pixels; the
  scripts' ``eps_256`` flags are ``eps_256 / 256`` here); ``norm``: ``"linf"`` or ``"l2"``
  (ℓ2 over the whole input). ``eps = 0`` returns ``x``.
* ``objective``: a registered name (:data:`utils.attacks.objectives.OBJECTIVES`: ``ce``,
  ``margin``, ``dlr``, ``mmc_un1`` ...) or a callable ``objective(logits, labels_onehot)
  -> (batch,)`` that the attack MINIMISES (targeted ones also take ``targets``).
* Returns ``x_adv`` as a float32 NumPy array shaped like ``x``, with
  ``||x_adv - x|| <= eps`` in ``norm`` and ``clip_min <= x_adv <= clip_max``.
* ``seed``, ``example_index``: example ``i``'s random draws depend only on
  ``(seed, example_index[i])``, never on the batch.

FAB-T and Square take no objective (FAB-T linearises the logit differences, Square searches
on the margin). ``cw_l2`` is minimum-distortion: its points count only within ``eps``.

    x_adv = mmt.pgd(model, x, y, eps=8 / 255, objective="mmc_un1", num_iter=20)
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Union

import numpy as np
import tensorflow as tf

from utils.attacks.apgd import apgd as _apgd
from utils.attacks.core import get_attack
from utils.attacks.fab import distance, fab_targeted
from utils.attacks.multitarget import (DEFAULT_TARGET_CLASSES, apgd_targeted,
                                       multi_targeted_pgd)
from utils.attacks.objectives import Objective, resolve_objective
from utils.attacks.square import N_QUERIES, square_attack
from utils.attacks.threat_model import check_norm
from utils.losses import onehot_labels

ModelLike = Callable[[tf.Tensor], tf.Tensor]
ObjectiveLike = Union[str, Objective]
Labels = Any  # (batch,), (batch, 1) int class indices or (batch, L) one-hot
Seed = Union[int, tuple]
MADRY_STEP = 2.5  # default eps_iter = 2.5 eps / num_iter (Madry et al. 2018)


def prepare(model: ModelLike, x: Any, y: Labels, targets: Optional[Labels] = None) -> tuple:
    """``(x float32, labels one-hot (batch, L), targets one-hot or None)``; the class
    count ``L`` is read from ``model``'s logits on one example."""
    x = tf.convert_to_tensor(x, tf.float32)
    probe = model(x[:1])
    return (x, onehot_labels(y, probe),
            None if targets is None else onehot_labels(targets, probe))


def _step(eps: float, num_iter: int, eps_iter: Optional[float]) -> float:
    if eps_iter is not None:
        return float(eps_iter)
    return MADRY_STEP * float(eps) / int(num_iter) if float(eps) > 0 else 1.0


def _gradient_attack(name: str, model: ModelLike, x: Any, y: Labels, *, eps: float,
                     norm: str, objective: ObjectiveLike, num_iter: int,
                     eps_iter: Optional[float], clip_min: Any, clip_max: Any,
                     targets: Optional[Labels], seed: Seed,
                     example_index: Optional[Any]) -> np.ndarray:
    x, labels, targets = prepare(model, x, y, targets)
    fn = resolve_objective(objective, targets is not None)
    x_adv = get_attack(name)(model, x, labels, objective=fn,
                             eps=eps, eps_iter=_step(eps, num_iter, eps_iter),
                             num_iter=num_iter, clip_min=clip_min, clip_max=clip_max,
                             norm=norm, targets_onehot=targets, seed=seed,
                             example_index=example_index)
    return np.asarray(x_adv, np.float32)


def fgsm(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
         objective: ObjectiveLike = "ce", clip_min: Any = 0.0, clip_max: Any = 1.0,
         targets: Optional[Labels] = None, seed: Seed = 0,
         example_index: Optional[Any] = None) -> np.ndarray:
    """FGSM (Goodfellow et al. 2015): one step of length ``eps`` (see the module doc)."""
    return _gradient_attack("FastGradientMethod", model, x, y, eps=eps, norm=norm,
                            objective=objective, num_iter=1, eps_iter=None, clip_min=clip_min,
                            clip_max=clip_max, targets=targets, seed=seed,
                            example_index=example_index)


def bim(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
        objective: ObjectiveLike = "ce", num_iter: int = 10, eps_iter: Optional[float] = None,
        clip_min: Any = 0.0, clip_max: Any = 1.0, targets: Optional[Labels] = None,
        seed: Seed = 0, example_index: Optional[Any] = None) -> np.ndarray:
    """BIM (Kurakin et al. 2016): ``num_iter`` steps of ``eps_iter`` (default
    ``2.5 eps / num_iter``, input units) from ``x``, projected onto the ε-ball."""
    return _gradient_attack("BasicIterativeMethod", model, x, y, eps=eps, norm=norm,
                            objective=objective, num_iter=num_iter, eps_iter=eps_iter,
                            clip_min=clip_min, clip_max=clip_max, targets=targets, seed=seed,
                            example_index=example_index)


def pgd(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
        objective: ObjectiveLike = "ce", num_iter: int = 10, eps_iter: Optional[float] = None,
        clip_min: Any = 0.0, clip_max: Any = 1.0, targets: Optional[Labels] = None,
        seed: Seed = 0, example_index: Optional[Any] = None) -> np.ndarray:
    """PGD (Madry et al. 2018, ``MadryEtAl``): BIM from a random start in the ε-ball."""
    return _gradient_attack("MadryEtAl", model, x, y, eps=eps, norm=norm, objective=objective,
                            num_iter=num_iter, eps_iter=eps_iter, clip_min=clip_min,
                            clip_max=clip_max, targets=targets, seed=seed,
                            example_index=example_index)


def mim(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
        objective: ObjectiveLike = "ce", num_iter: int = 10, eps_iter: Optional[float] = None,
        clip_min: Any = 0.0, clip_max: Any = 1.0, targets: Optional[Labels] = None,
        seed: Seed = 0, example_index: Optional[Any] = None) -> np.ndarray:
    """MIM (Dong et al. 2018): BIM along the accumulated L1-normalised gradient."""
    return _gradient_attack("MomentumIterativeMethod", model, x, y, eps=eps, norm=norm,
                            objective=objective, num_iter=num_iter, eps_iter=eps_iter,
                            clip_min=clip_min, clip_max=clip_max, targets=targets, seed=seed,
                            example_index=example_index)


def apgd(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
         objective: ObjectiveLike = "ce", num_iter: int = 100, num_restarts: int = 1,
         clip_min: Any = 0.0, clip_max: Any = 1.0, targets: Optional[Labels] = None,
         seed: Seed = 0, example_index: Optional[Any] = None) -> np.ndarray:
    """APGD (Croce & Hein 2020): step-size-free PGD with momentum; ``objective="ce"`` is
    AutoAttack's APGD-CE, ``"dlr"`` its APGD-DLR; worst case over ``num_restarts``."""
    x, labels, targets = prepare(model, x, y, targets)
    fn = resolve_objective(objective, targets is not None)
    return np.asarray(_apgd(model, x, labels, objective=fn, eps=eps, clip_min=clip_min,
                            clip_max=clip_max, num_iter=num_iter, norm=norm, targets_onehot=targets,
                            success_on_target=targets is not None,
                            num_restarts=num_restarts, seed=seed,
                            example_index=example_index), np.float32)


def apgd_t(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
           objective: ObjectiveLike = "dlr_targeted", num_iter: int = 100,
           n_target_classes: int = DEFAULT_TARGET_CLASSES, clip_min: Any = 0.0,
           clip_max: Any = 1.0, seed: Seed = 0,
           example_index: Optional[Any] = None) -> np.ndarray:
    """APGD-T: targeted APGD toward each of the top ``n_target_classes`` wrong classes
    (untargeted overall). ``objective`` is TARGETED, ``objective(logits, labels_onehot,
    targets_onehot)``: ``dlr_targeted`` (AutoAttack), ``mmc_tar1`` on MMC models."""
    x, labels, _ = prepare(model, x, y)
    return np.asarray(apgd_targeted(model, x, labels, eps=eps, clip_min=clip_min,
                                    clip_max=clip_max, num_iter=num_iter, norm=norm,
                                    objective=resolve_objective(objective, True),
                                    n_target_classes=n_target_classes, seed=seed,
                                    example_index=example_index), np.float32)


def multi_targeted(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
                   objective: ObjectiveLike = "margin", num_iter: int = 100,
                   eps_iter: Optional[float] = None,
                   n_target_classes: int = DEFAULT_TARGET_CLASSES, clip_min: Any = 0.0,
                   clip_max: Any = 1.0, seed: Seed = 0,
                   example_index: Optional[Any] = None) -> np.ndarray:
    """MultiTargeted PGD (Gowal et al. 2019) over the top-k classes, targeted objective
    (default the targeted ``margin``)."""
    x, labels, _ = prepare(model, x, y)
    return np.asarray(multi_targeted_pgd(
        model, x, labels, eps=eps, eps_iter=_step(eps, num_iter, eps_iter), num_iter=num_iter,
        clip_min=clip_min, clip_max=clip_max, objective=resolve_objective(objective, True),
        norm=norm, n_target_classes=n_target_classes, seed=seed,
        example_index=example_index), np.float32)


def fab_t(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
          num_iter: int = 100, n_target_classes: int = DEFAULT_TARGET_CLASSES,
          clip_min: Any = 0.0, clip_max: Any = 1.0, seed: Seed = 0,
          example_index: Optional[Any] = None) -> np.ndarray:
    """FAB-T (Croce & Hein 2020): minimum-norm targeted boundary attack over the top-k
    classes; a point counts only within ``eps``. Deterministic (``seed`` is unused)."""
    x, labels, _ = prepare(model, x, y)
    return np.asarray(fab_targeted(model, x, labels, eps=eps, clip_min=clip_min,
                                   clip_max=clip_max, num_iter=num_iter, norm=norm,
                                   n_target_classes=n_target_classes), np.float32)


def square(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "linf",
           n_queries: int = N_QUERIES, num_restarts: int = 1, clip_min: Any = 0.0,
           clip_max: Any = 1.0, seed: Seed = 0,
           example_index: Optional[Any] = None) -> np.ndarray:
    """Square (Andriushchenko et al. 2020): gradient-free random search on the margin,
    ``n_queries`` model calls per restart."""
    x, labels, _ = prepare(model, x, y)
    return np.asarray(square_attack(model, x, labels, eps=eps, clip_min=clip_min,
                                    clip_max=clip_max, n_queries=n_queries, norm=norm,
                                    num_restarts=num_restarts, seed=seed,
                                    example_index=example_index), np.float32)


@functools.lru_cache(maxsize=None)  # one adapter per objective: C&W's graph is not retraced
def _with_confidence(fn: Objective) -> Objective:
    """A user's ``fn(logits, labels_onehot)`` as C&W calls objectives:
    ``max(fn, -confidence)`` (C&W's ``f6`` form), the targets unused (C&W here is
    untargeted)."""

    def objective(logits: tf.Tensor, labels: tf.Tensor, targets: Any = None,
                  confidence: float = 0.0, **_: Any) -> tf.Tensor:
        return tf.maximum(tf.cast(fn(logits, labels), tf.float32), -float(confidence))

    return objective


def cw_l2(model: ModelLike, x: Any, y: Labels, *, eps: float, norm: str = "l2",
          objective: ObjectiveLike = "margin", clip_min: float = 0.0, clip_max: float = 1.0,
          seed: Seed = 0, example_index: Optional[Any] = None, **config: Any) -> np.ndarray:
    """C&W-L2 (Carlini & Wagner 2017), untargeted; ``objective`` ``margin`` or ``mmc_un2``
    (a callable ``fn(logits, labels_onehot)`` is used as ``max(fn, -confidence)``).
    Minimum-distortion: a found point is kept only where its distance in ``norm`` is
    ``<= eps`` (else ``x``). ``clip_min``/``clip_max``
    scalars; ``config``: :class:`utils.attacks.cleverhans_compat.cw.CWConfig` fields
    (``max_iterations``, ``binary_search_steps`` ...). Deterministic."""
    # Lazy: the cleverhans package is a heavy optional dependency of this one attack.
    from utils.attacks.cleverhans_compat.cw import carlini_wagner_l2

    check_norm(norm)
    x, labels, _ = prepare(model, x, y)
    objective = objective if isinstance(objective, str) else _with_confidence(objective)
    found = carlini_wagner_l2(model, x, labels, objective=objective, batch_size=int(x.shape[0]),
                              clip_min=float(clip_min), clip_max=float(clip_max), **config)
    inside = distance(tf.constant(found) - x, norm) <= eps
    return np.where(inside.numpy().reshape((-1,) + (1,) * (x.shape.rank - 1)), found,
                    x.numpy()).astype(np.float32)


#: Attack name -> wrapper, for :func:`mmt.evaluate`'s callable members and the tests.
ATTACK_FUNCTIONS = {f.__name__: f for f in (fgsm, bim, pgd, mim, apgd, apgd_t, multi_targeted,
                                            fab_t, square, cw_l2)}
