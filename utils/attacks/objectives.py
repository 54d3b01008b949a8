"""Attack objectives (adaptive losses), registered by name.

Sign convention, as paper 002 appendix B.4 and C&W write them: every objective is a
per-example value the ATTACKER MINIMISES. Untargeted objectives fall as the input moves
away from its label; targeted ones fall as it moves toward the target.

Contract (``Objective``)::

    objective(logits, labels, targets=None, **context) -> (batch,) float32

``logits`` ``(batch, L)`` float32 are the model's logits (for an MMC head
``h_l = -||z - mu_l||^2``, so ``L_MMC(z, l) = -h_l``); ``labels`` and ``targets`` are
one-hot ``(batch, L)``; ``targets`` is None for untargeted objectives.

    fn = OBJECTIVES.get("mmc_un1").fn
    value = fn(logits, labels)        # = -L_MMC(z, y) = h_y; minimise it
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np
import tensorflow as tf

from utils.errors import UsageError
from utils.loss_specs import LOSSES
from utils.registry import Registry

Objective = Callable[..., tf.Tensor]


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: ``targeted`` says whether it needs ``targets``;
    ``needs_centers`` marks objectives that are only meaningful on an MMC head."""

    name: str
    fn: Objective
    targeted: Optional[bool]  # None: works both ways (targets given or not)
    needs_centers: bool
    description: str


OBJECTIVES: Registry[ObjectiveSpec] = Registry("objective")


def register_objective(name: str, *, targeted: Optional[bool], needs_centers: bool = False,
                       description: str = "") -> Callable[[Objective], Objective]:
    """Decorator registering an objective under ``name``."""

    def decorator(fn: Objective) -> Objective:
        OBJECTIVES.register(name)(ObjectiveSpec(name, fn, targeted, needs_centers, description))
        return fn

    return decorator


def resolve_objective(objective: "str | Objective", targeted: bool) -> Objective:
    """The function of a registered objective ``objective``, or ``objective`` itself when it
    is a callable; UsageError when a registered one cannot be used in this mode
    (``targeted``: targets are given)."""
    if callable(objective):
        return objective
    spec = OBJECTIVES.get(objective)
    if spec.targeted is not None and spec.targeted != targeted:
        mode = "targeted" if spec.targeted else "untargeted"
        raise UsageError(f"objective {objective} is {mode}; pass targets accordingly")
    return spec.fn


def _f32(t: Any) -> tf.Tensor:
    return tf.cast(t, tf.float32)


def _pick(logits: tf.Tensor, onehot: tf.Tensor) -> tf.Tensor:
    """``logits[i, argmax(onehot[i])]``, shape ``(batch,)``."""
    return tf.reduce_sum(_f32(logits) * _f32(onehot), axis=-1)


def _max_other(logits: tf.Tensor, onehot: tf.Tensor) -> tf.Tensor:
    """Largest logit among the classes not marked in ``onehot`` (``(batch,)``)."""
    logits = _f32(logits)
    masked = tf.where(_f32(onehot) > 0.5, tf.fill(tf.shape(logits), -float("inf")), logits)
    return tf.reduce_max(masked, axis=-1)


# Below this share of probability off the label, 1 - p_y is no longer a float32 number
# apart from 1 (CE's value is flat at 0): there CE's gradient keeps its direction at this
# magnitude (see :func:`cross_entropy`).
CE_GRAD_FLOOR = float(np.finfo(np.float32).eps)


