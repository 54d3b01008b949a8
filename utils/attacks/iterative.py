"""White-box gradient attacks (FGSM, BIM, PGD, MIM) in ℓ∞ and ℓ2, by the original names.

Every attack is ``init -> (step -> project) x num_iter`` on the perturbation ``delta``,
with the geometry of a :class:`utils.attacks.threat_model.ThreatModel`: *init* is zero or
its random start, *step* moves ``eps_iter`` along the threat model's unit direction of
the (step rule's) gradient of an :mod:`utils.attacks.objectives` objective (which the
attacker MINIMISES), *project* maps ``delta`` onto the ε-ball and into
``[clip_min - x, clip_max - x]``. The whole loop of one batch runs as one compiled graph
(:func:`attack_graph`, which adversarial training also calls from its compiled step).
This module is the ``native`` backend (:func:`utils.attacks.core.get_attack`).

    attack = ATTACKS.get("MadryEtAl")
    x_adv = attack(model, x, y_onehot, objective=OBJECTIVES.get("ce").fn, eps=8 / 256,
                   eps_iter=2 / 256, num_iter=10, clip_min=data.clip_min,
                   clip_max=data.clip_max, norm="linf", seed=0)
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import tensorflow as tf

from utils.attacks.core import (ATTACK_SPECS, AttackFn, AttackSpec, ModelFn, Seed, StepFn,
                                Tensorish, attack_succeeded, example_indices, example_seeds,
                                fixed_seed, get_attack, prepare_inputs, register_backend,
                                register_spec)
from utils.attacks.objectives import Objective
from utils.attacks.threat_model import ThreatModel, per_sample, threat_model
from utils.errors import check_count
from utils.registry import Registry

ATTACKS: Registry[AttackFn] = Registry("attack")
MOMENTUM_DECAY = 1.0  # MIM's decay factor mu (Dong et al. 2018, cleverhans default)
ITERATIVE_ENTRIES = frozenset({"iterative", "advtrain"})


# ---------------------------------------------------------------- steps (module-level, so
# that the compiled graph is cached per step function rather than retraced per call)

def gradient_step(grad: tf.Tensor, state: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """FGSM / BIM / PGD: the gradient itself; no state."""
    return grad, state


def momentum_step(grad: tf.Tensor, state: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """MIM: ``g = mu g + grad / mean|grad|`` per example (cleverhans' L1 normalisation);
    the loop moves along the threat model's direction of ``g``."""
    axes = tf.range(1, tf.rank(grad))
    norm = tf.maximum(tf.reduce_mean(tf.abs(grad), axis=axes, keepdims=True), 1e-12)
    state = MOMENTUM_DECAY * state + grad / norm
    return state, state


@tf.function(reduce_retracing=True)
def attack_graph(model_fn: ModelFn, objective: Objective, step: StepFn, threat: ThreatModel,
                 x: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor],
                 eps: tf.Tensor, eps_iter: tf.Tensor, num_iter: tf.Tensor,
                 clip_min: tf.Tensor, clip_max: tf.Tensor, rand_init: bool,
                 seeds: tf.Tensor, batch_draw: bool = False) -> tf.Tensor:
    """init -> (step -> project) x num_iter, compiled once per (model, objective, step,
    threat model).

    Graph-safe core of :func:`run_iterative` (no validation, no host round trips): all
    tensors float32 except ``num_iter`` (int32 scalar) and ``seeds`` (int64
    ``(batch, 2)``, :func:`utils.attacks.core.example_seeds`; with ``batch_draw`` one
    ``(2,)`` seed for the whole batch, as adversarial training passes:
    :meth:`ThreatModel.batch_noise`); ``clip_min``/``clip_max``
    broadcast to ``x``; ``targets`` None for untargeted.
    """
    low, high = clip_min - x, clip_max - x
    if rand_init:
        noise = (threat.batch_noise(tf.shape(x), seeds) if batch_draw
                 else threat.noise(x.shape, seeds))
        delta = threat.start_delta(noise, eps)
    else:
        delta = tf.zeros_like(x)
    delta = threat.project_delta(delta, eps, low, high)
    state = tf.zeros_like(x)
    for _ in tf.range(num_iter):
        with tf.GradientTape() as tape:
            x_adv = x + delta
            tape.watch(x_adv)
            logits = model_fn(x_adv)
            if targets is None:
                value = objective(logits, labels)
            else:
                value = objective(logits, labels, targets)
            total = tf.reduce_sum(tf.cast(value, tf.float32))
        grad, state = step(tape.gradient(total, x_adv), state)
        delta = threat.project_delta(delta - eps_iter * threat.direction(grad), eps, low, high)
    return tf.clip_by_value(x + delta, clip_min, clip_max)


