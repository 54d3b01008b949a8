"""Classifiers: a ResNet feature extractor plus the head the loss trains.

The head is chosen through a registry (``dense`` for SCE, ``mmc`` for MMC / MMLDA,
``center``, ``gm``, ``emc``, ``isce`` for the baselines), so new heads plug in by
registering one builder. Every classifier is ``head(backbone(x))`` with the backbone
named ``features`` and the head one layer named ``logits``.

    cfg = ModelConfig(version=1, n=1, loss="mmc", c_mm=10.0)
    model = build_classifier(cfg, input_shape=(28, 28, 3), num_classes=10)
    z = feature_model(model)(x)                      # (batch, feature_dim)
    loss = training_loss(cfg, model)                 # what the Trainer calls
"""
from __future__ import annotations

from typing import Any, Callable, Tuple

import keras
import numpy as np

import ts_centers
from keras_layers import (CenterLossDense, ElasticMMCLayer, GaussianMixtureLayer, ISCELayer,
                          MMCLayer)
from utils.errors import UsageError
from utils.loss_specs import LOSSES
from utils.losses import BoundLoss, bind_loss
from utils.models.resnet import build_feature_extractor
from utils.registry import Registry
from utils.runs.model_config import ModelConfig

FEATURES_NAME = "features"
LOGITS_NAME = "logits"

HeadBuilder = Callable[[Any, int, ModelConfig], Any]
HEADS: Registry[HeadBuilder] = Registry("head")


@HEADS.register("dense")
def dense_head(features: Any, num_classes: int, cfg: ModelConfig) -> Any:
    """``Wz + b`` logits (SCE); float32 even under mixed precision."""
    return keras.layers.Dense(
        num_classes, kernel_initializer="he_normal", dtype="float32", name=LOGITS_NAME
    )(features)


def _center_set(features: Any, num_classes: int, cfg: ModelConfig) -> np.ndarray:
    return ts_centers.get_centers(cfg.centers, num_classes, int(features.shape[-1]), cfg.c_mm,
                                  seed=cfg.center_seed, sub_ratio=cfg.sub_center_ratio)


@HEADS.register("mmc")
def mmc_head(features: Any, num_classes: int, cfg: ModelConfig) -> Any:
    """``-||z - mu_l||^2`` logits to the fixed centers ``cfg.centers`` scaled by C_MM."""
    return MMCLayer(_center_set(features, num_classes, cfg), name=LOGITS_NAME)(features)


@HEADS.register("emc")
def emc_head(features: Any, num_classes: int, cfg: ModelConfig) -> Any:
    """``-||z - mu_l||^2`` to trainable centers starting at the ``mmc`` head's (EMC)."""
    return ElasticMMCLayer(_center_set(features, num_classes, cfg), name=LOGITS_NAME)(features)


@HEADS.register("gm")
def gm_head(features: Any, num_classes: int, cfg: ModelConfig) -> Any:
    """``-1/2 ||z - mu_l||^2`` to trainable Gaussian means (L-GM)."""
    return GaussianMixtureLayer(num_classes, name=LOGITS_NAME)(features)


@HEADS.register("center")
def center_head(features: Any, num_classes: int, cfg: ModelConfig) -> Any:
    """``Wz + b`` (as ``dense``) holding the center loss' class centers."""
    return CenterLossDense(num_classes, kernel_initializer="he_normal", dtype="float32",
                           name=LOGITS_NAME)(features)


@HEADS.register("isce")
def isce_head(features: Any, num_classes: int, cfg: ModelConfig) -> Any:
    """L2-normalised ``Wz + b`` with I-SCE's inference rule (``isce_s``, ``isce_m``)."""
    return ISCELayer(num_classes, s=cfg.isce_s, m=cfg.isce_m, kernel_initializer="he_normal",
                     dtype="float32", name=LOGITS_NAME)(features)


def build_classifier(
    cfg: ModelConfig, input_shape: Tuple[int, int, int], num_classes: int
) -> keras.Model:
    """The classifier ``x -> logits``.

    Args:
        cfg: architecture and loss, see :class:`ModelConfig`.
        input_shape: ``(H, W, C)`` of mean-subtracted float32 images.
        num_classes: number of classes ``L``.

    Returns:
        A functional ``keras.Model`` mapping ``(batch, H, W, C)`` to float32 logits
        ``(batch, L)``; its sub-model ``FEATURES_NAME`` maps images to features ``z``.
    """
    if num_classes < 2:
        raise UsageError(f"a classifier needs at least 2 classes, got {num_classes}")
    head = HEADS.get(LOSSES.get(cfg.loss).head)
    backbone = build_feature_extractor(
        tuple(input_shape),
        version=cfg.version,
        n=cfg.n,
        feature_dim=cfg.feature_dim,
        use_BN=cfg.use_BN,
        use_dense=cfg.use_dense,
        use_leaky=cfg.use_leaky,
        is_2d_demo=cfg.is_2d_demo,
        name=FEATURES_NAME,
    )
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    logits = head(backbone(inputs), num_classes, cfg)
    return keras.Model(inputs, logits, name=f"{cfg.loss}_classifier")


def feature_model(model: keras.Model) -> keras.Model:
    """The sub-model ``x -> z`` (features, ``(batch, feature_dim)``) of a classifier."""
    return model.get_layer(FEATURES_NAME)


def head_layer(model: keras.Model) -> keras.layers.Layer:
    """The output layer ``z -> logits``:
    ``model(x) = head_layer(model)(feature_model(model)(x))``."""
    return model.get_layer(LOGITS_NAME)


def training_loss(cfg: ModelConfig, model: keras.Model) -> BoundLoss:
    """The loss ``cfg.loss`` bound to ``model``'s head and ``cfg``'s hyper-parameters."""
    return bind_loss(cfg.loss, head=head_layer(model), params=cfg.to_dict())
