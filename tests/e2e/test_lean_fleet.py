"""A lean fleet carrying virtual clusters: real, limited, and registered like any other.

Brings up its own tiny fleet (a management server and two lean workload API
servers, `Options(lean=True)`), stopped in a `finally`, installs the CRDs and
registers six virtual clusters, three per server
(`engine.devfleet.virtual.register_virtual`). Then, with each virtual
cluster's own kubeconfig and the real kubectl and helm: it works in its own
namespace, is refused in a neighbour's on the same server, and the management
cluster holds WorkloadClusters that do not say which server they share.
About 20 s.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fleetkit import FLEET_NS, ROOT, Helm, Kubectl

from engine import api
from engine.cli import admin
from engine.devfleet import fleet as devfleet
from engine.devfleet import virtual

LABELS = {"scale": "virtual"}


@pytest.fixture(scope="module")
def lean_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devfleet.Fleet]:
    fleet_dir = tmp_path_factory.mktemp("lean-fleet")
    try:
        started = devfleet.up(fleet_dir, devfleet.Options(clusters=2, lean=True))
        admin.install(started.management.kubeconfig, crds=ROOT / "crds",
                      catalog=ROOT / "catalog")
        yield started
    finally:
        devfleet.down(fleet_dir)


@pytest.fixture(scope="module")
def vcs(lean_fleet: devfleet.Fleet) -> list[virtual.VirtualCluster]:
    return virtual.register_virtual(lean_fleet, per_server=3, total=6,
                                    management_namespace=FLEET_NS, labels=LABELS)


def _neighbour(vc: virtual.VirtualCluster,
               all_vcs: list[virtual.VirtualCluster]) -> virtual.VirtualCluster:
    return next(o for o in all_vcs if o.server == vc.server and o.name != vc.name)


def test_lean_servers_serve_only_the_trimmed_api(lean_fleet: devfleet.Fleet) -> None:
    assert all(c.lean and not c.full for c in lean_fleet.clusters)
    assert not lean_fleet.management.lean
    groups = set(Kubectl(lean_fleet.clusters[0].kubeconfig)("api-versions").split())
    assert {"v1", "apps/v1", "rbac.authorization.k8s.io/v1", "batch/v1"} <= groups
    assert "storage.k8s.io/v1" not in groups and "autoscaling/v2" not in groups
    # The management server is a default one.
    assert "storage.k8s.io/v1" in Kubectl(lean_fleet.management.kubeconfig)(
        "api-versions").split()


def test_six_virtual_clusters_on_two_servers(vcs: list[virtual.VirtualCluster],
                                             lean_fleet: devfleet.Fleet) -> None:
    assert [v.name for v in vcs] == [f"vc-{i:04d}" for i in range(6)]
    assert {v.server: sum(1 for o in vcs if o.server == v.server) for v in vcs} == {
        "cluster-1": 3, "cluster-2": 3}
    assert virtual.describe(vcs).startswith("6 virtual clusters on 2 API servers")
    assert virtual.load(lean_fleet.dir) == vcs
    for vc in vcs:
        assert Path(vc.kubeconfig).stat().st_mode & 0o077 == 0


def test_registered_like_any_cluster_without_naming_the_server(
        vcs: list[virtual.VirtualCluster], lean_fleet: devfleet.Fleet) -> None:
    mgmt = Kubectl(lean_fleet.management.kubeconfig)
    for vc in vcs:
        wc = mgmt.get(api.WORKLOAD_CLUSTER.lower(), vc.name, "-n", FLEET_NS)
        assert wc is not None
        assert wc["metadata"].get("labels") == LABELS
        assert not wc["metadata"].get("annotations")
        ref = wc["spec"]["kubeconfigSecretRef"]
        secret = mgmt.get("secret", ref["name"], "-n", FLEET_NS)
        assert secret is not None
        stored = base64.b64decode(secret["data"][ref["key"]]).decode()
        assert stored == Path(vc.kubeconfig).read_text()
        doc = yaml.safe_load(stored)
        assert doc["contexts"][0]["context"]["namespace"] == vc.name
        assert "client-key-data" not in doc["users"][0]["user"]  # a token, not the admin cert


def test_each_kubeconfig_works_in_its_own_namespace_only(
        vcs: list[virtual.VirtualCluster], lean_fleet: devfleet.Fleet) -> None:
    servers = {c.name: Kubectl(c.kubeconfig) for c in lean_fleet.clusters}
    for vc in vcs:
        own, other = Kubectl(vc.kubeconfig), _neighbour(vc, vcs)
        # Its context's default namespace is its own.
        own("create", "configmap", "hello", "--from-literal=from=" + vc.name)
        made = servers[vc.server].get("configmap", "hello", "-n", vc.name)
        assert made is not None and made["data"] == {"from": vc.name}
        assert own("auth", "can-i", "create", "deployments").strip() == "yes"
        assert own("get", "namespace", vc.name, "-o", "name").strip() == f"namespace/{vc.name}"
        # The neighbour on the same server: refused by the API server (403), nothing written.
        denied = own.run("create", "configmap", "intruder", "-n", other.name, check=False)
        assert denied.returncode != 0 and "is forbidden" in denied.stderr
        assert servers[vc.server].get("configmap", "intruder", "-n", other.name) is None
        assert own.run("auth", "can-i", "get", "secrets", "-n", other.name,
                       check=False).stdout.strip() == "no"
        for args in (("get", "namespace", other.name), ("get", "nodes")):
            refused = own.run(*args, check=False)
            assert refused.returncode != 0 and "(Forbidden)" in refused.stderr


def test_helm_installs_a_chart_with_a_virtual_kubeconfig(
        vcs: list[virtual.VirtualCluster], lean_fleet: devfleet.Fleet,
        tmp_path: Path) -> None:
    vc = vcs[4]
    helm = Helm(vc.kubeconfig, tmp_path / "helm")
    helm("install", "app", str(ROOT / "tests/charts/standin-app"), "--namespace", vc.name)
    server = Kubectl(next(c for c in lean_fleet.clusters if c.name == vc.server).kubeconfig)
    assert server.get("deployment", "app", "-n", vc.name) is not None
    assert "deployed" in helm("status", "app", "--namespace", vc.name)
