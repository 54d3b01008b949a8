"""The baseline losses and heads the papers compare: each one's defining property.

Center loss (Wen et al. 2016), L-GM (Wan et al. 2018), EMC and hierarchical centers
(paper 002 B.3), I-SCE (paper 004), label smoothing, the mmc_rand alias; their adaptive
objectives and bad-input errors. Everything here is tiny: no ResNet is trained.
"""
import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import ts_centers
from conftest import ROOT
from keras_layers import (CenterLossDense, ElasticMMCLayer, GaussianMixtureLayer, ISCELayer,
                          MMCLayer)
from utils.runs.model_config import ModelConfig
from utils.errors import UsageError
from utils.loss_specs import LOSSES
from utils.losses import (bind_loss, center_loss, emc_loss, isce_loss, label_smoothing_loss,
                          lgm_loss, mmc_loss, sce_loss)
from utils.attacks.objectives import check_objective, select_objective

L, D, B = 5, 4, 12


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(B, D)).astype(np.float32)
    y = rng.integers(0, L, size=B)
    return z, y, np.eye(L, dtype=np.float32)[y]


def _built(layer):
    layer.build((None, D))
    return layer


def test_registry_heads_and_objective_families():
    expected = {"sce": ("dense", "ce"), "mmc": ("mmc", "mmc"), "mmlda": ("mmc", "gm"),
                "mmc_rand": ("mmc", "mmc"), "center": ("center", "ce"), "lgm": ("gm", "gm"),
                "emc": ("emc", "mmc"), "isce": ("isce", "ce"),
                "label_smoothing": ("dense", "ce")}
    assert set(expected) <= set(LOSSES.names())
    for name, (head, family) in expected.items():
        assert (LOSSES.get(name).head, LOSSES.get(name).objectives) == (head, family), name


def test_mmc_rand_is_mmc_on_random_centers():
    assert ModelConfig(loss="mmc_rand") == ModelConfig(loss="mmc", centers="random")
    assert bind_loss("mmc_rand").fn.func is mmc_loss


@pytest.mark.parametrize("loss,attack,targeted,expected", [
    ("lgm", "MadryEtAl", False, "ce"), ("lgm", "CarliniWagnerL2", True, "margin"),
    ("emc", "CarliniWagnerL2", True, "mmc_tar2"),
    ("center", "MadryEtAl", False, "ce"), ("isce", "MadryEtAl", True, "ce"),
    ("label_smoothing", "CarliniWagnerL2", False, "margin"),
])
def test_adaptive_objectives(loss, attack, targeted, expected):
    assert select_objective(loss, attack, targeted, adaptive=True) == expected
    assert check_objective(expected, loss, targeted).name == expected


@pytest.mark.parametrize("loss", ["center", "isce", "label_smoothing"])
def test_center_objectives_refused_on_dense_heads(loss):
    with pytest.raises(UsageError, match="MM centers"):
        check_objective("mmc_un1", loss, targeted=False)


# --- label smoothing -------------------------------------------------------------------

def test_label_smoothing_zero_is_sce_and_eps_matches_soft_targets():
    _, _, onehot = _batch()
    logits = np.random.default_rng(1).normal(size=(B, L)).astype(np.float32)
    np.testing.assert_allclose(label_smoothing_loss(onehot, logits, label_smoothing=0.0),
                               sce_loss(onehot, logits), rtol=1e-6)
    soft = 0.9 * onehot + 0.1 / L
    ref = keras.losses.categorical_crossentropy(soft, logits, from_logits=True).numpy()
    np.testing.assert_allclose(label_smoothing_loss(onehot, logits, label_smoothing=0.1), ref,
                               rtol=1e-5)


# --- center loss -----------------------------------------------------------------------

