"""evaluate_perturbation on known answers: identity, a constant shift, keep_already."""
import numpy as np
import pytest

from utils.evaluation.perturbation import distortions, evaluate_perturbation

MEAN = np.full((2, 2, 1), 0.5, np.float32)


def model_fn(pixels):
    """Class 1 when the mean pixel exceeds 0.5, else class 0 (2 classes)."""
    m = np.asarray(pixels).reshape(len(pixels), -1).mean(axis=1)
    return np.stack([0.5 - m, m - 0.5], axis=1).astype(np.float32)


X = (np.array([0.2, 0.3, 0.7, 0.8, 0.4])[:, None, None, None] * np.ones((1, 2, 2, 1))
     - MEAN).astype(np.float32)
Y = np.array([0, 0, 1, 1, 1])   # the last one is misclassified clean


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_identity_changes_nothing(batch_size):
    r = evaluate_perturbation(model_fn, X, Y, MEAN, lambda p, y, t: p, batch_size=batch_size)
    assert r["clean_correct"] == r["adv_correct"] == 4
    assert r["success"] == r["already_adversarial"] == 1
    assert r["l2_mean"] == r["l2_max"] == 0.0 and r["l2_mean_success"] == 0.0


def test_shift_across_the_boundary():
    # +0.35 everywhere (clipped at 1): both class-0 images become class 1 (L2 0.35 * 2 =
    # 0.7 over the 4 pixels) and the misclassified 0.4 image becomes correct.
    def shift(p, y, t):
        return np.clip(p + 0.35, 0, 1)

    r = evaluate_perturbation(model_fn, X, Y, MEAN, shift, batch_size=2)
    assert r["adv_correct"] == 3 and r["success"] == 2 and r["success_rate"] == 0.4
    assert r["l2_mean_success"] == pytest.approx(0.7, abs=1e-5)
    assert r["linf_mean_success"] == pytest.approx(0.35, abs=1e-5)
    assert r["changed_fraction_mean_success"] == 1.0
    assert r["l2_max"] == pytest.approx(0.7, abs=1e-5)
    assert r["l2_mean"] == pytest.approx((0.7 + 0.7 + 0.6 + 0.4 + 0.7) / 5, abs=1e-5)
    kept = evaluate_perturbation(model_fn, X, Y, MEAN, shift, batch_size=2, keep_already=True)
    # the clean-misclassified image stays unperturbed (distortion 0) and counts as a success
    assert kept["success"] == 3 and kept["already_adversarial"] == 1
    assert kept["l2_mean"] == pytest.approx((0.7 + 0.7 + 0.6 + 0.4) / 5, abs=1e-5)


def test_targeted_counts_target_hits():
    r = evaluate_perturbation(model_fn, X, Y, MEAN, lambda p, y, t: 1.0 - p, batch_size=3,
                              targets=1 - Y)
    # 1 - p flips every image's class: the four classified correctly land on their target
    # (the other class); the misclassified 0.4 image moves to its label, not its target
    assert r["targeted"] and r["target_hits"] == r["success"] == 4
    assert list(r)[-2:] == ["target_hits", "target_success"]


def test_distortions_per_example():
    d = distortions(np.ones((2, 4)), np.zeros((2, 4)))
    assert d["l1"].tolist() == [4, 4] and d["l2"].tolist() == [2, 2]
    assert d["linf"].tolist() == [1, 1] and d["changed_fraction"].tolist() == [1, 1]
