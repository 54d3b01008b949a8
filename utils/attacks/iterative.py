"""White-box ℓ∞ gradient attacks (FGSM, BIM, PGD, MIM), registered by the original names.

Every attack is ``init -> (step -> project) x num_iter`` on the perturbation ``delta``:
*init* is zero or uniform in the ε-ball, *step* moves against the gradient of an
:mod:`utils.attacks.objectives` objective (which the attacker MINIMISES), *project* clips
``delta`` to the ε-ball and to ``[clip_min - x, clip_max - x]``. The whole loop of one
batch runs as one compiled graph (:func:`attack_graph`, which adversarial training also
calls from inside its own compiled training step).

    attack = ATTACKS.get("MadryEtAl")
    x_adv = attack(model, x, y_onehot, objective=OBJECTIVES.get("ce").fn, eps=8 / 256,
                   eps_iter=2 / 256, num_iter=10, clip_min=data.clip_min, clip_max=data.clip_max)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from utils.errors import UsageError, check_count, check_real
from utils.attacks.objectives import Objective
from utils.registry import Registry

Tensorish = Union[np.ndarray, tf.Tensor]
Seed = Union[None, int, Sequence[int]]
ModelFn = Callable[[tf.Tensor], tf.Tensor]
AttackFn = Callable[..., tf.Tensor]
# step(grad, state) -> (direction, state): x_adv moves by -eps_iter * direction.
StepFn = Callable[[tf.Tensor, tf.Tensor], Tuple[tf.Tensor, tf.Tensor]]

ATTACKS: Registry[AttackFn] = Registry("attack")
MOMENTUM_DECAY = 1.0  # MIM's decay factor mu (Dong et al. 2018, cleverhans default)


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """What defines one of the ℓ∞ gradient attacks: its ``step`` rule (a module-level
    :data:`StepFn`), whether it starts uniformly at random in the ε-ball by default, and
    whether it is a single step of size ``eps`` (FGSM). Attack scripts, restarts and
    adversarial training read these fields instead of keeping their own tables."""

    name: str
    step: "StepFn"
    random_start: bool = False
    single_step: bool = False


ATTACK_SPECS: Registry[AttackSpec] = Registry("attack")


# ---------------------------------------------------------------- steps (module-level, so
# that the compiled graph is cached per step function rather than retraced per call)

def sign_step(grad: tf.Tensor, state: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """FGSM / BIM / PGD: direction ``sign(grad)``; no state."""
    return tf.sign(grad), state


def momentum_step(grad: tf.Tensor, state: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """MIM: ``g = mu g + grad / mean|grad|`` per example (cleverhans' L1 normalisation),
    direction ``sign(g)``."""
    axes = tf.range(1, tf.rank(grad))
    norm = tf.maximum(tf.reduce_mean(tf.abs(grad), axis=axes, keepdims=True), 1e-12)
    state = MOMENTUM_DECAY * state + grad / norm
    return tf.sign(state), state


def project_linf(delta: tf.Tensor, eps: tf.Tensor, low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """Exact projection of ``delta`` onto ``[-eps, eps] ∩ [low, high]`` per coordinate
    (``low = clip_min - x <= 0 <= high = clip_max - x`` for a valid ``x``)."""
    return tf.clip_by_value(tf.clip_by_value(delta, -eps, eps), low, high)


@tf.function(reduce_retracing=True)
def attack_graph(model_fn: ModelFn, objective: Objective, step: StepFn, x: tf.Tensor,
                 labels: tf.Tensor, targets: Optional[tf.Tensor], eps: tf.Tensor,
                 eps_iter: tf.Tensor, num_iter: tf.Tensor, clip_min: tf.Tensor,
                 clip_max: tf.Tensor, rand_init: bool, seed: tf.Tensor) -> tf.Tensor:
    """init -> (step -> project) x num_iter, compiled once per (model, objective, step).

    Graph-safe core of :func:`run_iterative` (no validation, no host round trips): all
    tensors float32 except ``num_iter`` (int32 scalar) and ``seed`` (int64 ``(2,)``);
    ``clip_min``/``clip_max`` broadcast to ``x``; ``targets`` None for untargeted.
    """
    low, high = clip_min - x, clip_max - x
    if rand_init:
        delta = tf.random.stateless_uniform(tf.shape(x), seed, -1.0, 1.0) * eps
    else:
        delta = tf.zeros_like(x)
    delta = project_linf(delta, eps, low, high)
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
        direction, state = step(tape.gradient(total, x_adv), state)
        delta = project_linf(delta - eps_iter * direction, eps, low, high)
    return tf.clip_by_value(x + delta, clip_min, clip_max)


# ---------------------------------------------------------------- validation

def seed_tensor(seed: Seed) -> tf.Tensor:
    """A stateless-RNG seed ``(2,)`` int64 from an int, a pair, or None (fresh draw from
    NumPy's global generator, which ``keras.utils.set_random_seed`` seeds)."""
    if seed is None:
        seed = tuple(int(s) for s in np.random.randint(0, 2**31 - 1, size=2))
    elif np.ndim(seed) == 0:
        seed = (int(seed), 0)
    if len(seed) != 2:
        raise UsageError(f"seed must be an int or a pair of ints, got {seed!r}")
    return tf.constant([int(s) for s in seed], dtype=tf.int64)


def _check_clip(name: str, value: Any, x_shape: Tuple[int, ...]) -> tf.Tensor:
    arr = np.asarray(value, dtype=np.float32)
    try:
        np.broadcast_shapes(arr.shape, x_shape)
    except ValueError:
        raise UsageError(f"{name} of shape {arr.shape} does not broadcast to inputs of shape "
                         f"{x_shape}; pass a scalar or a per-pixel (H, W, C) array") from None
    if not np.all(np.isfinite(arr)):
        raise UsageError(f"{name} contains NaN or inf")
    if arr.ndim == len(x_shape) and arr.shape[0] != 1:
        return tf.constant(arr)  # already per example
    # One per-example shape for scalars and per-pixel arrays alike: a single trace.
    return tf.constant(np.broadcast_to(arr, (1,) + tuple(x_shape[1:])))


def prepare_inputs(x: Tensorish, labels_onehot: Tensorish, targets_onehot: Optional[Tensorish],
                   eps: float, eps_iter: float, num_iter: int, clip_min: Any,
                   clip_max: Any) -> tuple:
    """Validated float32 tensors ``(x, labels, targets, eps, eps_iter, num_iter, clip_min,
    clip_max)`` shared by every attack loop; :class:`UsageError` on any impossible value."""
    eps = check_real("eps", eps)
    eps_iter = check_real("eps_iter", eps_iter, positive=True)
    check_count("num_iter", num_iter)
    x, labels, targets, low, high = prepare_batch(x, labels_onehot, targets_onehot, clip_min,
                                                  clip_max)
    return x, labels, targets, eps, eps_iter, int(num_iter), low, high


def prepare_batch(x: Tensorish, labels_onehot: Tensorish, targets_onehot: Optional[Tensorish],
                  clip_min: Any, clip_max: Any) -> tuple:
    """Validated float32 ``(x, labels, targets, clip_min, clip_max)`` (clip bounds shaped
    ``(1, H, W, C)`` or per example) shared by every attack, ε-bounded or not."""
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    labels = tf.convert_to_tensor(labels_onehot, dtype=tf.float32)
    if x.shape.rank is None or x.shape.rank < 2 or labels.shape.rank != 2 \
            or labels.shape[0] != x.shape[0]:
        raise UsageError(f"need x (batch, ...) and one-hot labels (batch, L); got x {x.shape}, "
                         f"labels {labels.shape}")
    targets = None
    if targets_onehot is not None:
        targets = tf.convert_to_tensor(targets_onehot, dtype=tf.float32)
        if targets.shape != labels.shape:
            raise UsageError(f"targets_onehot shape {targets.shape} != labels {labels.shape}")
    low = _check_clip("clip_min", clip_min, tuple(x.shape))
    high = _check_clip("clip_max", clip_max, tuple(x.shape))
    if np.any(low.numpy() > high.numpy()):
        raise UsageError("clip_min exceeds clip_max somewhere; check the data range")
    return x, labels, targets, low, high


def run_iterative(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
                  objective: Objective, step: StepFn, eps: float, eps_iter: float,
                  num_iter: int, clip_min: Any, clip_max: Any,
                  targets_onehot: Optional[Tensorish] = None, rand_init: bool = False,
                  seed: Seed = None) -> tf.Tensor:
    """The shared ℓ∞ loop behind every registered attack (see the module docstring).

    Args:
        model_fn: ``x -> logits`` ``(batch, L)``; a ``keras.Model`` works. Reuse the same
            callable across batches: the compiled graph is cached per callable.
        x: ``(batch, ...)`` float32 inputs in model units, within ``[clip_min, clip_max]``.
        labels_onehot: ``(batch, L)`` true labels.
        objective: an :data:`utils.attacks.objectives.Objective`, minimised.
        step: :func:`sign_step` or :func:`momentum_step` (or another module-level StepFn).
        eps: ℓ∞ radius in model input units (ε in /256 units is converted by the caller:
            ``eps = eps_256 / 256``); 0 returns ``x`` unchanged.
        eps_iter: step size per iteration, same units, > 0.
        num_iter: number of steps, >= 1.
        clip_min, clip_max: valid input range, scalars or arrays broadcastable to ``x``
            (per-pixel ``(H, W, C)`` after mean subtraction).
        targets_onehot: ``(batch, L)`` targets for a targeted objective, else None.
        rand_init: start uniformly at random in the ε-ball.
        seed: int or pair of ints for the random start (None: drawn from NumPy).

    Returns:
        ``x_adv`` float32, shape of ``x``, with ``|x_adv - x| <= eps`` and
        ``clip_min <= x_adv <= clip_max`` element-wise.
    """
    x, labels, targets, eps, eps_iter, num_iter, low, high = prepare_inputs(
        x, labels_onehot, targets_onehot, eps, eps_iter, num_iter, clip_min, clip_max)
    if eps == 0.0:
        return x
    return attack_graph(model_fn, objective, step, x, labels, targets,
                        tf.constant(eps, tf.float32), tf.constant(eps_iter, tf.float32),
                        tf.constant(num_iter, tf.int32), low, high, bool(rand_init),
                        seed_tensor(seed))


# ---------------------------------------------------------------- the registered attacks

def spec_attack(spec: AttackSpec) -> AttackFn:
    """The attack of ``spec`` with the uniform signature of :data:`ATTACKS`:
    ``(model_fn, x, labels_onehot, *, objective, eps, eps_iter, num_iter, clip_min,
    clip_max, targets_onehot=None, rand_init=None, seed=None) -> x_adv``; ``rand_init``
    None means the spec's default. A single-step attack validates ``eps_iter`` and
    ``num_iter`` for the uniform interface but takes one step of size ``eps``; arguments
    otherwise as :func:`run_iterative`."""

    def attack(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
               objective: Objective, eps: float, eps_iter: float, num_iter: int,
               clip_min: Any, clip_max: Any, targets_onehot: Optional[Tensorish] = None,
               rand_init: Optional[bool] = None, seed: Seed = None) -> tf.Tensor:
        if spec.single_step:
            prepare_inputs(x, labels_onehot, targets_onehot, eps, eps_iter, num_iter,
                           clip_min, clip_max)
            eps_iter, num_iter = max(float(eps), 1e-30), 1
        return run_iterative(model_fn, x, labels_onehot, objective=objective, step=spec.step,
                             eps=eps, eps_iter=eps_iter, num_iter=num_iter, clip_min=clip_min,
                             clip_max=clip_max, targets_onehot=targets_onehot,
                             rand_init=spec.random_start if rand_init is None else bool(rand_init),
                             seed=seed)

    attack.__name__ = attack.__qualname__ = spec.name
    attack.__doc__ = f"{spec.name}: see :class:`AttackSpec` and :func:`spec_attack`."
    return attack


def register_attack(spec: AttackSpec) -> AttackFn:
    """Register ``spec`` in :data:`ATTACK_SPECS` and its attack in :data:`ATTACKS`."""
    ATTACK_SPECS.register(spec.name)(spec)
    return ATTACKS.register(spec.name)(spec_attack(spec))


# FGSM (Goodfellow et al. 2015): one sign step of size eps from x. BIM (Kurakin et al.
# 2016): num_iter sign steps of eps_iter from x. PGD (Madry et al. 2018): BIM from a uniform
# random start in the eps-ball. MIM (Dong et al. 2018): sign steps along the accumulated
# L1-normalised gradient, decay MOMENTUM_DECAY.
fast_gradient_method = register_attack(AttackSpec("FastGradientMethod", sign_step,
                                                  single_step=True))
basic_iterative_method = register_attack(AttackSpec("BasicIterativeMethod", sign_step))
madry_et_al = register_attack(AttackSpec("MadryEtAl", sign_step, random_start=True))
momentum_iterative_method = register_attack(AttackSpec("MomentumIterativeMethod",
                                                       momentum_step))


# ---------------------------------------------------------------- restarts

def attack_succeeded(logits: Tensorish, labels: Tensorish,
                     targets: Optional[Tensorish] = None) -> tf.Tensor:
    """``(batch,)`` bool: misclassified (untargeted) or predicted as the target. The one
    success test of every attack and evaluation loop; ``labels`` and ``targets`` are
    one-hot ``(batch, L)`` or class indices ``(batch,)``."""
    pred = tf.argmax(logits, axis=-1)
    if targets is None:
        return tf.not_equal(pred, _class_indices(labels))
    return tf.equal(pred, _class_indices(targets))


def _class_indices(t: Tensorish) -> tf.Tensor:
    t = tf.convert_to_tensor(t)
    return tf.argmax(t, axis=-1) if t.shape.rank == 2 else tf.cast(t, tf.int64)


def restart_seed(seed: Seed, restart: int) -> Optional[Tuple[int, int]]:
    """The seed of restart ``restart`` (0 keeps ``seed``): the second word moves by
    ``restart * 2**32``, so restarts never share a draw with other batches' seeds."""
    if seed is None:
        return None
    first, second = (int(seed), 0) if np.ndim(seed) == 0 else (int(seed[0]), int(seed[1]))
    return first, second + (restart << 32)


BACKENDS = ("native", "cleverhans")


def get_attack(name: str, backend: str = "native") -> AttackFn:
    """Attack ``name`` of ``backend``: ``native`` (:data:`ATTACKS`) or ``cleverhans``
    (:data:`utils.attacks.cleverhans_backend.CLEVERHANS_ATTACKS`, same signature)."""
    if backend == "native":
        return ATTACKS.get(name)
    if backend == "cleverhans":
        from utils.attacks.cleverhans_backend import CLEVERHANS_ATTACKS
        return CLEVERHANS_ATTACKS.get(name)
    raise UsageError(f"unknown attack backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


def worst_case_over_restarts(attack_name: str, model_fn: ModelFn, x: Tensorish,
                             labels_onehot: Tensorish, *, num_restarts: int,
                             seed: Seed = None, targets_onehot: Optional[Tensorish] = None,
                             rand_init: Optional[bool] = None, backend: str = "native",
                             **attack_kwargs: Any) -> tf.Tensor:
    """Run attack ``attack_name`` ``num_restarts`` times and keep, per example, the first
    successful ``x_adv`` (see :func:`attack_succeeded`), else the last one.

    Restart ``r`` uses :func:`restart_seed` ``(seed, r)``, so restart 0 is exactly the
    single run with ``seed`` and the result is never weaker than it. Attacks without a
    random start are deterministic and run once. ``backend``: see :func:`get_attack`.
    ``attack_kwargs`` (objective, eps, eps_iter, num_iter, clip_min, clip_max) go to the
    attack unchanged.

    Returns:
        ``x_adv`` float32, shape of ``x``.
    """
    check_count("num_restarts", num_restarts)
    attack = get_attack(attack_name, backend)
    random = ATTACK_SPECS.get(attack_name).random_start if rand_init is None else bool(rand_init)
    runs = int(num_restarts) if random else 1
    best, done = None, None
    for restart in range(runs):
        x_adv = attack(model_fn, x, labels_onehot, targets_onehot=targets_onehot,
                       rand_init=rand_init, seed=restart_seed(seed, restart), **attack_kwargs)
        success = attack_succeeded(model_fn(x_adv), labels_onehot, targets_onehot)
        if best is None:
            best, done = x_adv, success
        else:
            keep = tf.reshape(done, [-1] + [1] * (len(x_adv.shape) - 1))
            best = tf.where(keep, best, x_adv)
            done = tf.logical_or(done, success)
        if bool(tf.reduce_all(done)):
            break
    return best
