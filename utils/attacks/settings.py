"""Attack settings validated when built: each field names its rule, one base class checks
them all, and a bad value is one line (a command line can restate it under its flag).

    @dataclasses.dataclass(frozen=True)
    class MySettings(AttackSettings):
        steps: int = setting(10, COUNT)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, NamedTuple

import numpy as np

from utils.errors import UsageError


class SettingError(UsageError):
    """One settings field out of range; ``field``/``rule``/``value`` let a command line
    say it with its own flag name."""

    def __init__(self, owner: str, field: str, rule: str, value: Any) -> None:
        self.field, self.rule = field, rule
        self.shown = repr(value) if isinstance(value, str) else str(value)
        super().__init__(f"{owner}.{field} {rule}, got {self.shown}")


class Rule(NamedTuple):
    text: str
    ok: Callable[[Any], bool]


def _real(value: Any) -> float:
    """``value`` as a float (NaN when it is no number, or a bool)."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


COUNT = Rule("must be >= 1 (a whole number)", lambda v: _whole(v) and v >= 1)
POSITIVE = Rule("must be > 0 (finite)", lambda v: math.isfinite(_real(v)) and _real(v) > 0)
NONNEGATIVE = Rule("must be >= 0 (finite)",
                   lambda v: math.isfinite(_real(v)) and _real(v) >= 0)
EVEN = Rule("must be even and >= 2", lambda v: _whole(v) and v >= 2 and v % 2 == 0)
SHARE = Rule("must be in (0, 1]", lambda v: 0 < _real(v) <= 1)
BOOL = Rule("must be True or False", lambda v: isinstance(v, (bool, np.bool_)))


def setting(default: Any, rule: Rule) -> Any:
    """A dataclass field with ``default``, checked against ``rule`` when built."""
    return dataclasses.field(default=default, metadata={"rule": rule})


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """Base of the settings classes: every field is checked against its :class:`Rule`."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, rule = getattr(self, f.name), f.metadata["rule"]
            if not rule.ok(value):
                raise SettingError(type(self).__name__, f.name, rule.text, value)

    def kwargs(self) -> Dict[str, Any]:
        """The fields as the attack function's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def record_fields(self, prefix: str) -> Dict[str, Any]:
        """``{prefix}_{field}: value`` for the run's record."""
        return {f"{prefix}_{k}": v for k, v in self.kwargs().items()}
