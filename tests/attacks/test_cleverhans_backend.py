"""--attack_backend=cleverhans (utils/attacks/cleverhans_backend.py): the cleverhans loops
give the native attacks' images (deterministic ones) and robust accuracy (all four)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import FASHION_DIR, cluster_data
from utils.attacks.core import get_attack
from utils.attacks.objectives import OBJECTIVES
from utils.errors import UsageError

SHAPE, L = (4, 4, 1), 4
DETERMINISTIC = ("FastGradientMethod", "BasicIterativeMethod", "MomentumIterativeMethod")


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    x, y = cluster_data(32, 0, SHAPE, L)
    inputs = keras.Input(SHAPE)
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(L)(h)), x, tf.one_hot(y, L), \
        tf.one_hot((y + 1) % L, L)


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("objective,targeted", [("ce", False), ("margin", True)])
def test_deterministic_attacks_give_the_native_images(tiny, name, objective, targeted):
    model, x, labels, targets = tiny
    low = np.full(SHAPE, -1.0, np.float32)
    low[0, 0, 0] = x[:, 0, 0, 0].min()  # per-pixel bounds, one of them tight
    kwargs = dict(objective=OBJECTIVES.get(objective).fn, eps=0.1, eps_iter=0.03, num_iter=5,
                  clip_min=low, clip_max=1.0, targets_onehot=targets if targeted else None)
    native = get_attack(name, "native")(model, x, labels, **kwargs)
    ours = get_attack(name, "cleverhans")(model, x, labels, **kwargs)
    np.testing.assert_allclose(ours.numpy(), native.numpy(), atol=1e-5)


def test_backend_errors(tiny):
    model, x, labels, _ = tiny
    with pytest.raises(UsageError, match="unknown attack backend"):
        get_attack("MadryEtAl", "torch")
    with pytest.raises(UsageError, match="eps_iter <= eps"):
        get_attack("BasicIterativeMethod", "cleverhans")(
            model, x, labels, objective=OBJECTIVES.get("ce").fn, eps=0.01, eps_iter=0.03,
            num_iter=2, clip_min=-1.0, clip_max=1.0)
    zero = get_attack("MadryEtAl", "cleverhans")(
        model, x, labels, objective=OBJECTIVES.get("ce").fn, eps=0.0, eps_iter=0.03,
        num_iter=2, clip_min=-1.0, clip_max=1.0)
    np.testing.assert_array_equal(zero.numpy(), x)


@pytest.mark.slow
def test_backends_agree_on_fashion_mnist():
    """Same tiny trained CNN, same 300 images: FGSM and BIM robust accuracy identical,
    PGD (different random starts) and MIM within 1 point."""
    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST is not installed")
    from bench.apgd_vs_art import fashion_01, train_tiny_cnn
    from utils.evaluation.ensemble import evaluate_attack
    x_tr, y_tr, x_te, y_te, classes = fashion_01(4000, 300, None)
    model = train_tiny_cnn(x_tr, y_tr, classes, steps=150)
    for name in ("FastGradientMethod", "BasicIterativeMethod", "MadryEtAl",
                 "MomentumIterativeMethod"):
        acc = {}
        for backend in ("native", "cleverhans"):
            result = evaluate_attack(model, x_te, y_te, attack_name=name, objective_name="ce",
                                     eps=8 / 256, eps_iter=2 / 256, num_iter=10, clip_min=0.0,
                                     clip_max=1.0, batch_size=100, progress=False,
                                     backend=backend)
            acc[backend] = result["adv_accuracy"]
            assert result["attack_backend"] == backend
        print(name, acc)
        if name in ("FastGradientMethod", "BasicIterativeMethod"):
            assert acc["native"] == acc["cleverhans"], (name, acc)
        else:
            assert abs(acc["native"] - acc["cleverhans"]) <= 0.01, (name, acc)
