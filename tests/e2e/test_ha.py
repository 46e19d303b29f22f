"""Two controller replicas on one Lease: one reconciles, the other takes over.

The session's controller (no election) is stopped for these tests and
started again afterwards. Writes to the workload clusters are counted from
the workload API servers' own `apiserver_request_total`, for the resources
the test profile deploys, so "no re-apply after failover" is measured where
it would happen, not inferred from the controller's log.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import FLEET_NS, Engine, Kubectl, eventually, reconciles, role, workload_writes

from engine.devfleet import procs

# Short timings keep the test quick; the production defaults are 15 / 10 / 2.
LEASE = ("--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1")


class Replicas:
    """Controller processes with --leader-elect on one Lease, each with its health port."""

    def __init__(self, engine: Engine, mgmt: Kubectl, workdir: Path) -> None:
        self.engine, self.mgmt, self.workdir = engine, mgmt, workdir
        self.lease = f"ha-{uuid.uuid4().hex[:6]}"
        self.started: list[tuple[Engine, int]] = []

    def start(self) -> tuple[Engine, int]:
        port = procs.free_port()
        replica = Engine(self.engine.fleet, self.engine.repo, self.mgmt,
                         self.workdir / f"r{len(self.started)}",
                         extra=("--leader-elect", "--lease-name", self.lease,
                                "--lease-namespace", "flotilla-system", "--health-port",
                                str(port), *LEASE))
        replica.workdir.mkdir(parents=True)
        replica.start()
        self.started.append((replica, port))
        eventually(lambda: role(port) in ("leading", "standby"), timeout=60,
                   what="replica ready")
        return replica, port

    def stop_all(self) -> None:
        for replica, _ in self.started:
            replica.stop()
        self.mgmt("delete", "lease", "-n", "flotilla-system", self.lease, check=False)


@pytest.fixture
def replicas(engine: Engine, mgmt: Kubectl, tmp_path: Path) -> Iterator[Replicas]:
    engine.stop()
    group = Replicas(engine, mgmt, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
        engine.start()


def test_failover_and_handover(replicas: Replicas, engine: Engine, mgmt: Kubectl) -> None:
    uid = uuid.uuid4().hex[:6]
    # Unique names: api-only clusters have no namespace controller, so a withdrawn
    # namespace stays Terminating and cannot be reused by the next run.
    name, label, ns = f"ha-{uid}", f"ha-{uid}", f"ha-app-{uid}"
    # API-only clusters: no controller-manager writing ConfigMaps into new namespaces.
    clusters = [c.name for c in engine.fleet.clusters if not c.full][-2:]
    workloads = {c: engine.cluster(c) for c in clusters}
    deployed = ("configmaps", "namespaces")
    first, first_port = replicas.start()
    eventually(lambda: role(first_port) == "leading", timeout=30, what="first replica leads")
    second, second_port = replicas.start()
    assert role(second_port) == "standby"

    before = {c: workload_writes(k, deployed) for c, k in workloads.items()}
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
    metadata: {{name: {name}, namespace: {ns}}}
    data: {{version: "1"}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]
""")
    try:
        for cluster in clusters:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}=on")
        engine.wait_ready(name, len(clusters))
        deployed_writes = {c: workload_writes(k, deployed) for c, k in workloads.items()}
        # The counter sees our deploys (so an unchanged count below means something).
        assert all(deployed_writes[c] > before[c] for c in clusters), (before, deployed_writes)
        # Exactly one replica reconciles.
        assert reconciles(first) > 0 and reconciles(second) == 0

        # SIGKILL the leader: the standby takes over within the lease, writes nothing new.
        killed = time.monotonic()
        first.stop(signal.SIGKILL)
        eventually(lambda: role(second_port) == "leading", timeout=6 + 1 + 5, interval=0.1,
                   what="standby takes over")
        took = time.monotonic() - killed
        assert took <= 6 + 1 + 1, f"takeover after {took:.1f}s, lease 6s + retry 1s"
        eventually(lambda: reconciles(second) > 0, timeout=30, what="new leader reconciles")
        engine.wait_ready(name, len(clusters))
        # Every summary was looked at again by the new leader before we compare.
        summaries = len(mgmt.json("get", "clustersummaries", "-A")["items"])
        eventually(lambda: reconciles(second, "summary") >= summaries, timeout=30,
                   what="summaries reconciled by the new leader")
        after = {c: workload_writes(k, deployed) for c, k in workloads.items()}
        assert after == deployed_writes, "the new leader re-applied unchanged clusters"

        # The new leader deploys a change (it really reconciles, not just holds the Lease).
        mgmt("patch", "configmap", "-n", "flotilla-system", name, "--type", "merge", "-p",
             '{"data": {"objects.yaml": "apiVersion: v1\\nkind: Namespace\\nmetadata: {name: '
             + ns + '}\\n---\\napiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: ' + name
             + ', namespace: ' + ns + '}\\ndata: {version: \\"2\\"}\\n"}}')
        for kubectl in workloads.values():
            eventually(lambda k=kubectl: (k.get("configmap", name, "-n", ns) or {}).get(
                "data", {}).get("version") == "2", timeout=60, what="change deployed")

        # SIGTERM releases the Lease: a fresh standby leads within 2 s.
        _third, third_port = replicas.start()
        assert role(third_port) == "standby"
        asked = time.monotonic()
        second.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        eventually(lambda: role(third_port) == "leading", timeout=10, interval=0.05,
                   what="hand-over after SIGTERM")
        handover = time.monotonic() - asked
        assert handover <= 2.0, f"hand-over took {handover:.2f}s"
        second.stop()
    finally:
        # Withdrawn by whichever controller runs next (the session's, restarted by the fixture).
        mgmt("delete", "clusterprofile", name, "--wait=false", check=False)
        for cluster in clusters:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}-", check=False)
        mgmt("delete", "configmap", "-n", "flotilla-system", name, check=False)
