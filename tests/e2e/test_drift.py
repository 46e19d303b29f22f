"""Drift: seen per cluster within seconds, corrected only in the mode that asks, never looping."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fleetkit import FLEET_NS, Engine, Helm, Kubectl, condition, eventually

CLUSTER = "cluster-3"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _deployment(name: str, ns: str, image: str = "registry.invalid/app:1") -> str:
    return f"""    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: {name}, namespace: {ns}}}
    spec:
      replicas: 2
      selector: {{matchLabels: {{app: {name}}}}}
      template:
        metadata: {{labels: {{app: {name}}}}}
        spec:
          containers: [{{name: app, image: "{image}"}}]
"""


def _setup(engine: Engine, mgmt: Kubectl, mode: str, *, extra: str = "",
           image: str = "registry.invalid/app:1") -> tuple[str, str, str]:
    name, label, ns = f"dr-{_uid()}", f"t-{_uid()}", f"dr-{_uid()}"
    mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: flotilla-system}}
data:
  deploy.yaml: |
{_deployment("web", ns, image)}
  cm.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: settings, namespace: {ns}}},
     data: {{level: info}}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  syncMode: {mode}
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]
{extra}""")
    mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
    engine.wait_ready(name, 1)
    return name, label, ns


def _summary(mgmt: Kubectl, profile: str) -> dict[str, Any]:
    return mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                     f"flotilla.dev/profile-name={profile}")["items"][0]


def _drift(mgmt: Kubectl, profile: str) -> list[dict[str, Any]]:
    return list((_summary(mgmt, profile).get("status") or {}).get("drift") or [])


def _image(kubectl: Kubectl, ns: str) -> str:
    dep = kubectl.json("get", "deployment", "web", "-n", ns)
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


