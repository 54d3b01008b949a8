"""scripts/analyses.py's run (config_from_flags, run_all) in-process on tiny generated MNIST
(models trained here), its --skip_done and its errors; one subprocess smoke test."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from conftest import entry_config
from utils.errors import UsageError

pytestmark = pytest.mark.slow  # end to end: trains models

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _config(args):
    """scripts/analyses.py's flags ``args`` -> its validated AnalysesConfig."""
    from scripts import analyses
    return entry_config(analyses, args)


def _run(args, capsys):
    """Run in-process; its stdout."""
    from scripts import analyses
    capsys.readouterr()
    analyses.run_all(_config(args))
    return capsys.readouterr().out

TINY = ["--dataset=mnist", "--epoch=1", "--train_size=50", "--num_examples=20",
        "--train_missing", "--ood_dataset=fashion_mnist", "--ood_examples=5"]


def test_every_analysis_writes_its_outputs(tmp_path, fake_mnist_dir, capsys):
    out = tmp_path / "an"
    args = [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path / 'runs'}",
            f"--out_dir={out}", *TINY, "--timing_steps=1", "--timing_rounds=1",
            "--timing_advtrain=False", "--cmm_values=1,10", "--cmm_pgd_examples=3",
            "--cmm_pgd_iter=1", "--features_examples=10", "--density_examples=20", "--skip_done"]
    _run(args, capsys)
    names = ("training_time", "ood_uncertainty", "gsce_dependency", "cmm_sweep",
             "features_2d", "sample_density")
    for name in names:
        payload = json.loads((out / f"{name}.json").read_text())
        assert payload["command"] and payload["settings"]["dataset"] == "mnist"
        assert (out / f"{name}.md").read_text().startswith("# ")
    assert (out / "features_2d.png").read_bytes().startswith(b"\x89PNG")
    timing = json.loads((out / "training_time.json").read_text())
    assert [r["label"] for r in timing["rows"]] == ["SCE", "MMC-10"]
    assert timing["ratios"]["MMC/SCE"] > 0
    ood = json.loads((out / "ood_uncertainty.json").read_text())
    assert [m["model"] for m in ood["models"]] == ["SCE", "MMC-10"]
    kinds = list(ood["models"][0]["results"])
    assert any("fashion_mnist test images (real)" in k for k in kinds)
    assert any("rendered digits (generated" in k for k in kinds)
    gsce = json.loads((out / "gsce_dependency.json").read_text())
    assert all(0 <= m["non_true"]["share"] <= 1 for m in gsce["models"])
    sweep = json.loads((out / "cmm_sweep.json").read_text())
    assert [r["c_mm"] for r in sweep["rows"]] == [1.0, 10.0]
    assert "meanvar1.0_" in sweep["rows"][0]["run_name"]  # float C_MM (runspec)
    density = json.loads((out / "sample_density.json").read_text())
    assert [m["model"] for m in density["models"]] == ["SCE", "MMLDA", "MMC-10"]
    assert [m["profile"]["center"] for m in density["models"]] == ["class mean", "head", "head"]
    assert all(sum(m["profile"]["class_sizes"]) == 20 for m in density["models"])
    assert (out / "sample_density.png").read_bytes().startswith(b"\x89PNG")
    # Same settings again: everything is skipped, nothing is retrained.
    stdout = _run(args, capsys)
    assert stdout.count("skipped") == len(names)


def test_sample_density_writes_its_outputs_on_a_tiny_model(tmp_path, fake_mnist_dir, capsys):
    out = tmp_path / "an"
    _run([f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path / 'runs'}", f"--out_dir={out}",
          *TINY, "--which=sample_density", "--density_models=MMC-10", "--density_examples=30"],
         capsys)
    payload = json.loads((out / "sample_density.json").read_text())
    profile = payload["models"][0]["profile"]
    assert payload["n"] == 30 and profile["n"] == 30 and profile["center"] == "head"
    assert all(row[-1] == size for row, size in zip(profile["counts"], profile["class_sizes"]))
    assert profile["center_separation"] > 0 and len(profile["radii"]) == 20
    assert (out / "sample_density.md").read_text().startswith("# Sample density")
    assert (out / "sample_density.png").read_bytes().startswith(b"\x89PNG")


def test_missing_checkpoint_without_train_missing_is_refused(tmp_path, fake_mnist_dir, capsys):
    out = tmp_path / "an"
    with pytest.raises(UsageError) as info:
        _run(["--dataset=mnist", f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
              f"--out_dir={out}", "--which=gsce"], capsys)
    assert str(info.value).startswith("no checkpoint") and "--train_missing" in str(info.value)
    assert not list(out.glob("*"))


def test_entry_script_smoke(tmp_path, fake_mnist_dir):
    """The one subprocess run: a missing checkpoint is an error line, exit 2."""
    out = tmp_path / "an"
    done = subprocess.run(
        [sys.executable, "scripts/analyses.py", "--dataset=mnist",
         f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}", f"--out_dir={out}",
         "--which=gsce"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    # (this script does not hide TensorFlow's start-up lines: the error is the last line)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no checkpoint") and "--train_missing" in last
    assert "Traceback" not in done.stderr
    assert not list(out.glob("*"))


def test_bad_flags_are_refused(tmp_path):
    for bad in (["--which=foo"], ["--ood_models=SCE,Foo"], ["--gsce_factor=1"],
                ["--density_models=Foo"]):
        with pytest.raises(UsageError):
            _config([f"--out_dir={tmp_path / 'x'}", *bad])
    from absl import flags
    with pytest.raises(flags.IllegalFlagValueError):  # below its lower bound: absl refuses
        _config([f"--out_dir={tmp_path / 'x'}", "--density_examples=1"])
    assert not (tmp_path / "x").exists()


def test_ood_inputs_say_what_stands_in_for_a_missing_dataset(tmp_path, fake_mnist_dir):
    from scripts import analyses
    from utils.data import load_dataset

    config = _config(["--dataset=mnist", f"--data_dir={tmp_path}", "--ood_dataset=cifar10",
                      "--ood_examples=4"])
    data = load_dataset("mnist", str(fake_mnist_dir), test_size=6)
    sets, notes = analyses.ood_inputs(config, data)
    assert len(notes) == 1 and "real cifar10 is not on this machine" in notes[0]
    assert list(sets) == ["rendered digits (generated, MNIST-like)",
                          "uniform noise (generated)", "inverted mnist test images (1 - x)"]
    for x in sets.values():
        assert x.shape == (4, 28, 28, 3) and x.min() >= 0 and x.max() <= 1