@tf.custom_gradient
def cross_entropy(logits: tf.Tensor, onehot: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy ``(batch,)`` of float32 ``logits`` ``(batch, L)`` against one-hot
    labels, with TF's value and a gradient that survives saturated heads.

    The gradient ``softmax(h) - e_y`` is written ``S (r - e_y)``: ``S = 1 - p_y =
    exp(lse_{j!=y} h_j - lse h)`` and ``r`` the softmax over the other classes (0 at ``y``),
    both computed in log space, so no term is the difference of two numbers near 1. On an
    MMC/MMLDA head (logits ``-||z - mu||^2``, margins of hundreds) TF's own gradient
    underflows to exact zeros (``p_j = e^-300``; TF flushes denormals on CPU), and so would
    ``S`` alone: it is floored at :data:`CE_GRAD_FLOOR`, where the value itself is already
    flat in float32. Above the floor the gradient is the exact one; below it, the exact
    direction with a larger magnitude (what APGD's sign / normalised steps use). The
    labels get no gradient.
    """
    value = tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=logits)

    def grad(upstream: tf.Tensor):
        on_label = onehot > 0.5
        others = tf.where(on_label, tf.fill(tf.shape(logits), -np.inf), logits)
        lse_others = tf.reduce_logsumexp(others, axis=-1, keepdims=True)
        log_off = lse_others - tf.reduce_logsumexp(logits, axis=-1, keepdims=True)
        off = tf.where(tf.math.is_finite(lse_others),
                       tf.exp(tf.maximum(log_off, float(np.log(CE_GRAD_FLOOR)))), 0.0)
        r = tf.where(on_label, 0.0, tf.exp(others - lse_others))
        return upstream[:, None] * off * (r - onehot), tf.zeros_like(onehot)

    return value, grad


@register_objective("ce", targeted=None, description="softmax cross-entropy (SCE models)")
def ce_objective(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor] = None,
                 **_: Any) -> tf.Tensor:
    """Untargeted ``-CE(logits, y)``; targeted ``CE(logits, y_t)``; the input gradient
    stays usable on saturated (MMC) heads (:func:`cross_entropy`)."""
    if targets is None:
        return -cross_entropy(_f32(logits), _f32(labels))
    return cross_entropy(_f32(logits), _f32(targets))


@register_objective("margin", targeted=None, description="C&W logit margin")
def margin_objective(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor] = None,
                     confidence: float = 0.0, **_: Any) -> tf.Tensor:
    """C&W: untargeted ``max(z_y - max_{i!=y} z_i, -k)``; targeted
    ``max(max_{i!=t} z_i - z_t, -k)`` with ``k = confidence``."""
    if targets is None:
        value = _pick(logits, labels) - _max_other(logits, labels)
    else:
        value = _max_other(logits, targets) - _pick(logits, targets)
    return tf.maximum(value, -float(confidence))


DLR_EPS = 1e-12  # keeps the DLR denominators positive (AutoAttack's constant)


def _top_logits(logits: tf.Tensor, k: int, name: str) -> tf.Tensor:
    """``(batch, k)`` largest logits, descending; UsageError when ``L < k``."""
    num_classes = logits.shape[-1]
    if num_classes is not None and num_classes < k:
        raise UsageError(f"objective {name} needs at least {k} classes, the model has "
                         f"{num_classes}; use ce or margin")
    return tf.math.top_k(_f32(logits), k=k).values


@register_objective("dlr", targeted=False,
                    description="difference of logits ratio (Croce & Hein 2020), >= 3 classes")
def dlr_objective(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor] = None,
                  **_: Any) -> tf.Tensor:
    """``(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3 + 1e-12)``, ``pi`` sorting the logits
    in decreasing order: the NEGATIVE of AutoAttack's ``dlr_loss`` (which it maximises).
    Invariant to shifting and positively scaling the logits; < 0 once misclassified."""
    top = _top_logits(logits, 3, "dlr")
    return (_pick(logits, labels) - _max_other(logits, labels)) / (top[:, 0] - top[:, 2]
                                                                   + DLR_EPS)


@register_objective("dlr_targeted", targeted=True,
                    description="targeted DLR (APGD-T), >= 4 classes")
def dlr_targeted_objective(logits: tf.Tensor, labels: tf.Tensor,
                           targets: Optional[tf.Tensor] = None, **_: Any) -> tf.Tensor:
    """``(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)``: the NEGATIVE of
    AutoAttack's ``dlr_loss_targeted``; falls as ``z_t`` overtakes ``z_y``."""
    top = _top_logits(logits, 4, "dlr_targeted")
    t = _require(targets, "dlr_targeted")
    return (_pick(logits, labels) - _pick(logits, t)) / (
        top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + DLR_EPS)


def _runner_up(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """One-hot of ``y~``, the highest non-true label."""
    logits = _f32(logits)
    masked = tf.where(_f32(labels) > 0.5, tf.fill(tf.shape(logits), -float("inf")), logits)
    return tf.one_hot(tf.argmax(masked, axis=-1), tf.shape(logits)[-1], dtype=tf.float32)


@register_objective("mmc_un1", targeted=False, needs_centers=True,
                    description="-L_MMC(z,y): push z away from its center (PGD, MIM, SPSA)")
def mmc_un1(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor] = None,
            **_: Any) -> tf.Tensor:
    """``-L_MMC(z, y) = h_y``."""
    return _pick(logits, labels)


@register_objective("mmc_un2", targeted=False, needs_centers=True,
                    description="L_MMC(z,y~) - L_MMC(z,y) (C&W)")
def mmc_un2(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor] = None,
            **_: Any) -> tf.Tensor:
    """``L_MMC(z, y~) - L_MMC(z, y) = h_y - h_y~`` with ``y~`` the runner-up label."""
    return _pick(logits, labels) - _pick(logits, _runner_up(logits, labels))


@register_objective("mmc_tar1", targeted=True, needs_centers=True,
                    description="L_MMC(z,y_t): pull z to the target center (PGD, MIM, SPSA)")
def mmc_tar1(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor] = None,
             **_: Any) -> tf.Tensor:
    """``L_MMC(z, y_t) = -h_t``."""
    return -_pick(logits, _require(targets, "mmc_tar1"))


