"""A custom training loop that runs under every ``tf.distribute`` strategy.

Keras 3's ``Model.fit`` does not accept ``MultiWorkerMirroredStrategy`` datasets, so the
loop follows the SimCLR-TF2 skeleton: per-replica step inside ``strategy.run``, losses
scaled by the global batch, a ``tf.function`` step, a Keras progress bar.

    trainer = Trainer(strategy, model, loss_function("mmc"), optimizer, 50)
    # or, model and optimizer built too: utils.training.builder.build_trainer(...)
    history = trainer.fit(dist_dataset, steps_per_epoch, eval_dataset, schedule, hooks)
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from utils.training.advtrain import Adversary
from utils.models.classifier import feature_model, head_layer
from utils.errors import NonFiniteError, UsageError
from utils.losses import LossFn
from utils.registry import Registry

# What a step whose loss or gradients are NaN/inf does: its update is never applied; then
# "stop" ends the run (NonFiniteError), "skip_batch" goes on with the next batch.
NAN_POLICIES = ("stop", "skip_batch")
OPTIMIZERS: Registry[Callable[[float], keras.optimizers.Optimizer]] = Registry("optimizer")


@OPTIMIZERS.register("mom")
def momentum_sgd(lr: float) -> keras.optimizers.Optimizer:
    """SGD with momentum 0.9 (the original's ``mom``)."""
    return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)


@OPTIMIZERS.register("Adam")
def adam(lr: float) -> keras.optimizers.Optimizer:
    """Adam with Keras defaults (the original's ``Adam``)."""
    return keras.optimizers.Adam(learning_rate=lr)


def make_optimizer(name: str, lr: float, mixed_float16: bool = False) -> keras.optimizers.Optimizer:
    """Optimizer by the original's name, wrapped for loss scaling under float16."""
    optimizer = OPTIMIZERS.get(name)(lr)
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed_float16 else optimizer


def learning_rate(epoch: int, base_lr: float, boundaries: Sequence[int]) -> float:
    """The original's step schedule; ``epoch`` is 0-based as Keras passes it.

    ``base_lr`` until ``boundaries[0]``, then x0.1, after ``boundaries[1]`` x0.01
    (CIFAR: 100/150, MNIST-like: 30/40).
    """
    lr = base_lr
    for boundary in boundaries:
        if epoch > boundary:
            lr *= 0.1
    return lr


@dataclasses.dataclass
class EpochLog:
    """One row of ``history.csv``."""

    epoch: int
    lr: float
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


