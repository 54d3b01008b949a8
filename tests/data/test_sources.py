"""Tests of utils/data/sources.py and formats.py (via utils.data) on generated files in the
Keras layouts, plus the real Fashion-MNIST of Debian's package when installed."""
from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from utils import data as D
from utils.errors import UsageError

N_TRAIN, N_TEST = 20, 10
CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
SIDE = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "cifar100": 32}
KERAS_SUBDIR = {"mnist": "", "fashion_mnist": "fashion-mnist",
                "cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ------------------------------------------------------------------ fake files

def _grey(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def _write_mnist(directory, rng):
    os.makedirs(directory, exist_ok=True)
    np.savez(os.path.join(directory, "mnist.npz"),
             x_train=_grey(rng, N_TRAIN), y_train=rng.integers(0, 10, N_TRAIN).astype(np.uint8),
             x_test=_grey(rng, N_TEST), y_test=rng.integers(0, 10, N_TEST).astype(np.uint8))


def _idx_bytes(array, magic):
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


def _write_fashion(directory, rng):
    os.makedirs(directory, exist_ok=True)
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, array, magic in (("labels-idx1", labels, 2049),
                                   ("images-idx3", _grey(rng, n), 2051)):
            with gzip.open(os.path.join(directory, f"{split}-{kind}-ubyte.gz"), "wb") as f:
                f.write(_idx_bytes(array, magic))


def _cifar_rows(rng, n):
    return rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _write_cifar10(root, rng):
    directory = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(directory, exist_ok=True)
    per_batch = N_TRAIN // 5
    for i in range(1, 6):
        _dump(os.path.join(directory, f"data_batch_{i}"),
              {b"data": _cifar_rows(rng, per_batch),
               b"labels": rng.integers(0, 10, per_batch).tolist()})
    _dump(os.path.join(directory, "test_batch"),
          {b"data": _cifar_rows(rng, N_TEST), b"labels": rng.integers(0, 10, N_TEST).tolist()})


def _write_cifar100(root, rng):
    directory = os.path.join(root, "cifar-100-python")
    os.makedirs(directory, exist_ok=True)
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        _dump(os.path.join(directory, split),
              {b"data": _cifar_rows(rng, n), b"fine_labels": rng.integers(0, 100, n).tolist(),
               b"coarse_labels": rng.integers(0, 20, n).tolist()})


def write_fake(name, root, seed=0):
    """Writes dataset ``name`` under ``root`` as Keras' cache holds it; returns the
    directory holding the files."""
    rng = np.random.default_rng(seed)
    if name == "mnist":
        _write_mnist(root, rng)
    elif name == "fashion_mnist":
        _write_fashion(os.path.join(root, "fashion-mnist"), rng)
    elif name == "cifar10":
        _write_cifar10(root, rng)
    else:
        _write_cifar100(root, rng)
    return os.path.join(root, KERAS_SUBDIR[name]).rstrip(os.sep)


@pytest.fixture(autouse=True)
def empty_keras_home(tmp_path, monkeypatch):
    """No test sees the user's ~/.keras."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def no_system_fashion(monkeypatch, tmp_path):
    """Hides /usr/share/datasets/fashion-mnist from the search."""
    source = D.DATASETS.get("fashion_mnist")
    monkeypatch.setitem(D.DATASETS._entries, "fashion_mnist",
                        dataclasses.replace(source, system_dirs=(str(tmp_path / "no_pkg"),)))


# ------------------------------------------------------------------ loading

@pytest.mark.parametrize("name", sorted(CLASSES))
def test_loads_each_keras_layout(name, tmp_path):
    write_fake(name, str(tmp_path / "data"))
    raw = D.load_raw_dataset(name, str(tmp_path / "data"))  # the parent of the subdir
    side = SIDE[name]
    assert raw.x_train.shape == (N_TRAIN, side, side, 3)
    assert raw.x_test.shape == (N_TEST, side, side, 3)
    assert raw.x_train.dtype == np.uint8
    assert raw.y_train.dtype == np.int64 and raw.y_train.shape == (N_TRAIN,)
    assert raw.num_classes == CLASSES[name] and raw.name == name
    if side == 28:  # grey sets repeated to 3 channels
        np.testing.assert_array_equal(raw.x_train[..., 0], raw.x_train[..., 2])
    if name == "cifar100":
        assert raw.num_coarse_classes == 20 and raw.coarse_test.shape == (N_TEST,)
        assert raw.coarse_train.max() < 20
    else:
        assert raw.coarse_train is None and raw.num_coarse_classes is None


def test_cifar_rows_are_channel_first(tmp_path):
    directory = write_fake("cifar10", str(tmp_path))
    with open(os.path.join(directory, "test_batch"), "rb") as f:
        rows = pickle.load(f)[b"data"]
    x_test = D.load_raw_dataset("cifar10", directory).x_test
    n, i, j, c = 3, 5, 7, 2
    assert x_test[n, i, j, c] == rows[n, c * 1024 + i * 32 + j]


def test_fashion_accepts_files_directly_and_keras_cache(tmp_path, empty_keras_home):
    directory = write_fake("fashion_mnist", str(tmp_path / "d"))
    assert D.find_data_dir("fashion_mnist", directory) == directory
    cached = write_fake("fashion_mnist", str(empty_keras_home / "datasets"))
    assert D.find_data_dir("fashion_mnist", None) == cached


@pytest.mark.parametrize("name", ["mnist", "cifar100"])
def test_found_in_keras_cache(name, empty_keras_home):
    expected = write_fake(name, str(empty_keras_home / "datasets"))
    assert D.find_data_dir(name) == expected
    assert D.load_dataset(name).num_classes == CLASSES[name]


def test_missing_dataset_message_names_files_and_places(tmp_path, empty_keras_home):
    with pytest.raises(UsageError) as info:
        D.find_data_dir("cifar10", str(tmp_path / "mine"))
    message = str(info.value)
    assert "\n" not in message
    for expected in ["data_batch_1", "data_batch_5", "test_batch", str(tmp_path / "mine"),
                     os.path.join(str(tmp_path / "mine"), "cifar-10-batches-py"),
                     "--data_dir"]:
        assert expected in message
    # An explicit --data_dir is the only place searched (issue 16: an empty one was
    # silently ignored and the data read from elsewhere).
    assert str(empty_keras_home / "datasets" / "cifar-10-batches-py") not in message
    with pytest.raises(UsageError):
        D.find_data_dir("fashion_mnist", str(tmp_path / "mine"))  # though installed system-wide


def test_missing_fashion_points_at_debian_package(no_system_fashion, tmp_path):
    with pytest.raises(UsageError) as info:
        D.load_dataset("fashion_mnist")
    message = str(info.value)
    assert "\n" not in message and "t10k-images-idx3-ubyte.gz" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "no_pkg") in message


def _truncate(path):
    with open(path, "rb") as f:
        content = f.read()
    with open(path, "wb") as f:
        f.write(content[: len(content) // 2])


@pytest.mark.parametrize("name,filename", [
    ("mnist", "mnist.npz"),
    ("fashion_mnist", "train-images-idx3-ubyte.gz"),
    ("fashion_mnist", "t10k-labels-idx1-ubyte.gz"),
    ("cifar10", "data_batch_3"),
    ("cifar100", "test"),
])
def test_truncated_file_is_usage_error(name, filename, tmp_path):
    directory = write_fake(name, str(tmp_path))
    _truncate(os.path.join(directory, filename))
    with pytest.raises(UsageError, match="unreadable") as info:
        D.load_dataset(name, directory)
    assert "\n" not in str(info.value)
    assert os.path.join(directory, filename) in str(info.value)


def test_gz_with_wrong_header_is_usage_error(tmp_path):
    directory = write_fake("fashion_mnist", str(tmp_path))
    with gzip.open(os.path.join(directory, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(b"not an idx file at all")
    with pytest.raises(UsageError, match="train-labels-idx1-ubyte.gz is unreadable.*idx header"):
        D.load_raw_dataset("fashion_mnist", directory)


def test_unknown_name_lists_choices():
    with pytest.raises(UsageError, match="cifar10, cifar100, fashion_mnist, mnist"):
        D.load_dataset("imagenet")
    with pytest.raises(UsageError):
        D.find_data_dir("svhn", None)


# ------------------------------------------------------------------ preprocessing

@pytest.fixture
def cifar_raw(tmp_path):
    return D.load_raw_dataset("cifar10", write_fake("cifar10", str(tmp_path)))


def test_mean_subtraction_and_clip_range(cifar_raw):
    data = D.prepare(cifar_raw)
    full_mean = np.mean(cifar_raw.x_train.astype(np.float32) / 255, axis=0)
    assert data.x_train.dtype == data.mean.dtype == data.clip_min.dtype == np.float32
    assert data.y_train.dtype == np.int32 and data.input_shape == (32, 32, 3)
    assert data.mean.shape == data.clip_min.shape == data.clip_max.shape == (32, 32, 3)
    np.testing.assert_allclose(data.mean, full_mean, rtol=0, atol=1e-7)
    np.testing.assert_allclose(data.clip_min + data.mean, 0.0, atol=1e-6)
    np.testing.assert_allclose(data.clip_max + data.mean, 1.0, atol=1e-6)
    np.testing.assert_allclose(data.x_test + data.mean, cifar_raw.x_test / 255, atol=1e-6)
    for x in (data.x_train, data.x_test):
        assert np.all(x >= data.clip_min) and np.all(x <= data.clip_max)


@pytest.mark.parametrize("rows", [1, 3, 4, 100])
def test_pixel_mean_in_blocks_is_numpys_mean_bit_for_bit(rows):
    from utils.data.sources import _pixel_mean
    x = np.random.default_rng(0).integers(0, 256, (10, 3, 2, 3), dtype=np.uint8)
    x[:5] = 255  # large early partial sums: a change of summation order would show
    want = np.mean(x.astype(np.float32) / 255, axis=0)
    got = _pixel_mean(x, rows=rows)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_mean_of_the_cached_raw_dataset_is_computed_once_and_never_shared(tmp_path,
                                                                          monkeypatch):
    from utils.data import sources
    calls = []
    monkeypatch.setattr(sources, "_pixel_mean",
                        lambda x, _inner=sources._pixel_mean: calls.append(1) or _inner(x))
    raw = D.load_raw_dataset("cifar10", write_fake("cifar10", str(tmp_path), seed=3))
    want = np.mean(raw.x_train.astype(np.float32) / 255, axis=0)
    first = D.prepare(raw).mean
    first += 1  # a caller's change stays its own
    second = D.prepare(raw, train_size=3).mean
    assert np.array_equal(second, want) and len(calls) == 1
    other = raw.x_train.copy()  # not the cache's array, even with equal contents
    other.setflags(write=False)
    assert np.array_equal(sources._train_mean(other), want) and len(calls) == 2


def test_train_subset_is_seeded_and_keeps_full_mean(cifar_raw):
    full = D.prepare(cifar_raw)
    a = D.prepare(cifar_raw, train_size=7, test_size=4, seed=1)
    b = D.prepare(cifar_raw, train_size=7, test_size=4, seed=1)
    c = D.prepare(cifar_raw, train_size=7, test_size=4, seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.shape == (7, 32, 32, 3) and a.y_train.shape == (7,)
    np.testing.assert_array_equal(a.mean, full.mean)
    # Images and labels stay paired: each subset row is a row of the full set.
    for x, label in zip(a.x_train, a.y_train):
        row = int(np.flatnonzero(np.all(full.x_train == x, axis=(1, 2, 3)))[0])
        assert full.y_train[row] == label
    np.testing.assert_array_equal(a.x_test, full.x_test[:4])
    np.testing.assert_array_equal(a.y_test, full.y_test[:4])


def test_coarse_labels_follow_subset(tmp_path):
    raw = D.load_raw_dataset("cifar100", write_fake("cifar100", str(tmp_path)))
    data = D.prepare(raw, train_size=5, test_size=3)
    assert data.coarse_train.shape == (5,) and data.coarse_train.dtype == np.int32
    np.testing.assert_array_equal(data.coarse_test, raw.coarse_test[:3])
    assert data.num_coarse_classes == 20


@pytest.mark.parametrize("kwargs", [dict(train_size=0), dict(train_size=N_TRAIN + 1),
                                    dict(test_size=0), dict(test_size=N_TEST + 1)])
def test_bad_sizes_are_usage_errors(kwargs, tmp_path):
    directory = write_fake("mnist", str(tmp_path))
    with pytest.raises(UsageError):
        D.load_dataset("mnist", directory, **kwargs)


# ------------------------------------------------------------------ the real data

@pytest.mark.skipif(not os.path.isdir(FASHION_SYSTEM_DIR),
                    reason="Debian package dataset-fashion-mnist not installed")
@pytest.mark.slow
def test_real_fashion_mnist_from_debian_package():
    data = D.load_dataset("fashion_mnist", train_size=1000, test_size=100)
    assert D.find_data_dir("fashion_mnist") == FASHION_SYSTEM_DIR
    raw = D.load_raw_dataset("fashion_mnist")
    assert raw.x_train.shape == (60000, 28, 28, 3) and raw.x_test.shape == (10000, 28, 28, 3)
    np.testing.assert_array_equal(np.bincount(raw.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(raw.y_test), [1000] * 10)
    assert data.x_train.shape == (1000, 28, 28, 3) and data.input_shape == (28, 28, 3)
    assert 0.1 < float(data.mean.mean()) < 0.5  # Fashion-MNIST's mean pixel is about 0.29
    assert np.all(data.x_test >= data.clip_min) and np.all(data.x_test <= data.clip_max)


# ------------------------------------------------------------------ CIFAR pickles

class _RunsShell:
    """Pickles as a call of ``os.system`` (what a malicious data file can hold)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_cifar_batch_as_published_loads_through_the_restricted_unpickler(tmp_path):
    from utils.data.formats import CifarUnpickler
    rng = np.random.default_rng(0)
    batch = {b"batch_label": b"training batch 1 of 5", b"data": _cifar_rows(rng, 4),
             b"labels": [3, 1, 4, 1], b"filenames": [b"a.png"] * 4,
             b"numpy_labels": list(np.arange(4, dtype=np.int64))}
    path = tmp_path / "data_batch_1"
    _dump(path, batch)
    with open(path, "rb") as f:
        loaded = CifarUnpickler(f, str(path)).load()
    assert loaded.keys() == batch.keys() and loaded[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])
    assert loaded[b"labels"] == [3, 1, 4, 1] and loaded[b"numpy_labels"] == list(range(4))


def test_a_cifar_batch_that_would_run_code_is_refused_unrun(tmp_path, monkeypatch):
    directory = write_fake("cifar10", str(tmp_path))
    sentinel = tmp_path / "SENTINEL"
    _dump(os.path.join(directory, "data_batch_1"),
          {b"data": _RunsShell(f"touch {sentinel}"), b"labels": [0]})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as info:
        D.load_raw_dataset("cifar10", directory)
    message = str(info.value)
    assert "\n" not in message and "data_batch_1 is not a CIFAR batch" in message
    assert "system" in message and "nothing in it was run" in message
    assert not sentinel.exists()
