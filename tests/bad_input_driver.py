"""Runs many bad-input cases of entry scripts, each in its own forked process.

TensorFlow's import (~5-9 s here) is paid once by this driver; each case is then a child
forked from it that runs the script as ``__main__`` (``python SCRIPT ARGS`` minus the
interpreter start) in the case's working directory, with its own stdout, stderr, exit
status and flags. TensorFlow is imported but never run before forking, so the children
start clean. The cases run one after another (a case's changes are its own).

    python tests/bad_input_driver.py < cases.json   # [[script, cwd, [args...]], ...]
                                                    # -> one JSON line per case

Each result line also lists the paths under the case's working directory it changed.
"""
from __future__ import annotations

import json
import os
import pathlib
import runpy
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIMEOUT_S = 120


def _warm_imports() -> None:
    """The heavy imports every script makes, without running any TensorFlow op."""
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import absl.app  # noqa: F401
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        # The library modules the entry scripts import (defining functions and
        # registries only: no TensorFlow op runs at their import).
        import utils.cli.iterative  # noqa: F401
        import utils.cli.others  # noqa: F401
        import utils.cli.train  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def tree(root: str) -> list:
    """Every path under ``root`` with its size and modification time."""
    found = []
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            stat = os.lstat(os.path.join(directory, name))
            found.append((os.path.relpath(os.path.join(directory, name), root),
                          stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def _run_case(script: str, args: list) -> dict:
    before = tree(os.getcwd())
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        pid = os.fork()
        if pid == 0:  # child: become ``python SCRIPT ARGS``
            code = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.argv = [script, *args]
                runpy.run_path(script, run_name="__main__")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        err.seek(0)
        out.seek(0)
        after = tree(os.getcwd())
        return {"args": args, "status": os.waitstatus_to_exitcode(status),
                "changed": sorted({p[0] for p in set(before) ^ set(after)}),
                "stderr": err.read().decode(errors="replace"),
                "stdout": out.read().decode(errors="replace")}


def main() -> None:
    cases = json.load(sys.stdin)
    _warm_imports()
    for script, cwd, args in cases:
        os.chdir(cwd)
        print(json.dumps(_run_case(script, args)), flush=True)


if __name__ == "__main__":
    main()
