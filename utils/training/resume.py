"""The whole training state of a run, saved with each checkpoint, for an exact ``--resume``.

A checkpoint of epoch ``E`` is one set (:func:`utils.fileio.write_set`): ``history.csv``
up to ``E``, ``state.EEE.index`` + ``state.EEE.data-00000-of-00001`` (one
``tf.train.Checkpoint``) and, renamed last to mark the set complete,
``model.EEE.weights.h5`` (what the attack scripts load). The ``tf.train.Checkpoint``
holds everything the rest of the run depends on:

- the model's weights, BN statistics and non-trained state (center-loss centers);
- the optimizer's variables, ``iterations`` included: adversarial training draws its
  random starts and targets from ``(seed, iterations)`` (``utils.training.advtrain``);
- ``epoch`` and ``seed``: the input pipeline's order and augmentation are a function of
  ``(seed, epoch)`` (``utils.data.pipeline``).

So a run killed at any point and resumed from its last checkpoint ends bit-identical
(on CPU) to one never interrupted. Runs saved before this had ``optimizer.EEE.npz``
instead; those are still read.

    checkpoint = TrainingState(model, optimizer, seed)
    epoch = checkpoint.restore(run_dir)              # after --resume
    checkpoint.save(run_dir, epoch, history_csv)     # at a checkpoint epoch
"""
from __future__ import annotations

import errno
import pathlib
import zipfile
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from utils.errors import UsageError
from utils.fileio import (Staged, Stager, file_item, finish_temp, remove_stale_temps,
                          temp_path, text_item, write_set)
from utils.models.weights import load_weights
from utils.runs import checkpoints as ckpt
from utils.runs.checkpoints import HISTORY_FILE, state_prefix


def tf_checkpoint_item(checkpoint: tf.train.Checkpoint, prefix: pathlib.Path) -> Stager:
    """A :func:`utils.fileio.write_set` member: ``checkpoint`` written under ``prefix``."""

    def stage() -> Staged:
        tmp = temp_path(prefix)
        try:
            checkpoint.write(str(tmp))
            staged = [(p, prefix.parent / (prefix.name + p.name[len(tmp.name):]))
                      for p in sorted(prefix.parent.glob(tmp.name + ".*"))]
            for path, _ in staged:
                finish_temp(path)
        except BaseException as exc:
            remove_stale_temps(prefix.parent)  # this writer's own, and any left before
            if isinstance(exc, tf.errors.OpError):  # TensorFlow's I/O errors are no OSError
                code = errno.ENOSPC if "space" in str(exc).lower() else errno.EIO
                raise OSError(code, str(exc).splitlines()[0][:200], str(prefix)) from None
            raise
        return staged

    return stage


class TrainingState:
    """The ``tf.train.Checkpoint`` of a run: model, optimizer, epoch and seed."""

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 seed: int) -> None:
        self.model, self.optimizer, self.seed = model, optimizer, int(seed)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.seed_var = tf.Variable(self.seed, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                              epoch=self.epoch, seed=self.seed_var)

    def save(self, run_dir: pathlib.Path, epoch: int, history_csv: str) -> None:
        """Write history, state and weights of ``epoch`` as one set (weights last)."""
        self.epoch.assign(epoch)
        weights = ckpt.checkpoint_path(run_dir, epoch)
        write_set([text_item(pathlib.Path(run_dir) / HISTORY_FILE, history_csv),
                   tf_checkpoint_item(self.checkpoint, state_prefix(run_dir, epoch)),
                   file_item(weights, self.model.save_weights, suffix=".weights.h5")])

    def restore(self, run_dir: pathlib.Path) -> int:
        """Load the last complete checkpoint of ``run_dir``; returns its epoch."""
        epoch = ckpt.latest_checkpoint(run_dir)
        if epoch is None:
            raise UsageError(f"--resume given but {run_dir} holds no model.NNN.weights.h5; "
                             "drop --resume to start from scratch")
        prefix = state_prefix(run_dir, epoch)
        if not pathlib.Path(f"{prefix}.index").exists():
            load_weights(self.model, ckpt.checkpoint_path(run_dir, epoch))
            restore_legacy_optimizer(ckpt.optimizer_state_path(run_dir, epoch), self.optimizer)
            return epoch
        try:
            self.checkpoint.read(str(prefix)).assert_consumed()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise UsageError(f"training state {prefix} does not fit this run or is truncated "
                             f"({str(exc).splitlines()[0][:120]}); resume with the flags it "
                             "was trained with, or delete that epoch's files") from None
        if int(self.seed_var.numpy()) != self.seed:
            raise UsageError(f"{run_dir} was trained with --seed={int(self.seed_var.numpy())}, "
                             f"not {self.seed}; resume with that seed")
        return int(self.epoch.numpy())


def restore_legacy_optimizer(state_path: pathlib.Path,
                             optimizer: keras.optimizers.Optimizer) -> None:
    """Assign ``optimizer.NNN.npz`` (written before ``state.NNN``) to a built optimizer."""
    try:
        with np.load(state_path, allow_pickle=False) as state:
            values = [state[k] for k in sorted(state.files)]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"optimizer state {state_path} is missing or truncated ({exc}); "
                         "delete that epoch's checkpoint or drop --resume") from None
    if len(values) != len(optimizer.variables):
        raise UsageError(f"optimizer state {state_path} does not match optimizer "
                         f"{type(optimizer).__name__}; resume with the same --optimizer")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)


def prepare_run_dir(run_dir: pathlib.Path) -> Optional[list]:
    """Remove temporaries a killed run left in ``run_dir`` (call before writing)."""
    return remove_stale_temps(run_dir)
