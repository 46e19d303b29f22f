"""The story `flotilla demo` tells once its fleet, catalog and controller are up.

Used by `engine.cli.demo` only. Three registered clusters: cluster-1 (H100
GPUs, the canary ring), cluster-2 (H100 GPUs) and cluster-3 (no GPUs). The
steps, each printing the commands it runs:

1. label all three `serving=inference`: the profile selects by that label AND
   by the GPU facts the controller read from each cluster (clusterSelectorCEL),
   so the GPU stack arrives on cluster-1 first (canary), then cluster-2, and
   never on cluster-3 (`flotilla why cluster-3` says why);
2. a hand edit on cluster-2 (`kubectl scale`): drift reported with its field
   path (the summary's status and a Warning Event) and corrected;
3. a values change (a chart parameter): a new revision rolled out canary
   first, then the rest, with `flotilla rollout status --watch` progress;
4. unlabel: the stack is withdrawn from both GPU clusters.

`profile_docs` prepares the profile (profiles/gpu-inference.yaml, or its
real-chart preparation) for this story; `tell` runs the steps.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from engine.cli import rolloutwatch
from engine.devfleet import fleet, realcharts, testbin

PROFILE = "gpu-inference"
LABEL = ("serving", "inference")
# GPU facts reach WorkloadCluster status through the cluster reconciler; has() guards keep
# a cluster without facts (not probed yet, or no nodes at all) from failing the expression.
GPU_CEL = ("has(cluster.status.facts) && has(cluster.status.facts.gpuTotal) && "
           "cluster.status.facts.gpuTotal > 0")
# Short enough for a demo: the canary soaks 5 s before the main stage starts.
ROLLOUT = {"stages": [{"name": "canary", "clusterSelector": {"matchLabels": {"ring": "canary"}},
                       "maxUpdate": 1},
                      {"name": "main"}],
           "minSuccessTime": "5s", "progressDeadline": "10m", "onFailure": "Pause"}
DRIFT_TARGET = ("gpu-operator", "gpu-operator")  # namespace, Deployment (stand-in and upstream)


class Shell(Protocol):
    kubeconfig: str

    def show(self, *args: str, stdin: str | None = None) -> str: ...

    def json(self, *args: str) -> Any: ...


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def note(text: str) -> None:
    print(f"   ({text})", flush=True)


def wait(what: str, probe: Callable[[], bool], timeout: float = 120) -> None:
    """Poll until `probe()` holds; the timeout names what was waited for."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        time.sleep(0.5)


def profile_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The profile's documents with the story's selector (label AND GPU facts) and stages."""
    out = copy.deepcopy(docs)
    for doc in out:
        if doc["kind"] == "ClusterProfile":
            spec = doc["spec"]
            spec["clusterSelector"] = {"matchLabels": {LABEL[0]: LABEL[1]}}
            spec["clusterSelectorCEL"] = GPU_CEL
            spec["rollout"] = copy.deepcopy(ROLLOUT)
            spec["stopMatchingBehavior"] = "WithdrawPolicies"
    return out


def _flotilla(mgmt: Shell, *args: str) -> None:
    shown = " ".join(a for a in args)
    print(f"$ flotilla {shown} --kubeconfig {mgmt.kubeconfig}", flush=True)
    subprocess.run([sys.executable, "-m", "engine.cli", *args, "--kubeconfig", mgmt.kubeconfig])


class _Operators:
    """With the real charts, plays the GPU operator's part on the GPU clusters meanwhile."""

    def __init__(self, clusters: list[fleet.Cluster], real: bool) -> None:
        self.clusters, self.real = clusters, real
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(2.0):
            for c in self.clusters:
                realcharts.play_operators(c.kubeconfig)

    def __enter__(self) -> _Operators:
        if self.real:
            self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)


def follow(mgmt: Shell, timeout: float) -> int:
    """`flotilla rollout status gpu-inference --watch`: progress as it happens, until settled."""
    print(f"$ flotilla rollout status {PROFILE} --watch --timeout {timeout:g}s "
          f"--kubeconfig {mgmt.kubeconfig}", flush=True)
    args = argparse.Namespace(profile=PROFILE, kubeconfig=mgmt.kubeconfig, context=None,
                              output=None, timeout=timeout)
    code = asyncio.run(rolloutwatch.watch(args))
    if code != rolloutwatch.EXIT_COMPLETE:
        raise RuntimeError(f"demo: the rollout of {PROFILE} did not complete (exit {code}); "
                           "see the controller's log")
    return code


def _summaries(mgmt: Shell) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = mgmt.json("get", "clustersummaries", "-n", "fleet").get(
        "items", [])
    return items


