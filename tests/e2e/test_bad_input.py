"""Bad input gets a clear condition naming its cause, never a crash, and loses nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fleetkit import FLEET_NS, Engine, Kubectl, condition, eventually

from engine import api
from engine.cli import admin
from engine.devfleet import procs


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _profile(name: str, body: str) -> str:
    return f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
{body}"""


def _ready_false(engine: Engine, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        cond = condition(engine.profile(name), "Ready")
        return cond if cond and cond["status"] == "False" and cond["reason"] not in (
            "Pending", "Provisioning", "Progressing") else None
    return eventually(probe, what=f"Ready=False on {name}")


def _summary_of(mgmt: Kubectl, profile: str) -> dict[str, Any] | None:
    items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                      f"{api.PROFILE_NAME_LABEL}={profile}")["items"]
    return items[0] if items else None


class TestProfileErrors:
    """What only the controller can judge becomes a Ready=False condition naming the field."""

    def test_unknown_service(self, engine: Engine, mgmt: Kubectl) -> None:
        name = f"bad-{_uid()}"
        mgmt.apply(_profile(name, "  clusterSelectorCEL: 'true'\n  services: [{name: no-such}]"))
        cond = _ready_false(engine, name)
        assert cond["reason"] == "UnknownService"
        assert "spec.services[0].name" in cond["message"] and "no-such" in cond["message"]
        mgmt("delete", "clusterprofile", name)

    def test_version_that_resolves_to_nothing(self, engine: Engine, mgmt: Kubectl) -> None:
        name = f"bad-{_uid()}"
        mgmt.apply(_profile(name, "  clusterSelectorCEL: 'true'\n"
                                  "  services: [{name: cert-manager, version: '>=99'}]"))
        cond = _ready_false(engine, name)
        assert cond["reason"] == "VersionNotFound"
        assert "spec.services[0].version" in cond["message"]
        mgmt("delete", "clusterprofile", name)

    def test_cel_that_does_not_compile(self, engine: Engine, mgmt: Kubectl) -> None:
        name = f"bad-{_uid()}"
        mgmt.apply(_profile(name, "  clusterSelectorCEL: \"cluster.metadata.labels[\"\n"))
        cond = _ready_false(engine, name)
        assert "spec.clusterSelectorCEL" in cond["message"]
        mgmt("delete", "clusterprofile", name)

    def test_bad_edit_deletes_nothing(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label, ns = f"keep-{_uid()}", f"t-{_uid()}", f"keep-{_uid()}"
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: flotilla-system}}
data:
  cm.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: kept, namespace: {ns}}}}}
""" + "---" + _profile(name, f"""  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]"""))
        mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-5", f"{label}=on")
        engine.wait_ready(name, 1)
        mgmt("patch", "clusterprofile", name, "--type=merge", "-p",
             '{"spec": {"services": [{"name": "no-such"}]}}')
        _ready_false(engine, name)
        assert engine.cluster("cluster-5").get("configmap", "kept", "-n", ns) is not None
        assert _summary_of(mgmt, name) is not None
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestClusterErrors:
    """A cluster the controller cannot reach is marked and retried, holding up nobody."""

    def test_missing_kubeconfig_secret(self, engine: Engine, mgmt: Kubectl) -> None:
        name = f"nosecret-{_uid()}"
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: WorkloadCluster
metadata: {{name: {name}, namespace: {FLEET_NS}}}
spec: {{kubeconfigSecretRef: {{name: does-not-exist}}}}
""")

        def probe() -> dict[str, Any] | None:
            cond = condition(mgmt.get("workloadcluster", name, "-n", FLEET_NS), "Ready")
            return cond if cond and cond["status"] == "False" else None

        cond = eventually(probe, what="Ready=False on the cluster")
        assert cond["reason"] == "KubeconfigSecretNotFound"
        assert "spec.kubeconfigSecretRef.name" in cond["message"]
        mgmt("delete", "workloadcluster", name, "-n", FLEET_NS)

    def test_unreachable_cluster_backs_off(self, engine: Engine, mgmt: Kubectl,
                                           tmp_path: Any) -> None:
        name = f"down-{_uid()}"
        dead = tmp_path / "dead.kubeconfig"
        text = Path(engine.kubeconfig("cluster-6")).read_text()
        server = next(line.split()[-1] for line in text.splitlines() if "server:" in line)
        dead.write_text(text.replace(server, f"https://127.0.0.1:{procs.free_port()}"))
        admin.register(engine.fleet.management.kubeconfig, namespace=FLEET_NS, name=name,
                       cluster_kubeconfig=str(dead), labels={})

        def probe() -> dict[str, Any] | None:
            body = mgmt.get("workloadcluster", name, "-n", FLEET_NS) or {}
            conn = body.get("status", {}).get("connection") or {}
            return conn if conn.get("state") == "Unreachable" and conn["failures"] >= 2 else None

        conn = eventually(probe, timeout=30, what="unreachable with retries")
        assert "cannot reach https://127.0.0.1:" in conn["message"]
        cond = condition(mgmt.get("workloadcluster", name, "-n", FLEET_NS), "Ready")
        assert cond and cond["reason"] == "Unreachable"
        healthy = mgmt.get("workloadcluster", "cluster-6", "-n", FLEET_NS) or {}
        assert healthy["status"]["connection"]["state"] == "Healthy"
        mgmt("delete", "workloadcluster", name, "-n", FLEET_NS)


