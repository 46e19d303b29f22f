"""Tenants: a namespaced Profile stays inside the limits its Namespace's annotations set.

A Profile in `team-…` may name only clusters in its namespace, may not claim a
tier below the namespace's `flotilla.dev/min-tier`, and may not deploy
cluster-scoped objects (plain manifests or a chart's rendering) unless the
namespace says `flotilla.dev/allow-cluster-scoped: "true"`. Each refusal is a
Ready=False condition naming the field, and nothing reaches the cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fleetkit import FLEET_NS, Engine, Kubectl, condition, eventually

from engine import tenancy
from engine.cli import admin

CLUSTER = "cluster-2"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def team(engine: Engine, mgmt: Kubectl) -> Iterator[str]:
    """A tenant namespace with one registered cluster (cluster-2), no limits annotated yet."""
    ns = f"team-{_uid()}"
    mgmt("create", "namespace", ns)
    cluster = next(c for c in engine.fleet.clusters if c.name == CLUSTER)
    admin.register(engine.fleet.management.kubeconfig, namespace=ns, name=CLUSTER,
                   cluster_kubeconfig=cluster.kubeconfig, labels={"tenant": ns})
    try:
        yield ns
    finally:
        # Everything explicitly: the management cluster runs no namespace controller, so a
        # deleted namespace keeps its objects (Terminating) and the controller would go on
        # serving them in the tests that follow.
        mgmt("delete", "profiles", "--all", "-n", ns, "--timeout=60s", check=False)
        eventually(lambda: not mgmt.json("get", "clustersummaries", "-n", ns)["items"],
                   timeout=60, what="the tenant's summaries withdrawn")
        mgmt("delete", "workloadclusters", "--all", "-n", ns, "--timeout=60s", check=False)
        mgmt("delete", "namespace", ns, "--wait=false", check=False)


def _profile(ns: str, name: str, body: str) -> str:
    return f"""
apiVersion: flotilla.dev/v1alpha1
kind: Profile
metadata: {{name: {name}, namespace: {ns}}}
spec:
  clusterSelector: {{matchLabels: {{tenant: {ns}}}}}
{body}"""


def _manifest_cm(ns: str, name: str, obj: str) -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {ns}}}
data:
  obj.yaml: |
{obj}"""


def _ready(mgmt: Kubectl, ns: str, name: str) -> dict[str, Any] | None:
    return condition(mgmt.get("profile", name, "-n", ns), "Ready")


def _refused(mgmt: Kubectl, ns: str, name: str, reason: str) -> dict[str, Any]:
    """The profile's Ready=False condition with `reason` (on the profile or its summary)."""
    def probe() -> dict[str, Any] | None:
        cond = _ready(mgmt, ns, name)
        if cond and cond["status"] == "False" and reason in (cond["reason"], cond["message"]):
            return cond
        for summary in mgmt.json("get", "clustersummaries", "-n", ns)["items"]:
            for row in (summary.get("status") or {}).get("services") or []:
                if reason in str(row.get("reason")) or reason in str(row.get("message")):
                    return {"reason": row.get("reason"), "message": row.get("message")}
        return None
    return eventually(probe, timeout=60, what=f"{ns}/{name} refused with {reason}")


