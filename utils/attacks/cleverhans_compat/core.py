"""The objective adapter and cleverhans' gradient attacks (FGM, PGD, BIM, MadryEtAl, MIM);
see the package docstring for the fixes."""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks import fast_gradient_method as _ch_fgm
from cleverhans.tf2.attacks import momentum_iterative_method as _ch_mim
from cleverhans.tf2.attacks import projected_gradient_descent as _ch_pgd

from utils.errors import UsageError
from utils.attacks.objectives import Objective, resolve_objective
from utils.losses import onehot_labels

ModelFn = Callable[[tf.Tensor], tf.Tensor]
Tensorish = Union[np.ndarray, tf.Tensor]
ObjectiveLike = Union[str, Objective]
Labels = Optional[Tensorish]  # int (batch,) or one-hot (batch, L)
Bound = Optional[float]
# loss_fn(labels=, logits=) -> (batch,): ascended, or descended with labels = targets when
# targeted (cleverhans/tf2/utils.py compute_gradient negates it).
CleverhansLossFn = Callable[..., tf.Tensor]

_PATCH_LOCK = threading.RLock()
_TOLERANCE = 1e-5
_ADAPTERS: Dict[Tuple[Objective, bool], CleverhansLossFn] = {}


@contextlib.contextmanager
def patch_attribute(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``owner.name = value`` for the ``with`` block, restoring it on exit (also on
    error). A process-wide lock keeps concurrent patched calls from interleaving."""
    with _PATCH_LOCK:
        original = getattr(owner, name)
        setattr(owner, name, value)
        try:
            yield
        finally:
            setattr(owner, name, original)


def cleverhans_loss_fn(objective: ObjectiveLike, targeted: bool,
                       labels: Labels = None) -> CleverhansLossFn:
    """cleverhans ``loss_fn(labels, logits)`` whose cleverhans attack minimises ``objective``.

    Untargeted, cleverhans ascends ``loss_fn(y, logits) = -objective(logits, y)``; targeted,
    it descends ``loss_fn(y_t, logits) = objective(logits, labels, targets=y_t)``, the true
    ``labels`` coming by closure (required if the objective reads them, as ``mmc_tar2``).
    Otherwise one adapter per objective is reused, so cleverhans' ``tf.function`` is not
    retraced per batch."""
    fn = resolve_objective(objective, targeted)
    if targeted and _reads_labels(fn):
        if labels is None:
            raise UsageError(f"targeted objective {objective} needs the true labels")
        return _adapter(fn, True, labels)
    return _ADAPTERS.setdefault((fn, targeted), _adapter(fn, targeted, None))


def _adapter(fn: Objective, targeted: bool, true_labels: Labels) -> CleverhansLossFn:
    def loss_fn(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        if not targeted:
            return -fn(logits, onehot_labels(labels, logits))
        true = None if true_labels is None else onehot_labels(true_labels, logits)
        return fn(logits, true, targets=onehot_labels(labels, logits))
    return loss_fn


def _reads_labels(fn: Objective) -> bool:  # as mmc_tar2 does
    try:
        fn(tf.zeros((1, 2)), None, targets=tf.constant([[1.0, 0.0]]))
    except (ValueError, TypeError):
        return True
    return False


def check_inputs(x: tf.Tensor, eps: float, eps_iter: Bound, clip_min: Bound,
                 clip_max: Bound) -> None:
    """cleverhans' ``sanity_checks`` done right (its ``np.all`` over a ragged list of
    tensors and bools raises on NumPy >= 1.24): UsageError on bad arguments or inputs."""
    if eps_iter is not None and eps_iter > eps:
        raise UsageError(f"eps_iter ({eps_iter}) must be <= eps ({eps})")
    # Per example and pixel, so per-pixel clip arrays (mean-subtracted data) work too.
    x = tf.convert_to_tensor(x, tf.float32)
    if clip_min is not None:
        below = float(tf.reduce_max(tf.cast(clip_min, tf.float32) - x))
        if below > _TOLERANCE:
            raise UsageError(f"input below clip_min by up to {below:g}; clip inputs first")
    if clip_max is not None:
        above = float(tf.reduce_max(x - tf.cast(clip_max, tf.float32)))
        if above > _TOLERANCE:
            raise UsageError(f"input above clip_max by up to {above:g}; clip inputs first")


def prepare(model_fn: ModelFn, x: Tensorish, y: Labels,
            targets: Labels) -> Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]:
    """float32 ``x``, one-hot labels (default: the predictions) and targets (or None)."""
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    logits = model_fn(x)
    labels = onehot_labels(tf.argmax(logits, axis=-1) if y is None else y, logits)
    return x, labels, None if targets is None else onehot_labels(targets, logits)


def _gradient_attack(attack: Callable[..., tf.Tensor], model_fn: ModelFn, x: Tensorish,
                     eps: float, y: Labels, targets: Labels, objective: ObjectiveLike,
                     norm: float, clip_min: Bound, clip_max: Bound, sanity_checks: bool,
                     **extra: Any) -> tf.Tensor:
    """Labels, adapted loss and our checks around cleverhans' ``attack(**extra)``."""
    x, y, targets = prepare(model_fn, x, y, targets)
    targeted = targets is not None
    if sanity_checks:
        check_inputs(x, eps, extra.get("eps_iter"), clip_min, clip_max)
    loss_fn = cleverhans_loss_fn(objective, targeted, labels=y if targeted else None)
    return attack(model_fn=model_fn, x=x, eps=eps, norm=norm, loss_fn=loss_fn,
                  clip_min=clip_min, clip_max=clip_max, y=targets if targeted else y,
                  targeted=targeted, sanity_checks=False, **extra)