def test_center_loss_is_sce_plus_half_lambda_squared_distance():
    z, y, onehot = _batch()
    head = _built(CenterLossDense(L))
    centers = np.random.default_rng(2).normal(size=(L, D)).astype(np.float32)
    head.class_centers.assign(centers)
    logits = head(z)
    value = center_loss(onehot, logits, features=z, head=head, center_lambda=0.3)
    expected = sce_loss(onehot, logits).numpy() + 0.3 * 0.5 * ((z - centers[y]) ** 2).sum(1)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        pull = tf.reduce_sum(center_loss(onehot, tf.zeros((B, L)), features=zt, head=head,
                                         center_lambda=1.0))
    # the center term pulls z toward c_y (and the centers get no gradient)
    np.testing.assert_allclose(tape.gradient(pull, zt), z - centers[y], rtol=1e-5, atol=1e-6)


def test_center_update_is_wens_rule_and_converges_to_class_means():
    z, y, onehot = _batch()
    head = _built(CenterLossDense(L))
    start = np.random.default_rng(3).normal(size=(L, D)).astype(np.float32)
    head.class_centers.assign(start)
    head.update_centers(z, onehot, alpha=0.5)
    expected = start.copy()
    for j in range(L):
        members = z[y == j]
        expected[j] -= 0.5 * (len(members) * start[j] - members.sum(0)) / (1 + len(members))
    np.testing.assert_allclose(head.class_centers.numpy(), expected, rtol=1e-5, atol=1e-6)
    for _ in range(200):  # the same batch again and again: c_j -> mean of class j
        head.update_centers(z, onehot, alpha=0.5)
    for j in set(y.tolist()):
        np.testing.assert_allclose(head.class_centers.numpy()[j], z[y == j].mean(0), atol=1e-4)
    for j in set(range(L)) - set(y.tolist()):  # classes not in the batch stay put
        np.testing.assert_array_equal(head.class_centers.numpy()[j], start[j])


_TWO_REPLICAS = r"""
import json, sys
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_layers import CenterLossDense
z, y = np.asarray(json.loads(sys.argv[1]), np.float32), np.asarray(json.loads(sys.argv[2]))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    head = CenterLossDense(int(y.max()) + 1)
    head.build((None, z.shape[1]))
data = tf.data.Dataset.from_tensor_slices((z, np.eye(int(y.max()) + 1, dtype=np.float32)[y]))
batch = next(iter(strategy.experimental_distribute_dataset(data.batch(len(z)))))
assert strategy.num_replicas_in_sync == 2
tf.function(lambda b: strategy.run(head.update_centers, args=(b[0], b[1], 0.5)))(batch)
copies = [v.numpy().tolist() for v in
          strategy.experimental_local_results(head.class_centers.value)]
print(json.dumps(copies))
"""


@pytest.mark.slow
def test_center_update_under_two_mirrored_replicas_equals_one_device():
    """Each replica sees half the batch; the all-reduced update is the whole batch's."""
    z, y, onehot = _batch(4)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", _TWO_REPLICAS, json.dumps(z.tolist()),
                           json.dumps(y.tolist())], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    copies = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    single = _built(CenterLossDense(int(y.max()) + 1))
    single.update_centers(z, onehot[:, :int(y.max()) + 1], alpha=0.5)
    assert copies.shape[0] == 2
    for copy in copies:
        np.testing.assert_allclose(copy, single.class_centers.numpy(), rtol=1e-5, atol=1e-6)


# --- L-GM --------------------------------------------------------------------------------

