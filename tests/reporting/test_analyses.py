"""utils.reporting.analyses / utils.reporting.analyses_render: known answers on hand-made inputs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from utils.reporting import analyses as an
from utils.reporting.analyses_render import render_features_png, render_gsce, write_analysis
from utils.errors import UsageError


# ------------------------------------------------------------------ g-SCE dependency

def test_relative_dependency_known_answers():
    logits = np.array([
        [10.0, 5.0, 4.0, 0.0],   # non-true 5, 4: gap 1 < ln 5 -> comparable
        [10.0, 5.0, 2.0, 0.0],   # gap 3 -> not
        [5.0, 10.0, 4.0, 0.0],   # misclassified: non-true 10, 4 (gap 6: not);
                                 # overall 2nd/3rd are 5, 4 (gap 1: comparable)
        [0.0, 3.0, 3.0, 3.0],    # three equal non-true logits: gap 0
    ])
    labels = np.array([0, 0, 0, 0])
    non_true = an.relative_dependency(logits, labels)
    assert non_true["n"] == 4 and non_true["n_comparable"] == 2
    assert non_true["share"] == pytest.approx(0.5)
    overall = an.relative_dependency(logits, labels, ranking="overall")
    assert overall["n_comparable"] == 3
    # log-sum-exp error of the approximation by h_ỹ: exactly ln 3 for three equal logits
    row3 = an.relative_dependency(logits[3:], labels[3:])
    assert row3["lse_error_max"] == pytest.approx(math.log(3))
    row2 = an.relative_dependency(logits[1:2], labels[1:2])
    expected = math.log(math.exp(5) + math.exp(2) + 1) - 5
    assert row2["lse_error_mean"] == pytest.approx(expected)


def test_relative_dependency_factor_is_on_the_probability_scale():
    gap = math.log(5)
    logits = np.array([[9.0, 1.0 + gap - 1e-6, 1.0], [9.0, 1.0 + gap + 1e-6, 1.0]])
    result = an.relative_dependency(logits, np.array([0, 0]), factor=5.0)
    assert result["n_comparable"] == 1  # probability ratio just below / above 5


@pytest.mark.parametrize("logits, labels, kwargs", [
    (np.zeros((2, 2)), [0, 1], {}),               # L < 3
    (np.zeros((2, 4)), [0, 4], {}),               # label out of range
    (np.zeros((2, 4)), [0, 1], {"factor": 1.0}),
    (np.zeros((2, 4)), [0, 1], {"ranking": "top"}),
])
def test_relative_dependency_bad_input(logits, labels, kwargs):
    with pytest.raises(UsageError):
        an.relative_dependency(logits, np.array(labels), **kwargs)


# ------------------------------------------------------------------ OOD scores

def constant_model(logits):
    """A Keras model whose output is ``logits`` for every input (zero kernel, bias)."""
    import keras
    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    out = keras.layers.Dense(len(logits), kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant(logits))(flat)
    return keras.Model(inputs, out)


def test_top_k_and_ood_summary_on_a_constant_model():
    logits = np.array([1.0, 3.0, 2.0, -1.0])
    model = constant_model(logits)
    x_in = np.random.default_rng(0).normal(size=(7, 4, 4, 1)).astype(np.float32)
    x_ood = np.random.default_rng(1).uniform(size=(5, 4, 4, 1)).astype(np.float32)
    z_in, z_ood = an.predict(model, x_in, batch_size=3), an.predict(model, x_ood)
    np.testing.assert_allclose(z_in, np.tile(logits, (7, 1)), rtol=1e-6)
    probs = np.exp(logits) / np.exp(logits).sum()
    dense = an.ood_summary(z_in, z_ood, head="dense")
    np.testing.assert_allclose(dense["first_ood_top_k"], np.sort(probs)[::-1][:3], rtol=1e-6)
    np.testing.assert_allclose(dense["mean_in_top_k"], np.sort(probs)[::-1][:3], rtol=1e-6)
    assert dense["auroc_max_score"] == pytest.approx(0.5)  # identical scores: chance
    assert dense["mean_max_softmax_ood"] == pytest.approx(probs.max())
    mmc = an.ood_summary(z_in, z_ood, head="mmc")
    np.testing.assert_allclose(mmc["mean_ood_top_k"], [3.0, 2.0, 1.0], rtol=1e-6)
    assert (dense["n_in"], dense["n_ood"]) == (7, 5)


def test_ood_summary_separates_far_inputs_for_mmc_scores():
    near = -np.array([[1.0, 50.0, 60.0]] * 4)       # in-distribution: close to a center
    far = -np.array([[900.0, 950.0, 990.0]] * 3)    # OOD: far from every center
    result = an.ood_summary(near, far, head="mmc")
    assert result["auroc_max_score"] == 1.0
    assert result["first_ood_top_k"] == [-900.0, -950.0, -990.0]
    with pytest.raises(UsageError):
        an.ood_summary(near, far, head="gm")
    with pytest.raises(UsageError):
        an.top_k_scores(near, k=4)


def test_softmax_and_rendered_digits():
    p = an.softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.25, 0.75]])
    images, digits = an.rendered_digits(6, size=28, seed=0)
    assert images.shape == (6, 28, 28) and digits.shape == (6,)
    assert images.min() >= 0 and images.max() <= 1
    assert all(img.max() > 0.5 and img.mean() < 0.5 for img in images)  # white on black


# ------------------------------------------------------------------ features, timing

def test_spread_ratio_and_epoch_minutes():
    z = np.array([[-1.0, 0], [1, 0], [9, 0], [11, 0]])
    assert an.spread_ratio(z, np.array([0, 0, 1, 1])) == pytest.approx(0.1)
    with pytest.raises(UsageError):
        an.spread_ratio(z, np.zeros(4))
    assert an.epoch_minutes(0.5, 60000, 50, 50) == pytest.approx(500.0)


def test_features_centers_and_cmm_row_of_a_2d_mmc_model():
    from utils.models.classifier import build_classifier
    from utils.runs.model_config import ModelConfig
    from utils.data import prepare
    from utils.data.sources import RawDataset

    cfg = ModelConfig(version=1, n=1, loss="mmc", c_mm=10.0, is_2d_demo=True)
    model = build_classifier(cfg, (28, 28, 3), 10)
    rng = np.random.default_rng(0)
    raw = RawDataset(x_train=rng.integers(0, 255, (20, 28, 28, 3), dtype=np.uint8),
                     y_train=rng.integers(0, 10, 20).astype(np.uint8),
                     x_test=rng.integers(0, 255, (6, 28, 28, 3), dtype=np.uint8),
                     y_test=rng.integers(0, 10, 6).astype(np.uint8), num_classes=10,
                     name="fake")
    data = prepare(raw)
    z = an.features_of(model, data.x_test)
    assert z.shape == (6, 2)
    centers = an.centers_of(model)
    assert centers.shape == (10, 2)
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 10.0, rtol=1e-4)
    row = an.cmm_row(model, data, c_mm=10.0, pgd_examples=4, num_iter=1)
    assert row["n_clean"] == 6 and row["n_pgd"] == 4
    assert 0 <= row["pgd_accuracy"] <= 1 and 0 <= row["clean_accuracy"] <= 1
    png = render_features_png([{"title": "MMC", "z": z, "y": data.y_test, "centers": centers},
                               {"title": "SCE", "z": z, "y": data.y_test, "centers": None}])
    assert png.startswith(b"\x89PNG")


# ------------------------------------------------------------------ output files

def test_write_analysis_is_atomic_and_rejects_a_bad_dir(tmp_path):
    payload = {"command": "scripts/analyses.py --which=gsce", "factor": 5.0, "models": [
        {"model": "SCE", "non_true": {"n": 4, "share": 0.5, "median_gap": 1.0,
                                      "lse_error_mean": 0.3, "lse_error_median": 0.2},
         "overall": {"share": 0.75}}]}
    markdown = render_gsce(payload)
    assert "| SCE | 4 | 50.00 | 75.00 |" in markdown and "9.16" in markdown
    written = write_analysis(tmp_path / "out", "gsce_dependency", payload, markdown)
    assert [p.name for p in written] == ["gsce_dependency.json", "gsce_dependency.md"]
    assert json.loads(written[0].read_text())["factor"] == 5.0
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError):
        write_analysis(blocker / "sub", "gsce_dependency", payload, markdown)
    assert not list(tmp_path.glob("**/*.tmp*"))


def test_summary_ordering_check():
    from utils.reporting.summary import Column, ordering

    def record(method, accuracy):
        return dict(method=method, attack="MadryEtAl", targeted=False, eps_256=8.0, nb_iter=10,
                    accuracy=accuracy, clean=90.0, transfer=False, n=100, time="t",
                    dataset="d", model=method, epoch=1, objective="o", noise_sigma=None,
                    rotation_degrees=None)

    col = Column("ε8 PGD10-un", "MadryEtAl", False, 8.0, 10, 10)
    cells = [dict(method=m, attack="MadryEtAl", targeted=False, eps_256=8.0, nb_iter=10,
                  metric="accuracy", relation="<=" if m in ("SCE", "MMLDA") else "=",
                  value_text=v) for m, v in (("SCE", "1"), ("MMLDA", "1"),
                                             ("MMC-10 (rand)", "20.9"), ("MMC-10", "26.6"))]
    ok = [record("SCE", 2.0), record("MMLDA", 9.0), record("MMC-10 (rand)", 9.0),
          record("MMC-10", 30.0)]
    [(label, text, ours, paper)] = ordering(ok, cells, [col])
    assert text == "SCE 2.0 < MMLDA 9.0 = MMC-10 (rand) 9.0 < MMC-10 30.0"
    assert ours is True and paper is True
    flat = [record(m, 0.0) for m in ("SCE", "MMLDA", "MMC-10 (rand)", "MMC-10")]
    assert ordering(flat, cells, [col])[0][2] is False  # all tied: no evidence
    assert ordering(ok[:3], cells, [col])[0][1:3] == ("not all run", None)


def test_strong_attack_table_sets_pgd_beside_the_cascade():
    from utils.reporting.summary import (FULL_AA, LITE, ordering, render_members,
                                         render_strong, strong_columns)

    cols = strong_columns(steps=50, pgd_steps=50, eps=(8,), full=(100, 1000))
    assert [(c.label, c.attack, c.targeted, c.steps) for c in cols] == [
        ("ε8 PGD50-un", "MadryEtAl", False, 50), ("ε8 APGD-CE", "APGD", False, 50),
        ("ε8 APGD-T", "APGD-T", False, 50), ("ε8 AA-lite", "AutoAttack", False, 50),
        ("ε8 AutoAttack (Square 1000 q.)", "AutoAttack", False, 50)]
    assert cols[0].paper_steps == 50 and cols[1].paper_steps is None

    def record(attack, accuracy, members=None, after=None, queries=None):
        return dict(method="MMC-10", attack=attack, targeted=False, eps_256=8.0, nb_iter=50,
                    accuracy=accuracy, clean=90.0, transfer=False, n=500, time="t",
                    dataset="d", model="m", epoch=1, objective="o", noise_sigma=None,
                    rotation_degrees=None, members=members, after=after,
                    fab_n_iter=100 if queries else None, square_n_queries=queries)

    full = record("AutoAttack", 13.8, FULL_AA, dict(zip(FULL_AA, (19.4, 14.2, 14.0, 13.8))),
                  1000)
    records = [record("MadryEtAl", 20.6), record("APGD", 19.4), record("APGD-T", 15.0),
               record("AutoAttack", 14.2, LITE), full]
    cells = [dict(method="MMC-10", attack="MadryEtAl", targeted=False, eps_256=8.0, nb_iter=50,
                  metric="accuracy", relation="=", value_text="24.8"),
             dict(method="MMC-10", attack="AutoAttack", targeted=False, eps_256=8.0,
                  nb_iter=None, metric="accuracy", relation="=", value_text="9.9")]
    lines = render_strong(records, cells, cols, ["MMC-10", "SCE"])
    assert "| ε8 PGD50-un − AA-lite |" in lines[2]
    # lite and full keep their own records; PGD's gap is to the cascade (its checkpoint)
    assert "| MMC-10 | ours | 20.6 | 19.4 | 15.0 | 14.2 | 13.8 | 6.4 |" in lines
    assert "|  | paper | 24.8 | – | – | – | 9.9 | – |" in lines  # published AA: full only
    assert "| SCE | ours | – | – | – | – | – | – |" in lines  # not run: no made-up numbers
    table = render_members(records, cols, ["MMC-10", "SCE"])
    assert "| MMC-10 | 8 | 90.0 | 19.4 | 14.2 | 14.0 | 13.8 | 0.4 | FAB-T 0.2, Square 0.2 | " \
        "90.0 / 14.2 |" in table and not any(line.startswith("| SCE") for line in table)
    assert render_members(records[:4], cols, ["MMC-10"]) == []  # no full run: no table
    # The ordering check reads the strong columns too (here: one method, not all run).
    assert [c[0] for c in ordering(records, cells, cols)] == [c.label for c in cols]


@pytest.mark.slow
def test_time_training_keeps_one_input_iterator_per_setup(fake_mnist_dir, monkeypatch):
    """Rounds time training steps only: every round of a setup reads the same iterator
    (a fresh one refilled the shuffle buffer inside the timed round)."""
    from utils.runs.model_config import ModelConfig
    from utils.data import load_dataset
    from utils.training.loop import Trainer

    seen = {}
    real_fit = Trainer.fit

    def recording_fit(self, dist_dataset, *args, **kwargs):
        seen.setdefault(id(self), []).append(dist_dataset)
        return real_fit(self, dist_dataset, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    data = load_dataset("mnist", str(fake_mnist_dir), train_size=40, test_size=10, seed=0)
    setups = {"SCE": (ModelConfig(version=1, n=1, loss="sce"), None),
              "MMC-10": (ModelConfig(version=1, n=1, loss="mmc", c_mm=10.0), None)}
    out = an.time_training(setups, data, batch_size=10, steps=2, rounds=2)
    assert set(out) == set(setups)
    assert all(len(v["round_seconds"]) == 2 and v["median_step_s"] > 0 for v in out.values())
    assert len(seen) == 2
    for inputs in seen.values():
        assert len(inputs) == 3  # the untimed tracing round and 2 timed rounds
        assert all(it is inputs[0] for it in inputs) and iter(inputs[0]) is inputs[0]
