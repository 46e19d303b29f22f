"""A small node and pod simulator for "full" dev-fleet clusters (our stand-in for kwok).

Run by `engine.devfleet.fleet` as its own process, one per full cluster:
`python -m engine.devfleet.nodesim --kubeconfig K --cpu-nodes 2 --gpu-nodes 2`.

It does what kubelets do as far as the control plane can tell: registers
Nodes (CPU ones and GPU ones carrying `nvidia.com/gpu.product` and capacity
`nvidia.com/gpu`), keeps their Leases fresh so the node lifecycle controller
keeps them Ready, marks every pod the real scheduler binds to them Running
and Ready, and finishes graceful deletions. Containers never run; the
Deployment, ReplicaSet and DaemonSet controllers and the scheduler are real.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import signal
from dataclasses import dataclass
from typing import Any

from engine.adapters import kube, kubeconfig

log = logging.getLogger("flotilla.nodesim")
LEASE_SECONDS = 40
RENEW_EVERY = 10.0
KUBELET_VERSION = "v1.37.2"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    gpu_product: str | None
    gpus: int
    ip: str


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(spec: NodeSpec) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "simulated",
        "flotilla.dev/simulated": "true",
    }
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi"}
    if spec.gpu_product:
        labels["nvidia.com/gpu.product"] = spec.gpu_product
        labels["nvidia.com/gpu.present"] = "true"
        labels["nvidia.com/gpu.count"] = str(spec.gpus)
        capacity["nvidia.com/gpu"] = str(spec.gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {},
        "status": _node_status(spec, capacity),
    }


def _node_status(spec: NodeSpec, capacity: dict[str, str]) -> dict[str, Any]:
    now = _stamp()
    conditions = [
        {"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": "simulated",
         "lastHeartbeatTime": now, "lastTransitionTime": now}
        for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                     ("PIDPressure", "SufficientPID"))
    ]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "simulated by flotilla nodesim", "lastHeartbeatTime": now,
                       "lastTransitionTime": now})
    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": spec.ip},
                      {"type": "Hostname", "address": spec.name}],
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
            "architecture": "amd64", "operatingSystem": "linux", "osImage": "flotilla-sim",
            "kernelVersion": "6.1.0", "containerRuntimeVersion": "sim://1.0",
            "machineID": spec.name, "systemUUID": spec.name, "bootID": spec.name,
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
    }


class Simulator:
    def __init__(self, client: kube.Client, nodes: list[NodeSpec]) -> None:
        self.client = client
        self.nodes = {n.name: n for n in nodes}
        self._pod_ip = 0

    async def register(self) -> None:
        for spec in self.nodes.values():
            obj = node_object(spec)
            existing = await self.client.get("v1", "Node", None, spec.name)
            if existing is None:
                await self.client.create(obj)
            await self.client.patch("v1", "Node", None, spec.name,
                                    {"status": obj["status"]}, subresource="status")

    async def keep_leases(self) -> None:
        ticks = 0
        while True:
            for name, spec in self.nodes.items():
                lease = {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": "kube-node-lease"},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                             "renewTime": _now()},
                }
                try:
                    await self.client.apply(lease, field_manager="flotilla-nodesim")
                    if ticks % 6 == 0:  # refresh heartbeats about once a minute
                        obj = node_object(spec)
                        await self.client.patch("v1", "Node", None, name,
                                                {"status": obj["status"]}, subresource="status")
                except kube.ApiError as exc:
                    log.warning("lease for %s: %s", name, exc)
                except kube.Unreachable as exc:
                    log.warning("API server unreachable: %s", exc)
            ticks += 1
            await asyncio.sleep(RENEW_EVERY)

    def _next_ip(self) -> str:
        self._pod_ip += 1
        return f"10.244.{self._pod_ip // 250}.{self._pod_ip % 250 + 2}"

    async def handle_pod(self, pod: dict[str, Any]) -> None:
        node = pod.get("spec", {}).get("nodeName")
        if node not in self.nodes:
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            await self.client.delete("v1", "Pod", meta["namespace"], meta["name"], grace_seconds=0)
            return
        status = pod.get("status", {})
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions", []))
        if status.get("phase") == "Running" and ready:
            return
        now = _stamp()
        containers = pod["spec"].get("containers", [])
        patch = {"status": {
            "phase": "Running",
            "hostIP": self.nodes[node].ip,
            "podIP": status.get("podIP") or self._next_ip(),
            "startTime": status.get("startTime") or now,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready",
                                     "PodReadyToStartContainers")],
            "containerStatuses": [{
                "name": c["name"], "image": c.get("image", ""), "imageID": "sim://" + c["name"],
                "containerID": f"sim://{meta['name']}/{c['name']}", "ready": True,
                "started": True, "restartCount": 0, "state": {"running": {"startedAt": now}},
            } for c in containers],
        }}
        await self.client.patch("v1", "Pod", meta["namespace"], meta["name"], patch,
                                subresource="status")

    async def run_pods(self) -> None:
        while True:
            try:
                doc = await self.client.request("GET", "/api/v1/pods")
                for pod in doc.get("items", []):
                    await self._safe(pod)
                rv = doc["metadata"]["resourceVersion"]
                async for _type, pod in self.client.watch("v1", "Pod", resource_version=rv):
                    if _type in ("ADDED", "MODIFIED"):
                        await self._safe(pod)
            except (kube.ApiError, kube.Unreachable) as exc:
                log.info("pod watch restarts: %s", exc)
                await asyncio.sleep(1.0)

    async def _safe(self, pod: dict[str, Any]) -> None:
        try:
            await self.handle_pod(pod)
        except kube.ApiError as exc:  # the pod may be gone already; the watch brings news
            log.debug("pod %s: %s", pod.get("metadata", {}).get("name"), exc)


def plan_nodes(prefix: str, cpu: int, gpu: int, product: str, gpus: int) -> list[NodeSpec]:
    nodes = [NodeSpec(f"{prefix}-cpu-{i}", None, 0, f"172.20.0.{i + 10}") for i in range(cpu)]
    nodes += [NodeSpec(f"{prefix}-gpu-{i}", product, gpus, f"172.20.1.{i + 10}")
              for i in range(gpu)]
    return nodes


async def _main(args: argparse.Namespace) -> None:
    client = kube.Client(kubeconfig.load(args.kubeconfig), name=args.prefix)
    sim = Simulator(client, plan_nodes(args.prefix, args.cpu_nodes, args.gpu_nodes,
                                       args.gpu_product, args.gpus_per_node))
    for attempt in range(60):
        try:
            await sim.register()
            break
        except (kube.ApiError, kube.Unreachable) as exc:
            log.warning("registering nodes (attempt %d): %s", attempt, exc)
            await asyncio.sleep(0.5)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(sim.keep_leases()), asyncio.create_task(sim.run_pods())]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--prefix", default="node")
    parser.add_argument("--cpu-nodes", type=int, default=2)
    parser.add_argument("--gpu-nodes", type=int, default=2)
    parser.add_argument("--gpu-product", default="NVIDIA-H100-80GB-HBM3")
    parser.add_argument("--gpus-per-node", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s nodesim %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