class Trainer:
    """Holds the compiled train and eval steps of one model under one strategy.

    Args:
        strategy: the ``tf.distribute`` strategy the model was built under.
        model: classifier ``x -> logits``, built in ``strategy.scope()``.
        loss_fn: per-example loss ``(y_onehot, logits) -> (batch,)``, or a
            :class:`utils.losses.BoundLoss` (``utils.models.classifier.training_loss``): one that
            reads the features gets ``features=`` from the same forward pass (the model
            run as ``head(backbone(x))``), and its ``after_step`` runs after each update.
        optimizer: built in ``strategy.scope()``.
        global_batch_size: examples per step over all replicas (losses are averaged
            over it, the L2 penalty divided by the replica count).
        adversary: adversarial training (:func:`utils.training.advtrain.make_adversary`): each
            replica crafts ``x_adv`` from its shard and the current weights, and the loss
            is ``(1 - adv_ratio) L(x) + adv_ratio L(x_adv)`` as the original
            ``advtrain.py`` (``adv_ratio = 1``: adversarial examples only; the reported
            training accuracy is then on ``x_adv``).
        adv_ratio: see ``adversary``; in ``[0, 1]``.
        nan_policy: one of :data:`NAN_POLICIES`.
        steps_per_loop: training steps per ``tf.function`` call (a ``tf.while_loop``);
            loss/accuracy sums stay on the device, one host sync per call; the last call
            of an epoch runs the remaining steps. Weights do not depend on it.
        jit_compile: XLA-compile the per-replica step (forward, backward, update).

    ``position`` is ``(epoch, step)`` (1-based) of the step running or last run (with
    ``steps_per_loop > 1``: the last step of the running loop).
    """

    def __init__(self, strategy: tf.distribute.Strategy, model: keras.Model, loss_fn: LossFn,
                 optimizer: keras.optimizers.Optimizer, global_batch_size: int,
                 adversary: Optional[Adversary] = None, adv_ratio: float = 1.0,
                 nan_policy: str = "stop", steps_per_loop: int = 1,
                 jit_compile: bool = False) -> None:
        # One device: a non-finite update is skipped in the graph (tf.cond). Mirrored and
        # multi-worker: apply_gradients cannot sit in a cond inside the replica function
        # (it is a synchronisation point), so the run stops after such a step, before any
        # checkpoint; skipping needs one device.
        self._skip_in_graph = (isinstance(strategy, tf.distribute.OneDeviceStrategy)
                               or strategy is tf.distribute.get_strategy())
        if nan_policy == "skip_batch" and not self._skip_in_graph:
            raise UsageError("--nan_policy=skip_batch needs --strategy=one_device; or use "
                             "--nan_policy=stop")
        self.nan_policy = nan_policy
        self._scales_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        self.position = (0, 0)
        self.strategy = strategy
        self.model = model
        self.loss_fn = loss_fn
        self._needs_features = bool(getattr(loss_fn, "needs_features", False))
        self._after_step = getattr(loss_fn, "after_step", None)
        self.optimizer = optimizer
        self.global_batch_size = int(global_batch_size)
        self.adversary = adversary
        self.adv_ratio = float(adv_ratio)
        self.steps_per_loop = int(steps_per_loop)
        # As Keras: XLA on the replica step only (the iterator's ops do not compile).
        self._replica_fn = (tf.function(self._replica_step, jit_compile=True)
                            if jit_compile else self._replica_step)
        self._train_step = tf.function(self._distributed_step)
        self._train_loop = tf.function(self._distributed_loop)
        self._eval_step = tf.function(self._eval_batch)

    def _replica_step(self, x: tf.Tensor, y: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        variables = self.model.trainable_variables
        # BN statistics change in the forward pass: kept to undo a skipped step's update.
        before = ([tf.identity(v) for v in self.model.non_trainable_variables]
                  if self._skip_in_graph else [])
        x_adv = (self.adversary(x, y, self.optimizer.iterations)
                 if self.adversary is not None else None)
        with tf.GradientTape() as tape:
            if x_adv is None:
                per_example, logits, features = self._forward_loss(x, y)
            else:
                per_example, logits, features = self._forward_loss(x_adv, y)
                per_example = self.adv_ratio * per_example
                if self.adv_ratio < 1.0:
                    per_example += (1.0 - self.adv_ratio) * self._forward_loss(x, y)[0]
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(
                    tf.add_n([tf.cast(reg, tf.float32) for reg in self.model.losses]))
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        # A non-finite loss or gradient: the update is skipped (one replica) or the run
        # stops after it (several; the flag is summed over replicas by _distributed_step).
        # (A LossScaleOptimizer handles its own non-finite gradients: only the loss here.)
        checked = [loss] if self._scales_loss else [loss] + [g for g in grads if g is not None]
        bad = tf.add_n([tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(t)), tf.float32))
                        for t in checked])

        def update() -> tf.Tensor:
            self.optimizer.apply_gradients(zip(grads, variables))
            if self._after_step is not None:  # e.g. the center loss' center update
                self._after_step(y, features)
            return tf.constant(0.0)

        def skip() -> tf.Tensor:
            for var, value in zip(self.model.non_trainable_variables, before):
                var.assign(value)
            return tf.constant(1.0)

        if self._skip_in_graph:
            skipped = tf.cond(bad > 0, skip, update)
        else:
            update()
            skipped = tf.cast(bad > 0, tf.float32)
        correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(logits, -1), tf.argmax(y, -1)), tf.float32))
        count = tf.cast(tf.shape(y)[0], tf.float32)
        keep = 1.0 - skipped
        return keep * tf.reduce_sum(per_example), keep * correct, keep * count, skipped

    def _forward_loss(self, x: tf.Tensor, y: tf.Tensor, training: bool = True
                      ) -> Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]:
        """``(per-example loss, logits, features)`` of one forward pass; ``features`` is
        None unless the loss reads them."""
        if not self._needs_features:
            logits = self.model(x, training=training)
            return self.loss_fn(y, logits), logits, None
        features = feature_model(self.model)(x, training=training)
        logits = head_layer(self.model)(features, training=training)
        return self.loss_fn(y, logits, features=features), logits, features

    def _distributed_step(self, iterator: tf.data.Iterator) -> Tuple[tf.Tensor, ...]:
        x, y = next(iterator)
        sums = self.strategy.run(self._replica_fn, args=(x, y))
        return tuple(self.strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None) for s in sums)

    def _distributed_loop(self, iterator: tf.data.Iterator, steps: tf.Tensor
                          ) -> Tuple[tf.Tensor, ...]:
        """Up to ``steps`` training steps in one graph: ``(loss sum, correct, count)`` of the
        applied steps (float64), the number of non-finite steps and the 0-based index of
        the first (-1: none). Under ``nan_policy="stop"`` the loop ends after that step."""
        stop_on_bad = self.nan_policy == "stop"

        def cond(i, sums, bad_count, first_bad):
            more = i < steps
            return tf.logical_and(more, first_bad < 0) if stop_on_bad else more

        def body(i, sums, bad_count, first_bad):
            *step_sums, skipped = self._distributed_step(iterator)
            bad = skipped > 0
            first_bad = tf.where(tf.logical_and(bad, first_bad < 0), i, first_bad)
            sums = [a + tf.cast(b, tf.float64) for a, b in zip(sums, step_sums)]
            return i + 1, sums, bad_count + tf.cast(bad, tf.int32), first_bad

        zero = tf.constant(0.0, tf.float64)
        _, sums, bad_count, first_bad = tf.while_loop(
            cond, body, (tf.constant(0), [zero, zero, zero], tf.constant(0), tf.constant(-1)),
            parallel_iterations=1)
        return (*sums, bad_count, first_bad)

    def train_step(self, iterator: tf.data.Iterator) -> Tuple[tf.Tensor, ...]:
        """One compiled training step on the next batch of a distributed ``iterator``:
        ``(loss sum, correct, count, skipped)`` summed over replicas (float32 scalars).

        The step :meth:`fit` runs, without its bookkeeping: a non-finite step is counted
        in ``skipped`` (on one device its update is not applied), never raised.
        """
        return self._train_step(iterator)

    def _eval_batch(self, x: tf.Tensor, y: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        per_example, logits, _ = self._forward_loss(x, y, training=False)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(y, -1)),
                                        tf.float32))
        return tf.reduce_sum(per_example), correct

    def evaluate(self, dataset: tf.data.Dataset) -> Dict[str, float]:
        """Mean loss and accuracy over a (non-distributed) dataset of ``(x, y_onehot)``."""
        loss_sum, correct, count = 0.0, 0.0, 0
        for x, y in dataset:
            batch_loss, batch_correct = self._eval_step(x, y)
            loss_sum += float(batch_loss)
            correct += float(batch_correct)
            count += int(x.shape[0])
        if count == 0:
            raise UsageError("the evaluation set is empty; check --test_size")
        return {"loss": loss_sum / count, "accuracy": correct / count}

    def _run_epoch(self, iterator, epoch: int, steps: int, bar: keras.utils.Progbar) -> np.ndarray:
        """``steps`` training steps, ``steps_per_loop`` per call; ``(loss sum, correct,
        count)`` over the applied ones."""
        totals, skipped, done = np.zeros(3), 0, 0
        while done < steps:
            k = min(self.steps_per_loop, steps - done)
            self.position = (epoch, done + k)
            *sums, bad, first_bad = (t.numpy() for t in self._train_loop(iterator, tf.constant(k)))
            if bad and self.nan_policy == "stop":
                self.position = (epoch, done + int(first_bad) + 1)
                raise NonFiniteError(
                    f"non-finite loss or gradient at epoch {epoch} step {self.position[1]}; "
                    "stopped (no checkpoint of it written); lower --lr or pass "
                    "--nan_policy=skip_batch")
            skipped, done = skipped + int(bad), done + k
            totals += np.array(sums, dtype=np.float64)
            if totals[2]:
                bar.update(done, [("loss", totals[0] / totals[2]),
                                  ("accuracy", totals[1] / totals[2])])
        if skipped == steps:
            raise NonFiniteError(f"every batch of epoch {epoch} had a non-finite loss or "
                                 "gradient (all skipped); lower --lr")
        if skipped:
            print(f"  skipped {skipped} of {steps} batches with a non-finite loss or gradient "
                  "(--nan_policy=skip_batch)", flush=True)
        return totals

    def fit(self, dist_dataset: tf.distribute.DistributedDataset, steps_per_epoch: int,
            eval_dataset: Optional[tf.data.Dataset], *, epochs: int, initial_epoch: int,
            base_lr: float, lr_boundaries: Sequence[int], verbose: int = 1,
            on_epoch_end: Optional[Callable[[EpochLog], None]] = None) -> List[EpochLog]:
        """Train epochs ``initial_epoch+1 .. epochs`` (1-based, as checkpoint names).

        ``dist_dataset`` must repeat without end; each epoch takes ``steps_per_epoch``.

        ``on_epoch_end`` runs on every worker after each epoch (checkpointing, logs).
        """
        history: List[EpochLog] = []
        iterator = iter(dist_dataset)
        for epoch in range(initial_epoch, epochs):
            lr = learning_rate(epoch, base_lr, lr_boundaries)
            self.optimizer.learning_rate.assign(lr)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs} (lr {lr:g})", flush=True)
            bar = keras.utils.Progbar(steps_per_epoch, verbose=verbose,
                                      stateful_metrics=["loss", "accuracy"])
            start = time.time()
            totals = self._run_epoch(iterator, epoch + 1, steps_per_epoch, bar)
            val = self.evaluate(eval_dataset) if eval_dataset is not None else {
                "loss": float("nan"), "accuracy": float("nan")}
            log = EpochLog(epoch + 1, lr, totals[0] / totals[2], totals[1] / totals[2],
                           val["loss"], val["accuracy"], time.time() - start)
            if verbose:
                print(f"  val_loss {log.val_loss:.4f} - val_accuracy {log.val_accuracy:.4f}"
                      f" - {log.seconds:.1f}s", flush=True)
            history.append(log)
            if on_epoch_end is not None:
                on_epoch_end(log)
        return history
