"""Training under tf.distribute: two real workers on 127.0.0.1, mirrored and one_device."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from conftest import ROOT
from test_train_models import TINY, call
from utils.training.distribute import is_chief, make_strategy
from utils.errors import UsageError


def _free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_finish_with_equal_weights(tmp_path, fake_mnist_dir):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        args = [sys.executable, str(ROOT / "train_models.py")] + TINY + [
            f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path / f'w{index}'}",
            "--strategy=multi_worker", "--epochs=2", "--checkpoint_every=1"]
        procs.append(subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("multi-worker training did not finish in 240 s")
        assert proc.returncode == 0, err[-3000:]
        outputs.append(out)
    digests = [re.search(r"weights sha256 ([0-9a-f]{64})", out).group(1) for out in outputs]
    assert digests[0] == digests[1], "workers ended with different weights"
    # only the chief (worker 0) writes checkpoints
    assert list((tmp_path / "w0").rglob("model.002.weights.h5"))
    assert not (tmp_path / "w1" / "trained_models").exists()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["mirrored", "one_device"])
def test_single_machine_strategies_train(tmp_path, fake_mnist_dir, capsys, strategy):
    code, out, err = call(TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
                                  f"--strategy={strategy}", "--epochs=1", "--train_size=40"],
                          capsys)
    assert code == 0, err
    assert "final test accuracy" in out


def test_make_strategy_choices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert isinstance(make_strategy("auto"), tf.distribute.OneDeviceStrategy)
    assert make_strategy("mirrored").num_replicas_in_sync == 1
    with pytest.raises(UsageError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    with pytest.raises(UsageError, match="choose one of"):
        make_strategy("tpu")


def test_is_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    cluster = {"worker": ["a:1", "b:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 1}}))
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 0}}))
    assert is_chief()
