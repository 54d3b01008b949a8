"""Train SCE, MMC and MMLDA ResNets with the original repository's command lines.

Flags keep the names and defaults of P2333/Max-Mahalanobis-Training's ``train.py``;
checkpoints go to ``<model_dir>/trained_models/<dataset>/<run name>/model.NNN.weights.h5``.

    python3 train_models.py --batch_size=50 --mean_var=10 --dataset=cifar10 --optimizer=mom \
        --lr=0.01 --version=2 --use_MMLDA=True --use_ball=True --use_BN=True \
        --use_random=False --use_dense=True --use_leaky=False
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import flags  # noqa: E402

from utils.cli.common import quiet_tensorflow, run_main  # noqa: E402

quiet_tensorflow()  # before utils.cli.flags imports TensorFlow
from utils.cli.flags import (define_advtrain_flags, define_model_flags,  # noqa: E402
                             forget_script_flags)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The original train.py's flags and defaults, then ours (called again by in-process
    runners to make these the defined flags: :func:`utils.cli.flags.forget_script_flags`)."""
    forget_script_flags()
    define_model_flags(optimizer="mom", lr=0.01, batch_size=50, dataset="mnist")
    define_advtrain_flags()
    flags.DEFINE_integer(
        "epochs", None, "Epochs; default: the original's (50 MNIST-like, "
        "200 CIFAR).")
    flags.DEFINE_list(
        "lr_boundaries", [], "Epochs after which lr x0.1; empty = 30,40 / "
        "100,150.")
    flags.DEFINE_integer(
        "checkpoint_every", 5, "Save model.NNN.weights.h5 every this many "
        "epochs (and at the last epoch).")
    flags.DEFINE_enum(
        "strategy", "auto", help="tf.distribute strategy.",
        enum_values=["auto", "one_device", "mirrored", "multi_worker"])
    flags.DEFINE_enum(
        "mixed_precision", "off", help="Keras mixed-precision policy (heads and "
        "losses stay float32).", enum_values=["off", "mixed_float16", "mixed_bfloat16"])
    flags.DEFINE_bool("resume", False, "Continue from the run directory's last checkpoint.")
    flags.DEFINE_integer(
        "train_size", None, "Train on a seeded subset of this size "
        "(default: all).", lower_bound=1)
    flags.DEFINE_integer(
        "test_size", None, "Validate on the first N test images "
        "(default: all).", lower_bound=1)
    flags.DEFINE_bool("augment", True, "Shifts 0.1 and horizontal flips, as the original.")
    flags.DEFINE_integer("verbose", 1, "0: quiet, 1: progress bar.")
    flags.DEFINE_enum(
        "nan_policy", "stop", help="A batch with a NaN/inf loss or gradient is "
        "never applied; stop: end the run (exit 3), skip_batch: go on.",
        enum_values=["stop", "skip_batch"])
    flags.DEFINE_integer(
        "steps_per_loop", 1, "Training steps per tf.function call (one "
        "host sync per call; e.g. 50 on a GPU); weights do not depend on it.")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the training step.")


define_flags()


def main(argv: Sequence[str]) -> None:
    from utils.cli.train import run_config_from_flags
    from utils.errors import UsageError
    from utils.training.run import train

    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; flags look like --name=value")
    result = train(run_config_from_flags(FLAGS, sys.argv))
    print(f"final test accuracy {result.test_accuracy:.4f} (epoch {result.final_epoch}); "
          f"checkpoints in {result.run_dir}; weights sha256 {result.weights_digest}")


if __name__ == "__main__":
    run_main(main)
