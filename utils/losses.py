"""Training loss functions, registered under the names :mod:`utils.loss_specs` declares.

Contract: ``loss_fn(y_true, logits, **context) -> per-example loss`` ``(batch,)`` float32,
with ``y_true`` one-hot ``(batch, num_classes)`` and ``logits`` the model's output
``(batch, num_classes)``; the training loop averages over the global batch. ``sce``,
``mmc``, ``mmlda`` take nothing else. A loss whose
:class:`utils.loss_specs.LossSpec` says so also takes
``features=`` (``z``, the head's input, ``(batch, d)``: ``needs_features``), ``head=`` (the
model's output layer, for its centers: ``needs_head``) and its hyper-parameters by the
names in ``params`` (the :class:`utils.models.classifier.ModelConfig` fields of the same
names). :func:`bind_loss` fixes head and hyper-parameters and returns the
:class:`BoundLoss` the trainer calls; ``after_step`` updates state that is not trained
by gradients (the center loss' centers).

    per_example = loss_function("mmc")(y_onehot, logits)   # ||z - mu_y||^2
    loss = bind_loss("center", head=model.get_layer("logits"),
                     params={"center_lambda": 0.003, "center_alpha": 0.5})
    per_example = loss(y_onehot, logits, features=z); loss.after_step(y_onehot, z)
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict, Mapping, Optional

import tensorflow as tf

from utils.loss_specs import LOSSES, check_loss_params
from utils.registry import Registry

LossFn = Callable[..., tf.Tensor]
AfterStep = Callable[..., None]


@dataclasses.dataclass(frozen=True)
class LossFunctions:
    """The functions of a registered loss (its identity: :class:`utils.loss_specs.LossSpec`).

    Attributes:
        loss_fn: per-example loss, see the module docstring.
        after_step: ``after_step(y_true, features, *, head, **params)``, run in the
            replica context after each weight update, or None.
    """

    loss_fn: LossFn
    after_step: Optional[AfterStep] = None


LOSS_FUNCTIONS: Registry[LossFunctions] = Registry("loss function")


def register_loss(name: str, *, after_step: Optional[AfterStep] = None
                  ) -> Callable[[LossFn], LossFn]:
    """Decorator: ``fn`` is the per-example function of the declared loss ``name``
    (:data:`utils.loss_specs.LOSSES`; an undeclared name is an error)."""
    LOSSES.get(name)

    def decorator(fn: LossFn) -> LossFn:
        LOSS_FUNCTIONS.register(name)(LossFunctions(fn, after_step))
        return fn

    return decorator


def loss_function(name: str) -> LossFn:
    """The per-example function ``(y_onehot, logits, **context) -> (batch,)`` of ``name``."""
    return LOSS_FUNCTIONS.get(name).loss_fn


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
    spec, fns = LOSSES.get(name), LOSS_FUNCTIONS.get(name)
    kwargs: Dict[str, Any] = {p: float((params or {})[p]) for p in spec.params}
    check_loss_params(kwargs)
    if spec.needs_head:
        if head is None:
            raise ValueError(f"loss {name} reads its head's centers: pass head=")
        kwargs["head"] = head
    after = functools.partial(fns.after_step, **kwargs) if fns.after_step else None
    return BoundLoss(functools.partial(fns.loss_fn, **kwargs), spec.needs_features, after)


def _f32(t: Any) -> tf.Tensor:
    return tf.cast(t, tf.float32)


@register_loss("sce")
def sce_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy, ``-log softmax(logits)_y``; shape ``(batch,)``."""
    return tf.nn.softmax_cross_entropy_with_logits(labels=_f32(y_true), logits=_f32(logits))


@register_loss("mmc")
def mmc_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The original's ``dot_loss``: ``-sum_l y_l h_l = ||z - mu_y||^2`` on MMC logits.

    The paper writes half of it; the original code (and we) train on the full squared
    distance. Shape ``(batch,)``; zero exactly when ``z = mu_y``.
    """
    return -tf.reduce_sum(_f32(y_true) * _f32(logits), axis=-1)


register_loss("mmc_rand")(mmc_loss)  # MMC on the random center set


@register_loss("mmlda")
def mmlda_loss(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy on ``h_l = -||z - mu_l||^2`` (``use_ball=False``).

    Its adaptive objective is ``ce``, the loss it was trained on (family ``"gm"``), as the
    original attacked it (cleverhans' cross-entropy on its softmax output): ``mmc_un1``
    pushes ``z`` away from ``mu_y``, which an MMLDA model never learned to resist or to
    need, and is far weaker on it (``reports/objective_choice.md``).
    """
    return sce_loss(y_true, logits)


@register_loss("label_smoothing")
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


@register_loss("center", after_step=center_update)
def center_loss(y_true: tf.Tensor, logits: tf.Tensor, *, features: tf.Tensor, head: Any,
                center_lambda: float, **_: Any) -> tf.Tensor:
    """Wen et al. (2016): ``SCE(Wz+b, y) + lambda * 1/2 ||z - c_y||^2``.

    The centers ``c`` (``head.class_centers``) get no gradient; :func:`center_update`
    moves them after each step with Wen et al.'s rule.
    """
    c_y = tf.matmul(_f32(y_true), tf.stop_gradient(tf.convert_to_tensor(head.class_centers)))
    pull = 0.5 * tf.reduce_sum(tf.square(_f32(features) - c_y), axis=-1)
    return sce_loss(y_true, logits) + center_lambda * pull


@register_loss("lgm")
def lgm_loss(y_true: tf.Tensor, logits: tf.Tensor, *, lgm_margin: float, lgm_lambda: float,
             **_: Any) -> tf.Tensor:
    """Wan et al. (2018) with identity covariances, on ``h_l = -d_l = -1/2 ||z - mu_l||^2``:
    ``SCE(h with h_y -> (1 + margin) h_y, y) + lambda * d_y`` (their released code's form;
    margin 0 and lambda 0: softmax on the plain Gaussian-mixture logits)."""
    y, h = _f32(y_true), _f32(logits)
    with_margin = h * (1.0 + lgm_margin * y)
    return sce_loss(y, with_margin) - lgm_lambda * tf.reduce_sum(y * h, axis=-1)


@register_loss("emc")
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


@register_loss("isce")
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
