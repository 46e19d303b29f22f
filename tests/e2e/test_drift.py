"""Drift: seen per cluster within seconds, corrected only in the mode that asks, never looping."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetkit import (
    FLEET_NS,
    Engine,
    Helm,
    Kubectl,
    condition,
    drift_checked_since,
    eventually,
    metric_total,
)

from engine import api

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
                     f"{api.PROFILE_NAME_LABEL}={profile}")["items"][0]


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
        # The report is written after the check decided on corrections: none in Continuous
        # (the drift-mode test above shows the same edit reverted).
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
        checks = metric_total(engine, "flotilla_drift_checks_total")
        target("scale", "deployment/web", "-n", ns, "--replicas=5")
        drift_checked_since(engine, checks)
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
        checks = metric_total(engine, "flotilla_drift_checks_total")
        target("patch", "configmap", "settings", "-n", ns, "--type=merge",
               "-p", '{"data": {"level": "debug"}}')
        drift_checked_since(engine, checks)
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
        summaries = metric_total(engine, "flotilla_reconcile_total")
        mgmt.apply(json.dumps(cm))
        mgmt("patch", "clusterprofile", name, "--type=merge", "-p",
             '{"spec": {"tier": 90}}')
        # The controller has looked at the change (the profile's status caught up with its
        # generation, and reconciles ran since) and, OneTime, left the cluster alone.
        eventually(lambda: (engine.profile(name).get("status") or {}).get(
            "observedGeneration") == engine.profile(name)["metadata"]["generation"],
            what="profile reconciled")
        eventually(lambda: metric_total(engine, "flotilla_reconcile_total") > summaries,
                   what="reconciles after the change")
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


def _chart(engine: Engine, mgmt: Kubectl, chart: str) -> tuple[str, str, str]:
    """A ContinuousWithDriftDetection profile deploying one test chart as release `rel`."""
    name, label, ns = f"ch-{_uid()}", f"t-{_uid()}", f"ch-{_uid()}"
    mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  syncMode: ContinuousWithDriftDetection
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  helmCharts:
  - {{repositoryURL: '{engine.repo.url}', chartName: {chart}, chartVersion: 0.1.0,
     releaseName: rel, releaseNamespace: {ns}}}
""")
    mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
    engine.wait_ready(name, 1)
    return name, label, ns


def _revision(helm: Helm, ns: str) -> int:
    return int(json.loads(helm("status", "rel", "-n", ns, "-o", "json"))["version"])


