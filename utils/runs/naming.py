"""The original's run-directory names, extended only where we add options.

    run_name(ModelConfig(version=2, c_mm=100.0), "Adam", 0.001, 50, float_meanvar=True)
    # 'resnet32v2_meanvar100.0_Adam_lr0.001_batchsize50_withBN'
"""
from __future__ import annotations

from typing import Optional

from ts_centers.hierarchical import DEFAULT_SUB_RATIO
from utils.loss_specs import CENTER_SET_HEADS, LOSSES
from utils.runs.advtrain_config import AdvTrainConfig
from utils.runs.model_config import DEFAULT_FEATURE_DIM, ModelConfig, depth_of

TRAINED_ROOT = "trained_models"
ADVTRAINED_ROOT = "advtrained_models"


def number_text(value: float) -> str:
    """``10.0 -> '10'`` (the original's integer ``mean_var``), ``0.01 -> '0.01'``."""
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1 else str(value)


def advtrain_suffix(adv: Optional[AdvTrainConfig]) -> str:
    """The original ``advtrain.py`` part of a name: ``_[target]MadryEtAl_advratio1.0``;
    crafting settings other than its fixed ones add ``_eps{e}_step{s}_iter{n}``; ``''``
    for standard training (``adv`` None)."""
    if adv is None:
        return ""
    suffix = f"_{'target' if adv.use_target else ''}{adv.attack_method}_advratio" \
             f"{float(adv.adv_ratio)}"
    if not adv.default_crafting:
        suffix += f"_eps{adv.eps_256:g}_step{adv.eps_iter_256:g}_iter{adv.nb_iter}"
    return suffix


def meanvar_text(c_mm: float, float_meanvar: bool) -> str:
    """C_MM in a run name: ``str(float)`` (train.py: ``10.0``) or, with
    ``float_meanvar=False``, the integer where it is one (advtrain.py: ``10``)."""
    return str(float(c_mm)) if float_meanvar else number_text(c_mm)


def _head_part(cfg: ModelConfig) -> str:
    """What follows the BN part: leaky, dense, feature width, center set, loss tags."""
    spec = LOSSES.get(cfg.loss)
    uses_centers = spec.head in CENTER_SET_HEADS
    parts = ["_withleaky"] if cfg.use_leaky else []
    parts += [] if cfg.use_dense else ["_nodense"]
    if cfg.feature_dim is not None and cfg.feature_dim != DEFAULT_FEATURE_DIM[cfg.version]:
        parts.append(f"_featuredim{cfg.feature_dim}")
    if uses_centers and cfg.centers == "random":
        parts.append("_random")
    elif uses_centers and cfg.centers != "mm":
        parts.append(f"_centers-{cfg.centers}")
        if cfg.centers == "hierarchical" and cfg.sub_center_ratio != DEFAULT_SUB_RATIO:
            parts.append(f"_subratio{number_text(cfg.sub_center_ratio)}")
    if cfg.loss == "mmlda":
        parts.append("_softmax")
    elif spec.run_tag:
        parts.append(spec.run_tag.format(**{p: number_text(getattr(cfg, p))
                                            for p in spec.params}))
    elif cfg.loss not in ("mmc", "sce"):
        parts.append(f"_loss-{cfg.loss}")
    if cfg.is_2d_demo:
        parts.append("_demoMNIST")
    return "".join(parts)


def run_name(cfg: ModelConfig, optimizer: str, lr: float, batch_size: int,
             adv: Optional[AdvTrainConfig] = None, float_meanvar: bool = False) -> str:
    """The original's directory name for a run, extended only where we add options.

    ``resnet32v{version}[_meanvar{C}]_{opt}_lr{lr}_batchsize{b}_{withBN|noBN}`` then
    ``_withleaky``, ``_nodense``, ``_random`` (random centers), ``_softmax`` (MMLDA),
    ``_demoMNIST`` (2-d features) as the original; ``resnet{depth}`` instead of
    ``resnet32`` when ``n != 5``, ``_featuredim{d}`` for a non-default width,
    ``_centers-{name}`` for center sets the original lacked (``_subratio{r}`` for
    hierarchical centers with a non-default ``C^2/C^1``) and, for losses it lacked, the
    loss' ``run_tag`` with its hyper-parameters (``_center_lambda0.003_alpha0.5``,
    ``_lgm_margin0.1_lambda0.01``, ``_emc_alpha0.1``, ``_isce_s1_m0.1``, ``_ls0.1``).
    :func:`advtrain_suffix` follows the batch size, as ``advtrain.py``.
    ``{C}`` is :func:`meanvar_text` (``float_meanvar``: train.py's ``10.0``; else ``10``).
    """
    arch = "resnet32" if cfg.n == 5 else f"resnet{depth_of(cfg.version, cfg.n)}"
    parts = [f"{arch}v{cfg.version}"]
    if LOSSES.get(cfg.loss).head in CENTER_SET_HEADS:
        parts.append(f"_meanvar{meanvar_text(cfg.c_mm, float_meanvar)}")
    parts.append(f"_{optimizer}_lr{lr}_batchsize{batch_size}{advtrain_suffix(adv)}")
    parts.append("_withBN" if cfg.use_BN else "_noBN")
    return "".join(parts) + _head_part(cfg)
