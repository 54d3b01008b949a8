"""tf.data input pipelines: shuffling, the original's augmentation, one-hot labels,
batching, and the ``tf.distribute`` variant fed through ``distribute_datasets_from_function``.

Augmentation mirrors the original Keras ``ImageDataGenerator(width_shift_range=0.1,
height_shift_range=0.1, fill_mode='nearest', horizontal_flip=True)``: per example a
uniform shift of up to 10 % of the side in each direction (bilinear, edge pixels
repeated) and a horizontal flip with probability 1/2. It uses stateless random ops
seeded per batch from ``tf.data.Dataset.random`` (re-drawn each epoch), so pipelines are
reproducible from ``shuffle_seed``, hold no variables and run on any device/strategy.
(Keras' ``RandomTranslation``/``RandomFlip`` also work in tf.data, but keep their state in
a variable, which is awkward under a strategy scope or with a GPU-placed variable.)

    data = load_dataset("fashion_mnist")
    train = make_train_dataset(data.x_train, data.y_train, global_batch_size=50, num_classes=10)
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from utils.errors import UsageError

SHIFT_FRACTION = 0.1  # the original's width_shift_range = height_shift_range


def check_batch_size(batch_size: int) -> None:
    """UsageError unless ``batch_size`` is an integer >= 1."""
    is_int = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
    if not is_int or batch_size < 1:
        raise UsageError(f"batch size must be an integer >= 1, got {batch_size!r}; "
                         "pass e.g. --batch_size=50")


def _check_inputs(x: np.ndarray, y: np.ndarray, global_batch_size: int,
                  num_classes: int) -> None:
    check_batch_size(global_batch_size)
    if num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    if np.ndim(x) != 4 or len(x) != len(y) or len(x) == 0:
        raise UsageError(f"expected images (N, H, W, C) and labels (N,) with N > 0, got "
                         f"shapes {np.shape(x)} and {np.shape(y)}")
    y = np.asarray(y)
    if y.min() < 0 or y.max() >= num_classes:
        raise UsageError(f"labels must be class indices in [0, {num_classes}), got range "
                         f"[{y.min()}, {y.max()}]; pass integer labels, not one-hot")


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Batches per epoch of :func:`make_train_dataset` (a last partial batch is dropped
    when at least one full batch exists)."""
    if num_examples >= global_batch_size:
        return num_examples // global_batch_size
    return 1


