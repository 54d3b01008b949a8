"""APGD, APGD-T, MultiTargeted PGD and the DLR objectives.

Analytic cases (linear models, whose optimal attacks are known corners), the published
step-size schedule, the threat model with per-pixel clips, and APGD against PGD on a
small CNN trained in a module fixture on synthetic data (a few seconds on 2 CPU cores).
"""
from __future__ import annotations

import math
from fractions import Fraction

import keras
import numpy as np
import pytest
import tensorflow as tf

from utils.attacks import apgd as apgd_mod
from utils.attacks.apgd import apgd, apgd_run, checkpoint_schedule, checkpoint_windows
from utils.attacks.core import example_seeds
from utils.attacks.threat_model import threat_model
from utils.errors import UsageError
from utils.evaluation.ensemble import evaluate_attack
from utils.attacks.multitarget import apgd_targeted, multi_targeted_pgd, top_k_targets
from utils.attacks.objectives import OBJECTIVES

SHAPE = (8, 8, 1)
NUM_CLASSES, MODES = 5, 3
CE = OBJECTIVES.get("ce").fn
DLR = OBJECTIVES.get("dlr").fn
DLR_T = OBJECTIVES.get("dlr_targeted").fn


def _mixture(n: int, seed: int):
    """Five classes of three Gaussian modes each in [-1, 1]^64 (curved boundaries)."""
    protos = np.random.default_rng(123).normal(size=(NUM_CLASSES * MODES, 64)) * 0.5
    rng = np.random.default_rng(seed)
    mode = rng.integers(0, NUM_CLASSES * MODES, n)
    x = np.clip(protos[mode] + rng.normal(scale=0.5, size=(n, 64)), -1, 1)
    return x.astype(np.float32).reshape((n,) + SHAPE), mode % NUM_CLASSES


@pytest.fixture(scope="module")
def cnn():
    """A tiny CNN, ~99% clean accuracy on 128 held-out points."""
    (x_train, y_train), (x, y) = _mixture(2048, 0), _mixture(128, 1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(NUM_CLASSES)])
    model.compile(keras.optimizers.Adam(0.005),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(x_train, np.eye(NUM_CLASSES)[y_train], epochs=8, batch_size=64, verbose=0)
    return model, x, y


def _onehot(y, num_classes=NUM_CLASSES):
    return np.eye(num_classes, dtype=np.float32)[y]


def _linear(seed: int, num_classes: int):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(int(np.prod(SHAPE)), num_classes)).astype(np.float32) * 0.5
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(num_classes)])
    model.layers[-1].set_weights([w, rng.normal(size=num_classes).astype(np.float32) * 0.1])
    x = rng.uniform(-0.5, 0.5, size=(10,) + SHAPE).astype(np.float32)
    return model, w, x, rng.integers(0, num_classes, 10)


# ---------------------------------------------------------------- the schedule
def test_checkpoints_follow_the_published_schedule():
    p = [Fraction(0), Fraction(22, 100)]
    while True:  # exact arithmetic: p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)
        nxt = p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100))
        if nxt > 1:
            break
        p.append(nxt)
    expected = [math.ceil(f * 100) for f in p]
    assert expected[:5] == [0, 22, 41, 57, 70]
    assert checkpoint_schedule(100) == expected == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoint_schedule(1000)[:4] == [0, 220, 410, 570]
    # Elsewhere AutoAttack's integer windows (which we follow) differ from ceil(p_j n):
    # n = 10 has windows 2, 1, 1, ... (n_iter_2 = 2, size_decr = n_iter_min = 1).
    assert checkpoint_schedule(10) == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert checkpoint_schedule(50) == [0, 11, 21, 30, 38, 45]
    assert checkpoint_windows(1) == [1] and checkpoint_windows(100)[-1] == 6
    for num_iter in (1, 2, 5, 10, 37):
        points = checkpoint_schedule(num_iter)
        assert points[0] == 0 and points[-1] <= num_iter
        assert all(b > a for a, b in zip(points, points[1:]))