class TestDetection:
    """Hand edits and deletions show up in status with their paths; the mode decides the rest."""

    def test_edit_is_reverted_in_drift_mode(self, engine: Engine, mgmt: Kubectl) -> None:
        name, _, ns = _setup(engine, mgmt, "ContinuousWithDriftDetection")
        target = engine.cluster(CLUSTER)
        target("set", "image", "deployment/web", "-n", ns, "app=registry.invalid/evil:6")
        edited = time.monotonic()
        eventually(lambda: _image(target, ns) == "registry.invalid/app:1", timeout=5,
                   interval=0.1, what="image reverted")
        assert time.monotonic() - edited <= 5
        mgmt("delete", "clusterprofile", name, "--timeout=60s")

    def test_edit_is_reported_in_continuous_mode(self, engine: Engine, mgmt: Kubectl) -> None:
        name, _, ns = _setup(engine, mgmt, "Continuous")
        target = engine.cluster(CLUSTER)
        target("set", "image", "deployment/web", "-n", ns, "app=registry.invalid/evil:6")
        edited = time.monotonic()
        rows = eventually(lambda: _drift(mgmt, name), timeout=5, interval=0.1,
                          what="drift reported")
        assert time.monotonic() - edited <= 2.5
        assert rows[0]["kind"] == "Deployment" and rows[0]["name"] == "web"
        assert "/spec/template/spec/containers/0/image" in rows[0]["paths"]
        assert rows[0]["detectedAt"]
        time.sleep(3)
        assert _image(target, ns) == "registry.invalid/evil:6", "Continuous must not correct"
        cond = condition(_summary(mgmt, name), "Drifted")
        assert cond and cond["status"] == "True"
        eventually(lambda: (engine.profile(name).get("status") or {}).get("drifted") == 1,
                   what="profile counts the drifted cluster")
        metrics = engine.metrics()
        assert f'flotilla_drifted_objects{{cluster="{FLEET_NS}/{CLUSTER}",profile="{name}"}} 1.0' \
            in metrics
        assert "flotilla_drift_detected_total{" in metrics
        mgmt("delete", "clusterprofile", name, "--timeout=60s")

    def test_deleted_object_recreated_or_reported(self, engine: Engine, mgmt: Kubectl) -> None:
        fixing, _, ns1 = _setup(engine, mgmt, "ContinuousWithDriftDetection")
        watching, _, ns2 = _setup(engine, mgmt, "Continuous")
        target = engine.cluster(CLUSTER)
        target("delete", "configmap", "settings", "-n", ns1)
        target("delete", "configmap", "settings", "-n", ns2)
        eventually(lambda: target.get("configmap", "settings", "-n", ns1), timeout=5,
                   what="deleted object recreated")
        rows = eventually(lambda: _drift(mgmt, watching), timeout=5, what="deletion reported")
        assert rows[0]["name"] == "settings" and rows[0]["paths"] == ["(deleted)"]
        assert target.get("configmap", "settings", "-n", ns2) is None
        for name in (fixing, watching):
            mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestExclusions:
    """An excluded path is neither reported nor reverted, and a later re-apply keeps it."""

    def test_excluded_replicas_survive(self, engine: Engine, mgmt: Kubectl) -> None:
        extra = ("  driftExclusions:\n  - paths: [/spec/replicas]\n"
                 "    target: {group: apps, kind: Deployment}\n")
        name, _, ns = _setup(engine, mgmt, "ContinuousWithDriftDetection", extra=extra)
        target = engine.cluster(CLUSTER)
        target("scale", "deployment/web", "-n", ns, "--replicas=5")
        time.sleep(3)
        assert target.json("get", "deployment", "web", "-n", ns)["spec"]["replicas"] == 5
        assert _drift(mgmt, name) == []
        # A profile change re-applies the Deployment: replicas stay where the "HPA" put them.
        cm = mgmt.json("get", "configmap", name, "-n", "flotilla-system")
        cm["data"]["deploy.yaml"] = cm["data"]["deploy.yaml"].replace("app:1", "app:2")
        mgmt.apply(json.dumps(cm))
        eventually(lambda: _image(target, ns) == "registry.invalid/app:2", what="re-applied")
        assert target.json("get", "deployment", "web", "-n", ns)["spec"]["replicas"] == 5
        mgmt("delete", "clusterprofile", name, "--timeout=60s")

    def test_annotation_opts_out(self, engine: Engine, mgmt: Kubectl) -> None:
        name, _, ns = _setup(engine, mgmt, "ContinuousWithDriftDetection")
        target = engine.cluster(CLUSTER)
        target("annotate", "configmap", "settings", "-n", ns, "flotilla.dev/drift-ignore=true")
        target("patch", "configmap", "settings", "-n", ns, "--type=merge",
               "-p", '{"data": {"level": "debug"}}')
        time.sleep(3)
        assert target.json("get", "configmap", "settings", "-n", ns)["data"]["level"] == "debug"
        assert _drift(mgmt, name) == []
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestFights:
    """An actor that keeps reverting an object gets a DriftFight condition, not a hot loop."""

    def test_fight_backs_off(self, engine: Engine, mgmt: Kubectl) -> None:
        name, _, ns = _setup(engine, mgmt, "ContinuousWithDriftDetection")
        target = engine.cluster(CLUSTER)
        applies_before = _applies(target)
        stop = threading.Event()
        edits = 0

        def fighter() -> None:
            nonlocal edits
            while not stop.is_set():
                target("set", "image", "deployment/web", "-n", ns,
                       f"app=registry.invalid/other:{edits}", check=False)
                edits += 1
                time.sleep(0.3)

        thread = threading.Thread(target=fighter, daemon=True)
        thread.start()
        try:
            cond = eventually(lambda: (c := condition(_summary(mgmt, name), "DriftFight"))
                              and c["status"] == "True" and c, timeout=30, what="DriftFight")
            assert "Deployment" in cond["message"] and "web" in cond["message"]
            time.sleep(10)
        finally:
            stop.set()
            thread.join()
        corrections = _applies(target) - applies_before
        assert edits >= 10
        assert corrections <= 8, f"{corrections} re-applies against {edits} edits"
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestModes:
    """DryRun changes nothing and reports exactly what would change; OneTime serves once."""

    def test_dry_run_reports_without_changing(self, engine: Engine, mgmt: Kubectl) -> None:
        name, _, ns = _setup(engine, mgmt, "Continuous")
        target = engine.cluster(CLUSTER)
        before = target.json("get", "configmap", "settings", "-n", ns)["metadata"]
        mgmt("patch", "clusterprofile", name, "--type=merge", "-p",
             '{"spec": {"syncMode": "DryRun"}}')
        cm = mgmt.json("get", "configmap", name, "-n", "flotilla-system")
        cm["data"]["cm.yaml"] = cm["data"]["cm.yaml"].replace("info", "debug")
        cm["data"]["new.yaml"] = ("{apiVersion: v1, kind: ConfigMap, metadata: {name: extra, "
                                  f"namespace: {ns}}}}}")
        mgmt.apply(json.dumps(cm))

        def report() -> list[dict[str, Any]] | None:
            st = _summary(mgmt, name).get("status") or {}
            rows = [r for r in st.get("services") or [] if r["message"].startswith("would")]
            return rows if st.get("phase") == "DryRun" and len(rows) == 2 else None

        rows = {r["name"]: r["message"] for r in eventually(report, what="dry-run report")}
        assert rows[f"ConfigMap/{ns}/settings"].startswith("would update")
        assert "/data/level" in rows[f"ConfigMap/{ns}/settings"]
        assert rows[f"ConfigMap/{ns}/extra"] == "would create"
        after = target.json("get", "configmap", "settings", "-n", ns)
        assert after["metadata"]["resourceVersion"] == before["resourceVersion"]
        assert after["data"]["level"] == "info"
        assert target.get("configmap", "extra", "-n", ns) is None
        mgmt("delete", "clusterprofile", name, "--timeout=60s")

    def test_one_time_serves_once(self, engine: Engine, mgmt: Kubectl) -> None:
        name, _, ns = _setup(engine, mgmt, "OneTime")
        target = engine.cluster(CLUSTER)
        cm = mgmt.json("get", "configmap", name, "-n", "flotilla-system")
        cm["data"]["cm.yaml"] = cm["data"]["cm.yaml"].replace("info", "debug")
        mgmt.apply(json.dumps(cm))
        mgmt("patch", "clusterprofile", name, "--type=merge", "-p",
             '{"spec": {"tier": 90}}')
        time.sleep(4)
        assert target.json("get", "configmap", "settings", "-n", ns)["data"]["level"] == "info"
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestCharts:
    """A drifted chart is redeployed alone; the profile's other charts keep their revision."""

    def test_only_the_drifted_chart_redeploys(self, engine: Engine, mgmt: Kubectl,
                                              tmp_path: Path) -> None:
        name, label, ns = f"ch-{_uid()}", f"t-{_uid()}", f"ch-{_uid()}"
        charts = "".join(
            f"  - {{repositoryURL: '{engine.repo.url}', chartName: {c}, chartVersion: 0.1.0, "
            f"releaseName: {c}, releaseNamespace: {ns}}}\n" for c in ("multi-a", "multi-b"))
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  syncMode: ContinuousWithDriftDetection
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  helmCharts:
{charts}""")
        mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
        engine.wait_ready(name, 1)
        target = engine.cluster(CLUSTER)
        helm = Helm(engine.kubeconfig(CLUSTER), tmp_path)
        time.sleep(2)
        target("patch", "configmap", "multi-a", "-n", ns, "--type=merge",
               "-p", '{"data": {"chart": "tampered"}}')
        eventually(lambda: target.json("get", "configmap", "multi-a", "-n", ns)["data"][
            "chart"] == "multi-a", timeout=10, what="multi-a corrected")
        revisions = {r["name"]: int(r["revision"])
                     for r in json.loads(helm("list", "-n", ns, "-o", "json"))}
        assert revisions["multi-a"] == 2 and revisions["multi-b"] == 1
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestPlan:
    """`flotilla plan` prints the per-cluster diff a profile would make, changing nothing."""

    def test_plan_prints_diff(self, engine: Engine, mgmt: Kubectl) -> None:
        name, _, ns = _setup(engine, mgmt, "Continuous")
        target = engine.cluster(CLUSTER)
        target("set", "image", "deployment/web", "-n", ns, "app=registry.invalid/evil:6")
        out = subprocess.run([sys.executable, "-m", "engine.cli", "plan", "--kubeconfig",
                              engine.fleet.management.kubeconfig, name],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"{FLEET_NS}/{CLUSTER}" in out.stdout
        assert f"update Deployment {ns}/web" in out.stdout
        assert "/spec/template/spec/containers/0/image" in out.stdout
        assert f"unchanged ConfigMap {ns}/settings" in out.stdout
        assert _image(target, ns) == "registry.invalid/evil:6"
        mgmt("delete", "clusterprofile", name, "--timeout=60s")


def _applies(kubectl: Kubectl) -> int:
    """Server-side applies to Deployments, from the API server's own metrics."""
    total = 0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="deployments"' in line \
                and 'verb="APPLY"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total
