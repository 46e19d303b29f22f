"""Label a cluster and its services arrive; unlabel and they leave; kubectl shows where each stands.

Every test runs against the real fleet with the real controller process.
Tests use their own label key and profile names so they can share one fleet.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from fleetkit import FLEET_NS, Engine, Helm, Kubectl, condition, eventually

from engine import api


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _manifests_profile(name: str, label: str, cm_ns: str, *, extra: str = "") -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-manifests, namespace: flotilla-system}}
data:
  objects.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: {name}-settings, namespace: {cm_ns}}}
    data: {{owner: platform}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs:
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-manifests}}
{extra}
"""


def _chart(engine: Engine, release: str, ns: str, values: str = "{}", chart: str = "standin-app",
           version: str = "0.1.0") -> str:
    return (f"  - {{repositoryURL: '{engine.repo.url}', chartName: {chart}, chartVersion: "
            f"'{version}', releaseName: {release}, releaseNamespace: {ns}, values: {values}}}\n")


def _label(mgmt: Kubectl, cluster: str, label: str, on: bool = True) -> None:
    mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}=on" if on else f"{label}-",
         "--overwrite")


class TestLabelling:
    """A label brings a profile's services to exactly that cluster; removing it takes them away."""

    def test_label_deploys_and_unlabel_withdraws(self, engine: Engine, mgmt: Kubectl,
                                                 tmp_path: Path) -> None:
        name, label, ns = f"lab-{_uid()}", f"t-{_uid()}", f"app-{_uid()}"
        extra = "  helmCharts:\n" + _chart(engine, "web", ns, "{replicas: 2, data: {greeting: hi}}")
        mgmt.apply(_manifests_profile(name, label, ns, extra=extra))
        _label(mgmt, "cluster-3", label)
        engine.wait_ready(name, 1)
        target, other = engine.cluster("cluster-3"), engine.cluster("cluster-4")
        cm = target.get("configmap", f"{name}-settings", "-n", ns)
        assert cm
        assert cm["metadata"]["annotations"][api.OWNER_ANNOTATION] == f"ClusterProfile//{name}"
        assert cm["metadata"]["labels"][api.PROFILE_NAME_LABEL] == name
        assert other.get("configmap", f"{name}-settings", "-n", ns) is None
        helm = Helm(engine.kubeconfig("cluster-3"), tmp_path)
        releases = json.loads(helm("list", "-n", ns, "-o", "json"))
        assert [(r["name"], r["chart"]) for r in releases] == [("web", "standin-app-0.1.0")]
        values = json.loads(helm("get", "values", "web", "-n", ns, "-o", "json"))
        assert values["replicas"] == 2 and values["data"] == {"greeting": "hi"}

        _label(mgmt, "cluster-3", label, on=False)
        eventually(lambda: target.get("configmap", f"{name}-settings", "-n", ns) is None,
                   what="manifest withdrawn")
        eventually(lambda: json.loads(helm("list", "-n", ns, "-o", "json")) == [],
                   what="release uninstalled")
        eventually(lambda: not mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                                         f"{api.PROFILE_NAME_LABEL}={name}")["items"],
                   what="summary gone")
        mgmt("delete", "clusterprofile", name)

    def test_deleting_profile_removes_only_what_it_owns(self, engine: Engine,
                                                        mgmt: Kubectl) -> None:
        name, label, ns = f"del-{_uid()}", f"t-{_uid()}", f"own-{_uid()}"
        target = engine.cluster("cluster-4")
        target("create", "namespace", ns)
        target("create", "configmap", "not-ours", "-n", ns, "--from-literal=k=v")
        mgmt.apply(_manifests_profile(name, label, ns))
        _label(mgmt, "cluster-4", label)
        engine.wait_ready(name, 1)
        assert target.get("configmap", f"{name}-settings", "-n", ns)
        mgmt("delete", "clusterprofile", name, "--timeout=60s")
        assert target.get("configmap", f"{name}-settings", "-n", ns) is None
        assert target.get("configmap", "not-ours", "-n", ns) is not None
        assert target.get("namespace", ns) is not None