@pytest.mark.slow
def test_step_halves_exactly_at_the_checkpoints_when_progress_stalls():
    """A constant model gives no progress: condition 1 holds at every checkpoint."""
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(NUM_CLASSES, kernel_initializer="zeros")])
    x = np.zeros((3,) + SHAPE, np.float32)
    eps, num_iter = 0.1, 100
    result = apgd_run(model, x, _onehot([0, 1, 2]), objective=CE, eps=eps, clip_min=-1.0,
                      clip_max=1.0, num_iter=num_iter, seed=0)
    halvings = np.cumsum(np.isin(np.arange(num_iter), checkpoint_schedule(num_iter)[1:]))
    expected = 2 * eps / 2.0 ** halvings
    np.testing.assert_allclose(result.step_sizes.numpy(), np.repeat(expected[:, None], 3, 1),
                               rtol=1e-6)


def _scripted_model(history):
    """A model whose objective value at its ``c``-th call is ``history[c]`` (per example,
    ``(T, B)``) whatever the input: the loss history APGD sees is the script (its input
    gradient is zero, so the iterates do not move)."""
    calls = tf.Variable(0)
    table = tf.constant(np.asarray(history, np.float32))

    def model_fn(x):
        row = tf.gather(table, calls.assign_add(1) - 1)
        f = row + 0.0 * tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)
        return tf.stack([f, tf.fill(tf.shape(f), -1e3)], axis=1)  # class 0 stays on top

    return model_fn


def test_step_size_rule_follows_autoattacks_code_on_a_scripted_loss_history():
    """Known answer for the halving rule (20 steps: windows of 4, 3, 2, 1, 1, ...; the
    thresholds ``0.75 k`` are 3, 2.25, 1.5, 0.75). The row before each ``|`` is the loss at
    the start point, then one loss per step.

    A: -10 | -4 -3 -2 -1 | 1 2 3 | 4 5 | 6 ...: the first step is compared with 0 (the
       code's zero-initialised history), so window 1 counts 3 increases, 3 <= 3: halved
       after step 4. (The paper's rule compares with -10 and counts 4 < 3: never halved.)
    B: the same with positive losses, 1 2 3 4 ...: 4 increases > 3, never halved.
    C: 0 | 5 1 0.5 2 | 4 6 7 | 8 9 | 10 ...: 2 increases in window 1, halved after step 4
       (restart from the best point, loss 5). Window 2 compares 4 with the last loss
       before the restart, 2 (the code), not with the best, 5: 3 increases > 2.25, not
       halved; condition 2 is off after a halving. (Comparing with 5 counts 2: halved.)
    """
    steps, eps = 20, 1.0
    rising = np.arange(1.0, steps - 3)
    history = np.stack([np.r_[-10, -4, -3, -2, -1, rising],
                        np.r_[0.5, np.arange(1.0, steps + 1)],
                        np.r_[0, 5, 1, 0.5, 2, 4, 6, 7, rising + 7][:steps + 1]], axis=1)
    assert history.shape == (steps + 1, 3)
    result = apgd_run(_scripted_model(history), np.zeros((3, 1), np.float32),
                      _onehot([0, 0, 0], 2), objective=lambda logits, labels: -logits[:, 0],
                      eps=eps, clip_min=-10.0, clip_max=10.0, num_iter=steps, seed=0)
    halved = np.where(np.arange(steps) < 4, 2 * eps, eps)
    expected = np.stack([halved, np.full(steps, 2 * eps), halved], axis=1)
    np.testing.assert_array_equal(result.step_sizes.numpy(), expected)
    np.testing.assert_array_equal(result.best_value.numpy(), -history.max(axis=0))


