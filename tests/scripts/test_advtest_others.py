"""advtest_others.py end to end on a tiny model trained by train_models.py, plus the
noise / rotation helpers of utils/attacks/corruptions.py and utils/models/loading.py."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import entry_config, run_entry, write_fake_mnist_npz

pytestmark = pytest.mark.slow  # end to end: trains models, runs entry points

ARCH = ["--dataset=mnist", "--version=1", "--n=1", "--batch_size=20", "--optimizer=Adam",
        "--lr=0.001"]
SMALL_CW = ["--CW_binary_search_steps=2", "--CW_max_iterations=20"]
SMALL_SPSA = ["--SPSA_samples=8", "--SPSA_nb_iter=2"]
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("advtest_others")
    data = root / "data"
    write_fake_mnist_npz(data, n_train=200, n_test=20)
    code, _, err = run_entry("train_models", ARCH + [
        f"--data_dir={data}", f"--model_dir={root}", "--epochs=2", "--verbose=0",
        "--augment=False"], None)
    assert code == 0, err
    return root, data


def _config(args):
    """advtest_others.py's flags ``args`` -> its validated OthersConfig."""
    import advtest_others
    return entry_config(advtest_others, args)


def _args(trained, results, *extra):
    root, data = trained
    return ARCH + [f"--data_dir={data}", f"--model_dir={root}", "--use_advtrain=False",
                   "--epoch=2", f"--results_file={results}", "--progress=False", *extra]


def _others(trained, capsys, *extra):
    """Run in-process; ``(stdout, results file)``; the record is appended to it."""
    from utils.evaluation.others_run import run
    results = trained[0] / "res.jsonl"
    capsys.readouterr()
    run(_config(_args(trained, results, *extra)))
    return capsys.readouterr().out, results


def _refused(trained, *extra):
    """The one-line UsageError message of a run the flags ``extra`` make impossible."""
    from utils.errors import UsageError
    from utils.evaluation.others_run import run
    with pytest.raises(UsageError) as info:
        run(_config(_args(trained, trained[0] / "res.jsonl", *extra)))
    message = " ".join(str(info.value).split())
    assert message, "an error with no message"
    return message