def test_lgm_logits_and_margin():
    z, y, onehot = _batch()
    head = _built(GaussianMixtureLayer(L))
    mu = head.centers.numpy()
    d = 0.5 * ((z[:, None] - mu[None]) ** 2).sum(-1)
    h = head(z).numpy()
    np.testing.assert_allclose(h, -d, rtol=1e-5)
    assert len(head.trainable_weights) == 1  # the means are learned
    # margin 0, lambda 0: softmax cross-entropy on the plain Gaussian-mixture logits
    np.testing.assert_allclose(lgm_loss(onehot, h, lgm_margin=0.0, lgm_lambda=0.0),
                               sce_loss(onehot, h), rtol=1e-6)
    # the margin scales the true class' distance by (1 + m): a larger loss
    margin_logits = h.copy()
    margin_logits[np.arange(B), y] *= 1.3
    np.testing.assert_allclose(lgm_loss(onehot, h, lgm_margin=0.3, lgm_lambda=0.0),
                               sce_loss(onehot, margin_logits), rtol=1e-5)
    losses = [lgm_loss(onehot, h, lgm_margin=m, lgm_lambda=0.0).numpy() for m in (0, .1, .5)]
    assert np.all(np.diff(np.stack(losses), axis=0) > 0)
    # likelihood term: lambda * 1/2 ||z - mu_y||^2
    extra = lgm_loss(onehot, h, lgm_margin=0.1, lgm_lambda=0.2) - lgm_loss(
        onehot, h, lgm_margin=0.1, lgm_lambda=0.0)
    np.testing.assert_allclose(extra, 0.2 * d[np.arange(B), y], rtol=1e-4)


# --- EMC ---------------------------------------------------------------------------------

def _emc_head():
    centers = ts_centers.get_centers("mm", L, D, c_mm=3.0)
    return _built(ElasticMMCLayer(centers)), centers.astype(np.float32)


def test_emc_starts_as_half_mmc_with_zero_penalty():
    z, y, onehot = _batch()
    head, mu_star = _emc_head()
    assert [w.trainable for w in (head.centers, head.prior_centers)] == [True, False]
    logits = head(z)
    np.testing.assert_allclose(logits, MMCLayer(mu_star)(z), rtol=1e-6)
    np.testing.assert_allclose(emc_loss(onehot, logits, head=head, emc_alpha=0.1),
                               0.5 * mmc_loss(onehot, logits).numpy(), rtol=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 0.1, 1e-6])
def test_emc_minimum_over_centers_tends_to_mmc(alpha):
    """For one example, argmin over mu_y is (alpha z + mu*)/(1 + alpha) with value
    1/2 ||z - mu*||^2 / (1 + alpha): alpha -> 0 gives the (paper's) MMC loss."""
    z, y, onehot = _batch()
    z, y, onehot = z[:1], y[:1], onehot[:1]
    head, mu_star = _emc_head()
    best = mu_star.copy()
    best[y[0]] = (alpha * z[0] + mu_star[y[0]]) / (1 + alpha)
    head.centers.assign(best)
    with tf.GradientTape() as tape:
        value = emc_loss(onehot, head(z), head=head, emc_alpha=alpha)
    grad = tape.gradient(value, head.centers).numpy()
    mmc_half = 0.5 * ((z[0] - mu_star[y[0]]) ** 2).sum()
    np.testing.assert_allclose(value.numpy()[0], mmc_half / (1 + alpha), rtol=1e-4)
    np.testing.assert_allclose(grad * min(alpha, 1.0), 0.0, atol=1e-4)  # a stationary point
    if alpha < 1e-3:
        np.testing.assert_allclose(head.centers.numpy(), mu_star, atol=1e-4)


# --- I-SCE -------------------------------------------------------------------------------

def _isce(s, m):
    head = ISCELayer(L, s=s, m=m)
    head.build((None, D))
    head.kernel.assign(np.random.default_rng(5).normal(size=(D, L)).astype(np.float32))
    return head


def test_isce_normalises_the_logits_and_s1_m0_is_sce_on_them():
    z, y, onehot = _batch()
    head = _isce(1.0, 0.1)
    f = head.normalized_logits(z).numpy()
    raw = z @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(f, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5)
    plain = isce_loss(onehot, None, features=z, head=head, isce_s=1.0, isce_m=0.0)
    np.testing.assert_allclose(plain, sce_loss(onehot, f), rtol=1e-6)
    # eq. 3: s f_y + m on the true class only
    boosted = f.copy()
    boosted[np.arange(B), y] = 1.5 * f[np.arange(B), y] + 0.1
    np.testing.assert_allclose(isce_loss(onehot, None, features=z, head=head, isce_s=1.5,
                                         isce_m=0.1), sce_loss(onehot, boosted), rtol=1e-5)


