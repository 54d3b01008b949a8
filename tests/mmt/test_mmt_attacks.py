"""mmt's attack wrappers: names and callable objectives, ε-balls, box, ε = 0."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import mmt
from mmt_tiny import predicted_labels, tiny_data, tiny_model

EPS = {"linf": 0.1, "l2": 0.5}
# Small budgets: these tests check the contract, not the attacks' strength.
FAST = {"fgsm": {}, "bim": dict(num_iter=3), "pgd": dict(num_iter=3), "mim": dict(num_iter=3),
        "apgd": dict(num_iter=4), "apgd_t": dict(num_iter=4, n_target_classes=2),
        "multi_targeted": dict(num_iter=3, n_target_classes=2),
        "fab_t": dict(num_iter=3, n_target_classes=2), "square": dict(n_queries=10),
        "cw_l2": dict(max_iterations=5, binary_search_steps=2)}
TARGETED = {"apgd_t", "multi_targeted"}
NO_OBJECTIVE = {"fab_t", "square"}


@functools.lru_cache(maxsize=None)
def _setup():
    model = tiny_model()
    x, _ = tiny_data(6)
    return model, x, predicted_labels(model, x)


def my_objective(logits, labels_onehot):
    """A user's untargeted objective (minimised): the true logit."""
    import tensorflow as tf
    return tf.reduce_sum(logits * labels_onehot, axis=-1)


def my_targeted(logits, labels_onehot, targets=None):
    import tensorflow as tf
    return tf.reduce_sum(logits * (labels_onehot - targets), axis=-1)


def _norm(delta, norm):
    flat = delta.reshape(len(delta), -1)
    return np.abs(flat).max(1) if norm == "linf" else np.sqrt((flat ** 2).sum(1))


def test_every_wrapper_is_listed():
    assert sorted(FAST) == sorted(mmt.ATTACK_FUNCTIONS)


def _objectives(name):
    """(registered name, user callable) for the attacks that take an objective."""
    if name in NO_OBJECTIVE:
        return [None]
    if name in TARGETED:
        return ["dlr_targeted" if name == "apgd_t" else "margin", my_targeted]
    return ["mmc_un2" if name == "cw_l2" else "mmc_un1", my_objective]


# Fast tier: every attack in linf with a registered objective, and pgd / cw_l2 in full;
# every other (attack, l2 or callable) case is slow (each one compiles its own graph).
CASES = [(name, "linf", 0) for name in sorted(FAST)] + [
    ("pgd", "l2", 0), ("pgd", "linf", 1), ("cw_l2", "linf", 1)] + [
    pytest.param(name, norm, which, marks=pytest.mark.slow)
    for name in sorted(FAST) for norm in ("linf", "l2") for which in (0, 1)
    if (norm, which) != ("linf", 0) and name not in ("pgd", "cw_l2")
    and not (name in NO_OBJECTIVE and which == 1)] + [
    pytest.param("cw_l2", "l2", 1, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,norm,which", CASES)
def test_attack_stays_in_the_ball_and_the_box(name, norm, which):
    model, x, y = _setup()
    objective = _objectives(name)[which]
    kwargs = dict(FAST[name], **({} if objective is None else {"objective": objective}))
    x_adv = mmt.ATTACK_FUNCTIONS[name](model, x, y, eps=EPS[norm], norm=norm, **kwargs)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.all(_norm(x_adv - x, norm) <= EPS[norm] * (1 + 1e-5) + 1e-6)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_sparse_column_and_onehot_labels_agree():
    model, x, y = _setup()
    runs = [mmt.pgd(model, x, labels, eps=0.1, num_iter=2, seed=3)
            for labels in (y, y[:, None], np.eye(5, dtype=np.float32)[y])]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    with pytest.raises(ValueError, match="class indices"):
        mmt.pgd(model, x, np.zeros((len(x), 2), np.int64), eps=0.1)


@pytest.mark.parametrize("name", sorted(FAST))
def test_eps_zero_gives_clean_accuracy(name):
    model, x, _ = _setup()
    y = np.arange(len(x)) % 5  # some right, some wrong
    x_adv = mmt.ATTACK_FUNCTIONS[name](model, x, y, eps=0.0, **FAST[name])
    assert np.array_equal(predicted_labels(model, x_adv) == y, predicted_labels(model, x) == y)


def test_a_registered_objective_is_refused_in_the_wrong_mode():
    """The wrappers share utils.attacks.objectives.resolve_objective with the cleverhans
    backend: a targeted objective without targets (or the reverse) is one UsageError."""
    model, x, y = _setup()
    with pytest.raises(ValueError, match="objective mmc_tar1 is targeted"):
        mmt.pgd(model, x, y, eps=0.1, num_iter=2, objective="mmc_tar1")
    with pytest.raises(ValueError, match="objective mmc_un1 is untargeted"):
        mmt.apgd_t(model, x, y, eps=0.1, num_iter=2, objective="mmc_un1")
