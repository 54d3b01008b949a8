"""Shared fixtures: quiet TensorFlow, repo root on sys.path, tiny generated datasets."""
from __future__ import annotations

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from utils.tf_env import tensorflow_defaults  # noqa: E402

tensorflow_defaults()  # the entry scripts' TensorFlow settings, here and in subprocesses
if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs one worker per core: one intra-op and one inter-op TensorFlow thread
    # each (and in the processes they start) instead of two workers each spreading over
    # both cores (measured on 2 cores: 6 min 31 s -> 6 min 2 s for the full suite).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


# The longest files, longest first (CPU seconds per file measured 2026-12-07 with
# MMT_TEST_CPU_LOG, ~70 s down to ~7 s each), started first under ``pytest -n 2 --dist
# loadfile --no-loadscope-reorder`` (``make test``; without that flag pytest-xdist orders
# files by their number of tests) so that the run does not end with one worker alone on one.
LONGEST_FIRST = ("scripts/test_advtest_iterative.py", "training/test_faults.py",
                 "scripts/test_analyses_script.py", "training/test_advtrain.py",
                 "training/test_train_models.py", "scripts/test_gpu_suite.py",
                 "training/test_train_losses.py", "scripts/test_reproduce_cpu.py",
                 "scripts/test_keras_export.py", "scripts/test_advtest_others.py",
                 "scripts/test_gpu_recipe.py", "models/test_original_h5.py",
                 "training/test_distribute.py", "training/test_steps_per_loop.py",
                 "test_bad_input.py", "scripts/test_demo.py", "scripts/test_bench.py",
                 "attacks/test_per_example.py", "reporting/test_report.py",
                 "mmt/test_mmt_attacks.py", "attacks/test_apgd.py", "training/test_run_lock.py",
                 "evaluation/test_ensemble.py", "models/test_classifier.py",
                 "attacks/test_attacks.py")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the files of ``LONGEST_FIRST`` first (in that order); otherwise,
    and within each file, collection order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    tests = ROOT / "tests"
    items.sort(key=lambda item: rank.get(item.path.relative_to(tests).as_posix(), len(rank)))


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends with the float32 Keras policy."""
    import keras
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def cluster_data(n: int, seed: int, shape=(4, 4, 1), num_classes: int = 4):
    """``num_classes`` Gaussian clusters in ``[-1, 1]^prod(shape)``, as images of ``shape``:
    ``(x (n, *shape) float32, y (n,) int)``; the prototypes are fixed, ``seed`` draws points."""
    dim = int(np.prod(shape))
    protos = np.random.default_rng(123).normal(size=(num_classes, dim)) * 0.6
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = np.clip(protos[y] + rng.normal(scale=0.3, size=(n, dim)), -1, 1)
    return x.astype(np.float32).reshape((n,) + tuple(shape)), y


def fit_cluster_mlp(x_train, y_train, num_classes: int = 4):
    """A tiny Dense net (Flatten, 16 relu, logits) fitted for 5 epochs on ``cluster_data``:
    the shared small undefended model of the attack and evaluation tests."""
    import keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(x_train.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(num_classes)])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(x_train, np.eye(num_classes)[y_train], epochs=5, batch_size=64, verbose=0)
    return model


def write_fake_mnist_npz(directory: pathlib.Path, n_train: int = 120, n_test: int = 40,
                         seed: int = 0) -> pathlib.Path:
    """A learnable fake ``mnist.npz`` (Keras layout): class = brightest quadrant pattern."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, size=n)
        x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            r, c = divmod(int(label), 4)
            x[i, r * 7:(r + 1) * 7, c * 7:(c + 1) * 7] = 220
        return x, y.astype(np.uint8)

    (x_train, y_train), (x_test, y_test) = make(n_train), make(n_test)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture
def fake_mnist_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    d = tmp_path / "data"
    write_fake_mnist_npz(d)
    return d


def run_entry(module_name: str, args, capsys=None):
    """Run an entry script's ``main`` in-process with ITS flag defaults.

    absl flags are process-wide and the scripts share many; each script's
    ``define_flags()`` re-applies its own defaults before parsing. Returns
    ``(exit status, stdout, stderr)`` (empty strings when ``capsys`` is None).
    """
    import importlib

    from absl import flags
    from utils.cli.common import run_main

    module = importlib.import_module(module_name)
    module.define_flags()
    flags.FLAGS.unparse_flags()
    code = 0
    try:
        run_main(module.main, [module_name + ".py", *args])
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    if capsys is None:
        return code, "", ""
    out = capsys.readouterr()
    return code, out.out, out.err


def entry_config(module, args, build=None):
    """An entry script's flags ``args`` -> the frozen config its ``main`` would build.

    ``module``: the imported entry script (its ``define_flags`` re-establishes its own
    flags); ``build``: ``FLAGS -> config`` (default ``module.config_from_flags``). The
    flags are left unparsed afterwards, for the next script in this process."""
    from absl import flags

    module.define_flags()
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS([pathlib.Path(module.__file__).name, *args])
        return (build or module.config_from_flags)(flags.FLAGS)
    finally:
        flags.FLAGS.unparse_flags()


# MMT_TEST_CPU_LOG=path: append "nodeid<TAB>cpu s<TAB>xdist worker<TAB>wall s<TAB>end time"
# per test (CPU: this process and its children, setup to teardown) — CPU time, unlike
# --durations' wall time, hardly depends on what else runs on the machine, so it tells
# where the suite's time goes on a loaded box; wall minus CPU shows a test that waits.
_CPU_LOG = os.environ.get("MMT_TEST_CPU_LOG")
if _CPU_LOG:
    import resource
    import time

    def _cpu_seconds() -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        start, wall = _cpu_seconds(), time.monotonic()
        yield
        worker = os.environ.get("PYTEST_XDIST_WORKER", "-")
        with open(_CPU_LOG, "a") as log:
            log.write(f"{item.nodeid}\t{_cpu_seconds() - start:.2f}\t{worker}\t"
                      f"{time.monotonic() - wall:.2f}\t{time.time():.1f}\n")
