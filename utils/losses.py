"""Training loss functions, registered under the names :mod:`utils.loss_specs` declares.

Contract: ``loss_fn(y_true, logits, **context) -> per-example loss`` ``(batch,)`` float32,
with ``y_true`` one-hot (or soft) ``(batch, num_classes)`` or class indices ``(batch,)`` /
``(batch, 1)`` (made one-hot by :func:`onehot_labels`, which every registered function
calls first; any other label shape is a ValueError, never a silent broadcast) and
``logits`` the model's output ``(batch, num_classes)``; the training loop averages over
the global batch. ``sce``,
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
        checked = fn if getattr(fn, "checks_labels", False) else _checking_labels(fn)
        LOSS_FUNCTIONS.register(name)(LossFunctions(checked, after_step))
        return checked

    return decorator


def onehot_labels(y_true: Any, logits: Any) -> tf.Tensor:
    """``y_true`` as float32 ``(batch, L)`` labels for ``logits`` ``(batch, L)``.

    The one place that reads a label's shape (the loss functions, the Keras loss classes of
    :mod:`mmt.losses` and the :mod:`mmt` attacks call it): one-hot or soft labels
    ``(batch, L)`` pass through (cast to float32, so one-hot numbers are unchanged); class
    indices ``(batch,)`` or ``(batch, 1)`` (any dtype; Keras hands them over as float32)
    become ``one_hot(y, L)``. Shapes are read statically, so it is graph-safe.

    Raises:
        ValueError: any other shape (e.g. integer ``(batch, 2)`` labels for ``L = 10``
            logits), naming the shapes it accepts; never a silent broadcast.
    """
    y = tf.convert_to_tensor(y_true)
    if logits is None:  # a loss that reads no logits (isce): one-hot labels only
        num_classes = None
    else:
        logits = tf.convert_to_tensor(logits)
        num_classes = logits.shape[-1] if logits.shape.rank else None
    rank, last = y.shape.rank, (y.shape[-1] if y.shape.rank else None)
    if rank == 2 and last is not None and (last == num_classes or
                                           (num_classes is None and last > 1)):
        return _f32(y)
    if logits is not None and (rank == 1 or (rank == 2 and last == 1)):
        depth = num_classes if num_classes is not None else tf.shape(logits)[-1]
        return tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), depth, dtype=tf.float32)
    shape = None if logits is None else tuple(logits.shape)
    raise ValueError(f"labels must be one-hot (batch, {num_classes}) or class indices (batch,) "
                     f"or (batch, 1) for logits of shape {shape}; got shape {tuple(y.shape)}")


def _checking_labels(fn: LossFn) -> LossFn:
    """``fn`` with ``y_true`` passed through :func:`onehot_labels` first."""

    @functools.wraps(fn)
    def checked(y_true: Any, logits: Any, **context: Any) -> tf.Tensor:
        return fn(onehot_labels(y_true, logits), logits, **context)

    checked.checks_labels = True  # type: ignore[attr-defined]
    return checked


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
