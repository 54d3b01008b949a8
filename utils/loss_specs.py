"""What names a training loss and what it trains: plain data, no TensorFlow.

A :class:`LossSpec` says which head a loss trains, which hyper-parameters it reads, which
adaptive attack objectives fit its models and how it marks a run's directory name. Run
naming (:mod:`utils.runs`) and flag parsing read these without loading TensorFlow; the
loss functions themselves register under the same names in :mod:`utils.losses`.

    LOSSES.get("mmc").head          # 'mmc'
    loss_name_from_flags(use_MMLDA=True, use_ball=False)   # 'mmlda'
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from utils.errors import UsageError
from utils.registry import Registry

# Heads built on a ts_centers set scaled by C_MM (mean_var, --centers apply to them).
CENTER_SET_HEADS = frozenset({"mmc", "emc"})


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """A training loss' identity.

    Attributes:
        name: registry name (``sce``, ``mmc``, ``mmlda``, ``center``, ...).
        head: the output head it trains (a name in ``utils.models.classifier.HEADS``: ``dense``
            ``Wz + b``; ``mmc`` ``-||z - mu_l||^2`` to fixed centers; ``center``, ``gm``,
            ``emc``, ``isce``: see there).
        description: one line for ``--help`` and records.
        params: hyper-parameters the loss takes by keyword (ModelConfig field names).
        needs_features: the loss function takes ``features=``.
        needs_head: the loss function (and its ``after_step``) take ``head=``.
        objectives: the adaptive attack objectives of its models (``utils.attacks.objectives``):
            ``"mmc"`` (``mmc_*``, logits are minus squared distances to centers),
            ``"gm"`` (such logits, but trained with softmax CE: ``ce`` / ``margin`` by
            default, ``mmc_*`` allowed) or ``"ce"`` (``ce`` / C&W ``margin``).
        run_tag: run-directory suffix, ``str.format``-ed with the ``params`` values.
        alias_of: ``(loss, centers)`` this name stands for (``mmc_rand``), or None.
    """

    name: str
    head: str
    description: str
    params: Tuple[str, ...] = ()
    needs_features: bool = False
    needs_head: bool = False
    objectives: str = "ce"
    run_tag: str = ""
    alias_of: Optional[Tuple[str, str]] = None


LOSSES: Registry[LossSpec] = Registry("loss")


def declare_loss(name: str, *, head: str, description: str, **options: Any) -> None:
    """Register the :class:`LossSpec` ``name``; ``options`` are its other fields."""
    LOSSES.register(name)(LossSpec(name, head, description, **options))


declare_loss("sce", head="dense", description="softmax cross-entropy on Wz+b (baseline)")
declare_loss("mmc", head="mmc", objectives="mmc",
             description="Max-Mahalanobis center loss ||z - mu_y||^2")
# The original's use_random: MMC on seeded random centers ("MMC-10 (rand)").
declare_loss("mmc_rand", head="mmc", objectives="mmc", alias_of=("mmc", "random"),
             description="MMC on random centers (= --loss=mmc --centers=random)")
declare_loss("mmlda", head="mmc", objectives="gm",
             description="softmax cross-entropy on the MMC logits")
declare_loss("label_smoothing", head="dense", params=("label_smoothing",),
             run_tag="_ls{label_smoothing}",
             description="SCE on smoothed labels (1 - eps) y + eps / L")
declare_loss("center", head="center", params=("center_lambda", "center_alpha"),
             needs_features=True, needs_head=True,
             run_tag="_center_lambda{center_lambda}_alpha{center_alpha}",
             description="center loss: SCE + lambda/2 ||z - c_y||^2, c from the batches")
declare_loss("lgm", head="gm", params=("lgm_margin", "lgm_lambda"), objectives="gm",
             run_tag="_lgm_margin{lgm_margin}_lambda{lgm_lambda}",
             description="large-margin Gaussian mixture (L-GM), identity covariances")
declare_loss("emc", head="emc", params=("emc_alpha",), needs_head=True, objectives="mmc",
             run_tag="_emc_alpha{emc_alpha}",
             description="elastic MMC: 1/2 ||z - mu_y||^2 + 1/(2 alpha) ||mu_y - mu*_y||^2")
declare_loss("isce", head="isce", params=("isce_s", "isce_m"), needs_features=True,
             needs_head=True, run_tag="_isce_s{isce_s}_m{isce_m}",
             description="inference-softmax cross-entropy (paper 004): s f_y + m on "
                         "L2-normalised logits f")

# name -> (valid?, what is valid); UsageError for anything else (also NaN / inf).
PARAM_RULES: Dict[str, Tuple[Callable[[float], bool], str]] = {
    "center_lambda": (lambda v: v >= 0, ">= 0 (Wen et al.: 0.003)"),
    "center_alpha": (lambda v: 0 < v <= 1, "in (0, 1] (Wen et al.: 0.5)"),
    "lgm_margin": (lambda v: v >= 0, ">= 0 (Wan et al.: 0.1)"),
    "lgm_lambda": (lambda v: v >= 0, ">= 0 (Wan et al.: 0.01)"),
    "emc_alpha": (lambda v: v > 0, "> 0 (the prior variance of the centers)"),
    "isce_s": (lambda v: v >= 1, ">= 1 (paper 004: s in [1, 2], default 1)"),
    "isce_m": (lambda v: v > 0, "> 0 (paper 004: m in (0, 0.1], default 0.1)"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1) (usual: 0.1)"),
}


def check_loss_params(params: Mapping[str, Any]) -> None:
    """UsageError naming the first hyper-parameter outside its range (see PARAM_RULES)."""
    for name, value in params.items():
        if name not in PARAM_RULES:
            continue
        ok, valid = PARAM_RULES[name]
        if not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
            raise UsageError(f"{name} must be {valid}, got {value}")


def loss_name_from_flags(use_MMLDA: bool, use_ball: bool) -> str:
    """The loss the original's flags select: SCE, MMC (ball) or MMLDA (softmax)."""
    if not use_MMLDA:
        return "sce"
    return "mmc" if use_ball else "mmlda"
