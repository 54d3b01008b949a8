"""One run identity: what names a training run, its directory and its records.

A :class:`RunSpec` is everything that changes a run's directory name: dataset,
architecture and loss (:class:`utils.runs.model_config.ModelConfig`), optimizer, learning
rate, batch size and the adversarial-training settings (or None). Training writes to
``spec.directory(model_dir)``; every loader looks there (and at the legacy spelling,
:meth:`RunSpec.candidate_directories`); result records store ``spec.to_dict()`` so
reports never re-parse names. Its one constructor is the dataclass itself.

    spec = RunSpec("cifar10", ModelConfig(version=2, c_mm=100.0), "Adam", 0.001, 50)
    spec.name        # 'resnet32v2_meanvar100.0_Adam_lr0.001_batchsize50_withBN'
    spec.directory(".")  # ./trained_models/cifar10/<name>

Naming rule (the original's): ``trained_models/`` runs spell C_MM as ``str(float)``
(``meanvar10.0``, train.py's float flag), ``advtrained_models/`` runs as the integer
(``meanvar10``, advtrain.py's integer flag; a non-integer C_MM keeps its decimals).
Runs written before this rule (``trained_models/...meanvar10_...``) are still found.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any, Dict, List, Optional, Tuple

from utils.errors import UsageError
from utils.runs import checkpoints as ckpt
from utils.runs.advtrain_config import AdvTrainConfig
from utils.runs.model_config import ModelConfig
from utils.runs.naming import ADVTRAINED_ROOT, TRAINED_ROOT, run_name


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """The identity of one training run (frozen; hashable; validated when built).

    Attributes:
        dataset: ``mnist`` | ``fashion_mnist`` | ``cifar10`` | ``cifar100`` (a registered
            data source; checked where the data are loaded).
        model: the classifier's architecture and loss.
        optimizer, lr, batch_size: as the training flags (``lr`` is the initial rate,
            > 0; ``batch_size`` >= 1; the optimizer name is checked by training).
        advtrain: adversarial-training settings, None for standard training.
    """

    dataset: str
    model: ModelConfig
    optimizer: str
    lr: float
    batch_size: int
    advtrain: Optional[AdvTrainConfig] = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be > 0, got {self.lr}")
        if isinstance(self.batch_size, bool) or int(self.batch_size) != self.batch_size \
                or self.batch_size < 1:
            raise UsageError(f"--batch_size must be an int >= 1, got {self.batch_size}")

    @property
    def root(self) -> str:
        """``advtrained_models`` for adversarial training, else ``trained_models``."""
        return ADVTRAINED_ROOT if self.advtrain is not None else TRAINED_ROOT

    @property
    def name(self) -> str:
        """The directory name the original would give this run (see the module doc)."""
        return run_name(self.model, self.optimizer, self.lr, self.batch_size, self.advtrain,
                        float_meanvar=self.advtrain is None)

    def names(self) -> List[str]:
        """``[name, legacy name]`` (one entry where both spell C_MM alike)."""
        legacy = run_name(self.model, self.optimizer, self.lr, self.batch_size, self.advtrain,
                          float_meanvar=self.advtrain is not None)
        return [self.name] + ([legacy] if legacy != self.name else [])

    def directory(self, model_dir: str) -> pathlib.Path:
        """``<model_dir>/<root>/<dataset>/<name>``: where training writes."""
        return pathlib.Path(model_dir) / self.root / self.dataset / self.name

    def candidate_directories(self, model_dir: str) -> List[pathlib.Path]:
        """Where a loader looks, in order: :meth:`directory`, then the other spelling."""
        base = pathlib.Path(model_dir) / self.root / self.dataset
        return [base / name for name in self.names()]

    def find_directory(self, model_dir: str) -> pathlib.Path:
        """The first existing candidate directory, else :meth:`directory`."""
        return next((d for d in self.candidate_directories(model_dir) if d.is_dir()),
                    self.directory(model_dir))

    def find_checkpoint(self, model_dir: str, epoch: int) -> Tuple[pathlib.Path, pathlib.Path]:
        """``(run_dir, checkpoint)``: ours (``.weights.h5``) first, then the original's
        ``.h5``, in each candidate directory; a missing file is named by our spelling."""
        for run_dir in self.candidate_directories(model_dir):
            for path in (ckpt.checkpoint_path(run_dir, epoch),
                         ckpt.original_checkpoint_path(run_dir, epoch)):
                if path.exists():
                    return run_dir, path
        run_dir = self.find_directory(model_dir)
        return run_dir, ckpt.checkpoint_path(run_dir, epoch)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: every field, ``name`` and ``root`` (stored in result records)."""
        return dict(name=self.name, root=self.root, dataset=self.dataset,
                    model=self.model.to_dict(), optimizer=self.optimizer, lr=float(self.lr),
                    batch_size=int(self.batch_size),
                    advtrain=None if self.advtrain is None else dataclasses.asdict(self.advtrain))
