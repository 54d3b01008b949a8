"""mmt.evaluate / mmt.autoattack: the cascade's result as a typed, consistent record."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

import mmt
from mmt_tiny import predicted_labels, tiny_data, tiny_model

# AutoAttack's members with tiny budgets (the test checks the fields, not the strength).
TINY = dict(n_iter=3, n_target_classes=2, fab_n_iter=3, square_n_queries=5)


@functools.lru_cache(maxsize=None)
def _setup():
    model = tiny_model()
    x, y = tiny_data(10, seed=1)
    y = np.where(np.arange(10) < 7, predicted_labels(model, x), y)  # mostly correct
    return model, x, y


def _check_consistent(result, n):
    assert result.n == n and result.robust.shape == (n,) and result.robust.dtype == bool
    assert 0.0 <= result.robust_accuracy <= result.clean_accuracy <= 1.0
    assert result.robust.mean() == pytest.approx(result.robust_accuracy)
    assert result.clean_correct.mean() == pytest.approx(result.clean_accuracy)
    assert not np.any(result.robust & ~result.clean_correct)
    after = list(result.robust_accuracy_after.values())
    assert after == sorted(after, reverse=True) and after[-1] == pytest.approx(
        result.robust_accuracy)
    assert tuple(result.robust_accuracy_after) == result.members


def test_autoattack_result_fields_are_consistent():
    model, x, y = _setup()
    result = mmt.autoattack(model, x, y, eps=0.1, batch_size=10, return_adversarial=True,
                            **TINY)
    assert result.members == ("APGD-CE", "APGD-T", "FAB-T", "Square")
    _check_consistent(result, len(x))
    assert result.x_adv.shape == x.shape
    assert np.abs(result.x_adv - x).max() <= 0.1 + 1e-6
    adv_right = predicted_labels(model, result.x_adv) == y
    np.testing.assert_array_equal(adv_right, result.robust)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.n = 3


def test_member_names_and_callables_mix_and_eps_zero_is_clean():
    model, x, y = _setup()
    attacks = ["APGD-CE", functools.partial(mmt.pgd, num_iter=2, objective="mmc_un1"),
               mmt.fgsm]
    result = mmt.evaluate(model, x, y, attacks=attacks, eps=0.1, norm="l2", batch_size=10,
                          objective="mmc_un1", n_iter=3)
    assert result.members == ("APGD-CE", "pgd#1", "fgsm#2") and result.x_adv is None
    assert result.member_objectives["pgd#1"] == "(callable)"
    _check_consistent(result, len(x))
    clean = mmt.evaluate(model, x, y, attacks=[mmt.fgsm], eps=0.0, batch_size=10)
    assert clean.robust_accuracy == clean.clean_accuracy >= 0.7


def test_bad_attacks_are_refused():
    model, x, y = _setup()
    with pytest.raises(ValueError, match="unknown ensemble member"):
        mmt.evaluate(model, x, y, attacks=["NoSuchAttack"], eps=0.1)
    with pytest.raises(TypeError, match="member name or a callable"):
        mmt.evaluate(model, x, y, attacks=[3], eps=0.1)
