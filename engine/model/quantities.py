"""Parse the scalar quantities of the API: IntOrPercent values and durations.

Used by `model.types` to validate specs when they are read, and by the
rollout logic to turn `maxUpdate`, `maxFailures` and stage `percent` into
cluster counts. Pure functions; malformed input raises `errors.SpecError`
naming the field, since the controller must never crash on what users typed.
"""

from __future__ import annotations

import math
import re

from engine import errors

IntOrPercent = int | str

_PERCENT = re.compile(r"^([0-9]+)%$")
_DIGITS = re.compile(r"^[0-9]+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|h|m|s))+$")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def check_int_or_percent(value: object, *, field: str) -> IntOrPercent:
    """Return `value` unchanged if it is a valid IntOrPercent, else raise SpecError."""
    if isinstance(value, bool):
        # bool is an int subclass; `maxUpdate: true` is a typo, not 1.
        raise errors.SpecError(f"expected an integer or a percentage, got {value!r}", field=field)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (_PERCENT.match(value) or _DIGITS.match(value)):
        return value
    raise errors.SpecError(
        f"expected an integer or a percentage like '25%', got {value!r}", field=field
    )


def parse_int_or_percent(value: object, total: int, *, field: str = "spec.maxUpdate") -> int:
    """Resolve an IntOrPercent against `total`.

    Percentages round up, so "50%" of 4 is 2 and "30%" of 2 is 1: a non-zero
    percentage of a non-empty set always lets at least one member through.
    Integers are clamped to be non-negative; they are not capped at `total`
    (callers take `min` where that matters).
    """
    checked = check_int_or_percent(value, field=field)
    if isinstance(checked, int):
        return max(checked, 0)
    match = _PERCENT.match(checked)
    if match is None:
        return int(checked)
    # Integer arithmetic: math.ceil(total * 30 / 100) would work here too,
    # but floats misround large counts, and this stays exact.
    return -(-max(total, 0) * int(match.group(1)) // 100)


def parse_duration(value: object, *, field: str = "spec.rollout.minSuccessTime") -> float:
    """Parse a Go-style duration ("1h30m", "90s", "10m", "0s", "250ms") into seconds.

    A bare non-negative number is taken as seconds, since YAML turns an
    unquoted `0` into an int.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise errors.SpecError(f"duration must be non-negative, got {value!r}", field=field)
        return float(value)
    if not isinstance(value, str) or not _DURATION.match(value):
        raise errors.SpecError(
            f"expected a duration like '90s', '10m' or '1h30m', got {value!r}", field=field
        )
    return sum(
        float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(value)
    )


def format_duration(seconds: float) -> str:
    """Render seconds back in the API's duration syntax ("1h30m", "90s" → "1m30s")."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"
