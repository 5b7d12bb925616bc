"""Validation of stage settings: each check returns the clean value or raises :class:`FieldError`.

Messages name the field, the value given and what is allowed, e.g.
``min_len must be an int >= 1 (0 given)``, so a bad config fails when the stage is built,
before any data flows. The error also carries the argument's name in ``field``, so a config
layer maps it to its own path (``augmentation.crop.min_len``) without reading the message.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

__all__ = ["FieldError", "check_bool", "check_choice", "check_float", "check_float_range", "check_int",
           "check_int_range", "check_limit", "check_ordered", "check_probability", "field_errors"]


class FieldError(ValueError):
    """A bad argument value; ``field`` is the argument's name (``"min_len"``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple:  # DataLoader workers re-raise errors after pickling them
        return type(self), (self.field, str(self))


def check_int(value: object, field: str, *, minimum: int | None = 0, hint: str = "") -> int:
    """``value`` if it is an int (not a bool) ``>= minimum`` (any int for ``None``), else
    :class:`FieldError` naming ``field``; ``hint`` says why, when the bound needs a reason.

    >>> check_int(3, "chunk_size", minimum=1)
    3
    >>> check_int(0, "chunk_size", minimum=1)
    Traceback (most recent call last):
    ...
    streams.checks.FieldError: chunk_size must be an int >= 1 (0 given)
    """
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        allowed = "an int" if minimum is None else f"an int >= {minimum}"
        raise FieldError(field, f"{field} must be {allowed} ({value!r} given)" + (f"; {hint}" if hint else ""))
    return int(value)


def check_limit(value: object, field: str, *, minimum: int = 1) -> int | None:
    """``None`` (no limit) or an int ``>= minimum``: ``check_limit(None, "max_raw_frames")`` is ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FieldError(field, f"{field} must be None (no limit) or an int >= {minimum} ({value!r} given)")
    return int(value)


def check_float(value: object, field: str, *, minimum: float = 0.0, maximum: float = math.inf,
                include_minimum: bool = True) -> float:
    """``value`` as a finite float in ``[minimum, maximum]`` (or ``(minimum, maximum]``).

    >>> check_float(0.5, "level_min")
    0.5
    >>> check_float(-1, "level_min")
    Traceback (most recent call last):
    ...
    streams.checks.FieldError: level_min must be a number >= 0.0 (-1 given)
    """
    low = ">=" if include_minimum else ">"
    allowed = f"{low} {minimum}" if maximum == math.inf else f"{low} {minimum} and <= {maximum}"
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    if bad or value < minimum or (value == minimum and not include_minimum) or value > maximum:
        raise FieldError(field, f"{field} must be a number {allowed} ({value!r} given)")
    return float(value)


def check_probability(value: object, field: str = "probability") -> float:
    """``value`` as a float in [0, 1], e.g. ``probability must be between 0.0 and 1.0 (1.5 given)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise FieldError(field, f"{field} must be between 0.0 and 1.0 ({value!r} given)")
    return float(value)


def check_bool(value: object, field: str) -> bool:
    """``value`` if it is a bool (``1`` or ``"yes"`` are refused, not guessed)."""
    if not isinstance(value, bool):
        raise FieldError(field, f"{field} must be true or false ({value!r} given)")
    return value


def check_ordered(low: float, high: float, low_field: str, high_field: str) -> None:
    """:class:`FieldError` (on ``low_field``) unless ``low <= high``.

    >>> check_ordered(2, 1, "min_len", "max_len")
    Traceback (most recent call last):
    ...
    streams.checks.FieldError: min_len must be <= max_len (min_len=2, max_len=1 given)
    """
    if low > high:
        raise FieldError(low_field, f"{low_field} must be <= {high_field} "
                                    f"({low_field}={low!r}, {high_field}={high!r} given)")


def check_int_range(value: object, field: str) -> tuple[int, int]:
    """An inclusive ``(low, high)`` pair of ints ``0 <= low <= high`` from a 2-item list or tuple.

    >>> check_int_range([10, 30], "freq_width")
    (10, 30)
    >>> check_int_range((3, 1), "freq_width")
    Traceback (most recent call last):
    ...
    streams.checks.FieldError: freq_width must be an int >= 0 or a pair [low, high] of ints with 0 <= low <= high \
((3, 1) given)
    """
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value) or not 0 <= value[0] <= value[1]):
        raise FieldError(field, f"{field} must be an int >= 0 or a pair [low, high] of ints with 0 <= low <= high "
                                f"({value!r} given)")
    return int(value[0]), int(value[1])


def check_float_range(value: object, field: str, *, minimum: float = -math.inf, maximum: float = math.inf,
                      include_minimum: bool = True) -> tuple[float, float]:
    """An inclusive ``(low, high)`` pair of finite numbers, ``low <= high``, both in ``[minimum, maximum]``
    (``(minimum, maximum]`` without ``include_minimum``), from a 2-item list or tuple.

    >>> check_float_range([0.9, 1.1], "factor", minimum=0.0, include_minimum=False)
    (0.9, 1.1)
    >>> check_float_range([0, 1.1], "factor", minimum=0.0, include_minimum=False)
    Traceback (most recent call last):
    ...
    streams.checks.FieldError: factor must be a pair [low, high] of numbers with low <= high, each > 0.0 ([0, 1.1] \
given)
    """
    each = [f"{'>=' if include_minimum else '>'} {minimum}"] if minimum != -math.inf else []
    each += [f"<= {maximum}"] if maximum != math.inf else []
    message = (f"{field} must be a pair [low, high] of numbers with low <= high"
               + (f", each {' and '.join(each)}" if each else "") + f" ({value!r} given)")
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value)):
        raise FieldError(field, message)
    low, high = float(value[0]), float(value[1])
    if low > high or low < minimum or (low == minimum and not include_minimum) or high > maximum:
        raise FieldError(field, message)
    return low, high


def check_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``.

    >>> check_choice("mean", "fill", ("zero", "mean"))
    'mean'
    >>> check_choice("avg", "fill", ("zero", "mean"))
    Traceback (most recent call last):
    ...
    streams.checks.FieldError: fill must be one of 'zero', 'mean' ('avg' given)
    """
    if value not in choices:
        raise FieldError(field, f"{field} must be one of {', '.join(map(repr, choices))} ({value!r} given)")
    return str(value)


@contextlib.contextmanager
def field_errors(field: str) -> Iterator[None]:
    """Inside, a plain ``ValueError`` becomes a :class:`FieldError` on ``field`` (same message):
    for checks made by helpers that do not know which argument they were given."""
    try:
        yield
    except ValueError as err:
        if type(err) is not ValueError:  # typed errors (a FieldError, a bad sample, a bad shard) keep their type
            raise
        raise FieldError(field, str(err)) from err
