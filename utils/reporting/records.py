"""Our result records (JSON lines of the attack scripts) in the reference's terms.

:func:`normalize_record` maps one record of ``advtest_iterative.py`` /
``advtest_others.py`` to the fields of a reference cell
(:data:`utils.reporting.reference.MATCH_FIELDS`); accuracies become percent (the records
store fractions).

    ours = load_results(["reports/*.jsonl"])
    ours = latest_per_setting(ours)                 # one record per setting
"""
from __future__ import annotations

import glob
import json
import os
import pathlib
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from utils.errors import UsageError
from utils.reporting.reference import Record, method_label
from utils.runs.model_config import depth_of
from utils.loss_specs import CENTER_SET_HEADS, LOSSES

REQUIRED_RECORD_FIELDS = ("dataset", "model", "attack_name", "clean_accuracy", "adv_accuracy")
_ADV_RE = re.compile(r"_(target)?(MadryEtAl|MomentumIterativeMethod|FastGradientMethod|"
                     r"BasicIterativeMethod)_advratio")


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
    version, n = int(run_model["version"]), int(run_model["n"])
    arch = f"resnet{32 if n == 5 else depth_of(version, n)}v{version}"
    centers = run_model.get("centers") if loss in ("mmc", "mmlda") else None
    adv = record["run"].get("advtrain")
    return arch, n, centers, "none" if adv is None else ("tar" if adv["use_target"] else "un")


def _c_mm(model: str, run_model: Record, loss: str) -> Optional[float]:
    """C_MM from the record's stored run identity; older records: from the run name."""
    if run_model:
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
    """Our record in the reference's terms (see
    :data:`utils.reporting.reference.MATCH_FIELDS`), plus ``model``,
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