def _mim_with_loss(loss_fn: CleverhansLossFn, **kwargs: Any) -> tf.Tensor:
    """cleverhans' MIM with its module-level, hard-coded ``loss_fn`` swapped for the call."""
    with patch_attribute(_ch_mim, "loss_fn", loss_fn):
        return _ch_mim.momentum_iterative_method(**kwargs)


# Gradient attacks. Keywords: y (true labels; default the predictions), targets (targeted
# iff given), objective, norm (np.inf or 2), clip_min/clip_max, sanity_checks (inputs in
# range, eps_iter <= eps). All return float32 x_adv shaped like x.

def fast_gradient_method(
        model_fn: ModelFn, x: Tensorish, eps: float, *, y: Labels = None,
        targets: Labels = None, objective: ObjectiveLike = "ce", norm: float = np.inf,
        clip_min: Bound = None, clip_max: Bound = None, sanity_checks: bool = True,
) -> tf.Tensor:
    """FGSM / FGM (cleverhans) minimising ``objective``."""
    return _gradient_attack(_ch_fgm.fast_gradient_method, model_fn, x, eps, y, targets,
                            objective, norm, clip_min, clip_max, sanity_checks)


def projected_gradient_descent(
        model_fn: ModelFn, x: Tensorish, eps: float, eps_iter: float, nb_iter: int, *,
        y: Labels = None, targets: Labels = None, objective: ObjectiveLike = "ce",
        norm: float = np.inf, clip_min: Bound = None, clip_max: Bound = None,
        rand_init: bool = False, rand_minmax: Bound = None, sanity_checks: bool = True,
) -> tf.Tensor:
    """PGD (cleverhans) minimising ``objective``; ``rand_init`` starts uniformly in the
    ``rand_minmax``-ball (default ``eps``)."""
    return _gradient_attack(_ch_pgd.projected_gradient_descent, model_fn, x, eps, y, targets,
                            objective, norm, clip_min, clip_max, sanity_checks,
                            eps_iter=eps_iter, nb_iter=nb_iter, rand_init=rand_init,
                            rand_minmax=eps if rand_minmax is None else rand_minmax)


def basic_iterative_method(model_fn: ModelFn, x: Tensorish, eps: float, eps_iter: float,
                           nb_iter: int, **kwargs: Any) -> tf.Tensor:
    """BIM: PGD from ``x`` itself. cleverhans' own takes no ``loss_fn`` and its default
    ``sanity_checks=True`` raises on NumPy >= 1.24."""
    return projected_gradient_descent(model_fn, x, eps, eps_iter, nb_iter, rand_init=False,
                                      **kwargs)


def madry_et_al(model_fn: ModelFn, x: Tensorish, eps: float, eps_iter: float, nb_iter: int,
                **kwargs: Any) -> tf.Tensor:
    """MadryEtAl: PGD from a uniform start in the eps-ball (cleverhans' default radius 0.3,
    clipped to a small eps, puts nearly every pixel at +-eps)."""
    return projected_gradient_descent(model_fn, x, eps, eps_iter, nb_iter, rand_init=True, **kwargs)


def momentum_iterative_method(
        model_fn: ModelFn, x: Tensorish, eps: float, eps_iter: float, nb_iter: int, *,
        y: Labels = None, targets: Labels = None, objective: ObjectiveLike = "ce",
        norm: float = np.inf, clip_min: Bound = None, clip_max: Bound = None,
        decay_factor: float = 1.0, sanity_checks: bool = True,
) -> tf.Tensor:
    """MIM (cleverhans) minimising ``objective`` (patched in by :func:`_mim_with_loss`)."""
    return _gradient_attack(_mim_with_loss, model_fn, x, eps, y, targets, objective, norm,
                            clip_min, clip_max, sanity_checks, eps_iter=eps_iter,
                            nb_iter=nb_iter, decay_factor=decay_factor)
