"""Two controller shards: each deploys to its own clusters, and a cluster moves without loss.

The session's controller is stopped for the test and started again after.
Both shards run with leader election in a namespace of their own, so the
default Lease names (`flotilla-controller`, `flotilla-controller-<key>`) are
checked too. Which shard serves a cluster is shown by behaviour: with one
shard stopped, a change reaches only the other shard's clusters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleetkit import FLEET_NS, Engine, Kubectl, eventually, role, workload_writes

from engine import api
from engine.devfleet import procs

KEY = "blue"


class Shards:
    def __init__(self, engine: Engine, mgmt: Kubectl, workdir: Path, lease_ns: str) -> None:
        self.engine, self.mgmt, self.workdir, self.lease_ns = engine, mgmt, workdir, lease_ns
        self.running: dict[str, tuple[Engine, int]] = {}

    def start(self, key: str) -> None:
        port = procs.free_port()
        flags = ("--leader-elect", "--lease-namespace", self.lease_ns, "--health-port", str(port),
                 *(("--shard-key", key) if key else ()))
        shard = Engine(self.engine.fleet, self.engine.repo, self.mgmt,
                       self.workdir / (key or "default") / uuid.uuid4().hex[:4], extra=flags)
        shard.workdir.mkdir(parents=True)
        shard.start()
        self.running[key] = (shard, port)
        eventually(lambda: role(port) == "leading", timeout=60, what=f"shard {key!r} leads")

    def stop(self, key: str) -> None:
        shard, _ = self.running.pop(key)
        shard.stop()

    def stop_all(self) -> None:
        for key in list(self.running):
            self.stop(key)


@pytest.fixture
def shards(engine: Engine, mgmt: Kubectl, tmp_path: Path) -> Iterator[Shards]:
    engine.stop()
    lease_ns = f"leases-{uuid.uuid4().hex[:6]}"
    mgmt("create", "namespace", lease_ns)
    group = Shards(engine, mgmt, tmp_path, lease_ns)
    try:
        yield group
    finally:
        group.stop_all()
        mgmt("delete", "namespace", lease_ns, "--wait=false", check=False)
        engine.start()


def _objects(ns: str, name: str, version: str) -> str:
    return (f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n"
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"data: {{version: \"{version}\"}}\n")


def test_shards_split_the_fleet_and_hand_over(shards: Shards, engine: Engine,
                                              mgmt: Kubectl) -> None:
    uid = uuid.uuid4().hex[:6]
    # Unique names: api-only clusters have no namespace controller (see test_ha).
    name, label, ns = f"sh-{uid}", f"sh-{uid}", f"shard-app-{uid}"
    moved, stayed = [c.name for c in engine.fleet.clusters if not c.full][-2:]
    kubectl = {c: engine.cluster(c) for c in (moved, stayed)}

    def version(cluster: str) -> str | None:
        cm = kubectl[cluster].get("configmap", name, "-n", ns) or {}
        return (cm.get("data") or {}).get("version")  # type: ignore[no-any-return]

    def publish(v: str) -> None:
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: flotilla-system}}
data:
  objects.yaml: |
{''.join('    ' + line + chr(10) for line in _objects(ns, name, v).splitlines())}""")

    mgmt("annotate", "workloadcluster", "-n", FLEET_NS, moved, f"{api.SHARD_ANNOTATION}={KEY}",
         "--overwrite")
    try:
        shards.start("")
        shards.start(KEY)
        leases = {i["metadata"]["name"] for i in mgmt.json(
            "get", "leases", "-n", shards.lease_ns)["items"]}
        assert leases == {"flotilla-controller", f"flotilla-controller-{KEY}"}

        publish("1")
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]
""")
        for cluster in (moved, stayed):
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}=on")
        engine.wait_ready(name, 2)

        publish("2")
        eventually(lambda: version(moved) == "2" and version(stayed) == "2", timeout=60,
                   what="both shards deploy the change")
        # With the blue shard stopped, a change reaches only the default shard's cluster
        # (the default shard runs the profiles, so it records the new revision).
        shards.stop(KEY)
        one_update = workload_writes(kubectl[stayed], ("configmaps", "namespaces"))
        publish("3")
        eventually(lambda: version(stayed) == "3", timeout=60, what="default shard deploys")
        one_update = workload_writes(kubectl[stayed], ("configmaps", "namespaces")) - one_update
        assert version(moved) == "2", "a cluster of the stopped blue shard was deployed to"
        shards.start(KEY)
        eventually(lambda: version(moved) == "3", timeout=60, what="blue shard catches up")

        # Move the blue cluster to the default shard: nothing withdrawn, nothing re-applied.
        created = (kubectl[moved].get("configmap", name, "-n", ns) or {})["metadata"]["uid"]
        writes = workload_writes(kubectl[moved], ("configmaps", "namespaces"))
        mgmt("annotate", "workloadcluster", "-n", FLEET_NS, moved, f"{api.SHARD_ANNOTATION}-")
        shards.stop(KEY)  # the default shard alone must now serve it
        publish("4")
        eventually(lambda: version(moved) == "4", timeout=60,
                   what="the default shard took the moved cluster over")
        after = kubectl[moved].get("configmap", name, "-n", ns) or {}
        assert after["metadata"]["uid"] == created, "the move withdrew and re-created the object"
        # The writes of one update (as measured on the other cluster), nothing for the move.
        assert workload_writes(kubectl[moved], ("configmaps", "namespaces")) == writes + \
            one_update
    finally:
        mgmt("annotate", "workloadcluster", "-n", FLEET_NS, moved, f"{api.SHARD_ANNOTATION}-",
             check=False)
        mgmt("delete", "clusterprofile", name, "--wait=false", check=False)
        for cluster in (moved, stayed):
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}-", check=False)
        mgmt("delete", "configmap", "-n", "flotilla-system", name, check=False)