# ---------------------------------------------------------------- analytic cases
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_two_class_linf_reaches_the_optimal_corner(seed):
    model, w, x, y = _linear(seed, 2)
    eps = 0.1
    result = apgd_run(model, x, _onehot(y, 2), objective=CE, eps=eps, clip_min=-10.0,
                      clip_max=10.0, num_iter=10, seed=seed)
    direction = np.sign(w[:, y] - w[:, 1 - y]).T.reshape(x.shape)  # sign(w_y - w_other)
    np.testing.assert_allclose(result.x_best.numpy(), x - eps * direction, atol=1e-6)


def test_linear_two_class_l2_reaches_the_optimal_point():
    model, w, x, y = _linear(2, 2)
    eps = 0.5
    result = apgd_run(model, x, _onehot(y, 2), objective=CE, eps=eps, clip_min=-10.0,
                      clip_max=10.0, num_iter=40, norm="l2", seed=0)
    diff = (w[:, y] - w[:, 1 - y]).T
    optimum = x - eps * (diff / np.linalg.norm(diff, axis=1, keepdims=True)).reshape(x.shape)
    np.testing.assert_allclose(result.x_best.numpy(), optimum, atol=1e-4)


def test_linear_targeted_reaches_the_corner_toward_the_target():
    """``h_y - h_t`` is linear in x: the optimal targeted ℓ∞ attack is
    ``x - eps sign(w_y - w_t)``."""
    model, w, x, y = _linear(3, 4)
    t = (y + 1 + np.arange(10) % 3) % 4
    eps = 0.05
    result = apgd_run(model, x, _onehot(y, 4), objective=OBJECTIVES.get("mmc_tar2").fn,
                      eps=eps, clip_min=-10.0, clip_max=10.0, num_iter=10,
                      targets_onehot=_onehot(t, 4), seed=0)
    direction = np.sign(w[:, y] - w[:, t]).T.reshape(x.shape)
    np.testing.assert_allclose(result.x_best.numpy(), x - eps * direction, atol=1e-6)


def test_eps_zero_returns_x(cnn):
    model, x, y = cnn
    for norm in ("linf", "l2"):
        out = apgd(model, x[:8], _onehot(y[:8]), objective=CE, eps=0.0, clip_min=-1.0,
                   clip_max=1.0, num_iter=5, norm=norm, seed=0)
        np.testing.assert_array_equal(out.numpy(), x[:8])
    out = apgd_targeted(model, x[:8], _onehot(y[:8]), eps=0.0, clip_min=-1.0, clip_max=1.0,
                        num_iter=5, seed=0)
    np.testing.assert_array_equal(out.numpy(), x[:8])


def test_huge_eps_breaks_the_model(cnn):
    model, x, y = cnn
    for attack in (lambda: apgd(model, x, _onehot(y), objective=CE, eps=10.0, clip_min=-10.0,
                                clip_max=10.0, num_iter=10, seed=0),
                   lambda: apgd_targeted(model, x, _onehot(y), eps=10.0, clip_min=-10.0,
                                         clip_max=10.0, num_iter=10, n_target_classes=2, seed=0)):
        assert np.mean(model(attack()).numpy().argmax(-1) == y) <= 0.02


# ---------------------------------------------------------------- the threat model
@pytest.mark.parametrize("kind", ["apgd-linf", "apgd-l2", "apgd-t", "multitargeted"])
def test_outputs_stay_in_the_ball_and_per_pixel_range(kind, cnn):
    model = cnn[0]
    rng = np.random.default_rng(7)
    mean = rng.uniform(0.2, 0.8, size=SHAPE).astype(np.float32)
    clip_min, clip_max = -mean, 1.0 - mean
    u = rng.uniform(size=(8,) + SHAPE).astype(np.float32)  # batch 8 == H: per-pixel clips
    u[:4] = np.round(u[:4])  # on the range's edges, where the clip binds
    x, y = u - mean, rng.integers(0, NUM_CLASSES, 8)
    eps = 1.0 if kind == "apgd-l2" else 0.15
    kw = dict(eps=eps, clip_min=clip_min, clip_max=clip_max, seed=0)
    if kind.startswith("apgd-l"):
        out = apgd(model, x, _onehot(y), objective=CE, num_iter=10, norm=kind[5:], **kw)
    elif kind == "apgd-t":
        out = apgd_targeted(model, x, _onehot(y), num_iter=5, n_target_classes=3, **kw)
    else:
        out = multi_targeted_pgd(model, x, _onehot(y), eps_iter=0.05, num_iter=5,
                                 n_target_classes=3, **kw)
    out = out.numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    delta = (out - x).reshape(len(x), -1)
    size = np.linalg.norm(delta, axis=1) if kind == "apgd-l2" else np.abs(delta).max(axis=1)
    assert size.max() <= eps + 1e-5 and size.max() > eps / 2
    assert (out >= clip_min).all() and (out <= clip_max).all()


