"""The local fleet is made of real, independent, working Kubernetes control planes."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pyhelm3
from fleetkit import ChartRepo, Helm, Kubectl, eventually

from engine.devfleet import fleet as devfleet
from engine.devfleet import procs, testbin


class TestBinaries:
    """`flotilla testbin path` yields every binary, reporting real versions."""

    def test_all_binaries_present_and_versioned(self) -> None:
        out = subprocess.run([sys.executable, "-m", "engine.cli", "testbin", "path"],
                             capture_output=True, text=True, check=True).stdout.strip()
        folder = Path(out)
        for name in testbin.BINARIES:
            assert (folder / name).is_file(), name
        version = subprocess.run([str(folder / "kube-apiserver"), "--version"],
                                 capture_output=True, text=True, check=True).stdout
        assert version.strip() == f"Kubernetes {testbin.KUBERNETES_VERSION}"

    def test_pyhelm3_parses_helm_version(self) -> None:
        client = pyhelm3.Client(executable=str(testbin.path() / "helm"))
        # pyhelm3 refuses Helm binaries whose version it cannot parse.
        assert client is not None
        out = subprocess.run([str(testbin.path() / "helm"), "version", "--short"],
                             capture_output=True, text=True, check=True).stdout
        assert out.startswith(testbin.HELM_VERSION)


class TestControlPlanes:
    """Every API server is ready, and each cluster's data is its own."""

    def test_readyz_on_every_api_server(self, fleet: devfleet.Fleet) -> None:
        pki = Path(fleet.dir) / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        for cluster in fleet.all:
            with urllib.request.urlopen(f"{cluster.url}/readyz", context=ctx) as resp:
                assert resp.status == 200, cluster.name
                assert resp.read() == b"ok"

    def test_clusters_sharing_etcd_are_isolated(self, fleet: devfleet.Fleet) -> None:
        a, b = (Kubectl(c.kubeconfig) for c in fleet.clusters[:2])
        name = f"iso-{uuid.uuid4().hex[:6]}"
        a("create", "configmap", name, "-n", "default", "--from-literal=k=v")
        try:
            assert a.get("configmap", name, "-n", "default") is not None
            assert b.get("configmap", name, "-n", "default") is None
        finally:
            a("delete", "configmap", name, "-n", "default")

    def test_cel_validation_rules_run_in_the_api_server(self, fleet: devfleet.Fleet) -> None:
        kubectl = Kubectl(fleet.clusters[-1].kubeconfig)
        kubectl.apply(_WIDGET_CRD)
        kubectl("wait", "--for=condition=Established", "crd/widgets.test.flotilla.dev")
        bad = kubectl.run("apply", "-f", "-", input=_widget(min_=5, max_=1), check=False)
        assert bad.returncode != 0
        assert "min must not exceed max" in bad.stderr
        kubectl.apply(_widget(min_=1, max_=5))


class TestFullClusters:
    """Controllers, scheduler and simulated nodes make workloads really ready."""

    def test_deployment_becomes_available(self, full_cluster: devfleet.Cluster) -> None:
        kubectl = Kubectl(full_cluster.kubeconfig)
        ns = f"dep-{uuid.uuid4().hex[:6]}"
        kubectl("create", "namespace", ns)
        kubectl("create", "deployment", "web", "-n", ns, "--image=registry.invalid/web:1",
                "--replicas=3")
        kubectl("wait", "-n", ns, "--for=condition=Available", "deployment/web",
                "--timeout=60s", timeout=90)
        dep = kubectl.json("get", "deployment", "web", "-n", ns)
        assert dep["status"]["availableReplicas"] == 3

    def test_gpu_daemonset_lands_only_on_gpu_nodes(self, full_cluster: devfleet.Cluster) -> None:
        kubectl = Kubectl(full_cluster.kubeconfig)
        nodes = kubectl.json("get", "nodes")["items"]
        gpu_nodes = {n["metadata"]["name"] for n in nodes
                     if "nvidia.com/gpu.product" in n["metadata"]["labels"]}
        assert gpu_nodes and len(gpu_nodes) < len(nodes)
        for node in nodes:
            if node["metadata"]["name"] in gpu_nodes:
                assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
        ns = f"ds-{uuid.uuid4().hex[:6]}"
        kubectl("create", "namespace", ns)
        kubectl.apply(_GPU_DAEMONSET.replace("NAMESPACE", ns))

        def placed() -> set[str] | None:
            pods = kubectl.json("get", "pods", "-n", ns)["items"]
            running = {p["spec"].get("nodeName") for p in pods
                       if p["status"].get("phase") == "Running"}
            return running if len(running) == len(gpu_nodes) else None

        assert eventually(placed, timeout=60, what="GPU pods running") == gpu_nodes
        ds = kubectl.json("get", "daemonset", "gpu-probe", "-n", ns)
        assert ds["status"]["numberReady"] == len(gpu_nodes)


