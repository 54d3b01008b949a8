"""Per-example vs per-batch random starts of PGD-10, same attack otherwise (issue 23).

The round changed where PGD's random start comes from: one draw per batch from
``(seed, batch)`` before, one per example from ``(seed, example index)`` now. Both are
uniform in the ε-ball; this script runs the same compiled PGD-10 loop (``attack_graph``,
adaptive ``mmc_un1``, ε 8/256, step 2/256) with either draw on the demo's MMC-10 model and
prints the robust accuracy per seed, so the change can be read against the seed-to-seed
spread. The per-batch column reproduces the BEFORE code's figures for the same seeds.

    python reports/refactor/start_draws.py --model_dir=/tmp/records5/before/demo \
        --seeds=0-7,1000-1011
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from utils.attacks.core import example_seeds  # noqa: E402
from utils.attacks.iterative import attack_graph, gradient_step  # noqa: E402
from utils.attacks.objectives import OBJECTIVES  # noqa: E402
from utils.attacks.threat_model import threat_model  # noqa: E402
from utils.data import load_dataset  # noqa: E402
from utils.models.loading import load_run  # noqa: E402
from utils.runs.model_config import ModelConfig  # noqa: E402
from utils.runs.spec import RunSpec  # noqa: E402


def seeds_of(text: str) -> list:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def robust_accuracy(model, data, seed: int, per_example: bool, batch: int = 100) -> float:
    objective = OBJECTIVES.get("mmc_un1").fn
    shape = (1,) + tuple(data.input_shape)
    low = tf.constant(np.broadcast_to(np.asarray(data.clip_min, np.float32), shape))
    high = tf.constant(np.broadcast_to(np.asarray(data.clip_max, np.float32), shape))
    correct = 0
    for b, start in enumerate(range(0, len(data.x_test), batch)):
        x = tf.constant(data.x_test[start:start + batch])
        y = data.y_test[start:start + batch]
        seeds = (example_seeds(seed, np.arange(start, start + len(y))) if per_example
                 else tf.constant([seed, b], tf.int64))
        x_adv = attack_graph(model, objective, gradient_step, threat_model("linf"), x,
                             tf.one_hot(y, data.num_classes), None, tf.constant(8 / 256),
                             tf.constant(2 / 256), tf.constant(10), low, high, True, seeds,
                             batch_draw=not per_example)
        correct += int((np.asarray(model(x_adv)).argmax(-1) == y).sum())
    return correct / len(data.x_test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="the demo's --out_dir")
    parser.add_argument("--epoch", type=int, default=2)
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seeds", default="0-7", help="e.g. 0-7,1000-1011")
    args = parser.parse_args()
    data = load_dataset("fashion_mnist", None, test_size=args.examples, seed=0)
    spec = RunSpec("fashion_mnist", ModelConfig(version=1, n=1, c_mm=10.0), "Adam", 0.001, 50)
    model = load_run(spec, data.input_shape, data.num_classes, model_dir=args.model_dir,
                     epoch=args.epoch).model
    seeds = seeds_of(args.seeds)
    for name, per_example in (("per_example", True), ("per_batch", False)):
        acc = [robust_accuracy(model, data, s, per_example) for s in seeds]
        print(f"{name}: mean {np.mean(acc):.4f}, range {min(acc):.3f}-{max(acc):.3f}, "
              f"by seed {dict(zip(seeds, acc))}", flush=True)


if __name__ == "__main__":
    main()