class TestTenantLimits:
    """Each refusal is a condition naming the field; allowed input deploys."""

    def test_cluster_ref_in_another_namespace(self, mgmt: Kubectl, team: str) -> None:
        name = f"refs-{_uid()}"
        mgmt.apply(_profile(team, name, f"  clusterRefs: [{{namespace: {FLEET_NS}, "
                                        f"name: cluster-1}}]\n"))
        cond = _refused(mgmt, team, name, "CrossNamespaceRef")
        assert "spec.clusterRefs[0].namespace" in cond["message"]
        assert (mgmt.get("profile", name, "-n", team) or {}).get("status", {}).get(
            "matched", 0) == 0

    def test_tier_floor(self, engine: Engine, mgmt: Kubectl, team: str) -> None:
        mgmt("annotate", "namespace", team, f"{tenancy.MIN_TIER_ANNOTATION}=100")
        name, cm = f"tier-{_uid()}", f"tier-{_uid()}"
        mgmt.apply(_manifest_cm(team, cm, f"    {{apiVersion: v1, kind: ConfigMap, "
                                          f"metadata: {{name: {cm}, namespace: default}}}}"))
        mgmt.apply(_profile(team, name, f"  tier: 5\n  policyRefs: [{{kind: ConfigMap, "
                                        f"name: {cm}}}]\n"))
        cond = _refused(mgmt, team, name, "TierAboveLimit")
        assert "spec.tier" in cond["message"] and "100" in cond["message"]
        assert engine.cluster(CLUSTER).get("configmap", cm, "-n", "default") is None
        # Positive control: at the floor the same profile deploys.
        mgmt("patch", "profile", name, "-n", team, "--type=merge", "-p",
             '{"spec": {"tier": 100}}')
        eventually(lambda: engine.cluster(CLUSTER).get("configmap", cm, "-n", "default"),
                   timeout=60, what="deployed at the floor tier")

    def test_cluster_scoped_manifest(self, engine: Engine, mgmt: Kubectl, team: str) -> None:
        name, cm = f"cs-{_uid()}", f"cs-{_uid()}"
        mgmt.apply(_manifest_cm(team, cm, f"    {{apiVersion: rbac.authorization.k8s.io/v1, "
                                          f"kind: ClusterRole, metadata: {{name: {cm}}}, "
                                          f"rules: []}}"))
        mgmt.apply(_profile(team, name, f"  policyRefs: [{{kind: ConfigMap, name: {cm}}}]\n"))
        cond = _refused(mgmt, team, name, "ClusterScopedRefused")
        assert "spec.policyRefs" in cond["message"] and "ClusterRole" in cond["message"]
        target = engine.cluster(CLUSTER)
        assert target.get("clusterrole", cm) is None
        mgmt("annotate", "namespace", team, f"{tenancy.ALLOW_CLUSTER_SCOPED_ANNOTATION}=true")
        # A refusal is non-retriable, as every spec error: `flotilla retry` asks again.
        admin.retry(str(engine.fleet.management.kubeconfig), f"{team}/{name}")
        try:
            eventually(lambda: target.get("clusterrole", cm), timeout=60,
                       what="allowed once the namespace says so")
        finally:
            mgmt("delete", "profile", name, "-n", team, "--timeout=60s")

    def test_cluster_scoped_in_chart(self, engine: Engine, mgmt: Kubectl, team: str) -> None:
        name, rel = f"chart-{_uid()}", f"c{_uid()}"
        mgmt.apply(_profile(team, name, f"""  helmCharts:
  - repositoryURL: '{engine.repo.url}'
    chartName: defaulted
    chartVersion: 0.1.0
    releaseName: {rel}
    releaseNamespace: {team}
"""))
        cond = _refused(mgmt, team, name, "ClusterScopedRefused")
        assert "spec.helmCharts[0]" in cond["message"] and "ClusterRole" in cond["message"]
        target = engine.cluster(CLUSTER)
        assert target.get("clusterrole", f"{team}-{rel}-reader") is None
        assert not target.json("get", "configmaps", "-n", team, "-l",
                               f"app.kubernetes.io/instance={rel}")["items"]

    def test_cluster_profile_is_not_limited(self, engine: Engine, mgmt: Kubectl) -> None:
        name = f"cp-{_uid()}"
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  tier: 1
  clusterRefs: [{{namespace: {FLEET_NS}, name: {CLUSTER}}}]
""")
        try:
            engine.wait_ready(name, 1)
        finally:
            mgmt("delete", "clusterprofile", name, "--timeout=60s")
