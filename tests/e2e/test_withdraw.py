"""Withdrawal never hangs: an unreachable cluster is let go after --withdraw-timeout.

The cluster's API server is frozen with SIGSTOP (requests to it time out, as
with a cluster that vanished from the network) and thawed with SIGCONT in
`finally`, so the fleet is whole again for the next test.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

from fleetkit import FLEET_NS, WITHDRAW_TIMEOUT, Engine, Kubectl, condition, eventually

from engine import api
from engine.devfleet import fleet as devfleet

CLUSTER = "cluster-6"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


class TestUnreachableWithdrawal:
    """Deleting a profile whose cluster does not answer ends, with an Event naming what remains."""

    def test_profile_deleted_while_its_cluster_is_down(
            self, engine: Engine, mgmt: Kubectl, fleet: devfleet.Fleet) -> None:
        name, label, ns = f"wd-{_uid()}", f"t-{_uid()}", f"wd-{_uid()}"
        apiserver = next(c for c in fleet.clusters if c.name == CLUSTER).pids["apiserver"]
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: flotilla-system}}
data:
  objects.yaml: |
    apiVersion: v1
    kind: Namespace
    metadata: {{name: {ns}}}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: app, namespace: {ns}}}
    data: {{kept: "yes"}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]
""")
        mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
        stopped = False
        try:
            engine.wait_ready(name, 1)
            os.kill(apiserver, signal.SIGSTOP)
            stopped = True
            asked = time.monotonic()
            mgmt("delete", "clusterprofile", name, "--wait=false")

            def pending() -> dict[str, object] | None:
                items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                                  f"{api.PROFILE_NAME_LABEL}={name}")["items"]
                cond = condition(items[0], "Ready") if items else None
                return cond if cond and cond["reason"] == "WithdrawPending" else None

            cond = eventually(pending, timeout=30, what="WithdrawPending reported")
            assert "giving up in" in str(cond["message"])
            eventually(lambda: mgmt.get("clusterprofile", name) is None,
                       timeout=WITHDRAW_TIMEOUT + 40, interval=1, what="profile gone")
            took = time.monotonic() - asked
            assert took >= WITHDRAW_TIMEOUT - 2, f"let go after {took:.0f}s, before the timeout"
            events = mgmt.json("get", "events", "-n", FLEET_NS,
                               "--field-selector", "reason=WithdrawAbandoned")["items"]
            mine = [e for e in events if name in e["involvedObject"]["name"]]
            assert mine, events
            assert f"ConfigMap {ns}/app" in mine[0]["message"]
            assert f"Namespace {ns}" in mine[0]["message"]
        finally:
            if stopped:
                os.kill(apiserver, signal.SIGCONT)
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}-", check=False)
            mgmt("delete", "configmap", name, "-n", "flotilla-system", check=False)
        # The cluster is back. Nothing is queued for it any more (the summary is gone), so
        # no later attempt removes what was left: the Namespace — the item the frozen
        # first attempt never reached — is whole. (A request already on the wire when the
        # server froze may still complete when it thaws; that is not a new attempt.)
        work = engine.cluster(CLUSTER)
        eventually(lambda: work.run("get", "--raw", "/readyz", check=False).returncode == 0,
                   timeout=60, what="cluster answering again")
        assert mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                         f"{api.PROFILE_NAME_LABEL}={name}")["items"] == []
        assert work.get("namespace", ns) is not None
        work("delete", "namespace", ns, "--wait=false", check=False)


class TestStaleClaims:
    """What a profile deleted while no controller ran left behind does not block forever."""

    def test_a_mark_naming_a_profile_that_is_gone_is_taken_over(
            self, engine: Engine, mgmt: Kubectl) -> None:
        name, label, ns = f"st-{_uid()}", f"t-{_uid()}", f"st-{_uid()}"
        work = engine.cluster(CLUSTER)
        ghost, living = f"ClusterProfile//ghost-{_uid()}", f"ClusterProfile//{name}"
        work("create", "namespace", ns)
        # Marked as a gone profile's: the kind of leftover a deletion without a running
        # controller leaves. Equal tier, so only its staleness lets the new profile take it.
        work.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  namespace: {ns}
  labels: {{flotilla.dev/managed-by: flotilla}}
  annotations: {{flotilla.dev/owner: "{ghost}", flotilla.dev/tier: "100"}}
data: {{owner: ghost}}
""")
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: flotilla-system}}
data:
  app.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: app, namespace: {ns}}}
    data: {{owner: new}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]
""")
        mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
        try:
            engine.wait_ready(name, 1)
            cm = work.json("get", "configmap", "app", "-n", ns)
            assert cm["data"]["owner"] == "new"
            assert cm["metadata"]["annotations"]["flotilla.dev/owner"] == living
        finally:
            mgmt("delete", "clusterprofile", name, "--timeout=60s", check=False)
            mgmt("delete", "configmap", name, "-n", "flotilla-system", check=False)
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}-", check=False)
            work("delete", "namespace", ns, "--wait=false", check=False)
