"""Append-only result records (JSON lines + CSV), written atomically.

Every evaluation appends one record per (model, attack, objective, targeted, eps, steps,
restarts, n) with the command line and package versions, so each number in a report
traces back to the command that measured it.

    append_records("results/advtest.jsonl", [record])   # also rewrites results/advtest.csv
"""
from __future__ import annotations

import csv
import io
import json
import pathlib
import platform
import sys
import time
from typing import Any, Dict, List, Sequence

from utils.fileio import check_can_create, text_item, write_set
from utils.errors import UsageError


def package_versions() -> Dict[str, str]:
    """Versions of the packages a number depends on."""
    import cleverhans
    import keras
    import numpy
    import scipy
    import tensorflow
    return {"python": platform.python_version(), "tensorflow": tensorflow.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "cleverhans": getattr(cleverhans, "__version__", "unknown")}


def provenance() -> Dict[str, Any]:
    """Command line, versions and time for a record."""
    return {"command": " ".join(sys.argv), "versions": package_versions(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


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
