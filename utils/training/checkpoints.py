"""Run directories and checkpoint names.

Directory names follow the original repository (``trained_models/<dataset>/resnet32v2_
meanvar10.0_mom_lr0.01_batchsize50_withBN/model.005.weights.h5``) so the attack scripts
find a checkpoint from the training flags alone; :class:`utils.training.runspec.RunSpec`
is the one place that composes them. The original's Keras 2 files are ``model.005.h5``.

    run_dir = RunSpec("cifar10", cfg, "mom", 0.01, 50).directory(".")
"""
from __future__ import annotations

import json
import pathlib
import re
import tempfile
from typing import Any, Dict, List, Optional

from ts_centers.hierarchical import DEFAULT_SUB_RATIO
from utils.models.classifier import ModelConfig
from utils.errors import UsageError
from utils.models.resnet import DEFAULT_FEATURE_DIM

CHECKPOINT_RE = re.compile(r"^model\.(\d{3,})\.weights\.h5$")
#: The original's Keras 2 HDF5 weights (train.py / advtrain.py ``ModelCheckpoint``).
ORIGINAL_CHECKPOINT_RE = re.compile(r"^model\.(\d{3,})\.h5$")
ARCH_FILE = "arch.json"


def _number(value: float) -> str:
    """``10.0 -> '10'`` (the original's integer ``mean_var``), ``0.01 -> '0.01'``."""
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1 else str(value)


TRAINED_ROOT = "trained_models"
ADVTRAINED_ROOT = "advtrained_models"
# advtrain.py's fixed crafting settings: eps 8/256, step 2/256, 10 iterations.
ADVTRAIN_DEFAULTS = (8.0, 2.0, 10)


def advtrain_suffix(attack_method: str, adv_ratio: float, use_target: bool,
                    eps_256: float = 8.0, eps_iter_256: float = 2.0, num_iter: int = 10) -> str:
    """The original ``advtrain.py`` part of a name: ``_[target]MadryEtAl_advratio1.0``;
    crafting settings other than its fixed ones add ``_eps{e}_step{s}_iter{n}``."""
    suffix = f"_{'target' if use_target else ''}{attack_method}_advratio{float(adv_ratio)}"
    if (float(eps_256), float(eps_iter_256), int(num_iter)) != ADVTRAIN_DEFAULTS:
        suffix += f"_eps{eps_256:g}_step{eps_iter_256:g}_iter{num_iter}"
    return suffix


def meanvar_text(c_mm: float, float_meanvar: bool) -> str:
    """C_MM in a run name: ``str(float)`` (train.py: ``10.0``) or, with
    ``float_meanvar=False``, the integer where it is one (advtrain.py: ``10``)."""
    return str(float(c_mm)) if float_meanvar else _number(c_mm)


