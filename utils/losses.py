"""Training losses, registered by name, and the head each one trains.

Contract: ``loss_fn(y_true, logits, **context) -> per-example loss`` ``(batch,)`` float32,
with ``y_true`` one-hot ``(batch, num_classes)`` and ``logits`` the model's output
``(batch, num_classes)``; the training loop averages over the global batch. ``sce``,
``mmc``, ``mmlda`` take nothing else. A loss whose :class:`LossSpec` says so also takes
``features=`` (``z``, the head's input, ``(batch, d)``: ``needs_features``), ``head=`` (the
model's output layer, for its centers: ``needs_head``) and its hyper-parameters by the
names in ``params`` (the :class:`utils.models.classifier.ModelConfig` fields of the same
names). :func:`bind_loss` fixes head and hyper-parameters and returns the
:class:`BoundLoss` the trainer calls; ``after_step`` updates state that is not trained
by gradients (the center loss' centers).

    per_example = LOSSES.get("mmc").loss_fn(y_onehot, logits)   # ||z - mu_y||^2
    loss = bind_loss("center", head=model.get_layer("logits"),
                     params={"center_lambda": 0.003, "center_alpha": 0.5})
    per_example = loss(y_onehot, logits, features=z); loss.after_step(y_onehot, z)
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import tensorflow as tf

from utils.errors import UsageError
from utils.registry import Registry

LossFn = Callable[..., tf.Tensor]
AfterStep = Callable[..., None]
# Heads built on a ts_centers set scaled by C_MM (mean_var, --centers apply to them).
CENTER_SET_HEADS = frozenset({"mmc", "emc"})


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """A registered training loss.

    Attributes:
        name: registry name (``sce``, ``mmc``, ``mmlda``, ``center``, ...).
        head: the output head it trains (a name in ``utils.models.classifier.HEADS``: ``dense``
            ``Wz + b``; ``mmc`` ``-||z - mu_l||^2`` to fixed centers; ``center``, ``gm``,
            ``emc``, ``isce``: see there).
        loss_fn: per-example loss, see the module docstring.
        description: one line for ``--help`` and records.
        params: hyper-parameters ``loss_fn`` takes by keyword (ModelConfig field names).
        needs_features: ``loss_fn`` takes ``features=``.
        needs_head: ``loss_fn`` (and ``after_step``) take ``head=``.
        after_step: ``after_step(y_true, features, *, head, **params)``, run in the
            replica context after each weight update, or None.
        objectives: the adaptive attack objectives of its models (``utils.attacks.objectives``):
            ``"mmc"`` (``mmc_*``, logits are minus squared distances to centers),
            ``"gm"`` (such logits, but trained with softmax CE: ``ce`` / ``margin`` by
            default, ``mmc_*`` allowed) or ``"ce"`` (``ce`` / C&W ``margin``).
        run_tag: run-directory suffix, ``str.format``-ed with the ``params`` values.
        alias_of: ``(loss, centers)`` this name stands for (``mmc_rand``), or None.
    """

    name: str
    head: str
    loss_fn: LossFn
    description: str
    params: Tuple[str, ...] = ()
    needs_features: bool = False
    needs_head: bool = False
    after_step: Optional[AfterStep] = None
    objectives: str = "ce"
    run_tag: str = ""
    alias_of: Optional[Tuple[str, str]] = None


LOSSES: Registry[LossSpec] = Registry("loss")


def register_loss(name: str, *, head: str, description: str,
                  **options: Any) -> Callable[[LossFn], LossFn]:
    """Decorator: register ``fn`` as the loss ``name`` trained on ``head``; ``options``
    are the other :class:`LossSpec` fields."""

    def decorator(fn: LossFn) -> LossFn:
        LOSSES.register(name)(LossSpec(name, head, fn, description, **options))
        return fn

    return decorator


@dataclasses.dataclass(frozen=True)
class BoundLoss:
    """A loss with head and hyper-parameters fixed: ``loss(y_true, logits, features=None)``.

    ``needs_features``: pass ``features`` (the head's input). ``after_step(y_true,
    features)``, if not None, runs after each weight update (in the replica context).
    """

    fn: Callable[..., tf.Tensor]
    needs_features: bool = False
    after_step: Optional[Callable[[tf.Tensor, tf.Tensor], None]] = None

    def __call__(self, y_true: tf.Tensor, logits: tf.Tensor,
                 features: Optional[tf.Tensor] = None) -> tf.Tensor:
        if self.needs_features:
            if features is None:
                raise ValueError("this loss reads the features: pass features=")
            return self.fn(y_true, logits, features=features)
        return self.fn(y_true, logits)


def bind_loss(name: str, head: Any = None, params: Optional[Mapping[str, float]] = None
              ) -> BoundLoss:
    """The loss ``name`` with ``head`` (the output layer) and its ``params`` bound.

    ``params`` may hold more keys than the loss uses (a ``ModelConfig.to_dict()``).
    """
    spec = LOSSES.get(name)
    kwargs: Dict[str, Any] = {p: float((params or {})[p]) for p in spec.params}
    check_loss_params(kwargs)
    if spec.needs_head:
        if head is None:
            raise ValueError(f"loss {name} reads its head's centers: pass head=")
        kwargs["head"] = head
    after = functools.partial(spec.after_step, **kwargs) if spec.after_step else None
    return BoundLoss(functools.partial(spec.loss_fn, **kwargs), spec.needs_features, after)


# name -> (valid?, what is valid); UsageError for anything else (also NaN / inf).
PARAM_RULES: Dict[str, Tuple[Callable[[float], bool], str]] = {
    "center_lambda": (lambda v: v >= 0, ">= 0 (Wen et al.: 0.003)"),
    "center_alpha": (lambda v: 0 < v <= 1, "in (0, 1] (Wen et al.: 0.5)"),
    "lgm_margin": (lambda v: v >= 0, ">= 0 (Wan et al.: 0.1)"),
    "lgm_lambda": (lambda v: v >= 0, ">= 0 (Wan et al.: 0.01)"),
    "emc_alpha": (lambda v: v > 0, "> 0 (the prior variance of the centers)"),
    "isce_s": (lambda v: v >= 1, ">= 1 (paper 004: s in [1, 2], default 1)"),
    "isce_m": (lambda v: v > 0, "> 0 (paper 004: m in (0, 0.1], default 0.1)"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1) (usual: 0.1)"),
}


def check_loss_params(params: Mapping[str, Any]) -> None:
    """UsageError naming the first hyper-parameter outside its range (see PARAM_RULES)."""
    for name, value in params.items():
        if name not in PARAM_RULES:
            continue
        ok, valid = PARAM_RULES[name]
        if not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
            raise UsageError(f"{name} must be {valid}, got {value}")


def _f32(t: Any) -> tf.Tensor:
    return tf.cast(t, tf.float32)


@register_loss("sce", head="dense", description="softmax cross-entropy on Wz+b (baseline)")
def sce_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy, ``-log softmax(logits)_y``; shape ``(batch,)``."""
    return tf.nn.softmax_cross_entropy_with_logits(labels=_f32(y_true), logits=_f32(logits))


