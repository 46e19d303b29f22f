"""Unit tests for engine.errors and engine.model (types, quantities, conditions)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from engine import errors
from engine.model import conditions, healthcheck, quantities, types


class TestErrors:
    """The error hierarchy carries reason, field and retriability."""

    def test_spec_error_names_the_field(self) -> None:
        error = errors.SpecError("no such version", field="spec.services[1].version")
        assert str(error) == "spec.services[1].version: no such version"
        assert error.reason == "InvalidSpec"
        assert not error.retriable
        assert isinstance(error, errors.NonRetriableError)

    def test_custom_reason(self) -> None:
        error = errors.SpecError("x", field="spec.a", reason="VersionNotFound")
        assert error.reason == "VersionNotFound"

    def test_message_without_field(self) -> None:
        assert str(errors.NonRetriableError("broken")) == "broken"

    def test_retriable_with_delay(self) -> None:
        error = errors.RetriableError("API timeout", delay=3.5)
        assert error.retriable and error.delay == 3.5 and error.reason == "TemporaryError"

    def test_conflict_names_the_winner(self) -> None:
        error = errors.ConflictError("owned elsewhere", winner="ClusterProfile//gpu")
        assert error.winner == "ClusterProfile//gpu"
        assert error.retriable and error.reason == "Conflict"
        assert isinstance(error, errors.RetriableError)

    @pytest.mark.parametrize(
        "error",
        [
            errors.SpecError("m", field="spec.x", reason="R"),
            errors.ConflictError("m", winner="w"),
            errors.RetriableError("m", delay=1.0),
        ],
    )
    def test_pickle_round_trip(self, error: errors.FlotillaError) -> None:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert vars(copy) == vars(error)
        assert str(copy) == str(error)


class TestIntOrPercent:
    """IntOrPercent values resolve against a total, rounding percentages up (as Sveltos does)."""

    @pytest.mark.parametrize(
        ("value", "total", "expected"),
        [
            ("50%", 4, 2),
            ("30%", 2, 1),
            ("100%", 7, 7),
            ("0%", 10, 0),
            ("10%", 0, 0),
            ("1%", 1000, 10),
            ("7%", 100, 7),  # integer arithmetic: a float ceil would make it 8
            ("10%", 5, 1),
            ("25%", 100, 25),
            ("33%", 10, 4),
            (3, 10, 3),
            (-2, 10, 0),
            (20, 5, 20),
            ("4", 10, 4),
        ],
    )
    def test_parse(self, value: Any, total: int, expected: int) -> None:
        assert quantities.parse_int_or_percent(value, total) == expected

    @pytest.mark.parametrize(
        "value", ["abc", "10.5%", "%", "x%", "-5%", " 25%", True, None, 1.5, "-3"]
    )
    def test_garbage_is_a_spec_error(self, value: Any) -> None:
        with pytest.raises(errors.SpecError) as caught:
            quantities.parse_int_or_percent(value, 10, field="spec.maxUpdate")
        assert caught.value.field == "spec.maxUpdate"


class TestDuration:
    """Durations parse from Go-style strings into seconds."""

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("1h30m", 5400.0),
            ("90s", 90.0),
            ("10m", 600.0),
            ("0s", 0.0),
            ("250ms", 0.25),
            ("1.5h", 5400.0),
            ("1m30s", 90.0),
            (0, 0.0),
            (45, 45.0),
        ],
    )
    def test_parse(self, text: Any, seconds: float) -> None:
        assert quantities.parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "10", "1x", "m", "-5s", "1h 30m", None, True, -1])
    def test_garbage_is_a_spec_error(self, text: Any) -> None:
        with pytest.raises(errors.SpecError):
            quantities.parse_duration(text, field="spec.rollout.progressDeadline")

    @pytest.mark.parametrize(
        ("seconds", "text"), [(5400, "1h30m"), (90, "1m30s"), (0, "0s"), (0.25, "0.25s")]
    )
    def test_format(self, seconds: float, text: str) -> None:
        assert quantities.format_duration(seconds) == text


class TestConditions:
    """Condition helpers return new lists and keep the transition time stable."""

    def _set(self, current: list[dict[str, Any]], status: Any, now: str) -> list[dict[str, Any]]:
        return conditions.set_condition(
            current,
            type="Ready",
            status=status,
            reason="Provisioned",
            message="all good",
            observed_generation=3,
            now=now,
        )

    def test_adds_a_condition(self) -> None:
        result = self._set([], True, "t1")
        assert result == [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Provisioned",
                "message": "all good",
                "lastTransitionTime": "t1",
                "observedGeneration": 3,
            }
        ]

    def test_keeps_transition_time_when_status_unchanged(self) -> None:
        first = self._set([], "True", "t1")
        second = conditions.set_condition(
            first,
            type="Ready",
            status=True,
            reason="Other",
            message="changed",
            observed_generation=4,
            now="t2",
        )
        assert second[0]["lastTransitionTime"] == "t1"
        assert second[0]["reason"] == "Other"
        assert second[0]["observedGeneration"] == 4

    def test_moves_transition_time_when_status_changes(self) -> None:
        first = self._set([], True, "t1")
        assert self._set(first, False, "t2")[0]["lastTransitionTime"] == "t2"

    def test_does_not_mutate_and_keeps_order(self) -> None:
        other = {"type": "Progressing", "status": "False", "lastTransitionTime": "t0"}
        original = [other, {"type": "Ready", "status": "False", "lastTransitionTime": "t0"}]
        result = self._set(original, True, "t1")
        assert [c["type"] for c in result] == ["Progressing", "Ready"]
        assert original[1]["status"] == "False"
        assert result[0] is not other

    @pytest.mark.parametrize(
        ("status", "text"), [(True, "True"), (False, "False"), (None, "Unknown")]
    )
    def test_status_normalisation(self, status: Any, text: str) -> None:
        assert self._set([], status, "t")[0]["status"] == text

    def test_rejects_bad_status(self) -> None:
        with pytest.raises(ValueError):
            self._set([], "yes", "t")

    def test_get_and_is_true(self) -> None:
        current = self._set([], True, "t")
        found = conditions.get_condition(current, "Ready")
        assert found is not None and found["status"] == "True"
        assert conditions.get_condition(current, "Drifted") is None
        assert conditions.is_true(current, "Ready")
        assert not conditions.is_true(None, "Ready")


class TestProfileSpec:
    """ProfileSpec.from_dict applies defaults and names the faulty field."""

    def test_defaults(self) -> None:
        spec = types.ProfileSpec.from_dict({})
        assert spec.sync_mode is types.SyncMode.CONTINUOUS
        assert spec.tier == 100
        assert spec.max_update == "100%"
        assert spec.stop_matching_behavior is types.StopMatchingBehavior.WITHDRAW_POLICIES
        assert spec.cluster_selector is None and spec.rollout is None
        assert not spec.continue_on_conflict and not spec.continue_on_error

    def test_full_spec(self) -> None:
        spec = types.ProfileSpec.from_dict(
            {
                "clusterSelector": {
                    "matchLabels": {"gpu": "nvidia"},
                    "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}],
                },
                "clusterRefs": [{"namespace": "fleet", "name": "c1"}],
                "clusterSelectorCEL": "cluster.status.facts.gpuTotal > 0",
                "services": [{"name": "gpu-operator", "version": "^26", "parameters": {"a": 1}}],
                "helmCharts": [
                    {
                        "repositoryURL": "https://charts.example",
                        "repositoryName": "ex",
                        "chartName": "ex/app",
                        "chartVersion": "1.0.0",
                        "releaseName": "app",
                        "releaseNamespace": "apps",
                        "values": "replicas: 2",
                        "valuesFrom": [{"kind": "ConfigMap", "name": "v", "optional": True}],
                    }
                ],
                "policyRefs": [{"kind": "Secret", "namespace": "ns", "name": "p"}],
                "syncMode": "ContinuousWithDriftDetection",
                "tier": 50,
                "dependsOn": ["base"],
                "maxUpdate": 2,
                "validateHealths": [
                    {
                        "name": "ready",
                        "version": "v1",
                        "group": "apps",
                        "kind": "Deployment",
                        "featureID": "Helm",
                        "labelFilters": [{"key": "app", "operation": "Equal", "value": "web"}],
                        "evaluateCEL": [{"name": "always", "rule": "true"}],
                    }
                ],
                "driftExclusions": [
                    {"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}
                ],
                "rollout": {
                    "stages": [
                        {"name": "canary", "percent": "10%", "approval": "Manual"},
                        {"name": "rest", "minSuccessTime": "5m"},
                    ],
                    "minSuccessTime": "1m",
                    "onFailure": "Rollback",
                    "maxFailures": "10%",
                },
            }
        )
        assert spec.cluster_selector is not None
        assert spec.cluster_selector.match_expressions[0].operator is types.SelectorOperator.IN
        assert spec.cluster_refs == (types.ClusterRef(name="c1", namespace="fleet"),)
        assert spec.services[0].parameters == {"a": 1}
        assert spec.helm_charts[0].values == "replicas: 2"
        assert spec.helm_charts[0].values_from[0].optional
        assert spec.policy_refs[0].kind is types.ReferenceKind.SECRET
        assert spec.sync_mode is types.SyncMode.CONTINUOUS_WITH_DRIFT_DETECTION
        [check] = spec.validate_healths
        assert check.evaluate_cel == (healthcheck.CelRule(name="always", rule="true"),)
        assert check.feature_id is healthcheck.FeatureID.HELM
        assert check.list_selector == "app=web"
        assert spec.drift_exclusions[0].target == types.DriftExclusionTarget(kind="Deployment")
        assert spec.rollout is not None
        assert spec.rollout.stages[0].approval is types.Approval.MANUAL
        assert spec.rollout.stages[1].min_success_time == 300.0
        assert spec.rollout.min_success_time == 60.0
        assert spec.rollout.progress_deadline == 600.0
        assert spec.rollout.on_failure is types.OnFailure.ROLLBACK

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"tier": "high"}, "spec.tier"),
            ({"tier": 0}, "spec.tier"),
            ({"syncMode": "Sometimes"}, "spec.syncMode"),
            ({"services": [{"name": "a"}, {}]}, "spec.services[1].name"),
            ({"services": "gpu"}, "spec.services"),
            ({"services": [{"name": "a", "values": [1]}]}, "spec.services[0].values"),
            (
                {"helmCharts": [{"chartName": "c", "releaseName": "r", "releaseNamespace": "n"}]},
                "spec.helmCharts[0].chartVersion",
            ),
            (
                {"clusterSelector": {"matchLabels": {"gpu": True}}},
                "spec.clusterSelector.matchLabels.gpu",
            ),
            (
                {"clusterSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}},
                "spec.clusterSelector.matchExpressions[0].values",
            ),
            (
                {"clusterSelector": {"matchExpressions": [{"key": "k", "operator": "Has"}]}},
                "spec.clusterSelector.matchExpressions[0].operator",
            ),
            ({"clusterRefs": [{"namespace": "x"}]}, "spec.clusterRefs[0].name"),
            ({"maxUpdate": "lots"}, "spec.maxUpdate"),
            (
                {"rollout": {"stages": [{"name": "a", "minSuccessTime": "soon"}]}},
                "spec.rollout.stages[0].minSuccessTime",
            ),
            (
                {"rollout": {"stages": [{"name": "a", "percent": "5%", "clusterSelector": {}}]}},
                "spec.rollout.stages[0].percent",
            ),
            (
                {"rollout": {"stages": [{"name": "a"}, {"name": "a"}]}},
                "spec.rollout.stages[1].name",
            ),
            (
                {"driftExclusions": [{"paths": ["spec.replicas"]}]},
                "spec.driftExclusions[0].paths[0]",
            ),
            ({"policyRefs": [{"kind": "Deployment", "name": "x"}]}, "spec.policyRefs[0].kind"),
            ({"continueOnError": "yes"}, "spec.continueOnError"),
        ],
    )
    def test_errors_name_the_field(self, data: dict[str, Any], field: str) -> None:
        with pytest.raises(errors.SpecError) as caught:
            types.ProfileSpec.from_dict(data)
        assert caught.value.field == field
        assert field in str(caught.value)

    def test_not_an_object(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            types.ProfileSpec.from_dict(["nope"], field="spec")  # type: ignore[arg-type]
        assert caught.value.field == "spec"

    def test_nulls_mean_defaults(self) -> None:
        spec = types.ProfileSpec.from_dict({"tier": None, "services": None, "syncMode": None})
        assert (
            spec.tier == 100 and spec.services == () and spec.sync_mode is types.SyncMode.CONTINUOUS
        )

    def test_uninstall_needs_no_chart_version(self) -> None:
        chart = types.HelmChartSpec.from_dict(
            {
                "chartName": "c",
                "releaseName": "r",
                "releaseNamespace": "n",
                "helmChartAction": "Uninstall",
            }
        )
        assert (
            chart.helm_chart_action is types.HelmChartAction.UNINSTALL and chart.chart_version == ""
        )


class TestCatalogServiceSpec:
    """CatalogServiceSpec reads catalog entries with their defaults."""

    ENTRY: dict[str, Any] = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "CatalogService",
        "metadata": {"name": "gpu-operator"},
        "spec": {
            "releaseNamespace": "gpu-operator",
            "parameters": [{"name": "driverVersion", "path": "driver.version", "default": "550"}],
            "versions": [
                {
                    "version": "26.3.3",
                    "chart": {
                        "repositoryURL": "https://h",
                        "chartName": "gpu-operator",
                        "chartVersion": "v26.3.3",
                    },
                    "values": {"driver": {"enabled": True}},
                }
            ],
        },
    }

    def test_from_object_defaults_release_name(self) -> None:
        entry = types.CatalogServiceSpec.from_object(self.ENTRY)
        assert entry.name == entry.release_name == "gpu-operator"
        assert entry.parameters[0].type is types.ParameterType.STRING
        assert entry.parameters[0].has_default and entry.parameters[0].default == "550"
        assert entry.parameters[0].enum is None
        assert entry.versions[0].chart.chart_version == "v26.3.3"

    def test_needs_a_version(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            types.CatalogServiceSpec.from_dict({"releaseNamespace": "n", "versions": []}, name="x")
        assert caught.value.field == "spec.versions"

    def test_chart_fields_are_required(self) -> None:
        data = {
            "releaseNamespace": "n",
            "versions": [{"version": "1", "chart": {"chartName": "c"}}],
        }
        with pytest.raises(errors.SpecError) as caught:
            types.CatalogServiceSpec.from_dict(data, name="x")
        assert caught.value.field == "spec.versions[0].chart.repositoryURL"
