"""APGD: step-size-free PGD with momentum (Croce & Hein 2020), ℓ∞ and ℓ2, any objective.

The attacker MINIMISES an :mod:`utils.attacks.objectives` objective ``v`` (internally it ascends
``f = -v``). From a random start it takes momentum steps (``alpha = 0.75``) with an
initial step of ``2 eps``; at the checkpoints (:func:`checkpoint_schedule`: after 22,
41, 57, 70, 80, 87, 93, 99 of 100 steps) a sample halves its step and restarts from its
best point when

* condition 1: at most ``rho = 0.75`` of the steps of the window just ended increased
  ``f`` (each step compared with the one before it), or
* condition 2: its step was not halved at the last checkpoint and its best ``f`` did
  not improve since then.

Where the paper (Croce & Hein 2020, Alg. 1 and §3.1) and AutoAttack's code
(``autopgd_base.py``, which produced the published numbers) differ, this follows the code:

* condition 1 halves at ``<= rho`` (the paper: ``< rho``);
* the first window's first step is compared with 0, the code's zero-initialised loss
  history (``loss_steps[-1]``), not with the loss at the start point;
* after a halving the next step is compared with the loss of the last iterate before
  the restart from the best point (the loss history is not rewritten);
* the checkpoints come from integer windows (:func:`checkpoint_windows`), equal to the
  paper's ``ceil(p_j num_iter)`` for ``num_iter = 100``;
* ``x_adv`` is the LAST misclassified iterate (the code's ``x_best_adv``).

Only the random draws differ (per example, :func:`utils.attacks.core.example_seeds`):
``bench/autoattack_vs_reference.py`` measures the parity.

Everything is per sample, and the whole loop of one batch is one compiled graph
(:func:`apgd_graph`); the schedule is computed in Python and passed as a tensor.
``eps`` is in model input units (pixels/255 after mean subtraction; the scripts take
``eps_256`` and pass ``eps_256 / 256``).

    x_adv = apgd(model, x, y_onehot, objective=OBJECTIVES.get("ce").fn, eps=8 / 256,
                 num_iter=100, clip_min=data.clip_min, clip_max=data.clip_max, seed=0)
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, NamedTuple, Optional, Tuple

import tensorflow as tf

from utils.attacks.core import (AttackSpec, ModelFn, Seed, Tensorish, attack_succeeded,
                                example_indices, example_seeds, fixed_seed, prepare_inputs,
                                register_spec)
from utils.errors import UsageError, check_count
from utils.attacks.objectives import Objective
from utils.attacks.threat_model import ThreatModel, per_sample, threat_model

MOMENTUM = 0.75          # alpha: weight of the new gradient step against the last move
RHO = 0.75               # condition 1: maximum share of loss-increasing steps that halves
INITIAL_STEP = 2.0       # first step size, in units of eps
CHECKPOINT_FIRST = 0.22  # p_1: the first window, as a share of num_iter
CHECKPOINT_SHRINK = 0.03  # each window is this share of num_iter shorter ...
CHECKPOINT_MIN = 0.06    # ... down to this share


# ---------------------------------------------------------------- the schedule

def checkpoint_windows(num_iter: int) -> List[int]:
    """The lengths of the windows between checkpoints, as AutoAttack's code makes them:
    the first ``max(int(0.22 n), 1)``, each next one ``max(int(0.03 n), 1)`` shorter but
    at least ``max(int(0.06 n), 1)``, until they pass ``n = num_iter``.

    The paper's ``w_j = ceil(p_j n)`` with ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
    0.06)`` gives the same checkpoints whenever ``0.03 n`` and ``0.22 n`` are integers
    (``n = 100``: ``[22, 41, 57, 70, 80, 87, 93, 99]``); elsewhere the two differ and we
    follow the code (``autopgd_base.py``'s ``n_iter_2``, ``size_decr``, ``n_iter_min``),
    which produced the published numbers (``n = 10``: windows of 2, 1, 1, ...).
    """
    check_count("num_iter", num_iter)
    window = max(int(CHECKPOINT_FIRST * num_iter), 1)
    shrink = max(int(CHECKPOINT_SHRINK * num_iter), 1)
    shortest = max(int(CHECKPOINT_MIN * num_iter), 1)
    windows: List[int] = []
    while sum(windows) + window <= num_iter:
        windows.append(window)
        window = max(window - shrink, shortest)
    return windows


def checkpoint_schedule(num_iter: int) -> List[int]:
    """Iterations ``[0, w_1, w_2, ...]`` (strictly increasing, ``<= num_iter``) after
    which the step size may be halved: the running sums of :func:`checkpoint_windows`.
    ``num_iter = 100`` gives ``[0, 22, 41, 57, 70, 80, 87, 93, 99]``, the published
    schedule."""
    points = [0]
    for window in checkpoint_windows(num_iter):
        points.append(points[-1] + window)
    return points


# ---------------------------------------------------------------- graph pieces

def _evaluate(model_fn: ModelFn, objective: Objective, x_adv: tf.Tensor, labels: tf.Tensor,
              targets: Optional[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(logits, f, df/dx)`` with ``f = -objective`` ``(batch,)`` (ascended)."""
    with tf.GradientTape() as tape:
        tape.watch(x_adv)
        logits = tf.cast(model_fn(x_adv), tf.float32)
        value = objective(logits, labels) if targets is None else objective(logits, labels,
                                                                            targets)
        loss = -tf.cast(value, tf.float32)
        total = tf.reduce_sum(loss)
    return logits, loss, tape.gradient(total, x_adv)


def _success(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor],
             on_target: bool) -> tf.Tensor:
    """:func:`utils.attacks.core.attack_succeeded`; with a targeted objective, success
    is reaching the target only when ``on_target`` (else: any misclassification)."""
    return attack_succeeded(logits, labels, targets if on_target else None)


