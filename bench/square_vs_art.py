"""Benchmark: our compiled Square attack vs ART's SquareAttack, same model and images.

The model and data are :mod:`bench.apgd_vs_art`'s (a tiny CNN trained for a few hundred
Adam steps on Fashion-MNIST, pixels in [0, 1], one channel); both attacks run ℓ∞ (or
``--norm=l2``), eps ``--eps_256``/256, ``--n_queries`` queries, p_init 0.8, one restart,
the logit-margin loss, on the same first ``--n`` test images; ours after one
untimed warm-up batch (tracing). ART's loop is NumPy around ``predict``; ours is one
compiled graph per batch.

Target: robust accuracies within 1 point of each other (two random searches: the
difference should be noise); the speed ratio is recorded.

    pip install -e '.[art]'
    python bench/square_vs_art.py                   # writes bench/results/square_vs_art.json
    python bench/square_vs_art.py --n=100 --n_queries=50 --train_steps=20 --out=/tmp/s.json
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import Callable, Dict

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.tf_env import tensorflow_defaults  # noqa: E402

tensorflow_defaults()  # before TensorFlow loads

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.apgd_vs_art import CLIP_MAX, CLIP_MIN, accuracy, fashion_01, train_tiny_cnn  # noqa: E402
from bench.common import finish  # noqa: E402
from utils.attacks.square import square_attack  # noqa: E402

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


def make_runners(model, num_classes: int, eps: float, norm: str, n_queries: int,
                 batch_size: int) -> Dict[str, Runner]:
    """``name -> attack(x, y) -> x_adv`` over all of ``x`` in batches."""
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import TensorFlowV2Classifier

    classifier = TensorFlowV2Classifier(model, nb_classes=num_classes,
                                        input_shape=tuple(model.input_shape[1:]),
                                        clip_values=(CLIP_MIN, CLIP_MAX))
    art_attack = SquareAttack(classifier, norm=np.inf if norm == "linf" else 2, eps=eps,
                              max_iter=n_queries, p_init=0.8, nb_restarts=1,
                              batch_size=batch_size, verbose=False)

    def ours(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            out.append(square_attack(model, xb, tf.one_hot(yb, num_classes), eps=eps,
                                     clip_min=CLIP_MIN, clip_max=CLIP_MAX, n_queries=n_queries,
                                     norm=norm, seed=(0, start)).numpy())
        return np.concatenate(out)

    def art(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return art_attack.generate(x, np.eye(num_classes, dtype=np.float32)[y])

    return {"ours": ours, "art": art}


def _size(delta: np.ndarray, norm: str) -> float:
    flat = delta.reshape(len(delta), -1)
    return float(np.abs(flat).max() if norm == "linf" else np.linalg.norm(flat, axis=1).max())


def time_attacks(runners: dict, x: np.ndarray, y: np.ndarray, norm: str) -> tuple:
    """Run each attack once on all of ``x``: ``(seconds, max perturbation over finite
    images, adversarial images, count of non-finite images)``, each keyed by runner."""
    seconds, max_dev, advs, non_finite = {}, {}, {}, {}
    for name, run in runners.items():
        start = time.perf_counter()
        advs[name] = run(x, y)
        seconds[name] = time.perf_counter() - start
        finite = np.isfinite(advs[name]).reshape(len(x), -1).all(1)
        non_finite[name] = int(np.sum(~finite))
        max_dev[name] = _size(advs[name][finite] - x[finite], norm)
        assert np.nanmin(advs[name]) >= CLIP_MIN and np.nanmax(advs[name]) <= CLIP_MAX
    return seconds, max_dev, advs, non_finite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="attacked test images")
    parser.add_argument("--n_queries", type=int, default=1000)
    parser.add_argument("--norm", default="linf", choices=["linf", "l2"])
    parser.add_argument("--eps_256", type=float, default=8.0, help="eps in /256 units")
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument("--train_steps", type=int, default=400)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "square_vs_art.json"))
    args = parser.parse_args()
    import art

    x_train, y_train, x, y, num_classes = fashion_01(20000, args.n, args.data_dir)
    model = train_tiny_cnn(x_train, y_train, num_classes, args.train_steps)
    eps = args.eps_256 / 256
    runners = make_runners(model, num_classes, eps, args.norm, args.n_queries, args.batch_size)
    # Warm-up: our graph's tracing (one batch); ART has nothing to compile, and a full ART
    # warm-up run would double its share of the CPU budget, so it gets one predict.
    runners["ours"](x[:args.batch_size], y[:args.batch_size])
    model.predict(x[:args.batch_size], verbose=0)
    seconds, max_dev, advs, non_finite = time_attacks(runners, x, y, args.norm)
    # ART 1.20's l2 Square can return NaN images (a 0/0 in its window update): compare the
    # two on the images where both are finite, and record how many were dropped.
    keep = np.all([np.isfinite(a).reshape(len(x), -1).all(1) for a in advs.values()], axis=0)
    robust = {k: accuracy(model, a[keep], y[keep]) for k, a in advs.items()}
    ips = {k: len(x) / v for k, v in seconds.items()}
    gap = 100 * (robust["ours"] - robust["art"])
    gpus = tf.config.list_logical_devices("GPU")
    finish({
        "benchmark": "square_vs_art",
        "attack": f"Square, {args.norm}, eps {args.eps_256}/256, {args.n_queries} queries, "
                  f"p_init 0.8, 1 restart, margin loss, batch {args.batch_size}",
        "model": f"tiny CNN (conv16-s2, conv32-s2, dense), {args.train_steps} Adam steps on "
                 "Fashion-MNIST, pixels in [0, 1], 1 channel (as bench/apgd_vs_art.py)",
        "n": len(x), "clean_accuracy": accuracy(model, x, y), "robust_accuracy": robust,
        "robust_gap_points_ours_minus_art": gap, "non_finite_images": non_finite,
        "compared_images": int(keep.sum()), "max_perturbation": max_dev, "eps": eps,
        "attack_s": {k: round(v, 3) for k, v in seconds.items()}, "images_per_s": ips,
        "ratio_ours_over_art": ips["ours"] / ips["art"],
        "targets": {"robust_gap_points_abs_max": 1.0},
        "meets_targets": {"robust": abs(gap) <= 1.0},
        "art_version": art.__version__,
        "device": gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores, shared)",
    }, args.out)


if __name__ == "__main__":
    main()
