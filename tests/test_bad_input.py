"""Bad input to the five entry points (issue 16): for each case the exit status, exactly
one line on stderr (no TensorFlow start-up lines, no absl INFO line, no traceback), the
expected words in it, and the working directory unchanged.

All cases run in one driver process (``tests/bad_input_driver.py``) that pays
TensorFlow's import once and forks a fresh child per case (~0.2 s each), each script's
cases in a workspace of their own.
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, write_fake_mnist_npz

DATA = "--data_dir=data"
MNIST = ["--dataset=mnist", DATA]
AT = ["--use_advtrain=False"]
REF = f"--reference={ROOT / 'reports' / 'reference' / 'paper_numbers.csv'}"

# script -> [(args, exit status, words the one stderr line must hold)]
CASES = {
    "train_models.py": [
        (["--lr=-1"], 2, "--lr must be > 0"),
        (["--lr=nan"], 2, "--lr must be > 0"),
        (["--batch_size=0"], 2, "--batch_size"),
        (["--mean_var=0"], 2, "--mean_var must be > 0"),
        (["--dataset=imagenet"], 2, "imagenet"),
        (["--optimizer=rmsprop"], 2, "rmsprop"),
        (["--strategy=tpu"], 2, "--strategy"),
        (["--epochs=0"], 2, "--epochs"),
        (["--nan_policy=maybe"], 2, "--nan_policy"),
        (["--steps_per_loop=0"], 2, "steps_per_loop"),
        (["--mixed_precision=fp8"], 2, "--mixed_precision"),
        (["--version=3"] + MNIST, 2, "version"),
        (["--lr_boundaries=a,b"], 2, "lr_boundaries"),
        (["extra"], 2, "unexpected arguments"),
        (["--no_such_flag=1"], 2, "no_such_flag"),
        (["--dataset=mnist", "--data_dir=empty"], 2, "not found"),
        (MNIST + ["--resume", "--model_dir=models"], 2, "--resume"),
        (MNIST + ["--train_size=100000"], 2, "train_size"),
        (MNIST + ["--batch_size=500", "--train_size=100"], 2, "--batch_size"),
        # a data file whose pickle would run `touch SENTINEL` here: refused, nothing run
        (["--dataset=cifar10", "--data_dir=evil_cifar"], 2, "is not a CIFAR batch"),
    ],
    "advtest_iterative.py": [
        (MNIST + ["--eps_256=nan"], 2, "--eps_256 must be finite"),
        (MNIST + ["--eps_256=-8"], 2, "--eps_256 must be finite and >= 0"),
        (MNIST + ["--eps_256=abc"], 2, "--eps_256 must be numbers"),
        (MNIST + ["--eps_iter_256=-1"], 2, "--eps_iter_256 must be finite and > 0"),
        (MNIST + ["--num_iter=0"], 2, "num_iter"),
        (MNIST + ["--num_restarts=0"], 2, "num_restarts"),
        (MNIST + ["--optimizer=rmsprop"], 2, "unknown optimizer"),
        (MNIST + ["--version=3"], 2, "version must be 1 or 2, got 3"),
        (MNIST + ["--model_1=SCE"], 2, "--model_1"),
        (MNIST + ["--results_file=corrupt.jsonl"], 2, "corrupt.jsonl line 2 is not JSON"),
        (MNIST + AT + ["--attack_method=APGD", "--state_file=cut.npz"], 2,
         "is unreadable or truncated"),
        (MNIST + ["--attack_method=NoSuchAttack"], 2, "unknown attack"),
        (MNIST + AT + ["--model_dir=models"], 2, "no checkpoint"),
        (MNIST + ["--model_dir=models"], 2, "--use_advtrain=False"),
        (["--dataset=mnist", "--data_dir=empty"] + AT, 2, "not found"),
    ],
    "advtest_others.py": [
        (MNIST + ["--attack_method=NoSuchAttack"], 2, "NoSuchAttack"),
        (MNIST + ["--attack_method=DeepFool", "--target=True"], 2, "DeepFool"),
        (MNIST + ["--optimizer=rmsprop"], 2, "unknown optimizer"),
        (MNIST + ["--results_file=corrupt.jsonl"], 2, "not JSON"),
        (MNIST + ["--version=3"], 2, "version must be 1 or 2, got 3"),
        (MNIST + ["--no_such_flag"], 2, "no_such_flag"),
        (MNIST + AT + ["--model_dir=models"], 2, "no checkpoint"),
    ],
    "scripts/compare_results.py": [
        ([REF, "--results=missing.jsonl"], 2, "missing.jsonl"),
        ([REF, "--results=bad_eps.jsonl"], 2, "eps_256 is 'abc', not a number"),
        ([REF, "--results=bad_n.jsonl"], 2, "n is 'x', not a whole number"),
        ([REF, "--results=corrupt.jsonl"], 2, "line 2 is not JSON"),
        (["--results="], 2, "--results is empty"),
        (["--threshold=abc"], 2, "threshold"),
    ],
    "scripts/demo.py": [
        (["--epochs=0"], 2, "--epochs must be >= 1"),
        (["--attack_examples=-1"], 2, "--attack_examples"),
        (["--epochs=x"], 2, "--epochs"),
        (["--bogus"], 2, "--bogus"),
        (["--dataset=cifar10", "--data_dir=empty"], 2, "not found"),
        (MNIST + ["--train_size=60", "--test_size=40", "--attack_examples=41"], 2,
         "--attack_examples=41 exceeds the 40 test images"),
    ],
}
GOOD_RECORD = {"script": "advtest_iterative", "dataset": "mnist", "attack_name": "MadryEtAl",
               "model": "resnet8v1_mom_lr0.01_batchsize20_withBN", "adv_accuracy": 0.5,
               "clean_accuracy": 0.9, "eps_256": 8.0, "n": 40}


class _RunsShell:
    """Pickles as a call of ``os.system`` (what a malicious data file can hold)."""

    def __reduce__(self):
        return os.system, ("touch SENTINEL",)


def _write_evil_cifar10(directory: pathlib.Path) -> None:
    """CIFAR-10's files, the first training batch a pickle that runs a shell command."""
    directory.mkdir()
    rows = np.zeros((2, 3 * 32 * 32), np.uint8)
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        batch = {b"data": _RunsShell() if i == 0 else rows, b"labels": [0, 1]}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))


