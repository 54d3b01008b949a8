"""advtest_iterative.py's run (utils.evaluation.iterative_run) on a tiny model trained by
train_models.py: configs built from flag lists by utils.cli.iterative.config_from_flags and
run in-process; the entry script as a process in a smoke test and a SIGTERM test."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, entry_config, run_entry, write_fake_mnist_npz

pytestmark = pytest.mark.slow  # trains a model per module, attacks it end to end

ARCH = ["--dataset=mnist", "--version=1", "--n=1", "--batch_size=20", "--optimizer=Adam",
        "--lr=0.001"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("advtest")
    data = root / "data"
    write_fake_mnist_npz(data, n_train=400, n_test=40)
    code, _, err = run_entry("train_models", ARCH + [
        f"--data_dir={data}", f"--model_dir={root}", "--epochs=6", "--verbose=0",
        "--augment=False"], None)
    assert code == 0, err
    return root, data


def _config(args):
    """advtest_iterative.py's flags ``args`` -> its validated IterativeConfig."""
    import advtest_iterative
    from utils.cli.iterative import config_from_flags
    return entry_config(advtest_iterative, args, config_from_flags)


def _args(trained, results, *extra):
    """The run's flags, the masking checks off (they cost a PGD-30 on the first batch per
    run; the tests that check them pass ``--masking_checks=True``, which comes later and
    wins)."""
    root, data = trained
    return ARCH + [f"--data_dir={data}", f"--model_dir={root}", "--use_advtrain=False",
                   "--epoch=6", f"--results_file={results}", "--progress=False",
                   "--masking_checks=False", *extra]


def _advtest(trained, capsys, *extra):
    """Run in-process; ``(stdout, results file)``; the records are appended to it."""
    from utils.evaluation.iterative_run import run
    results = trained[0] / "res.jsonl"
    capsys.readouterr()
    run(_config(_args(trained, results, *extra)))
    return capsys.readouterr().out, results


def _refused(trained, *extra):
    """The one-line UsageError message of a run the flags ``extra`` make impossible."""
    from utils.errors import UsageError
    from utils.evaluation.iterative_run import run
    with pytest.raises(UsageError) as info:
        run(_config(_args(trained, trained[0] / "res.jsonl", *extra)))
    message = " ".join(str(info.value).split())
    assert message, "an error with no message"
    return message


