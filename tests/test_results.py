"""The one evaluation record constructor."""
import pytest

from utils.results import EvalRecord

BASE = dict(script="advtest_iterative", dataset="mnist", model="m", model_fields={"run": {}},
            loss="mmc", epoch=3, adaptive=True, objective="mmc_un1",
            normalize_output_for_ball=True)


def test_record_has_outcome_identity_settings_and_provenance():
    rec = EvalRecord(**BASE, outcome={"n": 2, "adv_accuracy": 0.5},
                     settings={"eps_256": 8.0}).to_dict()
    assert list(rec)[:2] == ["n", "adv_accuracy"]
    assert rec["script"] == "advtest_iterative" and rec["run"] == {} and rec["epoch"] == 3
    assert rec["eps_256"] == 8.0
    assert {"command", "versions", "time"} <= set(rec)


def test_a_field_given_twice_is_an_error():
    with pytest.raises(ValueError, match="loss"):
        EvalRecord(**BASE, outcome={"loss": "sce"}).to_dict()
    with pytest.raises(ValueError, match="n"):
        EvalRecord(**BASE, outcome={"n": 1}, settings={"n": 2}).to_dict()

