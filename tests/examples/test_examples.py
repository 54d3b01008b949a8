"""The examples run on tiny data, and README's library example is examples/readme_example.py."""
from __future__ import annotations

import importlib.util
import pathlib
import re
import runpy
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MARKER = "<!-- readme-example -->"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mmc_head_fit_then_autoattack_on_its_keras_file(tmp_path, capsys):
    out = tmp_path / "mmc.keras"
    accuracy = _example("mmc_head_fit").main(
        ["--epochs", "1", "--n", "64", "--num_classes", "5", "--feature_dim", "4",
         "--out", str(out)])
    assert 0.0 <= accuracy <= 1.0 and out.exists()
    result = _example("evaluate_keras_file").main(
        [str(out), "--synthetic", "--n", "6", "--tiny", "--batch_size", "6", "--eps", "0.05"])
    assert result.members == ("APGD-CE", "APGD-T", "FAB-T", "Square")
    assert result.clean_accuracy == 1.0 and 0.0 <= result.robust_accuracy <= 1.0
    assert "robust accuracy" in capsys.readouterr().out


def test_original_h5_exports_to_a_keras_file_on_pixels(tmp_path):
    pytest.importorskip("tf_keras")
    sys.path.insert(0, str(ROOT / "tests" / "models"))
    from original_keras2 import build_original, randomise

    import keras

    import mmt
    shape = (8, 8, 3)
    centers = mmt.get_centers("mm", num_classes=10, feature_dim=64, c_mm=10.0)
    saved, reference = build_original(1, 1, shape, 10, "mmc", centers=centers)
    randomise(saved, seed=0)
    checkpoint = tmp_path / "model.001.h5"
    saved.save_weights(str(checkpoint))
    mean = np.full(shape, 0.4, np.float32)
    np.save(tmp_path / "mean.npy", mean)
    out = tmp_path / "original.keras"
    _example("original_h5_export").main(
        [str(checkpoint), "--out", str(out), "--input_shape", "8,8,3", "--version", "1",
         "--n", "1", "--loss", "mmc", "--c_mm", "10", "--mean", str(tmp_path / "mean.npy")])
    pixels = np.random.default_rng(1).uniform(0, 1, (3,) + shape).astype(np.float32)
    got = np.asarray(keras.saving.load_model(out, safe_mode=True)(pixels))
    want = reference.predict(pixels - mean, verbose=0)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_readme_example_is_the_example_file_and_runs(monkeypatch, capsys):
    code = (EXAMPLES / "readme_example.py").read_text()
    assert len(code.strip().splitlines()) <= 15
    monkeypatch.setattr(sys, "argv", ["readme_example.py"])
    runpy.run_path(str(EXAMPLES / "readme_example.py"), run_name="__main__")
    assert re.search(r"clean [01]\.\d+, robust [01]\.\d+", capsys.readouterr().out)
    readme = (ROOT / "README.md").read_text()
    if MARKER not in readme:
        pytest.skip(f"README.md has no {MARKER} line yet (the integrator adds it): the example "
                    "ran, the README comparison is skipped")
    after = readme.split(MARKER, 1)[1]
    block = re.search(r"```python\n(.*?)```", after, re.S)
    assert block, f"no ```python block after {MARKER} in README.md"
    assert block.group(1).strip() == code.strip(), (
        "README's library example differs from examples/readme_example.py; paste the file")
