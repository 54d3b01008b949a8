"""Benchmark: attack cost against its gradient floor, and against cleverhans 4.0.0.

On the same ResNet-32 v1 (random weights, CIFAR shape 32x32x3) and the same batch,
alternating attack by attack in the same run:

- PGD-10 (MadryEtAl: ℓ∞, random start, eps 8/256, step 2/256, scalar clips), ours and
  cleverhans' ``projected_gradient_descent``, against the floor of 10 chained
  forward+backward passes of the batch (:func:`bench.common.gradient_floor`), itself
  checked against 10 separately compiled passes (``floor_over_separate_passes``);
- APGD-CE with ``--apgd_iter`` (100) steps against the floor of ``apgd_iter + 1`` passes
  (APGD evaluates its start point too).

Targets (issue 17): each attack <= 1.10x its gradient floor. The cleverhans ratio is kept
for reference (cleverhans compiles each gradient step, so on a CPU where the ResNet's
passes dominate it is near 1). Refuses to write on a loaded machine (``--force``).

    python bench/attack_throughput.py          # writes bench/results/attack_throughput.json
    python bench/attack_throughput.py --rounds=2 --n=1 --out=/tmp/a.json   # quick look
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.tf_env import tensorflow_defaults  # noqa: E402

tensorflow_defaults()  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import (finish, gradient_floor, interleaved_times, medians,  # noqa: E402
                          require_idle, separate_passes)
from utils.attacks.apgd import apgd_run  # noqa: E402

from utils.attacks.iterative import ATTACKS  # noqa: E402
from utils.models.classifier import build_classifier  # noqa: E402
from utils.runs.model_config import ModelConfig  # noqa: E402
from utils.attacks.objectives import OBJECTIVES  # noqa: E402

CLIP_MIN, CLIP_MAX = -0.5, 0.5  # scalar clips: cleverhans' clip_by_value takes scalars
NUM_CLASSES = 10  # CIFAR-10 shape


def make_runners(model: keras.Model, x: tf.Tensor, y: np.ndarray, num_classes: int,
                 eps: float, eps_iter: float, num_iter: int,
                 apgd_iter: int) -> Dict[str, Callable[[int], None]]:
    """``name -> run(seed)``: one full PGD attack of the batch, blocking until done."""
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    onehot = tf.one_hot(y, num_classes)
    labels = tf.constant(y, dtype=tf.int64)
    objective = OBJECTIVES.get("ce").fn
    ours_attack = ATTACKS.get("MadryEtAl")

    def ours(seed: int) -> None:
        ours_attack(model, x, onehot, objective=objective, eps=eps, eps_iter=eps_iter,
                    num_iter=num_iter, clip_min=CLIP_MIN, clip_max=CLIP_MAX, rand_init=True,
                    seed=seed).numpy()

    def cleverhans(seed: int) -> None:
        projected_gradient_descent(model, x, eps, eps_iter, num_iter, np.inf,
                                   clip_min=CLIP_MIN, clip_max=CLIP_MAX, y=labels,
                                   rand_init=True, sanity_checks=False).numpy()

    def apgd_ce(seed: int) -> None:
        apgd_run(model, x, onehot, objective=objective, eps=eps, clip_min=CLIP_MIN,
                 clip_max=CLIP_MAX, num_iter=apgd_iter, seed=(seed, 0)).x_adv.numpy()

    pgd_floor = gradient_floor(model, objective, num_iter)
    apgd_floor = gradient_floor(model, objective, apgd_iter + 1)
    separate = separate_passes(model, objective, num_iter)
    return {"ours": ours, "cleverhans": cleverhans,
            "floor_pgd": lambda seed: pgd_floor(x, onehot).numpy(),
            "separate_passes_pgd": lambda seed: separate(x, onehot),
            "apgd_ce": apgd_ce, "floor_apgd": lambda seed: apgd_floor(x, onehot).numpy()}


def check_runs(runners: Dict[str, Callable[[int], None]]) -> Dict[str, Optional[str]]:
    """Warm up (trace) each runner once; ``name -> None`` or the error it raised."""
    errors: Dict[str, Optional[str]] = {}
    for name, run in runners.items():
        try:
            run(0)
            errors[name] = None
        except Exception as exc:  # noqa: BLE001 - recorded, not hidden
            errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            traceback.print_exc()
    return errors


def build_result(args: argparse.Namespace, batch_size: int, times: Dict[str, List[float]],
                 errors: Dict[str, Optional[str]], wall: float) -> Dict[str, Any]:
    """The benchmark's record: medians, ratios to the floors, the floor check, settings."""
    med = medians(times)
    ips = {k: batch_size / v for k, v in med.items()}
    ratio = med["cleverhans"] / med["ours"] if "cleverhans" in med else None
    over_floor = {"pgd": med["ours"] / med["floor_pgd"],
                  "apgd_ce": med["apgd_ce"] / med["floor_apgd"]}
    floor_check = med["floor_pgd"] / med["separate_passes_pgd"]
    gpus = tf.config.list_logical_devices("GPU")
    return {
        "benchmark": "attack_throughput",
        "attack": f"PGD-{args.num_iter} (MadryEtAl), linf, eps {args.eps_256}/256, "
                  f"step {args.eps_iter_256}/256, random start, scalar clips "
                  f"[{CLIP_MIN}, {CLIP_MAX}], ce objective",
        "model": f"ResNet-{6 * args.n + 2} v1 (random weights), 32x32x3, {NUM_CLASSES} classes",
        "batch_size": batch_size,
        "timed_attacks_per_method": {k: len(v) for k, v in times.items()},
        "median_attack_s": med,
        "min_attack_s": {k: min(v) for k, v in times.items()},
        "attack_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "images_per_s": ips,
        "apgd": f"APGD-CE, {args.apgd_iter} iterations, same eps, clips and objective",
        "floor": "k chained forward+backward passes of the batch in one tf.function, "
                 "each at x + 1e-3 sign(previous gradient) (k = PGD steps; APGD steps + 1)",
        "floor_over_separate_passes": floor_check,
        "floor_check": "floor_pgd / k separately compiled forward+backward calls; about 1 "
                       "when the floor really runs k forward passes (0.71 when the forward "
                       "pass was hoisted out of an invariant-input loop)",
        "ratio_over_gradient_floor": over_floor,
        "target_ratio_over_floor_max": 1.10,
        "meets_floor_target": {k: v <= 1.10 for k, v in over_floor.items()},
        "ratio_ours_over_cleverhans": ratio,
        "cleverhans_as_shipped": errors["cleverhans"] or "ran unpatched (sanity_checks=False)",
        "ours_error": errors["ours"],
        "timed_wall_s": wall,
        "device": gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores)",
        "note": "compare ratios, not absolute times. cleverhans' per-step gradient is "
                "itself a tf.function, so compiling the whole loop saves only the eager "
                "work between steps; where the ResNet's forward+backward dominates (CPU, "
                "batch 50) that ratio stays near 1",
    }