class _State(NamedTuple):
    """Loop state; ``(B, ...)`` image-shaped unless noted, ``(B,)`` per-sample scalars."""

    x_adv: tf.Tensor
    x_prev: tf.Tensor       # the iterate before x_adv (momentum term x_adv - x_prev)
    grad: tf.Tensor
    loss: tf.Tensor         # (B,) f of the last iterate, the loss history the next step
    #                         is compared with (0 before the first step, as AutoAttack)
    x_best: tf.Tensor
    grad_best: tf.Tensor
    loss_best: tf.Tensor    # (B,)
    x_hit: tf.Tensor        # last iterate that succeeded (AutoAttack's x_best_adv)
    hit: tf.Tensor          # (B,) bool
    step: tf.Tensor         # (B,) step size
    n_increase: tf.Tensor   # (B,) steps that raised f since the last checkpoint
    loss_best_last: tf.Tensor  # (B,) loss_best at the last checkpoint
    reduced_last: tf.Tensor    # (B,) bool: step halved at the last checkpoint
    check: tf.Tensor        # () int32 index of the next checkpoint
    last_check: tf.Tensor   # () int32 iteration of the last checkpoint


def _momentum_step(s: _State, i: tf.Tensor, x: tf.Tensor, eps: tf.Tensor,
                   threat: ThreatModel, clip_min: tf.Tensor, clip_max: tf.Tensor) -> tf.Tensor:
    """``z = P(x_k + eta d)``, ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))``
    with ``a = 1`` on the first step."""
    z = threat.project(s.x_adv + per_sample(s.step, x) * threat.direction(s.grad), x, eps,
                       clip_min, clip_max)
    a = tf.where(i > 0, MOMENTUM, 1.0)
    moved = s.x_adv + a * (z - s.x_adv) + (1.0 - a) * (s.x_adv - s.x_prev)
    return threat.project(moved, x, eps, clip_min, clip_max)


def _at_checkpoint(s: _State, i: tf.Tensor, checks: tf.Tensor, rho: tf.Tensor) -> _State:
    """Conditions 1 and 2 after ``i + 1`` steps; halve and restart where either holds.

    As AutoAttack's ``check_oscillation``: condition 1 is ``increases <= rho * window``;
    the loss history (``s.loss``) is left as it was, so the step after a restart is
    compared with the iterate before it."""
    is_check = tf.equal(i + 1, tf.gather(checks, s.check))
    window = tf.cast(tf.gather(checks, s.check) - s.last_check, tf.float32)
    cond1 = tf.cast(s.n_increase, tf.float32) <= rho * window
    cond2 = tf.logical_and(tf.logical_not(s.reduced_last), s.loss_best <= s.loss_best_last)
    reduce = tf.logical_and(is_check, tf.logical_or(cond1, cond2))
    back = per_sample(reduce, s.x_adv)
    return s._replace(
        x_adv=tf.where(back, s.x_best, s.x_adv), grad=tf.where(back, s.grad_best, s.grad),
        step=tf.where(reduce, s.step / 2.0, s.step),
        n_increase=tf.where(is_check, tf.zeros_like(s.n_increase), s.n_increase),
        loss_best_last=tf.where(is_check, s.loss_best, s.loss_best_last),
        reduced_last=tf.where(is_check, reduce, s.reduced_last),
        check=s.check + tf.cast(is_check, tf.int32),
        last_check=tf.where(is_check, i + 1, s.last_check))


