"""Checks around a profile's work on a cluster, on the real fleet: preDeployChecks hold the
deployment, Sveltos' preDeleteChecks hold the withdrawal, postDeleteChecks hold the summary
after everything was removed. Each check reads a ConfigMap the test edits on the cluster.
"""

from __future__ import annotations

import uuid
from typing import Any

from fleetkit import FLEET_NS, Engine, Kubectl, eventually

from engine import api

CLUSTER = "cluster-2"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _check(name: str, ns: str, obj: str, key: str) -> str:
    return (f"  - {{name: {name}, version: v1, kind: ConfigMap, namespace: {ns}, "
            f"objectName: {obj}, evaluateCEL: [{{name: {key}, rule: "
            f"\"has(resource.data.{key}) && resource.data.{key} == 'yes'\"}}]}}\n")


def _summary(mgmt: Kubectl, name: str) -> dict[str, Any] | None:
    items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                      f"{api.PROFILE_NAME_LABEL}={name}")["items"]
    return items[0] if items else None


def _status(mgmt: Kubectl, name: str) -> dict[str, Any]:
    return dict((_summary(mgmt, name) or {}).get("status") or {})


class TestChecks:
    """Each check holds its step, says which check and why, and lets go once it passes."""

    def test_pre_deploy_pre_delete_and_post_delete(self, engine: Engine,
                                                   mgmt: Kubectl) -> None:
        name, label = f"ck-{_uid()}", f"t-{_uid()}"
        ns, gates = f"ck-{_uid()}", f"gates-{_uid()}"
        target = engine.cluster(CLUSTER)
        target("create", "namespace", gates)
        target("create", "configmap", "gate", "-n", gates)
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-objs, namespace: flotilla-system}}
data:
  cm.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: app, namespace: {ns}}}, data: {{a: b}}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}-objs}}]
  preDeployChecks:
{_check("opened", gates, "gate", "deploy")}  preDeleteChecks:
{_check("drained", gates, "gate", "remove")}  postDeleteChecks:
{_check("cleaned", gates, "gate", "gone")}""")
        try:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")

            # preDeployChecks: nothing is deployed while the check fails.
            held = eventually(lambda: (st := _status(mgmt, name)).get("message", "").startswith(
                "waiting for preDeployChecks opened") and st, timeout=30,
                what="deployment held by preDeployChecks")
            assert held["phase"] == "Provisioning"
            assert target.get("configmap", "app", "-n", ns) is None
            target("patch", "configmap", "gate", "-n", gates, "-p", '{"data":{"deploy":"yes"}}')
            engine.wait_ready(name, 1)
            assert target.get("configmap", "app", "-n", ns) is not None

            # preDeleteChecks: unmatched, but nothing is removed while the check fails.
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}-")
            eventually(lambda: _status(mgmt, name).get("message", "").startswith(
                "withdrawal waits for preDeleteChecks drained"), timeout=30,
                what="withdrawal held by preDeleteChecks")
            assert _status(mgmt, name)["phase"] == "Removing"
            assert target.get("configmap", "app", "-n", ns) is not None

            # postDeleteChecks: removed, but the summary stays until the check passes.
            target("patch", "configmap", "gate", "-n", gates, "-p", '{"data":{"remove":"yes"}}')
            eventually(lambda: target.get("configmap", "app", "-n", ns) is None, timeout=30,
                       what="withdrawn once preDeleteChecks pass")
            status = eventually(lambda: (st := _status(mgmt, name)).get("message", "")
                                .startswith("withdrawn; waiting for postDeleteChecks cleaned")
                                and st, timeout=30, what="summary held by postDeleteChecks")
            assert status["inventory"] == []
            target("patch", "configmap", "gate", "-n", gates, "-p", '{"data":{"gone":"yes"}}')
            eventually(lambda: _summary(mgmt, name) is None, timeout=30,
                       what="summary gone once postDeleteChecks pass")
        finally:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}-")
            target("patch", "configmap", "gate", "-n", gates, "-p",
                   '{"data":{"deploy":"yes","remove":"yes","gone":"yes"}}', check=False)
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=60s")
            mgmt("delete", "configmap", "-n", "flotilla-system", f"{name}-objs",
                 "--ignore-not-found")
            target("delete", "namespace", gates, "--wait=false")
