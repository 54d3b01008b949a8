"""Custom, serializable Keras layers of the MMC toolkit.

``MMCLayer`` is the Max-Mahalanobis Center output layer (the original repository's
``MMLDA_layer`` in a ``Lambda``); here it is a registered layer, so a saved ``.keras``
model reloads with ``safe_mode=True``.

    centers = ts_centers.get_centers("mm", num_classes=10, feature_dim=64, c_mm=10.0)
    logits = MMCLayer(centers)(features)        # (batch, 10) = -||z - mu_l||^2
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import keras
import numpy as np
from keras import ops

ArrayLike = Union[np.ndarray, Sequence[Sequence[float]]]


@keras.saving.register_keras_serializable(package="mmt")
class MMCLayer(keras.layers.Layer):
    """Logits ``h_l = -||z - mu_l||^2`` to fixed class centers ``mu`` (MMC / MMLDA head).

    Args:
        centers: class centers, shape ``(num_classes, feature_dim)``, already scaled by
            ``C_MM`` (``mean_var``); stored as a non-trainable weight.
        normalize_output: if True, return ``softmax(h)`` instead of ``h`` (the original's
            ``normalize_output_for_ball``); attacks want the logits (False).

    Input: ``z`` of shape ``(batch, feature_dim)``. Output: ``(batch, num_classes)``,
    always float32 (the squared distances are computed in float32 even under a
    mixed-precision policy).
    """

    def __init__(
        self,
        centers: ArrayLike,
        normalize_output: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        centers_np = np.asarray(centers, dtype=np.float64)
        if centers_np.ndim != 2 or centers_np.shape[0] < 2 or centers_np.shape[1] < 1:
            raise ValueError(
                "MMCLayer centers must have shape (num_classes >= 2, feature_dim >= 1), "
                f"got {centers_np.shape}"
            )
        if not np.all(np.isfinite(centers_np)):
            raise ValueError("MMCLayer centers contain NaN or inf")
        self._centers_init = centers_np
        self.num_classes, self.feature_dim = (int(s) for s in centers_np.shape)
        self.normalize_output = bool(normalize_output)
        self.centers: Optional[keras.Variable] = None

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        if input_shape[-1] is not None and int(input_shape[-1]) != self.feature_dim:
            raise ValueError(
                f"MMCLayer expects features of dimension {self.feature_dim}, "
                f"got input shape {tuple(input_shape)}"
            )
        self.centers = self.add_weight(
            name="centers",
            shape=(self.num_classes, self.feature_dim),
            initializer=keras.initializers.Constant(self._centers_init.astype(np.float32)),
            trainable=False,
            dtype="float32",
        )
        super().build(input_shape)

    def call(self, z: Any) -> Any:
        z = ops.cast(z, "float32")
        # (batch, 1, d) - (1, L, d): exact distances, no ||z||^2 - 2 z.mu + ||mu||^2
        # cancellation, so the loss is exactly zero at a center.
        diff = ops.expand_dims(z, 1) - ops.expand_dims(self.centers, 0)
        logits = -ops.sum(ops.square(diff), axis=-1)
        if self.normalize_output:
            return ops.softmax(logits, axis=-1)
        return logits

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        return (input_shape[0], self.num_classes)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "centers": self._centers_init.tolist(),
                "normalize_output": self.normalize_output,
            }
        )
        return config
