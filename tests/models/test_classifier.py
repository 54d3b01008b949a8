"""Classifier assembly, run-directory names and atomic writes."""
import json
import pathlib

import keras
import numpy as np
import pytest

from keras_layers import MMCLayer
from utils.fileio import atomic_write
from utils.runs import checkpoints as ckpt
from utils.runs.naming import run_name
from utils.models.classifier import build_classifier, feature_model
from utils.runs.model_config import ModelConfig, architecture_fingerprint
from utils.errors import UsageError


@pytest.mark.parametrize("loss,head", [("sce", keras.layers.Dense), ("mmc", MMCLayer),
                                       ("mmlda", MMCLayer)])
def test_heads_and_feature_model(loss, head):
    cfg = ModelConfig(version=1, n=1, loss=loss, c_mm=10.0)
    model = build_classifier(cfg, (16, 16, 3), 10)
    assert isinstance(model.get_layer("logits"), head)
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype(np.float32)
    assert model(x).shape == (4, 10) and model(x).dtype == "float32"
    z = feature_model(model)(x)
    assert z.shape == (4, 64)
    if head is MMCLayer:  # logits are -||z - mu||^2 of the exposed features
        centers = model.get_layer("logits").centers.numpy()
        expected = -((z.numpy()[:, None] - centers[None]) ** 2).sum(-1)
        np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-3)
        gram = centers @ centers.T
        np.testing.assert_allclose(np.diag(gram), 100.0, rtol=1e-5)


def test_mmc_classifier_reloads_in_safe_mode(tmp_path):
    model = build_classifier(ModelConfig(version=1, n=1, loss="mmc"), (8, 8, 3), 10)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_2d_demo_and_random_centers():
    cfg = ModelConfig(version=1, n=1, loss="mmc", is_2d_demo=True, centers="random")
    model = build_classifier(cfg, (8, 8, 3), 10)
    assert feature_model(model).output.shape[-1] == 2
    norms = np.linalg.norm(model.get_layer("logits").centers.numpy(), axis=1)
    np.testing.assert_allclose(norms, 10.0, rtol=1e-5)


@pytest.mark.parametrize("bad", [dict(c_mm=0.0), dict(c_mm=-1.0), dict(c_mm=float("nan")),
                                 dict(loss="nope"), dict(centers="nope"), dict(feature_dim=0),
                                 dict(version=3), dict(n=0)])
def test_bad_configs_are_refused_when_built(bad):
    with pytest.raises(UsageError):
        ModelConfig(**bad)


def dataclass_replace(cfg, **kw):
    import dataclasses
    return dataclasses.replace(cfg, **kw)


@pytest.mark.parametrize("cfg,opt,lr,bs,name", [
    (ModelConfig(version=2, loss="mmc", c_mm=10), "mom", 0.01, 50,
     "resnet32v2_meanvar10_mom_lr0.01_batchsize50_withBN"),
    (ModelConfig(version=2, loss="sce"), "Adam", 0.001, 50,
     "resnet32v2_Adam_lr0.001_batchsize50_withBN"),
    (ModelConfig(version=1, loss="mmlda", c_mm=100, use_BN=False), "mom", 0.01, 64,
     "resnet32v1_meanvar100_mom_lr0.01_batchsize64_noBN_softmax"),
    (ModelConfig(version=1, n=18, loss="mmc", centers="random", use_leaky=True,
                 use_dense=False, c_mm=2.5), "mom", 0.1, 50,
     "resnet110v1_meanvar2.5_mom_lr0.1_batchsize50_withBN_withleaky_nodense_random"),
    (ModelConfig(version=1, loss="mmc", is_2d_demo=True, feature_dim=32), "mom", 0.01, 50,
     "resnet32v1_meanvar10_mom_lr0.01_batchsize50_withBN_featuredim32_demoMNIST"),
])
def test_run_names_follow_the_original(cfg, opt, lr, bs, name):
    assert run_name(cfg, opt, lr, bs) == name


def test_list_checkpoints_and_atomic_write(tmp_path):
    for epoch in (5, 10, 120):
        (tmp_path / f"model.{epoch:03d}.weights.h5").write_text("x")
    (tmp_path / ".model.015.weights.h5.tmp").write_text("partial")
    assert ckpt.list_checkpoints(tmp_path) == [5, 10, 120]
    assert ckpt.latest_checkpoint(tmp_path) == 120

    def failing(tmp):
        pathlib.Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.json", failing)
    assert not (tmp_path / "out.json").exists()
    assert not [p for p in tmp_path.iterdir() if "out.json" in p.name]


