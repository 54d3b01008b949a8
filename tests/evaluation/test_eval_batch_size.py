"""--eval_batch_size: deterministic attacks measure the same at any attack batch size."""
from __future__ import annotations

import pytest

from conftest import cluster_data, fit_cluster_mlp
from utils.evaluation.ensemble import evaluate_attack

SHAPE, NUM_CLASSES = (4, 4, 1), 4


@pytest.fixture(scope="module")
def model_data():
    (x_train, y_train), (x, y) = (cluster_data(512, 0, SHAPE, NUM_CLASSES),
                                  cluster_data(60, 1, SHAPE, NUM_CLASSES))
    return fit_cluster_mlp(x_train, y_train, NUM_CLASSES), x, y


@pytest.mark.parametrize("attack", ["FastGradientMethod", "BasicIterativeMethod",
                                    "MomentumIterativeMethod"])
def test_deterministic_attacks_do_not_depend_on_the_batch_size(model_data, attack):
    model, x, y = model_data
    results = [evaluate_attack(model, x, y, attack_name=attack, objective_name="ce", eps=0.3,
                               eps_iter=0.1, num_iter=5, clip_min=-1.0, clip_max=1.0,
                               batch_size=b, progress=False)
               for b in (7, 60)]
    assert results[0]["adv_correct"] == results[1]["adv_correct"]
    assert results[0]["clean_correct"] == results[1]["clean_correct"]
    assert results[0]["adv_correct"] < results[0]["clean_correct"]  # the attack does bite


@pytest.mark.parametrize("member", ["MadryEtAl", "APGD-CE", "FAB-T", "Square"])
def test_random_attacks_give_the_same_per_example_results_at_any_batch_size(model_data,
                                                                            member, tmp_path):
    """Random starts and noise are drawn per example (seed, index, restart, member), so
    the per-example outcome (kept in the state file) does not depend on the batch."""
    from utils.evaluation.ensemble import evaluate_ensemble
    from utils.evaluation.members import EnsembleSettings
    from utils.evaluation.state import _read
    model, x, y = model_data
    settings = EnsembleSettings(eps=0.3, clip_min=-1.0, clip_max=1.0, n_iter=5, eps_iter=0.1,
                                nb_iter=5, num_restarts=2, n_target_classes=2, fab_n_iter=5,
                                square_n_queries=30, seed=3)
    states = []
    for b in (7, 60):
        path = tmp_path / f"b{b}.npz"
        evaluate_ensemble(model, x, y, members=(member,), settings=settings, batch_size=b,
                          state_file=path, progress=False)
        states.append(_read(path)[1])
    small, whole = states
    assert (small.broken_by == whole.broken_by).all()
    assert (small.adv_correct == whole.adv_correct).all()
    assert (whole.broken_by == 0).any()  # the attack does bite
