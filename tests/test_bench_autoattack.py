"""bench/autoattack_vs_reference.py's pure parts: the case syntax and the timing summary
(medians, ratios, speed targets, determinism) its speed claims rest on."""
import numpy as np
import pytest

from bench.autoattack_vs_reference import STARTUP_TARGET, parse_case, timing


def test_cases_are_eps_in_256ths_for_linf_and_as_is_for_l2():
    assert parse_case("linf:8") == ("linf", 8 / 256, True)
    assert parse_case("l2:1") == ("l2", 1.0, True)
    assert parse_case("linf:8:plain") == ("linf", 8 / 256, False)
    for bad in ("l1:8", "linf:8:fast", "linf:abc", "l2:-1"):
        with pytest.raises(ValueError, match="bad case"):
            parse_case(bad)


def _run(seconds, process, startup, robust=(True, False)):
    return {"seconds": seconds, "process_seconds": process, "startup_seconds": startup,
            "robust": np.array(robust)}


def test_timing_takes_medians_and_the_ratio_of_medians():
    ours = [_run(10, 15, 4), _run(30, 35, 4.5), _run(11, 16, 3)]
    refs = [_run(20, 21, 1), _run(19, 20, 1), _run(90, 91, 1)]
    t = timing(ours, refs)
    assert t["repeats"] == 3 and t["ours"]["seconds"] == [10, 30, 11]
    assert t["ours"]["median_seconds"] == 11 and t["reference"]["median_seconds"] == 20
    assert t["ratio_attack"] == round(11 / 20, 3)
    assert t["ratio_end_to_end"] == round(16 / 21, 3)
    assert t["ours"]["median_startup_seconds"] == 4
    assert t["deterministic"] and t["speed_targets_met"]


def test_speed_targets_fail_on_a_slower_end_to_end_or_a_long_start_up():
    slow = timing([_run(10, 30, 2)], [_run(20, 21, 1)])
    assert slow["ratio_end_to_end"] > 1 and not slow["speed_targets_met"]
    late = timing([_run(10, 15, STARTUP_TARGET + 0.1)], [_run(20, 21, 1)])
    assert late["ratio_end_to_end"] < 1 and not late["speed_targets_met"]


def test_repeats_that_disagree_are_reported():
    t = timing([_run(1, 2, 1), _run(1, 2, 1, robust=(True, True))], [_run(2, 3, 1)] * 2)
    assert not t["deterministic"]
