"""Benchmark: median training-step time of ResNet-32 (v1, n=5), SCE vs MMC, same run.

The paper claims MMC costs "little extra computation" over SCE; the target is a step
time ratio MMC/SCE <= 1.03. Both models run the same compiled distributed step
(:class:`utils.training.loop.Trainer`) on CIFAR-shaped random batches of 50, timed in
alternating rounds so machine drift hits both alike.

    python bench/train_step.py                 # writes bench/results/train_step.json
    python bench/train_step.py --steps=5 --rounds=2 --out=/tmp/t.json   # quick look
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import finish  # noqa: E402

from utils.models.classifier import ModelConfig, build_classifier  # noqa: E402
from utils.training.distribute import make_strategy  # noqa: E402
from utils.losses import LOSSES  # noqa: E402
from utils.training.loop import Trainer, make_optimizer  # noqa: E402


def make_trainer(loss: str, strategy, batch: int, n: int, mixed: str) -> Trainer:
    cfg = ModelConfig(version=1, n=n, loss=loss, c_mm=10.0)
    with strategy.scope():
        model = build_classifier(cfg, (32, 32, 3), 10)
        optimizer = make_optimizer("mom", 0.01, mixed_float16=mixed == "mixed_float16")
        optimizer.build(model.trainable_variables)
    return Trainer(strategy, model, LOSSES.get(loss).loss_fn, optimizer, batch)


def time_steps(trainer: Trainer, iterator, steps: int) -> list:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = trainer._train_step(iterator)
        float(out[0])  # block until the step finished
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--n", type=int, default=5, help="ResNet v1 blocks (5 = ResNet-32)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating SCE/MMC rounds")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--mixed_precision", default="off",
                        choices=["off", "mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_step.json"))
    args = parser.parse_args()
    if args.mixed_precision != "off":
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    keras.utils.set_random_seed(0)
    strategy = make_strategy(args.strategy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch_size * 4, 32, 32, 3)).astype(np.float32) * 0.3
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=len(x))]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    trainers = {loss: make_trainer(loss, strategy, args.batch_size, args.n, args.mixed_precision)
                for loss in ("sce", "mmc")}
    times = {loss: [] for loss in trainers}
    for loss, trainer in trainers.items():  # compile + warm up
        time_steps(trainer, iterator, 3)
    for _ in range(args.rounds):
        for loss, trainer in trainers.items():
            times[loss] += time_steps(trainer, iterator, args.steps)
    med = {loss: statistics.median(t) for loss, t in times.items()}
    gpus = tf.config.list_logical_devices("GPU")
    result = {
        "benchmark": "train_step",
        "model": f"ResNet-{6 * args.n + 2} v1, CIFAR-shaped (32x32x3), 10 classes",
        "batch_size": args.batch_size,
        "timed_steps_per_loss": len(times["sce"]),
        "median_step_s": med,
        "images_per_s": {k: args.batch_size / v for k, v in med.items()},
        "ratio_mmc_over_sce": med["mmc"] / med["sce"],
        "target_ratio_max": 1.03,
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "mixed_precision": args.mixed_precision,
        "device": gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores)",
    }
    finish(result, args.out)


if __name__ == "__main__":
    main()