@pytest.mark.slow
def test_entry_script_smoke(trained, tmp_path):
    """The one subprocess run: exit 0 and its record."""
    results = tmp_path / "r.jsonl"
    cmd = [sys.executable, "advtest_others.py",
           *_args(trained, results, "--attack_method=Gaussian", "--noise_sigma=0")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [record] = [json.loads(line) for line in results.read_text().splitlines()]
    assert record["script"] == "advtest_others" and record["attack_name"] == "Gaussian"
    assert record["adv_accuracy"] == record["clean_accuracy"]
    assert "1 record appended" in done.stdout


def _last(results):
    return json.loads(results.read_text().splitlines()[-1])


def test_carlini_wagner_record(trained, capsys):
    out, results = _others(trained, capsys, "--attack_method=CarliniWagnerL2",
                           "--target=False", "--num_examples=6", *SMALL_CW)
    record = _last(results)
    assert record["attack_name"] == "CarliniWagnerL2" and record["objective"] == "mmc_un2"
    assert record["adaptive"] is True and record["targeted"] is False and record["n"] == 6
    assert 0.0 <= record["success_rate"] <= 1.0
    assert record["already_adversarial"] == record["n"] - record["clean_correct"]
    assert record["success"] >= record["already_adversarial"]
    assert record["l2_mean"] >= 0 and record["CW_max_iterations"] == 20
    assert "[0,1] pixels" in record["distortion_units"] and "command" in record \
        and "versions" in record
    assert "CarliniWagnerL2 (n=6)" in out and "mean L2" in out
    assert results.with_suffix(".csv").exists()


@pytest.mark.slow
def test_carlini_wagner_leaves_misclassified_inputs_alone(trained):
    """Labels that disagree with the clean prediction: distortion exactly 0 there."""
    from utils.attacks import perturbations
    from utils.evaluation import perturbation
    from utils.runs.model_config import ModelConfig
    from utils.data import load_dataset
    from utils.models.loading import load_run
    from utils.runs.spec import RunSpec

    root, data_dir = trained
    data = load_dataset("mnist", str(data_dir), test_size=6)
    spec = RunSpec("mnist", ModelConfig(version=1, n=1), "Adam", 0.001, 20)
    loaded = load_run(spec, data.input_shape, data.num_classes, model_dir=str(root), epoch=2)
    model_fn = perturbation.pixel_model(loaded.model, data.mean)
    pixels = perturbation.to_pixels(data.x_test, data.mean)
    pred = np.asarray(model_fn(pixels)).argmax(-1)
    labels = np.where(np.arange(6) < 3, pred, (pred + 1) % data.num_classes)  # 3 wrong
    perturb = perturbations.PERTURBATIONS.get("CarliniWagnerL2").build(
        model_fn, "mmc_un2", perturbations.CWSettings(binary_search_steps=2, max_iterations=20),
        np.random.default_rng(0))
    adv = perturb(pixels, labels, None)
    dist = perturbation.l2_distortion(adv, pixels)
    assert np.all(dist[3:] == 0.0)
    fooled = np.asarray(model_fn(adv)).argmax(-1)[:3] != labels[:3]
    assert np.all(dist[:3][fooled] > 0.0)
    result = perturbation.evaluate_perturbation(model_fn, data.x_test, labels, data.mean,
                                                perturb, batch_size=4, keep_already=True)
    assert result["already_adversarial"] == 3 and 3 <= result["success"] <= 6


@pytest.mark.slow
def test_spsa_eps_zero_gives_clean_accuracy(trained, capsys):
    out, results = _others(trained, capsys, "--attack_method=SPSA", "--target=False",
                           "--SPSA_epsilon=0", "--num_examples=10", *SMALL_SPSA)
    record = _last(results)
    assert record["objective"] == "mmc_un1" and record["eps"] == 0.0 and record["n"] == 10
    assert record["adv_accuracy"] == record["clean_accuracy"]
    assert "l2_mean" not in record


def test_spsa_targeted_non_adaptive(trained, capsys):
    out, results = _others(trained, capsys, "--attack_method=SPSA", "--target=True",
                           "--adaptive=False", "--num_examples=2", *SMALL_SPSA)
    record = _last(results)
    assert record["objective"] == "ce" and record["targeted"] is True
    assert 0.0 <= record["target_success"] <= 1.0 and "adv_acc_target" in out


@pytest.mark.parametrize("extra", [["--attack_method=Gaussian", "--noise_sigma=0"],
                                   ["--attack_method=Rotation", "--rotation_degrees=0"]])
def test_zero_corruption_gives_clean_accuracy(trained, capsys, extra):
    out, results = _others(trained, capsys, *extra, "--batch_size=20")
    record = _last(results)
    assert record["n"] == 20 and record["objective"] is None and record["targeted"] is False
    assert record["adv_accuracy"] == record["clean_accuracy"]
    assert record["clean_accuracy"] >= 0.3, "the test model learnt nothing"


def test_corruptions_are_seeded(trained, capsys):
    # --seed also names the model (center_seed is in arch.json), so only repeat seed 0.
    accs = []
    for _ in range(2):
        _, results = _others(trained, capsys, "--attack_method=Rotation",
                             "--rotation_degrees=90")
        accs.append(_last(results)["adv_accuracy"])
    assert accs[0] == accs[1]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    ["--attack_method=ElasticNetMethod", "--target=False", "--EAD_max_iterations=20"],
    ["--attack_method=ElasticNetMethod", "--target=True", "--EAD_max_iterations=20"],
    ["--attack_method=DeepFool", "--DeepFool_nb_candidate=10"],
    ["--attack_method=LBFGS", "--LBFGS_max_iterations=10"],
    ["--attack_method=SaliencyMapMethod", "--JSMA_gamma=0.02"],
    ["--attack_method=SaliencyMapMethod", "--JSMA_gamma=0.02", "--JSMA_variant=cleverhans"],
])
def test_minimal_attacks_record(trained, capsys, extra):
    """The four attacks of the original script run end to end and record distortions."""
    out, results = _others(trained, capsys, "--num_examples=6", *extra)
    record = _last(results)
    assert record["attack_name"] == extra[0].split("=")[1] and record["n"] == 6
    assert record["targeted"] == (extra[0] in ("--attack_method=LBFGS",
                                               "--attack_method=SaliencyMapMethod")
                                  or "--target=True" in extra)
    for key in ("l1_mean_success", "l2_mean_success", "linf_mean_success",
                "changed_fraction_mean_success", "success_rate", "adv_accuracy"):
        assert key in record
    if record["success"]:  # already-misclassified inputs count with distortion 0
        assert 0 <= record["linf_mean_success"] <= 1.0 + 1e-6
    if "SaliencyMap" in extra[0]:
        assert record["JSMA_variant"] == ("cleverhans" if len(extra) == 3 else "logprob")
    if "SaliencyMap" in extra[0] and record["success"]:
        assert record["changed_fraction_mean_success"] <= 0.02 + 1e-9


