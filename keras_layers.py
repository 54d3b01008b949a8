"""Custom, serializable Keras layers of the MMC toolkit.

``MMCLayer`` is the Max-Mahalanobis Center output layer (the original repository's
``MMLDA_layer`` in a ``Lambda``); here it is a registered layer, so a saved ``.keras``
model reloads with ``safe_mode=True``. The heads of the baselines the papers compare are
here too: ``CenterLossDense`` (Wen et al. 2016), ``GaussianMixtureLayer`` (L-GM, Wan et
al. 2018), ``ElasticMMCLayer`` (EMC, paper 002 B.3) and ``ISCELayer`` (I-SCE, paper 004).

    centers = ts_centers.get_centers("mm", num_classes=10, feature_dim=64, c_mm=10.0)
    logits = MMCLayer(centers)(features)        # (batch, 10) = -||z - mu_l||^2
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf
from keras import ops

ArrayLike = Union[np.ndarray, Sequence[Sequence[float]]]


def squared_distances(z: Any, centers: Any) -> Any:
    """``||z_i - mu_l||^2``, ``(batch, L)`` float32, of ``z`` ``(batch, d)`` and ``mu`` ``(L, d)``.

    Computed as ``(batch, 1, d) - (1, L, d)``: exact, no ``||z||^2 - 2 z.mu + ||mu||^2``
    cancellation, so a loss built on it is exactly zero at a center.
    """
    diff = ops.expand_dims(ops.cast(z, "float32"), 1) - ops.expand_dims(centers, 0)
    return ops.sum(ops.square(diff), axis=-1)


def _check_centers(centers: ArrayLike, owner: str) -> np.ndarray:
    centers_np = np.asarray(centers, dtype=np.float64)
    if centers_np.ndim != 2 or centers_np.shape[0] < 2 or centers_np.shape[1] < 1:
        raise ValueError(
            f"{owner} centers must have shape (num_classes >= 2, feature_dim >= 1), "
            f"got {centers_np.shape}"
        )
    if not np.all(np.isfinite(centers_np)):
        raise ValueError(f"{owner} centers contain NaN or inf")
    return centers_np


@keras.saving.register_keras_serializable(package="mmt")
class MMCLayer(keras.layers.Layer):
    """Logits ``h_l = -||z - mu_l||^2`` to fixed class centers ``mu`` (MMC / MMLDA head).

    Args:
        centers: class centers, shape ``(num_classes, feature_dim)``, already scaled by
            ``C_MM`` (``mean_var``); stored as a non-trainable weight. None (a layer
            rebuilt from its config): zeros of ``(num_classes, feature_dim)``, to be set
            by loading the weights. The config holds the shape only, so a ``.keras`` file
            keeps the centers in its weights; configs that hold ``centers`` still load.
        normalize_output: if True, return ``softmax(h)`` instead of ``h`` (the original's
            ``normalize_output_for_ball``); attacks want the logits (False).

    Input: ``z`` of shape ``(batch, feature_dim)``. Output: ``(batch, num_classes)``,
    always float32 (the squared distances are computed in float32 even under a
    mixed-precision policy).
    """

    def __init__(
        self,
        centers: Optional[ArrayLike] = None,
        normalize_output: bool = False,
        num_classes: Optional[int] = None,
        feature_dim: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if centers is None:
            if num_classes is None or feature_dim is None:
                raise ValueError(f"{type(self).__name__} needs centers, or num_classes and "
                                 "feature_dim")
            centers = np.zeros((int(num_classes), int(feature_dim)))
        centers_np = _check_centers(centers, type(self).__name__)
        self._centers_init = centers_np
        self.num_classes, self.feature_dim = (int(s) for s in centers_np.shape)
        self.normalize_output = bool(normalize_output)
        self.centers: Optional[keras.Variable] = None

    def _check_input(self, input_shape: Sequence[Optional[int]]) -> None:
        if input_shape[-1] is not None and int(input_shape[-1]) != self.feature_dim:
            raise ValueError(
                f"{type(self).__name__} expects features of dimension {self.feature_dim}, "
                f"got input shape {tuple(input_shape)}"
            )

    def _center_weight(self, name: str, trainable: bool) -> keras.Variable:
        return self.add_weight(
            name=name,
            shape=(self.num_classes, self.feature_dim),
            initializer=keras.initializers.Constant(self._centers_init.astype(np.float32)),
            trainable=trainable,
            dtype="float32",
        )

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        self._check_input(input_shape)
        self.centers = self._center_weight("centers", trainable=False)
        super().build(input_shape)

    def call(self, z: Any) -> Any:
        logits = -squared_distances(z, self.centers)
        if self.normalize_output:
            return ops.softmax(logits, axis=-1)
        return logits

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        return (input_shape[0], self.num_classes)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "feature_dim": self.feature_dim,
                "normalize_output": self.normalize_output,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="mmt")
class ElasticMMCLayer(MMCLayer):
    """EMC head (paper 002 B.3): logits ``-||z - mu_l||^2`` to TRAINABLE centers ``mu``.

    ``mu`` (weight ``centers``) starts at the fixed centers ``mu*`` it was given (weight
    ``prior_centers``, non-trainable), to which the EMC loss' prior term
    ``1/(2 alpha) ||mu_y - mu*_y||^2`` pulls it back. Args as :class:`MMCLayer`.
    """

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        self._check_input(input_shape)
        self.centers = self._center_weight("centers", trainable=True)
        self.prior_centers = self._center_weight("prior_centers", trainable=False)
        keras.layers.Layer.build(self, input_shape)


@keras.saving.register_keras_serializable(package="mmt")
class GaussianMixtureLayer(keras.layers.Layer):
    """L-GM head (Wan et al. 2018) with identity covariances: ``-1/2 ||z - mu_l||^2``.

    The means ``mu`` (weight ``centers``, ``(num_classes, feature_dim)``) are trainable,
    initialised by ``centers_initializer`` (Glorot-uniform, as the authors' code). The
    margin and the likelihood term act only in the loss (``utils.losses.lgm_loss``), so
    these logits are the margin-free ones Wan et al. predict with.

    Input ``z`` ``(batch, feature_dim)``; output float32 ``(batch, num_classes)``.
    """

    def __init__(self, num_classes: int, centers_initializer: Any = "glorot_uniform",
                 **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"GaussianMixtureLayer needs num_classes >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.centers_initializer = keras.initializers.get(centers_initializer)
        self.centers: Optional[keras.Variable] = None

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        self.centers = self.add_weight(name="centers", shape=(self.num_classes, input_shape[-1]),
                                       initializer=self.centers_initializer, trainable=True,
                                       dtype="float32")
        super().build(input_shape)

    def call(self, z: Any) -> Any:
        return -0.5 * squared_distances(z, self.centers)

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        return (input_shape[0], self.num_classes)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(num_classes=self.num_classes, centers_initializer=keras.initializers
                      .serialize(self.centers_initializer))
        return config


@keras.saving.register_keras_serializable(package="mmt")
class CenterLossDense(keras.layers.Layer):
    """SCE head ``Wz + b`` that also holds the center-loss class centers (Wen et al. 2016).

    The centers ``c`` (weight ``class_centers``, ``(units, feature_dim)``, zeros at the
    start) are non-trainable: they follow the batch features through
    :meth:`update_centers`, not gradients, and are saved with the checkpoint. (Not a
    ``keras.layers.Dense`` subclass: Dense saves only its kernel and bias.)

    Args:
        units: number of classes.
        kernel_initializer: of ``W`` (``b`` starts at zero).
    """

    def __init__(self, units: int, kernel_initializer: Any = "he_normal", **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        feature_dim = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(feature_dim, self.units),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.class_centers = self.add_weight(name="class_centers",
                                             shape=(self.units, feature_dim),
                                             initializer="zeros", trainable=False)
        super().build(input_shape)

    def call(self, z: Any) -> Any:
        return ops.matmul(z, self.kernel) + self.bias

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        return (input_shape[0], self.units)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(units=self.units, kernel_initializer=keras.initializers.serialize(
            self.kernel_initializer))
        return config

    def update_centers(self, features: Any, labels_onehot: Any, alpha: float) -> None:
        """Wen et al.'s rule ``c_j <- c_j - alpha * sum_{i: y_i = j} (c_j - z_i) / (1 + n_j)``.

        Sums and counts run over the GLOBAL batch: inside ``strategy.run`` they are
        all-reduced over the replicas, so every replica applies the same update (the one
        a single device would make on the whole batch). Call it after the weight update,
        with the features of that step's forward pass.
        """
        z = tf.cast(features, tf.float32)
        y = tf.cast(labels_onehot, tf.float32)
        sums = [tf.reduce_sum(y, axis=0), tf.matmul(y, z, transpose_a=True)]  # n_j, sum z_i
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums)
        counts = sums[0][:, None]
        delta = (counts * self.class_centers - sums[1]) / (1.0 + counts)
        self.class_centers.assign_sub(float(alpha) * delta)


@keras.saving.register_keras_serializable(package="mmt")
class ISCELayer(keras.layers.Dense):
    """I-SCE head (paper 004): L2-normalised logits ``f = (Wz+b)/||Wz+b||``, then 004 §3.2's
    inference rule: ``s f_a + m`` on the arg-max class ``a``, ``f_j`` elsewhere.

    Training applies ``s`` and ``m`` on the TRUE class instead (eq. 3,
    ``utils.losses.isce_loss`` reads :meth:`normalized_logits`). At a correctly classified
    input the output is exactly the training logits, so cross-entropy on it is the I-SCE
    loss; the arg-max is that of ``f`` (``s >= 1``, ``m > 0``), and ``softmax`` of the
    output is eq. 2's ``P_I``.

    Args:
        units: number of classes.
        s: scale on the selected class, ``>= 1``.
        m: additive margin on the selected class, ``>= 0`` (the loss requires ``> 0``).
        **kwargs: ``keras.layers.Dense`` arguments.
    """

    def __init__(self, units: int, s: float = 1.0, m: float = 0.1, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        if not (np.isfinite(s) and s >= 1.0) or not (np.isfinite(m) and m >= 0.0):
            raise ValueError(f"ISCELayer needs s >= 1 and m >= 0, got s={s}, m={m}")
        self.s, self.m = float(s), float(m)

    def normalized_logits(self, z: Any) -> Any:
        """``f = (Wz + b) / ||Wz + b||``, float32 ``(batch, units)``."""
        # Called directly by the loss too, without __call__'s input autocast.
        logits = super().call(ops.cast(z, self.compute_dtype))
        return ops.normalize(ops.cast(logits, "float32"), axis=-1)

    def call(self, z: Any, training: Optional[bool] = None) -> Any:
        f = self.normalized_logits(z)
        picked = ops.one_hot(ops.argmax(f, axis=-1), self.units, dtype="float32")
        return f + picked * ((self.s - 1.0) * f + self.m)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(s=self.s, m=self.m)
        return config


@keras.saving.register_keras_serializable(package="mmt")
class PixelMean(keras.layers.Layer):
    """``x - mean`` (``subtract=True``: [0, 1] pixels to the classifier's inputs) or
    ``x + mean`` (back to pixels); ``mean`` is the training pixel mean ``(H, W, C)`` in
    [0, 1] units, held as a non-trainable weight (the config holds its shape only)."""

    def __init__(self, mean: Optional[ArrayLike] = None, subtract: bool = True,
                 mean_shape: Optional[Sequence[int]] = None, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mean is None and mean_shape is None:
            raise ValueError("PixelMean needs mean, or mean_shape")
        self._mean_init = (np.zeros(tuple(mean_shape)) if mean is None
                           else np.asarray(mean, np.float64))
        self.subtract = bool(subtract)
        self.mean: Optional[keras.Variable] = None

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        self.mean = self.add_weight(
            name="mean", shape=self._mean_init.shape, trainable=False, dtype="float32",
            initializer=keras.initializers.Constant(self._mean_init.astype(np.float32)))
        super().build(input_shape)

    def call(self, x: Any) -> Any:
        x = ops.cast(x, "float32")
        return x - self.mean if self.subtract else x + self.mean

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(subtract=self.subtract, mean_shape=list(self._mean_init.shape))
        return config
