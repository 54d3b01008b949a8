"""Checkpoint and run-file names in a run directory, and the checks on them (no TensorFlow).

Ours: ``model.005.weights.h5`` with ``state.005.*`` (the whole training state) beside it;
the original's Keras 2 files are ``model.005.h5``.

    checkpoint_path(run_dir, 5)      # run_dir / 'model.005.weights.h5'
    list_checkpoints(run_dir)        # [5, 10, ...]
"""
from __future__ import annotations

import json
import pathlib
import re
import tempfile
from typing import Any, Dict, List, Optional

from utils.errors import UsageError

CHECKPOINT_RE = re.compile(r"^model\.(\d{3,})\.weights\.h5$")
#: The original's Keras 2 HDF5 weights (train.py / advtrain.py ``ModelCheckpoint``).
ORIGINAL_CHECKPOINT_RE = re.compile(r"^model\.(\d{3,})\.h5$")
ARCH_FILE = "arch.json"
HISTORY_FILE = "history.csv"


def checkpoint_path(run_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    """``run_dir/model.{epoch:03d}.weights.h5`` (Keras 3 needs the ``.weights.h5`` end)."""
    return pathlib.Path(run_dir) / f"model.{epoch:03d}.weights.h5"


def original_checkpoint_path(run_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    """``run_dir/model.{epoch:03d}.h5``: the original's Keras 2 weights file."""
    return pathlib.Path(run_dir) / f"model.{epoch:03d}.h5"


def optimizer_state_path(run_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    """Optimizer variables of runs saved before the whole-state checkpoints (read only)."""
    return pathlib.Path(run_dir) / f"optimizer.{epoch:03d}.npz"


def state_prefix(run_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    """``run_dir/state.{epoch:03d}`` (``.index`` and ``.data-*`` files)."""
    return pathlib.Path(run_dir) / f"state.{epoch:03d}"


def list_checkpoints(run_dir: pathlib.Path, pattern: "re.Pattern[str]" = CHECKPOINT_RE
                     ) -> List[int]:
    """Epochs with a complete weights checkpoint in ``run_dir``, ascending (``pattern``:
    :data:`ORIGINAL_CHECKPOINT_RE` for the original's ``model.NNN.h5``)."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        return []
    epochs = [int(m.group(1)) for p in run_dir.iterdir() if (m := pattern.match(p.name))]
    return sorted(epochs)


def latest_checkpoint(run_dir: pathlib.Path) -> Optional[int]:
    """The last epoch with a weights checkpoint, or None."""
    epochs = list_checkpoints(run_dir)
    return epochs[-1] if epochs else None


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
    arch_file = pathlib.Path(run_dir) / ARCH_FILE
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