def test_architecture_check(tmp_path):
    cfg = ModelConfig(version=1, n=1)
    fp = architecture_fingerprint(cfg, (28, 28, 3), 10)
    ckpt.check_architecture(tmp_path, fp)  # no arch.json: nothing to compare
    (tmp_path / ckpt.ARCH_FILE).write_text(json.dumps(fp))
    ckpt.check_architecture(tmp_path, fp)
    other = architecture_fingerprint(dataclass_replace(cfg, n=2), (28, 28, 3), 10)
    with pytest.raises(UsageError, match="different architecture.*n=1"):
        ckpt.check_architecture(tmp_path, other)
    # a key only an older/newer version wrote is not compared
    (tmp_path / ckpt.ARCH_FILE).write_text(json.dumps(dict(fp, center_seed=3)))
    ckpt.check_architecture(tmp_path, fp)
    (tmp_path / ckpt.ARCH_FILE).write_text("{trunc")
    with pytest.raises(UsageError, match="truncated"):
        ckpt.check_architecture(tmp_path, fp)


NEW_LOSSES = ["center", "lgm", "emc", "isce", "label_smoothing", "mmc_rand"]


@pytest.mark.parametrize("loss", ["sce", "mmlda"] + NEW_LOSSES)
def test_every_head_reloads_in_safe_mode(tmp_path, loss):
    model = build_classifier(ModelConfig(version=1, n=1, loss=loss, isce_s=1.5), (8, 8, 3), 10)
    head = model.get_layer("logits")
    for weight in head.weights:  # moved off its initial value: the file must carry it
        weight.assign(weight.numpy() + 0.5)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("logits")) is type(head)
    for saved, fresh in zip(head.weights, loaded.get_layer("logits").weights):
        np.testing.assert_array_equal(saved.numpy(), fresh.numpy())
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


@pytest.mark.slow
def test_weights_file_round_trip_keeps_head_state(tmp_path):
    """What train_models writes and advtest loads: every head weight, centers included."""
    from utils.models.weights import load_weights
    for loss in NEW_LOSSES:
        cfg = ModelConfig(version=1, n=1, loss=loss)
        model = build_classifier(cfg, (8, 8, 3), 10)
        for weight in model.get_layer("logits").weights:
            weight.assign(weight.numpy() - 0.25)
        path = tmp_path / f"{loss}.weights.h5"
        model.save_weights(path)
        other = build_classifier(cfg, (8, 8, 3), 10)
        load_weights(other, path)
        for a, b in zip(model.get_layer("logits").weights, other.get_layer("logits").weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("cfg,name", [
    (ModelConfig(version=1, loss="center"),
     "resnet32v1_mom_lr0.01_batchsize50_withBN_center_lambda0.003_alpha0.5"),
    (ModelConfig(version=1, loss="lgm", lgm_lambda=0.1),
     "resnet32v1_mom_lr0.01_batchsize50_withBN_lgm_margin0.1_lambda0.1"),
    (ModelConfig(version=1, loss="emc", emc_alpha=1.0),
     "resnet32v1_meanvar10_mom_lr0.01_batchsize50_withBN_emc_alpha1"),
    (ModelConfig(version=1, loss="isce", isce_s=1.5, isce_m=0.05),
     "resnet32v1_mom_lr0.01_batchsize50_withBN_isce_s1.5_m0.05"),
    (ModelConfig(version=1, loss="label_smoothing"),
     "resnet32v1_mom_lr0.01_batchsize50_withBN_ls0.1"),
    (ModelConfig(version=1, loss="mmc_rand"),
     "resnet32v1_meanvar10_mom_lr0.01_batchsize50_withBN_random"),
    (ModelConfig(version=2, loss="mmlda", centers="hierarchical"),
     "resnet32v2_meanvar10_mom_lr0.01_batchsize50_withBN_centers-hierarchical_softmax"),
    (ModelConfig(version=2, loss="mmc", centers="hierarchical", sub_center_ratio=0.2),
     "resnet32v2_meanvar10_mom_lr0.01_batchsize50_withBN_centers-hierarchical_subratio0.2"),
])
def test_run_names_of_the_new_losses(cfg, name):
    assert run_name(cfg, "mom", 0.01, 50) == name


def test_fingerprint_holds_only_the_own_loss_parameters():
    old_keys = {"version", "n", "feature_dim", "use_BN", "use_dense", "use_leaky", "is_2d_demo",
                "loss", "centers", "c_mm", "input_shape", "num_classes"}
    for loss in ("sce", "mmc", "mmlda"):  # unchanged, so existing arch.json files match
        assert set(architecture_fingerprint(ModelConfig(loss=loss), (8, 8, 3), 10)) == old_keys
    fp = architecture_fingerprint(ModelConfig(loss="isce"), (8, 8, 3), 10)
    assert set(fp) - old_keys == {"isce_s", "isce_m"}
    # training-only settings of other losses do not make checkpoints incompatible
    assert architecture_fingerprint(ModelConfig(loss="mmc", emc_alpha=3.0), (8, 8, 3), 10) == \
        architecture_fingerprint(ModelConfig(loss="mmc"), (8, 8, 3), 10)
