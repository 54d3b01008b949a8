"""The original repository's Keras 2 checkpoints load into our classifier, same logits."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

pytest.importorskip("tf_keras")

from original_keras2 import build_original, randomise  # noqa: E402

SHAPE, CLASSES = (8, 8, 3), 10


def _our_model(version, loss, **arch):
    from utils.models.classifier import build_classifier
    from utils.runs.model_config import ModelConfig
    cfg = ModelConfig(version=version, n=1, loss=loss, c_mm=10.0, **arch)
    return cfg, build_classifier(cfg, SHAPE, CLASSES)


def _centers(version, use_dense=True):
    import ts_centers
    dim = 64 if version == 1 else 256
    return ts_centers.get_centers("mm", CLASSES, dim, 10.0)


def _write(tmp_path, version, head, seed=0, **arch):
    saved, logits = build_original(version, 1, SHAPE, CLASSES, head,
                                   centers=_centers(version), **arch)
    randomise(saved, seed)
    path = pathlib.Path(tmp_path) / "model.001.h5"
    saved.save_weights(str(path))
    return path, logits


CASES = [(v, head, {}) for v in (1, 2) for head in ("sce", "mmc")] + [
    pytest.param(*case, marks=pytest.mark.slow) for case in [
        (1, "mmlda", dict(use_BN=False)),
        (2, "mmc", dict(use_dense=False, use_leaky=True)),
        (1, "sce", dict(use_BN=False, use_leaky=True))]]


@pytest.mark.parametrize("version,head,arch", CASES)
def test_original_checkpoint_gives_identical_logits(tmp_path, version, head, arch):
    from utils.models.original_h5 import load_original_weights
    path, reference = _write(tmp_path, version, head, **arch)
    cfg, model = _our_model(version, head, **arch)
    load_original_weights(model, cfg, path)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, size=(4,) + SHAPE).astype(np.float32)
    want = reference.predict(x, verbose=0)
    got = np.asarray(model(x, training=False))
    if head == "mmlda":  # the original's model outputs log-softmax of the same logits
        got = got - np.log(np.exp(got - got.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - got.max(1, keepdims=True)
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel <= 1e-5, rel


def test_mismatched_and_truncated_files_are_refused(tmp_path):
    from utils.errors import UsageError
    from utils.models.original_h5 import load_original_weights
    path, _ = _write(tmp_path, 1, "mmc")
    cfg, model = _our_model(2, "mmc")  # another architecture
    with pytest.raises(UsageError, match=r"layer 3 .*expects \[\(1, 1, 16, 16\)") as err:
        load_original_weights(model, cfg, path)
    assert "\n" not in str(err.value)
    cfg, model = _our_model(1, "mmc", use_BN=False)
    with pytest.raises(UsageError, match="layer 2"):
        load_original_weights(model, cfg, path)
    truncated = tmp_path / "model.002.h5"
    truncated.write_bytes(path.read_bytes()[:3000])
    cfg, model = _our_model(1, "mmc")
    with pytest.raises(UsageError, match="truncated"):
        load_original_weights(model, cfg, truncated)


ORIGINAL_FLAGS = ["--mean_var=100", "--batch_size=50", "--attack_method=MadryEtAl",
                  "--attack_method_for_advtrain=None", "--target=True", "--num_iter=7",
                  "--use_ball=True", "--use_MMLDA=True", "--use_advtrain=False", "--epoch=180",
                  "--use_BN=True", "--normalize_output_for_ball=True", "--optimizer=Adam",
                  "--lr=0.001"]


@pytest.mark.slow
@pytest.mark.parametrize("version,head", [(1, "mmc"), (2, "mmc"), (1, "sce"), (2, "sce")])
def test_advtest_finds_attacks_and_exports_an_original_checkpoint(tmp_path, fake_mnist_dir,
                                                                  capsys, version, head):
    """The original README's advtest flags (n=1, MNIST-shaped data) on a model.180.h5 in
    the original's run directory: found and attacked (eps 0 gives clean accuracy), exported
    to .keras with the reference's logits; a truncated file: one line, exit 2."""
    import json
    import keras
    import ts_centers
    from conftest import run_entry
    mmc = head == "mmc"
    name = (f"resnet{6 * 1 + 2 if version == 1 else 9 * 1 + 2}v{version}"
            + ("_meanvar100.0" if mmc else "") + "_Adam_lr0.001_batchsize50_withBN")
    run_dir = tmp_path / "trained_models" / "mnist" / name
    run_dir.mkdir(parents=True)
    dim = 64 if version == 1 else 256
    saved, reference = build_original(version, 1, (28, 28, 3), 10, head,
                                      centers=ts_centers.get_centers("mm", 10, dim, 100.0))
    randomise(saved)
    saved.save_weights(str(run_dir / "model.180.h5"))
    flags = [f for f in ORIGINAL_FLAGS if mmc or not f.startswith(("--use_ball", "--use_MM"))]
    flags += [] if mmc else ["--use_ball=False", "--use_MMLDA=False"]
    args = flags + ["--dataset=mnist", f"--version={version}", "--n=1",
                    f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}",
                    "--num_examples=20", "--eps_256=0,8", "--progress=False",
                    f"--results_file={tmp_path / 'r.jsonl'}"]
    code, out, err = run_entry("advtest_iterative", args, capsys)
    assert code == 0, err
    zero, eight = [json.loads(r) for r in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert zero["adv_accuracy"] == zero["clean_accuracy"]
    assert eight["adv_accuracy"] <= zero["clean_accuracy"]
    assert zero["model"] == run_dir.name
    out_file = tmp_path / "raw.keras"
    code, _, err = run_entry("scripts.export_keras", args[:-1] + [
        f"--out={out_file}", "--include_preprocessing=False"], capsys)
    assert code == 0, err
    exported = keras.saving.load_model(out_file, safe_mode=True)
    x = np.random.default_rng(3).uniform(-0.5, 0.5, size=(4, 28, 28, 3)).astype(np.float32)
    want = reference.predict(x, verbose=0)
    rel = np.abs(np.asarray(exported(x)) - want).max() / np.abs(want).max()
    assert rel <= 1e-5, rel
    blob = (run_dir / "model.180.h5").read_bytes()
    (run_dir / "model.180.h5").write_bytes(blob[:len(blob) // 3])
    code, _, err = run_entry("advtest_iterative", args[:-1] + [
        f"--results_file={tmp_path / 'bad.jsonl'}"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad.jsonl").exists()
