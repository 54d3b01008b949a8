"""scripts/reproduce_cifar10_gpu.sh: the full GPU command lines (printed, and checked for
flags and for every evaluation finding a checkpoint its training writes) and a CPU dry run
(DRY_RUN=1) on fake CIFAR-10 files, executed in-process.

The dry run executes every evaluation command shape: the AT-tar MMC-10 row is trained,
every evaluation of it runs (PGD tar/un with two step counts, C&W tar/un, SPSA tar/un at
two ε, noise, rotation), then the comparison report is written. The other seven rows
differ from it only in flags, which the static tests check (``DRY_RUN=1 bash
scripts/...`` runs them all: 105 processes that each start TensorFlow, roughly 20-30
minutes on 2 CPU cores, not measured).
"""
from __future__ import annotations

import collections
import importlib
import json
import os
import pathlib
import pickle
import shlex
import subprocess

import numpy as np
import pytest
from absl import flags

from conftest import entry_config, run_entry

pytestmark = pytest.mark.slow  # end to end: starts entry scripts

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reproduce_cifar10_gpu.sh"
MODULES = {"train_models.py": "train_models", "advtest_iterative.py": "advtest_iterative",
           "advtest_others.py": "advtest_others",
           "scripts/compare_results.py": "scripts.compare_results"}
ROWS = 8  # SCE, MMLDA, MMC-10 (rand), MMC-10, AT-{tar,un} x {SCE, MMC-10}


def commands(**env):
    """The recipe's commands, as ``(module, args)``, printed with PRINT_ONLY=1."""
    out = subprocess.run(["bash", str(SCRIPT)], env=dict(os.environ, PRINT_ONLY="1", **env),
                         capture_output=True, text=True, check=True).stdout
    parsed = []
    for line in out.splitlines():
        _, script, *args = shlex.split(line)
        parsed.append((MODULES[script], args))
    return parsed


def test_full_recipe_command_lines():
    cmds = commands(OUT="/gpu/out", DATA_DIR="/data")
    by_module = collections.Counter(m for m, _ in cmds)
    assert by_module == {"train_models": ROWS, "advtest_iterative": 4 * ROWS,
                         "advtest_others": 8 * ROWS, "scripts.compare_results": 1}
    for module, args in cmds:
        if module == "train_models":
            assert {"--epochs=200", "--strategy=mirrored", "--mixed_precision=mixed_float16",
                    "--n=5", "--optimizer=mom", "--lr=0.01", "--batch_size=50",
                    "--data_dir=/data"} <= set(args)
            if "--use_advtrain=True" in args:
                assert {"--attack_method=MadryEtAl", "--adv_ratio=1.0"} <= set(args)
    pgd = [set(a) for m, a in cmds if m == "advtest_iterative"]
    assert all("--eps_256=8,16" in a and "--attack_method=MadryEtAl" in a for a in pgd)
    assert collections.Counter((a & {"--num_iter=10", "--num_iter=50"}).pop() for a in pgd) == {
        "--num_iter=10": 2 * ROWS, "--num_iter=50": 2 * ROWS}
    others = [a for m, a in cmds if m == "advtest_others"]
    cw = [a for a in others if "--attack_method=CarliniWagnerL2" in a]
    assert len(cw) == 2 * ROWS and all({"--CW_binary_search_steps=9",
                                        "--CW_max_iterations=1000"} <= set(a) for a in cw)
    spsa = [a for a in others if "--attack_method=SPSA" in a]
    assert len(spsa) == 4 * ROWS and all("--SPSA_samples=128" in a for a in spsa)


def _lookup_paths(cmds):
    """``(checkpoints the training commands write, Counter of those the evaluations load)``."""
    from utils.runs import checkpoints as ckpt
    from utils.cli.flags import eval_run_spec, model_config_from_flags
    from utils.cli.train import run_config_from_flags

    def written(v):  # where train_models.py's main writes its last checkpoint
        return ckpt.checkpoint_path(run_config_from_flags(v, []).directory, v.epochs)

    def loaded(v):
        return eval_run_spec(v, model_config_from_flags(v)).find_checkpoint(v.model_dir,
                                                                            v.epoch)[1]

    trained, evaluated = set(), collections.Counter()
    for module, args in cmds:
        if module == "scripts.compare_results":
            continue
        if module == "train_models":
            trained.add(entry_config(importlib.import_module(module), args, build=written))
        else:
            evaluated[entry_config(importlib.import_module(module), args, build=loaded)] += 1
    return trained, evaluated