def bench_batch(args: argparse.Namespace, model: keras.Model, batch_size: int, out: str,
                load: Any) -> None:
    """Time every runner on one random batch of ``batch_size`` and write ``out``."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(CLIP_MIN, CLIP_MAX, size=(batch_size, 32, 32, 3)),
                    dtype=tf.float32)
    y = rng.integers(0, NUM_CLASSES, size=batch_size)
    eps, eps_iter = args.eps_256 / 256, args.eps_iter_256 / 256
    runners = make_runners(model, x, y, NUM_CLASSES, eps, eps_iter, args.num_iter,
                           args.apgd_iter)
    errors = check_runs(runners)
    working = {k: v for k, v in runners.items() if errors[k] is None}
    wall = time.perf_counter()
    times = interleaved_times(working, args.rounds, args.reps)
    finish(build_result(args, batch_size, times, errors, time.perf_counter() - wall), out,
           load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", default="50",
                        help="batch size, or several comma-separated (one model, one "
                             "result file each: --out must then contain {batch_size})")
    parser.add_argument("--n", type=int, default=5, help="ResNet v1 blocks (5 = ResNet-32)")
    parser.add_argument("--num_iter", type=int, default=10)
    parser.add_argument("--eps_256", type=float, default=8.0, help="eps in /256 units")
    parser.add_argument("--eps_iter_256", type=float, default=2.0, help="step in /256 units")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved ours/cleverhans rounds")
    parser.add_argument("--reps", type=int, default=3,
                        help="timed attacks per method per round (alternating)")
    parser.add_argument("--apgd_iter", type=int, default=100, help="APGD-CE iterations")
    parser.add_argument("--force", action="store_true",
                        help="write results even when the machine is loaded")
    parser.add_argument("--out",
                        default=str(ROOT / "bench" / "results" / "attack_throughput.json"))
    args = parser.parse_args()
    try:
        sizes = [int(b) for b in args.batch_size.split(",")]
    except ValueError:
        parser.error(f"--batch_size must be integers separated by commas, got "
                     f"{args.batch_size!r}")
    if min(sizes) < 1 or (len(sizes) > 1 and "{batch_size}" not in args.out):
        parser.error("batch sizes must be >= 1, and several need {batch_size} in --out")
    load = require_idle(args.force)
    keras.utils.set_random_seed(0)
    model = build_classifier(ModelConfig(version=1, n=args.n, loss="sce"), (32, 32, 3),
                             NUM_CLASSES)
    for batch_size in sizes:
        bench_batch(args, model, batch_size, args.out.format(batch_size=batch_size), load)


if __name__ == "__main__":
    main()