def run_iterative(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
                  objective: Objective, step: StepFn, eps: float, eps_iter: float,
                  num_iter: int, clip_min: Any, clip_max: Any, norm: str = "linf",
                  targets_onehot: Optional[Tensorish] = None, rand_init: bool = False,
                  seed: Seed = None, example_index: Optional[Tensorish] = None,
                  restart: int = 0) -> tf.Tensor:
    """The shared loop behind every registered attack (see the module docstring).

    Args:
        model_fn: ``x -> logits`` ``(batch, L)``; a ``keras.Model`` works. Reuse the same
            callable across batches: the compiled graph is cached per callable.
        x: ``(batch, ...)`` float32 inputs in model units, within ``[clip_min, clip_max]``.
        labels_onehot: ``(batch, L)`` true labels.
        objective: an :data:`utils.attacks.objectives.Objective`, minimised.
        step: :func:`gradient_step` or :func:`momentum_step` (or another module-level
            StepFn).
        eps: radius in model input units (``eps_256 / 256``; ℓ2: over the whole input);
            0 returns ``x`` unchanged.
        eps_iter: step length per iteration, same units, > 0.
        num_iter: number of steps, >= 1.
        clip_min: lower end of the valid input range, a scalar or an array broadcastable
            to ``x`` (per-pixel ``(H, W, C)`` after mean subtraction).
        clip_max: upper end of the valid input range, as ``clip_min``.
        norm: ``linf`` or ``l2`` (:func:`utils.attacks.threat_model.threat_model`).
        targets_onehot: ``(batch, L)`` targets for a targeted objective, else None.
        rand_init: start at random in the ε-ball (:meth:`ThreatModel.start_delta`).
        seed: int or pair for the random start (None: drawn from NumPy).
        example_index: ``(batch,)`` global example indices (default ``arange(batch)``):
            example ``i``'s start depends only on ``(seed, i, restart)``.
        restart: restart number, shifts every example's seed.

    Returns:
        ``x_adv`` float32, shape of ``x``, with ``||x_adv - x|| <= eps`` in ``norm`` and
        ``clip_min <= x_adv <= clip_max`` element-wise.
    """
    threat = threat_model(norm)
    x, labels, targets, eps, eps_iter, num_iter, low, high = prepare_inputs(
        x, labels_onehot, targets_onehot, eps, eps_iter, num_iter, clip_min, clip_max)
    if eps == 0.0:
        return x
    seeds = example_seeds(seed, example_indices(example_index, int(x.shape[0])), restart)
    return attack_graph(model_fn, objective, step, threat, x, labels, targets,
                        tf.constant(eps, tf.float32), tf.constant(eps_iter, tf.float32),
                        tf.constant(num_iter, tf.int32), low, high, bool(rand_init), seeds)


# ---------------------------------------------------------------- the registered attacks

def spec_attack(spec: AttackSpec) -> AttackFn:
    """The attack of ``spec`` with the uniform signature of :data:`ATTACKS`:
    ``(model_fn, x, labels_onehot, *, objective, eps, eps_iter, num_iter, clip_min,
    clip_max, norm="linf", targets_onehot=None, rand_init=None, seed=None,
    example_index=None, restart=0) -> x_adv``; ``rand_init`` None means the spec's
    default. A single-step attack validates ``eps_iter`` and ``num_iter`` for the uniform
    interface but takes one step of length ``eps``; arguments as :func:`run_iterative`."""

    def attack(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
               objective: Objective, eps: float, eps_iter: float, num_iter: int,
               clip_min: Any, clip_max: Any, norm: str = "linf",
               targets_onehot: Optional[Tensorish] = None, rand_init: Optional[bool] = None,
               seed: Seed = None, example_index: Optional[Tensorish] = None,
               restart: int = 0) -> tf.Tensor:
        if spec.single_step:
            prepare_inputs(x, labels_onehot, targets_onehot, eps, eps_iter, num_iter,
                           clip_min, clip_max)
            eps_iter, num_iter = max(float(eps), 1e-30), 1
        return run_iterative(model_fn, x, labels_onehot, objective=objective, step=spec.step,
                             eps=eps, eps_iter=eps_iter, num_iter=num_iter, clip_min=clip_min,
                             clip_max=clip_max, norm=norm, targets_onehot=targets_onehot,
                             rand_init=spec.random_start if rand_init is None else bool(rand_init),
                             seed=seed, example_index=example_index, restart=restart)

    attack.__name__ = attack.__qualname__ = spec.name
    attack.__doc__ = f"{spec.name}: see :class:`AttackSpec` and :func:`spec_attack`."
    return attack


