"""One training run, end to end, from plain arguments (what ``train_models.py`` calls).

Loads data, builds the model and optimizer inside ``strategy.scope()``, resumes if
asked, trains with :class:`utils.training.loop.Trainer`, and writes into the run directory:
``flags.json``, ``arch.json``, ``versions.json``, ``history.csv``, ``logs/`` (TensorBoard)
and ``model.{epoch:03d}.weights.h5`` (+ ``optimizer.{epoch:03d}.npz``) every
``checkpoint_every`` epochs and at the last epoch.

    result = train(RunConfig(dataset="fashion_mnist", model=ModelConfig(version=1, n=1),
                             epochs=1, train_size=2000))
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import pathlib
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

import ts_centers
from utils.training import checkpoints as ckpt
from utils.training.advtrain import AdvTrainConfig, make_adversary
from utils.training.runspec import RunSpec
from utils.models.classifier import (ModelConfig, architecture_fingerprint, build_classifier,
                              check_model_config, training_loss)
from utils.data import (load_dataset, make_distributed_train_dataset, make_eval_dataset,
                        steps_per_epoch)
from utils.training.distribute import is_chief, make_strategy, sync_non_trainable
from utils.errors import UsageError
from utils.results import package_versions
from utils.training.loop import OPTIMIZERS, EpochLog, Trainer, make_optimizer

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
    """Plain arguments of one training run (see ``train_models.py --help``)."""

    dataset: str = "mnist"
    model: ModelConfig = ModelConfig()
    optimizer: str = "mom"
    lr: float = 0.01
    batch_size: int = 50
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
    advtrain: Optional[AdvTrainConfig] = None
    flags: Dict[str, Any] = dataclasses.field(default_factory=dict)


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
    import hashlib
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def validate(cfg: RunConfig) -> None:
    """One-line UsageErrors for impossible values, before anything is written."""
    checks = [
        (cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}"),
        (cfg.lr > 0, f"lr must be > 0, got {cfg.lr}"),
        (cfg.model.c_mm > 0 and np.isfinite(cfg.model.c_mm),
         f"mean_var must be > 0, got {cfg.model.c_mm}"),
        (cfg.model.feature_dim is None or cfg.model.feature_dim >= 1,
         f"feature_dim must be >= 1, got {cfg.model.feature_dim}"),
        (cfg.epochs is None or cfg.epochs >= 1, f"epochs must be >= 1, got {cfg.epochs}"),
        (cfg.checkpoint_every >= 1,
         f"checkpoint_every must be >= 1, got {cfg.checkpoint_every}"),
        (cfg.mixed_precision in MIXED_PRECISION,
         f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
         f"got {cfg.mixed_precision!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    check_model_config(cfg.model)
    OPTIMIZERS.get(cfg.optimizer)
    if cfg.advtrain is not None:
        cfg.advtrain.validate()


def run_spec(cfg: RunConfig) -> RunSpec:
    """The :class:`utils.training.runspec.RunSpec` (the run's identity) of ``cfg``."""
    return RunSpec(cfg.dataset, cfg.model, cfg.optimizer, cfg.lr, cfg.batch_size, cfg.advtrain)


def run_directory(cfg: RunConfig) -> pathlib.Path:
    """Where run ``cfg`` writes (:meth:`utils.training.runspec.RunSpec.directory`)."""
    return run_spec(cfg).directory(cfg.model_dir)


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


def save_checkpoint(run_dir: pathlib.Path, epoch: int, model: keras.Model,
                    optimizer: keras.optimizers.Optimizer) -> None:
    """Optimizer state first, then the weights file that marks the checkpoint complete."""
    state = {f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    ckpt.atomic_write(ckpt.optimizer_state_path(run_dir, epoch),
                      lambda tmp: np.savez(open(tmp, "wb"), **state))
    ckpt.atomic_write(ckpt.checkpoint_path(run_dir, epoch), model.save_weights,
                      suffix=".weights.h5")


def load_weights(model: keras.Model, path: pathlib.Path) -> None:
    """``model.load_weights`` with a one-line UsageError for missing/foreign/broken files."""
    if not path.exists():
        raise UsageError(f"checkpoint {path} does not exist; train it first or check the flags")
    try:
        # Keras only *warns* when parts of a file do not match ("Skipping nested
        # container ... retain their freshly-initialized weights"): that would evaluate a
        # half-random model, so any warning while loading is an error here.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/OSError/KeyError variants
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot load {path} into this model ({first[:160]}); it was written by another "
            "architecture or is truncated: use the flags it was trained with or retrain"
        ) from None


def restore(run_dir: pathlib.Path, model: keras.Model,
            optimizer: keras.optimizers.Optimizer) -> int:
    """Load the last checkpoint and optimizer state; returns its epoch."""
    epoch = ckpt.latest_checkpoint(run_dir)
    if epoch is None:
        raise UsageError(f"--resume given but {run_dir} holds no model.NNN.weights.h5; "
                         "drop --resume to start from scratch")
    load_weights(model, ckpt.checkpoint_path(run_dir, epoch))
    optimizer.build(model.trainable_variables)
    state_path = ckpt.optimizer_state_path(run_dir, epoch)
    try:
        with np.load(state_path, allow_pickle=False) as state:
            values = [state[k] for k in sorted(state.files)]
    except (OSError, ValueError) as exc:
        raise UsageError(f"optimizer state {state_path} is missing or truncated ({exc}); "
                         "delete that epoch's checkpoint or drop --resume") from None
    if len(values) != len(optimizer.variables):
        raise UsageError(f"optimizer state {state_path} does not match optimizer "
                         f"{type(optimizer).__name__}; resume with the same --optimizer")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)
    return epoch