@register_loss("mmc", head="mmc", objectives="mmc",
               description="Max-Mahalanobis center loss ||z - mu_y||^2")
def mmc_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The original's ``dot_loss``: ``-sum_l y_l h_l = ||z - mu_y||^2`` on MMC logits.

    The paper writes half of it; the original code (and we) train on the full squared
    distance. Shape ``(batch,)``; zero exactly when ``z = mu_y``.
    """
    return -tf.reduce_sum(_f32(y_true) * _f32(logits), axis=-1)


# The original's use_random: MMC on seeded random centers ("MMC-10 (rand)").
register_loss("mmc_rand", head="mmc", objectives="mmc", alias_of=("mmc", "random"),
              description="MMC on random centers (= --loss=mmc --centers=random)")(mmc_loss)


@register_loss("mmlda", head="mmc", objectives="gm",
               description="softmax cross-entropy on the MMC logits")
def mmlda_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy on ``h_l = -||z - mu_l||^2`` (``use_ball=False``).

    Its adaptive objective is ``ce``, the loss it was trained on (family ``"gm"``), as the
    original attacked it (cleverhans' cross-entropy on its softmax output): ``mmc_un1``
    pushes ``z`` away from ``mu_y``, which an MMLDA model never learned to resist or to
    need, and is far weaker on it (``reports/objective_choice.md``).
    """
    return sce_loss(y_true, logits)


@register_loss("label_smoothing", head="dense", params=("label_smoothing",),
               run_tag="_ls{label_smoothing}",
               description="SCE on smoothed labels (1 - eps) y + eps / L")
def label_smoothing_loss(y_true: tf.Tensor, logits: tf.Tensor, *, label_smoothing: float,
                         **_: Any) -> tf.Tensor:
    """Cross-entropy against ``(1 - eps) y + eps / L`` (Szegedy et al. 2016); ``eps = 0``
    is SCE."""
    y = _f32(y_true)
    num_classes = tf.cast(tf.shape(y)[-1], tf.float32)
    return sce_loss((1.0 - label_smoothing) * y + label_smoothing / num_classes, logits)


