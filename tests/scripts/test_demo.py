"""The README's main job runs end to end (on tiny generated data here)."""
import json

import pytest

from scripts import demo

pytestmark = pytest.mark.slow  # end to end: starts entry scripts


def test_demo_writes_summary(tmp_path, fake_mnist_dir, capsys):
    out = tmp_path / "runs"
    code = demo.main(["--dataset=mnist", f"--data_dir={fake_mnist_dir}", f"--out_dir={out}",
                      "--epochs=1", "--train_size=60", "--test_size=40", "--verbose=0",
                      "--attack_examples=20", "--aa_iter=2"])
    assert code == 0
    rows = json.loads((out / "summary.json").read_text())
    assert [r["model"] for r in rows] == ["SCE", "MMC-10"]
    assert all(0.0 <= r["clean_accuracy"] <= 1.0 for r in rows)
    assert [r["objective"] for r in rows] == ["ce", "mmc_un1"]
    assert all(0.0 <= r["pgd10_un_eps16"] <= 1.0 for r in rows)
    # The cascade never leaves more than the clean accuracy on the attacked images, and
    # APGD-T uses the targeted counterpart of each model's objective.
    for r in rows:
        for eps in (8, 16):
            assert 0.0 <= r[f"autoattack_un_eps{eps}"] <= r["attack_clean_accuracy"]
            assert r[f"pgd10_un_eps{eps}"] <= r["attack_clean_accuracy"]
    assert [r["cascade_objectives"] for r in rows] == ["ce,dlr_targeted", "mmc_un1,mmc_tar1"]
    assert (out / "summary.csv").read_text().startswith("model,")
    assert "MMC-10" in capsys.readouterr().out


def _guarded(argv, capsys):
    """``python scripts/demo.py ARGS``: (exit status, stderr)."""
    with pytest.raises(SystemExit) as exc:
        demo.call_guarded(lambda: demo.main(argv))
    return exc.value.code, capsys.readouterr().err


def test_demo_missing_data_is_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = _guarded(["--dataset=cifar10", f"--data_dir={empty}",
                          f"--out_dir={tmp_path / 'out'}"], capsys)
    assert code == 2 and "data_batch_1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_demo_impossible_sizes_are_exit_2(tmp_path, capsys):
    for flag in ("--aa_iter=0", "--epochs=0", "--attack_examples=-1", "--epochs=x"):
        code, err = _guarded([flag, f"--out_dir={tmp_path}"], capsys)
        assert code == 2
        assert flag.split("=")[0] in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


def test_demo_sizes_checked_against_the_data_before_training(tmp_path, fake_mnist_dir, capsys):
    code, err = _guarded(["--dataset=mnist", f"--data_dir={fake_mnist_dir}",
                          f"--out_dir={tmp_path / 'out'}", "--train_size=60", "--test_size=40",
                          "--attack_examples=41"], capsys)
    assert code == 2 and "--attack_examples=41 exceeds the 40 test images" in err, err
    assert not (tmp_path / "out").exists()
