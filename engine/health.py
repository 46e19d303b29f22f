"""Health checks: CEL expressions over the live objects a release deployed.

Used by the ClusterSummary reconciler after a deploy (catalog `healthChecks`
and profile `validateHealths`) and by the rollout gates, which wait for
"healthy for minSuccessTime". The adapter lists the objects a check names;
this module only judges them. Pure: objects come in as plain dicts.

Rules (docs/api.md): the expression sees `object` and must return a bool;
every matched object must pass; no matched object means "not healthy yet".
An object the expression cannot be evaluated on (a status field not written
yet) is unhealthy, with the reason in the message, never a crash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine import select
from engine.model import types


@dataclasses.dataclass(frozen=True, slots=True)
class HealthResult:
    healthy: bool
    message: str


def evaluate(
    check: types.HealthCheck,
    objects: Sequence[Mapping[str, Any]],
    *,
    field: str = "spec.validateHealths",
) -> HealthResult:
    """Judge `objects` with `check`.

    `field` is the spec path of the check ("spec.validateHealths[0]", or the
    catalog's "spec.healthChecks[1]"); a compile error names its evaluateCEL.

    A CEL expression that does not compile raises SpecError with reason
    InvalidHealthCheck, since no object could ever pass it.
    """
    program = select.compile_cel(
        check.evaluate_cel, field=f"{field}.evaluateCEL", reason="InvalidHealthCheck"
    )
    if not objects:
        return HealthResult(healthy=False, message=f"{check.name}: no {check.kind} matched")
    failures: list[str] = []
    for obj in objects:
        try:
            if not program.evaluate(variable="object", value=obj):
                failures.append(f"{_name(check, obj)} is not healthy yet")
        except select.CelEvaluationError as error:
            failures.append(f"{_name(check, obj)} cannot be evaluated yet ({error})")
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return HealthResult(healthy=False, message=f"{check.name}: {failures[0]}{more}")
    noun = check.kind if len(objects) == 1 else f"{len(objects)} {check.kind} objects"
    return HealthResult(healthy=True, message=f"{check.name}: {noun} healthy")


def worst(results: Iterable[HealthResult]) -> HealthResult:
    """Aggregate: unhealthy if any result is, with every unhealthy message.

    No results at all is healthy: a release without checks is healthy once
    deployed.
    """
    collected = list(results)
    failing = [result.message for result in collected if not result.healthy]
    if failing:
        return HealthResult(healthy=False, message="; ".join(failing))
    if len(collected) == 1:
        return collected[0]
    return HealthResult(
        healthy=True, message=f"{len(collected)} health checks passed" if collected else ""
    )


def _name(check: types.HealthCheck, obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "?")
    return f"{check.kind} {namespace}/{name}" if namespace else f"{check.kind} {name}"
