"""Attacks and streaming evaluation: invariants, analytic optima and tiny-model sanity.

Models here are tiny (a Dense net on 4x4x1 "images" of four separable clusters, trained
for a few epochs in a module fixture), so the file runs in seconds on a 2-core CPU.
"""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import ts_centers
from conftest import cluster_data
from keras_layers import MMCLayer
from utils.attacks import iterative as attacks_mod
from utils.attacks.core import ATTACK_SPECS
from utils.attacks.iterative import ATTACKS, worst_case_over_restarts
from utils.errors import UsageError
from utils.evaluation.ensemble import evaluate_attack
from utils.evaluation.stream import draw_targets
from utils.losses import loss_function
from utils.attacks.objectives import OBJECTIVES

NAMES = ATTACKS.names()
SHAPE = (4, 4, 1)
NUM_CLASSES = 4
CE = OBJECTIVES.get("ce").fn


def _clusters(n, seed):
    return cluster_data(n, seed, SHAPE, NUM_CLASSES)


def _mlp(features):
    inputs = keras.Input(SHAPE)
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    return inputs, keras.layers.Dense(features)(h)


@pytest.fixture(scope="module")
def data():
    (x_train, y_train), (x_test, y_test) = _clusters(512, 0), _clusters(96, 1)
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def sce_model(data):
    keras.utils.set_random_seed(0)
    model = keras.Model(*_mlp(NUM_CLASSES))
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(data[0], np.eye(NUM_CLASSES)[data[1]], epochs=5, batch_size=64, verbose=0)
    return model


def _kw(**over):
    kw = dict(eps=0.1, eps_iter=0.03, num_iter=5, clip_min=-1.0, clip_max=1.0, batch_size=32,
              progress=False, objective_name="ce")
    kw.update(over)
    return kw


def _attack(name, model, x, y, **over):
    kw = dict(objective=CE, eps=0.1, eps_iter=0.03, num_iter=5, clip_min=-1.0, clip_max=1.0,
              seed=0)
    kw.update(over)
    return ATTACKS.get(name)(model, x, np.eye(NUM_CLASSES, dtype=np.float32)[y], **kw).numpy()


def test_registry_has_the_original_names():
    assert NAMES == sorted(["BasicIterativeMethod", "FastGradientMethod", "MadryEtAl",
                            "MomentumIterativeMethod"])
    assert ATTACK_SPECS.get("MadryEtAl").random_start
    assert not ATTACK_SPECS.get("BasicIterativeMethod").random_start


# (a) eps = 0 ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_eps_zero_returns_x_and_clean_accuracy(name, sce_model, data):
    x, y = data[2], data[3]
    np.testing.assert_array_equal(_attack(name, sce_model, x[:8], y[:8], eps=0.0), x[:8])
    result = evaluate_attack(sce_model, x, y, attack_name=name, **_kw(eps=0.0))
    assert result["adv_correct"] == result["clean_correct"]
    assert result["adv_accuracy"] == result["clean_accuracy"]


# (b) the threat model, with per-pixel clip arrays ----------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("targeted", [False, True])
def test_outputs_stay_in_eps_ball_and_per_pixel_range(name, targeted, sce_model):
    rng = np.random.default_rng(7)
    mean = rng.uniform(0.2, 0.8, size=SHAPE).astype(np.float32)
    clip_min, clip_max = -mean, 1.0 - mean
    u = rng.uniform(size=(16,) + SHAPE).astype(np.float32)
    u[:4] = np.round(u[:4])  # pixels on the range's edges, where the clip binds
    x = u - mean
    y = rng.integers(0, NUM_CLASSES, 16)
    targets = np.eye(NUM_CLASSES, dtype=np.float32)[draw_targets(y, NUM_CLASSES, 1)]
    eps = 0.15
    x_adv = _attack(name, sce_model, x, y, eps=eps, eps_iter=0.05, clip_min=clip_min,
                    clip_max=clip_max, targets_onehot=targets if targeted else None)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.abs(x_adv - x).max() <= eps + 1e-6
    assert (x_adv >= clip_min).all() and (x_adv <= clip_max).all()
    assert np.abs(x_adv - x).max() > eps / 2  # it did move