class TestDependencies:
    """On a full cluster KServe is installed only once cert-manager is really healthy."""

    def test_kserve_waits_for_healthy_cert_manager(self, engine: Engine, mgmt: Kubectl,
                                                   tmp_path: Path) -> None:
        name, label = f"inf-{_uid()}", f"t-{_uid()}"
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  services: [{{name: kserve}}, {{name: kserve-crd}}, {{name: cert-manager}}]
""")
        _label(mgmt, "cluster-2", label)
        engine.wait_ready(name, 1, timeout=120)
        target = engine.cluster("cluster-2")
        dep = target.json("get", "deployment", "cert-manager", "-n", "cert-manager")
        available = condition(dep, "Available")
        assert available and available["status"] == "True"
        became_available = datetime.fromisoformat(available["lastTransitionTime"])
        helm = Helm(engine.kubeconfig("cluster-2"), tmp_path)
        kserve = json.loads(helm("list", "-n", "kserve", "-o", "json"))
        installed = {r["name"]: r for r in kserve}["kserve"]
        stamp = datetime.strptime(installed["updated"][:19], "%Y-%m-%d %H:%M:%S")
        assert stamp.replace(tzinfo=became_available.tzinfo) >= became_available
        assert target.json("get", "deployment", "kserve-controller-manager", "-n",
                           "kserve")["status"]["availableReplicas"] >= 1
        summary = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                            f"{api.PROFILE_NAME_LABEL}={name}")["items"][0]
        order = [s["name"] for s in summary["status"]["services"]]
        assert order.index("cert-manager") < order.index("kserve")
        mgmt("delete", "clusterprofile", name, "--timeout=90s")


class TestConflicts:
    """Two profiles over one release: the lower tier wins; the other names the winner."""

    def test_lower_tier_wins(self, engine: Engine, mgmt: Kubectl) -> None:
        label, ns = f"t-{_uid()}", f"tier-{_uid()}"
        low, high = f"low-{_uid()}", f"high-{_uid()}"
        for name, tier in ((high, 100), (low, 50)):
            mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  tier: {tier}
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  helmCharts:
{_chart(engine, "shared", ns, "{data: {greeting: " + name + "}}")}""")
        _label(mgmt, "cluster-5", label)
        engine.wait_ready(low, 1)

        def loser_conflict() -> dict[str, Any] | None:
            cond = condition(engine.profile(high), "Conflict")
            return cond if cond and cond["status"] == "True" else None

        cond = eventually(loser_conflict, what="Conflict on the higher tier")
        assert low in cond["message"]
        record = engine.cluster("cluster-5").get("configmap", "flotilla-owner.shared", "-n", ns)
        assert record
        assert record["metadata"]["annotations"][api.OWNER_ANNOTATION] == f"ClusterProfile//{low}"
        for name in (high, low):
            mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestStatusSurfaces:
    """kubectl get shows meaningful columns and kubectl wait works on Ready."""

    def test_columns_and_wait(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label = f"cols-{_uid()}", f"t-{_uid()}"
        mgmt.apply(_manifests_profile(name, label, "default"))
        _label(mgmt, "cluster-6", label)
        mgmt("wait", "--for=condition=Ready", f"clusterprofile/{name}", "--timeout=60s",
             timeout=90)
        header = mgmt("get", "clusterprofiles").splitlines()[0].split()
        assert header == ["NAME", "MATCHED", "UPDATED", "READY", "DRIFTED", "FAILED", "PHASE",
                          "STAGE", "ROLLOUT", "AGE"]
        row = next(r.split() for r in mgmt("get", "clusterprofiles").splitlines()
                   if r.startswith(name + " "))
        assert row[1:4] == ["1", "1", "1"] and row[6] == "Ready"
        summaries = mgmt("get", "clustersummaries", "-A")
        assert "CLUSTER" in summaries and "REVISION" in summaries and "cluster-6" in summaries
        clusters = mgmt("get", "workloadclusters", "-A").splitlines()
        assert clusters[0].split()[:6] == ["NAMESPACE", "NAME", "READY", "CONNECTION", "VERSION",
                                           "NODES"]
        full = next(r.split() for r in clusters if " cluster-1 " in f" {r} ")
        assert full[2] == "true" and full[3] == "Healthy" and full[5] == "4" and full[6] == "16"
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestHashGate:
    """An idle controller writes nothing to workload clusters; a restart redeploys nothing."""

    def test_idle_and_restart_write_nothing(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label, ns = f"idle-{_uid()}", f"t-{_uid()}", f"idle-{_uid()}"
        extra = "  helmCharts:\n" + _chart(engine, "idle", ns, "{}", chart="multi-a")
        mgmt.apply(_manifests_profile(name, label, ns, extra=extra))
        _label(mgmt, "cluster-6", label)
        engine.wait_ready(name, 1)
        target = engine.cluster("cluster-6")
        time.sleep(2)  # let the last status writes settle
        before = _writes(target)
        mgmt_before = _writes(mgmt)
        cm_version = target.json("get", "configmap", f"{name}-settings", "-n", ns)[
            "metadata"]["resourceVersion"]
        time.sleep(30)
        assert _writes(target) == before, "an idle controller wrote to a workload cluster"
        assert _writes(mgmt) == mgmt_before, \
            f"an idle controller wrote to the management cluster: {_write_lines(mgmt)}"
        engine.restart()
        eventually(lambda: condition(mgmt.get("workloadcluster", "cluster-6", "-n", FLEET_NS),
                                     "Ready"), what="controller back")
        time.sleep(8)
        after = _writes(target)
        assert after == before, f"a restarted controller redeployed: {_write_lines(target)}"
        assert target.json("get", "configmap", f"{name}-settings", "-n", ns)[
            "metadata"]["resourceVersion"] == cm_version
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


def _write_lines(kubectl: Kubectl) -> list[str]:
    return [line for line in kubectl("get", "--raw", "/metrics").splitlines()
            if line.startswith("apiserver_request_total{") and 'resource="leases"' not in line
            and any(f'verb="{v}"' in line for v in ("POST", "PUT", "PATCH", "DELETE", "APPLY"))]


def _writes(kubectl: Kubectl) -> int:
    """Mutating requests the API server has served, from its own metrics.

    Leases are left out: the API server renews its own identity lease every
    10 s, and nothing of ours is a Lease.
    """
    total = 0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if 'resource="leases"' in line:
            continue
        if line.startswith("apiserver_request_total{") and any(
                f'verb="{v}"' in line for v in ("POST", "PUT", "PATCH", "DELETE", "APPLY")):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


class TestTenancyAndValues:
    """Profiles stay in their namespace; values are templated per cluster and merged."""

    def test_profile_sees_only_its_namespace(self, engine: Engine, mgmt: Kubectl,
                                             namespace: str) -> None:
        label = f"t-{_uid()}"
        mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-4", f"{label}=on")
        for ns in (FLEET_NS, namespace):
            mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: tenant, namespace: {ns}}}
