"""Loading MNIST, Fashion-MNIST, CIFAR-10/100 from local Keras file layouts, and the
original's preprocessing (inputs /255 minus the per-pixel training mean).

Nothing is downloaded: files are looked for in ``data_dir``, the Keras cache
(``$KERAS_HOME/datasets`` or ``~/.keras/datasets``) and, for Fashion-MNIST, Debian's
``dataset-fashion-mnist`` package. NumPy only; the tf.data side is :mod:`utils.data.pipeline`.

    data = load_dataset("fashion_mnist", train_size=1000, seed=0)
    print(data.x_train.shape, data.clip_min.shape)  # (1000, 28, 28, 3) (28, 28, 3)
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import pickle
import struct
import zipfile
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from utils.errors import UsageError
from utils.registry import Registry

Loader = Callable[[str], "RawDataset"]
"""A loader reads the files of one dataset from one directory: ``loader(directory)``."""


@dataclasses.dataclass(frozen=True)
class DatasetSource:
    """Where a registered dataset's files live and how to read them.

    Attributes:
      name: registry name (``--dataset`` value).
      loader: reads ``files`` from a directory that holds them directly.
      files: file or directory names the loader needs, relative to that directory.
      keras_subdir: the Keras cache sub-directory (``""``: the files sit in
        ``~/.keras/datasets`` itself, as ``mnist.npz`` does).
      system_dirs: extra directories holding ``files`` directly (OS packages).
      install_hint: how to obtain the files, ends the "not found" message.
    """

    name: str
    loader: Loader
    files: Tuple[str, ...]
    keras_subdir: str
    system_dirs: Tuple[str, ...] = ()
    install_hint: str = ""


DATASETS: Registry[DatasetSource] = Registry("dataset")


def register_dataset(
    name: str,
    *,
    files: Sequence[str],
    keras_subdir: str,
    system_dirs: Sequence[str] = (),
    install_hint: str = "",
) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(directory) -> RawDataset`` under ``name``."""

    def decorator(loader: Loader) -> Loader:
        DATASETS.register(name)(
            DatasetSource(name, loader, tuple(files), keras_subdir,
                          tuple(system_dirs), install_hint))
        return loader

    return decorator


@dataclasses.dataclass(frozen=True)
class RawDataset:
    """A dataset as stored: uint8 pixels in [0, 255], integer class indices.

    Attributes:
      x_train, x_test: uint8 (N, H, W, C), channels last; 1-channel sets repeated to C=3.
      y_train, y_test: int64 (N,), class indices in [0, num_classes).
      num_classes: number of (fine) classes.
      name: registry name.
      coarse_train, coarse_test: int64 (N,) super-class indices (CIFAR-100 only).
      num_coarse_classes: number of super-classes (CIFAR-100: 20), else None.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str
    coarse_train: Optional[np.ndarray] = None
    coarse_test: Optional[np.ndarray] = None
    num_coarse_classes: Optional[int] = None

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train),
                            ("test", self.x_test, self.y_test)):
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != self.x_train.shape[1:]:
                raise ValueError(f"{split} images have dtype {x.dtype} and shape {x.shape}, "
                                 "expected uint8 (N, H, W, C)")
            if y.shape != (len(x),):
                raise ValueError(f"{len(x)} {split} images but labels of shape {y.shape}")
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(f"{split} labels outside [0, {self.num_classes})")


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """A dataset preprocessed as the original ``train.py``: ``x / 255 - mean``.

    Attributes:
      x_train, x_test: float32 (N, H, W, C), pixels in [0, 1] minus ``mean``, so each
        value lies in ``[clip_min, clip_max]`` at its pixel.
      y_train, y_test: int32 (N,) class indices (not one-hot).
      mean: float32 (H, W, C), per-pixel mean of the FULL training set in [0, 1] units
        (computed before any ``train_size`` subset; attacks recompute the same).
      clip_min, clip_max: float32 (H, W, C), ``0 - mean`` and ``1 - mean``: the valid
        input range after mean subtraction (what attacks clip to).
      num_classes: number of classes; input_shape: (H, W, C); name: registry name.
      coarse_train, coarse_test: int32 (N,) super-class labels (CIFAR-100), else None.
      num_coarse_classes: number of super-classes, else None.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    clip_min: np.ndarray
    clip_max: np.ndarray
    num_classes: int
    input_shape: Tuple[int, int, int]
    name: str
    coarse_train: Optional[np.ndarray] = None
    coarse_test: Optional[np.ndarray] = None
    num_coarse_classes: Optional[int] = None