# (c) analytic optimum of a linear two-class model ---------------------------------------
def _linear_model(seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(16, 2)).astype(np.float32) * 0.5
    w[np.abs(w[:, 0] - w[:, 1]) < 0.05, 0] += 0.2  # no tie: sign(w_y - w_o) is defined
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.layers[-1].set_weights([w, rng.normal(size=2).astype(np.float32) * 0.1])
    return model, w


@pytest.mark.parametrize("name,eps_iter,num_iter", [
    ("FastGradientMethod", 0.01, 1), ("BasicIterativeMethod", 0.04, 5),
    ("MadryEtAl", 0.05, 10), ("MomentumIterativeMethod", 0.04, 5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_model_attack_reaches_the_optimal_corner(name, eps_iter, num_iter, seed):
    model, w = _linear_model(seed)
    rng = np.random.default_rng(seed + 10)
    x = rng.uniform(-0.5, 0.5, size=(12,) + SHAPE).astype(np.float32)
    y = rng.integers(0, 2, 12)
    eps = np.float32(0.1)
    onehot = np.eye(2, dtype=np.float32)[y]
    x_adv = ATTACKS.get(name)(model, x, onehot, objective=CE, eps=float(eps), eps_iter=eps_iter,
                              num_iter=num_iter, clip_min=-1.0, clip_max=1.0, seed=seed).numpy()
    direction = np.sign(w[:, y] - w[:, 1 - y]).T.reshape(x.shape)  # sign(w_y - w_other)
    np.testing.assert_array_equal(x_adv, x - eps * direction)


# (d) huge eps ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["BasicIterativeMethod", "MadryEtAl", "MomentumIterativeMethod"])
def test_huge_eps_breaks_the_model(name, sce_model, data):
    x, y = data[2], data[3]
    kw = _kw(eps=10.0, eps_iter=1.0, num_iter=20, clip_min=-10.0, clip_max=10.0, batch_size=96)
    untargeted = evaluate_attack(sce_model, x, y, attack_name=name, **kw)
    assert untargeted["clean_accuracy"] > 0.9
    assert untargeted["adv_accuracy"] <= 0.02
    targets = draw_targets(y, NUM_CLASSES, seed=3)
    targeted = evaluate_attack(sce_model, x, y, attack_name=name, targets=targets, **kw)
    assert targeted["target_success"] >= 0.98
    assert targeted["adv_accuracy"] <= 0.02


# (e) monotonicity on the small model ---------------------------------------------------
@pytest.mark.parametrize("name", ["BasicIterativeMethod", "MadryEtAl"])
def test_accuracy_does_not_rise_with_eps(name, sce_model, data):
    counts = [evaluate_attack(sce_model, data[2], data[3], attack_name=name,
                              **_kw(eps=eps, eps_iter=max(eps / 4, 1e-3), num_iter=10,
                                    batch_size=96))["adv_correct"]
              for eps in (0.0, 0.1, 0.2, 0.3, 0.45)]
    assert all(later <= earlier + 1 for earlier, later in zip(counts, counts[1:])), counts
    assert counts[-1] < counts[0], counts


def test_more_bim_steps_never_help_the_defender(sce_model, data):
    counts = [evaluate_attack(sce_model, data[2], data[3], attack_name="BasicIterativeMethod",
                              **_kw(eps=0.3, eps_iter=0.05, num_iter=k,
                                    batch_size=96))["adv_correct"]
              for k in (1, 3, 10, 30)]
    assert all(later <= earlier + 1 for earlier, later in zip(counts, counts[1:])), counts


# (f) adaptive objective on an MMC head ----------------------------------------------------
@pytest.mark.slow
def test_mmc_un1_is_at_least_as_strong_as_ce_on_an_mmc_model(data):
    """PGD-10 on a 4-class MMC model (8-d features, MM centers, C_MM = 10) trained for 20
    epochs. Measured when written (96 test points, 96 clean-correct): eps 0.3 -> ce
    leaves 95 correct, mmc_un1 61 (eps 0.2: 96 vs 87): the softmax of the large MMC
    logits saturates, so CE gradients vanish (gradient masking) while ``h_y`` keeps its
    gradient. Not universal: after only 5 epochs, at eps 0.1, mmc_un1 left 92 correct
    and ce 91 (one example weaker); at eps 0.2 / 0.3 it was stronger (77 vs 82, 38 vs 74)."""
    keras.utils.set_random_seed(0)
    inputs, z = _mlp(8)
    model = keras.Model(inputs, MMCLayer(ts_centers.get_centers("mm", NUM_CLASSES, 8, 10.0))(z))
    model.compile(keras.optimizers.Adam(0.01), loss_function("mmc"))
    model.fit(data[0], np.eye(NUM_CLASSES, dtype=np.float32)[data[1]], epochs=20,
              batch_size=64, verbose=0)
    kw = _kw(eps=0.3, eps_iter=0.075, num_iter=10, batch_size=96)
    results = {obj: evaluate_attack(model, data[2], data[3], attack_name="MadryEtAl",
                                    **dict(kw, objective_name=obj))
               for obj in ("ce", "mmc_un1")}
    assert results["ce"]["clean_accuracy"] > 0.9
    assert results["mmc_un1"]["adv_correct"] <= results["ce"]["adv_correct"], results


# (g) bad inputs ---------------------------------------------------------------------------
@pytest.mark.parametrize("over,match", [
    (dict(eps=-0.1), "eps must be"), (dict(eps=float("nan")), "eps must be"),
    (dict(eps_iter=0.0), "eps_iter must be"), (dict(num_iter=0), "num_iter must be"),
    (dict(num_iter=2.5), "num_iter must be"), (dict(clip_min=1.0, clip_max=0.0), "exceeds"),
    (dict(clip_min=np.zeros((3, 3, 1))), "does not broadcast"),
    (dict(targets_onehot=np.zeros((3, NUM_CLASSES))), "targets_onehot shape"),
    (dict(seed=(1, 2, 3)), "seed")])
def test_attack_rejects_bad_inputs(over, match, sce_model, data):
    with pytest.raises(UsageError, match=match):
        _attack("MadryEtAl", sce_model, data[2][:4], data[3][:4], **over)


@pytest.mark.parametrize("call,match", [
    (lambda m, x, y: evaluate_attack(m, x, y, attack_name="PGD", **_kw()), "unknown attack"),
    (lambda m, x, y: evaluate_attack(m, x, y, attack_name="MadryEtAl",
                                     **_kw(objective_name="mmc_tar1")), "targeted"),
    (lambda m, x, y: evaluate_attack(m, x, y, attack_name="MadryEtAl", targets=y,
                                     **_kw()), "other than the true label"),
    (lambda m, x, y: evaluate_attack(m, x, y[:-1], attack_name="MadryEtAl", **_kw()),
     "as many labels"),
    (lambda m, x, y: evaluate_attack(m, x, y, attack_name="MadryEtAl", **_kw(batch_size=0)),
     "batch_size"),
    (lambda m, x, y: evaluate_attack(m, x, y, attack_name="MadryEtAl", num_restarts=0,
                                     **_kw()), "num_restarts"),
    (lambda m, x, y: evaluate_attack(m, x, y + NUM_CLASSES, attack_name="MadryEtAl", **_kw()),
     "labels must lie"),
    (lambda m, x, y: draw_targets(y, 1, 0), "at least 2 classes")])
def test_evaluation_rejects_bad_inputs(call, match, sce_model, data):
    with pytest.raises(UsageError, match=match):
        call(sce_model, data[2][:8], data[3][:8])


def test_draw_targets_is_uniform_among_wrong_labels_and_seeded():
    y = np.repeat(np.arange(5), 2000)
    targets = draw_targets(y, 5, seed=0)
    assert (targets != y).all() and targets.dtype == np.int32
    np.testing.assert_array_equal(targets, draw_targets(y, 5, seed=0))
    assert not np.array_equal(targets, draw_targets(y, 5, seed=1))
    for label in range(5):
        freq = np.bincount(targets[y == label], minlength=5) / 2000
        assert freq[label] == 0
        np.testing.assert_allclose(np.delete(freq, label), 0.25, atol=0.04)


# (h) streaming correctness -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["FastGradientMethod", "BasicIterativeMethod"])
@pytest.mark.parametrize("targeted", [False, True])
def test_batched_evaluation_equals_one_big_batch(name, targeted, sce_model, data):
    x, y = data[2], data[3]
    targets = draw_targets(y, NUM_CLASSES, 0) if targeted else None
    kw = _kw(eps=0.25, eps_iter=0.06)
    one = evaluate_attack(sce_model, x, y, attack_name=name, targets=targets,
                          **dict(kw, batch_size=len(x)))
    many = evaluate_attack(sce_model, x, y, attack_name=name, targets=targets,
                           **dict(kw, batch_size=13))
    assert one == many
    assert 0 < one["adv_correct"] < one["clean_correct"]  # a non-trivial case


# (i) restarts ------------------------------------------------------------------------------
def test_restarts_never_report_higher_accuracy(sce_model, data):
    x, y = data[2], data[3]
    kw = _kw(eps=0.25, eps_iter=0.05, seed=5)
    single = evaluate_attack(sce_model, x, y, attack_name="MadryEtAl", **kw)
    worst = evaluate_attack(sce_model, x, y, attack_name="MadryEtAl", num_restarts=4, **kw)
    assert worst["adv_correct"] <= single["adv_correct"]
    targets = draw_targets(y, NUM_CLASSES, 0)
    kw = dict(kw, objective_name="ce", targets=targets)
    single = evaluate_attack(sce_model, x, y, attack_name="MadryEtAl", **kw)
    worst = evaluate_attack(sce_model, x, y, attack_name="MadryEtAl", num_restarts=4, **kw)
    assert worst["target_hits"] >= single["target_hits"]


def test_restart_zero_is_the_single_run(sce_model, data):
    x, y = data[2][:32], data[3][:32]
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[y]
    kw = dict(objective=CE, eps=0.25, eps_iter=0.05, num_iter=5, clip_min=-1.0, clip_max=1.0)
    first = ATTACKS.get("MadryEtAl")(sce_model, x, onehot, seed=(5, 2), **kw).numpy()
    worst = worst_case_over_restarts("MadryEtAl", sce_model, x, onehot, num_restarts=3,
                                     seed=(5, 2), **kw).numpy()
    fooled = sce_model(first).numpy().argmax(-1) != y
    assert fooled.any()
    np.testing.assert_array_equal(worst[fooled], first[fooled])


# determinism, compilation, cross-check with cleverhans --------------------------------------
def test_random_start_is_seeded(sce_model, data):
    x, y = data[2][:8], data[3][:8]
    a = _attack("MadryEtAl", sce_model, x, y, seed=4, num_iter=1)
    np.testing.assert_array_equal(a, _attack("MadryEtAl", sce_model, x, y, seed=4, num_iter=1))
    assert not np.array_equal(a, _attack("MadryEtAl", sce_model, x, y, seed=5, num_iter=1))


def test_one_graph_serves_every_batch_and_iteration_count(sce_model, data):
    x, y = data[2], data[3]
    _attack("BasicIterativeMethod", sce_model, x[:16], y[:16], num_iter=2)
    before = attacks_mod.attack_graph.experimental_get_tracing_count()
    _attack("BasicIterativeMethod", sce_model, x[16:32], y[16:32], num_iter=7, eps=0.2)
    assert attacks_mod.attack_graph.experimental_get_tracing_count() == before


@pytest.mark.parametrize("name", ["BasicIterativeMethod", "MomentumIterativeMethod"])
def test_matches_cleverhans_on_a_smooth_model(name, sce_model, data):
    """Same iterates as cleverhans 4 (BIM = its PGD without random start; MIM)."""
    from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent
    x, y = data[2][:16], data[3][:16]
    kw = dict(eps=0.2, eps_iter=0.05, clip_min=-1.0, clip_max=1.0)
    ours = _attack(name, sce_model, x, y, num_iter=5, **kw)
    kw["nb_iter"] = 5  # cleverhans' own name for the step count
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "BasicIterativeMethod":
            theirs = projected_gradient_descent(sce_model, tf.constant(x), norm=np.inf,
                                                y=tf.constant(y), rand_init=0,
                                                sanity_checks=False, **kw)
        else:
            theirs = momentum_iterative_method(sce_model, tf.constant(x), y=tf.constant(y),
                                               sanity_checks=False, **kw)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)


def test_probability_outputs_warn(data):
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(NUM_CLASSES, activation="softmax")])
    with pytest.warns(RuntimeWarning, match="probabilities"):
        evaluate_attack(model, data[2][:8], data[3][:8], attack_name="FastGradientMethod",
                        **_kw())
