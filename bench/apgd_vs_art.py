"""Benchmark: our compiled APGD-CE vs ART's AutoProjectedGradientDescent, same everything.

One run trains a tiny CNN on Fashion-MNIST (a few hundred Adam steps, pixels in [0, 1],
one channel) and attacks the same first ``--n`` test images with both implementations:
ℓ∞, eps 8/256, ``--max_iter`` iterations, one random start, cross-entropy, batch
``--batch_size``. ART gets ``eps_step = 2 eps``, the paper's initial step (ours always
starts there); its other settings are its defaults. Both runs alternate in the same
process, after one untimed warm-up batch each.

Targets: our robust accuracy <= ART's + 0.5 points; our images/s >= 5x ART's.

    pip install -e '.[art]'
    python bench/apgd_vs_art.py                     # writes bench/results/apgd_vs_art.json
    python bench/apgd_vs_art.py --n=100 --max_iter=5 --train_steps=20 --out=/tmp/a.json

Note: ART and ours (as AutoAttack's ``x_best_adv``) both keep, per example, the LAST
misclassified iterate; ours also counts an example broken if any iterate was.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time
from typing import Callable, Dict, List

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.tf_env import tensorflow_defaults  # noqa: E402

tensorflow_defaults()  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import finish  # noqa: E402

from utils.attacks.apgd import apgd  # noqa: E402
from utils.data import load_dataset  # noqa: E402
from utils.attacks.objectives import OBJECTIVES  # noqa: E402

CLIP_MIN, CLIP_MAX = 0.0, 1.0  # pixels in [0, 1]: scalar clips both libraries take


def fashion_01(n_train: int, n_test: int, data_dir: "str | None"):
    """Fashion-MNIST as ``(N, 28, 28, 1)`` float32 pixels in [0, 1] and int labels."""
    data = load_dataset("fashion_mnist", data_dir, train_size=n_train, test_size=n_test)

    def to01(x):
        return np.clip(x + data.mean, 0.0, 1.0)[..., :1].astype(np.float32)

    return to01(data.x_train), data.y_train, to01(data.x_test), data.y_test, data.num_classes


def train_tiny_cnn(x: np.ndarray, y: np.ndarray, num_classes: int, steps: int,
                   batch_size: int = 64) -> keras.Model:
    """Two strided convolutions and a dense head, ``steps`` Adam steps; outputs logits."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(x.shape[1:]),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(num_classes)])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).repeat()
    model.fit(batches.batch(batch_size), epochs=1, steps_per_epoch=steps, verbose=0)
    return model


def make_runners(model: keras.Model, num_classes: int, eps: float, max_iter: int,
                 batch_size: int) -> Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """``name -> attack(x, y) -> x_adv`` over all of ``x`` in batches."""
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier

    classifier = TensorFlowV2Classifier(model, nb_classes=num_classes,
                                        input_shape=tuple(model.input_shape[1:]),
                                        clip_values=(CLIP_MIN, CLIP_MAX))
    art_attack = AutoProjectedGradientDescent(
        classifier, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=max_iter,
        nb_random_init=1, batch_size=batch_size, loss_type="cross_entropy", verbose=False)
    ce = OBJECTIVES.get("ce").fn

    def ours(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            out.append(apgd(model, xb, tf.one_hot(yb, num_classes), objective=ce, eps=eps,
                            clip_min=CLIP_MIN, clip_max=CLIP_MAX, num_iter=max_iter,
                            seed=(0, start)).numpy())
        return np.concatenate(out)

    def art(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return art_attack.generate(x, np.eye(num_classes, dtype=np.float32)[y])

    return {"ours": ours, "art": art}


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x, batch_size=500, verbose=0).argmax(-1) == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="attacked test images")
    parser.add_argument("--max_iter", type=int, default=100)
    parser.add_argument("--eps_256", type=float, default=8.0, help="eps in /256 units")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--train_steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=1, help="timed runs per method")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "apgd_vs_art.json"))
    args = parser.parse_args()
    import art

    x_train, y_train, x, y, num_classes = fashion_01(20000, args.n, args.data_dir)
    model = train_tiny_cnn(x_train, y_train, num_classes, args.train_steps)
    eps = args.eps_256 / 256
    runners = make_runners(model, num_classes, eps, args.max_iter, args.batch_size)
    for run in runners.values():  # warm-up: tracing, eager caches
        run(x[:args.batch_size], y[:args.batch_size])
    times: Dict[str, List[float]] = {k: [] for k in runners}
    robust: Dict[str, float] = {}
    max_dev: Dict[str, float] = {}
    for _ in range(args.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            x_adv = run(x, y)
            times[name].append(time.perf_counter() - start)
            robust.setdefault(name, accuracy(model, x_adv, y))
            max_dev[name] = float(np.abs(x_adv - x).max())
            assert x_adv.min() >= CLIP_MIN and x_adv.max() <= CLIP_MAX
    med = {k: statistics.median(v) for k, v in times.items()}
    ips = {k: len(x) / v for k, v in med.items()}
    ratio = ips["ours"] / ips["art"]
    gap = 100 * (robust["ours"] - robust["art"])
    gpus = tf.config.list_logical_devices("GPU")
    finish({
        "benchmark": "apgd_vs_art",
        "attack": f"APGD-CE, linf, eps {args.eps_256}/256, {args.max_iter} iterations, 1 "
                  f"random start, batch {args.batch_size}; ART eps_step 2*eps",
        "model": f"tiny CNN (conv16-s2, conv32-s2, dense), {args.train_steps} Adam steps on "
                 "Fashion-MNIST, pixels in [0, 1], 1 channel",
        "n": len(x), "clean_accuracy": accuracy(model, x, y),
        "robust_accuracy": robust, "robust_gap_points_ours_minus_art": gap,
        "max_linf_perturbation": max_dev, "eps": eps,
        "attack_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "images_per_s": ips, "ratio_ours_over_art": ratio,
        "targets": {"robust_gap_points_max": 0.5, "ratio_min": 5.0},
        "meets_targets": {"robust": gap <= 0.5, "speed": ratio >= 5.0},
        "art_version": art.__version__,
        "device": gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores, shared)",
    }, args.out)


if __name__ == "__main__":
    main()
