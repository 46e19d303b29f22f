"""What a registered cluster costs when nothing happens, and that the watch still notices.

The WorkloadCluster probe used to poll: every 30 s it read the kubeconfig
Secret from the management cluster, then GET /version and LIST nodes on the
workload cluster (2 management and 4 workload requests per cluster per
minute). Now each cluster's server is followed by one watch
(engine/adapters/clusterwatch.py): after convergence, over a window in which
the poll would have run twice, no Secret is read, no node list is made, no
status is written, and the controller's own count of workload requests stays
under one per cluster — while a Node created on a cluster shows in its facts
within seconds. A kubeconfig limited to one namespace (its Role may not read
Nodes or Namespaces) is Ready with no facts, deploys into its namespace and
watches it for drift. A second WorkloadCluster with the same kubeconfig adds
no client.
About 1.5 minutes.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetkit import FLEET_NS, Engine, Kubectl, condition, eventually, metric_total

from engine import api
from engine.devfleet import fleet as devfleet

API_ONLY = "cluster-4"   # no controller-manager, no kubelet: only we touch its Nodes
LIMITED_ON = "cluster-3"
OLD_PERIOD = 30.0        # the poll's period before watches
_LINE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<n>[0-9.e+]+)$')


def served(kubectl: Kubectl, verb: str, resource: str) -> int:
    """Requests of one verb and resource the API server has served, by its own count."""
    total = 0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        found = _LINE.match(line)
        if found:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
            if labels.get("verb") == verb and labels.get("resource") == resource:
                total += int(float(found["n"]))
    return total


def _cluster(mgmt: Kubectl, name: str) -> dict[str, Any]:
    return mgmt.get("workloadcluster", name, "-n", FLEET_NS) or {}


def _requests(engine: Engine) -> float | None:
    try:
        return metric_total(engine, "flotilla_workload_requests_total")
    except OSError:
        return None  # the controller is still starting


def _settled(engine: Engine, clusters: int) -> None:
    """Every cluster has its client, and no workload request went out for 5 s."""
    eventually(lambda: metric_total(engine, "flotilla_workload_connection_pools") >= clusters
               if _requests(engine) is not None else None, timeout=60,
               what="a connection per cluster")

    def quiet() -> bool:
        before = _requests(engine)
        time.sleep(5)
        return before == _requests(engine)

    eventually(quiet, timeout=90, interval=0, what="no workload request for 5 s")


class TestIdle:
    """After convergence a cluster costs a watch, not a poll; the watch still sees changes."""

    def test_no_polling_when_idle(self, engine: Engine, mgmt: Kubectl,
                                  fleet: devfleet.Fleet) -> None:
        names = [c.name for c in fleet.clusters]
        for name in names:
            eventually(lambda n=name: (_cluster(mgmt, n).get("status") or {}).get("ready"),
                       timeout=60, what=f"{name} ready")
        _settled(engine, len(names))
        work = engine.cluster(API_ONLY)
        versions = {n: _cluster(mgmt, n)["metadata"]["resourceVersion"] for n in names}
        secrets0 = served(mgmt, "GET", "secrets")
        lists0 = served(work, "LIST", "nodes")
        ours0 = metric_total(engine, "flotilla_workload_requests_total")
        time.sleep(OLD_PERIOD + 5)  # the old probe would have polled at least once in here
        ours = metric_total(engine, "flotilla_workload_requests_total") - ours0
        secrets = served(mgmt, "GET", "secrets") - secrets0
        lists = served(work, "LIST", "nodes") - lists0
        print(f"idle {OLD_PERIOD + 5:.0f} s, {len(names)} clusters: controller's workload "
              f"requests {ours:.0f}; management GET secrets {secrets}; LIST nodes on "
              f"{API_ONLY} {lists} (polling: {len(names)} management, "
              f"{2 * len(names)} workload, 1 node list)")
        assert secrets == 0  # the polling probe read every cluster's Secret each period
        assert lists == 0  # and listed this cluster's nodes
        assert ours <= len(names)  # at most one watch renewal per cluster (polling: 2 each)
        assert {n: _cluster(mgmt, n)["metadata"]["resourceVersion"] for n in names} == versions

    def test_a_new_node_shows_in_facts_at_once(self, engine: Engine, mgmt: Kubectl) -> None:
        work, node = engine.cluster(API_ONLY), f"idle-{uuid.uuid4().hex[:6]}"

        def facts() -> dict[str, Any]:
            return dict((_cluster(mgmt, API_ONLY).get("status") or {}).get("facts") or {})

        def nodes() -> int:
            return int(facts().get("nodes", -1))

        eventually(lambda: nodes() >= 0, timeout=30, what=f"{API_ONLY}'s facts")
        before, as_before = nodes(), facts()
        work.apply(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
            "status": {"capacity": {"cpu": "4", "nvidia.com/gpu": "2"}}}))
        try:
            # Well inside the old probe period: the watch's event, not a poll, brought it.
            eventually(lambda: nodes() == before + 1 or None, timeout=OLD_PERIOD / 3,
                       what=f"a node more in {API_ONLY}'s facts")
            assert facts()["gpuTotal"] == as_before.get("gpuTotal", 0) + 2
        finally:
            work("delete", "node", node, "--ignore-not-found", check=False)
        # All of it: the GPU product the node brought goes too (status is merge-patched).
        eventually(lambda: facts() == as_before or None, timeout=OLD_PERIOD / 3,
                   what=f"the node gone from {API_ONLY}'s facts")


class TestSharedClient:
    """Two WorkloadClusters with the same server and credentials share one client."""

    def test_a_twin_adds_no_client(self, engine: Engine, mgmt: Kubectl,
                                   fleet: devfleet.Fleet) -> None:
        _settled(engine, len(fleet.clusters))
        pools = metric_total(engine, "flotilla_workload_connection_pools")
        twin = f"twin-{uuid.uuid4().hex[:6]}"
        mgmt.apply(yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": f"{twin}-kubeconfig", "namespace": FLEET_NS},
             "stringData": {"kubeconfig": Path(engine.kubeconfig(API_ONLY)).read_text()}},
            {"apiVersion": api.API_VERSION, "kind": api.WORKLOAD_CLUSTER,
             "metadata": {"name": twin, "namespace": FLEET_NS},
             "spec": {"kubeconfigSecretRef": {"name": f"{twin}-kubeconfig"}}}]))
        try:
            eventually(lambda: (_cluster(mgmt, twin).get("status") or {}).get("ready"),
                       timeout=30, what=f"{twin} ready")
            # Its facts come from the same watch as API_ONLY's.
            assert _cluster(mgmt, twin)["status"]["facts"] == \
                _cluster(mgmt, API_ONLY)["status"]["facts"]
            assert metric_total(engine, "flotilla_workload_connection_pools") == pools
        finally:
            mgmt("delete", "workloadcluster", twin, "-n", FLEET_NS, "--ignore-not-found",
                 check=False)
            mgmt("delete", "secret", f"{twin}-kubeconfig", "-n", FLEET_NS,
                 "--ignore-not-found", check=False)


@pytest.fixture
def limited(engine: Engine) -> Any:
    """A ServiceAccount with every right in its own namespace of LIMITED_ON, none outside."""
    admin, ns = engine.cluster(LIMITED_ON), f"lim-{uuid.uuid4().hex[:6]}"
    admin("create", "namespace", ns)
    admin("create", "serviceaccount", "deployer", "-n", ns)
    admin("create", "role", "all", "-n", ns, "--verb=*", "--resource=*.*")
    admin("create", "rolebinding", "all", "-n", ns, "--role=all",
          f"--serviceaccount={ns}:deployer")
    token = admin("create", "token", "deployer", "-n", ns, "--duration=1h").strip()
    doc = yaml.safe_load(Path(engine.kubeconfig(LIMITED_ON)).read_text())
    doc["users"][0]["user"] = {"token": token}
    doc["contexts"][0]["context"]["namespace"] = ns
    try:
        yield ns, yaml.safe_dump(doc)
    finally:
        admin("delete", "rolebinding,role,serviceaccount", "--all", "-n", ns, check=False)


class TestNamespaceLimited:
    """A least-privilege kubeconfig: Ready without facts, and it deploys into its namespace."""

    def test_ready_without_nodes_and_deploys(self, engine: Engine, mgmt: Kubectl,
                                             limited: tuple[str, str]) -> None:
        ns, text = limited
        name, label = f"lim-{uuid.uuid4().hex[:6]}", f"lim-{uuid.uuid4().hex[:6]}"
        mgmt.apply(yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": f"{name}-kubeconfig", "namespace": FLEET_NS},
             "stringData": {"kubeconfig": text}},
            {"apiVersion": api.API_VERSION, "kind": api.WORKLOAD_CLUSTER,
             "metadata": {"name": name, "namespace": FLEET_NS, "labels": {label: "on"}},
             "spec": {"kubeconfigSecretRef": {"name": f"{name}-kubeconfig"}}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": name, "namespace": "flotilla-system"},
             "data": {"app.yaml": yaml.safe_dump({
                 "apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "app", "namespace": ns}, "data": {"from": "flotilla"}})}},
            {"apiVersion": api.API_VERSION, "kind": "ClusterProfile", "metadata": {"name": name},
             "spec": {"clusterSelector": {"matchLabels": {label: "on"}},
                      "policyRefs": [{"kind": "ConfigMap", "namespace": "flotilla-system",
                                      "name": name}]}}]))
        try:
            ready = eventually(lambda: (c := condition(_cluster(mgmt, name), "Ready"))
                               and c["status"] == "True" and c, timeout=60,
                               what=f"{name} Ready with a namespace-limited identity")
            assert "nodes are not readable" in ready["message"], ready
            assert "facts" not in (_cluster(mgmt, name).get("status") or {})
            work = engine.cluster(LIMITED_ON)
            live = eventually(lambda: work.get("configmap", "app", "-n", ns),
                              timeout=60, what=f"the profile's ConfigMap in {ns}")
            assert live["data"] == {"from": "flotilla"}
            # Drift is watched in its namespace (the identity may not list ConfigMaps
            # across the cluster): an edit there is detected.
            drifted = metric_total(engine, "flotilla_drift_detected_total")
            work("patch", "configmap", "app", "-n", ns, "--type=merge",
                 "-p", '{"data": {"from": "someone else"}}')
            eventually(lambda: metric_total(engine, "flotilla_drift_detected_total") > drifted,
                       timeout=30, what=f"the edit in {ns} detected as drift")
        finally:
            mgmt("delete", "clusterprofile", name, "--timeout=60s", check=False)
            mgmt("delete", "workloadcluster", name, "-n", FLEET_NS, "--ignore-not-found",
                 check=False)
            mgmt("delete", "secret", f"{name}-kubeconfig", "-n", FLEET_NS,
                 "--ignore-not-found", check=False)
            mgmt("delete", "configmap", name, "-n", "flotilla-system", "--ignore-not-found",
                 check=False)
