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

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import keras
import numpy as np

import ts_centers
from keras_layers import (CenterLossDense, ElasticMMCLayer, GaussianMixtureLayer, ISCELayer,
                          MMCLayer)
from utils.errors import UsageError
from utils.losses import LOSSES, BoundLoss, bind_loss, check_loss_params
from utils.models.resnet import build_feature_extractor, check_version_and_n
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
    ``utils.losses.LOSSES``; the alias ``mmc_rand`` becomes ``loss="mmc",
    centers="random"``), ``centers`` (a ``ts_centers`` set name), ``c_mm``
    (``mean_var``, the center norm), ``center_seed`` (for seeded center sets),
    ``sub_center_ratio`` (``C^2/C^1`` of hierarchical centers).

    The loss hyper-parameters (each read only by its loss; checked by
    :func:`check_model_config`): ``center_lambda``, ``center_alpha`` (Wen et al. 2016's
    lambda 0.003 and center rate 0.5), ``lgm_margin``, ``lgm_lambda`` (0.1 and 0.01, Wan
    et al.'s released code), ``emc_alpha`` (EMC prior variance; paper 002 gives none, 0.1
    here), ``isce_s``, ``isce_m`` (paper 004: 1 and 0.1), ``label_smoothing`` (0.1).
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
    sub_center_ratio: float = 0.1
    center_lambda: float = 0.003
    center_alpha: float = 0.5
    lgm_margin: float = 0.1
    lgm_lambda: float = 0.01
    emc_alpha: float = 0.1
    isce_s: float = 1.0
    isce_m: float = 0.1
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        alias = LOSSES.get(self.loss).alias_of if self.loss in LOSSES else None
        if alias is not None:
            object.__setattr__(self, "loss", alias[0])
            object.__setattr__(self, "centers", alias[1])

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# Fields that are some loss' hyper-parameters (see LossSpec.params).
LOSS_PARAM_FIELDS = tuple(sorted({p for name in LOSSES.names() for p in LOSSES.get(name).params}))


def check_model_config(cfg: ModelConfig) -> None:
    """One-line UsageErrors for a bad loss, center set, C_MM or loss hyper-parameter."""
    if cfg.c_mm <= 0 or not np.isfinite(cfg.c_mm):
        raise UsageError(f"--mean_var must be > 0 (C_MM, the center norm), got {cfg.c_mm}")
    check_version_and_n(cfg.version, cfg.n)  # before any data or checkpoint is loaded
    LOSSES.get(cfg.loss)
    ts_centers.CENTER_SETS.get(cfg.centers)
    ts_centers.check_sub_ratio(cfg.sub_center_ratio)
    check_loss_params({f: getattr(cfg, f) for f in LOSS_PARAM_FIELDS})


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
    check_model_config(cfg)
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


def architecture_fingerprint(
    cfg: ModelConfig, input_shape: Tuple[int, ...], num_classes: int
) -> Dict[str, Any]:
    """What must match for a checkpoint to load into a model (stored as ``arch.json``).

    ``center_seed`` and ``sub_center_ratio`` are left out (the checkpoint stores the
    centers themselves), and so are the hyper-parameters of losses other than
    ``cfg.loss``; stored files without the newer keys stay valid, as
    :func:`utils.training.checkpoints.check_architecture` compares common keys only.
    """
    fp = cfg.to_dict()
    own = set(LOSSES.get(cfg.loss).params)
    for key in ("center_seed", "sub_center_ratio") + LOSS_PARAM_FIELDS:
        if key not in own:
            fp.pop(key)
    fp.update(input_shape=[int(s) for s in input_shape], num_classes=int(num_classes))
    return fp
