"""Classifiers: a ResNet feature extractor plus the head the loss trains.

The head is chosen through a registry (``dense`` for SCE, ``mmc`` for MMC / MMLDA),
so new heads plug in by registering one builder.

    cfg = ModelConfig(version=1, n=1, loss="mmc", c_mm=10.0)
    model = build_classifier(cfg, input_shape=(28, 28, 3), num_classes=10)
    z = feature_model(model)(x)                      # (batch, feature_dim)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import keras
import numpy as np

import ts_centers
from keras_layers import MMCLayer
from utils.errors import UsageError
from utils.losses import LOSSES
from utils.models import build_feature_extractor
from utils.registry import Registry

FEATURES_NAME = "features"
LOGITS_NAME = "logits"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a classifier's architecture (and so its weight layout).

    Attributes mirror the original flags: ``version`` (1: ResNet v1, depth 6n+2;
    2: v2 bottleneck, depth 9n+2), ``n`` (blocks per stage; 5 gives the paper's
    "ResNet-32"), ``feature_dim`` (None: 64 for v1, 256 for v2), ``use_BN``,
    ``use_dense``, ``use_leaky``, ``is_2d_demo``; ``loss`` (a name in
    ``utils.losses.LOSSES``), ``centers`` (a ``ts_centers`` set name), ``c_mm``
    (``mean_var``, the center norm), ``center_seed`` (for seeded center sets).
    """

    version: int = 2
    n: int = 5
    feature_dim: Optional[int] = None
    use_BN: bool = True
    use_dense: bool = True
    use_leaky: bool = False
    is_2d_demo: bool = False
    loss: str = "mmc"
    centers: str = "mm"
    c_mm: float = 10.0
    center_seed: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


HeadBuilder = Callable[[Any, int, ModelConfig], Any]
HEADS: Registry[HeadBuilder] = Registry("head")


@HEADS.register("dense")
def dense_head(features: Any, num_classes: int, cfg: ModelConfig) -> Any:
    """``Wz + b`` logits (SCE); float32 even under mixed precision."""
    return keras.layers.Dense(
        num_classes, kernel_initializer="he_normal", dtype="float32", name=LOGITS_NAME
    )(features)


@HEADS.register("mmc")
def mmc_head(features: Any, num_classes: int, cfg: ModelConfig) -> Any:
    """``-||z - mu_l||^2`` logits to the fixed centers ``cfg.centers`` scaled by C_MM."""
    feature_dim = int(features.shape[-1])
    centers = ts_centers.get_centers(
        cfg.centers, num_classes, feature_dim, cfg.c_mm, seed=cfg.center_seed
    )
    return MMCLayer(centers, name=LOGITS_NAME)(features)


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
    if cfg.c_mm <= 0 or not np.isfinite(cfg.c_mm):
        raise UsageError(f"mean_var (C_MM) must be a positive number, got {cfg.c_mm}")
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


def architecture_fingerprint(
    cfg: ModelConfig, input_shape: Tuple[int, ...], num_classes: int
) -> Dict[str, Any]:
    """What must match for a checkpoint to load into a model (stored as ``arch.json``).

    ``center_seed`` is left out: the checkpoint stores the centers themselves.
    """
    fp = cfg.to_dict()
    fp.pop("center_seed")
    fp.update(input_shape=[int(s) for s in input_shape], num_classes=int(num_classes))
    return fp
