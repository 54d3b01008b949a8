"""cleverhans 4 TF2 attacks on Keras 3 / NumPy 2, driven by our objectives.

The one module holding our fixes for cleverhans (the package itself is never edited).
:func:`cleverhans_loss_fn` turns a :mod:`utils.attacks.objectives` objective (the attacker
MINIMISES it) into cleverhans' ``loss_fn(labels, logits)``; the attacks keep cleverhans'
names and take ``y`` (true labels), ``targets`` (targeted iff given; int ``(batch,)`` or
one-hot) and ``objective`` (a registered name or a callable).

    x_adv = projected_gradient_descent(model, x, 8 / 256, 2 / 256, 10, y=y, objective="mmc_un1")
    x_adv = carlini_wagner_l2(model, x, y=y, targets=t, objective="mmc_tar2")

cleverhans 4.0.0 breakages fixed here (tests/test_cleverhans_compat.py shows each): C&W-L2
calls ``optimizer.variables()`` (a list in Keras 3, and zeroing it zeroes the learning
rate), shapes ``const`` like ``x``, shares one optimizer across batches, takes any ``y``
as targets and does not slice it per batch, ignores ``confidence`` when judging success,
multiplies bisected constants by 10, needs 4-D inputs; SPSA passes ``lr=`` to a Keras 3
Adam and reads ``self.lr``; BIM/MadryEtAl's default ``sanity_checks`` call ``np.all`` on a
ragged list (NumPy >= 1.24 refuses); MadryEtAl starts in a 0.3-ball; MIM hard-codes CE.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks import fast_gradient_method as _ch_fgm
from cleverhans.tf2.attacks import momentum_iterative_method as _ch_mim
from cleverhans.tf2.attacks import projected_gradient_descent as _ch_pgd
from cleverhans.tf2.attacks.carlini_wagner_l2 import clip_tanh, l2 as squared_l2
from cleverhans.tf2.attacks.spsa import SPSAAdam, projected_optimization

from utils.errors import UsageError
from utils.attacks.objectives import OBJECTIVES, Objective
from utils.attacks.const_search import is_adversarial, update_const

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


def resolve_objective(objective: ObjectiveLike, targeted: bool) -> Objective:
    """The objective function for ``objective``; UsageError on a mode mismatch."""
    if callable(objective):
        return objective
    spec = OBJECTIVES.get(objective)
    if spec.targeted is not None and spec.targeted != targeted:
        mode = "targeted" if spec.targeted else "untargeted"
        raise UsageError(f"objective {objective} is {mode}; pass targets accordingly")
    return spec.fn


def to_onehot(labels: Tensorish, num_classes: int) -> tf.Tensor:
    """float32 one-hot ``(batch, num_classes)`` from int ``(batch,)`` or one-hot labels."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 1:
        return tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    return tf.cast(labels, tf.float32)


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
        num_classes = logits.shape[-1]
        if not targeted:
            return -fn(logits, to_onehot(labels, num_classes))
        true = None if true_labels is None else to_onehot(true_labels, num_classes)
        return fn(logits, true, targets=to_onehot(labels, num_classes))
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


def _prepare(model_fn: ModelFn, x: Tensorish, y: Labels,
             targets: Labels) -> Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]:
    """float32 ``x``, one-hot labels (default: the predictions) and targets (or None)."""
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    logits = model_fn(x)
    labels = to_onehot(tf.argmax(logits, axis=-1) if y is None else y, int(logits.shape[-1]))
    return x, labels, None if targets is None else to_onehot(targets, labels.shape[-1])


def _gradient_attack(attack: Callable[..., tf.Tensor], model_fn: ModelFn, x: Tensorish,
                     eps: float, y: Labels, targets: Labels, objective: ObjectiveLike,
                     norm: float, clip_min: Bound, clip_max: Bound, sanity_checks: bool,
                     **extra: Any) -> tf.Tensor:
    """Labels, adapted loss and our checks around cleverhans' ``attack(**extra)``."""
    x, y, targets = _prepare(model_fn, x, y, targets)
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


class KerasSPSAAdam(SPSAAdam):
    """cleverhans' ``SPSAAdam`` made constructible on Keras 3: its ``__init__`` passes
    ``lr=`` (rejected) and ``_apply_gradients`` reads ``self.lr`` (gone)."""

    def __init__(self, lr: float = 0.01, delta: float = 0.01, num_samples: int = 128,
                 num_iters: int = 1, compare_to_analytic_grad: bool = False) -> None:
        keras.optimizers.Adam.__init__(self, learning_rate=lr)  # skip SPSAAdam.__init__
        if num_samples < 2 or num_samples % 2:
            raise UsageError(f"spsa_samples must be even and >= 2, got {num_samples}")
        self._delta, self._num_iters, self._spsa_lr = delta, num_iters, float(lr)
        self._num_samples = num_samples // 2  # mirrored +-delta samples
        self._compare_to_analytic_grad = compare_to_analytic_grad

    @property
    def lr(self) -> float:  # read by SPSAAdam._apply_gradients
        return self._spsa_lr


