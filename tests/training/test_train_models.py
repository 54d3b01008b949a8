"""train_models.py end to end on tiny generated data: files, resume, bad input (kill -9 then
--resume: tests/training/test_faults.py)."""
from __future__ import annotations

import csv
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from conftest import run_entry

TINY = ["--dataset=mnist", "--version=1", "--n=1", "--batch_size=20", "--verbose=0",
        "--test_size=40", "--optimizer=mom", "--lr=0.01"]


def call(args, capsys):
    """Run train_models.main in-process; returns (exit status, stdout, stderr)."""
    return run_entry("train_models", args, capsys)


def run_dir_of(model_dir: pathlib.Path) -> pathlib.Path:
    (run_dir,) = (model_dir / "trained_models" / "mnist").iterdir()
    return run_dir


@pytest.mark.slow
def test_trains_and_writes_the_run_directory(tmp_path, fake_mnist_dir, capsys):
    code, out, err = call(TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
                                  "--epochs=2", "--checkpoint_every=5"], capsys)
    assert code == 0, err
    run_dir = run_dir_of(tmp_path)
    assert run_dir.name == "resnet8v1_meanvar10.0_mom_lr0.01_batchsize20_withBN"
    names = {p.name for p in run_dir.iterdir()}
    # every 5 epochs and the last one: only epoch 2 here
    assert {"model.002.weights.h5", "state.002.index", "state.002.data-00000-of-00001",
            "history.csv", "flags.json", "arch.json", "versions.json", "logs"} <= names
    modes = {p.name: p.stat().st_mode & 0o777 for p in run_dir.iterdir() if p.is_file()}
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes  # was 0600 (issue 16)
    assert "model.001.weights.h5" not in names
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert json.loads((run_dir / "flags.json").read_text())["mean_var"] == 10
    assert json.loads((run_dir / "arch.json").read_text())["loss"] == "mmc"
    assert "final test accuracy" in out


@pytest.mark.parametrize("extra,name", [
    (["--use_MMLDA=False"], "resnet8v1_mom_lr0.01_batchsize20_withBN"),
    (["--use_ball=False"], "resnet8v1_meanvar10.0_mom_lr0.01_batchsize20_withBN_softmax"),
    (["--use_random=True", "--optimizer=Adam", "--lr=0.001"],
     "resnet8v1_meanvar10.0_Adam_lr0.001_batchsize20_withBN_random"),
])
@pytest.mark.slow
def test_original_flags_select_loss_and_directory(tmp_path, fake_mnist_dir, capsys, extra, name):
    code, _, err = call(TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
                                "--epochs=1", "--train_size=40"] + extra, capsys)
    assert code == 0, err
    assert run_dir_of(tmp_path).name == name


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(tmp_path, fake_mnist_dir, capsys):
    base = TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
                   "--checkpoint_every=1", "--augment=False"]
    assert call(base + ["--epochs=1"], capsys)[0] == 0
    run_dir = run_dir_of(tmp_path)
    import tensorflow as tf
    first = tf.train.load_variable(str(run_dir / "state.001"),
                                   "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")
    code, out, err = call(base + ["--epochs=2", "--resume", "--verbose=1"], capsys)
    assert code == 0, err
    assert "resumed from epoch 1" in out
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # the optimizer state was restored, not rebuilt: its step counter continued
    second = tf.train.load_variable(str(run_dir / "state.002"),
                                    "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")
    assert int(second) == 2 * int(first) > 0
    assert not list(run_dir.glob("optimizer.*.npz"))


def test_resume_without_checkpoint_is_an_error(tmp_path, fake_mnist_dir, capsys):
    code, _, err = call(TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
                                "--epochs=1", "--resume"], capsys)
    assert code == 2
    assert "holds no model.NNN.weights.h5" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "trained_models").exists()


@pytest.mark.slow
def test_checkpoint_of_another_architecture_is_refused(tmp_path, fake_mnist_dir, capsys):
    base = TINY + [f"--data_dir={fake_mnist_dir}", "--epochs=1", "--train_size=40"]
    assert call(base + [f"--model_dir={tmp_path / 'a'}", "--use_dense=False"], capsys)[0] == 0
    assert call(base + [f"--model_dir={tmp_path / 'b'}"], capsys)[0] == 0
    foreign, target = run_dir_of(tmp_path / "a"), run_dir_of(tmp_path / "b")
    # a foreign weights file with no arch.json: the loader's error, in one line
    (target / "arch.json").unlink()
    for f in [*target.glob("model.*"), *target.glob("state.*")]:
        f.unlink()
    shutil.copy(foreign / "model.001.weights.h5", target / "model.001.weights.h5")
    code, _, err = call(base + [f"--model_dir={tmp_path / 'b'}", "--epochs=2", "--resume"], capsys)
    assert code == 2 and "another architecture" in err, err
    assert len(err.strip().splitlines()) == 1
    # with arch.json present the mismatch is named before any loading
    shutil.copy(foreign / "arch.json", target / "arch.json")
    code, _, err = call(base + [f"--model_dir={tmp_path / 'b'}", "--epochs=2", "--resume"], capsys)
    assert code == 2 and "different architecture" in err and "use_dense" in err


@pytest.mark.parametrize("args,expected", [
    (["--dataset=imagenet"], "imagenet"),
    (["--optimizer=rmsprop"], "unknown optimizer 'rmsprop'"),
    (["--strategy=tpu"], "strategy"),
    (["--mean_var=0"], "mean_var must be > 0"),
    (["--mean_var=-3"], "mean_var must be > 0"),
    (["--feature_dim=0"], "feature_dim"),
    (["--batch_size=0"], "batch_size"),
    (["--version=3"], "version"),
    (["--mixed_precision=fp8"], "mixed_precision"),
])
def test_bad_flags_give_one_line_and_exit_2(tmp_path, fake_mnist_dir, capsys, args, expected):
    code, _, err = call(TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
                                "--epochs=1"] + args, capsys)
    assert code == 2, err
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "trained_models").exists()


def test_missing_dataset_names_files_and_places(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = call(["--dataset=cifar10", f"--data_dir={empty}", f"--model_dir={tmp_path}"],
                        capsys)
    assert code == 2
    assert "data_batch_1" in err and str(empty) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "trained_models").exists()


def test_unwritable_model_dir(tmp_path, fake_mnist_dir, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code, _, err = call(TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={blocker}",
                                "--epochs=1"], capsys)
    assert code == 2 and "writable --model_dir" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_logits(tmp_path, fake_mnist_dir, capsys, policy):
    code, out, err = call(TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
                                  "--epochs=1", "--train_size=40", f"--mixed_precision={policy}"],
                          capsys)
    assert code == 0, err
    rows = list(csv.DictReader(open(run_dir_of(tmp_path) / "history.csv")))
    assert np.isfinite(float(rows[0]["loss"]))
