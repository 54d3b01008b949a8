"""Paper reference cells: ``reports/reference/paper_numbers.csv`` read and checked.

Each row is one published cell, named by the fields our records carry (dataset, ResNet
blocks per stage, loss, centers, C_MM, adversarial training, attack, targeted, ε in /256
pixel units, steps, adaptive, noise σ, rotation degrees); an empty field matches anything.
Accuracies are in percent, C&W distortions mean L2 norms in [0, 1] pixel units.

    cells = load_reference("reports/reference/paper_numbers.csv")
    method_label("mmc", "random", 10.0, "none")              # 'MMC-10 (rand)'
"""
from __future__ import annotations

import csv
import io
import math
import os
import pathlib
from typing import Any, Dict, List, Optional, Tuple

from utils.errors import UsageError

Record = Dict[str, Any]

REFERENCE_COLUMNS: Tuple[str, ...] = (
    "id", "source", "table", "row", "column", "method", "dataset", "arch", "n_blocks",
    "loss", "centers", "c_mm", "advtrain", "attack", "targeted", "eps_256", "eps_stated",
    "nb_iter", "adaptive", "noise_sigma", "rotation_degrees", "metric", "relation", "value",
    "unit", "note")
# Fields a reference cell and one of our records must agree on (empty cell = any).
MATCH_FIELDS: Tuple[str, ...] = (
    "dataset", "n_blocks", "loss", "centers", "c_mm", "advtrain", "attack", "targeted",
    "eps_256", "nb_iter", "adaptive", "noise_sigma", "rotation_degrees")
_INT = ("n_blocks", "nb_iter")
_FLOAT = ("c_mm", "eps_256", "noise_sigma", "rotation_degrees", "value")
_BOOL = ("targeted", "adaptive")
# metric -> what it is (our records' fractions are scaled to the paper's %)
METRICS: Dict[str, str] = {
    "accuracy": "% of the evaluated test images classified correctly (clean or attacked)",
    "mean_l2": "C&W mean L2 distortion over the evaluated images, [0, 1] pixel units"}
RELATIONS = ("=", "<=", ">", "~")
ADVTRAIN = ("none", "tar", "un")


def _typed(name: str, text: str, where: str) -> Any:
    """One reference field from its CSV text; '' -> None (matches anything)."""
    text = text.strip()
    if name not in _INT + _FLOAT + _BOOL:
        return (text or None) if name in MATCH_FIELDS else text
    if text == "":
        return None
    try:
        if name in _BOOL:
            return {"true": True, "false": False}[text.lower()]
        return int(text) if name in _INT else float(text)
    except (KeyError, ValueError):
        raise UsageError(f"{where}: {name}={text!r} is not a "
                         f"{'bool' if name in _BOOL else 'number'}") from None


def _check_cell(cell: Record, where: str) -> None:
    checks = (("metric", METRICS), ("relation", RELATIONS), ("advtrain", ADVTRAIN))
    for field, allowed in checks:
        if cell[field] not in allowed:
            raise UsageError(f"{where}: {field}={cell[field]!r}; expected one of "
                             f"{', '.join(allowed)}")
    if cell["value"] is None or not math.isfinite(cell["value"]):
        raise UsageError(f"{where}: value must be a finite number")


def load_reference(path: "str | os.PathLike") -> List[Record]:
    """Reference cells of a CSV with exactly :data:`REFERENCE_COLUMNS`.

    Returns one dict per row: numbers as int/float, ``targeted``/``adaptive`` as bool,
    empty match fields as None. ``value`` is in ``unit`` (accuracy: %, mean_l2: L2 norm).

    Raises:
      UsageError: missing or unreadable file, unknown or missing columns, a bad value,
        or a duplicate id.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read reference {path} ({exc}); pass --reference") from None
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    unknown = [c for c in header if c not in REFERENCE_COLUMNS]
    missing = [c for c in REFERENCE_COLUMNS if c not in header]
    if unknown or missing:
        raise UsageError(f"{path}: unknown columns {unknown}, missing columns {missing}; "
                         f"expected {', '.join(REFERENCE_COLUMNS)}")
    cells, seen = [], set()
    for number, row in enumerate(reader, 2):
        where = f"{path} line {number}"
        if None in row or any(v is None for v in row.values()):
            raise UsageError(f"{where}: wrong number of fields (truncated?)")
        cell = {k: _typed(k, v, where) for k, v in row.items()}
        cell["value_text"] = row["value"].strip()  # as printed: 36.0, not 36
        _check_cell(cell, where)
        if cell["id"] in seen:
            raise UsageError(f"{where}: duplicate id {cell['id']!r}")
        seen.add(cell["id"])
        cells.append(cell)
    return cells


def method_label(loss: Optional[str], centers: Optional[str], c_mm: Optional[float],
                 advtrain: Optional[str]) -> str:
    """The paper's row name for a training setup: ``SCE``, ``MMC-10 (rand)``,
    ``AT-tar (MMC-10)``, ..."""
    base = {"sce": "SCE", "center": "Center loss", "mmlda": "MMLDA", "lgm": "L-GM"}.get(
        loss or "", loss or "?")
    if loss == "mmc":
        base = f"MMC-{c_mm:g}" if c_mm is not None else "MMC"
        base += " (rand)" if centers == "random" else ""
    return base if advtrain in (None, "none") else f"AT-{advtrain} ({base})"

