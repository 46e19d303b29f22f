"""Unit tests for the pure halves of `flotilla catalog lint` on plain data.

engine.catalog_lint: values paths (values.yaml, subcharts, free-form maps,
lifted defaults, template reads) and values.schema.json; parameters over their
sample values. engine.catalog_lint_kinds: health-check kinds against rendered
objects. The charts here are small dicts shaped like the real ones.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine import catalog_lint
from engine.catalog_lint import ChartInfo, Finding
from engine.catalog_lint_kinds import health_check_findings
from engine.model import types

GPU_OPERATOR = ChartInfo(
    name="gpu-operator", version="v26.3.3",
    values={
        "driver": {"enabled": True, "version": "580.126.20"},
        "devicePlugin": {"enabled": True, "resources": {}, "args": [],
                         "config": {"create": False, "name": "", "default": "", "data": {}}},
        "nodeSelector": {},
        "hostPaths": None,
        "mig": {"strategy": "single"},
    },
    templates={"plugin_config.yaml": "{{ if .Values.devicePlugin.config.create }}",
               "operator.yaml": "{{ .Values.operator.priorityClassName }}"},
    subcharts={"node-feature-discovery": ChartInfo(
        name="node-feature-discovery", version="0.18.3",
        values={"worker": {"tolerations": []}, "master": {"replicaCount": 1}})},
)


def check(chart: ChartInfo, path: str, value: Any = "x") -> list[Finding]:
    return catalog_lint.check_path(chart, tuple(path.split(".")), value, what="p")


def severities(findings: list[Finding]) -> list[str]:
    return [finding.severity for finding in findings]


def parameter(**data: Any) -> types.CatalogParameter:
    return types.CatalogParameter.from_dict({"name": "p", **data})


class TestValuesPaths:
    @pytest.mark.parametrize(("path", "value"), [
        ("driver.version", "580"), ("devicePlugin.config.name", "ts"), ("mig.strategy", "mixed"),
        ("devicePlugin.config", {"create": True}),
        ("node-feature-discovery.worker.tolerations", [{"operator": "Exists"}]),  # a subchart's
    ])
    def test_declared_paths_pass(self, path: str, value: Any) -> None:
        assert check(GPU_OPERATOR, path, value) == []

    def test_a_missing_key_is_an_error_with_a_close_match(self) -> None:
        [finding] = check(GPU_OPERATOR, "devicePlugin.confg.name")
        assert finding.severity == "error"
        assert "devicePlugin has no key 'confg'" in finding.message
        assert "close: config" in finding.message

    def test_the_old_time_slicing_key_is_an_error(self) -> None:
        [finding] = check(GPU_OPERATOR, "timeSlicing.replicas", 4)
        assert finding == Finding("error", "p: timeSlicing.replicas is not in the chart's"
                                  " values: no top-level key 'timeSlicing'")

    @pytest.mark.parametrize(("path", "shown"), [
        ("nodeSelector.nvidia.com/gpu", "{}"),
        ("devicePlugin.config.data.any", "{}"),
        ("hostPaths.driverInstallDir", "null"),
    ])
    def test_under_a_free_form_map_is_a_note(self, path: str, shown: str) -> None:
        [finding] = check(GPU_OPERATOR, path)
        assert finding.severity == "note"
        assert f"free-form map ({shown} in values.yaml)" in finding.message

    def test_below_a_scalar_is_an_error(self) -> None:
        [finding] = check(GPU_OPERATOR, "driver.version.major")
        assert finding.severity == "error" and "driver.version is a string" in finding.message

    @pytest.mark.parametrize(("path", "value", "message"), [
        ("devicePlugin.config", "time-slicing", "to a string, but values.yaml has an object"),
        ("driver.version", {"major": 580}, "to an object, but values.yaml has a string"),
        ("devicePlugin.args", "--fail-on-init-error", "to a string, but values.yaml has an array"),
    ])
    def test_maps_lists_and_scalars_do_not_replace_each_other(
        self, path: str, value: Any, message: str
    ) -> None:
        [finding] = check(GPU_OPERATOR, path, value)
        assert finding.severity == "error" and message in finding.message

    def test_a_key_only_the_templates_read_is_a_note(self) -> None:
        [finding] = check(GPU_OPERATOR, "operator.priorityClassName")
        assert finding.severity == "note"
        assert "templates read .Values.operator.priorityClassName" in finding.message

    def test_below_a_map_the_templates_pass_on_whole_is_a_note(self) -> None:
        # istiod merges .Values.meshConfig into its mesh config: any MeshConfig field works.
        istiod = ChartInfo(name="istiod", version="1.30.3",
                           values={"meshConfig": {"enablePrometheusMerge": True}},
                           templates={"configmap.yaml": "{{- $mesh := mergeOverwrite $original\n"
                                      "  .Values.meshConfig }}"})
        [finding] = check(istiod, "meshConfig.accessLogFile")
        assert finding.severity == "note"
        assert "pass .Values.meshConfig on whole" in finding.message
        # Reading the map only in a `with` or a field chain vouches for nothing below it.
        reader = ChartInfo(name="r", version="1", values=istiod.values,
                           templates={"a.yaml": "{{ with .Values.meshConfig }}{{ .x }}{{ end }}"})
        assert severities(check(reader, "meshConfig.accessLogFile")) == ["error"]

    def test_istio_style_lifted_defaults_count_as_top_level(self) -> None:
        istiod = ChartInfo(
            name="istiod", version="1.30.3",
            values={"_internal_defaults_do_not_set": {"meshConfig": {"accessLogFile": ""}}},
            templates={"zzz_profile.yaml":
                       '{{- $_ := unset $.Values "_internal_defaults_do_not_set" }}'})
        assert check(istiod, "meshConfig.accessLogFile", "/dev/stdout") == []
        without_lift = ChartInfo(name="x", version="1", values=istiod.values)
        assert severities(check(without_lift, "meshConfig.accessLogFile")) == ["error"]

    def test_aliased_subchart_values_live_under_the_alias(self) -> None:
        chart = ChartInfo(name="p", version="1", values={}, subcharts={
            "nfd": ChartInfo(name="node-feature-discovery", version="1",
                             values={"enabled": True})})
        assert check(chart, "nfd.enabled", False) == []
        assert severities(check(chart, "node-feature-discovery.enabled", False)) == ["error"]

    def test_leaf_paths_stop_at_lists_and_empty_maps(self) -> None:
        values = {"a": {"b": 1, "c": [1, 2], "d": {}}, "e": None}
        assert dict(catalog_lint.leaf_paths(values)) == {
            ("a", "b"): 1, ("a", "c"): [1, 2], ("a", "d"): {}, ("e",): None}


# Shaped like cert-manager's: everything behind local $refs into $defs, closed objects.
SCHEMA: dict[str, Any] = {
    "$ref": "#/$defs/helm-values",
    "$defs": {
        "helm-values": {"type": "object", "additionalProperties": False, "properties": {
            "crds": {"$ref": "#/$defs/helm-values.crds"},
            "replicaCount": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "podLabels": {"type": "object"},
            "logLevel": {"type": "string", "enum": ["info", "debug"]},
        }},
        "helm-values.crds": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}, "keep": {"type": "boolean"}}},
    },
}
CERT_MANAGER = ChartInfo(name="cert-manager", version="v1.21.1",
                         values={"crds": {"enabled": False}, "podLabels": {}, "logLevel": "info"},
                         schema=SCHEMA)


class TestSchema:
    def test_valid_values_pass(self) -> None:
        assert check(CERT_MANAGER, "crds.enabled", True) == []
        assert check(CERT_MANAGER, "logLevel", "debug") == []

    def test_declared_in_the_schema_but_without_a_default_passes(self) -> None:
        assert check(CERT_MANAGER, "crds.keep", True) == []
        assert check(CERT_MANAGER, "replicaCount", 2) == []

    def test_the_wrong_type_is_an_error(self) -> None:
        [finding] = check(CERT_MANAGER, "crds.enabled", "yes")
        assert finding.severity == "error"
        assert "crds.enabled: values.schema.json wants boolean, got string 'yes'" \
            in finding.message

    def test_enum_and_any_of(self) -> None:
        [finding] = check(CERT_MANAGER, "logLevel", "trace")
        assert "allows only ['info', 'debug']" in finding.message
        assert check(CERT_MANAGER, "replicaCount", "2") == []
        assert severities(check(CERT_MANAGER, "replicaCount", 2.5)) == ["error"]

    def test_a_closed_object_refuses_unknown_keys(self) -> None:
        problems = catalog_lint.schema_problems(SCHEMA, ("crds", "install"), True)
        assert problems == ["values.schema.json allows no key 'install' at crds"]

    def test_an_open_object_accepts_anything(self) -> None:
        assert catalog_lint.schema_problems(SCHEMA, ("podLabels", "team"), "gpu") == []


class TestParameters:
    def test_sample_values(self) -> None:
        assert catalog_lint.sample_values(parameter(path="a", type="integer", default=0)) == [0, 2]
        assert catalog_lint.sample_values(parameter(path="a", type="boolean")) == [True, False]
        assert catalog_lint.sample_values(
            parameter(path="a", default="single", enum=["none", "single", "mixed"])) == [
            "single", "none", "mixed"]
        assert catalog_lint.exercised_value(parameter(path="a", type="boolean", default=True)) \
            is False

    def test_a_path_parameter_is_checked_with_each_sample(self) -> None:
        findings = catalog_lint.parameter_findings(CERT_MANAGER, parameter(
            path="logLevel", enum=["info", "debug", "trace"]))
        assert severities(findings) == ["error"]
        assert "got 'trace'" in findings[0].message

    def test_a_template_parameter_is_checked_by_the_paths_it_renders(self) -> None:
        good = parameter(type="integer", default=0, valuesTemplate=(
            "{% if value >= 2 %}devicePlugin: {config: {create: true, name: ts,"
            " data: {any: 'replicas: {{ value }}'}}}{% endif %}"))
        findings = catalog_lint.parameter_findings(GPU_OPERATOR, good)
        assert severities(findings) == ["note"]  # data.any: under the free-form data map
        bad = parameter(type="integer", default=0,
                        valuesTemplate="timeSlicing: {replicas: {{ value }}}")
        [finding] = catalog_lint.parameter_findings(GPU_OPERATOR, bad)
        assert finding.severity == "error" and "timeSlicing.replicas" in finding.message

    def test_a_template_that_never_renders_is_a_warning(self) -> None:
        idle = parameter(type="integer", default=0,
                         valuesTemplate="{% if value > 99 %}a: 1{% endif %}")
        [finding] = catalog_lint.parameter_findings(GPU_OPERATOR, idle)
        assert finding.severity == "warning" and "renders nothing" in finding.message


def health(kind: str, group: str = "apps", version: str = "v1", **extra: Any) -> types.HealthCheck:
    always = [{"name": "always", "rule": "true"}]
    return types.HealthCheck.from_dict({"name": "h", "group": group, "version": version,
                                        "kind": kind, "evaluateCEL": always, **extra})


def obj(api_version: str, kind: str, name: str, namespace: str | None = None,
        **labels: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


CLUSTER_POLICY_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterpolicies.nvidia.com"},
    "spec": {"group": "nvidia.com", "names": {"kind": "ClusterPolicy"},
             "versions": [{"name": "v1", "served": True}]},
}
RENDERED = [
    obj("apps/v1", "Deployment", "gpu-operator", "gpu-operator",
        **{"app.kubernetes.io/instance": "gpu-operator"}),
    obj("apps/v1", "DaemonSet", "nfd-worker"),
    obj("policy/v1beta1", "PodSecurityPolicy", "old"),
    CLUSTER_POLICY_CRD,
]


def kinds(check: types.HealthCheck) -> list[Finding]:
    return health_check_findings(check, RENDERED, release_namespace="gpu-operator")


class TestHealthCheckKinds:
    def test_rendered_kinds_pass(self) -> None:
        assert kinds(health("Deployment", namespace="gpu-operator", objectName="gpu-operator")) \
            == []
        # No namespace in the rendered object: helm puts it in the release namespace.
        assert kinds(health("DaemonSet", namespace="gpu-operator")) == []

    def test_a_kind_served_by_a_shipped_crd_is_a_note(self) -> None:
        assert severities(kinds(health("ClusterPolicy", group="nvidia.com"))) == ["note"]
        [finding] = kinds(health("ClusterPolicy", group="nvidia.com", version="v2"))
        assert finding.severity == "error" and "serves v1, not v2" in finding.message

    def test_a_builtin_kind_not_rendered_is_a_note(self) -> None:
        [finding] = kinds(health("StatefulSet"))
        assert finding.severity == "note" and "built-in kind" in finding.message
        assert severities(kinds(health("StatefulSet", version="v1beta2"))) == ["error"]

    def test_a_kind_the_chart_cannot_produce_is_an_error(self) -> None:
        [finding] = kinds(health("NicClusterPolicy", group="mellanox.com", version="v1alpha1"))
        assert finding.severity == "error" and "never renders this kind" in finding.message
        [finding] = kinds(health("PodSecurityPolicy", group="policy", version="v1"))
        assert finding.severity == "error" and "only as policy/v1beta1" in finding.message

    @pytest.mark.parametrize("extra", [
        {"objectName": "gpu-operator-typo"},
        {"namespace": "kube-system"},
        {"labelSelector": "app.kubernetes.io/instance=other"},
        {"labelFilters": [{"key": "app.kubernetes.io/instance", "operation": "Different",
                           "value": "gpu-operator"}]},
    ])
    def test_rendered_kind_but_no_such_object_is_a_warning(self, extra: dict[str, Any]) -> None:
        [finding] = kinds(health("Deployment", **extra))
        assert finding.severity == "warning"
        assert "rendered: gpu-operator/gpu-operator" in finding.message

    def test_label_selectors(self) -> None:
        # kubectl syntax is parsed and matched by engine.labels (tests/unit/test_labels.py).
        assert kinds(health("Deployment", labelSelector="app.kubernetes.io/instance")) == []
        assert kinds(health("Deployment", labelSelector="tier in (a, b)")) == []  # not judged
        has = [{"key": "app.kubernetes.io/instance", "operation": "Has"}]
        assert kinds(health("Deployment", labelFilters=has)) == []
