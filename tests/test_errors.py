"""utils.errors: the one whole-number check."""
import pytest

from utils.errors import UsageError, check_count


def test_check_count():
    assert check_count("n", 3) == 3 and check_count("n", 2.0) == 2
    assert check_count("n", 0, minimum=0) == 0
    for bad in (0, -1, 1.5, "x", None, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="n must be an integer >= 1"):
            check_count("n", bad)
