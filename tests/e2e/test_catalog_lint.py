"""`flotilla catalog lint` against the real upstream charts, served on loopback.

The charts come from FLOTILLA_CHARTS, else ../shared/charts next to the
project; with neither the tests fail (they never skip). No fleet is needed:
the lint only pulls charts (real helm, through the chart mirror map) and runs
`helm template`. Also checks that time slicing comes out the same from the
real gpu-operator chart and from our stand-in, which the demo and the other
end-to-end tests deploy.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetkit import ROOT, bins

from engine import catalog, catalog_lint_run
from engine.devfleet.chartrepo import catalog_upstreams
from engine.model import types


def charts_folder() -> Path:
    configured = os.environ.get("FLOTILLA_CHARTS")
    folder = Path(configured) if configured else ROOT.parent / "shared" / "charts"
    if not (folder / "index.yaml").exists():
        pytest.fail(f"no real chart repository at {folder} (no index.yaml): set FLOTILLA_CHARTS"
                    " to a folder holding the upstream charts and their index.yaml")
    return folder


@pytest.fixture(scope="module")
def mirror_flags() -> Iterator[list[str]]:
    with catalog_lint_run.serve(charts_folder()) as url:
        flags: list[str] = []
        for upstream in catalog_upstreams(ROOT / "catalog"):
            flags += ["--chart-mirror", f"{upstream}={url}"]
        yield flags


def lint(catalog_dir: str | Path, flags: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "catalog", "lint", str(catalog_dir), *flags,
         "--helm", str(bins() / "helm"), "--kube-version", "v1.37.2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_catalog_passes_against_the_real_charts(mirror_flags: list[str]) -> None:
    proc = lint("catalog", mirror_flags)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert not [line for line in lines if ": error: " in line or ": warning: " in line]
    for document in sorted((ROOT / "catalog").glob("*.yaml")):
        entry = types.CatalogServiceSpec.from_object(yaml.safe_load(document.read_text()))
        for version in entry.versions:
            prefix = f"catalog/{document.name}: {entry.name} {version.version}: ok: "
            assert any(line.startswith(prefix) for line in lines), (prefix, proc.stdout)
    assert lines[-1].startswith("catalog lint: 9 services, 11 versions: 0 errors, 0 warnings")


def test_a_wrong_parameter_path_and_an_impossible_health_check_fail(
    mirror_flags: list[str], tmp_path: Path
) -> None:
    document = yaml.safe_load((ROOT / "catalog" / "gpu-operator.yaml").read_text())
    spec = document["spec"]
    spec["versions"] = spec["versions"][:1]  # v26.3.3 only: one pull, two renders
    [time_slicing] = [p for p in spec["parameters"] if p["name"] == "timeSlicingReplicas"]
    del time_slicing["valuesTemplate"]
    time_slicing["path"] = "timeSlicing.replicas"  # what the catalog said before
    spec["healthChecks"].append({"name": "nic-policy", "group": "mellanox.com",
                                 "version": "v1alpha1", "kind": "NicClusterPolicy",
                                 "evaluateCEL": [{"name": "always", "rule": "true"}]})
    (tmp_path / "gpu-operator.yaml").write_text(yaml.safe_dump(document))

    proc = lint(tmp_path, mirror_flags)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    shown = f"{tmp_path}/gpu-operator.yaml: gpu-operator 26.3.3: error: "
    assert f"{shown}parameter timeSlicingReplicas (path timeSlicing.replicas):" \
        " timeSlicing.replicas is not in the chart's values: no top-level key" \
        " 'timeSlicing'" in errors, proc.stdout
    assert any(line.startswith(f"{shown}health check nic-policy") and "never renders" in line
               for line in errors), proc.stdout
    assert len(errors) == 2, proc.stdout
    assert "1 services, 1 versions: 2 errors" in proc.stdout.splitlines()[-1]


def _render(chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    return asyncio.run(catalog_lint_run.helm_template(
        bins() / "helm", chart, release="gpu-operator", namespace="gpu-operator",
        values=values, kube_version="v1.37.2"))


@pytest.mark.parametrize("chart", ["real", "stand-in"])
def test_time_slicing_renders_the_device_plugin_config(chart: str) -> None:
    entry = types.CatalogServiceSpec.from_object(
        yaml.safe_load((ROOT / "catalog" / "gpu-operator.yaml").read_text()))
    profile = types.ProfileSpec.from_dict({"services": [{
        "name": "gpu-operator", "version": "26.3.3", "parameters": {"timeSlicingReplicas": 4}}]})
    [plan] = catalog.resolve(profile, {"gpu-operator": entry})
    path = (charts_folder() / "gpu-operator-v26.3.3.tgz" if chart == "real"
            else ROOT / "tests" / "charts" / "gpu-operator")
    objects = _render(path, dict(plan.values))

    [config_map] = [o for o in objects if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == "time-slicing-config"]
    assert config_map["metadata"]["namespace"] == "gpu-operator"
    plugin_config = yaml.safe_load(config_map["data"]["any"])
    assert plugin_config["sharing"]["timeSlicing"]["resources"] == [
        {"name": "nvidia.com/gpu", "replicas": 4}]
    [policy] = [o for o in objects if o["kind"] == "ClusterPolicy"]
    assert policy["spec"]["devicePlugin"]["config"] == {"name": "time-slicing-config",
                                                        "default": "any"}

    without = _render(path, dict(catalog.resolve(types.ProfileSpec.from_dict({"services": [
        {"name": "gpu-operator", "version": "26.3.3"}]}), {"gpu-operator": entry})[0].values))
    assert not [o for o in without if o["metadata"]["name"] == "time-slicing-config"]
    [policy] = [o for o in without if o["kind"] == "ClusterPolicy"]
    assert "config" not in policy["spec"]["devicePlugin"]
