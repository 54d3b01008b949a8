"""utils/attacks/cleverhans_compat/: the objective adapter, and one regression test per breakage.

Each breakage test first calls the shipped cleverhans 4.0.0 code and asserts that it
raises or misbehaves on Keras 3 / NumPy 2 (so the test documents it), then that our
wrapper works. Where the shipped C&W needs getting past its first crash to show a later
one, ``_CallableVariablesAdam`` stands in for the optimizer (a test-only shim).
"""
from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from cleverhans.tf2 import utils as ch_utils
from cleverhans.tf2.attacks import basic_iterative_method as ch_bim
from cleverhans.tf2.attacks import carlini_wagner_l2 as ch_cw
from cleverhans.tf2.attacks import fast_gradient_method as ch_fgm
from cleverhans.tf2.attacks import madry_et_al as ch_madry
from cleverhans.tf2.attacks import momentum_iterative_method as ch_mim
from cleverhans.tf2.attacks import projected_gradient_descent as ch_pgd
from cleverhans.tf2.attacks import spsa as ch_spsa

from keras_layers import MMCLayer
from ts_centers import get_centers
from utils.attacks import cleverhans_compat as cc
from utils.errors import UsageError
from utils.attacks.objectives import OBJECTIVES

NUM_CLASSES, SHAPE = 3, (4, 4, 3)
FAST_CW = dict(binary_search_steps=2, max_iterations=30, learning_rate=0.1, initial_const=1.0)


@pytest.fixture(scope="module")
def dense_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                             keras.layers.Dense(NUM_CLASSES)])


@pytest.fixture(scope="module")
def mmc_model():
    keras.utils.set_random_seed(1)
    centers = get_centers("mm", NUM_CLASSES, 4, 1.0)
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(4),
                             MMCLayer(centers)])


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(0.1, 0.9, (4,) + SHAPE).astype(np.float32)


def predictions(model, x):
    return np.argmax(model(x), axis=-1)


def objective_value(model, name, x, y, targets=None):
    targets = None if targets is None else tf.one_hot(targets, NUM_CLASSES)
    return OBJECTIVES.get(name).fn(model(x), tf.one_hot(y, NUM_CLASSES), targets=targets).numpy()


class _CallableVariablesAdam(keras.optimizers.Adam):
    """Test-only shim: Keras 2's callable ``variables()``, to run shipped C&W further."""

    def variables(self):  # noqa: D102 - shadows Keras 3's list property on purpose
        return list(self._variables)


def shipped_cw(model, **kwargs):
    attack = ch_cw.CarliniWagnerL2(model, **kwargs)
    attack.optimizer = _CallableVariablesAdam(attack.learning_rate)
    return attack


# ------------------------------------------------------------------------- the adapter

def test_untargeted_ce_reproduces_cleverhans_default_loss(dense_model, x):
    y = predictions(dense_model, x)
    shipped = ch_fgm.fast_gradient_method(dense_model, x, 0.05, np.inf, y=y)
    ours = cc.fast_gradient_method(dense_model, x, 0.05, y=y, objective="ce")
    np.testing.assert_allclose(ours, shipped, atol=1e-6)
    shipped = ch_pgd.projected_gradient_descent(dense_model, x, 0.1, 0.02, 3, np.inf, y=y)
    ours = cc.projected_gradient_descent(dense_model, x, 0.1, 0.02, 3, y=y)
    np.testing.assert_allclose(ours, shipped, atol=1e-6)


def test_targeted_ce_reproduces_cleverhans_targeted(dense_model, x):
    t = (predictions(dense_model, x) + 1) % NUM_CLASSES
    shipped = ch_fgm.fast_gradient_method(dense_model, x, 0.05, np.inf, y=t, targeted=True)
    ours = cc.fast_gradient_method(dense_model, x, 0.05, targets=t, objective="ce")
    np.testing.assert_allclose(ours, shipped, atol=1e-6)