def train(cfg: RunConfig) -> RunResult:
    """Run one training job; see the module docstring for what is written."""
    validate(cfg)
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = make_strategy(cfg.strategy)
    epochs, boundaries = DEFAULT_SCHEDULES.get(cfg.dataset, (50, (30, 40)))
    epochs = cfg.epochs or epochs
    boundaries = tuple(cfg.lr_boundaries or boundaries)
    data = load_dataset(cfg.dataset, cfg.data_dir, train_size=cfg.train_size,
                        test_size=cfg.test_size, seed=cfg.seed)
    if len(data.x_train) < cfg.batch_size:
        raise UsageError(f"only {len(data.x_train)} training examples for batch_size "
                         f"{cfg.batch_size}; raise --train_size or lower --batch_size")
    if cfg.model.centers == "hierarchical":
        ts_centers.check_coarse_labels(data.y_train, data.coarse_train, data.num_classes,
                                       cfg.dataset)
    run_dir = run_directory(cfg)
    fingerprint = architecture_fingerprint(cfg.model, data.input_shape, data.num_classes)
    ckpt.check_architecture(run_dir, fingerprint)
    chief = is_chief()
    if cfg.mixed_precision != "off":
        keras.mixed_precision.set_global_policy(cfg.mixed_precision)
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        model = build_classifier(cfg.model, data.input_shape, data.num_classes)
        optimizer = make_optimizer(cfg.optimizer, cfg.lr, cfg.mixed_precision == "mixed_float16")
        optimizer.build(model.trainable_variables)
        initial_epoch = restore(run_dir, model, optimizer) if cfg.resume else 0
    if chief:  # first write: only after every check and the model build passed
        ckpt.ensure_writable_dir(run_dir)
    if cfg.verbose:
        print(f"{model.name}: {model.count_params():,} parameters, {strategy.num_replicas_in_sync}"
              f" replica(s), run dir {run_dir}", flush=True)
    if chief:
        ckpt.atomic_write_text(run_dir / ckpt.ARCH_FILE, json.dumps(fingerprint, indent=1))
        ckpt.atomic_write_text(run_dir / "flags.json", json.dumps(cfg.flags or {}, indent=1))
        ckpt.atomic_write_text(run_dir / "run.json", json.dumps(run_spec(cfg).to_dict(), indent=1))
        ckpt.atomic_write_text(run_dir / "versions.json", json.dumps(package_versions(), indent=1))
    history = _read_history(run_dir / "history.csv", initial_epoch) if cfg.resume else []
    writer = tf.summary.create_file_writer(str(run_dir / "logs")) if chief else None

    def on_epoch_end(log: EpochLog) -> None:
        sync_non_trainable(strategy, model.non_trainable_variables)
        history.append(log)
        if not chief:
            return
        with writer.as_default(step=log.epoch):
            for key in ("lr", "loss", "accuracy", "val_loss", "val_accuracy"):
                tf.summary.scalar(key, getattr(log, key))
        ckpt.atomic_write_text(run_dir / "history.csv", _history_csv(history))
        if log.epoch % cfg.checkpoint_every == 0 or log.epoch == epochs:
            save_checkpoint(run_dir, log.epoch, model, optimizer)

    with strategy.scope():
        dist_ds = make_distributed_train_dataset(
            strategy, data.x_train, data.y_train, global_batch_size=cfg.batch_size,
            num_classes=data.num_classes, augment=cfg.augment, shuffle_seed=cfg.seed,
            repeat=True)
    eval_ds = make_eval_dataset(data.x_test, data.y_test,
                                global_batch_size=max(cfg.batch_size, 100),
                                num_classes=data.num_classes)
    adversary = None
    if cfg.advtrain is not None:
        adversary = make_adversary(model, cfg.model.loss, cfg.advtrain, clip_min=data.clip_min,
                                   clip_max=data.clip_max, seed=cfg.seed)
    trainer = Trainer(strategy, model, training_loss(cfg.model, model), optimizer,
                      cfg.batch_size, adversary=adversary,
                      adv_ratio=cfg.advtrain.adv_ratio if cfg.advtrain is not None else 1.0)
    steps = steps_per_epoch(len(data.x_train), cfg.batch_size)
    trainer.fit(dist_ds, steps, eval_ds, epochs=epochs,
                initial_epoch=initial_epoch, base_lr=cfg.lr, lr_boundaries=boundaries,
                verbose=cfg.verbose, on_epoch_end=on_epoch_end)
    if writer is not None:
        writer.flush()
    final_acc = history[-1].val_accuracy if history else trainer.evaluate(eval_ds)["accuracy"]
    return RunResult(run_dir, history, epochs, final_acc, weights_digest(model), model)
