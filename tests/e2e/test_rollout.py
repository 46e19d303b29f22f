"""Staged rollouts on the real fleet: bounded in flight, canary first, gates, undo, restarts."""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

from fleetkit import FLEET_NS, Engine, Kubectl, eventually

from engine import api

API_ONLY = ["cluster-3", "cluster-4", "cluster-5", "cluster-6"]
ALL = ["cluster-1", "cluster-2", *API_ONLY]


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _ts(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Rollout:
    """One manifest profile over some clusters; `publish(n)` makes its content revision n."""

    def __init__(self, engine: Engine, mgmt: Kubectl, clusters: list[str], spec_extra: str,
                 *, canary: list[str] = (), body: str = "") -> None:  # type: ignore[assignment]
        self.engine, self.mgmt = engine, mgmt
        self.name, self.label, self.ns = f"ro-{_uid()}", f"t-{_uid()}", f"ro-{_uid()}"
        self.ring = f"ring-{_uid()}"
        self.spec_extra = spec_extra.replace("RING", self.ring)
        self.body = body
        for cluster in clusters:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{self.label}=on")
        for cluster in canary:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{self.ring}=canary")
        self.clusters = clusters

    def publish(self, version: int, *, body: str | None = None) -> None:
        manifests = (body or self.body or """    apiVersion: v1
    kind: ConfigMap
    metadata: {name: app, namespace: NS}
    data: {version: "VERSION"}
""").replace("NS", self.ns).replace("VERSION", str(version))
        self.mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {self.name}}}