@pytest.mark.parametrize("name, targeted, model_name", [
    ("ce", False, "dense_model"), ("ce", True, "dense_model"),
    ("margin", False, "dense_model"), ("margin", True, "dense_model"),
    ("mmc_un1", False, "mmc_model"), ("mmc_un2", False, "mmc_model"),
    ("mmc_tar1", True, "mmc_model"), ("mmc_tar2", True, "mmc_model"),
])
def test_one_small_step_decreases_every_objective(request, x, name, targeted, model_name):
    model = request.getfixturevalue(model_name)
    y = predictions(model, x)
    t = (y + 1) % NUM_CLASSES if targeted else None
    x_adv = cc.fast_gradient_method(model, x, 1e-3, y=y, targets=t, objective=name, norm=2)
    before, after = (objective_value(model, name, v, y, t) for v in (x, x_adv))
    assert np.all(after < before), (before, after)


def test_adapter_labels_and_modes(mmc_model, x):
    y = predictions(mmc_model, x)
    t = (y + 1) % NUM_CLASSES
    with pytest.raises(UsageError, match="true labels"):
        cc.cleverhans_loss_fn("mmc_tar2", targeted=True)
    with pytest.raises(UsageError, match="untargeted"):
        cc.cleverhans_loss_fn("mmc_un1", targeted=True)
    with pytest.raises(UsageError, match="targeted"):
        cc.cleverhans_loss_fn("mmc_tar1", targeted=False)
    loss_fn = cc.cleverhans_loss_fn("mmc_tar2", targeted=True, labels=y)
    logits = mmc_model(x)
    # cleverhans descends the targeted loss_fn, so it must equal the objective itself
    np.testing.assert_allclose(loss_fn(labels=t, logits=logits),
                               objective_value(mmc_model, "mmc_tar2", x, y, t), rtol=1e-6)
    untargeted = cc.cleverhans_loss_fn("mmc_un1", targeted=False)
    np.testing.assert_allclose(untargeted(labels=tf.one_hot(y, NUM_CLASSES), logits=logits),
                               -objective_value(mmc_model, "mmc_un1", x, y), rtol=1e-6)


def test_adapters_are_reused_so_cleverhans_does_not_retrace(dense_model, x):
    assert cc.cleverhans_loss_fn("margin", False) is cc.cleverhans_loss_fn("margin", False)
    assert cc.cleverhans_loss_fn("mmc_tar1", True) is cc.cleverhans_loss_fn("mmc_tar1", True)
    cc.projected_gradient_descent(dense_model, x, 0.1, 0.02, 2, objective="margin")
    before = ch_utils.compute_gradient.experimental_get_tracing_count()
    cc.projected_gradient_descent(dense_model, x[::-1].copy(), 0.1, 0.02, 2, objective="margin")
    assert ch_utils.compute_gradient.experimental_get_tracing_count() == before


# ------------------------------------------------------------ BIM / MadryEtAl / PGD / MIM

@pytest.mark.parametrize("shipped, ours", [
    (ch_bim.basic_iterative_method, cc.basic_iterative_method),
    (ch_madry.madry_et_al, cc.madry_et_al),
])
def test_default_sanity_checks_work(dense_model, x, shipped, ours):
    with pytest.raises(ValueError, match="inhomogeneous"):  # np.all over a ragged list
        shipped(dense_model, x, 0.1, 0.02, 2, np.inf, clip_min=0.0, clip_max=1.0)
    x_adv = ours(dense_model, x, 0.1, 0.02, 2, clip_min=0.0, clip_max=1.0,
                 objective="margin", sanity_checks=True).numpy()
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    with pytest.raises(UsageError, match="clip_max"):  # the check still checks
        ours(dense_model, x + 1.0, 0.1, 0.02, 2, clip_min=0.0, clip_max=1.0)
    with pytest.raises(UsageError, match="eps_iter"):
        ours(dense_model, x, 0.1, 0.2, 2, clip_min=0.0, clip_max=1.0)