def _spsa_loss(model_fn: ModelFn, fn: Objective,
               targets: Optional[tf.Tensor]) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """``loss_fn(x, label)`` for one example (``label``, ``targets``: one-hot ``(1, L)``),
    evaluated on the SPSA batch of its perturbed copies."""
    def loss_fn(x_batch: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
        copies = tf.shape(x_batch)[0]
        tiled_targets = None if targets is None else tf.repeat(targets, copies, axis=0)
        return fn(model_fn(x_batch), tf.repeat(label, copies, axis=0), targets=tiled_targets)
    return loss_fn


def spsa(model_fn: ModelFn, x: Tensorish, eps: float, nb_iter: int = 10, *, y: Labels = None,
         targets: Labels = None, objective: ObjectiveLike = "margin", spsa_samples: int = 128,
         spsa_iters: int = 1, learning_rate: float = 0.01, delta: float = 0.01,
         clip_min: float = 0.0, clip_max: float = 1.0,
         early_stop_loss_threshold: Bound = None) -> tf.Tensor:
    """SPSA (Uesato et al. 2018, cleverhans' ``projected_optimization``) minimising
    ``objective``, one example at a time; L-inf ball ``eps``. Returns float32 ``x_adv``."""
    x, labels, tars = _prepare(model_fn, x, y, targets)
    check_inputs(x, eps, None, clip_min, clip_max)
    fn = resolve_objective(objective, tars is not None)
    rows = []
    for i in range(int(x.shape[0])):
        optimizer = KerasSPSAAdam(lr=learning_rate, delta=delta, num_samples=spsa_samples,
                                  num_iters=spsa_iters)
        loss_fn = _spsa_loss(model_fn, fn, None if tars is None else tars[i:i + 1])
        rows.append(projected_optimization(loss_fn, x[i:i + 1], labels[i:i + 1], eps, nb_iter,
                                           optimizer, clip_min, clip_max,
                                           early_stop_loss_threshold))
    return tf.concat(rows, axis=0)


@dataclasses.dataclass(frozen=True)
class CWConfig:
    """C&W-L2 hyper-parameters (paper defaults; Carlini & Wagner 2017)."""
    confidence: float = 0.0
    binary_search_steps: int = 9
    max_iterations: int = 1000
    learning_rate: float = 5e-3
    initial_const: float = 1e-2
    abort_early: bool = True
    clip_min: float = 0.0
    clip_max: float = 1.0


class _CWRunner:
    """C&W-L2 state for batches of one shape, all reset in :meth:`load` and per binary-search
    step (nothing leaks between batches); one compiled step serves every such batch."""

    def __init__(self, model_fn: ModelFn, fn: Objective, shape: tf.TensorShape,
                 num_classes: int, targeted: bool, cfg: CWConfig) -> None:
        self.model_fn, self.fn, self.cfg, self.targeted = model_fn, fn, cfg, targeted
        zeros, batch, var = tf.zeros(shape), int(shape[0]), tf.Variable
        self.w0, self.x0, self.modifier, self.m, self.v, self.best_attack = (
            var(zeros) for _ in range(6))
        self.labels, self.targets = (var(tf.zeros((batch, num_classes))) for _ in range(2))
        self.t, self.best_l2 = var(0.0), var(tf.zeros(batch))
        self.success = var(tf.zeros(batch, tf.bool))

    def load(self, x: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor]) -> None:
        """Reset all state for the batch ``x`` (inputs already adversarial: distortion 0)."""
        cfg = self.cfg
        unit = tf.clip_by_value((x - cfg.clip_min) / (cfg.clip_max - cfg.clip_min), 0.0, 1.0)
        self.w0.assign(tf.atanh((unit * 2.0 - 1.0) * 0.999999))
        self.x0.assign(clip_tanh(self.w0, cfg.clip_min, cfg.clip_max))
        self.labels.assign(labels)
        self.targets.assign(labels if targets is None else targets)  # unused if untargeted
        already = is_adversarial(self.model_fn(x), labels, targets, cfg.confidence)
        self.best_l2.assign(tf.where(already, 0.0, 1e10))
        self.best_attack.assign(x)

    @tf.function
    def step(self, const: tf.Tensor) -> tf.Tensor:
        """Adam step (TF1 form, as the original); keeps the evaluated point if better."""
        cfg, targets = self.cfg, self.targets if self.targeted else None
        with tf.GradientTape() as tape:
            tape.watch(self.modifier)
            x_new = clip_tanh(self.modifier + self.w0, cfg.clip_min, cfg.clip_max)
            logits = self.model_fn(x_new)
            dist = squared_l2(x_new, self.x0)
            value = self.fn(logits, self.labels, targets=targets, confidence=cfg.confidence)
            loss = tf.reduce_sum(dist) + tf.reduce_sum(
                const * tf.maximum(tf.cast(value, tf.float32), -cfg.confidence))
        grad = tape.gradient(loss, self.modifier)
        self.t.assign_add(1.0)
        self.m.assign(0.9 * self.m + 0.1 * grad)
        self.v.assign(0.999 * self.v + 0.001 * tf.square(grad))
        lr_t = cfg.learning_rate * tf.sqrt(1.0 - 0.999 ** self.t) / (1.0 - 0.9 ** self.t)
        self.modifier.assign_sub(lr_t * self.m / (tf.sqrt(self.v) + 1e-8))
        success = is_adversarial(logits, self.labels, targets, cfg.confidence)
        better = tf.logical_and(success, dist < self.best_l2)
        self.best_l2.assign(tf.where(better, dist, self.best_l2))
        mask = tf.reshape(better, [-1] + [1] * (len(x_new.shape) - 1))
        self.best_attack.assign(tf.where(mask, x_new, self.best_attack))
        self.success.assign(tf.logical_or(self.success, success))
        return loss

    def run(self) -> tf.Tensor:
        """The binary search over the constant; returns the best adversarial per example."""
        cfg, batch = self.cfg, int(self.best_l2.shape[0])
        lower, upper = tf.zeros(batch), tf.fill([batch], 1e10)
        const = tf.fill([batch], float(cfg.initial_const))
        check_every = max(cfg.max_iterations // 10, 1)
        for outer in range(cfg.binary_search_steps):
            for variable in (self.modifier, self.m, self.v, self.t, self.success):
                variable.assign(tf.zeros_like(variable))
            if cfg.binary_search_steps >= 10 and outer == cfg.binary_search_steps - 1:
                const = upper
            prev = np.inf
            for iteration in range(cfg.max_iterations):
                loss = self.step(const)
                if cfg.abort_early and iteration % check_every == 0:
                    if float(loss) > prev * 0.9999:
                        break
                    prev = float(loss)
            const, lower, upper = update_const(self.success, const, lower, upper)
        return tf.identity(self.best_attack)


def carlini_wagner_l2(model_fn: ModelFn, x: Tensorish, y: Labels = None, *,
                      targets: Labels = None, objective: ObjectiveLike = "margin",
                      batch_size: int = 128, **config: Any) -> np.ndarray:
    """Carlini & Wagner L2: minimise ``||x' - x||^2 + c * max(objective, -confidence)``
    over the tanh-boxed ``x'``, binary-searching ``c`` per example.

    ``x``: any shape ``(batch, ...)``, in ``[clip_min, clip_max]``; ``y``: true labels
    (default: the predictions); ``targets`` make it targeted; ``objective``: ``margin``
    (C&W's f6), ``mmc_un2`` / ``mmc_tar2`` on MMC heads, or a callable taking
    ``confidence=``; ``config``: :class:`CWConfig` fields. With ``abort_early`` off the
    result does not depend on ``batch_size``. Returns float32 like ``x``: unchanged where
    no adversarial was found, exactly ``x`` (distortion 0) where it already is one.
    """
    cfg = CWConfig(**config)
    x_t, labels, tars = _prepare(model_fn, x, y, targets)
    check_inputs(x_t, 0.0, None, cfg.clip_min, cfg.clip_max)
    fn = resolve_objective(objective, tars is not None)
    out, runner = np.array(x_t.numpy(), copy=True), None
    for start in range(0, int(x_t.shape[0]), batch_size):
        part = slice(start, start + batch_size)
        if runner is None or runner.best_attack.shape != x_t[part].shape:
            runner = _CWRunner(model_fn, fn, x_t[part].shape, int(labels.shape[-1]),
                               tars is not None, cfg)
        runner.load(x_t[part], labels[part], None if tars is None else tars[part])
        out[part] = runner.run().numpy()
    return out
