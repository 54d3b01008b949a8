"""utils/cli/common.py: one-line errors with their exit status, and a failed run's garbage
collected before the exit (so no in-process caller pays for it later)."""
from __future__ import annotations

import gc
import weakref

import pytest

from utils.cli.common import call_guarded
from utils.errors import NonFiniteError, UsageError


class _Held:
    """Stands in for what a failed run leaves in its frames (a tf.data iterator)."""


@pytest.mark.parametrize("error, status", [(UsageError, 2), (NonFiniteError, 3),
                                           (KeyboardInterrupt, 130)])
def test_error_is_one_line_with_its_status_and_its_frames_are_collected(error, status, capsys):
    refs = []

    def main():
        held = _Held()
        held.cycle = held  # unreachable only to the garbage collector, as TF's frames are
        refs.append(weakref.ref(held))
        raise error("what went wrong")

    gc.disable()
    try:
        with pytest.raises(SystemExit) as exit_info:
            call_guarded(main)
        assert exit_info.value.code == status
        assert exit_info.value.__context__ is None  # the exit does not carry the failure
        assert refs[0]() is None  # collected by call_guarded, not by a later collection
    finally:
        gc.enable()
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_success_returns_without_exiting():
    assert call_guarded(lambda: None) is None
