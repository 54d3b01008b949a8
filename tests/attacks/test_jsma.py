"""utils/attacks/jsma.py: each variant's first choice on an affine model (known answers),
saturated pixels skipped, the gamma budget, clip bounds, success never falling with gamma,
and the ``art`` variant equal to ART's ``SaliencyMapMethod`` (when ART is installed)."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from utils.attacks.jsma import VARIANTS, saliency_map
from utils.attacks.perturbations import JSMASettings
from utils.attacks.settings import SettingError
from utils.errors import UsageError

SHAPE, L = (4, 4, 1), 4
F = int(np.prod(SHAPE))
RNG = np.random.default_rng(3)
W = RNG.normal(size=(F, L)).astype(np.float32)
B = RNG.normal(size=L).astype(np.float32)


def affine(t):
    return tf.matmul(tf.reshape(t, [-1, F]), W) + B


def _inputs(n=8):
    """Inputs in [0.05, 0.6] and targets other than the predicted class."""
    x = np.random.default_rng(4).uniform(0.05, 0.6, size=(n,) + SHAPE).astype(np.float32)
    targets = (affine(x).numpy().argmax(-1) + 1) % L
    return x, targets, tf.one_hot(targets, L)


def _expected_first(variant, x, target, high=1.0):
    """The feature(s) the variant raises first, by hand, on the affine model (features at
    the clip maximum ``high`` are out of the search domain)."""
    a, free = W[:, target], (x < high).reshape(-1)
    if variant == "logprob":
        z = x.reshape(-1) @ W + B
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        return {int(np.argmax(np.where(free, a - W @ p, -np.inf)))}
    if variant == "art":
        return set(np.argsort(np.where(free, a, -np.inf))[-2:].tolist())
    b = W.sum(1) - a
    best, pair = 0.0, None
    for p, q in itertools.combinations(np.flatnonzero(free).tolist(), 2):
        if a[p] + a[q] > 0 and b[p] + b[q] < 0 and -(a[p] + a[q]) * (b[p] + b[q]) > best:
            best, pair = -(a[p] + a[q]) * (b[p] + b[q]), {p, q}
    return pair


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_first_step_is_the_most_salient(variant):
    x, targets, onehot = _inputs()
    per_step = VARIANTS[variant].per_step
    adv = saliency_map(affine, x, onehot, clip_min=0.0, clip_max=1.0, theta=0.25,
                       gamma=per_step / F, variant=variant)
    for i in range(len(x)):
        changed = set(np.flatnonzero((adv[i] != x[i]).reshape(-1)).tolist())
        assert changed == _expected_first(variant, x[i], targets[i])
        np.testing.assert_allclose(adv[i].reshape(-1)[sorted(changed)],
                                   x[i].reshape(-1)[sorted(changed)] + 0.25, rtol=1e-6)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pixels_at_clip_max_are_never_chosen(variant):
    x, targets, onehot = _inputs()
    high = np.ones_like(x)
    for i in range(len(x)):  # one of the first choices is already at its clip maximum
        high[i].reshape(-1)[max(_expected_first(variant, x[i], targets[i]))] = \
            x[i].reshape(-1)[max(_expected_first(variant, x[i], targets[i]))]
    adv = saliency_map(affine, x, onehot, clip_min=0.0, clip_max=high, theta=0.25,
                       gamma=VARIANTS[variant].per_step / F, variant=variant)
    for i in range(len(x)):  # a saturated choice would leave fewer changed features
        changed = set(np.flatnonzero((adv[i] != x[i]).reshape(-1)).tolist())
        assert changed == _expected_first(variant, x[i], targets[i], high[i])
        assert len(changed) == VARIANTS[variant].per_step


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("gamma", [0.13, 0.3, 0.5])
def test_budget_and_per_pixel_bounds(variant, gamma):
    x, _, onehot = _inputs()
    onehot = tf.one_hot((np.argmax(affine(x), -1) + 2) % L, L)
    low = np.full(SHAPE, 0.02, np.float32)
    high = np.linspace(0.7, 1.0, F, dtype=np.float32).reshape(SHAPE)
    adv = saliency_map(affine, x, onehot, clip_min=low, clip_max=high, theta=0.3,
                       gamma=gamma, variant=variant)
    changed = np.sum((adv != x).reshape(len(x), -1), axis=1)
    assert np.all(changed <= np.floor(gamma * F)) and np.any(changed > 0)
    assert np.all(adv >= low) and np.all(adv <= high) and adv.dtype == np.float32


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_success_never_falls_with_gamma(variant):
    x = np.random.default_rng(5).uniform(0, 1, size=(24,) + SHAPE).astype(np.float32)
    targets = (affine(x).numpy().argmax(-1) + 1 + np.arange(24) % (L - 1)) % L
    onehot = tf.one_hot(targets, L)
    before = np.zeros(len(x), bool)
    for gamma in (1 / F, 2 / F, 3 / F, 5 / F, 0.5):
        adv = saliency_map(affine, x, onehot, clip_min=0.0, clip_max=1.0, theta=0.5,
                           gamma=gamma, variant=variant)
        now = affine(adv).numpy().argmax(-1) == targets
        assert np.all(now[before]), f"gamma {gamma} lost an example"
        before = now
    assert before.any()


def test_bad_variant_is_refused():
    x, _, onehot = _inputs(2)
    with pytest.raises(UsageError, match="variant must be one of"):
        saliency_map(affine, x, onehot, clip_min=0.0, clip_max=1.0, variant="papernot")
    with pytest.raises(SettingError, match="variant"):
        JSMASettings(variant="papernot")
    assert JSMASettings().variant == "logprob"


@pytest.mark.slow  # imports ART
def test_art_variant_equals_art_with_its_budget_count():
    """ART goes on while changed / F <= gamma after each pair: one pair more than
    floor(gamma * F / 2), so ours at gamma + 2 / F makes the same images."""
    pytest.importorskip("art")
    from art.attacks.evasion import SaliencyMapMethod
    from art.estimators.classification import TensorFlowV2Classifier
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(L)])
    x, _, _ = _inputs(12)
    onehot = tf.one_hot((np.argmax(model(x), -1) + 1) % L, L).numpy()
    clf = TensorFlowV2Classifier(model, nb_classes=L, input_shape=SHAPE, clip_values=(0., 1.))
    theirs = SaliencyMapMethod(clf, theta=1.0, gamma=0.25, verbose=False).generate(x, onehot)
    ours = saliency_map(model, x, onehot, clip_min=0.0, clip_max=1.0, theta=1.0,
                        gamma=0.25 + 2 / F, variant="art")
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
