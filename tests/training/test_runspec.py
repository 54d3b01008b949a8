"""RunSpec: every run train_models.py can name is found by advtest_*.py from the same flags."""
from __future__ import annotations

import importlib

import pytest

from conftest import entry_config

COMMON = ["--dataset=cifar10", "--version=1", "--n=1", "--optimizer=Adam", "--lr=0.001",
          "--batch_size=50"]
# (training flags, what the evaluation scripts are given instead of train's --attack_method)
OPTIONS = {
    "mmc": ([], []),
    "mmc_100": (["--mean_var=100"], []),
    "mmc_2.5": (["--mean_var=2.5"], []),
    "sce": (["--use_MMLDA=False"], []),
    "mmlda": (["--use_ball=False"], []),
    "random": (["--use_random=True"], []),
    "noBN_leaky_nodense": (["--use_BN=False", "--use_leaky=True", "--use_dense=False"], []),
    "featuredim": (["--feature_dim=32"], []),
    "demo": (["--is_2d_demo=True"], []),
    "hierarchical": (["--centers=hierarchical", "--sub_center_ratio=0.2"], []),
    "center": (["--loss=center", "--center_lambda=0.01"], []),
    "lgm": (["--loss=lgm", "--lgm_margin=0.2"], []),
    "emc": (["--loss=emc", "--emc_alpha=1"], []),
    "isce": (["--loss=isce"], []),
    "ls": (["--loss=label_smoothing", "--label_smoothing=0.2"], []),
    "at_pgd": (["--use_advtrain=True"], ["--attack_method_for_advtrain=MadryEtAl"]),
    "at_fgsm_tar": (["--use_advtrain=True", "--use_target=True", "--adv_ratio=0.5"],
                    ["--attack_method_for_advtrain=FastGradientMethod"]),
    "at_crafting": (["--use_advtrain=True", "--advtrain_num_iter=2", "--advtrain_eps_256=4",
                     "--advtrain_eps_iter_256=1.5", "--mean_var=100"],
                    ["--attack_method_for_advtrain=MadryEtAl"]),
}


def _train_config(args):
    """The RunConfig train_models.py's main builds (its directory is where train() writes)."""
    from utils.cli.train import run_config_from_flags
    return entry_config(importlib.import_module("train_models"), args,
                        build=lambda v: run_config_from_flags(v, []))


def _eval_spec(module_name, args):
    from utils.cli.flags import eval_run_spec, model_config_from_flags
    return entry_config(importlib.import_module(module_name), args,
                        build=lambda v: eval_run_spec(v, model_config_from_flags(v)))


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_evaluation_flags_find_every_training_run(option, tmp_path):
    train_args, eval_extra = OPTIONS[option]
    if "--use_advtrain=True" in train_args:
        train_args = train_args + ["--attack_method=" + eval_extra[0].split("=")[1]]
    cfg = _train_config(COMMON + train_args + [f"--model_dir={tmp_path}"])
    spec, written = cfg.run, cfg.directory
    written.mkdir(parents=True)
    adv = "--use_advtrain=True" in train_args
    eval_args = (COMMON + [a for a in train_args if not a.startswith("--attack_method=")]
                 + eval_extra + ([] if adv else ["--use_advtrain=False"]))
    for script in ("advtest_iterative", "advtest_others"):
        found = _eval_spec(script, eval_args)
        assert found == spec, script
        assert found.find_directory(str(tmp_path)) == written
    assert written.parent.parent.name == ("advtrained_models" if adv else "trained_models")
    assert spec.to_dict()["name"] == written.name


@pytest.mark.parametrize("advtrain,new,old", [
    (False, "resnet32v2_meanvar100.0_Adam_lr0.001_batchsize50_withBN",
     "resnet32v2_meanvar100_Adam_lr0.001_batchsize50_withBN"),
    (True, "resnet32v2_meanvar100_Adam_lr0.001_batchsize50_MadryEtAl_advratio1.0_withBN",
     "resnet32v2_meanvar100.0_Adam_lr0.001_batchsize50_MadryEtAl_advratio1.0_withBN"),
])
def test_original_spellings_and_legacy_lookup(advtrain, new, old, tmp_path):
    from utils.runs.model_config import ModelConfig
    from utils.runs.advtrain_config import AdvTrainConfig
    from utils.runs.spec import RunSpec
    spec = RunSpec("cifar10", ModelConfig(version=2, c_mm=100.0), "Adam", 0.001, 50,
                   AdvTrainConfig() if advtrain else None)
    assert spec.name == new and spec.names() == [new, old]
    legacy = tmp_path / spec.root / "cifar10" / old
    legacy.mkdir(parents=True)
    assert spec.find_directory(str(tmp_path)) == legacy  # runs written before still found
    (tmp_path / spec.root / "cifar10" / new).mkdir()
    assert spec.find_directory(str(tmp_path)) == spec.directory(str(tmp_path))


def test_reports_read_the_stored_run_identity_not_the_name():
    from utils.runs.model_config import ModelConfig
    from utils.reporting.compare import normalize_record
    from utils.runs.advtrain_config import AdvTrainConfig
    from utils.runs.spec import RunSpec
    spec = RunSpec("cifar10", ModelConfig(version=1, n=2, c_mm=100.0, centers="random"),
                   "Adam", 0.001, 50, AdvTrainConfig(use_target=True))
    record = dict(model="renamed-by-hand", run=spec.to_dict(), dataset="cifar10",
                  attack_name="MadryEtAl", adv_accuracy=0.5, clean_accuracy=0.9, eps_256=8)
    out = normalize_record(record, "test")
    assert (out["arch"], out["n_blocks"], out["centers"], out["c_mm"], out["advtrain"],
            out["loss"]) == ("resnet14v1", 2, "random", 100.0, "tar", "mmc")
