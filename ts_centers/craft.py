"""Command line: craft a unit center set and save it in the original ``.mat`` format.

    python -m ts_centers.craft --num_classes=10 --feature_dim=64 --out=/tmp/centers
    python -m ts_centers.craft --shipped   # regenerate every file in ts_centers/data/

The file is ``meanvar1_featuredim{d}_class{L}.mat`` for ``--name=mm`` (the original's
name) and ``{name}_seed{seed}_featuredim{d}_class{L}.mat`` otherwise.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import List, Optional, Sequence

from ts_centers.builders import CENTER_SETS, get_centers
from ts_centers.io import DATA_DIR, SHIPPED_SIZES, mat_filename, save_centers
from utils.errors import UsageError


def output_filename(name: str, num_classes: int, feature_dim: int, seed: int) -> str:
    """File name the script writes for one center set (see the module docstring)."""
    if name == "mm":
        return mat_filename(num_classes, feature_dim)
    return f"{name}_seed{seed}_featuredim{feature_dim}_class{num_classes}.mat"


def craft_to_dir(
    out_dir: pathlib.Path, name: str, num_classes: int, feature_dim: int, seed: int = 0
) -> pathlib.Path:
    """Craft unit centers (``c_mm=1``), save them under ``out_dir``; returns the file path."""
    centers = get_centers(name, num_classes, feature_dim, c_mm=1.0, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_centers(out_dir / output_filename(name, num_classes, feature_dim, seed), centers)


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ts_centers.craft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="mm", choices=CENTER_SETS.names(),
                        help="registered center set (default: mm)")
    parser.add_argument("--num_classes", type=int, help="number of classes L (>= 2)")
    parser.add_argument("--feature_dim", type=int, help="feature dimension d (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed for minmax / random")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="output directory (default: ts_centers/data with --shipped)")
    parser.add_argument("--shipped", action="store_true",
                        help="regenerate the MM files shipped in ts_centers/data")
    args = parser.parse_args(argv)
    if args.shipped:
        args.out = args.out or DATA_DIR
    elif args.num_classes is None or args.feature_dim is None or args.out is None:
        parser.error("give --num_classes, --feature_dim and --out, or --shipped")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (2 on a :class:`UsageError`)."""
    args = _parse(argv)
    if args.shipped:
        jobs = [("mm", num_classes, feature_dim) for num_classes, feature_dim in SHIPPED_SIZES]
    else:
        jobs = [(args.name, args.num_classes, args.feature_dim)]
    written: List[pathlib.Path] = []
    try:
        for name, num_classes, feature_dim in jobs:
            written.append(craft_to_dir(args.out, name, num_classes, feature_dim, args.seed))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