def augment_batch(images: tf.Tensor, seed: tf.Tensor,
                  shift_fraction: float = SHIFT_FRACTION, flip: bool = True) -> tf.Tensor:
    """Randomly shift and horizontally flip each image, as ``ImageDataGenerator``.

    Args:
      images: float32 (B, H, W, C), any pixel range (mean-subtracted inputs are fine;
        shifts repeat edge pixels, so no fill value enters the image).
      seed: int (2,) stateless seed; the same seed gives the same transforms.
      shift_fraction: largest shift as a fraction of the height/width (0.1 = 10 %).
      flip: whether to flip horizontally with probability 1/2.

    Returns:
      float32 (B, H, W, C), values within the range spanned by ``images``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    seed_dx, seed_dy, seed_flip = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3))
    dx = tf.random.stateless_uniform([batch], seed_dx, -shift_fraction, shift_fraction)
    dy = tf.random.stateless_uniform([batch], seed_dy, -shift_fraction, shift_fraction)
    dx *= tf.cast(width, tf.float32)
    dy *= tf.cast(height, tf.float32)
    ones, zeros = tf.ones([batch]), tf.zeros([batch])
    # Output pixel (x, y) reads input pixel (x - dx, y - dy): a translation by (dx, dy).
    transforms = tf.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.stack([height, width]),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")
    if flip:
        do_flip = tf.random.stateless_uniform([batch], seed_flip) < 0.5
        out = tf.where(do_flip[:, None, None, None], tf.reverse(out, axis=[2]), out)
    return tf.ensure_shape(out, images.shape)


def _epoch_pipeline(x: tf.Tensor, y: tf.Tensor, batch_size: int, num_classes: int,
                    augment: bool, seed: int, one_hot: bool, epoch: tf.Tensor,
                    steps: Optional[int] = None) -> tf.data.Dataset:
    """Epoch ``epoch`` (0-based) of the training data ``x`` (N, H, W, C), ``y`` (N,):
    shuffled, batched, augmented, a function of ``(seed, epoch)`` only, so a resumed run
    sees the very batches an uninterrupted one would. ``steps``: exactly this many
    batches (cycling the epoch's order when a shard has fewer)."""
    num_examples = int(x.shape[0])
    epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    # A stateless permutation: Dataset.shuffle cannot take a per-epoch seed tensor
    # once a global seed is set (keras.utils.set_random_seed).
    order = tf.argsort(tf.random.stateless_uniform([num_examples], epoch_seed))
    ds = tf.data.Dataset.from_tensor_slices(order)
    # Drop a last partial batch (constant shapes, and the loss scaling by the global
    # batch stays exact) unless there is no full batch at all. Deviation: the original's
    # fit_generator also trains on the partial batch; 60000 and 50000 divide by 50.
    ds = ds.batch(batch_size, drop_remainder=num_examples >= batch_size)
    if steps is not None:
        ds = ds.repeat().take(steps)

    def transform(index: tf.Tensor, rows: tf.Tensor):
        images, labels = tf.gather(x, rows), tf.gather(y, rows)
        if augment:
            batch_seed = tf.random.experimental.stateless_fold_in(epoch_seed, index)
            images = augment_batch(images, batch_seed)
        return images, _encode(labels, num_classes, one_hot)

    return ds.enumerate().map(transform, num_parallel_calls=tf.data.AUTOTUNE)


def _train_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, num_classes: int,
                    augment: bool, seed: int, one_hot: bool, *, first_epoch: int = 0,
                    repeat: bool = False, steps: Optional[int] = None) -> tf.data.Dataset:
    """Epoch ``first_epoch`` (or, with ``repeat``, epochs ``first_epoch, first_epoch+1,
    ...`` without end, ``steps`` batches each), prefetched."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    y = tf.convert_to_tensor(np.asarray(y))
    if not repeat:
        return _epoch_pipeline(x, y, batch_size, num_classes, augment, seed, one_hot,
                               first_epoch, steps).prefetch(tf.data.AUTOTUNE)
    epochs = tf.data.Dataset.range(int(first_epoch), np.iinfo(np.int64).max)
    ds = epochs.flat_map(lambda epoch: _epoch_pipeline(
        x, y, batch_size, num_classes, augment, seed, one_hot, epoch, steps))
    return ds.prefetch(tf.data.AUTOTUNE)


def _encode(labels: tf.Tensor, num_classes: int, one_hot: bool) -> tf.Tensor:
    if one_hot:
        return tf.one_hot(labels, num_classes, dtype=tf.float32)
    return tf.cast(labels, tf.int32)


def make_train_dataset(x: np.ndarray, y: np.ndarray, *, global_batch_size: int,
                       num_classes: int, augment: bool = True, shuffle_seed: int = 0,
                       one_hot: bool = True, epoch: int = 0) -> tf.data.Dataset:
    """Training pipeline over in-memory arrays: epoch ``epoch`` (0-based; each epoch
    shuffles and augments anew, every iteration over this dataset gives the same batches).

    Args:
      x: float32 (N, H, W, C) preprocessed images (``PreparedData.x_train``).
      y: int (N,) class indices in [0, num_classes).
      global_batch_size: examples per batch (>= 1); a last partial batch is dropped
        when N >= global_batch_size (see :func:`steps_per_epoch`).
      num_classes: number of classes (one-hot depth).
      augment: random shifts (10 %) and horizontal flips, as the original.
      shuffle_seed: seeds the shuffle and the augmentation; each epoch draws anew.
      one_hot: labels as float32 (B, num_classes) one-hot, else int32 (B,).
      epoch: which epoch's order and augmentation.

    Returns:
      Dataset of (float32 (B, H, W, C), labels) batches.

    Raises:
      UsageError: batch size < 1, mismatched shapes or labels out of range.
    """
    _check_inputs(x, y, global_batch_size, num_classes)
    return _train_pipeline(x, y, global_batch_size, num_classes, augment, shuffle_seed,
                           one_hot, first_epoch=epoch)


def make_eval_dataset(x: np.ndarray, y: np.ndarray, *, global_batch_size: int,
                      num_classes: int, one_hot: bool = True) -> tf.data.Dataset:
    """Evaluation pipeline: data order kept, no augmentation, last partial batch kept.

    Args and returns as :func:`make_train_dataset`.
    """
    _check_inputs(x, y, global_batch_size, num_classes)
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y)))
    ds = ds.batch(global_batch_size, drop_remainder=False)
    ds = ds.map(lambda images, labels: (images, _encode(labels, num_classes, one_hot)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_distributed_train_dataset(
        strategy: tf.distribute.Strategy, x: np.ndarray, y: np.ndarray, *,
        global_batch_size: int, num_classes: int, augment: bool = True,
        shuffle_seed: int = 0, one_hot: bool = True, repeat: bool = False,
        first_epoch: int = 0, steps: Optional[int] = None) -> tf.distribute.DistributedDataset:
    """:func:`make_train_dataset` for ``strategy``, via ``distribute_datasets_from_function``.

    With ``repeat`` epochs ``first_epoch, first_epoch + 1, ...`` follow each other without
    end (each reshuffled from ``(shuffle_seed, epoch)``; ``steps`` batches each when
    given), so a training loop can take exactly ``N // global_batch_size`` steps per epoch
    on every worker even when the shards differ in size (unequal step counts would
    deadlock the workers' collectives), and a resumed run starts at its epoch.

    Each input pipeline takes the shard ``input_pipeline_id`` of the data and batches
    ``global_batch_size // num_replicas_in_sync`` examples per replica; its shuffle and
    augmentation seeds are ``shuffle_seed + input_pipeline_id``.

    Raises:
      UsageError: as :func:`make_train_dataset`, or a global batch not divisible by the
        number of replicas.
    """
    _check_inputs(x, y, global_batch_size, num_classes)
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise UsageError(f"global batch size {global_batch_size} is not divisible by the "
                         f"{replicas} replicas; pass a multiple of {replicas}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(global_batch_size)
        pipelines, pipeline_id = context.num_input_pipelines, context.input_pipeline_id
        shard_size = len(range(pipeline_id, len(x), pipelines))
        if shard_size == 0:
            raise UsageError(f"{len(x)} examples cannot feed {pipelines} input pipelines; "
                             "use more data or fewer workers")
        return _train_pipeline(x[pipeline_id::pipelines], y[pipeline_id::pipelines],
                               per_replica, num_classes, augment, shuffle_seed + pipeline_id,
                               one_hot, first_epoch=first_epoch, repeat=repeat, steps=steps)

    return strategy.distribute_datasets_from_function(dataset_fn)
