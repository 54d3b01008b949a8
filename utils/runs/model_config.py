"""The architecture and loss of a classifier, validated when built (no TensorFlow).

    cfg = ModelConfig(version=1, n=1, loss="mmc", c_mm=10.0)
    architecture_fingerprint(cfg, (28, 28, 3), 10)     # what arch.json stores
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

import ts_centers
from utils.errors import UsageError
from utils.loss_specs import LOSSES, check_loss_params

#: Width of the pooled ResNet features per version (the feature dim without a dense layer).
DEFAULT_FEATURE_DIM = {1: 64, 2: 256}


def check_version_and_n(version: int, n: int) -> None:
    """UsageError unless ``version`` is 1 or 2 and ``n`` an int >= 1."""
    if isinstance(version, bool) or version not in DEFAULT_FEATURE_DIM:
        raise UsageError(f"ResNet version must be 1 or 2, got {version!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"n (residual blocks per stage) must be an int >= 1, got {n!r}")


def depth_of(version: int, n: int) -> int:
    """Number of weighted layers of a ResNet: ``6n+2`` for v1, ``9n+2`` for v2.

    Args:
        version: 1 (basic blocks) or 2 (bottleneck, pre-activation).
        n: residual blocks per stage, >= 1.

    Returns:
        The depth, e.g. ``depth_of(1, 5) == 32``, ``depth_of(2, 12) == 110``.
    """
    check_version_and_n(version, n)
    return (6 if version == 1 else 9) * n + 2


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a classifier's architecture (and so its weight layout).

    Attributes mirror the original flags: ``version`` (1: ResNet v1, depth 6n+2;
    2: v2 bottleneck, depth 9n+2), ``n`` (blocks per stage; 5 gives the paper's
    "ResNet-32"), ``feature_dim`` (None: 64 for v1, 256 for v2), ``use_BN``,
    ``use_dense``, ``use_leaky``, ``is_2d_demo``; ``loss`` (a name in
    ``utils.loss_specs.LOSSES``; the alias ``mmc_rand`` becomes ``loss="mmc",
    centers="random"``), ``centers`` (a ``ts_centers`` set name), ``c_mm``
    (``mean_var``, the center norm), ``center_seed`` (for seeded center sets),
    ``sub_center_ratio`` (``C^2/C^1`` of hierarchical centers).

    The loss hyper-parameters (each read only by its loss): ``center_lambda``,
    ``center_alpha`` (Wen et al. 2016's lambda 0.003 and center rate 0.5), ``lgm_margin``,
    ``lgm_lambda`` (0.1 and 0.01, Wan et al.'s released code), ``emc_alpha`` (EMC prior
    variance; paper 002 gives none, 0.1 here), ``isce_s``, ``isce_m`` (paper 004: 1 and
    0.1), ``label_smoothing`` (0.1).

    Validated once, when built: a bad loss, center set, C_MM, ResNet version/depth,
    feature width or loss hyper-parameter raises a one-line UsageError.
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
        alias = LOSSES.get(self.loss).alias_of
        if alias is not None:
            object.__setattr__(self, "loss", alias[0])
            object.__setattr__(self, "centers", alias[1])
        if not (isinstance(self.c_mm, (int, float)) and math.isfinite(self.c_mm)
                and self.c_mm > 0):
            raise UsageError(f"--mean_var must be > 0 (C_MM, the center norm), got {self.c_mm}")
        check_version_and_n(self.version, self.n)
        if self.feature_dim is not None and self.feature_dim < 1:
            raise UsageError(f"--feature_dim must be >= 1, got {self.feature_dim}")
        ts_centers.CENTER_SETS.get(self.centers)
        ts_centers.check_sub_ratio(self.sub_center_ratio)
        check_loss_params({f: getattr(self, f) for f in LOSS_PARAM_FIELDS})

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# Fields that are some loss' hyper-parameters (see LossSpec.params).
LOSS_PARAM_FIELDS = tuple(sorted({p for name in LOSSES.names() for p in LOSSES.get(name).params}))


def architecture_fingerprint(
    cfg: ModelConfig, input_shape: Tuple[int, ...], num_classes: int
) -> Dict[str, Any]:
    """What must match for a checkpoint to load into a model (stored as ``arch.json``).

    ``center_seed`` and ``sub_center_ratio`` are left out (the checkpoint stores the
    centers themselves), and so are the hyper-parameters of losses other than
    ``cfg.loss``; stored files without the newer keys stay valid, as
    :func:`utils.runs.checkpoints.check_architecture` compares common keys only.
    """
    fp = cfg.to_dict()
    own = set(LOSSES.get(cfg.loss).params)
    for key in ("center_seed", "sub_center_ratio") + LOSS_PARAM_FIELDS:
        if key not in own:
            fp.pop(key)
    fp.update(input_shape=[int(s) for s in input_shape], num_classes=int(num_classes))
    return fp