def test_isce_inference_output_is_eq2_and_ce_on_it_is_the_training_loss():
    z, y, _ = _batch()
    head = _isce(1.5, 0.1)
    f = head.normalized_logits(z).numpy()
    g = head(z).numpy()
    pred = f.argmax(1)
    np.testing.assert_array_equal(g.argmax(1), pred)  # the decision does not change
    expected = f.copy()
    expected[np.arange(B), pred] = 1.5 * f[np.arange(B), pred] + 0.1
    np.testing.assert_allclose(g, expected, rtol=1e-6)
    # at correctly classified points cross-entropy on the output is the I-SCE loss
    as_labels = np.eye(L, dtype=np.float32)[pred]
    np.testing.assert_allclose(sce_loss(as_labels, g), isce_loss(
        as_labels, None, features=z, head=head, isce_s=1.5, isce_m=0.1), rtol=1e-5)


# --- hierarchical centers ----------------------------------------------------------------

def test_hierarchical_centers_gram_structure():
    ratio, c_mm = 0.1, 10.0
    centers = ts_centers.get_centers("hierarchical", 100, 64, c_mm, sub_ratio=ratio)
    tree = np.asarray(ts_centers.CIFAR100_COARSE_OF)
    assert np.bincount(tree).tolist() == [5] * 20
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), c_mm * np.hypot(1, ratio),
                               rtol=1e-9)
    gram = centers @ centers.T
    same = (tree[:, None] == tree[None]) & ~np.eye(100, dtype=bool)
    other = tree[:, None] != tree[None]
    # within a super-class: C1^2 - C2^2/4; across: -C1^2/19 +- C2^2 terms
    np.testing.assert_allclose(gram[same], c_mm ** 2 * (1 - ratio ** 2 / 4), rtol=1e-9)
    assert gram[other].max() < -c_mm ** 2 / 19 + (ratio * c_mm) ** 2 + 1e-9
    dist = np.sqrt(np.maximum(np.diag(gram)[:, None] + np.diag(gram)[None] - 2 * gram, 0))
    assert dist[same].max() < 0.2 * dist[other].min()
    # super-class means are MM centers with norm C1
    means = np.stack([centers[tree == c].mean(0) for c in range(20)])
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), c_mm, rtol=1e-9)


def test_hierarchical_centers_need_coarse_labels():
    with pytest.raises(UsageError, match="coarse"):
        ts_centers.get_centers("hierarchical", 10, 64, 10.0)
    y = np.arange(100)
    ts_centers.check_coarse_labels(y, np.asarray(ts_centers.CIFAR100_COARSE_OF)[y], 100)
    with pytest.raises(UsageError, match="no.*coarse|has none"):
        ts_centers.check_coarse_labels(y[:10], None, 10, "mnist")
    with pytest.raises(UsageError, match="do not follow"):
        ts_centers.check_coarse_labels(y, np.zeros(100, int), 100)


# --- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("change,match", [
    ({"emc_alpha": 0.0}, "emc_alpha"), ({"emc_alpha": -1.0}, "emc_alpha"),
    ({"isce_s": 0.5}, "isce_s"), ({"isce_m": 0.0}, "isce_m"), ({"isce_m": float("nan")}, "isce_m"),
    ({"center_lambda": -0.1}, "center_lambda"), ({"center_alpha": 0.0}, "center_alpha"),
    ({"label_smoothing": 1.0}, "label_smoothing"), ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"lgm_margin": -1.0}, "lgm_margin"), ({"sub_center_ratio": 1.5}, "sub_center_ratio"),
    ({"loss": "nope"}, "unknown loss"), ({"centers": "nope"}, "unknown center set"),
])
def test_bad_loss_settings_are_usage_errors(change, match):
    with pytest.raises(UsageError, match=match) as err:
        dataclasses.replace(ModelConfig(), **change)
    assert "\n" not in str(err.value)
