"""The file formats of the datasets, each registered as a source (:mod:`utils.data.sources`):
Keras' ``mnist.npz``, gzipped idx files (Fashion-MNIST, Debian's package), CIFAR pickles.
Images come out uint8 ``(N, H, W, 3)`` (grey ones repeated to 3 channels, as the
original), labels int64 ``(N,)``. CIFAR pickles are read by :class:`CifarUnpickler`, which
builds only arrays and plain data: a file that names anything else is refused unrun.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from typing import Any, BinaryIO, List, Sequence

import numpy as np

from utils.data.sources import RawDataset, _reading, register_dataset
from utils.errors import UsageError

_MNIST_CLASSES = 10
_CIFAR10_CLASSES = 10
_CIFAR100_CLASSES = 100
_CIFAR100_COARSE_CLASSES = 20
_CIFAR_SIDE = 32
_IDX_LABELS_MAGIC, _IDX_IMAGES_MAGIC = 2049, 2051  # idx format: uint8, 1-D / 3-D
_FASHION_FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                  "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")


def _to_rgb(x: np.ndarray) -> np.ndarray:
    """(N, H, W) grey -> (N, H, W, 3), as the original's ``np.repeat(..., 3, axis=3)``."""
    return np.repeat(x[..., np.newaxis], 3, axis=3)


@register_dataset("mnist", files=("mnist.npz",), keras_subdir="",
                  install_hint="copy Keras' mnist.npz into ~/.keras/datasets")
def _load_mnist(directory: str) -> RawDataset:
    path = os.path.join(directory, "mnist.npz")
    with _reading(path), np.load(path, allow_pickle=False) as f:
        arrays = {k: np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    return RawDataset(_to_rgb(arrays["x_train"]), arrays["y_train"].astype(np.int64),
                      _to_rgb(arrays["x_test"]), arrays["y_test"].astype(np.int64),
                      num_classes=_MNIST_CLASSES, name="mnist")


def _read_idx_gz(path: str, magic: int) -> np.ndarray:
    """A gzipped idx file (uint8 data) as an array of the shape its header gives."""
    with _reading(path):
        with gzip.open(path, "rb") as f:
            data = f.read()
        ndim = 1 if magic == _IDX_LABELS_MAGIC else 3
        header = 4 + 4 * ndim
        if len(data) < header or struct.unpack(">I", data[:4])[0] != magic:
            raise ValueError(f"no idx header (magic number {magic})")
        shape = struct.unpack(f">{ndim}I", data[4:header])
        if len(data) - header != int(np.prod(shape)):
            raise ValueError(f"{len(data) - header} bytes of data where the header "
                             f"announces shape {shape}")
        return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


@register_dataset("fashion_mnist", files=_FASHION_FILES, keras_subdir="fashion-mnist",
                  system_dirs=("/usr/share/datasets/fashion-mnist",),
                  install_hint="apt-get install dataset-fashion-mnist")
def _load_fashion_mnist(directory: str) -> RawDataset:
    y_train, x_train, y_test, x_test = (
        _read_idx_gz(os.path.join(directory, f), magic)
        for f, magic in zip(_FASHION_FILES, (_IDX_LABELS_MAGIC, _IDX_IMAGES_MAGIC) * 2))
    return RawDataset(_to_rgb(x_train), y_train.astype(np.int64),
                      _to_rgb(x_test), y_test.astype(np.int64),
                      num_classes=_MNIST_CLASSES, name="fashion_mnist")


#: The globals a CIFAR batch pickle names (``(module, name)`` after Python 2 names are
#: mapped): NumPy's array, dtype and scalar reconstruction (``numpy.core`` in the
#: published Python 2 files, ``numpy._core`` from NumPy 2), ``_codecs.encode`` (bytes as
#: Python 3 writes them in protocol 2) and a few plain builtin containers. Each builds data
#: and runs nothing else.
CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    *(("builtins", name) for name in ("bytearray", "set", "frozenset", "complex")),
})


class CifarUnpickler(pickle.Unpickler):
    """Reads a CIFAR batch file (Python 2 pickles: str as bytes, as Keras reads them) and
    refuses, with a one-line :class:`utils.errors.UsageError`, any global outside
    :data:`CIFAR_PICKLE_GLOBALS`: a pickle can call any importable function while it loads
    (``os.system``), so a replaced data file must not be able to run code.

        batch = CifarUnpickler(f, path).load()
    """

    def __init__(self, file: BinaryIO, path: str) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in CIFAR_PICKLE_GLOBALS:
            raise UsageError(
                f"{self._path} is not a CIFAR batch: its pickle names {module}.{name}, which "
                "a data file never needs (it could run code); nothing in it was run, replace "
                "it with a fresh copy of the dataset")
        return super().find_class(module, name)


def _read_cifar_pickle(path: str, label_keys: Sequence[str]) -> List[np.ndarray]:
    """Images uint8 (N, 32, 32, 3) then one int64 array per label key."""
    with _reading(path):
        with open(path, "rb") as f:
            batch = CifarUnpickler(f, path).load()
        if not isinstance(batch, dict):
            raise ValueError(f"a {type(batch).__name__} where a CIFAR batch has a dict")
        batch = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data = np.asarray(batch["data"], dtype=np.uint8)
        images = data.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
        return [images] + [np.asarray(batch[k], dtype=np.int64) for k in label_keys]


_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


@register_dataset("cifar10", files=_CIFAR10_TRAIN + ("test_batch",),
                  keras_subdir="cifar-10-batches-py",
                  install_hint="extract cifar-10-python.tar.gz into ~/.keras/datasets")
def _load_cifar10(directory: str) -> RawDataset:
    parts = [_read_cifar_pickle(os.path.join(directory, f), ["labels"]) for f in _CIFAR10_TRAIN]
    x_test, y_test = _read_cifar_pickle(os.path.join(directory, "test_batch"), ["labels"])
    return RawDataset(np.concatenate([p[0] for p in parts]),
                      np.concatenate([p[1] for p in parts]), x_test, y_test,
                      num_classes=_CIFAR10_CLASSES, name="cifar10")


@register_dataset("cifar100", files=("train", "test"), keras_subdir="cifar-100-python",
                  install_hint="extract cifar-100-python.tar.gz into ~/.keras/datasets")
def _load_cifar100(directory: str) -> RawDataset:
    keys = ["fine_labels", "coarse_labels"]
    x_train, y_train, c_train = _read_cifar_pickle(os.path.join(directory, "train"), keys)
    x_test, y_test, c_test = _read_cifar_pickle(os.path.join(directory, "test"), keys)
    for coarse in (c_train, c_test):
        if len(coarse) and (coarse.min() < 0 or coarse.max() >= _CIFAR100_COARSE_CLASSES):
            raise ValueError(f"coarse labels outside [0, {_CIFAR100_COARSE_CLASSES})")
    return RawDataset(x_train, y_train, x_test, y_test, num_classes=_CIFAR100_CLASSES,
                      name="cifar100", coarse_train=c_train, coarse_test=c_test,
                      num_coarse_classes=_CIFAR100_COARSE_CLASSES)
