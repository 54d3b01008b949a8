"""User-facing error types and the exit status each one ends a script with.

Entry scripts catch these, print their one-line message and exit with ``exit_status``:
:class:`UsageError` 2 (bad input a user can fix: unknown names, impossible values,
missing or mismatched files), :class:`NonFiniteError` 3 (NaN/inf loss, weights or
logits), :class:`DiskWriteError` 4 (a file could not be written: disk full, I/O error);
an interrupt (SIGINT/SIGTERM) ends with 130.

    from utils.errors import UsageError
    raise UsageError("mean_var must be > 0, got -1; pass a positive C_MM such as 10")
"""
import math

EXIT_USAGE, EXIT_NONFINITE, EXIT_IO, EXIT_INTERRUPTED = 2, 3, 4, 130


class UsageError(ValueError):
    """Bad input from the user; the message says what is wrong and what to do."""

    exit_status = EXIT_USAGE


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int when it is a whole number ``>= minimum`` (iterations, restarts,
    queries, batch sizes); :class:`UsageError` naming ``name`` otherwise."""
    try:
        whole = int(value) == value  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or value < minimum:  # type: ignore[operator]
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)  # type: ignore[call-overload]


def check_real(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float when it is finite and ``>= 0`` (``> 0`` if ``positive``):
    radii, step sizes; :class:`UsageError` naming ``name`` otherwise."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise UsageError(f"{name} must be a finite number {bound}, got {value}")
    return number


class NonFiniteError(ArithmeticError):
    """A loss, weight or logit is NaN or inf; nothing non-finite was saved."""

    exit_status = EXIT_NONFINITE


class DiskWriteError(OSError):
    """A file could not be written; the message names it and the free space. Sets of
    files written with :func:`utils.fileio.write_set` are unchanged."""

    exit_status = EXIT_IO


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM, with a message saying what was kept and how to continue."""

    exit_status = EXIT_INTERRUPTED