@tf.function(reduce_retracing=True)
def apgd_graph(model_fn: ModelFn, objective: Objective, threat: ThreatModel, x: tf.Tensor,
               labels: tf.Tensor, targets: Optional[tf.Tensor], eps: tf.Tensor,
               checks: tf.Tensor, num_iter: tf.Tensor, clip_min: tf.Tensor, clip_max: tf.Tensor,
               noise: tf.Tensor, rho: tf.Tensor, on_target: bool) -> Tuple[tf.Tensor, ...]:
    """One APGD run of a batch, compiled once per (model, objective, threat model,
    on_target); ``noise`` ``(B, ...)`` the start noise (:meth:`ThreatModel.noise`).

    ``checks`` int32 are the checkpoints ``w_1, w_2, ...`` followed by one sentinel that
    no iteration reaches. Returns ``(x_adv, success, x_best, loss_best, step_trace)``:
    ``x_adv`` the last successful iterate where there is one, else ``x_best`` (the
    iterate of largest ``f``); ``step_trace`` ``(num_iter, B)`` the step used at each step.
    """
    x_adv = threat.init(x, noise, eps, clip_min, clip_max)
    logits, loss, grad = _evaluate(model_fn, objective, x_adv, labels, targets)
    hit = _success(logits, labels, targets, on_target)
    batch = tf.shape(x)[0]
    s = _State(x_adv, x_adv, grad, tf.zeros_like(loss), x_adv, grad, loss, x_adv, hit,
               tf.fill([batch], INITIAL_STEP * eps), tf.zeros([batch], tf.int32), loss,
               tf.fill([batch], True), tf.constant(0), tf.constant(0))
    trace = tf.TensorArray(tf.float32, size=num_iter)

    def body(i: tf.Tensor, s: _State, trace: tf.TensorArray):
        trace = trace.write(i, s.step)
        x_new = _momentum_step(s, i, x, eps, threat, clip_min, clip_max)
        logits, loss, grad = _evaluate(model_fn, objective, x_new, labels, targets)
        success = _success(logits, labels, targets, on_target)
        better = loss > s.loss_best
        up = per_sample(better, x)
        s = s._replace(
            x_adv=x_new, x_prev=s.x_adv, grad=grad, loss=loss,
            x_best=tf.where(up, x_new, s.x_best), grad_best=tf.where(up, grad, s.grad_best),
            loss_best=tf.where(better, loss, s.loss_best),
            x_hit=tf.where(per_sample(success, x), x_new, s.x_hit),
            hit=tf.logical_or(s.hit, success),
            n_increase=s.n_increase + tf.cast(loss > s.loss, tf.int32))
        return i + 1, _at_checkpoint(s, i, checks, rho), trace

    _, s, trace = tf.while_loop(lambda i, *_: i < num_iter, body, (tf.constant(0), s, trace))
    x_out = tf.where(per_sample(s.hit, x), s.x_hit, s.x_best)
    return x_out, s.hit, s.x_best, s.loss_best, trace.stack()


# ---------------------------------------------------------------- public API

@dataclasses.dataclass(frozen=True)
class APGDResult:
    """One APGD run of a batch of ``B`` examples.

    Attributes:
        x_adv: ``(B, ...)`` float32, the last successful iterate, else ``x_best``.
        success: ``(B,)`` bool, misclassified (or, with ``success_on_target``, predicted
            as the target) at some iterate, the start included.
        x_best: ``(B, ...)`` the iterate with the lowest objective value.
        best_value: ``(B,)`` that lowest objective value (the objective's units).
        step_sizes: ``(num_iter, B)`` the step size used at each step (model units).
    """

    x_adv: tf.Tensor
    success: tf.Tensor
    x_best: tf.Tensor
    best_value: tf.Tensor
    step_sizes: tf.Tensor