# ---------------------------------------------------------------- strength
def test_apgd_at_least_as_strong_as_pgd_with_the_same_budget(cnn):
    """Summed over seeds and two radii; measured when written: PGD-20 (step eps/4) left
    337 of 768 attacked points correct, APGD-CE-20 332 (APGD was never more than 1 point
    behind in any single run)."""
    model, x, y = cnn
    totals = {"pgd": 0, "apgd": 0}
    for eps in (0.15, 0.2):
        for seed in range(3):
            totals["pgd"] += evaluate_attack(
                model, x, y, attack_name="MadryEtAl", objective_name="ce", eps=eps,
                eps_iter=eps / 4, num_iter=20, clip_min=-1.0, clip_max=1.0, batch_size=128,
                progress=False, seed=seed)["adv_correct"]
            x_adv = apgd(model, x, _onehot(y), objective=CE, eps=eps, clip_min=-1.0,
                         clip_max=1.0, num_iter=20, seed=(seed, 0))
            totals["apgd"] += int(np.sum(model(x_adv).numpy().argmax(-1) == y))
    assert totals["apgd"] <= totals["pgd"], totals


def test_targeted_sweeps_never_weaker_than_their_first_target(cnn):
    model, x, y = cnn
    eps = 0.15
    first = top_k_targets(model(x), _onehot(y), 1)[0]
    single = apgd(model, x, _onehot(y), objective=DLR_T, eps=eps, clip_min=-1.0, clip_max=1.0,
                  num_iter=10, targets_onehot=_onehot(first), seed=(0, 0))
    sweep = apgd_targeted(model, x, _onehot(y), eps=eps, clip_min=-1.0, clip_max=1.0,
                          num_iter=10, n_target_classes=4,  # rank 0 starts where `single` does
                          seed=(0, 0))

    def correct(a):
        return int(np.sum(model(a).numpy().argmax(-1) == y))

    assert correct(sweep) <= correct(single) < len(y)


def test_top_k_targets_rank_wrong_classes_by_logit():
    logits = np.array([[3.0, 1.0, 2.0, 0.0], [0.0, 5.0, 4.0, 6.0]], np.float32)
    targets = top_k_targets(logits, _onehot([0, 3], 4), 3)
    np.testing.assert_array_equal(targets, [[2, 1], [1, 2], [3, 0]])


def test_n_target_classes_is_capped_and_checked(cnn):
    model, x, y = cnn
    kw = dict(eps=0.1, clip_min=-1.0, clip_max=1.0, num_iter=2, seed=0)
    apgd_targeted(model, x[:4], _onehot(y[:4]), n_target_classes=50, **kw)  # capped at 4
    with pytest.raises(UsageError, match="n_target_classes"):
        apgd_targeted(model, x[:4], _onehot(y[:4]), n_target_classes=0, **kw)


# ---------------------------------------------------------------- DLR objectives
def _autoattack_dlr(z, y):
    """AutoAttack's dlr_loss (maximised), transcribed to NumPy."""
    z_sorted = np.sort(z, axis=1)
    ind = (z_sorted[:, -1] == z[np.arange(len(y)), y]).astype(np.float32)
    return -(z[np.arange(len(y)), y] - z_sorted[:, -2] * ind - z_sorted[:, -1] * (1 - ind)) \
        / (z_sorted[:, -1] - z_sorted[:, -3] + 1e-12)


