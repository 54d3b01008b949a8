"""Choosing a ``tf.distribute`` strategy and keeping replicas consistent.

    strategy = make_strategy("auto")
    with strategy.scope(): model = build_classifier(...)
"""
from __future__ import annotations

import json
import os
from typing import Iterable

import tensorflow as tf

from utils.errors import UsageError

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """A strategy by name.

    ``auto``: ``multi_worker`` if ``TF_CONFIG`` names a cluster, ``mirrored`` with two or
    more GPUs, else ``one_device`` on the first GPU or the CPU. ``mirrored`` on a CPU-only
    machine runs one replica. ``multi_worker`` needs ``TF_CONFIG``.
    """
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    # Physical, not logical, devices: listing logical ones starts the TF context, after
    # which MultiWorkerMirroredStrategy can no longer configure its collectives.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multi_worker"
        elif len(gpus) >= 2:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not os.environ.get("TF_CONFIG"):
        raise UsageError(
            "strategy multi_worker needs TF_CONFIG (cluster and task) in the environment; "
            "set it on every worker or use --strategy=mirrored"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief() -> bool:
    """True on the worker that writes files (worker 0, a chief task, or no cluster)."""
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        return True
    config = json.loads(tf_config)
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    return kind == "chief" or (kind == "worker" and index == 0 and
                               "chief" not in config.get("cluster", {}))


def sync_non_trainable(strategy: tf.distribute.Strategy, variables: Iterable[tf.Variable]) -> None:
    """Average non-trainable state (BatchNorm moving statistics) over all replicas.

    Each replica updates its moving statistics from its own shard of the batch, so the
    copies drift apart; averaging them at epoch ends makes every worker save the same
    weights. Must be called on every worker (it is a collective).
    """
    variables = [v for v in variables]
    if not variables or strategy.num_replicas_in_sync == 1:
        return
    local = strategy.run(lambda: [tf.identity(v) for v in variables])
    for var, value in zip(variables, local):
        var.assign(strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None))
