"""When two leaf values are the same setting, as the API server would store it.

Used by `engine.drift` (the pure diff) and `engine.drift.confirm`. Pure.

The API server rewrites some values on write: resource quantities into
canonical form ("1000m" → "1", "0.5" → "500m", "1024Mi" → "1Gi"),
int-or-string fields keep whichever form was sent but mean the same, and
Go's `omitempty` drops zero values ("", 0, false) of plain fields of the
built-in kinds, so `env: [{name: X, value: ""}]` comes back without `value`.
The first two are certain and always applied; the third is a guess (a
pointer field such as `allowPrivilegeEscalation: false` keeps its zero), so
it is only used when the server itself cannot be asked (see `confirm`).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.drift.paths import Tokens

# Keys whose children are quantities (resources.limits.cpu, ResourceQuota hard, …),
# and keys that are quantities themselves.
_QUANTITY_PARENTS = frozenset(
    {
        "limits",
        "requests",
        "hard",
        "capacity",
        "overhead",
        "default",
        "defaultRequest",
        "max",
        "min",
    }
)
_QUANTITY_KEYS = frozenset({"sizeLimit", "storage"})
_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?"
)
_SUFFIX = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{
        s: Decimal(10) ** e
        for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)
    },
}


def is_quantity(tokens: Tokens) -> bool:
    """True when the leaf at `tokens` holds a resource quantity."""
    return bool(tokens) and (
        tokens[-1] in _QUANTITY_KEYS or (len(tokens) > 1 and tokens[-2] in _QUANTITY_PARENTS)
    )


def same_scalar(desired: Any, live: Any, *, quantity: bool) -> bool:
    """True when two leaf values are the same setting."""
    # bool is an int subclass: True must not equal 1.
    if isinstance(desired, bool) or isinstance(live, bool):
        return type(desired) is type(live) and desired == live
    if desired == live:
        return True
    if quantity:
        amount = parse_quantity(desired)
        return amount is not None and amount == parse_quantity(live)
    # int-or-string fields (ports, maxSurge): 8080 and "8080" are the same setting.
    if (isinstance(desired, int) and isinstance(live, str)) or (
        isinstance(desired, str) and isinstance(live, int)
    ):
        return str(desired) == str(live)
    return False


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity ("500m", "1Gi", "1e3", 2, 0.5) as an exact number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    suffix = match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number * _SUFFIX[suffix] if suffix else number


def is_zero(value: Any) -> bool:
    """True for the zero values `omitempty` drops: "", 0 and false (not null, {} or [])."""
    return value is False or value == "" or (type(value) in (int, float) and value == 0)


def built_in(api_version: str) -> bool:
    """True for the API server's own kinds, whose Go types drop zero values.

    Custom resources are stored as sent (only their schema's defaults and
    pruning apply), so a zero value there is kept and its absence is real.
    """
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")
