"""Append-only result records (JSON lines + CSV), written atomically.

Every evaluation appends one record per (model, attack, objective, targeted, eps, steps,
restarts, n) with the command line and package versions, so each number in a report
traces back to the command that measured it.

    append_records("results/advtest.jsonl", [record])   # also rewrites results/advtest.csv
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import io
import json
import pathlib
import platform
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from utils.errors import UsageError
from utils.fileio import check_can_create, text_item, write_set


def package_versions() -> Dict[str, str]:
    """Versions of the packages a number depends on (installed metadata: nothing imported)."""
    versions = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy", "scipy", "cleverhans"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def provenance() -> Dict[str, Any]:
    """Command line, versions and time for a record."""
    return {"command": " ".join(sys.argv), "versions": package_versions(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


@dataclasses.dataclass(frozen=True)
class EvalRecord:
    """One evaluation's result record, the same shape for ``advtest_iterative.py`` and
    ``advtest_others.py``: what was measured (``outcome``: the evaluation loop's fields,
    e.g. ``n``, ``clean_accuracy``, ``adv_accuracy``, rates as fractions in [0, 1]), on
    which model (``model`` the run name, ``model_fields`` its identity from
    :meth:`utils.models.loading.LoadedModel.record_fields`), with which settings
    (``settings``: the script's attack settings, e.g. ``eps_256`` in /256 units), and
    (:func:`provenance`) by which command. :meth:`to_dict` is the JSON/CSV record."""

    script: str
    dataset: str
    model: str
    model_fields: Mapping[str, Any]
    loss: str
    epoch: Optional[int]
    adaptive: bool
    objective: str
    normalize_output_for_ball: bool
    outcome: Mapping[str, Any]
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """The flat record: outcome, identity, settings, then provenance (later keys of the
        same name never overwrite an outcome field: a clash raises ValueError)."""
        head = dict(script=self.script, dataset=self.dataset, model=self.model,
                    **self.model_fields, loss=self.loss, epoch=self.epoch,
                    adaptive=self.adaptive, objective=self.objective,
                    normalize_output_for_ball=self.normalize_output_for_ball)
        record = dict(self.outcome)
        for part in (head, dict(self.settings), provenance()):
            clash = set(part) & set(record)
            if clash:
                raise ValueError(f"record fields given twice: {sorted(clash)}")
            record.update(part)
        return record


def read_records(path: pathlib.Path) -> List[Dict[str, Any]]:
    """All records of a JSON-lines file ([] if it does not exist)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise UsageError(f"{path} line {number} is not JSON (truncated?); "
                                 "repair or move the file, or pass another "
                                 "--results_file") from None
    return records


def _csv(records: Sequence[Dict[str, Any]]) -> str:
    fields: List[str] = []
    for record in records:
        fields += [k for k in record if k not in fields and not isinstance(record[k], dict)]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def check_writable(path: "str | pathlib.Path") -> None:
    """Fail before a long evaluation if its results could not be written (creates
    nothing)."""
    check_can_create(path, "--results_file")
    check_can_create(pathlib.Path(path).with_suffix(".csv"), "--results_file")


def append_records(path: "str | pathlib.Path", new: Sequence[Dict[str, Any]]) -> None:
    """Append ``new`` to the JSON-lines file ``path`` and rewrite ``path`` with ``.csv``.

    Both files are written to temporaries, then renamed (the CSV first): a write error
    (:class:`utils.errors.DiskWriteError`, exit 4) leaves both as they were, so a rerun
    does not duplicate a record.
    """
    path = pathlib.Path(path)
    records = read_records(path) + list(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_set([text_item(path.with_suffix(".csv"), _csv(records)),
               text_item(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))])
