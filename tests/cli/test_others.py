"""utils/cli/others.py: advtest_others.py's flags map onto the chosen attack's settings,
name the flag when a value is refused, and give the records of before the registry."""
from __future__ import annotations

import dataclasses
import types

import pytest

from utils.attacks.perturbations import PERTURBATIONS
from utils.cli import others
from utils.errors import UsageError
from utils.evaluation.others_run import method_fields

UNITS = "[0,1] pixels over all pixels and channels (= mean-subtracted model units)"
# The record fields of each attack at the default flags, taken from the code before the
# attacks became registry entries (keys, values and order).
RECORDS = {
    "CarliniWagnerL2": {"CW_confidence": 0.0, "CW_binary_search_steps": 9,
                        "CW_max_iterations": 1000, "CW_learning_rate": 0.005,
                        "CW_initial_const": 0.01, "distortion_units": UNITS},
    "SPSA": {"SPSA_epsilon": 8.0, "eps": 0.03125, "SPSA_nb_iter": 10,
             "SPSA_spsa_samples": 128, "SPSA_learning_rate": 0.01, "SPSA_delta": 0.01},
    "ElasticNetMethod": {"EAD_confidence": 0.1, "EAD_learning_rate": 0.01,
                         "EAD_binary_search_steps": 1, "EAD_max_iterations": 1000,
                         "EAD_initial_const": 1.0, "EAD_beta": 0.01, "EAD_fista": True,
                         "EAD_decision_rule": "EN", "distortion_units": UNITS},
    "DeepFool": {"DeepFool_max_iter": 10, "DeepFool_nb_candidate": 1,
                 "DeepFool_overshoot": 0.02, "distortion_units": UNITS},
    "LBFGS": {"LBFGS_binary_search_steps": 1, "LBFGS_max_iterations": 100,
              "LBFGS_initial_const": 1.0, "distortion_units": UNITS},
    "SaliencyMapMethod": {"JSMA_theta": 1.0, "JSMA_gamma": 0.1, "JSMA_variant": "logprob",
                          "distortion_units": UNITS},
    "Gaussian": {"noise_sigma": 0.05},
    "Rotation": {"rotation_degrees": 30.0, "fill_mode": "nearest"},
}


def _values(**overrides):
    """The flag values at their defaults (only the ones settings_from_flags reads)."""
    values = {name: field.default for name, field in others.settings_flags()}
    values.update(attack_method="CarliniWagnerL2", objective=None, target=True,
                  adaptive=True, seed=0)
    values.update(overrides)
    return types.SimpleNamespace(**values)


def test_every_attack_has_flags_with_help_and_the_original_names():
    names = [name for name, _ in others.settings_flags()]
    assert len(names) == len(set(names)) and set(names) == set(others.HELP)
    for attack in PERTURBATIONS:  # every attack's flags carry its original's prefix
        spec = PERTURBATIONS.get(attack)
        assert all(others.flag_name(attack, f.name).startswith(spec.record_prefix + "_")
                   for f in dataclasses.fields(spec.settings_type))
    assert {"SPSA_epsilon", "SPSA_samples", "noise_sigma", "rotation_degrees",
            "EAD_decision_rule", "DeepFool_nb_candidate", "JSMA_gamma"} <= set(names)


@pytest.mark.parametrize("attack", list(RECORDS))
def test_records_are_those_of_before(attack):
    settings = others.settings_from_flags(_values(attack_method=attack), "mmc")
    fields = method_fields(settings)
    assert fields == RECORDS[attack] and list(fields) == list(RECORDS[attack])


@pytest.mark.parametrize("overrides,expected", [
    (dict(attack_method="Bogus"), "unknown attack 'Bogus'; choose one of: CarliniWagnerL2"),
    (dict(attack_method="ElasticNetMethod", EAD_confidence=-0.1),
     "EAD_confidence must be >= 0"),
    (dict(attack_method="ElasticNetMethod", EAD_decision_rule="L2"),
     "EAD_decision_rule must be EN or L1, got 'L2'"),
    (dict(attack_method="SPSA", SPSA_samples=3), "SPSA_samples must be even and >= 2, got 3"),
    (dict(attack_method="SPSA", SPSA_epsilon=float("nan")), "SPSA_epsilon must be >= 0"),
    (dict(CW_max_iterations=0), "CW_max_iterations must be >= 1"),
    (dict(attack_method="Rotation", rotation_degrees=-1.0), "rotation_degrees must be >= 0"),
    (dict(attack_method="DeepFool", objective="ce"), "--objective applies to"),
])
def test_refusals_name_the_flag(overrides, expected):
    with pytest.raises(UsageError) as info:
        others.settings_from_flags(_values(**overrides), "mmc")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_only_the_chosen_attacks_flags_are_read():
    settings = others.settings_from_flags(_values(attack_method="Gaussian",
                                                  CW_max_iterations=0), "mmc")
    assert settings.params.sigma == 0.05 and settings.objective is None


@pytest.mark.parametrize("attack,target,given,expected", [
    ("CarliniWagnerL2", True, False, True), ("SPSA", False, True, False),
    ("DeepFool", True, False, False), ("LBFGS", False, False, True),
    ("SaliencyMapMethod", True, True, True), ("Gaussian", True, False, False),
])
def test_targeted_follows_the_spec(attack, target, given, expected):
    settings = others.settings_from_flags(_values(attack_method=attack, target=target),
                                          "mmc", target_given=given)
    assert settings.targeted is expected
    assert (settings.objective is not None) == PERTURBATIONS.get(attack).takes_objective


@pytest.mark.parametrize("attack,target", [("DeepFool", True), ("Rotation", True),
                                           ("LBFGS", False), ("SaliencyMapMethod", False)])
def test_explicit_contradiction_is_refused(attack, target):
    with pytest.raises(UsageError, match="untargeted|targeted by construction"):
        others.settings_from_flags(_values(attack_method=attack, target=target), "mmc",
                                   target_given=True)


def test_objective_is_the_adaptive_one():
    assert others.settings_from_flags(_values(target=False), "mmc").objective == "mmc_un2"
    spsa = others.settings_from_flags(_values(attack_method="SPSA", adaptive=False), "mmc")
    assert spsa.objective == "ce" and spsa.targeted
    assert dataclasses.replace(spsa, seed=1).params == spsa.params
