"""``train_models.py``'s flags as one frozen :class:`utils.training.run.RunConfig`.

    cfg = run_config_from_flags(flags.FLAGS, argv)      # validated when built
    train(cfg)
"""
from __future__ import annotations

from typing import Any, Sequence

from utils.cli.flags import train_run_spec
from utils.errors import UsageError
from utils.training.run import RunConfig


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
