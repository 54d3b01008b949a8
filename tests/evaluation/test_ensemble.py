"""The cascaded ensemble runner: presets, worst case over members, resume, bad input.

A tiny Dense net on four separable clusters (4x4x1 "images"), trained in a module
fixture; every evaluation uses a few APGD steps, so the file runs in seconds.
"""
from __future__ import annotations

import numpy as np
import pytest

from utils.evaluation import ensemble as ens
from utils.evaluation.state import ROBUST, EvalState, save_state
from utils.errors import UsageError
from conftest import cluster_data, fit_cluster_mlp
from utils.evaluation.ensemble import evaluate_ensemble, parse_members
from utils.evaluation.members import MEMBERS, PRESETS, EnsembleSettings
from utils.evaluation.stream import draw_targets

SHAPE, NUM_CLASSES = (4, 4, 1), 4


def _clusters(n, seed):
    return cluster_data(n, seed, SHAPE, NUM_CLASSES)


@pytest.fixture(scope="module")
def model_data():
    (x_train, y_train), (x, y) = _clusters(512, 0), _clusters(64, 1)
    return fit_cluster_mlp(x_train, y_train, NUM_CLASSES), x, y


def _settings(**over):
    kw = dict(eps=0.3, clip_min=-1.0, clip_max=1.0, n_iter=5, nb_iter=5, eps_iter=0.075,
              n_target_classes=3, seed=0)
    kw.update(over)
    return EnsembleSettings(**kw)


def _run(model_data, members, **over):
    model, x, y = model_data
    kw = dict(settings=_settings(), batch_size=24, progress=False)
    kw.update(over)
    return evaluate_ensemble(model, x, y, members=parse_members(members), **kw)


# ---------------------------------------------------------------- members and presets
def test_presets_name_their_members_in_autoattacks_order():
    assert PRESETS["autoattack"] == ("APGD-CE", "APGD-T", "FAB-T", "Square")
    assert PRESETS["autoattack-lite"] == ("APGD-CE", "APGD-T")
    gradient = {"FastGradientMethod", "BasicIterativeMethod", "MadryEtAl",
                "MomentumIterativeMethod"}  # advtest_iterative's attacks, by their names
    assert set(MEMBERS.names()) == {"APGD-CE", "APGD-DLR", "APGD-T", "FAB-T", "Square",
                                    "MultiTargeted"} | gradient
    assert {n for n in MEMBERS.names() if MEMBERS.get(n).attack} == gradient
    assert parse_members("APGD-CE, MultiTargeted") == ("APGD-CE", "MultiTargeted")
    assert parse_members(["MadryEtAl"]) == ("MadryEtAl",)


@pytest.mark.parametrize("spec,match", [
    ("DeepFool", "unknown ensemble member 'DeepFool'"), ("", "empty ensemble"),
    ("APGD-CE,APGD-CE", "repeat")])
def test_bad_member_lists(spec, match):
    with pytest.raises(UsageError, match=match):
        parse_members(spec)


# ---------------------------------------------------------------- worst case
@pytest.mark.slow
def test_ensemble_never_beats_its_strongest_member(model_data):
    members = ["APGD-CE", "APGD-T", "MultiTargeted"]
    alone = {m: _run(model_data, m)["adv_correct"] for m in members}
    cascade = _run(model_data, ",".join(members))
    assert cascade["adv_correct"] <= min(alone.values()), (cascade, alone)
    assert cascade["adv_correct"] < cascade["clean_correct"]  # a non-trivial case
    after = list(cascade["robust_accuracy_after"].values())
    assert all(b <= a for a, b in zip(after, after[1:]))
    assert after[-1] == cascade["adv_accuracy"]
    broken = sum(cascade["broken_by_member"].values())
    assert broken == cascade["clean_correct"] - cascade["adv_correct"]
    assert cascade["member_objectives"] == {"APGD-CE": "ce", "APGD-T": "dlr_targeted",
                                            "MultiTargeted": "margin"}


def test_eps_zero_gives_clean_accuracy(model_data):
    result = _run(model_data, "autoattack-lite", settings=_settings(eps=0.0))
    assert result["adv_accuracy"] == result["clean_accuracy"] > 0.9


def test_huge_eps_breaks_every_point(model_data):
    result = _run(model_data, "autoattack-lite",
                  settings=_settings(eps=10.0, clip_min=-10.0, clip_max=10.0))
    assert result["adv_accuracy"] <= 0.02


def test_targeted_evaluation_hits_targets(model_data):
    model, x, y = model_data
    targets = draw_targets(y, NUM_CLASSES, 0)
    result = _run(model_data, "APGD-CE", targets=targets,
                  settings=_settings(eps=10.0, clip_min=-10.0, clip_max=10.0, n_iter=10))
    assert result["targeted"] and result["target_success"] >= 0.95
    assert list(result["target_success_after"]) == ["APGD-CE"]


