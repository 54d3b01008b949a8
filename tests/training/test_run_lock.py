"""The run directory's lock (utils.runs.lock): a second training into a run directory that
a training is writing into ends with one line and exit 2 and changes nothing there, and the
first training's weights do not depend on it."""
from __future__ import annotations

import pathlib

import pytest

from bad_input_driver import tree as file_tree
from conftest import entry_config, run_entry
from utils.errors import UsageError
from utils.runs.lock import RunDirLock

TINY = ["--dataset=mnist", "--version=1", "--n=1", "--batch_size=20", "--verbose=0",
        "--test_size=40", "--train_size=40", "--optimizer=mom", "--lr=0.01", "--epochs=1",
        "--augment=False"]


def tree(root: pathlib.Path) -> list:
    """Every path under ``root`` with its size and modification time, and ``root``'s own
    modification time (an entry added and removed again changes it)."""
    return [(".", root.stat().st_mtime_ns)] + file_tree(str(root))


def test_second_lock_is_refused_until_the_first_is_released(tmp_path):
    with RunDirLock(tmp_path) as first:
        assert first.held
        second = RunDirLock(tmp_path)
        with pytest.raises(UsageError, match="another training is writing into") as info:
            second.lock()
        assert "\n" not in str(info.value) and not second.held
        RunDirLock(tmp_path, enabled=False).lock()  # a non-chief worker does not lock
    second.lock()  # released with the with-block
    assert second.held
    second.release()


def test_a_missing_run_directory_is_not_created_by_the_lock(tmp_path):
    with RunDirLock(tmp_path / "run") as lock:
        assert not lock.held
    assert list(tmp_path.iterdir()) == []


def _run_dir(args) -> pathlib.Path:
    """Where train_models.py ``args`` writes (what its main would build)."""
    import train_models
    from utils.cli.train import run_config_from_flags
    return entry_config(train_models, args, lambda v: run_config_from_flags(v, [])).directory


def test_train_models_into_a_locked_run_directory_exits_2_and_changes_nothing(
        tmp_path, fake_mnist_dir, capsys):
    args = TINY + [f"--data_dir={fake_mnist_dir}", f"--model_dir={tmp_path}"]
    run_dir = _run_dir(args)
    run_dir.mkdir(parents=True)
    (run_dir / "history.csv").write_text("epoch\n")
    before = tree(tmp_path)
    for extra in ([], ["--resume"]):  # a resume would otherwise clean its temporaries
        with RunDirLock(run_dir):  # as a training in progress holds it
            code, out, err = run_entry("train_models", args + extra, capsys)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: another training")
        assert tree(tmp_path) == before


@pytest.mark.slow
def test_a_refused_second_training_leaves_the_first_ones_weights_alone(
        tmp_path, fake_mnist_dir, monkeypatch):
    from utils.runs.model_config import ModelConfig
    from utils.runs.spec import RunSpec
    from utils.training import run

    def config(model_dir):
        spec = RunSpec("mnist", ModelConfig(version=1, n=1), "mom", 0.01, 20)
        return run.RunConfig(run=spec, epochs=1, train_size=20, test_size=20, augment=False,
                             data_dir=str(fake_mnist_dir), model_dir=str(model_dir), verbose=0)

    alone = run.train(config(tmp_path / "alone")).weights_digest
    fit, refused = run._fit_or_interrupted, []

    def fit_after_a_refused_second_training(trainer, run_dir, *args, **kwargs):
        before = tree(run_dir)
        with pytest.raises(UsageError, match="another training is writing into"):
            run.train(config(tmp_path / "both"))
        refused.append(tree(run_dir) == before)
        fit(trainer, run_dir, *args, **kwargs)

    monkeypatch.setattr(run, "_fit_or_interrupted", fit_after_a_refused_second_training)
    both = run.train(config(tmp_path / "both")).weights_digest
    assert refused == [True] and both == alone
