"""FAB-T: minimal distances on linear models (closed form, and a linear program where the
box binds), the box projection, and the eps criterion of the targeted sweep."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.optimize import linprog

from utils.attacks.fab import box_projection, fab_run, fab_targeted
from utils.errors import UsageError

SHAPE, NUM_CLASSES, N = (8, 8, 1), 3, 8
DIM = int(np.prod(SHAPE))


def _linear(seed: int = 0, low: float = -0.5, high: float = 0.5):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(DIM, NUM_CLASSES)).astype(np.float32)
    b = (rng.normal(size=NUM_CLASSES) * 0.1).astype(np.float32)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(NUM_CLASSES)])
    model.layers[-1].set_weights([w, b])
    x = rng.uniform(low, high, size=(N,) + SHAPE).astype(np.float32)
    y = np.asarray(model(x)).argmax(-1)
    return model, w, b, x, y


def _closest_over_targets(model, x, y, norm, **kw):
    """FAB run toward every wrong class, the smallest distance per example."""
    best = np.full(len(x), np.inf)
    for shift in range(1, NUM_CLASSES):
        t = (y + shift) % NUM_CLASSES
        res = fab_run(model, x, np.eye(NUM_CLASSES)[y], np.eye(NUM_CLASSES)[t], norm=norm,
                      num_iter=20, **kw)
        best = np.minimum(best, res.distance.numpy())
    return best


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_linear_model_distance_within_5_percent_of_the_closed_form(norm):
    model, w, b, x, y = _linear()
    z = x.reshape(N, -1) @ w + b
    optimum = np.full(N, np.inf)
    for t in range(NUM_CLASSES):
        dw = w[:, y] - w[:, [t]]  # (DIM, N)
        gap = z[np.arange(N), y] - z[:, t]
        size = np.abs(dw).sum(0) if norm == "linf" else np.linalg.norm(dw, axis=0)
        distance = gap / np.where(t == y, 1.0, size)  # t == y: no boundary
        optimum = np.where(t == y, optimum, np.minimum(optimum, distance))
    found = _closest_over_targets(model, x, y, norm, clip_min=-10.0, clip_max=10.0)
    ratio = found / optimum
    assert np.all(ratio >= 1 - 1e-4) and np.all(ratio <= 1.05), ratio


def _linf_lp(w_diff: np.ndarray, gap: float, x: np.ndarray, low: float, high: float) -> float:
    """min ||d||_inf s.t. gap + w_diff . d <= 0, low <= x + d <= high (variables d, s)."""
    dim = len(x)
    cost = np.r_[np.zeros(dim), 1.0]
    eye = np.eye(dim)
    a_ub = np.vstack([np.c_[eye, -np.ones(dim)], np.c_[-eye, -np.ones(dim)],
                      np.r_[w_diff, 0.0][None]])
    b_ub = np.r_[np.zeros(2 * dim), -gap]
    bounds = [(low - v, high - v) for v in x] + [(0, None)]
    return linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds).fun


def test_linf_distance_matches_a_linear_program_when_the_box_binds():
    model, w, b, x, y = _linear(seed=3, low=0.0, high=1.0)
    t = (y + 1) % NUM_CLASSES
    res = fab_run(model, x, np.eye(NUM_CLASSES)[y], np.eye(NUM_CLASSES)[t], norm="linf",
                  clip_min=0.0, clip_max=1.0, num_iter=30)
    flat = x.reshape(N, -1)
    z = flat @ w + b
    optimum = np.array([_linf_lp(w[:, y[i]] - w[:, t[i]], z[i, y[i]] - z[i, t[i]], flat[i],
                                 0.0, 1.0) for i in range(N)])
    found = res.distance.numpy()
    # the box binds: the unconstrained optimum is smaller than the boxed one
    free = (z[np.arange(N), y] - z[np.arange(N), t]) / np.abs(w[:, y] - w[:, t]).sum(0)
    assert np.any(optimum > free * 1.05)
    assert np.all(found >= optimum * (1 - 1e-4)) and np.all(found <= optimum * 1.05), \
        found / optimum
    assert res.x_adv.numpy().min() >= 0.0 and res.x_adv.numpy().max() <= 1.0


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_box_projection_reaches_the_hyperplane_inside_the_box(norm):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=(6, 20)).astype(np.float32)
    w = rng.normal(size=(6, 20)).astype(np.float32)
    r = rng.normal(size=6).astype(np.float32)
    d = box_projection(tf.constant(p), tf.constant(w), tf.constant(r), tf.zeros_like(p),
                       tf.ones_like(p), norm).numpy()
    np.testing.assert_allclose((w * d).sum(1), r, atol=1e-4)
    assert (p + d).min() >= -1e-6 and (p + d).max() <= 1 + 1e-6
    # infeasible: the nearest box corner, all coordinates saturated
    d = box_projection(tf.constant(p), tf.constant(w), tf.constant(r * 1e3),
                       tf.zeros_like(p), tf.ones_like(p), norm).numpy()
    corner = np.where(w * np.sign(r)[:, None] > 0, 1.0, 0.0)
    np.testing.assert_allclose(p + d, corner, atol=1e-5)


def test_targeted_sweep_counts_only_points_within_eps():
    model, w, b, x, y = _linear(seed=1)
    labels = np.eye(NUM_CLASSES, dtype=np.float32)[y]
    kw = dict(clip_min=-10.0, clip_max=10.0, num_iter=10, n_target_classes=2)
    found = _closest_over_targets(model, x, y, "linf", clip_min=-10.0, clip_max=10.0)
    eps = float(np.median(found))
    x_adv = fab_targeted(model, x, labels, eps=eps, **kw).numpy()
    assert np.abs(x_adv - x).reshape(N, -1).max(1).max() <= eps * (1 + 1e-6)
    fooled = np.asarray(model(x_adv)).argmax(-1) != y
    assert 0 < fooled.sum() < N
    assert np.all(fooled <= (found <= eps * 1.05))
    assert (np.asarray(model(fab_targeted(model, x, labels, eps=0.0, **kw))).argmax(-1)
            == y).all()
    assert (np.asarray(model(fab_targeted(model, x, labels, eps=100.0, **kw))).argmax(-1)
            != y).all()
    with pytest.raises(UsageError, match="FAB n_iter must be"):
        fab_run(model, x, labels, labels, clip_min=-1, clip_max=1, num_iter=0)
