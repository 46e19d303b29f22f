"""Unit tests for engine.catalog: versions, values, dependencies, helmCharts."""

from __future__ import annotations

from typing import Any

import pytest

from engine import catalog, errors
from engine.model import types


def entry(
    name: str,
    versions: list[str],
    *,
    depends_on: list[str] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    values: dict[str, Any] | None = None,
    release_name: str | None = None,
) -> types.CatalogServiceSpec:
    data: dict[str, Any] = {
        "releaseNamespace": f"{name}-system",
        "dependsOn": depends_on or [],
        "parameters": parameters or [],
        "healthChecks": [
            {
                "name": "ready",
                "version": "v1",
                "group": "apps",
                "kind": "Deployment",
                "evaluateCEL": [{"name": "always", "rule": "true"}],
            }
        ],
        "versions": [
            {
                "version": version,
                "chart": {
                    "repositoryURL": f"https://charts.example/{name}",
                    "chartName": name,
                    "chartVersion": f"v{version}",
                },
                "values": values or {"image": {"tag": version}},
            }
            for version in versions
        ],
    }
    if release_name:
        data["releaseName"] = release_name
    return types.CatalogServiceSpec.from_dict(data, name=name)


CATALOG = {
    "cert-manager": entry("cert-manager", ["1.14.0", "1.15.3", "1.16.1"]),
    "istio": entry(
        "istio", ["1.21.0", "1.21.4", "1.22.1", "1.23.0-rc.1"], depends_on=["cert-manager"]
    ),
    "kserve": entry("kserve", ["0.13.0", "0.14.1"], depends_on=["istio", "cert-manager"]),
    "gpu-operator": entry(
        "gpu-operator",
        ["25.10.1", "26.3.3"],
        values={"driver": {"enabled": True, "version": "535"}, "toolkit": {"env": [1, 2]}},
        parameters=[
            {"name": "driverVersion", "path": "driver.version", "enum": ["535", "550", "560"]},
            {"name": "mig", "path": "mig.strategy", "default": "single"},
            {"name": "replicas", "path": "operator.replicas", "type": "integer"},
            {"name": "ratio", "path": "operator.ratio", "type": "number"},
            {"name": "dcgm", "path": "dcgm.enabled", "type": "boolean"},
        ],
    ),
}


def resolve(**spec: Any) -> list[catalog.ReleasePlan]:
    return catalog.resolve(types.ProfileSpec.from_dict(spec), CATALOG)


def spec_error(**spec: Any) -> errors.SpecError:
    with pytest.raises(errors.SpecError) as caught:
        resolve(**spec)
    return caught.value


class TestVersionRange:
    """The semver subset: comparators, caret, tilde, x-ranges, prereleases."""

    @pytest.mark.parametrize(
        ("expression", "version", "expected"),
        [
            (">=1.20 <2", "1.21.3", True),
            (">=1.20 <2", "2.0.0", False),
            (">=1.20 <2", "1.19.9", False),
            (">= 1.20", "1.20.0", True),
            (">1.2.3", "1.2.3", False),
            (">1.2", "1.2.9", False),
            (">1.2", "1.3.0", True),
            ("<=1.2", "1.2.9", True),
            ("<=1.2", "1.3.0", False),
            ("<1.2", "1.1.9", True),
            ("=1.2.3", "1.2.3", True),
            ("1.2", "1.2.7", True),
            ("1.x", "1.9.0", True),
            ("1.x", "2.0.0", False),
            ("^1.21", "1.99.0", True),
            ("^1.21", "1.20.9", False),
            ("^1.21", "2.0.0", False),
            ("^0.2.3", "0.2.9", True),
            ("^0.2.3", "0.3.0", False),
            ("^0.0.3", "0.0.4", False),
            ("~1.21.0", "1.21.9", True),
            ("~1.21.0", "1.22.0", False),
            ("~1", "1.9.9", True),
            ("1.0 || ^3", "3.1.0", True),
            ("1.0 || ^3", "2.0.0", False),
            ("v1.2.3", "1.2.3", True),
            ("^v1.2", "1.5.0", True),
            ("^1.2", "2.0.0-rc.1", False),
            ("^1.2", "1.3.0-rc.1", False),
            (">=2.0.0-rc.1", "2.0.0-rc.2", True),
            (">=2.0.0-rc.1", "2.0.1-rc.1", False),
            ("*", "7.0.0", True),
            ("*", "7.0.0-rc.1", False),
        ],
    )
    def test_matches(self, expression: str, version: str, expected: bool) -> None:
        parsed = catalog.Version.parse_or_none(version)
        assert parsed is not None
        assert catalog.VersionRange.parse(expression).matches(parsed) is expected

    @pytest.mark.parametrize("expression", ["abc", ">=", "1.2.3.4", "^^1", "1.0 ||", "01.2"])
    def test_garbage(self, expression: str) -> None:
        with pytest.raises(ValueError):
            catalog.VersionRange.parse(expression)

    def test_ordering(self) -> None:
        texts = [
            "1.0.0",
            "1.0.0-rc.1",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-1",
            "0.9.9",
            "1.0.0-alpha.beta",
        ]
        pairs = [(catalog.Version.parse_or_none(text), text) for text in texts]
        ordered = [text for version, text in sorted(pairs) if version is not None]
        assert ordered == [
            "0.9.9",
            "1.0.0-1",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-rc.1",
            "1.0.0",
        ]


