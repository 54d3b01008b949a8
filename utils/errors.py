"""User-facing error type.

Entry scripts catch :class:`UsageError`, print its one-line message and exit with
status 2. Library code raises it for bad input a user can fix (unknown names,
impossible values, missing or mismatched files).

    from utils.errors import UsageError
    raise UsageError("mean_var must be > 0, got -1; pass a positive C_MM such as 10")
"""


class UsageError(ValueError):
    """Bad input from the user; the message says what is wrong and what to do."""
