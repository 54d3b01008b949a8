"""Train SCE, MMC and MMLDA ResNets with the original repository's command lines.

Flags keep the names and defaults of P2333/Max-Mahalanobis-Training's ``train.py``
(:func:`utils.cli.train.define_flags`); checkpoints go to
``<model_dir>/trained_models/<dataset>/<run name>/model.NNN.weights.h5``.

    python3 train_models.py --batch_size=50 --mean_var=10 --dataset=cifar10 --optimizer=mom \
        --lr=0.01 --version=2 --use_MMLDA=True --use_ball=True --use_BN=True \
        --use_random=False --use_dense=True --use_leaky=False
    mmt-train --batch_size=50 ...     # the same, as the installed console script

Importing this module defines no flags and loads no TensorFlow (:func:`console_main` does).
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import flags

from utils.cli.common import refuse_arguments, start_script

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Define this script's flags (called by :func:`console_main`, and again by in-process
    runners to make these the defined flags: :func:`utils.cli.flags.forget_script_flags`)."""
    # Imported when called: utils.cli loads TensorFlow, which importing this module must not.
    from utils.cli.train import define_flags as define_train_flags
    define_train_flags()


def main(argv: Sequence[str]) -> None:
    """Train the run the parsed flags name and print where its checkpoints went."""
    from utils.cli.train import run_config_from_flags
    from utils.training.run import train

    refuse_arguments(argv)
    result = train(run_config_from_flags(FLAGS, sys.argv))
    print(f"final test accuracy {result.test_accuracy:.4f} (epoch {result.final_epoch}); "
          f"checkpoints in {result.run_dir}; weights sha256 {result.weights_digest}")


def console_main() -> None:
    """``python3 train_models.py`` and the ``mmt-train`` console script."""
    start_script(define_flags, main)


if __name__ == "__main__":
    console_main()