def center_update(y_true: tf.Tensor, features: tf.Tensor, *, head: Any, center_alpha: float,
                  **_: Any) -> None:
    """Move the centers toward the batch's class means (``head.update_centers``)."""
    head.update_centers(features, y_true, center_alpha)


@register_loss("center", head="center", params=("center_lambda", "center_alpha"),
               needs_features=True, needs_head=True, after_step=center_update,
               run_tag="_center_lambda{center_lambda}_alpha{center_alpha}",
               description="center loss: SCE + lambda/2 ||z - c_y||^2, c from the batches")
def center_loss(y_true: tf.Tensor, logits: tf.Tensor, *, features: tf.Tensor, head: Any,
                center_lambda: float, **_: Any) -> tf.Tensor:
    """Wen et al. (2016): ``SCE(Wz+b, y) + lambda * 1/2 ||z - c_y||^2``.

    The centers ``c`` (``head.class_centers``) get no gradient; :func:`center_update`
    moves them after each step with Wen et al.'s rule.
    """
    c_y = tf.matmul(_f32(y_true), tf.stop_gradient(tf.convert_to_tensor(head.class_centers)))
    pull = 0.5 * tf.reduce_sum(tf.square(_f32(features) - c_y), axis=-1)
    return sce_loss(y_true, logits) + center_lambda * pull


@register_loss("lgm", head="gm", params=("lgm_margin", "lgm_lambda"), objectives="gm",
               run_tag="_lgm_margin{lgm_margin}_lambda{lgm_lambda}",
               description="large-margin Gaussian mixture (L-GM), identity covariances")
def lgm_loss(y_true: tf.Tensor, logits: tf.Tensor, *, lgm_margin: float, lgm_lambda: float,
             **_: Any) -> tf.Tensor:
    """Wan et al. (2018) with identity covariances, on ``h_l = -d_l = -1/2 ||z - mu_l||^2``:
    ``SCE(h with h_y -> (1 + margin) h_y, y) + lambda * d_y`` (their released code's form;
    margin 0 and lambda 0: softmax on the plain Gaussian-mixture logits)."""
    y, h = _f32(y_true), _f32(logits)
    with_margin = h * (1.0 + lgm_margin * y)
    return sce_loss(y, with_margin) - lgm_lambda * tf.reduce_sum(y * h, axis=-1)


@register_loss("emc", head="emc", params=("emc_alpha",), needs_head=True, objectives="mmc",
               run_tag="_emc_alpha{emc_alpha}",
               description="elastic MMC: 1/2 ||z - mu_y||^2 + 1/(2 alpha) ||mu_y - mu*_y||^2")
def emc_loss(y_true: tf.Tensor, logits: tf.Tensor, *, head: Any, emc_alpha: float,
             **_: Any) -> tf.Tensor:
    """Paper 002 eq. 21 on the EMC head (logits ``-||z - mu_l||^2``, trainable ``mu``).

    As ``alpha -> 0`` the centers stay at ``mu*`` and this tends to the paper's MMC loss
    ``1/2 ||z - mu*_y||^2`` (half of our ``mmc`` loss, which trains on the full squared
    distance as the original code).
    """
    y = _f32(y_true)
    gap = tf.matmul(y, tf.convert_to_tensor(head.centers) -
                    tf.convert_to_tensor(head.prior_centers))
    prior = tf.reduce_sum(tf.square(gap), axis=-1) / (2.0 * emc_alpha)
    return -0.5 * tf.reduce_sum(y * _f32(logits), axis=-1) + prior


@register_loss("isce", head="isce", params=("isce_s", "isce_m"), needs_features=True,
               needs_head=True, run_tag="_isce_s{isce_s}_m{isce_m}",
               description="inference-softmax cross-entropy (paper 004): s f_y + m on "
                           "L2-normalised logits f")
def isce_loss(y_true: tf.Tensor, logits: tf.Tensor, *, features: tf.Tensor, head: Any,
              isce_s: float, isce_m: float, **_: Any) -> tf.Tensor:
    """Paper 004 eq. 3: SCE on ``f + y * ((s - 1) f + m)``, ``f`` the L2-normalised
    logits of ``features`` (``head.normalized_logits``); ``s = 1, m = 0``: SCE on ``f``.

    The head's output applies ``s, m`` to the arg-max class instead (004 §3.2), so
    ``logits`` is not read here.
    """
    y = _f32(y_true)
    f = _f32(head.normalized_logits(features))
    return sce_loss(y, f + y * ((isce_s - 1.0) * f + isce_m))


def loss_name_from_flags(use_MMLDA: bool, use_ball: bool) -> str:
    """The loss the original's flags select: SCE, MMC (ball) or MMLDA (softmax)."""
    if not use_MMLDA:
        return "sce"
    return "mmc" if use_ball else "mmlda"