def apgd_run(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *,
             objective: Objective, eps: float, clip_min: Any, clip_max: Any,
             num_iter: int = 100, norm: str = "linf",
             targets_onehot: Optional[Tensorish] = None, success_on_target: bool = False,
             seed: Seed = None, example_index: Optional[Tensorish] = None,
             restart: int = 0, rho: float = RHO) -> APGDResult:
    """One APGD run (see the module docstring).

    Args:
        model_fn: ``x -> logits`` ``(B, L)``; reuse the same callable across batches (the
            compiled graph is cached per callable).
        x: ``(B, ...)`` float32 inputs in model units within ``[clip_min, clip_max]``.
        labels_onehot: ``(B, L)`` true labels.
        objective: an :data:`utils.attacks.objectives.Objective`, minimised (``ce``, ``dlr``,
            ``mmc_un1``; targeted ones such as ``dlr_targeted`` need ``targets_onehot``).
        eps: radius in model units (ℓ∞, or ℓ2 over the whole input); 0 returns ``x``.
        clip_min: lower input bound, a scalar or an array broadcastable to ``x``
            (per-pixel).
        clip_max: upper input bound, as ``clip_min``.
        num_iter: steps (gradient evaluations after the start), >= 1.
        norm: ``"linf"`` or ``"l2"``.
        targets_onehot: ``(B, L)`` targets for a targeted objective, else None.
        success_on_target: success means predicted as the target, not just wrong.
        seed: stateless seed of the random start (None: drawn from NumPy).
        example_index: ``(B,)`` global example indices (default ``arange(B)``) and
        restart: the restart number; example ``i``'s start depends only on
            ``(seed, i, restart)`` (:func:`utils.attacks.core.example_seeds`).
        rho: condition-1 threshold.

    Returns:
        :class:`APGDResult`; ``|x_adv - x| <= eps`` in ``norm`` and within the clips.
    """
    threat = threat_model(norm)
    checks = checkpoint_schedule(num_iter)
    x, labels, targets, eps, _, num_iter, low, high = prepare_inputs(
        x, labels_onehot, targets_onehot, eps, 1.0, num_iter, clip_min, clip_max)
    if success_on_target and targets is None:
        raise UsageError("success_on_target needs targets_onehot")
    if eps == 0.0:
        return _unmoved(model_fn, objective, x, labels, targets, num_iter, success_on_target)
    noise = threat.noise(x.shape, example_seeds(
        seed, example_indices(example_index, int(x.shape[0])), restart))
    out = apgd_graph(model_fn, objective, threat, x, labels, targets,
                     tf.constant(eps, tf.float32), tf.constant(checks[1:] + [-1], tf.int32),
                     tf.constant(num_iter, tf.int32), low, high, noise,
                     tf.constant(rho, tf.float32), bool(success_on_target))
    x_adv, success, x_best, loss_best, trace = out
    return APGDResult(x_adv, success, x_best, -loss_best, trace)


def _unmoved(model_fn: ModelFn, objective: Objective, x: tf.Tensor, labels: tf.Tensor,
             targets: Optional[tf.Tensor], num_iter: int, on_target: bool) -> APGDResult:
    """The ``eps = 0`` result: ``x`` itself."""
    logits, loss, _ = _evaluate(model_fn, objective, x, labels, targets)
    return APGDResult(x, _success(logits, labels, targets, on_target), x, -loss,
                      tf.zeros([num_iter, x.shape[0]]))


def apgd(model_fn: ModelFn, x: Tensorish, labels_onehot: Tensorish, *, objective: Objective,
         eps: float, clip_min: Any, clip_max: Any, num_iter: int = 100, norm: str = "linf",
         targets_onehot: Optional[Tensorish] = None, success_on_target: bool = False,
         num_restarts: int = 1, seed: Seed = None,
         example_index: Optional[Tensorish] = None) -> tf.Tensor:
    """APGD with ``num_restarts`` random starts, per-sample worst case: a successful
    ``x_adv`` from the first restart that found one, else the lowest-objective point.
    Restart ``r`` is :func:`apgd_run` with ``restart=r``. Other arguments as
    :func:`apgd_run`; returns ``x_adv`` ``(B, ...)`` float32."""
    check_count("num_restarts", num_restarts)
    seed = fixed_seed(seed)
    best: Optional[APGDResult] = None
    for restart in range(int(num_restarts)):
        run = apgd_run(model_fn, x, labels_onehot, objective=objective, eps=eps,
                       clip_min=clip_min, clip_max=clip_max, num_iter=num_iter, norm=norm,
                       targets_onehot=targets_onehot, success_on_target=success_on_target,
                       seed=seed, example_index=example_index, restart=restart)
        best = run if best is None else _merge(best, run)
        if bool(tf.reduce_all(best.success)):
            break
    return best.x_adv


def _merge(a: APGDResult, b: APGDResult) -> APGDResult:
    """Per sample: ``a`` if it succeeded, else ``b`` if it did, else the lower value."""
    keep_a = tf.logical_or(a.success, tf.logical_and(tf.logical_not(b.success),
                                                     a.best_value <= b.best_value))
    mask = per_sample(keep_a, a.x_adv)

    def pick(u, v):
        return tf.where(mask, u, v)

    return APGDResult(pick(a.x_adv, b.x_adv), tf.logical_or(a.success, b.success),
                      pick(a.x_best, b.x_best), tf.where(keep_a, a.best_value, b.best_value),
                      b.step_sizes)


register_spec(AttackSpec("APGD", random_start=True, objective_family="ce",
                         offered_by=frozenset({"ensemble member", "iterative"})))
