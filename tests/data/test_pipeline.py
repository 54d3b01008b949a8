"""Tests of utils/data/pipeline.py (via utils.data): tf.data batches, augmentation, the
distributed split and the resumable repeating pipeline."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from utils import data as D
from utils.errors import UsageError

N_TRAIN = 20
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ------------------------------------------------------------------ tf.data

@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN, 32, 32, 3)).astype(np.float32)
    return x, (np.arange(N_TRAIN) % 10).astype(np.int32)


def test_train_batches_shapes_and_one_hot(arrays):
    x, y = arrays
    ds = D.make_train_dataset(x, y, global_batch_size=8, num_classes=10)
    batches = list(ds)
    assert len(batches) == D.steps_per_epoch(N_TRAIN, 8) == 2  # partial batch dropped
    for images, labels in batches:
        assert images.shape == (8, 32, 32, 3) and images.dtype == tf.float32
        assert labels.shape == (8, 10) and np.all(tf.reduce_sum(labels, axis=1) == 1)
        assert np.all(np.isfinite(images))
    small = list(D.make_train_dataset(x, y, global_batch_size=32, num_classes=10))
    assert [b[0].shape[0] for b in small] == [N_TRAIN]  # no full batch: keep the partial one
    assert D.steps_per_epoch(N_TRAIN, 32) == 1


def test_train_without_augment_is_a_shuffle(arrays):
    x, y = arrays
    ds = D.make_train_dataset(x, y, global_batch_size=N_TRAIN, num_classes=10,
                              augment=False, one_hot=False)
    (images, labels), = list(ds)
    assert labels.dtype == tf.int32 and labels.shape == (N_TRAIN,)
    rows = [int(np.flatnonzero(np.all(x == image, axis=(1, 2, 3)))[0]) for image in images]
    assert sorted(rows) == list(range(N_TRAIN)) and rows != list(range(N_TRAIN))  # shuffled
    np.testing.assert_array_equal(y[rows], labels.numpy())  # pairs kept


def test_augmentation_changes_images_and_is_seeded(arrays):
    x, y = arrays

    def epoch(seed):
        ds = D.make_train_dataset(x, y, global_batch_size=N_TRAIN, num_classes=10,
                                  shuffle_seed=seed, one_hot=False)
        return [(a.numpy(), b.numpy()) for a, b in ds]
    first = epoch(3)
    images = first[0][0]
    assert np.all(np.isfinite(images))
    assert images.min() >= x.min() - 1e-5 and images.max() <= x.max() + 1e-5
    assert not any(np.array_equal(image, original) for image in images for original in x)
    np.testing.assert_array_equal(first[0][0], epoch(3)[0][0])  # rebuilt: same draws
    a, b = (next(iter(D.make_train_dataset(x, y, global_batch_size=N_TRAIN, num_classes=10,
                                           epoch=e)))[0].numpy() for e in range(2))
    assert not np.array_equal(a, b)  # each epoch draws anew


def test_augment_batch_flip_and_shift_semantics():
    width = 20
    ramp = np.tile(np.arange(width, dtype=np.float32), (width, 1))  # value = column
    images = np.repeat(ramp[None, :, :, None], 64, axis=0)
    flipped = D.augment_batch(images, tf.constant([1, 2]), shift_fraction=0.0).numpy()
    is_flip = np.all(flipped == images[:, :, ::-1], axis=(1, 2, 3))
    is_same = np.all(flipped == images, axis=(1, 2, 3))
    assert np.all(is_flip | is_same) and 10 < is_flip.sum() < 54
    shifted = D.augment_batch(images, tf.constant([3, 4]), flip=False).numpy()
    # A linear ramp is reproduced exactly by bilinear sampling, clamped at the edges:
    # every pixel moves by the example's horizontal shift, at most 10 % of the width.
    moved = shifted - images
    assert np.abs(moved).max() <= D.SHIFT_FRACTION * width + 1e-4
    assert np.abs(moved).max() > 0.5
    assert shifted.min() >= 0 and shifted.max() <= width - 1


def test_eval_dataset_keeps_order_and_last_batch(arrays):
    x, y = arrays
    batches = list(D.make_eval_dataset(x, y, global_batch_size=8, num_classes=10))
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.argmax(np.concatenate([b[1] for b in batches]), 1), y)


@pytest.mark.parametrize("make", [D.make_train_dataset, D.make_eval_dataset])
def test_bad_pipeline_arguments(make, arrays):
    x, y = arrays
    for batch in (0, -1, 2.5):
        with pytest.raises(UsageError, match="batch size"):
            make(x, y, global_batch_size=batch, num_classes=10)
    with pytest.raises(UsageError, match="class indices"):
        make(x, y + 5, global_batch_size=4, num_classes=10)
    with pytest.raises(UsageError):
        make(x, y[:3], global_batch_size=4, num_classes=10)


@pytest.mark.parametrize("strategy", [
    lambda: tf.distribute.OneDeviceStrategy("/cpu:0"),
    lambda: tf.distribute.MirroredStrategy(["/cpu:0"]),
], ids=["one_device", "mirrored"])
def test_distributed_train_dataset(strategy, arrays):
    strategy = strategy()
    x, y = arrays
    dist = D.make_distributed_train_dataset(strategy, x, y, global_batch_size=8,
                                            num_classes=10)
    batches = []
    for images, labels in dist:
        images = strategy.experimental_local_results(images)[0]
        labels = strategy.experimental_local_results(labels)[0]
        batches.append((images.shape, labels.shape))
    assert batches == [((8, 32, 32, 3), (8, 10))] * 2


@pytest.mark.slow
def test_distributed_split_over_two_replicas():
    """Two logical CPUs need a fresh TF runtime, hence the subprocess."""
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from utils import data as D
        from utils.errors import UsageError
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        x = np.zeros((20, 8, 8, 3), np.float32); y = np.arange(20) % 10
        dist = D.make_distributed_train_dataset(strategy, x, y, global_batch_size=8,
                                                num_classes=10)
        images, labels = next(iter(dist))
        print("SHAPES", [tuple(t.shape) for t in strategy.experimental_local_results(images)])
        try:
            D.make_distributed_train_dataset(strategy, x, y, global_batch_size=7, num_classes=10)
        except UsageError as err:
            print("ERROR", err)
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert "SHAPES [(4, 8, 8, 3), (4, 8, 8, 3)]" in out.stdout, out.stderr[-2000:]
    assert "ERROR global batch size 7 is not divisible by the 2 replicas" in out.stdout


def test_repeating_pipeline_resumed_at_an_epoch_gives_the_same_batches(arrays):
    """Exact --resume: epoch e's batches depend on (seed, epoch) only, not on how many
    epochs this iterator has produced before."""
    x, y = arrays
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")

    def batches(first_epoch, count):
        dist = D.make_distributed_train_dataset(strategy, x, y, global_batch_size=8,
                                                num_classes=10, shuffle_seed=5, repeat=True,
                                                first_epoch=first_epoch, steps=2)
        iterator = iter(dist)
        return [next(iterator)[0].numpy() for _ in range(count)]

    uninterrupted, resumed = batches(0, 6), batches(2, 2)
    for a, b in zip(uninterrupted[4:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(uninterrupted[0], uninterrupted[2])  # epochs differ
