"""Unit tests for how a summary's validateHealths follow features and show in its message."""

from __future__ import annotations

from typing import Any

from engine import health
from engine.controller import deployment
from engine.model.healthcheck import FeatureID


def row(name: str, kind: str, status: str = "Provisioned", healthy: bool = True,
        ) -> dict[str, Any]:
    return {"name": name, "kind": kind, "status": status, "message": "", "healthy": healthy,
            "consecutiveFailures": 0}


ROWS = [row("web", "HelmRelease"), row("db", "HelmRelease", status="Provisioning"),
        row("ConfigMap/app/settings", "Manifests")]


class TestFeatureGate:
    """A check with featureID waits until every item of that feature is Provisioned."""

    def test_waits_for_its_feature_only(self) -> None:
        assert deployment._not_deployed(FeatureID.HELM, ROWS) == "db"
        assert deployment._not_deployed(FeatureID.RESOURCES, ROWS) == ""

    def test_no_feature_or_no_items_does_not_wait(self) -> None:
        assert deployment._not_deployed(None, ROWS) == ""
        assert deployment._not_deployed(FeatureID.KUSTOMIZE, ROWS) == ""

    def test_long_lists_are_shortened(self) -> None:
        rows = [row(f"r{i}", "Manifests", status="Failed") for i in range(5)]
        assert deployment._not_deployed(FeatureID.RESOURCES, rows) == "r0, r1, r2 and 2 more"


class TestMessage:
    """Passing checks (with their deciding rule) follow a healthy message; failing ones explain."""

    PASS = health.HealthResult(True, "web: Deployment app/web healthy (rule available)")
    FAIL = health.HealthResult(False, "lua: Deployment app/web is not healthy: 1/2 available")

    def test_healthy_summary_names_the_deciding_rules(self) -> None:
        result = deployment.conclude(deployment.Result(services=[row("web", "HelmRelease")],
                                                       checks=[self.PASS]))
        assert result.healthy and result.reason == "Provisioned"
        assert result.message == ("1 services provisioned and healthy; validateHealths web: "
                                  "Deployment app/web healthy (rule available)")

    def test_unhealthy_summary_shows_only_the_failing_checks(self) -> None:
        result = deployment.conclude(deployment.Result(
            services=[row("web", "HelmRelease")], checks=[self.PASS, self.FAIL], healthy=False))
        assert not result.healthy and result.reason == "Unhealthy"
        assert result.message == f"validateHealths {self.FAIL.message}"
        assert result.requeue_after == 2.0

    def test_unhealthy_rows_come_first(self) -> None:
        bad = row("web", "HelmRelease", healthy=False)
        bad["message"] = "0/1 ready"
        result = deployment.conclude(deployment.Result(services=[bad], checks=[self.FAIL],
                                                       healthy=False))
        assert result.message == f"web: 0/1 ready; validateHealths {self.FAIL.message}"
