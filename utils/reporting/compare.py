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

import csv
import dataclasses
import glob
import io
import json
import math
import os
import pathlib
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

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
# --match_<name>=False drops these fields from the match (and says so in the output).
RELAXABLE: Dict[str, Tuple[str, ...]] = {"dataset": ("dataset",), "arch": ("n_blocks",),
                                         "steps": ("nb_iter",)}
_INT = ("n_blocks", "nb_iter")
_FLOAT = ("c_mm", "eps_256", "noise_sigma", "rotation_degrees", "value")
_BOOL = ("targeted", "adaptive")
# metric -> what it is (our records' fractions are scaled to the paper's %)
METRICS: Dict[str, str] = {
    "accuracy": "% of the evaluated test images classified correctly (clean or attacked)",
    "mean_l2": "C&W mean L2 distortion over the evaluated images, [0, 1] pixel units"}
RELATIONS = ("=", "<=", ">", "~")
ADVTRAIN = ("none", "tar", "un")
REQUIRED_RECORD_FIELDS = ("dataset", "model", "attack_name", "clean_accuracy", "adv_accuracy")
_ADV_RE = re.compile(r"_(target)?(MadryEtAl|MomentumIterativeMethod|FastGradientMethod|"
                     r"BasicIterativeMethod)_advratio")


# ------------------------------------------------------------------ reference cells

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


# ------------------------------------------------------------------ our records

def _arch(model: str) -> Tuple[Optional[str], Optional[int]]:
    """``resnet14v1_...`` -> ``('resnet14v1', 2)``: label and ResNet blocks per stage."""
    m = re.match(r"resnet(\d+)v(\d)", model)
    if not m:
        return None, None
    depth, version = int(m.group(1)), int(m.group(2))
    if depth == 32:  # our run names (and the original's) say resnet32 whenever n = 5
        return m.group(0), 5
    per_block = 6 if version == 1 else 9
    return m.group(0), (depth - 2) // per_block


def _centers(model: str, loss: str) -> Optional[str]:
    if loss not in ("mmc", "mmlda"):
        return None
    if "_random" in model:
        return "random"
    m = re.search(r"_centers-([A-Za-z0-9]+)", model)
    return m.group(1) if m else "mm"


def _advtrain(record: Record) -> str:
    m = _ADV_RE.search(record["model"])
    if m:
        return "tar" if m.group(1) else "un"
    return "unknown" if record.get("use_advtrain") else "none"


def _first(record: Record, *names: str) -> Any:
    return next((record[n] for n in names if record.get(n) is not None), None)


def _identity(record: Record, run_model: Record, loss: str
              ) -> Tuple[Optional[str], Optional[int], Optional[str], str]:
    """``(arch, n, centers, advtrain)`` from the record's stored RunSpec (``run``); records
    written before it (or of a ``--model_path`` file): from the run name."""
    model = str(record["model"])
    if not run_model:
        return _arch(model) + (_centers(model, loss), _advtrain(record))
    from utils.models.resnet import depth_of
    version, n = int(run_model["version"]), int(run_model["n"])
    arch = f"resnet{32 if n == 5 else depth_of(version, n)}v{version}"
    centers = run_model.get("centers") if loss in ("mmc", "mmlda") else None
    adv = record["run"].get("advtrain")
    return arch, n, centers, "none" if adv is None else ("tar" if adv["use_target"] else "un")


def _c_mm(model: str, run_model: Record, loss: str) -> Optional[float]:
    """C_MM from the record's stored run identity; older records: from the run name."""
    if run_model:
        from utils.losses import CENTER_SET_HEADS, LOSSES
        uses_centers = loss in LOSSES and LOSSES.get(loss).head in CENTER_SET_HEADS
        return float(run_model["c_mm"]) if uses_centers else None
    found = re.search(r"_meanvar([0-9.]+?)(?=_)", model)
    return float(found.group(1)) if found else None


# Record fields that must be numbers when present (counts: whole numbers >= 0).
NUMBER_FIELDS = ("eps_256", "eps", "SPSA_epsilon", "eps_iter_256", "nb_iter", "SPSA_nb_iter",
                 "CW_max_iterations", "l2_mean", "noise_sigma", "rotation_degrees")
COUNT_FIELDS = ("n", "epoch", "num_restarts")


def _check_numbers(record: Record, where: str) -> None:
    """UsageError naming the first field holding a string (``"eps_256": "abc"``) or
    a count that is not a whole number >= 0 (``"n": "x"``)."""
    for name in NUMBER_FIELDS + COUNT_FIELDS:
        value = record.get(name)
        if value is None:
            continue
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if name in COUNT_FIELDS:
            is_number = is_number and float(value).is_integer() and value >= 0
        if not is_number:
            kind = "a whole number >= 0" if name in COUNT_FIELDS else "a number"
            raise UsageError(f"{where}: {name} is {value!r}, not {kind}; repair the record "
                             "or leave the file out of --results")


