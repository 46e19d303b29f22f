"""A small node and pod simulator for "full" dev-fleet clusters (our stand-in for kwok).

Run by `engine.devfleet.fleet` as its own process, one per full cluster:
`python -m engine.devfleet.nodesim --kubeconfig K --cpu-nodes 2 --gpu-nodes 2`.

It does what kubelets do as far as the control plane can tell: registers
Nodes (CPU ones and GPU ones carrying `nvidia.com/gpu.product` and capacity
`nvidia.com/gpu`), keeps their Leases fresh so the node lifecycle controller
keeps them Ready, marks every pod the real scheduler binds to them Running
and Ready, and finishes graceful deletions. Containers never run; the
Deployment, ReplicaSet, DaemonSet and Job controllers and the scheduler are real.

Run-to-completion pods finish: a pod whose `restartPolicy` is `Never` or
`OnFailure` ends `Succeeded` (exit code 0) after `--job-seconds` of running,
or `Failed` (exit code 1) when it carries the annotation
`flotilla.dev/sim-fail: "true"` (put it on a Job's pod template). The rule is
the restart policy rather than a Job owner because that is what a kubelet
looks at: it covers Job pods (the API only allows those two policies for them)
and bare Helm hook and test pods alike, while everything Deployments,
DaemonSets and StatefulSets own must say `Always` and keeps running. Containers
are never restarted, so `OnFailure` fails like `Never`. Helm waits for hook
Jobs even without --wait, so real charts' hooks need this to install at all.
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
JOB_SECONDS = 1.0
FAIL_ANNOTATION = "flotilla.dev/sim-fail"


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


def runs_to_completion(pod: dict[str, Any]) -> bool:
    """True for pods whose containers would stay exited: Job pods, Helm hook and test pods."""
    return pod.get("spec", {}).get("restartPolicy") in ("Never", "OnFailure")


def _seconds_since(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC)
    except ValueError:
        return 0.0
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds()


def finished_status(pod: dict[str, Any], *, failed: bool) -> dict[str, Any]:
    """The status a kubelet reports once every container of the pod has exited."""
    now = _stamp()
    meta, status = pod["metadata"], pod.get("status", {})
    started = status.get("startTime") or now
    code, reason = (1, "Error") if failed else (0, "Completed")
    # A finished pod is not Ready, for the same reason whether it succeeded or failed.
    done = {"status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
    return {
        "phase": "Failed" if failed else "Succeeded",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "Initialized", "status": "True", "reason": "PodCompleted",
             "lastTransitionTime": started},
            {"type": "ContainersReady", **done},
            {"type": "Ready", **done},
            # The sandbox is torn down once the containers are gone.
            {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": now},
        ],
        "containerStatuses": [{
            "name": c["name"], "image": c.get("image", ""), "imageID": "sim://" + c["name"],
            "containerID": f"sim://{meta['name']}/{c['name']}", "ready": False,
            "started": False, "restartCount": 0,
            "state": {"terminated": {
                "exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now,
                "containerID": f"sim://{meta['name']}/{c['name']}"}},
        } for c in pod["spec"].get("containers", [])],
    }


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
    def __init__(self, client: kube.Client, nodes: list[NodeSpec], *,
                 job_seconds: float = JOB_SECONDS) -> None:
        self.client = client
        self.nodes = {n.name: n for n in nodes}
        self.job_seconds = job_seconds
        self._pod_ip = 0
        # Pod uid -> the task that finishes it. Entries stay after the task is done, until
        # the pod's DELETED event, so a late event still showing Running does not finish
        # the pod a second time.
        self._finishing: dict[str, asyncio.Task[None]] = {}

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
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions", []))
        if status.get("phase") == "Running" and ready:
            # Running since before we saw it (say we restarted): finish it on schedule.
            if runs_to_completion(pod):
                self._finish_later(pod, self.job_seconds - _seconds_since(status.get("startTime")))
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
        running = await self.client.patch("v1", "Pod", meta["namespace"], meta["name"], patch,
                                          subresource="status")
        if runs_to_completion(pod):
            self._finish_later(running, self.job_seconds)

    def _finish_later(self, pod: dict[str, Any], delay: float) -> None:
        uid = pod["metadata"]["uid"]
        if uid not in self._finishing:
            self._finishing[uid] = asyncio.create_task(self._finish(pod, max(delay, 0.0)))

    async def _finish(self, pod: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        meta = pod["metadata"]
        failed = (meta.get("annotations") or {}).get(FAIL_ANNOTATION) == "true"
        try:
            await self.client.patch("v1", "Pod", meta["namespace"], meta["name"],
                                    {"status": finished_status(pod, failed=failed)},
                                    subresource="status")
        except (kube.ApiError, kube.Unreachable) as exc:  # deleted meanwhile, or a blip
            log.info("finishing pod %s/%s: %s", meta["namespace"], meta["name"], exc)
            # Forget it, so the next event about a still-running pod tries again.
            self._finishing.pop(meta["uid"], None)
            return
        log.info("pod %s/%s %s", meta["namespace"], meta["name"],
                 "failed" if failed else "succeeded")

    def _forget(self, pod: dict[str, Any]) -> None:
        task = self._finishing.pop(pod.get("metadata", {}).get("uid", ""), None)
        if task is not None:
            task.cancel()

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
                    elif _type == "DELETED":
                        self._forget(pod)
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
                                       args.gpu_product, args.gpus_per_node),
                    job_seconds=args.job_seconds)
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
    parser.add_argument("--job-seconds", type=float, default=JOB_SECONDS,
                        help="how long a Never/OnFailure pod runs before it finishes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s nodesim %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
