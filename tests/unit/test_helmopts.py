"""Unit tests for per-chart Helm options: parsing, merging, defaults, release plans."""

from __future__ import annotations

from typing import Any

import pytest

from engine import catalog, errors
from engine.model import types
from engine.model.helmopts import DEFAULT_TIMEOUT, HelmOptions


def opts(data: dict[str, Any]) -> HelmOptions:
    return HelmOptions.from_dict(data, field="spec.helmCharts[0].options")


def test_sveltos_names_parse() -> None:
    parsed = opts({
        "timeout": "5m0s", "wait": True, "waitForJobs": True, "atomic": True,
        "skipCRDs": True, "disableHooks": False, "skipSchemaValidation": True,
        "labels": {"team": "ml"}, "description": "by flotilla",
        "installOptions": {"createNamespace": False, "replace": False, "takeOwnership": True},
        "upgradeOptions": {"force": True, "maxHistory": 3, "cleanupOnFail": True},
        "uninstallOptions": {"keepHistory": True, "deletionPropagation": "foreground"},
        "allowCRDDeletion": True,
    })
    assert parsed.timeout == 300.0 and parsed.wait and parsed.wait_for_jobs
    assert parsed.disable_hooks is False  # said false, not "unset"
    assert parsed.install.take_ownership and parsed.install.create_namespace is False
    assert parsed.upgrade.max_history == 3 and parsed.upgrade.force
    assert parsed.uninstall.deletion_propagation == "foreground"
    assert parsed.allow_crd_deletion is True


@pytest.mark.parametrize(("data", "where"), [
    ({"timeout": "soon"}, "spec.helmCharts[0].options.timeout"),
    ({"wait": "yes"}, "spec.helmCharts[0].options.wait"),
    ({"upgradeOptions": {"maxHistory": -1}},
     "spec.helmCharts[0].options.upgradeOptions.maxHistory"),
    ({"uninstallOptions": {"deletionPropagation": "later"}},
     "spec.helmCharts[0].options.uninstallOptions.deletionPropagation"),
    ({"labels": {"a": 1}}, "spec.helmCharts[0].options.labels.a"),
])
def test_errors_name_the_field(data: dict[str, Any], where: str) -> None:
    with pytest.raises(errors.SpecError) as caught:
        opts(data)
    assert caught.value.field == where


def test_defaults_are_generous_and_keep_crds() -> None:
    resolved = HelmOptions().resolved()
    assert resolved.timeout == DEFAULT_TIMEOUT == 600.0
    assert resolved.create_namespace and resolved.replace
    assert not resolved.wait and not resolved.atomic
    assert resolved.max_history == 10
    assert not resolved.allow_crd_deletion


def test_profile_options_win_field_by_field_over_the_catalog() -> None:
    base = HelmOptions.catalog_defaults(
        {"timeout": "20m", "wait": True, "labels": {"tier": "platform", "team": "infra"},
         "upgradeOptions": {"maxHistory": 5, "force": True}}, field="spec.helmOptions")
    top = opts({"wait": False, "labels": {"team": "ml"}, "upgradeOptions": {"maxHistory": 2}})
    merged = top.over(base)
    assert merged.timeout == 1200.0  # from the catalog
    assert merged.wait is False  # the profile said false: it wins over the catalog's true
    assert merged.labels == {"tier": "platform", "team": "ml"}
    assert merged.upgrade.max_history == 2 and merged.upgrade.force is True


def test_only_a_profile_allows_crd_deletion() -> None:
    with pytest.raises(errors.SpecError) as caught:
        HelmOptions.catalog_defaults({"allowCRDDeletion": True}, field="spec.helmOptions")
    assert caught.value.field == "spec.helmOptions.allowCRDDeletion"


def test_release_plans_carry_merged_options() -> None:
    service = types.CatalogServiceSpec.from_dict({
        "releaseNamespace": "cert-manager",
        "helmOptions": {"timeout": "15m", "wait": True},
        "versions": [{"version": "1.21.1", "chart": {
            "repositoryURL": "https://charts.jetstack.io", "chartName": "cert-manager",
            "chartVersion": "v1.21.1"}}],
    }, name="cert-manager")
    spec = types.ProfileSpec.from_dict({
        "services": [{"name": "cert-manager", "options": {"atomic": True}}],
        "helmCharts": [{"chartName": "x/app", "chartVersion": "1.0.0", "releaseName": "app",
                        "releaseNamespace": "apps", "options": {"timeout": "30s"}}],
    })
    plans = {p.release_name: p for p in catalog.resolve(spec, {"cert-manager": service})}
    cm = plans["cert-manager"].options.resolved()
    assert (cm.timeout, cm.wait, cm.atomic) == (900.0, True, True)
    assert plans["app"].options.resolved().timeout == 30.0
