"""Sveltos' deploy-path fields on the real fleet: patches, patchesFrom, extraLabels/Annotations,
policyRefs' tier / optional / skipNamespaceCreation / deploymentType, maxConsecutiveFailures,
and the Unsupported condition for fields accepted but not honoured.

Each test uses its own profile name, label key and namespaces on cluster-2 (an API-only cluster
in every fleet shape), so it can share the fleet with other tests.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fleetkit import FLEET_NS, Engine, Kubectl, condition, eventually

from engine import api


def _uid() -> str:
    return uuid.uuid4().hex[:6]


CLUSTER = "cluster-2"


def _label(mgmt: Kubectl, label: str, on: bool = True) -> None:
    mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER,
         f"{label}=on" if on else f"{label}-", "--overwrite")


def _summary(mgmt: Kubectl, name: str) -> dict[str, Any]:
    items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                      f"{api.PROFILE_NAME_LABEL}={name}")["items"]
    return dict(items[0].get("status") or {}) if items else {}


def _rows(mgmt: Kubectl, name: str) -> list[dict[str, Any]]:
    return list(_summary(mgmt, name).get("services") or [])


def _cleanup(mgmt: Kubectl, name: str, label: str, *configmaps: str) -> None:
    _label(mgmt, label, on=False)
    mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=60s")
    for cm in configmaps:
        mgmt("delete", "configmap", "-n", "flotilla-system", cm, "--ignore-not-found")


class TestPatchesAndExtraMarks:
    """A chart's objects and a policyRef's manifests are patched and labelled the same way."""

    def test_chart_and_manifests(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label, ns = f"pt-{_uid()}", f"t-{_uid()}", f"pt-{_uid()}"
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-objs, namespace: flotilla-system}}
data:
  objs.yaml: |
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: plain, namespace: {ns}, labels: {{app: plain}}}}
    spec:
      replicas: 1
      selector: {{matchLabels: {{app: plain}}}}
      template:
        metadata: {{labels: {{app: plain}}}}
        spec:
          containers: [{{name: app, image: "registry.k8s.io/pause:3.10"}}]
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: settings, namespace: {ns}, labels: {{team: theirs}}}}
    data: {{level: low}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-patches, namespace: flotilla-system}}
data:
  more.yaml: |
    - target: {{kind: ConfigMap, name: settings}}
      patch: |
        - {{op: add, path: /data/cluster, value: "{{{{ cluster.metadata.name }}}}"}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  extraLabels: {{team: platform, cost-center: "42"}}
  extraAnnotations: {{contact: sre@example.com}}
  helmCharts:
  - {{repositoryURL: '{engine.repo.url}', chartName: standin-app, chartVersion: '0.1.0',
      releaseName: web, releaseNamespace: {ns}}}
  policyRefs:
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-objs}}
  patches:
  - target: {{group: apps, kind: Deployment, labelSelector: "app.kubernetes.io/instance in (web)"}}
    patch: |
      apiVersion: apps/v1
      kind: Deployment
      metadata: {{name: ignored}}
      spec:
        replicas: 3
        template:
          spec:
            containers:
            - name: app
              env: [{{name: CLUSTER, value: "{{{{ cluster.metadata.name }}}}"}}]
  - patch: |
      apiVersion: apps/v1
      kind: Deployment
      metadata: {{name: plain, namespace: {ns}}}
      spec: {{replicas: 2}}
  - target: {{kind: ConfigMap, name: "set.*"}}
    patch: '[{{op: replace, path: /data/level, value: high}}]'
  patchesFrom:
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-patches}}
""")
        target = engine.cluster(CLUSTER)
        try:
            _label(mgmt, label)
            engine.wait_ready(name, 1)
            chart = target.get("deployment", "web", "-n", ns)
            plain = target.get("deployment", "plain", "-n", ns)
            settings = target.get("configmap", "settings", "-n", ns)
            chart_cm = target.get("configmap", "web", "-n", ns)
            assert chart and plain and settings and chart_cm
            for obj in (chart, plain, settings, chart_cm):
                assert obj["metadata"]["labels"]["team"] == "platform"
                assert obj["metadata"]["labels"]["cost-center"] == "42"
                assert obj["metadata"]["annotations"]["contact"] == "sre@example.com"
            # The chart's Deployment: strategic merge by container name, templated per cluster.
            assert chart["spec"]["replicas"] == 3
            (app,) = chart["spec"]["template"]["spec"]["containers"]
            assert app["name"] == "app" and app["image"]  # the chart's image kept
            assert {"name": "CLUSTER", "value": CLUSTER} in app["env"]
            assert chart["metadata"]["name"] == "web"  # the patch's own name was not applied
            # The policyRef's Deployment: a targetless SMP naming it; not the chart's patch.
            assert plain["spec"]["replicas"] == 2
            assert "env" not in plain["spec"]["template"]["spec"]["containers"][0]
            # JSON 6902 from spec.patches and from patchesFrom, on a name regex.
            assert settings["data"] == {"level": "high", "cluster": CLUSTER}
            assert chart_cm["metadata"]["labels"]["app.kubernetes.io/instance"] == "web"

            # A patchesFrom edit is a new revision, and reaches the cluster.
            revision = engine.profile(name)["status"]["revision"]
            edited = ("- target: {kind: ConfigMap, name: settings}\n  patch: '[{op: add, path: "
                      "/data/cluster, value: \"edited-{{ cluster.metadata.name }}\"}]'\n")
            mgmt("patch", "configmap", "-n", "flotilla-system", f"{name}-patches", "--type",
                 "merge", "-p", json.dumps({"data": {"more.yaml": edited}}))
            eventually(lambda: (target.get("configmap", "settings", "-n", ns) or {})
                       .get("data") == {"level": "high", "cluster": f"edited-{CLUSTER}"},
                       timeout=60, what="patchesFrom edit applied")
            assert engine.profile(name)["status"]["revision"] > revision
            # Chart and manifest objects of the same kinds: drift sees both as they are.
            eventually(lambda: _summary(mgmt, name).get("phase") == "Provisioned"
                       and not _summary(mgmt, name).get("drift"), timeout=30, what="no drift")
            time.sleep(3)  # drift checks follow watch events; give a false report time to show
            assert not _summary(mgmt, name).get("drift")
        finally:
            _cleanup(mgmt, name, label, f"{name}-objs", f"{name}-patches")

    def test_a_patch_that_cannot_apply_names_its_field(self, engine: Engine,
                                                       mgmt: Kubectl) -> None:
        name, label, ns = f"pb-{_uid()}", f"t-{_uid()}", f"pb-{_uid()}"
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-objs, namespace: flotilla-system}}
data:
  cm.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c, namespace: {ns}}}, data: {{a: b}}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}-objs}}]
  patches:
  - {{target: {{kind: ConfigMap}}, patch: '[{{op: replace, path: /data/missing, value: x}}]'}}