@pytest.mark.slow
def test_entry_script_smoke(trained, tmp_path):
    """The one subprocess run: exit 0, a record, then a bad flag is one line and exit 2."""
    results = tmp_path / "r.jsonl"
    cmd = [sys.executable, "advtest_iterative.py",
           *_args(trained, results, "--attack_method=FastGradientMethod", "--target=False",
                  "--eps_256=0", "--masking_checks=True")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [record] = [json.loads(line) for line in results.read_text().splitlines()]
    assert record["script"] == "advtest_iterative" and record["eps_256"] == 0.0
    assert record["adv_accuracy"] == record["clean_accuracy"]
    assert record["masking_warnings"] == []
    assert "1 records appended" in done.stdout


@pytest.mark.slow
def test_eps_zero_gives_clean_accuracy_and_huge_eps_breaks_it(trained, capsys):
    out, results = _advtest(trained, capsys, "--attack_method=MadryEtAl",
                            "--target=False", "--eps_256=0,256", "--num_iter=20",
                            "--eps_iter_256=32")
    records = [json.loads(line) for line in results.read_text().splitlines()][-2:]
    zero, huge = records
    assert zero["objective"] == "mmc_un1" and zero["adaptive"] is True
    assert zero["adv_accuracy"] == zero["clean_accuracy"]
    assert zero["clean_accuracy"] >= 0.8, "the test model did not learn"
    assert zero["masking_warnings"] is None and huge["masking_warnings"] is None  # not checked
    assert huge["adv_accuracy"] <= 0.05
    assert results.with_suffix(".csv").read_text().count("\n") >= 3
    assert "eps 0/256" in out


@pytest.mark.slow
def test_targeted_huge_eps_hits_targets(trained, capsys):
    out, results = _advtest(trained, capsys, "--attack_method=BasicIterativeMethod",
                            "--target=True", "--eps_256=256", "--num_iter=20",
                            "--eps_iter_256=32")
    record = json.loads(results.read_text().splitlines()[-1])
    assert record["objective"] == "mmc_tar1" and record["targeted"] is True
    assert record["target_success"] >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("name", ["FastGradientMethod", "BasicIterativeMethod"])
def test_cleverhans_backend_records_and_matches_native(trained, capsys, name):
    """The same objective through cleverhans' loop: same accuracy, backend recorded."""
    accs = {}
    for backend in ("native", "cleverhans"):
        _, results = _advtest(trained, capsys, f"--attack_method={name}",
                              "--target=False", "--eps_256=16", "--num_iter=5",
                              f"--attack_backend={backend}")
        record = json.loads(results.read_text().splitlines()[-1])
        assert record["attack_backend"] == backend and record["objective"] == "mmc_un1"
        accs[backend] = record["adv_accuracy"]
    assert accs["native"] == accs["cleverhans"]


def test_non_adaptive_uses_cross_entropy(trained, capsys):
    _, results = _advtest(trained, capsys, "--attack_method=FastGradientMethod",
                          "--target=False", "--eps_256=8", "--adaptive=False")
    assert json.loads(results.read_text().splitlines()[-1])["objective"] == "ce"


@pytest.mark.parametrize("extra,expected", [
    (["--attack_method=DeepFool"], "unknown attack 'DeepFool'"),
    (["--eps_256=-8"], "--eps_256 must be finite and >= 0"),
    (["--num_iter=0"], "num_iter must be >= 1"),
    (["--epoch=9"], "model.009.weights.h5 (epochs there: [5, 6])"),
    (["--objective=mmc_tar1", "--target=False"], "targeted"),
    (["--objective=nope"], "unknown objective"),
    (["--attack_backend=torch"], "unknown attack backend 'torch'"),
    (["--attack_backend=cleverhans", "--attack_method=APGD"], "runs natively only"),
    (["--attack_backend=cleverhans", "--attack_method=MadryEtAl", "--eps_iter_256=16"],
     "eps_iter <= eps"),
])
def test_bad_input_exit_2(trained, capsys, extra, expected):
    assert expected in _refused(trained, "--eps_256=8", *extra)


def test_unwritable_results_file(trained, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from utils.errors import UsageError
    with pytest.raises(UsageError, match="not a writable directory; pass another "
                                         "--results_file"):
        _config(_args(trained, f"{blocker}/r.jsonl", "--eps_256=0",
                      "--attack_method=FastGradientMethod"))


@pytest.fixture(scope="module")
def trained_sce(trained):
    """An SCE model in the same run root and data (6 epochs on half the data, cheap)."""
    root, data = trained
    code, _, err = run_entry("train_models", ARCH + [
        f"--data_dir={data}", f"--model_dir={root}", "--epochs=6", "--verbose=0",
        "--augment=False", "--use_MMLDA=False", "--train_size=200"], None)
    assert code == 0, err
    return trained


@pytest.mark.slow
def test_auc_is_half_at_eps_zero(trained, capsys):
    out, results = _advtest(trained, capsys, "--attack_method=MadryEtAl",
                            "--target=False", "--eps_256=0,64", "--num_iter=5",
                            "--eps_iter_256=16", "--is_calculate_auc=True")
    zero, big = [json.loads(line) for line in results.read_text().splitlines()][-2:]
    assert zero["auc"] == 0.5 and zero["auc_score"] == "max_softmax"
    assert 0.0 <= big["auc"] <= 1.0 and zero["transfer"] is False
    assert "auc (max_softmax) 0.5000" in out


@pytest.mark.slow
def test_transfer_sce_to_mmc(trained_sce, capsys):
    _, results = _advtest(trained_sce, capsys, "--attack_method=FastGradientMethod",
                          "--target=False", "--eps_256=0")
    white = json.loads(results.read_text().splitlines()[-1])
    out, results = _advtest(trained_sce, capsys, "--attack_method=MadryEtAl",
                            "--target=False", "--eps_256=0,256", "--num_iter=10",
                            "--eps_iter_256=32", "--model_1=SCE", "--model_2=MMC-10")
    records = [json.loads(line) for line in results.read_text().splitlines()]
    zero, huge = records[-2:]
    assert zero["transfer"] is True and (zero["model_1"], zero["model_2"]) == ("SCE", "MMC-10")
    assert zero["objective"] == "ce" and zero["loss"] == "mmc" and zero["substitute_loss"] == "sce"
    assert zero["model"] == white["model"] != zero["substitute"]
    assert zero["clean_accuracy"] == white["clean_accuracy"]
    assert zero["adv_accuracy"] == zero["clean_accuracy"]
    assert huge["adv_accuracy"] < huge["clean_accuracy"]


@pytest.mark.parametrize("extra,expected", [
    (["--model_1=SCE"], "needs both --model_1 (substitute) and --model_2"),
    (["--model_1=SCE", "--model_2=MMC-7"], "unknown model 'MMC-7'; choose one of: SCE, MMC-10"),
    (["--is_calculate_auc=True", "--auc_score=entropy"], "unknown detection score 'entropy'"),
])
def test_bad_transfer_or_auc_flags_exit_2(trained, capsys, extra, expected):
    assert expected in _refused(trained, "--eps_256=8", *extra)


# ---------------------------------------------------------------- APGD, APGD-T, ensembles
def _records(results, k):
    return [json.loads(line) for line in results.read_text().splitlines()][-k:]


@pytest.mark.slow
def test_apgd_eps_zero_and_huge_eps_with_the_adaptive_objective(trained, capsys):
    out, results = _advtest(trained, capsys, "--attack_method=APGD",
                            "--target=False", "--eps_256=0,256", "--num_iter=10",
                            "--masking_checks=True")
    zero, huge = _records(results, 2)
    assert zero["objective"] == "mmc_un1" and zero["members"] == ["APGD-CE"]
    assert zero["attack_name"] == "APGD" and zero["norm"] == "linf" and zero["n_iter"] == 10
    assert zero["adv_accuracy"] == zero["clean_accuracy"] >= 0.8
    assert huge["adv_accuracy"] <= 0.05
    assert isinstance(zero["masking_warnings"], list)
    assert "eps 256/256" in out


@pytest.mark.parametrize("adaptive,expected", [
    ("True", {"APGD-CE": "mmc_un1", "APGD-T": "mmc_tar1"}),
    ("False", {"APGD-CE": "ce", "APGD-T": "dlr_targeted"})])
@pytest.mark.slow
def test_autoattack_records_members_and_objectives(trained, capsys, adaptive, expected):
    out, results = _advtest(trained, capsys, "--attack_method=AutoAttack",
                            "--eps_256=24", "--num_iter=3", "--n_target_classes=2",
                            f"--adaptive={adaptive}")
    [record] = _records(results, 1)
    assert record["members"] == ["APGD-CE", "APGD-T"] and record["targeted"] is False
    assert record["member_objectives"] == expected
    after = record["robust_accuracy_after"]
    assert list(after) == ["APGD-CE", "APGD-T"]
    assert after["APGD-T"] == record["adv_accuracy"] <= after["APGD-CE"]
    assert "(after APGD-CE" in out


@pytest.mark.parametrize("extra", [
    ["--attack_method=APGD-T", "--target=False"], ["--attack_method=MultiTargeted"],
    ["--attack_method=APGD", "--target=True", "--norm=l2"]])
@pytest.mark.slow
def test_other_new_attacks_run(trained, capsys, extra):
    _, results = _advtest(trained, capsys, "--eps_256=256", "--num_iter=5",
                          "--n_target_classes=2", *extra)
    [record] = _records(results, 1)
    assert record["attack_name"] == extra[0].split("=")[1]
    if "--target=True" in extra:
        assert record["objective"] == "mmc_tar1" and record["targeted"] is True
        assert "target_success" in record
    assert record["adv_accuracy"] < record["clean_accuracy"]


@pytest.mark.slow
def test_full_autoattack_records_all_four_members(trained, capsys, tmp_path):
    args = ("--attack_method=AutoAttack", "--ensemble=autoattack", "--eps_256=24",
            "--num_iter=3", "--n_target_classes=2", "--fab_n_iter=3",
            "--square_n_queries=20", f"--state_file={tmp_path / 'aa.npz'}")
    out, results = _advtest(trained, capsys, *args)
    _, results = _advtest(trained, capsys, *args)  # resumes the complete state
    first, second = _records(results, 2)
    assert first["members"] == ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    assert list(first["robust_accuracy_after"]) == first["members"]
    assert first["square_n_queries"] == 20 and first["fab_n_iter"] == 3
    assert first["adv_accuracy"] == second["adv_accuracy"]
    assert "Square" in out


@pytest.mark.slow
def test_autoattack_resumes_from_its_state_file(trained, capsys, tmp_path):
    state = tmp_path / "aa.npz"
    args = ("--attack_method=AutoAttack", "--eps_256=16", "--num_iter=3",
            "--n_target_classes=2", f"--state_file={state}", "--batch_size=20")
    _, results = _advtest(trained, capsys, *args)
    assert (tmp_path / "aa.eps16.npz").exists()
    _, results = _advtest(trained, capsys, *args)  # resumes a complete state
    first, second = _records(results, 2)
    drop = ("time", "command")
    assert {k: v for k, v in first.items() if k not in drop} == \
        {k: v for k, v in second.items() if k not in drop}


@pytest.mark.parametrize("extra,expected", [
    (["--attack_method=APGD-T", "--target=True"], "untargeted by construction"),
    (["--attack_method=APGD", "--norm=l1"], "unknown norm 'l1'"),
    (["--attack_method=AutoAttack", "--ensemble=APGD-CE,DeepFool"], "unknown ensemble member"),
    (["--attack_method=AutoAttack", "--ensemble=autoattack", "--square_n_queries=0"],
     "n_queries must be an integer >= 1"),
    (["--attack_method=AutoAttack", "--ensemble=autoattack", "--fab_n_iter=0"],
     "FAB n_iter must be an integer >= 1"),
    (["--attack_method=AutoAttack", "--ensemble=autoattack", "--norm=l1"], "unknown norm"),
    (["--attack_method=APGD", "--apgd_loss=nope"], "unknown objective 'nope'"),
    (["--attack_method=APGD", "--target=True", "--apgd_loss=dlr"], "needs a targeted"),
    (["--attack_method=MadryEtAl", "--apgd_loss=ce"], "--apgd_loss applies to"),
    (["--attack_method=MadryEtAl", "--norm=l1"], "unknown norm 'l1'"),
    (["--attack_method=AutoAttack", "--attack_backend=cleverhans"], "runs natively only"),
    (["--epoch_1=5"], "--epoch_1/--epoch_2"),
])
def test_bad_apgd_flags_exit_2(trained, capsys, extra, expected):
    assert expected in _refused(trained, "--eps_256=8", *extra)


@pytest.mark.parametrize("name", ["FastGradientMethod", "BasicIterativeMethod", "MadryEtAl",
                                  "MomentumIterativeMethod"])
def test_gradient_attacks_accept_the_l2_norm(trained, name):
    config = _config(_args(trained, trained[0] / "res.jsonl", f"--attack_method={name}",
                           "--norm=l2", "--eps_256=64"))
    assert config.norm == "l2" and config.plan.attack == name


def test_l2_pgd_runs_and_records_its_norm(trained, capsys):
    # eps_256 is the l2 radius over the whole 28x28 input: 0 keeps, 2560 (10 units) breaks
    _, results = _advtest(trained, capsys, "--attack_method=MadryEtAl", "--norm=l2",
                          "--target=False", "--eps_256=0,2560", "--num_iter=20",
                          "--eps_iter_256=640")
    zero, huge = _records(results, 2)
    assert zero["norm"] == huge["norm"] == "l2"
    assert zero["adv_accuracy"] == zero["clean_accuracy"] and huge["adv_accuracy"] <= 0.05


@pytest.mark.slow
def test_transfer_models_load_their_own_epochs(trained_sce, capsys):
    clean = {}
    for epoch in (5, 6):
        _, results = _advtest(trained_sce, capsys, "--attack_method=FastGradientMethod",
                              "--target=False", "--eps_256=0", f"--epoch={epoch}")
        clean[epoch] = _records(results, 1)[0]["clean_accuracy"]
    for epoch_2 in (5, 6):
        _, results = _advtest(
            trained_sce, capsys, "--attack_method=FastGradientMethod", "--target=False",
            "--eps_256=0", "--model_1=SCE", "--model_2=MMC-10", "--epoch_1=5",
            f"--epoch_2={epoch_2}")
        [record] = _records(results, 1)
        assert (record["epoch_1"], record["epoch_2"], record["epoch"]) == (5, epoch_2, epoch_2)
        assert record["clean_accuracy"] == clean[epoch_2]
    err = _refused(trained_sce, "--eps_256=0", "--model_1=SCE", "--model_2=MMC-10",
                   "--epoch_1=9")
    assert "model.009.weights.h5" in err and "resnet" in err


@pytest.mark.slow
def test_jit_compile_gives_the_same_accuracies(trained, capsys):
    """--jit_compile (XLA on the model call the attacks use): eps 0 still gives the clean
    accuracy, and PGD's accuracies equal the uncompiled run's."""
    args = ["--attack_method=MadryEtAl", "--target=False", "--eps_256=0,16", "--num_iter=5"]
    runs = []
    for jit in ("--jit_compile=False", "--jit_compile=True"):
        _, results = _advtest(trained, capsys, *args, jit)
        runs.append([json.loads(line) for line in results.read_text().splitlines()][-2:])
    (zero, pgd), (zero_jit, pgd_jit) = runs
    assert zero_jit["adv_accuracy"] == zero_jit["clean_accuracy"] == zero["clean_accuracy"]
    assert pgd_jit["adv_accuracy"] == pgd["adv_accuracy"] < pgd["clean_accuracy"]


def _comparable(record):
    """A record without what differs between two runs of the same evaluation."""
    drop = ("time", "command", "elapsed_s", "results_file", "state_file")
    return {k: v for k, v in record.items() if k not in drop}


@pytest.mark.slow
def test_single_pgd_killed_by_sigterm_resumes_to_the_uninterrupted_record(trained, capsys,
                                                                          tmp_path):
    """A single attack is a one-member cascade, so it has --state_file resume: SIGTERM
    after some batches (exit 130, state kept), rerun, same record as never interrupted."""
    import signal
    import time
    state, results = tmp_path / "pgd.npz", tmp_path / "killed.jsonl"
    attack = ["--attack_method=MadryEtAl", "--target=False", "--eps_256=16",
              "--num_iter=10", "--eval_batch_size=2", "--num_restarts=2", "--num_examples=24"]
    cmd = [sys.executable, "advtest_iterative.py",
           *_args(trained, results, *attack, f"--state_file={state}")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    saved = tmp_path / "pgd.eps16.npz"
    deadline = time.time() + 240
    while not saved.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "state saved to" in err and not results.exists()
    from utils.evaluation.iterative_run import load, run
    capsys.readouterr()
    config = _config(_args(trained, results, *attack, f"--state_file={state}"))
    loaded = load(config)  # one model for both runs: its attack graphs are traced once
    [resumed] = run(config, loaded)
    assert "resumed from" in capsys.readouterr().out
    [whole] = run(_config(_args(trained, tmp_path / "whole.jsonl", *attack)), loaded)
    assert _comparable(resumed) == _comparable(whole)
    assert whole["members"] == ["MadryEtAl"] and whole["attack_name"] == "MadryEtAl"


@pytest.mark.slow
def test_single_attack_with_auc_and_cleverhans_backend_run_through_the_cascade(trained,
                                                                               capsys):
    _, results = _advtest(trained, capsys, "--attack_method=MadryEtAl", "--target=False",
                          "--eps_256=16", "--num_iter=5", "--is_calculate_auc=True",
                          "--attack_backend=cleverhans")
    [record] = _records(results, 1)
    assert record["attack_backend"] == "cleverhans" and 0.0 <= record["auc"] <= 1.0
    assert record["members"] == ["MadryEtAl"]