def test_madry_random_start_is_uniform_in_the_eps_ball(dense_model, x):
    eps = 0.01
    shipped = ch_madry.madry_et_al(dense_model, x, eps, eps, 0, np.inf, sanity_checks=False)
    ours = cc.madry_et_al(dense_model, x, eps, eps, 0)

    def share_at_bound(adv):
        return np.mean(np.isclose(np.abs(adv - x), eps))
    assert share_at_bound(shipped) > 0.9  # cleverhans: uniform(+-0.3) clipped to +-eps
    assert share_at_bound(ours) < 0.1
    assert np.abs(ours - x).max() <= eps + 1e-7


@pytest.mark.parametrize("attack", [cc.projected_gradient_descent, cc.basic_iterative_method,
                                    cc.madry_et_al, cc.momentum_iterative_method])
def test_iterative_attacks_stay_in_range_and_lower_the_objective(mmc_model, x, attack):
    y = predictions(mmc_model, x)
    x_adv = attack(mmc_model, x, 0.1, 0.02, 4, y=y, objective="mmc_un1", clip_min=0.0,
                   clip_max=1.0).numpy()
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.all(objective_value(mmc_model, "mmc_un1", x_adv, y)
                  < objective_value(mmc_model, "mmc_un1", x, y))


def test_momentum_iterative_method_uses_our_objective(mmc_model, x):
    assert "loss_fn" not in inspect.signature(ch_mim.momentum_iterative_method).parameters
    original = ch_mim.loss_fn
    y = predictions(mmc_model, x)
    t = (y + 1) % NUM_CLASSES
    ours = cc.momentum_iterative_method(mmc_model, x, 0.05, 0.05, 1, y=y, targets=t,
                                        objective="mmc_tar1").numpy()
    assert ch_mim.loss_fn is original  # restored
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        value = OBJECTIVES.get("mmc_tar1").fn(mmc_model(xt), None,
                                              targets=tf.one_hot(t, NUM_CLASSES))
    expected = x - 0.05 * np.sign(tape.gradient(value, xt).numpy())
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    shipped = ch_mim.momentum_iterative_method(mmc_model, x, 0.05, 0.05, 1, y=t, targeted=True)
    assert not np.allclose(shipped, expected)  # its hard-coded cross-entropy


def test_patch_attribute_restores_on_error():
    with pytest.raises(RuntimeError):
        with cc.patch_attribute(ch_mim, "loss_fn", None):
            assert ch_mim.loss_fn is None
            raise RuntimeError
    assert callable(ch_mim.loss_fn)


# ------------------------------------------------------------------------------- SPSA

def test_shipped_spsa_is_broken_on_keras3(dense_model, x):
    with pytest.raises(ValueError, match="lr"):
        ch_spsa.spsa(dense_model, tf.constant(x[:1]), tf.constant([0]), 0.1, 1,
                     clip_min=0.0, clip_max=1.0, spsa_samples=4)
    legacy = ch_spsa.SPSAAdam.__new__(ch_spsa.SPSAAdam)  # what SPSAAdam(lr=) would build
    keras.optimizers.Adam.__init__(legacy, learning_rate=0.01)
    var = tf.ones((1, 2))
    with pytest.raises(AttributeError, match="lr"):
        legacy._apply_gradients([var], [var], legacy.init_state([var]))
    ours = cc.KerasSPSAAdam(lr=0.01, num_samples=4)
    stepped, state = ours._apply_gradients([var], [var], ours.init_state([var]))
    np.testing.assert_allclose(stepped[0], 1.0 - 0.01, rtol=1e-5)  # first Adam step ~ lr
    assert float(state["t"]) == 1.0


