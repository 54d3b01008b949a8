"""Reading and writing center sets in the original repository's format.

Files hold *unit-norm* centers, shape ``(num_classes, feature_dim)``: ``.mat`` files under
the key ``mean_logits`` (named like ``meanvar1_featuredim64_class10.mat``), or ``.npy``.
``C_MM`` is applied when loading.

    save_centers(tmp_dir / mat_filename(10, 64), get_centers("mm", 10, 64, c_mm=1.0))
    centers = load_centers(shipped_centers_path(10, 64), c_mm=10.0)  # (10, 64), norm 10
"""
from __future__ import annotations

import os
import pathlib
from typing import Optional, Union

import numpy as np
import scipy.io

from ts_centers.builders import check_c_mm
from utils.errors import UsageError
from utils.fileio import atomic_write

PathLike = Union[str, os.PathLike]

MAT_KEY = "mean_logits"
SUFFIXES = (".mat", ".npy")
DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
# (num_classes, feature_dim) of the MM center files shipped in DATA_DIR.
SHIPPED_SIZES = ((10, 64), (10, 256), (100, 256))
# Stored rows must have norm 1 within this; catches files saved already scaled by C_MM.
UNIT_NORM_ATOL = 1e-6


def mat_filename(num_classes: int, feature_dim: int) -> str:
    """Original repository's file name, e.g. ``meanvar1_featuredim64_class10.mat``."""
    return f"meanvar1_featuredim{int(feature_dim)}_class{int(num_classes)}.mat"


def shipped_centers_path(num_classes: int, feature_dim: int) -> Optional[pathlib.Path]:
    """Path of the shipped unit MM center file for ``(L, d)``, or None if none is shipped."""
    path = DATA_DIR / mat_filename(num_classes, feature_dim)
    return path if path.is_file() else None


def _suffix(path: pathlib.Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(
            f"center file {str(path)!r} has unknown suffix {path.suffix!r}; "
            f"use one of {', '.join(SUFFIXES)}"
        )
    return suffix


def _check_centers(centers: np.ndarray, source: str) -> np.ndarray:
    """``centers`` as float64 ``(L >= 2, d >= 1)`` with finite unit rows, else UsageError."""
    if centers.dtype.kind not in "biuf":
        raise UsageError(
            f"{source} holds a {centers.dtype} array, not real numbers; "
            "store float centers of shape (num_classes, feature_dim)"
        )
    centers = centers.astype(np.float64)
    if centers.ndim != 2 or centers.shape[0] < 2 or centers.shape[1] < 1:
        raise UsageError(
            f"{source} holds an array of shape {centers.shape}, expected a 2-D "
            "(num_classes >= 2, feature_dim >= 1) array; store one center per row"
        )
    if not np.all(np.isfinite(centers)):
        raise UsageError(
            f"{source} contains NaN or inf; re-craft it with python -m ts_centers.craft"
        )
    norms = np.linalg.norm(centers, axis=1)
    worst = float(norms[np.argmax(np.abs(norms - 1.0))])
    if abs(worst - 1.0) > UNIT_NORM_ATOL:
        raise UsageError(
            f"{source} has a row of norm {worst:.6g}, expected unit-norm centers "
            "(C_MM is applied at load); divide the centers by their norm first"
        )
    return centers


def _read(path: pathlib.Path, suffix: str) -> np.ndarray:
    # Readers fail on damaged files with many exception types (MatReadError, OSError,
    # IndexError, ValueError, EOFError...); all mean the same thing to the user.
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        contents = scipy.io.loadmat(str(path))
    except Exception as err:  # noqa: BLE001 - re-raised as one user-facing error
        reason = " ".join(str(err).split()) or type(err).__name__
        raise UsageError(
            f"cannot read center file {str(path)!r} (truncated or corrupt: {reason}); "
            "re-create it with python -m ts_centers.craft"
        ) from err
    if MAT_KEY not in contents:
        found = ", ".join(k for k in contents if not k.startswith("__")) or "none"
        raise UsageError(
            f"center file {str(path)!r} has no variable {MAT_KEY!r} (found: {found}); "
            f"save the (num_classes, feature_dim) centers under {MAT_KEY!r}"
        )
    return np.asarray(contents[MAT_KEY])


def load_centers(path: PathLike, c_mm: float = 1.0) -> np.ndarray:
    """Unit centers from a ``.mat`` (key ``mean_logits``) or ``.npy`` file, times ``c_mm``.

    Args:
        path: ``.mat`` or ``.npy`` file holding unit-norm centers of shape ``(L, d)``.
        c_mm: ``C_MM`` (flag ``mean_var``), the norm of every returned center; > 0.

    Returns:
        float64 array of shape ``(L, d)`` whose rows have norm ``c_mm``.

    Raises:
        UsageError: missing, truncated or corrupt file, missing key, unknown suffix, an
            array that is not 2-D, not finite or not unit-norm, or a bad ``c_mm``.
    """
    scale = check_c_mm(c_mm)
    path = pathlib.Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise UsageError(
            f"center file {str(path)!r} not found; expected a {suffix} file of unit centers "
            f"such as {mat_filename(10, 64)} (python -m ts_centers.craft writes one)"
        )
    centers = _check_centers(_read(path, suffix), f"center file {str(path)!r}")
    return centers * scale


def save_centers(path: PathLike, centers: np.ndarray) -> pathlib.Path:
    """Atomically write unit ``centers`` (shape ``(L, d)``) as ``.mat`` or ``.npy`` by suffix.

    The array is written as float64 through :func:`utils.fileio.atomic_write` (temporary,
    fsync, rename; mode 0644 under umask 022), so readers never see a half-written file.
    ``.mat`` files store it under ``mean_logits`` like the original repository.

    Returns:
        The written path.

    Raises:
        UsageError: unknown suffix, missing directory, or centers that are not a finite
            2-D array of unit-norm rows (save them before scaling by ``C_MM``).
    """
    path = pathlib.Path(path)
    suffix = _suffix(path)
    centers = _check_centers(np.asarray(centers), "centers to save")
    if not path.parent.is_dir():
        raise UsageError(
            f"directory {str(path.parent)!r} does not exist; create it or choose another path"
        )

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            if suffix == ".npy":
                np.save(handle, centers, allow_pickle=False)
            else:
                scipy.io.savemat(handle, {MAT_KEY: centers})

    atomic_write(path, write)
    return path