class TestHelm:
    """The real helm installs a chart from the loopback repository onto a workload cluster."""

    def test_helm_install_from_loopback_repo(self, fleet: devfleet.Fleet, chart_repo: ChartRepo,
                                             tmp_path: Path) -> None:
        cluster = fleet.clusters[2]
        helm = Helm(cluster.kubeconfig, tmp_path)
        ns = f"helm-{uuid.uuid4().hex[:6]}"
        helm("install", "demo", "standin-app", "--repo", chart_repo.url, "--version", "0.1.0",
             "-n", ns, "--create-namespace", "--set", "replicas=2")
        listed = helm("list", "-n", ns, "-o", "json")
        assert '"name":"demo"' in listed and "standin-app-0.1.0" in listed
        dep = Kubectl(cluster.kubeconfig).json("get", "deployment", "-n", ns)["items"]
        assert dep and dep[0]["spec"]["replicas"] == 2

    def test_pyhelm3_lists_the_release(self, fleet: devfleet.Fleet, chart_repo: ChartRepo,
                                       tmp_path: Path) -> None:
        cluster = fleet.clusters[3]
        Helm(cluster.kubeconfig, tmp_path)("install", "viapy", "multi-a", "--repo",
                                           chart_repo.url, "-n", "default")
        client = pyhelm3.Client(executable=str(testbin.path() / "helm"),
                                kubeconfig=Path(cluster.kubeconfig))
        releases = asyncio.run(client.list_releases(namespace="default"))
        assert "viapy" in {r.name for r in releases}


class TestLifecycle:
    """`dev-fleet down` after `up` leaves no process behind, even after a failed `up`."""

    def test_down_leaves_no_process(self, tmp_path: Path) -> None:
        cli = [sys.executable, "-m", "engine.cli", "dev-fleet"]
        subprocess.run([*cli, "up", "--dir", str(tmp_path), "--clusters", "1", "--full", "1"],
                       check=True, capture_output=True, timeout=120)
        pids = [pid for pid, _ in procs.recorded(tmp_path)]
        assert len(pids) == 6  # etcd, 2 API servers, controller-manager, scheduler, nodesim
        assert all(procs.alive(p) for p in pids)
        subprocess.run([*cli, "down", "--dir", str(tmp_path)], check=True, timeout=60)
        assert not [p for p in pids if procs.alive(p)]

    def test_down_after_a_crashed_up(self, tmp_path: Path) -> None:
        # A fleet whose `up` died: processes recorded, no fleet.json written afterwards.
        client, peer = procs.free_port(), procs.free_port()
        pid = procs.spawn(tmp_path, "etcd", [
            str(testbin.path() / "etcd"), f"--data-dir={tmp_path / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}"])
        assert procs.alive(pid)
        assert devfleet.down(tmp_path) == [pid]
        assert not procs.alive(pid)


_WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.flotilla.dev}
spec:
  group: test.flotilla.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties: {min: {type: integer}, max: {type: integer}}
            x-kubernetes-validations:
            - rule: self.min <= self.max
              message: min must not exceed max
"""


def _widget(*, min_: int, max_: int) -> str:
    return (f"apiVersion: test.flotilla.dev/v1\nkind: Widget\nmetadata: {{name: w, namespace: "
            f"default}}\nspec: {{min: {min_}, max: {max_}}}\n")


_GPU_DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: gpu-probe, namespace: NAMESPACE}
spec:
  selector: {matchLabels: {app: gpu-probe}}
  template:
    metadata: {labels: {app: gpu-probe}}
    spec:
      nodeSelector: {nvidia.com/gpu.present: "true"}
      containers: [{name: probe, image: registry.invalid/probe:1}]
"""