@pytest.mark.parametrize("extra,expected", [
    (["--attack_method=Bogus"], "unknown attack 'Bogus'"),
    (["--attack_method=ElasticNetMethod", "--EAD_confidence=-0.1"],
     "EAD_confidence must be >= 0"),
    (["--attack_method=ElasticNetMethod", "--EAD_max_iterations=0"],
     "EAD_max_iterations must be >= 1"),
    (["--attack_method=DeepFool", "--DeepFool_max_iter=0"], "DeepFool_max_iter must be >= 1"),
    (["--attack_method=DeepFool", "--target=True"], "DeepFool is untargeted"),
    (["--attack_method=SaliencyMapMethod", "--target=False"], "targeted by construction"),
    (["--attack_method=LBFGS", "--target=False"], "targeted by construction"),
    (["--attack_method=SaliencyMapMethod", "--JSMA_gamma=1.5"], "JSMA_gamma must be in"),
    (["--attack_method=SaliencyMapMethod", "--JSMA_variant=papernot"],
     "JSMA_variant must be one of logprob, art, cleverhans, got 'papernot'"),
    (["--attack_method=DeepFool", "--objective=ce"], "--objective applies to"),
    (["--attack_method=SPSA", "--SPSA_epsilon=-1"], "SPSA_epsilon must be >= 0"),
    (["--attack_method=Gaussian", "--noise_sigma=-0.1"], "noise_sigma must be >= 0"),
    (["--CW_max_iterations=0"], "CW_max_iterations must be >= 1"),
    (["--attack_method=SPSA", "--SPSA_samples=3"], "SPSA_samples must be even"),
    (["--attack_method=Gaussian", "--objective=ce"], "--objective applies to"),
    (["--objective=mmc_tar2", "--target=False"], "targeted"),
    (["--epoch=9"], "model.009.weights.h5 (epochs there: [2])"),
])
def test_bad_input_exit_2(trained, capsys, extra, expected):
    assert expected in _refused(trained, *extra)


def test_unwritable_results_file(trained, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from utils.errors import UsageError
    with pytest.raises(UsageError, match="not a writable directory; pass another "
                                         "--results_file"):
        _config(_args(trained, blocker / "r.jsonl", "--attack_method=Gaussian"))


# ---------------------------------------------------------------- utils/attacks/corruptions.py

def test_rotation_identity_quarter_turn_and_range():
    from utils.attacks.corruptions import random_rotation, rotate
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 6, 6, 2)).astype(np.float32)
    assert np.array_equal(rotate(x, [0.0, 0.0, 0.0]), x)
    np.testing.assert_allclose(rotate(x, [90.0] * 3), np.rot90(x, 1, axes=(1, 2)), atol=1e-5)
    assert np.array_equal(random_rotation(x, 0.0, rng), x)
    turned = random_rotation(x, 30.0, rng)
    assert turned.shape == x.shape and turned.min() >= 0.0 and turned.max() <= 1.0


def test_noise_zero_sigma_statistics_and_clip():
    from utils.attacks.corruptions import gaussian_noise
    x = np.full((4, 8, 8, 3), 0.5, np.float32)
    assert np.array_equal(gaussian_noise(x, 0.0, np.random.default_rng(0)), x)
    noisy = gaussian_noise(x, 0.05, np.random.default_rng(0))
    assert abs(float(np.std(noisy - x)) - 0.05) < 0.01
    clipped = gaussian_noise(x, 10.0, np.random.default_rng(0), clip_min=0.0, clip_max=1.0)
    assert clipped.min() == 0.0 and clipped.max() == 1.0


def test_transforms_stream_independent_of_batch_size():
    from utils.attacks.corruptions import gaussian_noise, random_rotation
    x = np.random.default_rng(1).uniform(size=(6, 5, 5, 1)).astype(np.float32)
    for fn, arg in ((gaussian_noise, 0.1), (random_rotation, 45.0)):
        whole = fn(x, arg, np.random.default_rng(3))
        rng = np.random.default_rng(3)
        parts = np.concatenate([fn(x[:2], arg, rng), fn(x[2:], arg, rng)])
        np.testing.assert_allclose(parts, whole, atol=1e-6)


def test_transforms_reject_bad_arguments():
    from utils.errors import UsageError
    from utils.attacks.corruptions import gaussian_noise, random_rotation
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(UsageError, match="sigma"):
        gaussian_noise(x, -1.0, np.random.default_rng(0))
    with pytest.raises(UsageError, match="max_degrees"):
        random_rotation(x, float("nan"), np.random.default_rng(0))


def test_missing_checkpoint_names_the_run(tmp_path):
    from utils.runs.model_config import ModelConfig
    from utils.errors import UsageError
    from utils.models.loading import load_run
    from utils.runs.advtrain_config import AdvTrainConfig
    from utils.runs.spec import RunSpec
    spec = RunSpec("mnist", ModelConfig(version=1, n=1), "Adam", 0.001, 20, AdvTrainConfig())
    with pytest.raises(UsageError, match="no such run directory"):
        load_run(spec, (28, 28, 3), 10, model_dir=str(tmp_path), epoch=1)


def test_helpshort_lists_every_attack_and_its_flags():
    import sys

    from absl import flags

    import advtest_others
    advtest_others.define_flags()  # (re)defines and adopts the flags
    key = {f.name for f in flags.FLAGS.get_key_flags_for_module(sys.modules["advtest_others"])}
    assert {"attack_method", "target", "EAD_max_iterations", "DeepFool_nb_candidate",
            "LBFGS_max_iterations", "JSMA_gamma", "CW_confidence"} <= key
