"""Paper numbers vs ours: match reference cells (CSV) to our result records (JSON lines).

The reference (``reports/reference/paper_numbers.csv``, one row per published cell) names
each cell by the fields our records carry: dataset, ResNet blocks per stage, loss, centers,
C_MM, adversarial training, attack, targeted, ε (in /256 pixel units), steps, adaptive,
noise σ, rotation degrees. An empty reference field matches anything. Accuracies are in
percent on both sides (our records store fractions; they are scaled here); C&W distortions
are mean L2 norms in [0, 1] pixel units.

    cells = load_reference("reports/reference/paper_numbers.csv")
    ours = load_results(["reports/*.jsonl"])
    rows = compare(cells, ours, relax=("dataset",))        # relax: see RELAXABLE
    write_report(rows, "reports", "comparison", header="...")  # .md, .csv, .png
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

from utils.errors import UsageError
from utils.reporting.records import (clean_entries, latest_per_setting, load_results,
                                     normalize_record)
from utils.reporting.reference import (MATCH_FIELDS, METRICS, REFERENCE_COLUMNS, Record,
                                       load_reference, method_label)

# Matching is defined here; the reference and record readers (reference.py, records.py)
# lived here before and their names are still imported from here by scripts and tests.
__all__ = ["RELAXABLE", "ROW_COLUMNS", "Comparison", "compare", "delta",
           "MATCH_FIELDS", "METRICS", "REFERENCE_COLUMNS", "Record", "load_reference",
           "method_label", "latest_per_setting", "load_results", "normalize_record"]

# --match_<name>=False drops these fields from the match (and says so in the output).
RELAXABLE: Dict[str, Tuple[str, ...]] = {"dataset": ("dataset",), "arch": ("n_blocks",),
                                         "steps": ("nb_iter",)}

ROW_COLUMNS: Tuple[str, ...] = (
    "status", "id", "source", "table", "row", "column", "method", "paper_dataset",
    "paper_arch", "metric", "unit", "relation", "paper", "ours", "delta", "flag", "differs",
    "ours_method", "ours_dataset", "ours_model", "ours_epoch", "ours_n", "ours_attack",
    "ours_targeted", "ours_eps_256", "ours_nb_iter", "ours_objective", "ours_record", "note")


@dataclasses.dataclass
class Comparison:
    """``rows``: one per (paper cell, matching record of ours) with status ``matched``,
    one per unmatched cell (``not_run``) and per unmatched record (``ours_only``), each
    with :data:`ROW_COLUMNS`; ``cells``/``records``: the inputs after filtering and
    de-duplication; ``relaxed``: the match fields that were dropped."""

    rows: List[Record]
    cells: List[Record]
    records: List[Record]
    relaxed: Tuple[str, ...]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    try:
        return abs(float(a) - float(b)) < 1e-6
    except (TypeError, ValueError):
        return False


def delta(relation: str, paper: float, ours: float) -> float:
    """``ours - paper``; for a bound (``<=``, ``>``) 0 when ours is within it, else the
    distance past it. Same unit as the cell."""
    diff = ours - paper
    if relation == "<=":
        return max(0.0, diff)
    if relation == ">":
        return min(0.0, diff)
    return diff


def _differs(cell: Record, ours: Record, relaxed: Sequence[str]) -> str:
    notes = []
    for field in relaxed:
        if cell[field] is not None and not _same(cell[field], ours[field]):
            if field == "n_blocks":
                notes.append(f"arch {ours['arch']} vs {cell['arch']}")
            else:
                notes.append(f"{field} {ours[field]} vs {cell[field]}")
    return "; ".join(notes)


def _row(status: str, cell: Optional[Record], ours: Optional[Record],
         relaxed: Sequence[str], threshold: float) -> Record:
    row = {c: "" for c in ROW_COLUMNS}
    row["status"] = status
    if cell is not None:
        row.update({k: cell[k] for k in ("id", "source", "table", "row", "column", "method",
                                         "metric", "unit", "relation", "note")})
        row.update(paper_dataset=cell["dataset"], paper_arch=cell["arch"],
                   paper=cell["value_text"])
    if ours is not None:
        row.update({f"ours_{k}": ours[k] for k in ("method", "dataset", "model", "epoch", "n",
                                                   "attack", "targeted", "eps_256", "nb_iter",
                                                   "objective")})
        if ours.get("members") and ours["attack"] == "AutoAttack":  # which preset
            row["ours_attack"] += f" ({'+'.join(ours['members'])})"
        row["ours_record"] = ours["where"]
    if cell is not None and ours is not None:
        value = ours[cell["metric"]]
        row["ours"] = value
        if value is not None:
            row["delta"] = delta(cell["relation"], cell["value"], float(value))
            if cell["metric"] == "accuracy" and abs(row["delta"]) > threshold:
                row["flag"] = f"|delta| > {threshold:g}"
        row["differs"] = _differs(cell, ours, relaxed)
    return row


def compare(cells: Sequence[Record], records: Sequence[Record], *, relax: Sequence[str] = (),
            threshold: float = 5.0) -> Comparison:
    """Match every reference cell against our records.

    Args:
      cells: :func:`load_reference` output (already filtered by the caller).
      records: :func:`load_results` output; de-duplicated with :func:`latest_per_setting`,
        and clean accuracies come from :func:`clean_entries`.
      relax: names in :data:`RELAXABLE` whose fields are not compared (e.g. ``dataset``
        to hold Fashion-MNIST runs against CIFAR-10 cells); the ``differs`` column of a
        row lists what then differs.
      threshold: accuracy difference in percentage points above which a row is flagged.
    """
    unknown = [r for r in relax if r not in RELAXABLE]
    if unknown:
        raise UsageError(f"cannot relax {unknown}; choose from {', '.join(RELAXABLE)}")
    relaxed = tuple(f for r in relax for f in RELAXABLE[r])
    fields = [f for f in MATCH_FIELDS if f not in relaxed]
    ours = latest_per_setting(records)
    candidates = ours + clean_entries(ours)
    rows, used = [], set()
    for cell in cells:
        hits = [r for r in candidates
                if all(cell[f] is None or _same(cell[f], r[f]) for f in fields)
                and (cell["metric"] != "mean_l2" or r["mean_l2"] is not None)]
        for r in hits:
            used.add(id(r))
            rows.append(_row("matched", cell, r, relaxed, threshold))
        if not hits:
            rows.append(_row("not_run", cell, None, relaxed, threshold))
    rows += [_row("ours_only", None, r, relaxed, threshold) for r in ours if id(r) not in used]
    return Comparison(rows=rows, cells=list(cells), records=ours, relaxed=relaxed)
