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
