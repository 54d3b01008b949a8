"""Load one of the original repository's Keras 2 checkpoints (``model.NNN.h5``) and export
it as a standard Keras 3 ``.keras`` file on ``[0, 1]`` pixels.

    python examples/original_h5_export.py model.180.h5 --out mmc.keras \
        --version 1 --n 5 --loss mmc --c_mm 10 --dataset cifar10 --mean mean.npy

P2333/Max-Mahalanobis-Training saves ``save_weights`` files of its ResNets; the
architecture flags (``--version``, ``--n``, ``--loss``, ``--c_mm`` ...) must be the ones it
was trained with (a mismatch is refused, naming the first layer that disagrees). Its models
take mean-subtracted images: ``--mean`` (a ``.npy`` of the training pixel mean ``(H, W, C)``
in [0, 1] units) puts the mean inside the exported file; without it the file takes the
mean-subtracted inputs as the original's. The export is checked to reload (safe mode) to
identical logits.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Optional, Sequence

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import mmt  # noqa: E402

SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3),
          "cifar100": (32, 32, 3)}


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="the original's model.NNN.h5")
    parser.add_argument("--out", required=True, help="the .keras file to write")
    parser.add_argument("--dataset", choices=sorted(SHAPES), default="cifar10")
    parser.add_argument("--input_shape", help="H,W,C instead of the dataset's")
    parser.add_argument("--num_classes", type=int, default=None, help="default: dataset's")
    parser.add_argument("--version", type=int, default=2)
    parser.add_argument("--n", type=int, default=5, help="residual blocks per stage")
    parser.add_argument("--loss", choices=("sce", "mmc", "mmlda"), default="mmc")
    parser.add_argument("--c_mm", type=float, default=10.0, help="the original's mean_var")
    parser.add_argument("--use_BN", type=int, default=1)
    parser.add_argument("--use_dense", type=int, default=1)
    parser.add_argument("--mean", help=".npy training pixel mean (H, W, C) in [0, 1]")
    args = parser.parse_args(argv)
    shape = (tuple(int(s) for s in args.input_shape.split(",")) if args.input_shape
             else SHAPES[args.dataset])
    num_classes = args.num_classes or (100 if args.dataset == "cifar100" else 10)
    cfg = mmt.ModelConfig(version=args.version, n=args.n, loss=args.loss, c_mm=args.c_mm,
                          use_BN=bool(args.use_BN), use_dense=bool(args.use_dense))
    model = mmt.load_checkpoint(args.checkpoint, cfg, input_shape=shape,
                                num_classes=num_classes)
    mean = None if args.mean is None else np.load(args.mean)
    check = np.random.default_rng(0).uniform(0, 1, (4,) + shape).astype(np.float32)
    if mean is not None:
        check = check - mean  # the classifier's own (mean-subtracted) inputs
    digest = mmt.export_keras(model, args.out, pixel_mean=mean, check_inputs=check)
    print(f"wrote {args.out} (sha256 {digest}) from {args.checkpoint}")
    return digest


if __name__ == "__main__":
    main()
