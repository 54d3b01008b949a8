"""Per-example progress of a cascaded evaluation, saved atomically so a run can resume.

The state is three ``(N,)`` int8 arrays, two ``(N,)`` float32 detection-score arrays and
the next batch index, plus a fingerprint string (JSON) of what was evaluated; a state file
of another evaluation is refused.

    state = load_state(path, fp, n) or EvalState.fresh(n)
    save_state(path, fp, state)       # after every batch
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import zipfile
from typing import Any, Optional

import numpy as np

from utils.errors import UsageError
from utils.fileio import atomic_write, check_can_create

UNPROCESSED, CLEAN_BROKEN, ROBUST = -3, -2, -1  # broken_by codes besides member indices


@dataclasses.dataclass
class EvalState:
    """Per-example progress ``(N,)`` int8: ``broken_by`` the index of the member that
    broke the example (``ROBUST`` none, ``CLEAN_BROKEN`` already broken clean,
    ``UNPROCESSED``); ``clean_correct`` / ``adv_correct`` 0/1 (-1 unprocessed);
    ``clean_score`` / ``adv_score`` float32 detection scores of the clean and the final
    adversarial input (NaN where none was asked for or not yet processed).
    ``next_batch``: the first batch not yet done."""

    broken_by: np.ndarray
    clean_correct: np.ndarray
    adv_correct: np.ndarray
    clean_score: np.ndarray
    adv_score: np.ndarray
    next_batch: int = 0

    @classmethod
    def fresh(cls, n: int) -> "EvalState":
        return cls(np.full(n, UNPROCESSED, np.int8), np.full(n, -1, np.int8),
                   np.full(n, -1, np.int8), np.full(n, np.nan, np.float32),
                   np.full(n, np.nan, np.float32))


def digest(*arrays: Any) -> str:
    """SHA-1 of arrays' dtypes, shapes and bytes (a fingerprint ingredient)."""
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str((a.dtype, a.shape)).encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def save_state(path: "str | pathlib.Path", fp: str, state: EvalState) -> None:
    """Write ``state`` (npz) atomically: a crash leaves the previous state intact."""

    def write(tmp: str) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, fingerprint=np.array(fp), broken_by=state.broken_by,
                 clean_correct=state.clean_correct, adv_correct=state.adv_correct,
                 clean_score=state.clean_score, adv_score=state.adv_score,
                 next_batch=np.array(state.next_batch))
        pathlib.Path(tmp).write_bytes(buffer.getvalue())

    atomic_write(pathlib.Path(path), write)  # DiskWriteError (exit 4) names the file


def load_state(path: "str | pathlib.Path", fp: str, n: int) -> Optional[EvalState]:
    """The saved state of the same evaluation, None when ``path`` does not exist;
    UsageError for an unreadable file or one written by another evaluation."""
    path = pathlib.Path(path)
    if not path.exists():
        return None
    saved_fp, state = _read(path)
    if saved_fp != fp:
        old, new = json.loads(saved_fp), json.loads(fp)
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise UsageError(f"state file {path} belongs to another evaluation (differs in "
                         f"{', '.join(diff)}); delete it or pass another --state_file")
    if len(state.broken_by) != n:
        raise UsageError(f"state file {path} holds {len(state.broken_by)} examples, not {n}")
    return state


def _read(path: pathlib.Path) -> "tuple[str, EvalState]":
    try:
        with np.load(path, allow_pickle=False) as f:
            saved_fp = str(f["fingerprint"])
            n = len(f["broken_by"])
            # Files written before the scores were kept: no scores (AUC runs had no state).
            none = np.full(n, np.nan, np.float32)
            state = EvalState(f["broken_by"], f["clean_correct"], f["adv_correct"],
                              f["clean_score"] if "clean_score" in f.files else none,
                              f["adv_score"] if "adv_score" in f.files else none,
                              int(f["next_batch"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise UsageError(f"state file {path} is unreadable or truncated ({reason}); delete "
                         "it or pass another --state_file") from None
    return saved_fp, state


def check_state_file(path: "str | pathlib.Path") -> None:
    """Before any work: an existing ``path`` must be a readable state file, and both it
    and its directory writable (UsageError naming ``--state_file`` otherwise)."""
    path = pathlib.Path(path)
    check_can_create(path, "--state_file")
    if path.exists():
        _read(path)
        if not os.access(path, os.W_OK):
            raise UsageError(f"state file {path} is read-only; make it writable or pass "
                             "another --state_file")
