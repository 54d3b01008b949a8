"""``train_models.py``'s flags and their one frozen :class:`utils.training.run.RunConfig`.

    define_flags()                                      # in train_models.define_flags
    cfg = run_config_from_flags(flags.FLAGS, argv)      # validated when built
    train(cfg)
"""
from __future__ import annotations

from typing import Any, Sequence

from absl import flags

from utils.cli.flags import (define_advtrain_flags, define_model_flags, forget_script_flags,
                             train_run_spec)
from utils.errors import UsageError
from utils.training.run import RunConfig


def define_flags() -> None:
    """The original train.py's flags and defaults, then ours (every flag of this repository
    defined before is forgotten first: :func:`utils.cli.flags.forget_script_flags`)."""
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


def lr_boundaries(values: Sequence[str]) -> "tuple[int, ...] | None":
    """``--lr_boundaries`` as epochs (None: the dataset's default schedule)."""
    try:
        return tuple(int(b) for b in values) or None
    except ValueError:
        raise UsageError(f"lr_boundaries must be integers, got {list(values)}") from None


def run_config_from_flags(values: Any, argv: Sequence[str]) -> RunConfig:
    """The :class:`RunConfig` of ``train_models.py``'s flag ``values`` (its run identity
    from :func:`utils.cli.flags.train_run_spec`); ``argv`` is stored in ``flags.json``."""
    return RunConfig(
        run=train_run_spec(values), epochs=values.epochs,
        lr_boundaries=lr_boundaries(values.lr_boundaries),
        checkpoint_every=values.checkpoint_every, data_dir=values.data_dir,
        model_dir=values.model_dir, strategy=values.strategy,
        mixed_precision=values.mixed_precision, seed=values.seed, resume=values.resume,
        train_size=values.train_size, test_size=values.test_size, augment=values.augment,
        verbose=values.verbose, nan_policy=values.nan_policy,
        steps_per_loop=values.steps_per_loop, jit_compile=values.jit_compile,
        flags={"argv": list(argv), **values.flag_values_dict()})
