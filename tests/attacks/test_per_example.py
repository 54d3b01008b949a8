"""Per-example randomness (utils/attacks/core.py): an example's attack depends on
``(seed, example index, restart)`` only, so attacking 40 examples at once or in batches
of 7 (each passing its global ``example_index``) gives the same ``x_adv``, random starts,
restarts, target ranks and Square's per-query draws included."""
import numpy as np
import pytest
import tensorflow as tf

from utils.attacks.apgd import apgd
from utils.attacks.core import example_seeds, uniform_per_example
from utils.attacks.fab import fab_targeted
from utils.attacks.iterative import worst_case_over_restarts
from utils.attacks.multitarget import apgd_targeted
from utils.attacks.objectives import OBJECTIVES
from utils.attacks.square import square_attack

SHAPE, NUM_CLASSES, N, BATCH = (4, 4, 1), 4, 40, 7  # five batches of 7 and one of 5
EPS = {"linf": 0.2, "l2": 0.8}
CE = OBJECTIVES.get("ce").fn


def _model():
    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.normal(size=(16, 12)).astype(np.float32))
    w2 = tf.constant(rng.normal(size=(12, NUM_CLASSES)).astype(np.float32))

    def model(x):
        return tf.matmul(tf.nn.relu(tf.matmul(tf.reshape(x, [-1, 16]), w1)), w2)

    x = rng.uniform(0.1, 0.9, size=(N,) + SHAPE).astype(np.float32)
    y = np.asarray(model(x)).argmax(-1)
    return model, x, np.eye(NUM_CLASSES, dtype=np.float32)[y]


ATTACKS = {
    "PGD": lambda m, x, y, **kw: worst_case_over_restarts(
        "MadryEtAl", m, x, y, num_restarts=2, objective=CE, eps_iter=0.03,
        num_iter=5, norm=kw.pop("norm"), **kw),
    "APGD": lambda m, x, y, **kw: apgd(m, x, y, objective=CE, num_iter=5,
                                       num_restarts=2, **kw),
    "APGD-T": lambda m, x, y, **kw: apgd_targeted(m, x, y, num_iter=5,
                                                  n_target_classes=2, **kw),
    "FAB-T": lambda m, x, y, **kw: fab_targeted(m, x, y, num_iter=5,
                                                n_target_classes=2,
                                                **{k: v for k, v in kw.items()
                                                   if k not in ("seed", "example_index")}),
    "Square": lambda m, x, y, **kw: square_attack(m, x, y, n_queries=30,
                                                  num_restarts=2, **kw),
}


@pytest.mark.slow  # 10 attacks run 7 times each (~9 s): the fast tier keeps the seed test
@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_batch_size_does_not_change_any_example(name, norm):
    model, x, labels = _model()
    kw = dict(clip_min=0.0, clip_max=1.0, norm=norm, seed=5, eps=EPS[norm])
    whole = np.asarray(ATTACKS[name](model, x, labels, **kw))
    parts = [np.asarray(ATTACKS[name](model, x[i:i + BATCH], labels[i:i + BATCH],
                                      example_index=np.arange(i, min(i + BATCH, N)), **kw))
             for i in range(0, N, BATCH)]
    # BLAS rounding varies with the batch size
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-5)
    assert np.abs(whole - x).max() > 0  # the attack moved something


def test_example_seeds_depend_on_index_and_restart_only():
    a = example_seeds(3, np.arange(10, 14)).numpy()
    np.testing.assert_array_equal(a[1:3], example_seeds(3, [11, 12]).numpy())
    assert len({tuple(r) for r in a}) == 4
    assert not np.array_equal(a, example_seeds(3, np.arange(10, 14), restart=1).numpy())
    draws = uniform_per_example((4, 5), tf.constant(a)).numpy()
    np.testing.assert_array_equal(draws[2:], uniform_per_example((2, 5), tf.constant(a[2:])))
