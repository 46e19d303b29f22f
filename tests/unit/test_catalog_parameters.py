"""Catalog parameters that render a values fragment (valuesTemplate) instead of one path.

gpu-operator's timeSlicingReplicas is the case that needs it: the replica count
lives inside a device-plugin config file the chart takes as a string under
devicePlugin.config.data, and the chart only creates that ConfigMap with
devicePlugin.config.{create,name,default} set as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import catalog, errors
from engine.model import types

CATALOG = Path(__file__).resolve().parents[2] / "catalog"


def gpu_operator() -> types.CatalogServiceSpec:
    return types.CatalogServiceSpec.from_object(
        yaml.safe_load((CATALOG / "gpu-operator.yaml").read_text()))


def values_for(entry: types.CatalogServiceSpec, **parameters: Any) -> dict[str, Any]:
    profile = types.ProfileSpec.from_dict(
        {"services": [{"name": entry.name, "version": "26.3.3", "parameters": parameters}]})
    [plan] = catalog.resolve(profile, {entry.name: entry})
    return dict(plan.values)


def entry_with(parameter: dict[str, Any]) -> types.CatalogServiceSpec:
    return types.CatalogServiceSpec.from_dict({
        "releaseNamespace": "demo",
        "parameters": [parameter],
        "versions": [{"version": "26.3.3", "values": {"keep": 1}, "chart": {
            "repositoryURL": "https://charts.example", "chartName": "demo",
            "chartVersion": "26.3.3"}}],
    }, name="demo")


class TestTimeSlicing:
    def test_replicas_become_the_charts_own_device_plugin_config(self) -> None:
        config = values_for(gpu_operator(), timeSlicingReplicas=4)["devicePlugin"]["config"]
        assert {key: config[key] for key in ("create", "name", "default")} == {
            "create": True, "name": "time-slicing-config", "default": "any"}
        plugin_config = yaml.safe_load(config["data"]["any"])
        assert plugin_config == {"version": "v1", "sharing": {"timeSlicing": {"resources": [
            {"name": "nvidia.com/gpu", "replicas": 4}]}}}

    @pytest.mark.parametrize("replicas", [None, 0, 1])
    def test_no_sharing_leaves_the_device_plugin_alone(self, replicas: int | None) -> None:
        parameters = {} if replicas is None else {"timeSlicingReplicas": replicas}
        values = values_for(gpu_operator(), **parameters)
        assert "devicePlugin" not in values
        assert "timeSlicing" not in values  # the old key the real chart never read

    def test_service_values_still_win_over_the_fragment(self) -> None:
        profile = types.ProfileSpec.from_dict({"services": [{
            "name": "gpu-operator", "version": "26.3.3",
            "parameters": {"timeSlicingReplicas": 8},
            "values": {"devicePlugin": {"config": {"name": "my-configs"}}}}]})
        [plan] = catalog.resolve(profile, {"gpu-operator": gpu_operator()})
        assert plan.values["devicePlugin"]["config"]["name"] == "my-configs"
        assert "replicas: 8" in plan.values["devicePlugin"]["config"]["data"]["any"]

    def test_the_value_is_type_checked_before_rendering(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            values_for(gpu_operator(), timeSlicingReplicas="4")
        assert caught.value.reason == "InvalidParameter"
        assert caught.value.field == "spec.services[0].parameters.timeSlicingReplicas"


class TestValuesTemplate:
    def test_fragment_merges_over_the_version_values(self) -> None:
        entry = entry_with({"name": "size", "type": "integer", "default": 2,
                            "valuesTemplate": "a:\n  b: {{ value * 10 }}\n"})
        assert values_for(entry) == {"keep": 1, "a": {"b": 20}}
        assert values_for(entry, size=3) == {"keep": 1, "a": {"b": 30}}

    def test_a_template_that_is_not_a_mapping_is_an_error(self) -> None:
        entry = entry_with({"name": "size", "type": "integer", "valuesTemplate": "- {{ value }}"})
        with pytest.raises(errors.SpecError) as caught:
            values_for(entry, size=1)
        assert caught.value.reason == "InvalidParameter"
        assert "not a values mapping" in str(caught.value)

    def test_the_template_sees_only_the_value(self) -> None:
        entry = entry_with({"name": "size", "type": "integer",
                            "valuesTemplate": "a: {{ cluster.metadata.name }}"})
        with pytest.raises(errors.SpecError) as caught:
            values_for(entry, size=1)
        assert caught.value.reason == "TemplateError"
        assert caught.value.field == "spec.services[0].parameters.size"

    @pytest.mark.parametrize("parameter", [
        {"name": "both", "path": "a.b", "valuesTemplate": "a: 1"},
        {"name": "neither"},
    ])
    def test_exactly_one_of_path_and_template(self, parameter: dict[str, Any]) -> None:
        with pytest.raises(errors.SpecError) as caught:
            entry_with(parameter)
        assert "exactly one of path and valuesTemplate" in str(caught.value)
        assert caught.value.field == "spec.parameters[0].path"
