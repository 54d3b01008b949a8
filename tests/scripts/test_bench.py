"""The benchmarks run (tiny settings) and write their JSON; no timing is asserted here.
(bench/attack_throughput.py runs in the bench/gpu_suite.sh dry run: test_gpu_suite.py.)"""
import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # end to end: starts entry scripts


def _run(script, *args):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_train_step_bench_writes_ratio(tmp_path):
    out = tmp_path / "t.json"
    _run("train_step.py", "--n=1", "--steps=1", "--rounds=1", "--force",
         f"--out={out}")  # --force: the test suite itself loads the machine
    result = json.loads(out.read_text())
    assert result["ratio_mmc_over_sce"] > 0
    assert set(result["median_step_s"]) == {"sce", "mmc", "floor", "keras_fit"}
    assert result["ratio_sce_over_floor"] > 0 and result["ratio_sce_over_keras_fit"] > 0
    assert "tensorflow" in result["versions"] and "train_step.py" in result["command"]


def test_apgd_vs_art_bench_writes_both_accuracies(tmp_path):
    import pytest
    pytest.importorskip("art")
    from conftest import FASHION_DIR
    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    out = tmp_path / "art.json"
    _run("apgd_vs_art.py", "--n=40", "--max_iter=3", "--train_steps=5", "--batch_size=20",
         f"--out={out}")
    result = json.loads(out.read_text())
    assert set(result["robust_accuracy"]) == {"ours", "art"}
    assert result["ratio_ours_over_art"] > 0 and result["art_version"]
    assert max(result["max_linf_perturbation"].values()) <= result["eps"] + 1e-6


@pytest.mark.slow
def test_square_vs_art_bench_writes_both_accuracies(tmp_path):
    pytest.importorskip("art")
    from conftest import FASHION_DIR
    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    out = tmp_path / "square.json"
    _run("square_vs_art.py", "--n=40", "--n_queries=5", "--train_steps=5", "--batch_size=20",
         f"--out={out}")
    result = json.loads(out.read_text())
    assert set(result["robust_accuracy"]) == {"ours", "art"}
    assert result["ratio_ours_over_art"] > 0 and result["compared_images"] == 40
    assert max(result["max_perturbation"].values()) <= result["eps"] + 1e-6


@pytest.mark.slow
def test_others_vs_art_bench_writes_all_three_attacks(tmp_path):
    pytest.importorskip("art")
    from conftest import FASHION_DIR
    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    out = tmp_path / "o.json"
    _run("others_vs_art.py", "--n=12", "--train_steps=20", "--ead_iter=3",
         "--ead_binary_steps=1", "--ead_n=4", "--deepfool_iter=2", f"--out={out}")
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"EAD", "DeepFool", "JSMA"}
    for res in result["results"].values():
        assert set(res) >= {"ours", "art", "success_gap_points", "speed_ratio_ours_over_art"}
        assert 0.0 <= res["ours"]["success_rate"] <= 1.0 and res["art"]["seconds"] > 0