""")
        try:
            _label(mgmt, label)

            def failed() -> dict[str, Any] | None:
                items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                                  f"{api.PROFILE_NAME_LABEL}={name}")["items"]
                st = (items[0].get("status") or {}) if items else {}
                return st if st.get("phase") == "Failed" else None

            status = eventually(failed, timeout=30, what="summary failed on the patch")
            assert "spec.patches[0]" in status["message"]
            assert "ConfigMap" in status["message"]
            assert engine.cluster(CLUSTER).get("configmap", "c", "-n", ns) is None
        finally:
            _cleanup(mgmt, name, label, f"{name}-objs")


class TestPolicyRefFields:
    """tier between a profile's own refs, optional refs, skipNamespaceCreation, Local refs."""

    def test_tier_optional_local_and_namespaces(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label = f"pr-{_uid()}", f"t-{_uid()}"
        ns, made = f"pr-{_uid()}", f"pr-{_uid()}"
        target = engine.cluster(CLUSTER)
        target("create", "namespace", made)

        def cm(suffix: str, level: str, where: str = ns) -> str:
            return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-{suffix}, namespace: flotilla-system}}
data:
  cm.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: shared, namespace: {where}}},
     data: {{level: {level}}}}}
---"""
        mgmt.apply(cm("low", "from-tier-10") + cm("high", "from-tier-200") +
                   cm("local", "local") + cm("skip", "skip", where=made) + f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs:
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-high, tier: 200}}
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-low, tier: 10}}
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-absent, optional: true}}
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-local, deploymentType: Local}}
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-skip,
      skipNamespaceCreation: true}}
""")
        try:
            _label(mgmt, label)
            profile = engine.wait_ready(name, 1)
            # The lower policyRef tier's copy of the shared object is the one deployed.
            assert target.get("configmap", "shared", "-n", ns)["data"] == {
                "level": "from-tier-10"}
            # skipNamespaceCreation into a namespace that exists works.
            assert target.get("configmap", "shared", "-n", made)["data"] == {"level": "skip"}
            # The Local ref deployed nothing anywhere, and says so.
            assert mgmt.get("configmap", "shared", "-n", ns) is None
            unsupported = condition(profile, "Unsupported")
            assert unsupported and unsupported["status"] == "True"
            assert unsupported["reason"] == "UnsupportedField"
            assert "spec.policyRefs[3].deploymentType" in unsupported["message"]
            rows = [r["name"] for r in _rows(mgmt, name)]
            assert sorted(rows) == sorted([f"ConfigMap/{ns}/shared", f"ConfigMap/{made}/shared"])
        finally:
            _cleanup(mgmt, name, label, *(f"{name}-{s}" for s in ("low", "high", "local", "skip")))
            target("delete", "namespace", made, "--wait=false")

    def test_skip_namespace_creation_and_max_consecutive_failures(
            self, engine: Engine, mgmt: Kubectl) -> None:
        name, label, ns = f"pm-{_uid()}", f"t-{_uid()}", f"pm-{_uid()}"
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-objs, namespace: flotilla-system}}
data:
  cm.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c, namespace: {ns}}}, data: {{a: b}}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  maxConsecutiveFailures: 2
  policyRefs:
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-objs,
      skipNamespaceCreation: true}}
