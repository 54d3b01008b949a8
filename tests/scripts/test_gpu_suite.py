"""bench/gpu_suite.sh's CPU dry run (DRY_RUN=1) writes its three JSON files with the keys a
GPU run fills; no timing is asserted."""
import json
import os
import subprocess
import sys

import pytest

from conftest import FASHION_DIR, ROOT

pytestmark = pytest.mark.slow  # end to end: 4 tiny trainings and 2 attack benchmarks


def test_gpu_suite_dry_run_writes_expected_json(tmp_path):
    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    env = dict(os.environ, DRY_RUN="1", OUT=str(tmp_path), PYTHON=sys.executable,
               DATA_DIR=str(FASHION_DIR))
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_suite.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    train = json.loads((tmp_path / "gpu_train.json").read_text())
    # The dry run's grid: both precisions and losses, steps_per_loop 50 only (an epoch of
    # the dry run is one step, so k=1 would repeat the same run; a GPU run has both).
    combos = {(r["precision"], r["steps_per_loop"], r["loss"]) for r in train["runs"]}
    assert combos == {(p, 50, loss) for p in ("off", "mixed_float16") for loss in ("sce", "mmc")}
    assert all(r["last_epoch_s"] > 0 and len(r["epoch_s"]) == 2 for r in train["runs"])
    assert set(train["mmc_over_sce"]) == {"off_k50", "mixed_float16_k50"}
    for batch in (4, 8):
        attack = json.loads((tmp_path / f"gpu_attack_b{batch}.json").read_text())
        assert attack["batch_size"] == batch
        assert set(attack["ratio_over_gradient_floor"]) == {"pgd", "apgd_ce"}
        assert all(r > 0 for r in attack["ratio_over_gradient_floor"].values())
        assert all(attack["images_per_s"][k] > 0 for k in ("ours", "cleverhans", "apgd_ce"))
        assert "attack_throughput.py" in attack["command"]
