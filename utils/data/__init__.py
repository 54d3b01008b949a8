"""Data access in one import: local dataset loading (:mod:`utils.data.sources`) and tf.data
pipelines (:mod:`utils.data.pipeline`); see those modules for details.

    data = load_dataset("fashion_mnist", data_dir=None, train_size=1000)
    train = make_train_dataset(data.x_train, data.y_train, global_batch_size=50,
                               num_classes=data.num_classes)
"""
from utils.data.sources import (  # noqa: F401
    DATASETS,
    DatasetSource,
    PreparedData,
    RawDataset,
    find_data_dir,
    keras_datasets_dir,
    load_dataset,
    load_raw_dataset,
    prepare,
    register_dataset,
)
from utils.data import formats  # noqa: F401,E402  (registers the dataset loaders)
from utils.data.pipeline import (  # noqa: F401
    SHIFT_FRACTION,
    augment_batch,
    check_batch_size,
    make_distributed_train_dataset,
    make_eval_dataset,
    make_train_dataset,
    steps_per_epoch,
)

__all__ = [
    "DATASETS", "DatasetSource", "PreparedData", "RawDataset", "find_data_dir",
    "keras_datasets_dir", "load_dataset", "load_raw_dataset", "prepare", "register_dataset",
    "SHIFT_FRACTION", "augment_batch", "check_batch_size", "make_distributed_train_dataset",
    "make_eval_dataset", "make_train_dataset", "steps_per_epoch",
]