data:
  cm.yaml: "{{apiVersion: v1, kind: ConfigMap,
            metadata: {{name: tenant-{ns}, namespace: default}}}}"
---
apiVersion: flotilla.dev/v1alpha1
kind: Profile
metadata: {{name: tenant, namespace: {ns}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, name: tenant}}]
""")
        target = engine.cluster("cluster-4")
        eventually(lambda: target.get("configmap", f"tenant-{FLEET_NS}", "-n", "default"),
                   what="the fleet-namespace Profile deployed")
        time.sleep(2)
        other = mgmt.get("profile", "tenant", "-n", namespace) or {}
        assert (other.get("status") or {}).get("matched") == 0
        assert target.get("configmap", f"tenant-{namespace}", "-n", "default") is None
        for ns in (FLEET_NS, namespace):
            mgmt("delete", "profile", "tenant", "-n", ns, "--timeout=60s")

    def test_templated_values_and_values_from(self, engine: Engine, mgmt: Kubectl,
                                              tmp_path: Path) -> None:
        name, label, ns = f"val-{_uid()}", f"t-{_uid()}", f"val-{_uid()}"
        hits_before = sum("standin-app-0.1.0.tgz" in h for h in engine.repo.hits)
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-values, namespace: flotilla-system}}
data:
  values.yaml: |
    data: {{tier: gold, nodes: "{{{{ cluster.status.facts.nodes }}}}"}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  helmCharts:
  - repositoryURL: '{engine.repo.url}'
    chartName: standin-app
    chartVersion: 0.1.0
    releaseName: vals
    releaseNamespace: {ns}
    values: |
      data:
        cluster: "{{{{ cluster.metadata.name }}}}"
    valuesFrom: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}-values}}]
""")
        for cluster in ("cluster-1", "cluster-5"):
            _label(mgmt, cluster, label)
        engine.wait_ready(name, 2)
        for cluster, nodes in (("cluster-1", "4"), ("cluster-5", "0")):
            helm = Helm(engine.kubeconfig(cluster), tmp_path / cluster)
            values = json.loads(helm("get", "values", "vals", "-n", ns, "-o", "json"))
            assert values["data"] == {"cluster": cluster, "tier": "gold", "nodes": nodes}
        # One chart version, two clusters: fetched at most once into the cache.
        assert sum("standin-app-0.1.0.tgz" in h for h in engine.repo.hits) - hits_before <= 1
        mgmt("delete", "clusterprofile", name, "--timeout=60s")

    def test_leave_policies(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label, ns = f"leave-{_uid()}", f"t-{_uid()}", f"leave-{_uid()}"
        mgmt.apply(_manifests_profile(name, label, ns,
                                      extra="  stopMatchingBehavior: LeavePolicies\n"))
        _label(mgmt, "cluster-6", label)
        engine.wait_ready(name, 1)
        _label(mgmt, "cluster-6", label, on=False)
        eventually(lambda: (engine.profile(name).get("status") or {}).get("matched") == 0,
                   what="unmatched")
        eventually(lambda: not mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                                         f"{api.PROFILE_NAME_LABEL}={name}")["items"],
                   what="summary gone")
        assert engine.cluster("cluster-6").get("configmap", f"{name}-settings", "-n", ns)
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestMirrorsAndDependencies:
    """The mirror map also lives in a ConfigMap; profile dependsOn orders and extends."""

    def test_mirror_configmap(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label, ns = f"mir-{_uid()}", f"t-{_uid()}", f"mir-{_uid()}"
        upstream = f"https://charts-{_uid()}.example.invalid/stable"
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: flotilla-chart-mirrors, namespace: flotilla-system}}
data: {{mirrors: "{upstream}={engine.repo.url}"}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  helmCharts:
  - {{repositoryURL: '{upstream}', chartName: multi-b, chartVersion: 0.1.0,
      releaseName: mirrored, releaseNamespace: {ns}}}
""")
        _label(mgmt, "cluster-5", label)
        engine.wait_ready(name, 1)
        assert engine.cluster("cluster-5").get("configmap", "mirrored", "-n", ns)
        mgmt("delete", "clusterprofile", name, "--timeout=60s")

    def test_depends_on_profile(self, engine: Engine, mgmt: Kubectl) -> None:
        base, app, label, ns = f"base-{_uid()}", f"app-{_uid()}", f"t-{_uid()}", f"dep-{_uid()}"
        mgmt.apply(_manifests_profile(base, f"never-{_uid()}", ns))
        mgmt.apply(_manifests_profile(app, label, ns, extra=f"  dependsOn: [{base}]\n")
                   .replace(f"{app}-settings", f"{app}-app"))
        _label(mgmt, "cluster-4", label)
        engine.wait_ready(app, 1)
        summaries = {s["spec"]["profileRef"]["name"]: s for s in mgmt.json(
            "get", "clustersummaries", "-n", FLEET_NS, "-l",
            f"{api.CLUSTER_NAME_LABEL}=cluster-4")["items"]}
        # The base profile selects nothing itself; it goes where its dependants go.
        assert summaries[base]["spec"]["reason"] == "DependsOn"
        assert summaries[app]["spec"]["reason"] == "Selector"
        target = engine.cluster("cluster-4")
        assert target.get("configmap", f"{base}-settings", "-n", ns)
        assert target.get("configmap", f"{app}-app", "-n", ns)
        # The order, to the microsecond: the app was applied after its base was healthy.
        base_healthy = summaries[base]["status"]["healthySince"]
        app_applied = summaries[app]["status"]["services"][0]["lastAppliedTime"]
        assert base_healthy < app_applied, (base_healthy, app_applied)
        for name in (app, base):
            mgmt("delete", "clusterprofile", name, "--timeout=60s")
