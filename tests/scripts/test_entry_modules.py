"""Importing an entry module has no side effects: no absl flag of ours is defined, fd 2 is
never redirected and TensorFlow is not loaded (the console scripts' ``console_main`` does
all of that); each console script of setup.cfg names a function that exists."""
from __future__ import annotations

import configparser
import importlib
import subprocess
import sys

from conftest import ROOT

ENTRY_MODULES = ("train_models", "advtest_iterative", "advtest_others",
                 "scripts.export_keras", "utils.cli.export_keras")

# Run in a fresh interpreter: this test process has long defined the flags and loaded
# TensorFlow. os.dup2 is watched from before the imports (quiet_tensorflow's redirection).
_PROBE = f"""
import os, sys
redirected = []
real_dup2 = os.dup2
os.dup2 = lambda *args, **kwargs: redirected.append(args) or real_dup2(*args, **kwargs)
for name in {ENTRY_MODULES!r}:
    __import__(name)
from absl import flags
ours = [n for n in ("batch_size", "epochs", "attack_method", "num_iter", "out", "dataset")
        if n in flags.FLAGS]
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
assert not ours and not redirected and not heavy, (ours, redirected, heavy)
print("clean")
"""


def test_importing_entry_modules_defines_no_flags_and_leaves_stderr_alone():
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "clean", proc.stderr[-2000:]
    assert proc.stderr == ""


def test_every_console_script_names_an_entry_function():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in
                   config["options.entry_points"]["console_scripts"].strip().splitlines())
    assert set(scripts) == {"mmt-train", "mmt-advtest-iterative", "mmt-advtest-others",
                            "mmt-export"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
