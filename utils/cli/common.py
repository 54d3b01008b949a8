"""Helpers shared by the absl entry scripts: one-line errors with exit status 2.

    def main(argv): ...
    if __name__ == "__main__": run_main(main)
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from utils.errors import UsageError


def run_main(main: Callable[[Sequence[str]], None], argv: "Sequence[str] | None" = None) -> None:
    """``absl.app.run(main)``, turning :class:`UsageError` into one line and exit 2.

    A flag absl cannot parse (unknown enum value, below its bound, unknown flag) also
    gives one line and exit 2, instead of absl's default status 1.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import app, flags

    def parse_flags(args: Sequence[str]) -> Sequence[str]:
        try:
            return flags.FLAGS(list(args))
        except flags.Error as exc:
            print(f"error: {exc}; see --helpshort", file=sys.stderr, flush=True)
            sys.exit(2)

    def wrapped(argv: Sequence[str]) -> None:
        try:
            main(argv)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)

    app.run(wrapped, argv=list(argv) if argv is not None else None, flags_parser=parse_flags)
