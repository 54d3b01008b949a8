"""Every command line of the original README, with only the script name changed, is accepted
by our scripts (flag parsing and checks), or ends in one line saying which flag to add."""
from __future__ import annotations

import importlib
import shlex

import pytest
from absl import flags

from conftest import run_entry

# script of the original -> ours
SCRIPTS = {"train.py": "train_models", "advtrain.py": "train_models",
           "advtest_iterative.py": "advtest_iterative", "advtest_others.py": "advtest_others",
           "advtest_iterative_blackbox.py": "advtest_iterative",
           "advtest_simple_transform.py": "advtest_others"}
# The original README's commands (both versions), placeholders as written there.
COMMANDS = [
    "train.py --batch_size=50 --dataset='cifar10' --optimizer='Adam' --lr=0.001 --version=2 "
    "--use_MMLDA=False --use_BN=True",
    "train.py --batch_size=50 --mean_var=100 --dataset='cifar10' --optimizer='Adam' --lr=0.001 "
    "--version=2 --use_MMLDA=True --use_ball=True --use_BN=True",
    "train.py --batch_size=50 --dataset=[dataset] --optimizer='mom' --lr=0.01 --version=2 "
    "--use_MMLDA=False --use_BN=True --use_dense=True --use_leaky=False",
    "train.py --batch_size=50 --mean_var=10 --dataset=[dataset] -optimizer='mom' --lr=0.01 "
    "--version=2 --use_MMLDA=True --use_ball=True --use_BN=True --use_random=False "
    "--use_dense=True --use_leaky=False",
    "advtrain.py --batch_size=50 --dataset=[dataset] --optimizer='mom' --lr=0.01 --version=2 "
    "--adv_ratio=1.0 --use_MMLDA=False --use_ball=False --use_target=False "
    "--attack_method='MadryEtAl' --use_BN=True --use_random=False",
    "advtrain.py --batch_size=50 --mean_var=10 --dataset=[dataset] --optimizer='mom' --lr=0.01 "
    "--version=2 --adv_ratio=1.0 --use_MMLDA=True --use_ball=True --use_target=True "
    "--attack_method='MadryEtAl' --use_BN=True --use_random=False",
    "advtest_iterative.py --batch_size=50 --attack_method='MadryEtAl' "
    "--attack_method_for_advtrain=None --dataset='cifar10' --target=True --num_iter=20 "
    "--use_ball=False --use_MMLDA=False --use_advtrain=False --epoch=180 --use_BN=True "
    "--normalize_output_for_ball=True",
    "advtest_iterative.py --mean_var=100 --batch_size=50 --attack_method='MadryEtAl' "
    "--attack_method_for_advtrain=None --dataset='cifar10' --target=True --num_iter=7 "
    "--use_ball=True --use_MMLDA=True --use_advtrain=False --epoch=180 --use_BN=True "
    "--normalize_output_for_ball=True",
    "advtest_iterative.py --batch_size=50 --attack_method='MadryEtAl' "
    "--attack_method_for_advtrain=None --dataset=[dataset] --target=True --num_iter=10 "
    "--use_ball=False --use_MMLDA=False --use_advtrain=False --epoch=[epoch] --use_BN=True "
    "--normalize_output_for_ball=True --use_random=False --use_target=False",
    "advtest_iterative.py --mean_var=10 --batch_size=50 --attack_method='MadryEtAl' "
    "--attack_method_for_advtrain='MadryEtAl' --dataset=[dataset] --target=False --num_iter=10 "
    "--use_ball=True --use_MMLDA=True --use_advtrain=True --epoch=[epoch] --use_BN=True "
    "--normalize_output_for_ball=False --use_random=False --adv_ratio=1.0 --use_target=False",
    "advtest_others.py --mean_var=10 --batch_size=50 --attack_method='CarliniWagnerL2' "
    "--attack_method_for_advtrain=None --dataset=[dataset] --target=True --use_ball=True "
    "--use_MMLDA=True --use_advtrain=False --adv_ratio=1.0 --use_target=False --epoch=[epoch] "
    "--use_BN=True --normalize_output_for_ball=False --use_random=False --use_dense=True "
    "--use_leaky=False --CW_confidence=0.",
    "advtest_iterative_blackbox.py --batch_size=50 --optimizer='Adam' --attack_method='MadryEtAl' "
    "--dataset=[dataset] --target=False --num_iter=10 --use_random=False --use_dense=True "
    "--use_leaky=False --epoch=[epoch] --use_BN=True --model_1='AT-MMC-100' --model_2='SCE'",
    "advtest_others.py --mean_var=10 --batch_size=50 --attack_method='SPSA' "
    "--attack_method_for_advtrain=None --dataset=[dataset] --target=False --use_ball=True "
    "--use_MMLDA=True --use_advtrain=False --adv_ratio=1.0 --use_target=False --epoch=[epoch] "
    "--use_BN=True -normalize_output_for_ball=False --use_random=False --use_dense=True "
    "--use_leaky=False --SPSA_epsilon=8",
    "advtest_simple_transform.py --mean_var=10 --batch_size=50  --attack_method='Rotation' "
    "--attack_method_for_advtrain='MadryEtAl' --dataset=[dataset] --use_ball=True "
    "--use_MMLDA=True --use_advtrain=True --epoch=[epoch] --adv_ratio=1.0 --use_target=False "
    "--normalize_output_for_ball=False",
]


def _ours(command):
    script, *args = shlex.split(command.replace("[dataset]", "cifar10")
                                .replace("[epoch]", "180"))
    return SCRIPTS[script], args


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.split()[0])
def test_every_original_flag_is_accepted(command):
    module_name, args = _ours(command)
    importlib.import_module(module_name).define_flags()
    flags.FLAGS.unparse_flags()
    flags.FLAGS([module_name + ".py", *args])  # raises on an unknown or malformed flag


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("advtrain.py")])
def test_advtrain_command_lines_say_to_add_use_advtrain(command, tmp_path, capsys):
    module_name, args = _ours(command)
    code, _, err = run_entry(module_name, args + [f"--model_dir={tmp_path / 'm'}"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "add --use_advtrain=True" in err
    assert not (tmp_path / "m").exists()
    code, _, err = run_entry(module_name, args + ["--use_advtrain=True", "--epochs=0",
                                                  f"--model_dir={tmp_path / 'm'}"], capsys)
    # with it, only the (deliberately bad) epochs is refused
    assert code == 2 and "--epochs" in err and "use_advtrain" not in err


def test_blackbox_presets_fix_the_original_adversarial_training():
    from utils.cli.iterative import TRANSFER_MODELS
    for name in ("AT-SCE", "AT-MMC-10", "AT-MMC-100"):
        preset = TRANSFER_MODELS[name]
        assert (preset["attack_method_for_advtrain"], preset["adv_ratio"],
                preset["use_target"]) == ("MadryEtAl", 1.0, False)
