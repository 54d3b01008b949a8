"""Every loss of the comparison trains through train_models.py (one tiny epoch) into its
own run directory, and advtest_iterative.py attacks the result unchanged."""
from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest

from conftest import run_entry, write_fake_mnist_npz

pytestmark = pytest.mark.slow  # end to end: trains models, runs entry points

TINY = ["--dataset=mnist", "--version=1", "--n=1", "--batch_size=20", "--verbose=0",
        "--test_size=40", "--optimizer=mom", "--lr=0.01", "--epochs=1", "--train_size=100"]
BASE = "resnet8v1_mom_lr0.01_batchsize20_withBN"
BASE_MM = "resnet8v1_meanvar10.0_mom_lr0.01_batchsize20_withBN"
RUNS = {  # flags -> (run directory, loss and centers in arch.json)
    "center": (["--loss=center", "--strategy=mirrored"],
               BASE + "_center_lambda0.003_alpha0.5", "center", "mm"),
    "lgm": (["--loss=lgm", "--lgm_margin=0.2"], BASE + "_lgm_margin0.2_lambda0.01", "lgm", "mm"),
    "emc": (["--loss=emc"], BASE_MM + "_emc_alpha0.1", "emc", "mm"),
    "isce": (["--loss=isce"], BASE + "_isce_s1_m0.1", "isce", "mm"),
    "label_smoothing": (["--loss=label_smoothing", "--label_smoothing=0.2"], BASE + "_ls0.2",
                        "label_smoothing", "mm"),
    # the original's use_random run directory
    "mmc_rand": (["--loss=mmc_rand"], BASE_MM + "_random", "mmc", "random"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """All losses trained into one model_dir (so their directories must differ)."""
    root = tmp_path_factory.mktemp("losses")
    write_fake_mnist_npz(root / "data", n_train=100, n_test=40)
    status = {}
    for key, (flags, *_) in RUNS.items():
        status[key] = run_entry("train_models", TINY + flags + [
            f"--data_dir={root / 'data'}", f"--model_dir={root}"])[0]
    return root, status


@pytest.mark.parametrize("key", list(RUNS))
def test_each_loss_trains_into_its_own_directory(trained, key):
    root, status = trained
    assert status[key] == 0
    _, name, loss, centers = RUNS[key]
    run_dir = root / "trained_models" / "mnist" / name
    assert (run_dir / "model.001.weights.h5").exists()
    arch = json.loads((run_dir / "arch.json").read_text())
    assert (arch["loss"], arch["centers"]) == (loss, centers)
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert np.isfinite(float(rows[0]["loss"])) and np.isfinite(float(rows[0]["val_loss"]))
    assert len(list((root / "trained_models" / "mnist").iterdir())) == len(RUNS)


def test_center_loss_centers_are_trained_and_saved(trained):
    from utils.models.classifier import head_layer
    from utils.runs.model_config import ModelConfig
    from utils.models.loading import load_run
    from utils.runs.spec import RunSpec
    root, _ = trained
    spec = RunSpec("mnist", ModelConfig(version=1, n=1, loss="center"), "mom", 0.01, 20)
    loaded = load_run(spec, (28, 28, 3), 10, model_dir=str(root), epoch=1)
    centers = head_layer(loaded.model).class_centers.numpy()
    assert np.all(np.isfinite(centers)) and np.abs(centers).sum(1).min() > 0  # moved from 0


@pytest.mark.parametrize("key,flags,objective", [
    ("lgm", ["--loss=lgm", "--lgm_margin=0.2"], "ce"),
    ("isce", ["--loss=isce"], "ce"),
])
@pytest.mark.slow
def test_advtest_attacks_the_new_losses(trained, capsys, key, flags, objective):
    root, _ = trained
    results = root / f"{key}.jsonl"
    model_flags = [f for f in TINY[:8] if not f.startswith(("--verbose", "--test_size"))]
    code, out, err = run_entry("advtest_iterative", model_flags + flags + [
        f"--data_dir={root / 'data'}", f"--model_dir={root}", "--use_advtrain=False",
        "--epoch=1", f"--results_file={results}", "--progress=False",
        "--attack_method=MadryEtAl", "--target=False", "--eps_256=0,64", "--num_iter=3",
        "--eps_iter_256=16"], capsys)
    assert code == 0, err
    zero, big = [json.loads(line) for line in results.read_text().splitlines()]
    assert zero["objective"] == objective and zero["loss"] == key
    assert zero["adv_accuracy"] == zero["clean_accuracy"]
    assert big["adv_accuracy"] <= big["clean_accuracy"]


def _write_fake_cifar100(directory, n_train=100, n_test=20, seed=0):
    """Keras' cifar-100-python layout: ``train``/``test`` pickles with fine and coarse
    labels (coarse from the real tree)."""
    from ts_centers import CIFAR100_COARSE_OF
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = np.arange(n) % 100
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"fine_labels": fine.tolist(),
                 b"coarse_labels": [CIFAR100_COARSE_OF[f] for f in fine]}
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.slow
def test_hierarchical_centers_train_on_cifar100(tmp_path, capsys):
    _write_fake_cifar100(tmp_path / "cifar-100-python")
    args = [a for a in TINY if not a.startswith(("--dataset", "--test_size"))]
    code, _, err = run_entry("train_models", args + [
        "--dataset=cifar100", "--test_size=20", "--centers=hierarchical",
        f"--data_dir={tmp_path}", f"--model_dir={tmp_path}"], capsys)
    assert code == 0, err
    (run_dir,) = (tmp_path / "trained_models" / "cifar100").iterdir()
    assert run_dir.name == BASE_MM + "_centers-hierarchical"
    assert json.loads((run_dir / "arch.json").read_text())["centers"] == "hierarchical"


@pytest.mark.parametrize("args,expected", [
    (["--loss=emc", "--emc_alpha=0"], "emc_alpha must be > 0"),
    (["--loss=isce", "--isce_s=0.5"], "isce_s must be >= 1"),
    (["--loss=isce", "--isce_m=0"], "isce_m must be > 0"),
    (["--loss=center", "--center_lambda=-1"], "center_lambda must be >= 0"),
    (["--loss=label_smoothing", "--label_smoothing=1"], "label_smoothing must be in [0, 1)"),
    (["--loss=nope"], "loss"),
    (["--loss=mmc_rand", "--centers=mm"], "--loss=mmc_rand means --centers=random"),
    (["--centers=hierarchical"], "coarse (super-class) labels"),
])
def test_bad_loss_flags_exit_2_before_writing(tmp_path, fake_mnist_dir, capsys, args, expected):
    code, _, err = run_entry("train_models", TINY + args + [
        f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}"], capsys)
    assert code == 2, err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "trained_models").exists()
