"""The models of ``scripts/analyses.py``: a run's checkpoint, or trained when missing.

    model, name = get_model(values, data)   # values: the flag values of one model
"""
from __future__ import annotations

import sys
from typing import Any


def get_model(values: Any, data: Any) -> Any:
    """``(keras model, run name)`` of checkpoint ``values.epoch`` of the run ``values``
    name; trained first with ``--train_missing`` when absent, else a UsageError."""
    from utils.errors import UsageError
    from utils.cli.flags import model_config_from_flags
    from utils.models.loading import load_run
    from utils.runs.spec import RunSpec
    from utils.training.run import RunConfig, train

    spec = RunSpec(values.dataset, model_config_from_flags(values), values.optimizer,
                   values.lr, values.batch_size)
    run_dir, path = spec.find_checkpoint(values.model_dir, values.epoch)
    name = run_dir.name
    if not path.exists() and values.train_missing:
        print(f"training {name} ({values.epoch} epochs)", flush=True)
        result = train(RunConfig(
            run=spec, data_dir=values.data_dir, model_dir=values.model_dir,
            epochs=values.epoch, checkpoint_every=values.epoch, seed=values.seed,
            train_size=values.train_size, test_size=values.num_examples,
            verbose=values.verbose, flags={"argv": sys.argv, **vars(values)}))
        return result.model, name
    if not path.exists():
        raise UsageError(f"no checkpoint {path}; train it (train_models.py with the same "
                         "flags and --epochs=EPOCH) or pass --train_missing")
    return load_run(spec, data.input_shape, data.num_classes, model_dir=values.model_dir,
                    epoch=values.epoch).model, name
