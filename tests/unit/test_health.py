"""Unit tests for engine.health: CEL health checks over live objects."""

from __future__ import annotations

from typing import Any

import pytest

from engine import errors, health
from engine.model import types

DEPLOYMENT_READY = "object.status.availableReplicas == object.spec.replicas"
DAEMONSET_READY = (
    "object.status.desiredNumberScheduled == 0 || "
    "object.status.numberReady == object.status.desiredNumberScheduled"
)
STATE_READY = "has(object.status.state) && object.status.state == 'ready'"


def check(expression: str, kind: str = "Deployment") -> types.HealthCheck:
    return types.HealthCheck(
        name=f"{kind.lower()}-ready", group="apps", version="v1", kind=kind, evaluate_cel=expression
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


class TestEvaluate:
    """Every matched object must pass; none matched or an error means unhealthy."""

    @pytest.mark.parametrize(
        ("expression", "objects", "healthy"),
        [
            (
                DEPLOYMENT_READY,
                [obj("a", spec={"replicas": 2}, status={"availableReplicas": 2})],
                True,
            ),
            (
                DEPLOYMENT_READY,
                [obj("a", spec={"replicas": 2}, status={"availableReplicas": 1})],
                False,
            ),
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
            (
                DEPLOYMENT_READY,
                [
                    obj("a", spec={"replicas": 1}, status={"availableReplicas": 1}),
                    obj("b", spec={"replicas": 3}, status={"availableReplicas": 3}),
                ],
                True,
            ),
        ],
    )
    def test_verdicts(self, expression: str, objects: list[dict[str, Any]], healthy: bool) -> None:
        assert health.evaluate(check(expression), objects).healthy is healthy

    def test_one_failing_object_fails_the_check(self) -> None:
        objects = [
            obj("a", spec={"replicas": 1}, status={"availableReplicas": 1}),
            obj("b", spec={"replicas": 3}, status={"availableReplicas": 0}),
            obj("c", spec={"replicas": 3}, status={"availableReplicas": 1}),
        ]
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
        result = health.evaluate(check(DEPLOYMENT_READY), [obj("a", spec={"replicas": 1})])
        assert not result.healthy
        assert "cannot be evaluated yet" in result.message and "status" in result.message

    def test_non_bool_result(self) -> None:
        result = health.evaluate(check("object.spec.replicas"), [obj("a", spec={"replicas": 1})])
        assert not result.healthy and "not a bool" in result.message

    def test_compile_error(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            health.evaluate(check("object.status.("), [obj("a")], field="spec.validateHealths[2]")
        assert caught.value.reason == "InvalidHealthCheck"
        assert caught.value.field == "spec.validateHealths[2].evaluateCEL"

    def test_compile_error_even_without_objects(self) -> None:
        with pytest.raises(errors.SpecError):
            health.evaluate(check("=="), [])

    def test_healthy_message(self) -> None:
        objects = [obj(n, spec={"replicas": 1}, status={"availableReplicas": 1}) for n in "ab"]
        assert health.evaluate(check(DEPLOYMENT_READY), objects).message == (
            "deployment-ready: 2 Deployment objects healthy"
        )


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