""")
        target = engine.cluster(CLUSTER)
        try:
            _label(mgmt, label)

            def gave_up() -> dict[str, Any] | None:
                rows = _rows(mgmt, name)
                return rows[0] if rows and rows[0]["status"] == "FailedNonRetriable" else None

            row = eventually(gave_up, timeout=45, what="FailedNonRetriable after 2 failures")
            assert row["consecutiveFailures"] == 2 and row["reason"] == "NamespaceNotFound"
            assert "gave up after 2 consecutive failures" in row["message"]
            assert f"namespace {ns} does not exist (skipNamespaceCreation)" in row["message"]
            # The namespace was not created for it.
            assert target.get("namespace", ns) is None
        finally:
            _cleanup(mgmt, name, label, f"{name}-objs")


class TestUnsupported:
    """Fields accepted but not honoured: the profile says which, with their paths."""

    def test_condition_names_each_field(self, engine: Engine, mgmt: Kubectl) -> None:
        name = f"un-{_uid()}"
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{nobody-{_uid()}: "on"}}}}
  reloader: true
  setRefs: [prod]
  kustomizationRefs:
  - {{kind: GitRepository, namespace: flux-system, name: repo, path: ./apps}}
""")
        try:
            def reported() -> dict[str, Any] | None:
                found = condition(engine.profile(name), "Unsupported")
                return found if found and found["status"] == "True" else None

            cond = eventually(reported, timeout=30, what="Unsupported condition")
            assert cond["reason"] == "UnsupportedField"
            for path in ("spec.reloader", "spec.setRefs", "spec.kustomizationRefs[0]"):
                assert path in cond["message"]
            assert "Flux sources are out of scope" in cond["message"]
            events = mgmt.json("get", "events", "-A", "--field-selector",
                               f"involvedObject.name={name},reason=UnsupportedField")["items"]
            assert events and "spec.reloader" in events[0]["message"]
            mgmt("patch", "clusterprofile", name, "--type", "json", "-p",
                 '[{"op": "remove", "path": "/spec/reloader"}, {"op": "remove", "path": '
                 '"/spec/setRefs"}, {"op": "remove", "path": "/spec/kustomizationRefs"}]')
            eventually(lambda: (condition(engine.profile(name), "Unsupported") or {})
                       .get("status") == "False", timeout=30, what="Unsupported cleared")
        finally:
            mgmt("delete", "clusterprofile", name, "--ignore-not-found")
