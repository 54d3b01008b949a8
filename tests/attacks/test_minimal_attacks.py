"""EAD, DeepFool, L-BFGS and JSMA (utils/attacks/{ead,deepfool,lbfgs,jsma}.py): clip bounds,
budget monotonicity, DeepFool's analytic answer on an affine model, JSMA's gamma, bad input.

Models are tiny (a Dense net on 4x4x1 cluster "images"); the file runs in seconds."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import cluster_data
from utils.attacks.deepfool import deepfool
from utils.attacks.ead import elastic_net
from utils.attacks.jsma import saliency_map
from utils.attacks.lbfgs import lbfgs
from utils.attacks.objectives import OBJECTIVES
from utils.errors import UsageError

SHAPE, L = (4, 4, 1), 4
MARGIN, CE = OBJECTIVES.get("margin").fn, OBJECTIVES.get("ce").fn


@pytest.fixture(scope="module")
def setup():
    keras.utils.set_random_seed(0)
    x, y = cluster_data(48, 0, SHAPE, L)
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    inputs = keras.Input(SHAPE)
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(L)(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=30, verbose=0)
    pred = np.argmax(model(x), -1)
    keep = pred == y
    x, y = x[keep][:16], y[keep][:16]
    return model, x, tf.one_hot(y, L), tf.one_hot((y + 1) % L, L)


def _run(name, model, x, labels, targets, low, high, budget):
    if name == "ead":
        return elastic_net(model, x, labels, objective=MARGIN, clip_min=low, clip_max=high,
                           max_iterations=budget, binary_search_steps=3, learning_rate=0.05)
    if name == "deepfool":
        return deepfool(model, x, clip_min=low, clip_max=high, nb_candidate=L, max_iter=budget)
    if name == "lbfgs":
        return lbfgs(model, x, labels, targets, objective=CE, clip_min=low, clip_max=high,
                     max_iterations=budget, binary_search_steps=2)
    return saliency_map(model, x, targets, clip_min=low, clip_max=high, gamma=budget / 16)


NAMES = ("ead", "deepfool", "lbfgs", "jsma")


@pytest.mark.parametrize("name", NAMES)
def test_within_per_pixel_clip_bounds(setup, name):
    model, x, labels, targets = setup
    rng = np.random.default_rng(0)
    low = np.minimum(x.min(0), rng.uniform(-0.3, 0.0, SHAPE)).astype(np.float32)
    high = np.maximum(x.max(0), rng.uniform(0.6, 1.0, SHAPE)).astype(np.float32)
    adv = _run(name, model, x, labels, targets, low, high, 4)
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert np.all(adv >= low - 1e-6) and np.all(adv <= high + 1e-6)


@pytest.mark.parametrize("name,small,large", [("ead", 2, 60), ("deepfool", 1, 10),
                                              ("lbfgs", 1, 15), ("jsma", 1, 8)])
def test_success_rises_with_budget(setup, name, small, large):
    model, x, labels, targets = setup
    if name == "lbfgs":  # one scipy problem per example: keep it small
        x, labels, targets = x[:6], labels[:6], targets[:6]
    aim = None if name in ("ead", "deepfool") else targets

    def successes(budget):
        adv = _run(name, model, x, labels, aim, 0.0, 1.0, budget)
        pred = np.argmax(model(adv), -1)
        if aim is None:
            return int(np.sum(pred != np.argmax(labels, -1)))
        return int(np.sum(pred == np.argmax(aim, -1)))
    low, high = successes(small), successes(large)
    assert high >= low and high > 0


def test_deepfool_matches_affine_minimal_perturbation():
    """Affine logits Wx + b: the minimal L2 to the nearest boundary is
    min_k |f_k| / ||w_k||; DeepFool (all candidates) reaches it within its overshoot."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, L)).astype(np.float32)
    b = rng.normal(size=L).astype(np.float32)
    model = lambda t: tf.matmul(tf.reshape(t, [-1, 16]), w) + b  # noqa: E731
    x = rng.uniform(0, 1, size=(8,) + SHAPE).astype(np.float32)
    logits = model(x).numpy()
    top = logits.argmax(-1)
    adv = deepfool(model, x, clip_min=-100.0, clip_max=100.0, nb_candidate=L, max_iter=1,
                   overshoot=0.02)
    dist = np.linalg.norm((adv - x).reshape(8, -1), axis=1)
    for i in range(8):
        gaps = [abs(logits[i, k] - logits[i, top[i]]) / np.linalg.norm(w[:, k] - w[:, top[i]])
                for k in range(L) if k != top[i]]
        assert min(gaps) * (1 - 1e-4) <= dist[i] <= 1.02 * min(gaps) + 1e-4
    assert np.all(model(adv).numpy().argmax(-1) != top)


def test_deepfool_one_candidate_takes_no_step(setup):
    model, x, _, _ = setup
    np.testing.assert_array_equal(deepfool(model, x, clip_min=0.0, clip_max=1.0), x)


@pytest.mark.parametrize("gamma", [0.13, 0.5])
def test_jsma_changes_at_most_gamma(setup, gamma):
    model, x, _, targets = setup
    adv = saliency_map(model, x, targets, clip_min=0.0, clip_max=1.0, gamma=gamma)
    changed = np.mean((adv != x).reshape(len(x), -1), axis=1)
    assert np.all(changed <= gamma + 1e-9) and np.any(changed > 0)


@pytest.mark.parametrize("call,message", [
    (lambda m, x, y, t: elastic_net(m, x, y, objective=MARGIN, clip_min=0., clip_max=1.,
                                    confidence=-1.0), "confidence must be >= 0"),
    (lambda m, x, y, t: elastic_net(m, x, y, objective=MARGIN, clip_min=0., clip_max=1.,
                                    max_iterations=0), "max_iterations must be >= 1"),
    (lambda m, x, y, t: deepfool(m, x, clip_min=0., clip_max=1., nb_candidate=L + 1),
     "nb_candidate"),
    (lambda m, x, y, t: deepfool(m, x, clip_min=0., clip_max=1., max_iter=0), "max_iter"),
    (lambda m, x, y, t: lbfgs(m, x, y, None, objective=CE, clip_min=0., clip_max=1.),
     "targeted"),
    (lambda m, x, y, t: saliency_map(m, x, t, clip_min=0., clip_max=1., gamma=0.0), "gamma"),
    (lambda m, x, y, t: saliency_map(m, x, t, clip_min=1., clip_max=0.), "clip_min exceeds"),
])
def test_bad_input(setup, call, message):
    model, x, labels, targets = setup
    with pytest.raises(UsageError, match=message):
        call(model, x[:2], labels[:2], targets[:2])
