"""Unit tests for engine.health: named CEL rules and Lua scripts over live objects."""

from __future__ import annotations

from typing import Any

import pytest

from engine import errors, health
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

    def test_syntax_error_is_a_spec_error(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            health.evaluate(check(script="function evaluate( end"), [],
                            field="spec.validateHealths[0]")
        assert caught.value.field == "spec.validateHealths[0].script"
        assert caught.value.reason == "InvalidHealthCheck"


class TestJobCheck:
    def test_reported_as_not_supported(self) -> None:
        job = types.HealthCheck.from_dict({
            "name": "smoke", "featureID": "Helm",
            "jobCheck": {"jobRef": {"kind": "ConfigMap", "namespace": "a", "name": "b"}}})
        result = health.evaluate(job, [])
        assert not result.healthy and "jobCheck is not supported" in result.message


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