def test_spsa_minimises_our_objective(mmc_model, x):
    tf.random.set_seed(0)
    y = predictions(mmc_model, x)
    x_adv = cc.spsa(mmc_model, x, 0.1, 4, y=y, objective="mmc_un1", spsa_samples=16,
                    learning_rate=0.05).numpy()
    assert x_adv.shape == x.shape and np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.all(objective_value(mmc_model, "mmc_un1", x_adv, y)
                  < objective_value(mmc_model, "mmc_un1", x, y))
    t = (y + 1) % NUM_CLASSES  # mmc_tar2 also reads the true labels
    x_tar = cc.spsa(mmc_model, x[:2], 0.1, 2, y=y[:2], targets=t[:2], objective="mmc_tar2",
                    spsa_samples=8).numpy()
    assert np.abs(x_tar - x[:2]).max() <= 0.1 + 1e-6


# ---------------------------------------------------------------------------- C&W-L2

def test_shipped_cw_calls_optimizer_variables(dense_model, x):
    with pytest.raises(TypeError, match="not callable"):  # a list in Keras 3
        ch_cw.carlini_wagner_l2(dense_model, x[:1], max_iterations=2, binary_search_steps=1)
    ours = cc.carlini_wagner_l2(dense_model, x[:1], **FAST_CW)
    assert predictions(dense_model, ours) != predictions(dense_model, x[:1])


def test_zeroing_keras3_optimizer_variables_zeroes_the_learning_rate(dense_model, x):
    attack = shipped_cw(dense_model, batch_size=1, **FAST_CW)
    out = attack.attack(x[:1])
    assert float(attack.optimizer.learning_rate) == 0.0
    np.testing.assert_array_equal(out, x[:1])  # so the attack never moves


def test_shipped_cw_const_has_the_shape_of_x(dense_model, x):
    with pytest.raises(ValueError):  # (2, 4, 4, 3) * (2,) in the loss
        shipped_cw(dense_model, batch_size=2, max_iterations=2,
                   binary_search_steps=1).attack(x[:2])


def test_shipped_cw_shares_its_optimizer_across_batches(dense_model, x):
    with pytest.raises(ValueError, match="Unknown variable"):
        shipped_cw(dense_model, batch_size=1, max_iterations=2,
                   binary_search_steps=1).attack(x[:2])


def test_shipped_cw_y_is_not_sliced_and_means_target(dense_model, x):
    y = predictions(dense_model, x)
    with pytest.raises(ch_cw.CarliniWagnerL2Exception, match="same shape"):
        shipped_cw(dense_model, y=y[:2], batch_size=1, max_iterations=2,
                   binary_search_steps=1).attack(x[:2])
    assert ch_cw.CarliniWagnerL2(dense_model, y=y, targeted=False).targeted  # ignored


@pytest.mark.slow
def test_cw_results_do_not_depend_on_batching(dense_model, x):
    kwargs = dict(FAST_CW, abort_early=False)
    together = cc.carlini_wagner_l2(dense_model, x, batch_size=4, **kwargs)
    in_ones = cc.carlini_wagner_l2(dense_model, x, batch_size=1, **kwargs)
    in_threes = cc.carlini_wagner_l2(dense_model, x, batch_size=3, **kwargs)
    alone = np.concatenate([cc.carlini_wagner_l2(dense_model, x[i:i + 1], **kwargs)
                            for i in range(len(x))])
    for other in (in_ones, in_threes, alone):
        np.testing.assert_allclose(together, other, atol=1e-5)
    assert np.all(predictions(dense_model, together) != predictions(dense_model, x))


def test_cw_already_adversarial_inputs_come_back_at_distortion_zero(dense_model, x):
    pred = predictions(dense_model, x)
    # shipped (only targeted can say so; one example per attack object, see above):
    # inputs already at the target come back at distortion ~1e-6
    near = np.concatenate([shipped_cw(dense_model, y=pred[i:i + 1], batch_size=1,
                                      max_iterations=3, binary_search_steps=1).attack(x[i:i + 1])
                           for i in range(len(x))])
    distortion = np.sqrt(((near - x) ** 2).sum(axis=(1, 2, 3)))
    assert np.all((distortion > 0) & (distortion < 1e-4))
    ours = cc.carlini_wagner_l2(dense_model, x, y=(pred + 1) % NUM_CLASSES,
                                max_iterations=3, binary_search_steps=1)
    np.testing.assert_array_equal(ours, x)  # untargeted, already misclassified
    ours = cc.carlini_wagner_l2(dense_model, x, targets=pred, max_iterations=3,
                                binary_search_steps=1)
    np.testing.assert_array_equal(ours, x)  # targeted, already at the target


