"""What every benchmark does at the end: add provenance, write JSON atomically, print.

    finish(result, args.out)    # result gets "versions" and "command", then written
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Any, Dict

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.training.checkpoints import atomic_write_text  # noqa: E402
from utils.results import package_versions  # noqa: E402


def finish(result: Dict[str, Any], out: "str | pathlib.Path") -> None:
    """Record package versions and the command line in ``result``, write it to ``out``."""
    result["versions"] = package_versions()
    result["command"] = " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    atomic_write_text(pathlib.Path(out), json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