@register_objective("mmc_tar2", targeted=True, needs_centers=True,
                    description="L_MMC(z,y_t) - L_MMC(z,y) (C&W)")
def mmc_tar2(logits: tf.Tensor, labels: tf.Tensor, targets: Optional[tf.Tensor] = None,
             **_: Any) -> tf.Tensor:
    """``L_MMC(z, y_t) - L_MMC(z, y) = h_y - h_t``."""
    return _pick(logits, labels) - _pick(logits, _require(targets, "mmc_tar2"))


def _require(targets: Optional[tf.Tensor], name: str) -> tf.Tensor:
    if targets is None:
        raise UsageError(f"objective {name} is targeted; pass targets (--target=True)")
    return targets


# Objective families whose logits are minus squared distances to centers, where the
# mmc_* objectives are defined (selected by default only for "mmc").
CENTER_FAMILIES = frozenset({"mmc", "gm"})
# Attacks whose adaptive MMC objective is the *,2 form (paper 002 B.4); all others use *,1.
MARGIN_ATTACKS = frozenset({"CarliniWagnerL2", "ElasticNetMethod"})


def select_objective(loss: str, attack: str, targeted: bool, adaptive: bool = True) -> str:
    """The objective an attack uses on a model trained with ``loss`` (002 B.4).

    Non-adaptive (and SCE-head models): ``ce``, or ``margin`` for C&W. Adaptive on a
    model trained to pull ``z`` onto fixed-norm centers (``LossSpec.objectives ==
    "mmc"``: ``mmc``, ``emc``): ``mmc_{un,tar}{1,2}``, the ``*,2`` forms for
    C&W and EAD, ``*,1`` for PGD, BIM, MIM, FGSM, SPSA, L-BFGS. The other heads'
    adaptive objective is ``ce`` itself: ``lgm`` and ``mmlda`` (family ``gm``) train
    softmax cross-entropy on their minus-distance logits (``mmc_un1`` is far weaker on
    them: ``reports/objective_choice.md``),
    ``center`` predicts with ``Wz + b`` (its center term does not enter the logits) and
    ``isce`` outputs 004 §3.2's logits, on which ``ce`` is the I-SCE training loss at
    every correctly classified input.
    """
    if not adaptive or LOSSES.get(loss).objectives != "mmc":
        return "margin" if attack in MARGIN_ATTACKS else "ce"
    mode = "tar" if targeted else "un"
    return f"mmc_{mode}{2 if attack in MARGIN_ATTACKS else 1}"


# Untargeted objective -> the targeted one APGD-T / MultiTargeted use with it.
TARGETED_COUNTERPART = {"ce": "dlr_targeted", "dlr": "dlr_targeted", "mmc_un1": "mmc_tar1",
                        "mmc_un2": "mmc_tar2"}


def targeted_counterpart(name: str) -> str:
    """The targeted objective that goes with ``name`` in an ensemble: itself if it is
    targeted, else :data:`TARGETED_COUNTERPART` (``ce`` -> ``dlr_targeted``, ``mmc_un1``
    -> ``mmc_tar1``), else ``name``."""
    if OBJECTIVES.get(name).targeted:
        return name
    return TARGETED_COUNTERPART.get(name, name)


def check_objective(name: str, loss: str, targeted: bool) -> ObjectiveSpec:
    """The spec of ``name``, refusing combinations that would measure something else."""
    spec = OBJECTIVES.get(name)
    if spec.targeted is not None and spec.targeted != targeted:
        mode = "targeted" if spec.targeted else "untargeted"
        raise UsageError(f"objective {name} is {mode}; set --target accordingly or pick another")
    if spec.needs_centers and LOSSES.get(loss).objectives not in CENTER_FAMILIES:
        raise UsageError(f"objective {name} needs a model with MM centers (logits minus "
                         f"distances to centers: mmc, mmlda, emc, lgm), not a {loss} model")
    return spec
