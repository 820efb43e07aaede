"""Argument checks shared by every module: one message format, naming the argument and its range.

``check_int`` and ``check_real`` return the value converted to ``int``/``float`` and raise
``TypeError`` for the wrong type (``bool`` is not a number here) or ``ValueError`` for a
value outside the allowed range, e.g. ``ValueError: depth must be an int >= 1; got 0``.
"""
from __future__ import annotations

import math
from numbers import Integral, Real


def _range(low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def check_int(x, name: str, low: int | None = None, high: int | None = None) -> int:
    """``x`` as an ``int`` in ``[low, high]`` (either bound may be ``None``)."""
    rng = _range(low, high)
    if isinstance(x, bool) or not isinstance(x, Integral):
        raise TypeError(f"{name} must be an int {rng}; got {type(x).__name__}".replace("int ;", "int;"))
    if (low is not None and x < low) or (high is not None and x > high):
        raise ValueError(f"{name} must be an int {rng}; got {x}")
    return int(x)


def check_real(x, name: str, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False) -> float:
    """``x`` as a finite ``float`` in the interval given by ``low``/``high`` (open ends when ``*_open``)."""
    rng = _range(low, high, low_open, high_open)
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(f"{name} must be a real number {rng}; got {type(x).__name__}".replace("number ;", "number;"))
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite{f' ({rng})' if rng else ''}; got {v}")
    too_low = low is not None and (v <= low if low_open else v < low)
    too_high = high is not None and (v >= high if high_open else v > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be {rng}; got {v}")
    return v
