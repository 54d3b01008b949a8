"""What an evaluation attacks: the test data and a trained run (or a ``.keras`` file).

The ``advtest_*.py`` entry scripts build these from their flags once
(:mod:`utils.cli.flags`); tests and other callers build them directly.

    data = load_data(DataSource("mnist", None, num_examples=100, seed=0))
    loaded = load_model(ModelSource(spec=spec, model_dir=".", epoch=2), data)
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import pathlib
from typing import Any, Hashable, Optional, Tuple

import numpy as np

from utils.data import PreparedData, load_dataset
from utils.errors import NonFiniteError, UsageError
from utils.models.loading import LoadedModel, load_model_file, load_run
from utils.runs.spec import RunSpec


@dataclasses.dataclass(frozen=True)
class DataSource:
    """The test set: ``dataset`` from ``data_dir`` (None: the usual places), cut to the
    first ``num_examples`` images (None: all); ``seed`` as the loader takes it."""

    dataset: str
    data_dir: Optional[str] = None
    num_examples: Optional[int] = None
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A checkpoint: run ``spec`` (:class:`utils.runs.spec.RunSpec`) at ``epoch``
    under ``model_dir``, or the file ``model_path`` (then ``spec`` is None).

    ``use_advtrain``: the run was named as adversarially trained (a missing checkpoint's
    message then hints at ``--use_advtrain=False``)."""

    spec: Optional[RunSpec] = None
    model_dir: str = "."
    epoch: int = 1
    model_path: Optional[str] = None
    use_advtrain: bool = False


def load_data(source: DataSource) -> PreparedData:
    """The :class:`utils.data.PreparedData` of ``source``."""
    return load_dataset(source.dataset, source.data_dir, test_size=source.num_examples,
                        seed=source.seed)


def load_model(source: ModelSource, data: PreparedData, *, check_finite: bool = True
               ) -> LoadedModel:
    """The :class:`utils.models.loading.LoadedModel` of ``source`` for ``data``'s shapes.

    Raises:
      UsageError: no such checkpoint (with a hint on ``--use_advtrain``, which defaults to
        True as in the original).
      NonFiniteError: with ``check_finite``, the clean logits of the first 100 test images
        hold NaN/inf (no attack measures such a model).
    """
    key = _cache_key(source, data)
    cached = _LOADED.get(key)
    if cached is not None and cached[0] == _file_stamp(cached[1].checkpoint):
        loaded = cached[1]
    else:
        loaded = _load_uncached(source, data)
        _LOADED[key] = (_file_stamp(loaded.checkpoint), loaded)
        while len(_LOADED) > _KEEP_LOADED:
            _LOADED.popitem(last=False)
    if check_finite:
        check_finite_logits(loaded.model, data.x_test[:100], loaded.run_name)
    return loaded


#: Models loaded in this process, for the next evaluation of the same checkpoint: a run of
#: several evaluations in one process (a reproduction, the tests) then reuses the model
#: object, and with it the attack graphs compiled for it. A rewritten checkpoint (its size
#: or mtime changed) is loaded again. Evaluations never change a model's weights.
_LOADED: "collections.OrderedDict[Hashable, Tuple[Tuple[int, int], LoadedModel]]" = (
    collections.OrderedDict())
_KEEP_LOADED = 4


def _cache_key(source: ModelSource, data: PreparedData) -> Hashable:
    """What a loaded model depends on: the source (its directory made absolute) and the
    data's shapes, class count and pixel mean (a ``.keras`` file is wrapped with it)."""
    where = dataclasses.replace(source, model_dir=os.path.abspath(source.model_dir),
                                model_path=source.model_path and os.path.abspath(
                                    source.model_path))
    mean = hashlib.sha256(np.ascontiguousarray(data.mean).tobytes()).hexdigest()
    return where, tuple(data.input_shape), int(data.num_classes), mean


def _file_stamp(path: "str | pathlib.Path") -> Tuple[int, int]:
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


def _load_uncached(source: ModelSource, data: PreparedData) -> LoadedModel:
    """:func:`load_model` without the cache and the finiteness check."""
    if source.model_path:
        return load_model_file(source.model_path, data)
    else:
        try:
            loaded = load_run(source.spec, data.input_shape, data.num_classes,
                              model_dir=source.model_dir, epoch=source.epoch)
        except UsageError as exc:
            if not source.use_advtrain or "advtrained_models" not in str(exc):
                raise
            raise UsageError(f"{exc} (--use_advtrain defaults to True, as in the original: "
                             "pass --use_advtrain=False for a standard-trained model)") from None
    return loaded


def check_finite_logits(model: Any, x: Any, name: str) -> None:
    """NonFiniteError unless ``model(x)`` is finite (``x``: a few clean test images)."""
    logits = np.asarray(model(x, training=False))
    if not np.all(np.isfinite(logits)):
        raise NonFiniteError(f"model {name} gives non-finite logits on clean test images "
                             "(NaN/inf weights?); nothing to attack: retrain it")