# ---------------------------------------------------------------- resume
def test_interrupted_run_resumes_to_the_identical_record(model_data, tmp_path, monkeypatch,
                                                         capsys):
    members = "APGD-CE,APGD-T"
    reference = _run(model_data, members)
    state_file = tmp_path / "state.npz"
    real, calls = ens.attack_batch, []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(ens, "attack_batch", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        _run(model_data, members, state_file=state_file)
    monkeypatch.setattr(ens, "attack_batch", real)
    with np.load(state_file) as saved:
        assert int(saved["next_batch"]) == 2  # 64 examples, batches of 24: 2 of 3 done
        assert (saved["broken_by"][48:] == -3).all()
    calls.clear()
    monkeypatch.setattr(ens, "attack_batch", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    capsys.readouterr()
    resumed = _run(model_data, members, state_file=state_file)
    assert f"resumed from {state_file}: 48 of 64 examples" in capsys.readouterr().out
    assert len(calls) == 1  # only the last batch was attacked again
    assert resumed == reference
    assert _run(model_data, members, state_file=state_file) == reference  # complete state
    assert len(calls) == 1


@pytest.mark.slow
def test_full_autoattack_names_its_members_and_resumes_after_an_interruption(
        model_data, tmp_path, monkeypatch):
    settings = _settings(eps=0.2, fab_n_iter=5, square_n_queries=40)
    reference = _run(model_data, "autoattack", settings=settings)
    assert reference["members"] == ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    after = list(reference["robust_accuracy_after"].values())
    assert len(after) == 4 and all(b <= a for a, b in zip(after, after[1:]))
    assert reference["member_objectives"]["Square"] == "margin"
    assert reference["adv_correct"] < reference["clean_correct"]
    real, calls = ens.attack_batch, []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill after one batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(ens, "attack_batch", crash_on_second)
    state_file = tmp_path / "aa.npz"
    with pytest.raises(KeyboardInterrupt):
        _run(model_data, "autoattack", settings=settings, state_file=state_file)
    monkeypatch.setattr(ens, "attack_batch", real)
    with np.load(state_file) as saved:
        assert int(saved["next_batch"]) == 1
    assert _run(model_data, "autoattack", settings=settings, state_file=state_file) == reference


def test_state_of_another_evaluation_is_refused(model_data, tmp_path):
    state_file = tmp_path / "state.npz"
    _run(model_data, "APGD-CE", state_file=state_file)
    with pytest.raises(UsageError, match="another evaluation .*eps"):
        _run(model_data, "APGD-CE", state_file=state_file, settings=_settings(eps=0.2))
    with pytest.raises(UsageError, match="another evaluation .*members"):
        _run(model_data, "APGD-T", state_file=state_file)
    good = state_file.read_bytes()
    for broken in (b"not an npz", good[: len(good) // 2]):  # the second: BadZipFile before
        state_file.write_bytes(broken)
        with pytest.raises(UsageError, match="unreadable or truncated"):
            _run(model_data, "APGD-CE", state_file=state_file)


def test_state_round_trip(tmp_path):
    state = EvalState.fresh(5)
    state.broken_by[:2] = [ROBUST, 0]
    state.next_batch = 1
    save_state(tmp_path / "s.npz", '{"a": 1}', state)
    loaded = ens.load_state(tmp_path / "s.npz", '{"a": 1}', 5)
    np.testing.assert_array_equal(loaded.broken_by, state.broken_by)
    assert loaded.next_batch == 1 and loaded.broken_by.dtype == np.int8


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("members,over,match", [
    ("APGD-T", dict(targets="draw"), "untargeted attack"),
    ("APGD-CE", dict(settings=dict(norm="l1")), "unknown norm"),
    ("APGD-CE", dict(settings=dict(eps=-1.0)), "eps must be"),
    ("APGD-CE", dict(settings=dict(n_iter=0)), "n_iter must be"),
    ("APGD-CE", dict(settings=dict(objective="mmc_tar1")), "needs an untargeted"),
    ("APGD-T", dict(settings=dict(targeted_objective="dlr")), "needs a targeted"),
    ("APGD-T", dict(settings=dict(n_target_classes=0)), "n_target_classes"),
    ("APGD-CE", dict(batch_size=0), "batch_size"),
    ("APGD-CE", dict(settings=dict(objective="nope")), "unknown objective"),
    ("autoattack", dict(settings=dict(square_n_queries=0)), "n_queries must be an integer >= 1"),
    ("autoattack", dict(settings=dict(fab_n_iter=0)), "FAB n_iter must be an integer >= 1"),
    ("autoattack", dict(settings=dict(norm="l1")), "unknown norm"),
    ("FAB-T", dict(targets="draw"), "untargeted attack"),
    ("Square", dict(targets="draw"), "untargeted attack")])
def test_bad_input_raises_usage_error(model_data, members, over, match):
    """Settings are built inside the check: EnsembleSettings validates itself when built
    (member-independent values), evaluate_ensemble what depends on members and model."""
    if over.get("targets") == "draw":
        over = dict(over, targets=draw_targets(model_data[2], NUM_CLASSES, 0))
    with pytest.raises(UsageError, match=match):
        if "settings" in over:
            over = dict(over, settings=_settings(**over["settings"]))
        _run(model_data, members, **over)


@pytest.mark.parametrize("over,match", [
    (dict(norm="l1"), "unknown norm"), (dict(eps=float("nan")), "eps must be"),
    (dict(eps_iter=0.0), "eps_iter must be"), (dict(nb_iter=0), "nb_iter must be"),
    (dict(num_restarts=1.5), "num_restarts must be"), (dict(n_iter=0), "n_iter must be"),
    (dict(fab_n_iter=0), "FAB n_iter"), (dict(square_n_queries=-1), "n_queries")])
def test_settings_validate_when_built(over, match):
    with pytest.raises(UsageError, match=match):
        _settings(**over)
