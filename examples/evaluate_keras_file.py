"""Robust accuracy of any ``.keras`` classifier under the standard AutoAttack (mmt.evaluate).

    python examples/evaluate_keras_file.py model.keras --eps 0.03137 --n 1000 \
        --data test_images.npz            # arrays x (N, H, W, C) in [0, 1], y (N,)
    python examples/evaluate_keras_file.py model.keras --synthetic --n 8 --tiny

The file must map ``[0, 1]`` pixels ``(batch, H, W, C)`` to logits ``(batch, L)`` (as
``scripts/export_keras.py`` and ``mmt.export_keras(..., pixel_mean=...)`` write them);
``--eps`` is in those pixel units (8/255 = 0.03137). ``--objective mmc_un1`` attacks an
MMC model adaptively. ``--synthetic`` draws random images and labels them with the model's
own predictions (a smoke run); ``--tiny`` shrinks every member's budget.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import mmt  # noqa: E402

TINY = dict(n_iter=3, n_target_classes=2, fab_n_iter=3, square_n_queries=10)


def load_examples(args: argparse.Namespace, model) -> Tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: the first ``--n`` of ``--data``, or ``--synthetic`` ones."""
    if args.synthetic:
        shape = tuple(int(s) for s in model.inputs[0].shape[1:])
        x = np.random.default_rng(0).uniform(0, 1, (args.n,) + shape).astype(np.float32)
        return x, np.asarray(model(x)).argmax(-1)
    data = np.load(args.data)
    return data["x"][:args.n].astype(np.float32), data["y"][:args.n].reshape(-1)


def main(argv: Optional[Sequence[str]] = None) -> "mmt.EvaluationResult":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the .keras file ([0, 1] pixels -> logits)")
    parser.add_argument("--data", help=".npz with x (N, H, W, C) in [0, 1] and y (N,)")
    parser.add_argument("--synthetic", action="store_true", help="random images instead")
    parser.add_argument("--n", type=int, default=1000, help="examples to evaluate")
    parser.add_argument("--eps", type=float, default=8 / 255, help="radius, pixel units")
    parser.add_argument("--norm", choices=("linf", "l2"), default="linf")
    parser.add_argument("--objective", default="ce", help="APGD-CE's objective (mmc_un1 ...)")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--tiny", action="store_true", help="tiny attack budgets (smoke run)")
    args = parser.parse_args(argv)
    if not args.synthetic and not args.data:
        parser.error("pass --data FILE.npz or --synthetic")
    model = mmt.load_keras(args.path)
    x, y = load_examples(args, model)
    result = mmt.autoattack(model, x, y, eps=args.eps, norm=args.norm,
                            batch_size=args.batch_size, objective=args.objective,
                            progress=not args.tiny, **(TINY if args.tiny else {}))
    print(f"clean accuracy {result.clean_accuracy:.4f}, robust accuracy "
          f"{result.robust_accuracy:.4f} ({args.norm}, eps {args.eps:.5f}, n {result.n})")
    for member, accuracy in result.robust_accuracy_after.items():
        print(f"  after {member}: {accuracy:.4f}")
    return result


if __name__ == "__main__":
    main()
