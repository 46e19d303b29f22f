"""templateResourceRefs on the real fleet: a management-cluster ConfigMap named per cluster feeds
a chart's values and a patch through getResource(), and an edit of it is a new revision that
reaches the cluster. Runs on cluster-2 with its own names.
"""

from __future__ import annotations

import uuid
from typing import Any

from fleetkit import FLEET_NS, Engine, Kubectl, condition, eventually

CLUSTER = "cluster-2"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


class TestGetResource:
    """Values and patches read the object; editing it re-renders through a new revision."""

    def test_values_and_patches_read_it(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label, ns = f"tr-{_uid()}", f"t-{_uid()}", f"tr-{_uid()}"
        settings = f"{CLUSTER}-{name}"
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {settings}, namespace: {FLEET_NS}}}
data: {{greeting: hello-eu, replicas: "2"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-objs, namespace: flotilla-system}}
data:
  cm.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: plain, namespace: {ns}}}, data: {{a: b}}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  templateResourceRefs:
  - identifier: settings
    resource: {{kind: ConfigMap, name: "{{{{ cluster.metadata.name }}}}-{name}"}}
  - identifier: maybe
    optional: true
    resource: {{kind: Secret, namespace: flotilla-system, name: {name}-absent}}
  helmCharts:
  - repositoryURL: '{engine.repo.url}'
    chartName: standin-app
    chartVersion: '0.1.0'
    releaseName: web
    releaseNamespace: {ns}
    values: |
      replicas: {{{{ getResource("settings").data.replicas | int }}}}
      data:
        greeting: {{{{ getResource("settings").data.greeting }}}}
        secretKeys: "{{{{ getResource("maybe") | length }}}}"
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}-objs}}]
  patches:
  - target: {{kind: ConfigMap, name: plain}}
    patch: |
      - op: add
        path: /data/greeting
        value: "{{{{ getResource('settings').data.greeting }}}}"
""")
        target = engine.cluster(CLUSTER)
        try:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
            profile = engine.wait_ready(name, 1)
            unsupported = condition(profile, "Unsupported")
            assert unsupported and unsupported["status"] == "False"
            chart_cm = target.get("configmap", "web", "-n", ns)
            assert chart_cm and chart_cm["data"] == {"greeting": "hello-eu", "secretKeys": "0"}
            assert target.get("deployment", "web", "-n", ns)["spec"]["replicas"] == 2
            assert target.get("configmap", "plain", "-n", ns)["data"] == {
                "a": "b", "greeting": "hello-eu"}

            revision = profile["status"]["revision"]
            mgmt("patch", "configmap", "-n", FLEET_NS, settings, "-p",
                 '{"data": {"greeting": "hello-us"}}')

            def moved() -> dict[str, Any] | None:
                cm = target.get("configmap", "web", "-n", ns) or {}
                plain = target.get("configmap", "plain", "-n", ns) or {}
                return cm if (cm.get("data") or {}).get("greeting") == "hello-us" and \
                    (plain.get("data") or {}).get("greeting") == "hello-us" else None

            eventually(moved, timeout=60, what="an edit of the referenced object re-rendered")
            assert engine.profile(name)["status"]["revision"] > revision
            # The revision recorded the object as it read it (and so renders it).
            newest = max(mgmt.json("get", "controllerrevisions", "-n", "flotilla-system", "-l",
                                   f"flotilla.dev/profile-name={name}")["items"],
                         key=lambda r: r["revision"])
            kept = newest["data"]["content"]["configMaps"][
                f"Resource/v1/ConfigMap/{FLEET_NS}/{settings}"]
            assert '"greeting":"hello-us"' in kept["object"]
        finally:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}-")
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=60s")
            mgmt("delete", "configmap", "-n", "flotilla-system", f"{name}-objs",
                 "--ignore-not-found")
            mgmt("delete", "configmap", "-n", FLEET_NS, settings, "--ignore-not-found")

    def test_a_missing_object_names_the_field(self, engine: Engine, mgmt: Kubectl) -> None:
        name = f"tm-{_uid()}"
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterRefs: [{{namespace: {FLEET_NS}, name: {CLUSTER}}}]
  templateResourceRefs:
  - {{identifier: x, resource: {{kind: ConfigMap, name: "nothing-{name}"}}}}
""")
        try:
            def failed() -> dict[str, Any] | None:
                ready = condition(engine.profile(name), "Ready")
                return ready if ready and ready.get("reason") == "ReferenceNotFound" else None

            ready = eventually(failed, timeout=30, what="ReferenceNotFound")
            assert "spec.templateResourceRefs[0]" in ready["message"]
            assert f"ConfigMap {FLEET_NS}/nothing-{name} not found" in ready["message"]
        finally:
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=60s")
