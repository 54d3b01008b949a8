"""The one way this code base writes files: atomically, alone or as a set.

Every file is written to a temporary in its own directory (``.<name>.<random>.tmp<suffix>``),
flushed and fsynced, given mode ``0666 & ~umask`` (0644 under the usual umask 022) and
renamed onto its name, so a reader sees the old file or the new one, never half of one.
:func:`write_set` stages every file of a set first and renames them only when all were
written: a failure or a kill while staging leaves none of the set changed. Renames go in
the order given, so put the file that marks the set complete last (a weights checkpoint,
a results JSONL). Write errors (ENOSPC, EIO, EACCES...) raise :class:`DiskWriteError`
naming the file and the free space; entry scripts turn it into one line and exit 4.

    atomic_write_text(run_dir / "flags.json", json.dumps(flags))
    write_set([text_item(path.with_suffix(".csv"), csv_text), text_item(path, jsonl)])
"""
from __future__ import annotations

import errno
import os
import pathlib
import re
import secrets
import shutil
from typing import Callable, List, Sequence, Tuple

from utils.errors import DiskWriteError, UsageError

PathLike = "str | os.PathLike[str]"
# Our temporaries (and the older tempfile.mkstemp ones): ".<name>.<token>.tmp[<suffix>]",
# plus TensorFlow's "<prefix>_temp" directory when a tf.train.Checkpoint is staged.
TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp(\..*|_temp.*)?$")
Staged = List[Tuple[pathlib.Path, pathlib.Path]]  # (temporary, final) pairs
Stager = Callable[[], Staged]


def file_mode() -> int:
    """``0666 & ~umask``: what ``open()`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_path(path: pathlib.Path, suffix: str = "") -> pathlib.Path:
    """A fresh temporary name beside ``path`` that :func:`remove_stale_temps` recognises."""
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}"


def _fsync(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: pathlib.Path) -> None:
    try:
        _fsync(directory)
    except OSError:  # some file systems cannot fsync a directory; the rename still holds
        pass


def finish_temp(tmp: pathlib.Path) -> None:
    """fsync a written temporary and give it the umask's mode."""
    _fsync(tmp)
    os.chmod(tmp, file_mode())


def file_item(path: PathLike, write: Callable[[str], None], suffix: str = "") -> Stager:
    """A set member written by ``write(tmp_path)`` (``suffix``: the temporary's ending,
    e.g. ``.weights.h5`` which Keras insists on)."""
    path = pathlib.Path(path)

    def stage() -> Staged:
        tmp = temp_path(path, suffix)
        staged = [(tmp, path)]
        try:
            write(str(tmp))
            finish_temp(tmp)
        except BaseException:
            _discard(staged)
            raise
        return staged

    return stage


def text_item(path: PathLike, text: str) -> Stager:
    """A set member holding UTF-8 ``text``."""
    return bytes_item(path, text.encode("utf-8"))


def bytes_item(path: PathLike, data: bytes) -> Stager:
    """A set member holding ``data``."""
    return file_item(path, lambda tmp: pathlib.Path(tmp).write_bytes(data))


def _discard(staged: Staged) -> None:
    for tmp, _ in staged:
        try:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_set(items: Sequence[Stager]) -> None:
    """Write all ``items`` to temporaries, then rename them all, in order.

    Raises:
      DiskWriteError: a temporary could not be written (none of the set was renamed,
        every temporary is removed) or a rename failed.
    """
    staged: Staged = []
    try:
        for stage in items:
            staged += stage()
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as exc:
        _discard(staged)
        raise write_error(exc, staged[-1][1] if staged else None) from None
    except BaseException:
        _discard(staged)
        raise
    for directory in {final.parent for _, final in staged}:
        _fsync_dir(directory)


def write_error(exc: OSError, fallback: "pathlib.Path | None" = None) -> DiskWriteError:
    """A :class:`DiskWriteError` naming the file (``exc.filename`` or ``fallback``) and
    the free space of its file system."""
    name = pathlib.Path(exc.filename) if exc.filename else fallback
    if name is not None and TEMP_RE.match(name.name):  # report the real name, not the temp
        name = name.parent / name.name[1:].split(".tmp")[0].rsplit(".", 1)[0]
    reason = exc.strerror or os.strerror(exc.errno) if exc.errno else str(exc)
    free = "unknown"
    probe = name.parent if name is not None else pathlib.Path(".")
    try:
        free = f"{shutil.disk_usage(probe).free / 2**20:.1f} MiB"
    except OSError:
        pass
    if exc.errno == errno.ENOSPC:
        reason = "no space left on device"
    return DiskWriteError(f"cannot write {name} ({reason}); {free} free there; "
                          "free space or write elsewhere, then rerun")


def atomic_write(path: PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: never a half-written file."""
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_set([file_item(path, write, suffix)])


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_set([text_item(path, text)])


def check_can_create(path: PathLike, flag: str) -> None:
    """UsageError (naming ``flag``) unless ``path`` could be created or replaced, checked
    without creating anything: its nearest existing ancestor must be a writable directory."""
    path = pathlib.Path(path).absolute()
    if path.is_dir():
        raise UsageError(f"{flag}={path} is a directory; pass a file name")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: {parent} is not a writable directory; pass "
                         f"another {flag}")


def remove_stale_temps(directory: PathLike) -> List[pathlib.Path]:
    """Delete temporaries a killed writer left in ``directory``; returns what was removed.

    Only call this where no other process writes into ``directory`` at the same time.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    removed = [p for p in directory.iterdir() if TEMP_RE.match(p.name)]
    _discard([(p, p) for p in removed])
    return removed