class TestVersionPick:
    """Services pick the exact version or the highest in the range."""

    @pytest.mark.parametrize(
        ("wanted", "picked"),
        [
            ("", "1.16.1"),
            ("*", "1.16.1"),
            ("1.15.3", "1.15.3"),
            ("v1.15.3", "1.15.3"),
            ("~1.15", "1.15.3"),
            ("^1.14", "1.16.1"),
            (">=1.14 <1.16", "1.15.3"),
            ("<1.15 || >=1.16", "1.16.1"),
        ],
    )
    def test_pick(self, wanted: str, picked: str) -> None:
        plans = resolve(services=[{"name": "cert-manager", "version": wanted}])
        assert plans[0].version == picked
        assert plans[0].chart_version == f"v{picked}"

    def test_prerelease_only_when_asked(self) -> None:
        base = {"name": "cert-manager"}
        assert resolve(services=[base, {"name": "istio"}])[1].version == "1.22.1"
        exact = resolve(services=[base, {"name": "istio", "version": "1.23.0-rc.1"}])
        assert exact[1].version == "1.23.0-rc.1"

    @pytest.mark.parametrize("wanted", ["2.0.0", "^2", "not-a-version"])
    def test_not_found(self, wanted: str) -> None:
        error = spec_error(services=[{"name": "cert-manager", "version": wanted}])
        assert error.reason == "VersionNotFound"
        assert error.field == "spec.services[0].version"

    def test_unknown_service(self) -> None:
        error = spec_error(services=[{"name": "cert-manager"}, {"name": "nginx"}])
        assert error.reason == "UnknownService"
        assert error.field == "spec.services[1].name"

    def test_non_semver_catalog_newest_is_first_listed(self) -> None:
        odd = entry("odd", ["stable", "legacy"])
        spec = types.ProfileSpec.from_dict({"services": [{"name": "odd"}]})
        assert catalog.resolve(spec, {"odd": odd})[0].version == "stable"


class TestValues:
    """Values merge catalog ← parameters ← service values."""

    def gpu(self, **service: Any) -> catalog.ReleasePlan:
        return resolve(services=[{"name": "gpu-operator", **service}])[0]

    def test_catalog_values_and_parameter_defaults(self) -> None:
        plan = self.gpu()
        assert plan.values == {
            "driver": {"enabled": True, "version": "535"},
            "toolkit": {"env": [1, 2]},
            "mig": {"strategy": "single"},
        }

    def test_merge_order(self) -> None:
        plan = self.gpu(
            parameters={"driverVersion": "550", "replicas": 2, "ratio": 0.5, "dcgm": False},
            values={"driver": {"version": "560", "repo": "x"}, "toolkit": {"env": [3]}},
        )
        assert plan.values == {
            "driver": {"enabled": True, "version": "560", "repo": "x"},
            "toolkit": {"env": [3]},
            "mig": {"strategy": "single"},
            "operator": {"replicas": 2, "ratio": 0.5},
            "dcgm": {"enabled": False},
        }

    def test_catalog_is_not_mutated(self) -> None:
        self.gpu(values={"driver": {"version": "560"}}, parameters={"mig": "mixed"})
        assert CATALOG["gpu-operator"].versions[-1].values["driver"]["version"] == "535"
        assert self.gpu().values["mig"] == {"strategy": "single"}

    @pytest.mark.parametrize(
        ("parameters", "reason", "field"),
        [
            ({"nope": 1}, "UnknownParameter", "spec.services[0].parameters.nope"),
            (
                {"driverVersion": "999"},
                "InvalidParameter",
                "spec.services[0].parameters.driverVersion",
            ),
            ({"replicas": "2"}, "InvalidParameter", "spec.services[0].parameters.replicas"),
            ({"replicas": True}, "InvalidParameter", "spec.services[0].parameters.replicas"),
            ({"ratio": "x"}, "InvalidParameter", "spec.services[0].parameters.ratio"),
            ({"dcgm": 1}, "InvalidParameter", "spec.services[0].parameters.dcgm"),
            ({"mig": 5}, "InvalidParameter", "spec.services[0].parameters.mig"),
        ],
    )
    def test_parameter_errors(self, parameters: dict[str, Any], reason: str, field: str) -> None:
        error = spec_error(services=[{"name": "gpu-operator", "parameters": parameters}])
        assert (error.reason, error.field) == (reason, field)


