"""A classifier whose forward pass is XLA-compiled, for the attacks (``--jit_compile``).

The attack modules call ``model_fn(x)`` and take gradients through it; wrapping the
model's call in ``tf.function(jit_compile=True)`` compiles that pass (and its gradient)
with XLA without changing them. Every other attribute (``output_shape``, ``layers``) is
the wrapped Keras model's.

    model = jit_model(loaded.model)      # same logits within float tolerance
"""
from __future__ import annotations

import functools
from typing import Any

import keras
import tensorflow as tf


class JitModel:
    """``model`` (``x -> logits``, shapes as the model's) with an XLA-compiled inference call."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self._call = tf.function(lambda x: model(x, training=False), jit_compile=True,
                                 reduce_retracing=True)

    def __call__(self, x: Any, training: bool = False) -> tf.Tensor:
        if training:  # not what attacks run: uncompiled, as the plain model
            return self.model(x, training=True)
        return self._call(tf.convert_to_tensor(x))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


@functools.lru_cache(maxsize=None)
def jit_model(model: keras.Model) -> JitModel:
    """The :class:`JitModel` of ``model`` (one per model: compiled once per input shape)."""
    return JitModel(model)
