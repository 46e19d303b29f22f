"""Unit tests for engine.health: named CEL rules and Lua scripts over live objects."""

from __future__ import annotations

from typing import Any

import pytest

from engine import api, errors, health
from engine.model import healthcheck, types

DEPLOYMENT_READY = "resource.status.availableReplicas == resource.spec.replicas"
DAEMONSET_READY = (
    "resource.status.desiredNumberScheduled == 0 || "
    "resource.status.numberReady == resource.status.desiredNumberScheduled"
)
STATE_READY = "has(resource.status.state) && resource.status.state == 'ready'"
LUA_READY = """
function evaluate()
  local hs = {healthy = false, message = "available replicas not matching requested replicas"}
  if obj.status and obj.status.availableReplicas == obj.spec.replicas then
    hs.healthy = true
  end
  return hs
end
"""


def check(*rules: str | tuple[str, str], kind: str = "Deployment",
          script: str = "") -> types.HealthCheck:
    """A check with `rules` (bare expressions are named rule-1, rule-2, ...)."""
    named = [rule if isinstance(rule, tuple) else (f"rule-{i + 1}", rule)
             for i, rule in enumerate(rules)]
    return types.HealthCheck(
        name=f"{kind.lower()}-ready", group="apps", version="v1", kind=kind, script=script,
        evaluate_cel=tuple(healthcheck.CelRule(name=n, rule=r) for n, r in named),
    )


def obj(
    name: str, *, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "gpu-operator"},
        "spec": spec or {},
    }
    if status is not None:
        body["status"] = status
    return body


def deployment(name: str, replicas: int, available: int | None) -> dict[str, Any]:
    status = {} if available is None else {"availableReplicas": available}
    return obj(name, spec={"replicas": replicas}, status=status)


