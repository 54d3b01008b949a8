"""scripts/export_keras.py and --model_path: a Fashion-MNIST run out as .keras and back in."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FASHION_DIR, ROOT, run_entry

RUN = ["--dataset=fashion_mnist", "--version=1", "--n=1", "--batch_size=50",
       "--optimizer=Adam", "--lr=0.001"]
PGD = ["--attack_method=MadryEtAl", "--target=False", "--eps_256=0,8", "--num_iter=10",
       "--num_examples=100", "--progress=False", "--seed=0"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST not installed")
    root = tmp_path_factory.mktemp("export")
    code, _, err = run_entry("train_models", RUN + [
        f"--model_dir={root}", "--epochs=1", "--train_size=1000", "--test_size=100",
        "--verbose=0"])
    assert code == 0, err
    out = root / "mmc.keras"
    code, _, _ = run_entry("scripts.export_keras", RUN + [
        f"--model_dir={root}", "--use_advtrain=False", "--epoch=1", f"--out={out}"])
    assert code == 0 and out.exists()
    return root, out


def _accuracies(path):
    return [(r["clean_accuracy"], r["adv_accuracy"], r["objective"])
            for r in map(json.loads, path.read_text().splitlines())]


@pytest.mark.slow
def test_model_path_gives_the_same_clean_and_pgd10_accuracy(exported):
    root, out = exported
    by_flags, by_file = root / "flags.jsonl", root / "file.jsonl"
    code, _, err = run_entry("advtest_iterative", RUN + PGD + [
        f"--model_dir={root}", "--use_advtrain=False", "--epoch=1",
        f"--results_file={by_flags}"])
    assert code == 0, err
    code, _, err = run_entry("advtest_iterative", PGD + [
        "--dataset=fashion_mnist", f"--model_path={out}", f"--results_file={by_file}"])
    assert code == 0, err
    assert _accuracies(by_file) == _accuracies(by_flags)
    (zero, eight) = _accuracies(by_file)
    assert zero[0] == zero[1] and eight[1] < eight[0] and eight[2] == "mmc_un1"
    record = json.loads(by_file.read_text().splitlines()[0])
    assert record["model_path"] == str(out) and len(record["model_sha256"]) == 64
    assert record["run"] is None


@pytest.mark.slow
def test_export_reloads_in_safe_mode_with_only_the_registered_layers(exported):
    _, out = exported
    script = ("import sys, numpy as np, keras, keras_layers; "
              f"m = keras.saving.load_model({str(out)!r}, safe_mode=True); "
              "x = np.full((2, 28, 28, 3), 0.5, np.float32); "
              "print(m(x).shape, 'centers' in str(m.get_config()))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split()[-3:] == ["(2,", "10)", "False"]


@pytest.mark.slow
def test_bad_model_path_input_exits_2_and_writes_nothing(exported, tmp_path, capsys):
    import keras
    _, out = exported
    inputs = keras.Input((28, 28, 3))
    not_classifier = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    flat = tmp_path / "conv.keras"
    not_classifier.save(flat)
    results = tmp_path / "r.jsonl"
    for extra in ([f"--model_path={flat}"], [f"--model_path={out}", "--version=2"],
                  [f"--model_path={out}", "--use_MMLDA=False"]):
        code, _, err = run_entry("advtest_iterative", PGD + [
            "--dataset=fashion_mnist", f"--results_file={results}", *extra], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert not results.exists()
