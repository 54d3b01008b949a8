"""The import contracts of setup.cfg hold: layers point one way, the runs layer loads no
TensorFlow, no import cycles (import-linter's ``lint-imports``)."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_lint_imports_keeps_every_contract():
    exe = pathlib.Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail("lint-imports missing: install the test extra (pip install -e '.[test]')")
    out = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in out.stdout


def test_importing_the_runs_layer_loads_no_tensorflow():
    code = ("import sys, utils.runs.spec, utils.runs.checkpoints; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