def test_cw_success_test_honours_confidence():
    logits = tf.constant([[1.0, 1.5, 0.0]])  # misclassified (label 0) by a margin of 0.5
    labels = tf.one_hot([0], 3)
    shipped_rule = tf.argmax(logits + 1.0, 1) != tf.argmax(labels, 1)  # preds + confidence
    assert bool(shipped_rule[0]) and bool(cc.is_adversarial(logits, labels, None, 0.0)[0])
    assert not bool(cc.is_adversarial(logits, labels, None, 1.0)[0])
    assert bool(cc.is_adversarial(logits, labels, None, 0.4)[0])
    targets = tf.one_hot([1], 3)
    assert not bool(cc.is_adversarial(logits, labels, targets, 1.0)[0])
    assert bool(cc.is_adversarial(logits, labels, targets, 0.4)[0])


def test_cw_binary_search_follows_carlini():
    success = tf.constant([True, False, True, False])
    const = tf.constant([0.01, 0.01, 0.4, 0.4])
    lower = tf.constant([0.0, 0.0, 0.2, 0.2])
    upper = tf.constant([1e10, 1e10, 0.8, 0.8])
    new_const, new_lower, new_upper = cc.update_const(success, const, lower, upper)
    # success: bisect below (cleverhans multiplies this by 10 again); failure without an
    # upper bound: x10; failure with one: bisect above
    np.testing.assert_allclose(new_const, [0.005, 0.1, 0.3, 0.6], rtol=1e-6)
    np.testing.assert_allclose(new_lower, [0.0, 0.01, 0.2, 0.4], rtol=1e-6)
    np.testing.assert_allclose(new_upper, [0.01, 1e10, 0.4, 0.8], rtol=1e-6)


def test_cw_accepts_flat_inputs():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(NUM_CLASSES)])
    x = np.full((1, 6), 0.5, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError):  # reshape(mask, [-1, 1, 1, 1])
        shipped_cw(model, batch_size=1, max_iterations=2, binary_search_steps=1).attack(x)
    assert cc.carlini_wagner_l2(model, x, **FAST_CW).shape == (1, 6)


@pytest.mark.parametrize("name, targeted", [("mmc_un2", False), ("mmc_tar2", True)])
def test_cw_with_mmc_objectives(mmc_model, x, name, targeted):
    y = predictions(mmc_model, x)
    t = (y + 1) % NUM_CLASSES if targeted else None
    x_adv = cc.carlini_wagner_l2(mmc_model, x, y=y, targets=t, objective=name, **FAST_CW)
    assert x_adv.dtype == np.float32 and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    changed = np.any(x_adv != x, axis=(1, 2, 3))
    assert changed.any()
    pred_adv = predictions(mmc_model, x_adv)
    success = pred_adv == t if targeted else pred_adv != y
    np.testing.assert_array_equal(success, changed)  # unchanged exactly where it failed


def test_check_inputs_accepts_per_pixel_clip_arrays():
    from utils.attacks.cleverhans_compat import check_inputs
    from utils.errors import UsageError
    clip_min = np.full((2, 2, 1), -0.5, np.float32)
    clip_max = np.full((2, 2, 1), 0.5, np.float32)
    x = np.zeros((3, 2, 2, 1), np.float32)
    check_inputs(tf.constant(x), 0.1, 0.01, clip_min, clip_max)
    x[1, 0, 0, 0] = 0.7
    with pytest.raises(UsageError, match="above clip_max"):
        check_inputs(tf.constant(x), 0.1, 0.01, clip_min, clip_max)
