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
    from utils.models.loading import checkpoint_location, load_checkpoint_model
    from utils.training.run import RunConfig, train

    cfg = model_config_from_flags(values)
    where = dict(model_dir=values.model_dir, dataset=values.dataset,
                 optimizer=values.optimizer, lr=values.lr, batch_size=values.batch_size,
                 epoch=values.epoch)
    name, _, path = checkpoint_location(cfg, **where)
    if not path.exists() and values.train_missing:
        print(f"training {name} ({values.epoch} epochs)", flush=True)
        result = train(RunConfig(
            dataset=values.dataset, data_dir=values.data_dir, model_dir=values.model_dir,
            model=cfg, optimizer=values.optimizer, lr=values.lr, batch_size=values.batch_size,
            epochs=values.epoch, checkpoint_every=values.epoch, seed=values.seed,
            train_size=values.train_size, test_size=values.num_examples,
            verbose=values.verbose, flags={"argv": sys.argv, **vars(values)}))
        return result.model, name
    if not path.exists():
        raise UsageError(f"no checkpoint {path}; train it (train_models.py with the same "
                         "flags and --epochs=EPOCH) or pass --train_missing")
    return load_checkpoint_model(cfg, data.input_shape, data.num_classes, **where).model, name
