"""scripts/reproduce_cpu.py: the planned command lines, a dry run (AT-MMC-10 of the five models,
on tiny generated MNIST) that writes records, report and summary, resuming (nothing is
redone), and one-line errors."""
from __future__ import annotations

import collections
import json
import shlex

import pytest

from conftest import entry_config
from scripts import reproduce_cpu as rc
from scripts import reproduce_plan as rp


def listed(capsys, *args):
    assert rc.main(["--print_only", *args]) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def test_full_plan_command_lines(tmp_path, capsys):
    cmds = listed(capsys, f"--runs_dir={tmp_path}/runs", f"--report_dir={tmp_path}/rep",
                  "--stages=train,eval,report,analyses")
    programs = collections.Counter(c[0] for c in cmds)
    assert programs == {"train_models.py": 5, "advtest_iterative.py": 40,
                        "advtest_others.py": 20, "scripts/compare_results.py": 1,
                        "scripts/analyses.py": 2}
    train = [set(c) for c in cmds if c[0] == "train_models.py"]
    assert all({"--n=1", "--optimizer=Adam", "--lr=0.001",
                "--dataset=fashion_mnist"} <= a for a in train)
    at = [a for a in train if "--use_advtrain=True" in a]
    assert all("--epochs=6" in a for a in train if a not in at)
    assert len(at) == 1 and {"--attack_method=MadryEtAl", "--adv_ratio=1.0", "--epochs=5",
                             "--train_size=20000"} <= at[0]
    pgd = [set(c) for c in cmds if "--attack_method=MadryEtAl" in c
           and c[0] == "advtest_iterative.py"]
    assert collections.Counter(next(f for f in a if f.startswith("--num_iter=")) for a in pgd) \
        == {"--num_iter=10": 10, "--num_iter=50": 10}
    assert all({"--eps_256=8,16", "--num_examples=500"} <= a for a in pgd)
    strong = [set(c) for c in cmds if c[0] == "advtest_iterative.py"
              and "--attack_method=MadryEtAl" not in c]
    assert collections.Counter(next(f for f in a if f.startswith("--attack_method="))
                               for a in strong) == {
        "--attack_method=APGD": 5, "--attack_method=APGD-T": 5, "--attack_method=AutoAttack": 10}
    assert all({"--target=False", "--num_iter=50", "--eps_256=8,16", "--num_examples=500"} <= a
               and any(f.startswith("--state_file=") for f in a) for a in strong)
    full = [a for a in strong if "--ensemble=autoattack" in a]  # AutoAttack's FAB-T, Square
    assert len(full) == 5 and all({"--fab_n_iter=100", "--square_n_queries=1000",
                                   "--results_file=" + str(tmp_path) + "/rep/autoattack.jsonl"}
                                  <= a for a in full)
    assert len({next(f for f in a if f.startswith("--state_file=")) for a in strong}) == 20
    cw = [set(c) for c in cmds if "--attack_method=CarliniWagnerL2" in c]
    assert len(cw) == 10 and all({"--num_examples=100", "--CW_max_iterations=100",
                                  "--CW_binary_search_steps=5"} <= a for a in cw)
    report = next(c for c in cmds if c[0] == "scripts/compare_results.py")
    assert "--match_dataset=False" in report


def trained_run_dir(train_args):
    """``(run directory, epochs)`` of ``train_models.py train_args``: where its ``main``
    writes checkpoints (:attr:`utils.training.run.RunConfig.directory`)."""
    import importlib

    from utils.cli.train import run_config_from_flags

    return entry_config(importlib.import_module("train_models"), train_args,
                        build=lambda v: (run_config_from_flags(v, []).directory, v.epochs))


def test_every_evaluation_loads_the_checkpoint_its_training_writes():
    import argparse
    args = argparse.Namespace(dataset="fashion_mnist", data_dir=None, runs_dir="/r",
                              report_dir="/rep", seed=0)
    dirs = set()
    for model in rp.MODELS:
        run_dir, last, epoch = rp.checkpoint_state(model, args, rp.FULL)
        assert last is None
        assert trained_run_dir(rp.train_command(model, args, rp.FULL)[1]) == (run_dir, epoch)
        dirs.add(run_dir)
    assert len(dirs) == 5
    assert any("advtrained_models" in str(d) and "MadryEtAl_advratio1.0" in str(d)
               for d in dirs)


