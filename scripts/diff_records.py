"""Compare result records of two runs (JSON lines or a JSON list), ignoring what may differ
between identical computations: wall-clock time, command lines, paths and versions.

Used to show that a refactor changed no measured number:

    python scripts/diff_records.py BEFORE.jsonl AFTER.jsonl [--ignore=key,key]

Prints one line per record (``same`` or the differing keys with both values) and exits 0
when every record matches, 1 when any differs, 2 on unreadable input. ``--shared_only``
compares the keys both records have and lists the keys only one has (fields a change
added to the records) without counting them as differences.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Dict, List

VOLATILE = frozenset({"time", "command", "versions", "train_seconds", "run_dir", "seconds",
                      "elapsed_s", "results_file", "state_file", "model_path"})


def read_records(path: pathlib.Path) -> List[Dict[str, Any]]:
    """Records of a ``.jsonl`` (one object a line) or ``.json`` (a list or one object) file."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def differences(a: Dict[str, Any], b: Dict[str, Any], ignore: frozenset,
                shared_only: bool = False) -> List[str]:
    """``key: a -> b`` for every key whose values differ (missing keys count unless
    ``shared_only``), ``ignore`` aside."""
    keys = sorted(((set(a) & set(b)) if shared_only else (set(a) | set(b))) - ignore)
    return [f"{k}: {a.get(k, '<missing>')!r} -> {b.get(k, '<missing>')!r}"
            for k in keys if a.get(k, "<missing>") != b.get(k, "<missing>")]


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=pathlib.Path)
    p.add_argument("after", type=pathlib.Path)
    p.add_argument("--ignore", default="", help="more keys to ignore, comma separated")
    p.add_argument("--shared_only", action="store_true",
                   help="compare only keys both records have; list the others")
    args = p.parse_args(argv)
    ignore = VOLATILE | {k for k in args.ignore.split(",") if k}
    try:
        before, after = read_records(args.before), read_records(args.after)
    except (OSError, ValueError) as e:
        print(f"error: cannot read records: {e}", file=sys.stderr)
        return 2
    if len(before) != len(after):
        print(f"differ: {len(before)} records before, {len(after)} after")
        return 1
    status = 0
    for i, (a, b) in enumerate(zip(before, after)):
        diff = differences(a, b, ignore, args.shared_only)
        extra = sorted((set(a) ^ set(b)) - ignore) if args.shared_only else []
        print(f"record {i}: " + ("same" if not diff else "DIFFERS " + "; ".join(diff))
              + (f" (keys in one record only: {', '.join(extra)})" if extra else ""))
        status |= bool(diff)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
