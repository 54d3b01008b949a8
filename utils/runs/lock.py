"""The run directory's lock: one training at a time writes into a run directory.

A training holds an exclusive ``flock`` on the run directory itself (no lock file: nothing
is added to the directory, and a training that crashed or was killed holds no lock, since
the kernel drops it with the process). A second training into the same directory is
refused with :class:`utils.errors.UsageError` before it reads or writes anything there.

    with RunDirLock(run_dir) as lock:   # locks run_dir now if it exists
        ...                             # checks, model build, resume
        ensure_writable_dir(run_dir)
        lock.lock()                     # the directory just made (no-op if held)
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import pathlib
from typing import Any, Optional

from utils.errors import UsageError

_log = logging.getLogger(__name__)


class RunDirLock:
    """An exclusive, non-blocking ``flock`` on ``run_dir``, held until :meth:`release`
    (or the process ends). ``enabled=False`` (a non-chief worker, which writes nothing)
    makes every method a no-op."""

    def __init__(self, run_dir: pathlib.Path, enabled: bool = True) -> None:
        self.run_dir = pathlib.Path(run_dir)
        self.enabled = enabled
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def lock(self) -> None:
        """Take the lock (no-op if held or disabled); UsageError if another training holds
        it. ``run_dir`` must exist."""
        if self.held or not self.enabled:
            return
        fd = os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UsageError(
                    f"another training is writing into {self.run_dir} (it holds the run "
                    "directory's lock); wait for it to end, or pass another --model_dir"
                ) from None
            # A filesystem without flock on directories (some network mounts): training
            # there is still allowed, as before the lock existed, but unguarded.
            _log.warning("cannot lock %s (%s); not guarded against a second training",
                         self.run_dir, exc.strerror or exc)
            return
        self._fd = fd

    def lock_if_exists(self) -> None:
        """:meth:`lock` when ``run_dir`` exists (a run to resume or overwrite: locked before
        anything in it is read or cleaned); a directory still to be made is locked once
        made."""
        if self.run_dir.is_dir():
            self.lock()

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunDirLock":
        self.lock_if_exists()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()
