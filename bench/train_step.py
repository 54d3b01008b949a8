"""Benchmark: median training-step time of ResNet-32 (v1, n=5): SCE vs MMC, and against
the floor of the same work, all in one run.

The paper claims MMC costs "little extra computation" over SCE; the target is a step
time ratio MMC/SCE <= 1.03. Both models run the same compiled distributed step
(:func:`utils.training.builder.build_trainer`) on CIFAR-shaped random batches of 50, timed in
alternating rounds so machine drift hits both alike. The SCE model's step is also timed
against (a) the floor: one compiled forward+backward+apply of the same model, loss and
optimizer, nothing else; (b) plain Keras ``fit`` of the same model (target <= 1.05x).
Refuses to write on a loaded machine (``--force``).

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
from typing import Any, Callable, Dict, List, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.tf_env import tensorflow_defaults  # noqa: E402

tensorflow_defaults()  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import finish, require_idle  # noqa: E402

from utils.models.classifier import build_classifier  # noqa: E402
from utils.runs.model_config import ModelConfig  # noqa: E402
from utils.training.builder import TrainerConfig, build_trainer  # noqa: E402
from utils.training.distribute import make_strategy  # noqa: E402
from utils.losses import loss_function  # noqa: E402
from utils.training.loop import Trainer, make_optimizer  # noqa: E402


def make_trainer(loss: str, strategy, batch: int, n: int, mixed: str, version: int = 1,
                 jit_compile: bool = False) -> Trainer:
    """The step ``train_models.py`` runs (:func:`build_trainer`), for ResNet ``version``
    ``n`` (default v1)."""
    return build_trainer(strategy, ModelConfig(version=version, n=n, loss=loss, c_mm=10.0),
                         (32, 32, 3), 10,
                         TrainerConfig(optimizer="mom", lr=0.01, batch_size=batch,
                                       mixed_float16=mixed == "mixed_float16",
                                       jit_compile=jit_compile))


def random_data(batch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Four CIFAR-shaped batches, seed 0: images ``(4 batch, 32, 32, 3)`` float32 of
    about the scale of mean-subtracted pixels, one-hot labels ``(4 batch, 10)``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size * 4, 32, 32, 3)).astype(np.float32) * 0.3
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=len(x))]
    return x, y


def time_steps(trainer: Trainer, iterator, steps: int) -> list:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = trainer.train_step(iterator)
        float(out[0])  # block until the step finished
        times.append(time.perf_counter() - start)
    return times


def floor_step(trainer: Trainer):
    """The bare step: forward, loss (+ regularisers), backward, apply; compiled."""
    model, loss_fn, optimizer = trainer.model, trainer.loss_fn, trainer.optimizer

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
            loss += tf.add_n(model.losses) if model.losses else 0.0
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def time_floor(step, batches, steps: int) -> list:
    times = []
    for i in range(steps):
        x, y = batches[i % len(batches)]
        start = time.perf_counter()
        float(step(x, y))
        times.append(time.perf_counter() - start)
    return times


def time_fit(model: keras.Model, dataset, steps: int) -> list:
    """Per-step seconds of Keras ``fit`` on ``steps`` batches (one epoch), as a list of one
    mean per call so that rounds line up with the other timings."""
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return [(time.perf_counter() - start) / steps] * steps


def run_rounds(timers: Dict[str, Callable[[], List[float]]],
               rounds: int) -> Dict[str, List[float]]:
    """Step times of each timer: one untimed warm-up call each, then ``rounds`` rounds
    alternating timer by timer (drift in the machine's speed hits all alike)."""
    times: Dict[str, List[float]] = {name: [] for name in timers}
    for timer in timers.values():  # compile + warm up
        timer()
    for _ in range(rounds):
        for name, timer in timers.items():
            times[name] += timer()
    return times


def build_result(args: argparse.Namespace, times: Dict[str, List[float]],
                 strategy: tf.distribute.Strategy) -> Dict[str, Any]:
    """The benchmark's record: median step times and their ratios, with the settings."""
    med = {loss: statistics.median(t) for loss, t in times.items()}
    gpus = tf.config.list_logical_devices("GPU")
    return {
        "benchmark": "train_step",
        "model": f"ResNet-{6 * args.n + 2} v1, CIFAR-shaped (32x32x3), 10 classes",
        "batch_size": args.batch_size,
        "timed_steps_per_loss": len(times["sce"]),
        "median_step_s": med,
        "images_per_s": {k: args.batch_size / v for k, v in med.items()},
        "ratio_mmc_over_sce": med["mmc"] / med["sce"],
        "target_ratio_max": 1.03,
        "ratio_sce_over_floor": med["sce"] / med["floor"],
        "ratio_sce_over_keras_fit": med["sce"] / med["keras_fit"],
        "target_ratio_over_keras_fit_max": 1.05,
        "floor": "one compiled forward+backward+apply of the SCE model, same loss, "
                 "optimizer and batches; keras_fit: Keras fit of an identical model "
                 "(per-step mean of each fit call)",
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "mixed_precision": args.mixed_precision,
        "device": gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--n", type=int, default=5, help="ResNet v1 blocks (5 = ResNet-32)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating SCE/MMC rounds")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--mixed_precision", default="off",
                        choices=["off", "mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--force", action="store_true",
                        help="write results even when the machine is loaded")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_step.json"))
    args = parser.parse_args()
    load = require_idle(args.force)
    if args.mixed_precision != "off":
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    keras.utils.set_random_seed(0)
    strategy = make_strategy(args.strategy)
    x, y = random_data(args.batch_size)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    trainers = {loss: make_trainer(loss, strategy, args.batch_size, args.n, args.mixed_precision)
                for loss in ("sce", "mmc")}
    batches = [(tf.constant(x[i:i + args.batch_size]), tf.constant(y[i:i + args.batch_size]))
               for i in range(0, len(x), args.batch_size)]
    floor = floor_step(trainers["sce"])
    fit_model = build_classifier(ModelConfig(version=1, n=args.n, loss="sce", c_mm=10.0),
                                 (32, 32, 3), 10)
    fit_model.compile(optimizer=make_optimizer("mom", 0.01), loss=loss_function("sce"))
    timers = {loss: (lambda t=trainer: time_steps(t, iterator, args.steps))
              for loss, trainer in trainers.items()}
    timers["floor"] = lambda: time_floor(floor, batches, args.steps)
    timers["keras_fit"] = lambda: time_fit(fit_model, dataset, args.steps)
    times = run_rounds(timers, args.rounds)
    result = build_result(args, times, strategy)
    finish(result, args.out, load)


if __name__ == "__main__":
    main()