def test_every_evaluation_loads_a_checkpoint_its_training_writes():
    trained, evaluated = _lookup_paths(commands(OUT="/gpu/out"))
    assert len(trained) == ROWS
    assert set(evaluated) == trained
    assert set(evaluated.values()) == {12}
    assert any("advtrained_models" in str(p) and "targetMadryEtAl" in str(p) for p in trained)


def test_center_and_lgm_rows_once_train_models_has_loss():
    importlib.import_module("train_models").define_flags()
    if "loss" not in flags.FLAGS:
        pytest.skip("train_models.py has no --loss yet (Center / L-GM rows)")
    trained, evaluated = _lookup_paths(commands(OUT="/gpu/out", MODELS="Center L-GM"))
    assert len(trained) == 2 and set(evaluated) == trained
    assert set(evaluated.values()) == {12}


def test_unknown_model_is_exit_2():
    result = subprocess.run(["bash", str(SCRIPT)], env=dict(os.environ, PRINT_ONLY="1",
                                                            MODELS="SCE Foo"),
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown model Foo" in result.stderr
    assert result.stdout == ""


def write_fake_cifar10(root: pathlib.Path, n_train: int = 50, n_test: int = 20) -> None:
    """CIFAR-10 in Keras' ``cifar-10-batches-py`` layout: a bright band per class."""
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(n):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 60, (n, 3, 32, 32)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, label % 3, (label // 3) * 8:(label // 3) * 8 + 8] = 230
        return {b"data": x.reshape(n, -1), b"labels": y.tolist()}

    for i in range(1, 6):
        with open(directory / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(n_train // 5), f, protocol=2)
    with open(directory / "test_batch", "wb") as f:
        pickle.dump(batch(n_test), f, protocol=2)


def _row(args):
    """The recipe row a command belongs to, from its flags."""
    a = set(args)
    if "--use_MMLDA=False" in a:
        return "SCE" if "--use_advtrain=False" in a else "AT-SCE"
    if {"--use_advtrain=True", "--use_target=True", "--use_ball=True"} <= a:
        return "AT-tar-MMC-10"
    return "other"


def _in_dry_run_test(module, args):
    """Train AT-tar MMC-10, every evaluation of it, the comparison (the other rows differ in
    flags only: test_full_recipe_command_lines and the checkpoint test above)."""
    return module == "scripts.compare_results" or _row(args) == "AT-tar-MMC-10"


def test_dry_run(tmp_path, capsys, monkeypatch):
    write_fake_cifar10(tmp_path / "data")
    out = tmp_path / "out"
    cmds = commands(DRY_RUN="1", OUT=str(out), DATA_DIR=str(tmp_path / "data"))
    assert all("--epochs=1" in a and "--strategy=auto" in a and "--n=1" in a
               for m, a in cmds if m == "train_models")
    assert all("--num_examples=20" in a for m, a in cmds if m.startswith("advtest"))
    wanted = [(m, a) for m, a in cmds if _in_dry_run_test(m, a)]
    assert len([m for m, _ in wanted if m == "train_models"]) == 1
    assert len([m for m, _ in wanted if m.startswith("advtest")]) == 12
    monkeypatch.chdir(ROOT)
    for module, args in wanted:
        if module == "advtest_iterative":  # the masking checks: test_advtest_iterative.py
            args = args + ["--masking_checks=False"]
        code, _, err = run_entry(module, args, capsys)
        assert code == 0, f"{module} {' '.join(args)}: {err}"
    pgd = [json.loads(line) for line in (out / "results/pgd.jsonl").read_text().splitlines()]
    others = [json.loads(line) for line in (out / "results/others.jsonl").read_text().splitlines()]
    assert len(pgd) == 4 * 2  # eps 8 and 16 per command
    assert sorted(r["attack_name"] for r in others) == sorted(
        ["CarliniWagnerL2"] * 2 + ["SPSA"] * 4 + ["Gaussian", "Rotation"])
    report = (out / "report/cifar10_resnet32.md").read_text()
    assert "Architectures (ResNet depth) differ" in report
    assert "| 002 Table 1 | AT-tar (MMC-10) | eps=16/255 PGD_{10}^{un} |" in report
    assert "| 002 Table 2 | AT-tar (MMC-10) | Part I C&W^{tar} |" in report
    assert (out / "report/cifar10_resnet32.png").exists()
