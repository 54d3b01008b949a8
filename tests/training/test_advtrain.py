"""Adversarial training: crafting inside the step, naming, strategies, bad input."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_entry
from utils.runs.advtrain_config import AdvTrainConfig
from utils.training.advtrain import make_adversary, random_wrong_targets
from utils.errors import UsageError

TINY = ["--dataset=mnist", "--version=1", "--n=1", "--batch_size=20", "--verbose=0",
        "--test_size=40", "--train_size=40", "--optimizer=Adam", "--lr=0.001", "--epochs=1",
        "--augment=False"]


def _linear_model(num_classes: int = 3, dim: int = 4) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((dim, 1, 1))
    logits = keras.layers.Dense(num_classes)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, logits)


@pytest.mark.parametrize("kwargs,match", [
    (dict(adv_ratio=1.5), "adv_ratio"),
    (dict(adv_ratio=-0.1), "adv_ratio"),
    (dict(adv_ratio=float("nan")), "adv_ratio"),
    (dict(eps_256=-1.0), "eps"),
    (dict(eps_iter_256=0.0), "eps_iter"),
    (dict(nb_iter=0), "num_iter"),
])
def test_config_rejects_impossible_values(kwargs, match):
    with pytest.raises(UsageError, match=match):
        AdvTrainConfig(**kwargs)


def test_unknown_crafting_attack_is_refused_by_the_trainer_config():
    from utils.training.builder import TrainerConfig
    with pytest.raises(UsageError, match="attack_method"):
        TrainerConfig(advtrain=AdvTrainConfig(attack_method="CarliniWagnerL2"))


def test_random_wrong_targets_are_wrong_and_cover_all_wrong_labels():
    labels = tf.one_hot(tf.zeros(2000, tf.int32), 4)
    targets = random_wrong_targets(labels, tf.constant([3, 4], tf.int64)).numpy().argmax(-1)
    assert not np.any(targets == 0)
    counts = np.bincount(targets, minlength=4)[1:]
    assert counts.min() > 500  # uniform over the 3 wrong labels (~667 each)


@pytest.mark.parametrize("attack", ["MadryEtAl", "FastGradientMethod",
                                    "MomentumIterativeMethod", "BasicIterativeMethod"])
@pytest.mark.slow
@pytest.mark.parametrize("use_target", [False, True])
def test_adversary_stays_in_the_ball_and_raises_the_loss(attack, use_target):
    model = _linear_model()
    x = tf.random.stateless_uniform((16, 4, 1, 1), (1, 2), -0.3, 0.3)
    y = tf.one_hot(tf.argmax(model(x), -1), 3)  # labels = clean predictions
    clip_min, clip_max = np.full((4, 1, 1), -0.35, np.float32), np.full((4, 1, 1), 0.35, np.float32)
    cfg = AdvTrainConfig(attack_method=attack, use_target=use_target, eps_256=16.0)
    adversary = make_adversary(model, "sce", cfg, clip_min=clip_min, clip_max=clip_max, seed=0)
    x_adv = tf.function(adversary)(x, y, tf.constant(3, tf.int64)).numpy()
    assert np.all(np.abs(x_adv - x.numpy()) <= 16 / 256 + 1e-6)
    assert np.all(x_adv >= clip_min - 1e-7) and np.all(x_adv <= clip_max + 1e-7)
    ce = keras.losses.categorical_crossentropy
    if not use_target:
        assert float(tf.reduce_mean(ce(y, model(x_adv), from_logits=True))) > \
            float(tf.reduce_mean(ce(y, model(x), from_logits=True)))


def test_adversary_eps_zero_is_identity_and_steps_give_fresh_random_starts():
    model = _linear_model()
    x = tf.random.stateless_uniform((8, 4, 1, 1), (1, 2), -0.3, 0.3)
    y = tf.one_hot(tf.argmax(model(x), -1), 3)
    zero = make_adversary(model, "sce", AdvTrainConfig(eps_256=0.0), clip_min=-1.0,
                          clip_max=1.0, seed=0)
    np.testing.assert_array_equal(zero(x, y, tf.constant(0, tf.int64)).numpy(), x.numpy())
    pgd = make_adversary(model, "sce", AdvTrainConfig(nb_iter=1), clip_min=-1.0, clip_max=1.0,
                         seed=0)
    a = pgd(x, y, tf.constant(0, tf.int64)).numpy()
    b = pgd(x, y, tf.constant(1, tf.int64)).numpy()
    again = pgd(x, y, tf.constant(0, tf.int64)).numpy()
    np.testing.assert_array_equal(a, again)
    assert not np.array_equal(a, b)


def test_mmc_model_is_crafted_with_the_adaptive_objective(monkeypatch):
    import utils.training.advtrain as advtrain
    seen = []
    real = advtrain.select_objective
    monkeypatch.setattr(advtrain, "select_objective",
                        lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    model = _linear_model()
    for use_target in (False, True):
        make_adversary(model, "mmc", AdvTrainConfig(use_target=use_target), clip_min=-1.0,
                       clip_max=1.0, seed=0)
    make_adversary(model, "sce", AdvTrainConfig(), clip_min=-1.0, clip_max=1.0, seed=0)
    assert seen == ["mmc_un1", "mmc_tar1", "ce"]


@pytest.mark.parametrize("strategy,ratio,target,loss_flags", [
    ("one_device", 1.0, False, []),
    ("mirrored", 0.5, True, []),
    ("mirrored", 1.0, False, ["--use_MMLDA=False"]),
    ("one_device", 0.5, False, ["--use_MMLDA=False"]),
])
@pytest.mark.slow
def test_advtrain_writes_the_original_names_and_advtest_finds_them(
        tmp_path, fake_mnist_dir, capsys, strategy, ratio, target, loss_flags):
    args = TINY + loss_flags + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}"]
    code, out, err = run_entry("train_models", args + [
        "--use_advtrain=True", f"--adv_ratio={ratio}", f"--use_target={target}",
        f"--strategy={strategy}", "--advtrain_num_iter=2"], capsys)
    assert code == 0, err
    (run_dir,) = (tmp_path / "advtrained_models" / "mnist").iterdir()
    prefix = "target" if target else ""
    assert f"_batchsize20_{prefix}MadryEtAl_advratio{ratio}_eps8_step2_iter2_withBN" in run_dir.name
    assert (run_dir / "model.001.weights.h5").exists()
    assert json.loads((run_dir / "flags.json").read_text())["use_advtrain"] is True
    assert not (tmp_path / "trained_models").exists()


@pytest.mark.slow
def test_default_crafting_settings_give_exactly_the_original_name(tmp_path, fake_mnist_dir,
                                                                  capsys):
    args = TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}", "--train_size=20"]
    code, _, err = run_entry("train_models", args + ["--use_advtrain=True"], capsys)
    assert code == 0, err
    (run_dir,) = (tmp_path / "advtrained_models" / "mnist").iterdir()
    assert run_dir.name == ("resnet8v1_meanvar10_Adam_lr0.001_batchsize20_MadryEtAl_"
                            "advratio1.0_withBN")
    code, out, err = run_entry("advtest_iterative", [
        f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}", "--dataset=mnist",
        "--version=1", "--n=1", "--batch_size=20", "--optimizer=Adam", "--lr=0.001",
        "--use_advtrain=True", "--attack_method_for_advtrain=MadryEtAl", "--epoch=1",
        "--eps_256=8", "--num_iter=1", "--num_examples=20", "--target=False",
        "--progress=False", f"--results_file={tmp_path / 'r.jsonl'}"], capsys)
    assert code == 0, err
    assert (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("bad", ["--adv_ratio=2", "--adv_ratio=-0.5",
                                 "--attack_method=SPSA", "--advtrain_num_iter=0"])
def test_bad_advtrain_flags_exit_2_and_write_nothing(tmp_path, fake_mnist_dir, capsys, bad):
    args = TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path / 'm'}"]
    code, _, err = run_entry("train_models", args + ["--use_advtrain=True", bad], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_adversarial_training_changes_the_weights_relative_to_standard(tmp_path,
                                                                       fake_mnist_dir, capsys):
    """Same seed and data: the adversarial run's weights must differ (the examples it
    trains on are not the clean ones)."""
    digests = []
    for adv in (False, True):
        code, out, err = run_entry("train_models", TINY + [
            f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path / str(adv)}",
            f"--use_advtrain={adv}"] + (["--advtrain_num_iter=1"] if adv else []), capsys)
        assert code == 0, err
        digests.append(out.split("weights sha256 ")[-1].strip())
    assert digests[0] != digests[1]


@pytest.mark.slow
def test_non_default_crafting_run_is_attacked_through_the_cli(tmp_path, fake_mnist_dir, capsys):
    """A run trained with --advtrain_num_iter=2 --advtrain_eps_256=4 is found by both
    advtest scripts given the same crafting flags (and not found without them)."""
    crafting = ["--advtrain_num_iter=2", "--advtrain_eps_256=4"]
    args = TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}", "--train_size=20"]
    code, _, err = run_entry("train_models", args + ["--use_advtrain=True"] + crafting, capsys)
    assert code == 0, err
    where = [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}", "--dataset=mnist",
             "--version=1", "--n=1", "--batch_size=20", "--optimizer=Adam", "--lr=0.001",
             "--use_advtrain=True", "--attack_method_for_advtrain=MadryEtAl", "--epoch=1",
             "--num_examples=20", "--progress=False"]
    results = tmp_path / "r.jsonl"
    code, _, err = run_entry("advtest_iterative", where + [
        "--eps_256=0", "--num_iter=1", "--target=False", f"--results_file={results}"], capsys)
    assert code == 2 and "no checkpoint" in err and not results.exists()
    code, out, err = run_entry("advtest_iterative", where + crafting + [
        "--eps_256=0,8", "--num_iter=2", "--target=False", f"--results_file={results}"],
        capsys)
    assert code == 0, err
    first, second = [json.loads(line) for line in results.read_text().splitlines()]
    assert first["adv_accuracy"] == first["clean_accuracy"]  # eps 0
    assert second["adv_accuracy"] <= first["clean_accuracy"]
    assert first["run"]["advtrain"]["nb_iter"] == 2 and first["run"]["advtrain"]["eps_256"] == 4
    assert first["model"] == first["run"]["name"] and "_eps4_step2_iter2_" in first["model"]
    code, out, err = run_entry("advtest_others", where + crafting + [
        "--attack_method=Gaussian", f"--results_file={tmp_path / 'o.jsonl'}"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o.jsonl").read_text())["run"]["advtrain"]["nb_iter"] == 2
