"""Edit Kubernetes status condition lists without mutating them.

Used by the controller when it writes the `conditions` of profiles, cluster
summaries and workload clusters. Conditions follow the metav1.Condition
shape: `type`, `status` ("True" | "False" | "Unknown"), `reason`, `message`,
`lastTransitionTime`, `observedGeneration`. The caller passes `now` so these
helpers stay pure and their results are reproducible in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"
_STATUSES = frozenset({TRUE, FALSE, UNKNOWN})


def status_of(value: bool | str | None) -> str:
    """Normalise a bool, None (unknown) or condition status string."""
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if value not in _STATUSES:
        raise ValueError(f"condition status must be True, False or Unknown, not {value!r}")
    return value


def get_condition(
    conditions: Sequence[Mapping[str, Any]] | None, type: str
) -> dict[str, Any] | None:
    """Return a copy of the condition of this `type`, or None if absent."""
    for condition in conditions or ():
        if condition.get("type") == type:
            return dict(condition)
    return None


def is_true(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> bool:
    """Whether the condition of this `type` is present with status "True"."""
    condition = get_condition(conditions, type)
    return condition is not None and condition.get("status") == TRUE


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    type: str,
    status: bool | str | None,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Return a new condition list with the condition of this `type` set.

    `lastTransitionTime` only moves when the status changes: it answers
    "since when is this Ready/not Ready", which a reason or message change
    (e.g. a progress counter) must not reset. The position of an existing
    condition is kept so status diffs stay small.
    """
    new_status = status_of(status)
    updated: list[dict[str, Any]] = []
    found = False
    for condition in conditions or ():
        if condition.get("type") != type:
            updated.append(dict(condition))
            continue
        found = True
        unchanged = condition.get("status") == new_status and condition.get("lastTransitionTime")
        updated.append(
            _condition(
                type=type,
                status=new_status,
                reason=reason,
                message=message,
                observed_generation=observed_generation,
                transition=str(condition["lastTransitionTime"]) if unchanged else now,
            )
        )
    if not found:
        updated.append(
            _condition(
                type=type,
                status=new_status,
                reason=reason,
                message=message,
                observed_generation=observed_generation,
                transition=now,
            )
        )
    return updated


def _condition(
    *,
    type: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int | None,
    transition: str,
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    return condition