class TestEvaluate:
    """Every matched object must pass; none matched or an error means unhealthy."""

    @pytest.mark.parametrize(
        ("expression", "objects", "healthy"),
        [
            (DEPLOYMENT_READY, [deployment("a", 2, 2)], True),
            (DEPLOYMENT_READY, [deployment("a", 2, 1)], False),
            (DAEMONSET_READY, [obj("d", status={"desiredNumberScheduled": 0})], True),
            (
                DAEMONSET_READY,
                [obj("d", status={"desiredNumberScheduled": 3, "numberReady": 3})],
                True,
            ),
            (
                DAEMONSET_READY,
                [obj("d", status={"desiredNumberScheduled": 3, "numberReady": 2})],
                False,
            ),
            (STATE_READY, [obj("p", status={"state": "ready"})], True),
            (STATE_READY, [obj("p", status={"state": "notReady"})], False),
            (STATE_READY, [obj("p", status={})], False),
            (DEPLOYMENT_READY, [deployment("a", 1, 1), deployment("b", 3, 3)], True),
        ],
    )
    def test_verdicts(self, expression: str, objects: list[dict[str, Any]], healthy: bool) -> None:
        assert health.evaluate(check(expression), objects).healthy is healthy

    def test_one_failing_object_fails_the_check(self) -> None:
        objects = [deployment("a", 1, 1), deployment("b", 3, 0), deployment("c", 3, 1)]
        result = health.evaluate(check(DEPLOYMENT_READY), objects)
        assert not result.healthy
        assert "Deployment gpu-operator/b is not healthy yet" in result.message
        assert "(and 1 more)" in result.message

    def test_no_objects(self) -> None:
        result = health.evaluate(check(DEPLOYMENT_READY, kind="DaemonSet"), [])
        assert result == health.HealthResult(
            healthy=False, message="daemonset-ready: no DaemonSet matched"
        )

    def test_status_not_populated_yet(self) -> None:
        result = health.evaluate(check(DEPLOYMENT_READY), [deployment("a", 1, None)])
        assert not result.healthy
        assert "could not evaluate rule-1" in result.message
        assert "availableReplicas" in result.message

    def test_non_bool_result(self) -> None:
        result = health.evaluate(check("resource.spec.replicas"), [deployment("a", 1, 1)])
        assert not result.healthy and "not a bool" in result.message

    def test_compile_error_names_the_rule(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            health.evaluate(check("true", "resource.status.("), [obj("a")],
                            field="spec.validateHealths[2]")
        assert caught.value.reason == "InvalidHealthCheck"
        assert caught.value.field == "spec.validateHealths[2].evaluateCEL[1].rule"

    def test_compile_error_even_without_objects(self) -> None:
        with pytest.raises(errors.SpecError):
            health.evaluate(check("=="), [])

    def test_healthy_message_names_the_deciding_rule(self) -> None:
        objects = [deployment(n, 1, 1) for n in "ab"]
        assert health.evaluate(check(("available", DEPLOYMENT_READY)), objects).message == (
            "deployment-ready: 2 Deployment objects healthy (rule available)"
        )

    def test_one_object_is_named(self) -> None:
        result = health.evaluate(check(("available", DEPLOYMENT_READY)), [deployment("a", 1, 1)])
        assert result.message == "deployment-ready: Deployment gpu-operator/a healthy" \
            " (rule available)"

    def test_object_is_an_alias_of_resource(self) -> None:
        rule = "object.status.availableReplicas == resource.spec.replicas"
        assert health.evaluate(check(rule), [deployment("a", 2, 2)]).healthy

    def test_neither_rules_nor_script_only_needs_the_objects(self) -> None:
        assert health.evaluate(check(), [obj("a")]) == health.HealthResult(
            healthy=True, message="deployment-ready: Deployment gpu-operator/a healthy")
        assert not health.evaluate(check(), []).healthy


class TestRuleOrder:
    """Sveltos' evaluateCEL: in order, the first rule that returns true decides."""

    SCALED_DOWN = ("scaled-down", "resource.spec.replicas == 0")
    AVAILABLE = ("available", DEPLOYMENT_READY)

    def test_first_true_rule_decides(self) -> None:
        result = health.evaluate(check(self.SCALED_DOWN, self.AVAILABLE),
                                 [deployment("a", 0, 0)])
        assert result.healthy and result.message.endswith("(rule scaled-down)")

    def test_a_later_rule_can_decide(self) -> None:
        result = health.evaluate(check(self.SCALED_DOWN, self.AVAILABLE),
                                 [deployment("a", 2, 2)])
        assert result.healthy and result.message.endswith("(rule available)")

    def test_several_deciders_are_counted(self) -> None:
        objects = [deployment("a", 0, 0), deployment("b", 2, 2), deployment("c", 3, 3)]
        result = health.evaluate(check(self.SCALED_DOWN, self.AVAILABLE), objects)
        assert result.message.endswith("(rules available: 2, scaled-down: 1)")

    def test_none_true_is_unhealthy_and_names_the_rules(self) -> None:
        result = health.evaluate(check(self.SCALED_DOWN, self.AVAILABLE),
                                 [deployment("a", 2, 1)])
        assert not result.healthy
        assert "no rules returned true: scaled-down, available" in result.message

    def test_a_failing_rule_is_skipped(self) -> None:
        # The first rule cannot be evaluated (no status yet); the second still decides.
        rules = ("has-status", "resource.status.availableReplicas >= 0"), self.SCALED_DOWN
        result = health.evaluate(check(*rules), [deployment("a", 0, None)])
        assert result.healthy and result.message.endswith("(rule scaled-down)")

    def test_a_true_rule_stops_evaluation(self) -> None:
        # The second rule would fail to evaluate; it is never reached.
        rules = ("always", "true"), ("broken", "resource.nothing.here")
        result = health.evaluate(check(*rules), [obj("a")])
        assert result.healthy and "could not evaluate" not in result.message


class TestScript:
    """A Lua `script` runs first, with Sveltos' contract; then the CEL rules."""

    def test_healthy_and_unhealthy(self) -> None:
        assert health.evaluate(check(script=LUA_READY), [deployment("a", 2, 2)]).healthy
        result = health.evaluate(check(script=LUA_READY), [deployment("a", 2, 1)])
        assert not result.healthy
        assert result.message == ("deployment-ready: Deployment gpu-operator/a is not healthy:"
                                  " available replicas not matching requested replicas")

    def test_script_and_rules_must_both_pass(self) -> None:
        both = check(("scaled-down", "resource.spec.replicas == 0"), script=LUA_READY)
        assert health.evaluate(both, [deployment("a", 0, 0)]).healthy
        result = health.evaluate(both, [deployment("a", 2, 2)])  # Lua yes, CEL no
        assert not result.healthy and "no rule returned true: scaled-down" in result.message
        result = health.evaluate(both, [deployment("a", 0, 1)])  # CEL yes, Lua no
        assert not result.healthy and "available replicas not matching" in result.message

    def test_a_failing_script_is_unhealthy_with_the_reason(self) -> None:
        failing = check(script="function evaluate() return obj.status.nothing.here end")
        result = health.evaluate(failing, [deployment("a", 1, 1)])
        assert not result.healthy
        assert "Deployment gpu-operator/a cannot be judged: health script failed" in \
            result.message

    def test_a_script_out_of_time_is_not_run_on_the_other_objects(self) -> None:
        slow = check(script="function evaluate() while true do end end")
        result = health.evaluate(slow, [deployment(n, 1, 1) for n in "abc"])
        assert not result.healthy
        assert result.message == ("deployment-ready: Deployment gpu-operator/a cannot be judged:"
                                  " health script ran longer than 1s and was stopped;"
                                  " 2 more Deployment not judged")

    def test_a_long_message_is_cut(self) -> None:
        chatty = check(script="function evaluate() return {message = ('x'):rep(10000)} end")
        result = health.evaluate(chatty, [deployment("a", 1, 1)])
        assert not result.healthy and len(result.message) < 1200

    def test_syntax_error_is_a_spec_error(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            health.evaluate(check(script="function evaluate( end"), [],
                            field="spec.validateHealths[0]")
        assert caught.value.field == "spec.validateHealths[0].script"
        assert caught.value.reason == "InvalidHealthCheck"


def job(digest: str = "d1", *, conditions: tuple[tuple[str, str], ...] = (),
        created: str = "2026-01-01T00:00:00Z", deleting: bool = False,
        active: int = 1) -> dict[str, Any]:
    """A live Job; `conditions` are (type, lastTransitionTime) pairs with status True."""
    metadata: dict[str, Any] = {"name": "smoke", "namespace": "ns", "creationTimestamp": created,
                                "annotations": {api.JOB_CHECK_DIGEST_ANNOTATION: digest}}
    if deleting:
        metadata["deletionTimestamp"] = created
    return {"metadata": metadata, "status": {"active": active, "conditions": [
        {"type": kind, "status": "True", "lastTransitionTime": at, "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}
        for kind, at in conditions]}}


START = 1767225600.0  # 2026-01-01T00:00:00Z


class TestJobStep:
    """A jobCheck: one run per revision, judged by the Job's Complete/Failed condition."""

    def step(self, live: dict[str, Any] | None, *, after: float = 10.0,
             timeout: float = 300.0) -> tuple[health.JobStep, str]:
        return health.job_step(live, digest="d1", now=START + after, timeout=timeout)

    def test_no_job_is_created(self) -> None:
        assert self.step(None) == (health.JobStep.CREATE, "started")

    def test_running(self) -> None:
        assert self.step(job()) == (health.JobStep.WAIT, "is running (1 active pod)")

    def test_complete_passes(self) -> None:
        assert self.step(job(conditions=(("Complete", "2026-01-01T00:00:05Z"),)))[0] is \
            health.JobStep.PASSED

    def test_failed_says_why_then_runs_again_a_minute_later(self) -> None:
        failed = job(conditions=(("Failed", "2026-01-01T00:00:05Z"),))
        step, said = self.step(failed, after=30)
        assert step is health.JobStep.FAILED
        assert said == "failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
        assert self.step(failed, after=5 + health.RETRY_AFTER)[0] is health.JobStep.RETRY

    def test_a_job_of_another_revision_is_replaced(self) -> None:
        assert self.step(job(digest="d0"))[0] is health.JobStep.REPLACE
        # Even a completed one: it validated something else.
        assert self.step(job("d0", conditions=(("Complete", "2026-01-01T00:00:05Z"),)))[0] \
            is health.JobStep.REPLACE

    def test_past_its_timeout_it_runs_again(self) -> None:
        step, said = self.step(job(), after=121, timeout=120)
        assert step is health.JobStep.RETRY and "did not finish within 120s" in said

    def test_a_job_being_deleted_is_waited_for(self) -> None:
        assert self.step(job(deleting=True))[0] is health.JobStep.WAIT

    def test_outside_a_profile_it_cannot_run(self) -> None:
        check = types.HealthCheck.from_dict({
            "name": "smoke", "featureID": "Helm",
            "jobCheck": {"jobRef": {"kind": "ConfigMap", "namespace": "a", "name": "b"}}})
        assert check.job_check is not None and check.job_check.timeout == 300.0
        assert not health.evaluate(check, []).healthy


class TestWorst:
    """worst() is unhealthy when any result is, and keeps every failure message."""

    OK = health.HealthResult(healthy=True, message="a: ok")
    BAD = health.HealthResult(healthy=False, message="b: not yet")
    WORSE = health.HealthResult(healthy=False, message="c: no Pod matched")

    @pytest.mark.parametrize(
        ("results", "expected"),
        [
            ([], health.HealthResult(healthy=True, message="")),
            ([OK], OK),
            ([OK, OK], health.HealthResult(healthy=True, message="2 health checks passed")),
            ([OK, BAD], BAD),
            (
                [BAD, OK, WORSE],
                health.HealthResult(healthy=False, message="b: not yet; c: no Pod matched"),
            ),
        ],
    )
    def test_worst(self, results: list[health.HealthResult], expected: health.HealthResult) -> None:
        assert health.worst(results) == expected

    def test_accepts_generators(self) -> None:
        assert not health.worst(r for r in [self.OK, self.BAD]).healthy
