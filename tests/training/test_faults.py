"""Faults during training (issue 16): kill -9 then --resume is bit-exact, NaN stops with
exit 3 and saves nothing non-finite, a full disk ends with exit 4 and a consistent run
directory, SIGINT ends with exit 130 and one line."""
from __future__ import annotations

import csv
import errno
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_entry, write_fake_mnist_npz

TINY = ["--dataset=mnist", "--version=1", "--n=1", "--batch_size=20", "--test_size=40",
        "--optimizer=mom", "--lr=0.01", "--checkpoint_every=1"]
ADV = ["--use_advtrain=True", "--attack_method=MadryEtAl", "--advtrain_num_iter=2"]
DIGEST = re.compile(r"weights sha256 ([0-9a-f]{64})")


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    return env


def _start(args, model_dir, verbose=0):
    cmd = [sys.executable, str(ROOT / "train_models.py"), *args, f"--model_dir={model_dir}",
           f"--verbose={verbose}"]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_line(proc, pattern, timeout=120.0):
    """Read ``proc``'s stdout until a line contains ``pattern``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if pattern in line:
            return
        if not line and proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before {pattern!r}: {proc.stderr.read()}")
    pytest.fail(f"no {pattern!r} within {timeout} s")


@pytest.fixture
def data_dir(tmp_path):
    write_fake_mnist_npz(tmp_path / "data", n_train=600)  # 30 steps of 20 per epoch
    return tmp_path / "data"


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ADV], ids=["standard", "adversarial"])
def test_kill_9_mid_epoch_then_resume_is_bit_identical(tmp_path, data_dir, extra, capsys):
    """Only the killed run is a process of its own; the uninterrupted run and the resumed
    one run in this process (same TensorFlow threads, so the same arithmetic)."""
    args = TINY + extra + [f"--data_dir={data_dir}", "--epochs=2", "--verbose=0"]
    killed = _start(args, tmp_path / "killed", verbose=1)
    _wait_for_line(killed, "Epoch 2/2")
    time.sleep(0.5)  # inside epoch 2
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    run_dir = next((tmp_path / "killed").glob("*/mnist/*"))
    assert not (run_dir / "model.002.weights.h5").exists()
    # a kill inside a checkpoint write leaves temporaries like these: removed at start
    (run_dir / ".model.002.weights.h5.dead1234.tmp.weights.h5").write_bytes(b"partial")
    (run_dir / ".state.002.dead1234.tmp.index").write_bytes(b"partial")
    code, out, err = run_entry("train_models", args + [f"--model_dir={tmp_path / 'whole'}"],
                               capsys)
    assert code == 0, err
    code, out2, err2 = run_entry("train_models", args + [
        f"--model_dir={tmp_path / 'killed'}", "--resume"], capsys)
    assert code == 0, err2
    assert DIGEST.search(out2).group(1) == DIGEST.search(out).group(1)
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert (run_dir / "model.002.weights.h5").exists()


@pytest.mark.slow
def test_nan_loss_stops_with_exit_3_and_no_checkpoint(tmp_path, data_dir, capsys):
    code, _, err = run_entry("train_models", TINY + [
        f"--data_dir={data_dir}", f"--model_dir={tmp_path}", "--epochs=2", "--lr=1e9",
        "--train_size=100", "--verbose=0"], capsys)
    assert code == 3, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(r"non-finite .* at epoch 1 step \d+", err), err
    assert not list(tmp_path.glob("**/model.*.weights.h5"))
    assert not list(tmp_path.glob("**/state.*"))


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["stop", "skip_batch"])
def test_nan_batch_is_never_applied(policy):
    """A batch holding a NaN image: "stop" raises naming epoch and step, "skip_batch"
    trains on without it; either way no weight or BN statistic becomes non-finite."""
    import numpy as np
    import tensorflow as tf

    from conftest import cluster_data
    from utils.data import make_distributed_train_dataset
    from utils.errors import NonFiniteError
    from utils.models.classifier import build_classifier, training_loss
    from utils.runs.model_config import ModelConfig
    from utils.training.loop import Trainer, make_optimizer

    x, y = cluster_data(40, 0, shape=(8, 8, 3), num_classes=4)
    x[7] = np.nan
    strategy = tf.distribute.get_strategy()
    cfg = ModelConfig(version=1, n=1, loss="sce")
    model = build_classifier(cfg, (8, 8, 3), 4)
    optimizer = make_optimizer("mom", 0.01)
    trainer = Trainer(strategy, model, training_loss(cfg, model), optimizer, 10,
                      nan_policy=policy)
    data = make_distributed_train_dataset(strategy, x, y, global_batch_size=10, num_classes=4,
                                          augment=False, repeat=True, steps=4)
    fit = dict(epochs=2, initial_epoch=0, base_lr=0.01, lr_boundaries=(), verbose=0)
    if policy == "stop":
        with pytest.raises(NonFiniteError, match=r"at epoch 1 step [1-4]; stopped"):
            trainer.fit(data, 4, None, **fit)
    else:
        trainer.fit(data, 4, None, **fit)
        assert int(optimizer.iterations) == 6  # 8 steps, the NaN batch skipped twice
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.slow
def test_disk_full_during_checkpoint_exit_4_and_set_consistent(tmp_path, data_dir, capsys,
                                                               monkeypatch):
    import utils.fileio as fileio
    real = fileio.finish_temp

    def full_at_epoch_2(tmp):
        if ".model.002." in tmp.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        real(tmp)

    monkeypatch.setattr(fileio, "finish_temp", full_at_epoch_2)
    code, _, err = run_entry("train_models", TINY + [
        f"--data_dir={data_dir}", f"--model_dir={tmp_path}", "--epochs=3",
        "--train_size=100", "--verbose=0"], capsys)
    assert code == 4, err
    assert len(err.strip().splitlines()) == 1
    assert "model.002.weights.h5" in err and "no space left" in err and "MiB free" in err
    run_dir = next(tmp_path.glob("*/mnist/*"))
    names = sorted(p.name for p in run_dir.iterdir() if p.is_file())
    assert "model.001.weights.h5" in names and "model.002.weights.h5" not in names
    assert not [n for n in names if n.startswith(".") or n.startswith("state.002")]
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1]  # no row claims the lost checkpoint


def _check_interrupted(err, model_dir):
    """One line naming the epoch reached and the checkpoint to resume from, which exists;
    no temporary left behind."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    found = re.search(r"interrupted at epoch (\d+) step \d+ \(last checkpoint: epoch "
                      r"(\d+) .*resume with --resume", lines[0])
    assert found, lines[0]
    epoch, last = int(found.group(1)), int(found.group(2))
    assert epoch >= 2 and epoch - 1 <= last <= epoch, lines[0]
    run_dir = next(model_dir.glob("*/mnist/*"))
    assert (run_dir / f"model.{last:03d}.weights.h5").exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_sigterm_ends_with_one_line_and_exit_130(tmp_path, data_dir):
    """A process of its own, signalled from outside as a scheduler would."""
    proc = _start(TINY + [f"--data_dir={data_dir}", "--epochs=50"], tmp_path / "run",
                  verbose=1)
    _wait_for_line(proc, "Epoch 2/50")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    _check_interrupted(err, tmp_path / "run")


@pytest.mark.slow
def test_sigint_ends_with_one_line_and_exit_130(tmp_path, data_dir, capsys):
    """Ctrl-C, in this process (the entry script's handlers are the same ones): sent once
    the first checkpoint exists, so inside epoch 2 or later."""
    import threading

    def interrupt_after_the_first_checkpoint():
        deadline = time.time() + 120
        while time.time() < deadline and not list(tmp_path.glob("**/model.001.weights.h5")):
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt_after_the_first_checkpoint, daemon=True)
    sender.start()
    code, _, err = run_entry("train_models", TINY + [
        f"--data_dir={data_dir}", "--epochs=50", f"--model_dir={tmp_path / 'run'}",
        "--verbose=0"], capsys)
    sender.join()
    assert code == 130, err
    _check_interrupted(err, tmp_path / "run")