class TestChartErrors:
    """Chart failures land in ClusterSummary and profile status with helm's own message."""

    def _failing(self, engine: Engine, mgmt: Kubectl, chart: str, values: str) -> dict[str, Any]:
        name, label = f"chart-{_uid()}", f"t-{_uid()}"
        mgmt.apply(_profile(name, f"""  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  helmCharts:
  - {{repositoryURL: '{engine.repo.url}', chartName: {chart}, chartVersion: 0.1.0,
      releaseName: {name}, releaseNamespace: {name}, values: {values}}}"""))
        mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-4", f"{label}=on")

        def failed() -> dict[str, Any] | None:
            summary = _summary_of(mgmt, name)
            st = (summary or {}).get("status") or {}
            return summary if st.get("phase") == "Failed" else None

        summary = eventually(failed, what=f"{chart} failure recorded")
        degraded = eventually(lambda: (c := condition(engine.profile(name), "Degraded")) and
                              c["status"] == "True" and c, what="profile Degraded")
        assert "cluster-4" in degraded["message"]
        mgmt("delete", "clusterprofile", name, "--timeout=60s")
        return summary

    def test_chart_that_fails_to_render(self, engine: Engine, mgmt: Kubectl) -> None:
        summary = self._failing(engine, mgmt, "broken", "{}")
        row = summary["status"]["services"][0]
        assert row["status"] == "FailedNonRetriable"
        assert "failed to render" in row["message"] and "on purpose" in row["message"]

    def test_a_huge_error_still_reaches_status(self, engine: Engine, mgmt: Kubectl) -> None:
        # Helm errors can be kilobytes; status.message allows 1024 characters. The write
        # must still happen, keeping the head and the tail (where the cause usually is).
        message = "start-of-error " + "x" * 6000 + " ROOT-CAUSE-AT-THE-END"
        summary = self._failing(engine, mgmt, "broken", f"{{message: '{message}'}}")
        status = summary["status"]
        assert len(status["message"]) <= 1024
        assert "characters cut" in status["message"]
        assert status["message"].endswith("ROOT-CAUSE-AT-THE-END")
        row = status["services"][0]
        assert "start-of-error" in row["message"] and "ROOT-CAUSE-AT-THE-END" in row["message"]
        ready = condition(summary, "Ready")
        assert ready is not None and ready["reason"] == "DeploymentFailed"

    def test_values_that_break_the_chart_schema(self, engine: Engine, mgmt: Kubectl) -> None:
        summary = self._failing(engine, mgmt, "standin-app", "{replicas: two}")
        row = summary["status"]["services"][0]
        assert row["status"] == "FailedNonRetriable"
        assert "schema" in row["message"] and "replicas" in row["message"]


class TestSchemaRejects:
    """Malformed specs never reach the controller: the API server refuses them."""

    def test_kubectl_apply_refuses(self, engine: Engine, mgmt: Kubectl) -> None:
        for body, needle in (
            ("  syncMode: Sometimes", "syncMode"),
            ("  tier: 0", "tier"),
            ("  policyRefs: [{kind: Deployment, name: x}]", "kind"),
            ("  rollout: {stages: [{name: a, percent: '10%', clusterSelector: {}}]}", "stages"),
        ):
            proc = mgmt.run("apply", "-f", "-", input=_profile(f"rej-{_uid()}", body),
                            check=False)
            assert proc.returncode != 0, body
            assert needle in proc.stderr, proc.stderr

    def test_sveltos_cluster_refs_are_accepted_and_cluster_api_refused(
            self, engine: Engine, mgmt: Kubectl) -> None:
        """clusterRefs as Sveltos writes them (ObjectReferences) apply as they are."""
        sveltos = ("  clusterRefs: [{apiVersion: lib.projectsveltos.io/v1beta1, "
                   "kind: SveltosCluster, namespace: fleet, name: cluster-1}]")
        accepted = mgmt.run("apply", "--dry-run=server", "-f", "-",
                            input=_profile(f"sv-{_uid()}", sveltos), check=False)
        assert accepted.returncode == 0, accepted.stderr
        capi = ("  clusterRefs: [{apiVersion: cluster.x-k8s.io/v1beta1, kind: Cluster, "
                "namespace: fleet, name: cluster-1}]")
        refused = mgmt.run("apply", "--dry-run=server", "-f", "-",
                           input=_profile(f"sv-{_uid()}", capi), check=False)
        assert refused.returncode != 0
        assert "Cluster API Clusters are not supported" in refused.stderr, refused.stderr
