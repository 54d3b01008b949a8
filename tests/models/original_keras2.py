"""An independent tf_keras (Keras 2) rebuild of the original repository's models, for tests.

Behaviour of P2333/Max-Mahalanobis-Training's ``utils/model.py`` builders and of how
``train.py`` wraps them (SCE: features -> Dense(L) -> softmax; MMC / MMLDA: a weightless
Lambda on the features), written from its description; weights are randomised (BN
statistics too) and saved as the original saves them (``save_weights`` to ``.h5``).
"""
from __future__ import annotations

import numpy as np


def _tk():
    import tf_keras
    return tf_keras


def _unit(x, filters, opts, kernel=3, strides=1, act=True, bn=True, conv_first=True):
    tk = _tk()
    conv = tk.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                            kernel_initializer="he_normal",
                            kernel_regularizer=tk.regularizers.l2(1e-4))

    def norm_act(t):
        if bn and opts["use_BN"]:
            t = tk.layers.BatchNormalization()(t)
        return _act(t, opts) if act else t

    return norm_act(conv(x)) if conv_first else conv(norm_act(x))


def _trunk_v1(x, n, opts):
    x = _unit(x, 16, opts)
    filters = 16
    for stack in range(3):
        for block in range(n):
            down = stack > 0 and block == 0
            s = 2 if down else 1
            y = _unit(_unit(x, filters, opts, strides=s), filters, opts, act=False)
            if down:
                x = _unit(x, filters, opts, kernel=1, strides=s, act=False, bn=False)
            x = _act(_tk().layers.add([x, y]), opts)
        filters *= 2
    return x


def _act(x, opts):
    tk = _tk()
    return tk.layers.LeakyReLU(alpha=0.2)(x) if opts["use_leaky"] else \
        tk.layers.Activation("relu")(x)


def _trunk_v2(x, n, opts):
    f_in = 16
    x = _unit(x, f_in, opts)
    for stage in range(3):
        f_out = f_in * (4 if stage == 0 else 2)
        for block in range(n):
            first = stage == 0 and block == 0
            s = 2 if stage > 0 and block == 0 else 1
            y = _unit(x, f_in, opts, kernel=1, strides=s, act=not first, bn=not first,
                      conv_first=False)
            y = _unit(y, f_in, opts, conv_first=False)
            y = _unit(y, f_out, opts, kernel=1, conv_first=False)
            if block == 0:
                x = _unit(x, f_out, opts, kernel=1, strides=s, act=False, bn=False)
            x = _tk().layers.add([x, y])
        f_in = f_out
    if opts["use_BN"]:
        x = _tk().layers.BatchNormalization()(x)
    return _act(x, opts)


def build_original(version, n, input_shape, num_classes, head, centers=None, use_BN=True,
                   use_dense=True, use_leaky=False):
    """``(model as saved, logits model)``: head ``sce`` (Dense + softmax), ``mmc``
    (-||z - mu||^2 in a Lambda) or ``mmlda`` (its log-softmax, the original's use_ball=False)."""
    import tensorflow as tf
    tk = _tk()
    opts = dict(use_BN=use_BN, use_leaky=use_leaky)
    inputs = tk.Input(shape=input_shape)
    x = (_trunk_v1 if version == 1 else _trunk_v2)(inputs, n, opts)
    x = tk.layers.GlobalAveragePooling2D()(x)
    z = tk.layers.Dense(64 if version == 1 else 256, kernel_initializer="he_normal")(x) \
        if use_dense else x
    if head == "sce":
        logits = tk.layers.Dense(num_classes, kernel_initializer="he_normal")(z)
        return tk.Model(inputs, tk.layers.Activation("softmax")(logits)), \
            tk.Model(inputs, logits)
    mu = tf.constant(np.asarray(centers, np.float32))

    def mmlda(feat):
        out = -tf.reduce_sum(tf.square(feat[:, None, :] - mu[None]), axis=-1)
        return out if head == "mmc" else tf.nn.log_softmax(out, axis=-1)

    model = tk.Model(inputs, tk.layers.Lambda(mmlda)(z))
    return model, model


def randomise(model, seed=0):
    """Random weights everywhere (positive BN variances), so a wrong mapping shows."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.weights:
        value = rng.normal(scale=0.3, size=w.shape).astype(np.float32)
        if "moving_variance" in w.name:
            value = np.abs(value) + 0.5
        weights.append(value)
    model.set_weights(weights)