def tell(started: fleet.Fleet, mgmt: Shell, profile_path: str, *, real: bool) -> None:
    gpu = [c for c in started.clusters if c.full]
    timeout = 900.0 if real else 180.0
    say(f"Apply the {PROFILE} profile: clusters labelled {LABEL[0]}={LABEL[1]} AND with GPUs "
        "(clusterSelectorCEL over the GPU facts each WorkloadCluster reports); stages: canary "
        "(ring=canary) first, then main, after a 5 s soak")
    mgmt.show("apply", "-f", profile_path)
    mgmt.show("get", "clusterprofile", PROFILE)

    say(f"1. Label every cluster {LABEL[0]}={LABEL[1]} — the GPU stack arrives on the GPU "
        "clusters only, canary first")
    mgmt.show("label", "workloadclusters", "-n", "fleet", "--all", f"{LABEL[0]}={LABEL[1]}")
    if real:
        note("the dev fleet plays the GPU operator's part: nothing really runs on simulated "
             "nodes, so the ClusterPolicy is marked ready once it exists")
    with _Operators(gpu, real):
        wait(f"{PROFILE} to select the GPU clusters", lambda: (mgmt.json(
            "get", "clusterprofile", PROFILE).get("status") or {}).get("matched") == len(gpu))
        follow(mgmt, timeout)
    mgmt.show("get", "clustersummaries", "-n", "fleet")
    note("cluster-3 has no GPUs, so it has no summary; flotilla why says so, check by check")
    _flotilla(mgmt, "why", "cluster-3")

    _drift(gpu[-1], mgmt, timeout)

    say("3. A values change (timeSlicingReplicas 4 -> 8) — a new revision, rolled out "
        "canary first, then the rest")
    patch = [{"op": "add", "path": "/spec/services/0/parameters/timeSlicingReplicas",
              "value": 8}]
    mgmt.show("patch", "clusterprofile", PROFILE, "--type=json", "-p", json.dumps(patch))
    with _Operators(gpu, real):
        follow(mgmt, timeout)
    _flotilla(mgmt, "rollout", "history", PROFILE)

    say("4. Remove the label — the stack is withdrawn from every cluster")
    mgmt.show("label", "workloadclusters", "-n", "fleet", "--all", f"{LABEL[0]}-")
    wait("withdrawn", lambda: not _summaries(mgmt), timeout=600 if real else 120)
    mgmt.show("get", "clusterprofile", PROFILE)
    for c in gpu:
        print(f"$ helm list -A   (on {c.name})", flush=True)
        subprocess.run([str(testbin.path() / "helm"), "--kubeconfig", c.kubeconfig, "list",
                        "-A"])
    if real:
        note("the CRDs the charts installed from their crds/ folders stay: Helm never "
             "deletes those")


def _drift(cluster: fleet.Cluster, mgmt: Shell, timeout: float) -> None:
    """Step 2: scale a deployed Deployment by hand; drift is reported, then corrected."""
    ns, name = DRIFT_TARGET
    say(f"2. Someone edits {cluster.name} by hand — drift reported with its field path, "
        "and corrected (syncMode ContinuousWithDriftDetection)")
    kubectl = [str(testbin.path() / "kubectl"), "--kubeconfig", cluster.kubeconfig]

    def replicas() -> int:
        out = subprocess.run([*kubectl, "get", "deployment", name, "-n", ns, "-o",
                              "jsonpath={.spec.replicas}"], capture_output=True, text=True)
        return int(out.stdout or 0)

    deployed = replicas()
    print(f"$ kubectl scale deployment {name} -n {ns} --replicas={deployed + 2}   "
          f"(on {cluster.name})", flush=True)
    subprocess.run([*kubectl, "scale", "deployment", name, "-n", ns,
                    f"--replicas={deployed + 2}"])

    def events() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = mgmt.json(
            "get", "events", "-n", "fleet", "--field-selector", "reason=Drifted").get(
            "items", [])
        return [e for e in items if f"{name} drifted" in e.get("message", "")]

    wait("the drift to be reported", lambda: bool(events()), timeout=60)
    for event in events()[-1:]:
        print(f"  Event {event['type']} {event['reason']} on ClusterSummary "
              f"{event['involvedObject']['name']}: {event['message']}", flush=True)

    wait("the drift to be corrected", lambda: replicas() == deployed, timeout=timeout)
    print(f"$ kubectl get deployment {name} -n {ns}   (on {cluster.name})", flush=True)
    subprocess.run([*kubectl, "get", "deployment", name, "-n", ns])
    wait("the summary to be in sync again", lambda: not any(
        s.get("status", {}).get("drift") for s in _summaries(mgmt)), timeout=60)
    note("corrected: the summary's status.drift is empty again; the Event stays as the record")