def register_attack(spec: AttackSpec) -> AttackFn:
    """Register ``spec`` in :data:`ATTACK_SPECS` and its attack in :data:`ATTACKS`."""
    register_spec(spec)
    return ATTACKS.register(spec.name)(spec_attack(spec))


# FGSM (Goodfellow et al. 2015): one step of length eps from x. BIM (Kurakin et al. 2016):
# num_iter steps of eps_iter from x. PGD (Madry et al. 2018): BIM from a random start in
# the eps-ball. MIM (Dong et al. 2018): steps along the accumulated L1-normalised
# gradient, decay MOMENTUM_DECAY. Reached by name (ATTACKS.get("MadryEtAl")); the
# functions named like cleverhans' are the cleverhans backend's (cleverhans_compat).
register_attack(AttackSpec(
    "FastGradientMethod", gradient_step, single_step=True, offered_by=ITERATIVE_ENTRIES))
register_attack(AttackSpec(
    "BasicIterativeMethod", gradient_step, offered_by=ITERATIVE_ENTRIES))
register_attack(AttackSpec(
    "MadryEtAl", gradient_step, random_start=True, offered_by=ITERATIVE_ENTRIES))
register_attack(AttackSpec(
    "MomentumIterativeMethod", momentum_step, offered_by=ITERATIVE_ENTRIES))
register_backend("native", ATTACKS)


# ---------------------------------------------------------------- restarts

def worst_case_over_restarts(attack_name: str, model_fn: ModelFn, x: Tensorish,
                             labels_onehot: Tensorish, *, num_restarts: int,
                             seed: Seed = None, targets_onehot: Optional[Tensorish] = None,
                             rand_init: Optional[bool] = None, backend: str = "native",
                             **attack_kwargs: Any) -> tf.Tensor:
    """Run attack ``attack_name`` of ``backend`` (:func:`utils.attacks.core.get_attack`)
    ``num_restarts`` times and keep, per example, the first successful ``x_adv`` (see
    :func:`utils.attacks.core.attack_succeeded`), else the last one.

    Restart ``r`` passes ``restart=r`` (every example's seed moves,
    :func:`utils.attacks.core.example_seeds`), so restart 0 is exactly the single run with
    ``seed`` and the result is never weaker than it. Attacks without a random start are
    deterministic and run once. ``attack_kwargs`` (objective, eps, eps_iter, num_iter,
    clip_min, clip_max, norm, example_index) go to the attack unchanged.

    Returns:
        ``x_adv`` float32, shape of ``x``.
    """
    check_count("num_restarts", num_restarts)
    attack = get_attack(attack_name, backend)
    random = ATTACK_SPECS.get(attack_name).random_start if rand_init is None else bool(rand_init)
    runs = int(num_restarts) if random else 1
    seed = fixed_seed(seed)
    best, done = None, None
    for restart in range(runs):
        x_adv = attack(model_fn, x, labels_onehot, targets_onehot=targets_onehot,
                       rand_init=rand_init, seed=seed, restart=restart, **attack_kwargs)
        success = attack_succeeded(model_fn(x_adv), labels_onehot, targets_onehot)
        if best is None:
            best, done = x_adv, success
        else:
            best = tf.where(per_sample(done, x_adv), best, x_adv)
            done = tf.logical_or(done, success)
        if bool(tf.reduce_all(done)):
            break
    return best
