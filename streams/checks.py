"""Validation of stage settings: each check returns the clean value or raises ``ValueError``.

Messages name the field, the value given and what is allowed, e.g.
``min_len must be an int >= 1 (0 given)``, so a bad config fails when the stage is built,
before any data flows.
"""

from __future__ import annotations

import math

__all__ = ["check_choice", "check_float", "check_int", "check_int_range", "check_ordered"]


def check_int(value: object, field: str, *, minimum: int = 0) -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``, else ``ValueError`` naming ``field``.

    >>> check_int(3, "chunk_size", minimum=1)
    3
    >>> check_int(0, "chunk_size", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: chunk_size must be an int >= 1 (0 given)
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an int >= {minimum} ({value!r} given)")
    return int(value)


def check_float(value: object, field: str, *, minimum: float = 0.0, maximum: float = math.inf,
                include_minimum: bool = True) -> float:
    """``value`` as a finite float in ``[minimum, maximum]`` (or ``(minimum, maximum]``).

    >>> check_float(0.5, "level_min")
    0.5
    >>> check_float(-1, "level_min")
    Traceback (most recent call last):
    ...
    ValueError: level_min must be a number >= 0.0 (-1 given)
    """
    low = ">=" if include_minimum else ">"
    allowed = f"{low} {minimum}" if maximum == math.inf else f"{low} {minimum} and <= {maximum}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field} must be a number {allowed} ({value!r} given)")
    if value < minimum or (value == minimum and not include_minimum) or value > maximum:
        raise ValueError(f"{field} must be a number {allowed} ({value!r} given)")
    return float(value)


def check_ordered(low: float, high: float, low_field: str, high_field: str) -> None:
    """``ValueError`` unless ``low <= high``.

    >>> check_ordered(2, 1, "min_len", "max_len")
    Traceback (most recent call last):
    ...
    ValueError: min_len must be <= max_len (min_len=2, max_len=1 given)
    """
    if low > high:
        raise ValueError(f"{low_field} must be <= {high_field} ({low_field}={low!r}, {high_field}={high!r} given)")


def check_int_range(value: object, field: str) -> tuple[int, int]:
    """An inclusive ``(low, high)`` pair of ints ``0 <= low <= high`` from a 2-item list or tuple.

    >>> check_int_range([10, 30], "freq_width")
    (10, 30)
    >>> check_int_range((3, 1), "freq_width")
    Traceback (most recent call last):
    ...
    ValueError: freq_width must be an int >= 0 or a pair [low, high] of ints with 0 <= low <= high ((3, 1) given)
    """
    message = f"{field} must be an int >= 0 or a pair [low, high] of ints with 0 <= low <= high ({value!r} given)"
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(message)
    low, high = value
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (low, high)) or not 0 <= low <= high:
        raise ValueError(message)
    return int(low), int(high)


def check_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``.

    >>> check_choice("mean", "fill", ("zero", "mean"))
    'mean'
    >>> check_choice("avg", "fill", ("zero", "mean"))
    Traceback (most recent call last):
    ...
    ValueError: fill must be one of 'zero', 'mean' ('avg' given)
    """
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(map(repr, choices))} ({value!r} given)")
    return str(value)
