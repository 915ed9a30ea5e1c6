"""Checks of numeric parameters, shared by the constructors and methods that take them.

Each check returns the value it accepted, so a constructor can store it in one line
(``self.k = check_int("k", k)``), and raises one :class:`~iclkit.errors.ConfigError` that
names the parameter, the allowed range and the value given.
"""

from __future__ import annotations

from typing import Literal, overload

from iclkit.errors import ConfigError


@overload
def check_int(name: str, value: int, *, minimum: Literal[0, 1] = 0) -> int: ...


@overload
def check_int(
    name: str, value: int | None, *, minimum: Literal[0, 1] = 0, allow_none: Literal[True]
) -> int | None: ...


def check_int(
    name: str, value: int | None, *, minimum: Literal[0, 1] = 0, allow_none: bool = False
) -> int | None:
    """Validate an integer parameter that must be at least ``minimum`` and return it.

    ``minimum=0`` accepts non-negative integers (``k``, a seed), ``minimum=1`` positive ones
    (a batch size). With ``allow_none``, ``None`` (meaning "not set") is accepted too. ``bool``
    is rejected although it is an ``int`` subclass.

    Raises:
        ConfigError: if ``value`` is not an integer or is below ``minimum``, for example
            ``"k must be a non-negative integer, got -1"``.
    """
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "non-negative" if minimum == 0 else "positive"
        or_none = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be a {kind} integer{or_none}, got {value!r}")
    return value


def check_fraction(name: str, value: float, *, upper_open: bool = False) -> float:
    """Validate a number in ``[0, 1]`` (``[0, 1)`` with ``upper_open``) and return it as a float.

    Raises:
        ConfigError: if the value is outside the range or not a number.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0 <= value < 1 if upper_open else 0 <= value <= 1):
        bound = "1)" if upper_open else "1]"
        raise ConfigError(f"{name} must be a number in [0, {bound}, got {value!r}")
    return float(value)
