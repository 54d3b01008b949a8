"""Keras ``Loss`` classes for every registered training loss (:data:`utils.losses.LOSS_FUNCTIONS`).

Each class computes its loss with the registered function (one implementation per loss), so
``model.fit`` trains exactly what ``train_models.py`` trains. Labels may be one-hot
``(batch, L)`` or class indices ``(batch,)`` / ``(batch, 1)`` (made one-hot explicitly by
:func:`utils.losses.onehot_labels`); any other label shape is a ``ValueError``. Every class
is registered serializable (package ``mmt``) and its ``get_config`` holds its
hyper-parameters, so a compiled model saved as ``.keras`` reloads in safe mode.

    model.compile("adam", loss=mmt.MMCLoss())          # y: (batch,) ints or one-hot
    model.fit(x, y_int, epochs=1)

Losses that need the head (``center``, ``emc``, ``isce``) take the head layer:
``y_pred`` is then the head's INPUT ``z`` ``(batch, d)`` and the loss applies the head
itself (``CenterLoss(head=head)`` on a model output that is ``z``). Their head is a live
layer, not config: such a loss is rebuilt with ``head=`` after loading, not from a file.

Argument order: Keras fixes ``loss(y_true, y_pred)`` for ``compile``; attack objectives are
``objective(logits, labels_onehot)`` (see :mod:`mmt`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, Optional, Type

import keras
import tensorflow as tf

from utils.loss_specs import LOSSES, check_loss_params
from utils.losses import loss_function
from utils.runs.model_config import ModelConfig

# Hyper-parameter defaults: ModelConfig's (what train_models.py uses without flags).
_DEFAULTS: Dict[str, float] = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


class RegisteredLoss(keras.losses.Loss):
    """Base: the registered loss :attr:`loss_name` as a Keras loss (per-example values
    ``(batch,)`` float32, reduced by Keras' ``reduction``, default mean over the batch).

    Args:
        reduction: as ``keras.losses.Loss``.
        name: as ``keras.losses.Loss``.
        dtype: as ``keras.losses.Loss``.
        **params: the loss' hyper-parameters (``LossSpec.params``; defaults as
            :class:`utils.runs.model_config.ModelConfig`); checked by
            :func:`utils.loss_specs.check_loss_params`.
    """

    loss_name: ClassVar[str] = ""

    def __init__(self, reduction: str = "sum_over_batch_size", name: Optional[str] = None,
                 dtype: Any = None, **params: float) -> None:
        super().__init__(name=name or f"{self.loss_name}_loss", reduction=reduction,
                         dtype=dtype)
        spec = LOSSES.get(self.loss_name)
        unknown = sorted(set(params) - set(spec.params))
        if unknown:
            raise TypeError(f"{type(self).__name__} takes {list(spec.params) or 'no'} "
                            f"hyper-parameters, got {unknown}")
        self.params = {p: float(params.get(p, _DEFAULTS[p])) for p in spec.params}
        check_loss_params(self.params)

    def call(self, y_true: Any, y_pred: Any) -> tf.Tensor:
        return loss_function(self.loss_name)(y_true, y_pred, **self.params)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(self.params)
        return config


class HeadLoss(RegisteredLoss):
    """Base of the losses that read the head: ``y_pred`` is the head's input ``z``
    ``(batch, d)``; the loss computes ``logits = head(z)`` and passes ``head`` (and
    ``features=z`` where the loss reads them) to the registered function.

    Args:
        head: the output layer (``CenterLossDense``, ``ElasticMMCLayer``, ``ISCELayer``).
        **kwargs: as :class:`RegisteredLoss`.
    """

    def __init__(self, head: Optional[keras.layers.Layer] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if head is None:
            raise ValueError(f"{type(self).__name__} reads its head's centers: pass head= "
                             "(the model's output layer); a loaded model's loss is rebuilt "
                             "with it")
        self.head = head

    def call(self, y_true: Any, y_pred: Any) -> tf.Tensor:
        context: Dict[str, Any] = dict(self.params, head=self.head)
        if LOSSES.get(self.loss_name).needs_features:
            context["features"] = y_pred
        return loss_function(self.loss_name)(y_true, self.head(y_pred), **context)


def _loss_class(loss_name: str, class_name: str, base: Type[RegisteredLoss]) -> type:
    spec = LOSSES.get(loss_name)
    doc = (f"``{loss_name}``: {spec.description}. Hyper-parameters: "
           f"{', '.join(spec.params) or 'none'}. See :class:`{base.__name__}`.")
    cls = type(class_name, (base,), {"loss_name": loss_name, "__doc__": doc,
                                     "__module__": __name__})
    return keras.saving.register_keras_serializable(package="mmt")(cls)


SCELoss = _loss_class("sce", "SCELoss", RegisteredLoss)
MMCLoss = _loss_class("mmc", "MMCLoss", RegisteredLoss)
MMLDALoss = _loss_class("mmlda", "MMLDALoss", RegisteredLoss)
LabelSmoothingLoss = _loss_class("label_smoothing", "LabelSmoothingLoss", RegisteredLoss)
LGMLoss = _loss_class("lgm", "LGMLoss", RegisteredLoss)
CenterLoss = _loss_class("center", "CenterLoss", HeadLoss)
EMCLoss = _loss_class("emc", "EMCLoss", HeadLoss)
ISCELoss = _loss_class("isce", "ISCELoss", HeadLoss)

#: Registered loss name -> its Keras class (``mmc_rand`` is MMC on random centers: the same
#: loss, the centers differ).
KERAS_LOSSES: Dict[str, type] = {
    cls.loss_name: cls for cls in (SCELoss, MMCLoss, MMLDALoss, LabelSmoothingLoss, LGMLoss,
                                   CenterLoss, EMCLoss, ISCELoss)}
KERAS_LOSSES["mmc_rand"] = MMCLoss


def keras_loss(name: str, **kwargs: Any) -> keras.losses.Loss:
    """The Keras loss of registered loss ``name`` (``kwargs``: hyper-parameters, ``head=``)."""
    LOSSES.get(name)
    return KERAS_LOSSES[name](**kwargs)
