"""Health checks: named CEL rules and Lua scripts over the live objects a check selects.

Used by the ClusterSummary reconciler after a deploy (catalog `healthChecks`
and profile `validateHealths`) and by the rollout gates, which wait for
"healthy for minSuccessTime". The adapter lists the objects a check names;
this module only judges them. Pure: objects come in as plain dicts (the Lua
runner, `engine.health_lua`, embeds its own interpreter and does no I/O).

Rules (Sveltos' ValidateHealth, docs/api.md): every selected object must be
healthy, and no selected object means "not healthy yet". For one object, a
`script` runs first: its `evaluate()` must return healthy = true. Then the
`evaluateCEL` rules run in order, seeing the object as `resource` (Sveltos'
name; `object` works too): the first that returns true makes the object
healthy and is named in the message; a rule that fails to evaluate (a status
field not written yet) is skipped; none true means not healthy. A check with
neither script nor rules only asks that the objects exist. A rule that does
not compile, or a script with a syntax error, is a SpecError: no object could
ever pass. A `jobCheck` judges a Job instead: `job_step` decides, from the Job
as it is live, what the controller does next (create, wait, replace, retry)
and whether the check passed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine import api, errors, health_lua, select
from engine.model import types

REASON = "InvalidHealthCheck"
RETRY_AFTER = 60.0  # seconds a failed jobCheck Job is kept before it runs again


@dataclasses.dataclass(frozen=True, slots=True)
class HealthResult:
    healthy: bool
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Verdict:
    """One object's verdict; `rule` names the CEL rule that decided, if one did."""

    healthy: bool
    why: str = ""
    rule: str = ""
    final: bool = False  # judge no more objects (the script ran out of time)


def evaluate(
    check: types.HealthCheck,
    objects: Sequence[Mapping[str, Any]],
    *,
    field: str = "spec.validateHealths",
) -> HealthResult:
    """Judge `objects` with `check`.

    `field` is the spec path of the check ("spec.validateHealths[0]", or the
    catalog's "spec.healthChecks[1]"); a compile error names its rule or script.
    """
    if check.job_check is not None:  # judged by job_step(), on the Job the check runs
        return HealthResult(healthy=False, message=(
            f"{check.name}: a jobCheck runs only in a profile's validateHealths"))
    rules = [(rule.name, select.compile_cel(rule.rule, field=f"{field}.evaluateCEL[{i}].rule",
                                            reason=REASON))
             for i, rule in enumerate(check.evaluate_cel)]
    if check.script:
        syntax = health_lua.syntax_error(check.script)
        if syntax is not None:
            raise errors.SpecError(f"the Lua script does not compile: {syntax}",
                                   field=f"{field}.script", reason=REASON)
    if not objects:
        return HealthResult(healthy=False, message=f"{check.name}: no {check.kind} matched")
    failures: list[str] = []
    deciders: collections.Counter[str] = collections.Counter()
    unjudged = ""
    for judged, obj in enumerate(objects, start=1):
        verdict = _judge(check, rules, obj)
        if not verdict.healthy:
            failures.append(verdict.why)
        elif verdict.rule:
            deciders[verdict.rule] += 1
        if verdict.final and judged < len(objects):
            # A script that ran out of time would likely do so again on every object.
            unjudged = f"; {len(objects) - judged} more {check.kind} not judged"
            break
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return HealthResult(healthy=False,
                            message=f"{check.name}: {failures[0]}{more}{unjudged}")
    noun = _name(check, objects[0]) if len(objects) == 1 else \
        f"{len(objects)} {check.kind} objects"
    return HealthResult(healthy=True, message=f"{check.name}: {noun} healthy{_by(deciders)}")


def _judge(check: types.HealthCheck, rules: Sequence[tuple[str, select.CelProgram]],
           obj: Mapping[str, Any]) -> _Verdict:
    """One object: the script first, then the first CEL rule that returns true."""
    who = _name(check, obj)
    if check.script:
        try:
            lua = health_lua.evaluate(check.script, obj)
        except health_lua.LuaScriptError as error:
            return _Verdict(False, f"{who} cannot be judged: {error}",
                            final=isinstance(error, health_lua.LuaTimeout))
        if not lua.healthy:
            because = f": {lua.message}" if lua.message else ""
            return _Verdict(False, f"{who} is not healthy{because}")
    if not rules:
        return _Verdict(True)
    skipped: list[str] = []
    value = select.CelValue.of(obj)  # converted once for every rule
    for name, program in rules:
        try:
            if program.evaluate(variable="resource", value=value, aliases=("object",)):
                return _Verdict(True, rule=name)
        except select.CelEvaluationError as error:
            skipped.append(f"{name}: {error}")
    names = ", ".join(name for name, _ in rules)
    noun = "rule" if len(rules) == 1 else "rules"
    why = f"{who} is not healthy yet (no {noun} returned true: {names})"
    if skipped:
        why += f"; could not evaluate {'; '.join(skipped)}"
    return _Verdict(False, why)


class JobStep(enum.StrEnum):
    """What a jobCheck does next with its Job on the workload cluster."""

    CREATE = "create"  # no Job yet: create it
    REPLACE = "replace"  # a Job of an earlier revision (or manifest): delete it
    WAIT = "wait"  # running, or being deleted
    PASSED = "passed"  # Complete: healthy (and the Job is deleted, as Sveltos does)
    FAILED = "failed"  # Failed: unhealthy, the Job kept a while for inspection
    RETRY = "retry"  # failed long enough ago, or ran past its timeout: delete to run again


def job_step(live: Mapping[str, Any] | None, *, digest: str, now: float,
             timeout: float) -> tuple[JobStep, str]:
    """The next step for a jobCheck whose Job should carry `digest`, and what to say.

    `digest` names the manifest and the revision it validates: another one means the
    Job is stale. A failed Job is kept RETRY_AFTER seconds, then run again.
    """
    if live is None:
        return JobStep.CREATE, "started"
    metadata = live.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return JobStep.WAIT, "is being deleted"
    if (metadata.get("annotations") or {}).get(api.JOB_CHECK_DIGEST_ANNOTATION) != digest:
        return JobStep.REPLACE, "is from an earlier revision or manifest; replacing it"
    conditions = {c.get("type"): c for c in (live.get("status") or {}).get("conditions") or []
                  if c.get("status") == "True"}
    if "Complete" in conditions:
        return JobStep.PASSED, "completed"
    failed = conditions.get("Failed")
    if failed is not None:
        why = ": ".join(str(x) for x in (failed.get("reason"), failed.get("message")) if x)
        since = _seconds(failed.get("lastTransitionTime"))
        if since is not None and now - since >= RETRY_AFTER:
            return JobStep.RETRY, f"failed ({why}); running it again"
        return JobStep.FAILED, f"failed: {why or 'no reason given'}"
    started = _seconds(metadata.get("creationTimestamp"))
    if started is not None and now - started > timeout:
        return JobStep.RETRY, f"did not finish within {timeout:g}s; running it again"
    active = (live.get("status") or {}).get("active") or 0
    return JobStep.WAIT, f"is running ({active} active pod{'s' if active != 1 else ''})"


def _seconds(stamp: object) -> float | None:
    """An RFC 3339 timestamp as epoch seconds."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _by(deciders: collections.Counter[str]) -> str:
    """" (rule ready)", or " (rules ready: 2, progressing: 1)" when several decided."""
    if not deciders:
        return ""
    if len(deciders) == 1:
        return f" (rule {next(iter(deciders))})"
    return " (rules " + ", ".join(f"{name}: {n}" for name, n in deciders.most_common()) + ")"


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