class TestDependencies:
    """Plans come in dependency order; missing dependencies and cycles are errors."""

    def test_order(self) -> None:
        plans = resolve(services=[{"name": "kserve"}, {"name": "istio"}, {"name": "cert-manager"}])
        assert [p.name for p in plans] == ["cert-manager", "istio", "kserve"]
        assert plans[2].depends_on == ("istio", "cert-manager")
        assert plans[1].field == "spec.services[1]"

    def test_ties_keep_profile_order(self) -> None:
        plans = resolve(
            services=[{"name": "gpu-operator"}, {"name": "istio"}, {"name": "cert-manager"}],
            helmCharts=[
                {
                    "chartName": "r/a",
                    "chartVersion": "1",
                    "releaseName": "a",
                    "releaseNamespace": "n",
                }
            ],
        )
        assert [p.name for p in plans] == ["gpu-operator", "cert-manager", "istio", "a"]

    def test_missing_dependency(self) -> None:
        error = spec_error(services=[{"name": "cert-manager"}, {"name": "kserve"}])
        assert error.reason == "MissingDependency"
        assert error.field == "spec.services[1]"
        assert "istio" in error.message

    def test_cycle(self) -> None:
        cyclic = {
            "a": entry("a", ["1.0.0"], depends_on=["b"]),
            "b": entry("b", ["1.0.0"], depends_on=["a"]),
            "c": entry("c", ["1.0.0"]),
        }
        spec = types.ProfileSpec.from_dict(
            {"services": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}
        )
        with pytest.raises(errors.SpecError) as caught:
            catalog.resolve(spec, cyclic)
        assert caught.value.reason == "DependencyCycle"
        assert "a, b" in caught.value.message

    def test_depends_on_release_names(self) -> None:
        custom = {
            "base": entry("base", ["1.0.0"], release_name="base-release"),
            "app": entry("app", ["1.0.0"], depends_on=["base"]),
        }
        spec = types.ProfileSpec.from_dict({"services": [{"name": "app"}, {"name": "base"}]})
        plans = catalog.resolve(spec, custom)
        assert [p.release_name for p in plans] == ["base-release", "app"]
        assert plans[1].depends_on == ("base-release",)

    def test_duplicate_release(self) -> None:
        error = spec_error(
            services=[{"name": "istio"}, {"name": "cert-manager"}],
            helmCharts=[
                {
                    "chartName": "istio",
                    "chartVersion": "1",
                    "releaseName": "istio",
                    "releaseNamespace": "istio-system",
                }
            ],
        )
        assert error.reason == "DuplicateRelease"
        assert error.field == "spec.helmCharts[0]"


class TestHelmCharts:
    """Raw Sveltos-shaped helmCharts become release plans."""

    CHART = {
        "repositoryURL": "https://prometheus-community.github.io/helm-charts",
        "repositoryName": "prometheus-community",
        "chartName": "prometheus-community/kube-prometheus-stack",
        "chartVersion": "65.1.0",
        "releaseName": "kps",
        "releaseNamespace": "monitoring",
    }

    def chart(self, **extra: Any) -> catalog.ReleasePlan:
        (plan,) = resolve(helmCharts=[{**self.CHART, **extra}])
        return plan

    def test_shape(self) -> None:
        plan = self.chart(values={"grafana": {"enabled": False}})
        assert plan.chart_name == "kube-prometheus-stack"
        assert (plan.release_name, plan.namespace, plan.chart_version) == (
            "kps",
            "monitoring",
            "65.1.0",
        )
        assert plan.source == "helmChart" and plan.field == "spec.helmCharts[0]"
        assert plan.values == {"grafana": {"enabled": False}}
        assert not plan.uninstall and plan.values_template == ""

    def test_plain_chart_name(self) -> None:
        assert self.chart(chartName="kube-prometheus-stack").chart_name == "kube-prometheus-stack"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("grafana:\n  enabled: false\n", {"grafana": {"enabled": False}}),
            ("", {}),
            ("# none\n", {}),
        ],
    )
    def test_yaml_string_values(self, text: str, expected: dict[str, Any]) -> None:
        assert self.chart(values=text).values == expected

    def test_templated_yaml_is_kept_for_rendering(self) -> None:
        text = "cluster: {{ cluster.metadata.name }}\n"
        plan = self.chart(values=text)
        assert plan.values == {} and plan.values_template == text

    @pytest.mark.parametrize("text", ["a: [1", "- 1\n- 2\n", "just a string"])
    def test_bad_yaml_values(self, text: str) -> None:
        error = spec_error(helmCharts=[{**self.CHART, "values": text}])
        assert error.reason == "InvalidValues"
        assert error.field == "spec.helmCharts[0].values"

    def test_uninstall(self) -> None:
        chart = {key: value for key, value in self.CHART.items() if key != "chartVersion"}
        (plan,) = resolve(helmCharts=[{**chart, "helmChartAction": "Uninstall"}])
        assert plan.uninstall and plan.chart_version == ""

    def test_values_from_is_carried(self) -> None:
        plan = self.chart(valuesFrom=[{"kind": "ConfigMap", "name": "extra"}])
        assert plan.values_from == (
            types.ValuesFrom(kind=types.ReferenceKind.CONFIG_MAP, name="extra"),
        )

    def test_catalog_plan_carries_health_checks(self) -> None:
        (plan,) = resolve(services=[{"name": "cert-manager"}])
        assert plan.source == "catalog"
        assert plan.health_checks[0].kind == "Deployment"
        assert plan.repository_url == "https://charts.example/cert-manager"
