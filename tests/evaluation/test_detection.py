"""utils.evaluation.detection: ROC AUC via Mann-Whitney U, scores, and evaluate_attack's AUC."""
from __future__ import annotations

import numpy as np
import pytest

from utils.evaluation.detection import SCORES, roc_auc
from utils.errors import UsageError


def _brute_force_auc(pos, neg):
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def test_perfect_reversed_and_tied():
    assert roc_auc([3.0, 4.0, 5.0], [0.0, 1.0]) == 1.0
    assert roc_auc([0.0, 1.0], [3.0, 4.0, 5.0]) == 0.0
    assert roc_auc(np.full(7, 0.3), np.full(4, 0.3)) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 20, size=157).astype(float)  # many ties
    neg = rng.integers(0, 15, size=93).astype(float)
    assert roc_auc(pos, neg) == pytest.approx(_brute_force_auc(pos, neg), abs=1e-12)
    pos, neg = rng.normal(size=60), rng.normal(0.5, size=41)
    assert roc_auc(pos, neg) == pytest.approx(_brute_force_auc(pos, neg), abs=1e-12)


def test_empty_or_nan_refused():
    with pytest.raises(UsageError, match="positives and negatives"):
        roc_auc([], [1.0])
    with pytest.raises(UsageError, match="finite"):
        roc_auc([np.nan], [1.0])


def test_scores():
    logits = np.array([[1.0, 3.0, 2.0], [1000.0, 0.0, 0.0]])
    np.testing.assert_allclose(SCORES.get("max_logit")(logits), [3.0, 1000.0])
    expected = np.exp(3) / np.exp([1.0, 3.0, 2.0]).sum()
    np.testing.assert_allclose(SCORES.get("max_softmax")(logits), [expected, 1.0])


def test_evaluate_attack_eval_model_and_auc():
    import keras
    from utils.evaluation.ensemble import evaluate_attack
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(12, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=12)

    def tiny(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(3)])

    source, target = tiny(0), tiny(1)
    kwargs = dict(attack_name="MadryEtAl", objective_name="ce", eps_iter=0.1, num_iter=3,
                  clip_min=0.0, clip_max=1.0, batch_size=5, progress=False)
    own = evaluate_attack(target, x, y, eps=0.0, **kwargs)
    moved = evaluate_attack(source, x, y, eps=0.0, eval_model=target,
                            score_fn=SCORES.get("max_logit"), **kwargs)
    assert "auc" not in own and moved["auc"] == 0.5
    assert moved["clean_correct"] == own["clean_correct"] == moved["adv_correct"]
    with pytest.raises(UsageError, match="classes"):
        wide = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(4)])
        evaluate_attack(source, x, y, eps=0.0, eval_model=wide, **kwargs)