def keras_datasets_dir() -> str:
    """Keras' download cache: ``$KERAS_HOME/datasets``, else ``~/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets")


def _candidate_dirs(source: DatasetSource, data_dir: Optional[str]) -> List[str]:
    candidates = []
    if data_dir:
        data_dir = os.path.expanduser(data_dir)
        candidates.append(data_dir)
        if source.keras_subdir:
            candidates.append(os.path.join(data_dir, source.keras_subdir))
        # A directory given explicitly must hold the data: never read another copy.
        return list(dict.fromkeys(candidates))
    candidates.append(os.path.join(keras_datasets_dir(), source.keras_subdir).rstrip(os.sep))
    candidates.extend(source.system_dirs)
    return list(dict.fromkeys(candidates))  # de-duplicated, order kept


def find_data_dir(name: str, data_dir: Optional[str] = None) -> str:
    """The first directory holding all files of dataset ``name``.

    Given ``data_dir``, only ``data_dir`` and ``data_dir/<keras subdir>`` are searched;
    without it the Keras cache (:func:`keras_datasets_dir`, with the Keras
    sub-directory), then OS package directories (``/usr/share/datasets/fashion-mnist``).

    Raises:
      UsageError: unknown ``name``, or no directory holds the files; the one-line message
        names the files expected, every place searched and how to fix it.
    """
    source = DATASETS.get(name)
    candidates = _candidate_dirs(source, data_dir)
    for directory in candidates:
        if all(os.path.exists(os.path.join(directory, f)) for f in source.files):
            return directory
    hint = f"; or {source.install_hint}" if source.install_hint else ""
    raise UsageError(
        f"dataset {name!r} not found: expected {', '.join(source.files)} in one of "
        f"{', '.join(candidates)}; pass --data_dir=DIR with DIR holding those files "
        f"(Keras layout){hint}")


def load_raw_dataset(name: str, data_dir: Optional[str] = None) -> RawDataset:
    """Dataset ``name`` as stored (uint8, see :class:`RawDataset`), read from local files.

    Raises:
      UsageError: unknown name, files not found, or a file truncated/corrupt.
    """
    source = DATASETS.get(name)
    directory = find_data_dir(name, data_dir)
    return _load_raw_cached(name, directory, _file_stamps(directory, source.files))


def _file_stamps(directory: str, files: Sequence[str]) -> Tuple[Tuple[str, int, int], ...]:
    """``(path, size, mtime_ns)`` of each file (of each file inside a listed directory): a
    file replaced or rewritten is read again."""
    paths = []
    for name in files:
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            paths += sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                            for f in names)
        else:
            paths.append(path)
    stamps = []
    for path in paths:
        status = os.stat(path)
        stamps.append((path, status.st_size, status.st_mtime_ns))
    return tuple(stamps)


# [(training images of the raw dataset _load_raw_cached keeps, their mean or None)]
_CACHED_MEAN: List[Tuple[np.ndarray, Optional[np.ndarray]]] = []


@functools.lru_cache(maxsize=1)
def _load_raw_cached(name: str, directory: str, stamps: Tuple[Tuple[str, int, int], ...]
                     ) -> RawDataset:
    """The last dataset read, kept for the next run in this process (a benchmark or a
    reproduction trains several models on it; decoding Fashion-MNIST takes ~1 s). Its
    arrays are read-only, so no caller can change what the next one gets; ``stamps``
    (:func:`_file_stamps`) makes a changed file a new key."""
    source = DATASETS.get(name)
    logging.info("loading %s from %s", name, directory)
    try:
        raw = source.loader(directory)
    except UsageError:
        raise
    except _READ_ERRORS as err:  # e.g. files that read fine but disagree in size
        raise UsageError(
            f"dataset {name!r} in {directory} is unreadable ({_one_line(err)}); the files "
            f"{', '.join(source.files)} look truncated or corrupt, replace them") from err
    for field in dataclasses.fields(raw):
        value = getattr(raw, field.name)
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    _CACHED_MEAN[:] = [(raw.x_train, None)]  # its mean: computed by the first prepare()
    return raw


_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, struct.error,
                pickle.UnpicklingError, zipfile.BadZipFile)  # gzip.BadGzipFile is an OSError


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


@contextlib.contextmanager
def _reading(path: str) -> Iterator[None]:
    """Turns the errors of a truncated or corrupt ``path`` into a one-line UsageError."""
    try:
        yield
    except UsageError:
        raise
    except _READ_ERRORS as err:
        raise UsageError(f"{path} is unreadable ({_one_line(err)}); it looks truncated or "
                         "corrupt, replace it with a fresh copy") from err


def _check_size(size: Optional[int], available: Optional[int], what: str) -> None:
    """UsageError unless ``size`` is None or in [1, available] (None: no upper bound)."""
    if size is None:
        return
    if size < 1:
        raise UsageError(f"{what} must be >= 1, got {size}; pass a positive count or "
                         "leave it unset to use the whole split")
    if available is not None and size > available:
        raise UsageError(f"{what} must be at most {available} (the split's size), got "
                         f"{size}; pass a smaller count or leave it unset")


def _pixel_mean(x: np.ndarray, rows: int = 2048) -> np.ndarray:
    """``np.mean(x.astype(np.float32) / 255, axis=0)`` bit for bit, ``rows`` images at a time.

    NumPy sums over the leading axis image by image (float32), so carrying the running sum
    in as the first row of the next block keeps every addition and its order; the float
    copy of the whole training set (CIFAR: 600 MB) is never made.
    """
    total = np.zeros(x.shape[1:], np.float32)
    for start in range(0, len(x), rows):
        block = x[start:start + rows].astype(np.float32) / 255
        total = np.add.reduce(block if start == 0 else np.concatenate([total[None], block]),
                              axis=0)
    return np.true_divide(total, len(x), out=total, casting="unsafe")


def _train_mean(x: np.ndarray) -> np.ndarray:
    """:func:`_pixel_mean` of ``x`` (a fresh array). For the training images of the raw
    dataset kept by :func:`_load_raw_cached` (read-only, held by the cache: nobody can
    change them) it is computed once, so the next training in the process does not
    average 60,000 images again (0.3 s); any other ``x`` is averaged afresh."""
    if not (_CACHED_MEAN and _CACHED_MEAN[0][0] is x):
        return _pixel_mean(x)
    if _CACHED_MEAN[0][1] is None:
        _CACHED_MEAN[0] = (x, _pixel_mean(x))
    return _CACHED_MEAN[0][1].copy()


def prepare(raw: RawDataset, *, train_size: Optional[int] = None,
            test_size: Optional[int] = None, seed: int = 0) -> PreparedData:
    """Preprocess ``raw`` as the original: ``x / 255 - mean(x_train_full / 255, axis=0)``.

    Args:
      raw: uint8 dataset.
      train_size: keep a random subset of this many training examples (drawn with
        ``seed``, in index order); None keeps all. The mean is always the full set's.
      test_size: keep the first this many test examples; None keeps all.
      seed: seed of the training subset.

    Raises:
      UsageError: a size < 1 or larger than its split.
    """
    _check_size(train_size, len(raw.x_train), "train_size")
    _check_size(test_size, len(raw.x_test), "test_size")
    mean = _train_mean(raw.x_train)  # float32 as in the original, full training set
    train_idx = np.arange(len(raw.x_train))
    if train_size is not None:
        rng = np.random.default_rng(seed)
        train_idx = np.sort(rng.choice(len(raw.x_train), size=train_size, replace=False))
    x_train = raw.x_train[train_idx].astype(np.float32) / 255
    x_train -= mean  # in place: CIFAR's float copy is 600 MB
    test_idx = np.arange(len(raw.x_test) if test_size is None else test_size)
    x_test = raw.x_test[test_idx].astype(np.float32) / 255 - mean

    def subset(labels: Optional[np.ndarray], idx: np.ndarray) -> Optional[np.ndarray]:
        return None if labels is None else labels[idx].astype(np.int32)

    return PreparedData(
        x_train=x_train, y_train=subset(raw.y_train, train_idx),
        x_test=x_test, y_test=subset(raw.y_test, test_idx),
        mean=mean, clip_min=(0.0 - mean).astype(np.float32),
        clip_max=(1.0 - mean).astype(np.float32),
        num_classes=raw.num_classes, input_shape=tuple(int(d) for d in mean.shape),
        name=raw.name,
        coarse_train=subset(raw.coarse_train, train_idx),
        coarse_test=subset(raw.coarse_test, test_idx),
        num_coarse_classes=raw.num_coarse_classes)


def load_dataset(name: str, data_dir: Optional[str] = None, *,
                 train_size: Optional[int] = None, test_size: Optional[int] = None,
                 seed: int = 0) -> PreparedData:
    """Load dataset ``name`` from local files and preprocess it (see :func:`prepare`)."""
    _check_size(train_size, None, "train_size")  # fail before reading any file
    _check_size(test_size, None, "test_size")
    raw = load_raw_dataset(name, data_dir)
    return prepare(raw, train_size=train_size, test_size=test_size, seed=seed)