spec:
  clusterSelector: {{matchLabels: {{{self.label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {self.name}-v{version}}}]
{self.spec_extra}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {self.name}-v{version}, namespace: flotilla-system}}
data:
  app.yaml: |
{manifests}""")

    def summaries(self) -> dict[str, dict[str, Any]]:
        items = self.mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                               f"{api.PROFILE_NAME_LABEL}={self.name}")["items"]
        return {s["spec"]["clusterRef"]["name"]: s for s in items}

    def status(self) -> dict[str, Any]:
        return dict(self.engine.profile(self.name).get("status") or {})

    def at(self, revision: int) -> list[str]:
        """Clusters provisioned and healthy at `revision`."""
        return sorted(c for c, s in self.summaries().items()
                      if (s.get("status") or {}).get("revision") == revision
                      and s["status"].get("phase") == "Provisioned" and s["status"].get("healthy")
                      and s["spec"].get("revision") == revision)

    def wait_complete(self, revision: int, timeout: float = 90) -> None:
        eventually(lambda: (st := self.status()).get("rollout", {}).get("phase") == "Complete"
                   and st["rollout"].get("targetRevision") == revision
                   and len(self.at(revision)) == len(self.clusters),
                   timeout=timeout, what=f"revision {revision} complete")

    def close(self) -> None:
        self.mgmt("delete", "clusterprofile", self.name, "--timeout=90s", check=False)


class TestMaxUpdate:
    """No moment has more clusters between revisions than maxUpdate."""

    def test_in_flight_bounded(self, engine: Engine, mgmt: Kubectl) -> None:
        ro = Rollout(engine, mgmt, API_ONLY, "  maxUpdate: 2")
        ro.publish(1)
        ro.wait_complete(1)
        # Revision 2 is healthy on a cluster only once the test says so (a label on the
        # deployed ConfigMap), which makes every wave observable.
        ro.spec_extra += f"""
  validateHealths:
  - {{name: released, version: v1, kind: ConfigMap, namespace: {ro.ns}, objectName: app,
      evaluateCEL: [{{name: released, rule: "resource.data.version == '2' &&
                    has(resource.metadata.labels) && 'released' in resource.metadata.labels"}}]}}
"""
        ro.publish(2)
        seen: list[int] = []
        released: list[str] = []

        def moving() -> list[str]:
            return [c for c, s in ro.summaries().items() if s["spec"].get("revision") == 2
                    and not ((s.get("status") or {}).get("revision") == 2
                             and s["status"].get("healthy"))]

        while len(released) < len(API_ONLY):
            flight = eventually(moving, timeout=30, what="a cluster in flight")
            # An upper bound, sampled: give the controller every chance to overshoot (the
            # first sample must show it filling maxUpdate, asserted below).
            time.sleep(1.5)
            flight = moving()
            seen.append(len(flight))
            assert len(flight) <= 2, f"{flight} in flight with maxUpdate 2"
            cluster = sorted(flight)[0]
            engine.cluster(cluster)("label", "configmap", "app", "-n", ro.ns, "released=yes")
            released.append(cluster)
            eventually(lambda c=cluster: c in ro.at(2), timeout=30, what=f"{cluster} healthy")
        ro.wait_complete(2)
        assert seen[0] == 2, seen
        ro.close()


class TestStages:
    """The canary goes first; the next stage waits for minSuccessTime of canary health."""

    def test_canary_then_main(self, engine: Engine, mgmt: Kubectl) -> None:
        ro = Rollout(engine, mgmt, API_ONLY, """  rollout:
    minSuccessTime: 4s
    stages:
    - {name: canary, clusterSelector: {matchLabels: {RING: canary}}}
    - {name: main}""", canary=["cluster-3"])
        ro.publish(1)
        ro.wait_complete(1, timeout=60)
        ro.publish(2)
        eventually(lambda: ro.status().get("rollout", {}).get("stage") == "main",
                   timeout=30, what="main stage")
        summaries = ro.summaries()
        canary_healthy = _ts(summaries["cluster-3"]["status"]["healthySince"])
        main_started = min(_ts(s["spec"]["assignedAt"]) for c, s in summaries.items()
                           if c != "cluster-3" and s["spec"]["revision"] == 2)
        assert main_started - canary_healthy >= 3  # 4 s, at one-second resolution
        ro.wait_complete(2, timeout=60)
        events = mgmt("get", "events", "-n", "default", "--field-selector",
                      f"involvedObject.name={ro.name}")
        assert "StageProgressing" in events and "RolloutComplete" in events
        ro.close()


_NEVER_READY = """    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: NS}
    spec:
      replicas: 1
      strategy: {type: Recreate}
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}, annotations: {version: "VERSION"}}
        spec:
          nodeSelector: SELECTOR
          containers: [{name: app, image: registry.invalid/web:VERSION}]
"""
_HEALTH = """  validateHealths:
  - name: web-ready
    group: apps
    version: v1
    kind: Deployment
    labelSelector: flotilla.dev/managed-by=flotilla
    namespace: NS
    evaluateCEL:
    - name: available
      rule: >-
        has(resource.status.observedGeneration) &&
        resource.status.observedGeneration >= resource.metadata.generation &&
        has(resource.status.updatedReplicas) &&
        resource.status.updatedReplicas == resource.spec.replicas &&
        has(resource.status.availableReplicas) &&
        resource.status.availableReplicas == resource.spec.replicas
"""


class TestHealthGates:
    """A change that never becomes healthy stops at the canary, or rolls the canary back."""

    def _run(self, engine: Engine, mgmt: Kubectl, on_failure: str) -> tuple[Rollout, Kubectl]:
        ro = Rollout(engine, mgmt, ["cluster-1", "cluster-2"], f"""  rollout:
    progressDeadline: 8s
    onFailure: {on_failure}
    stages:
    - {{name: canary, clusterSelector: {{matchLabels: {{RING: canary}}}}}}
    - {{name: main}}
""", canary=["cluster-1"])
        ro.spec_extra += _HEALTH.replace("NS", ro.ns)
        ro.publish(1, body=_NEVER_READY.replace("SELECTOR", "{kubernetes.io/os: linux}"))
        ro.wait_complete(1, timeout=90)
        ro.publish(2, body=_NEVER_READY.replace("SELECTOR", "{flotilla.dev/no-such: node}"))
        return ro, engine.cluster("cluster-1")

    def test_pause_names_the_cluster(self, engine: Engine, mgmt: Kubectl) -> None:
        ro, canary = self._run(engine, mgmt, "Pause")
        st = eventually(lambda: (s := ro.status()).get("rollout", {}).get("phase") == "Failed"
                        and s, timeout=60, what="rollout stopped")
        failed = st["rollout"]["failedClusters"]
        assert [f["cluster"] for f in failed] == [f"{FLEET_NS}/cluster-1"]
        assert "8s" in failed[0]["reason"] or "deadline" in failed[0]["reason"].lower()
        assert st["rollout"]["stage"] == "canary"
        assert ro.summaries()["cluster-2"]["spec"]["revision"] == 1, "main stage was touched"
        dep = engine.cluster("cluster-2").json("get", "deployment", "web", "-n", ro.ns)
        assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert canary.json("get", "deployment", "web", "-n", ro.ns)["spec"]["template"][
            "spec"]["nodeSelector"] == {"flotilla.dev/no-such": "node"}
        ro.close()

    def test_rollback_restores_the_canary(self, engine: Engine, mgmt: Kubectl) -> None:
        ro, canary = self._run(engine, mgmt, "Rollback")

        def rolled_back() -> bool:
            dep = canary.json("get", "deployment", "web", "-n", ro.ns)
            return dep["spec"]["template"]["spec"]["nodeSelector"] == {
                "kubernetes.io/os": "linux"}

        eventually(rolled_back, timeout=60, what="canary back at revision 1")
        st = eventually(lambda: (s := ro.status()).get("rollout", {}).get("phase") in (
            "RollingBack", "Failed") and s, what="rollback recorded")
        assert st["rollout"]["failedClusters"][0]["cluster"] == f"{FLEET_NS}/cluster-1"
        assert ro.summaries()["cluster-2"]["spec"]["revision"] == 1
        ro.close()


class TestUndo:
    """`flotilla rollout undo --to-revision N` restores N everywhere through the stages."""

    def test_undo(self, engine: Engine, mgmt: Kubectl) -> None:
        ro = Rollout(engine, mgmt, API_ONLY, """  maxUpdate: 1
  rollout:
    stages:
    - {name: canary, clusterSelector: {matchLabels: {RING: canary}}}
    - {name: main}""", canary=["cluster-4"])
        for version in (1, 2):
            ro.publish(version)
            ro.wait_complete(version)
        cli = [sys.executable, "-m", "engine.cli", "rollout"]
        kc = ["--kubeconfig", engine.fleet.management.kubeconfig]
        history = json.loads(subprocess.run([*cli, "history", ro.name, *kc, "-o", "json"],
                                            capture_output=True, text=True, check=True).stdout)
        assert [r["revision"] for r in history] == [1, 2], history
        assert history[1]["clusters"] == sorted(API_ONLY), history  # everyone runs 2
        subprocess.run([*cli, "undo", ro.name, "--to-revision", "1", *kc], check=True,
                       capture_output=True)
        ro.wait_complete(1)
        for cluster in API_ONLY:
            cm = engine.cluster(cluster).json("get", "configmap", "app", "-n", ro.ns)
            assert cm["data"]["version"] == "1", cluster
        status = subprocess.run([*cli, "status", ro.name, *kc], capture_output=True, text=True,
                                check=True).stdout
        assert "rollout Complete" in status
        ro.close()


class TestPauseResume:
    """Pausing through the CLI (a plain spec patch) holds the rollout; resuming finishes it."""

    def test_pause_and_resume(self, engine: Engine, mgmt: Kubectl) -> None:
        ro = Rollout(engine, mgmt, API_ONLY, "  maxUpdate: 1\n  rollout: {minSuccessTime: 2s}")
        ro.publish(1)
        ro.wait_complete(1)
        cli = [sys.executable, "-m", "engine.cli", "rollout"]
        kc = ["--kubeconfig", engine.fleet.management.kubeconfig]
        ro.spec_extra = "  maxUpdate: 1\n  rollout: {minSuccessTime: 2s, paused: true}"
        ro.publish(2)
        eventually(lambda: ro.status().get("phase") == "Paused", what="paused")
        # Paused is the controller's decision for revision 2: it moved nobody (resuming, below,
        # shows the same rollout does move them).
        assert ro.at(2) == []
        subprocess.run([*cli, "resume", ro.name, *kc], check=True, capture_output=True)
        ro.wait_complete(2)
        ro.close()


class TestDurability:
    """A controller killed mid-rollout resumes it and rewrites no finished cluster."""

    def test_sigkill_mid_rollout(self, engine: Engine, mgmt: Kubectl) -> None:
        ro = Rollout(engine, mgmt, API_ONLY, "  maxUpdate: 1\n  rollout: {minSuccessTime: 3s}")
        ro.publish(1)
        ro.wait_complete(1)
        ro.publish(2)
        first = eventually(lambda: ro.at(2), timeout=30, what="first cluster done")[0]
        engine.stop(signal.SIGKILL)
        done = engine.cluster(first).json("get", "configmap", "app", "-n", ro.ns)
        applied = [r["lastAppliedTime"] for r in ro.summaries()[first]["status"]["services"]]
        engine.start()
        ro.wait_complete(2, timeout=90)
        after = engine.cluster(first).json("get", "configmap", "app", "-n", ro.ns)
        assert after["metadata"]["resourceVersion"] == done["metadata"]["resourceVersion"]
        assert [r["lastAppliedTime"] for r in ro.summaries()[first]["status"]["services"]] \
            == applied
        assert json.loads(json.dumps(after["data"])) == {"version": "2"}
        ro.close()
