"""utils/attacks/perturbations.py: every settings class refuses each impossible value with a
one-line UsageError naming the field, and every PERTURBATIONS entry builds from its
defaults."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from utils.attacks import perturbations as p
from utils.attacks import settings as rules
from utils.attacks.ead import DECISION_RULE, EADConfig
from utils.attacks.jsma import VARIANT_RULE
from utils.errors import UsageError

# Values each rule must refuse (bools are no numbers; NaN and inf are not finite).
IMPOSSIBLE = {
    rules.COUNT: [0, -1, 1.5, True, "3", None],
    rules.POSITIVE: [0, 0.0, -1e-3, math.nan, math.inf, True, "x", None],
    rules.NONNEGATIVE: [-1e-3, -math.inf, math.nan, math.inf, True, "x", None],
    rules.EVEN: [0, 1, 3, 2.0, -2, True],
    rules.SHARE: [0, 0.0, 1.5, -0.1, math.nan, math.inf, None],
    rules.BOOL: [1, 0, "True", None],
    DECISION_RULE: ["en", "L2", "", None],
    VARIANT_RULE: ["LogProb", "papernot", "", None],
}
SETTINGS = [p.PERTURBATIONS.get(name).settings_type for name in p.PERTURBATIONS]
CASES = [(cls, f.name, bad) for cls in SETTINGS for f in dataclasses.fields(cls)
         for bad in IMPOSSIBLE[f.metadata["rule"]]]


def test_every_attack_has_its_own_settings_class():
    assert len(set(SETTINGS)) == len(SETTINGS) == 8
    assert set(p.PERTURBATIONS) == {"CarliniWagnerL2", "SPSA", "ElasticNetMethod", "DeepFool",
                                    "LBFGS", "SaliencyMapMethod", "Gaussian", "Rotation"}


@pytest.mark.parametrize("cls,field,bad", CASES,
                         ids=[f"{c.__name__}.{f}={b!r}" for c, f, b in CASES])
def test_settings_refuse_impossible_values(cls, field, bad):
    with pytest.raises(UsageError) as info:
        cls(**{field: bad})
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{cls.__name__}.{field} must be ")
    assert info.value.field == field and "got" in message


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_settings_are_frozen_and_keep_valid_values(cls):
    settings = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(settings, dataclasses.fields(cls)[0].name, 1)
    assert cls(**settings.kwargs()) == settings


def test_boundary_values_are_accepted():
    assert p.SPSASettings(eps_256=0, spsa_samples=2).eps == 0.0
    assert p.JSMASettings(gamma=1.0).gamma == 1.0
    assert p.CWSettings(confidence=0.0, binary_search_steps=np.int64(1)).confidence == 0.0
    assert EADConfig(decision_rule="L1", fista=False, beta=0.0).decision_rule == "L1"
    assert p.NoiseSettings(sigma=0).sigma == 0 and p.RotationSettings(degrees=0).degrees == 0


def _tiny_model_fn():
    import keras
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    return lambda x: model(x)


@pytest.mark.parametrize("name", list(p.PERTURBATIONS))
def test_every_entry_builds_with_default_settings(name):
    spec = p.PERTURBATIONS.get(name)
    assert spec.name == name and spec.targeting in p.TARGETING and spec.record_prefix
    assert spec.original_num_examples is None or spec.original_num_examples >= 1
    objective = "margin" if spec.takes_objective else None
    perturb = spec.build(_tiny_model_fn(), objective, spec.settings_type(),
                         np.random.default_rng(0))
    assert callable(perturb)
    if not spec.takes_objective and not spec.minimal_distortion:  # cheap: run them
        x = np.random.default_rng(1).uniform(size=(2, 4, 4, 1)).astype(np.float32)
        out = perturb(x, np.array([0, 1]), None)
        assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 1.0


def test_spec_refuses_unknown_targeting():
    with pytest.raises(ValueError, match="targeting"):
        p.PerturbationSpec("x", p.NoiseSettings, lambda *a: None, "sideways", False, False,
                           None, "x")