def _workspace(path: pathlib.Path) -> pathlib.Path:
    """Inputs the cases read: fake MNIST, an empty dir, broken results and state files."""
    write_fake_mnist_npz(path / "data")
    _write_evil_cifar10(path / "evil_cifar")
    (path / "empty").mkdir()
    (path / "models").mkdir()
    good = json.dumps(GOOD_RECORD)
    (path / "corrupt.jsonl").write_text(good + "\n" + good[: len(good) // 2] + "\n")
    (path / "bad_eps.jsonl").write_text(json.dumps(dict(GOOD_RECORD, eps_256="abc")) + "\n")
    (path / "bad_n.jsonl").write_text(json.dumps(dict(GOOD_RECORD, n="x")) + "\n")
    buffer = io.BytesIO()
    np.savez(buffer, fingerprint=np.array("{}"), broken_by=np.zeros(40, np.int8))
    (path / "cut.eps8.npz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_input")
    spaces = {script: _workspace(base / script.replace("/", "_")) for script in CASES}
    cases = [(str(ROOT / script), str(spaces[script]), args)
             for script in CASES for args, _, _ in CASES[script]]
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "bad_input_driver.py")],
                          input=json.dumps(cases), text=True, capture_output=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = iter(json.loads(line) for line in proc.stdout.splitlines())
    return {script: [next(got) for _ in CASES[script]] for script in CASES}


def test_at_least_40_cases_over_five_entry_points():
    assert sum(len(c) for c in CASES.values()) >= 40 and len(CASES) == 5


@pytest.mark.slow
@pytest.mark.parametrize("script,index", [(s, i) for s in CASES for i in range(len(CASES[s]))],
                         ids=[f"{s.split('/')[-1]}:{' '.join(a)}" for s in CASES
                              for a, _, _ in CASES[s]])
def test_bad_input(results, script, index):
    args, status, words = CASES[script][index]
    got = results[script][index]
    assert got["args"] == args
    lines = got["stderr"].strip().splitlines()
    assert got["status"] == status, got["stderr"]
    assert len(lines) == 1, got["stderr"]
    assert lines[0].startswith("error: ") and "Traceback" not in got["stderr"]
    assert words in lines[0], lines[0]
    assert got["changed"] == [], f"files changed: {got['changed']}"