def _dry_runs(engine: Engine, profile: str, result: str) -> float:
    """flotilla_drift_dry_runs_total for one profile and result, from the controller."""
    prefix = (f'flotilla_drift_dry_runs_total{{cluster="{FLEET_NS}/{CLUSTER}",'
              f'profile="{profile}",result="{result}"}} ')
    lines = [x for x in engine.metrics().splitlines() if x.startswith(prefix)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def _steady(probe: Callable[[], Any], expected: Any, *, seconds: float) -> None:
    """probe() keeps returning `expected` for `seconds` (longer than one helm upgrade)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert probe() == expected
        time.sleep(0.5)


def _pod_spec(kubectl: Kubectl, kind: str, name: str, ns: str) -> dict[str, Any]:
    spec: dict[str, Any] = kubectl.json("get", kind, name, "-n", ns)["spec"]["template"]["spec"]
    return spec


class TestServerView:
    """Fields the server drops, defaults or rewrites are not drift; real edits still are."""

    def test_defaulted_chart_stays_quiet_and_edits_are_corrected(
            self, engine: Engine, mgmt: Kubectl, tmp_path: Path) -> None:
        name, _, ns = _chart(engine, mgmt, "defaulted")
        target = engine.cluster(CLUSTER)
        helm = Helm(engine.kubeconfig(CLUSTER), tmp_path)
        try:
            # The first check writes Drifted; before the fix it found false drift and upgraded.
            first = eventually(lambda: condition(_summary(mgmt, name), "Drifted"),
                               timeout=30, what="first drift check")
            assert first["status"] == "False", first
            assert _revision(helm, ns) == 1
            # Detection is live: hostPID is false in the chart, so the server stores nothing;
            # setting it is drift all the same, and the release is upgraded once to undo it.
            target("patch", "daemonset", "rel-agent", "-n", ns, "--type=merge",
                   "-p", '{"spec": {"template": {"spec": {"hostPID": true}}}}')
            eventually(lambda: not _pod_spec(target, "daemonset", "rel-agent", ns).get("hostPID"),
                       timeout=15, what="hostPID corrected")
            eventually(lambda: _revision(helm, ns) == 2, what="one upgrade")
            # Changes that are not drift make checks run, each confirmed by a dry run…
            cleared = _dry_runs(engine, name, "cleared")
            for kind in ("deployment/rel", "service/rel", "daemonset/rel-agent"):
                target("annotate", kind, "-n", ns, "example.com/poked=yes", "--overwrite")
            eventually(lambda: _dry_runs(engine, name, "cleared") >= cleared + 3, timeout=15,
                       what="dry runs clearing the candidates of every poked object")
            # …and over a bounded window nothing is reported and nothing is upgraded.
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                assert _drift(mgmt, name) == []
                drifted = condition(_summary(mgmt, name), "Drifted")
                assert drifted is not None and drifted["status"] == "False", drifted
                assert _revision(helm, ns) == 2
                time.sleep(0.5)
            # A real edit of a field the server keeps is still found and corrected.
            target("set", "image", "deployment/rel", "-n", ns, "app=registry.invalid/evil:6")
            eventually(lambda: _pod_spec(target, "deployment", "rel", ns)["containers"][0][
                "image"] == "registry.invalid/flotilla/standin:1", timeout=15, what="image")
            eventually(lambda: _revision(helm, ns) == 3, what="one more upgrade")
            assert _dry_runs(engine, name, "confirmed") >= 2
        finally:
            mgmt("delete", "clusterprofile", name, "--timeout=60s")


# Fails every dry run in one namespace (nothing listens on port 9), and only dry runs:
# real writes do not match, so corrections still work.
_DRY_RUNS_DOWN = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {name}}}
webhooks:
- name: dry-runs.flotilla.test
  clientConfig: {{url: "https://127.0.0.1:9/validate"}}
  rules: [{{apiGroups: ["", apps], apiVersions: [v1], operations: [CREATE, UPDATE],
           resources: [configmaps, services, deployments, daemonsets]}}]
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  matchConditions: [{{name: dry-runs-only, expression: "request.dryRun == true"}}]
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 2
"""


class TestDryRunOutage:
    """Without dry runs the pure guess is reported, and nothing is corrected on its word alone."""

    def test_failed_dry_runs_report_without_correcting(
            self, engine: Engine, mgmt: Kubectl, tmp_path: Path) -> None:
        name, _, ns = _chart(engine, mgmt, "defaulted")
        target = engine.cluster(CLUSTER)
        helm = Helm(engine.kubeconfig(CLUSTER), tmp_path)
        hook = f"dry-runs-down-{ns}"

        def drifted() -> str:
            cond = condition(_summary(mgmt, name), "Drifted")
            return str(cond["message"]) if cond and cond["status"] == "True" else ""

        def image() -> str:
            return str(_pod_spec(target, "deployment", "rel", ns)["containers"][0]["image"])

        try:
            eventually(lambda: condition(_summary(mgmt, name), "Drifted"), what="first check")
            assert _revision(helm, ns) == 1
            target.apply(_DRY_RUNS_DOWN.format(name=hook, ns=ns))
            failed = _dry_runs(engine, name, "failed")
            # The Service's clusterIP "" is the server's to fill in: only a dry run tells.
            target("annotate", "service/rel", "-n", ns, "example.com/poked=1", "--overwrite")
            message = eventually(drifted, timeout=15, what="unconfirmed drift")
            assert _dry_runs(engine, name, "failed") > failed
            assert f"Service {ns}/rel: /spec/clusterIP (unconfirmed" in message, message
            assert f"until a dry run confirms it: Helm release {ns}/rel" in message, message
            # The zero values the server dropped are not reported even unconfirmed.
            assert [r["kind"] for r in _drift(mgmt, name)] == ["Service"]
            # A real edit is reported too, and waits for the server like the rest.
            target("set", "image", "deployment/rel", "-n", ns, "app=registry.invalid/evil:6")
            eventually(lambda: "/spec/template/spec/containers/0/image (unconfirmed" in drifted(),
                       timeout=15, what="the edit reported")
            _steady(lambda: (_revision(helm, ns), image()),
                    (1, "registry.invalid/evil:6"), seconds=5)
            # Dry runs back (a failed one is retried within 10 s): the edit is confirmed and
            # corrected by one upgrade, and the server's own answer clears the clusterIP.
            target("delete", "validatingwebhookconfiguration", hook)
            eventually(lambda: image() == "registry.invalid/flotilla/standin:1", timeout=30,
                       what="edit corrected once confirmed")
            eventually(lambda: not drifted() and _drift(mgmt, name) == [], timeout=15,
                       what="drift cleared")
            _steady(lambda: _revision(helm, ns), 2, seconds=5)
        finally:
            target("delete", "validatingwebhookconfiguration", hook, "--ignore-not-found")
            mgmt("delete", "clusterprofile", name, "--timeout=60s")


class TestReleaseFights:
    """An actor reverting object after object of one release backs off the release."""

    def test_fight_over_a_release_backs_off_its_upgrades(
            self, engine: Engine, mgmt: Kubectl, tmp_path: Path) -> None:
        name, _, ns = _chart(engine, mgmt, "defaulted")
        target = engine.cluster(CLUSTER)
        helm = Helm(engine.kubeconfig(CLUSTER), tmp_path)
        objects = ["configmap/rel", "service/rel", "deployment/rel", "daemonset/rel-agent"]
        stop = threading.Event()
        edits = 0

        def fighter() -> None:
            # Each edit hits the next object, so no single object is reverted often.
            nonlocal edits
            while not stop.is_set():
                target("label", objects[edits % len(objects)], "-n", ns, "--overwrite",
                       f"app.kubernetes.io/part-of=fighter-{edits}", check=False)
                edits += 1
                time.sleep(0.3)

        thread = threading.Thread(target=fighter, daemon=True)
        try:
            assert _revision(helm, ns) == 1
            thread.start()
            cond = eventually(lambda: (c := condition(_summary(mgmt, name), "DriftFight"))
                              and c["status"] == "True" and c, timeout=60, what="DriftFight")
            assert f"Helm release {ns}/rel" in cond["message"], cond
            fought = _revision(helm, ns)
            time.sleep(12)  # the first back-off (10 s) ends inside this window, once
            upgrades = _revision(helm, ns) - 1
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()
            mgmt("delete", "clusterprofile", name, "--timeout=60s")
        assert edits >= 30
        # Three corrections start the fight; after that one upgrade per back-off. Keyed per
        # object, the four objects would each be corrected three times before any waited.
        assert fought - 1 <= 4, f"{fought - 1} upgrades before the fight was declared"
        assert upgrades <= 5, f"{upgrades} upgrades against {edits} edits"


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
    """Server-side applies to Deployments that write, from the API server's own metrics.

    Dry runs (drift confirmation) carry dry_run="All" and are not counted.
    """
    total = 0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="deployments"' in line \
                and 'verb="APPLY"' in line and 'dry_run=""' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total
