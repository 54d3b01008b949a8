"""cleverhans 4 as a backend of the registered gradient attacks
(``--attack_backend=cleverhans``), in ℓ∞ and ℓ2.

:data:`CLEVERHANS_ATTACKS` holds FGSM, BIM, PGD (MadryEtAl) and MIM with the call signature
of :data:`utils.attacks.iterative.ATTACKS` (validated by the same
:func:`utils.attacks.core.prepare_inputs`), running cleverhans' own loops through the
wrappers of :mod:`utils.attacks.cleverhans_compat` with the same objective; ``norm="l2"``
is cleverhans' ``norm=2``. Differences from the native loops: cleverhans' PGD asserts
``eps_iter <= eps`` (refused here as a usage error), and MadryEtAl's random start comes
from TF's global generator, seeded per call from ``(seed, restart)`` with
``tf.random.set_seed`` (not per example: ``example_index`` is accepted and unused).
Registers itself as backend ``cleverhans`` when imported
(:func:`utils.attacks.core.load_backend`).

    attack = get_attack("MadryEtAl", "cleverhans")   # utils.attacks.core.get_attack
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf

from utils.attacks import cleverhans_compat as cc
from utils.attacks.core import (AttackFn, ModelFn, Seed, Tensorish, fixed_seed, prepare_inputs,
                                register_backend)
from utils.attacks.iterative import MOMENTUM_DECAY
from utils.attacks.objectives import Objective
from utils.attacks.threat_model import check_norm
from utils.errors import UsageError
from utils.registry import Registry

CLEVERHANS_ATTACKS: Registry[AttackFn] = Registry("cleverhans attack")
CLEVERHANS_NORMS = {"linf": np.inf, "l2": 2}


def _register(name: str, call: Callable[..., tf.Tensor], iterative: bool,
              random_start: bool = False) -> None:
    """Register ``call(model_fn, x, eps[, eps_iter, num_iter], **common)`` under ``name``."""

    def attack(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
               objective: Objective, eps: float, eps_iter: float, num_iter: int,
               clip_min: Any, clip_max: Any, norm: str = "linf",
               targets_onehot: Optional[Tensorish] = None, rand_init: Optional[bool] = None,
               seed: Seed = None, example_index: Optional[Tensorish] = None,
               restart: int = 0) -> tf.Tensor:
        check_norm(norm)
        x, labels, targets, eps, eps_iter, num_iter, low, high = prepare_inputs(
            x, labels_onehot, targets_onehot, eps, eps_iter, num_iter, clip_min, clip_max)
        if rand_init is not None and bool(rand_init) != random_start:
            raise UsageError(f"cleverhans' {name} {'always' if random_start else 'never'} "
                             "starts at random; use --attack_backend=native")
        if eps == 0.0:
            return x
        if iterative and eps_iter > eps:
            raise UsageError(f"cleverhans' {name} needs eps_iter <= eps, got eps_iter "
                             f"{eps_iter} > eps {eps}; lower --eps_iter_256 or use "
                             "--attack_backend=native")
        if random_start:
            tf.random.set_seed(hash(fixed_seed(seed) + (restart,)) % 2**31)
        common = dict(y=labels, targets=targets, objective=objective, clip_min=low,
                      clip_max=high, norm=CLEVERHANS_NORMS[norm], sanity_checks=False)
        if not iterative:
            return call(model_fn, x, eps, **common)
        return call(model_fn, x, eps, eps_iter, num_iter, **common)

    attack.__name__ = f"cleverhans_{name}"
    CLEVERHANS_ATTACKS.register(name)(attack)


def _mim(model_fn: ModelFn, x: tf.Tensor, eps: float, eps_iter: float, num_iter: int,
         **common: Any) -> tf.Tensor:
    return cc.momentum_iterative_method(model_fn, x, eps, eps_iter, num_iter,
                                        decay_factor=MOMENTUM_DECAY, **common)


_register("FastGradientMethod", cc.fast_gradient_method, iterative=False)
_register("BasicIterativeMethod", cc.basic_iterative_method, iterative=True)
_register("MadryEtAl", cc.madry_et_al, iterative=True, random_start=True)
_register("MomentumIterativeMethod", _mim, iterative=True)
register_backend("cleverhans", CLEVERHANS_ATTACKS)
