"""build_trainer (issue 14): one wiring of model, optimizer, loss, adversary and Trainer;
and the first round's ``optimizer.NNN.npz`` still resumes bit-exactly."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from conftest import cluster_data
from utils.errors import UsageError
from utils.runs.model_config import ModelConfig
from utils.runs.advtrain_config import AdvTrainConfig
from utils.training.builder import TrainerConfig, build_trainer
from utils.training.resume import TrainingState

SHAPE, CLASSES, BATCH = (8, 8, 3), 4, 10
TINY = ModelConfig(version=1, n=1, loss="sce")


def _build(cfg=TrainerConfig(batch_size=BATCH), model=TINY):
    return build_trainer(tf.distribute.get_strategy(), model, SHAPE, CLASSES, cfg)


def _batches(n_steps):
    x, y = cluster_data(BATCH * n_steps, 0, shape=SHAPE, num_classes=CLASSES)
    y = np.eye(CLASSES, dtype=np.float32)[y]
    return iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH))


def _one(batch):
    """An iterator over just ``batch`` (what ``train_step`` takes)."""
    return iter(tf.data.Dataset.from_tensors(batch))


def _same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_build_trainer_wires_its_config():
    adv = AdvTrainConfig(attack_method="FastGradientMethod", adv_ratio=0.5)
    cfg = TrainerConfig(optimizer="Adam", lr=1e-3, batch_size=BATCH, advtrain=adv, seed=3,
                        nan_policy="skip_batch", steps_per_loop=2)
    trainer = _build(cfg, ModelConfig(version=1, n=1, loss="mmc"))
    assert trainer.adversary is not None and trainer.adv_ratio == 0.5
    assert (trainer.nan_policy, trainer.steps_per_loop, trainer.global_batch_size) == (
        "skip_batch", 2, BATCH)
    assert type(trainer.optimizer).__name__ == "Adam" and trainer.optimizer.built
    plain = _build()
    assert plain.adversary is None and type(plain.optimizer).__name__ == "SGD"
    _same_weights(plain.model, _build().model)  # the seed fixes the initial weights
    loss_sum, correct, count, skipped = (float(t) for t in plain.train_step(_batches(1)))
    assert (count, skipped, int(plain.optimizer.iterations)) == (BATCH, 0.0, 1)
    assert np.isfinite(loss_sum) and 0 <= correct <= BATCH


def _write_first_round_checkpoint(trainer, run_dir, epoch):
    """``model.EEE.weights.h5`` + ``optimizer.EEE.npz`` exactly as the first round's
    ``save_checkpoint`` wrote them (keys ``v0000..`` in ``optimizer.variables`` order)."""
    state = {f"v{i:04d}": np.asarray(v.numpy())
             for i, v in enumerate(trainer.optimizer.variables)}
    with open(run_dir / f"optimizer.{epoch:03d}.npz", "wb") as f:
        np.savez(f, **state)
    trainer.model.save_weights(str(run_dir / f"model.{epoch:03d}.weights.h5"))


def test_first_round_optimizer_npz_resumes_bit_exactly(tmp_path):
    batches = _batches(3)
    first = [next(batches) for _ in range(3)]
    whole = _build()
    for batch in first[:2]:
        whole.train_step(_one(batch))
    _write_first_round_checkpoint(whole, tmp_path, 1)  # killed here, resumed below
    whole.train_step(_one(first[2]))
    resumed = _build(TrainerConfig(batch_size=BATCH, seed=7))  # other initial weights
    assert TrainingState(resumed.model, resumed.optimizer, 7).restore(tmp_path) == 1
    assert int(resumed.optimizer.iterations) == 2  # momentum and step count came back
    resumed.train_step(_one(first[2]))
    _same_weights(whole.model, resumed.model)
    for a, b in zip(whole.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_first_round_npz_of_another_optimizer_or_truncated_is_refused(tmp_path):
    _write_first_round_checkpoint(_build(), tmp_path, 1)
    adam = _build(TrainerConfig(optimizer="Adam", lr=1e-3, batch_size=BATCH))
    with pytest.raises(UsageError, match="does not match optimizer Adam"):
        TrainingState(adam.model, adam.optimizer, 0).restore(tmp_path)
    path = tmp_path / "optimizer.001.npz"
    path.write_bytes(path.read_bytes()[:100])
    sgd = _build()
    with pytest.raises(UsageError, match="missing or truncated"):
        TrainingState(sgd.model, sgd.optimizer, 0).restore(tmp_path)
