"""An MMC head on your own small Keras model, trained with ``model.fit`` on sparse labels.

    python examples/mmc_head_fit.py --epochs 5                # MNIST-like synthetic data
    python examples/mmc_head_fit.py --epochs 1 --n 64 --out mmc.keras

The features ``z`` (``feature_dim``) of any backbone go into ``mmt.MMCLayer``: logits
``-||z - mu_l||^2`` to the fixed Max-Mahalanobis centers ``mu`` (norm ``c_mm``), trained with
``mmt.MMCLoss`` (``||z - mu_y||^2``) on integer labels ``(batch,)``. Prediction is the
arg-max of the logits; the model saves to ``.keras`` and reloads in safe mode.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

import mmt  # noqa: E402


def synthetic_data(n: int, num_classes: int, shape: Tuple[int, ...], seed: int = 0
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """``(x (n, *shape) float32 in [0, 1], y (n,) int64)``: a class-dependent bright
    patch over noise, so that a small model can learn it in a few steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=n)
    x = rng.uniform(0, 0.3, size=(n,) + shape).astype(np.float32)
    rows = np.linspace(0, shape[0] - 2, num_classes).astype(int)
    for i, label in enumerate(y):
        x[i, rows[label]:rows[label] + 2, :, :] += 0.6
    return np.clip(x, 0, 1), y.astype(np.int64)


def build_model(input_shape: Tuple[int, ...], num_classes: int, feature_dim: int,
                c_mm: float) -> keras.Model:
    """A small CNN ``[0, 1]`` pixels -> features ``(batch, feature_dim)`` -> MMC logits."""
    inputs = keras.Input(input_shape)
    h = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.MaxPooling2D()(h))
    z = keras.layers.Dense(feature_dim)(h)
    centers = mmt.get_centers("mm", num_classes=num_classes, feature_dim=feature_dim,
                              c_mm=c_mm)
    return keras.Model(inputs, mmt.MMCLayer(centers, name="logits")(z))


def main(argv: Optional[Sequence[str]] = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000, help="synthetic training examples")
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--feature_dim", type=int, default=16)
    parser.add_argument("--c_mm", type=float, default=10.0, help="center norm (mean_var)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--out", default="", help="optional .keras file to write")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    shape = (28, 28, 1)
    x, y = synthetic_data(args.n, args.num_classes, shape)
    model = build_model(shape, args.num_classes, args.feature_dim, args.c_mm)
    model.compile(keras.optimizers.Adam(1e-2), loss=mmt.MMCLoss(), metrics=["accuracy"])
    model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    x_test, y_test = synthetic_data(max(args.n // 4, 8), args.num_classes, shape, seed=1)
    accuracy = float(np.mean(np.asarray(model(x_test)).argmax(-1) == y_test))
    print(f"test accuracy {accuracy:.3f}")
    if args.out:
        model.save(args.out)
        keras.saving.load_model(args.out, safe_mode=True)
        print(f"wrote {args.out}")
    return accuracy


if __name__ == "__main__":
    main()