def _autoattack_dlr_targeted(z, y, t):
    z_sorted = np.sort(z, axis=1)
    u = np.arange(len(y))
    return -(z[u, y] - z[u, t]) / (z_sorted[:, -1] - 0.5 * (z_sorted[:, -3] + z_sorted[:, -4])
                                   + 1e-12)


def test_dlr_is_the_negative_of_autoattacks_loss_and_minimised_by_attacks():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 6)).astype(np.float32) * 3
    y, t = rng.integers(0, 6, 64), rng.integers(0, 6, 64)
    t = np.where(t == y, (t + 1) % 6, t)
    ours = DLR(tf.constant(z), _onehot(y, 6)).numpy()
    np.testing.assert_allclose(ours, -_autoattack_dlr(z, y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(DLR_T(tf.constant(z), _onehot(y, 6), _onehot(t, 6)).numpy(),
                               -_autoattack_dlr_targeted(z, y, t), rtol=1e-5, atol=1e-6)
    correct = z.argmax(1) == y
    assert (ours[correct] > 0).all() and (ours[~correct] <= 0).all()  # minimising breaks it
    hit = z.argmax(1) == t
    targeted = DLR_T(tf.constant(z), _onehot(y, 6), _onehot(t, 6)).numpy()
    assert (targeted[hit] < 0).all()
    # shift and scale invariance
    np.testing.assert_allclose(DLR(tf.constant(2 * z + 7), _onehot(y, 6)).numpy(), ours,
                               rtol=1e-4, atol=1e-5)


def test_dlr_needs_enough_classes():
    with pytest.raises(UsageError, match="at least 3 classes"):
        DLR(tf.zeros((2, 2)), _onehot([0, 1], 2))
    with pytest.raises(UsageError, match="at least 4 classes"):
        DLR_T(tf.zeros((2, 3)), _onehot([0, 1], 3), _onehot([1, 2], 3))


# ---------------------------------------------------------------- inputs and compilation
@pytest.mark.parametrize("over,match", [
    (dict(norm="l1"), "unknown norm"), (dict(num_iter=0), "num_iter must be"),
    (dict(eps=-0.1), "eps must be"), (dict(example_index=np.arange(3)), "example_index has 3"),
    (dict(success_on_target=True), "needs targets_onehot"),
    (dict(clip_min=np.zeros((3, 3, 1))), "does not broadcast")])
def test_bad_inputs_raise_usage_error(over, match, cnn):
    model, x, y = cnn
    kw = dict(objective=CE, eps=0.1, clip_min=-1.0, clip_max=1.0, num_iter=3, seed=0)
    kw.update(over)
    with pytest.raises(UsageError, match=match):
        apgd_run(model, x[:4], _onehot(y[:4]), **kw)


def test_one_graph_serves_every_batch(cnn):
    model, x, y = cnn
    kw = dict(objective=CE, eps=0.1, clip_min=-1.0, clip_max=1.0, num_iter=4)
    apgd_run(model, x[:16], _onehot(y[:16]), seed=0, **kw)
    before = apgd_mod.apgd_graph.experimental_get_tracing_count()
    apgd_run(model, x[16:32], _onehot(y[16:32]), seed=1, **kw)
    assert apgd_mod.apgd_graph.experimental_get_tracing_count() == before


def test_start_noise_is_seeded_and_scaled():
    linf = threat_model("linf")

    def noise(seed, restart=0):
        return linf.noise((4,) + SHAPE, example_seeds(seed, np.arange(4), restart)).numpy()

    a = noise((3, 1))
    np.testing.assert_array_equal(a, noise((3, 1)))
    assert np.abs(a).max() <= 1.0 and not np.array_equal(a, noise((3, 2)))
    assert not np.array_equal(a, noise((3, 1), restart=1))