def normalize_record(record: Record, where: str) -> Record:
    """Our record in the reference's terms (see :data:`MATCH_FIELDS`), plus ``model``,
    ``arch``, ``method``, ``n``, ``epoch``, ``objective``, ``time``, ``where`` and the
    metric values ``accuracy``/``clean`` (%) and ``mean_l2``."""
    missing = [f for f in REQUIRED_RECORD_FIELDS if record.get(f) is None]
    if missing:
        raise UsageError(f"{where}: record lacks {', '.join(missing)}; not a record of "
                         "advtest_iterative.py / advtest_others.py")
    _check_numbers(record, where)
    model, loss = str(record["model"]), record.get("loss")
    run_model = (record.get("run") or {}).get("model") or {}  # RunSpec.to_dict(), if stored
    if loss is None:
        loss = run_model.get("loss") or (
            "mmlda" if "_softmax" in model else "mmc" if "_meanvar" in model else "sce")
    c_mm = _c_mm(model, run_model, loss)
    arch, n_blocks, centers, advtrain = _identity(record, run_model, loss)
    eps = _first(record, "eps_256", "SPSA_epsilon")
    if eps is None and record.get("eps") is not None:
        eps = float(record["eps"]) * 256
    try:
        accuracy, clean = (100.0 * float(record[k]) for k in ("adv_accuracy", "clean_accuracy"))
    except (TypeError, ValueError):
        raise UsageError(f"{where}: adv_accuracy / clean_accuracy are not numbers") from None
    out = dict(dataset=record["dataset"], model=model, arch=arch, n_blocks=n_blocks, loss=loss,
               centers=centers, c_mm=c_mm, advtrain=advtrain, attack=record["attack_name"],
               targeted=bool(record.get("targeted", False)),
               eps_256=None if eps is None else float(eps),
               nb_iter=_first(record, "nb_iter", "SPSA_nb_iter", "CW_max_iterations"),
               adaptive=record.get("adaptive"), noise_sigma=record.get("noise_sigma"),
               rotation_degrees=record.get("rotation_degrees"),
               transfer=bool(record.get("transfer", False)), n=record.get("n"),
               epoch=record.get("epoch"), objective=record.get("objective"),
               time=record.get("time", ""), where=where,
               accuracy=accuracy, clean=clean, mean_l2=record.get("l2_mean"))
    out.update(_ensemble_fields(record))
    out["method"] = method_label(loss, out["centers"], out["c_mm"], out["advtrain"])
    return out


def _ensemble_fields(record: Record) -> Record:
    """An ensemble record's ``members`` (tuple, in order), the budgets of its FAB-T /
    Square members (None when absent) and ``after`` (member -> robust accuracy % after
    it); all None for other records."""
    members = tuple(record.get("members") or ()) or None
    after = record.get("robust_accuracy_after")
    return dict(members=members,
                fab_n_iter=record.get("fab_n_iter") if "FAB-T" in (members or ()) else None,
                square_n_queries=(record.get("square_n_queries")
                                  if "Square" in (members or ()) else None),
                after=None if after is None else {m: 100.0 * float(v) for m, v in after.items()})


def _expand(patterns: Iterable[str]) -> List[pathlib.Path]:
    paths: List[pathlib.Path] = []
    for pattern in patterns:
        found = (sorted(glob.glob(pattern)) if glob.has_magic(pattern)
                 else [pattern] if os.path.exists(pattern) else [])
        if not found:
            raise UsageError(f"no results file matches {pattern!r}; pass --results=FILE.jsonl")
        paths += [pathlib.Path(p) for p in found if pathlib.Path(p) not in paths]
    return paths


def load_results(patterns: Sequence[str]) -> List[Record]:
    """Normalized records (:func:`normalize_record`) of JSON-lines files or globs.

    Raises:
      UsageError: a file or glob that names nothing, an unreadable file, a line that is
        not JSON (truncated), or a record without the fields of our attack scripts.
    """
    records: List[Record] = []
    for path in _expand(patterns):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read results file {path} ({exc})") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise UsageError(f"{path} line {number} is not JSON (truncated?); repair or "
                                 "leave the file out of --results") from None
            if not isinstance(record, dict):
                raise UsageError(f"{path} line {number} is not a JSON object")
            records.append(normalize_record(record, f"{path}:{number}"))
    return records


def latest_per_setting(records: Sequence[Record]) -> List[Record]:
    """One record per (dataset, model, epoch, attack, settings, objective, ensemble
    members and their FAB-T / Square budgets): the one on most examples, then the latest;
    transfer (black-box) records are left out."""
    best: Dict[Tuple, Record] = {}
    for r in records:
        if r["transfer"]:
            continue
        key = tuple(str(r.get(k)) for k in (
            "dataset", "model", "epoch", "attack", "targeted", "eps_256", "nb_iter",
            "objective", "noise_sigma", "rotation_degrees", "members", "fab_n_iter",
            "square_n_queries"))
        old = best.get(key)
        if old is None or (r["n"] or 0, r["time"]) >= (old["n"] or 0, old["time"]):
            best[key] = r
    return list(best.values())


def clean_entries(records: Sequence[Record]) -> List[Record]:
    """Per (dataset, model, epoch), a pseudo-record ``attack='clean'`` holding the clean
    accuracy of the record on most examples (then the latest)."""
    best: Dict[Tuple, Record] = {}
    for r in records:
        key = (r["dataset"], r["model"], r["epoch"])
        old = best.get(key)
        if old is None or (r["n"] or 0, r["time"]) >= (old["n"] or 0, old["time"]):
            best[key] = r
    return [dict(r, attack="clean", targeted=None, eps_256=None, nb_iter=None, adaptive=None,
                 noise_sigma=None, rotation_degrees=None, objective=None, accuracy=r["clean"],
                 mean_l2=None) for r in best.values()]


# ------------------------------------------------------------------ matching

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
