"""validateHealths written the Sveltos way, on a full cluster whose simulated nodes run pods.

One profile: a chart's Deployment judged by a Helm-feature check with two named CEL rules
(the first that returns true decides, and is named in status) and by a Lua script, while a
decoy Deployment in the same namespace stays out through labelFilters. Then jobCheck: a
Job from a ConfigMap, run on the cluster (the node simulator finishes its pod, or fails it
when told to), whose outcome is the verdict.
"""

from __future__ import annotations

import uuid
from typing import Any

from fleetkit import FLEET_NS, Engine, Kubectl, eventually

from engine import api
from engine.devfleet import nodesim

FULL = "cluster-1"

LUA = """\
function evaluate()
  local want, status = obj.spec.replicas or 1, obj.status or {}
  -- Pods of the current template only: a rolling update keeps the old ones available.
  local have = math.min(status.updatedReplicas or 0, status.availableReplicas or 0)
  if (status.observedGeneration or 0) < obj.metadata.generation then
    return {healthy = false, message = "the new spec is not observed yet"}
  end
  if have == want then
    return {healthy = true, message = ""}
  end
  return {healthy = false, message = have .. "/" .. want .. " replicas available"}
end
"""


def _profile(name: str, label: str, ns: str, engine: Engine, values: str) -> str:
    lua = "\n".join("      " + line for line in LUA.splitlines())
    return f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  helmCharts:
  - {{repositoryURL: '{engine.repo.url}', chartName: standin-app, chartVersion: '0.1.0',
      releaseName: web, releaseNamespace: {ns}, values: {values}}}
  validateHealths:
  - name: web-cel
    featureID: Helm
    group: apps
    version: v1
    kind: Deployment
    namespace: {ns}
    labelFilters:
    - {{key: app.kubernetes.io/instance, operation: Equal, value: web}}
    evaluateCEL:
    - name: scaled-down
      rule: resource.spec.replicas == 0
    - name: available
      rule: >-
        resource.status.observedGeneration >= resource.metadata.generation &&
        has(resource.status.updatedReplicas) &&
        resource.status.updatedReplicas == resource.spec.replicas &&
        has(resource.status.availableReplicas) &&
        resource.status.availableReplicas == resource.spec.replicas
  - name: web-lua
    featureID: Helm
    group: apps
    version: v1
    kind: Deployment
    namespace: {ns}
    labelFilters:
    - {{key: app.kubernetes.io/part-of, operation: Has}}
    - {{key: decoy, operation: DoesNotHave}}
    script: |
{lua}
"""


def _summary_status(mgmt: Kubectl, name: str) -> dict[str, Any]:
    items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                      f"{api.PROFILE_NAME_LABEL}={name}")["items"]
    return dict(items[0].get("status") or {}) if items else {}


class TestSveltosHealthChecks:
    def test_rules_script_and_filters_gate_readiness(self, engine: Engine, mgmt: Kubectl) -> None:
        uid = uuid.uuid4().hex[:6]
        name, label, ns = f"hc-{uid}", f"t-{uid}", f"hc-{uid}"
        target = engine.cluster(FULL)
        # A Deployment that never becomes available, in the checked namespace: only the
        # label filters keep it out of both checks.
        target("create", "namespace", ns)
        target.apply(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: decoy, namespace: {ns}, labels: {{decoy: "yes"}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: decoy}}}}
  template:
    metadata: {{labels: {{app: decoy}}}}
    spec:
      nodeSelector: {{flotilla.dev/no-such-node: "true"}}
      containers: [{{name: app, image: registry.invalid/decoy:1}}]
""")
        try:
            mgmt.apply(_profile(name, label, ns, engine, "{replicas: 2}"))
            mgmt("label", "workloadcluster", "-n", FLEET_NS, FULL, f"{label}=on")
            engine.wait_ready(name, 1, timeout=90)
            status = _summary_status(mgmt, name)
            assert status["healthy"] is True
            assert f"validateHealths web-cel: Deployment {ns}/web healthy (rule available)" \
                in status["message"]
            assert f"validateHealths web-lua: Deployment {ns}/web healthy" in status["message"]
            assert target.json("get", "deployment", "web", "-n", ns)["status"][
                "availableReplicas"] == 2

            # Pods that cannot be scheduled: neither rule returns true, the script says why,
            # and the profile is no longer ready.
            mgmt.apply(_profile(name, label, ns, engine,
                                "{replicas: 2, nodeSelector: {flotilla.dev/no-such-node: 'x'}}"))

            def unhealthy() -> dict[str, Any] | None:
                st = _summary_status(mgmt, name)
                message = st.get("message", "")
                return st if "1/2 replicas available" in message and "web-cel" in message \
                    else None

            status = eventually(unhealthy, timeout=90, what="checks fail on unschedulable pods")
            assert "no rules returned true: scaled-down, available" in status["message"]
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            assert ready["status"] == "False" and ready["reason"] == "Unhealthy"

            # Scaled to zero: the first rule decides now, and status names it.
            mgmt.apply(_profile(name, label, ns, engine,
                                "{replicas: 0, nodeSelector: {flotilla.dev/no-such-node: 'x'}}"))

            def scaled_down() -> dict[str, Any] | None:
                st = _summary_status(mgmt, name)
                return st if st.get("healthy") and "(rule scaled-down)" in st.get(
                    "message", "") else None

            status = eventually(scaled_down, timeout=90, what="healthy by the first rule")
            assert f"validateHealths web-lua: Deployment {ns}/web healthy" in status["message"]
        finally:
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=90s")
            mgmt("label", "workloadcluster", "-n", FLEET_NS, FULL, f"{label}-")
            target("delete", "namespace", ns, "--ignore-not-found", "--wait=false")


