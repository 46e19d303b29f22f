"""What the server keeps of an object: Helm's own marks, and fields a CRD does not declare."""

from __future__ import annotations

from engine.adapters import workload
from engine.catalog import ReleasePlan
from engine.deployers import helm


class TestUndeclaredFields:
    """Server-side apply names the fields it refuses; they become JSON pointers to prune."""

    def test_paths_from_the_api_servers_message(self) -> None:
        message = ("failed to create typed patch object (/cluster-policy; nvidia.com/v1, "
                   "Kind=ClusterPolicy): errors:\n  .spec.vgpuManager.kernelModuleConfig: "
                   "field not declared in schema\n  .spec.kataSandboxDevicePlugin: field not "
                   "declared in schema")
        assert workload.undeclared_fields(message) == [
            "/spec/vgpuManager/kernelModuleConfig", "/spec/kataSandboxDevicePlugin"]

    def test_other_errors_name_nothing(self) -> None:
        assert workload.undeclared_fields("admission webhook denied the request") == []


class TestHelmMarks:
    """A release object is compared with the marks Helm writes over the chart's rendering."""

    def test_managed_by_and_release_annotations(self) -> None:
        rel = ReleasePlan(name="kserve", release_name="kserve", namespace="kserve",
                          repository_url="", chart_name="kserve-resources", chart_version="v1",
                          values={}, depends_on=(), health_checks=(), source="catalog",
                          field="spec.services[0]")
        rendered = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            "name": "sa", "labels": {"app.kubernetes.io/managed-by": "kserve-controller-manager",
                                     "app": "x"}}}
        marked = helm.helm_marked(rendered, rel)
        assert marked["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "Helm",
                                                "app": "x"}
        assert marked["metadata"]["annotations"] == {"meta.helm.sh/release-name": "kserve",
                                                     "meta.helm.sh/release-namespace": "kserve"}
        assert rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"] != "Helm"
