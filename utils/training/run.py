"""One training run, end to end, from plain arguments (what ``train_models.py`` calls).

Loads data, builds the model and optimizer inside ``strategy.scope()``, resumes if
asked, trains with :class:`utils.training.loop.Trainer`, and writes into the run directory:
``flags.json``, ``arch.json``, ``versions.json``, ``history.csv``, ``logs/`` (TensorBoard)
and, every ``checkpoint_every`` epochs and at the last epoch, ``model.{epoch:03d}.weights.h5``
with ``state.{epoch:03d}.*``, the whole training state for an exact ``--resume``
(:mod:`utils.training.resume`). A non-finite loss stops the run (NonFiniteError) before
anything non-finite is saved; an interrupt raises :class:`utils.errors.Interrupted`. While
it runs, the training holds the run directory's lock (:mod:`utils.runs.lock`): a second
training into the same directory ends with UsageError and leaves the directory as it was.

    spec = RunSpec("fashion_mnist", ModelConfig(version=1, n=1), "mom", 0.01, 50)
    result = train(RunConfig(run=spec, epochs=1, train_size=2000))
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import pathlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

import ts_centers
from utils.data import (PreparedData, load_dataset, make_distributed_train_dataset,
                        make_eval_dataset, steps_per_epoch)
from utils.errors import Interrupted, NonFiniteError, UsageError
from utils.fileio import atomic_write_text
from utils.results import package_versions
from utils.runs import checkpoints as ckpt
from utils.runs.checkpoints import HISTORY_FILE
from utils.runs.lock import RunDirLock
from utils.runs.model_config import architecture_fingerprint
from utils.runs.spec import RunSpec
from utils.training.builder import TrainerConfig, build_trainer
from utils.training.distribute import is_chief, make_strategy, sync_non_trainable
from utils.training.loop import EpochLog, Trainer
from utils.training.resume import TrainingState, prepare_run_dir

# (epochs, lr boundaries) of the original per dataset.
DEFAULT_SCHEDULES: Dict[str, Tuple[int, Tuple[int, int]]] = {
    "mnist": (50, (30, 40)),
    "fashion_mnist": (50, (30, 40)),
    "cifar10": (200, (100, 150)),
    "cifar100": (200, (100, 150)),
}
MIXED_PRECISION = ("off", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Plain arguments of one training run (see ``train_models.py --help``), validated
    when built: ``run`` is the run's identity (dataset, model, optimizer, lr, batch size,
    adversarial training); the rest says how to train it."""

    run: RunSpec
    epochs: Optional[int] = None
    lr_boundaries: Optional[Tuple[int, int]] = None
    checkpoint_every: int = 5
    data_dir: Optional[str] = None
    model_dir: str = "."
    strategy: str = "auto"
    mixed_precision: str = "off"
    seed: int = 0
    resume: bool = False
    train_size: Optional[int] = None
    test_size: Optional[int] = None
    augment: bool = True
    verbose: int = 1
    nan_policy: str = "stop"
    steps_per_loop: int = 1
    jit_compile: bool = False
    flags: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs is None or self.epochs >= 1,
             f"--epochs must be >= 1, got {self.epochs}"),
            (self.checkpoint_every >= 1,
             f"--checkpoint_every must be >= 1, got {self.checkpoint_every}"),
            (self.mixed_precision in MIXED_PRECISION,
             f"--mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
             f"got {self.mixed_precision!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        trainer_config(self)  # validates the training-step settings, once, there

    @property
    def directory(self) -> pathlib.Path:
        """Where this run writes (:meth:`utils.runs.spec.RunSpec.directory`)."""
        return self.run.directory(self.model_dir)


@dataclasses.dataclass
class RunResult:
    run_dir: pathlib.Path
    history: List[EpochLog]
    final_epoch: int
    test_accuracy: float
    weights_digest: str
    model: keras.Model


def weights_digest(model: keras.Model) -> str:
    """sha256 of all weights' bytes: equal digests mean bit-identical models."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def _history_csv(rows: Sequence[EpochLog]) -> str:
    out = io.StringIO()
    fields = [f.name for f in dataclasses.fields(EpochLog)]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow(dataclasses.asdict(row))
    return out.getvalue()


def _read_history(path: pathlib.Path, upto_epoch: int) -> List[EpochLog]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [EpochLog(int(r["epoch"]), *(float(r[k]) for k in list(r)[1:]))
                for r in csv.DictReader(f)]
    return [r for r in rows if r.epoch <= upto_epoch]


def _write_run_files(run_dir: pathlib.Path, cfg: RunConfig,
                     fingerprint: Dict[str, Any]) -> None:
    prepare_run_dir(run_dir)  # temporaries of a killed run: nothing else writes here now
    atomic_write_text(run_dir / ckpt.ARCH_FILE, json.dumps(fingerprint, indent=1))
    atomic_write_text(run_dir / "flags.json", json.dumps(cfg.flags or {}, indent=1))
    atomic_write_text(run_dir / "run.json", json.dumps(cfg.run.to_dict(), indent=1))
    atomic_write_text(run_dir / "versions.json", json.dumps(package_versions(), indent=1))


def _epoch_end_hook(cfg: RunConfig, run_dir: pathlib.Path, state: TrainingState,
                    strategy: tf.distribute.Strategy, history: List[EpochLog], epochs: int,
                    chief: bool):
    """Per epoch: TensorBoard scalars and ``history.csv``; at a checkpoint epoch the
    history row, training state and weights together, after checking they are finite."""
    model = state.model
    writer = tf.summary.create_file_writer(str(run_dir / "logs")) if chief else None

    def on_epoch_end(log: EpochLog) -> None:
        sync_non_trainable(strategy, model.non_trainable_variables)
        history.append(log)
        if not chief:
            return
        with writer.as_default(step=log.epoch):
            for key in ("lr", "loss", "accuracy", "val_loss", "val_accuracy"):
                tf.summary.scalar(key, getattr(log, key))
        writer.flush()
        if log.epoch % cfg.checkpoint_every and log.epoch != epochs:
            atomic_write_text(run_dir / HISTORY_FILE, _history_csv(history))
            return
        bad = [w.path for w in model.weights if not np.all(np.isfinite(w.numpy()))]
        if bad:
            raise NonFiniteError(f"non-finite weights ({bad[0]}) after epoch {log.epoch}; "
                                 "no checkpoint written for it; lower --lr")
        state.save(run_dir, log.epoch, _history_csv(history))

    return on_epoch_end


def trainer_config(cfg: RunConfig) -> TrainerConfig:
    """The :class:`utils.training.builder.TrainerConfig` of run ``cfg``."""
    run = cfg.run
    return TrainerConfig(optimizer=run.optimizer, lr=run.lr, batch_size=run.batch_size,
                         mixed_float16=cfg.mixed_precision == "mixed_float16",
                         advtrain=run.advtrain, seed=cfg.seed, nan_policy=cfg.nan_policy,
                         steps_per_loop=cfg.steps_per_loop, jit_compile=cfg.jit_compile)


def _load_checked_data(cfg: RunConfig) -> PreparedData:
    """The run's data, refused (UsageError) when it cannot fill one batch or, for
    hierarchical centers, its coarse labels do not fit."""
    run = cfg.run
    data = load_dataset(run.dataset, cfg.data_dir, train_size=cfg.train_size,
                        test_size=cfg.test_size, seed=cfg.seed)
    if len(data.x_train) < run.batch_size:
        raise UsageError(f"only {len(data.x_train)} training examples for --batch_size="
                         f"{run.batch_size}; raise --train_size or lower --batch_size")
    if run.model.centers == "hierarchical":
        ts_centers.check_coarse_labels(data.y_train, data.coarse_train, data.num_classes,
                                       run.dataset)
    return data


def _datasets(cfg: RunConfig, strategy: tf.distribute.Strategy, data: PreparedData,
              initial_epoch: int, steps: int) -> Tuple[Any, tf.data.Dataset]:
    """``(distributed training set repeating from epoch initial_epoch + 1, eval set)``."""
    with strategy.scope():
        dist_ds = make_distributed_train_dataset(
            strategy, data.x_train, data.y_train, global_batch_size=cfg.run.batch_size,
            num_classes=data.num_classes, augment=cfg.augment, shuffle_seed=cfg.seed,
            repeat=True, first_epoch=initial_epoch, steps=steps)
    eval_ds = make_eval_dataset(data.x_test, data.y_test,
                                global_batch_size=max(cfg.run.batch_size, 100),
                                num_classes=data.num_classes)
    return dist_ds, eval_ds


def _fit_or_interrupted(trainer: Trainer, run_dir: pathlib.Path, *args: Any,
                        **kwargs: Any) -> None:
    """``trainer.fit(*args, **kwargs)``; an interrupt becomes :class:`Interrupted` naming
    where it stopped and the checkpoint to resume from."""
    try:
        trainer.fit(*args, **kwargs)
    except KeyboardInterrupt:
        epoch, step = trainer.position
        last = ckpt.latest_checkpoint(run_dir)
        kept = f"last checkpoint: epoch {last}" if last else "no checkpoint yet"
        raise Interrupted(f"interrupted at epoch {epoch} step {step} ({kept} in {run_dir}); "
                          "resume with --resume") from None


def train(cfg: RunConfig) -> RunResult:
    """Run one training job; see the module docstring for what is written."""
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = make_strategy(cfg.strategy)
    chief = is_chief()
    # Only the chief writes; an existing run directory is locked before anything else
    # (a refused training has then loaded, read and written nothing).
    with RunDirLock(cfg.directory, enabled=chief) as lock:
        return _train_locked(cfg, strategy, chief, lock)


def _train_locked(cfg: RunConfig, strategy: tf.distribute.Strategy, chief: bool,
                  lock: RunDirLock) -> RunResult:
    """:func:`train` inside ``lock``, which it takes on the run directory it creates."""
    epochs, boundaries = DEFAULT_SCHEDULES.get(cfg.run.dataset, (50, (30, 40)))
    epochs = cfg.epochs or epochs
    boundaries = tuple(cfg.lr_boundaries or boundaries)
    data = _load_checked_data(cfg)
    run_dir = cfg.directory
    fingerprint = architecture_fingerprint(cfg.run.model, data.input_shape, data.num_classes)
    ckpt.check_architecture(run_dir, fingerprint)
    if cfg.mixed_precision != "off":
        keras.mixed_precision.set_global_policy(cfg.mixed_precision)
    trainer = build_trainer(strategy, cfg.run.model, data.input_shape, data.num_classes,
                            trainer_config(cfg), clip_min=data.clip_min, clip_max=data.clip_max)
    model = trainer.model
    with strategy.scope():
        state = TrainingState(model, trainer.optimizer, cfg.seed)
        initial_epoch = state.restore(run_dir) if cfg.resume else 0
    if chief:  # first write: only after every check and the model build passed
        ckpt.ensure_writable_dir(run_dir)
        lock.lock()
    if cfg.verbose:
        resumed = f", resumed from epoch {initial_epoch}" if cfg.resume else ""
        print(f"{model.name}: {model.count_params():,} parameters, {strategy.num_replicas_in_sync}"
              f" replica(s), run dir {run_dir}{resumed}", flush=True)
    if chief:
        _write_run_files(run_dir, cfg, fingerprint)
    history = _read_history(run_dir / HISTORY_FILE, initial_epoch) if cfg.resume else []
    steps = steps_per_epoch(len(data.x_train), cfg.run.batch_size)
    dist_ds, eval_ds = _datasets(cfg, strategy, data, initial_epoch, steps)
    _fit_or_interrupted(trainer, run_dir, dist_ds, steps, eval_ds, epochs=epochs,
                        initial_epoch=initial_epoch, base_lr=cfg.run.lr, lr_boundaries=boundaries,
                        verbose=cfg.verbose, on_epoch_end=_epoch_end_hook(
                            cfg, run_dir, state, strategy, history, epochs, chief))
    final_acc = history[-1].val_accuracy if history else trainer.evaluate(eval_ds)["accuracy"]
    return RunResult(run_dir, history, epochs, final_acc, weights_digest(model), model)