@pytest.mark.slow  # end to end: trains and attacks a tiny AT-MMC-10 (the SCE and other rows
# differ in flags only, which the plan tests above check)
def test_dry_run_writes_report_and_resumes(tmp_path, fake_mnist_dir, capsys):
    rep, runs = tmp_path / "rep", tmp_path / "runs"
    args = ["--dry_run", "--dataset=mnist", f"--data_dir={fake_mnist_dir}",
            f"--runs_dir={runs}", f"--report_dir={rep}", "--only=AT-MMC-10"]
    assert rc.main(args) == 0, capsys.readouterr().err
    pgd = [json.loads(line) for line in (rep / "pgd.jsonl").read_text().splitlines()]
    others = [json.loads(line) for line in (rep / "others.jsonl").read_text().splitlines()]
    assert len(pgd) == 4 * 2  # (PGD-1/2 tar/un) x eps 8, 16
    strong = [json.loads(line) for line in (rep / "apgd.jsonl").read_text().splitlines()]
    assert collections.Counter(r["attack_name"] for r in strong) == {
        "APGD": 2, "APGD-T": 2, "AutoAttack": 2}  # eps 8, 16
    assert all(not r["targeted"] and r["adaptive"] for r in strong)
    full = [json.loads(line) for line in (rep / "autoattack.jsonl").read_text().splitlines()]
    assert len(full) == 2 and all(  # eps 8, 16; tiny budgets in the dry run
        r["members"] == ["APGD-CE", "APGD-T", "FAB-T", "Square"] and not r["targeted"]
        and (r["fab_n_iter"], r["square_n_queries"], r["n_iter"]) == (2, 5, 2)
        and list(r["robust_accuracy_after"]) == r["members"] for r in full)
    assert sorted(r["attack_name"] for r in others) == sorted(
        ["CarliniWagnerL2", "CarliniWagnerL2", "Gaussian", "Rotation"])
    assert all(r["command"].startswith(("advtest_iterative.py ", "advtest_others.py "))
               for r in pgd + others)
    assert {r["loss"] for r in pgd} == {"mmc"}
    assert all("MadryEtAl_advratio1.0" in r["model"] for r in pgd)
    report = (rep / "report.md").read_text()
    assert "Datasets differ" in report and (rep / "report.png").exists()
    assert (rep / "report.csv").exists()
    summary = (rep / "summary.md").read_text()
    assert "Reduced C&W budget" in summary and "| AT-un (MMC-10) | ours |" in summary
    assert "Reduced Square budget** in full AutoAttack: 5 queries" in summary
    assert "ε8 AA-lite" in summary and "ε8 AutoAttack (Square 5 q.)" in summary
    assert "ε16 PGD2-un − AA-lite" in summary
    assert "| 55.0 | – | – | – | 43.48 |" in summary  # AT-MMC: claimed PGD-50 vs RobustBench
    assert "| after FAB-T | after Square | after APGD-T − full | made the difference |" \
        in summary and "| AT-un (MMC-10) | 16 |" in summary
    timings = json.loads((rep / "timings.json").read_text())
    assert {t["step"] for t in timings} == {"train AT-MMC-10", "eval AT-MMC-10", "report"}
    capsys.readouterr()
    # Resuming: trained models and recorded evaluations are not redone.
    assert rc.main([*args, "--stages=train,eval"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and out.count("[skip]") == 1
    assert len((rep / "pgd.jsonl").read_text().splitlines()) == len(pgd)


@pytest.mark.parametrize("bad, message", [
    (["--only=SCE,Foo"], "--only=SCE,Foo"),
    (["--stages=train,deploy"], "--stages"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, bad, message):
    assert rc.main([f"--report_dir={tmp_path}/rep", f"--runs_dir={tmp_path}/runs", *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rep").exists() and not (tmp_path / "runs").exists()


def test_missing_dataset_is_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = rc.main(["--dataset=cifar10", f"--data_dir={empty}", f"--runs_dir={tmp_path}/r",
                    f"--report_dir={tmp_path}/rep"])
    assert code == 2 and "data_batch_1" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()
