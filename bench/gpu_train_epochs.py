"""Benchmark: epoch time of ResNet-32 v2 SCE and MMC on Fashion-MNIST, by precision and
``steps_per_loop`` (part of ``bench/gpu_suite.sh``; runs anywhere, meant for a GPU).

Each configuration trains ``--epochs`` (2) epochs from scratch through
:func:`utils.training.run.train` (the code ``train_models.py`` runs); the figure is the
last epoch's seconds (the first includes tracing/compilation), which include validating
on ``--test_size`` (100) images. ``mmc_over_sce`` divides MMC's by SCE's at equal
precision and ``steps_per_loop``.

    python bench/gpu_train_epochs.py --data_dir=/usr/share/datasets/fashion-mnist \
        --out=bench/results/gpu_train.json
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from typing import Any, Dict, List

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.tf_env import tensorflow_defaults  # noqa: E402

tensorflow_defaults()  # before TensorFlow loads

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import finish, require_idle  # noqa: E402
from utils.runs.model_config import ModelConfig  # noqa: E402
from utils.runs.spec import RunSpec  # noqa: E402
from utils.training.run import RunConfig, train  # noqa: E402

# Each configuration builds its own Trainer: TF's "retracing" warning counts them all.
tf.get_logger().setLevel("ERROR")


def run_one(args: argparse.Namespace, loss: str, precision: str, k: int,
            model_dir: str) -> Dict[str, Any]:
    """Train one configuration; its per-epoch seconds and throughput."""
    keras.mixed_precision.set_global_policy("float32")  # train() sets mixed ones itself
    spec = RunSpec("fashion_mnist", ModelConfig(version=2, n=args.n, loss=loss, c_mm=10.0),
                   "mom", 0.01, args.batch_size)
    cfg = RunConfig(run=spec, epochs=args.epochs,
                    checkpoint_every=args.epochs, data_dir=args.data_dir,
                    model_dir=model_dir, mixed_precision=precision, train_size=args.train_size,
                    test_size=args.test_size, verbose=0, steps_per_loop=k)
    result = train(cfg)
    seconds = [round(log.seconds, 4) for log in result.history]
    n_train = args.train_size or 60000
    return {"loss": loss, "precision": precision, "steps_per_loop": k,
            "epoch_s": seconds, "last_epoch_s": seconds[-1],
            "train_images_per_s": n_train / seconds[-1],
            "final_val_accuracy": result.test_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--n", type=int, default=5, help="v2 blocks per stage (5: ResNet-32)")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train_size", type=int, default=None, help="default: all 60000")
    parser.add_argument("--test_size", type=int, default=100)
    parser.add_argument("--steps_per_loop", default="1,50")
    parser.add_argument("--precisions", default="off,mixed_float16")
    parser.add_argument("--force", action="store_true",
                        help="write results even when the machine is loaded")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_train.json"))
    args = parser.parse_args()
    load = require_idle(args.force)
    ks = [int(k) for k in args.steps_per_loop.split(",")]
    runs: List[Dict[str, Any]] = []
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as model_dir:
        for precision in args.precisions.split(","):
            for k in ks:
                for loss in ("sce", "mmc"):
                    sub = str(pathlib.Path(model_dir) / f"{precision}_k{k}")
                    runs.append(run_one(args, loss, precision, k, sub))
                    print(runs[-1], flush=True)
    by = {(r["precision"], r["steps_per_loop"], r["loss"]): r["last_epoch_s"] for r in runs}
    ratios = {f"{p}_k{k}": by[(p, k, "mmc")] / by[(p, k, "sce")]
              for p, k, loss in by if loss == "sce"}
    gpus = tf.config.list_logical_devices("GPU")
    finish({
        "benchmark": "gpu_train_epochs",
        "model": f"ResNet-{9 * args.n + 2} v2, Fashion-MNIST 28x28x1, batch {args.batch_size}, "
                 "SGD momentum 0.9, augmentation on",
        "train_images": args.train_size or 60000, "val_images": args.test_size,
        "epochs": args.epochs,
        "figure": "last epoch's seconds (earlier epochs include tracing); includes validating "
                  "val_images",
        "runs": runs, "mmc_over_sce": ratios, "wall_s": time.perf_counter() - wall,
        "device": gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores)",
    }, args.out, load)


if __name__ == "__main__":
    main()