def run_name(cfg: ModelConfig, optimizer: str, lr: float, batch_size: int,
             adv_suffix: str = "", float_meanvar: bool = False) -> str:
    """The original's directory name for a run, extended only where we add options.

    ``resnet32v{version}[_meanvar{C}]_{opt}_lr{lr}_batchsize{b}_{withBN|noBN}`` then
    ``_withleaky``, ``_nodense``, ``_random`` (random centers), ``_softmax`` (MMLDA),
    ``_demoMNIST`` (2-d features) as the original; ``resnet{depth}`` instead of
    ``resnet32`` when ``n != 5``, ``_featuredim{d}`` for a non-default width,
    ``_centers-{name}`` for center sets the original lacked (``_subratio{r}`` for
    hierarchical centers with a non-default ``C^2/C^1``) and, for losses it lacked, the
    loss' ``run_tag`` with its hyper-parameters (``_center_lambda0.003_alpha0.5``,
    ``_lgm_margin0.1_lambda0.01``, ``_emc_alpha0.1``, ``_isce_s1_m0.1``, ``_ls0.1``).
    ``adv_suffix`` (:func:`advtrain_suffix`) follows the batch size, as ``advtrain.py``.
    ``{C}`` is :func:`meanvar_text` (``float_meanvar``: train.py's ``10.0``; else ``10``).
    """
    from utils.losses import CENTER_SET_HEADS, LOSSES
    from utils.models.resnet import depth_of

    spec = LOSSES.get(cfg.loss)
    arch = "resnet32" if cfg.n == 5 else f"resnet{depth_of(cfg.version, cfg.n)}"
    parts = [f"{arch}v{cfg.version}"]
    uses_centers = spec.head in CENTER_SET_HEADS
    if uses_centers:
        parts.append(f"_meanvar{meanvar_text(cfg.c_mm, float_meanvar)}")
    parts.append(f"_{optimizer}_lr{lr}_batchsize{batch_size}{adv_suffix}")
    parts.append("_withBN" if cfg.use_BN else "_noBN")
    if cfg.use_leaky:
        parts.append("_withleaky")
    if not cfg.use_dense:
        parts.append("_nodense")
    if cfg.feature_dim is not None and cfg.feature_dim != DEFAULT_FEATURE_DIM[cfg.version]:
        parts.append(f"_featuredim{cfg.feature_dim}")
    if uses_centers and cfg.centers == "random":
        parts.append("_random")
    elif uses_centers and cfg.centers != "mm":
        parts.append(f"_centers-{cfg.centers}")
        if cfg.centers == "hierarchical" and cfg.sub_center_ratio != DEFAULT_SUB_RATIO:
            parts.append(f"_subratio{_number(cfg.sub_center_ratio)}")
    if cfg.loss == "mmlda":
        parts.append("_softmax")
    elif spec.run_tag:
        parts.append(spec.run_tag.format(**{p: _number(getattr(cfg, p)) for p in spec.params}))
    elif cfg.loss not in ("mmc", "sce"):
        parts.append(f"_loss-{cfg.loss}")
    if cfg.is_2d_demo:
        parts.append("_demoMNIST")
    return "".join(parts)


def checkpoint_path(run_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    """``run_dir/model.{epoch:03d}.weights.h5`` (Keras 3 needs the ``.weights.h5`` end)."""
    return run_dir / f"model.{epoch:03d}.weights.h5"


def optimizer_state_path(run_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    """Optimizer variables saved beside each checkpoint, for an exact ``--resume``."""
    return run_dir / f"optimizer.{epoch:03d}.npz"


def list_checkpoints(run_dir: pathlib.Path, pattern: "re.Pattern[str]" = CHECKPOINT_RE
                     ) -> List[int]:
    """Epochs with a complete weights checkpoint in ``run_dir``, ascending (``pattern``:
    :data:`ORIGINAL_CHECKPOINT_RE` for the original's ``model.NNN.h5``)."""
    if not run_dir.is_dir():
        return []
    epochs = [int(m.group(1)) for p in run_dir.iterdir() if (m := pattern.match(p.name))]
    return sorted(epochs)


def original_checkpoint_path(run_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    """``run_dir/model.{epoch:03d}.h5``: the original's Keras 2 weights file."""
    return run_dir / f"model.{epoch:03d}.h5"


def ensure_writable_dir(path: pathlib.Path, flag: str = "--model_dir") -> pathlib.Path:
    """Create ``path`` (and parents) and check it is writable; UsageError naming ``flag``."""
    path = pathlib.Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=path, prefix=".probe", delete=True).close()
    except OSError as exc:
        raise UsageError(
            f"cannot write to {path} ({exc.strerror or exc}); pass a writable {flag}"
        ) from None
    return path


def check_architecture(run_dir: pathlib.Path, fingerprint: Dict[str, Any]) -> None:
    """Refuse a run directory whose ``arch.json`` describes another architecture."""
    arch_file = run_dir / ARCH_FILE
    if not arch_file.exists():
        return
    try:
        stored = json.loads(arch_file.read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"{arch_file} is unreadable or truncated; delete {run_dir} or use another --model_dir"
        ) from None
    # Keys only one side knows (written by an older or newer version) are not compared.
    diff = sorted(k for k in set(stored) & set(fingerprint) if stored[k] != fingerprint[k])
    if diff:
        what = ", ".join(f"{k}={stored.get(k)!r} there vs {fingerprint.get(k)!r} now" for k in diff)
        raise UsageError(
            f"{run_dir} holds checkpoints of a different architecture ({what}); "
            "use the flags it was trained with, another --model_dir, or delete it"
        )


def latest_checkpoint(run_dir: pathlib.Path) -> Optional[int]:
    """The last epoch with a weights checkpoint, or None."""
    epochs = list_checkpoints(run_dir)
    return epochs[-1] if epochs else None