def _job_profile(name: str, label: str, ns: str, *, fail: bool) -> str:
    pod_annotations = f'{{{nodesim.FAIL_ANNOTATION}: "true"}}' if fail else "{}"
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-job, namespace: flotilla-system}}
data:
  job.yaml: |
    apiVersion: batch/v1
    kind: Job
    metadata: {{name: smoke, namespace: {ns}}}
    spec:
      backoffLimit: 0
      template:
        metadata: {{annotations: {pod_annotations}}}
        spec:
          restartPolicy: Never
          containers: [{{name: probe, image: registry.invalid/curl:1}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-manifests, namespace: flotilla-system}}
data:
  objects.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: settings, namespace: {ns}}}
    data: {{owner: platform}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}-manifests}}]
  validateHealths:
  - name: smoke-test
    featureID: Resources
    jobCheck:
      jobRef: {{kind: ConfigMap, namespace: flotilla-system, name: {name}-job}}
      timeout: 2m
"""


class TestJobCheck:
    def test_the_jobs_outcome_is_the_verdict(self, engine: Engine, mgmt: Kubectl) -> None:
        uid = uuid.uuid4().hex[:6]
        label = f"t-{uid}"
        passing, failing = f"job-ok-{uid}", f"job-ko-{uid}"
        target = engine.cluster(FULL)
        try:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, FULL, f"{label}=on")
            mgmt.apply(_job_profile(passing, label, f"ok-{uid}", fail=False))
            engine.wait_ready(passing, 1, timeout=90)
            status = _summary_status(mgmt, passing)
            assert f"validateHealths smoke-test: Job ok-{uid}/smoke completed" in \
                status["message"]
            # Done with, as Sveltos leaves it: the Job is deleted.
            eventually(lambda: target.get("job", "smoke", "-n", f"ok-{uid}") is None,
                       what="passed Job cleaned up")

            mgmt.apply(_job_profile(failing, label, f"ko-{uid}", fail=True))

            def failed() -> dict[str, Any] | None:
                st = _summary_status(mgmt, failing)
                return st if "failed: BackoffLimitExceeded" in st.get("message", "") else None

            status = eventually(failed, timeout=90, what="the failed Job reported")
            assert status["healthy"] is False
            assert status["message"].startswith(f"validateHealths smoke-test: Job ko-{uid}/smoke")
            assert engine.profile(failing)["status"].get("ready") == 0
            # Kept for inspection until it is retried.
            assert target.get("job", "smoke", "-n", f"ko-{uid}") is not None
        finally:
            for name in (passing, failing):
                mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=90s")
                mgmt("delete", "configmap", "-n", "flotilla-system", f"{name}-job",
                     f"{name}-manifests", "--ignore-not-found")
            mgmt("label", "workloadcluster", "-n", FLEET_NS, FULL, f"{label}-")
            for ns in (f"ok-{uid}", f"ko-{uid}"):
                target("delete", "namespace", ns, "--ignore-not-found", "--wait=false")
